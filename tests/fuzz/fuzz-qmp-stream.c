/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The QMP line splitter, in QMP mode and in the guest agent's mode (a
 * 0xFF byte drops everything before it). Fed in one piece, the lines
 * popped are those of a byte-by-byte model written here; no line is
 * longer than the limit, none holds a newline or (agent mode) a 0xFF,
 * and the stream keeps at most one partial line. Split anywhere, both
 * modes give the same result as in one piece: the same lines, broken or
 * not (in agent mode, junk over the limit before a 0xFF breaks the
 * stream however it arrives).
 */
#include <string.h>

#include "fuzz-common.h"
#include "qmp-stream.h"

/* Small, so that inputs reach them; the agent's is the larger, as in
 * the daemon. */
#define MAX_LINE 64
#define MAX_LINE_AGENT 96
#define SYNC 0xFF

typedef struct {
        GPtrArray *lines;
        gboolean broken; /* a line over the limit was seen */
} Result;

static void result_init(Result *r) {
        r->lines = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
        r->broken = FALSE;
}

/* Pop every complete line; returns FALSE once the stream is broken. */
static gboolean pop_all(QmpStream *s, gboolean agent, gsize max, Result *r) {
        char *line;
        gsize len;
        int k;

        while ((k = qmp_stream_pop(s, &line, &len)) > 0) {
                fuzz_assert(len > 0 && len <= max, "line of %zu bytes", len);
                fuzz_assert(strlen(line) <= len, "length %zu does not match the line", len);
                fuzz_assert(!memchr(line, '\n', len), "a line holds a newline");
                fuzz_assert(!agent || !memchr(line, SYNC, len), "a line holds bytes from before a 0xFF");
                g_ptr_array_add(r->lines, g_bytes_new_take(line, len));
        }
        if (k < 0)
                r->broken = TRUE;
        return k == 0;
}

static void run(const uint8_t *data, size_t size, gboolean agent, FuzzSplit *split, Result *r) {
        gsize max = agent ? MAX_LINE_AGENT : MAX_LINE;
        g_autoptr(QmpStream) s = qmp_stream_new(max);
        gsize off = 0;

        qmp_stream_set_sync_byte(s, agent);
        result_init(r);
        while (off < size) {
                gsize n = split ? fuzz_split_next(split, size - off) : size - off;
                qmp_stream_push(s, (const char *)data + off, n);
                off += n;
                if (!pop_all(s, agent, max, r))
                        return;
                /* what is left is one partial line, within the limit */
                fuzz_assert(qmp_stream_pending(s) <= max, "%zu bytes buffered", qmp_stream_pending(s));
        }
}

/* The model of one piece: each line is what follows its last 0xFF
 * (agent mode), without a final \r; blank lines are skipped; a run of
 * bytes over the limit breaks the stream, whether a newline, a 0xFF
 * (agent mode) or the end of the input ends it. */
static void model(const uint8_t *data, size_t size, gboolean agent, Result *r) {
        gsize max = agent ? MAX_LINE_AGENT : MAX_LINE;
        gsize begin = 0; /* the current line's first byte */

        result_init(r);
        for (gsize i = 0; i <= size; i++) {
                gsize n = i - begin;
                gboolean sync = i < size && agent && data[i] == SYNC;

                if (i < size && !sync && data[i] != '\n')
                        continue;
                if (n > max) {
                        r->broken = TRUE;
                        return;
                }
                if (i == size)
                        return; /* a partial line within the limit */
                if (!sync && n > 0 && data[i - 1] == '\r')
                        n--;
                if (!sync && n > 0)
                        g_ptr_array_add(r->lines, g_bytes_new(data + begin, n));
                begin = i + 1;
        }
}

static gboolean lines_prefix(const Result *a, const Result *b) {
        if (a->lines->len > b->lines->len)
                return FALSE;
        for (guint i = 0; i < a->lines->len; i++)
                if (!g_bytes_equal(a->lines->pdata[i], b->lines->pdata[i]))
                        return FALSE;
        return TRUE;
}

static void result_clear(Result *r) {
        g_ptr_array_unref(r->lines);
}

static gboolean results_equal(const Result *a, const Result *b) {
        return a->broken == b->broken && a->lines->len == b->lines->len && lines_prefix(a, b);
}

static void check_mode(const uint8_t *data, size_t size, gboolean agent, const FuzzSplit *split0) {
        FuzzSplit split = *split0;
        Result whole, pieces, expected;

        run(data, size, agent, NULL, &whole);
        run(data, size, agent, &split, &pieces);
        model(data, size, agent, &expected);

        fuzz_assert(results_equal(&whole, &expected),
                    "agent %d: in one piece %u lines (broken %d), the model %u (broken %d)", agent,
                    whole.lines->len, whole.broken, expected.lines->len, expected.broken);
        fuzz_assert(results_equal(&pieces, &whole),
                    "agent %d: in pieces %u lines (broken %d), in one piece %u (broken %d)", agent,
                    pieces.lines->len, pieces.broken, whole.lines->len, whole.broken);
        result_clear(&whole);
        result_clear(&pieces);
        result_clear(&expected);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        fuzz_init_logging(TRUE);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        FuzzSplit split;

        if (!fuzz_split_init(&split, &data, &size))
                return 0;
        check_mode(data, size, FALSE, &split);
        check_mode(data, size, TRUE, &split);
        return 0;
}
