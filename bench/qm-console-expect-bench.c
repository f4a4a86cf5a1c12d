/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * WaitConsole's cost per console read with many waiters: the daemon's
 * loop (machine_console_expect_output: one window copied from the
 * retained output, then every waiter searched) over the real matcher,
 * with 1, 64 and 1024 waiters whose regexes never match, fed small
 * reads of console-like text after the lookback has filled.
 *
 * The floor, measured in the same run: the same waiters each running
 * their regex once over the new bytes alone (g_regex_match_full, fresh),
 * the least a search per waiter can cost. The ratio is ours / floor of
 * the medians.
 *
 *   qm-console-expect-bench [--reads N] [--read-size BYTES]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "console-buffer.h"
#include "console-expect.h"

#include "bench-time.h"

#define RETAINED (1024 * 1024) /* the daemon's console ring */

typedef struct {
        QmConsoleExpect **waiters;
        GRegex **floor;
        guint n;
} Waiters;

/* Patterns of the kinds tests wait for; none appears in the text. */
static char *waiter_pattern(guint i) {
        switch (i % 4) {
        case 0:
                return g_strdup_printf("login-%u:", i);
        case 1:
                return g_strdup_printf("^ready %u$", i);
        case 2:
                return g_strdup_printf("\\d+ tasks done \\(%u\\)", i);
        default:
                return g_strdup_printf("exit status=%u\\b", i);
        }
}

static void waiters_init(Waiters *w, guint n, guint64 after) {
        w->n = n;
        w->waiters = g_new0(QmConsoleExpect *, n);
        w->floor = g_new0(GRegex *, n);
        for (guint i = 0; i < n; i++) {
                g_autofree char *p = waiter_pattern(i);
                w->waiters[i] = qm_console_expect_new(p, after, NULL);
                w->floor[i] = g_regex_new(p, G_REGEX_MULTILINE | G_REGEX_RAW, 0, NULL);
                g_assert(w->waiters[i] && w->floor[i]);
        }
}

static void waiters_clear(Waiters *w) {
        for (guint i = 0; i < w->n; i++) {
                qm_console_expect_free(w->waiters[i]);
                g_regex_unref(w->floor[i]);
        }
        g_free(w->waiters);
        g_free(w->floor);
}

/* Console-like text: numbered boot lines, no waiter's pattern. */
static GByteArray *make_text(gsize len) {
        GByteArray *t = g_byte_array_sized_new((guint)len + 128);

        for (guint line = 0; t->len < len; line++) {
                g_autofree char *s = g_strdup_printf(
                        "[%6u.%06u] systemd[1]: Started unit-%u.service - Unit %u.\r\n", line / 100,
                        line * 7919 % 1000000, line, line);
                g_byte_array_append(t, (const guint8 *)s, (guint)strlen(s));
        }
        g_byte_array_set_size(t, (guint)len);
        return t;
}

/* What machine_console_expect_output() does for one read. */
static void daemon_read(QmByteRing *ring, guint64 *total, Waiters *w, const guint8 *data, gsize len) {
        guint64 needs_from = G_MAXUINT64, oldest, from, start, end;
        g_autoptr(GBytes) window = NULL;
        const guint8 *wd;
        gsize wlen;

        qm_byte_ring_append(ring, data, len);
        *total += len;
        for (guint i = 0; i < w->n; i++)
                needs_from = MIN(needs_from, qm_console_expect_needs_from(w->waiters[i]));
        oldest = *total - qm_byte_ring_len(ring);
        from = MAX(needs_from, oldest);
        window = qm_byte_ring_get_tail(ring, (gsize)(*total - from));
        wd = g_bytes_get_data(window, &wlen);
        for (guint i = 0; i < w->n; i++)
                if (qm_console_expect_search(w->waiters[i], wd, wlen, from, &start, &end, NULL) !=
                    QM_CONSOLE_EXPECT_NONE)
                        g_error("waiter %u matched or failed: the text must not match", i);
}

/* The floor for one read: each regex once over the new bytes. */
static void floor_read(Waiters *w, const guint8 *data, gsize len) {
        for (guint i = 0; i < w->n; i++)
                if (g_regex_match_full(w->floor[i], (const char *)data, (gssize)len, 0, G_REGEX_MATCH_NOTEOL,
                                       NULL, NULL))
                        g_error("floor %u matched: the text must not match", i);
}

typedef struct {
        double min, median, p99;
} Stats;

static Stats stats(double *v, guint n) {
        qsort(v, n, sizeof(double), qm_bench_cmp_double);
        return (Stats){ v[0], v[n / 2], v[MIN(n - 1, (guint)((n * 99 + 99) / 100) - 1)] };
}

/* Per-read times in µs, ours and the floor interleaved read by read, so
 * load changes hit both alike. */
static void measure(guint n_waiters, guint reads, gsize read_size, Stats *ours, Stats *floor) {
        g_autoptr(GByteArray) text = make_text(QM_CONSOLE_EXPECT_LOOKBACK * 2 + (gsize)reads * read_size);
        g_autofree double *t_ours = g_new(double, reads);
        g_autofree double *t_floor = g_new(double, reads);
        QmByteRing *ring = qm_byte_ring_new(RETAINED);
        gsize prefill = QM_CONSOLE_EXPECT_LOOKBACK * 2;
        guint64 total = 0;
        Waiters w;

        waiters_init(&w, n_waiters, 0);
        /* The lookback full, as after a guest has booted. */
        for (gsize off = 0; off < prefill; off += 4096)
                daemon_read(ring, &total, &w, text->data + off, 4096);
        for (guint r = 0; r < reads; r++) {
                const guint8 *d = text->data + prefill + (gsize)r * read_size;
                double t0 = qm_bench_now_us(), t1, t2;

                daemon_read(ring, &total, &w, d, read_size);
                t1 = qm_bench_now_us();
                floor_read(&w, d, read_size);
                t2 = qm_bench_now_us();
                t_ours[r] = t1 - t0;
                t_floor[r] = t2 - t1;
        }
        *ours = stats(t_ours, reads);
        *floor = stats(t_floor, reads);
        waiters_clear(&w);
        qm_byte_ring_free(ring);
}

int main(int argc, char **argv) {
        static const guint counts[] = { 1, 64, 1024 };
        guint reads = 200;
        gsize read_size = 100;

        for (int i = 1; i + 1 < argc; i += 2) {
                if (strcmp(argv[i], "--reads") == 0)
                        reads = (guint)CLAMP(atoi(argv[i + 1]), 1, 1000000);
                else if (strcmp(argv[i], "--read-size") == 0)
                        read_size = (gsize)CLAMP(atoi(argv[i + 1]), 1, 65536);
                else {
                        fprintf(stderr, "usage: %s [--reads N] [--read-size BYTES]\n", argv[0]);
                        return 2;
                }
        }
        printf("WaitConsole: cost per %zu-byte console read (µs; %u reads, lookback full)\n", read_size,
               reads);
        printf("%-8s %10s %10s %10s %12s %8s\n", "waiters", "min", "median", "p99", "floor med", "ratio");
        for (gsize i = 0; i < G_N_ELEMENTS(counts); i++) {
                Stats ours, floor;

                measure(counts[i], reads, read_size, &ours, &floor);
                printf("%-8u %10.2f %10.2f %10.2f %12.2f %7.2fx\n", counts[i], ours.min, ours.median,
                       ours.p99, floor.median, ours.median / MAX(floor.median, 0.01));
        }
        return 0;
}
