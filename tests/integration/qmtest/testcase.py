# SPDX-License-Identifier: LGPL-2.1-or-later
"""QMTestCase: each test runs against its own bus and daemon."""

import json
import os
import re
import signal
import stat
import sys
import time
import unittest

from .bus import Environment
from .calls import (AsyncCall, DBusCallError, GLib, Gio, SignalRecorder,
                    config_variant, convert_error, iterate_for, iterate_until,
                    unpack_reply)
from .names import (BUS_NAME, MACHINE_IFACE, MANAGER_IFACE, MANAGER_PATH,
                    PROPS_IFACE)
from .processes import pid_alive, proc_cmdline
from .qemu import none_args


class QMTestCase(unittest.TestCase):
    """Each test runs against its own bus and daemon.

    self.env   the Environment
    self.conn  a Gio.DBusConnection to the private bus
    """

    daemon_args = ()
    # Start the polkit mock (self.env.polkit) before the daemon.
    polkit_mock = False
    # Run the daemon with --session on a private session bus.
    session_bus = False

    # The Environment class to run (a subclass may wrap the daemon).
    environment_class = None

    def setUp(self):
        cls = self.environment_class or Environment
        self.env = cls(self.daemon_args, polkit=self.polkit_mock,
                       session=self.session_bus)
        try:
            self.env.start()
        except Exception:
            self.env.stop(check=False)
            raise
        self.conn = self.env.connect()
        self.recorders = []

    def tearDown(self):
        for r in self.recorders:
            r.close()
        self.env.stop()
        if self.env.problems:
            out = self.env.daemon_output()
            self.fail("; ".join(self.env.problems) + "\n--- qmachined output ---\n"
                      + out[-20000:])

    # -- calls

    def call(self, path, iface, method, args=None, reply_type=None,
             timeout=60.0, conn=None):
        """Synchronous call; returns the unpacked reply (one value when the
        reply has one, a tuple when more, None when none) or raises
        DBusCallError."""
        conn = conn or self.conn
        rt = GLib.VariantType.new(reply_type) if reply_type else None
        try:
            r = conn.call_sync(BUS_NAME, path, iface, method, args, rt,
                               Gio.DBusCallFlags.NONE, int(timeout * 1000), None)
        except GLib.Error as e:
            raise convert_error(e) from None
        return unpack_reply(r)

    def call_async(self, path, iface, method, args=None, reply_type=None,
                   timeout=60.0, conn=None):
        return AsyncCall(conn or self.conn, path, iface, method, args,
                         reply_type, timeout)

    def expect_error(self, name, fn, *args, **kwargs):
        """Run fn(*args); assert it raises the D-Bus error `name`.
        Returns the error (with .text)."""
        try:
            r = fn(*args, **kwargs)
        except DBusCallError as e:
            self.assertEqual(e.name, name, "wrong error; message: %s" % e.text)
            return e
        self.fail("expected %s, got a reply: %r" % (name, r))

    def manager(self, method, args=None, reply_type=None, **kw):
        return self.call(MANAGER_PATH, MANAGER_IFACE, method, args, reply_type, **kw)

    def machine(self, path, method, args=None, reply_type=None, **kw):
        return self.call(path, MACHINE_IFACE, method, args, reply_type, **kw)

    def get_property(self, path, iface, name, conn=None):
        return self.call(path, PROPS_IFACE, "Get",
                         GLib.Variant("(ss)", (iface, name)), "(v)", conn=conn)

    def get_all(self, path, iface, conn=None):
        return self.call(path, PROPS_IFACE, "GetAll",
                         GLib.Variant("(s)", (iface,)), "(a{sv})", conn=conn)

    def get_property_variant(self, path, iface, name, conn=None):
        """The property's GLib.Variant itself (to check its type)."""
        conn = conn or self.conn
        try:
            r = conn.call_sync(BUS_NAME, path, PROPS_IFACE, "Get",
                               GLib.Variant("(ss)", (iface, name)),
                               GLib.VariantType.new("(v)"),
                               Gio.DBusCallFlags.NONE, 30000, None)
        except GLib.Error as e:
            raise convert_error(e) from None
        return r.get_child_value(0).get_variant()

    def mprop(self, path, name):
        return self.get_property(path, MACHINE_IFACE, name)

    def manager_prop(self, name):
        return self.get_property(MANAGER_PATH, MANAGER_IFACE, name)

    # -- machines

    def create_machine(self, name, **config):
        """CreateMachine(name, config) → object path. Keyword arguments are
        config keys (underscores stand for dashes)."""
        return self.manager("CreateMachine",
                            GLib.Variant("(sa{sv})", (name, config_variant(config))),
                            "(o)")

    def create_none_machine(self, name, **config):
        """A `-machine none` QEMU, the fastest one to launch."""
        args = none_args() + list(config.pop("args", []))
        return self.create_machine(name, args=args, **config)

    def launch(self, path, timeout=60.0):
        return self.machine(path, "Launch", None, "()", timeout=timeout)

    def qmp(self, path, command, arguments="", conn=None):
        r = self.call(path, MACHINE_IFACE, "Qmp",
                      GLib.Variant("(ss)", (command, arguments)), "(s)", conn=conn)
        return json.loads(r)

    def command(self, path, command, arguments="", conn=None):
        r = self.call(path, MACHINE_IFACE, "Command",
                      GLib.Variant("(ss)", (command, arguments)), "(s)", conn=conn)
        return json.loads(r)

    def shutdown(self, path, hard=False, timeout=10.0):
        return self.machine(path, "Shutdown", GLib.Variant("(bd)", (hard, float(timeout))),
                            "()", timeout=max(30.0, timeout + 30.0))

    def kill(self, path):
        return self.machine(path, "Kill", None, "()")

    def wait_event(self, path, filters, after=0, timeout=10.0, conn=None):
        """WaitEvent; filters is a list of (name, match) with match a str
        or a dict (JSON-encoded here). Returns (seq, event dict or None)."""
        fl = [(n, m if isinstance(m, str) else json.dumps(m)) for n, m in filters]
        call_timeout = 60.0 if timeout < 0 else timeout + 30.0
        seq, ev = self.call(path, MACHINE_IFACE, "WaitEvent",
                            GLib.Variant("(a(ss)td)", (fl, after, float(timeout))),
                            "(ts)", timeout=call_timeout, conn=conn)
        return seq, (json.loads(ev) if ev else None)

    def wait_event_async(self, path, filters, after=0, timeout=10.0, conn=None):
        fl = [(n, m if isinstance(m, str) else json.dumps(m)) for n, m in filters]
        call_timeout = 120.0 if timeout < 0 else timeout + 30.0
        return self.call_async(path, MACHINE_IFACE, "WaitEvent",
                               GLib.Variant("(a(ss)td)", (fl, after, float(timeout))),
                               "(ts)", timeout=call_timeout, conn=conn)

    def get_events(self, path, after=0):
        return [(seq, json.loads(ev)) for seq, ev in
                self.machine(path, "GetEvents", GLib.Variant("(t)", (after,)), "(a(ts))")]

    def wait_property(self, path, name, value, timeout=10.0, iface=MACHINE_IFACE):
        """Poll a property until it equals value (or value(v) is true)."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            last = self.get_property(path, iface, name)
            if (value(last) if callable(value) else last == value):
                return last
            if time.monotonic() > deadline:
                self.fail("property %s of %s is %r, expected %r" % (name, path, last, value))
            iterate_for(0.02)

    def record(self, iface=None, member=None, path=None, arg0=None, conn=None):
        """Start recording signals from the daemon."""
        r = SignalRecorder(conn or self.conn, self.env.daemon_unique_name,
                           iface, member, path, arg0)
        self.recorders.append(r)
        return r

    # -- the serial console

    def console_output(self, path, conn=None):
        """This run's retained console output (GetConsoleOutput), bytes."""
        return bytes(self.call(path, MACHINE_IFACE, "GetConsoleOutput", None, "(ay)", conn=conn))

    def wait_console_output(self, path, pattern, timeout=60.0, start=0, conn=None, after_move=False):
        """Wait until the console output after byte `start` matches the
        bytes regex `pattern`; returns the match.

        after_move: the guest was just migrated or restored. Seen twice
        under load, never alone: the moved guest ran and its console
        stayed empty. Then the report says where the bytes stop, Enter is
        pressed once and the wait goes on: if that frees the output, the
        guest's UART lost its transmit interrupt in the move (QEMU's or
        the guest's doing: the input went through the same console
        connection)."""
        rx = re.compile(pattern)
        found = []

        def check():
            m = rx.search(self.console_output(path, conn), start)
            if m:
                found.append(m)
            return bool(m)
        ok = iterate_until(check, timeout)
        if not ok and after_move:
            print("console silent after the move:\n%s" % self.console_report(path, conn), file=sys.stderr)
            self.call(path, MACHINE_IFACE, "WriteConsole", GLib.Variant("(ay)", (b"\n",)), None, conn=conn)
            ok = iterate_until(check, timeout)
            print("after Enter: %s" % ("it goes on" if ok else "still silent"), file=sys.stderr)
        self.assertTrue(ok, "console never showed %r; tail: %r\n%s"
                        % (pattern, self.console_output(path, conn)[-2000:], self.console_report(path, conn)))
        return found[0]

    def console_report(self, path, conn=None):
        """Where console bytes could stop: the daemon's count, QEMU's
        chardev (connected or not), the guest's run state and CPU."""
        lines = []
        for what, get in (
                ("ConsoleBytes", lambda: self.get_property(path, MACHINE_IFACE, "ConsoleBytes", conn=conn)),
                ("query-status", lambda: self.qmp(path, "query-status", conn=conn)),
                ("query-chardev", lambda: self.qmp(path, "query-chardev", conn=conn)),
                ("info registers", lambda: self.qmp(
                    path, "human-monitor-command", json.dumps({"command-line": "info registers"}),
                    conn=conn)["return"][:400])):
            try:
                lines.append("%s: %s" % (what, get()))
            except Exception as e:  # noqa: BLE001 - a report, whatever fails
                lines.append("%s: %s" % (what, e))
        return "\n".join(lines)

    def type_on_console(self, path, text, conn=None):
        """Type on the console through a short-lived OpenConsole connection."""
        reply, fds = (conn or self.conn).call_with_unix_fd_list_sync(
            BUS_NAME, path, MACHINE_IFACE, "OpenConsole", None,
            GLib.VariantType.new("(h)"), Gio.DBusCallFlags.NONE, 30000, None, None)
        fd = fds.get(reply.unpack()[0])
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    def record_properties(self, path, iface=MACHINE_IFACE, conn=None):
        return self.record(PROPS_IFACE, "PropertiesChanged", path, iface, conn)

    def restart_daemon(self, sig=signal.SIGTERM, daemon_args=None):
        """Environment.restart_daemon; signal recorders made before it
        listen to the old daemon's unique name: record again after it."""
        return self.env.restart_daemon(sig, daemon_args)

    def qemu_pids(self):
        return self.env.qemu_pids()

    def live_test_processes(self):
        """Live processes of this test other than the bus and the daemon
        (QEMUs, scripts): they name the temp dir in argv or environment."""
        skip = set()
        if self.env.daemon is not None:
            skip.add(self.env.daemon.pid)
        return [p for p in self.env.leftover_pids() if p not in skip and pid_alive(p)]

    def assert_no_test_processes(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            left = self.live_test_processes()
            if not left:
                return
            if time.monotonic() > deadline:
                self.fail("processes left: %s" % [(p, proc_cmdline(p)) for p in left])
            time.sleep(0.05)

    def sockets_under(self, directory):
        """Unix sockets below a directory."""
        out = []
        for root, _dirs, files in os.walk(directory):
            for f in files:
                p = os.path.join(root, f)
                try:
                    if stat.S_ISSOCK(os.lstat(p).st_mode):
                        out.append(p)
                except OSError:
                    pass
        return out

    def assert_daemon_answers(self, machine_count=None):
        """The daemon still works: ListMachines answers and MachineCount
        agrees (and equals machine_count when given)."""
        machines = self.manager("ListMachines", None, "(a(ssuo))")
        count = self.manager_prop("MachineCount")
        self.assertEqual(count, len(machines))
        if machine_count is not None:
            self.assertEqual(count, machine_count)
        self.assertIsNone(self.env.daemon.poll(), "qmachined died")

    def write_script(self, name, text):
        """An executable shell script in the test's temp dir."""
        p = self.env.path("scripts", name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, 0o755)
        return p


def main():
    unittest.main(verbosity=2)
