#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Forwarded ports (config forward-ports, API.md version 2): the daemon
forwards a free host port on 127.0.0.1 to each guest TCP port of NIC 0,
publishes them as ForwardedPorts, answers GetPort and GetAddress (BaseVM
get_port, get_address), chooses again when a port was taken before QEMU
bound it, and keeps the ports across a daemon restart. The real test guest
(tests/guest) serves HTTP on guest port 8080."""

import http.client
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import INVALID_ARGS, MACHINE_IFACE, GLib, err  # noqa: E402
from test_polkit import NobodyMixin, vtext  # noqa: E402
from test_guest import guest_config  # noqa: E402
from test_qmachinectl import qmachinectl_binary  # noqa: E402

HTTP_PAGE = b"QMACHINE-GUEST-HTTP"
NET_UP = b"QMACHINE-GUEST-NET-UP"
BOOT_TIMEOUT = 120.0
HOOK = "QMACHINED_TEST_HOST_PORTS"


def accepts(port, timeout=5.0):
    """A TCP connection to 127.0.0.1:port is accepted (QEMU's slirp
    accepts for any forwarded port, whatever the guest does)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def http_get(port, timeout=10.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", "/")
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def held_port():
    """A listening socket on 127.0.0.1 and its port: taken for anyone else."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s, s.getsockname()[1]


class ForwardPortsTest(NobodyMixin, qmtest.QMTestCase):

    polkit_mock = True  # allows nothing: GetPort and GetAddress need nothing

    def tearDown(self):
        os.environ.pop(HOOK, None)
        super().tearDown()

    def ports(self, path):
        return dict(self.mprop(path, "ForwardedPorts"))

    def get_port(self, path, guest):
        return self.machine(path, "GetPort", GLib.Variant("(q)", (guest,)), "(q)")

    def get_address(self, path, nic):
        return self.machine(path, "GetAddress", GLib.Variant("(u)", (nic,)), "(s)")

    def forwarding_machine(self, name, ports=(8080, 22), **extra):
        """A `-machine none` QEMU with one NIC (QEMU cannot plug it in, but
        its user network and host forwarding run)."""
        return self.create_none_machine(name, nics=1, forward_ports=list(ports), **extra)

    def run_ctl(self, *args):
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.env.system_address)
        return subprocess.run([qmachinectl_binary()] + list(args), capture_output=True,
                              text=True, env=env, timeout=60)

    # -- the guest

    def guest_config(self, **extra):
        return guest_config(nics=1, forward_ports=[8080, 2222], **extra)

    def wait_console(self, path, needle, timeout=BOOT_TIMEOUT):
        def seen():
            return needle in bytes(self.machine(path, "GetConsoleOutput", None, "(ay)"))
        if not qmtest.iterate_until(seen, timeout):
            out = bytes(self.machine(path, "GetConsoleOutput", None, "(ay)"))
            self.fail("the console never showed %r; tail: %r" % (needle, out[-2000:]))

    def test_guest_http_through_forwarded_ports(self):
        """Two guests forward guest port 8080 from different host ports, and
        an HTTP GET on each reaches its own guest's web server."""
        t0 = time.monotonic()
        paths = [self.create_machine(n, **self.guest_config()) for n in ("web1", "web2")]
        for p in paths:
            self.launch(p)
        for p in paths:
            self.wait_console(p, NET_UP)
        print("launch to network up (two guests at once): %.1f s" % (time.monotonic() - t0),
              file=sys.stderr)
        hosts = []
        for p in paths:
            ports = self.ports(p)
            self.assertEqual(sorted(ports), [2222, 8080])
            host = self.get_port(p, 8080)
            self.assertEqual(ports[8080], host)
            self.assertNotEqual(ports[2222], host)
            self.assertEqual(self.get_address(p, 0), "127.0.0.1")
            t1 = time.monotonic()
            status, body = http_get(host)
            print("HTTP GET through the forwarded port: %.1f ms" % ((time.monotonic() - t1) * 1000),
                  file=sys.stderr)
            self.assertEqual(status, 200)
            self.assertIn(HTTP_PAGE, body)
            hosts.append(host)
        self.assertNotEqual(hosts[0], hosts[1], "two machines got the same host port")
        # Each host port reaches its own guest: stop the first one, and its
        # port is gone while the second still answers.
        self.shutdown(paths[0], True)
        self.assertFalse(accepts(hosts[0], 2.0), "the port of a stopped machine still accepts")
        self.assertIn(HTTP_PAGE, http_get(hosts[1])[1])
        self.shutdown(paths[1], True)

    # -- choosing host ports

    def test_ports_published_and_cleared(self):
        path = self.forwarding_machine("pub")
        self.assertEqual(self.ports(path), {})
        self.expect_error(err("NotRunning"), self.get_port, path, 8080)
        props = self.record_properties(path)
        self.launch(path)
        ports = self.ports(path)
        self.assertEqual(sorted(ports), [22, 8080])
        self.assertNotEqual(ports[22], ports[8080])
        for guest, host in ports.items():
            self.assertEqual(self.get_port(path, guest), host)
            self.assertTrue(accepts(host), "host port %d does not accept" % host)
        cmdline = self.mprop(path, "CommandLine")
        nic = cmdline[cmdline.index("-nic") + 1]
        self.assertTrue(nic.startswith("user,model=virtio-net-pci,id=nic0,"), nic)
        self.assertIn("hostfwd=tcp:127.0.0.1:%d-:8080" % ports[8080], nic)
        self.shutdown(path)
        self.assertEqual(self.ports(path), {})
        self.assertFalse(accepts(ports[8080], 2.0))
        self.expect_error(err("NotRunning"), self.get_port, path, 8080)
        qmtest.iterate_until(lambda: {} in qmtest.changed_values(props, "ForwardedPorts"), 5)
        seen = [dict(v) for v in qmtest.changed_values(props, "ForwardedPorts")]
        self.assertIn(ports, seen, "no PropertiesChanged with the ports")
        self.assertEqual(seen[-1], {}, "no PropertiesChanged emptying them")

    def test_retry_when_a_port_was_taken(self):
        """The first try uses a host port this test holds (the test hook
        skips the check that it is free, as if another process took it
        between the choice and QEMU's bind): QEMU fails to set up the rule,
        and the daemon starts it again on ports it chose itself."""
        sock, taken = held_port()
        try:
            os.environ[HOOK] = str(taken)
            self.restart_daemon()
            path = self.forwarding_machine("retry")
            self.launch(path)
            ports = self.ports(path)
            self.assertNotIn(taken, ports.values())
            self.assertTrue(accepts(ports[8080]))
            self.assertIn("hostfwd=tcp:127.0.0.1:%d-:8080" % ports[8080],
                          " ".join(self.mprop(path, "CommandLine")))
            self.assertIn("choosing new ports (try 2 of 3)", self.env.daemon_output())
            self.shutdown(path)
        finally:
            sock.close()

    def test_launch_fails_after_three_tries(self):
        sock, taken = held_port()
        try:
            os.environ[HOOK] = "%d:3" % taken
            self.restart_daemon()
            path = self.forwarding_machine("unlucky")
            e = self.expect_error(err("LaunchFailed"), self.launch, path)
            self.assertIn("3 times in a row", e.text)
            self.assertIn("Could not set up host forwarding rule 'tcp:127.0.0.1:%d-:8080'" % taken,
                          e.text)
            self.assertEqual(self.mprop(path, "State"), "failed")
            self.assertEqual(self.ports(path), {})
            self.assertEqual(self.qemu_pids(), [])
        finally:
            sock.close()

    def test_ports_survive_daemon_restart(self):
        path = self.forwarding_machine("kept")
        self.launch(path)
        ports = self.ports(path)
        pid = self.mprop(path, "Pid")
        for sig in (signal.SIGTERM, signal.SIGKILL):
            self.restart_daemon(sig)
            self.assertEqual(self.mprop(path, "Pid"), pid)
            self.assertEqual(self.ports(path), ports, "after a restart by %s" % sig.name)
            self.assertEqual(self.get_port(path, 22), ports[22])
            self.assertTrue(accepts(ports[8080]))
        self.shutdown(path)
        self.assertEqual(self.ports(path), {})

    # -- errors, arguments, authorization

    def test_errors_and_arguments(self):
        path = self.forwarding_machine("errs", ports=[8080])
        none = self.create_none_machine("nonic")
        # GetAddress does not need the machine to run
        self.assertEqual(self.get_address(path, 0), "127.0.0.1")
        self.launch(path)
        e = self.expect_error(err("PortNotRedirected"), self.get_port, path, 1234)
        self.assertIn("1234", e.text)
        self.assertIn("8080", e.text)
        self.expect_error(INVALID_ARGS, self.get_port, path, 0)
        self.expect_error(INVALID_ARGS, self.machine, path, "GetPort",
                          GLib.Variant("(u)", (8080,)), "(q)")
        self.expect_error(INVALID_ARGS, self.machine, path, "GetAddress",
                          GLib.Variant("(s)", ("0",)), "(s)")
        self.assertEqual(self.get_address(path, 0), "127.0.0.1")
        e = self.expect_error(err("NoSuchNic"), self.get_address, path, 1)
        self.assertIn("1 NIC", e.text)
        self.expect_error(err("NoSuchNic"), self.get_address, none, 0)
        self.expect_error(err("NoSuchNic"), self.get_address, path, 0xffffffff)
        # nothing changed
        self.assertEqual(self.mprop(path, "State"), "running")
        self.assertEqual(sorted(self.ports(path)), [8080])
        self.shutdown(path)

    def test_config_checks(self):
        for config, word in (({"forward_ports": [8080]}, "nics"),
                             ({"forward_ports": [0], "nics": 1}, "port 0"),
                             ({"forward_ports": [80, 80], "nics": 1}, "twice"),
                             ({"forward_ports": GLib.Variant("au", [80]), "nics": 1},
                              "forward-ports")):
            e = self.expect_error(INVALID_ARGS, self.create_none_machine, "bad", **config)
            self.assertIn(word, e.text)
        self.assertEqual(self.manager_prop("MachineCount"), 0)

    def test_no_authorization_needed(self):
        """polkit allows nothing, and uid 65534 still gets answers."""
        path = self.forwarding_machine("open")
        self.launch(path)
        host = self.get_port(path, 8080)
        self.assertEqual(self.nobody_machine(path, "GetPort", vtext("(q)", (8080,))), host)
        self.assertEqual(self.nobody_machine(path, "GetAddress", vtext("(u)", (0,))), "127.0.0.1")
        e = self.expect_error(err("PortNotRedirected"), self.nobody_machine, path, "GetPort",
                              vtext("(q)", (81,)))
        self.assertIn("81", e.text)
        self.assertEqual(self.env.polkit.check_calls(), [], "the daemon asked polkit")
        self.shutdown(path)

    # -- clients

    def test_qmachinectl_port(self):
        path = self.forwarding_machine("ctl")
        self.launch(path)
        ports = self.ports(path)
        r = self.run_ctl("port", "ctl", "8080")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "%d\n" % ports[8080], ""))
        r = self.run_ctl("port", "ctl")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(r.stdout.splitlines()),
                         sorted("%d %d" % kv for kv in ports.items()))
        r = self.run_ctl("port", "ctl", "1234")
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stderr.startswith("qmachinectl: "), r.stderr)
        self.assertIn("1234", r.stderr)
        r = self.run_ctl("port", "ctl", "0")
        self.assertEqual(r.returncode, 2, r.stderr)
        r = self.run_ctl("port", "ctl", "http")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.shutdown(path)
        r = self.run_ctl("port", "ctl")
        self.assertEqual((r.returncode, r.stdout), (0, ""))

    def test_python_client(self):
        sys.path.insert(0, os.path.join(qmtest.source_root(), "python"))
        import qmachine
        path = self.forwarding_machine("py")
        m = qmachine.connect(address=self.env.address).get_machine("py")
        self.assertEqual(m.forwarded_ports, {})
        with self.assertRaises(qmachine.errors.NotRunning):
            m.get_port(8080)
        self.assertEqual(m.get_address(0), "127.0.0.1")
        with self.assertRaises(qmachine.errors.NoSuchNic):
            m.get_address(1)
        m.launch()
        self.assertEqual(m.get_port(8080), m.forwarded_ports[8080])
        with self.assertRaises(qmachine.errors.PortNotRedirected):
            m.get_port(1234)
        m.shutdown()
        self.assertEqual(self.mprop(path, "State"), "stopped")


if __name__ == "__main__":
    qmtest.main()
