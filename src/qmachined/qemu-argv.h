/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The QEMU command line of a machine (QEMUMachine._base_args + args). */
#pragma once

#include "config.h"
#include "port-forward.h"

/* An fd handed to QEMU with -add-fd (QEMUMachine.add_fd()). */
typedef struct {
        int fd; /* its number in QEMU */
        guint32 fdset;
        const char *opaque;
        const char *opts; /* appended as is, may be "" */
} QmAddFdArg;

/* @qmp_fd / @console_fd: the fd numbers that the listening QMP and console
 * sockets will have in QEMU, or -1 when there is none. @forwards: the
 * host ports of this launch for config forward-ports (NIC 0's hostfwd=). */
char **qm_build_argv(const QmConfig *c, const char *default_binary, int qmp_fd, int console_fd,
                     const QmAddFdArg *add_fds, guint n_add_fds, const QmPortPair *forwards,
                     guint n_forwards);

/* Append the guest agent's port to @argv (g_strfreev'able): a
 * virtio-serial port org.qemu.guest_agent.0 on the listening socket that
 * QEMU gets as @fd; its VSERPORT_CHANGE events name it qm-guest-agent. */
void qm_argv_append_guest_agent(char ***argv, int fd);

/* The argv as one line, each word shell-quoted where needed. */
char *qm_argv_to_string(char **argv);
