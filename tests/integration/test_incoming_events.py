#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A migration's destination (PrepareIncoming) may wait for its source
for hours: the daemon does not poll QEMU meanwhile. QEMU's MIGRATION
events say when the guest arrived or the migration failed; one
query-migrate then reads the outcome. A fake QEMU (fake_qemu.py, mode
incoming) logs every QMP command it is sent and plays the destination:
a client on its migration socket is the source."""

import os
import re
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import GLib  # noqa: E402

FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_qemu.py")
# At the old 50 ms polls, this wait made some 40 query-migrate.
WAIT = 2.0


class IncomingEventsTest(qmtest.QMTestCase):

    def prepare(self, name):
        config = qmtest.config_variant({"binary": FAKE, "args": ["--fake-mode=incoming"]})
        return self.manager("PrepareIncoming", GLib.Variant("(sa{sv}a{sv})", (name, config, {})), "(os)")

    def commands(self, path):
        """The QMP commands the fake QEMU got so far, in order."""
        return re.findall(r"^COMMAND (\S+)", self.machine(path, "GetLog", None, "(s)"), re.M)

    def source(self, uri, line):
        """Connect to the destination as its source and tell the fake how
        the migration ends ("ok": completed)."""
        self.assertTrue(uri.startswith("unix:"), uri)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.connect(uri[len("unix:"):])
        s.sendall(line + b"\n")

    def names(self):
        return [m[0] for m in self.manager("ListMachines", None, "(a(ssuo))")]

    def test_waiting_destination_is_not_polled(self):
        path, uri = self.prepare("wait")
        qmtest.iterate_for(WAIT)
        cmds = self.commands(path)
        self.assertIn("migrate-incoming", cmds)
        # events are on before QEMU listens
        self.assertIn("migrate-set-capabilities", cmds[:cmds.index("migrate-incoming")])
        self.assertNotIn("query-migrate", cmds)
        self.assertEqual(self.mprop(path, "State"), "starting")
        self.assertEqual(self.mprop(path, "RunState"), "inmigrate")
        # the source comes: the completed event ends the wait at once
        self.source(uri, b"ok")
        self.wait_property(path, "State", "running", timeout=10)
        cmds = self.commands(path)
        self.assertEqual(cmds.count("query-migrate"), 1, cmds)
        self.assertIn("cont", cmds[cmds.index("query-migrate"):])
        self.shutdown(path, True)
        self.assert_no_test_processes()

    def test_failed_event_removes_the_destination(self):
        path, uri = self.prepare("fails")
        pid = self.mprop(path, "Pid")
        self.source(uri, b"broken")
        self.assertTrue(qmtest.iterate_until(lambda: "fails" not in self.names(), 10))
        self.assertFalse(qmtest.pid_alive(pid))
        self.assert_no_test_processes()

    def test_restarted_daemon_asks_once(self):
        """Events sent while no daemon listened are lost: the successor
        asks QEMU once how the migration stands, then waits for events."""
        path, uri = self.prepare("restart")
        pid = self.mprop(path, "Pid")
        self.restart_daemon()
        self.assertEqual(self.mprop(path, "Pid"), pid)
        self.assertEqual(self.mprop(path, "State"), "starting")
        qmtest.iterate_for(WAIT)
        self.assertEqual(self.commands(path).count("query-migrate"), 1)
        self.source(uri, b"ok")
        self.wait_property(path, "State", "running", timeout=10)
        self.assertEqual(self.commands(path).count("query-migrate"), 2)
        self.shutdown(path, True)
        self.assert_no_test_processes()


if __name__ == "__main__":
    qmtest.main()
