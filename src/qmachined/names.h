/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Machine names: validation, generation, object paths. */
#pragma once

#include <glib.h>

#define QM_BUS_NAME      "org.qmachine.QMachine1"
#define QM_MANAGER_PATH  "/org/qmachine/QMachine1"
#define QM_MACHINE_PREFIX "/org/qmachine/QMachine1/machine"
#define QM_MANAGER_IFACE "org.qmachine.QMachine1.Manager"
#define QM_MACHINE_IFACE "org.qmachine.QMachine1.Machine"

#define QM_NAME_MAX 64

/* ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ */
gboolean qm_name_is_valid(const char *name);

/* vm-YYYYMMDD-HHMMSS-xxxx (local time, xxxx random [a-z0-9]). */
char *qm_name_generate(GDateTime *now, GRand *rand);

/* /org/qmachine/QMachine1/machine/<sd_bus_path_encode(name)> */
char *qm_name_to_path(const char *name);
