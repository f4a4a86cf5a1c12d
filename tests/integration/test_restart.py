#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The daemon goes away and comes back: VMs and definitions outlive it.

SIGTERM and SIGKILL of the daemon leave running VMs alone; the next daemon
(same bus, same directories) takes each one back from its runtime record:
same object, State running, same Pid, no second QEMU, a working monitor
and console, event numbers that never repeat. A VM that died while no
daemon ran comes back as failed. Persistent definitions survive restarts
and a host reboot (runtime directory emptied); a corrupt definition is set
aside. The harness is a subreaper, so QEMUs orphaned by a killed daemon
are reaped and, at teardown, killed.
"""

import json
import os
import signal
import socket
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import GLib, MACHINE_IFACE, err, pid_alive  # noqa: E402


class RestartTest(qmtest.QMTestCase):

    # -- helpers

    def record_path(self, name):
        return self.env.path("run", name, "record.json")

    def definition_path(self, name):
        return self.env.path("state", "machines", name + ".json")

    def make_event(self, path, after):
        """One new QMP event (STOP after `stop`, RESUME after `cont`);
        returns its sequence number."""
        status = self.command(path, "query-status")["status"]
        cmd, name = ("cont", "RESUME") if status == "paused" else ("stop", "STOP")
        self.command(path, cmd)
        seq, ev = self.wait_event(path, [(name, "")], after=after, timeout=10)
        self.assertEqual(ev["event"], name)
        return seq

    def launch_with_events(self, name, count=3, **config):
        path = self.create_none_machine(name, **config)
        self.launch(path)
        seqs = []
        last = self.mprop(path, "EventSequence")
        for _ in range(count):
            last = self.make_event(path, last)
            seqs.append(last)
        self.assertEqual(seqs, sorted(set(seqs)))
        return path, seqs

    def assert_taken_back(self, name, path, pid, qemus_before):
        """The new daemon has the VM again, without starting QEMU anew."""
        self.assertEqual(self.manager("GetMachine", GLib.Variant("(s)", (name,)), "(o)"), path)
        self.assertEqual(self.mprop(path, "State"), "running")
        self.assertEqual(self.mprop(path, "Pid"), pid)
        self.assertTrue(pid_alive(pid))
        # The monitor works, and RunState agrees with QEMU.
        status = self.command(path, "query-status")["status"]
        self.assertEqual(self.mprop(path, "RunState"), status)
        self.assertEqual(self.qmp(path, "query-name"), {"return": {}})
        self.assertEqual(self.manager("GetMachineByPID", GLib.Variant("(u)", (pid,)), "(o)"),
                         path)
        self.assertEqual(self.qemu_pids(), qemus_before, "no second QEMU was started")
        with open(self.record_path(name)) as f:
            self.assertEqual(json.load(f)["pid"], pid)

    def assert_shutdown_taken_back(self, path, pid):
        """A taken-back QEMU is not the daemon's child: its exit status is
        unknown (-1000), but a quit makes the stop clean."""
        self.shutdown(path, False, 10)
        self.assertEqual(self.mprop(path, "State"), "stopped")
        self.assertEqual(self.mprop(path, "ExitCode"), -1000)
        self.assertEqual(self.mprop(path, "Pid"), 0)
        self.assertTrue(qmtest.reap(pid, 10), "QEMU %d is gone" % pid)
        self.assertFalse(os.path.exists(self.record_path(self.mprop(path, "Name"))))
        self.assertEqual(self.sockets_under(self.env.path("run")), [])
        self.assertEqual(self.qemu_pids(), [])

    # -- daemon restart (SIGTERM)

    def test_sigterm_takes_back_running_vm(self):
        path, seqs = self.launch_with_events("calm")
        pid = self.mprop(path, "Pid")
        launched = self.mprop(path, "LaunchTimestamp")
        cmdline = self.mprop(path, "CommandLine")
        version = self.mprop(path, "QemuVersion")
        qemus = self.qemu_pids()
        self.assertEqual(qemus, [pid])
        self.assertTrue(os.path.exists(self.record_path("calm")))

        self.assertEqual(self.restart_daemon(signal.SIGTERM), 0)

        self.assert_taken_back("calm", path, pid, qemus)
        self.assertEqual(self.mprop(path, "LaunchTimestamp"), launched)
        self.assertEqual(self.mprop(path, "CommandLine"), cmdline)
        self.assertEqual(self.mprop(path, "QemuVersion"), version)
        # After a clean exit the numbers go on exactly where they were.
        self.assertEqual(self.mprop(path, "EventSequence"), seqs[-1])
        events = self.record(MACHINE_IFACE, "Event", path)
        nxt = self.make_event(path, seqs[-1])
        self.assertEqual(nxt, seqs[-1] + 1)
        self.assertTrue(events.wait(lambda s: len(s) >= 1))
        self.assertEqual(events.args()[0][2], nxt)
        self.assert_daemon_answers(1)
        self.assert_shutdown_taken_back(path, pid)

    def test_two_sigterm_restarts_and_other_machines(self):
        """Several VMs, two restarts in a row; a defined machine next to
        them stays defined only while the daemon runs (not persistent)."""
        a, seq_a = self.launch_with_events("one", 1)
        b, seq_b = self.launch_with_events("two", 2)
        self.create_none_machine("idle")
        pids = {a: self.mprop(a, "Pid"), b: self.mprop(b, "Pid")}
        qemus = self.qemu_pids()
        self.assertEqual(len(qemus), 2)
        for _ in range(2):
            self.assertEqual(self.restart_daemon(signal.SIGTERM), 0)
            self.assert_taken_back("one", a, pids[a], qemus)
            self.assert_taken_back("two", b, pids[b], qemus)
        self.expect_error(err("NoSuchMachine"), self.manager, "GetMachine",
                          GLib.Variant("(s)", ("idle",)), "(o)")
        self.assert_daemon_answers(2)
        self.assertEqual(self.make_event(a, seq_a[-1]), seq_a[-1] + 1)
        self.assertEqual(self.make_event(b, seq_b[-1]), seq_b[-1] + 1)
        self.shutdown(a, False, 10)
        self.shutdown(b, False, 10)
        for p in pids.values():
            self.assertTrue(qmtest.reap(p, 10))
        self.assertEqual(self.qemu_pids(), [])

    # -- daemon crash (SIGKILL)

    def test_sigkill_takes_back_running_vm(self):
        path, seqs = self.launch_with_events("crashy")
        pid = self.mprop(path, "Pid")
        qemus = self.qemu_pids()

        self.assertEqual(self.restart_daemon(signal.SIGKILL), -signal.SIGKILL)

        self.assert_taken_back("crashy", path, pid, qemus)
        # The numbers jump past the reservation of the record, but never
        # go back: no number is handed out twice.
        seen = list(seqs)
        after = self.mprop(path, "EventSequence")
        self.assertGreaterEqual(after, seqs[-1])
        nxt = self.make_event(path, after)
        self.assertGreater(nxt, seqs[-1])
        seen.append(nxt)
        # A second crash right after the take-back: still no repeat.
        self.assertEqual(self.restart_daemon(signal.SIGKILL), -signal.SIGKILL)
        self.assert_taken_back("crashy", path, pid, qemus)
        nxt2 = self.make_event(path, self.mprop(path, "EventSequence"))
        self.assertGreater(nxt2, max(seen))
        seen.append(nxt2)
        self.assertEqual(len(seen), len(set(seen)))
        # Events stay ordered in what the daemon retains.
        got = [s for s, _e in self.get_events(path)]
        self.assertEqual(got, sorted(got))
        self.assertIn(nxt2, got)
        self.assert_shutdown_taken_back(path, pid)

    def test_sigkill_with_many_events_never_repeats(self):
        """More events than one reservation holds before the crash: the
        record is renewed on the way, so the numbers still only grow."""
        path = self.create_none_machine("busy")
        self.launch(path)
        pid = self.mprop(path, "Pid")
        for _ in range(700):  # 1400 events (STOP + RESUME)
            self.command(path, "stop")
            self.command(path, "cont")
        last = self.mprop(path, "EventSequence")
        self.assertGreaterEqual(last, 1400)
        self.assertEqual(self.restart_daemon(signal.SIGKILL), -signal.SIGKILL)
        self.assertEqual(self.mprop(path, "Pid"), pid)
        nxt = self.make_event(path, self.mprop(path, "EventSequence"))
        self.assertGreater(nxt, last)
        self.shutdown(path, False, 10)
        self.assertTrue(qmtest.reap(pid, 10))

    def write_echo_kernel(self):
        """A 49-byte multiboot kernel for `-kernel`: it echoes every byte
        that arrives on COM1 back to COM1, forever (polling, no setup)."""
        code = bytes.fromhex(
            "66BAFD03"   # mov dx, 0x3fd (line status)
            "EC"         # in al, dx
            "A801"       # test al, 1 (data ready)
            "74FB"       # jz back to the in
            "66BAF803"   # mov dx, 0x3f8 (data)
            "EC"         # in al, dx
            "EE"         # out dx, al
            "EBEF")      # jmp to the start
        load, header = 0x100000, 32
        end = load + header + len(code)
        magic, flags = 0x1BADB002, 0x00010000  # addresses in the header
        image = struct.pack("<8I", magic, flags, (-(magic + flags)) & 0xFFFFFFFF,
                            load, load, end, end, load + header) + code
        p = self.env.path("scripts", "echo.mb")
        with open(p, "wb") as f:
            f.write(image)
        return p

    def console_echo(self, path, text):
        """Through a new OpenConsole socket: send text, expect it back."""
        s = socket.socket(fileno=self.open_console(path))
        try:
            s.settimeout(20)
            s.sendall(text)
            got = b""
            while not got.endswith(text):
                chunk = s.recv(4096)
                self.assertTrue(chunk, "console closed; got %r" % got)
                got += chunk
            return got
        finally:
            s.close()

    def test_console_after_restart(self):
        """The console socket is QEMU's own: a new daemon, after SIGTERM
        or SIGKILL, reconnects to it, and its clients talk to the guest."""
        kernel = self.write_echo_kernel()
        args = ["-machine", "pc", "-nodefaults", "-m", "64", "-kernel", kernel]
        path = self.create_machine("tty", args=args + qmtest.accel_args(), console=True)
        self.launch(path)
        pid = self.mprop(path, "Pid")
        self.console_echo(path, b"before-restart\n")
        self.assertEqual(self.restart_daemon(signal.SIGTERM), 0)
        self.assert_taken_back("tty", path, pid, [pid])
        self.console_echo(path, b"after-sigterm\n")
        self.assertEqual(self.restart_daemon(signal.SIGKILL), -signal.SIGKILL)
        self.assert_taken_back("tty", path, pid, [pid])
        self.console_echo(path, b"after-sigkill\n")
        out = bytes(self.machine(path, "GetConsoleOutput", None, "(ay)"))
        self.assertIn(b"after-sigkill\n", out, "the new daemon records the console")
        self.assert_shutdown_taken_back(path, pid)

    def open_console(self, path):
        r, fdlist = self.conn.call_with_unix_fd_list_sync(
            qmtest.BUS_NAME, path, MACHINE_IFACE, "OpenConsole", None,
            GLib.VariantType.new("(h)"), qmtest.Gio.DBusCallFlags.NONE, 10000, None, None)
        return fdlist.get(r.unpack()[0])

    # -- QEMU died while no daemon ran

    def test_vm_died_while_daemon_down(self):
        path, seqs = self.launch_with_events("gone", 2)
        pid = self.mprop(path, "Pid")
        self.assertEqual(self.env.stop_daemon(), 0)
        self.assertTrue(pid_alive(pid), "SIGTERM leaves the VM running")
        os.kill(pid, signal.SIGKILL)
        self.assertTrue(qmtest.reap(pid, 10))
        self.env.start_daemon()
        self.assertEqual(self.manager("GetMachine", GLib.Variant("(s)", ("gone",)), "(o)"), path)
        self.assertEqual(self.mprop(path, "State"), "failed")
        self.assertEqual(self.mprop(path, "ExitCode"), -1000)
        self.assertEqual(self.mprop(path, "Pid"), 0)
        self.assertFalse(os.path.exists(self.record_path("gone")))
        self.assertEqual(self.sockets_under(self.env.path("run")), [])
        self.expect_error(err("NotRunning"), self.qmp, path, "query-status")
        # It can run again, and its numbers still do not repeat.
        self.launch(path)
        self.assertNotEqual(self.mprop(path, "Pid"), pid)
        nxt = self.make_event(path, self.mprop(path, "EventSequence"))
        self.assertGreater(nxt, seqs[-1])
        self.shutdown(path, False, 10)
        self.assertEqual(self.mprop(path, "State"), "stopped")
        self.assertEqual(self.mprop(path, "ExitCode"), 0)

    def test_vm_died_while_daemon_crashed(self):
        path, seqs = self.launch_with_events("gone2", 1, persistent=True)
        pid = self.mprop(path, "Pid")
        self.env.signal_daemon(signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)
        self.assertTrue(qmtest.reap(pid, 10))
        self.env.start_daemon()
        self.assertEqual(self.mprop(path, "State"), "failed")
        self.assertEqual(self.mprop(path, "ExitCode"), -1000)
        self.assertEqual(self.mprop(path, "Pid"), 0)
        self.assertGreaterEqual(self.mprop(path, "EventSequence"), seqs[-1])
        # The failed state's numbers are saved: another restart keeps them.
        seq = self.mprop(path, "EventSequence")
        self.assertEqual(self.restart_daemon(signal.SIGTERM), 0)
        self.assertEqual(self.mprop(path, "EventSequence"), seq)

    def test_vm_exits_after_crash_is_noticed(self):
        """A taken-back VM that dies afterwards (not after our quit) is
        failed with ExitCode -1000; its orphaned process is reaped here."""
        path, _seqs = self.launch_with_events("later", 1)
        pid = self.mprop(path, "Pid")
        self.restart_daemon(signal.SIGKILL)
        self.assertEqual(self.mprop(path, "State"), "running")
        props = self.record_properties(path)
        os.kill(pid, signal.SIGKILL)
        self.assertTrue(props.wait(lambda s: "failed" in qmtest.changed_values(props, "State"),
                                   10), "the exit was noticed")
        self.assertEqual(self.mprop(path, "ExitCode"), -1000)
        self.assertEqual(self.mprop(path, "Pid"), 0)
        self.assertTrue(qmtest.reap(pid, 10))
        self.assertEqual(self.sockets_under(self.env.path("run")), [])

    # -- definitions

    def test_persistent_definition(self):
        keep = self.create_none_machine("keeper", persistent=True, description="stays")
        self.create_none_machine("fleeting")
        self.assertTrue(self.mprop(keep, "Persistent"))
        with open(self.definition_path("keeper")) as f:
            d = json.load(f)
        self.assertEqual(d["name"], "keeper")
        self.assertEqual(d["config"]["description"], "stays")
        self.assertIs(d["config"]["persistent"], True)
        self.assertEqual(d["event-sequence"], 0)
        self.assertFalse(os.path.exists(self.definition_path("fleeting")))
        leftovers = [f for f in os.listdir(self.env.path("state", "machines"))
                     if f != "keeper.json"]
        self.assertEqual(leftovers, [], "written atomically: no temp file left")
        config = self.mprop(keep, "Config")
        uuid = self.mprop(keep, "UUID")

        self.assertEqual(self.restart_daemon(signal.SIGTERM), 0)

        self.assertEqual(self.manager("GetMachine", GLib.Variant("(s)", ("keeper",)), "(o)"),
                         keep)
        self.assertEqual(self.mprop(keep, "State"), "defined")
        self.assertEqual(self.mprop(keep, "Config"), config)
        self.assertEqual(self.mprop(keep, "UUID"), uuid)
        self.expect_error(err("NoSuchMachine"), self.manager, "GetMachine",
                          GLib.Variant("(s)", ("fleeting",)), "(o)")
        self.assert_daemon_answers(1)

        # Runs, stops; its event numbers survive a restart and a crash.
        self.launch(keep)
        self.make_event(keep, 0)
        self.shutdown(keep, False, 10)
        last = self.mprop(keep, "EventSequence")
        self.assertGreater(last, 0)
        self.assertEqual(self.restart_daemon(signal.SIGTERM), 0)
        self.assertEqual(self.mprop(keep, "EventSequence"), last)
        self.assertEqual(self.restart_daemon(signal.SIGKILL), -signal.SIGKILL)
        self.assertEqual(self.mprop(keep, "EventSequence"), last)
        self.launch(keep)
        self.assertGreater(self.make_event(keep, last), last)
        self.shutdown(keep, False, 10)

        self.manager("RemoveMachine", GLib.Variant("(s)", ("keeper",)))
        self.assertFalse(os.path.exists(self.definition_path("keeper")))
        self.assertEqual(self.restart_daemon(signal.SIGTERM), 0)
        self.assert_daemon_answers(0)

    def test_corrupt_definitions_are_set_aside(self):
        self.create_none_machine("good", persistent=True)
        bad = {
            "garbage": b"{this is not json",
            "empty": b"",
            "array": b"[1, 2, 3]",
            "nulls": b'{"name": null, "config": null}',
        }
        for name, data in bad.items():
            with open(self.definition_path(name), "wb") as f:
                f.write(data)
        self.assertEqual(self.restart_daemon(signal.SIGTERM), 0)
        names = sorted(m[0] for m in self.manager("ListMachines", None, "(a(ssuo))"))
        self.assertEqual(names, ["good"])
        files = sorted(os.listdir(self.env.path("state", "machines")))
        self.assertEqual(files, sorted(["good.json"] + [n + ".json.corrupt" for n in bad]))
        for name, data in bad.items():
            with open(self.definition_path(name) + ".corrupt", "rb") as f:
                self.assertEqual(f.read(), data, "set aside as it was")
        log = self.env.daemon_output()
        for name in bad:
            self.assertIn(name + ".json", log, "the corrupt file is logged")
        # The names are free again.
        self.create_none_machine("garbage", persistent=True)
        self.assertEqual(self.restart_daemon(signal.SIGTERM), 0)
        self.assert_daemon_answers(2)

    # -- host reboot: /run is emptied, /var/lib stays, every VM is gone

    def reboot_host(self, daemon_signal):
        """The host goes down: the daemon stops (SIGTERM when the service
        manager stops it, SIGKILL at a power cut), then every QEMU dies,
        and /run comes back empty. Then the daemon starts again."""
        pids = self.qemu_pids()
        self.env.signal_daemon(daemon_signal)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        for pid in pids:
            self.assertTrue(qmtest.reap(pid, 10))
        run = self.env.path("run")
        for entry in os.listdir(run):
            full = os.path.join(run, entry)
            if os.path.isdir(full):
                qmtest.shutil.rmtree(full)
            else:
                os.remove(full)  # the autostart marker
        self.env.start_daemon()

    def test_host_reboot(self):
        p_run, _ = self.launch_with_events("p-run", 2, persistent=True)
        self.launch_with_events("t-run", 1)
        p_idle = self.create_none_machine("p-idle", persistent=True)
        self.create_none_machine("t-idle")
        self.assertEqual(len(self.qemu_pids()), 2)
        self.reboot_host(signal.SIGTERM)
        got = {m[0]: (m[1], m[2]) for m in self.manager("ListMachines", None, "(a(ssuo))")}
        self.assertEqual(got, {"p-run": ("defined", 0), "p-idle": ("defined", 0)})
        self.assertEqual(self.qemu_pids(), [])
        self.expect_error(err("NoSuchMachine"), self.manager, "GetMachine",
                          GLib.Variant("(s)", ("t-run",)), "(o)")
        for path in (p_run, p_idle):
            self.launch(path)
            self.shutdown(path, False, 10)
            self.assertEqual(self.mprop(path, "State"), "stopped")

    # A reboot wipes the runtime record; the definition also reserves the
    # numbers a run may use, so none is handed out twice.
    def test_host_reboot_event_numbers(self):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with self.subTest(daemon_signal=sig):
                name = "p-%d" % sig
                path, seqs = self.launch_with_events(name, 2, persistent=True)
                self.reboot_host(sig)
                self.assertGreaterEqual(self.mprop(path, "EventSequence"), seqs[-1])
                self.launch(path)
                self.assertGreater(self.make_event(path, 0), seqs[-1])
                self.shutdown(path, False, 10)


if __name__ == "__main__":
    qmtest.main()
