/* Console retention, crash detection across any split, key combos. */
#include <glib/gstdio.h>
#include <string.h>

#include "console-buffer.h"
#include "json-util.h"
#include "images.h"
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

static void test_image_names_and_probe(void) {
        g_autofree char *dir = g_dir_make_tmp("qm-unit-XXXXXX", NULL);
        g_autofree char *qcow = g_build_filename(dir, "a.qcow2", NULL);
        g_autofree char *raw = g_build_filename(dir, "b.raw", NULL);
        guint8 header[32] = { 'Q', 'F', 'I', 0xfb };
        g_autofree char *format = NULL;
        g_autofree char *format2 = NULL;
        guint64 size;

        g_assert_true(qm_image_name_is_valid("disk.qcow2"));
        g_assert_false(qm_image_name_is_valid(""));
        g_assert_false(qm_image_name_is_valid(".hidden"));
        g_assert_false(qm_image_name_is_valid("a/b"));
        g_assert_false(qm_image_name_is_valid("../x"));
        g_assert_false(qm_image_name_is_valid("tab\there"));
        g_assert_true(qm_image_format_is_supported("qcow2"));
        g_assert_false(qm_image_format_is_supported("vmdk"));
        g_assert_cmpstr(qm_image_check_verdict(0), ==, "ok");
        g_assert_cmpstr(qm_image_check_verdict(3), ==, "leaks");
        g_assert_cmpstr(qm_image_check_verdict(2), ==, "corrupt");
        g_assert_cmpstr(qm_image_check_verdict(1), ==, "check-errors");
        g_assert_cmpstr(qm_image_check_verdict(63), ==, "unsupported");
        g_assert_null(qm_image_check_verdict(42));

        header[29] = 0x10; /* virtual size 0x100000 (big-endian, offset 24) */
        g_assert_true(g_file_set_contents(qcow, (const char *)header, sizeof(header), NULL));
        g_assert_true(qm_image_probe(qcow, &format, &size));
        g_assert_cmpstr(format, ==, "qcow2");
        g_assert_cmpuint(size, ==, 0x100000);
        g_assert_true(g_file_set_contents(raw, "12345", 5, NULL));
        g_assert_true(qm_image_probe(raw, &format2, &size));
        g_assert_cmpstr(format2, ==, "raw");
        g_assert_cmpuint(size, ==, 5);
        g_assert_false(qm_image_probe(dir, &format, &size)); /* not a regular file */
        g_remove(qcow);
        g_remove(raw);
        g_rmdir(dir);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/console/byte-ring", test_byte_ring);
        g_test_add_func("/console/crash-panic-any-split", test_crash_panic);
        g_test_add_func("/console/crash-bug-any-split", test_crash_bug);
        g_test_add_func("/console/crash-none", test_crash_none);
        g_test_add_func("/console/crash-binary-safe", test_crash_binary_safe);
        g_test_add_func("/keys/combos", test_keys);
        g_test_add_func("/images/names-and-probe", test_image_names_and_probe);
        return g_test_run();
}
