#include <errno.h>
#include <glib.h>
#include <stdarg.h>

#include "bus-util.h"

#include "errors.h"

QmError *qm_error_new(const char *name, const char *fmt, ...) {
        QmError *e = g_new0(QmError, 1);
        va_list ap;

        va_start(ap, fmt);
        e->name = g_strdup(name);
        e->message = g_strdup_vprintf(fmt, ap);
        va_end(ap);
        /* D-Bus strings must be valid UTF-8; QEMU output may not be. */
        if (!g_utf8_validate(e->message, -1, NULL)) {
                char *valid = g_utf8_make_valid(e->message, -1);
                g_free(e->message);
                e->message = valid;
        }
        return e;
}

const char *qm_error_name_for_errno(int e) {
        return e == EMFILE || e == ENFILE ? QM_ERROR_LIMIT_EXCEEDED : SD_BUS_ERROR_FAILED;
}

void qm_error_free(QmError *e) {
        if (!e)
                return;
        g_free(e->name);
        g_free(e->message);
        g_free(e);
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

int qm_reply_return(sd_bus_message *call, const char *types, ...) {
        g_autoptr(sd_bus_message) reply = NULL;
        va_list ap;
        int r;

        if (!reply_wanted(call))
                return 0;
        r = sd_bus_message_new_method_return(call, &reply);
        if (r >= 0 && types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(reply, types, ap);
                va_end(ap);
        }
        return qm_reply_send(call, reply, r);
}

int qm_reply_errorf(sd_bus_message *call, const char *name, const char *fmt, ...) {
        g_autoptr(QmError) e = NULL;
        g_autofree char *text = NULL;
        va_list ap;

        va_start(ap, fmt);
        text = g_strdup_vprintf(fmt, ap);
        va_end(ap);
        e = qm_error_new(name, "%s", text);
        return qm_reply_error(call, e);
}

int qm_reply_error(sd_bus_message *call, const QmError *e) {
        int r;

        if (!reply_wanted(call))
                return 0;
        r = sd_bus_reply_method_errorf(call, e->name, "%s", e->message);
        return r >= 0 ? r : reply_failed(call, r);
}

int qm_reply_empty_or_error(sd_bus_message *call, const QmError *e) {
        if (e)
                return qm_reply_error(call, e);
        return qm_reply_return(call, NULL);
}
