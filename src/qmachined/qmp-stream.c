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

/*
 * Agent mode: the runs of bytes that end at a 0xFF in [@from, @to) of the
 * @base line are stale. Returns the offset just after the last 0xFF (0:
 * none), or -1 when one run is longer than max_line. The runs are held to
 * the line limit as a line is: a working agent's stale output is answers
 * to earlier commands, or one cut short, each within the limit, so junk
 * longer than that is a broken or hostile guest, whose connection is
 * dropped and made again (then synchronised). Whether a run was counted
 * must not depend on the read boundaries: read in pieces, a run over the
 * limit is seen as a partial line before its 0xFF arrives, so in one
 * piece it must break the stream too. Tolerating it would mean dropping
 * bytes of unknown fate until a 0xFF or a newline tells what they were.
 */
static gssize skip_stale(const QmpStream *s, const char *base, gsize from, gsize to) {
        gsize begin = 0, after = 0;
        const char *q;

        while (from < to && (q = memchr(base + from, 0xFF, to - from))) {
                gsize at = q - base;
                if (at - begin > s->max_line)
                        return -1;
                begin = after = from = at + 1;
        }
        return after;
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
                        gssize after = skip_stale(s, base, s->scanned, upto);
                        if (after < 0)
                                return -1;
                        if (after > 0) {
                                s->start += after;
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
