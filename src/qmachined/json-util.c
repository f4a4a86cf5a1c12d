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
                        for (int i = 0; i < 4; i++, x->p++)
                                if (x->p >= x->end || !g_ascii_isxdigit(*x->p))
                                        return FALSE;
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

char *qm_json_to_string(JsonNode *node) {
        g_autoptr(JsonGenerator) gen = json_generator_new();

        json_generator_set_root(gen, node);
        return json_generator_to_data(gen, NULL);
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
