/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Method calls the daemon holds for later answers, counted per client,
 * so one client cannot pile up unbounded work. */
#pragma once

#include <glib.h>
#include <systemd/sd-bus.h>

#include "errors.h"

typedef struct QmCalls QmCalls;

QmCalls *qm_calls_new(guint max_per_client);
void qm_calls_free(QmCalls *c);

/* < 0 with LimitExceeded in @error when @call's sender already has the
 * maximum of held calls; 0 otherwise. */
int qm_calls_admit(QmCalls *c, sd_bus_message *call, sd_bus_error *error);

/* Take a reference on @call and count it; release it exactly once. */
sd_bus_message *qm_calls_hold(QmCalls *c, sd_bus_message *call);
void qm_calls_release(QmCalls *c, sd_bus_message *call);

guint qm_calls_held(QmCalls *c, const char *sender);

/*
 * Answers to method calls. None of them fails silently: an answer that
 * cannot be built or sent (a string D-Bus refuses, a message over the
 * size limit) is logged and replaced by an error answer, so a caller
 * never waits for an answer that never comes.
 */
/* Answer with the values of @types (NULL: none). */
int qm_reply_return(sd_bus_message *call, const char *types, ...);
int qm_reply_errorf(sd_bus_message *call, const char *name, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
/* Answer with the error @e. */
int qm_reply_error(sd_bus_message *call, const QmError *e);
/* For a reply the caller built itself: send it, or an error instead. */
int qm_reply_send(sd_bus_message *call, sd_bus_message *reply, int build_result);

/*
 * A held method call as the model sees it: answered exactly once, later,
 * through one of the functions below, each of which frees it. Only the
 * *-dbus.c files make one (from the call's message); the model never
 * touches a D-Bus message. Counted in the caller's budget while held.
 */
typedef struct QmReply QmReply;

QmReply *qm_reply_new(QmCalls *c, sd_bus_message *call);
/* For an operation the daemon starts itself (autostart): the answer is
 * only logged, as "@what: done" or "@what failed: why". */
QmReply *qm_reply_new_internal(const char *what);
/* Success without values. */
void qm_reply_ok(QmReply *r);
/* Success with values of D-Bus @types (sd_bus_message_append). */
void qm_reply_value(QmReply *r, const char *types, ...);
/* Success with one byte array ("ay"). */
void qm_reply_bytes(QmReply *r, const void *data, gsize len);
/* Success with (i, ay, ay): GuestExec's exit code, stdout and stderr. */
void qm_reply_int_bytes_bytes(QmReply *r, gint32 i, GBytes *a, GBytes *b);
void qm_reply_fail(QmReply *r, const QmError *e);
void qm_reply_failf(QmReply *r, const char *name, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
/* @e NULL: ok. */
void qm_reply_ok_or_fail(QmReply *r, const QmError *e);
/* No answer: its caller left the bus, or the daemon stops. */
void qm_reply_drop(QmReply *r);
/* The caller's unique bus name ("" for the daemon's own operations). */
const char *qm_reply_sender(const QmReply *r);
