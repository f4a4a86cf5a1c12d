/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "guest-exec.h"
#include "guest-reply.h"
#include "json-util.h"

/* guest-exec-status is asked at growing intervals: a quick program is
 * answered quickly, a long one costs few round trips. */
#define POLL_FIRST_MS 50
#define POLL_MAX_MS 500

typedef struct {
        QmGuestOp op;
        gint64 pid;
        gint64 deadline; /* monotonic µs */
        double timeout;
        guint poll_ms;
        guint timer;
} ExecOp;

static void exec_stop(QmGuestOp *op) {
        g_clear_handle_id(&((ExecOp *)op)->timer, g_source_remove);
}

static void exec_destroy(QmGuestOp *op) {
        g_free(op);
}

static const QmGuestOpClass exec_class = { .stop = exec_stop, .destroy = exec_destroy };

/* A JSON string array member. */
static void add_strings(JsonBuilder *b, const char *name, char *const *items) {
        json_builder_set_member_name(b, name);
        json_builder_begin_array(b);
        for (char *const *p = items; *p; p++)
                json_builder_add_string_value(b, *p);
        json_builder_end_array(b);
}

static char *exec_arguments(const QmGuestExecRequest *req) {
        g_autoptr(JsonBuilder) b = json_builder_new_immutable();
        g_autoptr(JsonNode) root = NULL;
        gsize len = 0;
        const guchar *input = req->input ? g_bytes_get_data(req->input, &len) : NULL;

        json_builder_begin_object(b);
        json_builder_set_member_name(b, "path");
        json_builder_add_string_value(b, req->argv[0]);
        add_strings(b, "arg", req->argv + 1);
        if (req->env && req->env[0])
                add_strings(b, "env", req->env);
        if (len > 0) {
                g_autofree char *b64 = g_base64_encode(input, len);
                json_builder_set_member_name(b, "input-data");
                json_builder_add_string_value(b, b64);
        }
        json_builder_set_member_name(b, "capture-output");
        json_builder_add_boolean_value(b, TRUE);
        json_builder_end_object(b);
        root = json_builder_get_root(b);
        return qm_json_to_string(root);
}

static void poll_status(ExecOp *e);

static gboolean on_poll_timer(gpointer data) {
        ExecOp *e = data;

        e->timer = 0;
        poll_status(e);
        return G_SOURCE_REMOVE;
}

/* The program ended: answer with its status. */
static void finish(ExecOp *e, QmGuestExecStatus *st) {
        qm_reply_int_bytes_bytes(g_steal_pointer(&e->op.call), st->code, st->out, st->err);
        qm_guest_op_done(&e->op);
}

static void on_status(QmGuestOp *op, const QmpResponse *r, const QmError *failure) {
        ExecOp *e = (ExecOp *)op;
        g_auto(QmGuestExecStatus) st = { 0 };
        const char *why = NULL;
        gint64 left;

        if (failure || r->error) {
                qm_guest_op_fail(op, failure ? failure : r->error);
                return;
        }
        if (!qm_guest_reply_exec_status(qm_guest_reply_return_object(r->node), QM_GUEST_EXEC_MAX_OUTPUT, &st,
                                        &why)) {
                qm_guest_op_failf(op, QM_ERROR_GUEST_EXEC_FAILED, "%s for pid %" G_GINT64_FORMAT, why, e->pid);
                return;
        }
        if (st.exited) {
                finish(e, &st);
                return;
        }
        left = e->deadline - g_get_monotonic_time();
        if (left <= 0) {
                qm_guest_op_failf(op, QM_ERROR_TIMEOUT,
                                  "The guest program (pid %" G_GINT64_FORMAT
                                  ") did not end within %g s; it keeps running",
                                  e->pid, e->timeout);
                return;
        }
        e->timer = g_timeout_add((guint)MIN((gint64)e->poll_ms, left / 1000 + 1), on_poll_timer, e);
        e->poll_ms = MIN(e->poll_ms * 2, POLL_MAX_MS);
}

static void poll_status(ExecOp *e) {
        g_autofree char *args = g_strdup_printf("{\"pid\": %" G_GINT64_FORMAT "}", e->pid);

        qm_guest_op_send(&e->op, "guest-exec-status", args, FALSE, on_status);
}

static void on_started(QmGuestOp *op, const QmpResponse *r, const QmError *failure) {
        ExecOp *e = (ExecOp *)op;

        if (failure) {
                qm_guest_op_fail(op, failure);
                return;
        }
        if (r->error) {
                /* "GenericError: Guest-exec: ... No such file or directory" */
                qm_guest_op_failf(op, QM_ERROR_GUEST_EXEC_FAILED,
                                  "The guest agent could not start the program: %s", r->error->message);
                return;
        }
        e->pid = qm_guest_reply_exec_pid(qm_guest_reply_return_object(r->node));
        if (e->pid <= 0) {
                qm_guest_op_failf(op, QM_ERROR_GUEST_EXEC_FAILED,
                                  "The guest agent's answer to guest-exec has no pid");
                return;
        }
        poll_status(e);
}

void qm_guest_exec(QmGuestAgent *agent, QmReply *call, double command_timeout, GQueue *ops,
                   const QmGuestExecRequest *req) {
        ExecOp *e = g_new0(ExecOp, 1);
        g_autofree char *args = exec_arguments(req);

        qm_guest_op_init(&e->op, &exec_class, agent, call, command_timeout, ops);
        e->timeout = req->timeout;
        e->deadline = g_get_monotonic_time() + (gint64)(req->timeout * G_USEC_PER_SEC);
        e->poll_ms = POLL_FIRST_MS;
        qm_guest_op_send(&e->op, "guest-exec", args, FALSE, on_started);
}
