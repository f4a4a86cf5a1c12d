/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Forwarded ports of a machine (config forward-ports): host ports chosen
 * at each launch, a launch started again when another process took one
 * before QEMU bound it, and the answers of GetPort and GetAddress.
 */
#include <stdlib.h>
#include <string.h>

#include "machine-internal.h"

#define LOG_TAIL_FOR_PORTS (64 * 1024)

/*
 * Test hook, not an interface: QMACHINED_TEST_HOST_PORTS=PORT[:TRIES]
 * makes the first TRIES tries (default 1) of every launch use host ports
 * PORT, PORT+1, ... without checking that they are free, so that a test
 * holding PORT can prove the retry when QEMU finds a port taken. Read
 * once, at the daemon's first launch.
 */
typedef struct {
        guint16 port;
        guint tries;
} TestHostPorts;

static TestHostPorts test_host_ports(void) {
        static TestHostPorts hook;
        static gsize done;

        if (g_once_init_enter(&done)) {
                const char *v = g_getenv("QMACHINED_TEST_HOST_PORTS");
                char *end = NULL;
                guint64 port = v ? g_ascii_strtoull(v, &end, 10) : 0;
                guint64 tries = 1;

                if (end && *end == ':')
                        tries = g_ascii_strtoull(end + 1, &end, 10);
                if (v &&
                    (!end || *end || port < 1 || port > G_MAXUINT16 || tries < 1 ||
                     tries > QM_FORWARD_PORT_TRIES))
                        g_warning("QMACHINED_TEST_HOST_PORTS=%s is not PORT[:TRIES]; ignored", v);
                else if (v)
                        hook = (TestHostPorts){ (guint16)port, (guint)tries };
                g_once_init_leave(&done, 1);
        }
        return hook;
}

gboolean machine_ports_pick(Machine *m, QmError **error) {
        const GArray *guest = m->config->forward_ports;
        TestHostPorts hook = test_host_ports();
        guint16 fixed = m->port_tries < hook.tries ? hook.port : 0;
        g_autoptr(GError) err = NULL;

        g_array_set_size(m->forwarded_ports, 0);
        m->port_tries++;
        if (!qm_forward_ports_pick((const guint16 *)guest->data, guest->len, fixed, qm_port_probe_loopback,
                                   NULL, m->forwarded_ports, &err)) {
                *error = qm_error_new(QM_ERROR_LAUNCH_FAILED,
                                      "QEMU of '%s' failed to launch: forward-ports: %s", m->name,
                                      err->message);
                return FALSE;
        }
        return TRUE;
}

gboolean machine_ports_retry_wanted(Machine *m) {
        g_autofree char *log = NULL;

        if (m->forwarded_ports->len == 0)
                return FALSE;
        log = machine_read_log_tail(m, LOG_TAIL_FOR_PORTS);
        if (!qm_forward_ports_log_says_taken(log))
                return FALSE;
        if (m->port_tries >= QM_FORWARD_PORT_TRIES) {
                g_free(m->launch_error);
                m->launch_error = g_strdup_printf(
                        "a host port chosen for forward-ports was taken by another "
                        "process before QEMU could bind it, %u times in a row",
                        m->port_tries);
                return FALSE;
        }
        g_message(
                "machine %s: a host port for forward-ports was taken before QEMU bound it; choosing new "
                "ports (try %u of %u)",
                m->name, m->port_tries + 1, QM_FORWARD_PORT_TRIES);
        return TRUE;
}

void machine_ports_restore(Machine *m, const GArray *pairs) {
        g_array_set_size(m->forwarded_ports, 0);
        if (pairs)
                g_array_append_vals(m->forwarded_ports, pairs->data, pairs->len);
}

const GArray *machine_get_forwarded_ports(Machine *m) {
        static const GArray none;

        /* the ports of this run; a stopped machine has none */
        return machine_is_active(m) ? m->forwarded_ports : &none;
}

QmError *machine_get_port(Machine *m, guint16 guest_port, guint16 *host_port) {
        const GArray *ports = m->forwarded_ports;
        g_autofree char *list = NULL;

        if (!machine_is_active(m))
                return qm_error_new(QM_ERROR_NOT_RUNNING,
                                    "Machine '%s' is %s: its ports are forwarded only "
                                    "while it runs",
                                    m->name, qm_state_to_string(m->state));
        *host_port = qm_forward_ports_lookup((const QmPortPair *)ports->data, ports->len, guest_port);
        if (*host_port)
                return NULL;
        list = qm_forward_ports_list_guest((const QmPortPair *)ports->data, ports->len);
        return qm_error_new(QM_ERROR_PORT_NOT_REDIRECTED,
                            "Guest port %u of '%s' is not forwarded (forwarded guest ports: %s; config key "
                            "forward-ports)",
                            guest_port, m->name, list);
}

QmError *machine_get_address(Machine *m, guint32 nic, const char **address) {
        if (nic >= m->config->nics)
                return qm_error_new(QM_ERROR_NO_SUCH_NIC,
                                    "Machine '%s' has %u NIC%s (config key nics); no NIC %u", m->name,
                                    m->config->nics, m->config->nics == 1 ? "" : "s", nic);
        /* Every NIC is user-mode: the host reaches its guest through the
         * ports forwarded on the loopback address. */
        *address = "127.0.0.1";
        return NULL;
}
