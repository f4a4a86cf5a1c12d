#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Authorization: every method that is not read-only asks polkit, per call,
for the caller (API.md, "Authorization (polkit)").

Callers other than root are as_user.py run as nobody (uid 65534); polkit is
python-dbusmock's polkitd template, which allows nothing until told and
logs what the daemon asked. Root is allowed without asking. In --session
mode there is no polkit: only the daemon's own uid may call."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import (ACCESS_DENIED, MACHINE_IFACE, MANAGER_IFACE,  # noqa: E402
                    MANAGER_PATH, OM_IFACE, PROPS_IFACE, DBusCallError, GLib,
                    config_variant, err, machine_path, none_args, pid_alive)

HERE = os.path.dirname(os.path.abspath(__file__))
AS_USER = os.path.join(HERE, "as_user.py")
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
INTERACTIVE_REQUIRED = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
INTROSPECTABLE = "org.freedesktop.DBus.Introspectable"
PEER = "org.freedesktop.DBus.Peer"
ACTIONS = ("admin", "create", "manage", "monitor", "console", "images", "guest")


def action(name):
    return "org.qmachine.QMachine1." + name


def vtext(signature, value):
    """GVariant text of a value, for as_user.py."""
    return GLib.Variant(signature, value).print_(True)


def create_args(name):
    """CreateMachine's arguments for a `-machine none` QEMU."""
    return vtext("(sa{sv})", (name, config_variant({"args": none_args()})))


class NobodyMixin:
    """Calls as uid 65534 through as_user.py."""

    nobody_name = None

    def nobody_command(self, path, iface, method, args="", interactive=False,
                       repeat=1, timeout=30.0):
        if isinstance(args, GLib.Variant):
            args = args.print_(True)
        cmd = NOBODY + ["/usr/bin/python3", AS_USER, "--print-name",
                        "--timeout", str(timeout), "--repeat", str(repeat)]
        if self.env.session:
            cmd += ["--address", self.env.address]
        if interactive:
            cmd.append("--interactive")
        return cmd + [path, iface, method, args or ""]

    def start_as_nobody(self, *args, **kw):
        """as_user.py in the background; returns the Popen (stdout piped)."""
        return subprocess.Popen(self.nobody_command(*args, **kw),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True, cwd="/")

    def run_as_nobody(self, path, iface, method, args="", interactive=False,
                      repeat=1, timeout=30.0):
        """Run as_user.py; returns its result lines (dicts), one per call.
        Sets self.nobody_name to the caller's unique name."""
        p = subprocess.run(self.nobody_command(path, iface, method, args, interactive,
                                               repeat, timeout),
                           capture_output=True, text=True, cwd="/",
                           stdin=subprocess.DEVNULL, timeout=timeout * repeat + 30)
        try:
            lines = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
        except ValueError:
            lines = []
        if p.returncode != 0 or len(lines) != repeat + 1 or "name" not in lines[0]:
            self.fail("as_user.py failed (exit %d):\nstdout: %s\nstderr: %s"
                      % (p.returncode, p.stdout, p.stderr))
        self.nobody_name = lines[0]["name"]
        return lines[1:]

    def call_as_nobody(self, path, iface, method, args="", interactive=False,
                       timeout=30.0):
        """One call as nobody: the unpacked reply (as JSON gave it back), or
        raises DBusCallError (with .elapsed, the call's duration)."""
        r = self.run_as_nobody(path, iface, method, args, interactive, 1, timeout)[0]
        self.nobody_elapsed = r["elapsed"]
        if "error" in r:
            e = DBusCallError(r["error"], r["message"])
            e.elapsed = r["elapsed"]
            raise e
        return r["ok"]

    # Shorthands
    def nobody_manager(self, method, args="", **kw):
        return self.call_as_nobody(MANAGER_PATH, MANAGER_IFACE, method, args, **kw)

    def nobody_machine(self, path, method, args="", **kw):
        return self.call_as_nobody(path, MACHINE_IFACE, method, args, **kw)

    def nobody_qmp(self, path, method, command, arguments="", **kw):
        return self.nobody_machine(path, method, vtext("(ss)", (command, arguments)), **kw)

    def expect_denied(self, fn, *args, **kw):
        e = self.expect_error(ACCESS_DENIED, fn, *args, **kw)
        self.assertTrue(e.text, "AccessDenied without a message")
        return e


class PolkitTest(NobodyMixin, qmtest.QMTestCase):

    polkit_mock = True

    def setUp(self):
        super().setUp()
        self.pk = self.env.polkit

    # -- helpers

    def running_machine(self, name):
        """A `-machine none` QEMU, created and launched by root."""
        path = self.create_none_machine(name)
        self.launch(path)
        self.assertEqual(self.mprop(path, "State"), "running")
        self.wait_property(path, "RunState", "running")
        return path

    def allow(self, *actions):
        self.pk.set_allowed(list(actions))

    def allow_all_but(self, *actions):
        self.pk.set_allowed([a for a in ACTIONS if a not in actions])

    def checks(self):
        return self.pk.check_calls()

    def last_check(self):
        """The last CheckAuthorization the daemon made, as a dict."""
        calls = self.checks()
        self.assertTrue(calls, "the daemon did not ask polkit")
        subject, action_id, details, flags, cancel = calls[-1]
        return {"subject": subject, "action": action_id, "details": details,
                "flags": flags, "cancel": cancel}

    def assert_asked(self, action_name, machine, verb, command=None, flags=0):
        """The last check was for this action with exactly these details,
        for nobody's connection (machine None: a call about no machine)."""
        c = self.last_check()
        self.assertEqual(c["action"], action(action_name), c)
        details = {"verb": verb}
        if machine is not None:
            details["machine"] = machine
        if command is not None:
            details["command"] = command
        self.assertEqual(c["details"], details, c)
        self.assertEqual(c["flags"], flags, c)
        self.assertEqual(c["cancel"], "", c)
        self.assertEqual(c["subject"], ("system-bus-name", {"name": self.nobody_name}), c)

    def assert_running_unchanged(self, path, pid, run_state="running"):
        self.assertEqual(self.mprop(path, "State"), "running")
        self.assertEqual(self.mprop(path, "Pid"), pid)
        self.assertTrue(pid_alive(pid), "QEMU is gone")
        self.assertEqual(self.mprop(path, "RunState"), run_state)
        self.assertEqual(self.command(path, "query-status")["status"], run_state)

    # -- admin

    def test_admin_create_remove_denied(self):
        self.allow_all_but("create")
        self.expect_denied(self.nobody_manager, "CreateMachine", create_args("pk-new"))
        self.assert_asked("create", "pk-new", "CreateMachine")
        self.assertEqual(self.manager_prop("MachineCount"), 0)
        self.assertEqual(self.manager("ListMachines", None, "(a(ssuo))"), [])
        self.expect_error(err("NoSuchMachine"), self.manager, "GetMachine",
                          GLib.Variant("(s)", ("pk-new",)), "(o)")

        # root's machine: removing it needs admin
        path = self.create_none_machine("pk-old")
        self.allow_all_but("admin")
        self.expect_denied(self.nobody_manager, "RemoveMachine", vtext("(s)", ("pk-old",)))
        self.assert_asked("admin", "pk-old", "RemoveMachine")
        self.assertEqual(self.manager("GetMachine", GLib.Variant("(s)", ("pk-old",)), "(o)"),
                         path)
        self.assertEqual(self.mprop(path, "State"), "defined")
        self.assertEqual(self.manager_prop("MachineCount"), 1)

        # Nothing allowed at all: the same.
        self.allow()
        self.expect_denied(self.nobody_manager, "CreateMachine", create_args("pk-new"))
        self.expect_denied(self.nobody_manager, "RemoveMachine", vtext("(s)", ("pk-old",)))
        self.assert_daemon_answers(1)

    def test_admin_create_remove_allowed(self):
        self.allow("create")
        path = self.nobody_manager("CreateMachine", create_args("pk-made"))
        self.assertEqual(path, machine_path("pk-made"))
        self.assert_asked("create", "pk-made", "CreateMachine")
        self.assertEqual(self.manager_prop("MachineCount"), 1)
        self.assertEqual(self.mprop(path, "Name"), "pk-made")
        self.assertEqual(self.mprop(path, "Config")["args"], none_args())
        self.assertEqual(self.mprop(path, "Owner"), 65534)

        # The owner removes their own machine without asking polkit.
        checks = len(self.checks())
        self.allow()
        self.assertIsNone(self.nobody_manager("RemoveMachine", vtext("(s)", ("pk-made",))))
        self.assertEqual(len(self.checks()), checks)
        self.assertEqual(self.manager_prop("MachineCount"), 0)
        self.expect_error(err("NoSuchMachine"), self.manager, "GetMachine",
                          GLib.Variant("(s)", ("pk-made",)), "(o)")

    def test_admin_qmp_command(self):
        path = self.running_machine("pk-qmp")
        pid = self.mprop(path, "Pid")
        seq = self.mprop(path, "EventSequence")

        # Nothing allowed.
        self.expect_denied(self.nobody_qmp, path, "Qmp", "stop")
        self.assert_asked("admin", "pk-qmp", "Qmp", "stop")
        self.expect_denied(self.nobody_qmp, path, "Command", "stop")
        self.assert_asked("admin", "pk-qmp", "Command", "stop")
        # monitor (and manage) are not enough for a command that is not a query.
        self.allow_all_but("admin")
        self.expect_denied(self.nobody_qmp, path, "Qmp", "stop")
        self.assert_asked("admin", "pk-qmp", "Qmp", "stop")
        self.expect_denied(self.nobody_qmp, path, "Command", "stop")
        self.expect_denied(self.nobody_qmp, path, "Qmp", "quit")
        self.assert_asked("admin", "pk-qmp", "Qmp", "quit")
        qmtest.iterate_for(0.2)
        self.assert_running_unchanged(path, pid)
        self.assertEqual(self.mprop(path, "EventSequence"), seq, "an event came: something ran")

        # admin: they run.
        self.allow("admin")
        self.assertEqual(json.loads(self.nobody_qmp(path, "Qmp", "stop")), {"return": {}})
        self.assert_asked("admin", "pk-qmp", "Qmp", "stop")
        self.wait_property(path, "RunState", "paused")
        self.assertEqual(json.loads(self.nobody_qmp(path, "Command", "cont")), {})
        self.assert_asked("admin", "pk-qmp", "Command", "cont")
        self.wait_property(path, "RunState", "running")

    # -- monitor

    def test_query_needs_only_monitor(self):
        path = self.running_machine("pk-query")
        self.expect_denied(self.nobody_qmp, path, "Qmp", "query-status")
        self.assert_asked("monitor", "pk-query", "Qmp", "query-status")
        self.expect_denied(self.nobody_qmp, path, "Command", "query-status")
        self.assert_asked("monitor", "pk-query", "Command", "query-status")

        self.allow("monitor")
        r = json.loads(self.nobody_qmp(path, "Qmp", "query-status"))
        self.assertEqual(r["return"]["status"], "running")
        self.assert_asked("monitor", "pk-query", "Qmp", "query-status")
        r = json.loads(self.nobody_qmp(path, "Command", "query-status"))
        self.assertEqual(r["status"], "running")
        self.assert_asked("monitor", "pk-query", "Command", "query-status")

        # Only the query-* prefix counts.
        self.expect_denied(self.nobody_qmp, path, "Qmp", "stop")
        self.assert_asked("admin", "pk-query", "Qmp", "stop")
        self.expect_denied(self.nobody_qmp, path, "Qmp", "xquery-status")
        self.assert_asked("admin", "pk-query", "Qmp", "xquery-status")
        self.assertEqual(self.mprop(path, "RunState"), "running")

        self.allow("admin")
        self.assertEqual(json.loads(self.nobody_qmp(path, "Qmp", "stop")), {"return": {}})
        self.wait_property(path, "RunState", "paused")

    def test_monitor_denied(self):
        path = self.running_machine("pk-mon")
        self.machine(path, "Pause", None, "()")
        self.wait_property(path, "RunState", "paused")
        for allowed in ([], ["admin", "manage", "console", "images"]):
            self.pk.set_allowed(allowed)
            self.expect_denied(self.nobody_machine, path, "GetEvents", vtext("(t)", (0,)))
            self.assert_asked("monitor", "pk-mon", "GetEvents")
            self.expect_denied(self.nobody_machine, path, "WaitEvent",
                               vtext("(a(ss)td)", ([("STOP", "")], 0, 0.0)))
            self.assert_asked("monitor", "pk-mon", "WaitEvent")
            self.expect_denied(self.nobody_machine, path, "GetLog")
            self.assert_asked("monitor", "pk-mon", "GetLog")

    def test_monitor_allowed(self):
        path = self.running_machine("pk-mon")
        self.machine(path, "Pause", None, "()")
        self.wait_property(path, "RunState", "paused")
        self.allow("monitor")

        events = self.nobody_machine(path, "GetEvents", vtext("(t)", (0,)))
        self.assert_asked("monitor", "pk-mon", "GetEvents")
        self.assertIn("STOP", [json.loads(ev)["event"] for _seq, ev in events])

        seq, ev = self.nobody_machine(path, "WaitEvent",
                                      vtext("(a(ss)td)", ([("STOP", "")], 0, 0.0)))
        self.assert_asked("monitor", "pk-mon", "WaitEvent")
        self.assertGreater(seq, 0)
        self.assertEqual(json.loads(ev)["event"], "STOP")

        # A WaitEvent that really waits, ended by root's Resume.
        after = self.mprop(path, "EventSequence")
        p = self.start_as_nobody(path, MACHINE_IFACE, "WaitEvent",
                                 vtext("(a(ss)td)", ([("RESUME", "")], after, 20.0)))
        try:
            self.wait_checks(1)
            self.machine(path, "Resume", None, "()")
            out, errout = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        lines = [json.loads(x) for x in out.splitlines()]
        self.assertIn("ok", lines[-1], out + errout)
        self.assertEqual(json.loads(lines[-1]["ok"][1])["event"], "RESUME")

        log = self.nobody_machine(path, "GetLog")
        self.assertIsInstance(log, str)
        self.assert_asked("monitor", "pk-mon", "GetLog")

    def wait_checks(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while len(self.checks()) < n:
            if time.monotonic() > deadline:
                self.fail("the daemon asked polkit %d times, expected %d"
                          % (len(self.checks()), n))
            time.sleep(0.02)

    # -- manage

    def test_manage_denied(self):
        path = self.create_none_machine("pk-man")
        self.allow_all_but("manage")
        self.expect_denied(self.nobody_machine, path, "Launch")
        self.assert_asked("manage", "pk-man", "Launch")
        qmtest.iterate_for(0.2)
        self.assertEqual(self.mprop(path, "State"), "defined")
        self.assertEqual(self.mprop(path, "Pid"), 0)
        self.assertEqual(self.mprop(path, "LaunchTimestamp"), 0)

        self.launch(path)
        self.wait_property(path, "RunState", "running")
        pid = self.mprop(path, "Pid")
        self.allow()
        seq = self.mprop(path, "EventSequence")

        self.expect_denied(self.nobody_machine, path, "Pause")
        self.assert_asked("manage", "pk-man", "Pause")
        self.expect_denied(self.nobody_machine, path, "Reset")
        self.assert_asked("manage", "pk-man", "Reset")
        self.expect_denied(self.nobody_machine, path, "Shutdown", vtext("(bd)", (False, 5.0)))
        self.assert_asked("manage", "pk-man", "Shutdown")
        self.expect_denied(self.nobody_machine, path, "Shutdown", vtext("(bd)", (True, 5.0)))
        self.expect_denied(self.nobody_machine, path, "Kill")
        self.assert_asked("manage", "pk-man", "Kill")
        # Denied at once, not after the wait (a Wait that ran would kill QEMU).
        e = self.expect_denied(self.nobody_machine, path, "Wait", vtext("(d)", (0.5,)))
        self.assertLess(e.elapsed, 0.45)
        self.assert_asked("manage", "pk-man", "Wait")
        self.expect_denied(self.nobody_machine, path, "Launch")
        qmtest.iterate_for(0.7)
        self.assert_running_unchanged(path, pid)
        self.assertEqual(self.mprop(path, "EventSequence"), seq, "an event came: something ran")

        self.machine(path, "Pause", None, "()")
        self.wait_property(path, "RunState", "paused")
        self.expect_denied(self.nobody_machine, path, "Resume")
        self.assert_asked("manage", "pk-man", "Resume")
        qmtest.iterate_for(0.2)
        self.assert_running_unchanged(path, pid, "paused")

    def test_manage_allowed(self):
        path = self.create_none_machine("pk-man")
        self.allow("manage")
        self.assertIsNone(self.nobody_machine(path, "Launch"))
        self.assert_asked("manage", "pk-man", "Launch")
        self.assertEqual(self.mprop(path, "State"), "running")
        self.wait_property(path, "RunState", "running")

        self.nobody_machine(path, "Pause")
        self.assert_asked("manage", "pk-man", "Pause")
        self.wait_property(path, "RunState", "paused")
        self.nobody_machine(path, "Resume")
        self.assert_asked("manage", "pk-man", "Resume")
        self.wait_property(path, "RunState", "running")
        self.nobody_machine(path, "Reset")
        self.assert_asked("manage", "pk-man", "Reset")
        self.assertIn("RESET", [e["event"] for _s, e in self.get_events(path)])

        self.nobody_machine(path, "Shutdown", vtext("(bd)", (False, 10.0)))
        self.assert_asked("manage", "pk-man", "Shutdown")
        self.assertEqual(self.mprop(path, "State"), "stopped")

        self.nobody_machine(path, "Launch")
        pid = self.mprop(path, "Pid")
        self.nobody_machine(path, "Kill")
        self.assert_asked("manage", "pk-man", "Kill")
        self.assertEqual(self.mprop(path, "State"), "failed")
        self.assertFalse(pid_alive(pid))

        # Wait on a running machine: it times out and kills QEMU, as for root.
        self.nobody_machine(path, "Launch")
        pid = self.mprop(path, "Pid")
        self.expect_error(err("AbnormalShutdown"), self.nobody_machine, path, "Wait",
                          vtext("(d)", (0.5,)))
        self.assert_asked("manage", "pk-man", "Wait")
        self.assertFalse(pid_alive(pid))
        # And on a stopped one it returns at once.
        self.assertIsNone(self.nobody_machine(path, "Wait", vtext("(d)", (5.0,))))

    # -- images

    def image_names(self):
        return [i[0] for i in self.manager("ListImages", None, "(a(sst))")]

    def test_images_denied(self):
        image_dir = self.manager_prop("ImageDirectory")
        self.manager("CreateImage", GLib.Variant("(ssta{sv})", ("keep.qcow2", "qcow2",
                                                                1 << 20, {})), "(s)")
        for allowed in (["admin", "manage", "monitor", "console"], []):
            self.pk.set_allowed(allowed)
            self.expect_denied(self.nobody_manager, "CreateImage",
                               vtext("(ssta{sv})", ("pk.qcow2", "qcow2", 1 << 20, {})))
            self.assert_asked("images", None, "CreateImage")
            self.expect_denied(self.nobody_manager, "CheckImage", vtext("(s)", ("keep.qcow2",)))
            self.assert_asked("images", None, "CheckImage")
            self.expect_denied(self.nobody_manager, "RemoveImage", vtext("(s)", ("keep.qcow2",)))
            self.assert_asked("images", None, "RemoveImage")
            # Denied before anything is looked at: an unknown name too.
            self.expect_denied(self.nobody_manager, "RemoveImage", vtext("(s)", ("none.raw",)))
        self.assertEqual(sorted(os.listdir(image_dir)), ["keep.qcow2"])
        self.assertEqual(self.image_names(), ["keep.qcow2"])

        # ListImages needs nothing.
        n = len(self.checks())
        self.assertEqual(self.nobody_manager("ListImages"), [["keep.qcow2", "qcow2", 1 << 20]])
        self.assertEqual(len(self.checks()), n, "ListImages asked polkit")

    def test_images_allowed(self):
        self.allow("images")
        path = self.nobody_manager("CreateImage",
                                   vtext("(ssta{sv})", ("pk.qcow2", "qcow2", 1 << 20, {})))
        self.assert_asked("images", None, "CreateImage")
        self.assertEqual(path, os.path.join(self.manager_prop("ImageDirectory"), "pk.qcow2"))
        self.assertTrue(os.path.isfile(path))
        verdict, report = self.nobody_manager("CheckImage", vtext("(s)", ("pk.qcow2",)))
        self.assert_asked("images", None, "CheckImage")
        self.assertEqual(verdict, "ok", report)
        self.assertEqual(self.nobody_manager("ListImages"), [["pk.qcow2", "qcow2", 1 << 20]])
        self.assertIsNone(self.nobody_manager("RemoveImage", vtext("(s)", ("pk.qcow2",))))
        self.assert_asked("images", None, "RemoveImage")
        self.assertFalse(os.path.exists(path))
        self.assertEqual(self.image_names(), [])
        # images is not admin.
        self.expect_denied(self.nobody_manager, "CreateMachine", create_args("pk-img"))

    # -- CloneMachine, Migrate (admin), VerifyAlive (monitor)

    def test_clone_needs_admin(self):
        src = self.create_none_machine("pk-src")
        self.allow_all_but("admin")
        self.expect_denied(self.nobody_manager, "CloneMachine",
                           vtext("(ssa{sv})", ("pk-src", "pk-copy", {})))
        self.assert_asked("admin", "pk-copy", "CloneMachine")
        self.assertEqual(self.manager_prop("MachineCount"), 1)
        self.expect_error(err("NoSuchMachine"), self.manager, "GetMachine",
                          GLib.Variant("(s)", ("pk-copy",)), "(o)")

        self.allow("admin")
        path = self.nobody_manager("CloneMachine",
                                   vtext("(ssa{sv})", ("pk-src", "pk-copy",
                                                       config_variant({"description": "c"}))))
        self.assert_asked("admin", "pk-copy", "CloneMachine")
        self.assertEqual(path, machine_path("pk-copy"))
        self.assertEqual(self.mprop(path, "Config")["description"], "c")
        self.assertNotEqual(self.mprop(path, "UUID"), self.mprop(src, "UUID"))
        self.launch(path)
        self.assertEqual(self.mprop(path, "State"), "running")

    def test_migrate_needs_admin(self):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            uri = "tcp:127.0.0.1:%d" % s.getsockname()[1]
        dst = self.create_none_machine("pk-dst", incoming=uri)
        self.launch(dst)
        src = self.running_machine("pk-mig")
        pid = self.mprop(src, "Pid")
        self.allow_all_but("admin")
        self.expect_denied(self.nobody_machine, src, "Migrate",
                           vtext("(sa{sv})", (uri, {})))
        self.assert_asked("admin", "pk-mig", "Migrate")
        qmtest.iterate_for(0.2)
        self.assert_running_unchanged(src, pid)
        self.assertEqual(self.mprop(dst, "RunState"), "inmigrate")

        self.allow("admin")
        self.assertIsNone(self.nobody_machine(src, "Migrate", vtext("(sa{sv})", (uri, {}))))
        self.assert_asked("admin", "pk-mig", "Migrate")
        self.assertEqual(self.mprop(src, "State"), "migrated")
        self.wait_property(dst, "RunState", "running")

    def test_verify_alive_needs_monitor(self):
        path = self.running_machine("pk-alive")
        self.allow_all_but("monitor")
        self.expect_denied(self.nobody_machine, path, "VerifyAlive")
        self.assert_asked("monitor", "pk-alive", "VerifyAlive")
        self.allow("monitor")
        self.assertIsNone(self.nobody_machine(path, "VerifyAlive"))
        self.assert_asked("monitor", "pk-alive", "VerifyAlive")
        self.kill(path)
        self.expect_error(err("Dead"), self.nobody_machine, path, "VerifyAlive")
        self.assert_asked("monitor", "pk-alive", "VerifyAlive")

    # -- console (OpenConsole, GetConsoleOutput), SendKey and Powerdown (manage)

    def pc_machine(self, name):
        """A stopped pc with a console, created and launched by root."""
        path = self.create_machine(name, machine="pc", console=True,
                                   args=["-nodefaults", "-S", "-m", "64"] + qmtest.accel_args())
        self.launch(path)
        self.wait_property(path, "RunState", "prelaunch")
        return path

    def test_console_needs_console(self):
        path = self.pc_machine("pk-con")
        self.allow_all_but("console")
        self.expect_denied(self.nobody_machine, path, "OpenConsole")
        self.assert_asked("console", "pk-con", "OpenConsole")
        self.expect_denied(self.nobody_machine, path, "GetConsoleOutput")
        self.assert_asked("console", "pk-con", "GetConsoleOutput")

        self.allow("console")
        # as_user.py does not take fds: past authorization either the reply
        # or GDBus' own complaint about the fd comes back, never a denial.
        try:
            self.nobody_machine(path, "OpenConsole")
        except DBusCallError as e:
            self.assertNotEqual(e.name, ACCESS_DENIED, e.text)
            self.assertNotIn(qmtest.ERROR_PREFIX, e.name, e.text)
        self.assert_asked("console", "pk-con", "OpenConsole")
        out = self.nobody_machine(path, "GetConsoleOutput")
        self.assertIsInstance(out, (str, list))
        self.assert_asked("console", "pk-con", "GetConsoleOutput")
        self.assertEqual(self.mprop(path, "State"), "running")

    def test_sendkey_powerdown_need_manage(self):
        path = self.pc_machine("pk-keys")
        pid = self.mprop(path, "Pid")
        self.allow_all_but("manage")
        self.expect_denied(self.nobody_machine, path, "SendKey",
                           vtext("(asu)", (["shift-a"], 0)))
        self.assert_asked("manage", "pk-keys", "SendKey")
        e = self.expect_denied(self.nobody_machine, path, "Powerdown", vtext("(d)", (0.5,)))
        self.assertLess(e.elapsed, 0.45, "denied at once, not after the timeout")
        self.assert_asked("manage", "pk-keys", "Powerdown")
        qmtest.iterate_for(0.7)
        self.assert_running_unchanged(path, pid, "prelaunch")
        self.assertNotIn("POWERDOWN", [e["event"] for _s, e in self.get_events(path)])

        self.allow("manage")
        self.assertIsNone(self.nobody_machine(path, "SendKey",
                                              vtext("(asu)", (["shift-a", "ret"], 10))))
        self.assert_asked("manage", "pk-keys", "SendKey")
        # The CPUs never started: the guest cannot power off by itself.
        self.expect_error(err("AbnormalShutdown"), self.nobody_machine, path, "Powerdown",
                          vtext("(d)", (0.5,)))
        self.assert_asked("manage", "pk-keys", "Powerdown")
        self.assertIn("POWERDOWN", [e["event"] for _s, e in self.get_events(path)])
        self.assertFalse(pid_alive(pid))
        self.assertNotEqual(self.mprop(path, "State"), "running")

    # -- no authorization needed

    def test_read_only_members_need_nothing(self):
        path = self.running_machine("pk-ro")
        pid = self.mprop(path, "Pid")
        self.allow()

        props = self.call_as_nobody(path, PROPS_IFACE, "GetAll", vtext("(s)", (MACHINE_IFACE,)))
        self.assertEqual(props["Name"], "pk-ro")
        self.assertEqual(props["Pid"], pid)
        self.assertEqual(self.call_as_nobody(path, PROPS_IFACE, "Get",
                                             vtext("(ss)", (MACHINE_IFACE, "State"))),
                         "running")
        mgr = self.call_as_nobody(MANAGER_PATH, PROPS_IFACE, "GetAll",
                                  vtext("(s)", (MANAGER_IFACE,)))
        self.assertEqual(mgr["MachineCount"], 1)
        self.assertEqual(self.nobody_manager("ListMachines"),
                         [["pk-ro", "running", pid, path]])
        self.assertEqual(self.nobody_manager("GetMachine", vtext("(s)", ("pk-ro",))), path)
        self.assertEqual(self.nobody_manager("GetMachineByPID", vtext("(u)", (pid,))), path)
        self.expect_error(err("NoSuchMachine"), self.nobody_manager, "GetMachine",
                          vtext("(s)", ("pk-none",)))
        for p in (MANAGER_PATH, path):
            xml = self.call_as_nobody(p, INTROSPECTABLE, "Introspect")
            self.assertIn("<node", xml)
        managed = self.call_as_nobody(MANAGER_PATH, OM_IFACE, "GetManagedObjects")
        self.assertIn(path, managed)
        self.call_as_nobody(MANAGER_PATH, PEER, "Ping")

        self.assertEqual(self.checks(), [], "read-only calls asked polkit")

    def test_root_never_asks_polkit(self):
        self.allow()
        path = self.create_none_machine("pk-root")
        self.launch(path)
        self.machine(path, "Pause", None, "()")
        self.machine(path, "Resume", None, "()")
        self.machine(path, "Reset", None, "()")
        self.assertEqual(self.qmp(path, "stop"), {"return": {}})
        self.assertEqual(self.command(path, "cont"), {})
        self.assertEqual(self.command(path, "query-status")["status"], "running")
        self.get_events(path)
        self.wait_event(path, [("RESET", "")], 0, 5)
        self.machine(path, "GetLog", None, "(s)")
        self.shutdown(path, False, 10)
        self.launch(path)
        self.kill(path)
        self.launch(path)
        self.expect_error(err("AbnormalShutdown"), self.machine, path, "Wait",
                          GLib.Variant("(d)", (0.3,)), "()")
        self.manager("RemoveMachine", GLib.Variant("(s)", ("pk-root",)), "()")
        self.assertEqual(self.checks(), [], "root's calls asked polkit")

    # -- what the daemon asks

    def test_check_arguments(self):
        path = self.running_machine("pk-args")
        self.allow("monitor")
        self.nobody_qmp(path, "Qmp", "query-status")
        c = self.last_check()
        self.assertEqual(c["subject"][0], "system-bus-name")
        self.assertEqual(c["subject"][1], {"name": self.nobody_name})
        self.assertTrue(self.nobody_name.startswith(":"))
        self.assertEqual(c["action"], "org.qmachine.QMachine1.monitor")
        self.assertEqual(c["details"], {"machine": "pk-args", "verb": "Qmp",
                                        "command": "query-status"})
        self.assertEqual(c["flags"], 0)
        self.assertEqual(c["cancel"], "")

        # ALLOW_INTERACTIVE_AUTHORIZATION is passed on as flag 1.
        self.nobody_qmp(path, "Command", "query-name", interactive=True)
        self.assert_asked("monitor", "pk-args", "Command", "query-name", flags=1)
        self.expect_denied(self.nobody_machine, path, "Pause", interactive=True)
        self.assert_asked("manage", "pk-args", "Pause", flags=1)
        self.expect_denied(self.nobody_manager, "CreateMachine", create_args("pk-args2"),
                           interactive=True)
        self.assert_asked("create", "pk-args2", "CreateMachine", flags=1)
        self.expect_denied(self.nobody_manager, "CreateMachine", create_args("pk-args2"))
        self.assert_asked("create", "pk-args2", "CreateMachine", flags=0)
        self.assertEqual(len(self.checks()), 5)

    def test_each_call_asks_again(self):
        path = self.running_machine("pk-again")
        self.allow("monitor")
        self.pk.clear_calls()
        # Two calls on one connection: two checks.
        results = self.run_as_nobody(path, MACHINE_IFACE, "GetLog", repeat=2)
        self.assertEqual([("ok" in r) for r in results], [True, True], results)
        calls = self.checks()
        self.assertEqual(len(calls), 2, calls)
        for c in calls:
            self.assertEqual(c[0], ("system-bus-name", {"name": self.nobody_name}))
            self.assertEqual(c[1], action("monitor"))

        # Revoked between calls: the next call is denied.
        self.nobody_machine(path, "GetLog")
        self.allow()
        self.expect_denied(self.nobody_machine, path, "GetLog")
        self.allow("monitor")
        self.nobody_machine(path, "GetLog")
        self.assertEqual(len(self.checks()), 5)

    def test_polkit_unavailable(self):
        path = self.running_machine("pk-gone")
        self.pk.stop()
        e = self.expect_denied(self.nobody_manager, "CreateMachine", create_args("pk-gone2"))
        self.assertLess(e.elapsed, 2.5)
        self.assertIn("polkit", e.text.lower())
        e = self.expect_denied(self.nobody_machine, path, "Pause")
        self.assertLess(e.elapsed, 2.5)
        self.assertIn("polkit", e.text.lower())
        self.assertEqual(self.mprop(path, "RunState"), "running")
        self.assert_daemon_answers(1)
        # Read-only calls do not need polkit; root does not either.
        self.assertEqual(len(self.nobody_manager("ListMachines")), 1)
        self.machine(path, "Pause", None, "()")
        self.wait_property(path, "RunState", "paused")

        # polkit comes back: the daemon uses it again.
        self.env.start_polkit()
        self.allow("manage")
        self.nobody_machine(path, "Resume")
        self.assert_asked("manage", "pk-gone", "Resume")
        self.wait_property(path, "RunState", "running")

    def test_caller_leaves_while_check_pending(self):
        path = self.running_machine("pk-leave")
        pid = self.mprop(path, "Pid")
        self.allow("manage", "admin")
        self.pk.simulate_hang(True)
        p = self.start_as_nobody(path, MACHINE_IFACE, "Pause")
        try:
            name = json.loads(p.stdout.readline())["name"]
            self.wait_checks(1)
            # The daemon serves others while the check is pending.
            self.assert_daemon_answers(1)
            other = self.create_none_machine("pk-other")
            self.assertEqual(self.mprop(other, "State"), "defined")
        finally:
            p.send_signal(signal.SIGKILL)
            p.communicate(timeout=10)
        self.assertEqual(self.last_check()["subject"], ("system-bus-name", {"name": name}))
        # Wait until the bus saw the caller go.
        deadline = time.monotonic() + 5
        while self.bus_has_owner(name) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertFalse(self.bus_has_owner(name))
        qmtest.iterate_for(0.2)
        self.assertIsNone(self.env.daemon.poll(), "qmachined died")

        # polkit answers now, for a caller that is gone.
        self.pk.release_hanging()
        qmtest.iterate_for(0.5)
        self.assertIsNone(self.env.daemon.poll(), "qmachined died")
        self.assert_daemon_answers(2)
        self.assertTrue(pid_alive(pid))

        # A second caller leaves and polkit never answers it.
        p = self.start_as_nobody(MANAGER_PATH, MANAGER_IFACE, "CreateMachine",
                                 create_args("pk-never"))
        try:
            json.loads(p.stdout.readline())
            self.wait_checks(2)
        finally:
            p.send_signal(signal.SIGKILL)
            p.communicate(timeout=10)
        qmtest.iterate_for(0.3)
        self.assert_daemon_answers()

        # Everything still works for the next ones.
        self.pk.simulate_hang(False)
        self.nobody_machine(path, "Resume")
        self.assert_asked("manage", "pk-leave", "Resume")
        self.wait_property(path, "RunState", "running")
        self.launch(other)
        self.kill(other)
        self.assertEqual(self.command(path, "query-status")["status"], "running")
        self.assert_daemon_answers()

    def test_pending_check_at_daemon_exit(self):
        """SIGTERM while a check is pending: a clean exit all the same."""
        path = self.running_machine("pk-exit")
        self.pk.simulate_hang(True)
        p = self.start_as_nobody(path, MACHINE_IFACE, "Pause")
        try:
            json.loads(p.stdout.readline())
            self.wait_checks(1)
            self.assertEqual(self.env.stop_daemon(), 0, self.env.daemon_output())
            out, errout = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertIn("error", json.loads(out.splitlines()[-1]), out + errout)
        self.assertEqual(self.env.problems, [])

    def test_machine_removed_while_check_pending(self):
        path = self.create_none_machine("pk-rm")
        self.allow("manage")
        self.pk.simulate_hang(True)
        p = self.start_as_nobody(path, MACHINE_IFACE, "Launch")
        try:
            json.loads(p.stdout.readline())
            self.wait_checks(1)
            self.manager("RemoveMachine", GLib.Variant("(s)", ("pk-rm",)), "()")
            self.pk.release_hanging()
            out, errout = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        r = json.loads(out.splitlines()[-1])
        self.assertIn("error", r, "Launch of a removed machine: %s %s" % (out, errout))
        self.assertIn(r["error"], (qmtest.UNKNOWN_OBJECT, err("NoSuchMachine")), r)
        self.assertEqual([p for p in self.live_test_processes()
                          if qmtest.is_qemu_process(p)], [])
        self.pk.simulate_hang(False)
        self.assert_daemon_answers(0)
        # A new machine of that name works as usual.
        path = self.create_none_machine("pk-rm")
        self.nobody_machine(path, "Launch")
        self.assertEqual(self.mprop(path, "State"), "running")

    def test_polkit_wants_interaction(self):
        """polkit answers is_challenge: InteractiveAuthorizationRequired
        unless the caller allowed interaction (then AccessDenied)."""
        path = self.running_machine("pk-chal")
        pid = self.mprop(path, "Pid")
        self.pk.call("AddMethod", GLib.Variant("(sssss)", (
            qmtest.POLKIT_IFACE, "CheckAuthorization", "(sa{sv})sa{ss}us", "(bba{ss})",
            "ret = (False, True, {})")))
        e = self.expect_error(INTERACTIVE_REQUIRED, self.nobody_machine, path, "Pause")
        self.assertTrue(e.text)
        self.assert_asked("manage", "pk-chal", "Pause", flags=0)
        self.expect_denied(self.nobody_machine, path, "Pause", interactive=True)
        self.assert_asked("manage", "pk-chal", "Pause", flags=1)
        self.expect_error(INTERACTIVE_REQUIRED, self.nobody_manager, "CreateMachine",
                          create_args("pk-chal2"))
        qmtest.iterate_for(0.2)
        self.assert_running_unchanged(path, pid)
        self.assert_daemon_answers(1)

    def bus_has_owner(self, name):
        r = self.conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                "org.freedesktop.DBus", "NameHasOwner",
                                GLib.Variant("(s)", (name,)), GLib.VariantType.new("(b)"),
                                0, 5000, None)
        return r.unpack()[0]


class SessionModeTest(NobodyMixin, qmtest.QMTestCase):
    """qmachined --session: only its own uid (root here) may change things;
    polkit is not asked even though it is there and allows everything."""

    session_bus = True
    polkit_mock = True

    def setUp(self):
        super().setUp()
        self.env.polkit.allow_unknown(True)
        self.env.polkit.set_allowed([action(a) for a in ACTIONS])

    def test_session_only_own_uid(self):
        self.assertIn("--session", self.env.daemon_command())
        self.expect_denied(self.nobody_manager, "CreateMachine", create_args("s-nobody"))
        self.assertEqual(self.manager_prop("MachineCount"), 0)
        self.assertEqual(self.nobody_manager("ListMachines"), [])

        path = self.create_none_machine("s-root")
        self.assertEqual(self.nobody_manager("GetMachine", vtext("(s)", ("s-root",))), path)
        self.assertEqual(self.call_as_nobody(path, PROPS_IFACE, "Get",
                                             vtext("(ss)", (MACHINE_IFACE, "State"))),
                         "defined")
        self.expect_denied(self.nobody_machine, path, "Launch")
        self.assertEqual(self.mprop(path, "State"), "defined")
        self.launch(path)
        self.expect_denied(self.nobody_qmp, path, "Qmp", "query-status")
        self.expect_denied(self.nobody_machine, path, "GetLog")
        self.expect_denied(self.nobody_machine, path, "Kill")
        self.assertEqual(self.mprop(path, "State"), "running")
        self.expect_denied(self.nobody_manager, "RemoveMachine", vtext("(s)", ("s-root",)))
        self.kill(path)
        self.manager("RemoveMachine", GLib.Variant("(s)", ("s-root",)), "()")
        self.assert_daemon_answers(0)
        self.assertEqual(self.env.polkit.check_calls(), [], "--session asked polkit")


if __name__ == "__main__":
    qmtest.main()
