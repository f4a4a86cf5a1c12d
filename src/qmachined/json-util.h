/* JSON parsing that is safe on untrusted input. */
#pragma once

#include <json-glib/json-glib.h>

/* Deeper nesting is refused before parsing: json-glib's parser recurses. */
#define QM_JSON_MAX_DEPTH 512

/* Parse @len bytes of JSON text (UTF-8, no NUL). NULL and @error on failure. */
JsonNode *qm_json_parse(const char *text, gssize len, GError **error);

/* The same with a parser the caller keeps and reuses. */
JsonNode *qm_json_parse_with(JsonParser *parser, const char *text, gssize len, GError **error);

/* Is @text one well-formed JSON value (strict, depth-bounded)? Checks
 * without building a tree. */
gboolean qm_json_check(const char *text, GError **error);
gboolean qm_json_check_len(const char *text, gsize len, GError **error);
/* For text that passed qm_json_check(): is the value an object? */
gboolean qm_json_text_is_object(const char *text);

/* Compact serialization; never NULL. */
char *qm_json_to_string(JsonNode *node);

/* Member accessors that never warn on untrusted input of the wrong type. */
gint64 qm_json_get_int(JsonObject *obj, const char *key, gint64 fallback);
const char *qm_json_get_string(JsonObject *obj, const char *key, const char *fallback);
JsonObject *qm_json_get_object(JsonObject *obj, const char *key);
