/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A machine's serial console: retained output, kernel crash detection,
 * client connections (OpenConsole) and keys sent to the guest.
 */
#include <errno.h>
#include <unistd.h>

#include "keys.h"
#include "machine-internal.h"
#include "unix-socket.h"

#define CONSOLE_RETAINED (1024 * 1024)
/* QEMU may close our console connection while it runs on (a QEMU that
 * misbehaves, or one that drops a connection made before it was ready,
 * as 7.2 does now and then with the monitor's): its socket listens
 * again, so we connect again, 50 ms, 100 ms, ... after, up to this many
 * times in a row with no output in between. QEMU's exit stops it. */
#define CONSOLE_RECONNECTS 5
#define CONSOLE_RECONNECT_FIRST_MS 50

static void found_crash(Machine *m, char *text) {
        char *props[] = { "KernelCrash", NULL };

        g_message("machine %s: kernel crash on the console: %s", m->name, text);
        g_free(m->kernel_crash);
        m->kernel_crash = text;
        machine_notify_changed(m, props);
        machine_notify_crash(m, text);
}

static void on_console_output(QmConsole *c, const char *data, gsize len, gpointer userdata) {
        Machine *m = userdata;
        char *crash;

        qm_byte_ring_append(m->console_output, data, len);
        m->console_bytes += len;
        m->console_reconnects = 0;
        machine_console_expect_output(m);
        crash = qm_crash_scan_feed(m->crash_scan, data, len);
        if (crash)
                found_crash(m, crash);
}

static gboolean on_console_reconnect(gpointer data) {
        Machine *m = data;
        g_autoptr(GError) err = NULL;
        int fd;

        m->console_reconnect_timer = 0;
        fd = qm_unix_connect(m->console_socket, &err);
        if (fd < 0) {
                /* QEMU is on its way out: its exit ends the console */
                g_debug("machine %s: console not connected again: %s", m->name, err->message);
                return G_SOURCE_REMOVE;
        }
        qm_console_replace_fd(m->console, fd);
        return G_SOURCE_REMOVE;
}

static void on_console_closed(QmConsole *c, gpointer userdata) {
        Machine *m = userdata;

        if (m->console_reconnects >= CONSOLE_RECONNECTS) {
                g_message("machine %s: QEMU closed the console connection %u times in a row with no output; "
                          "the console stays closed", m->name, m->console_reconnects);
                return;
        }
        /* Also at every QEMU exit; the exit cancels this timer, and a
         * connection to a QEMU already gone fails quietly. */
        g_debug("machine %s: QEMU closed the console connection; connecting again", m->name);
        m->console_reconnect_timer = g_timeout_add(CONSOLE_RECONNECT_FIRST_MS << m->console_reconnects,
                                                   on_console_reconnect, m);
        m->console_reconnects++;
}

void machine_console_start(Machine *m, int fd, gboolean append_log) {
        static const QmConsoleCallbacks callbacks = { .output = on_console_output, .closed = on_console_closed };
        g_autofree char *log = g_build_filename(m->log_dir, "console.log", NULL);

        m->console_reconnects = 0;
        m->console = qm_console_new(fd, log, append_log, &callbacks, m);
}

void machine_console_stop(Machine *m) {
        char *crash;

        g_clear_handle_id(&m->console_reconnect_timer, g_source_remove);

        g_clear_pointer(&m->console, qm_console_free); /* reads the last bytes */
        crash = qm_crash_scan_finish(m->crash_scan);
        if (crash)
                found_crash(m, crash);
}

void machine_console_reset(Machine *m) {
        qm_byte_ring_clear(m->console_output);
        machine_console_expect_restart(m);
        qm_crash_scan_reset(m->crash_scan);
        g_free(m->kernel_crash);
        m->kernel_crash = g_strdup("");
}

static QmError *console_unavailable(Machine *m) {
        if (!m->config->console)
                return qm_error_new(QM_ERROR_NO_CONSOLE, "Machine '%s' was created without a console", m->name);
        return NULL;
}

void machine_open_console(Machine *m, QmReply *call) {
        g_autoptr(QmError) e = console_unavailable(m);
        int fd;

        if (!e && !m->console)
                e = qm_error_new(QM_ERROR_NOT_RUNNING, "Machine '%s' is not running (state %s)", m->name,
                                 qm_state_to_string(m->state));
        if (!e && qm_console_n_clients(m->console) >= m->daemon->limits.max_console_clients)
                e = qm_error_new(QM_ERROR_LIMIT_EXCEEDED, "Machine '%s' already has %u console clients", m->name,
                                 m->daemon->limits.max_console_clients);
        if (e) {
                qm_reply_fail(call, e);
                return;
        }
        fd = qm_console_add_client(m->console);
        if (fd < 0) {
                qm_reply_failf(call, qm_error_name_for_errno(errno), "cannot open a console connection: %s",
                                g_strerror(errno));
                return;
        }
        qm_reply_value(call, "h", fd); /* sd-bus sends a copy */
        close(fd);
}

void machine_get_console_output(Machine *m, QmReply *call) {
        g_autoptr(QmError) e = console_unavailable(m);
        g_autoptr(GBytes) out = NULL;
        gsize len;
        const void *data;

        if (e) {
                qm_reply_fail(call, e);
                return;
        }
        out = qm_byte_ring_get(m->console_output);
        data = g_bytes_get_data(out, &len);
        qm_reply_bytes(call, data, len);
}
