/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Migrate (BaseVM migrate()): QMP migrate, then query-migrate until the
 * migration ends, with a timeout and an optional cancel-after, both ended
 * by migrate_cancel. Save and Restore run theirs through the same code
 * (machine_migration_run()), Restore's as migrate-incoming.
 */
#include <stdarg.h>
#include <string.h>

#include "json-util.h"
#include "machine-internal.h"

#define MIGRATE_POLL_MS 50

struct QmMigration {
        Machine *machine;
        QmReply *call;
        char *uri;
        guint timeout_timer;
        guint cancel_timer;
        guint poll_timer;
        gboolean timed_out;
        gboolean cancel_requested;
        gboolean incoming;         /* migrate-incoming: QEMU is the destination */
        MachineMigrationDone done; /* instead of answering @call */
        gpointer done_data;
};

static void migration_free(QmMigration *mg) {
        if (mg->timeout_timer)
                g_source_remove(mg->timeout_timer);
        if (mg->cancel_timer)
                g_source_remove(mg->cancel_timer);
        if (mg->poll_timer)
                g_source_remove(mg->poll_timer);
        qm_reply_drop(mg->call);
        g_free(mg->uri);
        g_free(mg);
}

/* Answer the caller and forget the migration (@name NULL: success). */
static void finish(QmMigration *mg, const char *name, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static void finish(QmMigration *mg, const char *name, const char *fmt, ...) {
        Machine *m = mg->machine;
        g_autoptr(QmError) e = NULL;
        MachineMigrationDone done;
        gpointer done_data;

        if (name) {
                va_list ap;
                g_autofree char *text = NULL;
                va_start(ap, fmt);
                text = g_strdup_vprintf(fmt, ap);
                va_end(ap);
                if (mg->call)
                        qm_reply_failf(g_steal_pointer(&mg->call), name, "%s", text);
                else
                        e = qm_error_new(name, "%s", text);
        } else if (mg->call) {
                qm_reply_ok(g_steal_pointer(&mg->call));
        }
        done = mg->done;
        done_data = mg->done_data;
        if (m->migration == mg)
                m->migration = NULL;
        migration_free(mg);
        machine_refresh_run_state(m);
        if (done)
                done(m, e, done_data);
}

static void cancel(QmMigration *mg) {
        if (qmp_client_is_ready(mg->machine->qmp))
                machine_qmp_call(mg->machine, "migrate_cancel", NULL, qmp_reply_ignore, NULL);
}

static gboolean on_timeout(gpointer data) {
        QmMigration *mg = data;
        mg->timeout_timer = 0;
        mg->timed_out = TRUE;
        if (mg->incoming) {
                /* migrate_cancel does not end an incoming migration */
                finish(mg, QM_ERROR_MIGRATE_TIMEOUT,
                       "the incoming migration from %s did not complete in time", mg->uri);
                return G_SOURCE_REMOVE;
        }
        cancel(mg);
        return G_SOURCE_REMOVE;
}

static gboolean on_cancel_after(gpointer data) {
        QmMigration *mg = data;
        mg->cancel_timer = 0;
        mg->cancel_requested = TRUE;
        cancel(mg);
        return G_SOURCE_REMOVE;
}

static gboolean on_poll(gpointer data);

static void on_status(const QmpResponse *r, const QmError *failure, gpointer data) {
        QmMigration *mg = data;
        JsonObject *ret;
        const char *status;

        if (failure) {
                finish(mg, QM_ERROR_MIGRATE_FAILED, "lost QEMU during the migration: %s", failure->message);
                return;
        }
        ret = qm_json_get_object(json_node_get_object(r->node), "return");
        status = qm_json_get_string(ret, "status", "");
        if (strcmp(status, "completed") == 0) {
                finish(mg, NULL, NULL);
        } else if (strcmp(status, "failed") == 0) {
                finish(mg, QM_ERROR_MIGRATE_FAILED, "migration %s %s failed: %s", mg->incoming ? "from" : "to",
                       mg->uri, qm_json_get_string(ret, "error-desc", "(no reason given)"));
        } else if (strcmp(status, "cancelled") == 0) {
                if (mg->timed_out)
                        finish(mg, QM_ERROR_MIGRATE_TIMEOUT, "migration to %s did not complete in time; cancelled",
                               mg->uri);
                else
                        finish(mg, QM_ERROR_MIGRATE_CANCELLED, "migration to %s was cancelled", mg->uri);
        } else {
                mg->poll_timer = g_timeout_add(MIGRATE_POLL_MS, on_poll, mg);
        }
}

static gboolean on_poll(gpointer data) {
        QmMigration *mg = data;

        mg->poll_timer = 0;
        if (!qmp_client_is_ready(mg->machine->qmp)) {
                finish(mg, QM_ERROR_MIGRATE_FAILED, "lost the QMP connection during the migration");
                return G_SOURCE_REMOVE;
        }
        machine_qmp_call(mg->machine, "query-migrate", NULL, on_status, mg);
        return G_SOURCE_REMOVE;
}

static void on_migrate(const QmpResponse *r, const QmError *failure, gpointer data) {
        QmMigration *mg = data;

        if (failure) {
                finish(mg, QM_ERROR_MIGRATE_FAILED, "%s: %s", mg->incoming ? "migrate-incoming" : "migrate",
                       failure->message);
                return;
        }
        if (r->error) {
                finish(mg, QM_ERROR_MIGRATE_FAILED, "%s", r->error->message);
                return;
        }
        on_poll(mg);
}

static void start_migrate(QmMigration *mg) {
        g_autoptr(JsonBuilder) b = json_builder_new_immutable();
        g_autoptr(JsonNode) args = NULL;

        json_builder_begin_object(b);
        json_builder_set_member_name(b, "uri");
        json_builder_add_string_value(b, mg->uri);
        json_builder_end_object(b);
        args = json_builder_get_root(b);
        machine_qmp_call(mg->machine, mg->incoming ? "migrate-incoming" : "migrate", args, on_migrate, mg);
}

static void on_stopped(const QmpResponse *r, const QmError *failure, gpointer data) {
        QmMigration *mg = data;

        if (failure || r->error) {
                finish(mg, QM_ERROR_MIGRATE_FAILED, "cannot pause the guest before an offline migration");
                return;
        }
        start_migrate(mg);
}

void machine_migrate(Machine *m, QmReply *call, const char *uri, double timeout, gboolean offline,
                     double cancel_after) {
        g_autoptr(QmError) e = machine_monitor_unavailable(m);
        QmMigration *mg;

        if (e) {
                qm_reply_fail(call, e);
                return;
        }
        if (m->migration) {
                qm_reply_failf(call, QM_ERROR_BUSY, "Machine '%s' is migrating already", m->name);
                return;
        }
        mg = g_new0(QmMigration, 1);
        mg->machine = m;
        mg->call = call;
        mg->uri = g_strdup(uri);
        m->migration = mg;
        if (timeout > 0)
                mg->timeout_timer = g_timeout_add((guint)MIN(timeout * 1000.0, (double)G_MAXUINT), on_timeout, mg);
        if (cancel_after >= 0)
                mg->cancel_timer = g_timeout_add((guint)MIN(cancel_after * 1000.0, (double)G_MAXUINT),
                                                 on_cancel_after, mg);
        if (offline)
                machine_qmp_call(m, "stop", NULL, on_stopped, mg);
        else
                start_migrate(mg);
}

void machine_migration_abort(Machine *m, const char *why) {
        if (m->migration)
                finish(m->migration, QM_ERROR_MIGRATE_FAILED, "%s", why);
}

gboolean machine_migration_run(Machine *m, const char *uri, gboolean incoming, double timeout,
                               MachineMigrationDone done, gpointer data, QmError **error) {
        QmMigration *mg;

        if (m->migration) {
                *error = qm_error_new(QM_ERROR_BUSY, "Machine '%s' is migrating already", m->name);
                return FALSE;
        }
        mg = g_new0(QmMigration, 1);
        mg->machine = m;
        mg->uri = g_strdup(uri);
        mg->incoming = incoming;
        mg->done = done;
        mg->done_data = data;
        m->migration = mg;
        if (timeout > 0)
                mg->timeout_timer = g_timeout_add((guint)MIN(timeout * 1000.0, (double)G_MAXUINT), on_timeout, mg);
        start_migrate(mg);
        return TRUE;
}
