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

#define PANIC_TEXT "Kernel panic - not syncing"
#define BUG_START "BUG:"
#define BUG_END "---[ end trace "
#define BUG_END_CLOSE " ]---"
/* A BUG report longer than this is given up on (its start is dropped). */
#define SCAN_WINDOW (256 * 1024)

struct QmCrashScan {
        GString *window;  /* unconsumed tail of the stream */
        gsize searched;   /* bytes of window known not to start a match */
        gboolean reported;
};

QmCrashScan *qm_crash_scan_new(void) {
        QmCrashScan *s = g_new0(QmCrashScan, 1);
        s->window = g_string_new(NULL);
        return s;
}

void qm_crash_scan_free(QmCrashScan *s) {
        if (!s)
                return;
        g_string_free(s->window, TRUE);
        g_free(s);
}

void qm_crash_scan_reset(QmCrashScan *s) {
        g_string_truncate(s->window, 0);
        s->searched = 0;
        s->reported = FALSE;
}

static const char *find(const char *hay, gsize len, const char *needle) {
        return memmem(hay, len, needle, strlen(needle));
}

static char *report(QmCrashScan *s, const char *text, gsize len) {
        g_autofree char *copy = g_malloc(len + 1);
        char *out;

        /* for D-Bus: no NUL, valid UTF-8 */
        for (gsize i = 0; i < len; i++)
                copy[i] = text[i] ? text[i] : '?';
        copy[len] = 0;
        out = g_utf8_make_valid(copy, len);
        s->reported = TRUE;
        g_string_truncate(s->window, 0);
        s->searched = 0;
        return out;
}

/* Look for a complete match; keep in the window only what may still
 * become one. */
static char *scan(QmCrashScan *s, gboolean at_end) {
        const char *w = s->window->str;
        gsize n = s->window->len;
        const char *panic = find(w + s->searched, n - s->searched, PANIC_TEXT);
        const char *bug = find(w + s->searched, n - s->searched, BUG_START);

        if (panic && (!bug || panic < bug)) {
                const char *eol = memchr(panic, '\n', w + n - panic);
                if (eol || at_end) {
                        gsize len = (eol ? eol : w + n) - panic;
                        if (len > 0 && panic[len - 1] == '\r')
                                len--;
                        return report(s, panic, len);
                }
                /* wait for the rest of the line */
                g_string_erase(s->window, 0, panic - w);
                s->searched = 0;
                return NULL;
        }
        if (bug) {
                const char *end = find(bug, w + n - bug, BUG_END);
                const char *close = end ? find(end, w + n - end, BUG_END_CLOSE) : NULL;
                if (close)
                        return report(s, bug, close + strlen(BUG_END_CLOSE) - bug);
                /* A panic may still come after the BUG: search on from it. */
                const char *later_panic = find(bug, w + n - bug, PANIC_TEXT);
                if (later_panic) {
                        g_string_erase(s->window, 0, later_panic - w);
                        s->searched = 0;
                        return scan(s, at_end);
                }
                g_string_erase(s->window, 0, bug - w);
                s->searched = 0;
                if (s->window->len > SCAN_WINDOW) {
                        /* too long to be one report: skip this BUG: */
                        s->searched = strlen(BUG_START);
                }
                return NULL;
        }
        /* Nothing started: keep only a tail that may begin a pattern. */
        gsize keep = MIN(n, strlen(PANIC_TEXT) - 1);
        g_string_erase(s->window, 0, n - keep);
        s->searched = 0;
        return NULL;
}

char *qm_crash_scan_feed(QmCrashScan *s, const char *data, gsize len) {
        if (s->reported)
                return NULL;
        g_string_append_len(s->window, data, len);
        return scan(s, FALSE);
}

char *qm_crash_scan_finish(QmCrashScan *s) {
        if (s->reported || s->window->len == 0)
                return NULL;
        return scan(s, TRUE);
}
