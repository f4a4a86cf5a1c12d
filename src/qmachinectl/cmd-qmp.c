/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qmachinectl: QMP, events and logs of a machine. */
#include "ctl.h"

#include <stdio.h>
#include <string.h>

/* QMP's JSON as it is: indented, or one line with --json=short. */
static int print_pretty_reply(Ctl *c, sd_bus_message *reply, const char *method, bool *is_error) {
        g_autofree char *pretty = NULL;
        const char *json;
        int r;

        r = sd_bus_message_read(reply, "s", &json);
        if (r < 0)
                return ctl_error("bad reply to %s: %s", method, g_strerror(-r));
        if (c->output == CTL_OUTPUT_JSON) {
                pretty = ctl_json_layout(json, false);
                if (!pretty)
                        pretty = g_strdup(json);
        } else {
                pretty = ctl_json_pretty(json);
        }
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
                r = print_pretty_reply(c, reply, "Qmp", &is_error);
        return r == EXIT_OK && is_error ? EXIT_FAIL : r;
}

int cmd_command(Ctl *c, int argc, char **argv) {
        g_autoptr(sd_bus_message) reply = NULL;
        int r;

        r = ctl_machine_call(c, argv[0], "Command", 0, &reply, "ss", argv[1], argc > 2 ? argv[2] : "");
        if (r == EXIT_OK)
                r = print_pretty_reply(c, reply, "Command", NULL);
        return r;
}

int cmd_events(Ctl *c, int argc, char **argv) {
        g_autoptr(sd_bus_message) reply = NULL;
        g_autoptr(GPtrArray) events = g_ptr_array_new_with_free_func((GDestroyNotify)ctl_event_free);
        g_autoptr(GString) text = g_string_new(NULL);
        const char *json;
        uint64_t seq;
        int r;

        r = ctl_machine_call(c, argv[0], "GetEvents", 0, &reply, "t", c->o.after);
        if (r != EXIT_OK)
                return r;
        if (!ctl_json_mode(c))
                ctl_pager_open(c);
        r = sd_bus_message_enter_container(reply, 'a', "(ts)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(ts)", &seq, &json)) > 0) {
                if (ctl_json_mode(c))
                        g_ptr_array_add(events, ctl_event_new(seq, json));
                else
                        printf("%" G_GUINT64_FORMAT " %s\n", seq, json); /* QEMU's text, exactly */
        }
        if (r < 0)
                return ctl_error("bad reply to GetEvents: %s", g_strerror(-r));
        if (!ctl_json_mode(c))
                return EXIT_OK;
        ctl_json_append_events(text, events);
        ctl_pager_open(c);
        return ctl_output_json_text(c, text->str);
}

int cmd_wait_event(Ctl *c, int argc, char **argv) {
        g_autoptr(sd_bus_message) m = NULL;
        g_autoptr(sd_bus_message) reply = NULL;
        g_autofree char *path = NULL;
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
        r = ctl_send(c, m, timeout == 0 ? 0 : ctl_timeout_usec(timeout), &reply);
        if (r != EXIT_OK)
                return r;
        r = sd_bus_message_read(reply, "ts", &seq, &json);
        if (r < 0)
                return ctl_error("bad reply to WaitEvent: %s", g_strerror(-r));
        if (seq == 0)
                return ctl_error("no matching event");
        if (ctl_json_mode(c)) {
                g_autoptr(CtlEvent) e = ctl_event_new(seq, json);
                g_autoptr(GString) text = g_string_new(NULL);
                ctl_json_append_event(text, e);
                return ctl_output_json_text(c, text->str);
        }
        printf("%" G_GUINT64_FORMAT " %s\n", seq, json);
        return EXIT_OK;
}

/* {"@key": text}, or @key_base64 for bytes that are not UTF-8 */
static int output_text_object(Ctl *c, const char *key, const void *data, size_t size) {
        g_autoptr(JsonObject) o = json_object_new();
        g_autoptr(JsonNode) node = NULL;

        ctl_json_set_bytes(o, key, data, size);
        node = json_node_init_object(json_node_alloc(), o);
        return ctl_output(c, node, NULL, NULL);
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
        if (ctl_json_mode(c))
                return output_text_object(c, "log", log, strlen(log));
        ctl_pager_open(c);
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
        if (ctl_json_mode(c))
                return output_text_object(c, "output", data, size);
        if (size > 0 && fwrite(data, 1, size, stdout) != size)
                return ctl_error("cannot write the output");
        return EXIT_OK;
}
