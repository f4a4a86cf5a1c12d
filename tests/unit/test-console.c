/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Console retention, crash detection across any split, key combos. */
#include <glib/gstdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "console-buffer.h"
#include "console.h"
#include "json-util.h"
#include "keys.h"

static void test_byte_ring(void) {
        g_autoptr(QmByteRing) r = qm_byte_ring_new(8);
        g_autoptr(GBytes) empty = qm_byte_ring_get(r);
        GBytes *b;

        g_assert_cmpuint(g_bytes_get_size(empty), ==, 0);
        qm_byte_ring_append(r, "abc", 3);
        qm_byte_ring_append(r, "defgh", 5);
        b = qm_byte_ring_get(r);
        g_assert_cmpmem(g_bytes_get_data(b, NULL), g_bytes_get_size(b), "abcdefgh", 8);
        g_bytes_unref(b);
        qm_byte_ring_append(r, "ijk", 3); /* wraps */
        b = qm_byte_ring_get(r);
        g_assert_cmpmem(g_bytes_get_data(b, NULL), g_bytes_get_size(b), "defghijk", 8);
        g_bytes_unref(b);
        qm_byte_ring_append(r, "0123456789", 10); /* longer than the ring */
        b = qm_byte_ring_get(r);
        g_assert_cmpmem(g_bytes_get_data(b, NULL), g_bytes_get_size(b), "23456789", 8);
        g_bytes_unref(b);
        qm_byte_ring_clear(r);
        b = qm_byte_ring_get(r);
        g_assert_cmpuint(g_bytes_get_size(b), ==, 0);
        g_bytes_unref(b);
}

/* Feed @text in chunks of @chunk bytes; returns what was reported. */
static char *scan_in_chunks(const char *text, gsize chunk, guint *reports) {
        g_autoptr(QmCrashScan) s = qm_crash_scan_new();
        char *found = NULL;
        gsize len = strlen(text);

        *reports = 0;
        for (gsize off = 0; off < len; off += chunk) {
                char *r = qm_crash_scan_feed(s, text + off, MIN(chunk, len - off));
                if (r) {
                        (*reports)++;
                        g_free(found);
                        found = r;
                }
        }
        char *r = qm_crash_scan_finish(s);
        if (r) {
                (*reports)++;
                g_free(found);
                found = r;
        }
        return found;
}

static void test_crash_panic(void) {
        const char *text = "booting\r\n[    1.0] sysrq: Trigger a crash\r\n"
                           "[    1.1] Kernel panic - not syncing: sysrq triggered crash\r\n"
                           "[    1.2] CPU: 0 PID: 1\r\nKernel panic - not syncing: again\r\n";
        for (gsize chunk = 1; chunk <= strlen(text); chunk++) {
                guint n;
                g_autofree char *found = scan_in_chunks(text, chunk, &n);
                g_assert_cmpuint(n, ==, 1);
                g_assert_cmpstr(found, ==, "Kernel panic - not syncing: sysrq triggered crash");
        }
}

static void test_crash_bug(void) {
        const char *text = "ok\nBUG: kernel NULL pointer dereference, address: 0000\n"
                           "#PF: supervisor read access\nCall Trace:\n foo+0x1/0x2\n"
                           "---[ end trace 0123456789abcdef ]---\nmore\n";
        for (gsize chunk = 1; chunk <= strlen(text); chunk += 3) {
                guint n;
                g_autofree char *found = scan_in_chunks(text, chunk, &n);
                g_assert_cmpuint(n, ==, 1);
                g_assert_true(g_str_has_prefix(found, "BUG: kernel NULL pointer dereference"));
                g_assert_true(g_str_has_suffix(found, "---[ end trace 0123456789abcdef ]---"));
        }
}

static void test_crash_none(void) {
        guint n;
        g_autofree char *big = g_strnfill(600000, 'x');
        g_autofree char *f1 = scan_in_chunks("BUG without an end\nKernel panic - not", 4, &n);
        g_assert_cmpuint(n, ==, 0);
        g_autofree char *f2 = scan_in_chunks(big, 65536, &n);
        g_assert_cmpuint(n, ==, 0);
        /* a cut-off panic line is still reported at the end of the stream */
        g_autofree char *f3 = scan_in_chunks("Kernel panic - not syncing: cut", 5, &n);
        g_assert_cmpuint(n, ==, 1);
        g_assert_cmpstr(f3, ==, "Kernel panic - not syncing: cut");
}

static void test_crash_binary_safe(void) {
        g_autoptr(QmCrashScan) s = qm_crash_scan_new();
        const char text[] = "\xff\xfeKernel panic - not syncing: \0" "bad \xc3\n";
        g_autofree char *r = qm_crash_scan_feed(s, text, sizeof(text) - 1);
        g_assert_nonnull(r);
        g_assert_true(g_utf8_validate(r, -1, NULL));
        g_assert_true(g_str_has_prefix(r, "Kernel panic - not syncing: ?bad"));
        /* once per run */
        g_assert_null(qm_crash_scan_feed(s, text, sizeof(text) - 1));
        qm_crash_scan_reset(s);
        g_autofree char *again = qm_crash_scan_feed(s, text, sizeof(text) - 1);
        g_assert_nonnull(again);
}

/* Feed @len bytes of @data cut at @cuts (ascending offsets); returns what
 * was reported, or NULL, and how many reports came. */
static char *scan_pieces(const char *data, gsize len, const gsize *cuts, gsize n_cuts, guint *reports) {
        g_autoptr(QmCrashScan) s = qm_crash_scan_new();
        char *found = NULL;
        gsize off = 0;

        *reports = 0;
        for (gsize i = 0; i <= n_cuts; i++) {
                gsize end = i < n_cuts ? cuts[i] : len;
                char *r = qm_crash_scan_feed(s, data + off, end - off);
                /* the window never holds more than the bounded crash text */
                g_assert_cmpuint(qm_crash_scan_buffered(s), <=, QM_CRASH_TEXT_MAX + 1);
                if (r) {
                        (*reports)++;
                        g_free(found);
                        found = r;
                }
                off = end;
        }
        g_assert_cmpuint(qm_crash_scan_examined(s), <=, len);
        char *r = qm_crash_scan_finish(s);
        if (r) {
                (*reports)++;
                g_free(found);
                found = r;
        }
        return found;
}

static void assert_same_verdict(const GString *stream, const char *expected, gsize n_cuts, const gsize *cuts) {
        guint n;
        g_autofree char *found = scan_pieces(stream->str, stream->len, cuts, n_cuts, &n);

        g_assert_cmpuint(n, ==, expected ? 1 : 0);
        g_assert_cmpstr(found, ==, expected);
}

static int compare_gsize(gconstpointer a, gconstpointer b) {
        gsize x = *(const gsize *)a, y = *(const gsize *)b;
        return x < y ? -1 : x > y;
}

/* The verdict on @stream is @expected whatever the reads: in one piece,
 * split at every offset (short streams) and at random offsets. */
static void assert_split_independent(const GString *stream, const char *expected) {
        gsize cuts[16];

        assert_same_verdict(stream, expected, 0, NULL);
        if (stream->len <= 3 * QM_CRASH_TEXT_MAX) {
                for (gsize i = 1; i < stream->len; i++) {
                        cuts[0] = i;
                        assert_same_verdict(stream, expected, 1, cuts);
                }
        }
        for (guint round = 0; round < 40 && stream->len > 1; round++) {
                gsize n = g_test_rand_int_range(1, G_N_ELEMENTS(cuts) + 1);
                for (gsize i = 0; i < n; i++)
                        cuts[i] = g_test_rand_int_range(0, stream->len + 1);
                qsort(cuts, n, sizeof(cuts[0]), compare_gsize);
                assert_same_verdict(stream, expected, n, cuts);
        }
}

static GString *stream_of(const char *text) {
        return g_string_new(text);
}

/* "Kernel panic - not syncing: " padded with @pad to @len bytes. */
static GString *panic_line_of(gsize len, char pad) {
        GString *s = g_string_new("Kernel panic - not syncing: ");
        while (s->len < len)
                g_string_append_c(s, pad);
        return s;
}

/* The first @n bytes of @stream and the cut marker. */
static char *cut_expected(const GString *stream, gsize n) {
        g_autofree char *head = g_strndup(stream->str, n);
        return g_strconcat(head, QM_CRASH_CUT_MARKER, NULL);
}

static void check_split_independent_text(const char *text, const char *expected) {
        g_autoptr(GString) s = stream_of(text);
        assert_split_independent(s, expected);
}

static void test_crash_split_independent(void) {
        /* a panic inside an unfinished BUG report wins */
        check_split_independent_text("BUG: x\nKernel panic - not syncing: y\n---[ end trace z ]---\n",
                                     "Kernel panic - not syncing: y");
        /* a BUG report that completes on a panic line does not */
        check_split_independent_text("Kernel panic - not syncing: BUG: ---[ end trace x ]---\nmore",
                                     "Kernel panic - not syncing: BUG: ---[ end trace x ]---");
        /* " ]---" may start with the last space of "---[ end trace " */
        check_split_independent_text("BUG: a\n---[ end trace ]---\n", "BUG: a\n---[ end trace ]---");
        /* pattern starts that fail, then succeed */
        check_split_independent_text("KKernel panic - not Kernel panic - not syncing: k\r\n",
                                     "Kernel panic - not syncing: k");
        check_split_independent_text("BUBUG: b ---[ end ---[ end trace 1 ]---",
                                     "BUG: b ---[ end ---[ end trace 1 ]---");
        check_split_independent_text("BUG: no end\n---[ end trace", NULL);
        check_split_independent_text("Kernel panic - not syncing", "Kernel panic - not syncing");
        check_split_independent_text("Kernel panic - not syncing\r", "Kernel panic - not syncing");
        check_split_independent_text("Kernel panic - not syncin", NULL);
        check_split_independent_text("", NULL);

        /* panic lines around the limit, ended by "\r\n", "\n", or nothing */
        for (gsize len = QM_CRASH_TEXT_MAX - 1; len <= QM_CRASH_TEXT_MAX + 2; len++) {
                const char *const ends[] = { "\r\nnext", "\nnext", "", "\r", "\rX\n" };
                for (gsize e = 0; e < G_N_ELEMENTS(ends); e++) {
                        g_autoptr(GString) line = panic_line_of(len, 'p');
                        g_autoptr(GString) stream = g_string_new(line->str);
                        gsize content = len + (strcmp(ends[e], "\rX\n") == 0 ? 2 : 0);
                        g_string_append(stream, ends[e]);
                        g_autofree char *expected = content > QM_CRASH_TEXT_MAX
                                                            ? cut_expected(stream, QM_CRASH_TEXT_MAX)
                                                            : g_strdup(line->str);
                        assert_split_independent(stream, expected);
                }
        }

        /* a cut inside a UTF-8 character drops it whole */
        g_autoptr(GString) utf8 = panic_line_of(QM_CRASH_TEXT_MAX - 1, 'u');
        g_autofree char *utf8_expected = cut_expected(utf8, QM_CRASH_TEXT_MAX - 1);
        g_string_append(utf8, "\xc3\xa9 and more\n");
        assert_split_independent(utf8, utf8_expected);

        /* NUL and invalid bytes become valid text */
        g_autoptr(GString) binary = g_string_new("Kernel panic - not syncing: ");
        g_string_append_len(binary, "a\0b\xff" "c\n", 6);
        assert_split_independent(binary, "Kernel panic - not syncing: a?b\xef\xbf\xbd" "c");

        /* a long BUG report is cut; a stray "BUG:" is given up on */
        g_autoptr(GString) bug = g_string_new("BUG: long\n");
        while (bug->len < 200 * 1024)
                g_string_append(bug, "stack line\n");
        g_autofree char *bug_expected = cut_expected(bug, QM_CRASH_TEXT_MAX);
        g_string_append(bug, "---[ end trace 42 ]---\n");
        assert_split_independent(bug, bug_expected);

        g_autoptr(GString) stray = g_string_new("echo BUG: stray\n");
        while (stray->len < 300 * 1024)
                g_string_append(stray, "no end in sight\n");
        g_string_append(stray, "BUG: real\n---[ end trace r ]---\n");
        assert_split_independent(stray, "BUG: real\n---[ end trace r ]---");
}

/* A guest that panics and then writes 10 MiB on the same line. */
static void test_crash_panic_flood(void) {
        g_autoptr(QmCrashScan) s = qm_crash_scan_new();
        g_autofree char *piece = g_strnfill(4096, 'x');
        const char *head = "Kernel panic - not syncing: boom ";
        g_autofree char *found = qm_crash_scan_feed(s, head, strlen(head));
        guint64 fed = strlen(head);

        g_assert_null(found);
        for (guint i = 0; i < 10 * 256; i++) {
                char *r = qm_crash_scan_feed(s, piece, 4096);
                fed += 4096;
                g_assert_cmpuint(qm_crash_scan_buffered(s), <=, QM_CRASH_TEXT_MAX + 1);
                if (r) {
                        g_assert_null(found);
                        found = r;
                }
        }
        g_assert_null(qm_crash_scan_feed(s, "\nPANIC-DONE\n", 12));
        g_assert_null(qm_crash_scan_finish(s));
        /* each byte looked at once at most: linear */
        g_assert_cmpuint(qm_crash_scan_examined(s), <=, fed);
        g_assert_nonnull(found);
        g_assert_cmpuint(strlen(found), ==, QM_CRASH_TEXT_MAX + strlen(QM_CRASH_CUT_MARKER));
        g_assert_true(g_str_has_prefix(found, head));
        g_assert_true(g_str_has_suffix(found, "xxx" QM_CRASH_CUT_MARKER));
}

/* A "BUG:" and then 10 MiB without its end: bounded, each byte seen once. */
static void test_crash_bug_flood(void) {
        g_autoptr(QmCrashScan) s = qm_crash_scan_new();
        g_autofree char *piece = g_strnfill(4096, 'y');
        guint64 fed = 4;

        g_assert_null(qm_crash_scan_feed(s, "BUG:", 4));
        for (guint i = 0; i < 10 * 256; i++) {
                g_assert_null(qm_crash_scan_feed(s, piece, 4096));
                fed += 4096;
                g_assert_cmpuint(qm_crash_scan_buffered(s), <=, QM_CRASH_TEXT_MAX + 1);
        }
        g_assert_cmpuint(qm_crash_scan_examined(s), ==, fed);
        g_autofree char *found = qm_crash_scan_feed(s, "\nBUG: b\n---[ end trace 1 ]---", 29);
        g_assert_cmpstr(found, ==, "BUG: b\n---[ end trace 1 ]---");
}

static void test_keys(void) {
        QmError *e = NULL;
        g_autoptr(JsonNode) cad = qm_keys_parse_combo("ctrl-alt-delete", 0, &e);
        g_autoptr(JsonNode) shift_a = qm_keys_parse_combo("shift-a", 200, &e);
        g_autofree char *t1 = qm_json_to_string(cad);
        g_autofree char *t2 = qm_json_to_string(shift_a);

        g_assert_cmpstr(t1, ==, "{\"keys\":[{\"type\":\"qcode\",\"data\":\"ctrl\"},{\"type\":\"qcode\",\"data\":\"alt\"},"
                                "{\"type\":\"qcode\",\"data\":\"delete\"}]}");
        g_assert_cmpstr(t2, ==, "{\"keys\":[{\"type\":\"qcode\",\"data\":\"shift\"},{\"type\":\"qcode\",\"data\":\"a\"}],"
                                "\"hold-time\":200}");
        static const char *const bad[] = { "", "ctrl--a", "ctrl-bogus", "-", "a-", "CTRL-a" };
        for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
                g_assert_null(qm_keys_parse_combo(bad[i], 0, &e));
                g_assert_cmpstr(e->name, ==, "org.freedesktop.DBus.Error.InvalidArgs");
                qm_error_free(e);
                e = NULL;
        }
        g_assert_null(qm_keys_parse_combo("a", 100000, &e));
        qm_error_free(e);
        g_assert_true(qm_key_is_valid("kp_1"));
        g_assert_false(qm_key_is_valid("kp_10"));
}

typedef struct {
        GString *seen;
        guint closed;
} ConsoleSink;

static void sink_output(QmConsole *c, const char *data, gsize len, gpointer userdata) {
        ConsoleSink *sink = userdata;
        g_string_append_len(sink->seen, data, len);
}

static void sink_closed(QmConsole *c, gpointer userdata) {
        ConsoleSink *sink = userdata;
        sink->closed++;
}

/* Run the main loop until @sink has seen @len bytes and @closed closes,
 * or 5 s. */
static void pump_until(const ConsoleSink *sink, gsize len, guint closed) {
        gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;

        while ((sink->seen->len < len || sink->closed < closed) && g_get_monotonic_time() < deadline) {
                if (!g_main_context_iteration(NULL, FALSE))
                        g_usleep(1000);
        }
}

static void read_exactly(int fd, const char *want) {
        char buf[64] = { 0 };
        gsize len = strlen(want);

        g_assert_cmpint(read(fd, buf, len), ==, (gssize)len);
        g_assert_cmpstr(buf, ==, want);
}

/* QEMU closed the connection: the callback says so, and a new connection
 * carries on with the same clients. */
static void test_console_replace_fd(void) {
        static const QmConsoleCallbacks cb = { .output = sink_output, .closed = sink_closed };
        ConsoleSink sink = { .seen = g_string_new(NULL) };
        g_autofree char *dir = g_dir_make_tmp("qm-console-XXXXXX", NULL);
        g_autofree char *log = g_build_filename(dir, "console.log", NULL);
        int first[2], second[2], client;
        QmConsole *c;

        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, first), ==, 0);
        c = qm_console_new(first[0], log, FALSE, &cb, &sink);
        client = qm_console_add_client(c);
        g_assert_cmpint(client, >=, 0);

        g_assert_cmpint(write(first[1], "one\n", 4), ==, 4);
        pump_until(&sink, 4, 0);
        read_exactly(client, "one\n");
        close(first[1]);
        pump_until(&sink, 4, 1);
        g_assert_cmpuint(sink.closed, ==, 1);

        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, second), ==, 0);
        qm_console_replace_fd(c, second[0]);
        g_assert_cmpint(write(second[1], "two\n", 4), ==, 4);
        pump_until(&sink, 8, 1);
        g_assert_cmpstr(sink.seen->str, ==, "one\ntwo\n");
        read_exactly(client, "two\n");
        /* the client's input goes to the new connection */
        g_assert_cmpint(write(client, "hi", 2), ==, 2);
        for (int i = 0; i < 100; i++)
                g_main_context_iteration(NULL, FALSE);
        read_exactly(second[1], "hi");
        g_assert_cmpuint(sink.closed, ==, 1);

        qm_console_free(c);
        close(second[1]);
        close(client);
        g_unlink(log);
        g_rmdir(dir);
        g_string_free(sink.seen, TRUE);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/console/byte-ring", test_byte_ring);
        g_test_add_func("/console/crash-panic-any-split", test_crash_panic);
        g_test_add_func("/console/crash-bug-any-split", test_crash_bug);
        g_test_add_func("/console/crash-none", test_crash_none);
        g_test_add_func("/console/crash-binary-safe", test_crash_binary_safe);
        g_test_add_func("/console/crash-split-independent", test_crash_split_independent);
        g_test_add_func("/console/crash-panic-flood", test_crash_panic_flood);
        g_test_add_func("/console/crash-bug-flood", test_crash_bug_flood);
        g_test_add_func("/keys/combos", test_keys);
        g_test_add_func("/console/replace-fd", test_console_replace_fd);
        return g_test_run();
}
