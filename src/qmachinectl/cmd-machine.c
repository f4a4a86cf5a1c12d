/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qmachinectl: machine definitions and their lifecycle. */
#include "ctl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "build-config.h"

int cmd_list(Ctl *c, int argc, char **argv) {
        g_autoptr(sd_bus_message) reply = NULL;
        g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
        const char *name, *state, *path;
        uint32_t pid;
        int r;

        r = ctl_manager_call(c, "ListMachines", 0, &reply, NULL);
        if (r != EXIT_OK)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(ssuo)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(ssuo)", &name, &state, &pid, &path)) > 0) {
                char **row = g_new0(char *, 4);
                row[0] = g_strdup(name);
                row[1] = g_strdup(state);
                row[2] = pid ? g_strdup_printf("%u", pid) : g_strdup("-");
                g_ptr_array_add(rows, row);
        }
        if (r < 0)
                return ctl_error("bad reply to ListMachines: %s", g_strerror(-r));
        ctl_print_table((const char *const[]){ "NAME", "STATE", "PID" }, rows);
        return EXIT_OK;
}

/* CommandLine is not in GetAll (it may hold secrets): asked for by name,
 * and only root and the machine's owner get it. */
static char *read_command_line(Ctl *c, const char *path) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char **strv = NULL;
        char *joined;
        int r;

        r = sd_bus_get_property_strv(c->bus, QM_BUS_NAME, path, QM_MACHINE_IFACE, "CommandLine", &error, &strv);
        if (r < 0) {
                char *why = g_strdup(sd_bus_error_has_name(&error, SD_BUS_ERROR_ACCESS_DENIED)
                                             ? "(only root and the owner may read it)"
                                             : "(cannot be read)");
                sd_bus_error_free(&error);
                return why;
        }
        joined = strv && strv[0] ? g_strjoinv(" ", strv) : g_strdup("-");
        g_strfreev(strv); /* malloc()ed by sd-bus: GLib's allocator is malloc */
        return joined;
}

/* Reads the value of one property of GetAll into a printable string;
 * NULL for types that are not shown. */
static int read_value(sd_bus_message *m, const char *sig, char **out) {
        const char *s;
        uint32_t u;
        int32_t i;
        uint64_t t;
        int b;
        char **strv = NULL;
        int r;

        *out = NULL;
        switch (sig[0]) {
        case 's':
                r = sd_bus_message_read(m, "v", "s", &s);
                if (r >= 0)
                        *out = g_strdup(s);
                return r;
        case 'u':
                r = sd_bus_message_read(m, "v", "u", &u);
                if (r >= 0)
                        *out = g_strdup_printf("%u", u);
                return r;
        case 'i':
                r = sd_bus_message_read(m, "v", "i", &i);
                if (r >= 0)
                        *out = g_strdup_printf("%d", i);
                return r;
        case 't':
                r = sd_bus_message_read(m, "v", "t", &t);
                if (r >= 0)
                        *out = g_strdup_printf("%" G_GUINT64_FORMAT, t);
                return r;
        case 'b':
                r = sd_bus_message_read(m, "v", "b", &b);
                if (r >= 0)
                        *out = g_strdup(b ? "yes" : "no");
                return r;
        default:
                if (strcmp(sig, "as") == 0) {
                        r = sd_bus_message_enter_container(m, 'v', "as");
                        if (r >= 0)
                                r = sd_bus_message_read_strv(m, &strv);
                        if (r >= 0)
                                r = sd_bus_message_exit_container(m);
                        if (r >= 0)
                                *out = ctl_shell_join(strv);
                        g_strfreev(strv);
                        return r;
                }
                return sd_bus_message_skip(m, "v");
        }
}

static const char *lookup(GHashTable *props, const char *key) {
        const char *v = g_hash_table_lookup(props, key);
        return v ? v : "";
}

int cmd_status(Ctl *c, int argc, char **argv) {
        g_autoptr(sd_bus_message) reply = NULL;
        g_autoptr(GHashTable) props = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        g_autofree char *path = NULL;
        g_autofree char *command_line = NULL;
        const char *key, *sig;
        const char *v;
        int r;

        r = ctl_machine_path(c, argv[0], &path);
        if (r != EXIT_OK)
                return r;
        r = ctl_call(c, path, "org.freedesktop.DBus.Properties", "GetAll", 0, &reply, "s", QM_MACHINE_IFACE);
        if (r != EXIT_OK)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                char *value = NULL;
                r = sd_bus_message_read(reply, "s", &key);
                if (r >= 0)
                        r = sd_bus_message_peek_type(reply, NULL, &sig);
                if (r >= 0)
                        r = read_value(reply, sig, &value);
                if (r >= 0 && value)
                        g_hash_table_insert(props, g_strdup(key), value);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r < 0)
                return ctl_error("bad reply to GetAll: %s", g_strerror(-r));

#define ROW(label, value) printf("%16s: %s\n", label, value)
        ROW("Name", lookup(props, "Name"));
        ROW("State", lookup(props, "State"));
        v = lookup(props, "RunState");
        ROW("RunState", v[0] ? v : "-");
        v = lookup(props, "Pid");
        ROW("Pid", strcmp(v, "0") == 0 ? "-" : v);
        v = lookup(props, "ExitCode");
        ROW("ExitCode", strcmp(v, "-1000") == 0 ? "unknown" : v);
        v = lookup(props, "QemuVersion");
        ROW("QemuVersion", v[0] ? v : "-");
        ROW("UUID", lookup(props, "UUID"));
        ROW("Persistent", lookup(props, "Persistent"));
        v = lookup(props, "LaunchTimestamp");
        if (strcmp(v, "0") == 0 || !v[0]) {
                ROW("Launched", "never");
        } else {
                g_autoptr(GDateTime) dt = g_date_time_new_from_unix_local(
                        (gint64)g_ascii_strtoull(v, NULL, 10) / G_USEC_PER_SEC);
                g_autofree char *when = dt ? g_date_time_format(dt, "%Y-%m-%d %H:%M:%S %Z") : g_strdup(v);
                ROW("Launched", when);
        }
        ROW("EventSequence", lookup(props, "EventSequence"));
        v = lookup(props, "KernelCrash");
        ROW("KernelCrash", v[0] ? v : "none");
        v = lookup(props, "MacAddresses");
        ROW("MacAddresses", v[0] ? v : "-");
        ROW("Owner", lookup(props, "Owner"));
        command_line = read_command_line(c, path);
        ROW("CommandLine", command_line);
        ROW("RuntimeDirectory", lookup(props, "RuntimeDirectory"));
        ROW("LogDirectory", lookup(props, "LogDirectory"));
#undef ROW
        return EXIT_OK;
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
        printf("%s\n", name);
        return EXIT_OK;
}

int cmd_create(Ctl *c, int argc, char **argv) {
        g_autoptr(sd_bus_message) m = NULL;
        g_autoptr(sd_bus_message) reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
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
        r = sd_bus_call(c->bus, m, 0, &error, &reply);
        if (r < 0) {
                r = ctl_bus_error(&error, r);
                sd_bus_error_free(&error);
                return r;
        }
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
        g_autoptr(sd_bus_message) reply = NULL;
        g_auto(GStrv) keys = g_new0(char *, argc);
        g_autofree char *path = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
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
        r = sd_bus_call(c->bus, m, 0, &error, &reply);
        if (r < 0) {
                r = ctl_bus_error(&error, r);
                sd_bus_error_free(&error);
                return r;
        }
        return EXIT_OK;
}

int cmd_version(Ctl *c, int argc, char **argv) {
        g_autofree char *version = NULL;
        g_autofree char *binary = NULL;
        int r;

        r = ctl_get_string_property(c, QM_MANAGER_PATH, QM_MANAGER_IFACE, "Version", &version);
        if (r == EXIT_OK)
                r = ctl_get_string_property(c, QM_MANAGER_PATH, QM_MANAGER_IFACE, "DefaultBinary", &binary);
        if (r != EXIT_OK)
                return r;
        printf("Client: %s\nVersion: %s\nDefaultBinary: %s\n", PACKAGE_VERSION, version, binary);
        return EXIT_OK;
}
