#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Faults and limits: a QEMU that stops answering (SIGSTOP) costs its own
callers a Timeout and nothing else; file descriptors reach QEMU (AddFd,
SendFd); every daemon limit answers LimitExceeded and recovers.

Closed and garbage QMP streams are test_untrusted_qmp.py's business.
"""

import json
import os
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import BUS_NAME, MACHINE_IFACE, Gio, GLib, err, pid_alive  # noqa: E402

LIMIT = err("LimitExceeded")


def call_with_fds(conn, path, method, signature, values, fds, timeout=30.0):
    """A Machine method call that passes fds (h arguments are indexes into
    the fd list). Raises qmtest.DBusCallError."""
    fdlist = Gio.UnixFDList.new()
    for fd in fds:
        fdlist.append(fd)
    try:
        r, _out = conn.call_with_unix_fd_list_sync(
            BUS_NAME, path, MACHINE_IFACE, method, GLib.Variant(signature, values),
            None, Gio.DBusCallFlags.NONE, int(timeout * 1000), fdlist, None)
    except GLib.Error as e:
        raise qmtest.convert_error(e) from None
    return qmtest.unpack_reply(r)


def open_console(conn, path):
    """OpenConsole → a connected socket fd, owned by the caller."""
    try:
        r, fdlist = conn.call_with_unix_fd_list_sync(
            BUS_NAME, path, MACHINE_IFACE, "OpenConsole", None,
            GLib.VariantType.new("(h)"), Gio.DBusCallFlags.NONE, 10000, None, None)
    except GLib.Error as e:
        raise qmtest.convert_error(e) from None
    return fdlist.get(r.unpack()[0])


class FaultsTest(qmtest.QMTestCase):

    def test_stopped_qemu_times_out_alone(self):
        frozen = self.create_none_machine("frozen", qmp_timeout=1.0)
        fine = self.create_none_machine("fine", qmp_timeout=1.0)
        self.launch(frozen)
        self.launch(fine)
        pid = self.mprop(frozen, "Pid")
        os.kill(pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            pending = self.call_async(frozen, MACHINE_IFACE, "Qmp",
                                      GLib.Variant("(ss)", ("query-status", "")), "(s)")
            # Meanwhile the other VM answers at once, several times.
            for _ in range(5):
                t1 = time.monotonic()
                self.assertEqual(self.command(fine, "query-status")["status"], "running")
                self.assertLess(time.monotonic() - t1, 0.5, "the other VM is not held up")
            self.assert_daemon_answers(2)
            with self.assertRaises(qmtest.DBusCallError) as cm:
                pending.wait(10)
            took = pending.finished_at - t0
            self.assertEqual(cm.exception.name, err("Timeout"), cm.exception.text)
            self.assertGreaterEqual(took, 0.9)
            self.assertLess(took, 3.0, "qmp-timeout is 1 s")
            # The process is still there and still ours.
            self.assertEqual(self.mprop(frozen, "Pid"), pid)
            self.assertTrue(pid_alive(pid))

            # A soft shutdown cannot quit a stopped QEMU: SIGKILL after t.
            t0 = time.monotonic()
            e = self.expect_error(err("AbnormalShutdown"), self.shutdown, frozen, False, 2.0)
            took = time.monotonic() - t0
            self.assertLess(took, 2.0 + 3.0, "t + a small margin")
            self.assertIn("frozen", e.text)
        finally:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.assertEqual(self.mprop(frozen, "State"), "failed")
        self.assertEqual(self.mprop(frozen, "ExitCode"), -signal.SIGKILL)
        self.assertEqual(self.mprop(frozen, "Pid"), 0)
        self.assertFalse(pid_alive(pid))
        self.assertEqual(self.command(fine, "query-status")["status"], "running")
        self.shutdown(fine, False, 10)
        self.assertEqual(self.mprop(fine, "State"), "stopped")
        self.assert_no_test_processes()

    def test_add_fd(self):
        path = self.create_none_machine("fds")
        fd = os.open(self.env.path("scripts"), os.O_RDONLY | os.O_DIRECTORY)
        r, w = os.pipe()
        try:
            call_with_fds(self.conn, path, "AddFd", "(huss)", (0, 7, "opaque-seven", ""), [fd])
            call_with_fds(self.conn, path, "AddFd", "(huss)", (0, 9, "pipe-end", ""), [w])
        finally:
            os.close(fd)
            os.close(w)
        self.assertEqual(self.mprop(path, "State"), "defined")
        self.launch(path)
        sets = {s["fdset-id"]: s for s in self.command(path, "query-fdsets")}
        self.assertIn(7, sets)
        self.assertIn(9, sets)
        self.assertEqual([f["opaque"] for f in sets[7]["fds"]], ["opaque-seven"])
        self.assertEqual([f["opaque"] for f in sets[9]["fds"]], ["pipe-end"])
        # The fds QEMU holds are the ones we passed: the pipe's write end
        # is open in QEMU (fdinfo of its fd points at our pipe).
        qemu_pid = self.mprop(path, "Pid")
        pipe_ino = os.fstat(r).st_ino
        targets = []
        for f in sets[9]["fds"]:
            targets.append(os.readlink("/proc/%d/fd/%d" % (qemu_pid, f["fd"])))
        self.assertEqual(targets, ["pipe:[%d]" % pipe_ino])
        os.close(r)
        # Only before Launch.
        fd = os.open("/dev/null", os.O_RDONLY)
        try:
            self.expect_error(err("AlreadyRunning"), call_with_fds, self.conn, path, "AddFd",
                              "(huss)", (0, 8, "late", ""), [fd])
        finally:
            os.close(fd)
        self.shutdown(path, False, 10)
        self.assertEqual(self.mprop(path, "State"), "stopped")

    def test_qmp_with_fd(self):
        # QEMUMachine's send_fd_scm() before a command other than getfd
        # (QEMU's iotest 045 does add-fd): the fd travels with the command.
        path = self.create_none_machine("qmpfd")
        with tempfile.TemporaryFile(dir=self.env.path("scripts")) as f:
            self.expect_error(err("NotRunning"), call_with_fds, self.conn, path, "QmpWithFd",
                              "(ssh)", ("add-fd", '{"fdset-id": 4}', 0), [f.fileno()])
            self.launch(path)
            pid = self.mprop(path, "Pid")
            reply = json.loads(call_with_fds(self.conn, path, "QmpWithFd", "(ssh)",
                                             ("add-fd", '{"fdset-id": 4, "opaque": "iotest"}', 0),
                                             [f.fileno()]))
            self.assertEqual(reply["return"]["fdset-id"], 4)
            sets = {s["fdset-id"]: s for s in self.command(path, "query-fdsets")}
            self.assertEqual([x["opaque"] for x in sets[4]["fds"]], ["iotest"])
            qemu_fd = "/proc/%d/fd/%d" % (pid, sets[4]["fds"][0]["fd"])
            self.assertEqual(os.stat(qemu_fd).st_ino, os.fstat(f.fileno()).st_ino)
            # getfd through it too; a QMP error is the response, not a D-Bus error
            reply = json.loads(call_with_fds(self.conn, path, "QmpWithFd", "(ssh)",
                                             ("getfd", '{"fdname": "viaqmp"}', 0), [f.fileno()]))
            self.assertEqual(reply, {"return": {}})
            self.assertEqual(self.command(path, "closefd", json.dumps({"fdname": "viaqmp"})), {})
            reply = json.loads(call_with_fds(self.conn, path, "QmpWithFd", "(ssh)",
                                             ("no-such-command", "", 0), [f.fileno()]))
            self.assertEqual(reply["error"]["class"], "CommandNotFound")
            self.expect_error(qmtest.INVALID_ARGS, call_with_fds, self.conn, path, "QmpWithFd",
                              "(ssh)", ("add-fd", "[1]", 0), [f.fileno()])
        self.shutdown(path, False, 10)

    def test_send_fd(self):
        path = self.create_none_machine("sendfd")
        with tempfile.TemporaryFile(dir=self.env.path("scripts")) as f:
            self.expect_error(err("NotRunning"), call_with_fds, self.conn, path, "SendFd",
                              "(sh)", ("early", 0), [f.fileno()])
            self.launch(path)
            call_with_fds(self.conn, path, "SendFd", "(sh)", ("myfd", 0), [f.fileno()])
        # QEMU had it by that name: the first closefd works, the second
        # finds nothing.
        self.assertEqual(self.command(path, "closefd", json.dumps({"fdname": "myfd"})), {})
        e = self.expect_error(err("QmpError"), self.command, path, "closefd",
                              json.dumps({"fdname": "myfd"}))
        self.assertIn("myfd", e.text)
        self.expect_error(err("QmpError"), self.command, path, "closefd",
                          json.dumps({"fdname": "early"}))
        self.shutdown(path, False, 10)


class MachineLimitTest(qmtest.QMTestCase):
    daemon_args = ["--max-machines", "2"]

    def test_max_machines(self):
        self.create_none_machine("m1")
        self.create_none_machine("m2")
        e = self.expect_error(LIMIT, self.create_none_machine, "m3")
        self.assertIn("2", e.text)
        self.assert_daemon_answers(2)
        self.manager("RemoveMachine", GLib.Variant("(s)", ("m1",)))
        self.create_none_machine("m3")
        self.expect_error(LIMIT, self.create_none_machine, "m4")
        self.assert_daemon_answers(2)


class PendingCallLimitTest(qmtest.QMTestCase):
    daemon_args = ["--max-pending-calls", "4"]

    def test_max_pending_calls(self):
        path = self.create_none_machine("held")
        self.launch(path)
        greedy = self.env.connect()
        held = [self.wait_event_async(path, [("STOP", "")], after=0, timeout=60, conn=greedy)
                for _ in range(4)]
        qmtest.iterate_for(0.3)
        self.assertFalse(any(c.done for c in held))
        fifth = self.wait_event_async(path, [("STOP", "")], after=0, timeout=60, conn=greedy)
        with self.assertRaises(qmtest.DBusCallError) as cm:
            fifth.wait(10)
        self.assertEqual(cm.exception.name, LIMIT, cm.exception.text)
        self.assertFalse(any(c.done for c in held), "the held calls are not hurt")
        # Another client is not affected, neither for quick calls nor for
        # calls that wait.
        other = self.env.connect()
        self.assertEqual(self.command(path, "query-status", conn=other)["status"], "running")
        other_wait = self.wait_event_async(path, [("STOP", "")], after=0, timeout=60, conn=other)
        qmtest.iterate_for(0.2)
        self.assertFalse(other_wait.done)
        # The event comes: every held call returns it.
        self.command(path, "stop")
        for c in held + [other_wait]:
            seq, ev = c.wait(10)
            self.assertEqual(json.loads(ev)["event"], "STOP")
        # The client may hold calls again.
        again = [self.wait_event_async(path, [("RESUME", "")], after=0, timeout=60, conn=greedy)
                 for _ in range(4)]
        qmtest.iterate_for(0.2)
        self.assertFalse(any(c.done for c in again))
        self.command(path, "cont")
        for c in again:
            self.assertEqual(json.loads(c.wait(10)[1])["event"], "RESUME")
        self.assertEqual(self.command(path, "query-status", conn=greedy)["status"], "running")
        self.shutdown(path, False, 10)


class WaiterLimitTest(qmtest.QMTestCase):
    daemon_args = ["--max-waiters", "3"]

    def test_max_waiters(self):
        path = self.create_none_machine("waited")
        other = self.create_none_machine("other")
        self.launch(path)
        self.launch(other)
        conns = [self.env.connect() for _ in range(5)]
        waits = [self.wait_event_async(path, [("STOP", "")], timeout=60, conn=conns[i])
                 for i in range(3)]
        qmtest.iterate_for(0.3)
        self.assertFalse(any(c.done for c in waits))
        fourth = self.wait_event_async(path, [("STOP", "")], timeout=60, conn=conns[3])
        with self.assertRaises(qmtest.DBusCallError) as cm:
            fourth.wait(10)
        self.assertEqual(cm.exception.name, LIMIT, cm.exception.text)
        # Per machine: the other machine takes waiters.
        elsewhere = self.wait_event_async(other, [("STOP", "")], timeout=60, conn=conns[3])
        # Searching only (timeout 0) waits for nothing.
        self.assertEqual(self.wait_event(path, [("STOP", "")], timeout=0, conn=conns[4]),
                         (0, None))
        qmtest.iterate_for(0.2)
        self.assertFalse(elsewhere.done)
        self.command(path, "stop")
        for c in waits:
            self.assertEqual(json.loads(c.wait(10)[1])["event"], "STOP")
        # Room again.
        again = [self.wait_event_async(path, [("RESUME", "")], timeout=60, conn=conns[i])
                 for i in range(3)]
        self.command(path, "cont")
        for c in again:
            self.assertEqual(json.loads(c.wait(10)[1])["event"], "RESUME")
        self.command(other, "stop")
        self.assertEqual(json.loads(elsewhere.wait(10)[1])["event"], "STOP")
        self.shutdown(path, False, 10)
        self.shutdown(other, False, 10)


class ConsoleLimitTest(qmtest.QMTestCase):
    daemon_args = ["--max-console-clients", "2"]

    def test_max_console_clients(self):
        path = self.create_machine("tty", args=qmtest.pc_args(), console=True)
        self.launch(path)
        a = open_console(self.conn, path)
        b = open_console(self.conn, path)
        e = self.expect_error(LIMIT, open_console, self.conn, path)
        self.assertIn("2", e.text)
        os.close(a)
        # Once the daemon has seen the close, there is room again.
        deadline = time.monotonic() + 10
        while True:
            try:
                c = open_console(self.conn, path)
                break
            except qmtest.DBusCallError as e:
                self.assertEqual(e.name, LIMIT)
                if time.monotonic() > deadline:
                    self.fail("a closed console client still counts")
                qmtest.iterate_for(0.05)
        self.expect_error(LIMIT, open_console, self.conn, path)
        os.close(b)
        os.close(c)
        self.shutdown(path, False, 10)


class QmpArgumentLimitTest(qmtest.QMTestCase):
    daemon_args = ["--max-qmp-arguments", "1000"]

    def test_max_qmp_arguments(self):
        path = self.create_none_machine("big")
        self.launch(path)
        big = json.dumps({"pad": "x" * 2000})
        self.expect_error(LIMIT, self.qmp, path, "query-status", big)
        self.expect_error(LIMIT, self.command, path, "query-status", big)
        # Under the limit it goes to QEMU (which refuses the argument).
        small = json.dumps({"pad": "x" * 500})
        r = self.qmp(path, "query-status", small)
        self.assertIn("error", r)
        self.assertEqual(self.command(path, "query-status")["status"], "running")
        self.shutdown(path, False, 10)


if __name__ == "__main__":
    qmtest.main()
