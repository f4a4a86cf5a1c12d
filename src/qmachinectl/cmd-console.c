/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qmachinectl: connect the terminal (or stdin/stdout) to a serial console. */
#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#define ESCAPE_CHAR 0x1d /* Ctrl-] */

static int write_all(int fd, const char *buf, size_t n) {
        while (n > 0) {
                ssize_t w = write(fd, buf, n);
                if (w < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        return -errno;
                }
                buf += w;
                n -= (size_t)w;
        }
        return 0;
}

static int open_console(Ctl *c, const char *name, int *fd) {
        g_autoptr(sd_bus_message) reply = NULL;
        int r, f;

        r = ctl_machine_call(c, name, "OpenConsole", 0, &reply, NULL);
        if (r != EXIT_OK)
                return r;
        r = sd_bus_message_read(reply, "h", &f);
        if (r < 0)
                return ctl_error("bad reply to OpenConsole: %s", g_strerror(-r));
        /* The message owns f: keep a copy of our own. */
        *fd = fcntl(f, F_DUPFD_CLOEXEC, 3);
        if (*fd < 0)
                return ctl_error("cannot duplicate the console socket: %s", g_strerror(errno));
        return EXIT_OK;
}

/* Copies between the console socket and stdin/stdout until the user
 * leaves (tty), stdin ends and the console is quiet (no tty), the
 * console closes or a signal arrives. */
static int relay(int sock, int sigfd, bool tty, double drain) {
        char buf[65536];
        bool stdin_open = true;
        int drain_ms = drain > 0 ? (int)(drain * 1000) : 0;

        for (;;) {
                struct pollfd p[3] = {
                        { .fd = sock, .events = POLLIN },
                        { .fd = sigfd, .events = POLLIN },
                        { .fd = stdin_open ? STDIN_FILENO : -1, .events = POLLIN },
                };
                int n = poll(p, 3, stdin_open ? -1 : drain_ms);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return ctl_error("poll: %s", g_strerror(errno));
                }
                if (n == 0)
                        return EXIT_OK; /* drained */
                if (p[1].revents)
                        return EXIT_OK;
                if (p[0].revents) {
                        ssize_t got = read(sock, buf, sizeof(buf));
                        if (got < 0 && (errno == EINTR || errno == EAGAIN))
                                continue;
                        if (got <= 0) {
                                if (tty)
                                        fputs("\r\nThe console was closed.\r\n", stderr);
                                return EXIT_OK;
                        }
                        if (write_all(STDOUT_FILENO, buf, (size_t)got) < 0)
                                return EXIT_OK; /* nobody reads our output any more */
                        continue;
                }
                if (p[2].revents) {
                        ssize_t got = read(STDIN_FILENO, buf, sizeof(buf));
                        char *esc;
                        if (got < 0 && (errno == EINTR || errno == EAGAIN))
                                continue;
                        if (got <= 0) {
                                if (tty)
                                        return EXIT_OK;
                                stdin_open = false;
                                continue;
                        }
                        esc = tty ? memchr(buf, ESCAPE_CHAR, (size_t)got) : NULL;
                        if (esc)
                                got = esc - buf;
                        if (got > 0 && write_all(sock, buf, (size_t)got) < 0) {
                                if (tty)
                                        fputs("\r\nThe console was closed.\r\n", stderr);
                                return EXIT_OK;
                        }
                        if (esc)
                                return EXIT_OK;
                }
        }
}

int cmd_console(Ctl *c, int argc, char **argv) {
        struct termios saved, raw;
        bool tty = isatty(STDIN_FILENO);
        sigset_t mask;
        int sock = -1, sigfd, r;

        r = open_console(c, argv[0], &sock);
        if (r != EXIT_OK)
                return r;
        signal(SIGPIPE, SIG_IGN);
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
        if (sigfd < 0) {
                close(sock);
                return ctl_error("signalfd: %s", g_strerror(errno));
        }
        if (tty && tcgetattr(STDIN_FILENO, &saved) == 0) {
                raw = saved;
                cfmakeraw(&raw);
                tcsetattr(STDIN_FILENO, TCSANOW, &raw);
                ctl_info(c, "Connected to the console of %s; Ctrl-] leaves.\r\n", argv[0]);
        } else {
                tty = false;
        }
        r = relay(sock, sigfd, tty, c->o.drain);
        if (tty) {
                tcsetattr(STDIN_FILENO, TCSANOW, &saved);
                fputc('\n', stderr);
        }
        close(sigfd);
        close(sock);
        return r;
}
