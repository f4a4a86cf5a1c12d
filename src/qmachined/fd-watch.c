/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fd-watch.h"

guint qm_fd_watch_add(int fd, GIOCondition condition, GUnixFDSourceFunc func, gpointer data) {
        GSource *source = g_unix_fd_source_new(fd, condition);
        guint id;

        g_source_set_callback(source, (GSourceFunc)(void (*)(void))func, data, NULL);
        g_source_set_can_recurse(source, TRUE);
        id = g_source_attach(source, NULL);
        g_source_unref(source);
        return id;
}
