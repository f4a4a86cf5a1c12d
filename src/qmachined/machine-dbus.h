/* org.qmachine.QMachine1.Machine on the bus (machine-dbus.c). */
#pragma once

#include "machine.h"

/* Export @m's object and install the MachineNotify that serves it. */
int machine_export(Machine *m);
