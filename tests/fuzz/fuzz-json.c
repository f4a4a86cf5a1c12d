/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The strict JSON check (qm_json_check_len) against json-glib and against
 * an independent strict parser written here from RFC 8259:
 *  - the check and the reference parser accept the same documents (the
 *    reference also refuses what cannot reach D-Bus: \u0000 and lone
 *    UTF-16 surrogates);
 *  - what the check accepts, json-glib parses to the same tree as the
 *    reference: same strings byte for byte (so valid UTF-8, no NUL), same
 *    numbers (within rounding);
 *  - json-glib's tree serialized back (qm_json_to_string) is valid UTF-8
 *    and passes the check, and parses to an equal tree;
 *  - the raw-text helpers the daemon passes QEMU's text on with: the
 *    compacted text passes the check, is a fixed point and is the same
 *    tree; every member's raw text is that member's value; the text
 *    without a member passes the check.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "event-match.h"
#include "fuzz-common.h"
#include "json-util.h"

typedef struct {
        const char *p, *end;
        int depth;
        gboolean unfit; /* grammatical, but \u0000 or a lone surrogate */
        gboolean huge;  /* a number json-glib mangles (see skip_number_bugs) */
} Ref;

static JsonNode *ref_value(Ref *r);

static void ref_ws(Ref *r) {
        while (r->p < r->end && strchr(" \t\n\r", *r->p) && *r->p)
                r->p++;
}

static gboolean ref_take(Ref *r, char c) {
        if (r->p < r->end && *r->p == c) {
                r->p++;
                return TRUE;
        }
        return FALSE;
}

static int ref_hex4(Ref *r) {
        int v = 0;

        if (r->end - r->p < 4)
                return -1;
        for (int i = 0; i < 4; i++) {
                int d = g_ascii_xdigit_value(r->p[i]);
                if (d < 0)
                        return -1;
                v = v * 16 + d;
        }
        r->p += 4;
        return v;
}

/* A string literal, decoded; NULL if not grammatical. */
static char *ref_string(Ref *r) {
        g_autoptr(GString) s = g_string_new(NULL);

        if (!ref_take(r, '"'))
                return NULL;
        for (;;) {
                unsigned char c;
                int u;

                if (r->p >= r->end)
                        return NULL;
                c = *r->p++;
                if (c == '"')
                        return g_string_free(g_steal_pointer(&s), FALSE);
                if (c < 0x20)
                        return NULL;
                if (c != '\\') {
                        g_string_append_c(s, c);
                        continue;
                }
                if (r->p >= r->end)
                        return NULL;
                c = *r->p++;
                switch (c) {
                case '"': case '\\': case '/':
                        g_string_append_c(s, c);
                        continue;
                case 'b': g_string_append_c(s, '\b'); continue;
                case 'f': g_string_append_c(s, '\f'); continue;
                case 'n': g_string_append_c(s, '\n'); continue;
                case 'r': g_string_append_c(s, '\r'); continue;
                case 't': g_string_append_c(s, '\t'); continue;
                case 'u': break;
                default: return NULL;
                }
                if ((u = ref_hex4(r)) < 0)
                        return NULL;
                if (u >= 0xD800 && u <= 0xDBFF && r->end - r->p >= 6 && r->p[0] == '\\' && r->p[1] == 'u') {
                        const char *save = r->p;
                        int low;
                        r->p += 2;
                        low = ref_hex4(r);
                        if (low >= 0xDC00 && low <= 0xDFFF)
                                u = 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00);
                        else
                                r->p = save; /* a lone high surrogate, then another escape */
                }
                if (u == 0 || (u >= 0xD800 && u <= 0xDFFF)) {
                        r->unfit = TRUE;
                        u = 0xFFFD;
                }
                g_string_append_unichar(s, u);
        }
}

static gboolean ref_digits(Ref *r) {
        const char *start = r->p;
        while (r->p < r->end && g_ascii_isdigit(*r->p))
                r->p++;
        return r->p > start;
}

/* json-glib 1.6 prints a double as "%.17g" and adds ".0" if there is no
 * '.': inf gives "inf.0", 1e17 gives "1e+17.0", neither is JSON. */
static gboolean printable_double(double d) {
        char buf[G_ASCII_DTOSTR_BUF_SIZE];

        if (!isfinite(d))
                return FALSE;
        g_ascii_dtostr(buf, sizeof(buf), d);
        return !strchr(buf, 'e') || strchr(buf, '.');
}

static JsonNode *ref_number(Ref *r) {
        const char *start = r->p;
        gboolean integer = TRUE;
        g_autofree char *token = NULL;
        JsonNode *n = json_node_alloc();

        ref_take(r, '-');
        if (!ref_take(r, '0') && !ref_digits(r))
                goto bad;
        if (ref_take(r, '.')) {
                integer = FALSE;
                if (!ref_digits(r))
                        goto bad;
        }
        if (ref_take(r, 'e') || ref_take(r, 'E')) {
                integer = FALSE;
                if (!ref_take(r, '+'))
                        ref_take(r, '-');
                if (!ref_digits(r))
                        goto bad;
        }
        token = g_strndup(start, r->p - start);
        if (integer) {
                gint64 v;
                errno = 0;
                v = g_ascii_strtoll(token, NULL, 10);
                if (errno == 0)
                        return json_node_init_int(n, v);
                r->huge = TRUE;
        }
        /* beyond int64 or with a fraction: its value as a double */
        json_node_init_double(n, g_ascii_strtod(token, NULL));
        if (!printable_double(json_node_get_double(n)))
                r->huge = TRUE;
        return n;
bad:
        json_node_unref(n);
        return NULL;
}

static JsonNode *ref_container(Ref *r, gboolean object) {
        JsonNode *node = json_node_alloc();
        JsonObject *obj = object ? json_object_new() : NULL;
        JsonArray *arr = object ? NULL : json_array_new();
        char close = object ? '}' : ']';

        if (object)
                json_node_init_object(node, obj);
        else
                json_node_init_array(node, arr);
        if (++r->depth > QM_JSON_MAX_DEPTH)
                goto bad;
        ref_ws(r);
        if (!ref_take(r, close)) {
                do {
                        g_autofree char *key = NULL;
                        JsonNode *v;
                        ref_ws(r);
                        if (object) {
                                if (!(key = ref_string(r)))
                                        goto bad;
                                ref_ws(r);
                                if (!ref_take(r, ':'))
                                        goto bad;
                        }
                        if (!(v = ref_value(r)))
                                goto bad;
                        if (object)
                                json_object_set_member(obj, key, v); /* the last duplicate wins */
                        else
                                json_array_add_element(arr, v);
                        ref_ws(r);
                } while (ref_take(r, ','));
                if (!ref_take(r, close))
                        goto bad;
        }
        r->depth--;
        if (obj)
                json_object_unref(obj);
        if (arr)
                json_array_unref(arr);
        return node;
bad:
        if (obj)
                json_object_unref(obj);
        if (arr)
                json_array_unref(arr);
        json_node_unref(node);
        return NULL;
}

static gboolean ref_literal(Ref *r, const char *word) {
        gsize n = strlen(word);
        if ((gsize)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
                return FALSE;
        r->p += n;
        return TRUE;
}

static JsonNode *ref_value(Ref *r) {
        ref_ws(r);
        if (r->p >= r->end)
                return NULL;
        switch (*r->p) {
        case '{':
                r->p++;
                return ref_container(r, TRUE);
        case '[':
                r->p++;
                return ref_container(r, FALSE);
        case '"': {
                char *s = ref_string(r);
                JsonNode *n;
                if (!s)
                        return NULL;
                n = json_node_init_string(json_node_alloc(), s);
                g_free(s);
                return n;
        }
        case 't':
                return ref_literal(r, "true") ? json_node_init_boolean(json_node_alloc(), TRUE) : NULL;
        case 'f':
                return ref_literal(r, "false") ? json_node_init_boolean(json_node_alloc(), FALSE) : NULL;
        case 'n':
                return ref_literal(r, "null") ? json_node_init_null(json_node_alloc()) : NULL;
        default:
                return ref_number(r);
        }
}

/* The reference parse of a whole document, NULL if not one JSON value. */
static JsonNode *ref_parse(const char *text, gsize len, gboolean *unfit, gboolean *huge) {
        Ref r = { text, text + len, 0, FALSE, FALSE };
        JsonNode *n;

        *unfit = FALSE;
        if (memchr(text, 0, len) || !g_utf8_validate(text, len, NULL))
                return NULL;
        n = ref_value(&r);
        if (!n)
                return NULL;
        ref_ws(&r);
        if (r.p != r.end) {
                json_node_unref(n);
                return NULL;
        }
        *unfit = r.unfit;
        *huge = r.huge;
        return n;
}

static gboolean numbers_close(double a, double b) {
        if (a == b)
                return TRUE;
        return isfinite(a) && isfinite(b) && fabs(a - b) <= 1e-12 * MAX(fabs(a), fabs(b));
}

/* Same tree: strings byte for byte, numbers by value. @where for the
 * message. */
static void same_tree(JsonNode *want, JsonNode *got, const char *where) {
        fuzz_assert(JSON_NODE_TYPE(want) == JSON_NODE_TYPE(got), "%s: node type %d, json-glib %d", where,
                    JSON_NODE_TYPE(want), JSON_NODE_TYPE(got));
        switch (JSON_NODE_TYPE(want)) {
        case JSON_NODE_NULL:
                return;
        case JSON_NODE_OBJECT: {
                JsonObject *w = json_node_get_object(want), *g = json_node_get_object(got);
                JsonObjectIter it;
                const char *key;
                JsonNode *val;
                fuzz_assert(json_object_get_size(w) == json_object_get_size(g), "%s: %u members, json-glib %u",
                            where, json_object_get_size(w), json_object_get_size(g));
                json_object_iter_init(&it, w);
                while (json_object_iter_next(&it, &key, &val)) {
                        JsonNode *other = json_object_get_member(g, key);
                        fuzz_assert(other, "%s: json-glib lost member '%s'", where, key);
                        same_tree(val, other, key);
                }
                return;
        }
        case JSON_NODE_ARRAY: {
                JsonArray *w = json_node_get_array(want), *g = json_node_get_array(got);
                fuzz_assert(json_array_get_length(w) == json_array_get_length(g), "%s: array length", where);
                for (guint i = 0; i < json_array_get_length(w); i++)
                        same_tree(json_array_get_element(w, i), json_array_get_element(g, i), where);
                return;
        }
        case JSON_NODE_VALUE:
                break;
        }
        switch (json_node_get_value_type(want)) {
        case G_TYPE_STRING: {
                const char *w = json_node_get_string(want), *g;
                fuzz_assert(json_node_get_value_type(got) == G_TYPE_STRING, "%s: not a string", where);
                g = json_node_get_string(got);
                fuzz_assert(fuzz_text_ok(g, -1), "%s: json-glib made a string that is not valid UTF-8", where);
                fuzz_assert(strcmp(w, g) == 0, "%s: string \"%s\", json-glib \"%s\"", where, w, g);
                return;
        }
        case G_TYPE_BOOLEAN:
                fuzz_assert(json_node_get_value_type(got) == G_TYPE_BOOLEAN &&
                                    json_node_get_boolean(want) == json_node_get_boolean(got),
                            "%s: boolean", where);
                return;
        case G_TYPE_INT64:
                if (json_node_get_value_type(got) == G_TYPE_INT64) {
                        fuzz_assert(json_node_get_int(want) == json_node_get_int(got),
                                    "%s: integer %" G_GINT64_FORMAT ", json-glib %" G_GINT64_FORMAT, where,
                                    json_node_get_int(want), json_node_get_int(got));
                        return;
                }
                break;
        default:
                break;
        }
        fuzz_assert(json_node_get_value_type(got) == G_TYPE_INT64 || json_node_get_value_type(got) == G_TYPE_DOUBLE,
                    "%s: not a number", where);
        fuzz_assert(numbers_close(json_node_get_double(want), json_node_get_double(got)), "%s: number %.17g, json-glib %.17g",
                    where, json_node_get_double(want), json_node_get_double(got));
}

/*
 * json-glib 1.6's limits: integers beyond int64 become other numbers,
 * 1e400 becomes inf (printed "inf.0"), 1e17 is printed "1e+17.0". That is
 * why the daemon never re-serializes QEMU's JSON (it passes QEMU's own
 * text on, checked by check_raw_helpers()); documents with such numbers
 * are left out of the json-glib tree checks.
 * QM_FUZZ_CHECK_JSON_GLIB_NUMBERS=1 checks them too (and finds those).
 */
static gboolean skip_number_bugs;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        fuzz_init_logging(TRUE);
        skip_number_bugs = g_strcmp0(g_getenv("QM_FUZZ_CHECK_JSON_GLIB_NUMBERS"), "1") != 0;
        return 0;
}

static void check_raw_helpers(const char *text, gsize size, JsonNode *ref) {
        g_autofree char *compact = qm_json_compact(text, size);
        g_autofree char *twice = qm_json_compact(compact, strlen(compact));
        g_autoptr(JsonNode) cref = NULL;
        JsonObjectIter it;
        const char *key;
        JsonNode *want;
        gboolean unfit, huge;
        gsize start, len;

        fuzz_assert(qm_json_check(compact, NULL), "compacted text fails the check: %.200s", compact);
        fuzz_assert(strcmp(compact, twice) == 0, "compacting is not a fixed point: %.200s", compact);
        cref = ref_parse(compact, strlen(compact), &unfit, &huge);
        fuzz_assert(cref, "compacted text is not one value: %.200s", compact);
        same_tree(ref, cref, "compacted");
        if (!JSON_NODE_HOLDS_OBJECT(ref)) {
                fuzz_assert(!qm_json_member_text(text, size, "a", &start, &len), "a member of a non-object");
                return;
        }
        json_object_iter_init(&it, json_node_get_object(ref));
        while (json_object_iter_next(&it, &key, &want)) {
                g_autoptr(JsonNode) got = NULL;
                g_autofree char *without = NULL;

                fuzz_assert(qm_json_member_text(text, size, key, &start, &len), "member '%s' not found", key);
                got = ref_parse(text + start, len, &unfit, &huge);
                fuzz_assert(got, "the raw text of member '%s' is not one value", key);
                same_tree(want, got, key);
                without = qm_json_remove_member(text, size, key);
                fuzz_assert(qm_json_check(without, NULL), "the text without '%s' fails the check: %.200s", key,
                            without);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *text = (const char *)data;
        g_autoptr(JsonNode) ref = NULL;
        g_autoptr(JsonNode) tree = NULL;
        g_autoptr(JsonNode) again = NULL;
        g_autoptr(GError) err = NULL;
        g_autofree char *out = NULL;
        gboolean ok, unfit, huge;

        ok = qm_json_check_len(text, size, &err);
        fuzz_assert(ok == !err, "the check returned %d with error %s", ok, err ? err->message : "NULL");
        if (err)
                fuzz_assert(fuzz_text_ok(err->message, -1), "error message not valid UTF-8");
        ref = ref_parse(text, size, &unfit, &huge);
        if (!ok) {
                fuzz_assert(!ref || unfit, "the check refused a well-formed document (%s)", err->message);
                return 0;
        }
        fuzz_assert(ref, "the check accepted what is not one well-formed JSON value");
        fuzz_assert(!unfit, "the check accepted \\u0000 or a lone surrogate, which cannot go to D-Bus");

        g_clear_error(&err);
        tree = qm_json_parse(text, size, &err);
        fuzz_assert(tree, "json-glib refused what the check accepted: %s", err->message);
        check_raw_helpers(text, size, ref);
        if (huge && skip_number_bugs)
                return 0;
        same_tree(ref, tree, "document");

        out = qm_json_to_string(tree);
        fuzz_assert(fuzz_text_ok(out, -1), "serialization is not valid UTF-8");
        fuzz_assert(qm_json_check(out, NULL), "serialization does not pass the check: %.200s", out);
        again = qm_json_parse(out, -1, NULL);
        fuzz_assert(again && qm_json_equal(tree, again), "serialization parses to another tree: %.200s", out);
        return 0;
}
