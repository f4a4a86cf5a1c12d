#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""QEMU is not trusted: a fake QEMU (fake_qemu.py) splits messages, batches
them, sends garbage, a 17 MiB line, or closes the socket mid-message. The
daemon survives each, keeps supervising the process, and answers callers
with errors instead of hanging. Also: the console is drained with no client,
a client leaving mid-call, and VMs outliving the daemon's SIGTERM."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import MACHINE_IFACE, err, pid_alive  # noqa: E402

FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_qemu.py")


class UntrustedQmpTest(qmtest.QMTestCase):

    def create_fake(self, name, mode="normal", **config):
        args = list(config.pop("args", [])) + ["--fake-mode=" + mode]
        return self.create_machine(name, binary=FAKE, args=args, **config)

    def assert_supervised_then_kill(self, path):
        """The connection is gone but the process is still ours."""
        pid = self.mprop(path, "Pid")
        self.assertTrue(pid and pid_alive(pid))
        self.assertEqual(self.mprop(path, "State"), "running")
        self.expect_error(err("QmpDisconnected"), self.qmp, path, "query-status")
        self.kill(path)
        self.assertEqual(self.mprop(path, "State"), "failed")
        self.assertEqual(self.mprop(path, "ExitCode"), -9)
        self.assertEqual(self.mprop(path, "Pid"), 0)
        self.assert_no_test_processes()
        self.assertEqual(self.sockets_under(self.env.path("run")), [])
        self.assert_daemon_answers()

    def test_split_and_batched_messages(self):
        path = self.create_fake("split", "split")
        events = self.record(MACHINE_IFACE, "Event", path)
        self.launch(path)
        self.assertEqual(self.mprop(path, "QemuVersion"), "9.9.9")
        self.assertEqual(self.command(path, "query-status")["status"], "running")
        # Three events and the reply arrive in one read.
        self.assertEqual(self.command(path, "x-burst"), {"burst": 3})
        got = [(name, seq) for _s, e in self.get_events(path) for name, seq in [(e["event"], _s)]]
        self.assertEqual(got, [("X_ONE", 1), ("X_TWO", 2), ("X_THREE", 3)])
        self.assertTrue(events.wait(lambda s: len(s) >= 3))
        self.assertEqual([a[0] for a in events.args()], ["X_ONE", "X_TWO", "X_THREE"])
        self.assertEqual([a[1] for a in events.args()], ['{"n":1}', '{"n":2}', "{}"])
        self.assertEqual(self.mprop(path, "EventSequence"), 3)
        e = self.expect_error(err("QmpError"), self.command, path, "no-such-command")
        self.assertIn("CommandNotFound", e.text)
        self.shutdown(path, False, 10)
        self.assertEqual(self.mprop(path, "State"), "stopped")
        self.assertEqual(self.mprop(path, "ExitCode"), 0)

    def test_garbage_after_handshake(self):
        path = self.create_fake("garbage")
        self.launch(path)
        e = self.expect_error(err("QmpDisconnected"), self.qmp, path, "x-garbage")
        self.assertIn("invalid JSON", e.text)
        self.assert_supervised_then_kill(path)

    def test_oversize_line(self):
        path = self.create_fake("oversize")
        self.launch(path)
        e = self.expect_error(err("QmpDisconnected"), self.qmp, path, "x-oversize")
        self.assertIn("size limit", e.text)
        self.assertIn("QMP", self.env.daemon_output())
        self.assert_supervised_then_kill(path)

    def test_eof_mid_message(self):
        path = self.create_fake("eof")
        self.launch(path)
        pending = self.call_async(path, MACHINE_IFACE, "Qmp",
                                  qmtest.GLib.Variant("(ss)", ("x-hang", "")), "(s)")
        self.expect_error(err("QmpDisconnected"), self.qmp, path, "x-eof")
        with self.assertRaises(qmtest.DBusCallError) as cm:
            pending.wait(10)
        self.assertEqual(cm.exception.name, err("QmpDisconnected"))
        self.assert_supervised_then_kill(path)

    def test_soft_shutdown_without_monitor_uses_sigterm(self):
        path = self.create_fake("eof2")
        self.launch(path)
        self.expect_error(err("QmpDisconnected"), self.qmp, path, "x-eof")
        t0 = time.monotonic()
        self.shutdown(path, False, 10)
        self.assertLess(time.monotonic() - t0, 5, "SIGTERM, not the timeout")
        self.assertEqual(self.mprop(path, "ExitCode"), -signal.SIGTERM)
        self.assertEqual(self.mprop(path, "Pid"), 0)
        self.assert_no_test_processes()

    def test_garbage_instead_of_greeting(self):
        path = self.create_fake("badgreeting", "garbage-greeting")
        t0 = time.monotonic()
        e = self.expect_error(err("LaunchFailed"), self.launch, path)
        self.assertLess(time.monotonic() - t0, 10, "no waiting for the handshake timeout")
        self.assertIn("invalid JSON", e.text)
        self.assertIn("fake qemu starting", e.text, "the output is in the message")
        self.assertEqual(self.mprop(path, "State"), "failed")
        self.assert_no_test_processes()
        self.assertEqual(self.sockets_under(self.env.path("run")), [])
        self.assert_daemon_answers()

    def test_console_drained_without_client(self):
        path = self.create_fake("flood", "console-flood", console=True)
        self.launch(path)
        log = os.path.join(self.mprop(path, "LogDirectory"), "console.log")

        def flooded():
            try:
                with open(log, "rb") as f:
                    return f.read().endswith(b"FLOOD-DONE\n")
            except OSError:
                return False
        self.assertTrue(qmtest.iterate_until(flooded, 20), "the daemon drained the console")
        self.assertGreaterEqual(os.path.getsize(log), 4 * 1024 * 1024)
        self.assertEqual(self.command(path, "query-status")["status"], "running")
        self.shutdown(path, False, 10)
        self.assertEqual(self.sockets_under(self.env.path("run")), [])

    def test_client_leaves_mid_call(self):
        path = self.create_fake("leaver")
        self.launch(path)
        other = self.env.connect()
        self.call_async(path, MACHINE_IFACE, "WaitEvent",
                        qmtest.GLib.Variant("(a(ss)td)", ([("NEVER", "")], 0, -1.0)), "(ts)",
                        conn=other)
        self.call_async(path, MACHINE_IFACE, "Qmp",
                        qmtest.GLib.Variant("(ss)", ("x-hang", "")), "(s)", conn=other)
        qmtest.iterate_for(0.3)
        other.close_sync(None)
        qmtest.iterate_for(0.3)
        self.assert_daemon_answers()
        self.assertEqual(self.command(path, "query-status")["status"], "running")
        self.shutdown(path, False, 10)
        self.assertEqual(self.mprop(path, "State"), "stopped")

    def test_vm_outlives_daemon_sigterm(self):
        path = self.create_none_machine("survivor")
        self.launch(path)
        pid = self.mprop(path, "Pid")
        self.assertEqual(self.env.stop_daemon(), 0)
        time.sleep(0.3)
        self.assertTrue(pid_alive(pid), "SIGTERM to the daemon leaves VMs running")
        os.kill(pid, signal.SIGKILL)
        qmtest.reap(pid)


if __name__ == "__main__":
    qmtest.main()
