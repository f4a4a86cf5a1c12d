/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The serial console of a running machine: always drained, fanned out to
 * clients, scanned for kernel crashes. */
#pragma once

#include <glib.h>

#include "console-buffer.h"

typedef struct QmConsole QmConsole;

typedef struct {
        /* Guest output, after it was logged and fanned out. */
        void (*output)(QmConsole *c, const char *data, gsize len, gpointer userdata);
        /* QEMU closed the connection (or it failed): nothing more is read
         * until qm_console_replace_fd(); clients stay connected. Called
         * from the read watch only, never from qm_console_free(). */
        void (*closed)(QmConsole *c, gpointer userdata);
} QmConsoleCallbacks;

/* Per-client bound of output not yet read by it; past it the client is
 * dropped rather than stalling the guest or the daemon. */
#define QM_CONSOLE_CLIENT_BACKLOG (1024 * 1024)
/* Bound of client input the guest has not taken yet; more is dropped. */
#define QM_CONSOLE_INPUT_BACKLOG (256 * 1024)

/* Takes ownership of @fd (connected to QEMU's console socket); what the
 * guest writes is written to @log_path (emptied first unless @append), so QEMU never blocks on a full
 * console buffer even when nobody watches. */
QmConsole *qm_console_new(int fd, const char *log_path, gboolean append, const QmConsoleCallbacks *cb,
                          gpointer userdata);

/* Reads what is still buffered in the socket, then closes it and every
 * client connection. */
void qm_console_free(QmConsole *c);

/* A new connection to QEMU's console socket after the last one closed:
 * takes ownership of @fd and reads from it; the log, the clients and the
 * input not yet taken by QEMU carry over. */
void qm_console_replace_fd(QmConsole *c, int fd);

/* A new client: returns the peer end of a stream socket (the caller owns
 * it) that gets all output from now on and whose writes go to the guest;
 * -1 with errno on failure. */
int qm_console_add_client(QmConsole *c);
guint qm_console_n_clients(QmConsole *c);

/* Queue @data for the guest, behind what clients typed (WriteConsole):
 * FALSE, and nothing queued, when it would pass
 * QM_CONSOLE_INPUT_BACKLOG. */
gboolean qm_console_write(QmConsole *c, const void *data, gsize len);
