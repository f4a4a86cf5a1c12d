#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Many machine lifetimes leave the daemon as they found it: 200 cycles of
create, launch, an event, a QMP error, a waiter, shutdown and remove of a
`-machine none` QEMU leave its open fds and its children where they were
after a warm-up, and its resident memory (VmRSS) grows by less than 2 MiB."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import GLib  # noqa: E402

WARMUP = 10
CYCLES = 200
RSS_SLACK_KIB = 2048


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def sanitized(pid):
    """True when the daemon runs with AddressSanitizer: its quarantine
    keeps freed memory resident, so VmRSS says nothing about leaks there
    (LeakSanitizer checks them at exit instead)."""
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


def fd_targets(pid):
    out = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            out.append("%s -> %s" % (fd, os.readlink("/proc/%d/fd/%s" % (pid, fd))))
        except OSError:
            pass
    return sorted(out)


class LeaksTest(qmtest.QMTestCase):

    def cycle(self, i):
        name = "leak-%d" % i
        # A launch that hangs fails after 5 s, not the default 30.
        path = self.create_none_machine(name, qmp_timeout=5.0)
        self.launch(path)
        self.assertEqual(self.command(path, "query-status")["status"], "running")
        # An event, a QMP error, and a waiter the shutdown ends.
        self.command(path, "stop")
        self.assertEqual(self.wait_event(path, [("STOP", "")])[1]["event"], "STOP")
        self.expect_error(qmtest.err("QmpError"), self.command, path, "no-such-command")
        waiter = self.wait_event_async(path, [("NEVER", "")], timeout=60)
        self.shutdown(path, False, 10)
        self.assertEqual(self.mprop(path, "State"), "stopped")
        with self.assertRaises(qmtest.DBusCallError) as cm:
            waiter.wait(10)
        self.assertEqual(cm.exception.name, qmtest.err("NotRunning"))
        self.manager("RemoveMachine", GLib.Variant("(s)", (name,)))

    def settle(self, daemon_pid):
        """Wait until the daemon has no children left (the last QEMU is
        reaped) and nothing is queued."""
        deadline = time.monotonic() + 5
        while qmtest.children_of(daemon_pid) and time.monotonic() < deadline:
            qmtest.iterate_for(0.02)
        qmtest.iterate_for(0.1)

    def test_create_launch_shutdown_remove_cycles(self):
        pid = self.env.daemon.pid
        for i in range(WARMUP):
            self.cycle(i)
        self.settle(pid)
        fds0, rss0 = fd_count(pid), rss_kib(pid)
        targets0 = fd_targets(pid)
        children0 = qmtest.children_of(pid)
        t0 = time.monotonic()
        for i in range(WARMUP, WARMUP + CYCLES):
            self.cycle(i)
        took = time.monotonic() - t0
        self.settle(pid)
        fds1, rss1 = fd_count(pid), rss_kib(pid)
        sys.stderr.write("\n%d cycles in %.1f s; fds %d -> %d; VmRSS %d -> %d KiB\n"
                         % (CYCLES, took, fds0, fds1, rss0, rss1))
        self.assertEqual(fds1, fds0, "fds leaked:\nbefore %s\nafter %s"
                         % (targets0, fd_targets(pid)))
        self.assertEqual(qmtest.children_of(pid), children0)
        self.assertEqual(children0, [])
        if not sanitized(pid):
            self.assertLess(rss1 - rss0, RSS_SLACK_KIB, "VmRSS grew by %d KiB" % (rss1 - rss0))
        self.assert_daemon_answers(0)
        # only the autostart marker (one per boot), no machine's files
        self.assertEqual(os.listdir(self.env.path("run")), ["autostarted"])
        self.assertEqual(self.qemu_pids(), [])


if __name__ == "__main__":
    qmtest.main()
