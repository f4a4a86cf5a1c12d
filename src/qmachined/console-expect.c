/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "console-expect.h"

struct QmConsoleExpect {
        GRegex *regex;    /* decides: what a fresh search finds */
        pcre2_code *scan; /* the same regex, for partial matching; NULL: never resume */
        guint64 after;
        guint64 searched; /* everything before this was searched (>= after) */
        guint64 resume;   /* no match can start before this (>= after) */
};

/*
 * PCRE's limits, lowered: a pathological regex ("(a+)+$" against a run of
 * "a") then fails after about 10 ms and 8 MiB rather than 0.1-0.5 s and
 * 300 MiB of the main loop (PCRE2's defaults). The interpreter, not the
 * JIT: the JIT's small stack fails ordinary patterns on long output.
 */
#define LIMITS "(*LIMIT_MATCH=1000000)(*LIMIT_HEAP=8192)"

/*
 * The scan regex, compiled as GLib compiles G_REGEX_MULTILINE |
 * G_REGEX_RAW (no UTF, any newline, and UCP: \w, \s and \b by Unicode
 * properties of the bytes as Latin-1), and with ALT_CIRCUMFLEX: "^" also
 * after a newline that ends the output so far (a line may start there
 * once more comes), which PCRE checks without signalling a partial
 * match. Not for patterns whose result depends on where a search
 * starts: \G (the start offset) and the backtracking verbs (*SKIP),
 * (*COMMIT)... Those search as before.
 */
static pcre2_code *scan_new(const char *pattern, const char *limited) {
        pcre2_compile_context *cc;
        pcre2_code *code;
        PCRE2_SIZE erroffset;
        int errcode;

        if (strstr(pattern, "\\G") || strstr(pattern, "(*"))
                return NULL;
        cc = pcre2_compile_context_create(NULL);
        if (!cc)
                return NULL;
        pcre2_set_newline(cc, PCRE2_NEWLINE_ANY);
        pcre2_set_bsr(cc, PCRE2_BSR_UNICODE);
        code = pcre2_compile((PCRE2_SPTR)limited, PCRE2_ZERO_TERMINATED,
                             PCRE2_MULTILINE | PCRE2_UCP | PCRE2_ALT_CIRCUMFLEX, &errcode, &erroffset, cc);
        pcre2_compile_context_free(cc);
        return code; /* NULL: search without resuming */
}

QmConsoleExpect *qm_console_expect_new(const char *pattern, guint64 after, GError **error) {
        const GRegexCompileFlags flags = G_REGEX_MULTILINE | G_REGEX_RAW;
        g_autoptr(GRegex) plain = NULL;
        g_autofree char *limited = NULL;
        QmConsoleExpect *x;
        GRegex *re;

        if (strstr(pattern, "(*LIMIT_")) {
                g_set_error(error, G_REGEX_ERROR, G_REGEX_ERROR_COMPILE,
                            "(*LIMIT_...) settings are not allowed");
                return NULL;
        }
        /* First as given, for an error message about the caller's text. */
        plain = g_regex_new(pattern, flags, 0, error);
        if (!plain)
                return NULL;
        limited = g_strconcat(LIMITS, pattern, NULL);
        re = g_regex_new(limited, flags, 0, error);
        if (!re)
                return NULL;
        x = g_new0(QmConsoleExpect, 1);
        x->regex = re;
        x->scan = scan_new(pattern, limited);
        x->after = x->searched = x->resume = after;
        return x;
}

void qm_console_expect_free(QmConsoleExpect *x) {
        if (!x)
                return;
        g_regex_unref(x->regex);
        pcre2_code_free(x->scan);
        g_free(x);
}

guint64 qm_console_expect_after(const QmConsoleExpect *x) {
        return x->after;
}

/* Where the next search starts. */
static guint64 search_from(const QmConsoleExpect *x) {
        guint64 from = x->searched > QM_CONSOLE_EXPECT_LOOKBACK ? x->searched - QM_CONSOLE_EXPECT_LOOKBACK : 0;
        return MAX(MAX(from, x->after), x->resume);
}

guint64 qm_console_expect_needs_from(const QmConsoleExpect *x) {
        guint64 from = search_from(x);
        return from > QM_CONSOLE_EXPECT_CONTEXT ? from - QM_CONSOLE_EXPECT_CONTEXT : 0;
}

void qm_console_expect_restart(QmConsoleExpect *x) {
        x->after = x->searched = x->resume = 0;
}

/* One match data for every scan: only its first pair is read, right
 * after the match (the daemon is one thread; the fuzzer and tests too,
 * but thread-local costs nothing). PCRE keeps its backtracking frames
 * there, as large as the largest search needed. */
static _Thread_local pcre2_match_data *scan_md;

static pcre2_match_data *scan_match_data(void) {
        if (!scan_md)
                scan_md = pcre2_match_data_create(1, NULL);
        return scan_md;
}

/* After a scan that hit PCRE's limits: its frames may be the heap limit. */
static void scan_match_data_drop(void) {
        pcre2_match_data_free(scan_md);
        scan_md = NULL;
}

/*
 * Where, from @from on, a match may start now or once more output comes.
 * PCRE's hard partial matching without NOTEOL treats the end of @data as
 * "more may follow" ($ and \z too): start positions before the first one
 * that completes or reaches the end can never match, whatever follows,
 * since their outcome did not depend on a byte past the end. Returns
 * @len when no position can (the new end is where to resume); a partial
 * match's start, which counts bytes a lookbehind looked at and may lie
 * before @from; @from when a match completes (\K may move its reported
 * start) or the scan gave up (PCRE's limits: the search decides).
 */
static gsize scan_first_possible(const QmConsoleExpect *x, const guint8 *data, gsize len, gsize from) {
        pcre2_match_data *md = x->scan ? scan_match_data() : NULL;
        int r;

        if (!md)
                return from;
        r = pcre2_match(x->scan, (PCRE2_SPTR)data, len, from, PCRE2_PARTIAL_HARD | PCRE2_NO_UTF_CHECK, md,
                        NULL);
        if (r == PCRE2_ERROR_NOMATCH)
                return len;
        if (r == PCRE2_ERROR_PARTIAL)
                return MAX((gsize)pcre2_get_ovector_pointer(md)[0], from);
        if (r < 0)
                scan_match_data_drop();
        return from;
}

/*
 * Where a resumed search may start: the start of the line @q is in
 * (right after the last "\n" before it), else @from. A fresh search
 * tries only line starts when the pattern begins with ".*" (PCRE's
 * startline), and never a start between "\r" and "\n"; but a search
 * always tries its own start offset first, so resuming elsewhere could
 * find a match a fresh search does not.
 */
static gsize line_start(const guint8 *data, gsize from, gsize q) {
        const guint8 *nl = q > from ? memrchr(data + from, '\n', q - from) : NULL;

        return nl ? (gsize)(nl - data) + 1 : from;
}

/* NOTEOL: the end of the output so far is not the end of a line (more
 * may follow), so "$" matches only before a newline; "\z" matches there. */
#define MATCH_FLAGS G_REGEX_MATCH_NOTEOL

QmConsoleExpectResult qm_console_expect_search(QmConsoleExpect *x, const guint8 *data, gsize len,
                                               guint64 base, guint64 *start, guint64 *end, GError **error) {
        g_autoptr(GMatchInfo) info = NULL;
        g_autoptr(GError) e = NULL;
        guint64 stream_end = base + len;
        guint64 from = MAX(search_from(x), base);
        gsize first, possible;
        gint s, t;

        if (from > stream_end)
                return QM_CONSOLE_EXPECT_NONE; /* @after lies ahead */
        /* GLib takes gssize lengths; the retained output is far smaller. */
        g_assert(len <= G_MAXSSIZE);
        first = scan_first_possible(x, data, len, (gsize)(from - base));
        possible = line_start(data, (gsize)(from - base), first);
        if (first == len) { /* no start can match yet: no search */
                x->searched = stream_end;
                x->resume = base + possible;
                return QM_CONSOLE_EXPECT_NONE;
        }
        if (g_regex_match_full(x->regex, (const char *)data, (gssize)len, (gint)possible, MATCH_FLAGS, &info,
                               &e) &&
            g_match_info_fetch_pos(info, 0, &s, &t)) {
                *start = base + (guint64)s;
                *end = base + (guint64)t;
                return QM_CONSOLE_EXPECT_FOUND;
        }
        if (e) {
                g_propagate_error(error, g_steal_pointer(&e));
                return QM_CONSOLE_EXPECT_ERROR;
        }
        x->searched = stream_end;
        x->resume = base + possible;
        return QM_CONSOLE_EXPECT_NONE;
}

char *qm_console_expect_text(const guint8 *data, gsize len) {
        g_autofree char *copy = g_malloc(len + 1);

        for (gsize i = 0; i < len; i++)
                copy[i] = data[i] ? (char)data[i] : '?';
        copy[len] = 0;
        return g_utf8_make_valid(copy, (gssize)len);
}
