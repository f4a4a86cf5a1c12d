/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guest agent's members of org.qmachine.QMachine1.Machine; their
 * vtable entries are in machine-dbus.c. */
#pragma once

#include <systemd/sd-bus.h>

int method_guest_agent(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_guest_exec(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_copy_to_guest(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_copy_from_guest(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int prop_guest_agent_connected(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error);
