/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>

#include "bus-util.h"
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

static gboolean reply_wanted(sd_bus_message *call) {
        return sd_bus_message_get_expect_reply(call) > 0;
}

/* The last resort: an error answer that names why the real one failed. */
static int reply_failed(sd_bus_message *call, int r) {
        int r2;

        g_warning("cannot answer %s.%s: %s", sd_bus_message_get_interface(call) ?: "",
                  sd_bus_message_get_member(call) ?: "", g_strerror(-r));
        r2 = sd_bus_reply_method_errorf(call, SD_BUS_ERROR_FAILED, "The answer could not be sent: %s",
                                        g_strerror(-r));
        if (r2 < 0)
                g_warning("cannot send an error answer either: %s", g_strerror(-r2));
        return r2;
}

int qm_reply_send(sd_bus_message *call, sd_bus_message *reply, int build_result) {
        int r = build_result;

        if (!reply_wanted(call))
                return 0;
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        return r >= 0 ? r : reply_failed(call, r);
}

static int reply_returnv(sd_bus_message *call, const char *types, va_list ap) {
        g_autoptr(sd_bus_message) reply = NULL;
        int r;

        if (!reply_wanted(call))
                return 0;
        r = sd_bus_message_new_method_return(call, &reply);
        if (r >= 0 && types)
                r = sd_bus_message_appendv(reply, types, ap);
        return qm_reply_send(call, reply, r);
}

int qm_reply_return(sd_bus_message *call, const char *types, ...) {
        va_list ap;
        int r;

        va_start(ap, types);
        r = reply_returnv(call, types, ap);
        va_end(ap);
        return r;
}

static int reply_errorv(sd_bus_message *call, const char *name, const char *fmt, va_list ap) {
        g_autoptr(QmError) e = qm_error_newv(name, fmt, ap);

        return qm_reply_error(call, e);
}

int qm_reply_errorf(sd_bus_message *call, const char *name, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = reply_errorv(call, name, fmt, ap);
        va_end(ap);
        return r;
}

int qm_reply_error(sd_bus_message *call, const QmError *e) {
        int r;

        if (!reply_wanted(call))
                return 0;
        r = sd_bus_reply_method_errorf(call, e->name, "%s", e->message);
        return r >= 0 ? r : reply_failed(call, r);
}

struct QmReply {
        QmCalls *calls;
        sd_bus_message *call; /* NULL: the daemon's own operation */
        char *what;           /* its name in the log */
};

QmReply *qm_reply_new(QmCalls *c, sd_bus_message *call) {
        QmReply *r = g_new0(QmReply, 1);

        r->calls = c;
        r->call = qm_calls_hold(c, call);
        return r;
}

QmReply *qm_reply_new_internal(const char *what) {
        QmReply *r = g_new0(QmReply, 1);

        r->what = g_strdup(what);
        return r;
}

static void reply_free(QmReply *r) {
        if (r->call)
                qm_calls_release(r->calls, r->call);
        g_free(r->what);
        g_free(r);
}

/* The daemon's own operation ended: its outcome goes to the log. TRUE
 * when @r was one (and is freed). */
static gboolean answered_internally(QmReply *r, const QmError *e) {
        if (r->call)
                return FALSE;
        if (e)
                g_warning("%s failed: %s", r->what, e->message);
        else
                g_message("%s: done", r->what);
        reply_free(r);
        return TRUE;
}

void qm_reply_ok(QmReply *r) {
        if (answered_internally(r, NULL))
                return;
        qm_reply_return(r->call, NULL);
        reply_free(r);
}

void qm_reply_value(QmReply *r, const char *types, ...) {
        va_list ap;

        if (answered_internally(r, NULL))
                return;
        va_start(ap, types);
        reply_returnv(r->call, types, ap);
        va_end(ap);
        reply_free(r);
}

void qm_reply_bytes(QmReply *r, const void *data, gsize len) {
        g_autoptr(sd_bus_message) m = NULL;
        int e;

        if (answered_internally(r, NULL))
                return;
        e = sd_bus_message_new_method_return(r->call, &m);
        if (e >= 0)
                e = sd_bus_message_append_array(m, 'y', data, len);
        qm_reply_send(r->call, m, e);
        reply_free(r);
}

void qm_reply_int_bytes_bytes(QmReply *r, gint32 i, GBytes *a, GBytes *b) {
        g_autoptr(sd_bus_message) m = NULL;
        gsize alen, blen;
        const void *adata = g_bytes_get_data(a, &alen), *bdata = g_bytes_get_data(b, &blen);
        int e;

        e = sd_bus_message_new_method_return(r->call, &m);
        if (e >= 0)
                e = sd_bus_message_append(m, "i", i);
        if (e >= 0)
                e = sd_bus_message_append_array(m, 'y', adata, alen);
        if (e >= 0)
                e = sd_bus_message_append_array(m, 'y', bdata, blen);
        qm_reply_send(r->call, m, e);
        reply_free(r);
}

void qm_reply_fail(QmReply *r, const QmError *e) {
        if (answered_internally(r, e))
                return;
        qm_reply_error(r->call, e);
        reply_free(r);
}

void qm_reply_failf(QmReply *r, const char *name, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        if (r->call) {
                reply_errorv(r->call, name, fmt, ap);
                reply_free(r);
        } else {
                g_autoptr(QmError) e = qm_error_newv(name, fmt, ap);
                answered_internally(r, e);
        }
        va_end(ap);
}

void qm_reply_ok_or_fail(QmReply *r, const QmError *e) {
        if (e)
                qm_reply_fail(r, e);
        else
                qm_reply_ok(r);
}

void qm_reply_drop(QmReply *r) {
        if (r)
                reply_free(r);
}

const char *qm_reply_sender(const QmReply *r) {
        if (!r->call)
                return "";
        return sender_of(r->call);
}
