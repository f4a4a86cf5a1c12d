/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A spawned QEMU process and the watch on its exit. */
#pragma once

#include <glib.h>
#include <sys/types.h>

typedef struct QemuProcess QemuProcess;

/* Exit status in the Popen convention: the code, or -N for signal N. */
typedef void (*QemuExitFunc)(QemuProcess *p, int exit_code, gpointer userdata);

/* The PATH of every process the daemon starts (QEMU, qemu-img); none of
 * the daemon's own environment reaches them. */
#define QM_CHILD_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Who the process runs as, and its whole environment. */
typedef struct {
        gboolean switch_user; /* FALSE: stay who the daemon is */
        uid_t uid;
        gid_t gid;
        const gid_t *groups; /* the supplementary groups, exactly */
        int n_groups;
        char **envp;
} QemuCredentials;

/* Spawn @argv (argv[0] looked up in PATH) with stdin from /dev/null and
 * stdout+stderr to @log_fd, as @creds say, with no_new_privs and no
 * other fd: @source_fds[i] becomes fd @target_fds[i] in the child.
 * @on_exit runs from the main loop once the process has exited and been
 * reaped. A failure to drop privileges is reported on @log_fd and ends
 * the child with status 126. */
QemuProcess *qemu_process_spawn(char **argv, const QemuCredentials *creds, int log_fd, const int *source_fds,
                                const int *target_fds, guint n_fds, QemuExitFunc on_exit, gpointer userdata,
                                GError **error);

/* Watch a QEMU that is not our child (started by a previous daemon).
 * Fails unless @pid still is the process that started at @start_time.
 * Its exit status cannot be known: @on_exit gets -1000. */
QemuProcess *qemu_process_attach(pid_t pid, guint64 start_time, QemuExitFunc on_exit, gpointer userdata,
                                 GError **error);

pid_t qemu_process_pid(QemuProcess *p);
void qemu_process_kill(QemuProcess *p, int sig);

/* Stop watching (no callback after this). Does not kill the process. */
void qemu_process_free(QemuProcess *p);
