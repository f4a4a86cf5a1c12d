/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Machine methods and the property of forward-ports (GetPort, GetAddress,
 * ForwardedPorts); machine-dbus.c puts them in its vtable. */
#pragma once

#include <systemd/sd-bus.h>

int ports_dbus_get_port(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int ports_dbus_get_address(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int ports_dbus_forwarded_ports(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error);
