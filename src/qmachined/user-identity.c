/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>

#include "user-identity.h"

void qm_user_identity_free(QmUserIdentity *u) {
        if (!u)
                return;
        g_free(u->name);
        g_free(u->groups);
        g_free(u->home);
        g_free(u);
}

static gboolean parse_uid(const char *s, uid_t *uid) {
        guint64 v;

        if (!g_ascii_isdigit(s[0]) || !g_ascii_string_to_unsigned(s, 10, 0, G_MAXUINT32 - 1, &v, NULL))
                return FALSE;
        *uid = (uid_t)v;
        return TRUE;
}

QmUserIdentity *qm_user_identity_lookup(const char *user, QmError **error) {
        g_autoptr(QmUserIdentity) u = g_new0(QmUserIdentity, 1);
        struct passwd *pw;
        uid_t uid;
        int n = 64;

        errno = 0;
        pw = parse_uid(user, &uid) ? getpwuid(uid) : getpwnam(user);
        if (!pw) {
                *error = qm_error_new(QM_ERROR_INVALID_ARGS, "user '%s' does not exist%s%s", user,
                                      errno ? ": " : "", errno ? g_strerror(errno) : "");
                return NULL;
        }
        u->name = g_strdup(pw->pw_name);
        u->uid = pw->pw_uid;
        u->gid = pw->pw_gid;
        u->home = g_strdup(pw->pw_dir && *pw->pw_dir ? pw->pw_dir : "/");
        /* getgrouplist() says how many there are when @n is too small */
        for (int tries = 0; tries < 2; tries++) {
                u->groups = g_renew(gid_t, u->groups, n);
                if (getgrouplist(u->name, u->gid, u->groups, &n) >= 0)
                        break;
                if (n > QM_USER_MAX_GROUPS) {
                        *error = qm_error_new(QM_ERROR_INVALID_ARGS, "user '%s' is in more than %d groups",
                                              user, QM_USER_MAX_GROUPS);
                        return NULL;
                }
        }
        if (n <= 0 || n > QM_USER_MAX_GROUPS) {
                *error = qm_error_new(QM_ERROR_INVALID_ARGS, "cannot list the groups of user '%s'", user);
                return NULL;
        }
        u->n_groups = n;
        return g_steal_pointer(&u);
}

gboolean qm_user_check_allowed(const char *user, uid_t caller, QmError **error) {
        g_autoptr(QmUserIdentity) u = NULL;
        uid_t uid;

        if (!user)
                return TRUE;
        /* a non-root caller naming their own uid needs no user entry */
        if (caller != 0 && parse_uid(user, &uid) && uid == caller)
                return TRUE;
        u = qm_user_identity_lookup(user, error);
        if (!u) {
                if (caller == 0)
                        return FALSE;
                qm_error_free(*error);
                *error = NULL;
        }
        if (caller == 0 || (u && u->uid == caller))
                return TRUE;
        *error = qm_error_new(SD_BUS_ERROR_ACCESS_DENIED,
                              "only root may run a machine's QEMU as another user: uid %u asked for '%s'",
                              (unsigned)caller, user);
        return FALSE;
}
