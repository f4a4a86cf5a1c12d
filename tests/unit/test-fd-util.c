/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* g_auto(QmFd): closed at scope exit, kept by qm_fd_steal, errno kept. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "fd-util.h"

static gboolean fd_is_open(int fd) {
        return fcntl(fd, F_GETFD) >= 0;
}

static void test_closed_at_scope_exit(void) {
        int seen;

        {
                g_auto(QmFd) fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                g_assert_cmpint(fd, >=, 0);
                seen = fd;
        }
        g_assert_false(fd_is_open(seen));
}

static void test_steal_keeps_it_open(void) {
        int kept;

        {
                g_auto(QmFd) fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                g_assert_cmpint(fd, >=, 0);
                kept = qm_fd_steal(&fd);
                g_assert_cmpint(fd, ==, -1);
        }
        g_assert_true(fd_is_open(kept));
        close(kept);
}

static void test_close_keeps_errno(void) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

        g_assert_cmpint(fd, >=, 0);
        errno = ENOSPC;
        qm_fd_close(fd);
        g_assert_cmpint(errno, ==, ENOSPC);
        g_assert_false(fd_is_open(fd));

        /* nothing to close: no EBADF either */
        errno = EPERM;
        qm_fd_close(-1);
        g_assert_cmpint(errno, ==, EPERM);
}

static void test_failed_open_is_nothing_to_close(void) {
        g_auto(QmFd) fd = open("/nonexistent/qm-fd-util", O_RDONLY | O_CLOEXEC);

        g_assert_cmpint(fd, ==, -1);
        g_assert_cmpint(errno, ==, ENOENT);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/fd-util/closed-at-scope-exit", test_closed_at_scope_exit);
        g_test_add_func("/fd-util/steal-keeps-it-open", test_steal_keeps_it_open);
        g_test_add_func("/fd-util/close-keeps-errno", test_close_keeps_errno);
        g_test_add_func("/fd-util/failed-open", test_failed_open_is_nothing_to_close);
        return g_test_run();
}
