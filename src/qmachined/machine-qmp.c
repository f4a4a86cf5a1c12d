/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A machine's monitor: the launch handshake, QMP passthrough for clients,
 * numbered events with their signals, RunState, and WaitEvent callers.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>

#include "json-util.h"
#include "keys.h"
#include "machine-internal.h"
#include "unix-socket.h"

typedef struct {
        Machine *machine;
        QmReply *call;
        QmpReplyKind kind;
} QmpCall;

/* TRUE if RunState changed; the caller announces it. */
static gboolean update_run_state(Machine *m, const char *rs) {
        if (g_strcmp0(m->run_state, rs) == 0)
                return FALSE;
        g_free(m->run_state);
        m->run_state = g_strdup(rs);
        return TRUE;
}

static void set_run_state(Machine *m, const char *rs) {
        char *props[] = { "RunState", NULL };

        if (update_run_state(m, rs))
                machine_notify_changed(m, props);
}

/* query-status's "status", or NULL. */
static const char *status_of(const QmpResponse *r) {
        JsonObject *ret = r->node ? qm_json_get_object(json_node_get_object(r->node), "return") : NULL;
        return qm_json_get_string(ret, "status", NULL);
}

void machine_qmp_call(Machine *m, const char *command, JsonNode *arguments, QmpReplyFunc func, gpointer data) {
        QmpCallOptions o = { .arguments_node = arguments, .timeout = m->config->qmp_timeout };

        qmp_client_call(m->qmp, command, &o, func, data);
}

static void on_run_state(const QmpResponse *r, const QmError *failure, gpointer data) {
        Machine *m = data;
        const char *status;

        m->runstate_query_busy = FALSE;
        if (failure)
                return;
        status = status_of(r);
        if (status && m->state != QM_STATE_STARTING)
                set_run_state(m, status);
        if (m->runstate_query_again) {
                m->runstate_query_again = FALSE;
                machine_refresh_run_state(m);
        }
}

/* Ask QEMU for the exact run state; at most one query in flight. */
void machine_refresh_run_state(Machine *m) {
        if (!qmp_client_is_ready(m->qmp))
                return;
        if (m->runstate_query_busy) {
                m->runstate_query_again = TRUE;
                return;
        }
        m->runstate_query_busy = TRUE;
        machine_qmp_call(m, "query-status", NULL, on_run_state, m);
}

/* RunState follows events at once; STOP and RESET have many meanings, so
 * they are also confirmed with query-status. TRUE if RunState changed. */
static gboolean track_run_state(Machine *m, const QmEvent *e) {
        if (strcmp(e->name, "RESUME") == 0 || strcmp(e->name, "WAKEUP") == 0)
                return update_run_state(m, "running");
        if (strcmp(e->name, "STOP") == 0) {
                machine_refresh_run_state(m);
                return update_run_state(m, "paused");
        }
        if (strcmp(e->name, "SHUTDOWN") == 0) {
                /* Only a guest power-off is a clean exit nobody asked us
                 * for; not a host-side one (SIGTERM from outside), nor a
                 * guest reset or panic that ends QEMU under -no-reboot. */
                JsonObject *data = qm_json_get_object(json_node_get_object(e->node), "data");
                JsonNode *guest = data ? json_object_get_member(data, "guest") : NULL;
                const char *reason = qm_json_get_string(data, "reason", "guest-shutdown");
                if (guest && json_node_get_value_type(guest) == G_TYPE_BOOLEAN && json_node_get_boolean(guest) &&
                    strcmp(reason, "guest-shutdown") == 0)
                        m->guest_shutdown = TRUE;
                return update_run_state(m, "shutdown");
        }
        if (strcmp(e->name, "SUSPEND") == 0)
                return update_run_state(m, "suspended");
        if (strcmp(e->name, "GUEST_PANICKED") == 0)
                return update_run_state(m, "guest-panicked");
        if (strcmp(e->name, "RESET") == 0 || strcmp(e->name, "MIGRATION") == 0)
                machine_refresh_run_state(m);
        return FALSE;
}

/* EventSequence changes with every event: announced once per burst,
 * from an idle callback, rather than one signal per event. */
static gboolean on_announce_sequence(gpointer data) {
        Machine *m = data;
        char *props[] = { "EventSequence", NULL };

        m->announce_seq_id = 0;
        machine_notify_changed(m, props);
        return G_SOURCE_REMOVE;
}

/* A machine defined with incoming waits for a migration at this launch
 * only: once it completed or failed, the key is dropped. */
static void on_migration_event(Machine *m, const QmEvent *e) {
        JsonObject *data = qm_json_get_object(json_node_get_object(e->node), "data");
        const char *status = qm_json_get_string(data, "status", "");

        if (m->config->incoming && (strcmp(status, "completed") == 0 || strcmp(status, "failed") == 0))
                machine_drop_incoming(m);
        machine_migration_event(m, status);
}

static void on_event(QmpClient *c, JsonNode *node, const char *text, gsize len, gpointer data) {
        Machine *m = data;
        char *props[] = { "RunState", "EventSequence", NULL };
        QmEvent *e = qm_event_new(node, text, len, ++m->event_seq);

        /* Reserve numbers ahead on disk, so a crashed daemon's successor
         * never hands out one of them again. */
        if (m->event_seq > m->event_mark)
                machine_save_record(m);

        qm_event_ring_push(m->events, e);
        machine_notify_event(m, e);
        if (track_run_state(m, e)) {
                g_clear_handle_id(&m->announce_seq_id, g_source_remove);
                machine_notify_changed(m, props);
        } else if (!m->announce_seq_id) {
                m->announce_seq_id = g_idle_add_full(G_PRIORITY_DEFAULT, on_announce_sequence, m, NULL);
        }
        qm_event_waiters_wake(m->waiters, e);
        machine_agent_on_event(m, e);
        if (strcmp(e->name, "MIGRATION") == 0)
                on_migration_event(m, e);
}

static void on_launch_status(const QmpResponse *r, const QmError *failure, gpointer data) {
        Machine *m = data;
        const char *status;

        if (failure) {
                /* The exit handler answers the Launch caller. */
                if (m->state == QM_STATE_STARTING) {
                        if (!m->launch_error)
                                m->launch_error = g_strdup(failure->message);
                        machine_kill(m, SIGKILL);
                }
                return;
        }
        status = status_of(r);
        if (m->state != QM_STATE_STARTING || m->taken_back) {
                /* a VM taken back after a daemon restart */
                set_run_state(m, status ? status : "");
                return;
        }
        g_free(m->run_state);
        m->run_state = g_strdup(status ? status : "");
        machine_launch_done(m);
}

static void on_ready(QmpClient *c, JsonNode *greeting, gpointer data) {
        Machine *m = data;
        JsonObject *qmp = qm_json_get_object(json_node_get_object(greeting), "QMP");
        JsonObject *version = qm_json_get_object(qmp, "version");
        JsonObject *qemu = qm_json_get_object(version, "qemu");

        g_free(m->qemu_version);
        m->qemu_version = g_strdup_printf("%" G_GINT64_FORMAT ".%" G_GINT64_FORMAT ".%" G_GINT64_FORMAT,
                                          qm_json_get_int(qemu, "major", 0), qm_json_get_int(qemu, "minor", 0),
                                          qm_json_get_int(qemu, "micro", 0));
        /* An incoming migration ends without a run state event when the
         * guest stays paused; QEMU's MIGRATION events tell us. */
        if (m->config->incoming) {
                g_autoptr(JsonNode) args = json_from_string(
                        "{\"capabilities\": [{\"capability\": \"events\", \"state\": true}]}", NULL);
                machine_qmp_call(m, "migrate-set-capabilities", args, qmp_reply_ignore, NULL);
        }
        /* RunState must be right when Launch returns (-S: prelaunch). */
        machine_qmp_call(m, "query-status", NULL, on_launch_status, m);
}

/*
 * QEMU 7.2 now and then (about once in 1,500 launches after a Shutdown)
 * closes a monitor connection made before its monitor was ready, without
 * a greeting, and goes on running. Its listening socket is still there: a
 * new connection gets a fresh monitor session. From a timer, not from
 * the closing client's own callback.
 */
#define DROPPED_CONNECTIONS_MAX 3

static gboolean on_reconnect_after_drop(gpointer data) {
        Machine *m = data;
        g_autoptr(GError) err = NULL;

        m->handshake_timer = 0;
        if (m->state != QM_STATE_STARTING || !m->process || m->killed_by_us)
                return G_SOURCE_REMOVE;
        if (!machine_qmp_reconnect(m, &err)) {
                if (!m->launch_error)
                        m->launch_error = g_strdup_printf("QEMU closed the QMP socket, and then: %s",
                                                          err->message);
                machine_kill(m, SIGKILL);
                return G_SOURCE_REMOVE;
        }
        /* the stall watch goes on for the new connection */
        m->handshake_timer = g_timeout_add(m->handshake_delay_ms, machine_on_handshake_stall, m);
        return G_SOURCE_REMOVE;
}

static gboolean reconnect_after_drop(Machine *m, QmpClient *c) {
        if (!qmp_client_closed_by_peer(c) || qmp_client_greeted(c) ||
            m->dropped_connections >= DROPPED_CONNECTIONS_MAX || m->killed_by_us)
                return FALSE;
        m->dropped_connections++;
        g_message("machine %s: QEMU closed the QMP connection without a greeting; connecting again", m->name);
        g_clear_handle_id(&m->handshake_timer, g_source_remove);
        m->handshake_timer = g_timeout_add(10, on_reconnect_after_drop, m);
        return TRUE;
}

static void on_closed(QmpClient *c, const char *reason, gpointer data) {
        Machine *m = data;

        if (m->state == QM_STATE_STARTING) {
                if (reconnect_after_drop(m, c))
                        return;
                /* The launch cannot complete without QMP. If QEMU is already
                 * exiting the kill changes nothing; the exit handler reports. */
                if (!m->launch_error)
                        m->launch_error = g_strdup_printf("%s (%s)", reason, qmp_client_progress(c));
                machine_kill(m, SIGKILL);
                return;
        }
        /* Expected while QEMU quits or has exited; news otherwise. */
        if (m->process && !m->quit_issued && !m->guest_shutdown && !m->killed_by_us) {
                g_message("machine %s: %s; the machine stays supervised", m->name, reason);
                machine_qmp_lost(m);
        }
}

/* Fairness under an event flood: what QEMU sends waits in its socket
 * while the bus connection is backed up, rather than queueing without
 * bound ahead of every other machine's answers. */
static gboolean may_read(QmpClient *c, gpointer data) {
        return !machine_notify_congested(data);
}

/* Drop the monitor connection, if any, and connect to QEMU's monitor
 * socket again (a fresh monitor session). */
gboolean machine_qmp_reconnect(Machine *m, GError **error) {
        int fd;

        g_clear_pointer(&m->qmp, qmp_client_free);
        fd = qm_unix_connect(m->qmp_socket, error);
        if (fd < 0)
                return FALSE;
        m->qmp = machine_qmp_connect(m, fd);
        return TRUE;
}

QmpClient *machine_qmp_connect(Machine *m, int fd) {
        static const QmpCallbacks callbacks = {
                .ready = on_ready,
                .event = on_event,
                .closed = on_closed,
                .may_read = may_read,
        };
        const QmpClientOptions options = { .timeout = m->config->qmp_timeout, .greeting = TRUE };

        return qmp_client_new(fd, &options, &callbacks, m);
}

gboolean machine_qmp_send_quit(Machine *m) {
        if (!qmp_client_is_open(m->qmp))
                return FALSE;
        /* The outcome shows in the exit; an error here changes nothing. */
        machine_qmp_call(m, "quit", NULL, qmp_reply_ignore, NULL);
        return TRUE;
}

static void on_qmp_reply(const QmpResponse *r, const QmError *failure, gpointer data) {
        QmpCall *qc = data;

        if (failure)
                qm_reply_fail(qc->call, failure);
        else if (qc->kind == QMP_REPLY_RAW)
                qm_reply_value(qc->call, "s", r->text);
        else if (r->error)
                qm_reply_fail(qc->call, r->error);
        else if (qc->kind == QMP_REPLY_RETURN)
                qm_reply_value(qc->call, "s", r->value ? r->value : "null");
        else
                qm_reply_ok(qc->call);
        g_free(qc);
}

QmError *machine_monitor_unavailable(Machine *m) {
        QmError *migrated = machine_migrated_error(m);

        if (migrated)
                return migrated;
        if (!m->config->qmp)
                return qm_error_new(QM_ERROR_NO_MONITOR, "Machine '%s' was created without a QMP monitor",
                                    m->name);
        if (m->state != QM_STATE_RUNNING && m->state != QM_STATE_STOPPING)
                return qm_error_new(QM_ERROR_NOT_RUNNING, "Machine '%s' is not running (state %s)", m->name,
                                    qm_state_to_string(m->state));
        /* A monitor still in its handshake (taken back after a daemon
         * restart) takes commands: they wait for the handshake. */
        if (!qmp_client_is_open(m->qmp))
                return qm_error_new(QM_ERROR_QMP_DISCONNECTED, "The QMP connection of '%s' is closed",
                                    m->name);
        return NULL;
}

void machine_qmp(Machine *m, QmReply *call, const char *command, const char *arguments,
                 QmpReplyKind kind) {
        machine_qmp_with_fd(m, call, command, arguments, kind, -1);
}

void machine_qmp_with_fd(Machine *m, QmReply *call, const char *command, const char *arguments,
                         QmpReplyKind kind, int fd) {
        g_autoptr(QmError) e = machine_monitor_unavailable(m);
        QmpCall *qc;
        int copy = -1;

        if (e) {
                qm_reply_fail(call, e);
                return;
        }
        if (fd >= 0) {
                copy = fcntl(fd, F_DUPFD_CLOEXEC, 3); /* the message owns @fd */
                if (copy < 0) {
                        qm_reply_failf(call, qm_error_name_for_errno(errno), "cannot pass the fd: %s",
                                       g_strerror(errno));
                        return;
                }
        }
        qc = g_new0(QmpCall, 1);
        qc->machine = m;
        qc->call = call;
        qc->kind = kind;
        /* Remembered at once: QEMU may exit before its answer is read. */
        if (strcmp(command, "quit") == 0)
                m->quit_issued = TRUE;
        qmp_client_call(m->qmp, command,
                        &(QmpCallOptions){ .arguments = arguments, .timeout = m->config->qmp_timeout,
                                           .text_only = kind == QMP_REPLY_RAW, .with_fd = copy >= 0,
                                           .fd = copy },
                        on_qmp_reply, qc);
}

/* A WaitEvent caller: the machine (for messages) and its held call. */
typedef struct {
        Machine *machine;
        QmReply *call;
} WaitCall;

static void wait_call_free(gpointer p) {
        WaitCall *wc = p;

        qm_reply_drop(wc->call);
        g_free(wc);
}

static void on_wait_end(QmEventWaitEnd how, const QmEvent *e, gpointer data) {
        WaitCall *wc = data;

        switch (how) {
        case QM_EVENT_WAIT_MATCHED:
                qm_reply_value(g_steal_pointer(&wc->call), "ts", e->seq, e->json);
                break;
        case QM_EVENT_WAIT_TIMEOUT:
                qm_reply_failf(g_steal_pointer(&wc->call), QM_ERROR_TIMEOUT, "No matching event on '%s' in time",
                               wc->machine->name);
                break;
        case QM_EVENT_WAIT_ENDED:
                qm_reply_failf(g_steal_pointer(&wc->call), QM_ERROR_NOT_RUNNING,
                               "Machine '%s' stopped before a matching event came", wc->machine->name);
                break;
        }
}

void machine_wait_event(Machine *m, QmReply *call, QmEventFilters *filters, guint64 after,
                        double timeout) {
        const QmEvent *e;
        WaitCall *wc;

        for (guint i = 0; (e = qm_event_ring_nth_after(m->events, after, i)); i++) {
                if (qm_event_filters_match(filters, e)) {
                        qm_reply_value(call, "ts", e->seq, e->json);
                        qm_event_filters_free(filters);
                        return;
                }
        }
        if (timeout == 0) {
                qm_reply_value(call, "ts", (uint64_t)0, "");
                qm_event_filters_free(filters);
                return;
        }
        if (!machine_is_active(m)) {
                qm_reply_failf(call, QM_ERROR_NOT_RUNNING,
                               "Machine '%s' is not running and no retained event matches", m->name);
                qm_event_filters_free(filters);
                return;
        }
        if (qm_event_waiters_count(m->waiters) >= m->daemon->limits.max_waiters) {
                qm_reply_failf(call, QM_ERROR_LIMIT_EXCEEDED, "Machine '%s' already has %u WaitEvent callers",
                               m->name, m->daemon->limits.max_waiters);
                qm_event_filters_free(filters);
                return;
        }
        wc = g_new0(WaitCall, 1);
        wc->machine = m;
        wc->call = call;
        qm_event_waiters_add(m->waiters, filters, timeout, on_wait_end, wc, wait_call_free);
}

static gboolean wait_call_of(gpointer data, gpointer sender) {
        return g_strcmp0(qm_reply_sender(((WaitCall *)data)->call), sender) == 0;
}

void machine_forget_client(Machine *m, const char *unique_name) {
        machine_forget_exit_calls(m, unique_name);
        qm_event_waiters_drop_if(m->waiters, wait_call_of, (gpointer)unique_name);
        machine_console_waiters_forget(m, unique_name);
}

static void on_powerdown_sent(const QmpResponse *r, const QmError *failure, gpointer data) {
        /* An error shows as the guest not powering off: Powerdown's timer
         * then quits and reports AbnormalShutdown. */
        if (failure || r->error)
                g_message("system_powerdown was not delivered: %s", (failure ? failure : r->error)->message);
}

gboolean machine_qmp_send_powerdown(Machine *m, QmReply *call) {
        g_autoptr(QmError) e = machine_monitor_unavailable(m);

        if (e) {
                qm_reply_fail(call, e);
                return FALSE;
        }
        machine_qmp_call(m, "system_powerdown", NULL, on_powerdown_sent, NULL);
        return TRUE;
}

typedef struct {
        QmReply *call;
        guint remaining;
        QmError *error;
} KeysCall;

static void on_key_sent(const QmpResponse *r, const QmError *failure, gpointer data) {
        KeysCall *k = data;
        const QmError *e = failure ? failure : r->error;

        if (!k->error && e)
                k->error = qm_error_new(e->name, "%s", e->message);
        if (--k->remaining > 0)
                return;
        qm_reply_ok_or_fail(k->call, k->error);
        qm_error_free(k->error);
        g_free(k);
}

void machine_send_keys(Machine *m, QmReply *call, char **keys, guint hold_ms) {
        g_autoptr(GPtrArray) args = g_ptr_array_new_with_free_func((GDestroyNotify)json_node_unref);
        g_autoptr(QmError) e = NULL;
        KeysCall *k;

        if (!keys[0]) {
                qm_reply_failf(call, QM_ERROR_INVALID_ARGS, "keys must name at least one combo");
                return;
        }
        for (char **key = keys; *key; key++) {
                JsonNode *a = qm_keys_parse_combo(*key, hold_ms, &e);
                if (!a) {
                        qm_reply_fail(call, e);
                        return;
                }
                g_ptr_array_add(args, a);
        }
        e = machine_monitor_unavailable(m);
        if (e) {
                qm_reply_fail(call, e);
                return;
        }
        k = g_new0(KeysCall, 1);
        k->call = call;
        k->remaining = args->len;
        /* QEMU runs them in order: one combo after the other. */
        for (guint i = 0; i < args->len; i++)
                machine_qmp_call(m, "send-key", g_ptr_array_index(args, i), on_key_sent, k);
}

void machine_send_fd(Machine *m, QmReply *call, const char *fdname, int fd) {
        g_autoptr(JsonBuilder) b = json_builder_new_immutable();
        g_autoptr(JsonNode) root = NULL;
        g_autofree char *args = NULL;

        json_builder_begin_object(b);
        json_builder_set_member_name(b, "fdname");
        json_builder_add_string_value(b, fdname);
        json_builder_end_object(b);
        root = json_builder_get_root(b);
        args = qm_json_to_string(root);
        machine_qmp_with_fd(m, call, "getfd", args, QMP_REPLY_EMPTY, fd);
}

static void on_alive(const QmpResponse *r, const QmError *failure, gpointer data) {
        QmpCall *qc = data;
        Machine *m = qc->machine;

        if (failure)
                qm_reply_failf(qc->call, QM_ERROR_DEAD, "QEMU of '%s' does not answer: %s", m->name,
                               failure->message);
        else
                qm_reply_ok(qc->call);
        g_free(qc);
}

void machine_verify_alive(Machine *m, QmReply *call) {
        QmpCall *qc;

        if (!m->process || m->state == QM_STATE_STARTING) {
                qm_reply_failf(call, QM_ERROR_DEAD, "Machine '%s' is not running (state %s)", m->name,
                                           qm_state_to_string(m->state));
                return;
        }
        if (!m->config->qmp) {
                qm_reply_ok(call); /* the process runs; there is no monitor to ask */
                return;
        }
        if (!qmp_client_is_open(m->qmp)) {
                qm_reply_failf(call, QM_ERROR_DEAD, "The QMP connection of '%s' is closed", m->name);
                return;
        }
        qc = g_new0(QmpCall, 1);
        qc->machine = m;
        qc->call = call;
        machine_qmp_call(m, "query-status", NULL, on_alive, qc);
}
