/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Console expect: matches across any split of the output, offsets after
 * the ring dropped old bytes, `after`, the lookback bound, a regex too
 * expensive to run. */
#include <string.h>

#include "console-buffer.h"
#include "console-expect.h"

/* The stream as the daemon keeps it: retained bytes and a byte count. */
typedef struct {
        QmByteRing *ring;
        guint64 total;
} Stream;

static void stream_init(Stream *s, gsize capacity) {
        s->ring = qm_byte_ring_new(capacity);
        s->total = 0;
}

static void stream_clear(Stream *s) {
        qm_byte_ring_free(s->ring);
}

/* Append @len bytes, then search as the daemon does (one window from what
 * the search needs). */
static QmConsoleExpectResult feed(Stream *s, QmConsoleExpect *x, const void *data, gsize len, guint64 *start,
                                  guint64 *end, GError **error) {
        guint64 oldest, from;
        g_autoptr(GBytes) window = NULL;
        gsize wlen;
        const guint8 *w;

        qm_byte_ring_append(s->ring, data, len);
        s->total += len;
        oldest = s->total - qm_byte_ring_len(s->ring);
        from = MAX(qm_console_expect_needs_from(x), oldest);
        window = qm_byte_ring_get_tail(s->ring, s->total - from);
        w = g_bytes_get_data(window, &wlen);
        return qm_console_expect_search(x, w, wlen, from, start, end, error);
}

/* Feed @text in chunks of @chunk bytes until @pattern matches. */
static gboolean find_in_chunks(const char *pattern, guint64 after, const char *text, gsize len, gsize chunk,
                               gsize capacity, guint64 *start, guint64 *end) {
        g_autoptr(QmConsoleExpect) x = qm_console_expect_new(pattern, after, NULL);
        Stream s;
        gboolean found = FALSE;

        g_assert_nonnull(x);
        stream_init(&s, capacity);
        for (gsize i = 0; i < len && !found; i += chunk) {
                g_autoptr(GError) e = NULL;
                QmConsoleExpectResult r = feed(&s, x, text + i, MIN(chunk, len - i), start, end, &e);
                g_assert_no_error(e);
                found = r == QM_CONSOLE_EXPECT_FOUND;
        }
        stream_clear(&s);
        return found;
}

static void test_any_split(void) {
        const char *text = "boot...\r\n# echo hello $((6*7))\r\nhello 42\r\n# ";
        gsize len = strlen(text);
        const char *at = strstr(text, "hello 42");

        for (gsize chunk = 1; chunk <= len; chunk++) {
                guint64 start, end;
                g_assert_true(find_in_chunks("hello \\d+$", 0, text, len, chunk, 1024, &start, &end));
                g_assert_cmpuint(start, ==, (guint64)(at - text));
                g_assert_cmpuint(end, ==, (guint64)(at - text) + 8);
        }
}

static void test_after(void) {
        const char *text = "ab\nab\nab\n";
        guint64 start, end;

        /* the first "ab" lies before after=1; the next at 3 */
        g_assert_true(find_in_chunks("ab", 1, text, strlen(text), 1, 64, &start, &end));
        g_assert_cmpuint(start, ==, 3);
        g_assert_cmpuint(end, ==, 5);
        /* ^ sees the byte before after: "b" at 1 is not at a line start */
        g_assert_true(find_in_chunks("^b|^a", 1, text, strlen(text), 4, 64, &start, &end));
        g_assert_cmpuint(start, ==, 3);
        /* lookbehind into the bytes before after */
        g_assert_true(find_in_chunks("(?<=\\na)b", 1, text, strlen(text), 2, 64, &start, &end));
        g_assert_cmpuint(start, ==, 4);
        /* after at the end: nothing */
        g_assert_false(find_in_chunks("ab", 9, text, strlen(text), 3, 64, &start, &end));
}

/* The ring keeps 16 bytes; offsets still count from the start. */
static void test_offsets_after_drop(void) {
        g_autoptr(GString) text = g_string_new(NULL);
        guint64 start, end;

        for (int i = 0; i < 100; i++)
                g_string_append(text, "..........");
        g_string_append(text, "MARK");
        for (gsize chunk = 1; chunk <= 17; chunk += 4) {
                g_assert_true(find_in_chunks("MARK", 0, text->str, text->len, chunk, 16, &start, &end));
                g_assert_cmpuint(start, ==, 1000);
                g_assert_cmpuint(end, ==, 1004);
        }
        /* an after older than the oldest retained byte: from the oldest */
        g_assert_true(find_in_chunks("\\.M", 3, text->str, text->len, 50, 16, &start, &end));
        g_assert_cmpuint(start, ==, 999);
}

/* A match across many reads is found while it is at most the lookback
 * long; a longer one is not (documented). */
static void test_lookback(void) {
        gsize mid_short = QM_CONSOLE_EXPECT_LOOKBACK - 100, mid_long = QM_CONSOLE_EXPECT_LOOKBACK + 10000;
        g_autoptr(GString) shorter = g_string_new("START");
        g_autoptr(GString) longer = g_string_new("START");
        guint64 start, end;

        for (gsize i = 0; i < mid_short; i++)
                g_string_append_c(shorter, 'x');
        g_string_append(shorter, "END");
        for (gsize i = 0; i < mid_long; i++)
                g_string_append_c(longer, 'x');
        g_string_append(longer, "END");

        g_assert_true(find_in_chunks("STARTx*END", 0, shorter->str, shorter->len, 1000, 1 << 20, &start, &end));
        g_assert_cmpuint(start, ==, 0);
        g_assert_cmpuint(end, ==, shorter->len);
        g_assert_false(find_in_chunks("STARTx*END", 0, longer->str, longer->len, 1000, 1 << 20, &start, &end));
        /* in one read it is found: the limit is about reads, not length */
        g_assert_true(find_in_chunks("STARTx*END", 0, longer->str, longer->len, longer->len, 1 << 20, &start,
                                     &end));
}

static void test_text(void) {
        g_autofree char *t = qm_console_expect_text((const guint8 *)"a\0b\xff", 4);

        g_assert_true(g_utf8_validate(t, -1, NULL));
        g_assert_cmpstr(t, ==, "a?b\xef\xbf\xbd");
}

static void test_bad_regex(void) {
        g_autoptr(GError) e = NULL;

        g_assert_null(qm_console_expect_new("(unclosed", 0, &e));
        g_assert_true(e->domain == G_REGEX_ERROR);
        /* the message is about the caller's pattern, not ours */
        g_assert_null(strstr(e->message, "LIMIT"));
        g_clear_error(&e);
        g_assert_null(qm_console_expect_new("(*LIMIT_MATCH=100000000)a", 0, &e));
        g_assert_nonnull(e);
}

/* Raw bytes: not UTF-8, with NULs; "." and classes see single bytes. */
static void test_binary(void) {
        const char text[] = "\xff\xfe\0prompt\xc3(# ";
        guint64 start, end;

        g_assert_true(find_in_chunks("prompt.\\(# \\z", 0, text, sizeof(text) - 1, 2, 64, &start, &end));
        g_assert_cmpuint(start, ==, 3);
        g_assert_cmpuint(end, ==, sizeof(text) - 1);
}

/* "(a+)+$" against 1 MiB of "a" then "b": PCRE gives up, quickly. */
static void test_too_expensive(void) {
        const gsize n = 1024 * 1024;
        g_autofree char *text = g_malloc(n);
        g_autoptr(QmConsoleExpect) x = qm_console_expect_new("(a+)+$", 0, NULL);
        g_autoptr(GError) e = NULL;
        guint64 start, end;
        gint64 t0;
        Stream s;

        memset(text, 'a', n);
        text[n - 1] = 'b';
        stream_init(&s, n);
        t0 = g_get_monotonic_time();
        g_assert_cmpint(feed(&s, x, text, n, &start, &end, &e), ==, QM_CONSOLE_EXPECT_ERROR);
        g_assert_error(e, G_REGEX_ERROR, G_REGEX_ERROR_MATCH);
        g_test_message("(a+)+$ on 1 MiB: %.1f ms", (g_get_monotonic_time() - t0) / 1000.0);
        g_assert_cmpint(g_get_monotonic_time() - t0, <, 2 * G_USEC_PER_SEC);
        stream_clear(&s);
}

/* A new run: offsets from 0 again. */
static void test_restart(void) {
        g_autoptr(QmConsoleExpect) x = qm_console_expect_new("go", 50, NULL);
        guint64 start, end;
        Stream s;

        qm_console_expect_restart(x);
        g_assert_cmpuint(qm_console_expect_after(x), ==, 0);
        stream_init(&s, 64);
        g_assert_cmpint(feed(&s, x, "go", 2, &start, &end, NULL), ==, QM_CONSOLE_EXPECT_FOUND);
        g_assert_cmpuint(end, ==, 2);
        stream_clear(&s);
}

/* "$" waits for the newline: the output so far is not the end of a line. */
static void test_dollar_waits(void) {
        const char *text = "x 4";
        guint64 start, end;

        g_assert_false(find_in_chunks("x \\d+$", 0, text, strlen(text), 1, 64, &start, &end));
        g_assert_true(find_in_chunks("x \\d+$", 0, "x 42\r\n", 6, 1, 64, &start, &end));
        g_assert_cmpuint(end, ==, 4);
}

/* Feed @text in one read: where the next search needs bytes from. */
static guint64 needs_from_after(const char *pattern, const char *text, gsize len) {
        g_autoptr(QmConsoleExpect) x = qm_console_expect_new(pattern, 0, NULL);
        guint64 start, end, needs;
        Stream s;

        g_assert_nonnull(x);
        stream_init(&s, 1 << 20);
        g_assert_cmpint(feed(&s, x, text, len, &start, &end, NULL), ==, QM_CONSOLE_EXPECT_NONE);
        needs = qm_console_expect_needs_from(x);
        stream_clear(&s);
        return needs;
}

/* 100 KiB of lines without a start of a match: the next search looks
 * only at the last line (and its context), not the whole lookback. */
static void test_resume_skips(void) {
        const gsize line = 64, n = 1600 * line;
        const gsize cx = QM_CONSOLE_EXPECT_CONTEXT, lb = QM_CONSOLE_EXPECT_LOOKBACK;
        g_autofree char *text = g_malloc(n);

        memset(text, 'x', n);
        for (gsize i = line - 1; i < n; i += line)
                text[i] = '\n';
        g_assert_cmpuint(needs_from_after("login:", text, n), ==, n - cx);
        g_assert_cmpuint(needs_from_after("^ready \\d+$", text, n), ==, n - cx);
        /* a read that ends inside a line: from that line's start */
        g_assert_cmpuint(needs_from_after("login:", text, n - 10), ==, n - line - cx);
        g_assert_cmpuint(needs_from_after("x+y", text, n - 10), ==, n - line - cx);
        /* a match begun: from its line */
        memcpy(text + n - 10, "\nready 4", 8);
        g_assert_cmpuint(needs_from_after("^ready \\d+$", text, n - 2), ==, n - 9 - cx);
        /* \G and the backtracking verbs depend on where a search starts:
         * they search the whole lookback, as without resuming */
        g_assert_cmpuint(needs_from_after("\\Glogin:", text, n), ==, n - lb - cx);
        g_assert_cmpuint(needs_from_after("x(*COMMIT)y", text, n), ==, n - lb - cx);
        /* no newline at all: the lookback bounds it */
        memset(text, 'x', n);
        g_assert_cmpuint(needs_from_after("login:", text, n), ==, n - lb - cx);
}

/* A match begun in one read and completed in a later one: the search
 * resumes where it began, whatever the split. */
static void test_resume_partial(void) {
        const char *text = "boot\r\nlogin: \r\nready 4\r\nready 42\r\n"; /* 6, 15, 24 */
        gsize len = strlen(text);
        static const struct {
                const char *pattern;
                guint64 start, end;
        } cases[] = {
                { "login: ", 6, 13 },
                { "^ready \\d+$", 15, 22 }, /* the first: its digits end at a newline */
                { "ready \\d{2}", 24, 32 },
                { "(?<=\\n)r\\w+ 42", 24, 32 }, /* lookbehind into the context */
                { "\\b4\\d", 30, 32 },
                { "42\\r\\n\\z", 30, 34 },
        };

        for (gsize c = 0; c < G_N_ELEMENTS(cases); c++)
                for (gsize chunk = 1; chunk <= len; chunk++) {
                        guint64 start, end;
                        g_assert_true(
                                find_in_chunks(cases[c].pattern, 0, text, len, chunk, 1024, &start, &end));
                        g_assert_cmpuint(start, ==, cases[c].start);
                        g_assert_cmpuint(end, ==, cases[c].end);
                }
}

/* The context before where a search resumes still counts: ^, \b and
 * lookbehind see the bytes before it, so a resumed search answers as a
 * fresh one. */
static void test_resume_context(void) {
        guint64 start, end;

        /* "b" after "a": not at a line start, not after a word boundary */
        g_assert_false(find_in_chunks("^b", 0, "ab", 2, 1, 64, &start, &end));
        g_assert_false(find_in_chunks("\\bb", 0, "ab", 2, 1, 64, &start, &end));
        g_assert_true(find_in_chunks("^b", 0, "ab\nb", 4, 1, 64, &start, &end));
        g_assert_cmpuint(start, ==, 3);
        g_assert_true(find_in_chunks("(?<=ab)c", 0, "abc", 3, 1, 64, &start, &end));
        g_assert_cmpuint(start, ==, 2);
        g_assert_false(find_in_chunks("(?<!a)c", 0, "ac", 2, 1, 64, &start, &end));
        /* "^" after a newline that ended a read: a line starts there */
        g_assert_true(find_in_chunks("\\n^\\d?", 0, "ab\nc", 4, 1, 64, &start, &end));
        g_assert_cmpuint(start, ==, 2);
        /* ".*" patterns start only at line starts (PCRE's startline), never
         * between "\r" and "\n": a resumed search neither */
        for (gsize chunk = 1; chunk <= 7; chunk++) {
                g_assert_true(find_in_chunks("\\N*+\\n{2}", 0, "1\nx\r\n\n\n", 7, chunk, 64, &start, &end));
                g_assert_cmpuint(start, ==, 5);
        }
}

/* The scan that finds where to resume compiles the regex as GLib does:
 * with UCP ("\s" and "\R" overlap, "\w" is Latin-1 letters too). */
static void test_resume_as_glib(void) {
        guint64 start, end;

        g_assert_true(find_in_chunks("b?\\R?\\s", 0, "b\nb1aa", 6, 6, 64, &start, &end));
        g_assert_cmpuint(start, ==, 0);
        g_assert_cmpuint(end, ==, 2);
        g_assert_true(find_in_chunks("\\w+ ", 0, "xx\xe9 ", 4, 1, 64, &start, &end));
        g_assert_cmpuint(start, ==, 0);
        g_assert_cmpuint(end, ==, 4);
}

/* "\d+" may match before all the digits came, as without resuming. */
static void test_resume_greedy(void) {
        guint64 start, end;

        /* the first read is "n=1" */
        g_assert_true(find_in_chunks("n=\\d+", 0, "n=123", 5, 3, 64, &start, &end));
        g_assert_cmpuint(end, ==, 3);
        /* a partial "n=" resumes where it began */
        g_assert_true(find_in_chunks("n=\\d+", 0, "xn=123", 6, 2, 64, &start, &end));
        g_assert_cmpuint(start, ==, 1);
        g_assert_cmpuint(end, ==, 4);
}

static void test_ring_tail(void) {
        g_autoptr(QmByteRing) r = qm_byte_ring_new(8);
        GBytes *b;

        qm_byte_ring_append(r, "abcdefghijk", 11); /* retains defghijk */
        qm_byte_ring_append(r, "lm", 2);           /* wraps: fghijklm */
        g_assert_cmpuint(qm_byte_ring_len(r), ==, 8);
        b = qm_byte_ring_get_tail(r, 3);
        g_assert_cmpmem(g_bytes_get_data(b, NULL), g_bytes_get_size(b), "klm", 3);
        g_bytes_unref(b);
        b = qm_byte_ring_get_tail(r, 100);
        g_assert_cmpmem(g_bytes_get_data(b, NULL), g_bytes_get_size(b), "fghijklm", 8);
        g_bytes_unref(b);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/console-expect/any-split", test_any_split);
        g_test_add_func("/console-expect/after", test_after);
        g_test_add_func("/console-expect/offsets-after-drop", test_offsets_after_drop);
        g_test_add_func("/console-expect/lookback", test_lookback);
        g_test_add_func("/console-expect/text", test_text);
        g_test_add_func("/console-expect/bad-regex", test_bad_regex);
        g_test_add_func("/console-expect/binary", test_binary);
        g_test_add_func("/console-expect/too-expensive", test_too_expensive);
        g_test_add_func("/console-expect/restart", test_restart);
        g_test_add_func("/console-expect/dollar-waits", test_dollar_waits);
        g_test_add_func("/console-expect/ring-tail", test_ring_tail);
        g_test_add_func("/console-expect/resume-skips", test_resume_skips);
        g_test_add_func("/console-expect/resume-partial", test_resume_partial);
        g_test_add_func("/console-expect/resume-context", test_resume_context);
        g_test_add_func("/console-expect/resume-greedy", test_resume_greedy);
        g_test_add_func("/console-expect/resume-as-glib", test_resume_as_glib);
        return g_test_run();
}
