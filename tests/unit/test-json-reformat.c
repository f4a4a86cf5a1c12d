/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The JSON reformatter (json-reformat.c): layout changes, tokens never. */
#include <string.h>

#include "json-reformat.h"
#include "json-util.h"

static char *compact(const char *text) {
        return qm_json_reformat(text, strlen(text), QM_JSON_LAYOUT_COMPACT);
}

static char *pretty(const char *text) {
        return qm_json_reformat(text, strlen(text), QM_JSON_LAYOUT_PRETTY);
}

/* What json-glib's own pretty generator makes of @text. */
static char *json_glib_pretty(const char *text) {
        g_autoptr(JsonNode) node = qm_json_parse(text, -1, NULL);
        g_autoptr(JsonGenerator) gen = json_generator_new();

        g_assert_nonnull(node);
        json_generator_set_pretty(gen, TRUE);
        json_generator_set_indent(gen, 2);
        json_generator_set_root(gen, node);
        return json_generator_to_data(gen, NULL);
}

static void test_big_numbers(void) {
        const char *reply =
                "{\"return\": {\"max\": 18446744073709551615, \"min\": -9223372036854775808, "
                "\"f\": 1.50, \"e\": 1e3, \"z\": -0, \"x\": 1E+400, "
                "\"long\": 123456789012345678901234567890.000000000000000000001e-7}}";
        g_autofree char *c = compact(reply);
        g_autofree char *p = pretty(reply);

        g_assert_cmpstr(c, ==,
                        "{\"return\":{\"max\":18446744073709551615,\"min\":-9223372036854775808,"
                        "\"f\":1.50,\"e\":1e3,\"z\":-0,\"x\":1E+400,"
                        "\"long\":123456789012345678901234567890.000000000000000000001e-7}}");
        g_assert_cmpstr(p, ==,
                        "{\n"
                        "  \"return\" : {\n"
                        "    \"max\" : 18446744073709551615,\n"
                        "    \"min\" : -9223372036854775808,\n"
                        "    \"f\" : 1.50,\n"
                        "    \"e\" : 1e3,\n"
                        "    \"z\" : -0,\n"
                        "    \"x\" : 1E+400,\n"
                        "    \"long\" : 123456789012345678901234567890.000000000000000000001e-7\n"
                        "  }\n"
                        "}");
}

static void test_scalars(void) {
        const char *docs[] = { "0", "-0.0", "18446744073709551616", "true", "false", "null", "\"\"", "\"x\"" };

        for (size_t i = 0; i < G_N_ELEMENTS(docs); i++) {
                g_autofree char *padded = g_strdup_printf(" \t\r\n%s\n ", docs[i]);
                g_autofree char *c = compact(padded);
                g_autofree char *p = pretty(padded);
                g_assert_cmpstr(c, ==, docs[i]);
                g_assert_cmpstr(p, ==, docs[i]);
        }
}

static void test_escapes_and_unicode(void) {
        /* QEMU writes non-ASCII as \uXXXX with capitals: kept so */
        const char *s =
                "{\"k\\\"ey\\\\\": \"a\\u00E9\\/\\b\\f\\n\\r\\t\\\"\\ud83d\\ude00 , : { [\", "
                "\"utf8\": \"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}";
        g_autofree char *c = compact(s);
        g_autofree char *p = pretty(s);

        g_assert_cmpstr(c, ==,
                        "{\"k\\\"ey\\\\\":\"a\\u00E9\\/\\b\\f\\n\\r\\t\\\"\\ud83d\\ude00 , : { [\","
                        "\"utf8\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}");
        g_assert_cmpstr(p, ==,
                        "{\n"
                        "  \"k\\\"ey\\\\\" : \"a\\u00E9\\/\\b\\f\\n\\r\\t\\\"\\ud83d\\ude00 , : { [\",\n"
                        "  \"utf8\" : \"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"\n"
                        "}");
}

static void test_nested_and_empty(void) {
        const char *s = "{\"a\":{}, \"b\":[], \"c\":[{}, [ ], { \"d\" : [1, [2, []]] }], \"e\": { } }";
        g_autofree char *c = compact(s);
        g_autofree char *p = pretty(s);
        g_autofree char *glib = json_glib_pretty(s);
        g_autofree char *top_obj = pretty(" { } ");
        g_autofree char *top_arr = pretty("[\n]");

        g_assert_cmpstr(c, ==, "{\"a\":{},\"b\":[],\"c\":[{},[],{\"d\":[1,[2,[]]]}],\"e\":{}}");
        /* json-glib's layout, its "{  }" for an empty object included */
        g_assert_cmpstr(p, ==,
                        "{\n"
                        "  \"a\" : {  },\n"
                        "  \"b\" : [],\n"
                        "  \"c\" : [\n"
                        "    {    },\n"
                        "    [],\n"
                        "    {\n"
                        "      \"d\" : [\n"
                        "        1,\n"
                        "        [\n"
                        "          2,\n"
                        "          []\n"
                        "        ]\n"
                        "      ]\n"
                        "    }\n"
                        "  ],\n"
                        "  \"e\" : {  }\n"
                        "}");
        g_assert_cmpstr(p, ==, glib);
        g_assert_cmpstr(top_obj, ==, "{}");
        g_assert_cmpstr(top_arr, ==, "[]");
}

/* With numbers json-glib keeps, the output is json-glib's to the byte:
 * qmachinectl's output did not change where nothing was wrong. */
static void test_same_as_json_glib(void) {
        const char *docs[] = {
                "{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}}",
                "{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 12}, \"event\": \"STOP\"}",
                "{\"return\": {}}",
                "[{\"name\": \"x\", \"props\": [null, -1, 9223372036854775807, \"\"]}, []]",
                "{\"error\": {\"class\": \"GenericError\", \"desc\": \"it's \\\"bad\\\"\"}}",
        };

        for (size_t i = 0; i < G_N_ELEMENTS(docs); i++) {
                g_autofree char *p = pretty(docs[i]);
                g_autofree char *glib = json_glib_pretty(docs[i]);
                g_autofree char *c = compact(docs[i]);
                g_autoptr(JsonNode) node = qm_json_parse(docs[i], -1, NULL);
                g_autofree char *glib_compact = qm_json_to_string(node);
                g_assert_cmpstr(p, ==, glib);
                g_assert_cmpstr(c, ==, glib_compact);
        }
}

static void test_compact_of_pretty(void) {
        const char *s = "[{\"a\" : [ 1 , 2.5e-3 , {\"b\":null} ] , \"c\":\"d e\"}, {}, [[]]]";
        g_autofree char *p = pretty(s);
        g_autofree char *cp = compact(p);
        g_autofree char *c = compact(s);
        g_autofree char *pp = pretty(p);

        g_assert_cmpstr(cp, ==, c);
        g_assert_cmpstr(pp, ==, p);
}

static void test_invalid_refused(void) {
        const char *bad[] = {
                "",          " ",          "{",       "[1,]",        "{\"a\":1,}",   "'a'",    "{'a':1}",
                "[1 2]",     "1 2",        "{}{}",    "[1]x",        "0x10",         "01",     "1.",
                ".5",        "+1",         "-",       "1e",          "1e+",          "NaN",    "Infinity",
                "/* c */ 1", "\"a\tb\"",   "\"\\x\"", "\"\\ud800\"", "\"\\u0000\"",  "\"open", "{\"a\" 1}",
                "{1:2}",     "[\"\xff\"]", "tru",     "nul",         "[true false]",
        };

        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                g_autofree char *c = compact(bad[i]);
                g_autofree char *p = pretty(bad[i]);
                if (c || p)
                        g_test_message("accepted: %s", bad[i]);
                g_assert_null(c);
                g_assert_null(p);
        }
        g_assert_null(qm_json_reformat(NULL, 0, QM_JSON_LAYOUT_COMPACT));
        /* an embedded NUL: the length counts, not the terminator */
        g_assert_null(qm_json_reformat("[1]\0[2]", 7, QM_JSON_LAYOUT_COMPACT));
}

static void test_deep_nesting(void) {
        GString *deep = g_string_new(NULL);
        g_autofree char *c = NULL;
        g_autofree char *too_deep = NULL;

        for (int i = 0; i < QM_JSON_MAX_DEPTH; i++)
                g_string_append_c(deep, '[');
        for (int i = 0; i < QM_JSON_MAX_DEPTH; i++)
                g_string_append_c(deep, ']');
        c = compact(deep->str);
        g_assert_cmpstr(c, ==, deep->str);
        g_string_prepend_c(deep, '[');
        g_string_append_c(deep, ']');
        too_deep = compact(deep->str);
        g_assert_null(too_deep);
        g_string_free(deep, TRUE);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/json-reformat/big-numbers", test_big_numbers);
        g_test_add_func("/json-reformat/scalars", test_scalars);
        g_test_add_func("/json-reformat/escapes-and-unicode", test_escapes_and_unicode);
        g_test_add_func("/json-reformat/nested-and-empty", test_nested_and_empty);
        g_test_add_func("/json-reformat/same-as-json-glib", test_same_as_json_glib);
        g_test_add_func("/json-reformat/compact-of-pretty", test_compact_of_pretty);
        g_test_add_func("/json-reformat/invalid-refused", test_invalid_refused);
        g_test_add_func("/json-reformat/deep-nesting", test_deep_nesting);
        return g_test_run();
}
