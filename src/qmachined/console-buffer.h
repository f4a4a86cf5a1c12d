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

/*
 * Kernel crash detection on a console stream (BaseVM verify_kernel_crash):
 * "BUG: ... ---[ end trace ... ]---" across lines, or the line of
 * "Kernel panic - not syncing". Matches survive any split between reads.
 */
typedef struct QmCrashScan QmCrashScan;

QmCrashScan *qm_crash_scan_new(void);
void qm_crash_scan_free(QmCrashScan *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmCrashScan, qm_crash_scan_free)
/* Returns the crash text the first time one is complete, else NULL
 * (g_free it). After a report the scanner stays quiet until reset. */
char *qm_crash_scan_feed(QmCrashScan *s, const char *data, gsize len);
/* End of stream: a panic line cut short is reported as it is. */
char *qm_crash_scan_finish(QmCrashScan *s);
void qm_crash_scan_reset(QmCrashScan *s);
