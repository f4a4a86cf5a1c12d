/* SPDX-License-Identifier: LGPL-2.1-or-later */
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

/*
 * Raw-text helpers for text that passed qm_json_check(): they copy QEMU's
 * tokens byte for byte, so a uint64 above 2^63 or 1e400 passes through as
 * QEMU wrote it (json-glib would turn them into -1 and "inf.0").
 */
/* Where the value of member @key of the top-level object is (the last
 * one of duplicates, as in json-glib). FALSE if absent or not an object. */
gboolean qm_json_member_text(const char *text, gsize len, const char *key, gsize *start, gsize *value_len);
/* The object without member @key (and one comma); a copy if absent. */
char *qm_json_remove_member(const char *text, gsize len, const char *key);
/* Whitespace outside strings removed, everything else unchanged. */
char *qm_json_compact(const char *text, gsize len);

/* Compact serialization; never NULL. Always strict JSON (control
 * characters escaped, which json-glib 1.6 leaves out for some). */
char *qm_json_to_string(JsonNode *node);
/* The same, indented when @pretty. */
char *qm_json_generate(JsonNode *node, gboolean pretty);

/* Member accessors that never warn on untrusted input of the wrong type. */
gint64 qm_json_get_int(JsonObject *obj, const char *key, gint64 fallback);
const char *qm_json_get_string(JsonObject *obj, const char *key, const char *fallback);
/* {"@member": "@value"}, the arguments of many QMP commands. */
JsonNode *qm_json_new_object_string(const char *member, const char *value);
JsonObject *qm_json_get_object(JsonObject *obj, const char *key);
