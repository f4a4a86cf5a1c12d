/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An fd watch on the default main context that does not wake the context
 * around each of its dispatches. */
#pragma once

#include <glib-unix.h>

/* Like g_unix_fd_add(), but the source may recurse: GLib then leaves its
 * fd in the poll set while it dispatches instead of removing and adding it
 * back, which costs two wakeups of the context per dispatch. Only for a
 * daemon that never iterates a nested main loop, like this one. */
guint qm_fd_watch_add(int fd, GIOCondition condition, GUnixFDSourceFunc func, gpointer data);
