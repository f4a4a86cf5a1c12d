/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qmachinectl: machine definitions and their lifecycle. */
#include "ctl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "build-config.h"

/* pid null when QEMU does not run */
static void add_machine(JsonArray *rows, const char *name, const char *state, uint32_t pid, const char *path) {
        JsonObject *o = json_object_new();

        json_object_set_string_member(o, "name", name);
        json_object_set_string_member(o, "state", state);
        if (pid)
                json_object_set_int_member(o, "pid", pid);
        else
                json_object_set_null_member(o, "pid");
        json_object_set_string_member(o, "path", path);
        json_array_add_object_element(rows, o);
}

static void print_machines(const Ctl *c, JsonNode *node, const void *userdata) {
        static const CtlColumn columns[] = {
                { "NAME", "name", NULL, CTL_COLOR_BOLD },
                { "STATE", "state", NULL, CTL_COLOR_STATE },
                { "PID", "pid", NULL, CTL_COLOR_NONE },
        };

        ctl_print_columns(c, columns, G_N_ELEMENTS(columns), json_node_get_array(node));
}

int cmd_list(Ctl *c, int argc, char **argv) {
        g_autoptr(sd_bus_message) reply = NULL;
        g_autoptr(JsonArray) rows = json_array_new();
        g_autoptr(JsonNode) node = NULL;
        const char *name, *state, *path;
        uint32_t pid;
        int r;

        r = ctl_manager_call(c, "ListMachines", 0, &reply, NULL);
        if (r != EXIT_OK)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(ssuo)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(ssuo)", &name, &state, &pid, &path)) > 0)
                add_machine(rows, name, state, pid, path);
        if (r < 0)
                return ctl_error("bad reply to ListMachines: %s", g_strerror(-r));
        node = json_node_init_array(json_node_alloc(), rows);
        ctl_pager_open(c);
        return ctl_output(c, node, print_machines, NULL);
}

/* The a{sv} config of CreateMachine from the options. */
static int append_config(sd_bus_message *m, const CtlOptions *o) {
        int r = sd_bus_message_open_container(m, 'a', "{sv}");

#define STR(key, value)        \
        if (r >= 0 && (value)) \
        r = sd_bus_message_append(m, "{sv}", key, "s", value)
#define BOOL(key, value)       \
        if (r >= 0 && (value)) \
        r = sd_bus_message_append(m, "{sv}", key, "b", (int)(value))
        STR("binary", o->binary);
        STR("machine", o->machine);
        STR("uuid", o->uuid);
        STR("incoming", o->incoming);
        STR("description", o->description);
        STR("console-device", o->console_device);
        BOOL("persistent", o->persistent);
        BOOL("console", o->console);
        if (r >= 0 && o->no_qmp)
                r = sd_bus_message_append(m, "{sv}", "qmp", "b", 0);
        if (r >= 0 && o->nics_set)
                r = sd_bus_message_append(m, "{sv}", "nics", "u", o->nics);
        if (r >= 0 && o->console_index_set)
                r = sd_bus_message_append(m, "{sv}", "console-index", "u", o->console_index);
        if (r >= 0 && o->qmp_timeout_set)
                r = sd_bus_message_append(m, "{sv}", "qmp-timeout", "d", o->qmp_timeout);
#undef STR
#undef BOOL
        for (int i = 0; i < 2 && r >= 0; i++) {
                GPtrArray *a = i == 0 ? o->args : o->wrapper;
                if (a->len == 0)
                        continue;
                g_ptr_array_add(a, NULL);
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", i == 0 ? "args" : "wrapper");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'v', "as");
                if (r >= 0)
                        r = sd_bus_message_append_strv(m, (char **)a->pdata);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                g_ptr_array_remove_index(a, a->len - 1);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

static int print_machine_name(Ctl *c, sd_bus_message *reply, const char *method) {
        g_autofree char *name = NULL;
        const char *path;
        int r;

        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return ctl_error("bad reply to %s: %s", method, g_strerror(-r));
        r = ctl_get_string_property(c, path, QM_MACHINE_IFACE, "Name", &name);
        if (r != EXIT_OK)
                return r;
        return ctl_output_string(c, "name", name);
}

int cmd_create(Ctl *c, int argc, char **argv) {
        g_autoptr(sd_bus_message) m = NULL;
        g_autoptr(sd_bus_message) reply = NULL;
        const char *name = strcmp(argv[0], "-") == 0 ? "" : argv[0];
        int r;

        r = sd_bus_message_new_method_call(c->bus, &m, QM_BUS_NAME, QM_MANAGER_PATH, QM_MANAGER_IFACE,
                                           "CreateMachine");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", name);
        if (r >= 0)
                r = append_config(m, &c->o);
        if (r < 0)
                return ctl_error("cannot build the call: %s", g_strerror(-r));
        r = ctl_send(c, m, 0, &reply);
        if (r != EXIT_OK)
                return r;
        return print_machine_name(c, reply, "CreateMachine");
}

int cmd_clone(Ctl *c, int argc, char **argv) {
        g_autoptr(sd_bus_message) reply = NULL;
        int r;

        r = ctl_manager_call(c, "CloneMachine", 0, &reply, "ssa{sv}", argv[0], argv[1], 0);
        if (r != EXIT_OK)
                return r;
        return print_machine_name(c, reply, "CloneMachine");
}

int cmd_remove(Ctl *c, int argc, char **argv) {
        return ctl_manager_call(c, "RemoveMachine", 0, NULL, "s", argv[0]);
}

/* machinectl enable/disable: autostart at the next host boot (a kept
 * definition is needed for that, so enable also makes it persistent). */
int cmd_enable(Ctl *c, int argc, char **argv) {
        return ctl_manager_call(c, "UpdateMachine", 0, NULL, "sa{sv}", argv[0], 2, "autostart", "b", 1,
                                "persistent", "b", 1);
}

int cmd_disable(Ctl *c, int argc, char **argv) {
        return ctl_manager_call(c, "UpdateMachine", 0, NULL, "sa{sv}", argv[0], 1, "autostart", "b", 0);
}

int cmd_start(Ctl *c, int argc, char **argv) {
        return ctl_machine_call(c, argv[0], "Launch", 0, NULL, NULL);
}

int cmd_stop(Ctl *c, int argc, char **argv) {
        double t = c->o.timeout_set ? c->o.timeout : 0;

        return ctl_machine_call(c, argv[0], "Shutdown", ctl_timeout_usec(t), NULL, "bd", (int)c->o.force, t);
}

int cmd_kill(Ctl *c, int argc, char **argv) {
        return ctl_machine_call(c, argv[0], "Kill", 0, NULL, NULL);
}

int cmd_wait(Ctl *c, int argc, char **argv) {
        double t = c->o.timeout_set ? c->o.timeout : 0;

        if (c->o.no_kill)
                return ctl_wait_no_kill(c, argv[0], t);
        return ctl_machine_call(c, argv[0], "Wait", ctl_timeout_usec(t), NULL, "d", t);
}

int cmd_powerdown(Ctl *c, int argc, char **argv) {
        double t = c->o.timeout_set ? c->o.timeout : 0;

        /* After the timeout the daemon may still quit and kill QEMU (5 s). */
        return ctl_machine_call(c, argv[0], "Powerdown", ctl_timeout_usec(t), NULL, "d", t);
}

int cmd_pause(Ctl *c, int argc, char **argv) {
        return ctl_machine_call(c, argv[0], "Pause", 0, NULL, NULL);
}

int cmd_resume(Ctl *c, int argc, char **argv) {
        return ctl_machine_call(c, argv[0], "Resume", 0, NULL, NULL);
}

int cmd_reset(Ctl *c, int argc, char **argv) {
        return ctl_machine_call(c, argv[0], "Reset", 0, NULL, NULL);
}

int cmd_send_key(Ctl *c, int argc, char **argv) {
        g_autoptr(sd_bus_message) m = NULL;
        g_auto(GStrv) keys = g_new0(char *, argc);
        g_autofree char *path = NULL;
        int r;

        for (int i = 1; i < argc; i++)
                keys[i - 1] = g_strdup(argv[i]);
        r = ctl_machine_path(c, argv[0], &path);
        if (r != EXIT_OK)
                return r;
        r = sd_bus_message_new_method_call(c->bus, &m, QM_BUS_NAME, path, QM_MACHINE_IFACE, "SendKey");
        if (r >= 0)
                r = sd_bus_message_append_strv(m, keys);
        if (r >= 0)
                r = sd_bus_message_append(m, "u", c->o.hold_ms);
        if (r < 0)
                return ctl_error("cannot build the call: %s", g_strerror(-r));
        return ctl_send(c, m, 0, NULL);
}

int cmd_version(Ctl *c, int argc, char **argv) {
        g_autoptr(JsonNode) node = NULL;
        JsonObject *o;
        g_autofree char *version = NULL;
        g_autofree char *binary = NULL;
        int r;

        r = ctl_get_string_property(c, QM_MANAGER_PATH, QM_MANAGER_IFACE, "Version", &version);
        if (r == EXIT_OK)
                r = ctl_get_string_property(c, QM_MANAGER_PATH, QM_MANAGER_IFACE, "DefaultBinary", &binary);
        if (r != EXIT_OK)
                return r;
        if (!ctl_json_mode(c) && c->output != CTL_OUTPUT_VALUE) {
                printf("Client: %s\nVersion: %s\nDefaultBinary: %s\n", PACKAGE_VERSION, version, binary);
                return EXIT_OK;
        }
        o = json_object_new();
        json_object_set_string_member(o, "client", PACKAGE_VERSION);
        json_object_set_string_member(o, "version", version);
        json_object_set_string_member(o, "default_binary", binary);
        node = json_node_init_object(json_node_alloc(), o);
        json_object_unref(o);
        return ctl_output(c, node, NULL, NULL);
}
