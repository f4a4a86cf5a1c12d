/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Opening the daemon's own files and directories without being fooled by
 * what someone left at their names: symlinks, FIFOs, devices, hard links
 * and directories of other users are refused, never followed.
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

/* Open @path (relative to @dirfd, or AT_FDCWD) for reading: no symlink
 * followed at the last component, never blocks on a FIFO, and only a
 * regular file is accepted. An fd, or -1 with @error (the message names
 * @path). */
int qm_open_regular(int dirfd, const char *path, GError **error);

/* Make @path a directory of ours with @mode: created (with missing
 * parents) when absent; refused when it is a symlink, not a directory or
 * owned by another user; its mode set to @mode otherwise. */
gboolean qm_private_dir_ensure(const char *path, mode_t mode, GError **error);

/* Open the log file @path for writing: its directory must be ours (see
 * qm_private_dir_ensure; it is not created), and what is at @path must
 * be a regular file of ours with one link, else it is removed and a new
 * file is made in its place. Appends when @append, else starts empty.
 * An fd (O_CLOEXEC), or -1 with @error. */
int qm_log_open(const char *path, gboolean append, GError **error);
