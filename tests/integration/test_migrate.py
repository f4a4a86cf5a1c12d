#!/usr/bin/python3
"""Migrate (BaseVM migrate()) between two real QEMUs of the same daemon,
its failures, cancellation and timeout; VerifyAlive (BaseVM
verify_alive())."""

import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import INVALID_ARGS, MACHINE_IFACE, GLib, err, pid_alive  # noqa: E402


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def big_args():
    """A stopped pc with some RAM: its migration takes a while and stalls
    when the other side does not read."""
    return ["-machine", "pc", "-nodefaults", "-S", "-m", "512"] + qmtest.accel_args()


class SinkListener:
    """A TCP listener that accepts nothing and reads nothing: a migration
    into it stalls once the socket buffers are full."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        # Small buffers fill sooner.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.listen(4)
        self.uri = "tcp:127.0.0.1:%d" % self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


class MigrateTest(qmtest.QMTestCase):

    def migrate(self, path, uri, call_timeout=60.0, **options):
        """Migrate(uri, options); keyword arguments are the options
        (underscores for dashes), d unless bool or a GLib.Variant."""
        opts = {}
        for key, value in options.items():
            key = key.replace("_", "-")
            if isinstance(value, GLib.Variant):
                opts[key] = value
            elif isinstance(value, bool):
                opts[key] = GLib.Variant("b", value)
            else:
                opts[key] = GLib.Variant("d", float(value))
        return self.machine(path, "Migrate", GLib.Variant("(sa{sv})", (uri, opts)), "()",
                            timeout=call_timeout)

    def migrate_async(self, path, uri, **options):
        opts = {k.replace("_", "-"): (v if isinstance(v, GLib.Variant) else
                                      GLib.Variant("b", v) if isinstance(v, bool) else
                                      GLib.Variant("d", float(v)))
                for k, v in options.items()}
        return self.call_async(path, MACHINE_IFACE, "Migrate",
                               GLib.Variant("(sa{sv})", (uri, opts)), "()")

    def pair(self, name):
        """A running `-machine none` source and a launched destination
        waiting for it on a free port. Returns (source, dest, uri)."""
        uri = "tcp:127.0.0.1:%d" % free_port()
        src = self.create_none_machine(name + "-src")
        dst = self.create_none_machine(name + "-dst", incoming=uri)
        self.launch(dst)
        self.wait_property(dst, "RunState", "inmigrate")
        self.launch(src)
        self.wait_property(src, "RunState", "running")
        return src, dst, uri

    def stalled_source(self, name):
        """A machine whose migration into a SinkListener never ends by
        itself: the sink does not read, and the bandwidth is capped so that
        even the zero pages of an idle guest outlast the socket buffers."""
        path = self.create_machine(name, args=big_args())
        self.launch(path)
        self.wait_property(path, "RunState", lambda v: v != "")
        self.command(path, "migrate-set-parameters", '{"max-bandwidth": 65536}')
        return path

    def test_migrate_completes(self):
        src, dst, uri = self.pair("live")
        self.assertIn("-incoming", self.mprop(dst, "CommandLine"))
        self.assertIn(uri, self.mprop(dst, "CommandLine"))
        src_pid = self.mprop(src, "Pid")
        t0 = time.monotonic()
        self.assertIsNone(self.migrate(src, uri))
        self.assertLess(time.monotonic() - t0, 20)
        # The outcome is final when Migrate returns: the source QEMU has
        # quit, the guest runs only on the destination.
        self.assertEqual(self.mprop(src, "State"), "migrated")
        self.assertEqual(self.mprop(src, "Pid"), 0)
        self.assertFalse(pid_alive(src_pid))
        self.wait_property(dst, "RunState", "running")
        self.assertEqual(self.command(dst, "query-status")["status"], "running")
        self.assertEqual(self.mprop(dst, "State"), "running")
        events = [e["event"] for _s, e in self.get_events(dst)]
        self.assertIn("RESUME", events)
        # The destination's incoming was for that launch only.
        self.assertNotIn("incoming", self.mprop(dst, "Config"))

        # The source refuses everything that would run the guest twice.
        for method in ("Launch", "Resume", "Reset"):
            with self.subTest(method=method):
                e = self.expect_error(err("Migrated"), self.machine, src, method, None, "()")
                self.assertIn(uri, e.text)
        e = self.expect_error(err("Migrated"), self.migrate, src, uri)
        self.assertEqual(self.mprop(src, "State"), "migrated")
        self.machine(dst, "VerifyAlive", None, "()")
        self.shutdown(dst, False, 10)

    def test_migrate_offline(self):
        src, dst, uri = self.pair("off")
        self.assertIsNone(self.migrate(src, uri, offline=True, timeout=30.0))
        self.assertEqual(self.mprop(src, "State"), "migrated")
        self.assertEqual(self.command(dst, "query-status")["status"], "paused")
        self.wait_property(dst, "RunState", "paused")
        src_events = [e["event"] for _s, e in self.get_events(src)]
        self.assertIn("STOP", src_events)
        # The destination runs when asked to.
        self.machine(dst, "Resume", None, "()")
        self.wait_property(dst, "RunState", "running")

    def test_migrate_failures(self):
        path = self.create_none_machine("fail")
        # Not running: no monitor to ask.
        e = self.expect_error(err("NotRunning"), self.migrate, path, "tcp:127.0.0.1:1")
        self.assertTrue(e.text)
        self.launch(path)
        pid = self.mprop(path, "Pid")
        # Nobody listens on port 1.
        t0 = time.monotonic()
        e = self.expect_error(err("MigrateFailed"), self.migrate, path, "tcp:127.0.0.1:1")
        self.assertTrue(e.text)
        self.assertLess(time.monotonic() - t0, 10)
        # A URI QEMU does not understand.
        e = self.expect_error(err("MigrateFailed"), self.migrate, path, "bogus:nowhere")
        self.assertTrue(e.text)
        # The VM is unharmed.
        self.assertEqual(self.mprop(path, "State"), "running")
        self.assertEqual(self.mprop(path, "Pid"), pid)
        self.assertEqual(self.command(path, "query-status")["status"], "running")
        self.wait_property(path, "RunState", "running")

        # Options: unknown or ill-typed → InvalidArgs, nothing migrates.
        bad = [
            {"bogus": GLib.Variant("d", 1.0)},
            {"Timeout": GLib.Variant("d", 1.0)},
            {"cancel_after": GLib.Variant("d", 1.0)},
            {"timeout": GLib.Variant("u", 5)},
            {"timeout": GLib.Variant("s", "5")},
            {"offline": GLib.Variant("s", "true")},
            {"cancel-after": GLib.Variant("i", 1)},
        ]
        for options in bad:
            with self.subTest(options=options):
                e = self.expect_error(INVALID_ARGS, self.machine, path, "Migrate",
                                      GLib.Variant("(sa{sv})", ("tcp:127.0.0.1:1", options)),
                                      "()")
                self.assertIn(list(options)[0], e.text)
        self.assertEqual(self.command(path, "query-status")["status"], "running")
        self.assert_daemon_answers(1)

    def test_migrate_cancel_after(self):
        sink = SinkListener()
        self.addCleanup(sink.close)
        path = self.stalled_source("cancel")
        before = self.mprop(path, "RunState")
        pid = self.mprop(path, "Pid")
        t0 = time.monotonic()
        e = self.expect_error(err("MigrateCancelled"), self.migrate, path, sink.uri,
                              cancel_after=0.5)
        took = time.monotonic() - t0
        self.assertTrue(e.text)
        self.assertGreaterEqual(took, 0.45)
        self.assertLess(took, 10, "the cancel took too long")
        self.assertEqual(self.command(path, "query-migrate")["status"], "cancelled")
        # The VM is still there, as it was.
        self.assertEqual(self.mprop(path, "State"), "running")
        self.assertEqual(self.mprop(path, "Pid"), pid)
        self.wait_property(path, "RunState", before)
        self.assertEqual(self.command(path, "query-status")["status"], before)
        self.machine(path, "VerifyAlive", None, "()")

    def test_migrate_timeout(self):
        sink = SinkListener()
        self.addCleanup(sink.close)
        path = self.stalled_source("slow")
        before = self.mprop(path, "RunState")
        t0 = time.monotonic()
        e = self.expect_error(err("MigrateTimeout"), self.migrate, path, sink.uri,
                              timeout=0.7)
        took = time.monotonic() - t0
        self.assertTrue(e.text)
        self.assertGreaterEqual(took, 0.65)
        self.assertLess(took, 10)
        self.assertEqual(self.mprop(path, "State"), "running")
        self.wait_property(path, "RunState", before)

        # A running migration is alone: a second one is Busy; the first one
        # ends as asked.
        pending = self.migrate_async(path, sink.uri, cancel_after=1.5)
        qmtest.iterate_for(0.3)
        self.assertFalse(pending.done, "the migration into the sink ended early")
        self.expect_error(err("Busy"), self.migrate, path, "tcp:127.0.0.1:1")
        with self.assertRaises(qmtest.DBusCallError) as cm:
            pending.wait(15)
        self.assertEqual(cm.exception.name, err("MigrateCancelled"), cm.exception.text)
        self.wait_property(path, "RunState", before)

    def test_kill_during_migration(self):
        sink = SinkListener()
        self.addCleanup(sink.close)
        path = self.stalled_source("killed")
        pending = self.migrate_async(path, sink.uri)
        qmtest.iterate_for(0.3)
        self.assertFalse(pending.done)
        self.kill(path)
        with self.assertRaises(qmtest.DBusCallError) as cm:
            pending.wait(10)
        self.assertEqual(cm.exception.name, err("MigrateFailed"), cm.exception.text)
        self.assertEqual(self.mprop(path, "State"), "failed")
        self.assert_daemon_answers(1)


class VerifyAliveTest(qmtest.QMTestCase):

    def verify(self, path, **kw):
        return self.machine(path, "VerifyAlive", None, "()", **kw)

    def test_alive_and_dead(self):
        path = self.create_none_machine("alive", qmp_timeout=1.0)
        e = self.expect_error(err("Dead"), self.verify, path)
        self.assertTrue(e.text)

        self.launch(path)
        self.assertIsNone(self.verify(path))
        self.machine(path, "Pause", None, "()")
        self.assertIsNone(self.verify(path), "a paused guest is alive")
        self.machine(path, "Resume", None, "()")

        self.kill(path)
        e = self.expect_error(err("Dead"), self.verify, path)
        self.assertTrue(e.text)

        self.launch(path)
        self.verify(path)
        self.shutdown(path, False, 10)
        self.expect_error(err("Dead"), self.verify, path)

    def test_stopped_process_is_dead(self):
        path = self.create_none_machine("frozen", qmp_timeout=1.0)
        self.launch(path)
        pid = self.mprop(path, "Pid")
        os.kill(pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            e = self.expect_error(err("Dead"), self.verify, path)
            took = time.monotonic() - t0
            self.assertTrue(e.text)
            self.assertGreaterEqual(took, 0.9, "qmp-timeout is 1 s")
            self.assertLess(took, 5)
            # Still the same process, still ours.
            self.assertEqual(self.mprop(path, "Pid"), pid)
            self.assertTrue(pid_alive(pid))
        finally:
            os.kill(pid, signal.SIGCONT)
        # Awake again: alive (the late answer did not break the monitor),
        # or Dead when the daemon gave up on it; never anything else.
        try:
            self.verify(path)
        except qmtest.DBusCallError as e:
            self.assertEqual(e.name, err("Dead"), e.text)
        self.kill(path)
        self.assertFalse(pid_alive(pid))

    def test_without_qmp(self):
        path = self.create_none_machine("noqmp", qmp=False)
        self.expect_error(err("Dead"), self.verify, path)
        self.launch(path)
        self.assertIsNone(self.verify(path))
        self.kill(path)
        self.expect_error(err("Dead"), self.verify, path)


if __name__ == "__main__":
    qmtest.main()
