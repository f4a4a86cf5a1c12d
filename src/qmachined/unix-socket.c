/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fd-util.h"
#include "unix-socket.h"

/* Fill @sa for @path; a long path goes through /proc/self/fd/N/ of an
 * O_PATH fd on its directory, returned in *dirfd (-1 if unused). */
static gboolean set_address(struct sockaddr_un *sa, const char *path, int *ret_dirfd, GError **error) {
        g_auto(QmFd) dirfd = -1;

        memset(sa, 0, sizeof(*sa));
        sa->sun_family = AF_UNIX;
        *ret_dirfd = -1;
        if (strlen(path) < sizeof(sa->sun_path)) {
                strcpy(sa->sun_path, path);
                return TRUE;
        }
        g_autofree char *dir = g_path_get_dirname(path);
        g_autofree char *base = g_path_get_basename(path);
        dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0) {
                g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno), "cannot open %s: %s", dir,
                            g_strerror(errno));
                return FALSE;
        }
        if (g_snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", dirfd, base) >=
            (int)sizeof(sa->sun_path)) {
                g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NAMETOOLONG, "socket name too long: %s", path);
                return FALSE;
        }
        *ret_dirfd = qm_fd_steal(&dirfd);
        return TRUE;
}

static int socket_op(const char *path, gboolean do_listen, GError **error) {
        struct sockaddr_un sa;
        g_auto(QmFd) dirfd = -1;
        g_auto(QmFd) fd = -1;
        int e;

        /* dirfd, if any, must stay open until bind() or connect() used sa */
        if (!set_address(&sa, path, &dirfd, error))
                return -1;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (do_listen ? 0 : SOCK_NONBLOCK), 0);
        if (fd < 0)
                goto fail;
        if (do_listen) {
                unlink(path);
                if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0)
                        goto fail;
        } else if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
                goto fail;
        return qm_fd_steal(&fd);
fail:
        e = errno;
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "%s %s: %s",
                    do_listen ? "cannot listen on" : "cannot connect to", path, g_strerror(e));
        return -1;
}

int qm_unix_listen(const char *path, GError **error) {
        return socket_op(path, TRUE, error);
}

int qm_unix_connect(const char *path, GError **error) {
        return socket_op(path, FALSE, error);
}
