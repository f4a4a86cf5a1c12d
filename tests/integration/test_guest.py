#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A real Linux guest (tests/guest: Debian's cloud kernel and a busybox
initramfs) on the serial console: OpenConsole both ways and with several
clients, output kept with no client, a client that never reads, Powerdown,
a kernel panic, SendKey. The guest prints QMACHINE-GUEST-READY once its
acpid listens, and QMACHINE-CAD on ctrl-alt-delete."""

import os
import re
import select
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import MACHINE_IFACE, GLib, Gio, err  # noqa: E402

BANNER = b"QMACHINE-GUEST-READY"
BOOT_TIMEOUT = 120.0  # TCG on a busy 2-core machine: seconds, not minutes


def guest_dir():
    """The built guest. tools/check builds it (meson target test-guest);
    without it these tests cannot prove anything, so they fail."""
    d = os.environ.get("QMACHINED_TEST_GUEST_DIR", "")
    if not d or not os.path.exists(os.path.join(d, "vmlinuz")):
        raise AssertionError("no test guest: set QMACHINED_TEST_GUEST_DIR to the output of "
                             "tests/guest/build-guest.sh (meson target test-guest)")
    return d


def guest_args(extra_args=()):
    """QEMU's arguments for the tiny guest on its serial console (TCG
    unless KVM works here), then extra_args."""
    d = guest_dir()
    return qmtest.accel_args() + [
        "-m", "256", "-no-reboot",
        "-kernel", os.path.join(d, "vmlinuz"),
        "-initrd", os.path.join(d, "initramfs.gz"),
        "-append", "console=ttyS0 panic=-1 quiet cryptomgr.notests",
    ] + list(extra_args)


def guest_config(extra_args=(), **extra):
    """CreateMachine's config for the tiny guest; extra keys are added or
    replace the defaults."""
    config = dict(machine="pc", console=True, args=guest_args(extra_args), qmp_timeout=60.0)
    config.update(extra)
    return config


class Console:
    """A console connection from OpenConsole."""

    def __init__(self, fd):
        self.sock = socket.socket(fileno=fd)
        self.sock.setblocking(False)
        self.data = b""

    def read_until(self, pattern, timeout=60.0):
        """Read until the bytes matching pattern (a regex) arrive; returns
        the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.data)
            if m:
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("console did not show %r in time; tail: %r"
                                     % (pattern, self.data[-2000:]))
            r, _, _ = select.select([self.sock], [], [], min(left, 0.5))
            if r:
                chunk = self.sock.recv(65536)
                if not chunk:
                    m = rx.search(self.data)
                    if m:
                        return m
                    raise AssertionError("console closed before %r; tail: %r"
                                         % (pattern, self.data[-2000:]))
                self.data += chunk

    def send(self, text):
        self.sock.setblocking(True)
        self.sock.sendall(text.encode() if isinstance(text, str) else text)
        self.sock.setblocking(False)

    def close(self):
        self.sock.close()


class GuestTest(qmtest.QMTestCase):

    def guest_config(self, **extra):
        return guest_config(["-device", "pvpanic", "-action", "panic=none"] + list(extra.pop("args", [])),
                            **extra)

    def open_console(self, path):
        r = self.conn.call_with_unix_fd_list_sync(
            qmtest.BUS_NAME, path, MACHINE_IFACE, "OpenConsole", None,
            GLib.VariantType.new("(h)"), Gio.DBusCallFlags.NONE, 30000, None, None)
        reply, fds = r
        fd = fds.get(reply.unpack()[0])
        return Console(fd)

    def console_output(self, path):
        return bytes(self.machine(path, "GetConsoleOutput", None, "(ay)"))

    def wait_output(self, path, needle, timeout=BOOT_TIMEOUT):
        ok = qmtest.iterate_until(lambda: needle in self.console_output(path), timeout)
        self.assertTrue(ok, "GetConsoleOutput never showed %r; tail: %r"
                        % (needle, self.console_output(path)[-2000:]))

    def booted_guest(self, name, **extra):
        path = self.create_machine(name, **self.guest_config(**extra))
        t0 = time.monotonic()
        self.launch(path)
        con = self.open_console(path)
        # The banner may have come before we connected: the retained
        # output has it either way.
        self.wait_output(path, BANNER)
        print("%s: launch to banner %.1f s" % (name, time.monotonic() - t0), file=sys.stderr)
        return path, con

    def run_command(self, con, command, timeout=60.0):
        """Type a shell command and wait for a marker it prints."""
        tag = "m%d" % int(time.monotonic() * 1e6)
        con.send("%s; echo done-%s\n" % (command, tag))
        con.read_until(rb"done-%s\r?\n" % tag.encode(), timeout)

    def test_console_both_ways_two_clients(self):
        path, first = self.booted_guest("talk")
        second = self.open_console(path)
        word = "hello-%d" % os.getpid()
        # $((…)) makes the echoed command line differ from the output.
        first.send("echo %s-$((6*7))\n" % word)
        first.read_until(rb"%s-42" % word.encode())
        second.read_until(rb"%s-42" % word.encode())
        # What the second one types reaches the guest too.
        second.send("echo second-$((40+2))\n")
        first.read_until(rb"second-42")
        self.assertIn(BANNER, self.console_output(path))
        first.close()
        second.close()
        self.shutdown(path, True)

    def test_output_kept_without_client(self):
        path = self.create_machine("quiet", **self.guest_config())
        self.launch(path)
        self.wait_output(path, BANNER)
        log = os.path.join(self.mprop(path, "LogDirectory"), "console.log")
        with open(log, "rb") as f:
            self.assertIn(BANNER, f.read())
        # The guest was not stalled: it answers on the console at once.
        con = self.open_console(path)
        con.send("echo alive-$((1+1))\n")
        con.read_until(rb"alive-2", 30)
        con.close()
        self.shutdown(path, True)
        # Retained after the run ends, until the next launch.
        self.assertIn(BANNER, self.console_output(path))

    def test_client_that_never_reads(self):
        path, reader = self.booted_guest("flood")
        stuck = self.open_console(path)  # never reads
        # 4 MiB of output: far more than the stuck client's socket and the
        # daemon's 1 MiB bound for it.
        reader.send("i=0; while [ $i -lt 32768 ]; do echo line-$i-0123456789abcdef0123456789abcdef"
                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789; i=$((i+1)); done;"
                    " echo flood-$((500+500))\n")
        reader.read_until(rb"flood-1000", 600)
        # The stuck client was dropped: after what it was sent, it sees EOF.
        stuck.sock.setblocking(True)
        stuck.sock.settimeout(10)
        got = 0
        while True:
            chunk = stuck.sock.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
        self.assertLess(got, 4 * 1024 * 1024, "the stuck client did not get everything")
        stuck.close()
        # The guest and the other client are fine.
        self.run_command(reader, "true")
        reader.close()
        self.shutdown(path, True)

    def test_powerdown(self):
        path, con = self.booted_guest("acpi")
        con.close()
        t0 = time.monotonic()
        self.machine(path, "Powerdown", GLib.Variant("(d)", (60.0,)), "()", timeout=120)
        print("powerdown took %.2f s" % (time.monotonic() - t0), file=sys.stderr)
        self.assertEqual(self.mprop(path, "State"), "stopped")
        self.assertEqual(self.mprop(path, "ExitCode"), 0)
        seq, ev = self.wait_event(path, [("SHUTDOWN", '{"data": {"guest": true}}')], 0, 0)
        self.assertGreater(seq, 0, "a SHUTDOWN event from the guest")

    def test_kernel_panic_detected(self):
        path, con = self.booted_guest("panic")
        crashes = self.record(MACHINE_IFACE, "KernelCrashDetected", path)
        props = self.record_properties(path)
        self.assertEqual(self.mprop(path, "KernelCrash"), "")
        con.send("echo c > /proc/sysrq-trigger\n")
        self.assertTrue(crashes.wait(timeout=120), "no KernelCrashDetected signal")
        text = crashes.args()[0][0]
        self.assertIn("Kernel panic - not syncing", text)
        self.assertEqual(self.mprop(path, "KernelCrash"), text)
        self.assertIn(text, qmtest.changed_values(props, "KernelCrash"))
        # once per run
        qmtest.iterate_for(1.0)
        self.assertEqual(len(crashes.signals), 1)
        con.close()
        self.shutdown(path, True)

    def test_send_key_ctrl_alt_delete(self):
        path, con = self.booted_guest("keys")
        # The guest's keyboard driver may still be probing right after the
        # banner: press again until the guest reacts.
        for attempt in range(10):
            self.machine(path, "SendKey", GLib.Variant("(asu)", (["ctrl-alt-delete"], 0)), "()")
            try:
                con.read_until(rb"QMACHINE-CAD", 5)
                break
            except AssertionError:
                if attempt == 9:
                    raise
        self.expect_error(qmtest.INVALID_ARGS, self.machine, path, "SendKey",
                          GLib.Variant("(asu)", (["ctrl-alt-bogus"], 0)), "()")
        con.close()
        self.shutdown(path, True)


class ConsoleConfigTest(qmtest.QMTestCase):
    """Console errors need no guest."""

    def test_console_config_errors(self):
        e = self.expect_error(qmtest.INVALID_ARGS, self.create_machine, "c1",
                              console_device="isa-serial")
        self.assertIn("console-device", e.text)
        e = self.expect_error(qmtest.INVALID_ARGS, self.create_machine, "c2", console=True,
                              console_index=9)
        self.assertIn("console-index", e.text)
        self.expect_error(qmtest.INVALID_ARGS, self.create_machine, "c3", console_index=1)

    def test_no_console_and_not_running(self):
        path = self.create_none_machine("plain")
        self.expect_error(err("NoConsole"), self.machine, path, "GetConsoleOutput", None, "(ay)")
        self.expect_error(err("NoConsole"), self.machine, path, "OpenConsole", None, "(h)")
        path = self.create_machine("withcon", machine="pc", console=True,
                                   args=qmtest.accel_args() + ["-S"])
        self.expect_error(err("NotRunning"), self.machine, path, "OpenConsole", None, "(h)")
        self.assertEqual(self.console_output_of(path), b"")
        # console-index: that many -serial null come first
        path = self.create_machine("idx", machine="pc", console=True, console_index=2,
                                   args=qmtest.accel_args() + ["-S"])
        self.launch(path)
        cmd = " ".join(self.mprop(path, "CommandLine"))
        self.assertIn("-serial null -serial null -serial chardev:console", cmd)
        self.shutdown(path, True)

    def console_output_of(self, path):
        return bytes(self.machine(path, "GetConsoleOutput", None, "(ay)"))


if __name__ == "__main__":
    qmtest.main()
