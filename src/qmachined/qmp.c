/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * QMP client. QEMU is not trusted: the stream is parsed incrementally with a
 * bounded line length, anything that is not a JSON object closes the
 * connection, and each command has its own timeout so one slow command does
 * not disturb the others. Replies are matched to commands by our numeric
 * "id", which we strip before handing the reply on.
 */
#include <errno.h>
#include <glib-unix.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "json-util.h"
#include "qmp-stream.h"
#include "qmp.h"

#define QMP_READ_CHUNK (64 * 1024)
#define QMP_MAX_EARLY_EVENTS 256
#define QMP_TICK_MS 50
/* Lines handled per main-loop dispatch of one connection: a QEMU that
 * floods events gets its turn like every other source, no more. */
#define QMP_LINES_PER_SLICE 32
#define QMP_MAX_EVENT_NAME 128
/* How often a throttled connection asks may_read() again. */
#define QMP_THROTTLE_US 1000

/* A source over the socket whose poll events we can switch off while
 * throttled (a GUnixFDSource does not give its tag away). */
static gboolean read_source_dispatch(GSource *source, GSourceFunc cb, gpointer data) {
        return cb(data);
}

static GSourceFuncs read_source_funcs = {
        .dispatch = read_source_dispatch,
};

typedef struct {
        guint64 offset;
        int fd;
} OutFd;

typedef struct {
        QmpClient *client;
        gint64 id;
        char *command;
        gboolean text_only; /* the caller reads @text only: no tree needed */
        QmpReplyFunc func;
        gpointer userdata;
        gint64 deadline; /* monotonic µs, 0: none */
        gboolean held;   /* waits for the handshake before it is sent */
        char *arguments; /* while held */
        int fd;          /* while held: to pass with it, or -1 */
} QmpPending;

/* An event that came before the handshake ended. */
typedef struct {
        JsonNode *node;
        char *text;
        gsize len;
} EarlyEvent;

struct QmpClient {
        int refcount;
        int fd;
        guint write_id;
        guint failure_id;
        guint tick_id; /* the timeout timer of pending commands */
        GString *out;
        guint64 sent;       /* bytes of the stream written so far */
        guint64 queued;     /* bytes of the stream queued so far */
        GQueue out_fds;     /* OutFd: fds to send with the byte at offset */
        QmpStream *in;
        gint64 next_id;
        GHashTable *pending; /* id -> QmpPending */
        gboolean greeted;
        gboolean ready;
        gboolean closed;
        gboolean closed_by_peer; /* QEMU ended it (EOF or reset), not we */
        gboolean handshaking; /* sending qmp_capabilities, which is not held */
        guint ready_id;       /* a peer without greeting: ready from the loop */
        double timeout;
        JsonNode *greeting;
        GQueue early_events; /* EarlyEvent: QEMU sent them before the handshake ended */
        GQueue held;         /* ids of commands waiting for the handshake */
        GSource *read_source;
        gpointer read_tag;  /* the socket's tag in read_source */
        gboolean throttled; /* the owner said may_read() no: not polled */
        gboolean busy;      /* the last slice was full: more is coming */
        gint64 ready_time;  /* read_source's, as last set (-1: none) */
        JsonParser *parser;  /* reused for every line */
        gsize max_line;
        gboolean quiet_strays;
        QmpCallbacks cb;
        gpointer userdata;
};

static void early_event_free(gpointer p) {
        EarlyEvent *e = p;
        json_node_unref(e->node);
        g_free(e->text);
        g_free(e);
}

static QmpClient *qmp_ref(QmpClient *c) {
        c->refcount++;
        return c;
}

static void qmp_unref(QmpClient *c) {
        if (--c->refcount > 0)
                return;
        g_hash_table_unref(c->pending);
        g_string_free(c->out, TRUE);
        for (GList *l = c->out_fds.head; l; l = l->next) {
                close(((OutFd *)l->data)->fd);
                g_free(l->data);
        }
        g_queue_clear(&c->out_fds);
        qmp_stream_free(c->in);
        if (c->greeting)
                json_node_unref(c->greeting);
        g_queue_clear_full(&c->early_events, early_event_free);
        g_queue_clear_full(&c->held, g_free);
        g_object_unref(c->parser);
        g_free(c);
}

static void pending_free(gpointer p) {
        QmpPending *q = p;
        g_free(q->command);
        g_free(q->arguments);
        if (q->fd >= 0)
                close(q->fd);
        g_free(q);
}

void qmp_reply_ignore(const QmpResponse *response, const QmError *failure, gpointer userdata) {
}

static void pending_complete(QmpPending *q, const QmpResponse *response, const QmError *failure) {
        QmpReplyFunc func = q->func;
        gpointer ud = q->userdata;

        /* Removing frees q; call the callback after, with copies. */
        g_hash_table_remove(q->client->pending, &q->id);
        func(response, failure, ud);
}

/*
 * The one place a response is taken apart: @text is the object without
 * our id; the "return" member's text is cut from it, an "error" member
 * becomes a QmpError "CLASS: desc".
 */
static void complete_response(QmpPending *q, JsonNode *node, const char *text) {
        g_autoptr(QmError) error = NULL;
        g_autofree char *value = NULL;
        JsonObject *obj = node ? json_node_get_object(node) : NULL;
        QmpResponse r = { .node = node, .text = text };
        gsize start, len;

        if (obj && json_object_has_member(obj, "error")) {
                JsonObject *err = qm_json_get_object(obj, "error"); /* NULL if not an object */
                error = qm_error_new(QM_ERROR_QMP_ERROR, "%s: %s", qm_json_get_string(err, "class", "GenericError"),
                                     qm_json_get_string(err, "desc", "(no description)"));
        } else if (qm_json_member_text(text, strlen(text), "return", &start, &len)) {
                value = g_strndup(text + start, len);
        } else { /* not reached: only objects with either get here */
                error = qm_error_new(QM_ERROR_QMP_ERROR, "GenericError: QEMU's answer has no \"return\"");
        }
        r.value = value;
        r.error = error;
        pending_complete(q, &r, NULL);
}

/* Tear down the transport and fail every pending command. Callbacks may
 * free the client: callers hold a reference. */
static void qmp_shutdown(QmpClient *c, const char *reason, gboolean notify) {
        GList *list;

        if (c->closed)
                return;
        c->closed = TRUE;
        if (c->read_source) {
                g_source_destroy(c->read_source);
                g_clear_pointer(&c->read_source, g_source_unref);
        }
        if (c->write_id)
                g_source_remove(c->write_id);
        if (c->tick_id)
                g_source_remove(c->tick_id);
        if (c->ready_id)
                g_source_remove(c->ready_id);
        c->write_id = c->tick_id = c->ready_id = 0;
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -1;

        list = g_hash_table_get_values(c->pending);
        g_hash_table_steal_all(c->pending);
        for (GList *l = list; l; l = l->next) {
                QmpPending *q = l->data;
                g_autoptr(QmError) e = qm_error_new(QM_ERROR_QMP_DISCONNECTED,
                                                    "QMP connection lost before '%s' was answered: %s",
                                                    q->command, reason);
                q->func(NULL, e, q->userdata);
                pending_free(q);
        }
        g_list_free(list);
        if (notify && c->cb.closed)
                c->cb.closed(c, reason, c->userdata);
}

static gboolean qmp_flush(QmpClient *c);

/* SCM_RIGHTS: QEMU takes the fd that comes with a command's bytes. */
static ssize_t send_with_fd(int sock, const char *data, gsize len, int fd) {
        struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = { 0 };
        struct msghdr msg = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = control.buf,
                .msg_controllen = sizeof(control.buf),
        };
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);

        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
        return sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static gboolean on_write_failure(gpointer data) {
        QmpClient *c = data;

        c->failure_id = 0;
        qmp_shutdown(c, "writing to the QMP socket failed", TRUE);
        qmp_unref(c);
        return G_SOURCE_REMOVE;
}

static gboolean on_writable(int fd, GIOCondition cond, gpointer data) {
        QmpClient *c = data;
        gboolean keep;

        qmp_ref(c);
        keep = qmp_flush(c);
        if (!keep)
                c->write_id = 0;
        qmp_unref(c);
        return keep ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

/* Write what we can; returns TRUE if bytes remain queued. */
static gboolean qmp_flush(QmpClient *c) {
        while (c->out->len > 0 && !c->closed) {
                OutFd *of = g_queue_peek_head(&c->out_fds);
                gsize len = c->out->len;
                ssize_t n;

                if (of && of->offset > c->sent)
                        len = MIN(len, of->offset - c->sent); /* stop where the fd goes */
                if (of && of->offset == c->sent)
                        n = send_with_fd(c->fd, c->out->str, len, of->fd);
                else
                        n = send(c->fd, c->out->str, len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                if (!c->write_id)
                                        c->write_id = g_unix_fd_add(c->fd, G_IO_OUT, on_writable, c);
                                return TRUE;
                        }
                        /* Close from the loop, not from inside a caller's
                         * execute(): replies never run re-entrantly. */
                        g_message("QMP write failed: %s", g_strerror(errno));
                        g_string_truncate(c->out, 0);
                        if (!c->failure_id)
                                c->failure_id = g_idle_add(on_write_failure, qmp_ref(c));
                        return FALSE;
                }
                if (of && of->offset == c->sent && n > 0) {
                        close(of->fd);
                        g_free(g_queue_pop_head(&c->out_fds));
                }
                c->sent += n;
                g_string_erase(c->out, 0, n);
        }
        return FALSE;
}

/* A JSON string literal for @s (valid UTF-8). */
static void append_json_string(GString *out, const char *s) {
        g_string_append_c(out, '"');
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (*p == '"' || *p == '\\')
                        g_string_append_printf(out, "\\%c", *p);
                else if (*p < 0x20)
                        g_string_append_printf(out, "\\u%04x", *p);
                else
                        g_string_append_c(out, (char)*p);
        }
        g_string_append_c(out, '"');
}

/* Formatted by hand: this is the hot path of every Qmp call. */
static void qmp_send(QmpClient *c, gint64 id, const char *command, const char *arguments) {
        gsize before = c->out->len;

        g_string_append(c->out, "{\"execute\":");
        append_json_string(c->out, command);
        if (arguments) {
                g_string_append(c->out, ",\"arguments\":");
                g_string_append(c->out, arguments);
        }
        g_string_append_printf(c->out, ",\"id\":%" G_GINT64_FORMAT "}\n", id);
        c->queued += c->out->len - before;
        if (!c->write_id)
                qmp_flush(c);
}

/*
 * Command timeouts: one coarse timer per connection, alive while commands
 * with a deadline are pending, instead of a GSource per command (each one
 * added and removed wakes the main context: three extra loop iterations
 * per call). Deadlines are met to within QMP_TICK_MS.
 */
static gboolean on_tick(gpointer data) {
        QmpClient *c = data;
        g_autoptr(GArray) expired = g_array_new(FALSE, FALSE, sizeof(gint64));
        gint64 now = g_get_monotonic_time();
        gboolean waiting = FALSE;
        GHashTableIter it;
        QmpPending *q;

        g_hash_table_iter_init(&it, c->pending);
        while (g_hash_table_iter_next(&it, NULL, (gpointer *)&q))
                if (q->deadline && q->deadline <= now)
                        g_array_append_val(expired, q->id);
        qmp_ref(c);
        for (guint i = 0; i < expired->len && !c->closed; i++) {
                gint64 id = g_array_index(expired, gint64, i);
                q = g_hash_table_lookup(c->pending, &id);
                if (q) {
                        g_autoptr(QmError) e = qm_error_new(QM_ERROR_TIMEOUT,
                                                            "QEMU did not answer '%s' within the QMP timeout",
                                                            q->command);
                        /* A late answer to this id is dropped in handle_reply(). */
                        pending_complete(q, NULL, e);
                }
        }
        /* The callbacks may have sent new commands: look again. */
        if (!c->closed) {
                g_hash_table_iter_init(&it, c->pending);
                while (!waiting && g_hash_table_iter_next(&it, NULL, (gpointer *)&q))
                        waiting = q->deadline != 0;
        }
        if (!waiting)
                c->tick_id = 0;
        qmp_unref(c);
        return waiting ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

static void send_held(QmpClient *c);

static void become_ready(QmpClient *c);

static void on_capabilities(const QmpResponse *response, const QmError *failure, gpointer data) {
        QmpClient *c = data;

        if (failure)
                return; /* the connection is already closing or closed */
        if (response->error) {
                qmp_shutdown(c, "QEMU refused qmp_capabilities", TRUE);
                return;
        }
        become_ready(c);
}

static void become_ready(QmpClient *c) {
        c->ready = TRUE;
        /* The owner's own queries (run state) first: QEMU answers in
         * order, so held callers find the state updated. */
        if (c->cb.ready)
                c->cb.ready(c, c->greeting, c->userdata);
        send_held(c);
        while (!c->closed && !g_queue_is_empty(&c->early_events)) {
                EarlyEvent *ev = g_queue_pop_head(&c->early_events);
                if (c->cb.event)
                        c->cb.event(c, ev->node, ev->text, ev->len, c->userdata);
                early_event_free(ev);
        }
}

static gboolean reply_now_closed(gpointer data) {
        QmpPending *q = data;
        g_autoptr(QmError) e = qm_error_new(QM_ERROR_QMP_DISCONNECTED,
                                            "the QMP connection is closed; '%s' was not sent", q->command);
        q->func(NULL, e, q->userdata);
        pending_free(q);
        return G_SOURCE_REMOVE;
}

static QmpPending *execute(QmpClient *c, const char *command, const char *arguments, int fd, double timeout,
                           QmpReplyFunc func, gpointer userdata);

void qmp_client_call(QmpClient *c, const char *command, const QmpCallOptions *options, QmpReplyFunc func,
                     gpointer userdata) {
        g_autofree char *tree_text = options->arguments_node ? qm_json_to_string(options->arguments_node) : NULL;
        QmpPending *q = execute(c, command, tree_text ? tree_text : options->arguments,
                                options->with_fd ? options->fd : -1, options->timeout, func, userdata);

        if (q)
                q->text_only = options->text_only;
}

static void arm_deadline(QmpClient *c, QmpPending *q, double timeout) {
        q->deadline = g_get_monotonic_time() + (gint64)MIN(timeout * G_USEC_PER_SEC, (double)G_MAXINT64 / 2);
        if (!c->tick_id)
                c->tick_id = g_timeout_add(QMP_TICK_MS, on_tick, c);
}

/* Queue the command's bytes, with @fd (taken over) passed along them. */
static void send_command(QmpClient *c, QmpPending *q, const char *arguments, int fd) {
        if (fd >= 0) {
                OutFd *of = g_new0(OutFd, 1);
                of->offset = c->queued;
                of->fd = fd;
                g_queue_push_tail(&c->out_fds, of);
        }
        qmp_send(c, q->id, q->command, arguments);
}

/* The handshake is done: send what callers asked for meanwhile, in order. */
static void send_held(QmpClient *c) {
        while (!c->closed && !g_queue_is_empty(&c->held)) {
                g_autofree gint64 *id = g_queue_pop_head(&c->held);
                QmpPending *q = g_hash_table_lookup(c->pending, id);
                g_autofree char *arguments = NULL;
                int fd;

                if (!q || !q->held)
                        continue; /* it timed out meanwhile */
                q->held = FALSE;
                arguments = g_steal_pointer(&q->arguments);
                fd = q->fd;
                q->fd = -1;
                send_command(c, q, arguments, fd);
        }
}

/*
 * Commands issued before the handshake completed (a monitor taken back
 * after a daemon restart, or reconnecting) wait for it: QEMU refuses
 * anything but qmp_capabilities until then. Their timeout runs from now.
 */
static QmpPending *execute(QmpClient *c, const char *command, const char *arguments, int fd, double timeout,
                           QmpReplyFunc func, gpointer userdata) {
        QmpPending *q = g_new0(QmpPending, 1);

        q->client = c;
        q->command = g_strdup(command);
        q->func = func;
        q->userdata = userdata;
        q->fd = -1;
        if (c->closed) {
                if (fd >= 0)
                        close(fd);
                g_idle_add(reply_now_closed, q);
                return NULL;
        }
        q->id = c->next_id++;
        if (timeout > 0)
                arm_deadline(c, q, timeout);
        g_hash_table_insert(c->pending, &q->id, q);
        if (!c->ready && !c->handshaking) {
                q->held = TRUE;
                q->arguments = g_strdup(arguments);
                q->fd = fd;
                g_queue_push_tail(&c->held, g_memdup2(&q->id, sizeof(q->id)));
                return q;
        }
        send_command(c, q, arguments, fd);
        return q;
}

static void handle_greeting(QmpClient *c, JsonNode *msg) {
        c->greeted = TRUE;
        c->greeting = json_node_ref(msg);
        c->handshaking = TRUE;
        execute(c, "qmp_capabilities", NULL, -1, c->timeout, on_capabilities, c);
        c->handshaking = FALSE;
}

static void handle_reply(QmpClient *c, JsonObject *obj, JsonNode *msg, const char *line, gsize len) {
        JsonNode *idn = json_object_get_member(obj, "id");
        QmpPending *q;
        gint64 id;
        g_autofree char *suffix = NULL;
        g_autofree char *text = NULL;

        if (!idn || json_node_get_value_type(idn) != G_TYPE_INT64) {
                if (c->quiet_strays)
                        g_debug("QMP: dropping a reply without our id");
                else
                        g_message("QMP: dropping a reply without our id");
                return;
        }
        id = json_node_get_int(idn);
        q = g_hash_table_lookup(c->pending, &id);
        if (!q) {
                g_debug("QMP: dropping a late reply to id %" G_GINT64_FORMAT, id);
                return;
        }
        /* QEMU writes our id last, as ', "id": N}': cut it from the text;
         * elsewhere, cut it from the raw text all the same, so QEMU's
         * numbers reach the caller as QEMU wrote them. */
        suffix = g_strdup_printf(", \"id\": %" G_GINT64_FORMAT "}", id);
        if (g_str_has_suffix(line, suffix)) {
                text = g_strndup(line, len - strlen(suffix) + 1);
                text[len - strlen(suffix)] = '}';
        } else {
                text = qm_json_remove_member(line, len, "id");
        }
        complete_response(q, msg, text);
}

/* Returns FALSE when the line broke the protocol. */
/*
 * The fast path of a passthrough Qmp call: '{"return": ..., "id": N}' for
 * a command whose caller wants only the text. The line is still checked
 * to be strict JSON (it goes to D-Bus clients as is), but no tree is
 * built. TRUE if it was handled here.
 */
static gboolean handle_text_reply(QmpClient *c, const char *line, gsize len) {
        static const char prefix[] = "{\"return\": ";
        static const char key[] = ", \"id\": ";
        const gsize klen = sizeof(key) - 1;
        const char *p, *end;
        QmpPending *q;
        gint64 id;
        g_autofree char *text = NULL;

        if (!c->ready || len < sizeof(prefix) || memcmp(line, prefix, sizeof(prefix) - 1) != 0 || line[len - 1] != '}')
                return FALSE;
        /* ', "id": N}' at the very end */
        p = line + len - 1;
        while (p > line && g_ascii_isdigit(p[-1]))
                p--;
        if (p == line + len - 1 || (gsize)(p - line) < klen + sizeof(prefix) || memcmp(p - klen, key, klen) != 0)
                return FALSE;
        id = g_ascii_strtoll(p, NULL, 10);
        q = g_hash_table_lookup(c->pending, &id);
        if (!q || !q->text_only || !qm_json_check_len(line, len, NULL))
                return FALSE;
        end = p - klen; /* where ', "id"' starts */
        text = g_strndup(line, end - line + 1);
        text[end - line] = '}';
        complete_response(q, NULL, text);
        return TRUE;
}

/* QAPI event names: letters, digits, '_', '-', '.' (the strict JSON
 * check already refused NUL and lone surrogates). */
static gboolean event_name_ok(JsonObject *obj, char **why) {
        JsonNode *ev = json_object_get_member(obj, "event");
        const char *name;

        if (json_node_get_value_type(ev) != G_TYPE_STRING) {
                *why = g_strdup("QEMU sent an event whose name is not a string");
                return FALSE;
        }
        name = json_node_get_string(ev);
        if (!*name || strlen(name) > QMP_MAX_EVENT_NAME ||
            name[strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.")]) {
                *why = g_strdup("QEMU sent an event with a malformed name");
                return FALSE;
        }
        return TRUE;
}

static gboolean handle_line(QmpClient *c, const char *line, gsize len, char **why) {
        g_autoptr(GError) err = NULL;
        g_autoptr(JsonNode) msg = NULL;
        JsonObject *obj;

        if (handle_text_reply(c, line, len))
                return TRUE;
        msg = qm_json_parse_with(c->parser, line, len, &err);

        if (!msg) {
                *why = g_strdup_printf("QEMU sent invalid JSON on the QMP socket (%s)", err->message);
                return FALSE;
        }
        if (!JSON_NODE_HOLDS_OBJECT(msg)) {
                *why = g_strdup("QEMU sent a QMP message that is not a JSON object");
                return FALSE;
        }
        obj = json_node_get_object(msg);
        if (json_object_has_member(obj, "event")) {
                if (!event_name_ok(obj, why))
                        return FALSE;
                if (!c->ready) {
                        /* QEMU 7.2 can send an event even before its
                         * greeting when a client connects early; keep it
                         * for after the handshake. */
                        EarlyEvent *ev;
                        if (g_queue_get_length(&c->early_events) >= QMP_MAX_EARLY_EVENTS) {
                                *why = g_strdup("QEMU sent too many events before the QMP handshake");
                                return FALSE;
                        }
                        ev = g_new0(EarlyEvent, 1);
                        ev->node = json_node_ref(msg);
                        ev->text = g_strndup(line, len);
                        ev->len = len;
                        g_queue_push_tail(&c->early_events, ev);
                } else if (c->cb.event) {
                        c->cb.event(c, msg, line, len, c->userdata);
                }
        } else if (!c->greeted) {
                if (!json_object_has_member(obj, "QMP")) {
                        *why = g_strdup_printf("the first QMP message was not a greeting: %.200s", line);
                        return FALSE;
                }
                handle_greeting(c, msg);
        } else if (json_object_has_member(obj, "return") || json_object_has_member(obj, "error")) {
                handle_reply(c, obj, msg, line, len);
        } else {
                /* e.g. a second greeting, which QEMU 7.2 sends now and
                 * then when a client connected early */
                g_debug("QMP: ignoring a message: %.100s", line);
        }
        return TRUE;
}

/* Read once: the bytes buffered (> 0), 0 the socket is empty for now, -1
 * the connection is closed. */
static int read_once(QmpClient *c) {
        char buf[QMP_READ_CHUNK];
        ssize_t n;

        do
                n = read(c->fd, buf, sizeof(buf));
        while (n < 0 && errno == EINTR);
        if (n < 0 && errno == EAGAIN)
                return 0;
        if (n <= 0) {
                g_autofree char *reason = NULL;
                c->closed_by_peer = n == 0 || errno == ECONNRESET;
                reason = c->closed_by_peer ? g_strdup("QEMU closed the QMP socket")
                                           : g_strdup_printf("QMP read failed: %s", g_strerror(errno));
                qmp_shutdown(c, reason, TRUE);
                return -1;
        }
        qmp_stream_push(c->in, buf, n);
        return (int)n;
}

/* Handle buffered lines, reading only when none is complete (so at most
 * one partial line and one read are buffered), until @max_lines were
 * handled. TRUE if it stopped there: more lines may be waiting. */
static gboolean handle_input(QmpClient *c, guint max_lines) {
        gboolean socket_empty = FALSE;
        guint handled = 0;

        while (!c->closed && handled < max_lines) {
                g_autofree char *why = NULL;
                char *line;
                gsize len;
                int r = qmp_stream_pop(c->in, &line, &len);

                if (r < 0) {
                        g_warning("QMP: a message longer than %" G_GSIZE_FORMAT " bytes; closing the connection",
                                  c->max_line);
                        qmp_shutdown(c, "QEMU sent a QMP message over the size limit", TRUE);
                        return FALSE;
                }
                if (r == 0) {
                        /* A short read emptied the socket: no read that
                         * would only say EAGAIN (one syscall per reply). */
                        int n = socket_empty ? 0 : read_once(c);
                        if (n <= 0)
                                return FALSE;
                        socket_empty = n < QMP_READ_CHUNK;
                        continue;
                }
                if (!handle_line(c, line, len, &why)) {
                        g_warning("QMP: %s; closing the connection", why);
                        qmp_shutdown(c, why, TRUE);
                }
                g_free(line);
                handled++;
        }
        return !c->closed;
}

/* g_source_set_ready_time() wakes the main context (an eventfd write and
 * an extra loop iteration) every time: call it only for a change. */
static void set_ready_time(QmpClient *c, gint64 t) {
        if (c->ready_time == t)
                return;
        c->ready_time = t;
        g_source_set_ready_time(c->read_source, t);
}

/* The owner's output is backed up (the bus): stop polling the socket for
 * a moment, so QEMU's output waits in the socket, not in our queues. */
static gboolean throttle(QmpClient *c) {
        /* Only a connection that keeps us busy (its last slice was full)
         * asks: a reply now and then costs no look at the bus. */
        if (!c->busy || !c->cb.may_read || c->cb.may_read(c, c->userdata)) {
                if (c->throttled) {
                        g_source_modify_unix_fd(c->read_source, c->read_tag, G_IO_IN | G_IO_HUP | G_IO_ERR);
                        c->throttled = FALSE;
                }
                return FALSE;
        }
        if (!c->throttled) {
                g_source_modify_unix_fd(c->read_source, c->read_tag, 0);
                c->throttled = TRUE;
        }
        set_ready_time(c, g_get_monotonic_time() + QMP_THROTTLE_US);
        return TRUE;
}

static gboolean on_readable(gpointer data) {
        QmpClient *c = data;
        gboolean more, keep;

        if (throttle(c))
                return G_SOURCE_CONTINUE;
        qmp_ref(c);
        more = handle_input(c, QMP_LINES_PER_SLICE);
        c->busy = more;
        keep = !c->closed;
        /* Lines left in our buffer do not make the fd readable: come back
         * in the next iteration, after the other sources had their turn. */
        if (keep)
                set_ready_time(c, more ? 0 : -1);
        qmp_unref(c);
        return keep ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

void qmp_client_drain(QmpClient *c) {
        if (!c)
                return;
        qmp_ref(c);
        while (handle_input(c, G_MAXUINT))
                ;
        qmp_unref(c);
}

/* A peer without a greeting is ready at once, from the loop (never
 * from inside qmp_client_new()). */
static gboolean on_ready_now(gpointer data) {
        QmpClient *c = data;

        c->ready_id = 0;
        become_ready(c);
        return G_SOURCE_REMOVE;
}

QmpClient *qmp_client_new(int fd, const QmpClientOptions *options, const QmpCallbacks *cb, gpointer userdata) {
        QmpClient *c = g_new0(QmpClient, 1);

        c->refcount = 1;
        c->fd = fd;
        c->ready_time = -1;
        c->out = g_string_new(NULL);
        c->max_line = options->max_line ? options->max_line : QMP_MAX_LINE;
        c->in = qmp_stream_new(c->max_line);
        qmp_stream_set_sync_byte(c->in, options->sync_byte);
        c->quiet_strays = options->quiet_strays;
        c->parser = json_parser_new_immutable();
        c->pending = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, pending_free);
        c->next_id = options->first_id > 0 ? options->first_id : 1;
        c->timeout = options->timeout;
        c->cb = *cb;
        c->userdata = userdata;
        /* can_recurse: no block/unblock wakeups around every dispatch (see
         * bus-glib.c); there is no nested main loop here. */
        c->read_source = g_source_new(&read_source_funcs, sizeof(GSource));
        c->read_tag = g_source_add_unix_fd(c->read_source, fd, G_IO_IN | G_IO_HUP | G_IO_ERR);
        g_source_set_callback(c->read_source, on_readable, c, NULL);
        g_source_set_can_recurse(c->read_source, TRUE);
        g_source_attach(c->read_source, NULL);
        if (!options->greeting) {
                c->greeted = TRUE;
                c->ready_id = g_idle_add(on_ready_now, c);
        }
        return c;
}

void qmp_client_free(QmpClient *c) {
        if (!c)
                return;
        qmp_shutdown(c, "the machine closed its monitor", FALSE);
        qmp_unref(c);
}

void qmp_client_send_raw(QmpClient *c, const void *data, gsize len) {
        if (c->closed)
                return;
        g_string_append_len(c->out, data, len);
        c->queued += len;
        if (!c->write_id)
                qmp_flush(c);
}

int qmp_client_unread_by_peer(QmpClient *c) {
        int n = 0;

        if (!c || c->fd < 0 || ioctl(c->fd, SIOCOUTQ, &n) < 0)
                return -1;
        return n + (int)c->out->len;
}

gboolean qmp_client_closed_by_peer(QmpClient *c) {
        return c && c->closed_by_peer;
}

gboolean qmp_client_greeted(QmpClient *c) {
        return c && c->greeted;
}

const char *qmp_client_progress(QmpClient *c) {
        if (!c)
                return "no QMP connection";
        if (c->ready)
                return "QMP ready";
        return c->greeted ? "greeting received, qmp_capabilities unanswered" : "no QMP greeting received";
}

gboolean qmp_client_is_open(QmpClient *c) {
        return c && !c->closed;
}

gboolean qmp_client_is_ready(QmpClient *c) {
        return c && c->ready && !c->closed;
}

