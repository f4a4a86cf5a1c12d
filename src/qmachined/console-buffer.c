/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "console-buffer.h"

struct QmByteRing {
        guint8 *buf;
        gsize capacity;
        gsize start;
        gsize len;
};

QmByteRing *qm_byte_ring_new(gsize capacity) {
        QmByteRing *r = g_new0(QmByteRing, 1);
        r->capacity = capacity;
        r->buf = g_malloc(capacity);
        return r;
}

void qm_byte_ring_free(QmByteRing *r) {
        if (!r)
                return;
        g_free(r->buf);
        g_free(r);
}

void qm_byte_ring_clear(QmByteRing *r) {
        r->start = r->len = 0;
}

void qm_byte_ring_append(QmByteRing *r, const void *data, gsize len) {
        const guint8 *p = data;

        if (len >= r->capacity) {
                memcpy(r->buf, p + len - r->capacity, r->capacity);
                r->start = 0;
                r->len = r->capacity;
                return;
        }
        gsize end = (r->start + r->len) % r->capacity;
        gsize first = MIN(len, r->capacity - end);
        memcpy(r->buf + end, p, first);
        memcpy(r->buf, p + first, len - first);
        if (r->len + len > r->capacity) {
                r->start = (r->start + r->len + len - r->capacity) % r->capacity;
                r->len = r->capacity;
        } else {
                r->len += len;
        }
}

GBytes *qm_byte_ring_get(QmByteRing *r) {
        guint8 *out = g_malloc(r->len ? r->len : 1);
        gsize first = MIN(r->len, r->capacity - r->start);

        memcpy(out, r->buf + r->start, first);
        memcpy(out + first, r->buf, r->len - first);
        return g_bytes_new_take(out, r->len);
}

gsize qm_byte_ring_len(QmByteRing *r) {
        return r->len;
}

GBytes *qm_byte_ring_get_tail(QmByteRing *r, gsize n) {
        gsize skip, from, first;
        guint8 *out;

        n = MIN(n, r->len);
        skip = r->len - n;
        from = (r->start + skip) % r->capacity;
        first = MIN(n, r->capacity - from);
        out = g_malloc(n ? n : 1);
        memcpy(out, r->buf + from, first);
        memcpy(out + first, r->buf, n - first);
        return g_bytes_new_take(out, n);
}

#define PANIC_TEXT "Kernel panic - not syncing"
#define BUG_START "BUG:"
#define BUG_END "---[ end trace "
#define BUG_END_CLOSE " ]---"
/* A "BUG:" with no end this many bytes later is given up on: a stray
 * "BUG:" must not hide a real report for the rest of the run. */
#define BUG_GIVE_UP (256 * 1024)
#define PATTERN_MAX 32

/* Incremental search for one fixed pattern (Knuth-Morris-Pratt): one byte
 * at a time, no look-back, so a read boundary can fall anywhere. */
typedef struct {
        const char *pattern;
        gsize len;
        gsize matched; /* bytes of the pattern that end the input so far */
        guint8 fallback[PATTERN_MAX];
} Matcher;

static void matcher_init(Matcher *m, const char *pattern) {
        gsize k = 0;

        m->pattern = pattern;
        m->len = strlen(pattern);
        g_assert(m->len > 0 && m->len <= PATTERN_MAX);
        m->matched = 0;
        /* fallback[i]: the longest proper border of pattern[0..i] */
        m->fallback[0] = 0;
        for (gsize i = 1; i < m->len; i++) {
                while (k > 0 && pattern[i] != pattern[k])
                        k = m->fallback[k - 1];
                if (pattern[i] == pattern[k])
                        k++;
                m->fallback[i] = k;
        }
}

/* TRUE when @c completes the pattern. */
static inline gboolean matcher_step(Matcher *m, char c) {
        while (m->matched > 0 && m->pattern[m->matched] != c)
                m->matched = m->fallback[m->matched - 1];
        if (m->pattern[m->matched] == c)
                m->matched++;
        if (m->matched < m->len)
                return FALSE;
        m->matched = m->fallback[m->len - 1];
        return TRUE;
}

static void matcher_feed(Matcher *m, const char *s) {
        for (; *s; s++)
                matcher_step(m, *s);
}

typedef enum {
        SCAN_IDLE,       /* no crash started */
        SCAN_BUG,        /* after "BUG:", before its end */
        SCAN_PANIC_LINE, /* after "Kernel panic - not syncing", before the newline */
        SCAN_DONE,       /* reported: quiet until reset */
} ScanState;

struct QmCrashScan {
        ScanState state;
        Matcher panic;
        Matcher bug_start;
        Matcher bug_end;
        Matcher bug_close;
        gboolean bug_end_seen;
        /* The crash so far: its first QM_CRASH_TEXT_MAX + 1 bytes (one more
         * than is reported, to tell a cut line from one that ends in "\r"). */
        GString *text;
        guint64 crash_len; /* bytes of the crash so far, kept or not */
        guint64 examined;
};

#define TEXT_KEEP (QM_CRASH_TEXT_MAX + 1)

QmCrashScan *qm_crash_scan_new(void) {
        QmCrashScan *s = g_new0(QmCrashScan, 1);

        s->text = g_string_sized_new(TEXT_KEEP);
        matcher_init(&s->panic, PANIC_TEXT);
        matcher_init(&s->bug_start, BUG_START);
        matcher_init(&s->bug_end, BUG_END);
        matcher_init(&s->bug_close, BUG_END_CLOSE);
        return s;
}

void qm_crash_scan_free(QmCrashScan *s) {
        if (!s)
                return;
        g_string_free(s->text, TRUE);
        g_free(s);
}

void qm_crash_scan_reset(QmCrashScan *s) {
        s->state = SCAN_IDLE;
        s->panic.matched = s->bug_start.matched = 0;
        g_string_truncate(s->text, 0);
        s->crash_len = 0;
}

gsize qm_crash_scan_buffered(QmCrashScan *s) {
        return s->text->len;
}

guint64 qm_crash_scan_examined(QmCrashScan *s) {
        return s->examined;
}

static void start_crash(QmCrashScan *s, ScanState state, const char *matched) {
        s->state = state;
        g_string_assign(s->text, matched);
        s->crash_len = s->text->len;
        s->bug_start.matched = 0;
        if (state == SCAN_BUG) {
                s->bug_end.matched = s->bug_close.matched = 0;
                s->bug_end_seen = FALSE;
        }
}

static void keep_byte(QmCrashScan *s, char c) {
        if (s->text->len < TEXT_KEEP)
                g_string_append_c(s->text, c);
        s->crash_len++;
}

/* The first @n bytes of @text, then the cut marker when @cut. */
static char *cut_text(const char *text, gsize n, gboolean cut) {
        const char *marker = cut ? QM_CRASH_CUT_MARKER : "";
        gsize marker_len = strlen(marker);
        char *out = g_malloc(n + marker_len + 1);

        memcpy(out, text, n);
        memcpy(out + n, marker, marker_len + 1);
        return out;
}

/* The reported text: the first @len kept bytes, for D-Bus (no NUL, valid
 * UTF-8), at most QM_CRASH_TEXT_MAX bytes plus the marker when @cut. It
 * depends only on the kept bytes, never on how they were read. */
static char *report(QmCrashScan *s, gsize len, gboolean cut) {
        g_autofree char *copy = g_malloc(len + 1);
        g_autofree char *valid = NULL;
        gsize n;

        for (gsize i = 0; i < len; i++)
                copy[i] = s->text->str[i] ? s->text->str[i] : '?';
        copy[len] = 0;
        valid = g_utf8_make_valid(copy, len);
        n = strlen(valid);
        /* replacement characters may have made it longer: cut again, on a
         * character boundary */
        if (n > QM_CRASH_TEXT_MAX) {
                n = QM_CRASH_TEXT_MAX;
                while (n > 0 && ((guchar)valid[n] & 0xc0) == 0x80)
                        n--;
                cut = TRUE;
        }
        s->state = SCAN_DONE;
        g_string_truncate(s->text, 0);
        return cut_text(valid, n, cut);
}

/* A panic line ends: at its newline or at the end of the stream. */
static char *report_panic_line(QmCrashScan *s) {
        gsize len = s->text->len;

        /* here crash_len <= TEXT_KEEP, so every byte of the line is kept */
        if (len > 0 && s->text->str[len - 1] == '\r')
                len--;
        if (len > QM_CRASH_TEXT_MAX)
                return report(s, QM_CRASH_TEXT_MAX, TRUE);
        return report(s, len, FALSE);
}

/* Back to idle; the panic matcher keeps its progress. */
static void give_up_bug(QmCrashScan *s) {
        s->state = SCAN_IDLE;
        g_string_truncate(s->text, 0);
        s->crash_len = 0;
        s->bug_start.matched = 0;
}

static char *step_idle(QmCrashScan *s, char c) {
        if (matcher_step(&s->panic, c))
                start_crash(s, SCAN_PANIC_LINE, PANIC_TEXT);
        else if (matcher_step(&s->bug_start, c))
                start_crash(s, SCAN_BUG, BUG_START);
        return NULL;
}

static char *step_bug(QmCrashScan *s, char c) {
        /* a panic that starts inside a BUG report is the crash to report */
        if (matcher_step(&s->panic, c)) {
                start_crash(s, SCAN_PANIC_LINE, PANIC_TEXT);
                return NULL;
        }
        keep_byte(s, c);
        if (!s->bug_end_seen) {
                if (matcher_step(&s->bug_end, c)) {
                        s->bug_end_seen = TRUE;
                        /* " ]---" may begin inside "---[ end trace " */
                        s->bug_close.matched = 0;
                        matcher_feed(&s->bug_close, BUG_END);
                }
        } else if (matcher_step(&s->bug_close, c)) {
                return report(s, MIN(s->crash_len, QM_CRASH_TEXT_MAX), s->crash_len > QM_CRASH_TEXT_MAX);
        }
        if (s->crash_len >= BUG_GIVE_UP)
                give_up_bug(s);
        return NULL;
}

static char *step_panic_line(QmCrashScan *s, char c) {
        if (c == '\n')
                return report_panic_line(s);
        keep_byte(s, c);
        /* Two bytes over the limit: too long even without a final "\r".
         * Report now rather than wait for a newline that may never come. */
        if (s->crash_len >= QM_CRASH_TEXT_MAX + 2)
                return report(s, QM_CRASH_TEXT_MAX, TRUE);
        return NULL;
}

char *qm_crash_scan_feed(QmCrashScan *s, const char *data, gsize len) {
        for (gsize i = 0; i < len && s->state != SCAN_DONE; i++) {
                char *found = NULL;

                s->examined++;
                switch (s->state) {
                case SCAN_IDLE:
                        found = step_idle(s, data[i]);
                        break;
                case SCAN_BUG:
                        found = step_bug(s, data[i]);
                        break;
                case SCAN_PANIC_LINE:
                        found = step_panic_line(s, data[i]);
                        break;
                case SCAN_DONE:
                        break;
                }
                if (found)
                        return found;
        }
        return NULL;
}

char *qm_crash_scan_finish(QmCrashScan *s) {
        if (s->state != SCAN_PANIC_LINE)
                return NULL;
        return report_panic_line(s);
}
