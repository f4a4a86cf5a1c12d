/* Asynchronous QMP client over a connected unix stream socket. */
#pragma once

#include <json-glib/json-glib.h>

#include "errors.h"

#define QMP_MAX_LINE (16u * 1024 * 1024)

typedef struct QmpClient QmpClient;

/* @reply is the whole response object ({"return": …} or {"error": …});
 * @text is that object as JSON without our "id". Both NULL when @error is
 * set (Timeout, QmpDisconnected). */
typedef void (*QmpReplyFunc)(JsonNode *reply, const char *text, const QmError *error, gpointer userdata);

typedef struct {
        /* Greeting seen and qmp_capabilities answered: commands may flow. */
        void (*ready)(QmpClient *c, JsonNode *greeting, gpointer userdata);
        /* A QMP event object ({"event", "data"?, "timestamp"}), parsed
         * from @text (@len bytes, strict JSON, valid UTF-8, no NUL). */
        void (*event)(QmpClient *c, JsonNode *event, const char *text, gsize len, gpointer userdata);
        /* The connection is gone (EOF, error, protocol violation). Pending
         * commands have already been failed with QmpDisconnected. */
        void (*closed)(QmpClient *c, const char *reason, gpointer userdata);
        /* Optional: FALSE while the owner cannot pass more on (its output
         * is backed up); the socket is then left unread for a moment. */
        gboolean (*may_read)(QmpClient *c, gpointer userdata);
} QmpCallbacks;

/* Takes ownership of @fd (a connected, nonblocking socket). */
QmpClient *qmp_client_new(int fd, double timeout, const QmpCallbacks *cb, gpointer userdata);

/* Closes the connection without calling any callback; pending replies are
 * failed with QmpDisconnected. */
void qmp_client_free(QmpClient *c);

gboolean qmp_client_is_ready(QmpClient *c);
/* Connected, handshake done or still under way: commands can be issued. */
gboolean qmp_client_is_open(QmpClient *c);
gboolean qmp_client_greeted(QmpClient *c);
/* Bytes we sent that QEMU has not read yet (ours and the socket's), -1
 * if unknown. */
int qmp_client_unread_by_peer(QmpClient *c);
/* How far the handshake got, for error messages. */
const char *qmp_client_progress(QmpClient *c);

/* Send @command with @arguments (a JSON object or NULL). The reply callback
 * runs exactly once, never from inside this call. @timeout <= 0: none.
 * Before the handshake has completed the command waits for it (its
 * timeout running). */
void qmp_client_execute(QmpClient *c, const char *command, JsonNode *arguments,
                        double timeout, QmpReplyFunc func, gpointer userdata);
/* The same with the arguments as JSON text, a valid JSON object or NULL
 * (the passthrough path: no tree is built). */
void qmp_client_execute_text(QmpClient *c, const char *command, const char *arguments,
                             double timeout, QmpReplyFunc func, gpointer userdata);

/* Handle everything already in the socket now (its peer has exited and
 * its last words, e.g. a SHUTDOWN event, must not be lost). */
void qmp_client_drain(QmpClient *c);

/* The same, for a caller that reads only @text: a plain
 * '{"return": ..., "id": N}' answer is then passed on without building a
 * tree (@reply NULL). */
void qmp_client_execute_text_only(QmpClient *c, const char *command, const char *arguments,
                                  double timeout, QmpReplyFunc func, gpointer userdata);

/* The same, with @fd (taken over, closed after sending) passed along by
 * SCM_RIGHTS with the command's bytes, as getfd and add-fd expect. */
void qmp_client_execute_with_fd(QmpClient *c, const char *command, JsonNode *arguments, int fd,
                                double timeout, QmpReplyFunc func, gpointer userdata);

