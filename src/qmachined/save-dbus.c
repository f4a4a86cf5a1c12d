/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Machine.Save(h fd, a{sv} options) and Machine.Restore(h fd, a{sv}
 * options): argument checks, then machine-save.c does the work. Action
 * manage; the owner needs none.
 */
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "bus-gvariant.h"
#include "dbus-common.h"
#include "machine-internal.h"
#include "save-dbus.h"

#define DEFAULT_TIMEOUT 3600.0

typedef struct {
        double timeout;
        gboolean paused;
} SaveOptions;

/* InvalidArgs unless @fd is open for @access (O_WRONLY for Save, O_RDONLY
 * for Restore; O_RDWR does for both) and not a directory. */
static int check_fd(int fd, int access, sd_bus_error *error) {
        struct stat st;
        int flags = fcntl(fd, F_GETFL);

        if (flags < 0 || fstat(fd, &st) < 0)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "fd is not an open file descriptor");
        if (S_ISDIR(st.st_mode))
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "fd is a directory");
        if ((flags & O_ACCMODE) != O_RDWR && (flags & O_ACCMODE) != access)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "fd must be open for %s",
                                         access == O_WRONLY ? "writing" : "reading");
        return 0;
}

/* The options a{sv}: timeout d, and paused b when @restore. */
static int read_options(sd_bus_message *msg, gboolean restore, SaveOptions *o, sd_bus_error *error) {
        g_autoptr(GVariant) options = NULL;
        GVariantIter it;
        const char *key;
        GVariant *value;

        *o = (SaveOptions){ .timeout = DEFAULT_TIMEOUT };
        if (bus_message_read_gvariant(msg, &options) < 0)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "cannot read options");
        g_variant_iter_init(&it, options);
        while (g_variant_iter_next(&it, "{&sv}", &key, &value)) {
                g_autoptr(GVariant) v = value;
                if (strcmp(key, "timeout") == 0 && g_variant_is_of_type(v, G_VARIANT_TYPE_DOUBLE))
                        o->timeout = g_variant_get_double(v);
                else if (restore && strcmp(key, "paused") == 0 &&
                         g_variant_is_of_type(v, G_VARIANT_TYPE_BOOLEAN))
                        o->paused = g_variant_get_boolean(v);
                else
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "unknown or ill-typed option '%s' (%s)", key,
                                                 restore ? "timeout d, paused b" : "timeout d");
        }
        if (isnan(o->timeout))
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "timeout must be a number");
        return 0;
}

static int save_or_restore(sd_bus_message *msg, Machine *m, gboolean restore, sd_bus_error *error) {
        SaveOptions o;
        int fd, r;

        AUTHORIZE(msg, m, QM_AUTH_MANAGE, NULL, error);
        r = sd_bus_message_read(msg, "h", &fd);
        if (r < 0) /* a handle without its fd */
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "no file descriptor came with fd: %s", g_strerror(-r));
        r = read_options(msg, restore, &o, error);
        if (r < 0)
                return r;
        r = check_fd(fd, restore ? O_RDONLY : O_WRONLY, error);
        if (r < 0)
                return r;
        if (restore)
                machine_restore(m, qm_reply_new(m->daemon->calls, msg), fd, o.paused, o.timeout);
        else
                machine_save(m, qm_reply_new(m->daemon->calls, msg), fd, o.timeout);
        return 1;
}

int method_save(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return save_or_restore(msg, userdata, FALSE, error);
}

int method_restore(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return save_or_restore(msg, userdata, TRUE, error);
}
