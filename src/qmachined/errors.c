/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <glib.h>
#include <stdarg.h>


#include "errors.h"

QmError *qm_error_new(const char *name, const char *fmt, ...) {
        QmError *e;
        va_list ap;

        va_start(ap, fmt);
        e = qm_error_newv(name, fmt, ap);
        va_end(ap);
        return e;
}

QmError *qm_error_newv(const char *name, const char *fmt, va_list ap) {
        QmError *e = g_new0(QmError, 1);

        e->name = g_strdup(name);
        e->message = g_strdup_vprintf(fmt, ap);
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
