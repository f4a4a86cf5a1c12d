#include "calls.h"
#include "errors.h"

struct QmCalls {
        guint max;
        GHashTable *count; /* sender -> held calls */
};

QmCalls *qm_calls_new(guint max_per_client) {
        QmCalls *c = g_new0(QmCalls, 1);
        c->max = max_per_client;
        c->count = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        return c;
}

void qm_calls_free(QmCalls *c) {
        if (!c)
                return;
        g_hash_table_unref(c->count);
        g_free(c);
}

static const char *sender_of(sd_bus_message *call) {
        const char *s = sd_bus_message_get_sender(call);
        return s ? s : "";
}

guint qm_calls_held(QmCalls *c, const char *sender) {
        return GPOINTER_TO_UINT(g_hash_table_lookup(c->count, sender));
}

int qm_calls_admit(QmCalls *c, sd_bus_message *call, sd_bus_error *error) {
        if (qm_calls_held(c, sender_of(call)) >= c->max)
                return sd_bus_error_setf(error, QM_ERROR_LIMIT_EXCEEDED,
                                         "You already have %u calls pending; wait for some to finish", c->max);
        return 0;
}

sd_bus_message *qm_calls_hold(QmCalls *c, sd_bus_message *call) {
        const char *s = sender_of(call);

        g_hash_table_insert(c->count, g_strdup(s), GUINT_TO_POINTER(qm_calls_held(c, s) + 1));
        return sd_bus_message_ref(call);
}

void qm_calls_release(QmCalls *c, sd_bus_message *call) {
        const char *s;
        guint n;

        if (!call)
                return;
        s = sender_of(call);
        n = qm_calls_held(c, s);
        if (n <= 1)
                g_hash_table_remove(c->count, s);
        else
                g_hash_table_insert(c->count, g_strdup(s), GUINT_TO_POINTER(n - 1));
        sd_bus_message_unref(call);
}
