#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Save and Restore (BaseVM save_to_file, libvirt virDomainSave/Restore):
the state goes into, and comes back from, an fd the caller opened. On a
real guest (tests/guest) a counter on the console keeps counting across
Save and Restore and the guest's uptime goes on; a bad or truncated state
fails with MigrateFailed and leaves nothing running; bad arguments and
callers polkit denies change nothing; qmachinectl save and restore."""

import os
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import (ACCESS_DENIED, INVALID_ARGS, MACHINE_IFACE, GLib, Gio,  # noqa: E402
                    err, machine_path)
from test_guest import BANNER, guest_config  # noqa: E402
from test_polkit import NobodyMixin, action, vtext  # noqa: E402
from test_qmachinectl import qmachinectl_binary  # noqa: E402

BOOT_TIMEOUT = 120.0
COUNT = re.compile(rb"QMACHINE-COUNT (\d+)")


def small_pc_args():
    """A pc without a guest (SeaBIOS finds nothing to boot): a real
    machine state of 64 MiB, saved in a moment."""
    return ["-nodefaults", "-m", "64"] + qmtest.accel_args()


class SaveRestoreCase(qmtest.QMTestCase):

    def call_with_fd(self, path, method, fd, options=None, timeout=120.0, conn=None):
        """method(h fd, a{sv} options); options values are GLib.Variants."""
        fds = Gio.UnixFDList.new()
        fds.append(fd)
        try:
            r = (conn or self.conn).call_with_unix_fd_list_sync(
                qmtest.BUS_NAME, path, MACHINE_IFACE, method,
                GLib.Variant("(ha{sv})", (0, options or {})), GLib.VariantType.new("()"),
                Gio.DBusCallFlags.NONE, int(timeout * 1000), fds, None)
        except GLib.Error as e:
            raise qmtest.convert_error(e) from None
        finally:
            # the list holds a copy: a pipe's reader waits for its close
            for copy in fds.steal_fds():
                os.close(copy)
        return qmtest.unpack_reply(r[0])

    def save(self, path, fd, **options):
        return self.call_with_fd(path, "Save", fd, variant_options(options))

    def restore(self, path, fd, **options):
        return self.call_with_fd(path, "Restore", fd, variant_options(options))

    def file(self, name):
        """A path for a file of this test (its own directory)."""
        d = self.env.path("saves")
        os.makedirs(d, exist_ok=True)
        return os.path.join(d, name)

    def save_to_file(self, path, name="state"):
        """Save into a new file of the test; returns (its path, seconds)."""
        state = self.file(name)
        fd = os.open(state, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            t0 = time.monotonic()
            self.save(path, fd)
            took = time.monotonic() - t0
        finally:
            os.close(fd)
        return state, took

    def restore_from_file(self, path, state, **options):
        """Restore from a file; returns the seconds it took."""
        fd = os.open(state, os.O_RDONLY)
        try:
            t0 = time.monotonic()
            self.restore(path, fd, **options)
            return time.monotonic() - t0
        finally:
            os.close(fd)

    def assert_stopped_cleanly(self, path):
        self.assertEqual(self.mprop(path, "State"), "stopped")
        self.assertEqual(self.mprop(path, "ExitCode"), 0)
        self.assertEqual(self.mprop(path, "Pid"), 0)
        self.assert_no_test_processes()


def variant_options(options):
    out = {}
    for key, value in options.items():
        key = key.replace("_", "-")
        if isinstance(value, GLib.Variant):
            out[key] = value
        elif isinstance(value, bool):
            out[key] = GLib.Variant("b", value)
        else:
            out[key] = GLib.Variant("d", float(value))
    return out


class SaveRestoreTest(SaveRestoreCase):
    """Without a guest OS: a pc that runs SeaBIOS."""

    def running_pc(self, name):
        path = self.create_machine(name, machine="pc", args=small_pc_args())
        self.launch(path)
        self.wait_property(path, "RunState", "running")
        return path

    def test_save_and_restore_through_file_and_pipe(self):
        path = self.running_pc("pc")
        props = self.record_properties(path)
        state, took = self.save_to_file(path)
        self.assert_stopped_cleanly(path)
        size = os.path.getsize(state)
        self.assertGreater(size, 100 * 1024)
        print("pc 64 MiB: save %.2f s, %d bytes" % (took, size), file=sys.stderr)
        props.wait(lambda _s: "stopped" in qmtest.changed_values(props, "State"))
        self.assertIn("stopped", qmtest.changed_values(props, "State"))

        took = self.restore_from_file(path, state)
        print("pc 64 MiB: restore %.2f s" % took, file=sys.stderr)
        self.assertEqual(self.mprop(path, "State"), "running")
        self.assertEqual(self.mprop(path, "RunState"), "running")
        self.assertEqual(self.command(path, "query-status")["status"], "running")
        props.wait(lambda _s: qmtest.changed_values(props, "State")[-1:] == ["running"])
        states = qmtest.changed_values(props, "State")
        self.assertEqual(states[-2:], ["starting", "running"])
        # this launch only: -incoming defer and -S, the config unchanged
        cmd = self.mprop(path, "CommandLine")
        self.assertEqual(cmd[-3:], ["-incoming", "defer", "-S"])
        self.assertEqual(self.mprop(path, "Config").get("incoming", ""), "")

        # Through pipes: any fd will do, the daemon never opens a path.
        r, w = os.pipe()
        chunks = []
        reader = threading.Thread(target=lambda: chunks.append(read_all(r)))
        reader.start()
        try:
            self.save(path, w)
        finally:
            os.close(w)
            reader.join(60)
            os.close(r)
        self.assert_stopped_cleanly(path)
        data = chunks[0]
        self.assertGreater(len(data), 100 * 1024)
        r, w = os.pipe()
        writer = threading.Thread(target=write_all, args=(w, data))
        writer.start()
        try:
            self.restore(path, r, paused=True)
        finally:
            os.close(r)
            writer.join(60)
        self.assertEqual(self.mprop(path, "State"), "running")
        self.assertEqual(self.mprop(path, "RunState"), "paused")
        self.machine(path, "Resume", None, "()")
        self.wait_property(path, "RunState", "running")
        self.shutdown(path, True)

    def test_python_client_and_qmachinectl(self):
        sys.path.insert(0, os.path.join(qmtest.source_root(), "python"))
        import qmachine
        from qmachine import errors
        self.running_pc("py")
        with qmachine.connect(address=self.env.address) as mgr:
            m = mgr.get_machine("py")
            with open(self.file("py.state"), "wb") as f:
                m.save(f)
            self.assertEqual(m.state, "stopped")
            with open("/dev/null", "wb") as null:
                self.assertRaises(errors.NotRunning, m.save, null)
            with open(self.file("py.state"), "rb") as f:
                m.restore(f, paused=True)
            self.assertEqual((m.state, m.run_state), ("running", "paused"))
            with open(self.file("py.state"), "rb") as f:
                self.assertRaises(errors.AlreadyRunning, m.restore, f)
            m.kill()
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.env.system_address)

        def ctl(*args):
            return subprocess.run([qmachinectl_binary()] + list(args), env=env,
                                  capture_output=True, text=True, timeout=120)
        r = ctl("--help")
        self.assertIn("save NAME FILE", r.stdout)
        self.assertIn("restore NAME FILE [--paused]", r.stdout)
        self.assertEqual(ctl("save", "py").returncode, 2)
        r = ctl("restore", "py", self.file("no-such-file"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot open", r.stderr)
        self.assertEqual(self.mprop(machine_path("py"), "State"), "failed")  # the kill
        r = ctl("restore", "py", self.file("py.state"))
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(self.mprop(machine_path("py"), "RunState"), "running")
        # an existing file is overwritten
        r = ctl("save", "py", self.file("py.state"))
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(self.mprop(machine_path("py"), "State"), "stopped")
        # a failing Save leaves no file behind that qmachinectl created
        r = ctl("save", "py", self.file("never"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("not running", r.stderr)
        self.assertFalse(os.path.exists(self.file("never")))

    def test_bad_and_truncated_state(self):
        path = self.running_pc("bad")
        state, _took = self.save_to_file(path)
        with open(state, "rb") as f:
            good = f.read()
        cases = {
            "garbage": os.urandom(256 * 1024),
            "empty": b"",
            "truncated": good[:len(good) // 2],
        }
        for what, data in cases.items():
            bad = self.file(what)
            with open(bad, "wb") as f:
                f.write(data)
            t0 = time.monotonic()
            e = self.expect_error(err("MigrateFailed"), self.restore_from_file, path, bad)
            print("%s state: MigrateFailed after %.2f s" % (what, time.monotonic() - t0),
                  file=sys.stderr)
            self.assertIn("Restore of 'bad' failed", e.text)
            # QEMU's own words are in the message (its output)
            self.assertIn("migration", e.text.split("Output:", 1)[1], e.text)
            self.assertEqual(self.mprop(path, "State"), "failed", what)
            self.assertEqual(self.mprop(path, "Pid"), 0)
            self.assert_no_test_processes()
        # The good state still works after all that.
        self.restore_from_file(path, state)
        self.assertEqual(self.mprop(path, "RunState"), "running")
        self.shutdown(path, True)

    def test_save_failure_leaves_guest_running(self):
        path = self.running_pc("epipe")
        pid = self.mprop(path, "Pid")
        before = self.command(path, "query-migrate-parameters")["max-bandwidth"]
        r, w = os.pipe()
        os.close(r)  # nobody reads: QEMU's writes fail with EPIPE
        try:
            e = self.expect_error(err("MigrateFailed"), self.save, path, w)
        finally:
            os.close(w)
        self.assertIn("Save of 'epipe' failed", e.text)
        self.assertEqual(self.mprop(path, "State"), "running")
        self.assertEqual(self.mprop(path, "Pid"), pid)
        self.wait_property(path, "RunState", "running")
        self.assertEqual(self.command(path, "query-migrate-parameters")["max-bandwidth"], before)
        # A paused guest stays paused after a failed Save.
        self.machine(path, "Pause", None, "()")
        self.wait_property(path, "RunState", "paused")
        r, w = os.pipe()
        os.close(r)
        try:
            self.expect_error(err("MigrateFailed"), self.save, path, w)
        finally:
            os.close(w)
        qmtest.iterate_for(0.3)
        self.assertEqual(self.command(path, "query-status")["status"], "paused")
        self.shutdown(path, True)

    def test_restore_that_never_gets_its_state(self):
        path = self.create_machine("starve", machine="pc", args=small_pc_args())
        r, w = os.pipe()  # nothing is ever written
        try:
            t0 = time.monotonic()
            e = self.expect_error(err("MigrateTimeout"), self.restore, path, r, timeout=1.0)
            self.assertLess(time.monotonic() - t0, 20)
            self.assertIn("did not complete in time", e.text)
            self.assertEqual(self.mprop(path, "State"), "failed")
            self.assert_no_test_processes()
            # Killed while it loads (State starting): the Restore call
            # ends too, and so does QEMU.
            call = FdCall(self.conn, path, "Restore", r, {})
            self.wait_property(path, "State", "starting")
            self.wait_property(path, "Pid", lambda pid: pid > 0)
            qmtest.iterate_for(0.3)
            self.assertFalse(call.done)
            self.kill(path)
            self.assertTrue(qmtest.iterate_until(lambda: call.done, 30))
            self.assertIsInstance(call.error, qmtest.DBusCallError)
            self.assertEqual(call.error.name, err("MigrateFailed"), call.error.text)
            self.assertEqual(self.mprop(path, "State"), "failed")
            self.assert_no_test_processes()
        finally:
            os.close(w)
            os.close(r)

    def test_save_while_migrating_is_busy(self):
        path = self.create_machine("busy", machine="pc", args=small_pc_args() + ["-m", "512"])
        self.launch(path)
        self.wait_property(path, "RunState", "running")
        # a migration into a socket nobody reads stalls
        self.command(path, "migrate-set-parameters", '{"max-bandwidth": 65536}')
        sink = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sink.bind(("127.0.0.1", 0))
        sink.listen(1)
        uri = "tcp:127.0.0.1:%d" % sink.getsockname()[1]
        migrate = self.call_async(path, MACHINE_IFACE, "Migrate",
                                  GLib.Variant("(sa{sv})", (uri, {})), "()")
        try:
            self.assertTrue(qmtest.iterate_until(
                lambda: self.command(path, "query-migrate").get("status") == "active", 10))
            self.assertFalse(migrate.done)
            fd = os.open(self.file("busy-state"), os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                self.expect_error(err("Busy"), self.save, path, fd)
            finally:
                os.close(fd)
            self.assertEqual(os.path.getsize(self.file("busy-state")), 0)
            self.assertEqual(self.mprop(path, "State"), "running")
        finally:
            self.command(path, "migrate_cancel")
            self.assertRaises(qmtest.DBusCallError, migrate.wait, 30)
            sink.close()
        self.wait_property(path, "RunState", "running")
        self.shutdown(path, True)

    def test_state_errors(self):
        path = self.create_machine("states", machine="pc", args=small_pc_args())
        fd = os.open(self.file("s"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            self.expect_error(err("NotRunning"), self.save, path, fd)
            self.launch(path)
            pid = self.mprop(path, "Pid")
            self.expect_error(err("AlreadyRunning"), self.restore, path, fd)
            self.assertEqual(self.mprop(path, "Pid"), pid)
            self.assertEqual(os.path.getsize(self.file("s")), 0)
            self.shutdown(path, True)
            self.expect_error(err("NotRunning"), self.save, path, fd)
            # without a monitor neither can work
            plain = self.create_none_machine("plain", qmp=False)
            self.expect_error(err("NoMonitor"), self.restore, plain, fd)
            self.assertEqual(self.mprop(plain, "State"), "defined")
            self.launch(plain)
            self.expect_error(err("NoMonitor"), self.save, plain, fd)
            self.shutdown(plain, True)
        finally:
            os.close(fd)

    def test_bad_arguments(self):
        path = self.running_pc("args")
        pid = self.mprop(path, "Pid")
        defined = self.create_machine("defined", machine="pc", args=small_pc_args())
        wr = os.open(self.file("w"), os.O_WRONLY | os.O_CREAT, 0o600)
        rd = os.open(self.file("w"), os.O_RDONLY)
        directory = os.open(self.env.path(), os.O_RDONLY | os.O_DIRECTORY)
        try:
            bad_options = [
                {"bogus": GLib.Variant("b", True)},
                {"timeout": GLib.Variant("s", "10")},
                {"timeout": GLib.Variant("d", float("nan"))},
            ]
            for options in bad_options:
                self.expect_error(INVALID_ARGS, self.save, path, wr, **options)
                self.expect_error(INVALID_ARGS, self.restore, defined, rd, **options)
            # paused is Restore's only
            self.expect_error(INVALID_ARGS, self.save, path, wr, paused=True)
            self.expect_error(INVALID_ARGS, self.restore, defined, rd,
                              paused=GLib.Variant("i", 1))
            # the fd must be open the right way
            e = self.expect_error(INVALID_ARGS, self.save, path, rd)
            self.assertIn("writing", e.text)
            e = self.expect_error(INVALID_ARGS, self.restore, defined, wr)
            self.assertIn("reading", e.text)
            self.expect_error(INVALID_ARGS, self.save, path, directory)
            self.expect_error(INVALID_ARGS, self.restore, defined, directory)
            # a handle without an fd
            self.expect_error(INVALID_ARGS, self.machine, path, "Save",
                              GLib.Variant("(ha{sv})", (0, {})), "()")
        finally:
            for fd in (wr, rd, directory):
                os.close(fd)
        qmtest.iterate_for(0.2)
        self.assertEqual(self.mprop(path, "Pid"), pid)
        self.assertEqual(self.command(path, "query-status")["status"], "running")
        self.assertEqual(self.mprop(defined, "State"), "defined")
        self.assertEqual(os.path.getsize(self.file("w")), 0)
        self.shutdown(path, True)


class FdCall:
    """method(h fd, a{sv} options) in flight: .done, .error."""

    def __init__(self, conn, path, method, fd, options, timeout=120.0):
        self.done = False
        self.error = None
        self.fds = Gio.UnixFDList.new()
        self.fds.append(fd)
        conn.call_with_unix_fd_list(qmtest.BUS_NAME, path, MACHINE_IFACE, method,
                                    GLib.Variant("(ha{sv})", (0, options)), None,
                                    Gio.DBusCallFlags.NONE, int(timeout * 1000), self.fds,
                                    None, self._done, None)

    def _done(self, conn, res, _data):
        try:
            conn.call_with_unix_fd_list_finish(res)
        except GLib.Error as e:
            self.error = qmtest.convert_error(e)
        for copy in self.fds.steal_fds():
            os.close(copy)
        self.done = True


def read_all(fd):
    out = []
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(out)
        out.append(chunk)


def write_all(fd, data):
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    except OSError:
        pass
    finally:
        os.close(fd)


class SaveRestorePolkitTest(NobodyMixin, SaveRestoreCase):

    polkit_mock = True

    def test_denied_changes_nothing(self):
        pk = self.env.polkit
        path = self.create_machine("pk", machine="pc", args=small_pc_args())
        self.launch(path)
        self.wait_property(path, "RunState", "running")
        pid = self.mprop(path, "Pid")
        other = self.create_machine("pk-def", machine="pc", args=small_pc_args())
        pk.set_allowed([a for a in ("admin", "create", "monitor", "console", "images", "guest")])
        # as_user.py sends no fd: authorization comes before the arguments
        e = self.expect_error(ACCESS_DENIED, self.nobody_machine, path, "Save",
                              vtext("(ha{sv})", (0, {})))
        self.assertTrue(e.text)
        self.assertEqual(pk.check_calls()[-1][1], action("manage"))
        self.expect_error(ACCESS_DENIED, self.nobody_machine, other, "Restore",
                          vtext("(ha{sv})", (0, {"paused": GLib.Variant("b", True)})))
        self.assertEqual(pk.check_calls()[-1][1], action("manage"))
        qmtest.iterate_for(0.3)
        self.assertEqual(self.mprop(path, "Pid"), pid)
        self.assertEqual(self.command(path, "query-status")["status"], "running")
        self.assertEqual(self.mprop(other, "State"), "defined")
        # allowed, the call goes on to its arguments (no fd came with it)
        pk.set_allowed(["manage"])
        self.expect_error(INVALID_ARGS, self.nobody_machine, path, "Save",
                          vtext("(ha{sv})", (0, {})))
        self.assertEqual(pk.check_calls()[-1][1], action("manage"))
        self.shutdown(path, True)


class GuestSaveRestoreTest(SaveRestoreCase):
    """The tiny Linux guest: its counter and uptime go on across Save and
    Restore."""

    def guest_config(self):
        return guest_config()

    def uptime(self, path):
        """The guest's /proc/uptime, read through the console."""
        tag = "up%d" % int(time.monotonic() * 1e6)
        start = len(self.console_output(path))
        self.type_on_console(path, "echo %s=$(cut -d' ' -f1 /proc/uptime)\n" % tag)
        m = self.wait_console_output(path, rb"%s=([0-9.]+)\r?\n" % tag.encode(), start=start)
        return float(m.group(1))

    def last_count(self, path):
        counts = COUNT.findall(self.console_output(path))
        return int(counts[-1]) if counts else None

    def test_counter_and_uptime_go_on(self):
        path = self.create_machine("guest", **self.guest_config())
        t0 = time.monotonic()
        self.launch(path)
        self.wait_console_output(path, re.escape(BANNER), BOOT_TIMEOUT)
        print("launch to banner %.1f s" % (time.monotonic() - t0), file=sys.stderr)
        self.type_on_console(path, "qm-counter &\n")
        self.wait_console_output(path, rb"QMACHINE-COUNT 4\r?\n")
        up_before = self.uptime(path)

        state, took = self.save_to_file(path)
        last = self.last_count(path)
        self.assert_stopped_cleanly(path)
        size = os.path.getsize(state)
        print("guest: save %.2f s, state %d bytes, last count %d, uptime %.2f"
              % (took, size, last, up_before), file=sys.stderr)
        qmtest.iterate_for(1.0)  # the host's time goes on, the guest's not

        took = self.restore_from_file(path, state)
        print("guest: restore %.2f s" % took, file=sys.stderr)
        self.assertEqual(self.mprop(path, "State"), "running")
        self.assertEqual(self.mprop(path, "RunState"), "running")
        m = self.wait_console_output(path, rb"QMACHINE-COUNT (\d+)")
        first = int(m.group(1))
        # the counter continues where it was: not from 0
        self.assertGreater(first, last - 2, self.console_output(path)[-500:])
        self.assertLessEqual(first, last + 3)
        self.wait_console_output(path, rb"QMACHINE-COUNT %d\r?\n" % (first + 2))
        up_after = self.uptime(path)
        print("guest: first count after restore %d, uptime %.2f" % (first, up_after), file=sys.stderr)
        self.assertGreater(up_after, up_before)
        self.assertLess(up_after, up_before + 30)

        # Again with qmachinectl, this time restored paused.
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.env.system_address)
        ctl_state = self.file("ctl-state")
        t0 = time.monotonic()
        subprocess.run([qmachinectl_binary(), "save", "guest", ctl_state], env=env, check=True,
                       timeout=300)
        print("qmachinectl save %.2f s" % (time.monotonic() - t0), file=sys.stderr)
        self.assert_stopped_cleanly(path)
        last = self.last_count(path)
        subprocess.run([qmachinectl_binary(), "restore", "guest", ctl_state, "--paused"],
                       env=env, check=True, timeout=300)
        self.assertEqual(self.mprop(path, "State"), "running")
        self.assertEqual(self.mprop(path, "RunState"), "paused")
        qmtest.iterate_for(1.5)
        self.assertIsNone(self.last_count(path), "a paused guest counted")
        self.machine(path, "Resume", None, "()")
        m = self.wait_console_output(path, rb"QMACHINE-COUNT (\d+)")
        self.assertGreater(int(m.group(1)), last - 2)
        self.assertLessEqual(int(m.group(1)), last + 3)
        # a file that is not a state, through qmachinectl
        self.shutdown(path, True)
        bad = self.file("not-a-state")
        with open(bad, "wb") as f:
            f.write(b"\0" * 4096)
        r = subprocess.run([qmachinectl_binary(), "restore", "guest", bad], env=env,
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("Restore of 'guest' failed", r.stderr)
        self.assertEqual(self.mprop(path, "State"), "failed")
        # qmachinectl save removes a file it created when Save fails
        missing = self.file("never")
        r = subprocess.run([qmachinectl_binary(), "save", "guest", missing], env=env,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertFalse(os.path.exists(missing))
        self.assert_no_test_processes()


if __name__ == "__main__":
    qmtest.main()
