/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Console expect over hostile console output. The input: 2 split bytes,
 * 1 padding byte (high nibble: 8 KiB units of filler fed first, so the
 * lookback matters; low bits: the filler), 1 byte `after`, 1 byte the
 * regex length (at most REGEX_MAX), the regex, then the console bytes.
 *
 * The output is fed in pieces and searched as the daemon does (from
 * qm_console_expect_needs_from()). A model searches the whole output so
 * far, from `after`, at each piece's end with a fresh search. Both stay
 * within the bytes fed and after `after`; a match's text is valid UTF-8
 * without NUL; an error is PCRE giving up (G_REGEX_ERROR_MATCH), never a
 * hang (libFuzzer's -timeout). When the model's first match is at most
 * QM_CONSOLE_EXPECT_LOOKBACK bytes long (and the regex has no
 * lookbehind, which may look past the context), the resumed search finds
 * the same match at the same piece; it never finds one earlier.
 */
#include <string.h>

#include "console-expect.h"
#include "fuzz-common.h"

#define REGEX_MAX 64
#define PAD_UNIT (8 * 1024)
/* The model searches the whole output at every piece's end: padding
 * only with few pieces, to stay fast. */
#define PAD_MAX_PIECES 64

typedef struct {
        QmConsoleExpectResult result;
        guint64 start, end;
        gsize piece; /* the piece at whose end it was found */
} Outcome;

static void check_found(const guint8 *buf, gsize fed, guint64 after, guint64 start, guint64 end) {
        g_autofree char *text = NULL;

        fuzz_assert(after <= start && start <= end && end <= fed,
                    "match [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT ") after %" G_GUINT64_FORMAT
                    ", %zu bytes fed",
                    start, end, after, fed);
        text = qm_console_expect_text(buf + start, end - start);
        fuzz_assert(fuzz_text_ok(text, -1), "the match text is not valid UTF-8 without NUL");
}

static void check_error(GError *e) {
        fuzz_assert(e && g_error_matches(e, G_REGEX_ERROR, G_REGEX_ERROR_MATCH), "error %s",
                    e ? e->message : "missing");
}

/* One search as the daemon resumes it: hand over the bytes from where it
 * needs them. That point never moves back, and a search needs at most
 * the lookback and its context before what it searched last. */
static QmConsoleExpectResult resume(QmConsoleExpect *x, const guint8 *buf, gsize fed, guint64 *start,
                                    guint64 *end, guint64 *last_from, gsize last_fed) {
        g_autoptr(GError) e = NULL;
        guint64 from = MIN(qm_console_expect_needs_from(x), fed);
        QmConsoleExpectResult r;

        fuzz_assert(from >= *last_from, "needs bytes from %" G_GUINT64_FORMAT ", before %" G_GUINT64_FORMAT,
                    from, *last_from);
        fuzz_assert(from + QM_CONSOLE_EXPECT_LOOKBACK + QM_CONSOLE_EXPECT_CONTEXT >= last_fed,
                    "needs bytes from %" G_GUINT64_FORMAT ", beyond the lookback of %zu", from, last_fed);
        *last_from = from;
        r = qm_console_expect_search(x, buf + from, fed - from, from, start, end, &e);

        if (r == QM_CONSOLE_EXPECT_ERROR)
                check_error(e);
        else
                fuzz_assert(!e, "an error without QM_CONSOLE_EXPECT_ERROR");
        return r;
}

/* A fresh search over everything fed. */
static QmConsoleExpectResult model(const char *pattern, guint64 after, const guint8 *buf, gsize fed,
                                   guint64 *start, guint64 *end) {
        g_autoptr(QmConsoleExpect) x = qm_console_expect_new(pattern, after, NULL);
        g_autoptr(GError) e = NULL;
        QmConsoleExpectResult r;

        fuzz_assert(x, "the regex compiled once, not twice");
        r = qm_console_expect_search(x, buf, fed, 0, start, end, &e);
        if (r == QM_CONSOLE_EXPECT_ERROR)
                check_error(e);
        return r;
}

/* Feeds the pieces' ends in @ends; stops at the first match or error. */
static Outcome run(const char *pattern, guint64 after, const guint8 *buf, const gsize *ends, gsize n_ends,
                   gboolean use_model) {
        g_autoptr(QmConsoleExpect) x = use_model ? NULL : qm_console_expect_new(pattern, after, NULL);
        Outcome o = { QM_CONSOLE_EXPECT_NONE, 0, 0, 0 };
        guint64 last_from = 0;

        fuzz_assert(use_model || x, "the regex compiled once, not twice");
        for (gsize i = 0; i < n_ends; i++) {
                o.piece = i;
                o.result = use_model
                        ? model(pattern, after, buf, ends[i], &o.start, &o.end)
                        : resume(x, buf, ends[i], &o.start, &o.end, &last_from, i > 0 ? ends[i - 1] : 0);
                if (o.result == QM_CONSOLE_EXPECT_FOUND)
                        check_found(buf, ends[i], after, o.start, o.end);
                if (o.result != QM_CONSOLE_EXPECT_NONE)
                        break;
        }
        return o;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        fuzz_init_logging(TRUE);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const guint8 fillers[] = { 'x', ' ', '\n', 0 };
        g_autoptr(GByteArray) buf = g_byte_array_new();
        g_autoptr(GArray) ends = g_array_new(FALSE, FALSE, sizeof(gsize));
        g_autoptr(QmConsoleExpect) probe = NULL;
        g_autofree char *pattern = NULL;
        FuzzSplit split;
        gsize pad, rlen, off;
        guint64 after;
        Outcome got, want;

        if (!fuzz_split_init(&split, &data, &size) || size < 3)
                return 0;
        pad = (gsize)(data[0] >> 4) * PAD_UNIT;
        for (gsize i = 0; i < pad; i++)
                g_byte_array_append(buf, &fillers[data[0] & 3], 1);
        after = data[1];
        rlen = MIN((gsize)data[2], MIN((gsize)REGEX_MAX, size - 3));
        pattern = g_strndup((const char *)data + 3, rlen); /* up to a NUL */
        data += 3 + rlen;
        size -= 3 + rlen;

        probe = qm_console_expect_new(pattern, after, NULL);
        if (!probe)
                return 0;

        if (pad > 0)
                g_array_append_val(ends, pad);
        g_byte_array_append(buf, data, size);
        for (off = 0; off < size;) {
                gsize end;

                off += fuzz_split_next(&split, size - off);
                end = pad + off;
                g_array_append_val(ends, end);
        }
        if (pad > 0 && ends->len > PAD_MAX_PIECES)
                return 0;

        got = run(pattern, after, buf->data, (gsize *)(void *)ends->data, ends->len, FALSE);
        want = run(pattern, after, buf->data, (gsize *)(void *)ends->data, ends->len, TRUE);
        if (got.result == QM_CONSOLE_EXPECT_ERROR || want.result == QM_CONSOLE_EXPECT_ERROR)
                return 0; /* PCRE's limits depend on where the search starts */
        if (got.result == QM_CONSOLE_EXPECT_FOUND)
                fuzz_assert(want.result == QM_CONSOLE_EXPECT_FOUND && want.piece <= got.piece,
                            "found at piece %zu, the model %s", got.piece,
                            want.result == QM_CONSOLE_EXPECT_FOUND ? "later" : "never");
        if (want.result == QM_CONSOLE_EXPECT_FOUND && want.end - want.start <= QM_CONSOLE_EXPECT_LOOKBACK &&
            !strstr(pattern, "(?<"))
                fuzz_assert(got.result == QM_CONSOLE_EXPECT_FOUND && got.piece == want.piece &&
                                    got.start == want.start && got.end == want.end,
                            "the model found [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT
                            ") at piece %zu, "
                            "the resumed search [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT ") at %zu (%d)",
                            want.start, want.end, want.piece, got.start, got.end, got.piece, got.result);
        return 0;
}
