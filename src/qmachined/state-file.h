/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Files the daemon keeps, written so that a crash never leaves half a file. */
#pragma once

#include <json-glib/json-glib.h>

/* Temp file in the same directory, write, fsync (when @durable), rename,
 * fsync of the directory (when @durable). */
gboolean qm_file_write_atomic(const char *path, const char *data, gsize len, gboolean durable, GError **error);

gboolean qm_json_file_write(const char *path, JsonNode *node, gboolean durable, GError **error);
/* NULL with @error if unreadable, not JSON or not an object. */
JsonNode *qm_json_file_read(const char *path, GError **error);
