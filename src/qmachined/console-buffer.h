/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Pure parts of the console: the retained output and the crash scanner. */
#pragma once

#include <glib.h>

/* The newest @capacity bytes of a stream. */
typedef struct QmByteRing QmByteRing;

QmByteRing *qm_byte_ring_new(gsize capacity);
void qm_byte_ring_free(QmByteRing *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmByteRing, qm_byte_ring_free)
void qm_byte_ring_append(QmByteRing *r, const void *data, gsize len);
void qm_byte_ring_clear(QmByteRing *r);
/* The retained bytes, oldest first. */
GBytes *qm_byte_ring_get(QmByteRing *r);
/* How many bytes are retained. */
gsize qm_byte_ring_len(QmByteRing *r);
/* The newest @n retained bytes (all of them when fewer), oldest first:
 * costs @n, not the capacity. */
GBytes *qm_byte_ring_get_tail(QmByteRing *r, gsize n);

/*
 * Kernel crash detection on a console stream (BaseVM verify_kernel_crash):
 * "BUG: ... ---[ end trace ... ]---" across lines (the first "BUG:", given
 * up 256 KiB later without an end), or the line of "Kernel panic - not
 * syncing" (a panic that starts inside a BUG report wins over it).
 *
 * A streaming matcher: every byte is looked at once, and the state is
 * bounded (QM_CRASH_TEXT_MAX + 1 bytes of text), so the verdict is the
 * same however the stream is split into reads. A crash text longer than
 * QM_CRASH_TEXT_MAX bytes is reported as its first QM_CRASH_TEXT_MAX bytes
 * (fewer when cut inside a UTF-8 character) and QM_CRASH_CUT_MARKER; a
 * panic line is then reported at once, without waiting for its newline.
 */
#define QM_CRASH_TEXT_MAX 4096
#define QM_CRASH_CUT_MARKER "\xe2\x80\xa6" " [cut]" /* U+2026 ELLIPSIS */

typedef struct QmCrashScan QmCrashScan;

QmCrashScan *qm_crash_scan_new(void);
void qm_crash_scan_free(QmCrashScan *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmCrashScan, qm_crash_scan_free)
/* Returns the crash text the first time one is complete, else NULL
 * (g_free it): valid UTF-8 without NUL. After a report the scanner stays
 * quiet until reset. */
char *qm_crash_scan_feed(QmCrashScan *s, const char *data, gsize len);
/* End of stream: a panic line cut short is reported as it is. */
char *qm_crash_scan_finish(QmCrashScan *s);
void qm_crash_scan_reset(QmCrashScan *s);
/* For tests: bytes of the stream held now, and bytes looked at so far. */
gsize qm_crash_scan_buffered(QmCrashScan *s);
guint64 qm_crash_scan_examined(QmCrashScan *s);
