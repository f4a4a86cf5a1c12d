#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""QMP events: numbering, retention, WaitEvent matching and waiting,
GetEvents, and the Event signal."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import MACHINE_IFACE, GLib, err  # noqa: E402


class EventsTest(qmtest.QMTestCase):

    def running_machine(self, name="ev"):
        path = self.create_none_machine(name)
        self.launch(path)
        return path

    def pause(self, path):
        self.machine(path, "Pause", None, "()")

    def resume(self, path):
        self.machine(path, "Resume", None, "()")

    def test_event_already_retained(self):
        path = self.running_machine()
        s0 = self.mprop(path, "EventSequence")
        self.pause(path)
        seq, ev = self.wait_event(path, [("STOP", "")], 0, 5)
        self.assertGreater(seq, s0)
        self.assertEqual(ev["event"], "STOP")
        self.assertEqual(set(ev["timestamp"]), {"seconds", "microseconds"})
        self.assertNotIn("data", ev, "STOP has no data; none is made up")
        # Found again: waiting never consumes.
        self.assertEqual(self.wait_event(path, [("STOP", "")], 0, 0), (seq, ev))
        self.assertEqual(self.wait_event(path, [("STOP", "")], seq - 1, 0), (seq, ev))
        # Nothing after it.
        self.assertEqual(self.wait_event(path, [("STOP", "")], seq, 0), (0, None))
        self.assertEqual(self.mprop(path, "EventSequence"), seq)
        # GetEvents returns the same object.
        self.assertIn((seq, ev), self.get_events(path))

    def test_event_that_comes_later(self):
        path = self.running_machine()
        s0 = self.mprop(path, "EventSequence")
        w = self.wait_event_async(path, [("STOP", "")], s0, 20)
        qmtest.iterate_for(0.3)
        self.assertFalse(w.done, "WaitEvent returned before the event: %r %r"
                         % (w.result, w.error))
        self.pause(path)
        seq, ev = w.wait(10)
        self.assertEqual(seq, s0 + 1)
        self.assertEqual(json.loads(ev)["event"], "STOP")
        self.assertLess(w.finished_at - w.started_at, 10)

    def test_match_json(self):
        path = self.running_machine()
        # A host quit SHUTDOWN is not a guest one: the waiter ends with
        # NotRunning when QEMU stops without a match.
        w = self.wait_event_async(path, [("SHUTDOWN", {"data": {"guest": True}})], 0, 20)
        qmtest.iterate_for(0.2)
        self.assertFalse(w.done)
        self.shutdown(path, False, 10)
        with self.assertRaises(qmtest.DBusCallError) as cm:
            w.wait(10)
        self.assertEqual(cm.exception.name, err("NotRunning"), cm.exception.text)

        # The retained SHUTDOWN, matched against the whole event object.
        def find(filters):
            return self.wait_event(path, filters, 0, 0)
        seq, ev = find([("SHUTDOWN", "")])
        self.assertGreater(seq, 0)
        self.assertEqual(ev["data"], {"guest": False, "reason": "host-qmp-quit"})
        self.assertEqual(find([("SHUTDOWN", {"data": {"guest": True}})]), (0, None))
        self.assertEqual(find([("SHUTDOWN", {"data": {"guest": False}})])[0], seq)
        self.assertEqual(find([("SHUTDOWN", {"data": {"reason": "host-qmp-quit"}})])[0], seq)
        self.assertEqual(find([("SHUTDOWN", {"data": {"reason": None}})])[0], seq,
                         "null is a wildcard")
        self.assertEqual(find([("SHUTDOWN", {"data": {"nosuchkey": None}})]), (0, None),
                         "a wildcard still needs the key")
        self.assertEqual(find([("SHUTDOWN", {"data": {"reason": "guest-shutdown"}})]),
                         (0, None))
        self.assertEqual(find([("", {"event": "SHUTDOWN"})])[0], seq, "name '' is any")
        self.assertEqual(find([("", "")])[0], self.get_events(path, 0)[0][0])
        self.assertEqual(find([("STOP", ""), ("SHUTDOWN", {"data": {"guest": False}})])[0],
                         seq, "any filter may match")
        self.assertEqual(find([("NO_SUCH_EVENT", "")]), (0, None))
        # Waiting on a stopped machine for something that is not there.
        self.expect_error(err("NotRunning"), self.wait_event, path,
                          [("NO_SUCH_EVENT", "")], seq, 5)

    def test_first_match_wins(self):
        path = self.running_machine()
        s0 = self.mprop(path, "EventSequence")
        self.pause(path)
        self.resume(path)
        self.pause(path)
        seq, ev = self.wait_event(path, [("RESUME", ""), ("STOP", "")], s0, 0)
        self.assertEqual((seq, ev["event"]), (s0 + 1, "STOP"))
        seq, ev = self.wait_event(path, [("", "")], s0 + 1, 0)
        self.assertEqual((seq, ev["event"]), (s0 + 2, "RESUME"))
        seq, ev = self.wait_event(path, [("STOP", "")], s0 + 1, 0)
        self.assertEqual(seq, s0 + 3)

    def test_timeout_zero_searches_only(self):
        path = self.running_machine()
        t0 = time.monotonic()
        self.assertEqual(self.wait_event(path, [("STOP", "")], 0, 0), (0, None))
        self.assertLess(time.monotonic() - t0, 1)

    def test_timeout_elapses(self):
        path = self.running_machine()
        t0 = time.monotonic()
        self.expect_error(err("Timeout"), self.wait_event, path, [("STOP", "")], 0, 0.5)
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 0.45)
        self.assertLess(elapsed, 5)
        # The machine is unaffected.
        self.assertEqual(self.mprop(path, "State"), "running")

    def test_two_clients_same_event(self):
        path = self.running_machine()
        other = self.env.connect()
        s0 = self.mprop(path, "EventSequence")
        w1 = self.wait_event_async(path, [("STOP", "")], s0, 20)
        w2 = self.wait_event_async(path, [("", {"event": "STOP"})], s0, 20, conn=other)
        w3 = self.wait_event_async(path, [("STOP", "")], s0, -1, conn=other)
        qmtest.iterate_for(0.3)
        self.assertFalse(w1.done or w2.done or w3.done)
        self.pause(path)
        r1, r2, r3 = w1.wait(10), w2.wait(10), w3.wait(10)
        self.assertEqual(r1, r2)
        self.assertEqual(r1, r3)
        self.assertEqual(r1[0], s0 + 1)

    def test_waiter_gets_not_running_on_kill(self):
        path = self.running_machine()
        w = self.wait_event_async(path, [("NEVER", "")], 0, -1)
        qmtest.iterate_for(0.2)
        self.assertFalse(w.done)
        self.kill(path)
        with self.assertRaises(qmtest.DBusCallError) as cm:
            w.wait(10)
        self.assertEqual(cm.exception.name, err("NotRunning"))

    def test_shutdown_event_never_lost(self):
        # QEMU writes SHUTDOWN (and the quit reply) and exits at once: the
        # daemon must read everything QEMU sent before it closes the monitor.
        path = self.create_none_machine("sd")
        lost = []
        for i in range(25):
            self.launch(path)
            s0 = self.mprop(path, "EventSequence")
            self.shutdown(path, False, 10)
            names = [e["event"] for _s, e in self.get_events(path, s0)]
            if names != ["SHUTDOWN"]:
                lost.append((i, names))
            self.assertEqual(self.mprop(path, "State"), "stopped")
        self.assertEqual(lost, [], "launch/shutdown rounds that lost the SHUTDOWN event")

    def test_get_events_after(self):
        path = self.running_machine()
        s0 = self.mprop(path, "EventSequence")
        self.pause(path)
        self.resume(path)
        self.pause(path)
        events = self.get_events(path, s0)
        self.assertEqual([s for s, _e in events], [s0 + 1, s0 + 2, s0 + 3])
        self.assertEqual([e["event"] for _s, e in events], ["STOP", "RESUME", "STOP"])
        self.assertEqual(self.get_events(path, s0 + 1), events[1:])
        self.assertEqual(self.get_events(path, s0 + 3), [])
        self.assertEqual(self.get_events(path, 1 << 60), [])
        self.assertEqual(self.get_events(path, 0)[-3:], events)
        self.assertEqual(self.mprop(path, "EventSequence"), s0 + 3)

    def pipeline(self, path, commands, window=64):
        """Send Qmp calls with at most `window` in flight; return replies
        in order."""
        calls = []
        pending = []
        for cmd in commands:
            while len(pending) >= window:
                qmtest.iterate_until(lambda: any(c.done for c in pending), 30)
                pending = [c for c in pending if not c.done]
            c = self.call_async(path, MACHINE_IFACE, "Qmp",
                                GLib.Variant("(ss)", (cmd, "")), "(s)", timeout=120)
            calls.append(c)
            pending.append(c)
        self.assertTrue(qmtest.iterate_until(lambda: all(c.done for c in calls), 120))
        for c in calls:
            if c.error:
                raise c.error
        return [json.loads(c.result) for c in calls]

    def test_burst_of_events(self):
        path = self.running_machine()
        events = self.record(MACHINE_IFACE, "Event", path)
        s0 = self.mprop(path, "EventSequence")
        n = 1000
        replies = self.pipeline(path, ["stop", "cont"] * n)
        self.assertEqual(replies, [{"return": {}}] * (2 * n))
        self.assertTrue(events.wait(lambda s: len(s) >= 2 * n, 60), len(events.signals))
        qmtest.iterate_for(0.2)
        got = events.args("Event")
        self.assertEqual(len(got), 2 * n, "no duplicates, nothing lost")
        self.assertEqual([g[2] for g in got], list(range(s0 + 1, s0 + 2 * n + 1)))
        self.assertEqual([g[0] for g in got], ["STOP", "RESUME"] * n)
        self.assertTrue(all(g[1] == "{}" for g in got), got[:3])
        stamps = [g[3] for g in got]
        self.assertEqual(stamps, sorted(stamps))
        self.assertGreater(stamps[0], 1e15, "µs since the epoch")
        self.assertEqual(self.mprop(path, "EventSequence"), s0 + 2 * n)
        self.assertEqual(self.mprop(path, "RunState"), "running")
        # The same events are retained, with the same numbers.
        retained = self.get_events(path, s0)
        self.assertEqual([(s, e["event"]) for s, e in retained],
                         [(g[2], g[0]) for g in got])
        for (s, e), g in zip(retained, got):
            self.assertEqual(e["timestamp"]["seconds"] * 1000000
                             + e["timestamp"]["microseconds"], g[3])

    def test_ring_keeps_newest_4096(self):
        path = self.running_machine()
        s0 = self.mprop(path, "EventSequence")
        n = 2100
        self.pipeline(path, ["stop", "cont"] * n)
        last = s0 + 2 * n
        self.wait_property(path, "EventSequence", last)
        retained = self.get_events(path, 0)
        self.assertEqual(len(retained), 4096)
        self.assertEqual(retained[0][0], last - 4095)
        self.assertEqual(retained[-1][0], last)
        # An event that was dropped is not found any more.
        self.assertEqual(self.wait_event(path, [("", "")], 0, 0)[0], last - 4095)


if __name__ == "__main__":
    qmtest.main()
