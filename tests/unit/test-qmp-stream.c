/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The QMP stream splitter and the JSON guard on untrusted bytes. */
#include <string.h>

#include "json-util.h"
#include "qmp-stream.h"

static GPtrArray *feed_in_chunks(const char *data, gsize chunk, gsize max, int *last) {
        g_autoptr(QmpStream) s = qmp_stream_new(max);
        GPtrArray *lines = g_ptr_array_new_with_free_func(g_free);
        gsize len = strlen(data);
        char *line;
        int r = 0;

        for (gsize off = 0; off < len && r >= 0; off += chunk) {
                qmp_stream_push(s, data + off, MIN(chunk, len - off));
                while ((r = qmp_stream_pop(s, &line, NULL)) > 0)
                        g_ptr_array_add(lines, line);
        }
        *last = r;
        return lines;
}

static void test_split_any_boundary(void) {
        const char *text = "{\"QMP\": {}}\r\n{\"return\": {}, \"id\": 1}\r\n\r\n{\"event\": \"STOP\"}\r\n{\"partial\"";

        for (gsize chunk = 1; chunk <= strlen(text); chunk++) {
                int last;
                g_autoptr(GPtrArray) lines = feed_in_chunks(text, chunk, 1024, &last);
                g_assert_cmpint(last, ==, 0);
                g_assert_cmpuint(lines->len, ==, 3);
                g_assert_cmpstr(lines->pdata[0], ==, "{\"QMP\": {}}");
                g_assert_cmpstr(lines->pdata[1], ==, "{\"return\": {}, \"id\": 1}");
                g_assert_cmpstr(lines->pdata[2], ==, "{\"event\": \"STOP\"}");
        }
}

static void test_line_limit(void) {
        g_autofree char *big = g_strnfill(100, 'x');
        g_autofree char *big_nl = g_strconcat(big, "\n", NULL);
        int last;
        g_autoptr(GPtrArray) a = feed_in_chunks(big, 7, 64, &last);
        g_assert_cmpint(last, ==, -1);
        g_autoptr(GPtrArray) b = feed_in_chunks(big_nl, 1000, 64, &last);
        g_assert_cmpint(last, ==, -1);
        g_assert_cmpuint(b->len, ==, 0);
        g_autoptr(GPtrArray) c = feed_in_chunks(big_nl, 1000, 100, &last);
        g_assert_cmpuint(c->len, ==, 1);
}

static void test_nul_byte(void) {
        g_autoptr(QmpStream) s = qmp_stream_new(64);
        char *line;
        gsize len;

        qmp_stream_push(s, "a\0b\n", 4);
        g_assert_cmpint(qmp_stream_pop(s, &line, &len), ==, 1);
        g_assert_cmpuint(len, ==, 3);
        g_assert_null(qm_json_parse(line, len, NULL));
        g_free(line);
        g_assert_cmpuint(qmp_stream_pending(s), ==, 0);
}

/* The guest agent's stream: a 0xFF drops what came before it, whatever
 * the read boundaries; lines before it stay lines. */
static void test_sync_byte(void) {
        const char text[] = "{\"return\": 1, \"id\": 7}\nstale {\"ret\xff\n\xff{\"return\": 42}\r\ngarb\xff\xff{\"a\": 1}\n{\"b\"";

        for (gsize chunk = 1; chunk < sizeof(text); chunk++) {
                g_autoptr(QmpStream) s = qmp_stream_new(64);
                g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func(g_free);
                char *line;
                int r = 0;

                qmp_stream_set_sync_byte(s, TRUE);
                for (gsize off = 0; off < sizeof(text) - 1; off += chunk) {
                        qmp_stream_push(s, text + off, MIN(chunk, sizeof(text) - 1 - off));
                        while ((r = qmp_stream_pop(s, &line, NULL)) > 0)
                                g_ptr_array_add(lines, line);
                        g_assert_cmpint(r, ==, 0);
                }
                g_assert_cmpuint(lines->len, ==, 3);
                g_assert_cmpstr(lines->pdata[0], ==, "{\"return\": 1, \"id\": 7}");
                g_assert_cmpstr(lines->pdata[1], ==, "{\"return\": 42}");
                g_assert_cmpstr(lines->pdata[2], ==, "{\"a\": 1}");
                g_assert_cmpuint(qmp_stream_pending(s), ==, 4);
        }
}

/* Garbage without a newline or 0xFF still hits the line limit. */
static void test_sync_byte_limit(void) {
        g_autoptr(QmpStream) s = qmp_stream_new(16);
        g_autofree char *junk = g_strnfill(40, 'x');
        char *line;

        qmp_stream_set_sync_byte(s, TRUE);
        qmp_stream_push(s, junk, 10);
        g_assert_cmpint(qmp_stream_pop(s, &line, NULL), ==, 0);
        qmp_stream_push(s, "\xff", 1); /* forgets the junk */
        qmp_stream_push(s, junk, 16);
        g_assert_cmpint(qmp_stream_pop(s, &line, NULL), ==, 0);
        qmp_stream_push(s, junk, 1);
        g_assert_cmpint(qmp_stream_pop(s, &line, NULL), ==, -1);
}

/* Junk before a 0xFF is held to the line limit whatever the read
 * boundaries: over it breaks the stream in one piece as in pieces, and a
 * run between two 0xFF counts on its own; at the limit it is dropped. */
static int feed_agent(const char *text, gsize len, gsize chunk, gsize max, guint *n_lines) {
        g_autoptr(QmpStream) s = qmp_stream_new(max);
        char *line;
        int r = 0;

        qmp_stream_set_sync_byte(s, TRUE);
        *n_lines = 0;
        for (gsize off = 0; off < len && r >= 0; off += chunk) {
                qmp_stream_push(s, text + off, MIN(chunk, len - off));
                while ((r = qmp_stream_pop(s, &line, NULL)) > 0) {
                        g_assert_cmpstr(line, ==, "{\"return\": 1}");
                        g_free(line);
                        (*n_lines)++;
                }
        }
        return r;
}

static void test_sync_byte_stale_limit(void) {
        g_autofree char *at_limit = g_strnfill(16, 'x');
        g_autofree char *over = g_strnfill(17, 'x');
        g_autofree char *ok = g_strconcat("{\"return\": 1}\n", at_limit, "\xff", at_limit, "\xff\xff",
                                          "{\"return\": 1}\n", NULL);
        g_autofree char *bad = g_strconcat("{\"return\": 1}\n", over, "\xff{\"return\": 1}\n", NULL);
        g_autofree char *bad_between = g_strconcat("xx\xff", over, "\xff{\"return\": 1}\n", NULL);

        for (gsize chunk = 1; chunk <= strlen(ok); chunk++) {
                guint n;
                g_assert_cmpint(feed_agent(ok, strlen(ok), chunk, 16, &n), ==, 0);
                g_assert_cmpuint(n, ==, 2);
                g_assert_cmpint(feed_agent(bad, strlen(bad), chunk, 16, &n), ==, -1);
                g_assert_cmpuint(n, ==, 1);
                g_assert_cmpint(feed_agent(bad_between, strlen(bad_between), chunk, 16, &n), ==, -1);
                g_assert_cmpuint(n, ==, 0);
        }
}

static void test_json_guard(void) {
        g_autoptr(GError) err = NULL;
        g_autofree char *deep = g_strnfill(100000, '[');
        JsonNode *n;

        g_assert_null(qm_json_parse(deep, -1, &err));
        g_assert_nonnull(err);
        g_clear_error(&err);
        g_assert_null(qm_json_parse("\xff\xfe", -1, &err));
        g_clear_error(&err);
        g_assert_null(qm_json_parse("", -1, &err));
        g_clear_error(&err);
        /* brackets inside strings do not count */
        g_autofree char *inner = g_strnfill(2000, '[');
        g_autofree char *quoted = g_strdup_printf("{\"a\": \"%s\"}", inner);
        n = qm_json_parse(quoted, -1, &err);
        g_assert_no_error(err);
        json_node_unref(n);
}

static void test_json_strict(void) {
        static const char *const bad[] = {
                "{}{}", "'single'", "[1,]", "{\"a\":1,}", "01", "1.", ".5", "-", "1e", "tru", "nul",
                "{\"a\"}", "{a:1}", "\"unterminated", "\"bad \\x escape\"", "[", "]", "{\"a\":1}}",
                "\"ctl \x01\"", "NaN", "Infinity", "+1", "\"\\u12\"",
        };
        static const char *const good[] = {
                "{}", " {\"a\": [1, -2.5e+3, true, false, null, \"x\\n\\u00e9\"]} ", "0", "-0.0E-1", "\"\"",
                "[[[]]]", "{\"a\":{\"b\":{}}}", "\"caf\xc3\xa9\"",
        };
        for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
                g_autoptr(GError) err = NULL;
                JsonNode *n = qm_json_parse(bad[i], -1, &err);
                if (n)
                        g_error("accepted invalid JSON: %s", bad[i]);
                g_assert_nonnull(err);
        }
        for (gsize i = 0; i < G_N_ELEMENTS(good); i++) {
                g_autoptr(GError) err = NULL;
                JsonNode *n = qm_json_parse(good[i], -1, &err);
                if (!n)
                        g_error("refused valid JSON %s: %s", good[i], err->message);
                json_node_unref(n);
        }
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/qmp-stream/split-any-boundary", test_split_any_boundary);
        g_test_add_func("/qmp-stream/line-limit", test_line_limit);
        g_test_add_func("/qmp-stream/nul-byte", test_nul_byte);
        g_test_add_func("/qmp-stream/sync-byte", test_sync_byte);
        g_test_add_func("/qmp-stream/sync-byte-limit", test_sync_byte_limit);
        g_test_add_func("/qmp-stream/sync-byte-stale-limit", test_sync_byte_stale_limit);
        g_test_add_func("/json/guard", test_json_guard);
        g_test_add_func("/json/strict", test_json_strict);
        return g_test_run();
}
