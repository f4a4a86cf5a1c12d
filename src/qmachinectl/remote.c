/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qmachinectl -H HOST console: a console is a file descriptor, and none
 * can cross ssh; so run `qmachinectl console` on that host through ssh,
 * with our terminal, as `machinectl -H HOST login` users expect. */
#include "ctl.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

/* The command line to run there, quoted for the remote shell. */
static char *remote_command(Ctl *c, const char *name) {
        char drain[G_ASCII_DTOSTR_BUF_SIZE];
        g_autofree char *drain_opt = g_strconcat("--drain=", g_ascii_dtostr(drain, sizeof(drain), c->o.drain),
                                                 NULL);
        g_autoptr(GPtrArray) words = g_ptr_array_new();

        g_ptr_array_add(words, (char *)"qmachinectl");
        if (!c->ask_password)
                g_ptr_array_add(words, (char *)"--no-ask-password");
        g_ptr_array_add(words, (char *)"console");
        g_ptr_array_add(words, drain_opt);
        g_ptr_array_add(words, (char *)"--");
        g_ptr_array_add(words, (char *)name);
        g_ptr_array_add(words, NULL);
        return ctl_shell_join((char **)words->pdata);
}

/* Replaces this process with ssh; returns only when that fails. With a
 * terminal ssh gets one there (-t) and no escape character, so that
 * every byte reaches the console and Ctrl-] leaves as locally. */
int ctl_remote_console(Ctl *c, const char *name) {
        g_autofree char *command = remote_command(c, name);
        const char *argv[] = {
                "ssh", "-x", isatty(STDIN_FILENO) ? "-t" : "-T", "-e", "none", "--", c->host, command, NULL,
        };

        fflush(stdout);
        fflush(stderr);
        execvp(argv[0], (char **)argv);
        return ctl_error("cannot run ssh: %s", g_strerror(errno));
}
