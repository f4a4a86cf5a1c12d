/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The guest agent's answers to the commands of GuestExec, CopyToGuest and
 * CopyFromGuest, parsed. They come from the guest, which is trusted no
 * more than its user: any member may be missing, of another type, out of
 * range, or hold more than was asked; what does not fit qemu-ga's schema
 * is refused, and no count from the guest sizes a buffer. Pure functions,
 * also fed by the fuzz-guest-reply target; they know nothing of the ops.
 */
#pragma once

#include <json-glib/json-glib.h>

/* The "return" member of a response object; NULL if there is none. */
JsonNode *qm_guest_reply_return(JsonNode *response);
/* The same if it is an object, else NULL. */
JsonObject *qm_guest_reply_return_object(JsonNode *response);

/* guest-exec's {"pid": N}: N > 0, or -1. */
gint64 qm_guest_reply_exec_pid(JsonObject *ret);

typedef struct {
        gboolean exited; /* FALSE: still running, the rest is unset */
        gint32 code;     /* the exit code, or -N when signal N ended it */
        GBytes *out;     /* out-data and err-data, decoded: at most */
        GBytes *err;     /* max_output bytes each, never NULL once exited */
} QmGuestExecStatus;

/*
 * guest-exec-status. Only the base64 text that decodes to @max_output
 * bytes is decoded, the rest is ignored, whatever the guest sent (as
 * g_base64_decode() does, characters outside the alphabet are skipped).
 * FALSE and *@error (static text) when the program ended with neither an
 * exit code nor a signal; clear @st in either case.
 */
gboolean qm_guest_reply_exec_status(JsonObject *ret, gsize max_output, QmGuestExecStatus *st,
                                    const char **error);
void qm_guest_exec_status_clear(QmGuestExecStatus *st);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(QmGuestExecStatus, qm_guest_exec_status_clear)

/* guest-file-open's handle: an integer >= 0, or -1. */
gint64 qm_guest_reply_file_handle(JsonNode *ret);

/* guest-file-write's {"count": N}: N, or -1 when it is not an integer. */
gint64 qm_guest_reply_file_written(JsonObject *ret);

/*
 * guest-file-read of at most @max bytes: the data (empty at the end of
 * the file) and *@eof, set also when no data came. NULL and *@error
 * (static text) when the count is missing, negative or over @max, the
 * base64 text is longer than @max bytes need, or decodes to another
 * length than the count.
 */
GBytes *qm_guest_reply_file_read(JsonObject *ret, gsize max, gboolean *eof, const char **error);
