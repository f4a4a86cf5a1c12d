/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qmachinectl: the daemon's disk images. */
#include "ctl.h"

#include <stdio.h>
#include <string.h>

static char *format_size(JsonNode *size) {
        return size && JSON_NODE_HOLDS_VALUE(size) ? ctl_format_size((uint64_t)json_node_get_int(size))
                                                   : g_strdup("");
}

static void print_images(const Ctl *c, JsonNode *node, const void *userdata) {
        static const CtlColumn columns[] = {
                { "NAME", "name", NULL, CTL_COLOR_BOLD },
                { "FORMAT", "format", NULL, CTL_COLOR_NONE },
                { "SIZE", "size", format_size, CTL_COLOR_NONE },
        };

        ctl_print_columns(c, columns, G_N_ELEMENTS(columns), json_node_get_array(node));
}

/* JSON: [{name, format, size (bytes)}] */
int cmd_images(Ctl *c, int argc, char **argv) {
        g_autoptr(sd_bus_message) reply = NULL;
        g_autoptr(JsonArray) rows = json_array_new();
        g_autoptr(JsonNode) node = NULL;
        const char *name, *format;
        uint64_t size;
        int r;

        r = ctl_manager_call(c, "ListImages", 0, &reply, NULL);
        if (r != EXIT_OK)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(sst)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(sst)", &name, &format, &size)) > 0) {
                JsonObject *o = json_object_new();
                json_object_set_string_member(o, "name", name);
                json_object_set_string_member(o, "format", format);
                json_object_set_int_member(o, "size", (gint64)MIN(size, (uint64_t)G_MAXINT64));
                json_array_add_object_element(rows, o);
        }
        if (r < 0)
                return ctl_error("bad reply to ListImages: %s", g_strerror(-r));
        node = json_node_init_array(json_node_alloc(), rows);
        ctl_pager_open(c);
        return ctl_output(c, node, print_images, NULL);
}

int cmd_image_create(Ctl *c, int argc, char **argv) {
        g_autoptr(sd_bus_message) m = NULL;
        g_autoptr(sd_bus_message) reply = NULL;
        const char *path;
        uint64_t size;
        int r;

        if (ctl_parse_size(argv[2], &size) < 0) {
                fprintf(stderr,
                        "qmachinectl: invalid size: %s (a number with an optional "
                        "K, M, G or T)\n",
                        argv[2]);
                return EXIT_USAGE;
        }
        r = sd_bus_message_new_method_call(c->bus, &m, QM_BUS_NAME, QM_MANAGER_PATH, QM_MANAGER_IFACE,
                                           "CreateImage");
        if (r >= 0)
                r = sd_bus_message_append(m, "sst", argv[0], argv[1], size);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && c->o.cluster_size_set)
                r = sd_bus_message_append(m, "{sv}", "cluster-size", "t", c->o.cluster_size);
        if (r >= 0 && c->o.backing)
                r = sd_bus_message_append(m, "{sv}", "backing-file", "s", c->o.backing);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return ctl_error("cannot build the call: %s", g_strerror(-r));
        r = ctl_send(c, m, 0, &reply);
        if (r != EXIT_OK)
                return r;
        r = sd_bus_message_read(reply, "s", &path);
        if (r < 0)
                return ctl_error("bad reply to CreateImage: %s", g_strerror(-r));
        return ctl_output_string(c, "path", path);
}

int cmd_image_check(Ctl *c, int argc, char **argv) {
        g_autoptr(sd_bus_message) reply = NULL;
        const char *verdict, *report;
        int r;

        r = ctl_manager_call(c, "CheckImage", 0, &reply, "s", argv[0]);
        if (r != EXIT_OK)
                return r;
        r = sd_bus_message_read(reply, "ss", &verdict, &report);
        if (r < 0)
                return ctl_error("bad reply to CheckImage: %s", g_strerror(-r));
        if (ctl_json_mode(c)) {
                g_autoptr(JsonObject) o = json_object_new();
                g_autoptr(JsonNode) node = NULL;
                json_object_set_string_member(o, "verdict", verdict);
                json_object_set_string_member(o, "report", report);
                node = json_node_init_object(json_node_alloc(), o);
                ctl_output(c, node, NULL, NULL);
        } else {
                printf("%s\n", verdict);
                if (report[0])
                        ctl_print_text(report);
        }
        return strcmp(verdict, "ok") == 0 ? EXIT_OK : EXIT_FAIL;
}

int cmd_image_remove(Ctl *c, int argc, char **argv) {
        return ctl_manager_call(c, "RemoveImage", 0, NULL, "s", argv[0]);
}
