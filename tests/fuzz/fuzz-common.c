/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-common.h"

static GLogLevelFlags fatal_levels;

static void log_handler(const char *domain, GLogLevelFlags level, const char *message, gpointer data) {
        if (level & fatal_levels)
                fprintf(stderr, "fuzz: fatal GLib message (%s): %s\n", domain ? domain : "", message);
}

void fuzz_init_logging(gboolean warnings_fatal) {
        fatal_levels = G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | (warnings_fatal ? G_LOG_LEVEL_WARNING : 0);
        g_log_set_always_fatal(fatal_levels);
        g_log_set_default_handler(log_handler, NULL);
}

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "fuzz: invariant broken at %s:%d (%s): ", file, line, cond);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        abort();
}

gboolean fuzz_text_ok(const char *s, gssize len) {
        if (!s)
                return FALSE;
        if (len < 0)
                len = strlen(s);
        return !memchr(s, 0, len) && g_utf8_validate(s, len, NULL);
}

gboolean fuzz_split_init(FuzzSplit *s, const uint8_t **data, size_t *size) {
        if (*size < 2)
                return FALSE;
        /* mostly small pieces: they find split bugs; sometimes big ones */
        s->max_piece = (gsize)1 << ((*data)[0] % 13);
        s->state = 0x9e3779b9u ^ ((guint32)(*data)[0] << 8) ^ (*data)[1];
        *data += 2;
        *size -= 2;
        return TRUE;
}

gsize fuzz_split_next(FuzzSplit *s, gsize left) {
        gsize n;

        /* xorshift32 */
        s->state ^= s->state << 13;
        s->state ^= s->state >> 17;
        s->state ^= s->state << 5;
        n = 1 + s->state % s->max_piece;
        return MIN(n, left);
}
