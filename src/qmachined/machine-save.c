/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Save and Restore (BaseVM save_to_file, libvirt virDomainSave/Restore):
 * the guest's state migrated into, and back from, an fd the caller opened.
 * The daemon never opens a path for them. Disks are the caller's business.
 *
 * Save: stop, lift the bandwidth limit, getfd, migrate "fd:qm-save",
 * then quit: the machine ends stopped. A Save that fails puts the limit
 * back and resumes a guest that ran before.
 *
 * Restore: a launch (the held call is the launch's) with -incoming defer
 * and -S appended; once the QMP handshake is done, getfd, migrate-incoming
 * "fd:qm-restore", wait for completed, cont unless paused, and only then
 * does the launch complete (State starting until then). A load that fails
 * ends QEMU: State failed, MigrateFailed with QEMU's output.
 *
 * Both are in the runtime record. A daemon that stops or crashes during a
 * Save leaves its caller with an error: its successor ends the save
 * (migrate_cancel) and the guest goes on as before. During a Restore, the
 * successor watches the load to its end and the guest runs (paused if
 * asked); a load that fails, or never began, ends QEMU: State failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "json-util.h"
#include "machine-internal.h"

#define SAVE_FDNAME "qm-save"
#define RESTORE_FDNAME "qm-restore"
/* A local file should not be throttled (QEMU's default is 128 MiB/s);
 * libvirt does the same for virDomainSave. */
#define SAVE_MAX_BANDWIDTH (G_GINT64_CONSTANT(1) << 40)
/* QEMU 7.2 exits by itself when a load fails, after printing why: that
 * long it may take before we end it. */
#define RESTORE_EXIT_GRACE_MS 3000
#define RESTORE_OUTPUT_TAIL (16 * 1024)

struct QmSave {
        Machine *machine;
        QmReply *call;
        int fd;
        double timeout;
        gboolean was_running;
        gboolean bandwidth_known;
        gint64 bandwidth; /* max-bandwidth before the Save */
};

struct QmRestore {
        int fd;
        gboolean paused;
        double timeout;
        gboolean loading;  /* the handshake is done; the state is loading */
        gboolean detached; /* the daemon stops: the load goes on for its successor */
        QmError *error;    /* why the load failed (the first reason) */
        guint grace_timer; /* ends a QEMU that does not exit by itself */
};

/* QMP getfd with @fd (taken over, closed in every case). */
static void send_fd(Machine *m, const char *fdname, int fd, QmpReplyFunc func, gpointer data) {
        g_autoptr(JsonNode) args = qm_json_new_object_string("fdname", fdname);

        qmp_client_call(
                m->qmp, "getfd",
                &(QmpCallOptions){
                        .arguments_node = args, .timeout = m->config->qmp_timeout, .with_fd = TRUE, .fd = fd },
                func, data);
}

/* @r's failure as text, or NULL when it succeeded. */
static char *qmp_failure(const QmpResponse *r, const QmError *failure) {
        if (failure)
                return g_strdup(failure->message);
        if (r->error)
                return g_strdup(r->error->message);
        return NULL;
}

static int dup_fd(int fd, QmError **error) {
        int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);

        if (copy < 0)
                *error = qm_error_new(qm_error_name_for_errno(errno), "cannot keep the fd: %s",
                                      g_strerror(errno));
        return copy;
}

/* ---- Save ---- */

static void save_free(QmSave *s) {
        Machine *m = s->machine;

        if (m->save == s)
                m->save = NULL;
        if (s->fd >= 0)
                close(s->fd);
        qm_reply_drop(s->call);
        g_free(s);
        /* the record no longer names the Save (unless the daemon stops:
         * then the Save is its successor's) */
        if (m->process && qmp_client_is_open(m->qmp))
                machine_save_record(m);
}

/* Put back what the Save changed: bandwidth, a running guest. */
static void save_undo(QmSave *s) {
        Machine *m = s->machine;

        if (qmp_client_is_open(m->qmp)) {
                if (s->bandwidth_known) {
                        g_autofree char *json = g_strdup_printf("{\"max-bandwidth\": %" G_GINT64_FORMAT "}",
                                                                s->bandwidth);
                        g_autoptr(JsonNode) args = json_from_string(json, NULL);
                        machine_qmp_call(m, "migrate-set-parameters", args, qmp_reply_ignore, NULL);
                }
                if (s->was_running)
                        machine_qmp_call(m, "cont", NULL, qmp_reply_ignore, NULL);
        }
}

/* Undo, answer with the error, forget the Save. */
static void save_fail(QmSave *s, const char *name, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static void save_fail(QmSave *s, const char *name, const char *fmt, ...) {
        Machine *m = s->machine;
        g_autofree char *text = NULL;
        va_list ap;

        va_start(ap, fmt);
        text = g_strdup_vprintf(fmt, ap);
        va_end(ap);
        save_undo(s);
        qm_reply_failf(g_steal_pointer(&s->call), name, "Save of '%s' failed: %s", m->name, text);
        save_free(s);
}

static void on_saved(Machine *m, const QmError *error, gpointer data) {
        QmSave *s = data;
        QmReply *call;

        if (error) {
                save_fail(s, error->name, "%s", error->message);
                return;
        }
        /* The state is in the fd: QEMU quits, the machine ends stopped,
         * and the caller is answered then (or with AbnormalShutdown). */
        call = g_steal_pointer(&s->call);
        save_free(s);
        machine_shutdown(m, call, FALSE, 0);
}

static void on_save_fd_sent(const QmpResponse *r, const QmError *failure, gpointer data) {
        QmSave *s = data;
        g_autofree char *why = qmp_failure(r, failure);
        g_autoptr(QmError) e = NULL;

        if (why) {
                save_fail(s, QM_ERROR_MIGRATE_FAILED, "getfd: %s", why);
                return;
        }
        if (!machine_migration_run(s->machine, "fd:" SAVE_FDNAME, FALSE, s->timeout, on_saved, s, &e))
                save_fail(s, e->name, "%s", e->message);
}

static void on_bandwidth_set(const QmpResponse *r, const QmError *failure, gpointer data) {
        QmSave *s = data;
        g_autofree char *why = qmp_failure(r, failure);

        if (why) {
                save_fail(s, QM_ERROR_MIGRATE_FAILED, "migrate-set-parameters: %s", why);
                return;
        }
        send_fd(s->machine, SAVE_FDNAME, s->fd, on_save_fd_sent, s);
        s->fd = -1;
}

static void on_parameters(const QmpResponse *r, const QmError *failure, gpointer data) {
        QmSave *s = data;
        g_autofree char *why = qmp_failure(r, failure);
        g_autofree char *json = NULL;
        g_autoptr(JsonNode) args = NULL;
        JsonObject *ret;

        if (why) {
                save_fail(s, QM_ERROR_MIGRATE_FAILED, "query-migrate-parameters: %s", why);
                return;
        }
        ret = qm_json_get_object(json_node_get_object(r->node), "return");
        if (ret && json_object_has_member(ret, "max-bandwidth")) {
                s->bandwidth = qm_json_get_int(ret, "max-bandwidth", 0);
                s->bandwidth_known = TRUE;
        }
        json = g_strdup_printf("{\"max-bandwidth\": %" G_GINT64_FORMAT "}", SAVE_MAX_BANDWIDTH);
        args = json_from_string(json, NULL);
        machine_qmp_call(s->machine, "migrate-set-parameters", args, on_bandwidth_set, s);
}

static void on_save_stopped(const QmpResponse *r, const QmError *failure, gpointer data) {
        QmSave *s = data;
        g_autofree char *why = qmp_failure(r, failure);

        if (why) {
                s->was_running = FALSE; /* it did not stop */
                save_fail(s, QM_ERROR_MIGRATE_FAILED, "cannot pause the guest: %s", why);
                return;
        }
        machine_qmp_call(s->machine, "query-migrate-parameters", NULL, on_parameters, s);
}

void machine_save(Machine *m, QmReply *call, int fd, double timeout) {
        g_autoptr(QmError) e = machine_monitor_unavailable(m);
        QmSave *s;

        if (!e && m->state != QM_STATE_RUNNING)
                e = qm_error_new(QM_ERROR_NOT_RUNNING, "Machine '%s' is %s", m->name,
                                 qm_state_to_string(m->state));
        if (!e && (m->migration || m->save))
                e = qm_error_new(QM_ERROR_BUSY, "Machine '%s' is migrating or saving already", m->name);
        if (e) {
                qm_reply_fail(call, e);
                return;
        }
        fd = dup_fd(fd, &e);
        if (fd < 0) {
                qm_reply_fail(call, e);
                return;
        }
        s = g_new0(QmSave, 1);
        s->machine = m;
        s->call = call;
        s->fd = fd;
        s->timeout = timeout;
        s->was_running = g_strcmp0(m->run_state, "running") == 0;
        m->save = s;
        machine_save_record(m); /* a daemon that dies now leaves the Save to its successor */
        machine_qmp_call(m, "stop", NULL, on_save_stopped, s);
}

/* ---- a Save or Restore that a restarted daemon finds ---- */

void machine_save_fill_record(Machine *m, QmRunRecord *r) {
        if (m->save) {
                r->saving = TRUE;
                r->saving_was_running = m->save->was_running;
                r->saving_bandwidth = m->save->bandwidth_known ? m->save->bandwidth : -1;
        }
        if (m->restore) {
                r->restoring = TRUE;
                r->restoring_paused = m->restore->paused;
        }
}

static void on_left_save_ended(Machine *m, const QmError *error, gpointer data) {
        QmSave *s = data;

        g_message("machine %s: the Save from before the restart ended%s; the guest goes on as before",
                  m->name, error ? " (cancelled)" : "");
        save_undo(s);
        save_free(s);
}

/* A migration that has not ended: status "setup", "active", "cancelling",
 * "device", "pre-switchover", ... ("" or "none": there is none). */
static gboolean migration_under_way(const char *status) {
        const char *const over[] = { "", "none", "completed", "failed", "cancelled" };

        for (guint i = 0; i < G_N_ELEMENTS(over); i++)
                if (strcmp(status, over[i]) == 0)
                        return FALSE;
        return TRUE;
}

/* A status query's "status" ("" when it failed or has none). */
static const char *status_of(const QmpResponse *r, const QmError *failure) {
        if (failure || r->error)
                return "";
        return qm_json_get_string(qm_json_get_object(json_node_get_object(r->node), "return"), "status", "");
}

static void on_left_save_status(const QmpResponse *r, const QmError *failure, gpointer data) {
        QmSave *s = data;
        g_autoptr(QmError) e = NULL;

        if (!migration_under_way(status_of(r, failure))) {
                on_left_save_ended(s->machine, NULL, s);
                return;
        }
        /* Nobody waits for the state: the save ends now. */
        machine_qmp_call(s->machine, "migrate_cancel", NULL, qmp_reply_ignore, NULL);
        if (!machine_migration_watch(s->machine, "fd:" SAVE_FDNAME, FALSE, 0, on_left_save_ended, s, &e))
                on_left_save_ended(s->machine, e, s);
}

void machine_save_reattach(Machine *m, const QmRunRecord *r) {
        QmSave *s;

        if (m->save || !qmp_client_is_open(m->qmp))
                return;
        g_message("machine %s: a Save was under way before the restart; ending it", m->name);
        s = g_new0(QmSave, 1);
        s->machine = m;
        s->fd = -1;
        s->was_running = r->saving_was_running;
        s->bandwidth_known = r->saving_bandwidth >= 0;
        s->bandwidth = r->saving_bandwidth;
        m->save = s;
        machine_qmp_call(m, "query-migrate", NULL, on_left_save_status, s);
}

/* ---- Restore ---- */

void machine_restore_free(Machine *m) {
        QmRestore *r = g_steal_pointer(&m->restore);

        if (!r)
                return;
        g_clear_handle_id(&r->grace_timer, g_source_remove);
        if (r->fd >= 0)
                close(r->fd);
        qm_error_free(r->error);
        g_free(r);
}

void machine_restore(Machine *m, QmReply *call, int fd, gboolean paused, double timeout) {
        g_autoptr(QmError) e = machine_migrated_error(m);
        QmRestore *r;

        if (e) {
                qm_reply_fail(call, e);
                return;
        }
        if (machine_is_active(m)) {
                qm_reply_failf(call, QM_ERROR_ALREADY_RUNNING, "Machine '%s' is already %s", m->name,
                               qm_state_to_string(m->state));
                return;
        }
        if (!m->config->qmp) {
                qm_reply_failf(call, QM_ERROR_NO_MONITOR,
                               "Machine '%s' was created without a QMP monitor: it cannot load a state",
                               m->name);
                return;
        }
        fd = dup_fd(fd, &e);
        if (fd < 0) {
                qm_reply_fail(call, e);
                return;
        }
        r = g_new0(QmRestore, 1);
        r->fd = fd;
        r->paused = paused;
        r->timeout = timeout;
        m->restore = r;
        machine_launch(m, call);
        if (!m->launch_call)
                machine_restore_free(m); /* answered already: it did not start */
}

void machine_restore_extend_argv(Machine *m) {
        static const char *const extra[] = { "-incoming", "defer", "-S" };
        guint n;

        if (!m->restore && !m->incoming)
                return;
        /* The last -incoming wins over the config's own; -S keeps the
         * guest paused after the load until we say. */
        n = g_strv_length(m->command_line);
        m->command_line = g_renew(char *, m->command_line, n + G_N_ELEMENTS(extra) + 1);
        for (guint i = 0; i < G_N_ELEMENTS(extra); i++)
                m->command_line[n + i] = g_strdup(extra[i]);
        m->command_line[n + G_N_ELEMENTS(extra)] = NULL;
}

static gboolean on_grace_over(gpointer data) {
        Machine *m = data;

        m->restore->grace_timer = 0;
        if (m->process)
                machine_kill(m, SIGKILL);
        return G_SOURCE_REMOVE;
}

/*
 * The load failed: remember why and end QEMU (after a grace period in
 * which a QEMU that reported the failure exits by itself, its reason in
 * its output). The exit answers the call (machine_restore_reply_failed).
 */
static void restore_fail(Machine *m, const char *name, const char *why, gboolean grace) {
        QmRestore *r = m->restore;

        if (r->detached)
                return; /* the daemon stops, not the load */

        if (!r->error)
                r->error = qm_error_new(name, "%s", why);
        if (!m->process || m->killed_by_us || r->grace_timer)
                return;
        if (grace)
                r->grace_timer = g_timeout_add(RESTORE_EXIT_GRACE_MS, on_grace_over, m);
        else
                machine_kill(m, SIGKILL);
}

static void on_restored_status(const QmpResponse *resp, const QmError *failure, gpointer data) {
        Machine *m = data;
        g_autofree char *why = qmp_failure(resp, failure);
        JsonObject *ret;

        if (!m->restore)
                return;
        if (why) {
                restore_fail(m, QM_ERROR_MIGRATE_FAILED, why, FALSE);
                return;
        }
        ret = qm_json_get_object(json_node_get_object(resp->node), "return");
        g_free(m->run_state);
        m->run_state = g_strdup(qm_json_get_string(ret, "status", ""));
        machine_restore_free(m);
        if (m->launch_call) {
                machine_launch_done(m);
                return;
        }
        /* a Restore from before a daemon restart: nobody waits */
        g_message("machine %s: the Restore from before the restart completed", m->name);
        machine_set_state(m, QM_STATE_RUNNING);
        machine_save_record(m);
}

static void on_resumed(const QmpResponse *resp, const QmError *failure, gpointer data) {
        Machine *m = data;
        g_autofree char *why = qmp_failure(resp, failure);

        if (!m->restore)
                return;
        if (why) {
                restore_fail(m, QM_ERROR_MIGRATE_FAILED, why, FALSE);
                return;
        }
        machine_qmp_call(m, "query-status", NULL, on_restored_status, m);
}

static void on_loaded(Machine *m, const QmError *error, gpointer data) {
        if (!m->restore)
                return;
        if (error && (!m->process || !qmp_client_is_open(m->qmp))) {
                /* QEMU 7.2 exits when a load fails: its output says why */
                restore_fail(m, QM_ERROR_MIGRATE_FAILED, "QEMU ended while loading the state", FALSE);
                return;
        }
        if (error) {
                restore_fail(m, error->name, error->message, TRUE);
                return;
        }
        if (!qmp_client_is_open(m->qmp)) {
                restore_fail(m, QM_ERROR_MIGRATE_FAILED, "lost the QMP connection after the load", FALSE);
                return;
        }
        machine_qmp_call(m, m->restore->paused ? "query-status" : "cont", NULL,
                         m->restore->paused ? on_restored_status : on_resumed, m);
}

static void on_restore_fd_sent(const QmpResponse *resp, const QmError *failure, gpointer data) {
        Machine *m = data;
        g_autofree char *why = qmp_failure(resp, failure);
        g_autoptr(QmError) e = NULL;

        if (!m->restore)
                return;
        if (why) {
                restore_fail(m, QM_ERROR_MIGRATE_FAILED, why, FALSE);
                return;
        }
        if (!machine_migration_run(m, "fd:" RESTORE_FDNAME, TRUE, m->restore->timeout, on_loaded, NULL, &e))
                restore_fail(m, e->name, e->message, FALSE);
}

gboolean machine_restore_take_over(Machine *m) {
        QmRestore *r = m->restore;
        char *props[] = { "RunState", NULL };

        if (!r || r->loading)
                return FALSE;
        /* The handshake is done; the load has its own timeout. */
        machine_stop_launch_timers(m);
        r->loading = TRUE;
        machine_notify_changed(m, props); /* inmigrate */
        send_fd(m, RESTORE_FDNAME, r->fd, on_restore_fd_sent, m);
        r->fd = -1;
        return TRUE;
}

gboolean machine_restore_reply_failed(Machine *m) {
        QmRestore *r = m->restore;
        g_autofree char *output = NULL;

        if (!r)
                return FALSE;
        if (!r->loading) {
                machine_restore_free(m); /* QEMU did not start: LaunchFailed */
                return FALSE;
        }
        output = machine_read_log_tail(m, RESTORE_OUTPUT_TAIL);
        qm_reply_failf(g_steal_pointer(&m->launch_call), r->error ? r->error->name : QM_ERROR_MIGRATE_FAILED,
                       "Restore of '%s' failed: %s\nExit code: %d\nOutput: %s", m->name,
                       r->error ? r->error->message
                                : (m->launch_error ? m->launch_error : "QEMU exited while loading the state"),
                       m->exit_code, output);
        machine_restore_free(m);
        return TRUE;
}

void machine_restore_detach(Machine *m) {
        if (m->restore)
                m->restore->detached = TRUE;
}

static void on_left_restore_status(const QmpResponse *resp, const QmError *failure, gpointer data) {
        Machine *m = data;
        const char *status = status_of(resp, failure);
        g_autoptr(QmError) e = NULL;

        if (!m->restore)
                return;
        /* none: the fd went with the old daemon before the load began */
        if (!migration_under_way(status) && strcmp(status, "completed") != 0) {
                restore_fail(m, QM_ERROR_MIGRATE_FAILED,
                             "the load had not begun or had failed when the daemon restarted", FALSE);
                return;
        }
        if (!machine_migration_watch(m, "fd:" RESTORE_FDNAME, TRUE, 0, on_loaded, NULL, &e)) {
                restore_fail(m, e->name, e->message, FALSE);
                return;
        }
        machine_migration_check(m); /* it may have ended while no daemon listened */
}

void machine_restore_reattach(Machine *m, const QmRunRecord *r) {
        QmRestore *rs;
        char *props[] = { "RunState", NULL };

        g_message("machine %s: a Restore was under way before the restart; watching its load", m->name);
        rs = g_new0(QmRestore, 1);
        rs->fd = -1;
        rs->paused = r->restoring_paused;
        rs->loading = TRUE;
        m->restore = rs;
        machine_set_state(m, QM_STATE_STARTING);
        g_free(m->run_state);
        m->run_state = g_strdup("inmigrate");
        machine_notify_changed(m, props);
        machine_save_record(m);
        if (!qmp_client_is_open(m->qmp)) {
                restore_fail(m, QM_ERROR_MIGRATE_FAILED, "no QMP connection after the restart", FALSE);
                return;
        }
        machine_qmp_call(m, "query-migrate", NULL, on_left_restore_status, m);
}
