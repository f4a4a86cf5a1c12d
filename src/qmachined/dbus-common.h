/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the *-dbus.c files share: authorizing a method call, property
 * getters, vtable flags. */
#pragma once

#include <systemd/sd-bus.h>

#include "auth.h"

/*
 * Authorize @msg (qm_auth_check()) and leave the method handler unless
 * it is allowed: when denied, with the error; while a check is under way,
 * with 1 and no reply: the message is queued again and the handler runs
 * again from the start, so nothing may come before this but reading the
 * arguments. @machine and @command (may be NULL) become polkit details.
 */
#define QM_AUTHORIZE(auth, msg, action, machine, command, error) \
        QM_RETURN_UNLESS_AUTHORIZED(qm_auth_check(auth, msg, action, machine, command, error))

/* The same for @r, the result of qm_auth_check() or of a helper that
 * returns it (1 allowed, 0 under way, < 0 an error). */
#define QM_RETURN_UNLESS_AUTHORIZED(r)          \
        do {                                    \
                int _r = (r);                   \
                if (_r <= 0)                    \
                        return _r < 0 ? _r : 1; \
        } while (0)

/* The same for a method of machine @m: its name is the "machine" detail,
 * and its owner needs no authorization. */
#define AUTHORIZE(msg, m, act, cmd, error)                                                              \
        QM_RETURN_UNLESS_AUTHORIZED(qm_auth_check_request(                                              \
                (m)->daemon->auth, msg,                                                                  \
                &(QmAuthRequest){ .action = (act),                                                       \
                                  .owner = (m)->config->owner,                                           \
                                  .owner_action = QM_AUTH_NONE,                                          \
                                  .machine = (m)->name,                                                  \
                                  .command = (cmd) },                                                    \
                error))

#define PROPERTY_GETTER(fn)                                                                       \
        static int fn(sd_bus *bus, const char *path, const char *interface, const char *property, \
                      sd_bus_message *reply, void *userdata, sd_bus_error *error)

/* Anyone may call; the methods that need it authorize themselves. */
#define ANYONE SD_BUS_VTABLE_UNPRIVILEGED
