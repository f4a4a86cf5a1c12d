/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qmachinectl: D-Bus properties of any type read into JSON, for show and
 * status. */
#include "ctl.h"

#include <errno.h>
#include <string.h>

/* Containers nest at most this deep (D-Bus allows 64; ours use 3). */
#define MAX_DEPTH 32

void ctl_property_free(CtlProperty *p) {
        if (!p)
                return;
        g_free(p->name);
        g_free(p->signature);
        if (p->value)
                json_node_unref(p->value);
        g_free(p);
}

static JsonNode *basic_to_json(char type, const void *v) {
        JsonNode *n = json_node_new(JSON_NODE_VALUE);

        switch (type) {
        case 'y':
                json_node_set_int(n, *(const uint8_t *)v);
                break;
        case 'b':
                json_node_set_boolean(n, *(const int *)v);
                break;
        case 'n':
                json_node_set_int(n, *(const int16_t *)v);
                break;
        case 'q':
                json_node_set_int(n, *(const uint16_t *)v);
                break;
        case 'i':
                json_node_set_int(n, *(const int32_t *)v);
                break;
        case 'u':
                json_node_set_int(n, *(const uint32_t *)v);
                break;
        case 'x':
                json_node_set_int(n, *(const int64_t *)v);
                break;
        case 't': /* JSON numbers of json-glib are int64: larger ones as text */
                if (*(const uint64_t *)v > (uint64_t)G_MAXINT64) {
                        g_autofree char *s = g_strdup_printf("%" G_GUINT64_FORMAT, *(const uint64_t *)v);
                        json_node_set_string(n, s);
                } else {
                        json_node_set_int(n, (gint64) * (const uint64_t *)v);
                }
                break;
        case 'd':
                json_node_set_double(n, *(const double *)v);
                break;
        case 's':
        case 'o':
        case 'g':
                json_node_set_string(n, *(const char *const *)v);
                break;
        default: /* 'h': a file descriptor means nothing here */
                json_node_init_null(n);
                break;
        }
        return n;
}

static int read_json(sd_bus_message *m, JsonNode **ret, unsigned depth);

/* a{..}: an object, keys as text. */
static int read_dict(sd_bus_message *m, const char *contents, JsonNode **ret, unsigned depth) {
        g_autoptr(JsonObject) o = json_object_new();
        g_autofree char *entry = g_strndup(contents + 1, strlen(contents) - 2); /* without { } */
        int r;

        r = sd_bus_message_enter_container(m, 'a', contents);
        while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', entry)) > 0) {
                g_autoptr(JsonNode) key = NULL;
                g_autoptr(JsonNode) value = NULL;
                g_autofree char *k = NULL;
                r = read_json(m, &key, depth + 1);
                if (r >= 0)
                        r = read_json(m, &value, depth + 1);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
                k = ctl_json_value_text(key);
                json_object_set_member(o, k, g_steal_pointer(&value));
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = json_node_init_object(json_node_alloc(), o);
        return 0;
}

/* Arrays and structs: JSON arrays. */
static int read_list(sd_bus_message *m, char type, const char *contents, JsonNode **ret, unsigned depth) {
        g_autoptr(JsonArray) a = json_array_new();
        int r;

        r = sd_bus_message_enter_container(m, type, contents);
        while (r >= 0 && (r = sd_bus_message_at_end(m, false)) == 0) {
                JsonNode *e = NULL;
                r = read_json(m, &e, depth + 1);
                if (r >= 0)
                        json_array_add_element(a, e);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = json_node_init_array(json_node_alloc(), a);
        return 0;
}

static int read_json(sd_bus_message *m, JsonNode **ret, unsigned depth) {
        const char *contents = NULL;
        char type;
        int r;

        if (depth > MAX_DEPTH)
                return -EBADMSG;
        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r <= 0)
                return r < 0 ? r : -EBADMSG;
        if (type == 'a' && contents[0] == '{')
                return read_dict(m, contents, ret, depth);
        if (type == 'a' || type == 'r')
                return read_list(m, type, contents, ret, depth);
        if (type == 'v') {
                r = sd_bus_message_enter_container(m, 'v', contents);
                if (r >= 0)
                        r = read_json(m, ret, depth + 1);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                return r;
        }
        {
                union {
                        uint8_t y;
                        int b;
                        int16_t n;
                        uint16_t q;
                        int32_t i;
                        uint32_t u;
                        int64_t x;
                        uint64_t t;
                        double d;
                        const char *s;
                } v;
                r = sd_bus_message_read_basic(m, type, &v);
                if (r < 0)
                        return r;
                *ret = basic_to_json(type, &v);
        }
        return 0;
}

int ctl_read_json(sd_bus_message *m, JsonNode **ret) {
        return read_json(m, ret, 0);
}

int ctl_get_all_properties(Ctl *c, const char *path, const char *iface, GPtrArray *props) {
        g_autoptr(sd_bus_message) reply = NULL;
        int r;

        r = ctl_call(c, path, "org.freedesktop.DBus.Properties", "GetAll", 0, &reply, "s", iface);
        if (r != EXIT_OK)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                CtlProperty *p = g_new0(CtlProperty, 1);
                const char *key, *sig = NULL;
                r = sd_bus_message_read(reply, "s", &key);
                if (r >= 0)
                        r = sd_bus_message_peek_type(reply, NULL, &sig);
                if (r >= 0) {
                        p->name = g_strdup(key);
                        p->signature = g_strdup(sig);
                        r = ctl_read_json(reply, &p->value);
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r < 0) {
                        ctl_property_free(p);
                        break;
                }
                g_ptr_array_add(props, p);
        }
        if (r < 0)
                return ctl_error("bad reply to GetAll: %s", g_strerror(-r));
        return EXIT_OK;
}

CtlProperty *ctl_get_property(Ctl *c, const char *path, const char *iface, const char *name, char **why) {
        g_autoptr(sd_bus_message) reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        CtlProperty *p;
        const char *sig = NULL;
        int r;

        r = sd_bus_call_method(c->bus, QM_BUS_NAME, path, "org.freedesktop.DBus.Properties", "Get", &error,
                               &reply, "ss", iface, name);
        if (r < 0) {
                if (why)
                        *why = g_strdup(error.message ? error.message : g_strerror(-r));
                sd_bus_error_free(&error);
                return NULL;
        }
        p = g_new0(CtlProperty, 1);
        p->name = g_strdup(name);
        r = sd_bus_message_peek_type(reply, NULL, &sig);
        if (r > 0) {
                p->signature = g_strdup(sig);
                r = ctl_read_json(reply, &p->value);
        }
        if (r <= 0) {
                if (why)
                        *why = g_strdup_printf("bad reply to Get: %s", g_strerror(r < 0 ? -r : EBADMSG));
                ctl_property_free(p);
                return NULL;
        }
        return p;
}

CtlProperty *ctl_find_property(GPtrArray *props, const char *name) {
        for (guint i = 0; i < props->len; i++) {
                CtlProperty *p = props->pdata[i];
                if (strcmp(p->name, name) == 0)
                        return p;
        }
        return NULL;
}

char *ctl_property_text(const CtlProperty *p) {
        if (strcmp(p->signature, "as") == 0 && JSON_NODE_HOLDS_ARRAY(p->value)) {
                JsonArray *a = json_node_get_array(p->value);
                g_autoptr(GPtrArray) words = g_ptr_array_new();
                for (guint i = 0; i < json_array_get_length(a); i++)
                        g_ptr_array_add(words, (char *)json_array_get_string_element(a, i));
                g_ptr_array_add(words, NULL);
                return ctl_shell_join((char **)words->pdata);
        }
        if (strcmp(p->signature, "a{qq}") == 0 && JSON_NODE_HOLDS_OBJECT(p->value)) {
                JsonObject *o = json_node_get_object(p->value);
                g_autoptr(GList) members = json_object_get_members(o);
                GString *s = g_string_new(NULL);
                for (GList *l = members; l; l = l->next)
                        g_string_append_printf(s, "%s%s:%" G_GINT64_FORMAT, s->len ? " " : "",
                                               (const char *)l->data, json_object_get_int_member(o, l->data));
                return g_string_free(s, FALSE);
        }
        return ctl_json_value_text(p->value);
}
