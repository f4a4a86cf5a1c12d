#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The daemon restarts (SIGTERM) or crashes (SIGKILL) in the middle of a
Save or of a Restore; VMs outlive it. What the user gets:

Save: its caller gets an error (the state it has is not reported as a
success); the restarted daemon ends the save and the guest runs on as
before, in the same QEMU.

Restore: the restarted daemon watches the load to its end: the restored
guest runs (paused if asked) in the one QEMU that loaded it; a state that
never arrives whole leaves the machine failed with no QEMU left."""

import fcntl
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from test_save_restore import FdCall, SaveRestoreCase, read_all, small_pc_args  # noqa: E402

# fcntl's names for them came with Python 3.10; Linux's numbers
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)


class Writer(threading.Thread):
    """Writes @data into pipe @fd: up to @first bytes, then (once
    go_on is set) the rest, then closes it."""

    def __init__(self, fd, data, first):
        super().__init__(daemon=True)
        self.fd, self.data, self.first = fd, data, first
        self.halfway = threading.Event()
        self.go_on = threading.Event()

    def write(self, data):
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.fd, view)
            except BrokenPipeError:
                return
            view = view[n:]

    def run(self):
        self.write(self.data[:self.first])
        self.halfway.set()
        self.go_on.wait(120)
        self.write(self.data[self.first:])
        os.close(self.fd)


class SaveRestartTest(SaveRestoreCase):

    def running_pc(self, name):
        path = self.create_machine(name, machine="pc", args=small_pc_args())
        self.launch(path)
        self.wait_property(path, "RunState", "running")
        return path

    def save_interrupted(self, sig):
        path = self.running_pc("sv")
        pid = self.mprop(path, "Pid")
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        try:
            # nobody reads yet: QEMU's save blocks on the full pipe
            call = FdCall(self.conn, path, "Save", w, {})
            self.assertTrue(qmtest.iterate_until(
                lambda: self.command(path, "query-migrate").get("status") == "active", 20))
        finally:
            os.close(w)
        self.assertFalse(call.done)
        self.restart_daemon(sig)
        self.assertTrue(qmtest.iterate_until(lambda: call.done, 10))
        self.assertIsInstance(call.error, qmtest.DBusCallError)
        # a blocked write only ends when someone reads
        drained = []
        reader = threading.Thread(target=lambda: drained.append(read_all(r)), daemon=True)
        reader.start()
        self.assertEqual(self.mprop(path, "Pid"), pid)
        self.wait_property(path, "RunState", "running", timeout=30)
        self.assertEqual(self.mprop(path, "State"), "running")
        self.assertEqual(self.command(path, "query-status")["status"], "running")
        self.assertNotIn(self.command(path, "query-migrate").get("status"), ("active", "setup"))
        reader.join(30)
        self.assertFalse(reader.is_alive(), "QEMU still holds the state pipe")
        self.assertEqual(self.qemu_pids(), [pid])
        # and it saves again, whole
        state, _took = self.save_to_file(path)
        self.assertGreater(os.path.getsize(state), 0)
        # (a taken-back QEMU's exit code is unknown: not our child)
        self.assertEqual(self.mprop(path, "State"), "stopped")
        self.assertEqual(self.mprop(path, "Pid"), 0)
        self.restore_from_file(path, state)
        self.assertEqual(self.mprop(path, "RunState"), "running")
        self.shutdown(path, True)
        self.assert_no_test_processes()

    def test_daemon_restarts_during_save(self):
        self.save_interrupted(signal.SIGTERM)

    def test_daemon_crashes_during_save(self):
        self.save_interrupted(signal.SIGKILL)

    def restore_interrupted(self, sig, whole=True, paused=False):
        path = self.running_pc("rs")
        state, _took = self.save_to_file(path)
        with open(state, "rb") as f:
            data = f.read()
        if not whole:
            data = data[:len(data) // 2]
        r, w = os.pipe()
        # The smallest pipe, so that a first part well past it written
        # means QEMU reads: its load began before the restart. (With a
        # 64 KiB pipe the first part could sit in it while the stopping
        # daemon had not sent migrate-incoming yet; the load then never
        # begins, and the machine rightly fails.)
        fcntl.fcntl(w, F_SETPIPE_SZ, 4096)
        self.assertGreater(len(data) // 4, 4 * fcntl.fcntl(w, F_GETPIPE_SZ))
        writer = Writer(w, data, len(data) // 4)
        try:
            call = FdCall(self.conn, path, "Restore", r, {"paused": qmtest.GLib.Variant("b", paused)})
        finally:
            os.close(r)
        writer.start()
        self.addCleanup(writer.go_on.set)
        self.assertTrue(writer.halfway.wait(30))
        self.wait_property(path, "Pid", lambda p: p > 0)
        pid = self.mprop(path, "Pid")
        self.assertEqual(self.mprop(path, "State"), "starting")
        self.restart_daemon(sig)
        self.assertTrue(qmtest.iterate_until(lambda: call.done, 10))
        self.assertIsInstance(call.error, qmtest.DBusCallError)
        self.assertEqual(self.mprop(path, "Pid"), pid)
        writer.go_on.set()
        writer.join(60)
        if not whole:
            self.wait_property(path, "State", "failed", timeout=30)
            self.assertEqual(self.mprop(path, "Pid"), 0)
            self.assert_no_test_processes()
            return
        want = "paused" if paused else "running"
        self.wait_property(path, "RunState", want, timeout=30)
        self.assertEqual(self.mprop(path, "State"), "running")
        self.assertEqual(self.command(path, "query-status")["status"], want)
        self.assertEqual(self.qemu_pids(), [pid])
        self.shutdown(path, True)
        self.assert_no_test_processes()

    def test_daemon_restarts_during_restore(self):
        self.restore_interrupted(signal.SIGTERM)

    def test_daemon_crashes_during_restore_paused(self):
        self.restore_interrupted(signal.SIGKILL, paused=True)

    def test_daemon_restarts_during_truncated_restore(self):
        self.restore_interrupted(signal.SIGTERM, whole=False)


if __name__ == "__main__":
    qmtest.main()
