/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fd-util.h"
#include "safe-open.h"

static void set_errno_error(GError **error, int e, const char *what, const char *path) {
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "%s %s: %s", what, path, g_strerror(e));
}

static void set_refusal(GError **error, const char *path, const char *why) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "%s %s; refusing to use it", path, why);
}

static const char *file_kind(mode_t mode) {
        if (S_ISLNK(mode))
                return "is a symbolic link";
        if (S_ISDIR(mode))
                return "is a directory";
        if (S_ISREG(mode))
                return "is a regular file";
        return "is a FIFO, socket or device";
}

int qm_open_regular(int dirfd, const char *path, GError **error) {
        struct stat before, st;
        g_auto(QmFd) fd = -1;

        /* Look first: opening a device can have effects of its own. */
        if (fstatat(dirfd, path, &before, AT_SYMLINK_NOFOLLOW) < 0) {
                set_errno_error(error, errno, "cannot open", path);
                return -1;
        }
        if (!S_ISREG(before.st_mode)) {
                set_refusal(error, path, file_kind(before.st_mode));
                return -1;
        }
        fd = openat(dirfd, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0) {
                set_errno_error(error, errno, "cannot open", path);
                return -1;
        }
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_ino != before.st_ino ||
            st.st_dev != before.st_dev) {
                set_refusal(error, path, "changed while it was opened");
                return -1;
        }
        return qm_fd_steal(&fd);
}

/* An fd of the directory @path if it is a real directory of ours. */
static int open_own_dir(const char *path, GError **error) {
        struct stat st;
        g_auto(QmFd) fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

        if (fd < 0) {
                int e = errno;
                if (lstat(path, &st) == 0 && !S_ISDIR(st.st_mode))
                        set_refusal(error, path, file_kind(st.st_mode));
                else
                        set_errno_error(error, e, "cannot open the directory", path);
                return -1;
        }
        if (fstat(fd, &st) < 0) {
                set_errno_error(error, errno, "cannot examine", path);
                return -1;
        }
        if (st.st_uid != geteuid()) {
                g_autofree char *why = g_strdup_printf("belongs to uid %u, not to the daemon", (unsigned)st.st_uid);
                set_refusal(error, path, why);
                return -1;
        }
        return qm_fd_steal(&fd);
}

gboolean qm_private_dir_ensure(const char *path, mode_t mode, GError **error) {
        g_autofree char *parent = g_path_get_dirname(path);
        g_auto(QmFd) fd = -1;
        struct stat st;

        /* The parents are the directories the daemon was configured with. */
        if (g_mkdir_with_parents(parent, 0755) < 0) {
                set_errno_error(error, errno, "cannot create", parent);
                return FALSE;
        }
        if (mkdir(path, mode) < 0 && errno != EEXIST) {
                set_errno_error(error, errno, "cannot create", path);
                return FALSE;
        }
        /* A symlink here was not made by us. Removing it and going on would
         * hide an attack (or a mistake) that may simply be repeated: refuse,
         * and say so. */
        fd = open_own_dir(path, error);
        if (fd < 0)
                return FALSE;
        if (fstat(fd, &st) < 0 || ((st.st_mode & 07777) != mode && fchmod(fd, mode) < 0)) {
                set_errno_error(error, errno, "cannot set the mode of", path);
                return FALSE;
        }
        return TRUE;
}

static gboolean is_own_plain_file(const struct stat *st) {
        return S_ISREG(st->st_mode) && st->st_nlink == 1 && st->st_uid == geteuid();
}

static int log_open_at(int dirfd, const char *name, gboolean append, const char *path, GError **error) {
        int flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | (append ? O_APPEND : 0);
        g_auto(QmFd) fd = -1;
        struct stat st;

        /* The directory is ours, so is the name: whatever else sits there
         * (a symlink, a hard link to another file, a FIFO) is replaced by
         * a new file, never written through. */
        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !is_own_plain_file(&st)) {
                g_message("%s %s, not a plain file of ours; replacing it", path, file_kind(st.st_mode));
                if (unlinkat(dirfd, name, 0) < 0) {
                        set_errno_error(error, errno, "cannot replace", path);
                        return -1;
                }
                flags |= O_EXCL;
        }
        fd = openat(dirfd, name, flags, 0640);
        if (fd < 0) {
                set_errno_error(error, errno, "cannot open", path);
                return -1;
        }
        if (fstat(fd, &st) < 0 || !is_own_plain_file(&st)) {
                set_refusal(error, path, "changed while it was opened");
                return -1;
        }
        /* Truncate only now that we know what we hold. Every write goes to
         * the end, also after logrotate's copytruncate emptied the file
         * while QEMU holds it: no hole the size of what was rotated away. */
        if ((!append && ftruncate(fd, 0) < 0) || fcntl(fd, F_SETFL, O_APPEND) < 0) {
                set_errno_error(error, errno, "cannot prepare", path);
                return -1;
        }
        return qm_fd_steal(&fd);
}

int qm_log_open(const char *path, gboolean append, GError **error) {
        g_autofree char *dir = g_path_get_dirname(path);
        g_autofree char *name = g_path_get_basename(path);
        g_auto(QmFd) dirfd = open_own_dir(dir, error);

        if (dirfd < 0)
                return -1;
        return log_open_at(dirfd, name, append, path, error);
}
