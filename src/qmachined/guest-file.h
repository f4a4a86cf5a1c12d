/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* CopyToGuest / CopyFromGuest: a file streamed through the guest agent
 * (guest-file-open/read/write/close) from or to an fd the caller opened;
 * the daemon never opens a host path for a caller. */
#pragma once

#include "guest-op.h"

/* Bytes per guest-file-read / guest-file-write. */
#define QM_GUEST_FILE_CHUNK (1024u * 1024)
#define QM_GUEST_PATH_MAX 4096
#define QM_GUEST_FILE_MODE_MAX 07777

/* Copy what @fd (taken over) holds into @guest_path (created or
 * truncated); @mode != 0: then chmod it (qemu-ga has no command for
 * that: `chmod` through guest-exec). Answers @call with nothing. */
void qm_guest_copy_to(QmGuestAgent *agent, QmReply *call, double command_timeout, GQueue *ops, int fd,
                      const char *guest_path, guint32 mode);

/* Copy @guest_path into @fd (taken over). */
void qm_guest_copy_from(QmGuestAgent *agent, QmReply *call, double command_timeout, GQueue *ops,
                        const char *guest_path, int fd);
