/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The QEMU guest agent speaks QMP's JSON without a greeting, through a
 * virtio-serial port whose host end is a socket we hold. Bytes we write
 * while the guest has not opened the port wait in the socket, and
 * answers to commands of an earlier connection or of a timed-out command
 * may still come; so nothing is sent until a guest-sync-delimited with a
 * random token was answered: the agent precedes that answer with a 0xFF
 * byte, and the stream drops everything before it. The agent is trusted
 * no more than QEMU: bounded lines, strict JSON, a connection that breaks
 * the protocol is dropped and made again.
 */
#include <string.h>

#include "guest-agent.h"
#include "unix-socket.h"

/* A sync the agent does not answer within this is lost (the guest hangs,
 * or has not opened the port: its bytes then wait in the socket). */
#define SYNC_TIMEOUT_S 2.0
/* While not synchronised: how often we look again. */
#define TICK_MS 250
#define CONNECT_INTERVAL_US G_USEC_PER_SEC
/* How long a command waits for an agent that is not synchronised. */
#define WAIT_FOR_SYNC_US (3 * G_USEC_PER_SEC)

typedef struct {
        QmGuestAgent *agent;
        char *command;
        char *arguments;
        double timeout;
        gboolean text_only;
        QmpReplyFunc func;
        gpointer userdata;
        gint64 wait_deadline; /* monotonic µs: while it waits for the sync */
} AgentCall;

typedef struct {
        QmGuestAgent *agent;
        guint64 generation;
        gint64 token;
} SyncCall;

struct QmGuestAgent {
        char *socket_path;
        QmpClient *client;
        guint64 generation; /* bumped whenever the agent is no longer synced */
        gboolean synced;
        gboolean sync_pending;
        gint64 last_connect; /* monotonic µs */
        guint tick_id;
        GQueue waiting; /* AgentCall: sent once synced */
        gboolean ending;
        QmGuestAgentCallbacks cb;
        gpointer userdata;
};

static void agent_call_free(AgentCall *ac) {
        g_free(ac->command);
        g_free(ac->arguments);
        g_free(ac);
}

static void complete_failed(AgentCall *ac, const char *name, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static void complete_failed(AgentCall *ac, const char *name, const char *fmt, ...) {
        g_autoptr(QmError) e = NULL;
        va_list ap;

        va_start(ap, fmt);
        e = qm_error_newv(name, fmt, ap);
        va_end(ap);
        ac->func(NULL, e, ac->userdata);
        agent_call_free(ac);
}

static void set_synced(QmGuestAgent *a, gboolean synced) {
        if (a->synced == synced)
                return;
        a->synced = synced;
        if (!synced)
                a->generation++;
        if (!a->ending && a->cb.connected_changed)
                a->cb.connected_changed(a, a->userdata);
}

static void ensure_tick(QmGuestAgent *a);

/* Not synchronised any more: look again from the tick. */
static void lose_sync(QmGuestAgent *a) {
        set_synced(a, FALSE);
        a->generation++; /* also voids a sync under way */
        a->sync_pending = FALSE;
        ensure_tick(a);
}

static void on_reply(const QmpResponse *response, const QmError *failure, gpointer data) {
        AgentCall *ac = data;
        QmGuestAgent *a = ac->agent;

        if (!failure) {
                ac->func(response, NULL, ac->userdata);
                agent_call_free(ac);
                return;
        }
        if (a->ending) {
                complete_failed(ac, QM_ERROR_NOT_RUNNING,
                                "The machine stopped before the guest agent answered '%s'", ac->command);
                return;
        }
        if (g_strcmp0(failure->name, QM_ERROR_TIMEOUT) == 0) {
                /* The agent hangs or is gone: its late answer must not be
                 * taken for the next command's. */
                lose_sync(a);
                complete_failed(ac, QM_ERROR_GUEST_AGENT_UNAVAILABLE,
                                "The guest agent did not answer '%s' within %g s", ac->command, ac->timeout);
                return;
        }
        complete_failed(ac, QM_ERROR_GUEST_AGENT_UNAVAILABLE, "The guest agent connection was lost: %s",
                        failure->message);
}

static void send_call(QmGuestAgent *a, AgentCall *ac) {
        QmpCallOptions o = { .arguments = ac->arguments, .timeout = ac->timeout, .text_only = ac->text_only };

        qmp_client_call(a->client, ac->command, &o, on_reply, ac);
}

static void send_waiting(QmGuestAgent *a) {
        while (a->synced && !g_queue_is_empty(&a->waiting))
                send_call(a, g_queue_pop_head(&a->waiting));
}

static void on_sync(const QmpResponse *response, const QmError *failure, gpointer data) {
        g_autofree SyncCall *sc = data;
        QmGuestAgent *a = sc->agent;
        g_autofree char *expected = NULL;

        if (a->ending || sc->generation != a->generation)
                return; /* a connection or attempt given up meanwhile */
        a->sync_pending = FALSE;
        expected = g_strdup_printf("%" G_GINT64_FORMAT, sc->token);
        if (failure || response->error || g_strcmp0(response->value, expected) != 0) {
                if (!failure)
                        g_message("guest agent: unexpected answer to guest-sync-delimited: %.200s",
                                  response->text);
                return; /* the tick tries again */
        }
        set_synced(a, TRUE);
        send_waiting(a);
}

/* 0xFF resets the agent's JSON parser (a partial command of ours, or
 * garbage, is dropped), then the sync. */
static void send_sync(QmGuestAgent *a) {
        static const char reset = (char)0xFF;
        SyncCall *sc = g_new0(SyncCall, 1);
        g_autofree char *args = NULL;

        sc->agent = a;
        sc->generation = a->generation;
        sc->token = g_random_int_range(1, G_MAXINT32);
        args = g_strdup_printf("{\"id\": %" G_GINT64_FORMAT "}", sc->token);
        a->sync_pending = TRUE;
        qmp_client_send_raw(a->client, &reset, 1);
        qmp_client_call(a->client, "guest-sync-delimited",
                        &(QmpCallOptions){ .arguments = args, .timeout = SYNC_TIMEOUT_S, .text_only = TRUE },
                        on_sync, sc);
}

static void on_closed(QmpClient *c, const char *reason, gpointer data) {
        QmGuestAgent *a = data;

        g_message("guest agent connection closed: %s", reason);
        lose_sync(a); /* the tick frees the client and connects again */
}

static void connect_agent(QmGuestAgent *a, int fd) {
        static const QmpCallbacks callbacks = { .closed = on_closed };
        const QmpClientOptions options = {
                .timeout = SYNC_TIMEOUT_S,
                .greeting = FALSE,
                .max_line = QM_GUEST_AGENT_MAX_LINE,
                .sync_byte = TRUE,
                /* after a daemon restart, answers to the predecessor's
                 * commands must not match ours */
                .first_id = g_random_int_range(1, G_MAXINT32),
                .quiet_strays = TRUE,
        };

        a->last_connect = g_get_monotonic_time();
        a->client = qmp_client_new(fd, &options, &callbacks, a);
}

static void try_connect(QmGuestAgent *a) {
        g_autoptr(GError) err = NULL;
        int fd;

        if (g_get_monotonic_time() - a->last_connect < CONNECT_INTERVAL_US)
                return;
        fd = qm_unix_connect(a->socket_path, &err);
        if (fd < 0) {
                a->last_connect = g_get_monotonic_time();
                g_debug("guest agent: %s", err->message);
                return;
        }
        connect_agent(a, fd);
}

static void fail_expired_waiting(QmGuestAgent *a) {
        gint64 now = g_get_monotonic_time();

        for (GList *l = a->waiting.head; l;) {
                GList *next = l->next;
                AgentCall *ac = l->data;
                if (ac->wait_deadline <= now) {
                        g_queue_delete_link(&a->waiting, l);
                        complete_failed(ac, QM_ERROR_GUEST_AGENT_UNAVAILABLE,
                                        "The guest agent does not answer (not started yet, stopped, or the guest "
                                        "hangs); '%s' was not sent",
                                        ac->command);
                }
                l = next;
        }
}

static gboolean on_tick(gpointer data) {
        QmGuestAgent *a = data;

        if (a->client && !qmp_client_is_open(a->client))
                g_clear_pointer(&a->client, qmp_client_free);
        if (!a->synced) {
                if (!a->client)
                        try_connect(a);
                /* Bytes QEMU has not taken are for a port the guest has
                 * not opened: a sync among them is answered once it does. */
                if (a->client && !a->sync_pending && qmp_client_unread_by_peer(a->client) == 0)
                        send_sync(a);
        }
        fail_expired_waiting(a);
        if (a->synced && g_queue_is_empty(&a->waiting)) {
                a->tick_id = 0;
                return G_SOURCE_REMOVE;
        }
        return G_SOURCE_CONTINUE;
}

static void ensure_tick(QmGuestAgent *a) {
        if (!a->tick_id && !a->ending)
                a->tick_id = g_timeout_add(TICK_MS, on_tick, a);
}

QmGuestAgent *qm_guest_agent_new(const char *socket_path, int fd, const QmGuestAgentCallbacks *cb,
                                 gpointer userdata) {
        QmGuestAgent *a = g_new0(QmGuestAgent, 1);

        a->socket_path = g_strdup(socket_path);
        a->cb = *cb;
        a->userdata = userdata;
        g_queue_init(&a->waiting);
        if (fd >= 0) {
                connect_agent(a, fd);
                send_sync(a);
        } else {
                try_connect(a);
                if (a->client)
                        send_sync(a);
        }
        ensure_tick(a);
        return a;
}

void qm_guest_agent_free(QmGuestAgent *a) {
        if (!a)
                return;
        a->ending = TRUE;
        g_clear_handle_id(&a->tick_id, g_source_remove);
        /* fails the commands in flight (NotRunning, see on_reply) */
        g_clear_pointer(&a->client, qmp_client_free);
        while (!g_queue_is_empty(&a->waiting))
                complete_failed(g_queue_pop_head(&a->waiting), QM_ERROR_NOT_RUNNING,
                                "The machine stopped before the guest agent answered");
        g_free(a->socket_path);
        g_free(a);
}

gboolean qm_guest_agent_is_connected(QmGuestAgent *a) {
        return a && a->synced;
}

void qm_guest_agent_port_changed(QmGuestAgent *a, gboolean open) {
        if (!open) {
                /* The agent is gone: what we sent it, and what it still
                 * had to say, goes with this connection. */
                g_message("guest agent: the guest closed its port");
                g_clear_pointer(&a->client, qmp_client_free);
                a->last_connect = 0;
                lose_sync(a);
                return;
        }
        if (!a->synced) {
                g_clear_handle_id(&a->tick_id, g_source_remove);
                ensure_tick(a);
        }
}

static gboolean fail_later(gpointer data) {
        complete_failed(data, QM_ERROR_NOT_RUNNING, "The machine has stopped");
        return G_SOURCE_REMOVE;
}

void qm_guest_agent_call(QmGuestAgent *a, const char *command, const QmpCallOptions *options,
                         QmpReplyFunc func, gpointer userdata) {
        AgentCall *ac = g_new0(AgentCall, 1);
        gint64 wait = WAIT_FOR_SYNC_US;

        ac->agent = a;
        ac->command = g_strdup(command);
        ac->arguments = g_strdup(options->arguments);
        ac->timeout = options->timeout;
        ac->text_only = options->text_only;
        ac->func = func;
        ac->userdata = userdata;
        if (a->ending) {
                g_idle_add(fail_later, ac);
                return;
        }
        if (a->synced && qmp_client_is_open(a->client)) {
                send_call(a, ac);
                return;
        }
        if (options->timeout > 0)
                wait = MIN(wait, (gint64)(options->timeout * G_USEC_PER_SEC));
        ac->wait_deadline = g_get_monotonic_time() + wait;
        g_queue_push_tail(&a->waiting, ac);
        ensure_tick(a);
}
