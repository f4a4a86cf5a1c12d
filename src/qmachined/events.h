/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Numbered QMP events: the retained ring and event filters. */
#pragma once

#include <json-glib/json-glib.h>

#include "errors.h"

#define QM_EVENT_RING_SIZE 4096
/* Retained events take at most this much memory together (a hostile QEMU
 * could otherwise make 4096 events of 16 MiB each). */
#define QM_EVENT_RING_BYTES (64u * 1024 * 1024)

typedef struct {
        guint64 seq;
        char *name;
        char *json;      /* the whole event object, as QEMU sent it (compacted) */
        char *data_json; /* its "data" member, "{}" when absent */
        guint64 timestamp_us;
        JsonNode *node;
        gsize size; /* memory it takes, about */
} QmEvent;

/* @node: the event object from QEMU, parsed from @text (@len bytes, which
 * passed qm_json_check()); @seq: its number. */
QmEvent *qm_event_new(JsonNode *node, const char *text, gsize len, guint64 seq);
void qm_event_free(QmEvent *e);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmEvent, qm_event_free)

typedef struct QmEventRing QmEventRing;

QmEventRing *qm_event_ring_new(guint capacity, gsize max_bytes);
void qm_event_ring_free(QmEventRing *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmEventRing, qm_event_ring_free)
/* Takes ownership; drops the oldest events when full (count or bytes). Sequence numbers must
 * increase by one from the previous event (or start anywhere when empty). */
void qm_event_ring_push(QmEventRing *r, QmEvent *e);
guint qm_event_ring_count(QmEventRing *r);
/* The i-th retained event with seq > @after (i from 0), or NULL. */
const QmEvent *qm_event_ring_nth_after(QmEventRing *r, guint64 after, guint i);

/* A WaitEvent filter set: (name, match JSON) pairs; name "" is any event,
 * a NULL match anything. An empty set matches every event. */
typedef struct QmEventFilter QmEventFilter;
typedef struct {
        GPtrArray *items; /* QmEventFilter */
} QmEventFilters;

QmEventFilters *qm_event_filters_new(void);
void qm_event_filters_free(QmEventFilters *f);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmEventFilters, qm_event_filters_free)
/* Adds one filter; FALSE with @error (InvalidArgs) for bad match JSON. */
gboolean qm_event_filters_add(QmEventFilters *f, const char *name, const char *match_json,
                              QmError **error);
gboolean qm_event_filters_match(const QmEventFilters *f, const QmEvent *e);

/*
 * WaitEvent callers: each waits for the first event its filters match,
 * until its timeout. The owner hears how each one ended through its
 * callback; the waiters know nothing of who asked.
 */
typedef enum {
        QM_EVENT_WAIT_MATCHED, /* @e matched */
        QM_EVENT_WAIT_TIMEOUT,
        QM_EVENT_WAIT_ENDED,   /* qm_event_waiters_end(): the event source ended */
} QmEventWaitEnd;

typedef void (*QmEventWaitFunc)(QmEventWaitEnd how, const QmEvent *e, gpointer data);

typedef struct QmEventWaiters QmEventWaiters;

QmEventWaiters *qm_event_waiters_new(void);
/* Drops every waiter (no callback; their @destroy runs). */
void qm_event_waiters_free(QmEventWaiters *w);
guint qm_event_waiters_count(QmEventWaiters *w);
/* Takes @filters; @timeout in seconds, <= 0 for none. @destroy (may be
 * NULL) frees @data once the waiter is gone, after its callback. */
void qm_event_waiters_add(QmEventWaiters *w, QmEventFilters *filters, double timeout, QmEventWaitFunc func,
                          gpointer data, GDestroyNotify destroy);
/* Ends the waiters that @e matches, in the order they came. */
void qm_event_waiters_wake(QmEventWaiters *w, const QmEvent *e);
/* Ends every waiter: with QM_EVENT_WAIT_ENDED, or silently (@notify FALSE). */
void qm_event_waiters_end(QmEventWaiters *w, gboolean notify);
/* Drops, silently, the waiters whose @data @pred accepts. */
void qm_event_waiters_drop_if(QmEventWaiters *w, gboolean (*pred)(gpointer data, gpointer user), gpointer user);
