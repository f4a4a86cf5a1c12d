/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "event-match.h"
#include "events.h"
#include "json-util.h"

QmEvent *qm_event_new(JsonNode *node, const char *text, gsize len, guint64 seq) {
        QmEvent *e = g_new0(QmEvent, 1);
        JsonObject *obj = json_node_get_object(node);
        JsonObject *ts = qm_json_get_object(obj, "timestamp");
        gsize start, data_len;

        e->seq = seq;
        e->node = json_node_ref(node);
        e->name = g_strdup(qm_json_get_string(obj, "event", ""));
        /* QEMU's own tokens, compacted: numbers are never re-printed. */
        e->json = qm_json_compact(text, len);
        if (qm_json_member_text(e->json, strlen(e->json), "data", &start, &data_len))
                e->data_json = g_strndup(e->json + start, data_len);
        else
                e->data_json = g_strdup("{}");
        if (ts) {
                gint64 s = qm_json_get_int(ts, "seconds", 0);
                gint64 us = qm_json_get_int(ts, "microseconds", 0);
                if (s > 0 && us >= 0 && s < G_MAXINT64 / G_USEC_PER_SEC - 1 && us < G_USEC_PER_SEC)
                        e->timestamp_us = (guint64)s * G_USEC_PER_SEC + (guint64)us;
        }
        e->size = sizeof(*e) + 2 * len + strlen(e->name);
        return e;
}

void qm_event_free(QmEvent *e) {
        if (!e)
                return;
        g_free(e->name);
        g_free(e->json);
        g_free(e->data_json);
        json_node_unref(e->node);
        g_free(e);
}

struct QmEventRing {
        QmEvent **slots;
        guint capacity;
        guint head; /* index of the oldest */
        guint count;
        gsize bytes;     /* the retained events' size */
        gsize max_bytes; /* bound of @bytes: QEMU sets the event sizes */
};

QmEventRing *qm_event_ring_new(guint capacity, gsize max_bytes) {
        QmEventRing *r = g_new0(QmEventRing, 1);
        r->capacity = capacity;
        r->max_bytes = max_bytes;
        r->slots = g_new0(QmEvent *, capacity);
        return r;
}

void qm_event_ring_free(QmEventRing *r) {
        if (!r)
                return;
        for (guint i = 0; i < r->count; i++)
                qm_event_free(r->slots[(r->head + i) % r->capacity]);
        g_free(r->slots);
        g_free(r);
}

static void drop_oldest(QmEventRing *r) {
        QmEvent *e = r->slots[r->head];

        r->bytes -= e->size;
        qm_event_free(e);
        r->slots[r->head] = NULL;
        r->head = (r->head + 1) % r->capacity;
        r->count--;
}

void qm_event_ring_push(QmEventRing *r, QmEvent *e) {
        /* The newest event is always kept, even alone over the budget. */
        while (r->count > 0 && (r->count == r->capacity || r->bytes + e->size > r->max_bytes))
                drop_oldest(r);
        r->slots[(r->head + r->count) % r->capacity] = e;
        r->count++;
        r->bytes += e->size;
}

guint qm_event_ring_count(QmEventRing *r) {
        return r->count;
}

const QmEvent *qm_event_ring_nth_after(QmEventRing *r, guint64 after, guint i) {
        guint64 oldest;
        guint64 skip;

        if (r->count == 0)
                return NULL;
        oldest = r->slots[r->head]->seq;
        skip = after >= oldest ? after - oldest + 1 : 0;
        if (skip + i >= r->count)
                return NULL;
        return r->slots[(r->head + skip + i) % r->capacity];
}

struct QmEventFilter {
        char *name;
        JsonNode *match;
};

static void filter_free(gpointer p) {
        QmEventFilter *f = p;
        g_free(f->name);
        if (f->match)
                json_node_unref(f->match);
        g_free(f);
}

QmEventFilters *qm_event_filters_new(void) {
        QmEventFilters *f = g_new0(QmEventFilters, 1);
        f->items = g_ptr_array_new_with_free_func(filter_free);
        return f;
}

void qm_event_filters_free(QmEventFilters *f) {
        if (!f)
                return;
        g_ptr_array_unref(f->items);
        g_free(f);
}

gboolean qm_event_filters_add(QmEventFilters *f, const char *name, const char *match_json,
                              QmError **error) {
        QmEventFilter *item;
        JsonNode *match = NULL;

        if (match_json && *match_json) {
                g_autoptr(GError) err = NULL;
                match = qm_json_parse(match_json, -1, &err);
                if (!match) {
                        *error = qm_error_new(QM_ERROR_INVALID_ARGS,
                                              "match for event '%s' is not valid JSON: %s",
                                              name, err->message);
                        return FALSE;
                }
        }
        item = g_new0(QmEventFilter, 1);
        item->name = g_strdup(name);
        item->match = match;
        g_ptr_array_add(f->items, item);
        return TRUE;
}

gboolean qm_event_filters_match(const QmEventFilters *f, const QmEvent *e) {
        if (f->items->len == 0)
                return TRUE;
        for (guint i = 0; i < f->items->len; i++) {
                QmEventFilter *item = g_ptr_array_index(f->items, i);
                if (item->name[0] && g_strcmp0(item->name, e->name) != 0)
                        continue;
                if (qm_event_match(e->node, item->match))
                        return TRUE;
        }
        return FALSE;
}

typedef struct {
        QmEventWaiters *owner;
        QmEventFilters *filters;
        guint timer;
        QmEventWaitFunc func;
        gpointer data;
        GDestroyNotify destroy;
} Waiter;

struct QmEventWaiters {
        GQueue queue; /* Waiter, oldest first */
};

QmEventWaiters *qm_event_waiters_new(void) {
        return g_new0(QmEventWaiters, 1);
}

static void waiter_free(Waiter *x) {
        if (x->timer)
                g_source_remove(x->timer);
        qm_event_filters_free(x->filters);
        if (x->destroy)
                x->destroy(x->data);
        g_free(x);
}

static gboolean on_waiter_timeout(gpointer p) {
        Waiter *x = p;

        x->timer = 0;
        g_queue_remove(&x->owner->queue, x);
        x->func(QM_EVENT_WAIT_TIMEOUT, NULL, x->data);
        waiter_free(x);
        return G_SOURCE_REMOVE;
}

void qm_event_waiters_free(QmEventWaiters *w) {
        if (!w)
                return;
        qm_event_waiters_end(w, FALSE);
        g_free(w);
}

guint qm_event_waiters_count(QmEventWaiters *w) {
        return g_queue_get_length(&w->queue);
}

void qm_event_waiters_add(QmEventWaiters *w, QmEventFilters *filters, double timeout, QmEventWaitFunc func,
                          gpointer data, GDestroyNotify destroy) {
        Waiter *x = g_new0(Waiter, 1);

        x->owner = w;
        x->filters = filters;
        x->func = func;
        x->data = data;
        x->destroy = destroy;
        if (timeout > 0)
                x->timer = g_timeout_add((guint)MIN(timeout * 1000.0, (double)G_MAXUINT), on_waiter_timeout, x);
        g_queue_push_tail(&w->queue, x);
}

void qm_event_waiters_wake(QmEventWaiters *w, const QmEvent *e) {
        GQueue matched = G_QUEUE_INIT;
        GList *l = w->queue.head;
        Waiter *x;

        /* Take them all out first: callbacks then cannot touch them. */
        while (l) {
                GList *next = l->next;
                if (qm_event_filters_match(((Waiter *)l->data)->filters, e)) {
                        g_queue_unlink(&w->queue, l);
                        g_queue_push_tail_link(&matched, l);
                }
                l = next;
        }
        while ((x = g_queue_pop_head(&matched))) {
                x->func(QM_EVENT_WAIT_MATCHED, e, x->data);
                waiter_free(x);
        }
}

void qm_event_waiters_end(QmEventWaiters *w, gboolean notify) {
        Waiter *x;

        while ((x = g_queue_pop_head(&w->queue))) {
                if (notify)
                        x->func(QM_EVENT_WAIT_ENDED, NULL, x->data);
                waiter_free(x);
        }
}

void qm_event_waiters_drop_if(QmEventWaiters *w, gboolean (*pred)(gpointer data, gpointer user), gpointer user) {
        GList *l = w->queue.head;

        while (l) {
                GList *next = l->next;
                Waiter *x = l->data;
                if (pred(x->data, user)) {
                        g_queue_delete_link(&w->queue, l);
                        waiter_free(x);
                }
                l = next;
        }
}
