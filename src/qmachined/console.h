/* The serial console of a running machine, always drained. */
#pragma once

#include <glib.h>

typedef struct QmConsole QmConsole;

/* Takes ownership of @fd (connected to QEMU's console socket); what the
 * guest writes is appended to @log_path, so QEMU never blocks on a full
 * console buffer even when nobody watches. */
QmConsole *qm_console_new(int fd, const char *log_path);

/* Reads what is still buffered in the socket, then closes it. */
void qm_console_free(QmConsole *c);
