/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Each QEMU in a transient systemd scope (qmachine-<name>.scope under
 * machine.slice), registered with systemd-machined, where systemd is the
 * service manager on our bus. Fire and forget: failures are logged, never
 * fail or delay a launch. Without systemd both steps are skipped and the
 * reason is logged once.
 */
#pragma once

#include <sys/types.h>
#include <systemd/sd-bus.h>

typedef struct QmRegistrar QmRegistrar;

/* Asks the bus at once (asynchronously) whether systemd is on it. */
QmRegistrar *qm_registrar_new(sd_bus *bus);
/* Calls still in flight are dropped. */
void qm_registrar_free(QmRegistrar *r);

/* QEMU @leader of machine @name (@uuid: its config's UUID) has started.
 * @r may be NULL: nothing is done. */
void qm_registrar_register(QmRegistrar *r, const char *name, const char *uuid, pid_t leader);

/* That QEMU has exited: drop its registration (the scope goes by itself).
 * @r may be NULL: nothing is done. */
void qm_registrar_unregister(QmRegistrar *r, const char *name);
