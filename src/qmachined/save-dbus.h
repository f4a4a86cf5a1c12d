/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Machine.Save and Machine.Restore on the bus (save-dbus.c); the vtable
 * of machine-dbus.c lists them. */
#pragma once

#include <systemd/sd-bus.h>

int method_save(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_restore(sd_bus_message *msg, void *userdata, sd_bus_error *error);
