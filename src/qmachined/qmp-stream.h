/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Splits the QMP byte stream into lines, whatever the read boundaries. */
#pragma once

#include <glib.h>

typedef struct QmpStream QmpStream;

QmpStream *qmp_stream_new(gsize max_line);
void qmp_stream_free(QmpStream *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmpStream, qmp_stream_free)

/* The QEMU guest agent's mode: a 0xFF byte (its answer to
 * guest-sync-delimited starts with one) drops every byte before it; the
 * bytes it drops are held to the line limit, in one read as in many. */
void qmp_stream_set_sync_byte(QmpStream *s, gboolean on);

void qmp_stream_push(QmpStream *s, const char *data, gsize len);

/* 1: a complete line (without "\r\n") in *line, g_free() it, *len its length;
 * 0: need more bytes; -1: a line is longer than max_line (stream broken). */
int qmp_stream_pop(QmpStream *s, char **line, gsize *len);

/* Bytes buffered but not yet returned as a line. */
gsize qmp_stream_pending(QmpStream *s);
