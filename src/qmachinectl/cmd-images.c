/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qmachinectl: the daemon's disk images. */
#include "ctl.h"

#include <stdio.h>
#include <string.h>

int cmd_images(Ctl *c, int argc, char **argv) {
        g_autoptr(sd_bus_message) reply = NULL;
        g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
        const char *name, *format;
        uint64_t size;
        int r;

        r = ctl_manager_call(c, "ListImages", 0, &reply, NULL);
        if (r != EXIT_OK)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(sst)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(sst)", &name, &format, &size)) > 0) {
                char **row = g_new0(char *, 4);
                row[0] = g_strdup(name);
                row[1] = g_strdup(format);
                row[2] = ctl_format_size(size);
                g_ptr_array_add(rows, row);
        }
        if (r < 0)
                return ctl_error("bad reply to ListImages: %s", g_strerror(-r));
        ctl_print_table((const char *const[]){ "NAME", "FORMAT", "SIZE" }, rows);
        return EXIT_OK;
}

int cmd_image_create(Ctl *c, int argc, char **argv) {
        g_autoptr(sd_bus_message) m = NULL;
        g_autoptr(sd_bus_message) reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
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
        r = sd_bus_call(c->bus, m, 0, &error, &reply);
        if (r < 0) {
                r = ctl_bus_error(&error, r);
                sd_bus_error_free(&error);
                return r;
        }
        r = sd_bus_message_read(reply, "s", &path);
        if (r < 0)
                return ctl_error("bad reply to CreateImage: %s", g_strerror(-r));
        printf("%s\n", path);
        return EXIT_OK;
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
        printf("%s\n", verdict);
        if (report[0])
                ctl_print_text(report);
        return strcmp(verdict, "ok") == 0 ? EXIT_OK : EXIT_FAIL;
}

int cmd_image_remove(Ctl *c, int argc, char **argv) {
        return ctl_manager_call(c, "RemoveImage", 0, NULL, "s", argv[0]);
}
