/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* File descriptors that close themselves: g_auto(QmFd) (GLib 2.74 has no g_autofd). */
#pragma once

#include <errno.h>
#include <glib.h>
#include <unistd.h>

/* close() that keeps errno, so that an error path still reports what
 * failed, not the close; a negative fd is nothing to close. */
static inline void qm_fd_close(int fd) {
        int saved = errno;

        if (fd >= 0)
                close(fd);
        errno = saved;
}

/* g_auto(QmFd) fd = open(...): closed when it goes out of scope. */
typedef int QmFd;
G_DEFINE_AUTO_CLEANUP_FREE_FUNC(QmFd, qm_fd_close, -1)

/* Take the fd out of an auto variable: the caller owns it now. */
static inline int qm_fd_steal(int *fd) {
        int r = *fd;

        *fd = -1;
        return r;
}
