/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * For the tests only: an LD_PRELOAD shim that makes the user database
 * slow for one user, as an LDAP or sssd server that takes its time would.
 * getpwnam(_r), getpwuid(_r) and getgrouplist() sleep
 * QM_SLOW_NSS_SECONDS (default 3) when they are about user
 * QM_SLOW_NSS_USER (by name, or by the uid whose entry has that name),
 * and say so on stderr, so that a test can tell the shim was there.
 */
#include <dlfcn.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void *next(const char *symbol) {
        void *f = dlsym(RTLD_NEXT, symbol);

        if (!f) {
                fprintf(stderr, "slow-nss: no %s after this shim\n", symbol);
                abort();
        }
        return f;
}

static void maybe_sleep(const char *what, const char *user) {
        const char *slow = getenv("QM_SLOW_NSS_USER");
        const char *seconds = getenv("QM_SLOW_NSS_SECONDS");
        struct timespec ts = { .tv_sec = seconds ? atoi(seconds) : 3 };

        if (!slow || !user || strcmp(slow, user) != 0)
                return;
        fprintf(stderr, "slow-nss: %s(%s): sleeping %ld s\n", what, user, (long)ts.tv_sec);
        while (nanosleep(&ts, &ts) < 0)
                ;
}

int getpwnam_r(const char *name, struct passwd *pwd, char *buf, size_t size, struct passwd **result) {
        int (*real)(const char *, struct passwd *, char *, size_t, struct passwd **) = next("getpwnam_r");

        maybe_sleep("getpwnam_r", name);
        return real(name, pwd, buf, size, result);
}

int getpwuid_r(uid_t uid, struct passwd *pwd, char *buf, size_t size, struct passwd **result) {
        int (*real)(uid_t, struct passwd *, char *, size_t, struct passwd **) = next("getpwuid_r");
        int r = real(uid, pwd, buf, size, result);

        if (r == 0 && *result)
                maybe_sleep("getpwuid_r", (*result)->pw_name);
        return r;
}

struct passwd *getpwnam(const char *name) {
        struct passwd *(*real)(const char *) = next("getpwnam");

        maybe_sleep("getpwnam", name);
        return real(name);
}

struct passwd *getpwuid(uid_t uid) {
        struct passwd *(*real)(uid_t) = next("getpwuid");
        struct passwd *pw = real(uid);

        if (pw)
                maybe_sleep("getpwuid", pw->pw_name);
        return pw;
}

int getgrouplist(const char *user, gid_t group, gid_t *groups, int *ngroups) {
        int (*real)(const char *, gid_t, gid_t *, int *) = next("getgrouplist");

        maybe_sleep("getgrouplist", user);
        return real(user, group, groups, ngroups);
}
