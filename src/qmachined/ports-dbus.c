/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* GetPort, GetAddress and ForwardedPorts: no authorization (API.md), the
 * answers come from the model at once. */
#include "ports-dbus.h"
#include "dbus-common.h"
#include "machine.h"

static int fail(sd_bus_error *error, QmError *e) {
        int r = sd_bus_error_set(error, e->name, e->message);
        qm_error_free(e);
        return r;
}

int ports_dbus_get_port(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Machine *m = userdata;
        uint16_t guest, host = 0;
        QmError *e;
        int r;

        r = sd_bus_message_read(msg, "q", &guest);
        if (r < 0)
                return r;
        if (guest == 0)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "guest_port must be 1 to 65535");
        e = machine_get_port(m, guest, &host);
        if (e)
                return fail(error, e);
        return sd_bus_reply_method_return(msg, "q", host);
}

int ports_dbus_get_address(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Machine *m = userdata;
        const char *address = NULL;
        uint32_t nic;
        QmError *e;
        int r;

        r = sd_bus_message_read(msg, "u", &nic);
        if (r < 0)
                return r;
        e = machine_get_address(m, nic, &address);
        if (e)
                return fail(error, e);
        return sd_bus_reply_method_return(msg, "s", address);
}

int ports_dbus_forwarded_ports(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const GArray *ports = machine_get_forwarded_ports(userdata);
        int r = sd_bus_message_open_container(reply, 'a', "{qq}");

        for (guint i = 0; r >= 0 && i < ports->len; i++) {
                const QmPortPair *p = &g_array_index(ports, QmPortPair, i);
                r = sd_bus_message_append(reply, "{qq}", p->guest, p->host);
        }
        return r < 0 ? r : sd_bus_message_close_container(reply);
}
