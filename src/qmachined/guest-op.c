/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "guest-op.h"

typedef struct {
        QmGuestOp *op;
        QmGuestOpReplyFunc func;
} OpCommand;

void qm_guest_op_init(QmGuestOp *op, const QmGuestOpClass *klass, QmGuestAgent *agent, QmReply *call,
                      double timeout, GQueue *ops) {
        op->klass = klass;
        op->agent = agent;
        op->call = call;
        op->timeout = timeout;
        op->ops = ops;
        g_queue_push_tail(ops, op);
}

static void on_reply(const QmpResponse *response, const QmError *failure, gpointer data) {
        g_autofree OpCommand *oc = data;
        QmGuestOp *op = oc->op;

        op->in_flight--;
        if (!op->done)
                oc->func(op, response, failure);
        else if (op->in_flight == 0)
                op->klass->destroy(op);
}

void qm_guest_op_send(QmGuestOp *op, const char *command, const char *arguments, gboolean text_only,
                      QmGuestOpReplyFunc func) {
        OpCommand *oc = g_new0(OpCommand, 1);

        oc->op = op;
        oc->func = func;
        op->in_flight++;
        qm_guest_agent_call(
                op->agent, command,
                &(QmpCallOptions){ .arguments = arguments, .timeout = op->timeout, .text_only = text_only },
                on_reply, oc);
}

void qm_guest_op_send_forget(QmGuestOp *op, const char *command, const char *arguments) {
        qm_guest_agent_call(
                op->agent, command,
                &(QmpCallOptions){ .arguments = arguments, .timeout = op->timeout, .text_only = TRUE },
                qmp_reply_ignore, NULL);
}

void qm_guest_op_done(QmGuestOp *op) {
        if (op->done)
                return;
        op->done = TRUE;
        qm_reply_drop(g_steal_pointer(&op->call)); /* if not answered (a bug) */
        if (op->klass->stop)
                op->klass->stop(op);
        g_queue_remove(op->ops, op);
        if (op->in_flight == 0)
                op->klass->destroy(op);
}

void qm_guest_op_fail(QmGuestOp *op, const QmError *e) {
        if (op->call)
                qm_reply_fail(g_steal_pointer(&op->call), e);
        qm_guest_op_done(op);
}

void qm_guest_op_failf(QmGuestOp *op, const char *name, const char *fmt, ...) {
        g_autoptr(QmError) e = NULL;
        va_list ap;

        va_start(ap, fmt);
        e = qm_error_newv(name, fmt, ap);
        va_end(ap);
        qm_guest_op_fail(op, e);
}

void qm_guest_ops_cancel(GQueue *ops, const char *machine_name) {
        while (!g_queue_is_empty(ops))
                qm_guest_op_failf(g_queue_peek_head(ops), QM_ERROR_NOT_RUNNING,
                                  "Machine '%s' stopped before the guest agent finished", machine_name);
}
