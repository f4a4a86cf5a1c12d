/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The console crash scanner (console-buffer.h). The input: two bytes that
 * pick the read boundaries, one byte of repeats (the payload is fed that
 * many times over, so that long streams are reached), the payload. The
 * verdict (the text reported, or none) must be the same in one piece and
 * in pieces, and again after a reset; a reported text is fit for D-Bus
 * and a few KiB at most; a stream with a panic line gets a verdict.
 */
#include <string.h>

#include "console-buffer.h"
#include "fuzz-common.h"

#ifdef QM_CRASH_TEXT_MAX
#define MAX_REPORT (QM_CRASH_TEXT_MAX + 64) /* and a marker when cut */
#else
#define MAX_REPORT (8 * 1024)
#endif

#define PANIC_TEXT "Kernel panic - not syncing"

/* Feed @stream in pieces (one piece when @split is NULL). */
static char *verdict(QmCrashScan *s, const char *stream, gsize len, FuzzSplit *split) {
        gsize off = 0;

        while (off < len) {
                gsize n = split ? fuzz_split_next(split, len - off) : len - off;
                char *text = qm_crash_scan_feed(s, stream + off, n);
                off += n;
                if (text) {
                        /* quiet after a report, whatever comes */
                        fuzz_assert(!qm_crash_scan_feed(s, stream, len), "a second report");
                        fuzz_assert(!qm_crash_scan_finish(s), "a second report at the end");
                        return text;
                }
        }
        return qm_crash_scan_finish(s);
}

static void check_text(const char *text) {
        gsize len;

        if (!text)
                return;
        len = strlen(text);
        fuzz_assert(fuzz_text_ok(text, len), "the crash text is not valid UTF-8");
        fuzz_assert(len <= MAX_REPORT, "a crash text of %zu bytes", len);
        fuzz_assert(g_str_has_prefix(text, PANIC_TEXT) || g_str_has_prefix(text, "BUG:"),
                    "a crash text that starts with neither pattern: %.100s", text);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        fuzz_init_logging(TRUE);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        g_autoptr(QmCrashScan) s = qm_crash_scan_new();
        g_autoptr(GString) stream = g_string_new(NULL);
        g_autofree char *whole = NULL;
        g_autofree char *again = NULL;
        g_autofree char *pieces = NULL;
        FuzzSplit split;
        guint repeats;

        if (!fuzz_split_init(&split, &data, &size) || size < 1)
                return 0;
        repeats = 1 + data[0] % 128;
        for (guint i = 0; i < repeats; i++)
                g_string_append_len(stream, (const char *)data + 1, size - 1);

        whole = verdict(s, stream->str, stream->len, NULL);
        check_text(whole);
        if (memmem(stream->str, stream->len, PANIC_TEXT, strlen(PANIC_TEXT)))
                fuzz_assert(whole, "a panic line and no verdict");
        qm_crash_scan_reset(s);
        again = verdict(s, stream->str, stream->len, NULL);
        fuzz_assert(g_strcmp0(whole, again) == 0, "another verdict after a reset");

        g_clear_pointer(&s, qm_crash_scan_free);
        s = qm_crash_scan_new();
        pieces = verdict(s, stream->str, stream->len, &split);
        fuzz_assert(g_strcmp0(whole, pieces) == 0, "the verdict depends on the split:\n%.300s\n---\n%.300s",
                    whole ? whole : "(none)", pieces ? pieces : "(none)");
        return 0;
}
