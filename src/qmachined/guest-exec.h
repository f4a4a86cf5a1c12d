/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* GuestExec: run a program in the guest through the agent (guest-exec,
 * then guest-exec-status until it ends). */
#pragma once

#include "guest-op.h"

#define QM_GUEST_EXEC_MAX_OUTPUT (16u * 1024 * 1024) /* stdout, stderr: each; qemu-ga's own cap */
#define QM_GUEST_EXEC_MAX_STDIN (16u * 1024 * 1024)
#define QM_GUEST_EXEC_MAX_ARGS 4096
#define QM_GUEST_EXEC_DEFAULT_TIMEOUT 60.0
#define QM_GUEST_EXEC_MAX_TIMEOUT 86400.0

typedef struct {
        char **argv; /* at least the program */
        char **env;  /* NAME=value strings, NULL or empty: the agent's default */
        GBytes *input;
        double timeout; /* seconds until Timeout, > 0 */
} QmGuestExecRequest;

/*
 * Answers @call with (i exit_code, ay stdout, ay stderr): the program's
 * exit code, or -N when signal N ended it. GuestExecFailed when the agent
 * cannot start it, Timeout when it runs longer than @req->timeout (it
 * keeps running in the guest), and what qm_guest_agent_call() fails with.
 */
void qm_guest_exec(QmGuestAgent *agent, QmReply *call, double command_timeout, GQueue *ops,
                   const QmGuestExecRequest *req);
