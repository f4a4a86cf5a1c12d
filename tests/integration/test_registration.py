#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Each VM in its own systemd scope, registered with systemd-machined.

python-dbusmock stands in for systemd (its systemd template has
StartTransientUnit) and for machined (RegisterMachine and
UnregisterMachine added here) on the test's system bus; their call logs
show what the daemon asked: a transient scope qmachine-<name>.scope under
machine.slice holding QEMU's pid, then a registration with the machine's
name, UUID, class vm and QEMU as leader; an unregistration when QEMU has
exited. A daemon restart that takes a running VM back registers nothing
again and unregisters nothing. Without systemd on the bus (our CI) VMs
launch as ever and one log line says why nothing is registered.
"""

import os
import signal
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import iterate_for  # noqa: E402

SYSTEMD = "org.freedesktop.systemd1"
MACHINED = "org.freedesktop.machine1"
SKIP_LINE = "VMs are not put in systemd scopes nor registered with systemd-machined"

# machined's answers: a path for a registration, NoSuchMachine for an
# unregistration of a name it does not know (as the real one).
REGISTER_CODE = """
if not hasattr(self, 'machines'):
    self.machines = set()
if args[0] in self.machines:
    raise dbus.exceptions.DBusException('exists', name='org.freedesktop.machine1.MachineExists')
self.machines.add(args[0])
ret = dbus.ObjectPath('/org/freedesktop/machine1/machine/m%d' % len(self.machines))
"""
UNREGISTER_CODE = """
if args[0] not in getattr(self, 'machines', set()):
    raise dbus.exceptions.DBusException('no such machine', name='org.freedesktop.machine1.NoSuchMachine')
self.machines.discard(args[0])
"""


class SystemdEnvironment(qmtest.Environment):
    """The test bus with systemd's and machined's mocks."""

    service_mocks = (
        (SYSTEMD, "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager", "systemd"),
        (MACHINED, "/org/freedesktop/machine1", "org.freedesktop.machine1.Manager", None),
    )

    def prepare_service_mocks(self):
        machined = self.mocks[MACHINED]
        machined.add_method("RegisterMachine", "sayssus", "o", REGISTER_CODE)
        machined.add_method("UnregisterMachine", "s", "", UNREGISTER_CODE)


class SystemdOnlyEnvironment(qmtest.Environment):
    """systemd is there, machined does not answer."""

    service_mocks = SystemdEnvironment.service_mocks[:1]


class MockedTestCase(qmtest.QMTestCase):
    """Helpers of the tests with mocks."""

    environment_class = SystemdEnvironment

    def calls(self, service, method):
        return self.env.mocks[service].method_calls(method)

    def wait_calls(self, service, method, count, timeout=10.0):
        """The calls of method once there are at least count of them."""
        deadline = time.monotonic() + timeout
        while True:
            calls = self.calls(service, method)
            if len(calls) >= count:
                return calls
            if time.monotonic() > deadline:
                self.fail("%s.%s called %d times, expected %d" % (service, method, len(calls), count))
            iterate_for(0.02)

    def launch_vm(self, name):
        path = self.create_none_machine(name)
        self.launch(path)
        return path, self.mprop(path, "Pid")

    def assert_scope(self, call, unit, name, pid):
        unit_name, mode, properties, aux = call
        self.assertEqual(unit_name, unit)
        self.assertEqual(mode, "fail")
        self.assertEqual(dict(properties), {
            "PIDs": [pid],
            "Slice": "machine.slice",
            "Description": "QEMU virtual machine " + name,
            "CollectMode": "inactive-or-failed",
        })
        self.assertEqual(aux, [])

    def assert_registration(self, call, name, machine_uuid, pid):
        self.assertEqual(call, [name, list(uuid.UUID(machine_uuid).bytes), "qmachined", "vm", pid, ""])

    def assert_no_warnings(self):
        out = self.env.daemon_output()
        self.assertNotIn(SKIP_LINE, out)
        self.assertNotIn("WARNING", out)

    def wait_for_log(self, text, timeout=10.0):
        deadline = time.monotonic() + timeout
        while text not in self.env.daemon_output():
            if time.monotonic() > deadline:
                self.fail("the daemon did not log %r:\n%s" % (text, self.env.daemon_output()[-5000:]))
            iterate_for(0.02)


class RegistrationTest(MockedTestCase):

    def test_scope_registration_and_unregistration(self):
        path, pid = self.launch_vm("reg-vm.1")
        machine_uuid = self.mprop(path, "Config")["uuid"]
        registered = self.wait_calls(MACHINED, "RegisterMachine", 1)
        self.assert_registration(registered[0], "reg-vm.1", machine_uuid, pid)
        scopes = self.calls(SYSTEMD, "StartTransientUnit")
        self.assertEqual(len(scopes), 1)
        # systemd escapes '-' in unit names
        self.assert_scope(scopes[0], "qmachine-reg\\x2dvm.1.scope", "reg-vm.1", pid)
        self.assertEqual(self.calls(MACHINED, "UnregisterMachine"), [])

        self.shutdown(path, False, 10)
        self.assertEqual(self.wait_calls(MACHINED, "UnregisterMachine", 1), [["reg-vm.1"]])
        # A second run: a second scope and registration, for the new QEMU.
        self.launch(path)
        pid2 = self.mprop(path, "Pid")
        self.assertNotEqual(pid2, pid)
        registered = self.wait_calls(MACHINED, "RegisterMachine", 2)
        self.assert_registration(registered[1], "reg-vm.1", machine_uuid, pid2)
        self.assert_scope(self.calls(SYSTEMD, "StartTransientUnit")[1], "qmachine-reg\\x2dvm.1.scope",
                          "reg-vm.1", pid2)
        self.kill(path)
        self.assertEqual(self.wait_calls(MACHINED, "UnregisterMachine", 2)[1], ["reg-vm.1"])
        self.assert_no_warnings()

    def test_name_machined_refuses_gets_a_scope_only(self):
        """'_' is fine in our names and in unit names, not in machined's."""
        path, pid = self.launch_vm("under_score")
        scopes = self.wait_calls(SYSTEMD, "StartTransientUnit", 1)
        self.assert_scope(scopes[0], "qmachine-under_score.scope", "under_score", pid)
        self.wait_for_log("machine under_score: not registered with systemd-machined")
        self.shutdown(path, False, 10)
        self.assertEqual(self.mprop(path, "State"), "stopped")
        iterate_for(0.3)
        self.assertEqual(self.calls(MACHINED, "RegisterMachine"), [])
        self.assertEqual(self.calls(MACHINED, "UnregisterMachine"), [])

    def test_name_too_long_for_a_unit_launches_alone(self):
        """An escaped '-' takes 4 characters: with "qmachine-" and
        ".scope", 63 of them are over the 255 of a unit name, 59 and 4
        other characters make exactly 255."""
        fits, too_long = "a" + "-" * 59 + "bcd", "a" + "-" * 63
        path, _pid = self.launch_vm(too_long)
        self.wait_for_log("machine %s: no systemd scope nor machined registration" % too_long)
        path2, pid2 = self.launch_vm(fits)
        scopes = self.wait_calls(SYSTEMD, "StartTransientUnit", 1)
        unit = "qmachine-a" + "\\x2d" * 59 + "bcd.scope"
        self.assertEqual(len(unit), 255)
        self.assert_scope(scopes[0], unit, fits, pid2)
        self.wait_calls(MACHINED, "RegisterMachine", 1)
        self.assertEqual(self.mprop(path, "State"), "running")
        self.kill(path)
        self.kill(path2)
        self.assertEqual(self.wait_calls(MACHINED, "UnregisterMachine", 1), [[fits]])

    def test_restart_keeps_registration(self):
        path, pid = self.launch_vm("kept")
        self.wait_calls(MACHINED, "RegisterMachine", 1)
        self.assertEqual(self.restart_daemon(signal.SIGTERM), 0)
        self.wait_property(path, "State", "running")
        self.assertEqual(self.mprop(path, "Pid"), pid)
        self.wait_for_log("machine kept: took back QEMU")
        # Time for the new daemon to ask what it would: it asks nothing.
        iterate_for(0.5)
        self.assertEqual(len(self.calls(SYSTEMD, "StartTransientUnit")), 1)
        self.assertEqual(len(self.calls(MACHINED, "RegisterMachine")), 1)
        self.assertEqual(self.calls(MACHINED, "UnregisterMachine"), [])
        # The taken-back QEMU's exit unregisters it.
        self.shutdown(path, False, 10)
        self.assertEqual(self.wait_calls(MACHINED, "UnregisterMachine", 1), [["kept"]])
        self.assertEqual(len(self.calls(MACHINED, "RegisterMachine")), 1)
        self.assert_no_warnings()


class MachinedFailsTest(MockedTestCase):
    """A registration that fails is logged; the launch goes on."""

    environment_class = SystemdOnlyEnvironment

    def test_launch_goes_on(self):
        path, _pid = self.launch_vm("lonely")
        self.assertEqual(self.mprop(path, "State"), "running")
        self.wait_for_log("machine lonely: cannot register with systemd-machined")
        self.assertEqual(len(self.calls(SYSTEMD, "StartTransientUnit")), 1)
        self.shutdown(path, False, 10)
        self.wait_for_log("machine lonely: cannot unregister from systemd-machined")


class WithoutSystemdTest(qmtest.QMTestCase):
    """Our CI: no systemd on the bus."""

    def test_one_line_says_why_and_launches_work(self):
        paths = [self.create_none_machine("plain%d" % i) for i in range(3)]
        for path in paths:
            self.launch(path)
        self.shutdown(paths[0], False, 10)
        self.launch(paths[0])
        for path in paths:
            self.assertEqual(self.mprop(path, "State"), "running")
        lines = [line for line in self.env.daemon_output().splitlines() if SKIP_LINE in line]
        self.assertEqual(len(lines), 1, self.env.daemon_output())
        self.assertIn("org.freedesktop.systemd1 is not on the bus", lines[0])
        for path in paths:
            self.kill(path)


if __name__ == "__main__":
    qmtest.main()
