#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Remote control over ssh, on two hosts on one machine (qmtest.twohost):
the fixture itself (the network between the namespaces, separate daemons,
busctl -H, a teardown that leaves nothing), `qmachinectl -H root@B` for
list, status, qmp and console, `qmachine.connect(host=)`, and the methods
that pass file descriptors failing at once over ssh instead of hanging
until the call times out."""

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import qmtest  # noqa: E402
import qmachine  # noqa: E402
from qmtest import GLib, TwoHosts, TwoHostTestCase  # noqa: E402
from test_guest import BANNER, guest_config  # noqa: E402

# What "at once" means for a call that would otherwise wait for its D-Bus
# timeout (25 s in Gio, 300 s in qmachinectl): one ssh round trip at most.
AT_ONCE = 5.0
CTRL_RIGHT_BRACKET = b"\x1d"


def netns_inode(pid):
    return os.stat("/proc/%d/ns/net" % pid).st_ino


def addresses(host=None):
    """The IPv4 addresses of a host's namespace (None: this process's)."""
    argv = ["ip", "-o", "-4", "addr", "show"]
    if host is not None:
        argv[1:1] = ["-n", host.netns.name]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"inet (\S+)/", out))


def assert_console_fails_at_once_over_ssh(test, hosts, name):
    """`qmachinectl console NAME` on A through sd-bus's remote transport
    to B (an address that runs ssh and systemd-stdio-bridge, what -H
    uses) fails at once with the documented error: an fd cannot cross."""
    target = hosts.b.ssh_target
    address = ",".join(["unixexec:path=ssh", "argv1=-xT", "argv2=--",
                        "argv3=" + target.replace("@", "%40"),
                        "argv4=systemd-stdio-bridge"])
    t0 = time.monotonic()
    r = hosts.qmachinectl("a", "--address=" + address, "console", name, timeout=60)
    took = time.monotonic() - t0
    test.assertEqual(r.returncode, 1, r.stdout)
    test.assertEqual(r.stderr, "qmachinectl: OpenConsole passes a file descriptor, which "
                     "this connection to the bus cannot carry\n")
    test.assertLess(took, AT_ONCE)


class FixtureTest(TwoHostTestCase):
    """The two hosts are what the module doc of qmtest.twohost says."""

    def test_network_between_the_namespaces_only(self):
        a, b = self.hosts.a, self.hosts.b
        self.assertEqual(addresses(a), {"127.0.0.1", a.address})
        self.assertEqual(addresses(b), {"127.0.0.1", b.address})
        self.assertFalse(addresses() & {a.address, b.address},
                         "the hosts' addresses leaked into this namespace")
        # A reaches B's sshd over the veth pair, from this process and
        # from a client process started on A.
        self.assertTrue(self.hosts.tcp_reaches(a, b.address, 22))
        r = self.hosts.run("a", ["/usr/bin/python3", "-c",
                                 "import socket; socket.create_connection(('%s', 22), 5).close()"
                                 % b.address])
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_each_host_has_its_own_daemon(self):
        a, b = self.hosts.a, self.hosts.b
        self.assertNotEqual(self.env.system_address, self.env_b.system_address)
        self.assertEqual(netns_inode(self.env.daemon.pid), a.netns.inode)
        self.assertEqual(netns_inode(self.env_b.daemon.pid), b.netns.inode)
        self.create_machine_on(self.conn_b, "only-on-b", args=qmtest.none_args())
        names_b = [m[0] for m in self.manager("ListMachines", None, "(a(ssuo))", conn=self.conn_b)]
        names_a = [m[0] for m in self.manager("ListMachines", None, "(a(ssuo))")]
        self.assertEqual(names_b, ["only-on-b"])
        self.assertEqual(names_a, [])

    def test_qemu_runs_in_its_hosts_namespace(self):
        path = self.create_machine_on(self.conn_b, "vm", args=qmtest.none_args())
        self.launch_on(self.conn_b, path)
        pid = self.mprop_on(self.conn_b, path, "Pid")
        self.assertEqual(netns_inode(pid), self.hosts.b.netns.inode)
        # A's leftover checks leave B's QEMU alone, B's see it.
        self.assertEqual(self.env.qemu_pids(), [])
        self.assertEqual(self.env_b.qemu_pids(), [pid])

    def test_restarted_daemon_stays_in_its_namespace(self):
        """What migration tests do to B (restart_daemon) keeps it on B."""
        self.create_machine_on(self.conn_b, "kept", args=qmtest.none_args(), persistent=True)
        self.env_b.restart_daemon()
        self.assertEqual(netns_inode(self.env_b.daemon.pid), self.hosts.b.netns.inode)
        names = [m[0] for m in self.manager("ListMachines", None, "(a(ssuo))", conn=self.conn_b)]
        self.assertEqual(names, ["kept"])

    def test_busctl_h_reaches_b(self):
        r = self.hosts.run("a", ["busctl", "-H", self.hosts.b.ssh_target, "tree",
                                 qmtest.BUS_NAME])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("/org/qmachine/QMachine1", r.stdout)

    def test_ssh_session_on_b(self):
        r = self.hosts.run("a", ["ssh", self.hosts.b.ssh_target,
                                 'echo "$DBUS_SYSTEM_BUS_ADDRESS"; command -v qmachinectl'])
        self.assertEqual(r.returncode, 0, r.stderr)
        bus, ctl = r.stdout.splitlines()
        self.assertEqual(bus, "unix:path=" + self.env_b.path("bus", "system_bus_socket"))
        self.assertEqual(os.path.realpath(ctl), os.path.realpath(qmtest.twohost.qmachinectl_binary()))

    def mprop_on(self, conn, path, name):
        return self.get_property(path, qmtest.MACHINE_IFACE, name, conn=conn)


class TeardownTest(unittest.TestCase):
    """Stopping the fixture leaves no process, namespace or file."""

    def test_stop_leaves_nothing(self):
        reason = TwoHosts.unavailable()
        if reason:
            self.skipTest(reason)
        hosts = TwoHosts()
        try:
            hosts.start()
        except qmtest.twohost.Unavailable as e:
            hosts.stop(check=False)
            self.skipTest(str(e))
        print("two hosts started in %.2f s" % hosts.startup_seconds, file=sys.stderr)
        # a session that stays open, and a QEMU on B
        session = hosts.popen("a", ["ssh", hosts.b.ssh_target, "sleep 600"])
        conn = hosts.b.env.connect()
        path = conn.call_sync(qmtest.BUS_NAME, qmtest.MANAGER_PATH, qmtest.MANAGER_IFACE,
                              "CreateMachine",
                              GLib.Variant("(sa{sv})", ("vm", qmtest.config_variant(
                                  {"args": qmtest.none_args()}))),
                              None, 0, 30000, None).unpack()[0]
        conn.call_sync(qmtest.BUS_NAME, path, qmtest.MACHINE_IFACE, "Launch", None, None, 0,
                       60000, None)
        ok = qmtest.iterate_until(lambda: any(
            "sleep" in " ".join(qmtest.proc_cmdline(p) or []) for p in hosts.b.netns.pids()), 10)
        self.assertTrue(ok, "no ssh session on B")
        pids = hosts.pids_of(hosts.a) | hosts.pids_of(hosts.b) | {session.pid}
        problems = hosts.stop()
        session.wait(10)
        self.assertEqual(problems, [])
        self.assertEqual([p for p in pids if qmtest.pid_alive(p)], [])
        netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        self.assertNotIn(hosts.a.netns.name, netns)
        self.assertNotIn(hosts.b.netns.name, netns)
        self.assertFalse(os.path.exists(hosts.tmp))


class RemoteCtlTest(TwoHostTestCase):
    """qmachinectl -H root@B on host A."""

    def setUp(self):
        super().setUp()
        self.target = self.hosts.b.ssh_target

    def ctl_a(self, *args, **kw):
        return self.hosts.qmachinectl("a", *args, **kw)

    def ctl_ok(self, *args, **kw):
        r = self.ctl_a(*args, **kw)
        self.assertEqual(r.returncode, 0, "qmachinectl %s: %r" % (" ".join(args), r.stderr))
        return r.stdout

    def running_none_on_b(self, name, **config):
        path = self.create_machine_on(self.conn_b, name, args=qmtest.none_args(), **config)
        self.launch_on(self.conn_b, path)
        return path

    def test_list_status_qmp(self):
        path = self.running_none_on_b("remote-vm")
        pid = self.get_property(path, qmtest.MACHINE_IFACE, "Pid", conn=self.conn_b)
        out = self.ctl_ok("-H", self.target, "list")
        self.assertRegex(out, r"\nremote-vm\s+running\s+%d\n" % pid)
        self.assertNotIn("remote-vm", self.ctl_ok("list"))
        # --host= is the same option; the last of -H/--address/--session wins
        self.assertIn("remote-vm", self.ctl_ok("--session", "--host=" + self.target, "list"))
        out = self.ctl_ok("status", "remote-vm", "-H", self.target)
        self.assertRegex(out, r"(?m)^ *Name: remote-vm$")
        self.assertRegex(out, r"(?m)^ *State: running since .*; \d+s ago$")
        self.assertRegex(out, r"(?m)^ *Pid: %d$" % pid)
        out = self.ctl_ok("-H", self.target, "qmp", "remote-vm", "query-status")
        self.assertEqual(json.loads(out)["return"]["status"], "running")
        # commands that change things act on B
        self.ctl_ok("-H", self.target, "pause", "remote-vm")
        self.assertEqual(self.get_property(path, qmtest.MACHINE_IFACE, "RunState",
                                           conn=self.conn_b), "paused")
        r = self.ctl_a("status", "remote-vm")
        self.assertEqual(r.returncode, 1)
        self.assertIn("remote-vm", r.stderr)

    def test_bad_hosts(self):
        r = self.ctl_a("-H", "-oProxyCommand=true", "list")
        self.assertEqual(r.returncode, 2, r.stderr)
        r = self.ctl_a("-H", "", "list")
        self.assertEqual(r.returncode, 2, r.stderr)
        # nobody listens on A's own address: a quick, clear failure
        r = self.ctl_a("-H", "root@" + self.hosts.a.address, "list", timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("qmachinectl: ", r.stderr)

    def test_fd_methods_fail_at_once(self):
        """sd-bus's remote transport (what -H uses) cannot carry fds: a
        method that passes one fails at once with the documented error."""
        self.running_none_on_b("con", console=True)
        assert_console_fails_at_once_over_ssh(self, self.hosts, "con")
        # B's daemon never saw an OpenConsole: no console client there.
        self.assertEqual(self.env_b.daemon.poll(), None)

    def test_python_client_over_ssh(self):
        self.running_none_on_b("py-vm", console=True)
        self.create_none_machine("on-a")
        with self.hosts.client_side("a"):
            mgr = qmachine.connect(host=self.target)
        ssh = mgr._bus.ssh.get_identifier()
        try:
            self.assertEqual([m.name for m in mgr.list_machines()], ["py-vm"])
            m = mgr.get_machine("py-vm")
            self.assertEqual(m.command("query-status")["status"], "running")
            self.assertEqual(m.state, "running")
            for call in (m.open_console,
                         lambda: m.send_fd("x", 0),
                         lambda: m.qmp_with_fd("getfd", 0, fdname="x"),
                         lambda: m.add_fd(0, 1)):
                t0 = time.monotonic()
                with self.assertRaises(qmachine.NoFdPassing) as cm:
                    call()
                self.assertLess(time.monotonic() - t0, AT_ONCE)
                self.assertIn("cannot cross ssh to %s" % self.target, str(cm.exception))
            # the connection still works after them
            self.assertEqual(m.command("query-status")["status"], "running")
        finally:
            mgr.close()
        self.assertFalse(qmtest.pid_alive(int(ssh)), "ssh outlived the connection")

    def test_python_client_unreachable_host(self):
        with self.hosts.client_side("a"):
            with self.assertRaises(qmachine.DBusError):
                qmachine.connect(host="root@" + self.hosts.a.address)


class RemoteConsoleTest(TwoHostTestCase):
    """`qmachinectl -H root@B console NAME` runs qmachinectl console on B
    through ssh, with the real test guest on B's console."""

    def guest_on_b(self, name):
        path = self.create_machine_on(self.conn_b, name, **guest_config())
        self.launch_on(self.conn_b, path)
        ok = qmtest.iterate_until(lambda: BANNER in self.console_output_b(path), 120)
        self.assertTrue(ok, "the guest on B did not boot: %r" % self.console_output_b(path)[-2000:])
        return path

    def console_output_b(self, path):
        return bytes(self.call(path, qmtest.MACHINE_IFACE, "GetConsoleOutput", None, "(ay)",
                               conn=self.conn_b))

    def test_console_over_ssh(self):
        self.guest_on_b("guest")
        target = self.hosts.b.ssh_target
        # Without a terminal: stdin goes to the console, the console to stdout.
        r = self.hosts.qmachinectl("a", "-H", target, "console", "guest", "--drain=2",
                                   input="echo piped-$((40+2))\n", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("piped-42", r.stdout)
        # With a terminal: ssh -t, Ctrl-] leaves.
        master, slave = pty.openpty()
        try:
            proc = self.hosts.popen("a", [qmtest.twohost.qmachinectl_binary(), "-H", target,
                                          "console", "guest"],
                                    stdin=slave, stdout=slave, stderr=slave,
                                    start_new_session=True)
            os.close(slave)
            slave = None
            out = self.read_pty(master, rb"Connected to the console of guest", proc)
            os.write(master, b"echo tty-$((6*7))\r")
            out = self.read_pty(master, rb"tty-42", proc)
            os.write(master, CTRL_RIGHT_BRACKET)
            rc = proc.wait(timeout=30)
            self.assertEqual(rc, 0, out[-2000:])
        finally:
            if slave is not None:
                os.close(slave)
            os.close(master)
        # the console -H session did not leave anything behind on B
        ok = qmtest.iterate_until(
            lambda: not any("qmachinectl" in " ".join(qmtest.proc_cmdline(p) or [])
                            for p in self.hosts.b.netns.pids()), 10)
        self.assertTrue(ok, "qmachinectl console still runs on B")

    def read_pty(self, fd, pattern, proc, timeout=60.0):
        data = b""
        deadline = time.monotonic() + timeout
        while not re.search(pattern, data):
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                self.fail("no %r on the terminal (exit %r); got %r"
                          % (pattern, proc.poll(), data[-2000:]))
            r, _, _ = select.select([fd], [], [], min(left, 0.5))
            if r:
                try:
                    data += os.read(fd, 65536)
                except OSError:
                    pass
        return data


if __name__ == "__main__":
    qmtest.main()
