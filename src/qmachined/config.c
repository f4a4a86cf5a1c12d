/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <math.h>
#include <string.h>

#include "config.h"

QmConfig *qm_config_new(void) {
        QmConfig *c = g_new0(QmConfig, 1);
        c->args = g_new0(char *, 1);
        c->wrapper = g_new0(char *, 1);
        c->qmp = TRUE;
        c->qmp_timeout = 30.0;
        c->uuid = g_uuid_string_random();
        c->description = g_strdup("");
        c->sandbox = TRUE;
        c->forward_ports = g_array_new(FALSE, FALSE, sizeof(guint16));
        return c;
}

void qm_config_free(QmConfig *c) {
        if (!c)
                return;
        g_free(c->binary);
        g_strfreev(c->args);
        g_strfreev(c->wrapper);
        g_free(c->machine);
        g_free(c->console_device);
        g_free(c->uuid);
        g_free(c->incoming);
        g_free(c->description);
        g_free(c->user);
        g_array_unref(c->forward_ports);
        g_free(c);
}

typedef enum { KEY_STR, KEY_STRV, KEY_BOOL, KEY_U32, KEY_DOUBLE, KEY_U16V } KeyKind;

typedef struct {
        const char *name;
        const char *type;
        KeyKind kind;
        gsize offset;
        gboolean non_empty; /* strings: "" is refused */
} KeyInfo;

#define KEY(n, t, k, f, ne) { n, t, k, G_STRUCT_OFFSET(QmConfig, f), ne }
static const KeyInfo keys[] = {
        KEY("binary", "s", KEY_STR, binary, TRUE),
        KEY("args", "as", KEY_STRV, args, FALSE),
        KEY("wrapper", "as", KEY_STRV, wrapper, FALSE),
        KEY("machine", "s", KEY_STR, machine, TRUE),
        KEY("qmp", "b", KEY_BOOL, qmp, FALSE),
        KEY("console", "b", KEY_BOOL, console, FALSE),
        KEY("console-device", "s", KEY_STR, console_device, TRUE),
        KEY("console-index", "u", KEY_U32, console_index, FALSE),
        KEY("qmp-timeout", "d", KEY_DOUBLE, qmp_timeout, FALSE),
        KEY("persistent", "b", KEY_BOOL, persistent, FALSE),
        KEY("uuid", "s", KEY_STR, uuid, TRUE),
        KEY("incoming", "s", KEY_STR, incoming, TRUE),
        KEY("nics", "u", KEY_U32, nics, FALSE),
        KEY("description", "s", KEY_STR, description, FALSE),
        KEY("user", "s", KEY_STR, user, TRUE),
        KEY("sandbox", "b", KEY_BOOL, sandbox, FALSE),
        KEY("forward-ports", "aq", KEY_U16V, forward_ports, FALSE),
        KEY("guest-agent", "b", KEY_BOOL, guest_agent, FALSE),
        KEY("autostart", "b", KEY_BOOL, autostart, FALSE),
};

/* An aq as a GArray of guint16. */
static GVariant *u16v_to_variant(const GArray *a) {
        return g_variant_new_fixed_array(G_VARIANT_TYPE_UINT16, a->data, a->len, sizeof(guint16));
}

static const KeyInfo *find_key(const char *name) {
        for (gsize i = 0; i < G_N_ELEMENTS(keys); i++)
                if (strcmp(keys[i].name, name) == 0)
                        return &keys[i];
        return NULL;
}

static gboolean set_key(QmConfig *c, const KeyInfo *k, GVariant *v, QmError **error) {
        gpointer field = G_STRUCT_MEMBER_P(c, k->offset);

        if (!g_variant_is_of_type(v, G_VARIANT_TYPE(k->type))) {
                *error = qm_error_new(QM_ERROR_INVALID_ARGS,
                                      "config key '%s' must be of type '%s', not '%s'",
                                      k->name, k->type, g_variant_get_type_string(v));
                return FALSE;
        }
        switch (k->kind) {
        case KEY_STR: {
                const char *s = g_variant_get_string(v, NULL);
                if (k->non_empty && !*s) {
                        *error = qm_error_new(QM_ERROR_INVALID_ARGS, "config key '%s' must not be empty", k->name);
                        return FALSE;
                }
                if (strlen(s) > QM_CONFIG_MAX_TEXT) {
                        *error = qm_error_new(QM_ERROR_INVALID_ARGS, "config key '%s' is longer than %d bytes",
                                              k->name, QM_CONFIG_MAX_TEXT);
                        return FALSE;
                }
                g_free(*(char **)field);
                *(char **)field = g_strdup(s);
                break;
        }
        case KEY_STRV: {
                gsize n = g_variant_n_children(v);
                if (n > QM_CONFIG_MAX_STRV) {
                        *error = qm_error_new(QM_ERROR_LIMIT_EXCEEDED, "config key '%s' has more than %d entries",
                                              k->name, QM_CONFIG_MAX_STRV);
                        return FALSE;
                }
                for (gsize i = 0; i < n; i++) {
                        g_autoptr(GVariant) item = g_variant_get_child_value(v, i);
                        if (g_variant_get_size(item) > QM_CONFIG_MAX_TEXT) {
                                *error = qm_error_new(QM_ERROR_INVALID_ARGS,
                                                      "an entry of config key '%s' is longer than %d bytes",
                                                      k->name, QM_CONFIG_MAX_TEXT);
                                return FALSE;
                        }
                }
                g_strfreev(*(char ***)field);
                *(char ***)field = g_variant_dup_strv(v, NULL);
                break;
        }
        case KEY_BOOL:
                *(gboolean *)field = g_variant_get_boolean(v);
                break;
        case KEY_U32:
                *(guint32 *)field = g_variant_get_uint32(v);
                break;
        case KEY_DOUBLE:
                *(double *)field = g_variant_get_double(v);
                break;
        case KEY_U16V: {
                gsize n = 0;
                const guint16 *ports = g_variant_get_fixed_array(v, &n, sizeof(guint16));
                if (n > QM_CONFIG_MAX_FORWARD_PORTS) {
                        *error = qm_error_new(QM_ERROR_LIMIT_EXCEEDED, "config key '%s' has more than %d entries",
                                              k->name, QM_CONFIG_MAX_FORWARD_PORTS);
                        return FALSE;
                }
                g_array_set_size(*(GArray **)field, 0);
                g_array_append_vals(*(GArray **)field, ports, n);
                break;
        }
        }
        return TRUE;
}

/* Each forwarded guest port once, and never port 0. */
static gboolean forward_ports_are_valid(const GArray *ports, QmError **error) {
        for (guint i = 0; i < ports->len; i++) {
                guint16 p = g_array_index(ports, guint16, i);
                if (p == 0) {
                        *error = qm_error_new(QM_ERROR_INVALID_ARGS, "config key 'forward-ports' holds port 0");
                        return FALSE;
                }
                /* At most 64 entries: a quadratic check costs nothing. */
                for (guint j = 0; j < i; j++)
                        if (g_array_index(ports, guint16, j) == p) {
                                *error = qm_error_new(QM_ERROR_INVALID_ARGS,
                                                      "config key 'forward-ports' holds port %u twice", p);
                                return FALSE;
                        }
        }
        return TRUE;
}

/* A user name as useradd takes it (and '$' at the end for Samba's
 * machine accounts), or a decimal uid. */
static gboolean user_is_valid(const char *user) {
        size_t n = strlen(user);

        if (n == 0 || n > 256 || user[0] == '-')
                return FALSE;
        for (size_t i = 0; i < n; i++)
                if (!g_ascii_isalnum(user[i]) && !strchr("._-", user[i]) && !(user[i] == '$' && i == n - 1))
                        return FALSE;
        return TRUE;
}

static gboolean check_values(QmConfig *c, QmError **error) {
        if (!isfinite(c->qmp_timeout) || c->qmp_timeout <= 0 || c->qmp_timeout > QM_CONFIG_MAX_QMP_TIMEOUT) {
                *error = qm_error_new(QM_ERROR_INVALID_ARGS,
                                      "config key 'qmp-timeout' must be between 0 and %.0f seconds",
                                      QM_CONFIG_MAX_QMP_TIMEOUT);
                return FALSE;
        }
        if (!g_uuid_string_is_valid(c->uuid)) {
                *error = qm_error_new(QM_ERROR_INVALID_ARGS,
                                      "config key 'uuid' is not a UUID like 12345678-1234-1234-1234-123456789abc");
                return FALSE;
        }
        if (c->nics > QM_CONFIG_MAX_NICS) {
                *error = qm_error_new(QM_ERROR_INVALID_ARGS, "config key 'nics' must be at most %d",
                                      QM_CONFIG_MAX_NICS);
                return FALSE;
        }
        if (c->console_device && !c->console) {
                *error = qm_error_new(QM_ERROR_INVALID_ARGS,
                                      "config key 'console-device' needs 'console' set to true");
                return FALSE;
        }
        if (c->console_index > QM_CONFIG_MAX_CONSOLE_INDEX) {
                *error = qm_error_new(QM_ERROR_INVALID_ARGS, "config key 'console-index' must be at most %d",
                                      QM_CONFIG_MAX_CONSOLE_INDEX);
                return FALSE;
        }
        if (c->console_index > 0 && !c->console) {
                *error = qm_error_new(QM_ERROR_INVALID_ARGS,
                                      "config key 'console-index' needs 'console' set to true");
                return FALSE;
        }
        if (c->user && !user_is_valid(c->user)) {
                *error = qm_error_new(QM_ERROR_INVALID_ARGS,
                                      "config key 'user' must be a user name (at most 256 characters of A-Z a-z "
                                      "0-9 . _ -, not starting with '-') or a decimal uid");
                return FALSE;
        }
        if (!forward_ports_are_valid(c->forward_ports, error))
                return FALSE;
        if (c->forward_ports->len > 0 && c->nics == 0) {
                *error = qm_error_new(QM_ERROR_INVALID_ARGS,
                                      "config key 'forward-ports' needs 'nics' of at least 1 (ports of NIC 0 are forwarded)");
                return FALSE;
        }
        if (c->autostart && !c->persistent) {
                *error = qm_error_new(QM_ERROR_INVALID_ARGS,
                                      "config key 'autostart' needs 'persistent' set to true (only a kept "
                                      "definition is there at the next boot)");
                return FALSE;
        }
        if (c->binary && strchr(c->binary, '\n')) {
                *error = qm_error_new(QM_ERROR_INVALID_ARGS, "config key 'binary' holds a newline");
                return FALSE;
        }
        return TRUE;
}

QmConfig *qm_config_from_variant(GVariant *asv, QmError **error) {
        g_autoptr(QmConfig) c = qm_config_new();
        GVariantIter it;
        const char *key;
        GVariant *value;

        if (!g_variant_is_of_type(asv, G_VARIANT_TYPE_VARDICT)) {
                *error = qm_error_new(QM_ERROR_INVALID_ARGS, "config must be of type a{sv}");
                return NULL;
        }
        g_variant_iter_init(&it, asv);
        while (g_variant_iter_next(&it, "{&sv}", &key, &value)) {
                g_autoptr(GVariant) v = value;
                const KeyInfo *k = find_key(key);
                if (!k) {
                        *error = qm_error_new(QM_ERROR_INVALID_ARGS, "unknown config key '%s'", key);
                        return NULL;
                }
                if (!set_key(c, k, v, error))
                        return NULL;
        }
        if (!check_values(c, error))
                return NULL;
        /* One spelling of each UUID, so MACs and comparisons are stable. */
        char *lower = g_ascii_strdown(c->uuid, -1);
        g_free(c->uuid);
        c->uuid = lower;
        return g_steal_pointer(&c);
}

/* One key's value as its D-Bus type; NULL for an unset string. */
static GVariant *key_to_variant(const QmConfig *c, const KeyInfo *k) {
        gconstpointer field = G_STRUCT_MEMBER_P(c, k->offset);

        switch (k->kind) {
        case KEY_STR:
                return *(char *const *)field ? g_variant_new_string(*(char *const *)field) : NULL;
        case KEY_STRV:
                return g_variant_new_strv((const char *const *)*(char **const *)field, -1);
        case KEY_BOOL:
                return g_variant_new_boolean(*(const gboolean *)field);
        case KEY_U32:
                return g_variant_new_uint32(*(const guint32 *)field);
        case KEY_DOUBLE:
                return g_variant_new_double(*(const double *)field);
        case KEY_U16V:
                return u16v_to_variant(*(GArray *const *)field);
        }
        return NULL;
}

GVariant *qm_config_to_variant(const QmConfig *c) {
        GVariantBuilder b;

        g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
        for (gsize i = 0; i < G_N_ELEMENTS(keys); i++) {
                GVariant *v = key_to_variant(c, &keys[i]);
                if (v)
                        g_variant_builder_add(&b, "{sv}", keys[i].name, v);
        }
        return g_variant_builder_end(&b);
}

char *qm_config_effective_user(const QmConfig *c) {
        if (c->user)
                return g_strdup(c->user);
        if (c->owner == 0)
                return g_strdup(QM_DEFAULT_USER);
        return g_strdup_printf("%u", (unsigned)c->owner);
}

char *qm_config_mac_address(const QmConfig *c, guint index) {
        g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
        guint8 digest[32];
        gsize len = sizeof(digest);
        char idx[16];

        g_checksum_update(sum, (const guchar *)c->uuid, -1);
        g_snprintf(idx, sizeof(idx), "/%u", index);
        g_checksum_update(sum, (const guchar *)idx, -1);
        g_checksum_get_digest(sum, digest, &len);
        /* locally administered (bit 1), unicast (bit 0 clear) */
        digest[0] = (digest[0] & 0xfc) | 0x02;
        return g_strdup_printf("%02x:%02x:%02x:%02x:%02x:%02x",
                               digest[0], digest[1], digest[2], digest[3], digest[4], digest[5]);
}

JsonNode *qm_config_to_json(const QmConfig *c) {
        g_autoptr(JsonBuilder) b = json_builder_new_immutable();

        json_builder_begin_object(b);
        for (gsize i = 0; i < G_N_ELEMENTS(keys); i++) {
                const KeyInfo *k = &keys[i];
                gconstpointer field = G_STRUCT_MEMBER_P(c, k->offset);
                switch (k->kind) {
                case KEY_STR:
                        if (!*(char *const *)field)
                                continue;
                        json_builder_set_member_name(b, k->name);
                        json_builder_add_string_value(b, *(char *const *)field);
                        break;
                case KEY_STRV:
                        json_builder_set_member_name(b, k->name);
                        json_builder_begin_array(b);
                        for (char *const *p = *(char **const *)field; *p; p++)
                                json_builder_add_string_value(b, *p);
                        json_builder_end_array(b);
                        break;
                case KEY_BOOL:
                        json_builder_set_member_name(b, k->name);
                        json_builder_add_boolean_value(b, *(const gboolean *)field);
                        break;
                case KEY_U32:
                        json_builder_set_member_name(b, k->name);
                        json_builder_add_int_value(b, *(const guint32 *)field);
                        break;
                case KEY_DOUBLE:
                        json_builder_set_member_name(b, k->name);
                        json_builder_add_double_value(b, *(const double *)field);
                        break;
                case KEY_U16V: {
                        const GArray *a = *(GArray *const *)field;
                        json_builder_set_member_name(b, k->name);
                        json_builder_begin_array(b);
                        for (guint j = 0; j < a->len; j++)
                                json_builder_add_int_value(b, g_array_index(a, guint16, j));
                        json_builder_end_array(b);
                        break;
                }
                }
        }
        json_builder_end_object(b);
        return json_builder_get_root(b);
}

/* One JSON member as the GVariant type its key wants, or NULL. */
static GVariant *json_to_key_variant(const KeyInfo *k, JsonNode *v) {
        GType t = JSON_NODE_HOLDS_VALUE(v) ? json_node_get_value_type(v) : G_TYPE_INVALID;

        switch (k->kind) {
        case KEY_STR:
                return t == G_TYPE_STRING ? g_variant_new_string(json_node_get_string(v)) : NULL;
        case KEY_BOOL:
                return t == G_TYPE_BOOLEAN ? g_variant_new_boolean(json_node_get_boolean(v)) : NULL;
        case KEY_U32:
                if (t != G_TYPE_INT64 || json_node_get_int(v) < 0 || json_node_get_int(v) > G_MAXUINT32)
                        return NULL;
                return g_variant_new_uint32((guint32)json_node_get_int(v));
        case KEY_DOUBLE:
                return t == G_TYPE_DOUBLE || t == G_TYPE_INT64 ? g_variant_new_double(json_node_get_double(v)) : NULL;
        case KEY_STRV: {
                GVariantBuilder sb;
                JsonArray *a;
                if (!JSON_NODE_HOLDS_ARRAY(v))
                        return NULL;
                a = json_node_get_array(v);
                g_variant_builder_init(&sb, G_VARIANT_TYPE_STRING_ARRAY);
                for (guint i = 0; i < json_array_get_length(a); i++) {
                        JsonNode *e = json_array_get_element(a, i);
                        if (!JSON_NODE_HOLDS_VALUE(e) || json_node_get_value_type(e) != G_TYPE_STRING) {
                                g_variant_builder_clear(&sb);
                                return NULL;
                        }
                        g_variant_builder_add(&sb, "s", json_node_get_string(e));
                }
                return g_variant_builder_end(&sb);
        }
        case KEY_U16V: {
                GVariantBuilder qb;
                JsonArray *a;
                if (!JSON_NODE_HOLDS_ARRAY(v))
                        return NULL;
                a = json_node_get_array(v);
                g_variant_builder_init(&qb, G_VARIANT_TYPE("aq"));
                for (guint i = 0; i < json_array_get_length(a); i++) {
                        JsonNode *e = json_array_get_element(a, i);
                        if (!JSON_NODE_HOLDS_VALUE(e) || json_node_get_value_type(e) != G_TYPE_INT64 ||
                            json_node_get_int(e) < 0 || json_node_get_int(e) > G_MAXUINT16) {
                                g_variant_builder_clear(&qb);
                                return NULL;
                        }
                        g_variant_builder_add(&qb, "q", (guint16)json_node_get_int(e));
                }
                return g_variant_builder_end(&qb);
        }
        }
        return NULL;
}

QmConfig *qm_config_from_json(JsonNode *node, QmError **error) {
        g_autoptr(GVariant) asv = NULL;
        GVariantBuilder b;
        JsonObjectIter it;
        const char *name;
        JsonNode *v;

        if (!node || !JSON_NODE_HOLDS_OBJECT(node)) {
                *error = qm_error_new(QM_ERROR_INVALID_ARGS, "config must be a JSON object");
                return NULL;
        }
        g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
        json_object_iter_init(&it, json_node_get_object(node));
        while (json_object_iter_next(&it, &name, &v)) {
                const KeyInfo *k = find_key(name);
                GVariant *value = k ? json_to_key_variant(k, v) : NULL;
                if (!value) {
                        g_variant_builder_clear(&b);
                        *error = qm_error_new(QM_ERROR_INVALID_ARGS, k ? "config key '%s' has a value of the wrong type"
                                                                       : "unknown config key '%s'", name);
                        return NULL;
                }
                g_variant_builder_add(&b, "{sv}", name, value);
        }
        asv = g_variant_ref_sink(g_variant_builder_end(&b));
        return qm_config_from_variant(asv, error);
}

/* An override that UpdateMachine takes as "remove this key". */
static gboolean is_empty_value(GVariant *v) {
        if (g_variant_is_of_type(v, G_VARIANT_TYPE_STRING))
                return g_variant_get_size(v) <= 1; /* just the NUL */
        if (g_variant_is_container(v))
                return g_variant_n_children(v) == 0;
        return FALSE;
}

/* @base's keys (all but uuid unless @keep_uuid), then @overrides; with
 * @empty_removes an empty override drops the key (back to its default). */
static QmConfig *merge_config(const QmConfig *base, GVariant *overrides, gboolean keep_uuid,
                              gboolean empty_removes, QmError **error) {
        g_autoptr(GVariant) merged = NULL;
        g_autoptr(GHashTable) removed = g_hash_table_new(g_str_hash, g_str_equal);
        QmConfig *c;
        GVariantBuilder b;
        GVariantIter it;
        const char *key;
        GVariant *value;

        if (!g_variant_is_of_type(overrides, G_VARIANT_TYPE_VARDICT)) {
                *error = qm_error_new(QM_ERROR_INVALID_ARGS, "overrides must be of type a{sv}");
                return NULL;
        }
        g_variant_iter_init(&it, overrides);
        while (g_variant_iter_next(&it, "{&sv}", &key, &value)) {
                const KeyInfo *k = find_key(key);
                if (!k) {
                        g_variant_unref(value);
                        *error = qm_error_new(QM_ERROR_INVALID_ARGS, "unknown config key '%s'", key);
                        return NULL;
                }
                if (empty_removes && is_empty_value(value))
                        g_hash_table_add(removed, (gpointer)k->name);
                g_variant_unref(value);
        }
        g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
        for (gsize i = 0; i < G_N_ELEMENTS(keys); i++) {
                const KeyInfo *k = &keys[i];
                GVariant *v;

                if (strcmp(k->name, "uuid") == 0 && !keep_uuid)
                        continue; /* a clone is another machine: new UUID, new MACs */
                if (g_hash_table_contains(removed, k->name))
                        continue;
                v = key_to_variant(base, k);
                if (v)
                        g_variant_builder_add(&b, "{sv}", k->name, v);
        }
        /* Later entries win in qm_config_from_variant(). */
        g_variant_iter_init(&it, overrides);
        while (g_variant_iter_next(&it, "{&sv}", &key, &value)) {
                if (!g_hash_table_contains(removed, find_key(key)->name))
                        g_variant_builder_add(&b, "{sv}", key, value);
                g_variant_unref(value);
        }
        merged = g_variant_ref_sink(g_variant_builder_end(&b));
        c = qm_config_from_variant(merged, error);
        if (c)
                c->owner = base->owner;
        return c;
}

QmConfig *qm_config_clone(const QmConfig *base, GVariant *overrides, QmError **error) {
        return merge_config(base, overrides, FALSE, FALSE, error);
}

QmConfig *qm_config_update(const QmConfig *base, GVariant *overrides, QmError **error) {
        return merge_config(base, overrides, TRUE, TRUE, error);
}
