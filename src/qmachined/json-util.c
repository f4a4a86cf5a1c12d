/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "json-util.h"

/*
 * A strict RFC 8259 syntax check before json-glib sees the text: json-glib
 * 1.6 is lenient (it takes 'single quotes' and trailing garbage such as
 * "{}{}") and its parser recurses, so nesting is bounded here too.
 */
typedef struct {
        const char *p, *end;
        int depth;
} Lexer;

static void skip_ws(Lexer *x) {
        while (x->p < x->end && (*x->p == ' ' || *x->p == '\t' || *x->p == '\n' || *x->p == '\r'))
                x->p++;
}

static gboolean take(Lexer *x, char c) {
        if (x->p < x->end && *x->p == c) {
                x->p++;
                return TRUE;
        }
        return FALSE;
}

static gboolean digits(Lexer *x) {
        const char *start = x->p;
        while (x->p < x->end && g_ascii_isdigit(*x->p))
                x->p++;
        return x->p > start;
}

/* The value of 4 hex digits, or -1. */
static int read_hex4(Lexer *x) {
        int v = 0;

        for (int i = 0; i < 4; i++, x->p++) {
                if (x->p >= x->end || !g_ascii_isxdigit(*x->p))
                        return -1;
                v = v * 16 + g_ascii_xdigit_value(*x->p);
        }
        return v;
}

static gboolean check_string(Lexer *x) {
        if (!take(x, '"'))
                return FALSE;
        while (x->p < x->end) {
                unsigned char c = *x->p++;
                if (c == '"')
                        return TRUE;
                if (c < 0x20)
                        return FALSE;
                if (c != '\\')
                        continue;
                if (x->p >= x->end)
                        return FALSE;
                c = *x->p++;
                if (c == 'u') {
                        int unit = read_hex4(x);
                        /* json-glib turns \u0000 into a cut string and a
                         * lone surrogate into invalid UTF-8 that D-Bus then
                         * refuses; QEMU never writes either. */
                        if (unit <= 0 || (unit >= 0xDC00 && unit <= 0xDFFF))
                                return FALSE;
                        if (unit >= 0xD800 && unit <= 0xDBFF) {
                                int low;
                                if (!take(x, '\\') || !take(x, 'u'))
                                        return FALSE;
                                low = read_hex4(x);
                                if (low < 0xDC00 || low > 0xDFFF)
                                        return FALSE;
                        }
                } else if (!strchr("\"\\/bfnrt", c) || c == 0) {
                        return FALSE;
                }
        }
        return FALSE;
}

static gboolean check_number(Lexer *x) {
        take(x, '-');
        if (!take(x, '0') && !digits(x))
                return FALSE;
        if (take(x, '.') && !digits(x))
                return FALSE;
        if (take(x, 'e') || take(x, 'E')) {
                if (!take(x, '+'))
                        take(x, '-');
                if (!digits(x))
                        return FALSE;
        }
        return TRUE;
}

static gboolean check_literal(Lexer *x, const char *word) {
        size_t n = strlen(word);
        if ((size_t)(x->end - x->p) < n || memcmp(x->p, word, n) != 0)
                return FALSE;
        x->p += n;
        return TRUE;
}

static gboolean check_value(Lexer *x);

static gboolean check_container(Lexer *x, char close, gboolean object) {
        if (++x->depth > QM_JSON_MAX_DEPTH)
                return FALSE;
        skip_ws(x);
        if (!take(x, close)) {
                do {
                        skip_ws(x);
                        if (object) {
                                if (!check_string(x))
                                        return FALSE;
                                skip_ws(x);
                                if (!take(x, ':'))
                                        return FALSE;
                        }
                        if (!check_value(x))
                                return FALSE;
                        skip_ws(x);
                } while (take(x, ','));
                if (!take(x, close))
                        return FALSE;
        }
        x->depth--;
        return TRUE;
}

static gboolean check_value(Lexer *x) {
        skip_ws(x);
        if (x->p >= x->end)
                return FALSE;
        switch (*x->p) {
        case '{':
                x->p++;
                return check_container(x, '}', TRUE);
        case '[':
                x->p++;
                return check_container(x, ']', FALSE);
        case '"':
                return check_string(x);
        case 't':
                return check_literal(x, "true");
        case 'f':
                return check_literal(x, "false");
        case 'n':
                return check_literal(x, "null");
        default:
                return check_number(x);
        }
}

static gboolean json_syntax_ok(const char *text, gsize len, int *depth) {
        Lexer x = { text, text + len, 0 };
        gboolean ok = check_value(&x);

        *depth = x.depth;
        if (!ok)
                return FALSE;
        skip_ws(&x);
        return x.p == x.end;
}

static gboolean check_text(const char *text, gsize len, GError **error) {
        int depth;

        if (memchr(text, 0, len) || !g_utf8_validate(text, len, NULL)) {
                g_set_error_literal(error, JSON_PARSER_ERROR, JSON_PARSER_ERROR_INVALID_DATA,
                                    "not valid UTF-8 text");
                return FALSE;
        }
        if (!json_syntax_ok(text, len, &depth)) {
                if (depth > QM_JSON_MAX_DEPTH)
                        g_set_error(error, JSON_PARSER_ERROR, JSON_PARSER_ERROR_INVALID_DATA,
                                    "nested deeper than %d levels", QM_JSON_MAX_DEPTH);
                else
                        g_set_error(error, JSON_PARSER_ERROR, JSON_PARSER_ERROR_PARSE,
                                    "not a single well-formed JSON value (RFC 8259)");
                return FALSE;
        }
        return TRUE;
}

/* Does the string literal at @lit (with its quotes, already checked)
 * spell @key? Escapes are decoded, so "\u0069d" is "id" as json-glib
 * sees it. */
static gboolean literal_equals(const char *lit, gsize len, const char *key) {
        Lexer x = { lit + 1, lit + len - 1, 0 };
        const char *k = key;

        while (x.p < x.end) {
                char buf[8];
                gsize n;
                if (*x.p != '\\') {
                        if (*k++ != *x.p++)
                                return FALSE;
                        continue;
                }
                x.p++;
                if (*x.p == 'u') {
                        gunichar c;
                        int unit;
                        x.p++;
                        unit = read_hex4(&x);
                        c = unit;
                        if (unit >= 0xD800 && unit <= 0xDBFF) {
                                x.p += 2; /* the checked "\u" of the pair */
                                c = 0x10000 + ((unit - 0xD800) << 10) + (read_hex4(&x) - 0xDC00);
                        }
                        n = g_unichar_to_utf8(c, buf);
                } else {
                        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
                        buf[0] = to[strchr(from, *x.p) - from];
                        n = 1;
                        x.p++;
                }
                if (strncmp(k, buf, n) != 0)
                        return FALSE;
                k += n;
        }
        return *k == 0;
}

/* Member spans of the top-level object: [member, value_end). */
typedef struct {
        gsize member;
        gsize value;
        gsize value_end;
} Span;

/* The spans of every member of the object @text (which passed the check)
 * and the index of the last one named @key (json-glib keeps the last of
 * duplicates), or -1. */
static int object_spans(const char *text, gsize len, const char *key, GArray *spans) {
        Lexer x = { text, text + len, 0 };
        int found = -1;

        skip_ws(&x);
        if (!take(&x, '{'))
                return -1;
        skip_ws(&x);
        while (x.p < x.end && *x.p == '"') {
                Span sp = { .member = x.p - text };
                const char *lit = x.p;
                check_string(&x);
                gboolean match = literal_equals(lit, x.p - lit, key);
                skip_ws(&x);
                take(&x, ':');
                skip_ws(&x);
                sp.value = x.p - text;
                check_value(&x);
                sp.value_end = x.p - text;
                if (match)
                        found = spans->len;
                g_array_append_val(spans, sp);
                skip_ws(&x);
                take(&x, ',');
                skip_ws(&x);
        }
        return found;
}

gboolean qm_json_member_text(const char *text, gsize len, const char *key, gsize *start, gsize *value_len) {
        g_autoptr(GArray) spans = g_array_new(FALSE, FALSE, sizeof(Span));
        int i = object_spans(text, len, key, spans);
        Span *sp;

        if (i < 0)
                return FALSE;
        sp = &g_array_index(spans, Span, i);
        *start = sp->value;
        *value_len = sp->value_end - sp->value;
        return TRUE;
}

char *qm_json_remove_member(const char *text, gsize len, const char *key) {
        g_autoptr(GArray) spans = g_array_new(FALSE, FALSE, sizeof(Span));
        int i = object_spans(text, len, key, spans);
        gsize from, to;

        if (i < 0)
                return g_strndup(text, len);
        if ((guint)i + 1 < spans->len) { /* up to the next member */
                from = g_array_index(spans, Span, i).member;
                to = g_array_index(spans, Span, i + 1).member;
        } else if (i > 0) { /* from the end of the previous one */
                from = g_array_index(spans, Span, i - 1).value_end;
                to = g_array_index(spans, Span, i).value_end;
        } else {
                from = g_array_index(spans, Span, i).member;
                to = g_array_index(spans, Span, i).value_end;
        }
        GString *out = g_string_sized_new(len - (to - from));
        g_string_append_len(out, text, from);
        g_string_append_len(out, text + to, len - to);
        return g_string_free(out, FALSE);
}

char *qm_json_compact(const char *text, gsize len) {
        GString *out = g_string_sized_new(len);
        gboolean in_string = FALSE;

        for (gsize i = 0; i < len; i++) {
                char c = text[i];
                if (in_string) {
                        if (c == '\\' && i + 1 < len) {
                                g_string_append_c(out, c);
                                c = text[++i];
                        } else if (c == '"') {
                                in_string = FALSE;
                        }
                } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                        continue;
                } else if (c == '"') {
                        in_string = TRUE;
                }
                g_string_append_c(out, c);
        }
        return g_string_free(out, FALSE);
}

JsonNode *qm_json_parse_with(JsonParser *parser, const char *text, gssize len, GError **error) {
        JsonNode *root;

        if (len < 0)
                len = strlen(text);
        if (!check_text(text, len, error))
                return NULL;
        if (!json_parser_load_from_data(parser, text, len, error))
                return NULL;
        root = json_parser_get_root(parser);
        if (!root) {
                g_set_error_literal(error, JSON_PARSER_ERROR, JSON_PARSER_ERROR_PARSE, "empty document");
                return NULL;
        }
        return json_node_ref(root);
}

JsonNode *qm_json_parse(const char *text, gssize len, GError **error) {
        g_autoptr(JsonParser) parser = json_parser_new_immutable();
        return qm_json_parse_with(parser, text, len, error);
}

gboolean qm_json_check(const char *text, GError **error) {
        return check_text(text, strlen(text), error);
}

gboolean qm_json_check_len(const char *text, gsize len, GError **error) {
        return check_text(text, len, error);
}

gboolean qm_json_text_is_object(const char *text) {
        while (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r')
                text++;
        return *text == '{';
}

/*
 * json-glib 1.6 writes some control characters (0x1f among them) into
 * strings as they are, which is not JSON: our own strict check would then
 * refuse a definition we wrote. Escape every one left inside a string.
 */
static char *escape_controls(char *text) {
        GString *out;
        gboolean in_string = FALSE;

        for (const char *p = text; *p; p++)
                if ((unsigned char)*p < 0x20 && *p != '\n' && *p != ' ')
                        goto fix;
        return text; /* the usual case: nothing to do */
fix:
        out = g_string_sized_new(strlen(text) + 16);
        for (const char *p = text; *p; p++) {
                if (in_string && *p == '\\' && p[1]) {
                        g_string_append_c(out, *p++);
                        g_string_append_c(out, *p);
                        continue;
                }
                if (*p == '"')
                        in_string = !in_string;
                if (in_string && (unsigned char)*p < 0x20)
                        g_string_append_printf(out, "\\u%04x", (unsigned char)*p);
                else
                        g_string_append_c(out, *p);
        }
        g_free(text);
        return g_string_free(out, FALSE);
}

char *qm_json_generate(JsonNode *node, gboolean pretty) {
        g_autoptr(JsonGenerator) gen = json_generator_new();

        json_generator_set_root(gen, node);
        json_generator_set_pretty(gen, pretty);
        return escape_controls(json_generator_to_data(gen, NULL));
}

char *qm_json_to_string(JsonNode *node) {
        return qm_json_generate(node, FALSE);
}

gint64 qm_json_get_int(JsonObject *obj, const char *key, gint64 fallback) {
        JsonNode *n = obj ? json_object_get_member(obj, key) : NULL;
        if (!n || json_node_get_value_type(n) != G_TYPE_INT64)
                return fallback;
        return json_node_get_int(n);
}

const char *qm_json_get_string(JsonObject *obj, const char *key, const char *fallback) {
        JsonNode *n = obj ? json_object_get_member(obj, key) : NULL;
        if (!n || json_node_get_value_type(n) != G_TYPE_STRING)
                return fallback;
        return json_node_get_string(n);
}

JsonObject *qm_json_get_object(JsonObject *obj, const char *key) {
        JsonNode *n = obj ? json_object_get_member(obj, key) : NULL;
        if (!n || !JSON_NODE_HOLDS_OBJECT(n))
                return NULL;
        return json_node_get_object(n);
}

JsonNode *qm_json_new_object_string(const char *member, const char *value) {
        g_autoptr(JsonBuilder) b = json_builder_new_immutable();

        json_builder_begin_object(b);
        json_builder_set_member_name(b, member);
        json_builder_add_string_value(b, value);
        json_builder_end_object(b);
        return json_builder_get_root(b);
}
