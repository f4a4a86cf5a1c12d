#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""qmachinectl's output for scripts and for people, against the real
daemon with `-machine none` QEMUs (and the fake QEMU for console bytes):

- every command that prints data prints one JSON document with -o json,
  --json, --json=pretty and -o json-pretty, with the expected fields;
  -o value prints only values; commands that only act print nothing;
- --no-legend drops a table's header; -q drops informational messages;
- show NAME [-p PROP]... [--value] and show without NAME;
- status: uptime, QEMU version, pid, owner, MACs, forwarded ports, log
  and events, in text and as JSON;
- colours and the pager only on a terminal (a pty), never with NO_COLOR
  or SYSTEMD_COLORS=0, no pager with --no-pager;
- wait --no-kill leaves the machine running when its time runs out.

Environment (besides qmtest's):
  QMACHINECTL  the client binary
"""

import base64
import json
import os
import pty
import pwd
import select
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import GLib, machine_path  # noqa: E402

FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_qemu.py")
JSON_MODES = (["--json"], ["--json=short"], ["--json=pretty"], ["-o", "json"], ["-o", "json-pretty"],
              ["--output=json-pretty"])
ESC = "\x1b["


def qmachinectl_binary():
    exe = os.environ.get("QMACHINECTL")
    if exe:
        return os.path.abspath(exe)
    return os.path.join(qmtest.source_root(), "build", "src", "qmachinectl", "qmachinectl")


class OutputTest(qmtest.QMTestCase):

    def ctl_env(self, **extra):
        env = dict(os.environ)
        env["DBUS_SYSTEM_BUS_ADDRESS"] = self.env.system_address
        for key in ("NO_COLOR", "SYSTEMD_COLORS", "SYSTEMD_PAGER", "PAGER"):
            env.pop(key, None)
        env.update(extra)
        return env

    def run_ctl(self, *args, env=None, timeout=60):
        return subprocess.run([qmachinectl_binary()] + list(args), capture_output=True, text=True,
                              env=env or self.ctl_env(), timeout=timeout, stdin=subprocess.DEVNULL)

    def ctl(self, *args, **kw):
        r = self.run_ctl(*args, **kw)
        self.assertEqual((r.returncode, r.stderr), (0, ""), "qmachinectl %s" % " ".join(args))
        return r.stdout

    def ctl_json(self, *args):
        """The JSON of every JSON mode, checked to be the same document; a
        short one is one line, a pretty one indented."""
        docs = []
        for mode in JSON_MODES:
            out = self.ctl(*(list(args) + mode))
            self.assertTrue(out.endswith("\n"), out)
            if mode in (["--json=short"], ["-o", "json"], ["--json"]):
                # --json without a mode is short when stdout is no terminal
                self.assertEqual(out.count("\n"), 1, (mode, out))
            elif out not in ("[]\n", "{}\n"):
                self.assertIn("\n  ", out, mode)
            docs.append(json.loads(out))
        for d in docs[1:]:
            self.assertEqual(d, docs[0])
        return docs[0]

    def on_pty(self, *args, env, timeout=30):
        """(rc, output) of qmachinectl with stdout and stderr on a pty."""
        master, slave = pty.openpty()
        p = subprocess.Popen([qmachinectl_binary()] + list(args), stdin=subprocess.DEVNULL,
                             stdout=slave, stderr=slave, env=env)
        os.close(slave)
        out = b""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.5)
                if ready:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:  # EIO: every writer is gone
                        break
                    if not chunk:
                        break
                    out += chunk
                elif p.poll() is not None:
                    break
        finally:
            os.close(master)
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
        return p.returncode, out.decode("utf-8", "replace")

    def running_machine(self, name, **config):
        path = self.create_none_machine(name, **config)
        self.launch(path)
        return path

    # ------------------------------------------------------------------

    def test_list_and_images(self):
        path = self.running_machine("vm-a")
        self.create_none_machine("vm-b")
        pid = self.mprop(path, "Pid")
        rows = self.ctl_json("list")
        self.assertEqual(rows, [
            {"name": "vm-a", "state": "running", "pid": pid, "path": path},
            {"name": "vm-b", "state": "defined", "pid": None, "path": machine_path("vm-b")},
        ])
        lines = self.ctl("list").splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "STATE", "PID"])
        self.assertEqual([line.split() for line in self.ctl("list", "--no-legend").splitlines()],
                         [["vm-a", "running", str(pid)], ["vm-b", "defined", "-"]])
        self.assertEqual(self.ctl("list", "-o", "value").splitlines(),
                         ["vm-a\trunning\t%d\t%s" % (pid, path), "vm-b\tdefined\t\t%s" % machine_path("vm-b")])
        # no terminal: no colour, whatever the environment says
        self.assertNotIn(ESC, self.ctl("list", env=self.ctl_env(TERM="xterm")))

        self.assertEqual(self.ctl_json("images"), [])
        self.manager("CreateImage", GLib.Variant("(ssta{sv})", ("d.qcow2", "qcow2", 1 << 20, {})), "(s)")
        self.assertEqual(self.ctl_json("images"), [{"name": "d.qcow2", "format": "qcow2", "size": 1 << 20}])
        self.assertEqual(self.ctl("images", "--no-legend").split(), ["d.qcow2", "qcow2", "1M"])
        made = json.loads(self.ctl("image-create", "e.raw", "raw", "1M", "--json"))
        self.assertEqual(os.path.basename(made["path"]), "e.raw")
        check = json.loads(self.ctl("image-check", "d.qcow2", "--json"))
        self.assertEqual(check["verdict"], "ok")
        self.assertIsInstance(check["report"], str)

    def test_commands_that_act_print_nothing(self):
        self.create_none_machine("quiet")
        for args in (["start", "quiet"], ["pause", "quiet"], ["resume", "quiet"], ["reset", "quiet"],
                     ["stop", "quiet"], ["kill", "quiet"], ["wait", "quiet"], ["enable", "quiet"],
                     ["disable", "quiet"]):
            with self.subTest(args=args):
                self.assertEqual(self.ctl(*(args + ["--json"])), "")

    def test_show(self):
        path = self.running_machine("sh", nics=1, forward_ports=[8080], description="d e")
        ports = self.mprop(path, "ForwardedPorts")
        macs = self.mprop(path, "MacAddresses")
        lines = self.ctl("show", "sh").splitlines()
        props = dict(line.split("=", 1) for line in lines)
        self.assertEqual(props["Name"], "sh")
        self.assertEqual(props["State"], "running")
        self.assertEqual(props["Pid"], str(self.mprop(path, "Pid")))
        self.assertEqual(props["Persistent"], "no")
        self.assertEqual(props["MacAddresses"], " ".join(macs))
        self.assertEqual(props["ForwardedPorts"], "8080:%d" % ports[8080])
        self.assertEqual(props["UUID"], self.mprop(path, "UUID"))
        # the explicit properties: the owner may read them
        self.assertEqual(json.loads(props["Config"])["description"], "d e")
        self.assertIn("-machine none", props["CommandLine"])
        for name in self.get_all(path, qmtest.MACHINE_IFACE):
            self.assertIn(name, props)

        self.assertEqual(self.ctl("show", "sh", "-p", "State", "--value"), "running\n")
        self.assertEqual(self.ctl("show", "sh", "-p", "State", "-o", "value"), "running\n")
        self.assertEqual(self.ctl("show", "sh", "--property=Name,State"), "Name=sh\nState=running\n")
        self.assertEqual(self.ctl("show", "-p", "UUID", "sh", "-p", "Pid", "--value").split(),
                         [self.mprop(path, "UUID"), str(self.mprop(path, "Pid"))])
        self.assertEqual(self.ctl("show", "sh", "-p", "NoSuchProperty"), "")

        doc = self.ctl_json("show", "sh")
        self.assertEqual(doc["ForwardedPorts"], {"8080": ports[8080]})
        self.assertEqual(doc["MacAddresses"], macs)
        self.assertEqual(doc["Config"]["nics"], 1)
        self.assertIs(doc["Persistent"], False)
        self.assertEqual(self.ctl_json("show", "sh", "-p", "Pid"), {"Pid": self.mprop(path, "Pid")})

        manager = dict(line.split("=", 1) for line in self.ctl("show").splitlines())
        self.assertEqual(manager["Version"], self.manager_prop("Version"))
        self.assertEqual(manager["MachineCount"], "1")
        self.assertEqual(self.ctl_json("show")["DefaultBinary"], self.manager_prop("DefaultBinary"))
        self.assertEqual(self.run_ctl("show", "nosuch").returncode, 1)

    def test_status(self):
        path = self.running_machine("st", nics=1, forward_ports=[8080], description="the one")
        self.machine(path, "Pause", None, "()")
        self.machine(path, "Resume", None, "()")
        pid = self.mprop(path, "Pid")
        user = pwd.getpwuid(os.getuid()).pw_name
        doc = self.ctl_json("status", "st")
        self.assertEqual(doc["name"], "st")
        self.assertEqual(doc["description"], "the one")
        self.assertEqual((doc["state"], doc["run_state"], doc["pid"]), ("running", "running", pid))
        self.assertEqual(doc["qemu_version"], self.mprop(path, "QemuVersion"))
        self.assertEqual(doc["owner"], {"uid": os.getuid(), "user": user})
        self.assertEqual(doc["uuid"], self.mprop(path, "UUID"))
        self.assertEqual(doc["mac_addresses"], self.mprop(path, "MacAddresses"))
        self.assertEqual(doc["forwarded_ports"],
                         [{"guest": 8080, "host": self.mprop(path, "ForwardedPorts")[8080]}])
        self.assertIs(doc["guest_agent_connected"], False)
        self.assertIs(doc["persistent"], False)
        self.assertIs(doc["autostart"], False)
        self.assertEqual(doc["launch_timestamp"], self.mprop(path, "LaunchTimestamp"))
        self.assertRegex(doc["since"], r"^\w{3} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+; \d+s ago$")
        self.assertEqual([(e["seq"], e["event"]["event"]) for e in doc["events"]],
                         [(1, "STOP"), (2, "RESUME")])
        self.assertIsInstance(doc["log"], list)
        self.assertIn("-machine", doc["command_line"])

        text = self.ctl("status", "st")
        rows = {}
        for line in text.split("\n\n")[0].splitlines()[1:]:
            key, _, value = line.partition(": ")
            rows[key.strip()] = value
        self.assertEqual(text.splitlines()[0], "st - the one")
        self.assertRegex(rows["State"], r"^running since .*; \d+s ago$")
        self.assertEqual(rows["Pid"], str(pid))
        self.assertEqual(rows["Owner"], "%d (%s)" % (os.getuid(), user))
        self.assertEqual(rows["ForwardedPorts"], "8080:%d" % self.mprop(path, "ForwardedPorts")[8080])
        self.assertEqual(rows["QemuVersion"], self.mprop(path, "QemuVersion"))
        self.assertIn("\nEvents (last):\n", text)
        self.assertRegex(text, r"\n  2 \S+ RESUME")

        # the last 5 events only
        for _ in range(3):
            self.machine(path, "Pause", None, "()")
            self.machine(path, "Resume", None, "()")
        seqs = [e["seq"] for e in json.loads(self.ctl("status", "st", "--json"))["events"]]
        self.assertEqual(seqs, [4, 5, 6, 7, 8])

        self.shutdown(path)
        doc = json.loads(self.ctl("status", "st", "--json"))
        self.assertEqual((doc["state"], doc["pid"], doc["since"], doc["exit_code"]), ("stopped", None, None, 0))
        self.assertRegex(self.ctl("status", "st"), r"\n +Launched: \w{3} .*ago\n")

    def test_data_commands(self):
        path = self.running_machine("d")
        self.assertEqual(self.ctl_json("version"),
                         {"client": self.ctl("--version").split()[1], "version": self.manager_prop("Version"),
                          "default_binary": self.manager_prop("DefaultBinary")})
        self.assertEqual(self.ctl("version", "-o", "value").splitlines()[1], self.manager_prop("Version"))
        self.assertEqual(json.loads(self.ctl("create", "n1", "--json")), {"name": "n1"})
        self.assertEqual(json.loads(self.ctl("clone", "n1", "n2", "-o", "json-pretty")), {"name": "n2"})
        created = json.loads(self.ctl("create", "-", "--json"))["name"]
        self.assertTrue(created.startswith("vm-"), created)

        # qmp and command print QEMU's JSON as it is
        self.assertEqual(self.ctl_json("qmp", "d", "query-status")["return"]["status"], "running")
        self.assertEqual(self.ctl_json("command", "d", "query-status")["status"], "running")

        self.machine(path, "Pause", None, "()")
        events = self.ctl_json("events", "d")
        self.assertEqual([(e["seq"], e["event"]["event"]) for e in events], [(1, "STOP")])
        self.assertIn("timestamp", events[0]["event"])
        got = self.ctl_json("wait-event", "d", "STOP", "--timeout", "0")
        self.assertEqual((got["seq"], got["event"]["event"]), (1, "STOP"))
        self.assertEqual(self.ctl("events", "d", "-o", "value").count("\n"), 1)

        log = self.ctl_json("log", "d")
        self.assertEqual(list(log), ["log"])
        self.assertEqual(log["log"], self.machine(path, "GetLog", None, "(s)"))

    def test_ports(self):
        path = self.running_machine("p", nics=1, forward_ports=[8080, 22])
        ports = self.mprop(path, "ForwardedPorts")
        self.assertEqual(self.ctl_json("port", "p", "8080"), {"guest": 8080, "host": ports[8080]})
        self.assertEqual(sorted((r["guest"], r["host"]) for r in self.ctl_json("port", "p")),
                         sorted(ports.items()))

    def test_console_bytes(self):
        # the fake writes a line that is not UTF-8: base64 then
        path = self.create_machine("fc", binary=FAKE, console=True, args=["--fake-mode=console-hello"])
        self.launch(path)
        want = b"hello from the fake\nbad \xff byte\nREADY\n"
        got = []
        self.assertTrue(qmtest.iterate_until(
            lambda: got.append(bytes(self.machine(path, "GetConsoleOutput", None, "(ay)"))) or got[-1] == want,
            30), got[-1:])
        out = self.ctl_json("console-output", "fc")
        self.assertIsNone(out["output"])
        self.assertEqual(base64.b64decode(out["output_base64"]), want)
        got = self.ctl_json("expect", "fc", "READY", "--timeout", "0")
        self.assertEqual(got, {"offset": len(want) - 1, "match": "READY"})

    def test_powerdown_all_json(self):
        # one guest powers off, one never does (no ACPI), one is not running
        good = self.create_machine("good", binary=FAKE, args=["--fake-mode=powers-off"])
        self.launch(good)
        self.running_machine("deaf")
        self.create_none_machine("idle")
        r = self.run_ctl("powerdown-all", "--timeout=1", "--json", timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("qmachinectl: deaf: ", r.stderr)
        self.assertEqual(r.stdout.count("\n"), 1, r.stdout)
        rows = sorted(json.loads(r.stdout), key=lambda row: row["name"])
        self.assertEqual([(row["name"], row["powered_off"]) for row in rows], [("deaf", False), ("good", True)])
        self.assertIsNone(rows[1]["error"])
        self.assertIsInstance(rows[0]["error"], str)
        self.assertIn(rows[0]["error"], r.stderr)
        self.assertEqual(self.mprop(good, "State"), "stopped")
        self.assertEqual(self.mprop(machine_path("idle"), "State"), "defined")
        # nothing left running: an empty list, in every JSON mode
        self.assertEqual(self.ctl_json("powerdown-all"), [])

    def test_quiet_and_monitor_json(self):
        path = self.running_machine("m")
        p = subprocess.Popen([qmachinectl_binary(), "monitor", "m", "-q", "--json"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=self.ctl_env())
        try:
            # no note on stderr tells when the match is in place: pause until
            # an event comes through
            line = b""
            deadline = time.monotonic() + 30
            while not line and time.monotonic() < deadline:
                self.machine(path, "Pause", None, "()")
                self.machine(path, "Resume", None, "()")
                ready, _, _ = select.select([p.stdout], [], [], 1)
                if ready:
                    line = p.stdout.readline()
        finally:
            p.terminate()
            out, err = p.communicate(timeout=10)
        event = json.loads(line)
        # the match may come between a pause and its resume
        self.assertEqual(event["machine"], "m")
        self.assertIn(event["event"], ("STOP", "RESUME"))
        self.assertIsInstance(event["data"], dict)
        for rest in out.splitlines():
            json.loads(rest)
        self.assertEqual(err, b"")
        # without -q, the note is there
        p = subprocess.Popen([qmachinectl_binary(), "monitor", "m"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=self.ctl_env())
        try:
            ready, _, _ = select.select([p.stderr], [], [], 30)
            self.assertTrue(ready)
            self.assertIn(b"Ctrl-C", p.stderr.readline())
        finally:
            p.terminate()
            p.communicate(timeout=10)

    def test_colour_only_on_a_terminal(self):
        self.running_machine("c")
        self.create_none_machine("c2")
        env = self.ctl_env(TERM="xterm")
        rc, out = self.on_pty("list", "--no-pager", env=env)
        self.assertEqual(rc, 0, out)
        self.assertIn("\x1b[1mc\x1b[0m", out)             # the name bold
        self.assertIn("\x1b[0;32mrunning\x1b[0m", out)    # running green
        rc, out = self.on_pty("status", "c", "--no-pager", env=env)
        self.assertIn("\x1b[0;32mrunning\x1b[0m since", out)
        for extra in ({"NO_COLOR": "1"}, {"SYSTEMD_COLORS": "0"}, {"TERM": "dumb"}):
            with self.subTest(env=extra):
                rc, out = self.on_pty("list", "--no-pager", env=dict(env, **extra))
                self.assertEqual(rc, 0, out)
                self.assertIn("running", out)
                self.assertNotIn(ESC, out)

    def test_pager_only_on_a_terminal(self):
        self.create_none_machine("pg")
        with tempfile.TemporaryDirectory() as tmp:
            marker = os.path.join(tmp, "paged")
            env = self.ctl_env(TERM="xterm", SYSTEMD_PAGER="echo \"$LESS\" > %s; cat" % marker)
            rc, out = self.on_pty("list", env=env)
            self.assertEqual(rc, 0, out)
            self.assertIn("pg", out)
            with open(marker) as f:
                self.assertEqual(f.read(), "FRSXMK\n")
            os.unlink(marker)
            # PAGER when SYSTEMD_PAGER is not set
            env.pop("SYSTEMD_PAGER")
            env["PAGER"] = "touch %s; cat" % marker
            rc, out = self.on_pty("show", "pg", env=env)
            self.assertIn("Name=pg", out)
            self.assertTrue(os.path.exists(marker))
            os.unlink(marker)
            # never with --no-pager, nor without a terminal, nor for JSON on a pipe
            rc, out = self.on_pty("list", "--no-pager", env=env)
            self.assertIn("pg", out)
            self.assertFalse(os.path.exists(marker))
            for args in (["list"], ["status", "pg"], ["show", "pg"], ["list", "--json"]):
                self.assertIn("pg", self.ctl(*args, env=env))
                self.assertFalse(os.path.exists(marker), args)

    def test_wait_no_kill(self):
        path = self.running_machine("w")
        pid = self.mprop(path, "Pid")
        t0 = time.monotonic()
        r = self.run_ctl("wait", "w", "--timeout", "0.5", "--no-kill")
        self.assertGreaterEqual(time.monotonic() - t0, 0.5)
        self.assertEqual(r.returncode, 1)
        self.assertIn("still runs", r.stderr)
        self.assertEqual(self.mprop(path, "State"), "running")
        self.assertEqual(self.mprop(path, "Pid"), pid)
        self.assertTrue(qmtest.pid_alive(pid))

        # it returns when the machine stops
        p = subprocess.Popen([qmachinectl_binary(), "wait", "w", "--no-kill", "--timeout", "60"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.ctl_env())
        try:
            qmtest.iterate_for(0.5)
            self.assertIsNone(p.poll())
            t0 = time.monotonic()
            self.shutdown(path)
            out, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        self.assertEqual((p.returncode, out, err), (0, b"", b""))
        self.assertLess(time.monotonic() - t0, 5)
        # not running: at once
        self.assertEqual(self.ctl("wait", "w", "--no-kill"), "")
        self.assertIn("KILLED", self.ctl("wait", "--help"))

    def test_usage_errors(self):
        for args in (["list", "-o", "yaml"], ["list", "--json=long"], ["list", "--json", "pretty"],
                     ["status", "x", "-p", "State"], ["list", "--value"], ["wait", "x", "--no-kill=1"]):
            with self.subTest(args=args):
                r = self.run_ctl(*args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertTrue(r.stderr.startswith("qmachinectl: "), r.stderr)


if __name__ == "__main__":
    qmtest.main()
