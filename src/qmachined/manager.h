/* The machine registry and the Manager object. */
#pragma once

#include "daemon.h"
#include "machine.h"

typedef struct Manager Manager;

struct Manager {
        QmDaemon *daemon;
        GHashTable *machines; /* name -> Machine */
        GRand *rand;
        gboolean restoring; /* creating machines from disk: no saving */
        GHashTable *images_in_progress; /* names qemu-img is creating */
        sd_bus_slot *vtable_slot;
        sd_bus_slot *object_manager_slot;
        sd_bus_slot *name_owner_slot;
};

Manager *manager_new(QmDaemon *d);
/* Frees every machine object; running VMs are left running. */
void manager_free(Manager *mgr);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Manager, manager_free)

int manager_export(Manager *mgr);

/* Registry operations behind the D-Bus methods (manager-dbus.c). */
Machine *manager_create_machine(Manager *mgr, const char *name, QmConfig *config, QmError **error);
/* At start: persistent definitions, then the VMs a previous daemon left
 * running (or that died meanwhile). */
void manager_restore(Manager *mgr);
gboolean manager_remove_machine(Manager *mgr, const char *name, QmError **error);
Machine *manager_find_by_pid(Manager *mgr, pid_t pid);
