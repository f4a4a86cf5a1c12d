/* The QEMU command line of a machine (QEMUMachine._base_args + args). */
#pragma once

#include "config.h"

/* @qmp_fd / @console_fd: the fd numbers that the listening QMP and console
 * sockets will have in QEMU, or -1 when there is none. */
char **qm_build_argv(const QmConfig *c, const char *default_binary, int qmp_fd, int console_fd);

/* The argv as one line, each word shell-quoted where needed. */
char *qm_argv_to_string(char **argv);
