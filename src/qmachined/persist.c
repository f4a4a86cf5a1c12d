/* SPDX-License-Identifier: LGPL-2.1-or-later */
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
        g_free(d->migrated_to);
        g_free(d);
}

char *qm_definition_path(const char *dir, const char *name) {
        g_autofree char *file = g_strconcat(name, ".json", NULL);
        return g_build_filename(dir, file, NULL);
}

gboolean qm_definition_save(const char *dir, const char *name, const QmConfig *config, guint64 event_sequence,
                            GError **error) {
        return qm_definition_save_migrated(dir, name, config, event_sequence, NULL, error);
}

gboolean qm_definition_save_migrated(const char *dir, const char *name, const QmConfig *config,
                                     guint64 event_sequence, const char *migrated_to, GError **error) {
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
        json_builder_set_member_name(b, "owner");
        json_builder_add_int_value(b, config->owner);
        json_builder_set_member_name(b, "event-sequence");
        json_builder_add_int_value(b, (gint64)event_sequence);
        if (migrated_to) {
                json_builder_set_member_name(b, "migrated");
                json_builder_add_string_value(b, migrated_to);
        }
        json_builder_end_object(b);
        root = json_builder_get_root(b);
        return qm_json_file_write(path, root, TRUE, error);
}

gboolean qm_definition_remove(const char *dir, const char *name, GError **error) {
        g_autofree char *path = qm_definition_path(dir, name);

        if (g_unlink(path) < 0 && errno != ENOENT) {
                int e = errno;
                g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "cannot remove %s: %s", path,
                            g_strerror(e));
                return FALSE;
        }
        return TRUE;
}

/*
 * Strict readers of members: absent gives the default, but a member that
 * is there with the wrong type or out of range makes the file corrupt. A
 * silent default would, e.g., restart event numbers at 0.
 */
static gboolean member_int(JsonObject *obj, const char *key, gint64 min, gint64 max, gint64 *out,
                           GError **error) {
        JsonNode *n = json_object_get_member(obj, key);

        if (!n)
                return TRUE;
        if (json_node_get_value_type(n) != G_TYPE_INT64 || json_node_get_int(n) < min ||
            json_node_get_int(n) > max) {
                g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
                            "member %s is not an integer from %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT, key, min,
                            max);
                return FALSE;
        }
        *out = json_node_get_int(n);
        return TRUE;
}

static gboolean member_u64(JsonObject *obj, const char *key, guint64 *out, GError **error) {
        gint64 v = 0;

        if (!member_int(obj, key, 0, G_MAXINT64, &v, error))
                return FALSE;
        *out = (guint64)v;
        return TRUE;
}

static gboolean member_string(JsonObject *obj, const char *key, char **out, GError **error) {
        JsonNode *n = json_object_get_member(obj, key);

        if (!n)
                return TRUE;
        if (json_node_get_value_type(n) != G_TYPE_STRING) {
                g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "member %s is not a string", key);
                return FALSE;
        }
        g_free(*out);
        *out = g_strdup(json_node_get_string(n));
        return TRUE;
}

static gboolean member_boolean(JsonObject *obj, const char *key, gboolean *out, GError **error) {
        JsonNode *n = json_object_get_member(obj, key);

        if (!n)
                return TRUE;
        if (json_node_get_value_type(n) != G_TYPE_BOOLEAN) {
                g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "member %s is not a boolean", key);
                return FALSE;
        }
        *out = json_node_get_boolean(n);
        return TRUE;
}

/* An array of strings; NULL-terminated, empty when absent. */
static gboolean member_strv(JsonObject *obj, const char *key, char ***out, GError **error) {
        JsonNode *n = json_object_get_member(obj, key);
        g_autoptr(GPtrArray) v = g_ptr_array_new_with_free_func(g_free);
        JsonArray *a;

        if (n && !JSON_NODE_HOLDS_ARRAY(n)) {
                g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "member %s is not an array", key);
                return FALSE;
        }
        a = n ? json_node_get_array(n) : NULL;
        for (guint i = 0; a && i < json_array_get_length(a); i++) {
                JsonNode *s = json_array_get_element(a, i);
                if (json_node_get_value_type(s) != G_TYPE_STRING) {
                        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "member %s holds a non-string", key);
                        return FALSE;
                }
                g_ptr_array_add(v, g_strdup(json_node_get_string(s)));
        }
        g_ptr_array_add(v, NULL);
        g_strfreev(*out);
        *out = (char **)g_ptr_array_steal(v, NULL);
        return TRUE;
}

/* "owner": absent in files of version 1, whose machines were root's. */
static gboolean member_owner(JsonObject *obj, uid_t *out, GError **error) {
        gint64 owner = 0;

        if (!member_int(obj, "owner", 0, G_MAXUINT32 - 1, &owner, error))
                return FALSE;
        *out = (uid_t)owner;
        return TRUE;
}

static QmDefinition *definition_parse(const char *path, const char *name, GError **error) {
        g_autoptr(JsonNode) root = qm_json_file_read(path, error);
        g_autoptr(QmError) e = NULL;
        g_autoptr(QmDefinition) d = NULL;
        uid_t owner = 0;
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
        if (!member_u64(obj, "event-sequence", &d->event_sequence, error) || !member_owner(obj, &owner, error) ||
            !member_string(obj, "migrated", &d->migrated_to, error))
                return NULL;
        d->config = qm_config_from_json(json_object_get_member(obj, "config"), &e);
        if (!d->config) {
                g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "bad config: %s", e->message);
                return NULL;
        }
        d->config->persistent = TRUE;
        d->config->owner = owner;
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
        g_free(r->incoming_uri);
        g_free(r->migrating_to);
        if (r->forwarded_ports)
                g_array_unref(r->forwarded_ports);
        g_free(r);
}

/* "forwarded-ports": [[guest, host], ...] */
static void add_forwarded_ports(JsonBuilder *b, const GArray *ports) {
        json_builder_set_member_name(b, "forwarded-ports");
        json_builder_begin_array(b);
        for (guint i = 0; ports && i < ports->len; i++) {
                const QmPortPair *p = &g_array_index(ports, QmPortPair, i);
                json_builder_begin_array(b);
                json_builder_add_int_value(b, p->guest);
                json_builder_add_int_value(b, p->host);
                json_builder_end_array(b);
        }
        json_builder_end_array(b);
}

static gboolean port_number(JsonArray *pair, guint i, guint16 *out) {
        JsonNode *n = json_array_get_element(pair, i);

        if (json_node_get_value_type(n) != G_TYPE_INT64 || json_node_get_int(n) < 1 ||
            json_node_get_int(n) > G_MAXUINT16)
                return FALSE;
        *out = (guint16)json_node_get_int(n);
        return TRUE;
}

/* Strict: each entry a pair of port numbers 1 to 65535; absent: none. */
static gboolean member_port_pairs(JsonObject *obj, const char *key, GArray **out, GError **error) {
        JsonNode *n = json_object_get_member(obj, key);
        g_autoptr(GArray) pairs = g_array_new(FALSE, FALSE, sizeof(QmPortPair));
        JsonArray *a;

        if (n && !JSON_NODE_HOLDS_ARRAY(n)) {
                g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "member %s is not an array", key);
                return FALSE;
        }
        a = n ? json_node_get_array(n) : NULL;
        for (guint i = 0; a && i < json_array_get_length(a) && i <= QM_CONFIG_MAX_FORWARD_PORTS; i++) {
                JsonNode *e = json_array_get_element(a, i);
                JsonArray *pair = JSON_NODE_HOLDS_ARRAY(e) ? json_node_get_array(e) : NULL;
                QmPortPair p;
                if (i == QM_CONFIG_MAX_FORWARD_PORTS || !pair || json_array_get_length(pair) != 2 ||
                    !port_number(pair, 0, &p.guest) || !port_number(pair, 1, &p.host)) {
                        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
                                    "member %s is not a list of at most %d [guest, host] port pairs", key,
                                    QM_CONFIG_MAX_FORWARD_PORTS);
                        return FALSE;
                }
                g_array_append_val(pairs, p);
        }
        if (*out)
                g_array_unref(*out);
        *out = g_steal_pointer(&pairs);
        return TRUE;
}

gboolean qm_run_record_save(const char *path, const QmRunRecord *r, GError **error) {
        g_autoptr(JsonBuilder) b = json_builder_new_immutable();
        g_autoptr(JsonNode) root = NULL;

        json_builder_begin_object(b);
        json_builder_set_member_name(b, "name");
        json_builder_add_string_value(b, r->name);
        json_builder_set_member_name(b, "config");
        json_builder_add_value(b, qm_config_to_json(r->config));
        json_builder_set_member_name(b, "owner");
        json_builder_add_int_value(b, r->config->owner);
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
        add_forwarded_ports(b, r->forwarded_ports);
        if (r->incoming_uri) {
                json_builder_set_member_name(b, "incoming-uri");
                json_builder_add_string_value(b, r->incoming_uri);
                json_builder_set_member_name(b, "incoming-persistent");
                json_builder_add_boolean_value(b, r->incoming_persistent);
                json_builder_set_member_name(b, "incoming-paused");
                json_builder_add_boolean_value(b, r->incoming_paused);
        }
        if (r->migrating_to) {
                json_builder_set_member_name(b, "migrating-to");
                json_builder_add_string_value(b, r->migrating_to);
                json_builder_set_member_name(b, "migrating-was-paused");
                json_builder_add_boolean_value(b, r->migrating_was_paused);
        }
        if (r->saving) {
                json_builder_set_member_name(b, "saving-was-running");
                json_builder_add_boolean_value(b, r->saving_was_running);
                json_builder_set_member_name(b, "saving-bandwidth");
                json_builder_add_int_value(b, r->saving_bandwidth);
        }
        if (r->restoring) {
                json_builder_set_member_name(b, "restoring-paused");
                json_builder_add_boolean_value(b, r->restoring_paused);
        }
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
        gint64 pid = 0;
        uid_t owner = 0;
        JsonObject *obj;

        if (!root)
                return NULL;
        obj = json_node_get_object(root);
        r = g_new0(QmRunRecord, 1);
        r->name = g_strdup("");
        r->qemu_version = g_strdup("");
        r->saving_bandwidth = -1;
        if (!member_string(obj, "name", &r->name, error) || !member_int(obj, "pid", 1, G_MAXINT, &pid, error) ||
            !member_u64(obj, "start-time", &r->start_time, error) ||
            !member_u64(obj, "launch-timestamp", &r->launch_timestamp, error) ||
            !member_u64(obj, "event-sequence-mark", &r->event_sequence_mark, error) ||
            !member_string(obj, "qemu-version", &r->qemu_version, error) ||
            !member_boolean(obj, "quit-issued", &r->quit_issued, error) ||
            !member_strv(obj, "command-line", &r->command_line, error) || !member_owner(obj, &owner, error) ||
            !member_port_pairs(obj, "forwarded-ports", &r->forwarded_ports, error) ||
            !member_string(obj, "incoming-uri", &r->incoming_uri, error) ||
            !member_boolean(obj, "incoming-persistent", &r->incoming_persistent, error) ||
            !member_boolean(obj, "incoming-paused", &r->incoming_paused, error) ||
            !member_string(obj, "migrating-to", &r->migrating_to, error) ||
            !member_boolean(obj, "migrating-was-paused", &r->migrating_was_paused, error) ||
            !member_boolean(obj, "saving-was-running", &r->saving_was_running, error) ||
            !member_int(obj, "saving-bandwidth", -1, G_MAXINT64, &r->saving_bandwidth, error) ||
            !member_boolean(obj, "restoring-paused", &r->restoring_paused, error)) {
                g_prefix_error(error, "%s: ", path);
                return NULL;
        }
        r->pid = (pid_t)pid;
        r->saving = json_object_has_member(obj, "saving-was-running");
        r->restoring = json_object_has_member(obj, "restoring-paused");
        if (!qm_name_is_valid(r->name) || r->pid <= 0) {
                g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "%s: bad name or pid", path);
                return NULL;
        }
        r->config = qm_config_from_json(json_object_get_member(obj, "config"), &e);
        if (!r->config) {
                g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "%s: bad config: %s", path, e->message);
                return NULL;
        }
        r->config->owner = owner;
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
