/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Forwarded ports (config forward-ports): choosing free host ports for the
 * guest ports of NIC 0, QEMU's hostfwd= rules, and the lookups of GetPort. */
#pragma once

#include <glib.h>

/* One forwarded port of a run: host 127.0.0.1:@host reaches guest @guest. */
typedef struct {
        guint16 guest;
        guint16 host;
} QmPortPair;

/* Tries to take TCP port @port on 127.0.0.1 (0: any free one) and lets it
 * go again; returns the port it got, 0 when it is not free. */
typedef guint16 (*QmPortProbe)(guint16 port, gpointer data);

/* Bind TCP @address:@port (a numeric IPv4 or IPv6 address; port 0: any
 * free one), read the port back and close: the port that was free, or 0
 * with errno set (EINVAL: @address is not a numeric address). */
guint16 qm_tcp_port_probe(const char *address, guint16 port);

/* The real probe: qm_tcp_port_probe() on 127.0.0.1. */
guint16 qm_port_probe_loopback(guint16 port, gpointer unused);

/* How many times a launch picks host ports and starts QEMU when another
 * process took one of them before QEMU could bind it. */
#define QM_FORWARD_PORT_TRIES 3

/*
 * Choose a distinct free host port for each of the @n_guest guest ports,
 * in order; appends QmPortPair to @out. @fixed_first (0: none) is a test
 * hook: use @fixed_first, @fixed_first + 1, ... without asking @probe, to
 * make QEMU meet a port that is taken. FALSE with @error when @probe finds
 * no free port.
 */
gboolean qm_forward_ports_pick(const guint16 *guest, guint n_guest, guint16 fixed_first, QmPortProbe probe,
                               gpointer data, GArray *out, GError **error);

/* ",hostfwd=tcp:127.0.0.1:HOST-:GUEST" for each pair ("" for none). */
char *qm_forward_ports_hostfwd(const QmPortPair *pairs, guint n);

/* The host port of @guest, 0 when it is not forwarded. */
guint16 qm_forward_ports_lookup(const QmPortPair *pairs, guint n, guint16 guest);

/* "22, 8080" for messages ("none" when empty). */
char *qm_forward_ports_list_guest(const QmPortPair *pairs, guint n);

/* QEMU's output says that a host forwarding rule could not be set up (a
 * host port was taken when QEMU tried to bind it). */
gboolean qm_forward_ports_log_says_taken(const char *log);
