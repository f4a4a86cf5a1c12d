#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "unix-socket.h"

/* Fill @sa for @path; a long path goes through /proc/self/fd/N/ of an
 * O_PATH fd on its directory, returned in *dirfd (-1 if unused). */
static gboolean set_address(struct sockaddr_un *sa, const char *path, int *dirfd, GError **error) {
        memset(sa, 0, sizeof(*sa));
        sa->sun_family = AF_UNIX;
        *dirfd = -1;
        if (strlen(path) < sizeof(sa->sun_path)) {
                strcpy(sa->sun_path, path);
                return TRUE;
        }
        g_autofree char *dir = g_path_get_dirname(path);
        g_autofree char *base = g_path_get_basename(path);
        *dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (*dirfd < 0) {
                g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno), "cannot open %s: %s", dir,
                            g_strerror(errno));
                return FALSE;
        }
        if (g_snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", *dirfd, base) >=
            (int)sizeof(sa->sun_path)) {
                close(*dirfd);
                *dirfd = -1;
                g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NAMETOOLONG, "socket name too long: %s", path);
                return FALSE;
        }
        return TRUE;
}

static int socket_op(const char *path, gboolean do_listen, GError **error) {
        struct sockaddr_un sa;
        int dirfd, fd, r;

        if (!set_address(&sa, path, &dirfd, error))
                return -1;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (do_listen ? 0 : SOCK_NONBLOCK), 0);
        if (fd < 0) {
                r = errno;
                goto fail;
        }
        if (do_listen) {
                unlink(path);
                if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
                        r = errno;
                        goto fail;
                }
        } else if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
                r = errno;
                goto fail;
        }
        if (dirfd >= 0)
                close(dirfd);
        return fd;
fail:
        if (fd >= 0)
                close(fd);
        if (dirfd >= 0)
                close(dirfd);
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(r), "%s %s: %s",
                    do_listen ? "cannot listen on" : "cannot connect to", path, g_strerror(r));
        return -1;
}

int qm_unix_listen(const char *path, GError **error) {
        return socket_op(path, TRUE, error);
}

int qm_unix_connect(const char *path, GError **error) {
        return socket_op(path, FALSE, error);
}
