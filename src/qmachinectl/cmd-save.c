/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qmachinectl save NAME FILE, restore NAME FILE: the guest's state into
 * and out of FILE, which qmachinectl opens as the calling user and hands
 * to the daemon as an fd (the daemon never opens a caller's path). FILE
 * "-" is stdout for save, stdin for restore.
 */
#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT 3600.0

/* Machine.@method(h fd, a{sv} {timeout, paused?}). */
static int call_with_fd(Ctl *c, const char *name, const char *method, int fd, bool paused) {
        g_autoptr(sd_bus_message) m = NULL;
        g_autofree char *path = NULL;
        const CtlOptions *o = &c->o;
        double limit = o->timeout_set ? o->timeout : DEFAULT_TIMEOUT;
        int r;

        r = ctl_machine_path(c, name, &path);
        if (r != EXIT_OK)
                return r;
        r = sd_bus_message_new_method_call(c->bus, &m, QM_BUS_NAME, path, QM_MACHINE_IFACE, method);
        if (r >= 0)
                r = sd_bus_message_append(m, "h", fd);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && o->timeout_set)
                r = sd_bus_message_append(m, "{sv}", "timeout", "d", o->timeout);
        if (r >= 0 && paused)
                r = sd_bus_message_append(m, "{sv}", "paused", "b", 1);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return ctl_error("cannot build the call: %s", g_strerror(-r));
        return ctl_send(c, m, ctl_timeout_usec(limit <= 0 ? -1 : limit), NULL);
}

int cmd_save(Ctl *c, int argc, char **argv) {
        const char *file = argv[1];
        bool created = false;
        int fd, r;

        r = ctl_require_fd_passing(c, "Save");
        if (r != EXIT_OK)
                return r; /* before FILE is made */
        if (strcmp(file, "-") == 0)
                return call_with_fd(c, argv[0], "Save", STDOUT_FILENO, false);
        /* A file this command created is removed again when Save fails. */
        fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd >= 0)
                created = true;
        else if (errno == EEXIST)
                fd = open(file, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return ctl_error("cannot open %s: %s", file, g_strerror(errno));
        r = call_with_fd(c, argv[0], "Save", fd, false);
        if (r == EXIT_OK && fsync(fd) < 0 && errno != EINVAL)
                r = ctl_error("cannot write %s: %s", file, g_strerror(errno));
        if (close(fd) < 0 && r == EXIT_OK)
                r = ctl_error("cannot write %s: %s", file, g_strerror(errno));
        if (r != EXIT_OK && created)
                unlink(file);
        return r;
}

int cmd_restore(Ctl *c, int argc, char **argv) {
        const char *file = argv[1];
        int fd, r;

        r = ctl_require_fd_passing(c, "Restore");
        if (r != EXIT_OK)
                return r;
        if (strcmp(file, "-") == 0)
                return call_with_fd(c, argv[0], "Restore", STDIN_FILENO, c->o.paused);
        fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return ctl_error("cannot open %s: %s", file, g_strerror(errno));
        r = call_with_fd(c, argv[0], "Restore", fd, c->o.paused);
        close(fd);
        return r;
}
