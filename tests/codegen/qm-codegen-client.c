/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A client of qmachined made only from the code that gdbus-codegen
 * generates from the introspection XML (qm-client.h): proof that the XML
 * yields a C client that compiles and works (tests/integration/
 * test_codegen_client.py runs it against a private daemon).
 *
 *   qm-codegen-client ADDRESS NAME
 *
 * On the bus at ADDRESS: ListMachines, then GetMachine NAME, Launch and
 * Command query-status on it. Prints "machine NAME STATE PID PATH" per
 * listed machine, "launched PATH" and "result JSON". Exits 1 on an error.
 */
#include <gio/gio.h>
#include <stdio.h>
#include <stdlib.h>

#include "qm-client.h"

#define BUS_NAME "org.qmachine.QMachine1"
#define MANAGER_PATH "/org/qmachine/QMachine1"

static int fail(const char *what, GError *error) {
        fprintf(stderr, "qm-codegen-client: %s: %s\n", what, error->message);
        g_error_free(error);
        return EXIT_FAILURE;
}

static GDBusConnection *connect_to(const char *address, GError **error) {
        return g_dbus_connection_new_for_address_sync(address,
                                                      G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                                              G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                                      NULL, NULL, error);
}

static void print_machines(GVariant *machines) {
        GVariantIter iter;
        const char *name, *state, *path;
        guint32 pid;

        g_variant_iter_init(&iter, machines);
        while (g_variant_iter_next(&iter, "(&s&su&o)", &name, &state, &pid, &path))
                printf("machine %s %s %u %s\n", name, state, pid, path);
}

int main(int argc, char **argv) {
        g_autoptr(GDBusConnection) bus = NULL;
        /* plain pointers: the generated code declares no autoptr cleanup */
        QmManager *manager = NULL;
        QmMachine *machine = NULL;
        g_autoptr(GVariant) machines = NULL;
        g_autofree char *path = NULL;
        g_autofree char *result = NULL;
        GError *error = NULL;

        if (argc != 3) {
                fprintf(stderr, "usage: %s ADDRESS NAME\n", argv[0]);
                return 2;
        }
        bus = connect_to(argv[1], &error);
        if (!bus)
                return fail("connect", error);

        manager = qm_manager_proxy_new_sync(bus, G_DBUS_PROXY_FLAGS_NONE, BUS_NAME, MANAGER_PATH, NULL, &error);
        if (!manager)
                return fail("Manager proxy", error);
        if (!qm_manager_call_list_machines_sync(manager, &machines, NULL, &error))
                return fail("ListMachines", error);
        print_machines(machines);

        if (!qm_manager_call_get_machine_sync(manager, argv[2], &path, NULL, &error))
                return fail("GetMachine", error);
        machine = qm_machine_proxy_new_sync(bus, G_DBUS_PROXY_FLAGS_NONE, BUS_NAME, path, NULL, &error);
        if (!machine)
                return fail("Machine proxy", error);
        if (!qm_machine_call_launch_sync(machine, NULL, &error))
                return fail("Launch", error);
        printf("launched %s\n", path);
        /* the out argument "result" (API.md, Version 2) */
        if (!qm_machine_call_command_sync(machine, "query-status", "", &result, NULL, &error))
                return fail("Command", error);
        printf("result %s\n", result);
        g_object_unref(machine);
        g_object_unref(manager);
        return EXIT_SUCCESS;
}
