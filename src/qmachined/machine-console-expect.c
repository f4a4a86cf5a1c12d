/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Console expect on a machine (WaitConsole, WriteConsole, ConsoleBytes):
 * waiters searched once per batch of console output read, answered when
 * their regex matches, when their timeout passes, or with NotRunning when
 * QEMU exits (after its last output was read and searched).
 */
#include "console-expect.h"
#include "machine-internal.h"

typedef struct {
        Machine *machine;
        QmReply *call;
        QmConsoleExpect *expect;
        guint timer;
} ConsoleWaiter;

static void waiter_free(ConsoleWaiter *w) {
        if (w->timer)
                g_source_remove(w->timer);
        qm_reply_drop(w->call); /* no-op once answered */
        qm_console_expect_free(w->expect);
        g_free(w);
}

static void waiter_remove(ConsoleWaiter *w) {
        g_ptr_array_remove_fast(w->machine->console_waiters, w);
        waiter_free(w);
}

/* The retained output from @needs_from (or the oldest retained byte) on;
 * *base: the absolute offset of its first byte. */
static GBytes *retained_from(Machine *m, guint64 needs_from, guint64 *base) {
        gsize retained = qm_byte_ring_len(m->console_output);
        guint64 oldest = m->console_bytes - retained;
        guint64 from = MAX(needs_from, oldest);

        *base = from;
        return qm_byte_ring_get_tail(m->console_output, (gsize)(m->console_bytes - from));
}

static void reply_match(QmReply *call, const guint8 *data, guint64 base, guint64 start, guint64 end) {
        g_autofree char *text = qm_console_expect_text(data + (start - base), (gsize)(end - start));

        qm_reply_value(call, "ts", end, text);
}

/* Search @x in @window (the output from @base on): TRUE when @call was
 * answered (a match, or a regex too expensive to run). */
static gboolean search(Machine *m, QmConsoleExpect *x, GBytes *window, guint64 base, QmReply **call) {
        g_autoptr(GError) e = NULL;
        gsize len;
        const guint8 *data = g_bytes_get_data(window, &len);
        guint64 start, end;

        switch (qm_console_expect_search(x, data, len, base, &start, &end, &e)) {
        case QM_CONSOLE_EXPECT_FOUND:
                reply_match(g_steal_pointer(call), data, base, start, end);
                return TRUE;
        case QM_CONSOLE_EXPECT_ERROR:
                /* PCRE's backtracking limit: the regex would hold the main
                 * loop, now and on every later batch. */
                g_message("machine %s: WaitConsole regex given up: %s", m->name, e->message);
                qm_reply_failf(g_steal_pointer(call), QM_ERROR_INVALID_ARGS, "regex too expensive: %s",
                               e->message);
                return TRUE;
        case QM_CONSOLE_EXPECT_NONE:
                break;
        }
        return FALSE;
}

void machine_console_expect_output(Machine *m) {
        g_autoptr(GPtrArray) done = NULL;
        g_autoptr(GBytes) window = NULL;
        guint64 needs_from = G_MAXUINT64, base;

        if (!m->console_waiters || m->console_waiters->len == 0)
                return;
        /* One copy of the output for all of them, from the earliest point
         * any of them needs (at most the lookback and its context). */
        for (guint i = 0; i < m->console_waiters->len; i++) {
                ConsoleWaiter *w = g_ptr_array_index(m->console_waiters, i);
                needs_from = MIN(needs_from, qm_console_expect_needs_from(w->expect));
        }
        window = retained_from(m, needs_from, &base);
        done = g_ptr_array_new();
        for (guint i = 0; i < m->console_waiters->len; i++) {
                ConsoleWaiter *w = g_ptr_array_index(m->console_waiters, i);
                if (search(m, w->expect, window, base, &w->call))
                        g_ptr_array_add(done, w);
        }
        for (guint i = 0; i < done->len; i++)
                waiter_remove(g_ptr_array_index(done, i));
}

static gboolean on_waiter_timeout(gpointer data) {
        ConsoleWaiter *w = data;

        w->timer = 0;
        qm_reply_failf(g_steal_pointer(&w->call), QM_ERROR_TIMEOUT,
                       "The console of '%s' did not match in time", w->machine->name);
        waiter_remove(w);
        return G_SOURCE_REMOVE;
}

static QmError *wait_console_error(Machine *m, guint64 after) {
        if (!m->config->console)
                return qm_error_new(QM_ERROR_NO_CONSOLE, "Machine '%s' was created without a console",
                                    m->name);
        if (after > m->console_bytes)
                return qm_error_new(QM_ERROR_INVALID_ARGS,
                                    "after (%" G_GUINT64_FORMAT
                                    ") is past the console output of this run (%" G_GUINT64_FORMAT " bytes)",
                                    after, m->console_bytes);
        return NULL;
}

void machine_wait_console(Machine *m, QmReply *call, QmConsoleExpect *expect, double timeout) {
        g_autoptr(QmConsoleExpect) x = expect;
        g_autoptr(QmError) e = wait_console_error(m, qm_console_expect_after(x));
        g_autoptr(GBytes) window = NULL;
        ConsoleWaiter *w;
        guint64 base;

        if (e) {
                qm_reply_fail(call, e);
                return;
        }
        window = retained_from(m, qm_console_expect_needs_from(x), &base);
        if (search(m, x, window, base, &call))
                return;
        if (timeout == 0) {
                qm_reply_value(call, "ts", (uint64_t)0, "");
                return;
        }
        if (!machine_is_active(m)) {
                qm_reply_failf(call, QM_ERROR_NOT_RUNNING,
                               "Machine '%s' is not running and its retained console output does not match",
                               m->name);
                return;
        }
        if (!m->console_waiters)
                m->console_waiters = g_ptr_array_new();
        if (m->console_waiters->len >= m->daemon->limits.max_waiters) {
                qm_reply_failf(call, QM_ERROR_LIMIT_EXCEEDED,
                               "Machine '%s' already has %u WaitConsole callers", m->name,
                               m->daemon->limits.max_waiters);
                return;
        }
        w = g_new0(ConsoleWaiter, 1);
        w->machine = m;
        w->call = call;
        w->expect = g_steal_pointer(&x);
        if (timeout > 0)
                w->timer = g_timeout_add((guint)MIN(timeout * 1000.0, (double)G_MAXUINT), on_waiter_timeout,
                                         w);
        g_ptr_array_add(m->console_waiters, w);
}

/* Take every waiter out first: answering one cannot touch the others. */
static GPtrArray *take_waiters(Machine *m) {
        GPtrArray *all = m->console_waiters;

        m->console_waiters = NULL;
        return all ? all : g_ptr_array_new();
}

void machine_console_waiters_end(Machine *m) {
        g_autoptr(GPtrArray) all = take_waiters(m);

        for (guint i = 0; i < all->len; i++) {
                ConsoleWaiter *w = g_ptr_array_index(all, i);
                qm_reply_failf(g_steal_pointer(&w->call), QM_ERROR_NOT_RUNNING,
                               "Machine '%s' stopped before its console matched", m->name);
                waiter_free(w);
        }
}

void machine_console_waiters_free(Machine *m) {
        g_autoptr(GPtrArray) all = take_waiters(m);

        for (guint i = 0; i < all->len; i++)
                waiter_free(g_ptr_array_index(all, i));
}

void machine_console_waiters_forget(Machine *m, const char *unique_name) {
        g_autoptr(GPtrArray) gone = g_ptr_array_new();

        if (!m->console_waiters)
                return;
        for (guint i = 0; i < m->console_waiters->len; i++) {
                ConsoleWaiter *w = g_ptr_array_index(m->console_waiters, i);
                if (g_strcmp0(qm_reply_sender(w->call), unique_name) == 0)
                        g_ptr_array_add(gone, w);
        }
        for (guint i = 0; i < gone->len; i++)
                waiter_remove(g_ptr_array_index(gone, i));
}

void machine_console_expect_restart(Machine *m) {
        m->console_bytes = 0;
        if (!m->console_waiters)
                return;
        for (guint i = 0; i < m->console_waiters->len; i++)
                qm_console_expect_restart(((ConsoleWaiter *)g_ptr_array_index(m->console_waiters, i))->expect);
}

void machine_write_console(Machine *m, QmReply *call, const void *data, gsize len) {
        if (!m->config->console) {
                qm_reply_failf(call, QM_ERROR_NO_CONSOLE, "Machine '%s' was created without a console",
                               m->name);
                return;
        }
        if (!m->console) {
                qm_reply_failf(call, QM_ERROR_NOT_RUNNING, "Machine '%s' is not running (state %s)", m->name,
                               qm_state_to_string(m->state));
                return;
        }
        if (!qm_console_write(m->console, data, len)) {
                qm_reply_failf(call, QM_ERROR_BUSY,
                               "The guest of '%s' has not read %u KiB of console input yet; try again later",
                               m->name, QM_CONSOLE_INPUT_BACKLOG / 1024);
                return;
        }
        qm_reply_ok(call);
}

guint64 machine_console_bytes(Machine *m) {
        return m->console_bytes;
}
