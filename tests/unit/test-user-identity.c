/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Who QEMU may run as: user lookup and the rule that only root names
 * another user. */
#include <pwd.h>

#include "config.h"
#include "user-identity.h"

static void test_lookup_root(void) {
        g_autoptr(QmError) e = NULL;
        g_autoptr(QmUserIdentity) by_name = qm_user_identity_lookup("root", &e);
        g_autoptr(QmUserIdentity) by_uid = qm_user_identity_lookup("0", &e);

        g_assert_nonnull(by_name);
        g_assert_nonnull(by_uid);
        g_assert_cmpuint(by_name->uid, ==, 0);
        g_assert_cmpuint(by_name->gid, ==, 0);
        g_assert_cmpstr(by_uid->name, ==, "root");
        g_assert_cmpint(by_name->n_groups, >=, 1);
        g_assert_cmpuint(by_name->groups[0], ==, 0);
}

static void test_lookup_unknown(void) {
        g_autoptr(QmError) e = NULL;

        g_assert_null(qm_user_identity_lookup("no-such-user-qmachined", &e));
        g_assert_cmpstr(e->name, ==, QM_ERROR_INVALID_ARGS);
        g_assert_nonnull(strstr(e->message, "no-such-user-qmachined"));
}

static void test_lookup_nobody_groups(void) {
        struct passwd *pw = getpwuid(65534);
        g_autoptr(QmError) e = NULL;
        g_autoptr(QmUserIdentity) u = NULL;
        gboolean has_primary = FALSE;

        if (!pw) {
                g_test_skip("no user 65534");
                return;
        }
        u = qm_user_identity_lookup("65534", &e);
        g_assert_nonnull(u);
        g_assert_cmpuint(u->uid, ==, 65534);
        g_assert_cmpuint(u->gid, ==, pw->pw_gid);
        for (int i = 0; i < u->n_groups; i++)
                has_primary |= u->groups[i] == pw->pw_gid;
        g_assert_true(has_primary);
}

static void test_only_root_names_others(void) {
        QmError *e = NULL;

        g_assert_true(qm_user_check_allowed(NULL, 1000, &e));
        g_assert_true(qm_user_check_allowed("root", 0, &e));
        g_assert_true(qm_user_check_allowed("65534", 0, &e));
        /* a non-root caller: itself only */
        g_assert_true(qm_user_check_allowed("1000", 1000, &e));
        g_assert_false(qm_user_check_allowed("root", 1000, &e));
        g_assert_cmpstr(e->name, ==, SD_BUS_ERROR_ACCESS_DENIED);
        g_clear_pointer(&e, qm_error_free);
        g_assert_false(qm_user_check_allowed("0", 65534, &e));
        g_assert_cmpstr(e->name, ==, SD_BUS_ERROR_ACCESS_DENIED);
        g_clear_pointer(&e, qm_error_free);
        g_assert_false(qm_user_check_allowed("no-such-user-qmachined", 65534, &e));
        g_assert_cmpstr(e->name, ==, SD_BUS_ERROR_ACCESS_DENIED);
        g_clear_pointer(&e, qm_error_free);
        /* root naming a user that does not exist: a bad argument */
        g_assert_false(qm_user_check_allowed("no-such-user-qmachined", 0, &e));
        g_assert_cmpstr(e->name, ==, QM_ERROR_INVALID_ARGS);
        g_clear_pointer(&e, qm_error_free);
}

static void test_effective_user(void) {
        g_autoptr(QmConfig) c = qm_config_new();
        g_autofree char *root_default = NULL, *user_default = NULL, *named = NULL;

        c->owner = 0;
        root_default = qm_config_effective_user(c);
        g_assert_cmpstr(root_default, ==, QM_DEFAULT_USER);
        c->owner = 1000;
        user_default = qm_config_effective_user(c);
        g_assert_cmpstr(user_default, ==, "1000");
        c->user = g_strdup("root");
        named = qm_config_effective_user(c);
        g_assert_cmpstr(named, ==, "root");
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/user/lookup-root", test_lookup_root);
        g_test_add_func("/user/lookup-unknown", test_lookup_unknown);
        g_test_add_func("/user/lookup-nobody-groups", test_lookup_nobody_groups);
        g_test_add_func("/user/only-root-names-others", test_only_root_names_others);
        g_test_add_func("/user/effective-user", test_effective_user);
        return g_test_run();
}
