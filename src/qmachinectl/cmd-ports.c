/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qmachinectl port: the host ports forwarded to a machine's guest ports
 * (config forward-ports). */
#include <stdio.h>

#include "ctl.h"

static JsonObject *port_object(unsigned guest, unsigned host) {
        JsonObject *o = json_object_new();

        json_object_set_int_member(o, "guest", guest);
        json_object_set_int_member(o, "host", host);
        return o;
}

/* "GUEST HOST" lines; JSON: [{guest, host}] */
static int print_all(Ctl *c, const char *name) {
        g_autoptr(JsonArray) rows = json_array_new();
        g_autoptr(JsonNode) node = NULL;
        g_autoptr(sd_bus_message) reply = NULL;
        g_autofree char *path = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint16_t guest, host;
        int r;

        r = ctl_machine_path(c, name, &path);
        if (r != EXIT_OK)
                return r;
        r = sd_bus_get_property(c->bus, QM_BUS_NAME, path, QM_MACHINE_IFACE, "ForwardedPorts", &error,
                                &reply, "a{qq}");
        if (r < 0) {
                int ret = ctl_bus_error(&error, r);
                sd_bus_error_free(&error);
                return ret;
        }
        r = sd_bus_message_enter_container(reply, 'a', "{qq}");
        while (r >= 0 && (r = sd_bus_message_read(reply, "{qq}", &guest, &host)) > 0) {
                if (ctl_json_mode(c))
                        json_array_add_object_element(rows, port_object(guest, host));
                else
                        printf("%u %u\n", guest, host);
        }
        if (r < 0)
                return ctl_error("bad ForwardedPorts: %s", g_strerror(-r));
        if (!ctl_json_mode(c))
                return EXIT_OK;
        node = json_node_init_array(json_node_alloc(), rows);
        return ctl_output(c, node, NULL, NULL);
}

int cmd_port(Ctl *c, int argc, char **argv) {
        g_autoptr(sd_bus_message) reply = NULL;
        unsigned guest;
        uint16_t host;
        int r;

        if (argc < 2)
                return print_all(c, argv[0]);
        if (ctl_parse_uint(argv[1], &guest) < 0 || guest < 1 || guest > UINT16_MAX) {
                fprintf(stderr, "qmachinectl: GUEST_PORT must be a TCP port from 1 to 65535, not '%s'\n",
                        argv[1]);
                return EXIT_USAGE;
        }
        r = ctl_machine_call(c, argv[0], "GetPort", 0, &reply, "q", (uint16_t)guest);
        if (r != EXIT_OK)
                return r;
        r = sd_bus_message_read(reply, "q", &host);
        if (r < 0)
                return ctl_error("bad reply to GetPort: %s", g_strerror(-r));
        if (ctl_json_mode(c)) {
                g_autoptr(JsonObject) o = port_object(guest, host);
                g_autoptr(JsonNode) node = json_node_init_object(json_node_alloc(), o);
                return ctl_output(c, node, NULL, NULL);
        }
        printf("%u\n", host);
        return EXIT_OK;
}
