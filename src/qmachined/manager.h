/* The machine registry and the Manager object. */
#pragma once

#include "daemon.h"
#include "machine.h"

typedef struct Manager Manager;

/* How the registry reports up, to whatever serves it (manager-dbus.c
 * installs one); every member optional. */
typedef struct {
        /* A new machine: serve it. < 0 (an errno) refuses it. */
        int (*added)(Manager *mgr, Machine *m);
        /* @m is about to go (still served). */
        void (*removing)(Manager *mgr, Machine *m);
        /* It went; @name and @path were its own. */
        void (*removed)(Manager *mgr, const char *name, const char *path);
        /* The number of machines changed (after added or removed). */
        void (*count_changed)(Manager *mgr);
        /* The registry is freed. */
        void (*freed)(Manager *mgr);
} ManagerNotify;

struct Manager {
        QmDaemon *daemon;
        GHashTable *machines; /* name -> Machine */
        GRand *rand;
        gboolean restoring; /* creating machines from disk: no saving */
        GHashTable *images_in_progress; /* names qemu-img is creating */
        const ManagerNotify *notify;
        gpointer front; /* the front end's own data */
};

Manager *manager_new(QmDaemon *d);
/* Frees every machine object; running VMs are left running. */
void manager_free(Manager *mgr);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Manager, manager_free)


/* Registry operations behind the D-Bus methods (manager-dbus.c). */
Machine *manager_create_machine(Manager *mgr, const char *name, QmConfig *config, QmError **error);
/* At start: persistent definitions, then the VMs a previous daemon left
 * running (or that died meanwhile). */
void manager_restore(Manager *mgr);
gboolean manager_remove_machine(Manager *mgr, const char *name, QmError **error);
Machine *manager_find_by_pid(Manager *mgr, pid_t pid);
/* A MachineRemoveFunc (@data the Manager): a machine whose incoming
 * migration failed goes. */
void manager_remove_failed_incoming(Machine *m, gpointer data);
