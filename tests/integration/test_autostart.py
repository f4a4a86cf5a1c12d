#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Host boot and shutdown. Autostart (config key autostart, qmachinectl
enable/disable): a persistent machine with autostart is launched when the
daemon first starts after a host boot (no "autostarted" marker in its
runtime directory, which a boot empties), never when the daemon is only
restarted. At host shutdown qmachined-guests.service runs `qmachinectl
powerdown-all`: every guest gets the power button at once, and QEMU is
ended after the timeout."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import INVALID_ARGS, GLib, machine_path  # noqa: E402
import test_guest  # noqa: E402
from test_qmachinectl import qmachinectl_binary  # noqa: E402


class AutostartTest(qmtest.QMTestCase):

    def marker(self):
        return self.env.path("run", "autostarted")

    def host_boot(self):
        """What a reboot does to the daemon: it stops, /run is emptied,
        it starts again."""
        self.env.stop_daemon()
        os.remove(self.marker())
        self.env.start_daemon()

    def wait_state(self, path, state, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.mprop(path, "State") == state:
                return
            time.sleep(0.05)
        self.fail("%s did not become %s (it is %s)" % (path, state, self.mprop(path, "State")))

    def ctl(self, *args):
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.env.system_address)
        r = subprocess.run([qmachinectl_binary()] + list(args), capture_output=True, text=True, env=env,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_first_start_after_boot_only(self):
        self.assertTrue(os.path.exists(self.marker()), "the first start leaves the marker")
        auto = self.create_none_machine("auto", persistent=True, autostart=True)
        manual = self.create_none_machine("manual", persistent=True)
        self.host_boot()
        self.wait_state(auto, "running")
        self.assertEqual(self.mprop(manual, "State"), "defined")
        self.assertIn("autostart of machine auto", self.env.daemon_output())
        # The user stops it; a restart of the daemon alone starts nothing.
        self.machine(auto, "Shutdown", GLib.Variant("(bd)", (False, 30.0)), "()")
        self.restart_daemon()
        time.sleep(0.5)
        self.assertNotIn(self.mprop(auto, "State"), ("starting", "running"))
        # A VM that still runs at the "boot" is not started twice.
        self.launch(auto)
        pid = self.mprop(auto, "Pid")
        self.env.stop_daemon()
        os.remove(self.marker())
        self.env.start_daemon()
        self.assertEqual(self.mprop(auto, "Pid"), pid)
        self.machine(auto, "Kill", None, "()")

    def test_failed_autostart_is_logged(self):
        bad = self.create_machine("bad", persistent=True, autostart=True, binary="/nonexistent/qemu")
        self.host_boot()
        self.wait_state(bad, "failed")
        self.assertIn("autostart of machine bad failed", self.env.daemon_output())

    def test_needs_persistent(self):
        e = self.expect_error(INVALID_ARGS, self.create_none_machine, "np", autostart=True)
        self.assertIn("persistent", e.text)

    def test_enable_disable(self):
        path = self.create_none_machine("en")
        self.ctl("enable", "en")
        c = self.mprop(path, "Config")
        self.assertEqual((c["autostart"], c["persistent"]), (True, True))
        self.ctl("disable", "en")
        c = self.mprop(path, "Config")
        self.assertEqual((c["autostart"], c["persistent"]), (False, True))
        self.host_boot()
        time.sleep(0.5)
        self.assertEqual(self.mprop(machine_path("en"), "State"), "defined")


class PowerdownAllTest(qmtest.QMTestCase):
    # test_guest's helpers, without inheriting (and so running) its tests
    guest_config = test_guest.GuestTest.guest_config
    console_output = test_guest.GuestTest.console_output
    wait_output = test_guest.GuestTest.wait_output

    def test_guests_power_off_and_the_rest_is_ended(self):
        guest = self.create_machine("guest", **self.guest_config())
        self.launch(guest)
        self.wait_output(guest, b"QMACHINE-GUEST-READY")
        deaf = self.create_none_machine("deaf")  # no ACPI: never powers off
        self.launch(deaf)
        idle = self.create_none_machine("idle")  # not running: untouched
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.env.system_address)
        t0 = time.monotonic()
        r = subprocess.run([qmachinectl_binary(), "powerdown-all", "--timeout=3"], capture_output=True,
                           text=True, env=env, timeout=120)
        took = time.monotonic() - t0
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout, "guest powered off\n")
        self.assertIn("deaf:", r.stderr)
        self.assertEqual(self.mprop(guest, "State"), "stopped")
        self.assertNotIn(self.mprop(deaf, "State"), ("running", "starting", "stopping"))
        self.assertEqual(self.mprop(idle, "State"), "defined")
        self.assertLess(took, 30, "the guests are powered down at once, not one after the other")
        # Nothing left to do: success at once.
        r = subprocess.run([qmachinectl_binary(), "powerdown-all"], capture_output=True, text=True, env=env,
                           timeout=60)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", ""))


if __name__ == "__main__":
    qmtest.main()
