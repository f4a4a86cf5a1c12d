/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * User lookups off the main loop. The user database may be a network
 * service (LDAP, sssd) that takes seconds to answer; a worker thread
 * waits for it and the answer comes back as a callback on the main
 * loop, so the daemon's other machines and callers are not held up.
 */
#pragma once

#include "user-identity.h"

typedef struct QmUserLookup QmUserLookup;

/* On the main loop: exactly one of @u and @error is set; both are the
 * callee's to keep (steal) or leave (freed after the return). */
typedef void (*QmUserLookupDone)(QmUserIdentity **u, QmError **error, gpointer data);

/* Look up @user (qm_user_identity_lookup()) in a worker thread. */
QmUserLookup *qm_user_lookup_start(const char *user, QmUserLookupDone done, gpointer data);

/* @done is not called after this; the worker's answer is thrown away
 * (a lookup cannot be interrupted). NULL is fine. */
void qm_user_lookup_cancel(QmUserLookup *l);
