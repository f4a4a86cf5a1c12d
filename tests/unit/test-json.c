/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The strict JSON check and the raw-text helpers (json-util.c), and the
 * event ring's byte budget (events.c). */
#include <string.h>

#include "events.h"
#include "json-util.h"

static gboolean ok(const char *text) {
        return qm_json_check(text, NULL);
}

static void test_surrogates_and_nul(void) {
        /* json-glib turns these into invalid UTF-8 or a cut string */
        g_assert_false(ok("\"\\ud800x\""));
        g_assert_false(ok("\"\\ud800\""));
        g_assert_false(ok("\"\\udc00\""));
        g_assert_false(ok("\"\\ud800\\u0041\""));
        g_assert_false(ok("\"\\ud800\\ud800\""));
        g_assert_false(ok("{\"event\": \"SHUTDOWN\\u0000JUNK\"}"));
        g_assert_false(ok("\"\\u00\""));
        /* a proper pair, and everything else */
        g_assert_true(ok("\"\\ud83d\\ude00\""));
        g_assert_true(ok("\"\\u0001\\u00e9\\uffff\""));
        g_assert_true(ok("[\"a\\n\\\"b\", 1, -0.5e+3, true, null]"));
}

static void test_parse_gives_valid_utf8(void) {
        g_autoptr(JsonNode) n = qm_json_parse("{\"s\": \"\\ud83d\\ude00\"}", -1, NULL);
        const char *s;

        g_assert_nonnull(n);
        s = json_object_get_string_member(json_node_get_object(n), "s");
        g_assert_true(g_utf8_validate(s, -1, NULL));
        g_assert_cmpstr(s, ==, "\xf0\x9f\x98\x80");
}

static char *member(const char *text, const char *key) {
        gsize start, len;

        if (!qm_json_member_text(text, strlen(text), key, &start, &len))
                return NULL;
        return g_strndup(text + start, len);
}

static void test_member_text(void) {
        const char *ev = "{\"timestamp\": {\"seconds\": 1}, \"event\": \"X\", "
                         "\"data\": {\"big\": 18446744073709551615, \"huge\": 1e400}}";
        g_autofree char *data = member(ev, "data");
        g_autofree char *name = member(ev, "event");
        g_autofree char *none = member(ev, "nope");
        g_autofree char *nested = member(ev, "seconds");
        g_autofree char *escaped = member("{\"d\\u0061ta\": [1, 2]}", "data");
        g_autofree char *last = member("{\"a\": 1, \"a\": 2}", "a");

        g_assert_cmpstr(data, ==, "{\"big\": 18446744073709551615, \"huge\": 1e400}");
        g_assert_cmpstr(name, ==, "\"X\"");
        g_assert_null(none);
        g_assert_null(nested); /* only the top level */
        g_assert_cmpstr(escaped, ==, "[1, 2]");
        g_assert_cmpstr(last, ==, "2"); /* json-glib keeps the last one too */
        g_assert_null(member("[1]", "a"));
}

static void test_remove_member(void) {
        static const struct {
                const char *in, *key, *out;
        } cases[] = {
                { "{\"return\": {}, \"id\": 7}", "id", "{\"return\": {}}" },
                { "{\"id\": 7, \"return\": {\"n\": 1e400}}", "id", "{\"return\": {\"n\": 1e400}}" },
                { "{\"a\": 1, \"id\": 7, \"b\": 2}", "id", "{\"a\": 1, \"b\": 2}" },
                { "{\"id\": 7}", "id", "{}" },
                { "{\"a\": 1}", "id", "{\"a\": 1}" },
        };

        for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autofree char *out = qm_json_remove_member(cases[i].in, strlen(cases[i].in), cases[i].key);
                g_assert_cmpstr(out, ==, cases[i].out);
                g_assert_true(ok(out));
        }
}

static void test_compact(void) {
        const char *in = " { \"a b\" : [ 1 , 18446744073709551615 , 1e400 ] ,\n\t\"s\\\" x\" : \"  \\\\ \" } ";
        g_autofree char *out = qm_json_compact(in, strlen(in));

        g_assert_cmpstr(out, ==, "{\"a b\":[1,18446744073709551615,1e400],\"s\\\" x\":\"  \\\\ \"}");
        g_assert_true(ok(out));
}

static void test_generated_text_is_strict(void) {
        g_autoptr(JsonNode) n = json_node_init_string(json_node_alloc(), "a\x1f\x01\tb\"");
        g_autofree char *compact = qm_json_to_string(n);
        g_autofree char *pretty = qm_json_generate(n, TRUE);

        /* json-glib 1.6 leaves 0x1f as it is */
        g_assert_true(ok(compact));
        g_assert_true(ok(pretty));
        g_assert_cmpstr(compact, ==, "\"a\\u001f\\u0001\\tb\\\"\"");
}

static void test_event_keeps_number_text(void) {
        const char *text = "{\"event\": \"X_NUM\", \"data\": {\"big\": 18446744073709551615, \"inf\": 1e400}, "
                           "\"timestamp\": {\"seconds\": 9223372036854775807, \"microseconds\": 5}}";
        g_autoptr(JsonNode) n = qm_json_parse(text, -1, NULL);
        g_autoptr(QmEvent) e = qm_event_new(n, text, strlen(text), 1);

        g_assert_cmpstr(e->name, ==, "X_NUM");
        g_assert_cmpstr(e->data_json, ==, "{\"big\":18446744073709551615,\"inf\":1e400}");
        g_assert_nonnull(strstr(e->json, "18446744073709551615"));
        g_assert_cmpuint(e->timestamp_us, ==, 0); /* out of range: no timestamp rather than garbage */
}

static QmEvent *sized_event(guint64 seq, gsize data_len) {
        g_autofree char *pad = g_strnfill(data_len, 'x');
        g_autofree char *text = g_strdup_printf("{\"event\": \"E\", \"data\": {\"p\": \"%s\"}}", pad);
        g_autoptr(JsonNode) n = qm_json_parse(text, -1, NULL);
        return qm_event_new(n, text, strlen(text), seq);
}

static void test_ring_byte_budget(void) {
        g_autoptr(QmEventRing) r = qm_event_ring_new(100, 64 * 1024);

        for (guint64 seq = 1; seq <= 20; seq++)
                qm_event_ring_push(r, sized_event(seq, 10 * 1024));
        /* about 20 KiB each: only the newest fit in 64 KiB */
        g_assert_cmpuint(qm_event_ring_count(r), <=, 3);
        g_assert_cmpuint(qm_event_ring_nth_after(r, 0, 0)->seq, ==, 21 - qm_event_ring_count(r));
        /* one event over the whole budget is still kept, alone */
        qm_event_ring_push(r, sized_event(21, 100 * 1024));
        g_assert_cmpuint(qm_event_ring_count(r), ==, 1);
        g_assert_cmpuint(qm_event_ring_nth_after(r, 0, 0)->seq, ==, 21);
        /* small ones again: the count bound still holds */
        for (guint64 seq = 22; seq < 400; seq++)
                qm_event_ring_push(r, sized_event(seq, 1));
        g_assert_cmpuint(qm_event_ring_count(r), ==, 100);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/json/surrogates-and-nul", test_surrogates_and_nul);
        g_test_add_func("/json/parse-gives-valid-utf8", test_parse_gives_valid_utf8);
        g_test_add_func("/json/member-text", test_member_text);
        g_test_add_func("/json/remove-member", test_remove_member);
        g_test_add_func("/json/compact", test_compact);
        g_test_add_func("/json/generated-text-is-strict", test_generated_text_is_strict);
        g_test_add_func("/events/keeps-number-text", test_event_keeps_number_text);
        g_test_add_func("/events/ring-byte-budget", test_ring_byte_budget);
        return g_test_run();
}
