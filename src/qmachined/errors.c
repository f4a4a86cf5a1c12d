#include <glib.h>
#include <stdarg.h>

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

void qm_error_free(QmError *e) {
        if (!e)
                return;
        g_free(e->name);
        g_free(e->message);
        g_free(e);
}

int qm_reply_error(sd_bus_message *call, const QmError *e) {
        return sd_bus_reply_method_errorf(call, e->name, "%s", e->message);
}

int qm_reply_empty_or_error(sd_bus_message *call, const QmError *e) {
        if (e)
                return qm_reply_error(call, e);
        return sd_bus_reply_method_return(call, NULL);
}
