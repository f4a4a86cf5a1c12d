#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "manager.h"
#include "persist.h"
#include "names.h"

Manager *manager_new(QmDaemon *d) {
        Manager *mgr = g_new0(Manager, 1);
        mgr->daemon = d;
        mgr->machines = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify)machine_free);
        mgr->rand = g_rand_new();
        mgr->images_in_progress = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        return mgr;
}

void manager_free(Manager *mgr) {
        if (!mgr)
                return;
        g_hash_table_unref(mgr->machines);
        g_rand_free(mgr->rand);
        g_hash_table_unref(mgr->images_in_progress);
        if (mgr->notify && mgr->notify->freed)
                mgr->notify->freed(mgr);
        g_free(mgr);
}

static void forget_definition(Manager *mgr, const char *name) {
        g_autoptr(GError) err = NULL;

        if (!qm_definition_remove(mgr->daemon->definitions_dir, name, &err))
                g_warning("%s", err->message);
}

Machine *manager_create_machine(Manager *mgr, const char *name, QmConfig *config, QmError **error) {
        g_autoptr(QmConfig) owned = config;
        g_autofree char *generated = NULL;
        Machine *m;
        int r;

        if (!*name) {
                g_autoptr(GDateTime) now = g_date_time_new_now_local();
                do {
                        g_free(generated);
                        generated = qm_name_generate(now, mgr->rand);
                } while (g_hash_table_contains(mgr->machines, generated));
                name = generated;
        }
        if (!qm_name_is_valid(name)) {
                *error = qm_error_new(QM_ERROR_INVALID_ARGS,
                                      "invalid machine name: use 1 to %d characters of A-Z a-z 0-9 . _ -, "
                                      "starting with a letter or digit",
                                      QM_NAME_MAX);
                return NULL;
        }
        if (g_hash_table_contains(mgr->machines, name)) {
                *error = qm_error_new(QM_ERROR_MACHINE_EXISTS, "A machine named '%s' exists already", name);
                return NULL;
        }
        if (g_hash_table_size(mgr->machines) >= mgr->daemon->limits.max_machines) {
                *error = qm_error_new(QM_ERROR_LIMIT_EXCEEDED, "The daemon already manages %u machines",
                                      mgr->daemon->limits.max_machines);
                return NULL;
        }
        if (owned->persistent && !mgr->restoring) {
                g_autoptr(GError) err = NULL;
                if (!qm_definition_save(mgr->daemon->definitions_dir, name, owned, 0, &err)) {
                        *error = qm_error_new(QM_ERROR_STORAGE_FAILED, "cannot save the definition of '%s': %s",
                                              name, err->message);
                        return NULL;
                }
        }
        m = machine_new(mgr->daemon, name, g_steal_pointer(&owned));
        r = mgr->notify && mgr->notify->added ? mgr->notify->added(mgr, m) : 0;
        if (r < 0) {
                *error = qm_error_new(SD_BUS_ERROR_FAILED, "cannot export machine '%s': %s", name, g_strerror(-r));
                /* No machine, so no definition either: it would come back. */
                if (machine_get_config(m)->persistent && !mgr->restoring)
                        forget_definition(mgr, name);
                machine_free(m);
                return NULL;
        }
        g_hash_table_insert(mgr->machines, (char *)machine_get_name(m), m); /* the machine owns its name */
        if (mgr->notify && mgr->notify->count_changed)
                mgr->notify->count_changed(mgr);
        return m;
}

gboolean manager_remove_machine(Manager *mgr, const char *name, QmError **error) {
        Machine *m = g_hash_table_lookup(mgr->machines, name);
        g_autofree char *path = NULL;
        g_autofree char *key = NULL;

        if (!m) {
                *error = qm_error_new(QM_ERROR_NO_SUCH_MACHINE, "No machine named '%s'", name);
                return FALSE;
        }
        if (machine_is_active(m)) {
                *error = qm_error_new(QM_ERROR_BUSY, "Machine '%s' is %s; shut it down first", name,
                                      qm_state_to_string(machine_get_state(m)));
                return FALSE;
        }
        /* First the definition: if it stays, so must the machine, or it
         * would come back after a restart. */
        if (machine_get_config(m)->persistent) {
                g_autoptr(GError) err = NULL;
                if (!qm_definition_remove(mgr->daemon->definitions_dir, name, &err)) {
                        *error = qm_error_new(QM_ERROR_STORAGE_FAILED, "Machine '%s' is kept: %s", name,
                                              err->message);
                        return FALSE;
                }
        }
        path = g_strdup(machine_get_path(m));
        key = g_strdup(machine_get_name(m));
        if (mgr->notify && mgr->notify->removing)
                mgr->notify->removing(mgr, m);
        g_hash_table_remove(mgr->machines, key);
        if (mgr->notify && mgr->notify->removed)
                mgr->notify->removed(mgr, key, path);
        if (mgr->notify && mgr->notify->count_changed)
                mgr->notify->count_changed(mgr);
        return TRUE;
}

void manager_remove_failed_incoming(Machine *m, gpointer data) {
        g_autoptr(QmError) e = NULL;
        g_autofree char *name = g_strdup(machine_get_name(m));

        if (!manager_remove_machine(data, name, &e))
                g_warning("cannot remove machine %s after its failed incoming migration: %s", name, e->message);
}

Machine *manager_find_by_pid(Manager *mgr, pid_t pid) {
        GHashTableIter it;
        Machine *m;

        if (pid <= 0)
                return NULL;
        g_hash_table_iter_init(&it, mgr->machines);
        while (g_hash_table_iter_next(&it, NULL, (gpointer *)&m))
                if (machine_pid(m) == pid)
                        return m;
        return NULL;
}

static void restore_running(Manager *mgr, const char *record_path) {
        g_autoptr(GError) err = NULL;
        g_autoptr(QmRunRecord) r = qm_run_record_load(record_path, &err);
        g_autoptr(QmError) e = NULL;
        Machine *m;

        if (!r) {
                g_warning("ignoring runtime record %s: %s", record_path, err->message);
                return;
        }
        m = g_hash_table_lookup(mgr->machines, r->name);
        if (!m) {
                /* a non-persistent machine: its record has its config */
                QmConfig *config = g_steal_pointer(&r->config);
                config->persistent = FALSE;
                m = manager_create_machine(mgr, r->name, config, &e);
                if (!m) {
                        g_warning("cannot restore machine %s: %s", r->name, e->message);
                        return;
                }
        }
        machine_reattach(m, r);
        if (r->incoming_uri)
                machine_incoming_reattach(m, r, manager_remove_failed_incoming, mgr);
}

/* A record is only trusted in a real directory of ours, never through a
 * symlink someone put in the runtime directory. */
static gboolean is_own_directory(const char *path) {
        struct stat st;

        if (lstat(path, &st) < 0 || S_ISREG(st.st_mode))
                return FALSE;
        if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
                g_warning("ignoring %s: not a directory of ours", path);
                return FALSE;
        }
        return TRUE;
}

/*
 * Autostart (libvirt's autostart, machinectl enable): once per host boot.
 * The runtime directory is on a tmpfs that a boot empties, so a marker
 * there tells a daemon restart (VMs the user stopped stay stopped) from
 * the first start after a boot.
 */
static void autostart(Manager *mgr) {
        g_autofree char *marker = g_build_filename(mgr->daemon->runtime_dir, "autostarted", NULL);
        g_autoptr(GError) err = NULL;
        g_autoptr(GList) names = NULL;

        if (g_file_test(marker, G_FILE_TEST_EXISTS))
                return;
        if (!g_file_set_contents(marker, "", 0, &err))
                g_warning("%s; machines with autostart may start again at the next daemon start", err->message);
        names = g_list_sort(g_hash_table_get_keys(mgr->machines), (GCompareFunc)g_strcmp0);
        for (GList *l = names; l; l = l->next) {
                Machine *m = g_hash_table_lookup(mgr->machines, l->data);
                const QmConfig *c = machine_get_config(m);
                g_autofree char *what = NULL;

                if (!c->autostart || !c->persistent || machine_is_active(m))
                        continue;
                what = g_strdup_printf("autostart of machine %s", machine_get_name(m));
                g_message("%s", what);
                machine_launch(m, qm_reply_new_internal(what));
        }
}

void manager_restore(Manager *mgr) {
        g_autoptr(GPtrArray) defs = qm_definitions_load(mgr->daemon->definitions_dir);
        g_autoptr(GDir) dir = NULL;
        const char *entry;

        mgr->restoring = TRUE;
        for (guint i = 0; i < defs->len; i++) {
                QmDefinition *d = g_ptr_array_index(defs, i);
                g_autoptr(QmError) e = NULL;
                Machine *m = manager_create_machine(mgr, d->name, g_steal_pointer(&d->config), &e);
                if (!m) {
                        g_warning("cannot restore machine %s: %s", d->name, e->message);
                        continue;
                }
                machine_set_event_sequence(m, d->event_sequence);
                if (d->migrated_to)
                        machine_set_migrated(m, d->migrated_to);
        }
        dir = g_dir_open(mgr->daemon->runtime_dir, 0, NULL);
        while (dir && (entry = g_dir_read_name(dir))) {
                g_autofree char *run_dir = g_build_filename(mgr->daemon->runtime_dir, entry, NULL);
                g_autofree char *record = g_build_filename(run_dir, "record.json", NULL);
                if (qm_name_is_valid(entry) && is_own_directory(run_dir) &&
                    g_file_test(record, G_FILE_TEST_EXISTS))
                        restore_running(mgr, record);
        }
        mgr->restoring = FALSE;
        g_message("restored %u machines", g_hash_table_size(mgr->machines));
        autostart(mgr);
}
