/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guest agent's answers (guest-reply.c): whatever the guest sends,
 * only what fits qemu-ga's schema and what was asked is taken. */
#include <string.h>

#include "guest-reply.h"
#include "json-util.h"

#define MIB (1024u * 1024)

/* The "return" member of @text, kept alive by *@keep. */
static JsonNode *ret_of(const char *text, JsonNode **keep) {
        g_autoptr(GError) err = NULL;

        *keep = qm_json_parse(text, -1, &err);
        g_assert_no_error(err);
        return qm_guest_reply_return(*keep);
}

static JsonObject *obj_of(const char *text, JsonNode **keep) {
        ret_of(text, keep);
        return qm_guest_reply_return_object(*keep);
}

static gint64 pid_of(const char *text) {
        g_autoptr(JsonNode) keep = NULL;
        return qm_guest_reply_exec_pid(obj_of(text, &keep));
}

static void test_exec_pid(void) {
        g_assert_cmpint(pid_of("{\"return\": {\"pid\": 1234}}"), ==, 1234);
        g_assert_cmpint(pid_of("{\"return\": {\"pid\": 0}}"), ==, -1);
        g_assert_cmpint(pid_of("{\"return\": {\"pid\": -5}}"), ==, -1);
        g_assert_cmpint(pid_of("{\"return\": {\"pid\": \"12\"}}"), ==, -1);
        g_assert_cmpint(pid_of("{\"return\": {\"pid\": 12.0}}"), ==, -1);
        g_assert_cmpint(pid_of("{\"return\": {}}"), ==, -1);
        g_assert_cmpint(pid_of("{\"return\": 12}"), ==, -1);
        g_assert_cmpint(pid_of("{\"error\": {\"class\": \"GenericError\", \"desc\": \"x\"}}"), ==, -1);
        g_assert_cmpint(qm_guest_reply_exec_pid(NULL), ==, -1);
        g_assert_null(qm_guest_reply_return(NULL));
}

/* Parse @text's status with @max output bytes; the verdict. */
static gboolean status_of(const char *text, gsize max, QmGuestExecStatus *st, const char **why) {
        g_autoptr(JsonNode) keep = NULL;
        *why = NULL;
        return qm_guest_reply_exec_status(obj_of(text, &keep), max, st, why);
}

static void assert_bytes(GBytes *b, const char *expected) {
        g_assert_nonnull(b);
        g_assert_cmpmem(g_bytes_get_data(b, NULL), g_bytes_get_size(b), expected, strlen(expected));
}

static void test_exec_running(void) {
        static const char *const running[] = {
                "{\"return\": {\"exited\": false}}",
                "{\"return\": {\"exited\": \"true\", \"exitcode\": 0}}",
                "{\"return\": {\"exited\": 1, \"exitcode\": 0}}",
                "{\"return\": {}}",
                "{\"return\": [true]}",
        };

        for (gsize i = 0; i < G_N_ELEMENTS(running); i++) {
                g_auto(QmGuestExecStatus) st = { 0 };
                const char *why;
                g_assert_true(status_of(running[i], 64, &st, &why));
                g_assert_false(st.exited);
                g_assert_null(st.out);
        }
}

static void test_exec_exited(void) {
        g_auto(QmGuestExecStatus) a = { 0 }, b = { 0 }, c = { 0 };
        const char *why;

        /* as qemu-ga 7.2 prints it */
        g_assert_true(status_of("{\"return\": {\"exitcode\": 3, \"out-data\": \"aGVsbG8K\", \"exited\": true}}",
                                64, &a, &why));
        g_assert_true(a.exited);
        g_assert_cmpint(a.code, ==, 3);
        assert_bytes(a.out, "hello\n");
        assert_bytes(a.err, "");
        g_assert_true(status_of("{\"return\": {\"exited\": true, \"signal\": 9, \"err-data\": \"b29wcw==\"}}",
                                64, &b, &why));
        g_assert_cmpint(b.code, ==, -9);
        assert_bytes(b.err, "oops");
        /* the exit code wins; out-data of another type is no output */
        g_assert_true(
                status_of("{\"return\": {\"exited\": true, \"exitcode\": 0, \"signal\": 9, \"out-data\": 5}}",
                          64, &c, &why));
        g_assert_cmpint(c.code, ==, 0);
        assert_bytes(c.out, "");
}

static gint32 code_of(const char *text) {
        g_auto(QmGuestExecStatus) st = { 0 };
        const char *why;
        g_assert_true(status_of(text, 64, &st, &why));
        return st.code;
}

static void test_exec_code_range(void) {
        g_assert_cmpint(code_of("{\"return\": {\"exited\": true, \"exitcode\": 1099511627776}}"), ==,
                        G_MAXINT32);
        g_assert_cmpint(code_of("{\"return\": {\"exited\": true, \"exitcode\": -1099511627776}}"), ==,
                        G_MININT32);
        g_assert_cmpint(code_of("{\"return\": {\"exited\": true, \"signal\": -9223372036854775808}}"), ==,
                        G_MAXINT32);
        g_assert_cmpint(code_of("{\"return\": {\"exited\": true, \"signal\": 9223372036854775807}}"), ==,
                        G_MININT32);
}

static void test_exec_no_code(void) {
        static const char *const bad[] = {
                "{\"return\": {\"exited\": true}}",
                "{\"return\": {\"exited\": true, \"exitcode\": \"0\"}}",
                "{\"return\": {\"exited\": true, \"exitcode\": 0.0}}",
                "{\"return\": {\"exited\": true, \"exitcode\": null, \"signal\": true}}",
        };

        for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
                g_auto(QmGuestExecStatus) st = { 0 };
                const char *why;
                g_assert_false(status_of(bad[i], 64, &st, &why));
                g_assert_nonnull(why);
                g_assert_null(st.out);
                g_assert_null(st.err);
        }
}

/* Characters outside the alphabet are skipped, as g_base64_decode()
 * does; what is left decodes. */
static void test_exec_bad_base64(void) {
        g_auto(QmGuestExecStatus) a = { 0 }, b = { 0 };
        const char *why;

        g_assert_true(status_of("{\"return\": {\"exited\": true, \"exitcode\": 0, \"out-data\": \"****\"}}",
                                64, &a, &why));
        assert_bytes(a.out, "");
        g_assert_true(status_of("{\"return\": {\"exited\": true, \"exitcode\": 0, \"out-data\": \"aGV*sbG8K\"}}",
                                64, &b, &why));
        assert_bytes(b.out, "hello\n");
}

static void test_exec_output_cap(void) {
        g_auto(QmGuestExecStatus) st = { 0 };
        g_autoptr(JsonObject) ret = json_object_new();
        g_autofree guchar *big = g_malloc(16 * MIB + 4);
        g_autofree char *b64 = NULL;
        const char *why;

        /* a small cap: the bytes up to it */
        g_assert_true(
                status_of("{\"return\": {\"exited\": true, \"exitcode\": 0, \"out-data\": \"aGVsbG8K\", "
                          "\"err-data\": \"aGVsbG8K\"}}",
                          4, &st, &why));
        assert_bytes(st.out, "hell");
        assert_bytes(st.err, "hell");
        qm_guest_exec_status_clear(&st);

        /* the daemon's 16 MiB: what comes after is never decoded */
        for (gsize i = 0; i < 16 * MIB + 4; i++)
                big[i] = (guchar)(i * 7);
        b64 = g_base64_encode(big, 16 * MIB + 4);
        json_object_set_boolean_member(ret, "exited", TRUE);
        json_object_set_int_member(ret, "exitcode", 0);
        json_object_set_string_member(ret, "out-data", b64);
        g_assert_true(qm_guest_reply_exec_status(ret, 16 * MIB, &st, &why));
        g_assert_cmpmem(g_bytes_get_data(st.out, NULL), g_bytes_get_size(st.out), big, 16 * MIB);
        assert_bytes(st.err, "");
}

static gint64 handle_of(const char *text) {
        g_autoptr(JsonNode) keep = NULL;
        return qm_guest_reply_file_handle(ret_of(text, &keep));
}

static void test_file_handle(void) {
        g_assert_cmpint(handle_of("{\"return\": 1000}"), ==, 1000);
        g_assert_cmpint(handle_of("{\"return\": 0}"), ==, 0);
        g_assert_cmpint(handle_of("{\"return\": -1}"), ==, -1);
        g_assert_cmpint(handle_of("{\"return\": \"7\"}"), ==, -1);
        g_assert_cmpint(handle_of("{\"return\": 7.0}"), ==, -1);
        g_assert_cmpint(handle_of("{\"return\": null}"), ==, -1);
        g_assert_cmpint(handle_of("{\"return\": {\"handle\": 7}}"), ==, -1);
        g_assert_cmpint(handle_of("{}"), ==, -1);
}

static gint64 written_of(const char *text) {
        g_autoptr(JsonNode) keep = NULL;
        return qm_guest_reply_file_written(obj_of(text, &keep));
}

static void test_file_written(void) {
        g_assert_cmpint(written_of("{\"return\": {\"count\": 5, \"eof\": false}}"), ==, 5);
        g_assert_cmpint(written_of("{\"return\": {\"count\": \"5\"}}"), ==, -1);
        g_assert_cmpint(written_of("{\"return\": {}}"), ==, -1);
        g_assert_cmpint(written_of("{\"return\": 5}"), ==, -1);
}

/* guest-file-read's answer with @max: the data, or NULL and *@why. */
static GBytes *read_of(const char *text, gsize max, gboolean *eof, const char **why) {
        g_autoptr(JsonNode) keep = NULL;
        *eof = FALSE;
        *why = NULL;
        return qm_guest_reply_file_read(obj_of(text, &keep), max, eof, why);
}

static void test_file_read(void) {
        const char *why;
        gboolean eof;
        g_autoptr(GBytes) a = read_of(
                "{\"return\": {\"count\": 5, \"buf-b64\": \"aGVsbG8=\", \"eof\": true}}", 5, &eof, &why);
        g_autoptr(GBytes) b = NULL, c = NULL, d = NULL;

        assert_bytes(a, "hello");
        g_assert_true(eof);
        b = read_of("{\"return\": {\"count\": 5, \"buf-b64\": \"aGVsbG8=\", \"eof\": false}}", 8, &eof, &why);
        assert_bytes(b, "hello");
        g_assert_false(eof);
        /* nothing read is the end, whatever eof says; buf-b64 absent or
         * of another type is nothing */
        c = read_of("{\"return\": {\"count\": 0, \"buf-b64\": \"\", \"eof\": false}}", 8, &eof, &why);
        assert_bytes(c, "");
        g_assert_true(eof);
        d = read_of("{\"return\": {\"count\": 0, \"buf-b64\": 42}}", 8, &eof, &why);
        assert_bytes(d, "");
        g_assert_true(eof);
}

static void test_file_read_malformed(void) {
        static const char *const bad[] = {
                "{\"return\": {\"buf-b64\": \"aGVsbG8=\", \"eof\": false}}",
                "{\"return\": {\"count\": \"5\", \"buf-b64\": \"aGVsbG8=\"}}",
                "{\"return\": {\"count\": -1, \"buf-b64\": \"\"}}",
                "{\"return\": {\"count\": 9223372036854775807, \"buf-b64\": \"aGVsbG8=\"}}",
                /* more than asked for */
                "{\"return\": {\"count\": 9, \"buf-b64\": \"aGVsbG8gd29y\"}}",
                /* the count does not match the data */
                "{\"return\": {\"count\": 4, \"buf-b64\": \"aGVsbG8=\"}}",
                "{\"return\": {\"count\": 6, \"buf-b64\": \"aGVsbG8=\"}}",
                "{\"return\": {\"count\": 5}}",
                "{\"return\": {\"count\": 3, \"buf-b64\": \"****\"}}",
                /* base64 longer than @max bytes need, even if it decodes
                 * to the count: the check comes before the decoding */
                "{\"return\": {\"count\": 1, \"buf-b64\": \"QQ=="
                "            \"}}",
                "{\"return\": 5}",
        };

        for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
                const char *why;
                gboolean eof;
                g_autoptr(GBytes) b = read_of(bad[i], 8, &eof, &why);
                if (b)
                        g_error("accepted: %s", bad[i]);
                g_assert_nonnull(why);
        }
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/guest-reply/exec-pid", test_exec_pid);
        g_test_add_func("/guest-reply/exec-running", test_exec_running);
        g_test_add_func("/guest-reply/exec-exited", test_exec_exited);
        g_test_add_func("/guest-reply/exec-code-range", test_exec_code_range);
        g_test_add_func("/guest-reply/exec-no-code", test_exec_no_code);
        g_test_add_func("/guest-reply/exec-bad-base64", test_exec_bad_base64);
        g_test_add_func("/guest-reply/exec-output-cap", test_exec_output_cap);
        g_test_add_func("/guest-reply/file-handle", test_file_handle);
        g_test_add_func("/guest-reply/file-written", test_file_written);
        g_test_add_func("/guest-reply/file-read", test_file_read);
        g_test_add_func("/guest-reply/file-read-malformed", test_file_read_malformed);
        return g_test_run();
}
