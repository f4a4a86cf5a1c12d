/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The user a QEMU runs as: who it is (uid, gid, every group) and who may
 * ask for it. */
#pragma once

#include <glib.h>
#include <sys/types.h>

#include "errors.h"

/* At most this many supplementary groups are taken from the group
 * database (the kernel allows 65536). */
#define QM_USER_MAX_GROUPS 1024

typedef struct {
        char *name;
        uid_t uid;
        gid_t gid;
        gid_t *groups; /* supplementary, the primary group among them */
        int n_groups;
        char *home;
} QmUserIdentity;

/* @user is a user name or a decimal uid; either must have an entry in
 * the user database. InvalidArgs when there is none. */
QmUserIdentity *qm_user_identity_lookup(const char *user, QmError **error);
void qm_user_identity_free(QmUserIdentity *u);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmUserIdentity, qm_user_identity_free)

/* Whether @caller may have QEMU run as @user (NULL: the caller's default,
 * always allowed): root may name any user that exists; anyone else only
 * themselves (AccessDenied). Looks @user up: blocks on the user
 * database; the daemon asks in two steps, the lookup in a worker
 * (user-lookup.h). */
gboolean qm_user_check_allowed(const char *user, uid_t caller, QmError **error);
/* Whether the check needs @user's entry (not for NULL, nor a caller
 * naming their own uid). */
gboolean qm_user_check_needs_lookup(const char *user, uid_t caller);
/* The check, given the lookup's result (@u, or @lookup_error). */
gboolean qm_user_check_result(const char *user, uid_t caller, const QmUserIdentity *u, const QmError *lookup_error,
                              QmError **error);
