/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The clock and the sort order every bench program uses. */
#pragma once

#include <time.h>

/* Monotonic time in microseconds. */
static inline double qm_bench_now_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* qsort() order of doubles, ascending. */
static inline int qm_bench_cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;

        return (x > y) - (x < y);
}
