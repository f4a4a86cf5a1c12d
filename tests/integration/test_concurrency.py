#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""One slow operation never blocks the others, and many QMP calls in
flight from several clients each get their own answer."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import MACHINE_IFACE, GLib  # noqa: E402

# Wraps QEMU: waits 2 s, then becomes QEMU (same PID).
SLOW_WRAPPER = """#!/bin/sh
sleep 2
exec "$@"
"""

QUICK = 0.75   # seconds: "well under 1 s"; a blocked daemon takes 2 s


class ConcurrencyTest(qmtest.QMTestCase):

    def timed(self, fn, *args):
        t0 = time.monotonic()
        r = fn(*args)
        return r, time.monotonic() - t0

    def test_launch_does_not_block_others(self):
        a = self.create_none_machine("fast")
        self.launch(a)
        wrapper = self.write_script("slow-start", SLOW_WRAPPER)
        b = self.create_none_machine("slow", wrapper=[wrapper])
        launch = self.call_async(b, MACHINE_IFACE, "Launch", None, "()")
        self.wait_property(b, "State", "starting", 2)
        t_start = time.monotonic()
        worst = 0.0
        rounds = 0
        while not launch.done and time.monotonic() - t_start < 1.5:
            r, t = self.timed(self.command, a, "query-status")
            self.assertEqual(r["status"], "running")
            worst = max(worst, t)
            _, t = self.timed(self.mprop, a, "State")
            worst = max(worst, t)
            _, t = self.timed(self.manager, "ListMachines", None, "(a(ssuo))")
            worst = max(worst, t)
            _, t = self.timed(self.mprop, b, "State")
            worst = max(worst, t)
            rounds += 1
        self.assertFalse(launch.done, "the wrapper should still be sleeping")
        self.assertGreater(rounds, 3)
        self.assertLess(worst, QUICK, "a call took %.3f s while another machine launched"
                        % worst)
        # The other machine's own QMP is not there yet.
        self.expect_error(qmtest.err("NotRunning"), self.qmp, b, "query-status")
        launch.wait(30)
        self.assertGreaterEqual(launch.finished_at - launch.started_at, 1.9)
        self.assertEqual(self.mprop(b, "State"), "running")
        cmdline = self.mprop(b, "CommandLine")
        self.assertEqual(cmdline[0], wrapper)
        self.assertIn("qemu-system", os.path.basename(cmdline[1]))
        pid = self.mprop(b, "Pid")
        self.assertTrue(qmtest.is_qemu_process(pid), "the wrapper exec'd QEMU in place")
        self.shutdown(b, False, 10)
        self.shutdown(a, False, 10)

    def test_waits_do_not_block_others(self):
        a = self.create_none_machine("a")
        self.launch(a)
        # Long calls in flight: a WaitEvent and a Wait.
        w = self.wait_event_async(a, [("NEVER", "")], 0, 30)
        wait = self.call_async(a, MACHINE_IFACE, "Wait", GLib.Variant("(d)", (30.0,)), "()")
        qmtest.iterate_for(0.2)
        for _ in range(20):
            _, t = self.timed(self.command, a, "query-status")
            self.assertLess(t, QUICK)
        self.assertFalse(w.done or wait.done)
        self.shutdown(a, False, 10)
        wait.wait(10)
        with self.assertRaises(qmtest.DBusCallError):
            w.wait(10)

    def expected(self, uuids, machine, kind):
        if kind == "query-uuid":
            return {"return": {"UUID": uuids[machine]}}
        if kind == "query-status":
            return {"return": {"status": "running", "singlestep": False, "running": True}}
        return None

    def test_many_calls_in_flight(self):
        machines = [self.create_none_machine("m%d" % i) for i in range(2)]
        for m in machines:
            self.launch(m)
        uuids = {m: self.mprop(m, "UUID") for m in machines}
        version = self.mprop(machines[0], "QemuVersion")
        conns = [self.conn] + [self.env.connect() for _ in range(3)]
        kinds = [
            ("query-uuid", ""),
            ("query-status", ""),
            ("human-monitor-command", '{"command-line": "info version"}'),
            ("query-name", ""),
            ("no-such-command", ""),
        ]
        calls = []
        for i in range(600):
            conn = conns[i % len(conns)]
            m = machines[(i // 3) % len(machines)]
            cmd, args = kinds[i % len(kinds)]
            method = "Qmp" if i % 2 == 0 else "Command"
            c = qmtest.AsyncCall(conn, m, MACHINE_IFACE, method,
                                 GLib.Variant("(ss)", (cmd, args)), "(s)", timeout=60)
            calls.append((c, m, cmd, method))
        self.assertTrue(qmtest.iterate_until(lambda: all(c.done for c, *_ in calls), 60))
        for c, m, cmd, method in calls:
            with self.subTest(machine=m, cmd=cmd, method=method):
                if cmd == "no-such-command":
                    if method == "Qmp":
                        self.assertIsNone(c.error)
                        self.assertEqual(json.loads(c.result)["error"]["class"],
                                         "CommandNotFound")
                    else:
                        self.assertEqual(c.error.name, qmtest.err("QmpError"))
                    continue
                self.assertIsNone(c.error, c.error)
                r = json.loads(c.result)
                if method == "Command":
                    r = {"return": r}
                if cmd == "human-monitor-command":
                    self.assertTrue(r["return"].startswith(version), r)
                elif cmd == "query-name":
                    self.assertIsInstance(r["return"], dict)
                else:
                    self.assertEqual(r, self.expected(uuids, m, cmd))
        for m in machines:
            self.shutdown(m, False, 10)


if __name__ == "__main__":
    qmtest.main()
