#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Console expect (WaitConsole, WriteConsole, ConsoleBytes) on the real
test guest (tests/guest) under TCG, through the real daemon and bus:
expect the banner, write a command, expect its output, again and again
with the returned offsets; timeouts, two waiters at once, the machine
stopping while a caller waits, bad arguments, polkit, qmachinectl."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
import test_guest  # noqa: E402
import test_polkit  # noqa: E402
from qmtest import (INVALID_ARGS, MACHINE_IFACE, GLib, err,  # noqa: E402
                    iterate_until)

BANNER = "QMACHINE-GUEST-READY"
BOOT_TIMEOUT = test_guest.BOOT_TIMEOUT


def qmachinectl_binary():
    exe = os.environ.get("QMACHINECTL")
    if exe:
        return os.path.abspath(exe)
    return os.path.join(qmtest.source_root(), "build", "src", "qmachinectl", "qmachinectl")


class ConsoleExpectTest(test_polkit.NobodyMixin, qmtest.QMTestCase):

    # root is allowed without asking; nobody only when told
    polkit_mock = True

    def guest_config(self):
        return test_guest.guest_config()

    # -- the API

    def wait_console(self, path, regex, after=0, timeout=60.0):
        call_timeout = timeout + 30.0 if 0 <= timeout < 500 else 600.0  # NaN too
        return self.machine(path, "WaitConsole", GLib.Variant("(std)", (regex, after, float(timeout))),
                            "(ts)", timeout=call_timeout)

    def wait_console_async(self, path, regex, after=0, timeout=60.0):
        call_timeout = 600.0 if timeout < 0 else timeout + 30.0
        return self.call_async(path, MACHINE_IFACE, "WaitConsole",
                               GLib.Variant("(std)", (regex, after, float(timeout))), "(ts)",
                               timeout=call_timeout)

    def write_console(self, path, data):
        if isinstance(data, str):
            data = data.encode()
        return self.machine(path, "WriteConsole", GLib.Variant("(ay)", (data,)), "()")

    def console_bytes(self, path):
        return self.mprop(path, "ConsoleBytes")

    def console_output(self, path):
        return bytes(self.machine(path, "GetConsoleOutput", None, "(ay)"))

    def booted_guest(self, name):
        path = self.create_machine(name, **self.guest_config())
        t0 = time.monotonic()
        self.launch(path)
        offset, match = self.wait_console(path, BANNER, 0, BOOT_TIMEOUT)
        print("%s: launch to banner %.1f s" % (name, time.monotonic() - t0), file=sys.stderr)
        self.assertEqual(match, BANNER)
        return path, offset

    def assert_offset_is(self, path, offset, text):
        """The run's output ends with text just before offset (all of it is
        retained: the guest writes far less than 1 MiB)."""
        count = self.console_bytes(path)
        out = self.console_output(path)  # maybe more by now
        self.assertGreaterEqual(len(out), count)
        self.assertGreaterEqual(count, offset)
        self.assertEqual(out[offset - len(text):offset], text.encode())

    # -- tests

    def test_expect_write_expect(self):
        path, offset = self.booted_guest("expect")
        self.assert_offset_is(path, offset, BANNER)
        self.assertGreaterEqual(self.console_bytes(path), offset)

        # expect → write → expect, from the returned offsets: no race, and
        # each answer is the output of the command just written ($((…))
        # keeps the echoed command line from matching).
        t0 = time.monotonic()
        for i in range(4):
            self.write_console(path, "echo hello $((6*7+%d))\n" % i)
            new_offset, match = self.wait_console(path, r"hello \d+$", offset, 60)
            self.assertEqual(match, "hello %d" % (42 + i))
            self.assertGreater(new_offset, offset)
            self.assert_offset_is(path, new_offset, match)
            offset = new_offset
        print("4 x (WriteConsole + WaitConsole) %.2f s" % (time.monotonic() - t0), file=sys.stderr)

        # timeout 0: only what is retained
        found = self.wait_console(path, r"hello 42$", 0, 0)
        self.assertEqual(found[1], "hello 42")
        self.assertEqual(self.wait_console(path, "NEVER-SEEN", 0, 0), (0, ""))
        self.assertEqual(self.wait_console(path, r"hello 42$", offset, 0), (0, ""))
        # a pattern that never comes
        t0 = time.monotonic()
        e = self.expect_error(err("Timeout"), self.wait_console, path, "NEVER-SEEN", offset, 1.0)
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        self.assertIn("expect", e.text)

        # two waiters at once, different patterns, both answered
        first = self.wait_console_async(path, r"alpha-\d+", offset, 60)
        second = self.wait_console_async(path, r"beta-\d+", offset, 60)
        self.assertFalse(iterate_until(lambda: first.done or second.done, 0.5))
        self.write_console(path, "echo alpha-$((1+1)); echo beta-$((2+1))\n")
        self.assertEqual(first.wait(60)[1], "alpha-2")
        self.assertEqual(second.wait(60)[1], "beta-3")
        self.assertLess(first.result[0], second.result[0])

        # written with no console client at all: nothing is lost
        self.write_console(path, b"echo raw-$((5*5))\r")
        offset, _ = self.wait_console(path, r"raw-25", offset, 60)

        # the kernel's last words, right before QEMU exits: read and
        # searched before the waiter would get NotRunning
        last = self.wait_console_async(path, r"reboot: Power down", offset, 60)
        self.write_console(path, "poweroff -f\n")
        self.assertEqual(last.wait(60)[1], "reboot: Power down")
        self.wait_property(path, "State", "stopped", 30)

    def test_bad_arguments(self):
        path, offset = self.booted_guest("bad")
        before = self.console_bytes(path)
        e = self.expect_error(INVALID_ARGS, self.wait_console, path, "(unclosed", 0, 1)
        self.assertIn("missing", e.text)  # GLib's message
        self.expect_error(INVALID_ARGS, self.wait_console, path, "x", before + 10**6, 1)
        self.expect_error(INVALID_ARGS, self.wait_console, path, "x", 0, float("nan"))
        self.expect_error(INVALID_ARGS, self.wait_console, path, "(*LIMIT_MATCH=99999999)x", 0, 1)
        self.expect_error(err("LimitExceeded"), self.wait_console, path, "x" * 4097, 0, 1)
        self.expect_error(err("LimitExceeded"), self.write_console, path, b"x" * (64 * 1024 + 1))

        # a regex PCRE gives up on: a long run of "a" on the console, then
        # "(a+)+#" (nested quantifiers, a "#" that is not right after the
        # run) → InvalidArgs, quickly
        run = "head -c 4000 /dev/zero | tr '\\0' a; echo\n"
        self.write_console(path, run)
        offset, _ = self.wait_console(path, "a{4000}", offset, 60)
        t0 = time.monotonic()
        e = self.expect_error(INVALID_ARGS, self.wait_console, path, "(a+)+#", 0, 5)
        print("(a+)+# given up after %.1f ms" % ((time.monotonic() - t0) * 1000), file=sys.stderr)
        self.assertIn("too expensive", e.text)
        # ... also when it is already waiting and output comes
        waiting = self.wait_console_async(path, "(a+)+#", offset, 60)
        self.assertFalse(iterate_until(lambda: waiting.done, 0.3))
        self.write_console(path, run)
        e = self.expect_error(INVALID_ARGS, waiting.wait, 60)
        self.assertIn("too expensive", e.text)
        self.write_console(path, "echo still-$((2*3))\n")
        self.assertEqual(self.wait_console(path, r"still-\d", offset, 60)[1], "still-6")
        self.assertEqual(self.mprop(path, "State"), "running")
        self.shutdown(path, True)

    def test_stop_while_waiting(self):
        path, offset = self.booted_guest("stop")
        self.write_console(path, "echo before-$((1+2))\n")
        offset, _ = self.wait_console(path, "before-3", offset, 60)
        waiting = self.wait_console_async(path, "NEVER-SEEN", offset, -1)
        self.assertFalse(iterate_until(lambda: waiting.done, 0.5))
        count = self.console_bytes(path)
        self.kill(path)
        e = self.expect_error(err("NotRunning"), waiting.wait, 30)
        self.assertIn("stopped", e.text)
        self.assertIn(self.mprop(path, "State"), ("stopped", "failed"))
        # what is retained of the last run is still searched
        self.assertGreaterEqual(self.console_bytes(path), count)
        self.assertEqual(self.wait_console(path, "before-3", 0, 5)[1], "before-3")
        self.expect_error(err("NotRunning"), self.wait_console, path, "NEVER-SEEN", 0, 5)
        self.assertEqual(self.wait_console(path, "NEVER-SEEN", 0, 0), (0, ""))
        self.expect_error(err("NotRunning"), self.write_console, path, "x")

    def test_after_daemon_restart(self):
        """A new daemon takes the console back; its offsets count from what
        it read, and expect → write → expect works on."""
        path, offset = self.booted_guest("again")
        self.write_console(path, "echo before-$((1+1))\n")
        self.wait_console(path, r"before-2", offset, 60)
        self.assertEqual(self.restart_daemon(), 0)
        self.assertEqual(self.mprop(path, "State"), "running")
        now = self.console_bytes(path)
        self.assertLess(now, offset, "counted from what the new daemon read")
        self.write_console(path, "echo after-$((2+2))\n")
        end, match = self.wait_console(path, r"after-\d+$", now, 60)
        self.assertEqual(match, "after-4")
        self.assert_offset_is(path, end, match)
        self.shutdown(path, True)

    def test_qmachinectl_expect_send(self):
        path, offset = self.booted_guest("ctl")
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.env.system_address)

        def ctl(*args, timeout=120):
            return subprocess.run([qmachinectl_binary()] + list(args), capture_output=True,
                                  text=True, env=env, timeout=timeout)

        r = ctl("expect", "ctl", BANNER, "--timeout", "5")
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(r.stdout, "%d %s\n" % (offset, BANNER))
        r = ctl("send", "ctl", r"echo ctl-$((3*3))\x21\n")
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        r = ctl("expect", "ctl", r"ctl-\d!", "--after", str(offset), "--timeout", "60")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.endswith(" ctl-9!\n"), r.stdout)
        # no match in time: non-zero, with the daemon's message
        r = ctl("expect", "ctl", "NEVER-SEEN", "--timeout", "0.5")
        self.assertEqual(r.returncode, 1)
        self.assertIn("did not match", r.stderr)
        r = ctl("expect", "ctl", "NEVER-SEEN", "--timeout", "0")
        self.assertEqual(r.returncode, 1)
        self.assertIn("does not match", r.stderr)
        r = ctl("send", "ctl", r"bad\q")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown escape", r.stderr)
        r = ctl("send", "ctl", r"\x4")
        self.assertEqual(r.returncode, 2)
        # login is console: stdin goes to the guest, output comes back
        r = subprocess.run([qmachinectl_binary(), "login", "ctl", "--drain", "2"],
                           input="echo login-$((4*4))\n", capture_output=True, text=True,
                           env=env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("login-16", r.stdout)

        # the Python client
        sys.path.insert(0, os.path.join(qmtest.source_root(), "python"))
        import qmachine
        from qmachine import errors
        with qmachine.connect(address=self.env.address) as mgr:
            m = mgr.get_machine("ctl")
            now = m.console_bytes
            self.assertGreater(now, offset)
            m.write_console("echo py-$((5+5))\n")
            end, text = m.wait_console(r"py-\d+$", after=now, timeout=60)
            self.assertEqual(text, "py-10")
            self.assertGreater(end, now)
            self.assertEqual(m.wait_console("NEVER-SEEN", timeout=0), (0, ""))
            with self.assertRaises(errors.Timeout):
                m.wait_console("NEVER-SEEN", after=end, timeout=0.3)
            with self.assertRaises(errors.InvalidArgs):
                m.wait_console("(", timeout=0)
            with self.assertRaises(errors.LimitExceeded):
                m.write_console(b"x" * (64 * 1024 + 1))
        self.shutdown(path, True)

    def test_no_console(self):
        path = self.create_none_machine("plain")
        self.expect_error(err("NoConsole"), self.wait_console, path, "x", 0, 0)
        self.expect_error(err("NoConsole"), self.write_console, path, "x")
        self.launch(path)
        self.expect_error(err("NoConsole"), self.wait_console, path, "x", 0, 1)
        self.expect_error(err("NoConsole"), self.write_console, path, "x")
        self.assertEqual(self.console_bytes(path), 0)
        self.shutdown(path, True)

    def test_console_bytes_no_signal(self):
        path = self.create_none_machine("sig")
        xml = self.call(path, "org.freedesktop.DBus.Introspectable", "Introspect", None, "(s)")
        start = xml.index('<property name="ConsoleBytes"')
        prop = xml[start:xml.index("</property>", start)]
        self.assertIn('type="t"', prop)
        self.assertIn('name="org.freedesktop.DBus.Property.EmitsChangedSignal" value="false"', prop)

    def test_polkit_denies(self):
        path = self.create_machine("pk", machine="pc", console=True,
                                   args=["-nodefaults", "-S", "-m", "64"] + qmtest.accel_args())
        self.launch(path)
        self.env.polkit.set_allowed([a for a in test_polkit.ACTIONS if a != "console"])
        wait_args = test_polkit.vtext("(std)", ("x", 0, 0.0))
        write_args = test_polkit.vtext("(ay)", (b"xyz",))
        for method, args in (("WaitConsole", wait_args), ("WriteConsole", write_args)):
            e = self.expect_error(qmtest.ACCESS_DENIED, self.nobody_machine, path, method, args)
            self.assertTrue(e.text)
            _subject, action, details, _flags, _cancel = self.env.polkit.check_calls()[-1]
            self.assertEqual(action, test_polkit.action("console"))
            self.assertEqual(details, {"verb": method, "machine": "pk"})
        self.assertEqual(self.console_bytes(path), 0)
        # allowed: it gets through to the machine
        self.env.polkit.set_allowed(["console"])
        self.assertEqual(self.nobody_machine(path, "WaitConsole", wait_args), [0, ""])
        self.nobody_machine(path, "WriteConsole", write_args)
        self.shutdown(path, True)


class ConsoleWaiterLimitTest(qmtest.QMTestCase):
    """WaitConsole callers count against --max-waiters per machine, and a
    client that leaves the bus takes its waiters with it."""

    daemon_args = ["--max-waiters", "2"]

    def wait_async(self, path, conn, regex="NEVER-SEEN"):
        return qmtest.AsyncCall(conn, path, MACHINE_IFACE, "WaitConsole",
                                GLib.Variant("(std)", (regex, 0, 60.0)), "(ts)", 90)

    def test_limit_and_client_leaving(self):
        path = self.create_machine("lim", machine="pc", console=True,
                                   args=["-nodefaults", "-S", "-m", "64"] + qmtest.accel_args())
        self.launch(path)
        leaving = self.env.connect()
        waits = [self.wait_async(path, leaving) for _ in range(2)]
        self.assertFalse(iterate_until(lambda: any(w.done for w in waits), 0.3))
        third = self.wait_async(path, self.conn)
        e = self.expect_error(err("LimitExceeded"), third.wait, 10)
        self.assertIn("2", e.text)
        # timeout 0 only searches: no slot needed
        self.assertEqual(self.machine(path, "WaitConsole", GLib.Variant("(std)", ("x", 0, 0.0)), "(ts)"),
                         (0, ""))
        leaving.close_sync(None)
        # once the daemon has seen the client go, there is room again
        deadline = time.monotonic() + 10
        while True:
            again = self.wait_async(path, self.conn)
            iterate_until(lambda: again.done, 0.3)
            if not again.done:
                break
            self.assertEqual(again.error.name, err("LimitExceeded"))
            self.assertLess(time.monotonic(), deadline, "the waiters of the closed client stay")
        second = self.wait_async(path, self.conn)
        self.assertFalse(iterate_until(lambda: second.done, 0.3))
        self.kill(path)
        for w in (again, second):
            self.expect_error(err("NotRunning"), w.wait, 10)


if __name__ == "__main__":
    qmtest.main()
