#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <unistd.h>

#include "console.h"

#define CONSOLE_READ_CHUNK 65536

struct QmConsole {
        int fd;
        int log_fd;
        guint watch_id;
};

/* FALSE at EOF or on an error: stop watching. */
static gboolean drain(QmConsole *c) {
        char buf[CONSOLE_READ_CHUNK];

        for (;;) {
                ssize_t n = read(c->fd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return TRUE;
                if (n <= 0)
                        return FALSE;
                if (c->log_fd >= 0 && write(c->log_fd, buf, n) != n) {
                        g_warning("console log write failed: %s; output is dropped", g_strerror(errno));
                        close(c->log_fd);
                        c->log_fd = -1;
                }
        }
}

static gboolean on_readable(int fd, GIOCondition cond, gpointer data) {
        QmConsole *c = data;

        if (drain(c))
                return G_SOURCE_CONTINUE;
        c->watch_id = 0;
        return G_SOURCE_REMOVE;
}

QmConsole *qm_console_new(int fd, const char *log_path) {
        QmConsole *c = g_new0(QmConsole, 1);

        c->fd = fd;
        c->log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
        if (c->log_fd < 0)
                g_warning("cannot open %s: %s; console output is dropped", log_path, g_strerror(errno));
        c->watch_id = g_unix_fd_add(fd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_readable, c);
        return c;
}

void qm_console_free(QmConsole *c) {
        if (!c)
                return;
        if (c->watch_id) {
                drain(c);
                g_source_remove(c->watch_id);
        }
        close(c->fd);
        if (c->log_fd >= 0)
                close(c->log_fd);
        g_free(c);
}
