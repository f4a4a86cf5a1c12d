/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The QMP client over a socketpair: the test is QEMU. It writes what QEMU
 * would (whole, split or batched lines) on its end and reads what the
 * client sends, while the default GMainContext runs the client.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "qmp.h"

#define GREETING "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7}}, \"capabilities\": []}}\n"
#define WAIT_US (5 * G_USEC_PER_SEC)

typedef struct {
        char *text;
        char *value;     /* the "return" member's text, or NULL */
        char *qmp_error; /* an error response's "CLASS: desc", or NULL */
        char *error;     /* a failure's error name, or NULL */
} Reply;

typedef struct {
        QmpClient *client;
        int peer;        /* QEMU's end of the socketpair */
        GString *from_client;
        guint ready;
        GPtrArray *events;  /* their text; "READY" marks when ready() ran */
        char *closed;       /* the reason closed() got */
        GPtrArray *replies; /* Reply, in the order the callbacks ran */
} Fixture;

static void reply_free(gpointer p) {
        Reply *r = p;
        g_free(r->text);
        g_free(r->value);
        g_free(r->qmp_error);
        g_free(r->error);
        g_free(r);
}

static void on_ready(QmpClient *c, JsonNode *greeting, gpointer data) {
        Fixture *f = data;
        f->ready++;
        g_ptr_array_add(f->events, g_strdup("READY"));
}

static void on_event(QmpClient *c, JsonNode *event, const char *text, gsize len, gpointer data) {
        Fixture *f = data;
        g_ptr_array_add(f->events, g_strndup(text, len));
}

static void on_closed(QmpClient *c, const char *reason, gpointer data) {
        Fixture *f = data;
        g_assert_null(f->closed);
        f->closed = g_strdup(reason);
}

static void on_reply(const QmpResponse *response, const QmError *failure, gpointer data) {
        Fixture *f = data;
        Reply *r = g_new0(Reply, 1);

        g_assert_true((failure == NULL) == (response != NULL));
        if (response) {
                g_assert_true((response->value == NULL) == (response->error != NULL));
                r->text = g_strdup(response->text);
                r->value = g_strdup(response->value);
                r->qmp_error = response->error ? g_strdup(response->error->message) : NULL;
        }
        r->error = failure ? g_strdup(failure->name) : NULL;
        g_ptr_array_add(f->replies, r);
}

/* Send @command with @arguments (JSON text or NULL). */
static void execute(Fixture *f, const char *command, const char *arguments, double timeout) {
        qmp_client_call(f->client, command, &(QmpCallOptions){ .arguments = arguments, .timeout = timeout },
                        on_reply, f);
}

static const QmpCallbacks callbacks = {
        .ready = on_ready,
        .event = on_event,
        .closed = on_closed,
};

static void fixture_setup(Fixture *f, gconstpointer data) {
        gboolean greeting = data == NULL; /* NULL: QEMU's monitor; else a peer without greeting */
        int sv[2];

        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), ==, 0);
        f->peer = sv[1];
        f->from_client = g_string_new(NULL);
        f->events = g_ptr_array_new_with_free_func(g_free);
        f->replies = g_ptr_array_new_with_free_func(reply_free);
        f->client = qmp_client_new(sv[0], &(QmpClientOptions){ .timeout = 5.0, .greeting = greeting }, &callbacks,
                                   f);
}

static void fixture_teardown(Fixture *f, gconstpointer data) {
        qmp_client_free(f->client);
        if (f->peer >= 0)
                close(f->peer);
        /* let the idle callbacks of the client (a closed client's answers) run */
        while (g_main_context_iteration(NULL, FALSE))
                ;
        g_string_free(f->from_client, TRUE);
        g_ptr_array_unref(f->events);
        g_ptr_array_unref(f->replies);
        g_free(f->closed);
}

/* Run the main context without blocking for a moment (~20 ms). */
static void spin(void) {
        for (int i = 0; i < 20; i++) {
                while (g_main_context_iteration(NULL, FALSE))
                        ;
                g_usleep(1000);
        }
}

/* Run the main context until *counter > @n or the deadline. */
static void run_until_more(const guint *counter, guint n) {
        gint64 deadline = g_get_monotonic_time() + WAIT_US;

        while (*counter <= n && g_get_monotonic_time() < deadline) {
                if (!g_main_context_iteration(NULL, FALSE))
                        g_usleep(1000);
        }
        g_assert_cmpuint(*counter, >, n);
}

static void run_until_closed(Fixture *f) {
        gint64 deadline = g_get_monotonic_time() + WAIT_US;

        while (!f->closed && g_get_monotonic_time() < deadline)
                if (!g_main_context_iteration(NULL, FALSE))
                        g_usleep(1000);
        g_assert_nonnull(f->closed);
}

static void peer_write(Fixture *f, const char *text) {
        gsize len = strlen(text);

        g_assert_cmpint(write(f->peer, text, len), ==, (gssize)len);
}

/* Take what the client sent so far into f->from_client. */
static void peer_drain(Fixture *f) {
        char buf[4096];
        ssize_t n;

        while ((n = read(f->peer, buf, sizeof(buf))) > 0)
                g_string_append_len(f->from_client, buf, n);
        g_assert_true(n < 0 && errno == EAGAIN);
}

/* The next line the client sends, without its newline. */
static char *peer_read_line(Fixture *f) {
        gint64 deadline = g_get_monotonic_time() + WAIT_US;
        const char *nl;

        while (!(nl = strchr(f->from_client->str, '\n'))) {
                g_assert_cmpint(g_get_monotonic_time(), <, deadline);
                if (!g_main_context_iteration(NULL, FALSE))
                        g_usleep(1000);
                peer_drain(f);
        }
        char *line = g_strndup(f->from_client->str, nl - f->from_client->str);
        g_string_erase(f->from_client, 0, nl - f->from_client->str + 1);
        return line;
}

static void peer_expect_line(Fixture *f, const char *expected) {
        g_autofree char *line = peer_read_line(f);
        g_assert_cmpstr(line, ==, expected);
}

static void peer_expect_nothing(Fixture *f) {
        spin();
        peer_drain(f);
        g_assert_cmpstr(f->from_client->str, ==, "");
}

/* Greeting, qmp_capabilities (id @cap_id) and its answer. */
static void handshake(Fixture *f, int cap_id) {
        g_autofree char *cap = g_strdup_printf("{\"execute\":\"qmp_capabilities\",\"id\":%d}", cap_id);
        g_autofree char *answer = g_strdup_printf("{\"return\": {}, \"id\": %d}\n", cap_id);

        peer_write(f, GREETING);
        peer_expect_line(f, cap);
        g_assert_cmpuint(f->ready, ==, 0);
        peer_write(f, answer);
        run_until_more(&f->ready, 0);
        g_assert_true(qmp_client_is_ready(f->client));
}

static Reply *reply_at(Fixture *f, guint i) {
        g_assert_cmpuint(f->replies->len, >, i);
        return f->replies->pdata[i];
}

static void test_command_and_reply(Fixture *f, gconstpointer data) {
        handshake(f, 1);
        execute(f, "query-status", NULL, 5.0);
        g_assert_cmpuint(f->replies->len, ==, 0); /* never from inside execute() */
        peer_expect_line(f, "{\"execute\":\"query-status\",\"id\":2}");
        peer_write(f, "{\"return\": {\"status\": \"running\", \"n\": 1.50}, \"id\": 2}\n");
        run_until_more(&f->replies->len, 0);
        /* our id cut, QEMU's number text kept */
        g_assert_cmpstr(reply_at(f, 0)->text, ==, "{\"return\": {\"status\": \"running\", \"n\": 1.50}}");
        g_assert_cmpstr(reply_at(f, 0)->value, ==, "{\"status\": \"running\", \"n\": 1.50}");
        g_assert_null(reply_at(f, 0)->error);
        g_assert_null(f->closed);
}

static void test_arguments_and_error_reply(Fixture *f, gconstpointer data) {
        handshake(f, 1);
        execute(f, "human-monitor-command", "{\"command-line\": \"info \\\"x\\\"\"}", 5.0);
        peer_expect_line(f, "{\"execute\":\"human-monitor-command\","
                            "\"arguments\":{\"command-line\": \"info \\\"x\\\"\"},\"id\":2}");
        /* the id anywhere in the object, not only last */
        peer_write(f, "{\"id\": 2, \"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}}\n");
        run_until_more(&f->replies->len, 0);
        g_assert_nonnull(strstr(reply_at(f, 0)->text, "\"GenericError\""));
        g_assert_null(strstr(reply_at(f, 0)->text, "\"id\""));
        g_assert_nonnull(reply_at(f, 0)->qmp_error);
        g_assert_true(g_str_has_prefix(reply_at(f, 0)->qmp_error, "GenericError: "));
        g_assert_null(reply_at(f, 0)->value);
}

/* A line split at every byte, then several lines in one write, answered
 * out of order: each reply goes to its own command. */
static void test_split_and_batched_lines(Fixture *f, gconstpointer data) {
        const char *greeting = GREETING;

        for (const char *p = greeting; *p; p++) {
                char one[2] = { *p, 0 };
                peer_write(f, one);
                while (g_main_context_iteration(NULL, FALSE))
                        ;
                if (p[1])
                        g_assert_false(qmp_client_greeted(f->client));
        }
        peer_expect_line(f, "{\"execute\":\"qmp_capabilities\",\"id\":1}");
        peer_write(f, "{\"return\": {}, \"id\": 1}\n");
        run_until_more(&f->ready, 0);

        execute(f, "a", NULL, 5.0);
        execute(f, "b", NULL, 5.0);
        execute(f, "c", NULL, 5.0);
        peer_expect_line(f, "{\"execute\":\"a\",\"id\":2}");
        peer_expect_line(f, "{\"execute\":\"b\",\"id\":3}");
        peer_expect_line(f, "{\"execute\":\"c\",\"id\":4}");
        peer_write(f, "{\"return\": \"c\", \"id\": 4}\n"
                      "{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\n"
                      "{\"return\": \"a\", \"id\": 2}\n{\"return\": \"b\", \"id\": 3}\n");
        run_until_more(&f->replies->len, 2);
        g_assert_cmpstr(reply_at(f, 0)->text, ==, "{\"return\": \"c\"}");
        g_assert_cmpstr(reply_at(f, 1)->text, ==, "{\"return\": \"a\"}");
        g_assert_cmpstr(reply_at(f, 2)->text, ==, "{\"return\": \"b\"}");
        g_assert_cmpuint(f->events->len, ==, 2);
        g_assert_cmpstr(f->events->pdata[1], ==,
                        "{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}");
}

/* A command that times out is failed with Timeout; QEMU's late answer to
 * its id is dropped, and the connection goes on. */
static void test_timeout_and_late_reply(Fixture *f, gconstpointer data) {
        handshake(f, 1);
        execute(f, "slow", NULL, 0.1);
        execute(f, "patient", NULL, 0);
        peer_expect_line(f, "{\"execute\":\"slow\",\"id\":2}");
        peer_expect_line(f, "{\"execute\":\"patient\",\"id\":3}");
        run_until_more(&f->replies->len, 0);
        g_assert_cmpstr(reply_at(f, 0)->error, ==, QM_ERROR_TIMEOUT);

        peer_write(f, "{\"return\": \"late\", \"id\": 2}\n");
        spin();
        g_assert_cmpuint(f->replies->len, ==, 1);
        g_assert_null(f->closed);

        /* the command without a timeout still waits, and gets its answer */
        peer_write(f, "{\"return\": \"patient\", \"id\": 3}\n");
        run_until_more(&f->replies->len, 1);
        g_assert_cmpstr(reply_at(f, 1)->text, ==, "{\"return\": \"patient\"}");
}

/* Events before the greeting and before qmp_capabilities is answered are
 * kept and handed on after ready(), in order. */
static void test_early_events(Fixture *f, gconstpointer data) {
        peer_write(f, "{\"event\": \"E1\", \"timestamp\": {}}\n");
        peer_write(f, GREETING);
        peer_expect_line(f, "{\"execute\":\"qmp_capabilities\",\"id\":1}");
        peer_write(f, "{\"event\": \"E2\", \"timestamp\": {}}\n");
        spin();
        g_assert_cmpuint(f->events->len, ==, 0);
        peer_write(f, "{\"return\": {}, \"id\": 1}\n{\"event\": \"E3\", \"timestamp\": {}}\n");
        run_until_more(&f->events->len, 3);
        g_assert_cmpstr(f->events->pdata[0], ==, "READY");
        g_assert_cmpstr(f->events->pdata[1], ==, "{\"event\": \"E1\", \"timestamp\": {}}");
        g_assert_cmpstr(f->events->pdata[2], ==, "{\"event\": \"E2\", \"timestamp\": {}}");
        g_assert_cmpstr(f->events->pdata[3], ==, "{\"event\": \"E3\", \"timestamp\": {}}");
}

/* Commands issued before the handshake are held (QEMU refuses anything
 * but qmp_capabilities until then) and sent after it, in order. */
static void test_held_commands(Fixture *f, gconstpointer data) {
        execute(f, "first", "{\"a\": 1}", 5.0);
        execute(f, "second", NULL, 5.0);
        peer_expect_nothing(f);

        peer_write(f, GREETING);
        peer_expect_line(f, "{\"execute\":\"qmp_capabilities\",\"id\":3}");
        peer_expect_nothing(f);
        peer_write(f, "{\"return\": {}, \"id\": 3}\n");
        peer_expect_line(f, "{\"execute\":\"first\",\"arguments\":{\"a\": 1},\"id\":1}");
        peer_expect_line(f, "{\"execute\":\"second\",\"id\":2}");
        g_assert_cmpuint(f->ready, ==, 1);
        peer_write(f, "{\"return\": 2, \"id\": 2}\n{\"return\": 1, \"id\": 1}\n");
        run_until_more(&f->replies->len, 1);
        g_assert_cmpstr(reply_at(f, 0)->text, ==, "{\"return\": 2}");
        g_assert_cmpstr(reply_at(f, 1)->text, ==, "{\"return\": 1}");
}

/* A held command whose timeout passes before the handshake is failed and
 * never sent. */
static void test_held_command_times_out(Fixture *f, gconstpointer data) {
        execute(f, "never", NULL, 0.05);
        run_until_more(&f->replies->len, 0);
        g_assert_cmpstr(reply_at(f, 0)->error, ==, QM_ERROR_TIMEOUT);
        handshake(f, 2);
        peer_expect_nothing(f);
}

/* SCM_RIGHTS: the fd arrives with the bytes of its command. */
static void test_execute_with_fd(Fixture *f, gconstpointer data) {
        int pipefd[2];
        char buf[256] = { 0 };
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int))];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) - 1 };
        struct msghdr msg = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = control.buf,
                .msg_controllen = sizeof(control.buf),
        };
        g_autoptr(JsonNode) args = json_from_string("{\"fdname\": \"f\"}", NULL);
        struct cmsghdr *cmsg;
        int got = -1;
        ssize_t n;
        gint64 deadline = g_get_monotonic_time() + WAIT_US;

        handshake(f, 1);
        g_assert_cmpint(pipe(pipefd), ==, 0);
        qmp_client_call(f->client, "getfd",
                        &(QmpCallOptions){ .arguments_node = args, .timeout = 5.0, .with_fd = TRUE, .fd = pipefd[1] },
                        on_reply, f);
        while ((n = recvmsg(f->peer, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EAGAIN) {
                g_assert_cmpint(g_get_monotonic_time(), <, deadline);
                g_main_context_iteration(NULL, FALSE);
                g_usleep(1000);
        }
        g_assert_cmpint(n, >, 0);
        g_assert_nonnull(g_strstr_len(buf, n, "\"execute\":\"getfd\""));
        g_assert_true(buf[n - 1] == '\n');
        cmsg = CMSG_FIRSTHDR(&msg);
        g_assert_nonnull(cmsg);
        g_assert_cmpint(cmsg->cmsg_level, ==, SOL_SOCKET);
        g_assert_cmpint(cmsg->cmsg_type, ==, SCM_RIGHTS);
        memcpy(&got, CMSG_DATA(cmsg), sizeof(int));

        /* it is the pipe's write end: what goes in comes out of ours */
        g_assert_cmpint(write(got, "x", 1), ==, 1);
        g_assert_cmpint(read(pipefd[0], buf, 1), ==, 1);
        g_assert_cmpint(buf[0], ==, 'x');
        close(got);
        close(pipefd[0]);
}

/* The peer goes away: pending commands get QmpDisconnected, then closed()
 * runs; a command issued after that is answered the same way, later. */
static void test_disconnect_fails_pending(Fixture *f, gconstpointer data) {
        handshake(f, 1);
        execute(f, "a", NULL, 5.0);
        execute(f, "b", NULL, 0);
        peer_expect_line(f, "{\"execute\":\"a\",\"id\":2}");
        close(f->peer);
        f->peer = -1;
        run_until_closed(f);
        g_assert_cmpuint(f->replies->len, ==, 2);
        g_assert_cmpstr(reply_at(f, 0)->error, ==, QM_ERROR_QMP_DISCONNECTED);
        g_assert_cmpstr(reply_at(f, 1)->error, ==, QM_ERROR_QMP_DISCONNECTED);
        g_assert_false(qmp_client_is_open(f->client));

        execute(f, "c", NULL, 5.0);
        g_assert_cmpuint(f->replies->len, ==, 2);
        run_until_more(&f->replies->len, 2);
        g_assert_cmpstr(reply_at(f, 2)->error, ==, QM_ERROR_QMP_DISCONNECTED);
}

/* A line that breaks the protocol closes the connection. */
static void expect_closed_by(Fixture *f, const char *line, const char *why) {
        g_autofree char *pattern = g_strdup_printf("*%s*", why);

        handshake(f, 1);
        execute(f, "pending", NULL, 5.0);
        peer_expect_line(f, "{\"execute\":\"pending\",\"id\":2}");
        g_test_expect_message(G_LOG_DOMAIN, G_LOG_LEVEL_WARNING, pattern);
        peer_write(f, line);
        run_until_closed(f);
        g_test_assert_expected_messages();
        g_assert_nonnull(strstr(f->closed, why));
        g_assert_cmpuint(f->replies->len, ==, 1);
        g_assert_cmpstr(reply_at(f, 0)->error, ==, QM_ERROR_QMP_DISCONNECTED);
        g_assert_cmpuint(f->events->len, ==, 1); /* READY only */
}

static void test_malformed_event_name(Fixture *f, gconstpointer data) {
        expect_closed_by(f, "{\"event\": \"BAD NAME\\n\", \"timestamp\": {}}\n", "malformed name");
}

static void test_event_name_not_a_string(Fixture *f, gconstpointer data) {
        expect_closed_by(f, "{\"event\": 7, \"timestamp\": {}}\n", "not a string");
}

static void test_lone_surrogate(Fixture *f, gconstpointer data) {
        expect_closed_by(f, "{\"return\": \"\\ud800\", \"id\": 2}\n", "invalid JSON");
}

static void test_not_an_object(Fixture *f, gconstpointer data) {
        expect_closed_by(f, "[1, 2]\n", "not a JSON object");
}

static void test_first_message_not_a_greeting(Fixture *f, gconstpointer data) {
        g_test_expect_message(G_LOG_DOMAIN, G_LOG_LEVEL_WARNING, "*not a greeting*");
        peer_write(f, "{\"return\": {}, \"id\": 1}\n");
        run_until_closed(f);
        g_test_assert_expected_messages();
        g_assert_cmpuint(f->ready, ==, 0);
}

/* A peer that does not greet (the guest agent): ready from the loop,
 * commands go out at once, no qmp_capabilities. */
static void test_peer_without_greeting(Fixture *f, gconstpointer data) {
        g_assert_cmpuint(f->ready, ==, 0); /* never from inside qmp_client_new() */
        run_until_more(&f->ready, 0);
        execute(f, "guest-ping", NULL, 5.0);
        peer_expect_line(f, "{\"execute\":\"guest-ping\",\"id\":1}");
        peer_write(f, "{\"return\": {}, \"id\": 1}\n");
        run_until_more(&f->replies->len, 0);
        g_assert_cmpstr(reply_at(f, 0)->value, ==, "{}");
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
#define ADD(name, fn) g_test_add(name, Fixture, NULL, fixture_setup, fn, fixture_teardown)
        g_test_add("/qmp/peer-without-greeting", Fixture, "no greeting", fixture_setup, test_peer_without_greeting,
                   fixture_teardown);
        ADD("/qmp/command-and-reply", test_command_and_reply);
        ADD("/qmp/arguments-and-error-reply", test_arguments_and_error_reply);
        ADD("/qmp/split-and-batched-lines", test_split_and_batched_lines);
        ADD("/qmp/timeout-and-late-reply", test_timeout_and_late_reply);
        ADD("/qmp/early-events", test_early_events);
        ADD("/qmp/held-commands", test_held_commands);
        ADD("/qmp/held-command-times-out", test_held_command_times_out);
        ADD("/qmp/execute-with-fd", test_execute_with_fd);
        ADD("/qmp/disconnect-fails-pending", test_disconnect_fails_pending);
        ADD("/qmp/malformed-event-name", test_malformed_event_name);
        ADD("/qmp/event-name-not-a-string", test_event_name_not_a_string);
        ADD("/qmp/lone-surrogate", test_lone_surrogate);
        ADD("/qmp/not-an-object", test_not_an_object);
        ADD("/qmp/first-message-not-a-greeting", test_first_message_not_a_greeting);
#undef ADD
        return g_test_run();
}
