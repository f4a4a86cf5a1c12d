/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The QEMU guest agent of one run of a machine: the connection to the
 * chardev socket of its virtio-serial port, synchronisation with
 * guest-sync-delimited, and commands that wait for a synchronised agent.
 * It knows nothing of machines or of the bus.
 */
#pragma once

#include "qmp.h"

/* Replies to guest-exec-status with 16 MiB of output each are ~45 MiB of
 * base64 JSON; anything longer is a broken or hostile guest. */
#define QM_GUEST_AGENT_MAX_LINE (48u * 1024 * 1024)

typedef struct QmGuestAgent QmGuestAgent;

typedef struct {
        /* qm_guest_agent_is_connected() changed. */
        void (*connected_changed)(QmGuestAgent *a, gpointer userdata);
} QmGuestAgentCallbacks;

/* @fd: a connection to @socket_path already made (taken over), or -1 to
 * connect now. @timeout: of the synchronisation's wait for a command. */
QmGuestAgent *qm_guest_agent_new(const char *socket_path, int fd, const QmGuestAgentCallbacks *cb,
                                 gpointer userdata);
/* Pending commands fail with NotRunning (the run ended); no callback. */
void qm_guest_agent_free(QmGuestAgent *a);

/* The agent answered our last guest-sync-delimited, and nothing timed out
 * or disconnected since. */
gboolean qm_guest_agent_is_connected(QmGuestAgent *a);

/* The guest opened or closed its end of the port (QEMU's VSERPORT_CHANGE):
 * a close drops the connection and its unread bytes, an open syncs. */
void qm_guest_agent_port_changed(QmGuestAgent *a, gboolean open);

/*
 * Send @command once the agent is synchronised (at once if it is). The
 * reply callback runs exactly once, never from inside this call: with the
 * agent's response, or a failure: GuestAgentUnavailable when it does not
 * synchronise within a few seconds, the connection is lost or the command
 * times out (the agent is then synchronised again), NotRunning when the
 * run ends first.
 */
void qm_guest_agent_call(QmGuestAgent *a, const char *command, const QmpCallOptions *options,
                         QmpReplyFunc func, gpointer userdata);
