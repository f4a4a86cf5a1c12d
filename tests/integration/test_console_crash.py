#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Kernel crash detection on the console is bounded: a guest that panics and
then writes 40 MiB on the same line (fake_qemu.py --fake-mode=panic-flood)
gets a KernelCrash of a few KiB marked as cut, one KernelCrashDetected
signal, and the daemon stays on the bus (a crash text over dbus-daemon's
message limit used to get the daemon disconnected)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import MACHINE_IFACE  # noqa: E402

FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_qemu.py")

# API.md / Machine.xml: KernelCrash keeps at most this many bytes of the
# crash text, then this marker.
CRASH_TEXT_MAX = 4096
CUT_MARKER = "… [cut]"


class ConsoleCrashTest(qmtest.QMTestCase):

    def console_log_ends_with(self, path, tail):
        log = os.path.join(self.mprop(path, "LogDirectory"), "console.log")

        def done():
            try:
                with open(log, "rb") as f:
                    f.seek(max(0, os.path.getsize(log) - len(tail)))
                    return f.read() == tail
            except OSError:
                return False
        return qmtest.iterate_until(done, 60)

    def test_panic_line_flood_is_cut(self):
        path = self.create_machine("panicflood", binary=FAKE, console=True,
                                   args=["--fake-mode=panic-flood"])
        crashes = self.record(MACHINE_IFACE, "KernelCrashDetected", path)
        props = self.record_properties(path)
        self.launch(path, timeout=120)
        self.assertTrue(self.console_log_ends_with(path, b"PANIC-DONE\n"),
                        "the daemon drained the whole flood")
        self.assertTrue(crashes.wait(timeout=10), "no KernelCrashDetected signal")
        qmtest.iterate_for(0.5)

        self.assert_daemon_answers(1)
        self.assertEqual(len(crashes.signals), 1, "one signal per run")
        text = crashes.args()[0][0]
        head = "Kernel panic - not syncing: boom "
        self.assertEqual(text, head + "x" * (CRASH_TEXT_MAX - len(head)) + CUT_MARKER)
        self.assertEqual(self.mprop(path, "KernelCrash"), text)
        # every state change announces KernelCrash again: "" before, then text
        self.assertEqual(set(qmtest.changed_values(props, "KernelCrash")), {"", text})

        self.assertEqual(self.command(path, "query-status")["status"], "running")
        self.shutdown(path, False, 10)
        self.assertEqual(self.mprop(path, "State"), "stopped")
        self.assertEqual(self.env.stop_daemon(), 0, "a clean exit when stopped")


if __name__ == "__main__":
    qmtest.main()
