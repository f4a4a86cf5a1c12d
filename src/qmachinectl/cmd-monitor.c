/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qmachinectl: follow the Event signals of all machines or of one. */
#include "ctl.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-event.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC(sd_event, sd_event_unref)

/* With --json one object a line: {machine, seq, event, timestamp, data},
 * data as QEMU wrote it. */
static void print_json_line(const char *name, uint64_t seq, const char *event, const char *data,
                            uint64_t timestamp) {
        g_autoptr(GString) s = g_string_new("{\"machine\":");

        ctl_json_append_string(s, name);
        g_string_append_printf(s, ",\"seq\":%" G_GUINT64_FORMAT ",\"event\":", seq);
        ctl_json_append_string(s, event);
        g_string_append_printf(s, ",\"timestamp\":%" G_GUINT64_FORMAT ",\"data\":", timestamp);
        ctl_json_append_qemu(s, data);
        g_string_append(s, "}\n");
        fputs(s->str, stdout);
}

static int on_event(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const Ctl *c = userdata;
        g_autofree char *name = NULL;
        const char *event, *data;
        uint64_t seq, timestamp;
        int r;

        r = sd_bus_message_read(m, "sstt", &event, &data, &seq, &timestamp);
        if (r < 0)
                return 0;
        if (sd_bus_path_decode(sd_bus_message_get_path(m), QM_MACHINE_PATH_PREFIX, &name) <= 0)
                return 0;
        if (ctl_json_mode(c))
                print_json_line(name, seq, event, data, timestamp);
        else
                printf("%s %" G_GUINT64_FORMAT " %s %s\n", name, seq, event, data);
        fflush(stdout);
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), EXIT_OK);
}

int cmd_monitor(Ctl *c, int argc, char **argv) {
        g_autoptr(sd_event) event = NULL;
        g_autofree char *path = NULL;
        sigset_t mask;
        int r, code = EXIT_FAIL;

        if (argc > 0) {
                r = ctl_machine_path(c, argv[0], &path);
                if (r != EXIT_OK)
                        return r;
        }
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);

        r = sd_event_default(&event);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, on_signal, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGTERM, on_signal, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGHUP, on_signal, NULL);
        if (r >= 0)
                r = sd_bus_attach_event(c->bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return ctl_error("cannot set up the event loop: %s", g_strerror(-r));
        /* The bus daemon matches the well-known name against its current
         * owner, so this follows a restarted daemon too. */
        r = sd_bus_match_signal(c->bus, NULL, QM_BUS_NAME, path, QM_MACHINE_IFACE, "Event", on_event, c);
        /* A closed connection ends the loop with EXIT_FAILURE. */
        if (r >= 0)
                r = sd_bus_set_exit_on_disconnect(c->bus, 1);
        if (r < 0)
                return ctl_error("cannot subscribe to the Event signal: %s", g_strerror(-r));
        /* The match is in place: events from here on are printed. */
        ctl_info(c, "Monitoring the events of %s; Ctrl-C stops.\n", argc > 0 ? argv[0] : "all machines");
        r = sd_event_loop(event);
        if (r == EXIT_OK)
                code = EXIT_OK;
        else if (r > 0)
                ctl_error("the bus connection was closed");
        else
                ctl_error("event loop: %s", g_strerror(-r));
        sd_bus_detach_event(c->bus);
        return code;
}
