/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.qmachine.QMachine1.Manager on the bus (manager-dbus.c). */
#pragma once

#include "manager.h"

/* Export the Manager object and install the ManagerNotify that serves it. */
int manager_export(Manager *mgr);
