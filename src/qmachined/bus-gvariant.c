/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "bus-gvariant.h"

static int read_value(sd_bus_message *m, GVariant **out);

static int read_container(sd_bus_message *m, char type, const char *contents, GVariant **out) {
        g_autofree char *sig = NULL;
        GVariantBuilder b;
        int r;

        switch (type) {
        case SD_BUS_TYPE_ARRAY:
                sig = g_strdup_printf("a%s", contents);
                break;
        case SD_BUS_TYPE_VARIANT:
                sig = g_strdup("v");
                break;
        case SD_BUS_TYPE_STRUCT:
                sig = g_strdup_printf("(%s)", contents);
                break;
        case SD_BUS_TYPE_DICT_ENTRY:
                sig = g_strdup_printf("{%s}", contents);
                break;
        default:
                return -EINVAL;
        }
        if (!g_variant_type_string_is_valid(sig))
                return -EINVAL;

        r = sd_bus_message_enter_container(m, type, contents);
        if (r < 0)
                return r;
        if (type == SD_BUS_TYPE_VARIANT) {
                GVariant *inner = NULL;
                r = read_value(m, &inner);
                if (r < 0)
                        return r;
                *out = g_variant_ref_sink(g_variant_new_variant(inner));
                g_variant_unref(inner);
                return sd_bus_message_exit_container(m);
        }
        g_variant_builder_init(&b, G_VARIANT_TYPE(sig));
        for (;;) {
                GVariant *child = NULL;
                r = sd_bus_message_at_end(m, FALSE);
                if (r < 0)
                        goto fail;
                if (r > 0)
                        break;
                r = read_value(m, &child);
                if (r < 0)
                        goto fail;
                g_variant_builder_add_value(&b, child);
                g_variant_unref(child);
        }
        *out = g_variant_ref_sink(g_variant_builder_end(&b));
        return sd_bus_message_exit_container(m);
fail:
        g_variant_builder_clear(&b);
        return r;
}

static int read_value(sd_bus_message *m, GVariant **out) {
        const char *contents = NULL;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENXIO;

        switch (type) {
        case SD_BUS_TYPE_ARRAY:
        case SD_BUS_TYPE_VARIANT:
        case SD_BUS_TYPE_STRUCT:
        case SD_BUS_TYPE_DICT_ENTRY:
                return read_container(m, type, contents, out);
        }

        union {
                uint8_t y; int b; int16_t n; uint16_t q; int32_t i; uint32_t u;
                int64_t x; uint64_t t; double d; const char *s;
        } v;
        GVariant *g;
        r = sd_bus_message_read_basic(m, type, &v);
        if (r < 0)
                return r;
        switch (type) {
        case SD_BUS_TYPE_BYTE: g = g_variant_new_byte(v.y); break;
        case SD_BUS_TYPE_BOOLEAN: g = g_variant_new_boolean(v.b); break;
        case SD_BUS_TYPE_INT16: g = g_variant_new_int16(v.n); break;
        case SD_BUS_TYPE_UINT16: g = g_variant_new_uint16(v.q); break;
        case SD_BUS_TYPE_INT32: g = g_variant_new_int32(v.i); break;
        case SD_BUS_TYPE_UINT32: g = g_variant_new_uint32(v.u); break;
        case SD_BUS_TYPE_INT64: g = g_variant_new_int64(v.x); break;
        case SD_BUS_TYPE_UINT64: g = g_variant_new_uint64(v.t); break;
        case SD_BUS_TYPE_DOUBLE: g = g_variant_new_double(v.d); break;
        case SD_BUS_TYPE_STRING: g = g_variant_new_string(v.s); break;
        case SD_BUS_TYPE_OBJECT_PATH: g = g_variant_new_object_path(v.s); break;
        case SD_BUS_TYPE_SIGNATURE: g = g_variant_new_signature(v.s); break;
        default:
                /* unix fds and anything else have no place in a config */
                return -EINVAL;
        }
        *out = g_variant_ref_sink(g);
        return 0;
}

int bus_message_read_gvariant(sd_bus_message *m, GVariant **out) {
        return read_value(m, out);
}

int bus_message_append_gvariant(sd_bus_message *m, GVariant *v) {
        const char *sig = g_variant_get_type_string(v);
        GVariantIter it;
        GVariant *child;
        int r;

        switch (g_variant_classify(v)) {
        case G_VARIANT_CLASS_BOOLEAN: return sd_bus_message_append_basic(m, 'b', &(int){g_variant_get_boolean(v)});
        case G_VARIANT_CLASS_BYTE: return sd_bus_message_append_basic(m, 'y', &(uint8_t){g_variant_get_byte(v)});
        case G_VARIANT_CLASS_INT16: return sd_bus_message_append_basic(m, 'n', &(int16_t){g_variant_get_int16(v)});
        case G_VARIANT_CLASS_UINT16: return sd_bus_message_append_basic(m, 'q', &(uint16_t){g_variant_get_uint16(v)});
        case G_VARIANT_CLASS_INT32: return sd_bus_message_append_basic(m, 'i', &(int32_t){g_variant_get_int32(v)});
        case G_VARIANT_CLASS_UINT32: return sd_bus_message_append_basic(m, 'u', &(uint32_t){g_variant_get_uint32(v)});
        case G_VARIANT_CLASS_INT64: return sd_bus_message_append_basic(m, 'x', &(int64_t){g_variant_get_int64(v)});
        case G_VARIANT_CLASS_UINT64: return sd_bus_message_append_basic(m, 't', &(uint64_t){g_variant_get_uint64(v)});
        case G_VARIANT_CLASS_DOUBLE: return sd_bus_message_append_basic(m, 'd', &(double){g_variant_get_double(v)});
        case G_VARIANT_CLASS_STRING: return sd_bus_message_append_basic(m, 's', g_variant_get_string(v, NULL));
        case G_VARIANT_CLASS_OBJECT_PATH: return sd_bus_message_append_basic(m, 'o', g_variant_get_string(v, NULL));
        case G_VARIANT_CLASS_SIGNATURE: return sd_bus_message_append_basic(m, 'g', g_variant_get_string(v, NULL));
        case G_VARIANT_CLASS_VARIANT: {
                g_autoptr(GVariant) inner = g_variant_get_variant(v);
                r = sd_bus_message_open_container(m, 'v', g_variant_get_type_string(inner));
                if (r < 0)
                        return r;
                r = bus_message_append_gvariant(m, inner);
                if (r < 0)
                        return r;
                return sd_bus_message_close_container(m);
        }
        case G_VARIANT_CLASS_ARRAY:
                r = sd_bus_message_open_container(m, 'a', sig + 1);
                break;
        case G_VARIANT_CLASS_TUPLE: {
                g_autofree char *inner = NULL;
                if (g_variant_n_children(v) == 0)
                        return -EINVAL; /* D-Bus has no empty struct */
                inner = g_strndup(sig + 1, strlen(sig) - 2);
                r = sd_bus_message_open_container(m, 'r', inner);
                break;
        }
        case G_VARIANT_CLASS_DICT_ENTRY: {
                g_autofree char *inner = g_strndup(sig + 1, strlen(sig) - 2);
                r = sd_bus_message_open_container(m, 'e', inner);
                break;
        }
        default:
                return -EINVAL;
        }
        if (r < 0)
                return r;
        g_variant_iter_init(&it, v);
        while ((child = g_variant_iter_next_value(&it))) {
                r = bus_message_append_gvariant(m, child);
                g_variant_unref(child);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

int bus_message_read_strv_max(sd_bus_message *m, guint max, char ***out) {
        g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func(g_free);
        const char *s;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "s");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read_basic(m, 's', &s)) > 0) {
                if (items->len >= max)
                        return -E2BIG;
                g_ptr_array_add(items, g_strdup(s));
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        g_ptr_array_add(items, NULL);
        *out = (char **)g_ptr_array_steal(items, NULL);
        return 0;
}
