/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <string.h>

#include "qemu-argv.h"

static void add(GPtrArray *a, const char *s) {
        g_ptr_array_add(a, g_strdup(s));
}

static void addf(GPtrArray *a, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void addf(GPtrArray *a, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        g_ptr_array_add(a, g_strdup_vprintf(fmt, ap));
        va_end(ap);
}

char **qm_build_argv(const QmConfig *c, const char *default_binary, int qmp_fd, int console_fd,
                     const QmAddFdArg *add_fds, guint n_add_fds, const QmPortPair *forwards,
                     guint n_forwards) {
        GPtrArray *a = g_ptr_array_new();

        for (char **w = c->wrapper; *w; w++)
                add(a, *w);
        add(a, c->binary ? c->binary : default_binary);
        add(a, "-display");
        add(a, "none");
        add(a, "-vga");
        add(a, "none");
        if (c->sandbox) {
                /* QEMU's seccomp filter: no obsolete system calls, no
                 * setuid/setgid, no fork/exec, no scheduler/affinity
                 * changes (libvirt's choice). */
                add(a, "-sandbox");
                add(a, "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
        }
        if (qmp_fd >= 0) {
                /* QEMU listens on a socket we bound and pass in: no race at
                 * start, and a restarted daemon can connect to it again. */
                add(a, "-chardev");
                addf(a, "socket,id=mon,fd=%d,server=on,wait=off", qmp_fd);
                add(a, "-mon");
                add(a, "chardev=mon,mode=control");
        }
        if (c->machine) {
                add(a, "-machine");
                add(a, c->machine);
        }
        if (console_fd >= 0) {
                add(a, "-chardev");
                addf(a, "socket,id=console,fd=%d,server=on,wait=off", console_fd);
                for (guint i = 0; i < c->console_index; i++) {
                        add(a, "-serial");
                        add(a, "null");
                }
                if (c->console_device) {
                        add(a, "-device");
                        addf(a, "%s,chardev=console", c->console_device);
                } else {
                        add(a, "-serial");
                        add(a, "chardev:console");
                }
        }
        add(a, "-uuid");
        add(a, c->uuid);
        for (guint i = 0; i < c->nics; i++) {
                g_autofree char *mac = qm_config_mac_address(c, i);
                g_autofree char *hostfwd = qm_forward_ports_hostfwd(forwards, i == 0 ? n_forwards : 0);
                add(a, "-nic");
                /* virtio-net: what a modern guest has a driver for (QEMU's
                 * default e1000 is missing from cloud kernels). */
                addf(a, "user,model=virtio-net-pci,id=nic%u,mac=%s%s", i, mac, hostfwd);
        }
        for (guint i = 0; i < n_add_fds; i++) {
                const QmAddFdArg *f = &add_fds[i];
                add(a, "-add-fd");
                addf(a, "fd=%d,set=%u,opaque=%s%s%s", f->fd, f->fdset, f->opaque, *f->opts ? "," : "", f->opts);
        }
        if (c->incoming) {
                add(a, "-incoming");
                add(a, c->incoming);
        }
        for (char **arg = c->args; *arg; arg++)
                add(a, *arg);
        g_ptr_array_add(a, NULL);
        return (char **)g_ptr_array_free(a, FALSE);
}

void qm_argv_append_guest_agent(char ***argv, int fd) {
        GPtrArray *a = g_ptr_array_new();

        for (char **p = *argv; *p; p++)
                g_ptr_array_add(a, *p);
        g_free(*argv); /* the strings moved */
        add(a, "-chardev");
        addf(a, "socket,id=qga0,fd=%d,server=on,wait=off", fd);
        add(a, "-device");
        add(a, "virtio-serial-pci,id=qm-vser0");
        add(a, "-device");
        add(a, "virtserialport,bus=qm-vser0.0,chardev=qga0,name=org.qemu.guest_agent.0,id=qm-guest-agent");
        g_ptr_array_add(a, NULL);
        *argv = (char **)g_ptr_array_free(a, FALSE);
}

char *qm_argv_to_string(char **argv) {
        GString *s = g_string_new(NULL);

        for (char **p = argv; *p; p++) {
                gboolean plain = **p != 0;
                for (const char *q = *p; *q && plain; q++)
                        plain = g_ascii_isalnum(*q) || strchr("-_=,.:/@%+", *q);
                if (s->len)
                        g_string_append_c(s, ' ');
                if (plain) {
                        g_string_append(s, *p);
                } else {
                        g_autofree char *quoted = g_shell_quote(*p);
                        g_string_append(s, quoted);
                }
        }
        return g_string_free(s, FALSE);
}
