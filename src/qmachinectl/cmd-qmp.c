/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qmachinectl: QMP, events and logs of a machine. */
#include "ctl.h"

#include <stdio.h>
#include <string.h>

static int print_pretty_reply(sd_bus_message *reply, const char *method, bool *is_error) {
        g_autofree char *pretty = NULL;
        const char *json;
        int r;

        r = sd_bus_message_read(reply, "s", &json);
        if (r < 0)
                return ctl_error("bad reply to %s: %s", method, g_strerror(-r));
        pretty = ctl_json_pretty(json);
        ctl_print_text(pretty);
        if (is_error)
                *is_error = ctl_json_has_member(json, "error");
        return EXIT_OK;
}

int cmd_qmp(Ctl *c, int argc, char **argv) {
        g_autoptr(sd_bus_message) reply = NULL;
        bool is_error = false;
        int r;

        r = ctl_machine_call(c, argv[0], "Qmp", 0, &reply, "ss", argv[1], argc > 2 ? argv[2] : "");
        if (r == EXIT_OK)
                r = print_pretty_reply(reply, "Qmp", &is_error);
        return r == EXIT_OK && is_error ? EXIT_FAIL : r;
}

int cmd_command(Ctl *c, int argc, char **argv) {
        g_autoptr(sd_bus_message) reply = NULL;
        int r;

        r = ctl_machine_call(c, argv[0], "Command", 0, &reply, "ss", argv[1], argc > 2 ? argv[2] : "");
        if (r == EXIT_OK)
                r = print_pretty_reply(reply, "Command", NULL);
        return r;
}

int cmd_events(Ctl *c, int argc, char **argv) {
        g_autoptr(sd_bus_message) reply = NULL;
        const char *json;
        uint64_t seq;
        int r;

        r = ctl_machine_call(c, argv[0], "GetEvents", 0, &reply, "t", c->o.after);
        if (r != EXIT_OK)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(ts)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(ts)", &seq, &json)) > 0)
                printf("%" G_GUINT64_FORMAT " %s\n", seq, json);
        if (r < 0)
                return ctl_error("bad reply to GetEvents: %s", g_strerror(-r));
        return EXIT_OK;
}

int cmd_wait_event(Ctl *c, int argc, char **argv) {
        g_autoptr(sd_bus_message) m = NULL;
        g_autoptr(sd_bus_message) reply = NULL;
        g_autofree char *path = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *event = strcmp(argv[1], "*") == 0 ? "" : argv[1];
        const char *match = argc > 2 ? argv[2] : "";
        double timeout = c->o.timeout_set ? c->o.timeout : -1;
        const char *json;
        uint64_t seq;
        int r;

        r = ctl_machine_path(c, argv[0], &path);
        if (r != EXIT_OK)
                return r;
        r = sd_bus_message_new_method_call(c->bus, &m, QM_BUS_NAME, path, QM_MACHINE_IFACE, "WaitEvent");
        if (r >= 0)
                r = sd_bus_message_append(m, "a(ss)td", 1, event, match, c->o.after, timeout);
        if (r < 0)
                return ctl_error("cannot build the call: %s", g_strerror(-r));
        /* timeout 0 only searches: the default call timeout is enough. */
        r = sd_bus_call(c->bus, m, timeout == 0 ? 0 : ctl_timeout_usec(timeout), &error, &reply);
        if (r < 0) {
                r = ctl_bus_error(&error, r);
                sd_bus_error_free(&error);
                return r;
        }
        r = sd_bus_message_read(reply, "ts", &seq, &json);
        if (r < 0)
                return ctl_error("bad reply to WaitEvent: %s", g_strerror(-r));
        if (seq == 0)
                return ctl_error("no matching event");
        printf("%" G_GUINT64_FORMAT " %s\n", seq, json);
        return EXIT_OK;
}

int cmd_log(Ctl *c, int argc, char **argv) {
        g_autoptr(sd_bus_message) reply = NULL;
        const char *log;
        int r;

        r = ctl_machine_call(c, argv[0], "GetLog", 0, &reply, NULL);
        if (r != EXIT_OK)
                return r;
        r = sd_bus_message_read(reply, "s", &log);
        if (r < 0)
                return ctl_error("bad reply to GetLog: %s", g_strerror(-r));
        fputs(log, stdout);
        return EXIT_OK;
}

int cmd_console_output(Ctl *c, int argc, char **argv) {
        g_autoptr(sd_bus_message) reply = NULL;
        const void *data;
        size_t size;
        int r;

        r = ctl_machine_call(c, argv[0], "GetConsoleOutput", 0, &reply, NULL);
        if (r != EXIT_OK)
                return r;
        r = sd_bus_message_read_array(reply, 'y', &data, &size);
        if (r < 0)
                return ctl_error("bad reply to GetConsoleOutput: %s", g_strerror(-r));
        if (size > 0 && fwrite(data, 1, size, stdout) != size)
                return ctl_error("cannot write the output");
        return EXIT_OK;
}
