/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "qmp-stream.h"

struct QmpStream {
        GString *buf;
        gsize start;   /* first byte not yet returned */
        gsize scanned; /* bytes from start known to hold no newline */
        gsize max_line;
        gboolean sync_byte; /* 0xFF discards everything before it */
};

QmpStream *qmp_stream_new(gsize max_line) {
        QmpStream *s = g_new0(QmpStream, 1);
        s->buf = g_string_sized_new(4096);
        s->max_line = max_line;
        return s;
}

void qmp_stream_free(QmpStream *s) {
        if (!s)
                return;
        g_string_free(s->buf, TRUE);
        g_free(s);
}

void qmp_stream_set_sync_byte(QmpStream *s, gboolean on) {
        s->sync_byte = on;
}

/* The last 0xFF in the @len bytes at @p, or NULL. */
static const char *last_sync_byte(const char *p, gsize len) {
        const char *found = NULL, *q;

        while (len > 0 && (q = memchr(p, 0xFF, len))) {
                found = q;
                len -= q + 1 - p;
                p = q + 1;
        }
        return found;
}

void qmp_stream_push(QmpStream *s, const char *data, gsize len) {
        /* Drop consumed bytes before growing, so the buffer stays bounded by
         * one partial line plus one read. */
        if (s->start > 0) {
                g_string_erase(s->buf, 0, s->start);
                s->start = 0;
        }
        g_string_append_len(s->buf, data, len);
}

int qmp_stream_pop(QmpStream *s, char **line, gsize *len) {
        for (;;) {
                const char *base = s->buf->str + s->start;
                gsize avail = s->buf->len - s->start;
                const char *nl = memchr(base + s->scanned, '\n', avail - s->scanned);
                gsize n;

                if (s->sync_byte) {
                        /* A line never holds 0xFF (JSON is UTF-8): what
                         * came before the last one is stale, a partial
                         * line included. */
                        gsize upto = nl ? (gsize)(nl - base) : avail;
                        const char *sync = last_sync_byte(base + s->scanned, upto - s->scanned);
                        if (sync) {
                                s->start += sync + 1 - base;
                                s->scanned = 0;
                                continue;
                        }
                }
                if (!nl) {
                        s->scanned = avail;
                        return avail > s->max_line ? -1 : 0;
                }
                n = nl - base;
                if (n > s->max_line)
                        return -1;
                s->start += n + 1;
                s->scanned = 0;
                if (n > 0 && base[n - 1] == '\r')
                        n--;
                if (n == 0)
                        continue; /* a blank line */
                *line = g_malloc(n + 1);
                memcpy(*line, base, n);
                (*line)[n] = 0;
                if (len)
                        *len = n;
                return 1;
        }
}

gsize qmp_stream_pending(QmpStream *s) {
        return s->buf->len - s->start;
}
