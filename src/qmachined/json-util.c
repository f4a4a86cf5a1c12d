#include <string.h>

#include "json-util.h"

static gboolean depth_ok(const char *s, gsize len) {
        int depth = 0;
        gboolean in_string = FALSE;

        for (gsize i = 0; i < len; i++) {
                char c = s[i];
                if (in_string) {
                        if (c == '\\')
                                i++;
                        else if (c == '"')
                                in_string = FALSE;
                } else if (c == '"') {
                        in_string = TRUE;
                } else if (c == '[' || c == '{') {
                        if (++depth > QM_JSON_MAX_DEPTH)
                                return FALSE;
                } else if (c == ']' || c == '}') {
                        depth--;
                }
        }
        return TRUE;
}

JsonNode *qm_json_parse(const char *text, gssize len, GError **error) {
        g_autoptr(JsonParser) parser = NULL;
        JsonNode *root;

        if (len < 0)
                len = strlen(text);
        if (memchr(text, 0, len) || !g_utf8_validate(text, len, NULL)) {
                g_set_error_literal(error, JSON_PARSER_ERROR, JSON_PARSER_ERROR_INVALID_DATA,
                                    "not valid UTF-8 text");
                return NULL;
        }
        if (!depth_ok(text, len)) {
                g_set_error(error, JSON_PARSER_ERROR, JSON_PARSER_ERROR_INVALID_DATA,
                            "nested deeper than %d levels", QM_JSON_MAX_DEPTH);
                return NULL;
        }
        parser = json_parser_new_immutable();
        if (!json_parser_load_from_data(parser, text, len, error))
                return NULL;
        root = json_parser_get_root(parser);
        if (!root) {
                g_set_error_literal(error, JSON_PARSER_ERROR, JSON_PARSER_ERROR_PARSE,
                                    "empty document");
                return NULL;
        }
        return json_node_ref(root);
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
