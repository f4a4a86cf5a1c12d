/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "user-lookup.h"

/* Lookups at once; more wait in the pool's queue. Their number is bounded
 * by the calls each client may have held (calls.h). */
#define LOOKUP_THREADS 4

struct QmUserLookup {
        /* the worker's: set before the answer is posted to the main loop */
        char *user;
        QmUserIdentity *identity;
        QmError *error;
        /* the main loop's */
        QmUserLookupDone done;
        gpointer data;
};

static void lookup_free(QmUserLookup *l) {
        g_free(l->user);
        qm_user_identity_free(l->identity);
        qm_error_free(l->error);
        g_free(l);
}

static gboolean deliver(gpointer data) {
        QmUserLookup *l = data;

        if (l->done)
                l->done(&l->identity, &l->error, l->data);
        lookup_free(l);
        return G_SOURCE_REMOVE;
}

static void run_lookup(gpointer data, gpointer pool_data) {
        QmUserLookup *l = data;

        l->identity = qm_user_identity_lookup(l->user, &l->error);
        g_idle_add_full(G_PRIORITY_DEFAULT, deliver, l, NULL);
}

static GThreadPool *lookup_pool(void) {
        static GThreadPool *pool = NULL;

        /* never freed: a worker may be stuck in the user database when
         * the daemon exits */
        if (!pool)
                pool = g_thread_pool_new(run_lookup, NULL, LOOKUP_THREADS, FALSE, NULL);
        return pool;
}

QmUserLookup *qm_user_lookup_start(const char *user, QmUserLookupDone done, gpointer data) {
        QmUserLookup *l = g_new0(QmUserLookup, 1);

        l->user = g_strdup(user);
        l->done = done;
        l->data = data;
        /* cannot fail for a non-exclusive pool */
        g_thread_pool_push(lookup_pool(), l, NULL);
        return l;
}

void qm_user_lookup_cancel(QmUserLookup *l) {
        if (!l)
                return;
        /* deliver() runs on the main loop too: no race */
        l->done = NULL;
        l->data = NULL;
}
