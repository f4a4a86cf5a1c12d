/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A machine's guest agent: its socket is made at launch like the
 * monitor's (QEMU gets the listening end as an fd, so it survives a
 * daemon restart), the connection lives for the run, and the methods
 * that use it are refused early when there is none.
 */
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "guest-file.h"
#include "json-util.h"
#include "machine-agent.h"
#include "machine-internal.h"

/* The virtserialport's id in QEMU: VSERPORT_CHANGE names it. */
#define AGENT_PORT_ID "qm-guest-agent"

static void notify_connected(Machine *m) {
        char *props[] = { "GuestAgentConnected", NULL };

        machine_notify_changed(m, props);
}

static void on_connected_changed(QmGuestAgent *a, gpointer data) {
        Machine *m = data;

        g_message("machine %s: guest agent %s", m->name,
                  qm_guest_agent_is_connected(a) ? "answers" : "does not answer any more");
        notify_connected(m);
}

char *machine_agent_socket_path(Machine *m) {
        return g_build_filename(m->runtime_dir, "agent.sock", NULL);
}

void machine_agent_start(Machine *m, int fd) {
        static const QmGuestAgentCallbacks callbacks = { .connected_changed = on_connected_changed };
        g_autofree char *path = machine_agent_socket_path(m);

        machine_agent_stop(m);
        m->agent = qm_guest_agent_new(path, fd, &callbacks, m);
}

void machine_agent_stop(Machine *m) {
        gboolean was_connected = qm_guest_agent_is_connected(m->agent);

        qm_guest_ops_cancel(&m->guest_ops, m->name);
        g_clear_pointer(&m->agent, qm_guest_agent_free);
        if (was_connected)
                notify_connected(m);
}

void machine_agent_on_event(Machine *m, const QmEvent *e) {
        JsonObject *data;
        JsonNode *open;

        if (!m->agent || strcmp(e->name, "VSERPORT_CHANGE") != 0)
                return;
        data = qm_json_get_object(json_node_get_object(e->node), "data");
        open = data ? json_object_get_member(data, "open") : NULL;
        if (g_strcmp0(qm_json_get_string(data, "id", NULL), AGENT_PORT_ID) != 0 || !open ||
            json_node_get_value_type(open) != G_TYPE_BOOLEAN)
                return;
        qm_guest_agent_port_changed(m->agent, json_node_get_boolean(open));
}

gboolean machine_guest_agent_connected(Machine *m) {
        return qm_guest_agent_is_connected(m->agent);
}

/* NULL when the agent can be asked, else why not. */
static QmError *agent_unavailable(Machine *m) {
        if (!m->config->guest_agent)
                return qm_error_new(QM_ERROR_NO_GUEST_AGENT,
                                    "Machine '%s' was created without a guest agent port (config guest-agent)",
                                    m->name);
        if ((m->state != QM_STATE_RUNNING && m->state != QM_STATE_STOPPING) || !m->agent)
                return qm_error_new(QM_ERROR_NOT_RUNNING, "Machine '%s' is not running (state %s)", m->name,
                                    qm_state_to_string(m->state));
        return NULL;
}

static gboolean check_available(Machine *m, QmReply *call) {
        g_autoptr(QmError) e = agent_unavailable(m);

        if (e)
                qm_reply_fail(call, e);
        return e == NULL;
}

static void on_raw_reply(const QmpResponse *r, const QmError *failure, gpointer data) {
        QmReply *call = data;

        if (failure)
                qm_reply_fail(call, failure);
        else
                qm_reply_value(call, "s", r->text);
}

void machine_guest_agent(Machine *m, QmReply *call, const char *command, const char *arguments) {
        if (!check_available(m, call))
                return;
        qm_guest_agent_call(m->agent, command,
                            &(QmpCallOptions){ .arguments = arguments,
                                               .timeout = m->config->qmp_timeout,
                                               .text_only = TRUE },
                            on_raw_reply, call);
}

void machine_guest_exec(Machine *m, QmReply *call, const QmGuestExecRequest *req) {
        if (check_available(m, call))
                qm_guest_exec(m->agent, call, m->config->qmp_timeout, &m->guest_ops, req);
}

/* A copy of the message's fd, which the op owns; -1 after answering. */
static int copy_fd(QmReply *call, int fd) {
        int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);

        if (copy < 0)
                qm_reply_failf(call, qm_error_name_for_errno(errno), "cannot take the fd: %s",
                               g_strerror(errno));
        return copy;
}

void machine_copy_to_guest(Machine *m, QmReply *call, int fd, const char *guest_path, guint32 mode) {
        int copy;

        if (!check_available(m, call) || (copy = copy_fd(call, fd)) < 0)
                return;
        qm_guest_copy_to(m->agent, call, m->config->qmp_timeout, &m->guest_ops, copy, guest_path, mode);
}

void machine_copy_from_guest(Machine *m, QmReply *call, const char *guest_path, int fd) {
        int copy;

        if (!check_available(m, call) || (copy = copy_fd(call, fd)) < 0)
                return;
        qm_guest_copy_from(m->agent, call, m->config->qmp_timeout, &m->guest_ops, guest_path, copy);
}
