/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Migrate (BaseVM migrate()): QMP migrate, then query-migrate until the
 * migration ends, with a timeout and an optional cancel-after, both ended
 * by migrate_cancel. Save and Restore run theirs through the same code
 * (machine_migration_run()), Restore's and PrepareIncoming's as
 * migrate-incoming.
 *
 * A destination (migrate-incoming) may wait for its source for hours: it
 * is not polled. QEMU's MIGRATION events (the `events` capability, on
 * before migrate-incoming) say when it ended; one query-migrate then
 * reads the outcome and its reason. A restarted daemon asks once, for
 * what happened while nobody listened (machine_migration_check()).
 *
 * A Migrate call (a "live" migration, to another QEMU) also: turns on the
 * return-path capability, so a destination that fails at the very end
 * makes the migration fail here rather than lose the guest; sets the
 * caller's bandwidth, downtime limit, auto-converge and postcopy; reports
 * progress; and makes the outcome final before answering. Success: the
 * destination has the guest, QEMU here is ended with quit and the machine
 * becomes `migrated` (Migrate answered at QEMU's exit). Failure: the guest
 * resumes here unless it was paused before the call.
 */
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>

#include "json-util.h"
#include "machine-internal.h"

#define MIGRATE_POLL_MS 50
/* MigrationProgress at most this often (and, while polling, at least once
 * a second: the polls are far more frequent). */
#define PROGRESS_MIN_INTERVAL_US (250 * 1000)
/* After a completed migration QEMU has this long to quit before SIGKILL. */
#define HANDOVER_QUIT_GRACE_MS 10000

struct QmMigration {
        Machine *machine;
        QmReply *call;
        char *uri;
        QmMigrateOptions opts;
        guint timeout_timer;
        guint cancel_timer;
        guint poll_timer;
        guint postcopy_timer;
        guint quit_timer;
        gboolean timed_out;
        gboolean cancel_requested;
        gboolean incoming;         /* migrate-incoming: QEMU is the destination */
        gboolean live;             /* a Migrate call: see the top of this file */
        gboolean was_paused;       /* the guest did not run when Migrate was called */
        gboolean handing_over;     /* completed: waiting for QEMU to quit */
        gboolean query_busy;       /* a query-migrate is in flight (it holds @mg) */
        gboolean query_again;      /* an event came meanwhile: ask again */
        gboolean over;             /* answered; freed when the query in flight returns */
        gint64 last_progress;      /* monotonic µs of the last MigrationProgress */
        QmError *failure;          /* the answer, while the source resumes */
        MachineMigrationDone done; /* instead of answering @call */
        gpointer done_data;
};

static void migration_free(QmMigration *mg) {
        g_clear_handle_id(&mg->timeout_timer, g_source_remove);
        g_clear_handle_id(&mg->cancel_timer, g_source_remove);
        g_clear_handle_id(&mg->poll_timer, g_source_remove);
        g_clear_handle_id(&mg->postcopy_timer, g_source_remove);
        g_clear_handle_id(&mg->quit_timer, g_source_remove);
        qm_reply_drop(mg->call);
        qm_error_free(mg->failure);
        g_free(mg->uri);
        g_free(mg);
}

/* Freed now, or (a query-migrate still holds it: an incoming migration's
 * timeout ends it while one is in flight) when that query returns. */
static void migration_release(QmMigration *mg) {
        if (!mg->query_busy) {
                migration_free(mg);
                return;
        }
        mg->over = TRUE;
        g_clear_handle_id(&mg->timeout_timer, g_source_remove);
        g_clear_handle_id(&mg->cancel_timer, g_source_remove);
        g_clear_handle_id(&mg->poll_timer, g_source_remove);
        g_clear_handle_id(&mg->postcopy_timer, g_source_remove);
        g_clear_handle_id(&mg->quit_timer, g_source_remove);
}

/* Answer the caller and forget the migration (@e NULL: success). */
static void finish_error(QmMigration *mg, const QmError *e) {
        Machine *m = mg->machine;
        MachineMigrationDone done;
        gpointer done_data;

        if (mg->call)
                qm_reply_ok_or_fail(g_steal_pointer(&mg->call), e);
        done = mg->done;
        done_data = mg->done_data;
        if (m->migration == mg)
                m->migration = NULL;
        /* no migration under way now (unless the daemon stops: m->qmp is
         * gone then, and the record keeps it for the next daemon) */
        if (mg->live && !mg->incoming && m->process && m->qmp)
                machine_save_record(m);
        migration_release(mg);
        machine_refresh_run_state(m);
        if (done)
                done(m, e, done_data);
}

static void finish(QmMigration *mg, const char *name, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static void finish(QmMigration *mg, const char *name, const char *fmt, ...) {
        g_autoptr(QmError) e = NULL;

        if (name) {
                va_list ap;
                va_start(ap, fmt);
                e = qm_error_newv(name, fmt, ap);
                va_end(ap);
        }
        finish_error(mg, e);
}

/* ---- a failed live migration: the source runs again ---- */

static void on_resumed(const QmpResponse *r, const QmError *failure, gpointer data) {
        QmMigration *mg = data;
        g_autoptr(QmError) e = g_steal_pointer(&mg->failure);

        if (failure || (r && r->error))
                g_warning("machine %s: cannot resume the guest after the failed migration: %s",
                          mg->machine->name, failure ? failure->message : r->error->message);
        finish_error(mg, e);
}

static void on_status_after_failure(const QmpResponse *r, const QmError *failure, gpointer data) {
        QmMigration *mg = data;
        const char *status = NULL;

        if (!failure && !r->error)
                status = qm_json_get_string(qm_json_get_object(json_node_get_object(r->node), "return"),
                                            "status", "");
        /* QEMU often resumes by itself; a guest paused before Migrate
         * stays paused. */
        if (status && !mg->was_paused &&
            (strcmp(status, "paused") == 0 || strcmp(status, "postmigrate") == 0 ||
             strcmp(status, "finish-migrate") == 0)) {
                machine_qmp_call(mg->machine, "cont", NULL, on_resumed, mg);
                return;
        }
        on_resumed(r, NULL, mg);
}

/* Fail: a live migration's source resumes first, then the answer. */
static void fail(QmMigration *mg, const char *name, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static void fail(QmMigration *mg, const char *name, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        mg->failure = qm_error_newv(name, fmt, ap);
        va_end(ap);
        g_clear_handle_id(&mg->timeout_timer, g_source_remove);
        g_clear_handle_id(&mg->cancel_timer, g_source_remove);
        g_clear_handle_id(&mg->postcopy_timer, g_source_remove);
        if (mg->live && !mg->incoming && qmp_client_is_open(mg->machine->qmp)) {
                machine_qmp_call(mg->machine, "query-status", NULL, on_status_after_failure, mg);
                return;
        }
        on_resumed(NULL, NULL, mg);
}

/* ---- the hand-over after a completed live migration ---- */

static gboolean on_quit_grace_over(gpointer data) {
        QmMigration *mg = data;

        mg->quit_timer = 0;
        g_message("machine %s: QEMU did not quit after the migration; killing it", mg->machine->name);
        machine_kill(mg->machine, SIGKILL);
        return G_SOURCE_REMOVE;
}

/* The destination has the guest: QEMU here must never run it again. The
 * answer waits for QEMU's exit (machine_migration_handed_over()). */
static void hand_over(QmMigration *mg, JsonObject *ret) {
        Machine *m = mg->machine;

        g_message("machine %s: migrated to %s in %" G_GINT64_FORMAT " ms, downtime %" G_GINT64_FORMAT " ms",
                  m->name, mg->uri, qm_json_get_int(ret, "total-time", -1),
                  qm_json_get_int(ret, "downtime", -1));
        mg->handing_over = TRUE;
        g_clear_handle_id(&mg->timeout_timer, g_source_remove);
        g_clear_handle_id(&mg->cancel_timer, g_source_remove);
        g_clear_handle_id(&mg->postcopy_timer, g_source_remove);
        g_free(m->migrated_to);
        m->migrated_to = g_strdup(mg->uri);
        if (!m->quit_issued) {
                if (!machine_qmp_send_quit(m))
                        machine_kill(m, SIGKILL);
                m->quit_issued = TRUE;
        }
        /* the definition says migrated before QEMU is gone */
        machine_save_record(m);
        mg->quit_timer = g_timeout_add(HANDOVER_QUIT_GRACE_MS, on_quit_grace_over, mg);
}

gboolean machine_migration_handing_over(Machine *m) {
        return m->migration && m->migration->handing_over;
}

void machine_migration_handed_over(Machine *m) {
        if (machine_migration_handing_over(m))
                finish(m->migration, NULL, NULL);
}

/* ---- polling ---- */

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

static gboolean on_start_postcopy(gpointer data) {
        QmMigration *mg = data;

        mg->postcopy_timer = 0;
        /* Fails harmlessly when the migration has just completed. */
        if (qmp_client_is_ready(mg->machine->qmp))
                machine_qmp_call(mg->machine, "migrate-start-postcopy", NULL, qmp_reply_ignore, NULL);
        return G_SOURCE_REMOVE;
}

static guint64 non_negative(JsonObject *o, const char *key) {
        gint64 v = qm_json_get_int(o, key, 0);
        return v > 0 ? (guint64)v : 0;
}

/* MigrationProgress from a query-migrate answer, rate-limited unless @last. */
static void report_progress(QmMigration *mg, JsonObject *ret, gboolean last) {
        JsonObject *ram = qm_json_get_object(ret, "ram");
        gint64 now = g_get_monotonic_time();
        Machine *m = mg->machine;

        if (!mg->live || mg->incoming || !ram || !m->notify || !m->notify->migration_progress)
                return;
        if (!last && mg->last_progress && now - mg->last_progress < PROGRESS_MIN_INTERVAL_US)
                return;
        mg->last_progress = now;
        m->notify->migration_progress(m, non_negative(ram, "transferred"),
                                      last ? 0 : non_negative(ram, "remaining"), non_negative(ram, "total"),
                                      non_negative(ret, "expected-downtime"));
}

/* We sent migrate_cancel (cancel-after, or the timeout). QEMU 7.2 may
 * then answer "failed" rather than "cancelled": its migrate_cancel shuts
 * the return path's socket, which the stream goes out on, before it marks
 * the migration cancelling, and a write in between fails first ("Broken
 * pipe"). The outcome is the one asked for. */
static gboolean we_cancelled(const QmMigration *mg) {
        return !mg->incoming && (mg->cancel_requested || mg->timed_out);
}

static void fail_cancelled(QmMigration *mg) {
        if (mg->timed_out)
                fail(mg, QM_ERROR_MIGRATE_TIMEOUT, "migration to %s did not complete in time; cancelled", mg->uri);
        else
                fail(mg, QM_ERROR_MIGRATE_CANCELLED, "migration to %s was cancelled", mg->uri);
}

static gboolean on_poll(gpointer data);
static void query(QmMigration *mg);

/* Not over yet: a source is polled; a destination waits for the next
 * MIGRATION event, unless one came while this query was in flight. */
static void wait_more(QmMigration *mg) {
        if (!mg->incoming) {
                mg->poll_timer = g_timeout_add(MIGRATE_POLL_MS, on_poll, mg);
                return;
        }
        if (mg->query_again) {
                mg->query_again = FALSE;
                query(mg);
        }
}

static void on_status(const QmpResponse *r, const QmError *failure, gpointer data) {
        QmMigration *mg = data;
        JsonObject *ret;
        const char *status;

        mg->query_busy = FALSE;
        if (mg->over) {
                migration_free(mg);
                return;
        }
        if (failure) {
                finish(mg, QM_ERROR_MIGRATE_FAILED, "lost QEMU during the migration: %s", failure->message);
                return;
        }
        ret = qm_json_get_object(json_node_get_object(r->node), "return");
        status = qm_json_get_string(ret, "status", "");
        if (strcmp(status, "completed") == 0) {
                report_progress(mg, ret, TRUE);
                if (mg->live && !mg->incoming)
                        hand_over(mg, ret);
                else
                        finish(mg, NULL, NULL);
        } else if (strcmp(status, "cancelled") == 0 || (strcmp(status, "failed") == 0 && we_cancelled(mg))) {
                fail_cancelled(mg);
        } else if (strcmp(status, "failed") == 0) {
                /* Through the return path QEMU 7.2 passes on that the
                 * destination failed, not why: that is in its log. */
                fail(mg, QM_ERROR_MIGRATE_FAILED, "migration %s %s failed: %s", mg->incoming ? "from" : "to",
                     mg->uri,
                     qm_json_get_string(ret, "error-desc",
                                        mg->live ? "the destination could not load the guest's state "
                                                   "(QEMU gave no reason here; the destination's QEMU log "
                                                   "says why: often a device or memory size it lacks)"
                                                 : "(no reason given)"));
        } else {
                report_progress(mg, ret, FALSE);
                wait_more(mg);
        }
}

/* One query-migrate at a time: it holds @mg until its answer. */
static void query(QmMigration *mg) {
        if (mg->query_busy) {
                mg->query_again = TRUE;
                return;
        }
        if (!qmp_client_is_open(mg->machine->qmp)) {
                finish(mg, QM_ERROR_MIGRATE_FAILED, "lost the QMP connection during the migration");
                return;
        }
        mg->query_busy = TRUE;
        machine_qmp_call(mg->machine, "query-migrate", NULL, on_status, mg);
}

static gboolean on_poll(gpointer data) {
        QmMigration *mg = data;

        mg->poll_timer = 0;
        query(mg);
        return G_SOURCE_REMOVE;
}

static guint timeout_ms(double seconds) {
        return (guint)MIN(seconds * 1000.0, (double)G_MAXUINT);
}

static void on_migrate(const QmpResponse *r, const QmError *failure, gpointer data) {
        QmMigration *mg = data;

        if (failure) {
                finish(mg, QM_ERROR_MIGRATE_FAILED, "%s: %s", mg->incoming ? "migrate-incoming" : "migrate",
                       failure->message);
                return;
        }
        if (r->error) {
                fail(mg, QM_ERROR_MIGRATE_FAILED, "%s", r->error->message);
                return;
        }
        if (mg->opts.postcopy)
                mg->postcopy_timer = g_timeout_add(timeout_ms(mg->opts.postcopy_after), on_start_postcopy, mg);
        if (mg->live)
                machine_save_record(mg->machine); /* a restarted daemon goes on watching */
        if (!mg->incoming)
                on_poll(mg); /* a destination hears of its progress by events */
}

static void start_migrate(QmMigration *mg) {
        g_autoptr(JsonNode) args = qm_json_new_object_string("uri", mg->uri);

        machine_qmp_call(mg->machine, mg->incoming ? "migrate-incoming" : "migrate", args, on_migrate, mg);
}

/* ---- a live migration's preparation: status, capabilities, parameters ---- */

static void on_stopped(const QmpResponse *r, const QmError *failure, gpointer data) {
        QmMigration *mg = data;

        if (failure || r->error) {
                finish(mg, QM_ERROR_MIGRATE_FAILED, "cannot pause the guest before an offline migration");
                return;
        }
        start_migrate(mg);
}

static void go(QmMigration *mg) {
        if (mg->opts.offline && !mg->was_paused)
                machine_qmp_call(mg->machine, "stop", NULL, on_stopped, mg);
        else
                start_migrate(mg);
}

/* An answer to a preparation step: FALSE (after answering) if it failed. */
static gboolean step_ok(QmMigration *mg, const QmpResponse *r, const QmError *failure, const char *what) {
        if (failure || r->error) {
                finish(mg, QM_ERROR_MIGRATE_FAILED, "%s: %s", what,
                       failure ? failure->message : r->error->message);
                return FALSE;
        }
        return TRUE;
}

static void on_parameters_set(const QmpResponse *r, const QmError *failure, gpointer data) {
        if (step_ok(data, r, failure, "migrate-set-parameters"))
                go(data);
}

static void on_capabilities_set(const QmpResponse *r, const QmError *failure, gpointer data) {
        QmMigration *mg = data;
        g_autoptr(JsonBuilder) b = NULL;
        g_autoptr(JsonNode) args = NULL;

        if (!step_ok(mg, r, failure, "migrate-set-capabilities"))
                return;
        if (!mg->opts.bandwidth_set && !mg->opts.downtime_limit_set) {
                go(mg);
                return;
        }
        b = json_builder_new_immutable();
        json_builder_begin_object(b);
        if (mg->opts.bandwidth_set) {
                json_builder_set_member_name(b, "max-bandwidth");
                json_builder_add_int_value(b, (gint64)mg->opts.bandwidth);
        }
        if (mg->opts.downtime_limit_set) {
                json_builder_set_member_name(b, "downtime-limit");
                json_builder_add_int_value(b, (gint64)mg->opts.downtime_limit);
        }
        json_builder_end_object(b);
        args = json_builder_get_root(b);
        machine_qmp_call(mg->machine, "migrate-set-parameters", args, on_parameters_set, mg);
}

typedef struct {
        const char *name;
        gboolean on;
} MigrationCapability;

static void send_capabilities(QmMigration *mg, const MigrationCapability *caps, gsize n, QmpReplyFunc done) {
        g_autoptr(JsonBuilder) b = json_builder_new_immutable();
        g_autoptr(JsonNode) args = NULL;

        json_builder_begin_object(b);
        json_builder_set_member_name(b, "capabilities");
        json_builder_begin_array(b);
        for (gsize i = 0; i < n; i++) {
                json_builder_begin_object(b);
                json_builder_set_member_name(b, "capability");
                json_builder_add_string_value(b, caps[i].name);
                json_builder_set_member_name(b, "state");
                json_builder_add_boolean_value(b, caps[i].on);
                json_builder_end_object(b);
        }
        json_builder_end_array(b);
        json_builder_end_object(b);
        args = json_builder_get_root(b);
        machine_qmp_call(mg->machine, "migrate-set-capabilities", args, done, mg);
}

/* The capabilities of this migration, each set on or off (an earlier
 * migration's choice does not linger). */
static void set_capabilities(QmMigration *mg) {
        const MigrationCapability caps[] = {
                { "return-path", TRUE },
                { "auto-converge", mg->opts.auto_converge },
                { "postcopy-ram", mg->opts.postcopy },
        };

        send_capabilities(mg, caps, G_N_ELEMENTS(caps), on_capabilities_set);
}

static void on_events_capability(const QmpResponse *r, const QmError *failure, gpointer data) {
        if (step_ok(data, r, failure, "migrate-set-capabilities"))
                start_migrate(data);
}

/* A destination's outcome comes as MIGRATION events (see the top). */
static void set_events_capability(QmMigration *mg) {
        static const MigrationCapability caps[] = { { "events", TRUE } };

        send_capabilities(mg, caps, G_N_ELEMENTS(caps), on_events_capability);
}

static void on_status_before(const QmpResponse *r, const QmError *failure, gpointer data) {
        QmMigration *mg = data;
        const char *status;

        if (!step_ok(mg, r, failure, "query-status"))
                return;
        status = qm_json_get_string(qm_json_get_object(json_node_get_object(r->node), "return"), "status", "");
        mg->was_paused = strcmp(status, "running") != 0;
        set_capabilities(mg);
}

static QmMigration *migration_new(Machine *m, const char *uri, double timeout) {
        QmMigration *mg = g_new0(QmMigration, 1);

        mg->machine = m;
        mg->uri = g_strdup(uri);
        m->migration = mg;
        if (timeout > 0)
                mg->timeout_timer = g_timeout_add(timeout_ms(timeout), on_timeout, mg);
        return mg;
}

void machine_migrate(Machine *m, QmReply *call, const char *uri, const QmMigrateOptions *options) {
        g_autoptr(QmError) e = machine_monitor_unavailable(m);
        QmMigration *mg;

        if (e) {
                qm_reply_fail(call, e);
                return;
        }
        if (m->migration || m->save) {
                qm_reply_failf(call, QM_ERROR_BUSY, "Machine '%s' is migrating already", m->name);
                return;
        }
        mg = migration_new(m, uri, options->timeout);
        mg->call = call;
        mg->opts = *options;
        mg->live = TRUE;
        if (options->cancel_after >= 0)
                mg->cancel_timer = g_timeout_add(timeout_ms(options->cancel_after), on_cancel_after, mg);
        machine_qmp_call(m, "query-status", NULL, on_status_before, mg);
}

void machine_migration_fill_record(Machine *m, QmRunRecord *r) {
        QmMigration *mg = m->migration;

        if (!mg || !mg->live || mg->incoming || mg->handing_over)
                return;
        r->migrating_to = mg->uri;
        r->migrating_was_paused = mg->was_paused;
}

/* QEMU goes on migrating without us: its outcome still decides (the
 * source quits and is migrated, or resumes). Nobody waits for an answer. */
void machine_migration_reattach(Machine *m, const QmRunRecord *r) {
        QmMigration *mg;

        if (m->migration || !m->config->qmp)
                return;
        g_message("machine %s: its migration to %s from before the restart goes on", m->name, r->migrating_to);
        mg = migration_new(m, r->migrating_to, 0);
        mg->live = TRUE;
        mg->was_paused = r->migrating_was_paused;
        mg->poll_timer = g_timeout_add(MIGRATE_POLL_MS, on_poll, mg);
}

void machine_migration_abort(Machine *m, const char *why) {
        if (m->migration)
                finish(m->migration, QM_ERROR_MIGRATE_FAILED, "%s", why);
}

gboolean machine_migration_run(Machine *m, const char *uri, gboolean incoming, double timeout,
                               MachineMigrationDone done, gpointer data, QmError **error) {
        QmMigration *mg;

        if (!machine_migration_watch(m, uri, incoming, timeout, done, data, error))
                return FALSE;
        mg = m->migration;
        g_clear_handle_id(&mg->poll_timer, g_source_remove);
        if (incoming)
                set_events_capability(mg);
        else
                start_migrate(mg);
        return TRUE;
}

gboolean machine_migration_watch(Machine *m, const char *uri, gboolean incoming, double timeout,
                                 MachineMigrationDone done, gpointer data, QmError **error) {
        QmMigration *mg;

        if (m->migration) {
                *error = qm_error_new(QM_ERROR_BUSY, "Machine '%s' is migrating already", m->name);
                return FALSE;
        }
        mg = migration_new(m, uri, timeout);
        mg->incoming = incoming;
        mg->done = done;
        mg->done_data = data;
        if (!incoming)
                mg->poll_timer = g_timeout_add(MIGRATE_POLL_MS, on_poll, mg);
        return TRUE;
}

void machine_migration_check(Machine *m) {
        if (m->migration)
                query(m->migration);
}

/* QEMU's MIGRATION event: a destination's outcome is read once it ended
 * (the event has no reason for a failure; query-migrate may). */
void machine_migration_event(Machine *m, const char *status) {
        QmMigration *mg = m->migration;

        if (!mg || !mg->incoming)
                return;
        if (strcmp(status, "completed") == 0 || strcmp(status, "failed") == 0 ||
            strcmp(status, "cancelled") == 0)
                query(mg);
}
