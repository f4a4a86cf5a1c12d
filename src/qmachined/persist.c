#include <errno.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "names.h"
#include "persist.h"
#include "state-file.h"

void qm_definition_free(QmDefinition *d) {
        if (!d)
                return;
        g_free(d->name);
        qm_config_free(d->config);
        g_free(d);
}

char *qm_definition_path(const char *dir, const char *name) {
        g_autofree char *file = g_strconcat(name, ".json", NULL);
        return g_build_filename(dir, file, NULL);
}

gboolean qm_definition_save(const char *dir, const char *name, const QmConfig *config, guint64 event_sequence,
                            GError **error) {
        g_autoptr(JsonBuilder) b = json_builder_new_immutable();
        g_autoptr(JsonNode) root = NULL;
        g_autofree char *path = qm_definition_path(dir, name);

        if (g_mkdir_with_parents(dir, 0755) < 0) {
                g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno), "cannot create %s: %s", dir,
                            g_strerror(errno));
                return FALSE;
        }
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "name");
        json_builder_add_string_value(b, name);
        json_builder_set_member_name(b, "config");
        json_builder_add_value(b, qm_config_to_json(config));
        json_builder_set_member_name(b, "event-sequence");
        json_builder_add_int_value(b, (gint64)event_sequence);
        json_builder_end_object(b);
        root = json_builder_get_root(b);
        return qm_json_file_write(path, root, TRUE, error);
}

void qm_definition_remove(const char *dir, const char *name) {
        g_autofree char *path = qm_definition_path(dir, name);
        if (g_unlink(path) < 0 && errno != ENOENT)
                g_warning("cannot remove %s: %s", path, g_strerror(errno));
}

static QmDefinition *definition_parse(const char *path, const char *name, GError **error) {
        g_autoptr(JsonNode) root = qm_json_file_read(path, error);
        g_autoptr(QmError) e = NULL;
        g_autoptr(QmDefinition) d = NULL;
        JsonObject *obj;

        if (!root)
                return NULL;
        obj = json_node_get_object(root);
        if (g_strcmp0(qm_json_get_string(obj, "name", NULL), name) != 0) {
                g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "its name does not match the file name");
                return NULL;
        }
        d = g_new0(QmDefinition, 1);
        d->name = g_strdup(name);
        d->event_sequence = (guint64)MAX(qm_json_get_int(obj, "event-sequence", 0), 0);
        d->config = qm_config_from_json(json_object_get_member(obj, "config"), &e);
        if (!d->config) {
                g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "bad config: %s", e->message);
                return NULL;
        }
        d->config->persistent = TRUE;
        return g_steal_pointer(&d);
}

static gint compare_names(gconstpointer a, gconstpointer b) {
        const QmDefinition *x = *(QmDefinition *const *)a, *y = *(QmDefinition *const *)b;
        return strcmp(x->name, y->name);
}

GPtrArray *qm_definitions_load(const char *dir) {
        GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)qm_definition_free);
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        const char *file;

        if (!d)
                return out;
        while ((file = g_dir_read_name(d))) {
                g_autofree char *name = NULL;
                g_autofree char *path = NULL;
                g_autoptr(GError) err = NULL;
                QmDefinition *def;

                if (!g_str_has_suffix(file, ".json"))
                        continue;
                name = g_strndup(file, strlen(file) - strlen(".json"));
                path = g_build_filename(dir, file, NULL);
                def = qm_name_is_valid(name) ? definition_parse(path, name, &err) : NULL;
                if (!def) {
                        g_autofree char *aside = g_strconcat(path, ".corrupt", NULL);
                        g_warning("definition %s is unusable (%s); moved aside to %s", path,
                                  err ? err->message : "bad machine name", aside);
                        if (g_rename(path, aside) < 0)
                                g_warning("cannot move %s aside: %s", path, g_strerror(errno));
                        continue;
                }
                g_ptr_array_add(out, def);
        }
        g_ptr_array_sort(out, compare_names);
        return out;
}

void qm_run_record_free(QmRunRecord *r) {
        if (!r)
                return;
        g_free(r->name);
        qm_config_free(r->config);
        g_strfreev(r->command_line);
        g_free(r->qemu_version);
        g_free(r);
}

gboolean qm_run_record_save(const char *path, const QmRunRecord *r, GError **error) {
        g_autoptr(JsonBuilder) b = json_builder_new_immutable();
        g_autoptr(JsonNode) root = NULL;

        json_builder_begin_object(b);
        json_builder_set_member_name(b, "name");
        json_builder_add_string_value(b, r->name);
        json_builder_set_member_name(b, "config");
        json_builder_add_value(b, qm_config_to_json(r->config));
        json_builder_set_member_name(b, "pid");
        json_builder_add_int_value(b, r->pid);
        json_builder_set_member_name(b, "start-time");
        json_builder_add_int_value(b, (gint64)r->start_time);
        json_builder_set_member_name(b, "launch-timestamp");
        json_builder_add_int_value(b, (gint64)r->launch_timestamp);
        json_builder_set_member_name(b, "event-sequence-mark");
        json_builder_add_int_value(b, (gint64)r->event_sequence_mark);
        json_builder_set_member_name(b, "qemu-version");
        json_builder_add_string_value(b, r->qemu_version ? r->qemu_version : "");
        json_builder_set_member_name(b, "quit-issued");
        json_builder_add_boolean_value(b, r->quit_issued);
        json_builder_set_member_name(b, "command-line");
        json_builder_begin_array(b);
        for (char **p = r->command_line; p && *p; p++)
                json_builder_add_string_value(b, *p);
        json_builder_end_array(b);
        json_builder_end_object(b);
        root = json_builder_get_root(b);
        /* /run is memory: a crash of the daemon, not of the host, is what
         * this file must survive, so no fsync. */
        return qm_json_file_write(path, root, FALSE, error);
}

QmRunRecord *qm_run_record_load(const char *path, GError **error) {
        g_autoptr(JsonNode) root = qm_json_file_read(path, error);
        g_autoptr(QmRunRecord) r = NULL;
        g_autoptr(QmError) e = NULL;
        JsonObject *obj;
        JsonNode *cmd;
        GPtrArray *argv;

        if (!root)
                return NULL;
        obj = json_node_get_object(root);
        r = g_new0(QmRunRecord, 1);
        r->name = g_strdup(qm_json_get_string(obj, "name", ""));
        r->pid = (pid_t)qm_json_get_int(obj, "pid", 0);
        r->start_time = (guint64)MAX(qm_json_get_int(obj, "start-time", 0), 0);
        r->launch_timestamp = (guint64)MAX(qm_json_get_int(obj, "launch-timestamp", 0), 0);
        r->event_sequence_mark = (guint64)MAX(qm_json_get_int(obj, "event-sequence-mark", 0), 0);
        r->qemu_version = g_strdup(qm_json_get_string(obj, "qemu-version", ""));
        r->quit_issued = json_object_get_boolean_member_with_default(obj, "quit-issued", FALSE);
        argv = g_ptr_array_new();
        cmd = json_object_get_member(obj, "command-line");
        if (cmd && JSON_NODE_HOLDS_ARRAY(cmd)) {
                JsonArray *a = json_node_get_array(cmd);
                for (guint i = 0; i < json_array_get_length(a); i++) {
                        JsonNode *s = json_array_get_element(a, i);
                        if (json_node_get_value_type(s) == G_TYPE_STRING)
                                g_ptr_array_add(argv, g_strdup(json_node_get_string(s)));
                }
        }
        g_ptr_array_add(argv, NULL);
        r->command_line = (char **)g_ptr_array_free(argv, FALSE);
        if (!qm_name_is_valid(r->name) || r->pid <= 0) {
                g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "%s: bad name or pid", path);
                return NULL;
        }
        r->config = qm_config_from_json(json_object_get_member(obj, "config"), &e);
        if (!r->config) {
                g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "%s: bad config: %s", path, e->message);
                return NULL;
        }
        return g_steal_pointer(&r);
}

gboolean qm_process_stat(pid_t pid, guint64 *start_time, char *state) {
        g_autofree char *path = g_strdup_printf("/proc/%d/stat", (int)pid);
        g_autofree char *text = NULL;
        const char *p;
        int field;

        if (!g_file_get_contents(path, &text, NULL, NULL))
                return FALSE;
        /* comm may hold spaces and parentheses: fields follow the last ')' */
        p = strrchr(text, ')');
        if (!p || p[1] != ' ')
                return FALSE;
        p += 2;
        *state = *p;
        for (field = 3; field < 22 && p; field++) {
                p = strchr(p, ' ');
                if (p)
                        p++;
        }
        if (!p)
                return FALSE;
        *start_time = g_ascii_strtoull(p, NULL, 10);
        return TRUE;
}
