/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unix stream sockets by path, also for paths longer than sun_path. */
#pragma once

#include <glib.h>

/* Bind (replacing a stale file) and listen. Close-on-exec. */
int qm_unix_listen(const char *path, GError **error);
/* Connect, nonblocking and close-on-exec. */
int qm_unix_connect(const char *path, GError **error);
