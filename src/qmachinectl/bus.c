/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qmachinectl: the bus connection, method calls and error reports. */
#include "ctl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Calls without a timeout of their own: long enough for a password
 * prompt of polkit and for a slow QMP handshake. */
#define DEFAULT_CALL_USEC (300ULL * 1000000ULL)

int ctl_error(const char *fmt, ...) {
        va_list ap;

        fputs("qmachinectl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return EXIT_FAIL;
}

int ctl_bus_error(const sd_bus_error *error, int r) {
        if (error && sd_bus_error_is_set(error)) {
                if (error->message && error->message[0])
                        return ctl_error("%s", error->message);
                return ctl_error("%s", error->name);
        }
        return ctl_error("%s", g_strerror(r < 0 ? -r : r));
}

int ctl_connect(Ctl *c) {
        sd_bus *bus = NULL;
        int r;

        if (c->host) {
                /* ssh -xT -- HOST systemd-stdio-bridge, as busctl -H */
                r = sd_bus_open_system_remote(&bus, c->host);
        } else if (c->address) {
                r = sd_bus_new(&bus);
                if (r >= 0)
                        r = sd_bus_set_address(bus, c->address);
                if (r >= 0)
                        r = sd_bus_set_bus_client(bus, 1);
                if (r >= 0)
                        r = sd_bus_start(bus);
        } else if (c->session) {
                r = sd_bus_open_user(&bus);
        } else {
                r = sd_bus_open_system(&bus);
        }
        if (r < 0) {
                sd_bus_unref(bus);
                if (c->host)
                        return ctl_error("cannot connect to the system bus of %s: %s", c->host,
                                         g_strerror(-r));
                return ctl_error("cannot connect to the %s bus: %s",
                                 c->address           ? "given"
                                         : c->session ? "session"
                                                      : "system",
                                 g_strerror(-r));
        }
        sd_bus_set_allow_interactive_authorization(bus, c->ask_password);
        sd_bus_set_method_call_timeout(bus, DEFAULT_CALL_USEC);
        c->bus = bus;
        return EXIT_OK;
}

void ctl_disconnect(Ctl *c) {
        c->bus = sd_bus_flush_close_unref(c->bus);
}

/* The D-Bus call timeout of an operation that may take `seconds`
 * (negative: no limit; 0: the daemon's default of 30 s). */
uint64_t ctl_timeout_usec(double seconds) {
        if (seconds < 0)
                return UINT64_MAX;
        if (seconds == 0)
                seconds = 30;
        if (seconds > 1e9)
                return UINT64_MAX;
        return (uint64_t)((seconds + 60.0) * 1e6);
}

/* The methods that pass a file descriptor, in or out (API.md). */
static const char *const fd_methods[] = {
        "OpenConsole", "AddFd", "SendFd", "QmpWithFd", "CopyToGuest", "CopyFromGuest", "Save", "Restore",
};

static bool passes_fds(const char *member) {
        for (size_t i = 0; i < G_N_ELEMENTS(fd_methods); i++)
                if (strcmp(fd_methods[i], member) == 0)
                        return true;
        return false;
}

bool ctl_can_pass_fds(Ctl *c) {
        return sd_bus_can_send(c->bus, SD_BUS_TYPE_UNIX_FD) > 0;
}

/* A call that carries an fd over a transport that cannot (ssh) would
 * never get its reply: the bridge drops the message. Fail at once. */
int ctl_require_fd_passing(Ctl *c, const char *what) {
        if (ctl_can_pass_fds(c))
                return EXIT_OK;
        if (c->host)
                return ctl_error(
                        "%s passes a file descriptor, which cannot cross ssh to %s; "
                        "run qmachinectl on that host",
                        what, c->host);
        return ctl_error("%s passes a file descriptor, which this connection to the bus cannot carry", what);
}

int ctl_send(Ctl *c, sd_bus_message *m, uint64_t usec, sd_bus_message **reply) {
        g_autoptr(sd_bus_message) rep = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *member = sd_bus_message_get_member(m);
        int r;

        if (member && passes_fds(member)) {
                r = ctl_require_fd_passing(c, member);
                if (r != EXIT_OK)
                        return r;
        }
        r = sd_bus_call(c->bus, m, usec, &error, &rep);
        if (r < 0) {
                int ret = ctl_bus_error(&error, r);
                sd_bus_error_free(&error);
                return ret;
        }
        if (reply)
                *reply = g_steal_pointer(&rep);
        return EXIT_OK;
}

static int callv(Ctl *c, const char *path, const char *iface, const char *member, uint64_t usec,
                 sd_bus_message **reply, const char *types, va_list ap) {
        g_autoptr(sd_bus_message) m = NULL;
        int r;

        r = sd_bus_message_new_method_call(c->bus, &m, QM_BUS_NAME, path, iface, member);
        if (r >= 0 && types && types[0])
                r = sd_bus_message_appendv(m, types, ap);
        if (r < 0)
                return ctl_error("cannot build the call %s: %s", member, g_strerror(-r));
        return ctl_send(c, m, usec, reply);
}

int ctl_call(Ctl *c, const char *path, const char *iface, const char *member, uint64_t usec,
             sd_bus_message **reply, const char *types, ...) {
        va_list ap;
        int r;

        va_start(ap, types);
        r = callv(c, path, iface, member, usec, reply, types, ap);
        va_end(ap);
        return r;
}

int ctl_manager_call(Ctl *c, const char *member, uint64_t usec, sd_bus_message **reply, const char *types,
                     ...) {
        va_list ap;
        int r;

        va_start(ap, types);
        r = callv(c, QM_MANAGER_PATH, QM_MANAGER_IFACE, member, usec, reply, types, ap);
        va_end(ap);
        return r;
}

/* GetMachine: the object path of a machine name. */
int ctl_machine_path(Ctl *c, const char *name, char **path) {
        g_autoptr(sd_bus_message) reply = NULL;
        const char *p;
        int r;

        r = ctl_manager_call(c, "GetMachine", 0, &reply, "s", name);
        if (r != EXIT_OK)
                return r;
        r = sd_bus_message_read(reply, "o", &p);
        if (r < 0)
                return ctl_error("bad reply to GetMachine: %s", g_strerror(-r));
        *path = g_strdup(p);
        return EXIT_OK;
}

int ctl_machine_call(Ctl *c, const char *name, const char *member, uint64_t usec, sd_bus_message **reply,
                     const char *types, ...) {
        g_autofree char *path = NULL;
        va_list ap;
        int r;

        r = ctl_machine_path(c, name, &path);
        if (r != EXIT_OK)
                return r;
        va_start(ap, types);
        r = callv(c, path, QM_MACHINE_IFACE, member, usec, reply, types, ap);
        va_end(ap);
        return r;
}

int ctl_get_string_property(Ctl *c, const char *path, const char *iface, const char *property, char **value) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_get_property_string(c->bus, QM_BUS_NAME, path, iface, property, &error, value);
        if (r < 0) {
                int ret = ctl_bus_error(&error, r);
                sd_bus_error_free(&error);
                return ret;
        }
        return EXIT_OK;
}
