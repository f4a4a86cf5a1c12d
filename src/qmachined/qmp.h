/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Asynchronous QMP client over a connected unix stream socket. */
#pragma once

#include <json-glib/json-glib.h>

#include "errors.h"

#define QMP_MAX_LINE (16u * 1024 * 1024)

typedef struct QmpClient QmpClient;

/* A response, as QEMU wrote it: numbers and strings are never re-printed. */
typedef struct {
        /* The whole object, {"return": …} or {"error": …}; NULL for a
         * text_only command whose answer was a plain return. */
        JsonNode *node;
        /* The whole object without our "id". */
        const char *text;
        /* The "return" member's text; NULL for an error response. */
        const char *value;
        /* An error response as QmpError "CLASS: desc"; NULL otherwise. */
        const QmError *error;
} QmpResponse;

/* @response, or @failure (Timeout, QmpDisconnected) and NULL. */
typedef void (*QmpReplyFunc)(const QmpResponse *response, const QmError *failure, gpointer userdata);

/* For a command whose outcome shows elsewhere. */
void qmp_reply_ignore(const QmpResponse *response, const QmError *failure, gpointer userdata);

/* How one command is sent. */
typedef struct {
        const char *arguments;     /* a JSON object's text, or NULL */
        JsonNode *arguments_node;  /* or the object as a tree */
        double timeout;            /* seconds; <= 0: none */
        gboolean text_only;        /* the caller reads text/value only: no tree is built */
        gboolean with_fd;          /* pass @fd (taken over) by SCM_RIGHTS with the command */
        int fd;
} QmpCallOptions;

/* What differs between the peers that speak QMP. */
typedef struct {
        double timeout; /* of the handshake's commands */
        /* QEMU's monitor greets and wants qmp_capabilities before anything
         * else; a peer without (the guest agent) is ready at once. */
        gboolean greeting;
        /* The guest agent's additions; zero for QEMU's monitor. */
        gsize max_line;      /* longest message accepted; 0: QMP_MAX_LINE */
        gboolean sync_byte;  /* a 0xFF from the peer drops what came before it */
        gint64 first_id;     /* of the first command; 0: 1 */
        gboolean quiet_strays; /* replies that are not ours are dropped without a log line */
} QmpClientOptions;

typedef struct {
        /* Greeting seen and qmp_capabilities answered: commands may flow.
         * @greeting is NULL for a peer without one. */
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
QmpClient *qmp_client_new(int fd, const QmpClientOptions *options, const QmpCallbacks *cb, gpointer userdata);

/* Closes the connection without calling any callback; pending replies are
 * failed with QmpDisconnected. */
void qmp_client_free(QmpClient *c);

gboolean qmp_client_is_ready(QmpClient *c);
/* Connected, handshake done or still under way: commands can be issued. */
gboolean qmp_client_is_open(QmpClient *c);
gboolean qmp_client_greeted(QmpClient *c);
/* The connection ended because QEMU closed it (not a protocol error or
 * a close of ours). */
gboolean qmp_client_closed_by_peer(QmpClient *c);
/* Bytes we sent that QEMU has not read yet (ours and the socket's), -1
 * if unknown. */
int qmp_client_unread_by_peer(QmpClient *c);
/* How far the handshake got, for error messages. */
const char *qmp_client_progress(QmpClient *c);

/* Send @command. The reply callback runs exactly once, never from inside
 * this call. Before the handshake has completed the command waits for it
 * (its timeout running). */
void qmp_client_call(QmpClient *c, const char *command, const QmpCallOptions *options, QmpReplyFunc func,
                     gpointer userdata);

/* Queue @len raw bytes ahead of what is sent next (the 0xFF that resets
 * the guest agent's parser before guest-sync-delimited). */
void qmp_client_send_raw(QmpClient *c, const void *data, gsize len);

/* Handle everything already in the socket now (its peer has exited and
 * its last words, e.g. a SHUTDOWN event, must not be lost). */
void qmp_client_drain(QmpClient *c);
