#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The QEMU guest agent (config guest-agent): GuestAgentConnected,
GuestAgent, GuestExec, CopyToGuest and CopyFromGuest on the real test
guest (tests/guest: qemu-ga on the virtio-serial port
org.qemu.guest_agent.0, started by /init after the banner), under TCG.
Also: the agent stopped and started again inside the guest, a daemon
restart, a machine without the agent, bad arguments and polkit."""

import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import (BUS_NAME, INVALID_ARGS, MACHINE_IFACE, GLib, Gio,  # noqa: E402
                    err)
from test_guest import Console, guest_config  # noqa: E402
from test_polkit import NobodyMixin, action, vtext  # noqa: E402

sys.path.insert(0, os.path.join(qmtest.source_root(), "python"))
import qmachine  # noqa: E402

AGENT_TIMEOUT = 120.0  # launch to the agent answering, TCG on a busy machine


def timing(what, seconds):
    print("TIMING %s: %.3f s" % (what, seconds), file=sys.stderr)


class AgentCalls:
    """The four methods and the property, over raw D-Bus."""

    def guest_config(self, **extra):
        return guest_config(guest_agent=True, qmp_timeout=30.0, **extra)

    def agent(self, path, command, arguments="", timeout=60.0):
        r = self.machine(path, "GuestAgent", GLib.Variant("(ss)", (command, arguments)), "(s)",
                         timeout=timeout)
        return json.loads(r)

    def guest_exec(self, path, argv, stdin=b"", timeout=None, env=None, call_timeout=120.0):
        options = {}
        if timeout is not None:
            options["timeout"] = GLib.Variant("d", float(timeout))
        if env is not None:
            options["env"] = GLib.Variant("as", env)
        # "ay" from bytes without a Python object per byte
        args = GLib.Variant.new_tuple(
            GLib.Variant("as", argv),
            GLib.Variant.new_from_bytes(GLib.VariantType.new("ay"), GLib.Bytes.new(stdin), True),
            GLib.Variant("a{sv}", options))
        code, out, errout = self.machine(path, "GuestExec", args, "(iayay)", timeout=call_timeout)
        return code, bytes(out), bytes(errout)

    def sh(self, path, script, **kw):
        return self.guest_exec(path, ["/bin/sh", "-c", script], **kw)

    def call_with_fd(self, path, method, signature, args, fd, timeout=120.0):
        fds = Gio.UnixFDList.new_from_array([os.dup(fd)])
        try:
            r = self.conn.call_with_unix_fd_list_sync(
                BUS_NAME, path, MACHINE_IFACE, method, GLib.Variant(signature, args),
                GLib.VariantType.new("()"), Gio.DBusCallFlags.NONE, int(timeout * 1000), fds, None)
        except GLib.Error as e:
            raise qmtest.convert_error(e) from None
        return r

    def copy_to(self, path, host_file, guest_path, mode=0):
        with open(host_file, "rb") as f:
            self.call_with_fd(path, "CopyToGuest", "(hsu)", (0, guest_path, mode), f.fileno())

    def copy_from(self, path, guest_path, host_file):
        with open(host_file, "wb") as f:
            self.call_with_fd(path, "CopyFromGuest", "(sh)", (guest_path, 0), f.fileno())

    def connected(self, path):
        return self.mprop(path, "GuestAgentConnected")

    def open_console(self, path):
        reply, fds = self.conn.call_with_unix_fd_list_sync(
            BUS_NAME, path, MACHINE_IFACE, "OpenConsole", None,
            GLib.VariantType.new("(h)"), Gio.DBusCallFlags.NONE, 30000, None, None)
        return Console(fds.get(reply.unpack()[0]))

    def booted_with_agent(self, name, **extra):
        """Launch the guest and wait for the agent to answer; prints the
        time from Launch to GuestAgentConnected."""
        path = self.create_machine(name, **self.guest_config(**extra))
        self.assertFalse(self.connected(path))
        t0 = time.monotonic()
        self.launch(path)
        self.wait_property(path, "GuestAgentConnected", True, timeout=AGENT_TIMEOUT)
        timing("launch to GuestAgentConnected", time.monotonic() - t0)
        return path


class GuestAgentTest(AgentCalls, qmtest.QMTestCase):

    def test_exec_and_copy(self):
        path = self.booted_with_agent("ga")
        props = self.record_properties(path)

        # The raw passthrough: the agent's whole object, without our id.
        self.assertEqual(self.agent(path, "guest-ping"), {"return": {}})
        info = self.agent(path, "guest-info")
        self.assertIn("version", info["return"])
        names = [c["name"] for c in info["return"]["supported_commands"]]
        self.assertIn("guest-exec", names)
        e = self.agent(path, "guest-no-such-command")
        self.assertEqual(e["error"]["class"], "CommandNotFound", e)
        # The daemon owns synchronisation; bad arguments send nothing.
        for command in ("guest-sync", "guest-sync-delimited"):
            self.expect_error(INVALID_ARGS, self.agent, path, command, '{"id": 1}')
        self.expect_error(INVALID_ARGS, self.agent, path, "guest-ping", "[1]")
        self.expect_error(INVALID_ARGS, self.agent, path, "guest-ping", "{")
        self.expect_error(INVALID_ARGS, self.agent, path, "", "")
        self.expect_error(INVALID_ARGS, self.agent, path, "guest-ping", " " * (1024 * 1024 + 1))

        # GuestExec: exit code, stdout, stderr apart.
        self.assertEqual(self.sh(path, "echo hi; echo err >&2; exit 3"), (3, b"hi\n", b"err\n"))
        rounds = []
        for _ in range(5):
            t0 = time.monotonic()
            self.assertEqual(self.guest_exec(path, ["echo", "x"]), (0, b"x\n", b""))
            rounds.append(time.monotonic() - t0)
        timing("GuestExec echo round trip (median of 5)", statistics.median(rounds))
        # stdin, binary both ways
        data = bytes(range(256)) * 64
        self.assertEqual(self.guest_exec(path, ["cat"], stdin=data), (0, data, b""))
        # env replaces the agent's environment
        self.assertEqual(self.sh(path, 'echo "$QM_A-$QM_B"', env=["QM_A=1", "QM_B=two", "PATH=/bin"]),
                         (0, b"1-two\n", b""))
        # a signal: -N
        self.assertEqual(self.sh(path, "kill -9 $$")[0], -9)
        e = self.expect_error(err("GuestExecFailed"), self.guest_exec, path, ["/no/such/program"])
        self.assertIn("/no/such/program", e.text)
        # A program that outlasts its timeout: Timeout, the machine and
        # the agent keep working.
        t0 = time.monotonic()
        self.expect_error(err("Timeout"), self.guest_exec, path, ["sleep", "30"], timeout=2)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertTrue(self.connected(path))
        self.assertEqual(self.guest_exec(path, ["echo", "after"]), (0, b"after\n", b""))
        self.assertEqual(self.mprop(path, "State"), "running")
        # bad arguments
        self.expect_error(INVALID_ARGS, self.guest_exec, path, [])
        self.expect_error(INVALID_ARGS, self.guest_exec, path, [""])
        for t in (0, -1, 86401, float("nan")):
            self.expect_error(INVALID_ARGS, self.guest_exec, path, ["true"], timeout=t)
        self.expect_error(INVALID_ARGS, self.guest_exec, path, ["true"], env=["NOEQUALS"])
        self.expect_error(INVALID_ARGS, self.machine, path, "GuestExec",
                          GLib.Variant("(asaya{sv})", (["true"], b"", {"tiemout": GLib.Variant("d", 1.0)})),
                          "(iayay)")
        self.expect_error(INVALID_ARGS, self.machine, path, "GuestExec",
                          GLib.Variant("(asaya{sv})", (["true"], b"", {"timeout": GLib.Variant("u", 1)})),
                          "(iayay)")
        self.expect_error(INVALID_ARGS, self.guest_exec, path, ["cat"],
                          stdin=b"x" * (16 * 1024 * 1024 + 1))

        # Copies: 5 MiB of random bytes in and out, byte-identical, with a mode.
        tmp = self.env.path("copies")
        os.makedirs(tmp, exist_ok=True)
        src, back = os.path.join(tmp, "src"), os.path.join(tmp, "back")
        payload = os.urandom(5 * 1024 * 1024)
        with open(src, "wb") as f:
            f.write(payload)
        t0 = time.monotonic()
        self.copy_to(path, src, "/tmp/payload", 0o640)
        t_in = time.monotonic() - t0
        code, out, _ = self.sh(path, "sha256sum /tmp/payload; stat -c %a /tmp/payload")
        self.assertEqual(code, 0)
        self.assertEqual(out.split()[0].decode(), hashlib.sha256(payload).hexdigest())
        self.assertEqual(out.split()[-1], b"640")
        t0 = time.monotonic()
        self.copy_from(path, "/tmp/payload", back)
        t_out = time.monotonic() - t0
        with open(back, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), hashlib.sha256(payload).hexdigest())
        print("TIMING copy 5 MiB: in %.2f s (%.2f MiB/s), out %.2f s (%.2f MiB/s)"
              % (t_in, 5 / t_in, t_out, 5 / t_out), file=sys.stderr)
        # mode 0: the agent's default; an existing file is truncated
        with open(src, "wb") as f:
            f.write(b"short\n")
        self.copy_to(path, src, "/tmp/payload")
        self.assertEqual(self.guest_exec(path, ["cat", "/tmp/payload"]), (0, b"short\n", b""))
        # an empty file, through a pipe
        r, w = os.pipe()
        os.close(w)
        self.call_with_fd(path, "CopyToGuest", "(hsu)", (0, "/tmp/empty", 0o600), r)
        os.close(r)
        self.assertEqual(self.sh(path, "wc -c </tmp/empty; stat -c %a /tmp/empty"), (0, b"0\n600\n", b""))
        # the agent's errors
        e = self.expect_error(err("QmpError"), self.copy_from, path, "/no/such/file", back)
        self.assertIn("No such file", e.text)
        e = self.expect_error(err("QmpError"), self.copy_to, path, src, "/no/such/dir/file")
        self.assertIn("No such file", e.text)
        for bad in ("", "x" * 4097):
            self.expect_error(INVALID_ARGS, self.copy_to, path, src, bad)
            self.expect_error(INVALID_ARGS, self.copy_from, path, bad, back)
        self.expect_error(INVALID_ARGS, self.copy_to, path, src, "/tmp/m", 0o10000)
        # Nothing above took the agent down.
        self.assertEqual(self.agent(path, "guest-ping"), {"return": {}})
        qmtest.iterate_for(0.2)
        self.assertNotIn(False, qmtest.changed_values(props, "GuestAgentConnected"))

        # The end of the run: not connected, NotRunning.
        self.shutdown(path, True)
        self.assertFalse(self.connected(path))
        self.assertTrue(props.wait(lambda _s: False in qmtest.changed_values(props, "GuestAgentConnected")))
        self.expect_error(err("NotRunning"), self.guest_exec, path, ["true"])
        self.expect_error(err("NotRunning"), self.agent, path, "guest-ping")

    def test_agent_restart_and_daemon_restart(self):
        path = self.booted_with_agent("ga-restart")
        con = self.open_console(path)
        con.send("\n")
        con.read_until(rb"guest# ")
        # The agent stops inside the guest: the daemon notices (the port
        # closes), and commands fail with GuestAgentUnavailable.
        con.send("qm-agent-restart stop\n")
        con.read_until(rb"QMACHINE-GUEST-AGENT-STOPPED")
        self.wait_property(path, "GuestAgentConnected", False, timeout=30)
        t0 = time.monotonic()
        self.expect_error(err("GuestAgentUnavailable"), self.agent, path, "guest-ping")
        self.expect_error(err("GuestAgentUnavailable"), self.guest_exec, path, ["true"])
        self.assertLess(time.monotonic() - t0, 20)
        # started again: synchronised again, works again
        t0 = time.monotonic()
        con.send("qm-agent-start\n")
        con.read_until(rb"QMACHINE-GUEST-AGENT-STARTED")
        self.wait_property(path, "GuestAgentConnected", True, timeout=60)
        timing("agent restarted to GuestAgentConnected", time.monotonic() - t0)
        self.assertEqual(self.guest_exec(path, ["echo", "back"]), (0, b"back\n", b""))

        # A daemon restart: the new daemon connects to the same socket and
        # synchronises; answers meant for the old one do not confuse it.
        pid = self.mprop(path, "Pid")
        con.close()
        t0 = time.monotonic()
        self.restart_daemon()
        self.assertEqual(self.mprop(path, "Pid"), pid)
        self.wait_property(path, "GuestAgentConnected", True, timeout=60)
        timing("daemon restart to GuestAgentConnected", time.monotonic() - t0)
        self.assertEqual(self.sh(path, "echo again; exit 4"), (4, b"again\n", b""))
        self.shutdown(path, True)

    def ctl(self, *args, stdin=b"", timeout=120):
        """qmachinectl; returns the CompletedProcess (bytes)."""
        exe = os.environ.get("QMACHINECTL") or os.path.join(
            qmtest.source_root(), "build", "src", "qmachinectl", "qmachinectl")
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.env.system_address)
        return subprocess.run([exe] + list(args), input=stdin, capture_output=True, env=env,
                              timeout=timeout)

    def test_qmachinectl_and_python_client(self):
        path = self.booted_with_agent("ga-ctl")
        # exec: output apart, the program's status is ours
        r = self.ctl("exec", "ga-ctl", "--", "/bin/sh", "-c", "echo out; echo err >&2; exit 7")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (7, b"out\n", b"err\n"))
        # stdin that is not a terminal is passed; machinectl's spelling
        r = self.ctl("shell", "ga-ctl", "--", "tr", "a-z", "A-Z", stdin=b"hello\n")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, b"HELLO\n", b""))
        # a signal: 128+N
        r = self.ctl("exec", "ga-ctl", "--", "/bin/sh", "-c", "kill -TERM $$")
        self.assertEqual(r.returncode, 128 + 15, r)
        # --json: one object; output that is not UTF-8 in base64
        r = self.ctl("exec", "ga-ctl", "--json", "--", "/bin/sh", "-c", "echo out; printf 'b\\377' >&2; exit 3")
        self.assertEqual((r.returncode, r.stderr), (3, b""), r)
        self.assertEqual(json.loads(r.stdout), {"exit_code": 3, "signal": None, "stdout": "out\n",
                                                "stderr": None, "stderr_base64": "Yv8="})
        r = self.ctl("exec", "ga-ctl", "-o", "json", "--", "/bin/sh", "-c", "kill -TERM $$")
        self.assertEqual(r.returncode, 128 + 15, r)
        self.assertEqual(json.loads(r.stdout), {"exit_code": None, "signal": 15, "stdout": "", "stderr": ""})
        r = self.ctl("exec", "ga-ctl", "--timeout", "1", "--", "sleep", "20")
        self.assertEqual(r.returncode, 1, r)
        self.assertIn(b"did not end within", r.stderr)
        r = self.ctl("exec", "ga-ctl", "--", "/no/such/program")
        self.assertEqual(r.returncode, 1, r)
        self.assertTrue(r.stderr.startswith(b"qmachinectl: "), r.stderr)
        # copies: the host files are opened by qmachinectl
        tmp = self.env.path("ctl-copies")
        os.makedirs(tmp, exist_ok=True)
        src, back = os.path.join(tmp, "src"), os.path.join(tmp, "back")
        payload = os.urandom(300 * 1024)
        with open(src, "wb") as f:
            f.write(payload)
        r = self.ctl("copy-to", "ga-ctl", src, "/tmp/ctl-file", "--mode", "0755")
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        self.assertEqual(self.sh(path, "stat -c %a /tmp/ctl-file")[1], b"755\n")
        r = self.ctl("copy-from", "ga-ctl", "/tmp/ctl-file", back)
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        with open(back, "rb") as f:
            self.assertEqual(f.read(), payload)
        # a failed copy leaves no host file it created
        missing = os.path.join(tmp, "missing")
        r = self.ctl("copy-from", "ga-ctl", "/no/such/file", missing)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn(b"No such file", r.stderr)
        self.assertFalse(os.path.exists(missing))
        # usage errors
        self.assertEqual(self.ctl("copy-to", "ga-ctl", src, "/tmp/x", "--mode", "9").returncode, 2)
        self.assertEqual(self.ctl("exec", "ga-ctl").returncode, 2)
        self.assertEqual(self.ctl("copy-to", "ga-ctl", "/no/such/host/file", "/tmp/x").returncode, 1)

        # The Python client, on the same guest.
        mgr = qmachine.connect(address=self.env.address)
        self.addCleanup(mgr.close)
        m = mgr.get_machine("ga-ctl")
        self.assertTrue(m.guest_agent_connected)
        self.assertEqual(m.guest_agent("guest-ping"), {"return": {}})
        self.assertEqual(m.guest_agent("guest-file-close", handle=123456)["error"]["class"],
                         "GenericError")
        r = m.guest_exec(["/bin/sh", "-c", "cat; echo e >&2; exit 2"], stdin=b"in\n",
                         env=["PATH=/bin"])
        self.assertEqual(r, qmachine.GuestExecResult(2, b"in\n", b"e\n"))
        self.assertEqual(r.exit_code, 2)
        with self.assertRaises(qmachine.Timeout):
            m.guest_exec(["sleep", "20"], timeout=1)
        with self.assertRaises(qmachine.GuestExecFailed):
            m.guest_exec(["/no/such/program"])
        m.copy_to_guest(src, "/tmp/py-file", mode=0o600)
        self.assertEqual(m.guest_exec(["stat", "-c", "%a", "/tmp/py-file"]).stdout, b"600\n")
        with open(back, "wb") as f:  # an open file, left open
            m.copy_from_guest("/tmp/py-file", f)
            self.assertFalse(f.closed)
        with open(back, "rb") as f:
            self.assertEqual(f.read(), payload)
        os.unlink(back)
        m.copy_from_guest("/tmp/py-file", back)  # a path, created here
        with open(back, "rb") as f:
            self.assertEqual(f.read(), payload)
        with self.assertRaises(qmachine.QmpError):
            m.copy_from_guest("/no/such/file", back)
        m.shutdown(hard=True)
        self.assertFalse(m.guest_agent_connected)
        with self.assertRaises(qmachine.NotRunning):
            m.guest_exec(["true"])

    def test_without_agent(self):
        # config without guest-agent: NoGuestAgent, whatever the state
        path = self.create_none_machine("no-ga")
        self.assertFalse(self.connected(path))
        for running in (False, True):
            if running:
                self.launch(path)
            self.expect_error(err("NoGuestAgent"), self.agent, path, "guest-ping")
            self.expect_error(err("NoGuestAgent"), self.guest_exec, path, ["true"])
            with tempfile.TemporaryFile() as f:
                self.expect_error(err("NoGuestAgent"), self.call_with_fd, path, "CopyToGuest", "(hsu)",
                                  (0, "/tmp/x", 0), f.fileno())
                self.expect_error(err("NoGuestAgent"), self.call_with_fd, path, "CopyFromGuest", "(sh)",
                                  ("/tmp/x", 0), f.fileno())
            self.assertFalse(self.connected(path))
        self.assertNotIn("org.qemu.guest_agent.0", " ".join(self.mprop(path, "CommandLine")))
        self.kill(path)

    def test_agent_not_answering(self):
        # The port is there but nothing in the guest answers (firmware
        # only): not connected, and commands fail in a few seconds.
        path = self.create_machine("ga-silent", machine="pc", guest_agent=True,
                                   args=qmtest.accel_args() + ["-m", "64", "-nodefaults"])
        self.expect_error(err("NotRunning"), self.agent, path, "guest-ping")
        self.launch(path)
        cmdline = self.mprop(path, "CommandLine")
        self.assertIn("virtserialport,bus=qm-vser0.0,chardev=qga0,name=org.qemu.guest_agent.0,"
                      "id=qm-guest-agent", cmdline)
        self.assertTrue(any(a.startswith("socket,id=qga0,fd=") for a in cmdline), cmdline)
        self.assertIn(os.path.join(self.mprop(path, "RuntimeDirectory"), "agent.sock"),
                      self.sockets_under(self.mprop(path, "RuntimeDirectory")))
        t0 = time.monotonic()
        self.expect_error(err("GuestAgentUnavailable"), self.agent, path, "guest-ping")
        self.assertLess(time.monotonic() - t0, 10)
        self.expect_error(err("GuestAgentUnavailable"), self.guest_exec, path, ["true"])
        self.assertFalse(self.connected(path))
        # several waiting at once, all answered
        calls = [self.call_async(path, MACHINE_IFACE, "GuestAgent",
                                 GLib.Variant("(ss)", ("guest-ping", "")), "(s)") for _ in range(5)]
        for c in calls:
            self.expect_error(err("GuestAgentUnavailable"), c.wait)
        self.assertEqual(self.command(path, "query-status")["status"], "running")
        self.kill(path)
        self.assertEqual(self.sockets_under(self.mprop(path, "RuntimeDirectory")), [])


class GuestAgentPolkitTest(NobodyMixin, AgentCalls, qmtest.QMTestCase):
    """Each method asks for org.qmachine.QMachine1.guest; denied, nothing
    happens (the machine is defined only: authorization comes first)."""

    polkit_mock = True

    def test_denied(self):
        pk = self.env.polkit
        path = self.create_machine("pk-ga", **self.guest_config())
        pk.set_allowed([action(a) for a in ("admin", "create", "manage", "monitor", "console",
                                            "images")])
        calls = [
            ("GuestAgent", vtext("(ss)", ("guest-ping", "")), "guest-ping"),
            ("GuestExec", vtext("(asaya{sv})", (["true"], b"", {})), None),
            ("CopyToGuest", "(@h 0, '/tmp/x', @u 0)", None),
            ("CopyFromGuest", "('/tmp/x', @h 0)", None),
        ]
        for method, args, command in calls:
            e = self.expect_error(qmtest.ACCESS_DENIED, self.nobody_machine, path, method, args)
            self.assertTrue(e.text)
            subject, action_id, details, flags, cancel = pk.check_calls()[-1]
            self.assertEqual(action_id, action("guest"), method)
            expected = {"verb": method, "machine": "pk-ga"}
            if command:
                expected["command"] = command
            self.assertEqual(details, expected)
        # allowed: it gets past polkit (and the machine does not run)
        pk.set_allowed([action("guest")])
        self.expect_error(err("NotRunning"), self.nobody_machine, path, "GuestAgent",
                          vtext("(ss)", ("guest-ping", "")))
        self.assertEqual(self.mprop(path, "State"), "defined")


if __name__ == "__main__":
    qmtest.main()
