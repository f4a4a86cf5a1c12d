/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A machine's serial console: retained output, kernel crash detection,
 * client connections (OpenConsole) and keys sent to the guest.
 */
#include <errno.h>
#include <unistd.h>

#include "keys.h"
#include "machine-internal.h"

#define CONSOLE_RETAINED (1024 * 1024)

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
        machine_console_expect_output(m);
        crash = qm_crash_scan_feed(m->crash_scan, data, len);
        if (crash)
                found_crash(m, crash);
}

void machine_console_start(Machine *m, int fd, gboolean append_log) {
        static const QmConsoleCallbacks callbacks = { .output = on_console_output };
        g_autofree char *log = g_build_filename(m->log_dir, "console.log", NULL);

        m->console = qm_console_new(fd, log, append_log, &callbacks, m);
}

void machine_console_stop(Machine *m) {
        char *crash;

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
