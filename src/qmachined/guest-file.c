/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The caller's fd is read and written without blocking the main loop: it
 * is made nonblocking (a pipe or socket may be slow), and waited for with
 * a watch. One chunk is in flight at a time, so memory stays bounded by a
 * chunk and its base64 text. The guest file is always closed again, also
 * when the copy fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "fd-watch.h"
#include "guest-file.h"
#include "guest-reply.h"
#include "json-util.h"

#define CHMOD_POLL_MS 50

typedef struct {
        QmGuestOp op;
        int fd;
        char *path;
        guint32 mode;
        gint64 handle; /* the agent's, -1 until open */
        guint watch;
        GByteArray *buf; /* the chunk being gathered or written out */
        gsize written;   /* of buf, to the caller's fd */
        gboolean eof;
        gint64 chmod_pid;
        gint64 deadline; /* of the chmod */
        guint timer;
} CopyOp;

static void copy_stop(QmGuestOp *op) {
        CopyOp *c = (CopyOp *)op;

        g_clear_handle_id(&c->watch, g_source_remove);
        g_clear_handle_id(&c->timer, g_source_remove);
        /* An error on the way out: the agent's file must not stay open. */
        if (c->handle >= 0) {
                g_autofree char *args = g_strdup_printf("{\"handle\": %" G_GINT64_FORMAT "}", c->handle);
                qm_guest_op_send_forget(op, "guest-file-close", args);
                c->handle = -1;
        }
}

static void copy_destroy(QmGuestOp *op) {
        CopyOp *c = (CopyOp *)op;

        if (c->fd >= 0)
                close(c->fd);
        g_byte_array_unref(c->buf);
        g_free(c->path);
        g_free(c);
}

static const QmGuestOpClass copy_class = { .stop = copy_stop, .destroy = copy_destroy };

/* An agent failure or error response: answer with it. TRUE if it was one. */
static gboolean failed(QmGuestOp *op, const QmpResponse *r, const QmError *failure) {
        if (!failure && !r->error)
                return FALSE;
        qm_guest_op_fail(op, failure ? failure : r->error);
        return TRUE;
}

static void fail_errno(CopyOp *c, const char *what, int e) {
        qm_guest_op_failf(&c->op, qm_error_name_for_errno(e), "cannot %s the fd: %s", what, g_strerror(e));
}

static CopyOp *copy_new(QmGuestAgent *agent, QmReply *call, double timeout, GQueue *ops, int fd,
                        const char *path, guint32 mode) {
        CopyOp *c = g_new0(CopyOp, 1);
        int flags;

        qm_guest_op_init(&c->op, &copy_class, agent, call, timeout, ops);
        c->fd = fd;
        c->path = g_strdup(path);
        c->mode = mode;
        c->handle = -1;
        c->buf = g_byte_array_sized_new(QM_GUEST_FILE_CHUNK);
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
                fail_errno(c, "use", errno);
                return NULL;
        }
        return c;
}

static void send_open(CopyOp *c, const char *mode, QmGuestOpReplyFunc func) {
        g_autoptr(JsonBuilder) b = json_builder_new_immutable();
        g_autoptr(JsonNode) root = NULL;
        g_autofree char *args = NULL;

        json_builder_begin_object(b);
        json_builder_set_member_name(b, "path");
        json_builder_add_string_value(b, c->path);
        json_builder_set_member_name(b, "mode");
        json_builder_add_string_value(b, mode);
        json_builder_end_object(b);
        root = json_builder_get_root(b);
        args = qm_json_to_string(root);
        qm_guest_op_send(&c->op, "guest-file-open", args, FALSE, func);
}

/* guest-file-open's answer: the handle, or FALSE after answering. */
static gboolean take_handle(CopyOp *c, const QmpResponse *r, const QmError *failure) {
        if (failed(&c->op, r, failure))
                return FALSE;
        c->handle = qm_guest_reply_file_handle(qm_guest_reply_return(r->node));
        if (c->handle < 0) {
                qm_guest_op_failf(&c->op, QM_ERROR_QMP_ERROR,
                                  "GenericError: the guest agent's answer to "
                                  "guest-file-open is not a handle");
                return FALSE;
        }
        return TRUE;
}

static void on_closed(QmGuestOp *op, const QmpResponse *r, const QmError *failure) {
        if (failed(op, r, failure))
                return;
        qm_reply_ok(g_steal_pointer(&op->call));
        qm_guest_op_done(op);
}

/* The copy is complete: close the guest file and answer once it is. */
static void send_close(CopyOp *c) {
        g_autofree char *args = g_strdup_printf("{\"handle\": %" G_GINT64_FORMAT "}", c->handle);

        c->handle = -1; /* closed by this, whatever its answer */
        qm_guest_op_send(&c->op, "guest-file-close", args, TRUE, on_closed);
}

/* --- CopyToGuest: read a chunk from the fd, write it to the guest --- */

static void read_chunk(CopyOp *c);

static void on_written(QmGuestOp *op, const QmpResponse *r, const QmError *failure) {
        CopyOp *c = (CopyOp *)op;
        gint64 count;

        if (failed(op, r, failure))
                return;
        count = qm_guest_reply_file_written(qm_guest_reply_return_object(r->node));
        if (count != (gint64)c->buf->len) {
                qm_guest_op_failf(op, QM_ERROR_QMP_ERROR,
                                  "GenericError: the guest agent wrote %" G_GINT64_FORMAT
                                  " of %u bytes to '%s'",
                                  count, c->buf->len, c->path);
                return;
        }
        g_byte_array_set_size(c->buf, 0);
        if (c->eof)
                send_close(c);
        else
                read_chunk(c);
}

static void write_chunk(CopyOp *c) {
        g_autofree char *b64 = g_base64_encode(c->buf->data, c->buf->len);
        g_autofree char *args = g_strdup_printf("{\"handle\": %" G_GINT64_FORMAT ", \"buf-b64\": \"%s\"}",
                                                c->handle, b64);

        qm_guest_op_send(&c->op, "guest-file-write", args, FALSE, on_written);
}

static gboolean on_readable(int fd, GIOCondition cond, gpointer data) {
        CopyOp *c = data;

        c->watch = 0;
        read_chunk(c);
        return G_SOURCE_REMOVE;
}

/* Gather up to a chunk (or the rest) from the fd, waiting when it has
 * nothing yet; then send it. */
static void read_chunk(CopyOp *c) {
        while (c->buf->len < QM_GUEST_FILE_CHUNK) {
                gsize old = c->buf->len;
                ssize_t n;

                g_byte_array_set_size(c->buf, QM_GUEST_FILE_CHUNK);
                n = read(c->fd, c->buf->data + old, QM_GUEST_FILE_CHUNK - old);
                g_byte_array_set_size(c->buf, old + MAX(n, 0));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        if (c->buf->len > 0)
                                break; /* send what we have */
                        c->watch = qm_fd_watch_add(c->fd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_readable, c);
                        return;
                }
                if (n < 0) {
                        fail_errno(c, "read", errno);
                        return;
                }
                if (n == 0) {
                        c->eof = TRUE;
                        break;
                }
        }
        if (c->buf->len == 0) /* at the end */
                send_close(c);
        else
                write_chunk(c);
}

/* chmod through guest-exec, polled until it ends. */
static void on_chmod_status(QmGuestOp *op, const QmpResponse *r, const QmError *failure);

static gboolean on_chmod_timer(gpointer data) {
        CopyOp *c = data;
        g_autofree char *args = g_strdup_printf("{\"pid\": %" G_GINT64_FORMAT "}", c->chmod_pid);

        c->timer = 0;
        qm_guest_op_send(&c->op, "guest-exec-status", args, FALSE, on_chmod_status);
        return G_SOURCE_REMOVE;
}

static void on_chmod_status(QmGuestOp *op, const QmpResponse *r, const QmError *failure) {
        CopyOp *c = (CopyOp *)op;
        g_auto(QmGuestExecStatus) st = { 0 };
        const char *why = NULL;
        gint64 code;

        if (failed(op, r, failure))
                return;
        /* no output wanted; neither exit code nor signal: -1 */
        code = qm_guest_reply_exec_status(qm_guest_reply_return_object(r->node), 0, &st, &why) ? st.code : -1;
        if (!st.exited) {
                if (g_get_monotonic_time() >= c->deadline) {
                        qm_guest_op_failf(op, QM_ERROR_TIMEOUT,
                                          "chmod of '%s' in the guest did not end in time", c->path);
                        return;
                }
                c->timer = g_timeout_add(CHMOD_POLL_MS, on_chmod_timer, c);
                return;
        }
        if (code != 0) {
                qm_guest_op_failf(op, QM_ERROR_GUEST_EXEC_FAILED,
                                  "chmod %o '%s' in the guest failed (exit code %" G_GINT64_FORMAT ")",
                                  c->mode, c->path, code);
                return;
        }
        read_chunk(c);
}

static void on_chmod_started(QmGuestOp *op, const QmpResponse *r, const QmError *failure) {
        CopyOp *c = (CopyOp *)op;

        if (failure) {
                qm_guest_op_fail(op, failure);
                return;
        }
        if (r->error) {
                qm_guest_op_failf(op, QM_ERROR_GUEST_EXEC_FAILED, "cannot run chmod in the guest: %s",
                                  r->error->message);
                return;
        }
        c->chmod_pid = qm_guest_reply_exec_pid(qm_guest_reply_return_object(r->node));
        if (c->chmod_pid <= 0) {
                qm_guest_op_failf(op, QM_ERROR_GUEST_EXEC_FAILED,
                                  "The guest agent's answer to guest-exec has no pid");
                return;
        }
        c->deadline = g_get_monotonic_time() + (gint64)(op->timeout * G_USEC_PER_SEC);
        on_chmod_timer(c);
}

/* Right after the open, before any content: a private file is never
 * readable by others, not even for a moment. */
static void send_chmod(CopyOp *c) {
        g_autoptr(JsonBuilder) b = json_builder_new_immutable();
        g_autoptr(JsonNode) root = NULL;
        g_autofree char *mode = g_strdup_printf("%o", c->mode);
        g_autofree char *args = NULL;

        json_builder_begin_object(b);
        json_builder_set_member_name(b, "path");
        json_builder_add_string_value(b, "chmod");
        json_builder_set_member_name(b, "arg");
        json_builder_begin_array(b);
        json_builder_add_string_value(b, mode);
        json_builder_add_string_value(b, "--");
        json_builder_add_string_value(b, c->path);
        json_builder_end_array(b);
        json_builder_end_object(b);
        root = json_builder_get_root(b);
        args = qm_json_to_string(root);
        qm_guest_op_send(&c->op, "guest-exec", args, FALSE, on_chmod_started);
}

static void on_opened_for_write(QmGuestOp *op, const QmpResponse *r, const QmError *failure) {
        CopyOp *c = (CopyOp *)op;

        if (!take_handle(c, r, failure))
                return;
        if (c->mode)
                send_chmod(c);
        else
                read_chunk(c);
}

void qm_guest_copy_to(QmGuestAgent *agent, QmReply *call, double command_timeout, GQueue *ops, int fd,
                      const char *guest_path, guint32 mode) {
        CopyOp *c = copy_new(agent, call, command_timeout, ops, fd, guest_path, mode);

        if (c)
                send_open(c, "w", on_opened_for_write);
}

/* --- CopyFromGuest: read a chunk from the guest, write it to the fd --- */

static void read_from_guest(CopyOp *c);

static void write_out(CopyOp *c);

static gboolean on_writable(int fd, GIOCondition cond, gpointer data) {
        CopyOp *c = data;

        c->watch = 0;
        write_out(c);
        return G_SOURCE_REMOVE;
}

static void write_out(CopyOp *c) {
        while (c->written < c->buf->len) {
                ssize_t n = write(c->fd, c->buf->data + c->written, c->buf->len - c->written);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        c->watch = qm_fd_watch_add(c->fd, G_IO_OUT | G_IO_ERR, on_writable, c);
                        return;
                }
                if (n < 0) {
                        fail_errno(c, "write to", errno);
                        return;
                }
                c->written += n;
        }
        g_byte_array_set_size(c->buf, 0);
        c->written = 0;
        if (c->eof)
                send_close(c);
        else
                read_from_guest(c);
}

static void on_read(QmGuestOp *op, const QmpResponse *r, const QmError *failure) {
        CopyOp *c = (CopyOp *)op;
        g_autoptr(GBytes) data = NULL;
        const char *why = NULL;

        if (failed(op, r, failure))
                return;
        data = qm_guest_reply_file_read(qm_guest_reply_return_object(r->node), QM_GUEST_FILE_CHUNK, &c->eof,
                                        &why);
        if (!data) {
                qm_guest_op_failf(op, QM_ERROR_QMP_ERROR,
                                  "GenericError: the guest agent's answer to guest-file-read is malformed: %s",
                                  why);
                return;
        }
        g_byte_array_append(c->buf, g_bytes_get_data(data, NULL), g_bytes_get_size(data));
        write_out(c);
}

static void read_from_guest(CopyOp *c) {
        g_autofree char *args = g_strdup_printf("{\"handle\": %" G_GINT64_FORMAT ", \"count\": %u}",
                                                c->handle, QM_GUEST_FILE_CHUNK);

        qm_guest_op_send(&c->op, "guest-file-read", args, FALSE, on_read);
}

static void on_opened_for_read(QmGuestOp *op, const QmpResponse *r, const QmError *failure) {
        CopyOp *c = (CopyOp *)op;

        if (take_handle(c, r, failure))
                read_from_guest(c);
}

void qm_guest_copy_from(QmGuestAgent *agent, QmReply *call, double command_timeout, GQueue *ops,
                        const char *guest_path, int fd) {
        CopyOp *c = copy_new(agent, call, command_timeout, ops, fd, guest_path, 0);

        if (c)
                send_open(c, "r", on_opened_for_read);
}
