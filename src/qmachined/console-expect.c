/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "console-expect.h"

struct QmConsoleExpect {
        GRegex *regex;
        guint64 after;
        guint64 searched; /* everything before this was searched (>= after) */
};

/*
 * PCRE's limits, lowered: a pathological regex ("(a+)+$" against a run of
 * "a") then fails after about 10 ms and 8 MiB rather than 0.1-0.5 s and
 * 300 MiB of the main loop (PCRE2's defaults). The interpreter, not the
 * JIT: the JIT's small stack fails ordinary patterns on long output.
 */
#define LIMITS "(*LIMIT_MATCH=1000000)(*LIMIT_HEAP=8192)"

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
        x->after = x->searched = after;
        return x;
}

void qm_console_expect_free(QmConsoleExpect *x) {
        if (!x)
                return;
        g_regex_unref(x->regex);
        g_free(x);
}

guint64 qm_console_expect_after(const QmConsoleExpect *x) {
        return x->after;
}

/* Where the next search starts. */
static guint64 search_from(const QmConsoleExpect *x) {
        guint64 from = x->searched > QM_CONSOLE_EXPECT_LOOKBACK ? x->searched - QM_CONSOLE_EXPECT_LOOKBACK : 0;
        return MAX(from, x->after);
}

guint64 qm_console_expect_needs_from(const QmConsoleExpect *x) {
        guint64 from = search_from(x);
        return from > QM_CONSOLE_EXPECT_CONTEXT ? from - QM_CONSOLE_EXPECT_CONTEXT : 0;
}

void qm_console_expect_restart(QmConsoleExpect *x) {
        x->after = x->searched = 0;
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
        gint s, t;

        if (from > stream_end)
                return QM_CONSOLE_EXPECT_NONE; /* @after lies ahead */
        /* GLib takes gssize lengths; the retained output is far smaller. */
        g_assert(len <= G_MAXSSIZE);
        if (g_regex_match_full(x->regex, (const char *)data, (gssize)len, (gint)(from - base), MATCH_FLAGS,
                               &info, &e) &&
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
        return QM_CONSOLE_EXPECT_NONE;
}

char *qm_console_expect_text(const guint8 *data, gsize len) {
        g_autofree char *copy = g_malloc(len + 1);

        for (gsize i = 0; i < len; i++)
                copy[i] = data[i] ? (char)data[i] : '?';
        copy[len] = 0;
        return g_utf8_make_valid(copy, (gssize)len);
}
