/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* WaitConsole, WriteConsole and ConsoleBytes of
 * org.qmachine.QMachine1.Machine (entries of machine-dbus.c's vtable). */
#pragma once

#include <systemd/sd-bus.h>

int machine_dbus_wait_console(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int machine_dbus_write_console(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int machine_dbus_console_bytes(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error);

/* At most this much per WriteConsole call. */
#define QM_WRITE_CONSOLE_MAX (64 * 1024)
