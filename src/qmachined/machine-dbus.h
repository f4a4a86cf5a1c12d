/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.qmachine.QMachine1.Machine on the bus (machine-dbus.c). */
#pragma once

#include "machine.h"

/* Export @m's object and install the MachineNotify that serves it. */
int machine_export(Machine *m);

/* Config and CommandLine are only for root and the owner, and a property
 * getter cannot wait for the bus to say who asks: this filter holds a
 * Get of them until the asker's uid is known. */
int machine_dbus_add_secret_filter(QmDaemon *d, sd_bus_slot **slot);
