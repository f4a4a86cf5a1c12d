/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Scratch files for the unit tests that touch the file system. */
#pragma once

#include <glib.h>
#include <stdlib.h>

/* A new private directory under $TMPDIR; @prefix names it. */
static inline char *test_tmp_dir(const char *prefix) {
        g_autoptr(GError) err = NULL;
        g_autofree char *template = g_strconcat(prefix, "-XXXXXX", NULL);
        char *dir = g_dir_make_tmp(template, &err);

        g_assert_no_error(err);
        return dir;
}

static inline void test_write_file(const char *path, const char *text) {
        g_autoptr(GError) err = NULL;

        g_file_set_contents(path, text, -1, &err);
        g_assert_no_error(err);
}

static inline void test_remove_tree(const char *dir) {
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", dir);

        g_assert_cmpint(system(cmd), ==, 0);
}
