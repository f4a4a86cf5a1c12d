/* SPDX-License-Identifier: LGPL-2.1-or-later */
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
        QM_AUTH_CREATE,
        QM_AUTH_GUEST,
        QM_AUTH_NONE, /* nothing to ask: allowed */
} QmAuthAction;

/* No owner: every caller but root is asked. */
#define QM_NO_OWNER ((uid_t)-1)

/* What a call needs. The owner of a machine needs @owner_action instead
 * of @action (machined's "good user": QM_AUTH_NONE for their own
 * machines). @machine and @command (may be NULL) become polkit details. */
typedef struct {
        QmAuthAction action;
        uid_t owner;
        QmAuthAction owner_action;
        const char *machine;
        const char *command;
} QmAuthRequest;

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
/* The same for a request with an owner. */
int qm_auth_check_request(QmAuth *a, sd_bus_message *call, const QmAuthRequest *req, sd_bus_error *error);

/* The uid of @call's sender, once qm_auth_check() allowed @call or
 * qm_auth_resolve_sender() returned 1 for it; FALSE if not known. */
gboolean qm_auth_sender_uid(QmAuth *a, sd_bus_message *call, uid_t *uid);

/*
 * Make sure the uid of @call's sender is known (a property getter cannot
 * wait for it). 1: known, go on; 0: it is being asked for and @call is
 * queued again when the answer is in, so the caller must stop handling
 * it; < 0: it cannot be known, @error is set.
 */
int qm_auth_resolve_sender(QmAuth *a, sd_bus_message *call, sd_bus_error *error);

/* A bus client left: forget its identity and drop its pending checks. */
void qm_auth_forget_client(QmAuth *a, const char *unique_name);
