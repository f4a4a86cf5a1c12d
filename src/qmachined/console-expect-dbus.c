/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* WaitConsole, WriteConsole, ConsoleBytes: argument checks, then the model
 * (machine-console-expect.c) answers. */
#include <math.h>
#include <string.h>

#include "console-expect-dbus.h"
#include "dbus-common.h"
#include "machine-internal.h"

int machine_dbus_wait_console(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Machine *m = userdata;
        g_autoptr(QmConsoleExpect) expect = NULL;
        g_autoptr(GError) e = NULL;
        const char *regex;
        uint64_t after;
        double timeout;
        int r;

        AUTHORIZE(msg, m, QM_AUTH_CONSOLE, NULL, error);
        r = sd_bus_message_read(msg, "std", &regex, &after, &timeout);
        if (r < 0)
                return r;
        if (isnan(timeout))
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "timeout must be a number");
        if (strlen(regex) > QM_CONSOLE_REGEX_MAX)
                return sd_bus_error_setf(error, QM_ERROR_LIMIT_EXCEEDED, "the regex has more than %u bytes",
                                         QM_CONSOLE_REGEX_MAX);
        expect = qm_console_expect_new(regex, after, &e);
        if (!expect)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "regex does not compile: %s",
                                         e->message);
        machine_wait_console(m, qm_reply_new(m->daemon->calls, msg), g_steal_pointer(&expect), timeout);
        return 1;
}

int machine_dbus_write_console(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Machine *m = userdata;
        const void *data = NULL;
        size_t len = 0;
        int r;

        AUTHORIZE(msg, m, QM_AUTH_CONSOLE, NULL, error);
        r = sd_bus_message_read_array(msg, 'y', &data, &len);
        if (r < 0)
                return r;
        if (len > QM_WRITE_CONSOLE_MAX)
                return sd_bus_error_setf(error, QM_ERROR_LIMIT_EXCEEDED,
                                         "at most %u bytes per WriteConsole call, not %zu",
                                         QM_WRITE_CONSOLE_MAX, len);
        machine_write_console(m, qm_reply_new(m->daemon->calls, msg), data, len);
        return 1;
}

int machine_dbus_console_bytes(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "t", machine_console_bytes(userdata));
}
