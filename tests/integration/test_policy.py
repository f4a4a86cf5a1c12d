#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The D-Bus policy we ship (data/org.qmachine.QMachine1.conf), included by
the private bus: only root owns the name, everybody may talk to it and
hear its signals."""

import os
import subprocess
import sys
import textwrap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

# Runs as nobody: prints one line per result.
CLIENT = textwrap.dedent("""
    import sys
    from gi.repository import Gio, GLib
    conn = Gio.bus_get_sync(Gio.BusType.SYSTEM, None)
    what = sys.argv[1]
    def call(dest, path, iface, method, args, rtype):
        try:
            r = conn.call_sync(dest, path, iface, method, args,
                               GLib.VariantType.new(rtype) if rtype else None,
                               Gio.DBusCallFlags.NONE, 10000, None)
            print("OK", r.unpack())
        except GLib.Error as e:
            print("ERR", Gio.DBusError.get_remote_error(e))
        sys.stdout.flush()
    if what == "hello":
        print(conn.get_unique_name(), flush=True)
        sys.stdin.read()
    elif what == "own":
        call("org.freedesktop.DBus", "/org/freedesktop/DBus",
             "org.freedesktop.DBus", "RequestName",
             GLib.Variant("(su)", ("org.qmachine.QMachine1", 4)), "(u)")
    elif what == "talk":
        call("org.qmachine.QMachine1", "/org/qmachine/QMachine1",
             "org.freedesktop.DBus.Peer", "Ping", None, None)
        call("org.qmachine.QMachine1", "/org/qmachine/QMachine1",
             "org.freedesktop.DBus.Properties", "Get",
             GLib.Variant("(ss)", ("org.qmachine.QMachine1.Manager", "MachineCount")),
             "(v)")
        call("org.qmachine.QMachine1", "/org/qmachine/QMachine1",
             "org.qmachine.QMachine1.Manager", "ListMachines", None, "(a(ssuo))")
    elif what == "listen":
        got = []
        conn.signal_subscribe("org.qmachine.QMachine1",
                              "org.qmachine.QMachine1.Manager", "MachineNew",
                              "/org/qmachine/QMachine1", None, 0,
                              lambda *a: got.append(a[5].unpack()))
        conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus",
                       "org.freedesktop.DBus", "GetId", None, None, 0, 5000, None)
        print("READY", flush=True)
        ctx = GLib.MainContext.default()
        GLib.timeout_add(10000, lambda: got.append(None))
        while not got:
            ctx.iteration(True)
        print("SIGNAL", got[0], flush=True)
""")


class PolicyTest(qmtest.QMTestCase):

    def as_nobody(self, what, **kw):
        return subprocess.Popen(NOBODY + ["/usr/bin/python3", "-c", CLIENT, what],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd="/", **kw)

    def unix_user(self, name):
        """The uid of the connection that owns a bus name, as the bus saw
        it connect (None if nobody owns it)."""
        return qmtest.ask_bus(self.conn, "GetConnectionUnixUser", name, "(u)")

    def test_root_owns_the_name(self):
        # The daemon runs as root and got the name (setUp waited for it).
        self.assertEqual(self.unix_user(qmtest.BUS_NAME), 0)
        # The check tells owners apart: nobody's connection owns its unique
        # name, and the same question gives nobody's uid, not 0.
        p = self.as_nobody("hello", stdin=subprocess.PIPE)
        try:
            unique = p.stdout.readline().strip()
            self.assertTrue(unique.startswith(":"), unique)
            self.assertEqual(self.unix_user(unique), 65534)
        finally:
            p.communicate(timeout=30)  # closes its stdin: it exits

    def test_others_cannot_own_the_name(self):
        p = self.as_nobody("own")
        out, errout = p.communicate(timeout=30)
        self.assertEqual(out.strip(), "ERR org.freedesktop.DBus.Error.AccessDenied",
                         errout)

    def test_others_may_call(self):
        p = self.as_nobody("talk")
        out, errout = p.communicate(timeout=30)
        lines = out.strip().splitlines()
        self.assertEqual(len(lines), 3, out + errout)
        for line in lines:
            self.assertTrue(line.startswith("OK"), out + errout)

    def test_others_receive_signals(self):
        p = self.as_nobody("listen")
        try:
            self.assertEqual(p.stdout.readline().strip(), "READY")
            path = self.create_machine("policy-demo")
            out, errout = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertIn("SIGNAL", out, errout)
        self.assertIn("policy-demo", out)
        self.assertIn(path, out)


if __name__ == "__main__":
    qmtest.main()
