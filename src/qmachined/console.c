/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <sys/socket.h>
#include <unistd.h>

#include "console.h"
#include "fd-util.h"
#include "fd-watch.h"
#include "safe-open.h"

#define CONSOLE_READ_CHUNK 65536

typedef struct {
        QmConsole *console;
        int fd;
        guint read_id;
        guint write_id;
        GString *out; /* guest output not yet taken by the client */
} ConsoleClient;

struct QmConsole {
        int fd;
        int log_fd;
        guint read_id;
        guint write_id;
        GString *in; /* client input not yet taken by QEMU */
        GPtrArray *clients;
        QmConsoleCallbacks cb;
        gpointer userdata;
};

static void client_free(gpointer p) {
        ConsoleClient *cl = p;
        if (cl->read_id)
                g_source_remove(cl->read_id);
        if (cl->write_id)
                g_source_remove(cl->write_id);
        close(cl->fd);
        g_string_free(cl->out, TRUE);
        g_free(cl);
}

static void client_drop(ConsoleClient *cl, const char *why) {
        if (why)
                g_message("console client dropped: %s", why);
        g_ptr_array_remove(cl->console->clients, cl);
}

/* Write what the client takes; FALSE if it was dropped. */
static gboolean client_flush(ConsoleClient *cl);

static gboolean on_client_writable(int fd, GIOCondition cond, gpointer data) {
        ConsoleClient *cl = data;
        cl->write_id = 0;
        client_flush(cl);
        return G_SOURCE_REMOVE;
}

static gboolean client_flush(ConsoleClient *cl) {
        while (cl->out->len > 0) {
                ssize_t n = send(cl->fd, cl->out->str, cl->out->len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        if (!cl->write_id)
                                cl->write_id = g_unix_fd_add(cl->fd, G_IO_OUT, on_client_writable, cl);
                        return TRUE;
                }
                if (n < 0) {
                        client_drop(cl, NULL); /* it went away */
                        return FALSE;
                }
                g_string_erase(cl->out, 0, n);
        }
        return TRUE;
}

static void console_flush_input(QmConsole *c);

static gboolean on_console_writable(int fd, GIOCondition cond, gpointer data) {
        QmConsole *c = data;
        c->write_id = 0;
        console_flush_input(c);
        return G_SOURCE_REMOVE;
}

static void console_flush_input(QmConsole *c) {
        while (c->in->len > 0) {
                ssize_t n = send(c->fd, c->in->str, c->in->len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        if (!c->write_id)
                                c->write_id = g_unix_fd_add(c->fd, G_IO_OUT, on_console_writable, c);
                        return;
                }
                if (n < 0) {
                        g_string_truncate(c->in, 0); /* QEMU is gone */
                        return;
                }
                g_string_erase(c->in, 0, n);
        }
}

static gboolean on_client_readable(int fd, GIOCondition cond, gpointer data) {
        ConsoleClient *cl = data;
        QmConsole *c = cl->console;
        char buf[4096];
        ssize_t n = read(fd, buf, sizeof(buf));

        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return G_SOURCE_CONTINUE;
        if (n <= 0) {
                cl->read_id = 0;
                client_drop(cl, NULL);
                return G_SOURCE_REMOVE;
        }
        if (c->in->len + n > QM_CONSOLE_INPUT_BACKLOG) {
                g_message("console input dropped: the guest is not reading");
                return G_SOURCE_CONTINUE;
        }
        g_string_append_len(c->in, buf, n);
        if (!c->write_id)
                console_flush_input(c);
        return G_SOURCE_CONTINUE;
}

static void fan_out(QmConsole *c, const char *data, gsize len) {
        for (guint i = c->clients->len; i-- > 0;) {
                ConsoleClient *cl = g_ptr_array_index(c->clients, i);
                if (cl->out->len + len > QM_CONSOLE_CLIENT_BACKLOG) {
                        client_drop(cl, "it does not read its output");
                        continue;
                }
                g_string_append_len(cl->out, data, len);
                if (!cl->write_id)
                        client_flush(cl);
        }
}

/* Reads per main-loop dispatch: a guest that writes without pause gets
 * its turn like every other source, and its output waits in the socket
 * (the fd stays readable) rather than starving D-Bus calls. */
#define CONSOLE_READS_PER_SLICE 4

/* Read up to @max_reads chunks; FALSE at EOF or on an error: stop
 * watching. */
static gboolean drain(QmConsole *c, guint max_reads) {
        char buf[CONSOLE_READ_CHUNK];

        for (guint i = 0; i < max_reads; i++) {
                ssize_t n = read(c->fd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return TRUE;
                if (n <= 0)
                        return FALSE;
                if (c->log_fd >= 0 && write(c->log_fd, buf, n) != n) {
                        g_warning("console log write failed: %s; output is not logged", g_strerror(errno));
                        close(c->log_fd);
                        c->log_fd = -1;
                }
                fan_out(c, buf, n);
                if (c->cb.output)
                        c->cb.output(c, buf, n, c->userdata);
        }
        return TRUE;
}

static gboolean on_readable(int fd, GIOCondition cond, gpointer data) {
        QmConsole *c = data;

        if (drain(c, CONSOLE_READS_PER_SLICE))
                return G_SOURCE_CONTINUE;
        c->read_id = 0;
        if (c->cb.closed)
                c->cb.closed(c, c->userdata);
        return G_SOURCE_REMOVE;
}

QmConsole *qm_console_new(int fd, const char *log_path, gboolean append, const QmConsoleCallbacks *cb,
                          gpointer userdata) {
        QmConsole *c = g_new0(QmConsole, 1);
        g_autoptr(GError) err = NULL;

        c->fd = fd;
        c->in = g_string_new(NULL);
        c->clients = g_ptr_array_new_with_free_func(client_free);
        if (cb)
                c->cb = *cb;
        c->userdata = userdata;
        c->log_fd = qm_log_open(log_path, append, &err);
        if (c->log_fd < 0)
                g_warning("%s; console output is not logged", err->message);
        c->read_id = qm_fd_watch_add(fd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_readable, c);
        return c;
}

void qm_console_replace_fd(QmConsole *c, int fd) {
        g_clear_handle_id(&c->read_id, g_source_remove);
        g_clear_handle_id(&c->write_id, g_source_remove);
        close(c->fd);
        c->fd = fd;
        c->read_id = qm_fd_watch_add(fd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_readable, c);
        console_flush_input(c);
}

void qm_console_free(QmConsole *c) {
        if (!c)
                return;
        if (c->read_id) {
                drain(c, 256); /* what is left, within reason: 16 MiB */
                g_source_remove(c->read_id);
        }
        if (c->write_id)
                g_source_remove(c->write_id);
        g_ptr_array_unref(c->clients);
        close(c->fd);
        if (c->log_fd >= 0)
                close(c->log_fd);
        g_string_free(c->in, TRUE);
        g_free(c);
}

int qm_console_add_client(QmConsole *c) {
        int pair[2];
        ConsoleClient *cl;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
                return -1;
        g_auto(QmFd) ours = pair[0];
        g_auto(QmFd) theirs = pair[1];

        /* Only our end is nonblocking; the caller's end stays as it likes. */
        if (fcntl(ours, F_SETFL, fcntl(ours, F_GETFL) | O_NONBLOCK) < 0)
                return -1; /* errno is kept across the closes */
        cl = g_new0(ConsoleClient, 1);
        cl->console = c;
        cl->fd = qm_fd_steal(&ours);
        cl->out = g_string_new(NULL);
        cl->read_id = g_unix_fd_add(cl->fd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_client_readable, cl);
        g_ptr_array_add(c->clients, cl);
        return qm_fd_steal(&theirs);
}

guint qm_console_n_clients(QmConsole *c) {
        return c->clients->len;
}

gboolean qm_console_write(QmConsole *c, const void *data, gsize len) {
        if (len > QM_CONSOLE_INPUT_BACKLOG - c->in->len)
                return FALSE;
        g_string_append_len(c->in, data, len);
        if (!c->write_id)
                console_flush_input(c);
        return TRUE;
}
