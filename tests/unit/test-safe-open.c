/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Opening the daemon's own files: symlinks, FIFOs, devices, hard links and
 * foreign directories are never followed or written through. */
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safe-open.h"
#include "test-files.h"

static char *read_file(const char *path) {
        char *text = NULL;
        g_autoptr(GError) err = NULL;
        g_file_get_contents(path, &text, NULL, &err);
        g_assert_no_error(err);
        return text;
}

static void test_open_regular(void) {
        g_autofree char *dir = test_tmp_dir("qm-safe-open");
        g_autofree char *file = g_build_filename(dir, "file", NULL);
        g_autofree char *link = g_build_filename(dir, "link", NULL);
        g_autofree char *zero = g_build_filename(dir, "zero", NULL);
        g_autofree char *fifo = g_build_filename(dir, "fifo", NULL);
        g_autoptr(GError) err = NULL;
        gint64 start;
        int fd;

        test_write_file(file, "x");
        g_assert_cmpint(symlink(file, link), ==, 0);
        g_assert_cmpint(symlink("/dev/zero", zero), ==, 0);
        g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);

        fd = qm_open_regular(AT_FDCWD, file, &err);
        g_assert_no_error(err);
        g_assert_cmpint(fd, >=, 0);
        g_assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        close(fd);

        g_assert_cmpint(qm_open_regular(AT_FDCWD, link, &err), ==, -1);
        g_assert_nonnull(strstr(err->message, "symbolic link"));
        g_clear_error(&err);
        g_assert_cmpint(qm_open_regular(AT_FDCWD, zero, &err), ==, -1);
        g_clear_error(&err);
        /* A FIFO without a writer must not block. */
        start = g_get_monotonic_time();
        g_assert_cmpint(qm_open_regular(AT_FDCWD, fifo, &err), ==, -1);
        g_assert_cmpint(g_get_monotonic_time() - start, <, G_USEC_PER_SEC);
        g_clear_error(&err);
        g_assert_cmpint(qm_open_regular(AT_FDCWD, dir, &err), ==, -1);
        g_clear_error(&err);
        g_assert_cmpint(qm_open_regular(AT_FDCWD, "/dev/null", &err), ==, -1);
        g_clear_error(&err);
        test_remove_tree(dir);
}

static void test_private_dir(void) {
        g_autofree char *dir = test_tmp_dir("qm-safe-open");
        g_autofree char *made = g_build_filename(dir, "a", "b", NULL);
        g_autofree char *elsewhere = g_build_filename(dir, "elsewhere", NULL);
        g_autofree char *link = g_build_filename(dir, "link", NULL);
        g_autofree char *file = g_build_filename(dir, "file", NULL);
        g_autofree char *foreign = g_build_filename(dir, "foreign", NULL);
        g_autofree char *foreign_log = g_build_filename(foreign, "x.log", NULL);
        g_autoptr(GError) err = NULL;
        struct stat st;

        g_assert_true(qm_private_dir_ensure(made, 0700, &err));
        g_assert_no_error(err);
        g_assert_cmpint(lstat(made, &st), ==, 0);
        g_assert_true(S_ISDIR(st.st_mode));
        g_assert_cmpint(st.st_mode & 07777, ==, 0700);
        /* An existing directory of ours gets the mode asked for. */
        g_assert_cmpint(chmod(made, 0777), ==, 0);
        g_assert_true(qm_private_dir_ensure(made, 0750, &err));
        g_assert_cmpint(lstat(made, &st), ==, 0);
        g_assert_cmpint(st.st_mode & 07777, ==, 0750);

        g_assert_cmpint(mkdir(elsewhere, 0755), ==, 0);
        g_assert_cmpint(symlink(elsewhere, link), ==, 0);
        g_assert_false(qm_private_dir_ensure(link, 0700, &err));
        g_assert_nonnull(strstr(err->message, "symbolic link"));
        g_clear_error(&err);
        g_assert_cmpint(lstat(link, &st), ==, 0);
        g_assert_true(S_ISLNK(st.st_mode));
        g_assert_cmpint(stat(elsewhere, &st), ==, 0);
        g_assert_cmpint(st.st_mode & 07777, ==, 0755);

        test_write_file(file, "");
        g_assert_false(qm_private_dir_ensure(file, 0700, &err));
        g_clear_error(&err);

        if (geteuid() == 0) {
                g_assert_cmpint(mkdir(foreign, 0777), ==, 0);
                g_assert_cmpint(chown(foreign, 65534, 65534), ==, 0);
                g_assert_false(qm_private_dir_ensure(foreign, 0700, &err));
                g_assert_nonnull(strstr(err->message, "uid 65534"));
                g_clear_error(&err);
                g_assert_cmpint(qm_log_open(foreign_log, FALSE, &err), ==, -1);
                g_clear_error(&err);
        }
        test_remove_tree(dir);
}

static void test_log_open(void) {
        g_autofree char *dir = test_tmp_dir("qm-safe-open");
        g_autofree char *victim = g_build_filename(dir, "victim", NULL);
        g_autofree char *logs = g_build_filename(dir, "logs", NULL);
        g_autofree char *log = g_build_filename(logs, "qemu.log", NULL);
        g_autofree char *linked_dir = g_build_filename(dir, "linked", NULL);
        g_autofree char *through_link = g_build_filename(linked_dir, "qemu.log", NULL);
        g_autofree char *beside = g_build_filename(dir, "qemu.log", NULL);
        g_autofree char *text = NULL;
        g_autoptr(GError) err = NULL;
        struct stat st;
        int fd;

        test_write_file(victim, "precious");
        g_assert_true(qm_private_dir_ensure(logs, 0750, &err));

        /* new file, then truncated on the next open, appended to with append */
        fd = qm_log_open(log, FALSE, &err);
        g_assert_no_error(err);
        g_assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        g_assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK);
        g_assert_cmpint(write(fd, "one", 3), ==, 3);
        /* logrotate's copytruncate empties the file QEMU still writes to:
         * the next write lands at the start, with no hole before it */
        g_assert_cmpint(truncate(log, 0), ==, 0);
        g_assert_cmpint(write(fd, "one", 3), ==, 3);
        g_assert_cmpint(lseek(fd, 0, SEEK_CUR), ==, 3);
        close(fd);
        fd = qm_log_open(log, TRUE, &err);
        g_assert_cmpint(write(fd, "two", 3), ==, 3);
        close(fd);
        text = read_file(log);
        g_assert_cmpstr(text, ==, "onetwo");
        g_clear_pointer(&text, g_free);
        fd = qm_log_open(log, FALSE, &err);
        close(fd);
        text = read_file(log);
        g_assert_cmpstr(text, ==, "");
        g_clear_pointer(&text, g_free);

        /* a symlink and a hard link are replaced, never written through */
        for (int hard = 0; hard < 2; hard++) {
                g_assert_cmpint(g_unlink(log), ==, 0);
                g_assert_cmpint(hard ? link(victim, log) : symlink(victim, log), ==, 0);
                fd = qm_log_open(log, hard, &err);
                g_assert_no_error(err);
                g_assert_cmpint(write(fd, "new", 3), ==, 3);
                close(fd);
                g_assert_cmpint(lstat(log, &st), ==, 0);
                g_assert_true(S_ISREG(st.st_mode));
                g_assert_cmpint(st.st_nlink, ==, 1);
                text = read_file(log);
                g_assert_cmpstr(text, ==, "new");
                g_clear_pointer(&text, g_free);
                text = read_file(victim);
                g_assert_cmpstr(text, ==, "precious");
                g_clear_pointer(&text, g_free);
        }

        /* a FIFO is replaced too; a directory in the way is an error */
        g_assert_cmpint(g_unlink(log), ==, 0);
        g_assert_cmpint(mkfifo(log, 0600), ==, 0);
        fd = qm_log_open(log, FALSE, &err);
        g_assert_no_error(err);
        close(fd);
        g_assert_cmpint(g_unlink(log), ==, 0);
        g_assert_cmpint(mkdir(log, 0700), ==, 0);
        g_assert_cmpint(qm_log_open(log, FALSE, &err), ==, -1);
        g_clear_error(&err);

        /* the directory itself must not be a symlink */
        g_assert_cmpint(symlink(dir, linked_dir), ==, 0);
        g_assert_cmpint(qm_log_open(through_link, FALSE, &err), ==, -1);
        g_assert_nonnull(strstr(err->message, "symbolic link"));
        g_clear_error(&err);
        g_assert_false(g_file_test(beside, G_FILE_TEST_EXISTS));
        test_remove_tree(dir);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/safe-open/open-regular", test_open_regular);
        g_test_add_func("/safe-open/private-dir", test_private_dir);
        g_test_add_func("/safe-open/log-open", test_log_open);
        return g_test_run();
}
