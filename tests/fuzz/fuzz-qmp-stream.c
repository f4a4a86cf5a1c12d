/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The QMP line splitter: the lines popped must not depend on where the
 * reads split the stream, no line is longer than the limit, and the
 * stream keeps at most one partial line.
 */
#include <string.h>

#include "fuzz-common.h"
#include "qmp-stream.h"

/* Small, so that inputs reach it. */
#define MAX_LINE 64

typedef struct {
        GPtrArray *lines;
        gboolean broken; /* a line over the limit was seen */
} Result;

/* Pop every complete line; returns FALSE once the stream is broken. */
static gboolean pop_all(QmpStream *s, Result *r) {
        char *line;
        gsize len;
        int k;

        while ((k = qmp_stream_pop(s, &line, &len)) > 0) {
                fuzz_assert(len > 0 && len <= MAX_LINE, "line of %zu bytes", len);
                fuzz_assert(strlen(line) <= len, "length %zu does not match the line", len);
                fuzz_assert(!memchr(line, '\n', len), "a line holds a newline");
                g_ptr_array_add(r->lines, g_bytes_new_take(line, len));
        }
        if (k < 0)
                r->broken = TRUE;
        return k == 0;
}

static void run(const uint8_t *data, size_t size, FuzzSplit *split, Result *r) {
        g_autoptr(QmpStream) s = qmp_stream_new(MAX_LINE);
        gsize off = 0;

        r->lines = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
        r->broken = FALSE;
        while (off < size) {
                gsize n = split ? fuzz_split_next(split, size - off) : size - off;
                qmp_stream_push(s, (const char *)data + off, n);
                off += n;
                if (!pop_all(s, r))
                        return;
                /* what is left is one partial line, within the limit */
                fuzz_assert(qmp_stream_pending(s) <= MAX_LINE,
                            "%zu bytes buffered", qmp_stream_pending(s));
        }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        fuzz_init_logging(TRUE);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        FuzzSplit split;
        Result whole, pieces;

        if (!fuzz_split_init(&split, &data, &size))
                return 0;
        run(data, size, NULL, &whole);
        run(data, size, &split, &pieces);
        fuzz_assert(whole.broken == pieces.broken, "broken %d in one piece, %d in pieces", whole.broken,
                    pieces.broken);
        fuzz_assert(whole.lines->len == pieces.lines->len, "%u lines in one piece, %u in pieces",
                    whole.lines->len, pieces.lines->len);
        for (guint i = 0; i < whole.lines->len; i++)
                fuzz_assert(g_bytes_equal(whole.lines->pdata[i], pieces.lines->pdata[i]), "line %u differs", i);
        g_ptr_array_unref(whole.lines);
        g_ptr_array_unref(pieces.lines);
        return 0;
}
