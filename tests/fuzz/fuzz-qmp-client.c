/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The whole QMP client against a hostile QEMU on a socketpair: the input
 * is what "QEMU" sends (greeting, replies, events, garbage), written at
 * fuzzer-chosen boundaries while the client runs on the main context and
 * commands are issued in between. Every reply callback runs exactly once
 * and never from inside execute(), and everything the client hands on
 * (reply text, events, error messages, the reason of a close) is fit for
 * D-Bus: valid UTF-8 without NUL.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "events.h"
#include "fuzz-common.h"
#include "json-util.h"
#include "qmp.h"

#define MAX_COMMANDS 16

typedef struct {
        int calls;
        gboolean text_only;
} Command;

static gboolean in_execute;

static void check_strings(JsonNode *node) {
        switch (JSON_NODE_TYPE(node)) {
        case JSON_NODE_OBJECT: {
                JsonObjectIter it;
                const char *key;
                JsonNode *val;
                json_object_iter_init(&it, json_node_get_object(node));
                while (json_object_iter_next(&it, &key, &val)) {
                        fuzz_assert(fuzz_text_ok(key, -1), "a key is not valid UTF-8");
                        check_strings(val);
                }
                break;
        }
        case JSON_NODE_ARRAY: {
                JsonArray *a = json_node_get_array(node);
                for (guint i = 0; i < json_array_get_length(a); i++)
                        check_strings(json_array_get_element(a, i));
                break;
        }
        case JSON_NODE_VALUE:
                if (json_node_get_value_type(node) == G_TYPE_STRING)
                        fuzz_assert(fuzz_text_ok(json_node_get_string(node), -1), "a string is not valid UTF-8");
                break;
        case JSON_NODE_NULL:
                break;
        }
}

/* What goes to D-Bus as JSON text. */
static void check_json_text(const char *text) {
        fuzz_assert(fuzz_text_ok(text, -1), "JSON text is not valid UTF-8: %.200s", text);
        fuzz_assert(qm_json_check(text, NULL), "not valid JSON: %.200s", text);
}

static void check_error(const QmError *error) {
        fuzz_assert(g_str_has_prefix(error->name, QM_ERROR_PREFIX), "error %s", error->name);
        fuzz_assert(fuzz_text_ok(error->message, -1), "error message not valid UTF-8: %.200s", error->message);
}

static void on_reply(const QmpResponse *response, const QmError *failure, gpointer data) {
        Command *cmd = data;
        JsonNode *reply;
        const char *text;

        fuzz_assert(!in_execute, "a reply callback ran from inside execute()");
        fuzz_assert(++cmd->calls == 1, "a reply callback ran %d times", cmd->calls);
        if (failure) {
                fuzz_assert(!response, "a failure came with a response");
                check_error(failure);
                return;
        }
        reply = response->node;
        text = response->text;
        fuzz_assert(text, "a reply without text");
        check_json_text(text);
        fuzz_assert(qm_json_text_is_object(text), "reply text is not an object: %.200s", text);
        /* exactly one of: the return value's text, an error */
        fuzz_assert((response->value != NULL) != (response->error != NULL), "value %p, error %p",
                    (void *)response->value, (void *)response->error);
        if (response->value)
                check_json_text(response->value);
        else
                check_error(response->error);
        if (reply) {
                JsonObject *obj;
                fuzz_assert(JSON_NODE_HOLDS_OBJECT(reply), "reply is not an object");
                obj = json_node_get_object(reply);
                fuzz_assert(json_object_has_member(obj, "return") || json_object_has_member(obj, "error"),
                            "reply without return or error");
                check_strings(reply);
        } else {
                fuzz_assert(cmd->text_only, "no reply tree for a command that wants one");
        }
}

static void on_ready(QmpClient *c, JsonNode *greeting, gpointer data) {
        fuzz_assert(greeting && JSON_NODE_HOLDS_OBJECT(greeting), "greeting is not an object");
        check_strings(greeting);
}

/* The event as the daemon keeps and sends it (events.c): QEMU's own
 * text, compacted, and its "data" member's. */
static void on_event(QmpClient *c, JsonNode *event, const char *text, gsize len, gpointer data) {
        g_autoptr(QmEvent) e = NULL;

        fuzz_assert(fuzz_text_ok(text, len) && qm_json_check_len(text, len, NULL), "event text: %.200s", text);
        fuzz_assert(JSON_NODE_HOLDS_OBJECT(event), "event is not an object");
        fuzz_assert(qm_json_get_string(json_node_get_object(event), "event", NULL), "event without a name");
        check_strings(event);
        e = qm_event_new(event, text, len, 1);
        check_json_text(e->json);
        check_json_text(e->data_json);
        fuzz_assert(*e->name && fuzz_text_ok(e->name, -1), "event name: %.200s", e->name);
}

static void on_closed(QmpClient *c, const char *reason, gpointer data) {
        gboolean *closed = data;

        fuzz_assert(!*closed, "closed twice");
        *closed = TRUE;
        fuzz_assert(fuzz_text_ok(reason, -1), "close reason not valid UTF-8: %.200s", reason);
}

static void iterate(void) {
        while (g_main_context_iteration(NULL, FALSE))
                ;
}

/* Read what the client sent: every line one JSON command. */
static void drain_peer(int peer, GString *sent) {
        char buf[4096];
        ssize_t n;
        char *nl;

        while ((n = read(peer, buf, sizeof(buf))) > 0)
                g_string_append_len(sent, buf, n);
        while ((nl = memchr(sent->str, '\n', sent->len))) {
                *nl = 0;
                check_json_text(sent->str);
                g_string_erase(sent, 0, nl - sent->str + 1);
        }
}

/* FALSE when the client has closed the connection. */
static gboolean write_all(int peer, const uint8_t *data, gsize len, GString *sent) {
        while (len > 0) {
                ssize_t n = send(peer, data, len, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EPIPE || errno == ECONNRESET)
                                return FALSE;
                        fuzz_assert(errno == EAGAIN, "write to the client: %s", g_strerror(errno));
                        iterate();
                        drain_peer(peer, sent);
                        continue;
                }
                data += n;
                len -= n;
        }
        return TRUE;
}

static void issue(QmpClient *c, Command *cmd, guint kind) {
        in_execute = TRUE;
        switch (kind % 4) {
        case 0:
                qmp_client_call(c, "query-status", &(QmpCallOptions){ 0 }, on_reply, cmd);
                break;
        case 1:
                qmp_client_call(c, "human-monitor-command",
                                &(QmpCallOptions){ .arguments = "{\"command-line\": \"info version\"}",
                                                   .timeout = 1000 },
                                on_reply, cmd);
                break;
        case 2:
                cmd->text_only = TRUE;
                qmp_client_call(c, "query-version", &(QmpCallOptions){ .text_only = TRUE }, on_reply, cmd);
                break;
        default: {
                g_autoptr(JsonNode) args = json_from_string("{\"fdname\": \"fuzz\"}", NULL);
                qmp_client_call(c, "getfd",
                                &(QmpCallOptions){ .arguments_node = args, .with_fd = TRUE,
                                                   .fd = open("/dev/null", O_RDONLY | O_CLOEXEC) },
                                on_reply, cmd);
                break;
        }
        }
        in_execute = FALSE;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        /* the client warns when it closes a connection QEMU broke */
        fuzz_init_logging(FALSE);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const QmpCallbacks cb = { .ready = on_ready, .event = on_event, .closed = on_closed };
        Command cmds[MAX_COMMANDS] = { { 0 } };
        guint ncmds = 0;
        g_autoptr(GString) sent = g_string_new(NULL);
        gboolean closed = FALSE, hang_up;
        FuzzSplit split;
        QmpClient *c;
        gsize off = 0;
        int sv[2];

        if (!fuzz_split_init(&split, &data, &size))
                return 0;
        hang_up = split.state & 1;
        fuzz_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
        c = qmp_client_new(sv[0], &(QmpClientOptions){ .greeting = TRUE }, &cb, &closed);
        while (off < size) {
                gsize n = fuzz_split_next(&split, size - off);
                gboolean open = write_all(sv[1], data + off, n, sent);
                off = open ? off + n : size;
                iterate();
                drain_peer(sv[1], sent);
                /* now and then a command, of a kind the split picks */
                if (ncmds < MAX_COMMANDS && split.state % 3 == 0) {
                        issue(c, &cmds[ncmds], split.state >> 8);
                        ncmds++;
                }
        }
        if (hang_up) {
                /* QEMU exits: the client must notice and fail what is pending */
                close(sv[1]);
                sv[1] = -1;
                qmp_client_drain(c);
                fuzz_assert(closed, "the client did not see QEMU hang up");
                iterate();
        }
        qmp_client_free(c);
        iterate();
        if (sv[1] >= 0)
                close(sv[1]);
        fuzz_assert(fcntl(sv[0], F_GETFD) < 0 && errno == EBADF, "the client did not close its socket");
        for (guint i = 0; i < ncmds; i++)
                fuzz_assert(cmds[i].calls == 1, "command %u: its callback ran %d times", i, cmds[i].calls);
        return 0;
}
