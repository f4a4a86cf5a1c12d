/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>

#include "user-identity.h"

/* A user entry's strings fit in this; more is not a user we run QEMU as. */
#define PASSWD_BUFFER_MAX (1024 * 1024)

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

/* getpwnam()/getpwuid() keep their answer in static storage; the lookups
 * run in worker threads (user-lookup.c), so the reentrant ones. Returns
 * 0 with *pw NULL when there is no such user, else an errno. */
static int get_passwd(const char *user, struct passwd *pwbuf, char **buf, struct passwd **pw) {
        gsize size = 1024;
        uid_t uid;
        int r;

        for (;;) {
                *buf = g_realloc(*buf, size);
                r = parse_uid(user, &uid) ? getpwuid_r(uid, pwbuf, *buf, size, pw)
                                          : getpwnam_r(user, pwbuf, *buf, size, pw);
                if (r != ERANGE || size >= PASSWD_BUFFER_MAX)
                        return r;
                size *= 2;
        }
}

QmUserIdentity *qm_user_identity_lookup(const char *user, QmError **error) {
        g_autoptr(QmUserIdentity) u = g_new0(QmUserIdentity, 1);
        g_autofree char *buf = NULL;
        struct passwd pwbuf, *pw = NULL;
        int n = 64;
        int r;

        r = get_passwd(user, &pwbuf, &buf, &pw);
        if (!pw) {
                /* ENOENT and friends only say "not found" */
                gboolean missing = r == 0 || r == ENOENT || r == ESRCH || r == EBADF || r == EPERM;
                *error = qm_error_new(QM_ERROR_INVALID_ARGS, "user '%s' does not exist%s%s", user,
                                      missing ? "" : ": ", missing ? "" : g_strerror(r));
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

gboolean qm_user_check_needs_lookup(const char *user, uid_t caller) {
        uid_t uid;

        if (!user)
                return FALSE;
        /* a non-root caller naming their own uid needs no user entry */
        return !(caller != 0 && parse_uid(user, &uid) && uid == caller);
}

gboolean qm_user_check_result(const char *user, uid_t caller, const QmUserIdentity *u, const QmError *lookup_error,
                              QmError **error) {
        if (!qm_user_check_needs_lookup(user, caller))
                return TRUE;
        if (caller == 0 && !u) {
                *error = qm_error_new(lookup_error->name, "%s", lookup_error->message);
                return FALSE;
        }
        if (caller == 0 || (u && u->uid == caller))
                return TRUE;
        *error = qm_error_new(SD_BUS_ERROR_ACCESS_DENIED,
                              "only root may run a machine's QEMU as another user: uid %u asked for '%s'",
                              (unsigned)caller, user);
        return FALSE;
}

gboolean qm_user_check_allowed(const char *user, uid_t caller, QmError **error) {
        g_autoptr(QmUserIdentity) u = NULL;
        g_autoptr(QmError) e = NULL;

        if (qm_user_check_needs_lookup(user, caller))
                u = qm_user_identity_lookup(user, &e);
        return qm_user_check_result(user, caller, u, e, error);
}
