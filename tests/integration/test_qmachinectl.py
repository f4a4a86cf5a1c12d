#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""qmachinectl, the command-line client, run as a subprocess against the
real daemon and real QEMU: every command's output, exit codes (0, 1 for a
D-Bus error with the daemon's message, 2 for usage errors), the console
without a terminal, monitor, and the image commands.

Environment (besides qmtest's):
  QMACHINECTL  the client binary (default:
               SOURCE_ROOT/build/src/qmachinectl/qmachinectl)
  QMACHINED_TEST_GUEST_DIR  when set, a real guest also answers a command
               typed through `qmachinectl console`
"""

import json
import os
import re
import select
import subprocess
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import (INVALID_ARGS, MACHINE_IFACE, GLib, err,  # noqa: E402
                    machine_path)

MIB = 1024 * 1024


def qmachinectl_binary():
    exe = os.environ.get("QMACHINECTL")
    if exe:
        return os.path.abspath(exe)
    return os.path.join(qmtest.source_root(), "build", "src", "qmachinectl", "qmachinectl")


def none_create_args():
    """`create` options of the cheapest QEMU (-machine none)."""
    out = ["--machine", "none"]
    for a in ["-nodefaults"] + qmtest.accel_args():
        out += ["--arg", a]
    return out


def pc_console_create_args():
    """A pc whose CPUs never start (-S), with a serial console."""
    out = ["--machine", "pc", "--console"]
    for a in ["-nodefaults", "-S", "-m", "64"] + qmtest.accel_args():
        out += ["--arg", a]
    return out


class CtlTest(qmtest.QMTestCase):

    def ctl_env(self):
        env = dict(os.environ)
        env["DBUS_SYSTEM_BUS_ADDRESS"] = self.env.system_address
        return env

    def run_ctl(self, *args, stdin=None, timeout=60):
        """Runs qmachinectl; returns the CompletedProcess (text)."""
        return subprocess.run([qmachinectl_binary()] + list(args), input=stdin,
                              capture_output=True, text=True, env=self.ctl_env(),
                              timeout=timeout)

    def ctl(self, *args, **kw):
        """Runs qmachinectl and expects success; returns stdout."""
        r = self.run_ctl(*args, **kw)
        self.assertEqual(r.returncode, 0, "qmachinectl %s: rc %d, stderr %r"
                         % (" ".join(args), r.returncode, r.stderr))
        self.assertEqual(r.stderr, "")
        return r.stdout

    def ctl_fails(self, *args, rc=1, message=None, **kw):
        """Runs qmachinectl and expects exit code rc; returns stderr.
        With message, stderr must be exactly "qmachinectl: MESSAGE"."""
        r = self.run_ctl(*args, **kw)
        self.assertEqual(r.returncode, rc, "qmachinectl %s: stdout %r stderr %r"
                         % (" ".join(args), r.stdout, r.stderr))
        self.assertTrue(r.stderr.startswith("qmachinectl: "), r.stderr)
        if message is not None:
            self.assertEqual(r.stderr, "qmachinectl: %s\n" % message)
        return r.stderr

    def list_rows(self):
        lines = self.ctl("list").splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "STATE", "PID"])
        return [tuple(line.split()) for line in lines[1:]]

    def status(self, name):
        """The "Key: value" rows of status (State without its "since ...")."""
        out = {}
        # the rows: after the title line, up to the log and events
        for line in self.ctl("status", name).split("\n\n")[0].splitlines()[1:]:
            key, _, value = line.partition(": ")
            out[key.strip()] = value.strip()
        out["State"] = out["State"].split(" since ")[0]
        return out

    # ------------------------------------------------------------------

    def test_round_trip(self):
        self.assertEqual(self.list_rows(), [])
        self.assertEqual(self.ctl("create", "vm-1", *none_create_args(),
                                  "--description", "first one"), "vm-1\n")
        self.assertEqual(self.list_rows(), [("vm-1", "defined", "-")])
        st = self.status("vm-1")
        self.assertEqual(st["Name"], "vm-1")
        self.assertEqual(st["State"], "defined")
        self.assertEqual(st["Pid"], "-")
        self.assertEqual(st["EventSequence"], "0")
        self.assertEqual(st["UUID"], self.mprop(machine_path("vm-1"), "UUID"))

        self.ctl("start", "vm-1")
        path = machine_path("vm-1")
        pid = self.mprop(path, "Pid")
        self.assertGreater(pid, 0)
        self.assertEqual(self.list_rows(), [("vm-1", "running", str(pid))])
        st = self.status("vm-1")
        self.assertEqual(st["State"], "running")
        self.assertEqual(st["RunState"], "running")
        self.assertEqual(st["Pid"], str(pid))
        self.assertEqual(st["QemuVersion"], self.mprop(path, "QemuVersion"))
        self.assertIn("-machine none", st["CommandLine"])
        self.assertEqual(st["RuntimeDirectory"], self.mprop(path, "RuntimeDirectory"))

        # qmp prints the whole response, command only the return value,
        # both as indented JSON.
        out = self.ctl("qmp", "vm-1", "query-status")
        self.assertEqual(json.loads(out)["return"]["status"], "running")
        self.assertIn("\n  ", out)
        out = self.ctl("command", "vm-1", "query-status")
        self.assertEqual(json.loads(out)["status"], "running")
        out = self.ctl("command", "vm-1", "qom-list", '{"path": "/machine"}')
        self.assertIsInstance(json.loads(out), list)

        self.ctl("pause", "vm-1")
        self.assertEqual(self.mprop(path, "RunState"), "paused")
        self.assertEqual(self.ctl("wait-event", "vm-1", "STOP").split(" ", 1)[0], "1")
        self.ctl("resume", "vm-1")
        self.assertEqual(self.mprop(path, "RunState"), "running")

        lines = self.ctl("events", "vm-1").splitlines()
        self.assertEqual(len(lines), 2)
        seqs = [int(line.split(" ", 1)[0]) for line in lines]
        events = [json.loads(line.split(" ", 1)[1]) for line in lines]
        self.assertEqual(seqs, [1, 2])
        self.assertEqual([e["event"] for e in events], ["STOP", "RESUME"])
        self.assertEqual(self.get_events(path), list(zip(seqs, events)))
        lines = self.ctl("events", "vm-1", "--after", "1").splitlines()
        self.assertEqual([line.split(" ", 1)[0] for line in lines], ["2"])

        # wait-event: a match JSON, --after, any event ("*"), and nothing
        # found with --timeout 0 or in time.
        out = self.ctl("wait-event", "vm-1", "RESUME", '{"event": "RESUME"}', "--timeout", "0")
        seq, ev = out.rstrip("\n").split(" ", 1)
        self.assertEqual((int(seq), json.loads(ev)["event"]), (2, "RESUME"))
        self.assertEqual(self.ctl("wait-event", "vm-1", "*", "--after", "1").split()[0], "2")
        self.ctl_fails("wait-event", "vm-1", "STOP", "--after", "1", "--timeout", "0",
                       message="no matching event")
        t0 = time.monotonic()
        stderr = self.ctl_fails("wait-event", "vm-1", "STOP", "--after", "2", "--timeout", "0.3")
        self.assertLess(time.monotonic() - t0, 20)
        e = self.expect_error(err("Timeout"), self.wait_event, path, [("STOP", "")],
                              after=2, timeout=0.3)
        self.assertEqual(stderr, "qmachinectl: %s\n" % e.text)
        # A waiter gets an event that comes later.
        waiter = subprocess.Popen([qmachinectl_binary(), "wait-event", "vm-1", "STOP",
                                   "--after", "2", "--timeout", "30"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=self.ctl_env())
        try:
            qmtest.iterate_for(0.3)
            self.ctl("pause", "vm-1")
            out, errout = waiter.communicate(timeout=30)
        finally:
            if waiter.poll() is None:
                waiter.kill()
                waiter.communicate()
        self.assertEqual(waiter.returncode, 0, errout)
        self.assertEqual(out.split()[0], "3")

        self.ctl("stop", "vm-1", "--timeout", "10")
        st = self.status("vm-1")
        self.assertEqual(st["State"], "stopped")
        self.assertEqual(st["ExitCode"], "0")
        self.assertEqual(st["Pid"], "-")
        self.assertFalse(qmtest.pid_alive(pid))
        self.assertIsInstance(self.ctl("log", "vm-1"), str)
        self.ctl("remove", "vm-1")
        self.assertEqual(self.list_rows(), [])

    def test_kill_wait_reset(self):
        self.ctl("create", "k", *none_create_args())
        self.ctl("launch", "k")
        self.ctl("reset", "k")
        e = self.ctl_fails("wait", "k", "--timeout", "0.2")
        self.assertIn("qmachinectl: ", e)
        self.assertEqual(self.mprop(machine_path("k"), "State"), "failed")
        self.ctl("start", "k")
        self.ctl("kill", "k")
        self.assertEqual(self.status("k")["ExitCode"], "-9")
        self.ctl("start", "k")
        self.ctl("stop", "k", "--force")
        st = self.status("k")
        self.assertEqual((st["State"], st["ExitCode"]), ("failed", "-9"))
        # Not running: stop, kill and wait do nothing.
        self.ctl("stop", "k")
        self.ctl("kill", "k")
        self.ctl("wait", "k")

    def test_create_options_and_clone(self):
        u = str(uuid.uuid4())
        self.ctl("create", "opts", "--machine", "none", "--arg", "-nodefaults",
                 "--persistent", "--nics", "2", "--uuid", u, "--description", "d e",
                 "--qmp-timeout", "12.5", "--binary", qmtest.qemu_binary(),
                 "--incoming", "defer", "--console", "--console-index", "1")
        cfg = self.get_property(machine_path("opts"), MACHINE_IFACE, "Config")
        self.assertEqual(cfg["machine"], "none")
        self.assertEqual(cfg["args"], ["-nodefaults"])
        self.assertEqual(cfg["persistent"], True)
        self.assertEqual(cfg["nics"], 2)
        self.assertEqual(cfg["uuid"], u)
        self.assertEqual(cfg["description"], "d e")
        self.assertEqual(cfg["qmp-timeout"], 12.5)
        self.assertEqual(cfg["incoming"], "defer")
        self.assertEqual(cfg["console"], True)
        self.assertEqual(cfg["console-index"], 1)
        self.assertEqual(cfg["qmp"], True)
        st = self.status("opts")
        self.assertEqual(st["Persistent"], "yes")
        self.assertEqual(st["MacAddresses"].split(),
                         self.mprop(machine_path("opts"), "MacAddresses"))

        self.ctl("create", "noqmp", "--no-qmp")
        cfg = self.get_property(machine_path("noqmp"), MACHINE_IFACE, "Config")
        self.assertEqual(cfg["qmp"], False)

        # "-": the daemon picks the name, qmachinectl prints it.
        name = self.ctl("create", "-", *none_create_args()).strip()
        self.assertRegex(name, r"^vm-\d{8}-\d{6}-[a-z0-9]{4}$")
        self.assertIn((name, "defined", "-"), self.list_rows())

        self.assertEqual(self.ctl("clone", "opts", "copy"), "copy\n")
        cfg = self.get_property(machine_path("copy"), MACHINE_IFACE, "Config")
        self.assertEqual(cfg["description"], "d e")
        self.assertNotEqual(cfg["uuid"], u)

        e = self.expect_error(err("MachineExists"), self.create_none_machine, "copy")
        self.ctl_fails("create", "copy", message=e.text)
        e = self.expect_error(INVALID_ARGS, self.create_machine, "bad", nics=2, qmp_timeout=-1.0)
        self.ctl_fails("create", "bad", "--nics", "2", "--qmp-timeout", "-1", message=e.text)

    def test_errors(self):
        # Unknown machine: the daemon's NoSuchMachine message.
        e = self.expect_error(err("NoSuchMachine"), self.manager, "GetMachine",
                              GLib.Variant("(s)", ("nosuch",)), "(o)")
        for cmd in (["status", "nosuch"], ["start", "nosuch"], ["stop", "nosuch"],
                    ["qmp", "nosuch", "query-status"], ["events", "nosuch"],
                    ["monitor", "nosuch"], ["console", "nosuch"], ["log", "nosuch"]):
            with self.subTest(cmd=cmd):
                self.ctl_fails(*cmd, message=e.text)
        e = self.expect_error(err("NoSuchMachine"), self.manager, "RemoveMachine",
                              GLib.Variant("(s)", ("nosuch",)), "()")
        self.ctl_fails("remove", "nosuch", message=e.text)
        e = self.expect_error(INVALID_ARGS, self.create_machine, "bad/name")
        self.ctl_fails("create", "bad/name", message=e.text)

        self.ctl("create", "vm", *none_create_args())
        path = machine_path("vm")
        e = self.expect_error(err("NotRunning"), self.command, path, "query-status")
        self.ctl_fails("command", "vm", "query-status", message=e.text)
        self.ctl("start", "vm")
        e = self.expect_error(err("AlreadyRunning"), self.launch, path)
        self.ctl_fails("start", "vm", message=e.text)
        e = self.expect_error(err("Busy"), self.manager, "RemoveMachine",
                              GLib.Variant("(s)", ("vm",)), "()")
        self.ctl_fails("remove", "vm", message=e.text)

        # Bad JSON: the daemon's InvalidArgs message.
        e = self.expect_error(INVALID_ARGS, self.command, path, "query-status", "{bad")
        self.ctl_fails("command", "vm", "query-status", "{bad", message=e.text)
        self.ctl_fails("qmp", "vm", "query-status", "{bad", message=e.text)
        e = self.expect_error(INVALID_ARGS, self.wait_event, path, [("STOP", "[1")], timeout=0)
        self.ctl_fails("wait-event", "vm", "STOP", "[1", "--timeout", "0", message=e.text)
        e = self.expect_error(INVALID_ARGS, self.machine, path, "SendKey",
                              GLib.Variant("(asu)", (["nosuchkey"], 0)), "()")
        self.ctl_fails("send-key", "vm", "nosuchkey", message=e.text)

        # A QMP error: qmp prints the response and exits 1, command
        # prints the daemon's QmpError message.
        r = self.run_ctl("qmp", "vm", "no-such-command")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(json.loads(r.stdout)["error"]["class"], "CommandNotFound")
        e = self.expect_error(err("QmpError"), self.command, path, "no-such-command")
        self.assertTrue(e.text.startswith("CommandNotFound: "), e.text)
        self.ctl_fails("command", "vm", "no-such-command", message=e.text)

        # Usage errors exit 2.
        self.ctl_fails(rc=2)
        self.ctl_fails("no-such-command", rc=2)
        self.ctl_fails("status", rc=2)
        self.ctl_fails("status", "a", "b", rc=2)
        self.ctl_fails("stop", "vm", "--timeout", "soon", rc=2)
        self.ctl_fails("events", "vm", "--after", "-1", rc=2)
        self.assertIn("unknown option --force", self.ctl_fails("list", "--force", rc=2))
        self.assertIn("option --timeout needs a value",
                      self.ctl_fails("stop", "vm", "--timeout", rc=2))
        self.ctl_fails("image-create", "x.img", "raw", "12Q", rc=2)
        self.ctl_fails("image-create", "x.img", "raw", "1M", "--cluster-size", "big", rc=2)
        self.assertEqual(self.mprop(path, "State"), "running")

        # --address instead of DBUS_SYSTEM_BUS_ADDRESS.
        env = self.ctl_env()
        env["DBUS_SYSTEM_BUS_ADDRESS"] = "unix:path=/nonexistent"
        r = subprocess.run([qmachinectl_binary(), "--address", self.env.system_address,
                            "list"], capture_output=True, text=True, env=env, timeout=30)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertIn("vm ", r.stdout)

        # Nobody on the bus.
        r = subprocess.run([qmachinectl_binary(), "--address", "unix:path=/nonexistent", "list"],
                           capture_output=True, text=True, env=self.ctl_env(), timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stderr.startswith("qmachinectl: "), r.stderr)

    def test_help_and_version(self):
        out = self.ctl("--help")
        for cmd in ("list", "status", "create", "monitor", "console", "image-create",
                    "migrate", "wait-event", "send-key"):
            self.assertRegex(out, r"\n  %s\b" % re.escape(cmd))
        self.assertEqual(self.ctl("help"), out)
        out = self.ctl("stop", "--help")
        self.assertIn("Usage: qmachinectl stop NAME", out)
        self.assertIn("--timeout=S", out)
        self.assertIn("--force", out)
        self.assertEqual(self.ctl("help", "stop"), out)
        out = self.ctl("create", "--help")
        for opt in ("--machine=T", "--arg=A", "--binary=B", "--persistent", "--console",
                    "--nics=N", "--qmp-timeout=S", "--uuid=U", "--incoming=URI",
                    "--description=D", "--no-qmp"):
            self.assertIn(opt, out)
        self.assertRegex(self.ctl("--version"), r"^qmachinectl \d+\.\d+\.\d+\n$")
        lines = dict(line.split(": ", 1) for line in self.ctl("version").splitlines())
        self.assertEqual(lines["Version"], self.manager_prop("Version"))
        self.assertEqual(lines["DefaultBinary"], self.manager_prop("DefaultBinary"))

    def test_monitor(self):
        self.ctl("create", "m1", *none_create_args())
        self.ctl("create", "m2", *none_create_args())
        self.ctl("start", "m1")
        self.ctl("start", "m2")
        one = self.start_monitor("m1")
        every = self.start_monitor()
        try:
            self.ctl("pause", "m1")
            self.ctl("pause", "m2")
            self.ctl("resume", "m1")
            lines = self.read_lines(one, 2)
            self.assertEqual([line.split(" ", 3)[:3] for line in lines],
                             [["m1", "1", "STOP"], ["m1", "2", "RESUME"]])
            self.assertEqual(json.loads(lines[0].split(" ", 3)[3]), {})
            lines = self.read_lines(every, 3)
            self.assertEqual([line.split(" ", 3)[:3] for line in lines],
                             [["m1", "1", "STOP"], ["m2", "1", "STOP"],
                              ["m1", "2", "RESUME"]])
        finally:
            for p in (one, every):
                p.terminate()
        # SIGTERM ends them with 0; the first one never saw m2's STOP.
        for p in (one, every):
            out, errout = p.communicate(timeout=10)
            self.assertEqual(p.returncode, 0, errout)
            self.assertEqual(p.pending + out, b"")

    def start_monitor(self, *names):
        p = subprocess.Popen([qmachinectl_binary(), "monitor"] + list(names),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=self.ctl_env())
        p.pending = b""
        # It says on stderr when its match is in place.
        note = self.read_fd_line(p.stderr.fileno(), 30)
        self.assertIn(b"Ctrl-C", note)
        return p

    def read_fd_line(self, fd, timeout):
        data = b""
        deadline = time.monotonic() + timeout
        while not data.endswith(b"\n"):
            ready, _, _ = select.select([fd], [], [], max(0, deadline - time.monotonic()))
            self.assertTrue(ready, "no line within %.0f s: %r" % (timeout, data))
            chunk = os.read(fd, 1)
            self.assertTrue(chunk, "EOF after %r" % data)
            data += chunk
        return data

    def read_lines(self, p, n, timeout=30):
        """n lines of a monitor's stdout (raw reads: no buffering between
        select() and the pipe)."""
        deadline = time.monotonic() + timeout
        fd = p.stdout.fileno()
        while p.pending.count(b"\n") < n:
            ready, _, _ = select.select([fd], [], [], max(0, deadline - time.monotonic()))
            self.assertTrue(ready, "monitor printed %r, expected %d lines" % (p.pending, n))
            chunk = os.read(fd, 65536)
            self.assertTrue(chunk, "monitor ended after %r" % p.pending)
            p.pending += chunk
        lines = p.pending.split(b"\n")
        p.pending = b"\n".join(lines[n:])
        return [line.decode() for line in lines[:n]]

    def test_console_without_tty(self):
        self.ctl("create", "con", *pc_console_create_args())
        self.ctl("create", "nocon", *none_create_args())
        e = self.expect_error(err("NotRunning"), self.machine, machine_path("con"),
                              "OpenConsole", None, "(h)")
        self.ctl_fails("console", "con", stdin="", message=e.text)
        self.ctl("start", "con")
        self.ctl("start", "nocon")
        e = self.expect_error(err("NoConsole"), self.machine, machine_path("nocon"),
                              "GetConsoleOutput", None, "(ay)")
        self.ctl_fails("console", "nocon", stdin="", message=e.text)
        self.ctl_fails("console-output", "nocon", message=e.text)

        # stdin is copied to the console; at EOF the client drains the
        # console for --drain seconds and ends.
        t0 = time.monotonic()
        out = self.ctl("console", "con", "--drain", "0.2", stdin="hello\n", timeout=30)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(out, "")
        self.assertEqual(self.ctl("console-output", "con"), "")
        # The daemon let the client go: another may connect.
        self.ctl("console", "con", "--drain", "0", stdin="")
        # The console closes when QEMU stops: the client ends then.
        p = subprocess.Popen([qmachinectl_binary(), "console", "con"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=self.ctl_env())
        try:
            qmtest.iterate_for(0.3)
            self.ctl("stop", "con")
            out, errout = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        self.assertEqual(p.returncode, 0, errout)

    def test_console_with_guest(self):
        # meson builds the guest (tests/guest) and sets this; without it
        # the test fails rather than passing untested.
        d = os.environ.get("QMACHINED_TEST_GUEST_DIR", "")
        self.assertTrue(os.path.exists(os.path.join(d, "vmlinuz")),
                        "no test guest: set QMACHINED_TEST_GUEST_DIR (meson target test-guest)")
        args = ["--machine", "pc", "--console", "--qmp-timeout", "60"]
        for a in qmtest.accel_args() + [
                "-m", "256", "-no-reboot", "-kernel", os.path.join(d, "vmlinuz"),
                "-initrd", os.path.join(d, "initramfs.gz"),
                "-append", "console=ttyS0 panic=-1 quiet cryptomgr.notests"]:
            args += ["--arg", a]
        self.ctl("create", "guest", *args)
        self.ctl("start", "guest")
        ok = qmtest.iterate_until(
            lambda: "QMACHINE-GUEST-READY" in self.ctl("console-output", "guest"), 120)
        self.assertTrue(ok, "the guest did not boot")
        out = self.ctl("console", "guest", "--drain", "3",
                       stdin="echo said-$((6*7))\n", timeout=120)
        self.assertIn("said-42", out)
        self.ctl("powerdown", "guest", "--timeout", "60")

    def test_images(self):
        out = self.ctl("images")
        self.assertEqual(out.split(), ["NAME", "FORMAT", "SIZE"])
        path = self.ctl("image-create", "disk.qcow2", "qcow2", "64M").strip()
        self.assertEqual(os.path.basename(path), "disk.qcow2")
        self.assertTrue(os.path.isfile(path))
        self.ctl("image-create", "big.qcow2", "qcow2", "1G", "--cluster-size", "64K",
                 "--backing", "disk.qcow2")
        self.ctl("image-create", "odd.raw", "raw", "3584")
        self.ctl("image-create", "t.raw", "raw", "1t")
        rows = [line.split() for line in self.ctl("images").splitlines()[1:]]
        self.assertEqual(sorted(rows), [["big.qcow2", "qcow2", "1G"],
                                        ["disk.qcow2", "qcow2", "64M"],
                                        ["odd.raw", "raw", "3584"],
                                        ["t.raw", "raw", "1T"]])
        self.assertIn(("disk.qcow2", "qcow2", 64 * MIB),
                      self.manager("ListImages", None, "(a(sst))"))
        out = self.ctl("image-check", "disk.qcow2")
        self.assertEqual(out.splitlines()[0], "ok")
        r = self.run_ctl("image-check", "odd.raw")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout.splitlines()[0], "unsupported")
        e = self.expect_error(err("ImageExists"), self.manager, "CreateImage",
                              GLib.Variant("(ssta{sv})",
                                           ("disk.qcow2", "qcow2", MIB, {})), "(s)")
        self.ctl_fails("image-create", "disk.qcow2", "qcow2", "1M", message=e.text)
        for name in ("big.qcow2", "disk.qcow2", "odd.raw", "t.raw"):
            self.ctl("image-remove", name)
        e = self.expect_error(err("NoSuchImage"), self.manager, "RemoveImage",
                              GLib.Variant("(s)", ("disk.qcow2",)), "()")
        self.ctl_fails("image-remove", "disk.qcow2", message=e.text)
        e = self.expect_error(err("NoSuchImage"), self.manager, "CheckImage",
                              GLib.Variant("(s)", ("disk.qcow2",)), "(ss)")
        self.ctl_fails("image-check", "disk.qcow2", message=e.text)
        self.assertEqual(self.ctl("images").split(), ["NAME", "FORMAT", "SIZE"])


if __name__ == "__main__":
    qmtest.main()
