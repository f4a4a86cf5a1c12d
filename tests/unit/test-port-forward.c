/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Choosing host ports for forward-ports, with a fake "is it free" probe,
 * and the real one against a port this test holds. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "port-forward.h"

/* Hands out the ports of @data (a 0-terminated list) in order, then 0
 * (nothing free). */
static guint16 fake_probe(guint16 port, gpointer data) {
        guint16 **next = data;
        g_assert_cmpuint(port, ==, 0);
        return **next ? *(*next)++ : 0;
}

static void test_pick_distinct(void) {
        /* the kernel's picks may repeat: 5000 twice is skipped */
        guint16 answers[] = { 5000, 5000, 5001, 0 }, *next = answers;
        guint16 guest[] = { 8080, 22 };
        g_autoptr(GArray) out = g_array_new(FALSE, FALSE, sizeof(QmPortPair));
        g_autoptr(GError) err = NULL;

        g_assert_true(qm_forward_ports_pick(guest, 2, 0, fake_probe, &next, out, &err));
        g_assert_cmpuint(out->len, ==, 2);
        g_assert_cmpuint(g_array_index(out, QmPortPair, 0).guest, ==, 8080);
        g_assert_cmpuint(g_array_index(out, QmPortPair, 0).host, ==, 5000);
        g_assert_cmpuint(g_array_index(out, QmPortPair, 1).guest, ==, 22);
        g_assert_cmpuint(g_array_index(out, QmPortPair, 1).host, ==, 5001);
        g_assert_cmpuint(qm_forward_ports_lookup((QmPortPair *)out->data, out->len, 22), ==, 5001);
        g_assert_cmpuint(qm_forward_ports_lookup((QmPortPair *)out->data, out->len, 23), ==, 0);
}

static void test_pick_none_free(void) {
        guint16 answers[] = { 0 }, *next = answers;
        guint16 guest[] = { 8080 };
        g_autoptr(GArray) out = g_array_new(FALSE, FALSE, sizeof(QmPortPair));
        g_autoptr(GError) err = NULL;

        g_assert_false(qm_forward_ports_pick(guest, 1, 0, fake_probe, &next, out, &err));
        g_assert_nonnull(err);
        g_assert_cmpuint(out->len, ==, 0);
}

static guint16 never_called(guint16 port, gpointer data) {
        (void)port;
        (void)data;
        g_assert_not_reached();
        return 0;
}

static void test_pick_fixed(void) {
        guint16 guest[] = { 8080, 22, 80 };
        g_autoptr(GArray) out = g_array_new(FALSE, FALSE, sizeof(QmPortPair));
        g_autofree char *rules = NULL, *list = NULL;

        g_assert_true(qm_forward_ports_pick(guest, 3, 65534, never_called, NULL, out, NULL));
        g_assert_cmpuint(g_array_index(out, QmPortPair, 0).host, ==, 65534);
        g_assert_cmpuint(g_array_index(out, QmPortPair, 1).host, ==, 65535);
        g_assert_cmpuint(g_array_index(out, QmPortPair, 2).host, ==, 1); /* wraps, never 0 */
        rules = qm_forward_ports_hostfwd((QmPortPair *)out->data, 2);
        g_assert_cmpstr(rules, ==, ",hostfwd=tcp:127.0.0.1:65534-:8080,hostfwd=tcp:127.0.0.1:65535-:22");
        list = qm_forward_ports_list_guest((QmPortPair *)out->data, out->len);
        g_assert_cmpstr(list, ==, "8080, 22, 80");
}

static void test_real_probe(void) {
        struct sockaddr_in sa = { .sin_family = AF_INET };
        socklen_t len = sizeof(sa);
        guint16 free_port, held;
        int fd = socket(AF_INET, SOCK_STREAM, 0);

        free_port = qm_port_probe_loopback(0, NULL);
        g_assert_cmpuint(free_port, >, 0);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        g_assert_cmpint(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
        g_assert_cmpint(listen(fd, 1), ==, 0);
        g_assert_cmpint(getsockname(fd, (struct sockaddr *)&sa, &len), ==, 0);
        held = ntohs(sa.sin_port);
        g_assert_cmpuint(qm_port_probe_loopback(held, NULL), ==, 0);
        close(fd);
        g_assert_cmpuint(qm_port_probe_loopback(held, NULL), ==, held);
}

static void test_log(void) {
        g_assert_true(qm_forward_ports_log_says_taken(
                "qemu-system-x86_64: -nic user,hostfwd=tcp:127.0.0.1:1-:80: Could not set up host forwarding "
                "rule 'tcp:127.0.0.1:1-:80'\n"));
        g_assert_false(qm_forward_ports_log_says_taken("qemu-system-x86_64: terminating on signal 15\n"));
        g_assert_false(qm_forward_ports_log_says_taken(NULL));
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/port-forward/pick-distinct", test_pick_distinct);
        g_test_add_func("/port-forward/pick-none-free", test_pick_none_free);
        g_test_add_func("/port-forward/pick-fixed", test_pick_fixed);
        g_test_add_func("/port-forward/real-probe", test_real_probe);
        g_test_add_func("/port-forward/log", test_log);
        return g_test_run();
}
