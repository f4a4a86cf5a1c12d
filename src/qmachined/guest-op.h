/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A method call that drives the guest agent through several commands
 * (GuestExec, CopyToGuest, CopyFromGuest): answered exactly once, and
 * freed only when no command of its is unanswered, so the end of the run
 * can answer it early (NotRunning) while the agent still owes replies.
 */
#pragma once

#include "calls.h"
#include "guest-agent.h"

typedef struct QmGuestOp QmGuestOp;

typedef struct {
        /* Remove the op's own timers and fd watches (may be NULL). */
        void (*stop)(QmGuestOp *op);
        /* Free the op: the header is its first member. */
        void (*destroy)(QmGuestOp *op);
} QmGuestOpClass;

struct QmGuestOp {
        const QmGuestOpClass *klass;
        QmGuestAgent *agent;
        QmReply *call;   /* NULL once answered */
        double timeout;  /* of each agent command */
        GQueue *ops;     /* the run's ops, which this one is in until done */
        guint in_flight; /* agent commands not answered yet */
        gboolean done;
};

/* An answer to one of the op's commands; not called once the op is done. */
typedef void (*QmGuestOpReplyFunc)(QmGuestOp *op, const QmpResponse *response, const QmError *failure);

/* Fill in the header and add @op to @ops. */
void qm_guest_op_init(QmGuestOp *op, const QmGuestOpClass *klass, QmGuestAgent *agent, QmReply *call,
                      double timeout, GQueue *ops);
/* Send @command (@arguments: a JSON object's text or NULL). */
void qm_guest_op_send(QmGuestOp *op, const char *command, const char *arguments, gboolean text_only,
                      QmGuestOpReplyFunc func);
/* Send @command without waiting for its answer (a close on the way out). */
void qm_guest_op_send_forget(QmGuestOp *op, const char *command, const char *arguments);
/* The call was answered: stop, leave the list, free once nothing is owed. */
void qm_guest_op_done(QmGuestOp *op);
/* Answer with @e, then done. */
void qm_guest_op_fail(QmGuestOp *op, const QmError *e);
void qm_guest_op_failf(QmGuestOp *op, const char *name, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

/* The run ended: every op answers with NotRunning. */
void qm_guest_ops_cancel(GQueue *ops, const char *machine_name);
