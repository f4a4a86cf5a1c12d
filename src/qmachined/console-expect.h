/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Console expect (WaitConsole): one search for a GLib regex in a growing
 * console stream, resumed as output comes. Pure: it is handed the
 * retained bytes and knows nothing of machines or the bus.
 *
 * Offsets are absolute: bytes since the start of the stream (the run).
 * Each search remembers how far it has looked, and from where a match
 * may still begin (PCRE2's partial matching: start positions that failed
 * before reaching the end of the output never match, whatever follows);
 * new output is searched from the start of that line, but never from
 * more than QM_CONSOLE_EXPECT_LOOKBACK bytes before where it looked last
 * (nor before its `after`), so a match is found once complete if it is
 * at most QM_CONSOLE_EXPECT_LOOKBACK bytes long, and a waiter costs
 * about its current line per read. The bytes before where a search
 * starts (up to QM_CONSOLE_EXPECT_CONTEXT of them, where retained) are
 * given to PCRE as context, so ^, \b and lookbehind see them.
 *
 * The subject is the output so far: "$" matches only before a newline
 * (any of \r, \n, \r\n), never at the end of what has come yet, and a
 * greedy "\d+" may match before all the digits came; "\z" is the end of
 * the output so far.
 */
#pragma once

#include <glib.h>

#define QM_CONSOLE_EXPECT_LOOKBACK (64 * 1024)
#define QM_CONSOLE_EXPECT_CONTEXT 4096
#define QM_CONSOLE_REGEX_MAX 4096

typedef struct QmConsoleExpect QmConsoleExpect;

/* NULL with a G_REGEX_ERROR when @pattern does not compile (multiline,
 * raw bytes: the console need not be UTF-8). */
QmConsoleExpect *qm_console_expect_new(const char *pattern, guint64 after, GError **error);
void qm_console_expect_free(QmConsoleExpect *x);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmConsoleExpect, qm_console_expect_free)

guint64 qm_console_expect_after(const QmConsoleExpect *x);
/* The first offset the next search may look at, context included: the
 * caller hands over the retained bytes from there (or from the oldest
 * retained byte, when that is later). */
guint64 qm_console_expect_needs_from(const QmConsoleExpect *x);
/* A new run: offsets start again from 0. */
void qm_console_expect_restart(QmConsoleExpect *x);

typedef enum {
        QM_CONSOLE_EXPECT_NONE,  /* no match yet */
        QM_CONSOLE_EXPECT_FOUND, /* *start, *end: absolute offsets of the match */
        QM_CONSOLE_EXPECT_ERROR, /* PCRE gave up (e.g. its backtracking limit): *error */
} QmConsoleExpectResult;

/* Search @data, the stream's bytes from absolute offset @base to its end
 * (base + len), after what earlier calls searched. */
QmConsoleExpectResult qm_console_expect_search(QmConsoleExpect *x, const guint8 *data, gsize len,
                                               guint64 base, guint64 *start, guint64 *end, GError **error);

/* The matched bytes as a D-Bus string: NUL → '?', then valid UTF-8. */
char *qm_console_expect_text(const guint8 *data, gsize len);
