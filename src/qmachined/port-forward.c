/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "port-forward.h"

/* Probes per guest port before giving up: the kernel's choice may repeat a
 * port this launch already took. */
#define PROBES_PER_PORT 16

guint16 qm_tcp_port_probe(const char *address, guint16 port) {
        struct sockaddr_storage ss = { 0 };
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        socklen_t len;
        guint16 got = 0;
        int fd, saved;

        if (inet_pton(AF_INET, address, &a4->sin_addr) == 1) {
                a4->sin_family = AF_INET;
                a4->sin_port = htons(port);
                len = sizeof(*a4);
        } else if (inet_pton(AF_INET6, address, &a6->sin6_addr) == 1) {
                a6->sin6_family = AF_INET6;
                a6->sin6_port = htons(port);
                len = sizeof(*a6);
        } else {
                errno = EINVAL;
                return 0;
        }
        fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return 0;
        if (bind(fd, (struct sockaddr *)&ss, len) == 0 && getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
                got = ntohs(ss.ss_family == AF_INET ? a4->sin_port : a6->sin6_port);
        saved = errno;
        close(fd);
        errno = saved;
        return got;
}

guint16 qm_port_probe_loopback(guint16 port, gpointer unused) {
        (void)unused;
        return qm_tcp_port_probe("127.0.0.1", port);
}

static gboolean already_taken(const GArray *out, guint first, guint16 host) {
        for (guint i = first; i < out->len; i++)
                if (g_array_index(out, QmPortPair, i).host == host)
                        return TRUE;
        return FALSE;
}

gboolean qm_forward_ports_pick(const guint16 *guest, guint n_guest, guint16 fixed_first, QmPortProbe probe,
                               gpointer data, GArray *out, GError **error) {
        guint first = out->len;

        for (guint i = 0; i < n_guest; i++) {
                QmPortPair p = { .guest = guest[i] };
                if (fixed_first) {
                        /* port numbers wrap below 65536, skipping 0 */
                        p.host = (guint16)(1 + (fixed_first - 1 + i) % 65535);
                } else {
                        for (guint t = 0; t < PROBES_PER_PORT && !p.host; t++) {
                                p.host = probe(0, data);
                                if (p.host && already_taken(out, first, p.host))
                                        p.host = 0;
                        }
                }
                if (!p.host) {
                        g_array_set_size(out, first);
                        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_EXIST,
                                    "no free TCP port on 127.0.0.1 for guest port %u", guest[i]);
                        return FALSE;
                }
                g_array_append_val(out, p);
        }
        return TRUE;
}

char *qm_forward_ports_hostfwd(const QmPortPair *pairs, guint n) {
        GString *s = g_string_new(NULL);

        for (guint i = 0; i < n; i++)
                g_string_append_printf(s, ",hostfwd=tcp:127.0.0.1:%u-:%u", pairs[i].host, pairs[i].guest);
        return g_string_free(s, FALSE);
}

guint16 qm_forward_ports_lookup(const QmPortPair *pairs, guint n, guint16 guest) {
        for (guint i = 0; i < n; i++)
                if (pairs[i].guest == guest)
                        return pairs[i].host;
        return 0;
}

char *qm_forward_ports_list_guest(const QmPortPair *pairs, guint n) {
        GString *s = g_string_new(NULL);

        for (guint i = 0; i < n; i++)
                g_string_append_printf(s, "%s%u", i ? ", " : "", pairs[i].guest);
        if (n == 0)
                g_string_append(s, "none");
        return g_string_free(s, FALSE);
}

gboolean qm_forward_ports_log_says_taken(const char *log) {
        /* QEMU 7.2, net/slirp.c: "Could not set up host forwarding rule
         * 'tcp:...'" when slirp_add_hostfwd() fails to bind. */
        return log && strstr(log, "Could not set up host forwarding rule") != NULL;
}
