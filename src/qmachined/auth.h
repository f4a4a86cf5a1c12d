/* Who may call what: uid 0, the session owner, or polkit's verdict. */
#pragma once

#include <glib.h>
#include <systemd/sd-bus.h>

#include "calls.h"

typedef enum {
        QM_AUTH_ADMIN,
        QM_AUTH_MANAGE,
        QM_AUTH_CONSOLE,
        QM_AUTH_MONITOR,
        QM_AUTH_IMAGES,
} QmAuthAction;

typedef enum {
        QM_AUTH_POLKIT,  /* system bus: uid 0 allowed, others ask polkit */
        QM_AUTH_SESSION, /* session bus: only our own uid */
} QmAuthMode;

typedef struct QmAuth QmAuth;

QmAuth *qm_auth_new(sd_bus *bus, QmAuthMode mode, QmCalls *calls);
void qm_auth_free(QmAuth *a);

/*
 * Authorize @call, a method call being handled. Also refuses, with
 * LimitExceeded, a caller that has too many calls held already. Returns 1: allowed, go on;
 * 0: a check is under way, return 1 from the handler without replying: the
 * message is queued again when the verdict is in, and the handler runs
 * again from the start, so it must do nothing before this call but read
 * its arguments; < 0: denied, @error is set, return it.
 * @machine and @command (may be NULL) become polkit details.
 */
int qm_auth_check(QmAuth *a, sd_bus_message *call, QmAuthAction action, const char *machine,
                  const char *command, sd_bus_error *error);

/* A bus client left: forget its identity and drop its pending checks. */
void qm_auth_forget_client(QmAuth *a, const char *unique_name);
