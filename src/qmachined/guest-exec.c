/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "guest-exec.h"
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

static JsonObject *return_object(const QmpResponse *r) {
        return r->node ? qm_json_get_object(json_node_get_object(r->node), "return") : NULL;
}

static gboolean get_bool(JsonObject *obj, const char *key) {
        JsonNode *n = obj ? json_object_get_member(obj, key) : NULL;
        return n && json_node_get_value_type(n) == G_TYPE_BOOLEAN && json_node_get_boolean(n);
}

static gboolean has_int(JsonObject *obj, const char *key) {
        JsonNode *n = obj ? json_object_get_member(obj, key) : NULL;
        return n && json_node_get_value_type(n) == G_TYPE_INT64;
}

/* A base64 member, decoded, at most QM_GUEST_EXEC_MAX_OUTPUT bytes (the
 * agent caps what it captures there too; more is a broken agent). */
/* The base64 output, at most QM_GUEST_EXEC_MAX_OUTPUT bytes: only the
 * text that decodes to those is decoded, whatever the guest sent. */
static GBytes *get_output(JsonObject *obj, const char *key) {
        const char *b64 = qm_json_get_string(obj, key, "");
        gsize enc = MIN(strlen(b64), (gsize)(QM_GUEST_EXEC_MAX_OUTPUT + 2) / 3 * 4);
        guchar *data = g_malloc(enc / 4 * 3 + 3);
        gint state = 0;
        guint save = 0;
        gsize len = g_base64_decode_step(b64, enc, data, &state, &save);

        return g_bytes_new_take(data, MIN(len, QM_GUEST_EXEC_MAX_OUTPUT));
}

static void poll_status(ExecOp *e);

static gboolean on_poll_timer(gpointer data) {
        ExecOp *e = data;

        e->timer = 0;
        poll_status(e);
        return G_SOURCE_REMOVE;
}

static void finish(ExecOp *e, JsonObject *status) {
        g_autoptr(GBytes) out = get_output(status, "out-data");
        g_autoptr(GBytes) err = get_output(status, "err-data");
        gint64 code;

        if (has_int(status, "exitcode"))
                code = qm_json_get_int(status, "exitcode", 0);
        else if (has_int(status, "signal"))
                code = -qm_json_get_int(status, "signal", 0);
        else {
                qm_guest_op_failf(
                        &e->op, QM_ERROR_GUEST_EXEC_FAILED,
                        "The guest agent reported neither an exit code nor a signal for pid %" G_GINT64_FORMAT,
                        e->pid);
                return;
        }
        qm_reply_int_bytes_bytes(g_steal_pointer(&e->op.call), (gint32)CLAMP(code, G_MININT32, G_MAXINT32),
                                 out, err);
        qm_guest_op_done(&e->op);
}

static void on_status(QmGuestOp *op, const QmpResponse *r, const QmError *failure) {
        ExecOp *e = (ExecOp *)op;
        JsonObject *status;
        gint64 left;

        if (failure || r->error) {
                qm_guest_op_fail(op, failure ? failure : r->error);
                return;
        }
        status = return_object(r);
        if (get_bool(status, "exited")) {
                finish(e, status);
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
        JsonObject *ret;

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
        ret = return_object(r);
        e->pid = qm_json_get_int(ret, "pid", -1);
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
