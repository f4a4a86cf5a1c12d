#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Things going wrong: QEMU that cannot start, exits at once, never answers,
or is killed from outside. The daemon must report and clean up, never hang."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import MACHINE_IFACE, GLib, err, proc_stat  # noqa: E402

# A "QEMU" that never opens its monitor: it sleeps, and its argv names the
# script (so a leftover would be found).
SLEEPER = """#!/bin/sh
echo "sleeper starting"
exec /usr/bin/python3 -c 'import time; time.sleep(1000)' "$0" "$@"
"""


class FailuresTest(qmtest.QMTestCase):

    def assert_failed_cleanly(self, path):
        self.assertEqual(self.mprop(path, "State"), "failed")
        self.assertEqual(self.mprop(path, "Pid"), 0)
        self.assert_no_test_processes()
        rundir = self.mprop(path, "RuntimeDirectory")
        self.assertEqual(self.sockets_under(rundir), [])
        self.assertEqual(self.sockets_under(self.env.path("run")), [])
        self.assertEqual(self.manager("ListMachines", None, "(a(ssuo))")[0][1:3],
                         ("failed", 0))

    def test_nonexistent_binary(self):
        binary = self.env.path("scripts", "no-such-qemu")
        path = self.create_none_machine("nobin", binary=binary)
        e = self.expect_error(err("LaunchFailed"), self.launch, path)
        self.assertIn(binary, e.text, "the command line is in the message")
        self.assert_failed_cleanly(path)
        # It can be tried again and fails the same way.
        self.expect_error(err("LaunchFailed"), self.launch, path)
        self.assert_failed_cleanly(path)

    def test_bad_argument(self):
        path = self.create_none_machine("bogus", args=["-bogus-option"])
        e = self.expect_error(err("LaunchFailed"), self.launch, path)
        self.assertIn("-bogus-option", e.text)
        self.assertIn("invalid option", e.text, "QEMU's output is in the message")
        self.assertRegex(e.text, r"\b1\b", "the exit code is in the message")
        self.assertEqual(self.mprop(path, "ExitCode"), 1)
        self.assertIn("invalid option", self.machine(path, "GetLog", None, "(s)"))
        self.assertIn("-bogus-option", self.mprop(path, "CommandLine"))
        self.assert_failed_cleanly(path)

    def test_qemu_exits_at_once(self):
        binary = self.write_script("fake-qemu", """#!/bin/sh
echo "fake qemu says hello"
echo "fake qemu complains" >&2
exit 3
""")
        path = self.create_machine("exits", binary=binary, args=["-machine", "none"])
        t0 = time.monotonic()
        e = self.expect_error(err("LaunchFailed"), self.launch, path)
        self.assertLess(time.monotonic() - t0, 10, "noticed the exit, not a timeout")
        self.assertIn("fake qemu says hello", e.text)
        self.assertIn("fake qemu complains", e.text)
        self.assertIn(binary, e.text)
        self.assertIn("-display none", e.text)
        self.assertRegex(e.text, r"\b3\b")
        self.assertEqual(self.mprop(path, "ExitCode"), 3)
        cmdline = self.mprop(path, "CommandLine")
        self.assertEqual(cmdline[0], binary)
        log = self.machine(path, "GetLog", None, "(s)")
        self.assertIn("fake qemu says hello", log)
        self.assertIn("fake qemu complains", log)
        self.assert_failed_cleanly(path)

    def test_handshake_timeout(self):
        binary = self.write_script("sleeper", SLEEPER)
        path = self.create_machine("mute", binary=binary, qmp_timeout=1.0)
        t0 = time.monotonic()
        e = self.expect_error(err("LaunchFailed"), self.launch, path)
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, 10)
        self.assertIn(binary, e.text)
        self.assert_failed_cleanly(path)

    def test_kill_while_starting(self):
        binary = self.write_script("sleeper", SLEEPER)
        path = self.create_machine("slow", binary=binary, qmp_timeout=60.0)
        launch = self.call_async(path, MACHINE_IFACE, "Launch", None, "()")
        self.wait_property(path, "State", "starting")
        self.assertFalse(launch.done)
        pid = self.mprop(path, "Pid")
        # The monitor is not ready while starting.
        self.expect_error(err("NotRunning"), self.qmp, path, "query-status")
        self.expect_error(err("NotRunning"), self.command, path, "query-status")
        self.kill(path)
        with self.assertRaises(qmtest.DBusCallError) as cm:
            launch.wait(10)
        self.assertEqual(cm.exception.name, err("LaunchFailed"))
        if pid:
            self.assertIsNone(proc_stat(pid))
        self.assert_failed_cleanly(path)

    def test_shutdown_while_starting(self):
        binary = self.write_script("sleeper", SLEEPER)
        path = self.create_machine("slow2", binary=binary, qmp_timeout=60.0)
        launch = self.call_async(path, MACHINE_IFACE, "Launch", None, "()")
        self.wait_property(path, "State", "starting")
        self.shutdown(path, False, 2)
        with self.assertRaises(qmtest.DBusCallError) as cm:
            launch.wait(10)
        self.assertEqual(cm.exception.name, err("LaunchFailed"))
        self.assert_failed_cleanly(path)

    def test_killed_from_outside(self):
        path = self.create_none_machine("victim")
        self.launch(path)
        pid = self.mprop(path, "Pid")
        props = self.record_properties(path)
        waiter = self.wait_event_async(path, [("NEVER", "")], 0, -1)
        # A QMP command that cannot be answered: QEMU is stopped (SIGSTOP).
        os.kill(pid, signal.SIGSTOP)
        stuck = self.call_async(path, MACHINE_IFACE, "Qmp",
                                GLib.Variant("(ss)", ("query-status", "")), "(s)")
        qmtest.iterate_for(0.3)
        self.assertFalse(waiter.done)
        self.assertFalse(stuck.done)
        os.kill(pid, signal.SIGKILL)

        for call in (waiter, stuck):
            with self.assertRaises(qmtest.DBusCallError) as cm:
                call.wait(10)
            self.assertIn(cm.exception.name, (err("NotRunning"), err("QmpDisconnected")),
                          cm.exception.text)
        self.wait_property(path, "State", "failed")
        self.assertEqual(self.mprop(path, "ExitCode"), -9)
        self.assertEqual(self.mprop(path, "Pid"), 0)
        self.assertTrue(qmtest.iterate_until(lambda: proc_stat(pid) is None, 5),
                        "the daemon reaped QEMU")
        self.assertTrue(props.wait(lambda s: "failed" in qmtest.changed_values(props, "State")))
        self.assertEqual(self.sockets_under(self.mprop(path, "RuntimeDirectory")), [])
        # Calls now fail at once.
        self.expect_error(err("NotRunning"), self.qmp, path, "query-status")
        # And it can start again.
        self.launch(path)
        self.assertEqual(self.command(path, "query-status")["status"], "running")
        self.shutdown(path, False, 10)

    def test_qemu_exits_by_itself(self):
        # Exiting without being asked is a failure, even with status 0.
        path = self.create_none_machine("selfexit")
        self.launch(path)
        pid = self.mprop(path, "Pid")
        os.kill(pid, signal.SIGTERM)
        self.wait_property(path, "State", "failed")
        self.assertEqual(self.mprop(path, "Pid"), 0)
        code = self.mprop(path, "ExitCode")
        self.assertIn(code, (0, -15), "QEMU exits 0 on SIGTERM; -15 if it died of it")
        events = [e["event"] for _s, e in self.get_events(path)]
        # QEMU reports the signal as a host SHUTDOWN.
        if "SHUTDOWN" in events:
            seq, ev = self.wait_event(path, [("SHUTDOWN", "")], 0, 0)
            self.assertEqual(ev["data"]["guest"], False)

    def test_qmp_timeout_on_stuck_qemu(self):
        path = self.create_none_machine("stuck", qmp_timeout=1.0)
        self.launch(path)
        pid = self.mprop(path, "Pid")
        os.kill(pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            with self.assertRaises(qmtest.DBusCallError) as cm:
                self.qmp(path, "query-status")
            self.assertLess(time.monotonic() - t0, 10)
            self.assertIn(cm.exception.name, (err("Timeout"), err("QmpDisconnected"),
                                               err("QmpError"), err("NotRunning")),
                          cm.exception.text)
        finally:
            os.kill(pid, signal.SIGCONT)
        # Kill always works.
        self.kill(path)
        self.assertEqual(self.mprop(path, "State"), "failed")


if __name__ == "__main__":
    qmtest.main()
