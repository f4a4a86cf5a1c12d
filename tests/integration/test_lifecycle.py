#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A machine's life through the Manager and Machine interfaces, with a real
QEMU: create, launch, QMP, pause/resume, shutdown, kill, wait, remove."""

import datetime
import os
import re
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import (CONFIG_TYPES, MACHINE_IFACE,  # noqa: E402
                    MANAGER_IFACE, MANAGER_PATH, OM_IFACE, UNKNOWN_OBJECT,
                    GLib, changed_values, err, is_qemu_process, machine_path,
                    proc_cmdline, proc_stat)


def qemu_version(binary):
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    return re.search(r"(\d+\.\d+\.\d+)", out).group(1)


def pairs(argv, a, b):
    return any(argv[i] == a and argv[i + 1] == b for i in range(len(argv) - 1))


class LifecycleTest(qmtest.QMTestCase):

    def test_create_defines_machine(self):
        mgr_props = self.record_properties(MANAGER_PATH, MANAGER_IFACE)
        mgr_sigs = self.record(MANAGER_IFACE, None, MANAGER_PATH)
        om_sigs = self.record(OM_IFACE, None, MANAGER_PATH)
        self.assertEqual(self.manager_prop("MachineCount"), 0)
        self.assertEqual(self.manager("ListMachines", None, "(a(ssuo))"), [])
        self.assertTrue(self.manager_prop("Version"))
        self.assertTrue(self.manager_prop("DefaultBinary"))
        self.assertIsInstance(self.manager_prop("ImageDirectory"), str)

        path = self.create_none_machine("vm-1", description="first one")
        self.assertEqual(path, "/org/qmachine/QMachine1/machine/vm_2d1")
        self.assertEqual(path, machine_path("vm-1"))

        self.assertTrue(mgr_sigs.wait(lambda s: "MachineNew" in [x[2] for x in s]))
        self.assertEqual(mgr_sigs.args("MachineNew"), [("vm-1", path)])
        self.assertTrue(om_sigs.wait(lambda s: "InterfacesAdded" in [x[2] for x in s]))
        added_path, added = om_sigs.args("InterfacesAdded")[0]
        self.assertEqual(added_path, path)
        self.assertIn(MACHINE_IFACE, added)
        self.assertEqual(added[MACHINE_IFACE].get("Name"), "vm-1")
        self.assertTrue(mgr_props.wait(lambda s: 1 in changed_values(mgr_props, "MachineCount")))
        self.assertEqual(self.manager_prop("MachineCount"), 1)

        managed = self.call(MANAGER_PATH, OM_IFACE, "GetManagedObjects", None,
                            "(a{oa{sa{sv}}})")
        self.assertIn(path, managed)
        self.assertEqual(managed[path][MACHINE_IFACE]["Name"], "vm-1")
        self.assertEqual(managed[path][MACHINE_IFACE]["State"], "defined")

        self.assertEqual(self.manager("ListMachines", None, "(a(ssuo))"),
                         [("vm-1", "defined", 0, path)])
        self.assertEqual(self.manager("GetMachine", GLib.Variant("(s)", ("vm-1",)), "(o)"),
                         path)

        props = self.get_all(path, MACHINE_IFACE)
        self.assertEqual(props["Name"], "vm-1")
        self.assertEqual(props["State"], "defined")
        self.assertEqual(props["RunState"], "")
        self.assertEqual(props["Pid"], 0)
        self.assertEqual(props["EventSequence"], 0)
        self.assertEqual(props["LaunchTimestamp"], 0)
        self.assertEqual(props["Persistent"], False)
        self.assertEqual(props["MacAddresses"], [])
        self.assertEqual(str(uuid.UUID(props["UUID"])), props["UUID"].lower())
        self.assertTrue(props["RuntimeDirectory"].startswith(self.env.path("run") + "/"),
                        props["RuntimeDirectory"])
        self.assertTrue(props["LogDirectory"].startswith(self.env.path("log") + "/"),
                        props["LogDirectory"])

        # Config: the keys that are set, each with its own type; strings
        # never set (binary, machine, console-device, incoming, user) are
        # left out.
        config = self.get_property_variant(path, MACHINE_IFACE, "Config")
        types = {}
        for i in range(config.n_children()):
            e = config.get_child_value(i)
            types[e.get_child_value(0).get_string()] = \
                e.get_child_value(1).get_variant().get_type_string()
        unset = {"binary", "machine", "console-device", "incoming", "user"}
        self.assertEqual(types, {k: t for k, t in CONFIG_TYPES.items() if k not in unset})
        # Config and CommandLine may hold secrets: only asked for by name.
        self.assertNotIn("Config", props)
        self.assertNotIn("CommandLine", props)
        self.assertNotIn("Config", added[MACHINE_IFACE])
        self.assertNotIn("Config", managed[path][MACHINE_IFACE])
        self.assertEqual(props["Owner"], 0)
        c = self.mprop(path, "Config")
        self.assertEqual(c["uuid"], props["UUID"])
        self.assertEqual(c["args"], qmtest.none_args())
        self.assertEqual(c["description"], "first one")
        self.assertEqual(c["qmp"], True)
        self.assertEqual(c["console"], False)
        self.assertEqual(c["persistent"], False)
        self.assertEqual(c["nics"], 0)
        self.assertEqual(c["qmp-timeout"], 30.0)
        self.assertEqual(c["wrapper"], [])
        self.assertNotIn("binary", c)
        self.assertNotIn("user", c)
        self.assertEqual(c["sandbox"], True)
        # ...so Config can be given back to CreateMachine unchanged.
        again = self.manager("CreateMachine",
                             GLib.Variant.new_tuple(GLib.Variant("s", "again"), config), "(o)")
        self.assertEqual(self.mprop(again, "Config"), c)

    def test_launch_qmp_shutdown(self):
        path = self.create_none_machine("life")
        uuid_ = self.mprop(path, "UUID")
        props = self.record_properties(path)
        before = time.time()
        self.launch(path)
        after = time.time()

        self.assertEqual(self.mprop(path, "State"), "running")
        pid = self.mprop(path, "Pid")
        self.assertGreater(pid, 0)
        self.assertTrue(is_qemu_process(pid), proc_cmdline(pid))
        self.assertEqual(proc_stat(pid)[1], self.env.daemon.pid, "QEMU is the daemon's child")

        cmdline = self.mprop(path, "CommandLine")
        self.assertEqual(cmdline, proc_cmdline(pid))
        self.assertTrue(pairs(cmdline, "-display", "none"), cmdline)
        self.assertTrue(pairs(cmdline, "-vga", "none"), cmdline)
        self.assertTrue(pairs(cmdline, "-uuid", uuid_), cmdline)
        self.assertTrue(pairs(cmdline, "-machine", "none"), cmdline)

        binary = self.manager_prop("DefaultBinary")
        self.assertEqual(self.mprop(path, "QemuVersion"), qemu_version(binary))
        ts = self.mprop(path, "LaunchTimestamp")
        self.assertLessEqual(before - 1, ts / 1e6)
        self.assertLessEqual(ts / 1e6, after + 1)
        self.wait_property(path, "RunState", "running", 5)

        self.assertEqual(self.manager("GetMachineByPID", GLib.Variant("(u)", (pid,)), "(o)"),
                         path)
        self.expect_error(err("NoSuchMachine"), self.manager, "GetMachineByPID",
                          GLib.Variant("(u)", (os.getpid(),)), "(o)")
        self.assertEqual(self.manager("ListMachines", None, "(a(ssuo))"),
                         [("life", "running", pid, path)])

        # Qmp: the whole response, without the daemon's id.
        r = self.qmp(path, "query-status")
        self.assertEqual(list(r), ["return"])
        self.assertEqual(r["return"]["status"], "running")
        self.assertEqual(r["return"]["running"], True)
        r = self.qmp(path, "query-uuid", "{}")
        self.assertEqual(r, {"return": {"UUID": uuid_}})
        r = self.qmp(path, "no-such-command")
        self.assertEqual(list(r), ["error"])
        self.assertEqual(r["error"]["class"], "CommandNotFound")

        # Command: just the return value; QMP errors become QmpError.
        r = self.command(path, "query-status")
        self.assertEqual(r["status"], "running")
        e = self.expect_error(err("QmpError"), self.command, path, "no-such-command")
        self.assertTrue(e.text.startswith("CommandNotFound: "), e.text)
        e = self.expect_error(err("QmpError"), self.command, path,
                              "human-monitor-command", '{"no-such-argument": 1}')
        self.assertTrue(e.text.startswith("GenericError: "), e.text)

        # Busy / AlreadyRunning while it runs.
        self.expect_error(err("Busy"), self.manager, "RemoveMachine",
                          GLib.Variant("(s)", ("life",)), "()")
        self.expect_error(err("AlreadyRunning"), self.launch, path)
        self.assertEqual(self.mprop(path, "Pid"), pid)

        self.shutdown(path, False, 10)
        self.assertEqual(self.mprop(path, "State"), "stopped")
        self.assertEqual(self.mprop(path, "ExitCode"), 0)
        self.assertEqual(self.mprop(path, "Pid"), 0)
        self.assertEqual(self.mprop(path, "RunState"), "")
        self.assertIsNone(proc_stat(pid), "QEMU was reaped")
        self.assertEqual(self.mprop(path, "CommandLine"), cmdline, "kept after the run")
        self.assertEqual(self.manager("ListMachines", None, "(a(ssuo))"),
                         [("life", "stopped", 0, path)])
        self.expect_error(err("NoSuchMachine"), self.manager, "GetMachineByPID",
                          GLib.Variant("(u)", (pid,)), "(o)")
        self.assertEqual(self.sockets_under(self.mprop(path, "RuntimeDirectory")), [])

        # The SHUTDOWN of our quit was recorded and announced.
        seq = self.mprop(path, "EventSequence")
        self.assertGreater(seq, 0)
        events = self.get_events(path)
        self.assertEqual(events[-1][0], seq)
        self.assertEqual(events[-1][1]["event"], "SHUTDOWN")
        self.assertEqual(events[-1][1]["data"], {"guest": False, "reason": "host-qmp-quit"})

        self.assertTrue(props.wait(lambda s: changed_values(props, "State")[-1:] == ["stopped"]))
        states = changed_values(props, "State")
        self.assertEqual(states[:2], ["starting", "running"], states)
        self.assertEqual(states[-1], "stopped", states)
        self.assertIn(pid, changed_values(props, "Pid"))
        self.assertEqual(changed_values(props, "Pid")[-1], 0)
        self.assertIn(0, changed_values(props, "ExitCode"))
        self.assertIn(seq, changed_values(props, "EventSequence"))
        # its value is not broadcast: only that it changed
        self.assertIn("<invalidated>", changed_values(props, "CommandLine"))
        self.assertNotIn(cmdline, changed_values(props, "CommandLine"))
        self.assertIn(ts, changed_values(props, "LaunchTimestamp"))
        self.assertIn(qemu_version(binary), changed_values(props, "QemuVersion"))

        # Shutdown on a machine that is not running: a no-op.
        self.shutdown(path, False, 1)
        self.shutdown(path, True, 1)
        self.assertEqual(self.mprop(path, "State"), "stopped")
        self.assertEqual(self.mprop(path, "ExitCode"), 0)
        # Wait on a machine that is not running returns at once.
        t0 = time.monotonic()
        self.machine(path, "Wait", GLib.Variant("(d)", (5.0,)), "()")
        self.assertLess(time.monotonic() - t0, 2.0)

    def test_pause_resume_runstate(self):
        path = self.create_none_machine("pr")
        self.launch(path)
        props = self.record_properties(path)
        self.machine(path, "Pause", None, "()")
        self.wait_property(path, "RunState", "paused")
        self.assertEqual(self.command(path, "query-status")["status"], "paused")
        self.machine(path, "Resume", None, "()")
        self.wait_property(path, "RunState", "running")
        self.machine(path, "Reset", None, "()")

        def paused_then_running(_s):
            v = changed_values(props, "RunState")
            return "paused" in v and "running" in v[v.index("paused"):]
        self.assertTrue(props.wait(paused_then_running), changed_values(props, "RunState"))
        names = [e["event"] for _s, e in self.get_events(path)]
        self.assertIn("STOP", names)
        self.assertIn("RESUME", names)
        self.assertIn("RESET", names)
        self.assertEqual(self.mprop(path, "State"), "running")
        self.kill(path)

    def test_relaunch_after_stop(self):
        path = self.create_none_machine("again")
        self.launch(path)
        pid1 = self.mprop(path, "Pid")
        self.shutdown(path, False, 10)
        seq1 = self.mprop(path, "EventSequence")
        ts1 = self.mprop(path, "LaunchTimestamp")
        self.launch(path)
        pid2 = self.mprop(path, "Pid")
        self.assertNotEqual(pid1, pid2)
        self.assertTrue(is_qemu_process(pid2))
        self.assertEqual(self.mprop(path, "State"), "running")
        self.assertGreaterEqual(self.mprop(path, "LaunchTimestamp"), ts1)
        self.machine(path, "Pause", None, "()")
        seq, ev = self.wait_event(path, [("STOP", "")], seq1, 5)
        self.assertGreater(seq, seq1, "numbering goes on across launches")
        self.assertEqual(ev["event"], "STOP")
        self.shutdown(path, False, 10)
        self.assertEqual(self.mprop(path, "State"), "stopped")

    def test_kill(self):
        path = self.create_none_machine("killme")
        self.launch(path)
        pid = self.mprop(path, "Pid")
        props = self.record_properties(path)
        self.kill(path)
        self.assertEqual(self.mprop(path, "State"), "failed")
        self.assertEqual(self.mprop(path, "ExitCode"), -9)
        self.assertEqual(self.mprop(path, "Pid"), 0)
        self.assertIsNone(proc_stat(pid))
        self.assertTrue(props.wait(lambda s: -9 in changed_values(props, "ExitCode")))
        # Kill on a stopped machine does nothing.
        self.kill(path)
        self.assertEqual(self.mprop(path, "ExitCode"), -9)

    def test_hard_shutdown(self):
        path = self.create_none_machine("hard")
        self.launch(path)
        pid = self.mprop(path, "Pid")
        self.shutdown(path, True, 5)
        self.assertEqual(self.mprop(path, "State"), "failed")
        self.assertEqual(self.mprop(path, "ExitCode"), -9)
        self.assertIsNone(proc_stat(pid))

    def test_wait_timeout_kills(self):
        path = self.create_none_machine("waiter")
        self.launch(path)
        pid = self.mprop(path, "Pid")
        t0 = time.monotonic()
        self.expect_error(err("AbnormalShutdown"), self.machine, path, "Wait",
                          GLib.Variant("(d)", (1.0,)), "()")
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, 10)
        self.assertEqual(self.mprop(path, "State"), "failed")
        self.assertEqual(self.mprop(path, "ExitCode"), -9)
        self.assertEqual(self.mprop(path, "Pid"), 0)
        self.assertIsNone(proc_stat(pid))

    def test_wait_returns_when_qemu_exits(self):
        path = self.create_none_machine("waitexit")
        self.launch(path)
        w = self.call_async(path, MACHINE_IFACE, "Wait", GLib.Variant("(d)", (30.0,)), "()")
        qmtest.iterate_for(0.3)
        self.assertFalse(w.done)
        # Make QEMU exit without going through Shutdown.
        self.assertEqual(self.qmp(path, "quit"), {"return": {}})
        w.wait(20)
        self.assertEqual(self.mprop(path, "State"), "stopped")
        self.assertEqual(self.mprop(path, "ExitCode"), 0)

    def test_qmp_quit_is_clean(self):
        path = self.create_none_machine("quitter")
        self.launch(path)
        pid = self.mprop(path, "Pid")
        self.assertEqual(self.qmp(path, "quit"), {"return": {}})
        self.wait_property(path, "State", "stopped")
        self.assertEqual(self.mprop(path, "ExitCode"), 0)
        self.assertEqual(self.mprop(path, "Pid"), 0)
        self.assertTrue(qmtest.iterate_until(lambda: proc_stat(pid) is None, 5))

    def test_remove(self):
        mgr_sigs = self.record(MANAGER_IFACE, None, MANAGER_PATH)
        om_sigs = self.record(OM_IFACE, None, MANAGER_PATH)
        path = self.create_none_machine("gone")
        self.launch(path)
        self.expect_error(err("Busy"), self.manager, "RemoveMachine",
                          GLib.Variant("(s)", ("gone",)), "()")
        self.kill(path)
        rundir = self.mprop(path, "RuntimeDirectory")
        self.manager("RemoveMachine", GLib.Variant("(s)", ("gone",)), "()")

        self.assertTrue(mgr_sigs.wait(lambda s: "MachineRemoved" in [x[2] for x in s]))
        self.assertEqual(mgr_sigs.args("MachineRemoved"), [("gone", path)])
        self.assertTrue(om_sigs.wait(lambda s: "InterfacesRemoved" in [x[2] for x in s]))
        removed_path, ifaces = om_sigs.args("InterfacesRemoved")[0]
        self.assertEqual(removed_path, path)
        self.assertIn(MACHINE_IFACE, ifaces)
        self.assertEqual(self.manager_prop("MachineCount"), 0)
        self.assertEqual(self.manager("ListMachines", None, "(a(ssuo))"), [])
        managed = self.call(MANAGER_PATH, OM_IFACE, "GetManagedObjects", None,
                            "(a{oa{sa{sv}}})")
        self.assertNotIn(path, managed)
        self.assertFalse(os.path.exists(rundir), "runtime files removed")

        self.expect_error(err("NoSuchMachine"), self.manager, "GetMachine",
                          GLib.Variant("(s)", ("gone",)), "(o)")
        self.expect_error(err("NoSuchMachine"), self.manager, "RemoveMachine",
                          GLib.Variant("(s)", ("gone",)), "()")
        self.expect_error(UNKNOWN_OBJECT, self.launch, path)
        self.expect_error(UNKNOWN_OBJECT, self.mprop, path, "State")
        self.expect_error(UNKNOWN_OBJECT, self.qmp, path, "query-status")

        # The name is free again.
        path2 = self.create_none_machine("gone")
        self.assertEqual(path2, path)
        self.assertEqual(self.mprop(path2, "State"), "defined")

    def test_generated_name(self):
        path = self.create_none_machine("")
        name = self.mprop(path, "Name")
        m = re.match(r"^vm-(\d{8})-(\d{6})-[A-Za-z0-9]{4}$", name)
        self.assertTrue(m, name)
        stamp = datetime.datetime.strptime(m.group(1) + m.group(2), "%Y%m%d%H%M%S")
        now_local = datetime.datetime.now()
        now_utc = datetime.datetime.utcnow()
        self.assertTrue(min(abs((stamp - now_local).total_seconds()),
                            abs((stamp - now_utc).total_seconds())) < 120, name)
        self.assertEqual(path, machine_path(name))
        self.assertEqual(self.manager("GetMachine", GLib.Variant("(s)", (name,)), "(o)"), path)
        path2 = self.create_none_machine("")
        self.assertNotEqual(path, path2)
        self.assertEqual(self.manager_prop("MachineCount"), 2)

    def test_nics_mac_addresses(self):
        u = "6b1a1f64-3c1d-4f51-9c0e-5d5b2b7e1a01"
        path = self.create_machine("nics", args=qmtest.pc_args(), nics=2, uuid=u)
        macs = self.mprop(path, "MacAddresses")
        self.assertEqual(len(macs), 2)
        for mac in macs:
            self.assertRegex(mac, r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
            first = int(mac[:2], 16)
            self.assertTrue(first & 0x02, "locally administered: " + mac)
            self.assertFalse(first & 0x01, "unicast: " + mac)
        self.assertNotEqual(macs[0].lower(), macs[1].lower())
        self.assertEqual(self.mprop(path, "Config")["nics"], 2)

        # Stable: the same for the same UUID, across launches and
        # definitions; different for another UUID.
        self.launch(path)
        cmdline = " ".join(self.mprop(path, "CommandLine")).lower()
        for mac in macs:
            self.assertIn(mac.lower(), cmdline)
        info = self.command(path, "human-monitor-command",
                            '{"command-line": "info network"}').lower()
        for mac in macs:
            self.assertIn(mac.lower(), info)
        self.shutdown(path, False, 10)
        self.launch(path)
        self.assertEqual(self.mprop(path, "MacAddresses"), macs)
        self.kill(path)
        self.manager("RemoveMachine", GLib.Variant("(s)", ("nics",)), "()")
        path = self.create_machine("nics", args=qmtest.pc_args(), nics=2, uuid=u)
        self.assertEqual(self.mprop(path, "MacAddresses"), macs)
        other = self.create_machine("nics-other", nics=2)
        other_macs = self.mprop(other, "MacAddresses")
        self.assertEqual(len(other_macs), 2)
        self.assertFalse(set(m.lower() for m in macs) & set(m.lower() for m in other_macs))

    def test_explicit_uuid_and_machine_key(self):
        u = "0f6c4b1e-7a58-4d2b-8a53-2f3b8f0c9d11"
        path = self.create_machine("keyed", machine="none",
                                   args=["-nodefaults"] + qmtest.accel_args(), uuid=u)
        self.assertEqual(self.mprop(path, "UUID"), u)
        self.launch(path)
        cmdline = self.mprop(path, "CommandLine")
        self.assertTrue(pairs(cmdline, "-machine", "none"), cmdline)
        self.assertEqual(self.command(path, "query-uuid"), {"UUID": u})
        self.shutdown(path, False, 10)

    def test_get_log(self):
        # A wrapper that writes to stdout and stderr (9 MiB, and bytes that
        # are not UTF-8) before it becomes QEMU.
        wrapper = self.write_script("noisy", """#!/bin/sh
echo "hello on stdout"
echo "hello on stderr" >&2
head -c 9437184 /dev/zero | tr '\\0' x
printf '\\nbad bytes: \\377\\376\\300 end\\n'
echo "END-MARK"
exec "$@"
""")
        path = self.create_none_machine("logged", wrapper=[wrapper])
        self.assertEqual(self.machine(path, "GetLog", None, "(s)"), "")
        self.launch(path)
        self.assertEqual(self.mprop(path, "CommandLine")[0], wrapper)

        def log():
            return self.machine(path, "GetLog", None, "(s)")
        self.assertTrue(qmtest.iterate_until(lambda: "END-MARK" in log(), 10), log()[-200:])
        text = log()
        self.assertLessEqual(len(text.encode()), 8 * 1024 * 1024 + 64)
        self.assertGreaterEqual(len(text.encode()), 8 * 1024 * 1024 - 64)
        self.assertNotIn("hello on stdout", text, "only the last 8 MiB")
        self.assertIn("bad bytes: ", text)
        self.assertIn(" end\n", text)
        self.shutdown(path, False, 10)
        self.assertIn("END-MARK", log(), "kept after the run")

        # A small log is complete.
        quiet = self.write_script("quiet", """#!/bin/sh
echo "hello on stdout"
echo "hello on stderr" >&2
exec "$@"
""")
        path = self.create_none_machine("logged2", wrapper=[quiet])
        self.launch(path)
        self.assertTrue(qmtest.iterate_until(
            lambda: "hello on stderr" in self.machine(path, "GetLog", None, "(s)"), 10))
        self.assertIn("hello on stdout", self.machine(path, "GetLog", None, "(s)"))
        self.kill(path)

    def test_no_qmp(self):
        path = self.create_none_machine("noqmp", qmp=False)
        t0 = time.monotonic()
        self.launch(path)
        self.assertLess(time.monotonic() - t0, 5)
        pid = self.mprop(path, "Pid")
        self.assertTrue(is_qemu_process(pid))
        self.assertEqual(self.mprop(path, "State"), "running")
        cmdline = self.mprop(path, "CommandLine")
        self.assertFalse([a for a in cmdline if "qmp" in a.lower()], cmdline)
        self.expect_error(err("NoMonitor"), self.qmp, path, "query-status")
        self.expect_error(err("NoMonitor"), self.command, path, "query-status")
        self.expect_error(err("NoMonitor"), self.machine, path, "Pause", None, "()")
        self.kill(path)
        self.assertEqual(self.mprop(path, "State"), "failed")
        self.assertEqual(self.mprop(path, "ExitCode"), -9)
        self.assertIsNone(proc_stat(pid))


if __name__ == "__main__":
    qmtest.main()
