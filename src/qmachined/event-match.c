/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "event-match.h"

static gboolean is_number(JsonNode *n) {
        GType t = json_node_get_value_type(n);
        return t == G_TYPE_INT64 || t == G_TYPE_DOUBLE;
}

static gboolean value_equal(JsonNode *a, JsonNode *b) {
        GType ta = json_node_get_value_type(a), tb = json_node_get_value_type(b);

        if (is_number(a) && is_number(b)) {
                if (ta == G_TYPE_INT64 && tb == G_TYPE_INT64)
                        return json_node_get_int(a) == json_node_get_int(b);
                return json_node_get_double(a) == json_node_get_double(b);
        }
        if (ta != tb)
                return FALSE;
        if (ta == G_TYPE_BOOLEAN)
                return json_node_get_boolean(a) == json_node_get_boolean(b);
        if (ta == G_TYPE_STRING)
                return g_strcmp0(json_node_get_string(a), json_node_get_string(b)) == 0;
        return FALSE;
}

gboolean qm_json_equal(JsonNode *a, JsonNode *b) {
        JsonNodeType t = JSON_NODE_TYPE(a);

        if (t != JSON_NODE_TYPE(b))
                return FALSE;
        switch (t) {
        case JSON_NODE_NULL:
                return TRUE;
        case JSON_NODE_VALUE:
                return value_equal(a, b);
        case JSON_NODE_ARRAY: {
                JsonArray *x = json_node_get_array(a), *y = json_node_get_array(b);
                guint n = json_array_get_length(x);
                if (n != json_array_get_length(y))
                        return FALSE;
                for (guint i = 0; i < n; i++)
                        if (!qm_json_equal(json_array_get_element(x, i), json_array_get_element(y, i)))
                                return FALSE;
                return TRUE;
        }
        case JSON_NODE_OBJECT: {
                JsonObject *x = json_node_get_object(a), *y = json_node_get_object(b);
                JsonObjectIter it;
                const char *key;
                JsonNode *val;
                if (json_object_get_size(x) != json_object_get_size(y))
                        return FALSE;
                json_object_iter_init(&it, x);
                while (json_object_iter_next(&it, &key, &val)) {
                        JsonNode *other = json_object_get_member(y, key);
                        if (!other || !qm_json_equal(val, other))
                                return FALSE;
                }
                return TRUE;
        }
        }
        return FALSE;
}

gboolean qm_event_match(JsonNode *event, JsonNode *match) {
        if (!match || JSON_NODE_HOLDS_NULL(match))
                return TRUE;
        if (!event)
                return FALSE;
        if (JSON_NODE_HOLDS_OBJECT(match)) {
                JsonObject *m, *e;
                JsonObjectIter it;
                const char *key;
                JsonNode *val;

                if (!JSON_NODE_HOLDS_OBJECT(event))
                        return FALSE;
                m = json_node_get_object(match);
                e = json_node_get_object(event);
                json_object_iter_init(&it, m);
                while (json_object_iter_next(&it, &key, &val)) {
                        JsonNode *ev = json_object_get_member(e, key);
                        if (!ev || !qm_event_match(ev, val))
                                return FALSE;
                }
                return TRUE;
        }
        return qm_json_equal(event, match);
}
