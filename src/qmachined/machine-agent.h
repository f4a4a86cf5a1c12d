/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guest agent of a machine (config guest-agent): what the D-Bus
 * front end calls (guest-agent-dbus.c). */
#pragma once

#include "guest-exec.h"
#include "machine.h"

/* The agent answers (GuestAgentConnected). */
gboolean machine_guest_agent_connected(Machine *m);

/* GuestAgent: @command with @arguments (a JSON object's text or NULL),
 * answered with the agent's whole response object. */
void machine_guest_agent(Machine *m, QmReply *call, const char *command, const char *arguments);
void machine_guest_exec(Machine *m, QmReply *call, const QmGuestExecRequest *req);
/* @fd: the caller's, copied. */
void machine_copy_to_guest(Machine *m, QmReply *call, int fd, const char *guest_path, guint32 mode);
void machine_copy_from_guest(Machine *m, QmReply *call, const char *guest_path, int fd);
