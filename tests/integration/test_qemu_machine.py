#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""qmachine.QEMUMachine, the drop-in for QEMU 7.2's qemu.machine.QEMUMachine.

Every behaviour test runs twice: against qmachine.QEMUMachine through the
real daemon on a private bus (QEMUMachineThroughDaemon), and against QEMU's
original class (OriginalQEMUMachine) from Debian's source package of the
installed QEMU, which tools/iotests fetches into
${QMACHINED_IOTESTS_CACHE:-$HOME/.cache/qmachined-iotests}/qemu-<version>/
(QMACHINED_QEMU_PYTHON may name its python/ directory instead).  Both must
behave the same.  The original half is skipped, saying why, when that
source is not there.  The compat path (an unchanged script doing
`from qemu.machine import QEMUMachine`) has its own test.
"""

import asyncio
import glob
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import MANAGER_IFACE, none_args, qemu_binary, source_root  # noqa: E402

PYTHON_DIR = os.path.join(source_root(), "python")
COMPAT_DIR = os.path.join(PYTHON_DIR, "compat")
sys.path.insert(0, PYTHON_DIR)
from qmachine import qemu_machine  # noqa: E402
from qmachine import qtest as qmachine_qtest  # noqa: E402


def iotests_cache():
    return os.environ.get("QMACHINED_IOTESTS_CACHE") or os.path.expanduser("~/.cache/qmachined-iotests")


def qemu_python_dir():
    """python/ of QEMU's source (holding qemu/machine, qemu/qmp), or None."""
    given = os.environ.get("QMACHINED_QEMU_PYTHON")
    if given:
        return given if os.path.isdir(os.path.join(given, "qemu", "machine")) else None
    found = sorted(glob.glob(os.path.join(iotests_cache(), "qemu-*", "python", "qemu", "machine", "machine.py")))
    return os.path.dirname(os.path.dirname(os.path.dirname(found[-1]))) if found else None


QEMU_PYTHON = qemu_python_dir()
if QEMU_PYTHON:
    # after ours: `qemu` is then QEMU's own package (the compat path is not
    # on sys.path here), and qemu.qmp exists for both halves
    sys.path.append(QEMU_PYTHON)
    from qemu.machine import machine as original_machine  # noqa: E402
    from qemu.qmp import ExecuteError  # noqa: E402
else:
    original_machine = None
    from qmachine._qmp_errors import ExecuteError  # noqa: E402

NO_SOURCE = ("QEMU's python/qemu source is not in the iotests cache (run tools/iotests once, "
             "or set QMACHINED_QEMU_PYTHON to its python/ directory)")

NO_QTEST = ("this QEMU has no qtest accelerator (Debian deletes the module): set "
            "QMACHINED_QTEST_QEMU to a QEMU that has it (tools/iotests builds one)")


def qtest_binary():
    """A QEMU with `-accel qtest`, or None."""
    given = os.environ.get("QMACHINED_QTEST_QEMU")
    if given:
        return given
    # the wrapper tools/iotests leaves in its cache
    found = sorted(glob.glob(os.path.join(iotests_cache(), "qemu-*-qemu-system-x86_64")))
    if found and os.access(found[-1], os.X_OK):
        return found[-1]
    out = subprocess.run([qemu_binary(), "-accel", "help"], capture_output=True, text=True)
    return qemu_binary() if "qtest" in out.stdout.split() else None


# A 64 KiB BIOS for `-machine pc`: from the reset vector it writes
# "hello console\n" to the first serial port, then halts.
HELLO = b"hello console\n"
BIOS_CODE = (bytes([0xBA, 0xF8, 0x03,    # mov dx, 0x3f8
                    0xBE, 0x12, 0x00,    # mov si, message
                    0x2E, 0xAC,          # lodsb (from cs)
                    0x84, 0xC0,          # test al, al
                    0x74, 0x03,          # jz halt
                    0xEE,                # out dx, al
                    0xEB, 0xF7,          # jmp lodsb
                    0xF4,                # halt: hlt
                    0xEB, 0xFD])         # jmp halt
             + HELLO + b"\0")


def write_bios(path):
    image = bytearray(65536)
    image[:len(BIOS_CODE)] = BIOS_CODE
    image[0xFFF0:0xFFF5] = bytes([0xEA, 0x00, 0x00, 0x00, 0xF0])  # jmp f000:0000
    with open(path, "wb") as f:
        f.write(image)


class Behaviour:
    """The tests both halves run. A half defines make(binary, args, **kw),
    returning a not yet launched machine that is shut down at cleanup, and
    self.tmp, a directory of the test."""

    machine_module = None

    def vm(self, args=None, binary=None, **kw):
        vm = self.make(binary or qemu_binary(), none_args() if args is None else args,
                       base_temp_dir=self.tmp, **kw)
        self.track(vm)
        return vm

    def wait_until(self, pred, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not pred():
            self.assertLess(time.monotonic(), deadline, "timed out")
            time.sleep(0.02)

    # -- launch

    def test_launch_failure_report(self):
        log_dir = os.path.join(self.tmp, "logs")
        os.mkdir(log_dir)
        vm = self.vm(log_dir=log_dir, name="failing")
        vm.add_args("-no-such-option")
        with self.assertRaises(self.machine_module.VMLaunchFailure) as cm:
            vm.launch()
        exc = cm.exception
        self.assertEqual(exc.exitcode, 1)
        self.assertIn("-no-such-option: invalid option", exc.output)
        self.assertTrue(exc.command.startswith(qemu_binary() + " "), exc.command)
        self.assertIn(" -no-such-option", exc.command)
        self.assertIsNotNone(exc.__cause__)
        self.assertIn("\tExit code: 1\n", str(exc))
        self.assertIn("\tOutput: ", str(exc))
        self.assertEqual(vm.get_log(), exc.output)
        self.assertEqual(vm.exitcode(), 1)
        self.assertFalse(vm.is_running())
        self.assertIsNone(vm.get_pid())
        with open(os.path.join(log_dir, "failing.log"), encoding="utf-8") as f:
            self.assertIn("invalid option", f.read())

    def test_launch_failure_without_binary(self):
        vm = self.vm(binary=os.path.join(self.tmp, "no-such-qemu"))
        with self.assertRaises(self.machine_module.VMLaunchFailure) as cm:
            vm.launch()
        self.assertIsNone(cm.exception.exitcode)
        self.assertIsNone(vm.exitcode())

    def test_launch_twice(self):
        vm = self.vm()
        vm.launch()
        with self.assertRaises(self.machine_module.QEMUMachineError):
            vm.launch()

    def test_relaunch_keeps_arguments(self):
        vm = self.vm()
        vm.add_args("-name", "relaunched")
        with vm:
            vm.launch()
            self.assertTrue(vm.is_running())
            self.assertIsInstance(vm.get_pid(), int)
            self.assertEqual(vm.command("query-name"), {"name": "relaunched"})
        self.assertFalse(vm.is_running())
        self.assertEqual(vm.exitcode(), 0)
        vm.launch()
        self.assertEqual(vm.command("query-name"), {"name": "relaunched"})
        self.assertEqual(vm.args, none_args() + ["-name", "relaunched"])
        vm.shutdown()
        self.assertEqual(vm.exitcode(), 0)
        vm.shutdown()  # not launched: nothing happens

    def test_subclass_hooks_and_base_args(self):
        calls = []

        class Sub(self.machine_class):
            @property
            def _base_args(self):
                return ["-name", "from-subclass"] + super()._base_args

            def _pre_launch(self):
                calls.append("pre")
                self._args.append("-S")
                super()._pre_launch()

            def _post_launch(self):
                super()._post_launch()
                calls.append("post")

            def _post_shutdown(self):
                super()._post_shutdown()
                calls.append(("post_shutdown", self.exitcode()))

        vm = self.track(Sub(qemu_binary(), none_args(), base_temp_dir=self.tmp, **self.extra_kw))
        vm.launch()
        self.assertEqual(vm.command("query-name"), {"name": "from-subclass"})
        self.assertEqual(vm.command("query-status")["status"], "prelaunch")
        vm.shutdown()
        self.assertEqual(calls, ["pre", "post", ("post_shutdown", 0)])

    # -- shutdown

    def test_abnormal_shutdown_after_timeout(self):
        # the wrapper outlives QEMU's quit, so the soft shutdown times out
        vm = self.vm(wrapper=["/bin/sh", "-c", '"$@"; sleep 20', "sh"])
        vm.launch()
        start = time.monotonic()
        with self.assertRaises(self.machine_module.AbnormalShutdown) as cm:
            vm.shutdown(timeout=1)
        self.assertLess(time.monotonic() - start, 10)
        self.assertIsNotNone(cm.exception.__cause__)
        self.assertEqual(vm.exitcode(), -signal.SIGKILL)
        self.assertFalse(vm.is_running())

    def test_exitcode_after_a_signal(self):
        vm = self.vm()
        vm.launch()
        os.kill(vm.get_pid(), signal.SIGKILL)
        self.wait_until(lambda: not vm.is_running())
        self.assertEqual(vm.exitcode(), -signal.SIGKILL)
        with self.assertLogs(self.machine_module.LOG, "WARNING"):
            vm.wait()
        self.assertEqual(vm.exitcode(), -signal.SIGKILL)

    def test_kill(self):
        vm = self.vm()
        vm.launch()
        vm.kill()
        self.assertEqual(vm.exitcode(), -signal.SIGKILL)

    def test_quit_then_wait(self):
        vm = self.vm()
        vm.launch()
        self.assertEqual(vm.qmp("quit"), {"return": {}})
        vm.wait()
        self.assertEqual(vm.exitcode(), 0)
        self.assertIsNone(vm.get_pid())

    def test_exit_without_quit_is_abnormal(self):
        vm = self.vm()
        vm.launch()
        os.kill(vm.get_pid(), signal.SIGTERM)  # QEMU exits 0 by itself
        self.wait_until(lambda: not vm.is_running())
        with self.assertRaises(self.machine_module.AbnormalShutdown):
            vm.shutdown()
        self.assertEqual(vm.exitcode(), 0)

    # -- QMP

    def test_qmp_and_command(self):
        vm = self.vm()
        vm.launch()
        # keyword names: "_" becomes "-"; args_dict goes as it is
        self.assertEqual(vm.qmp("object-add", qom_type="secret", id="s0", data="x"), {"return": {}})
        self.assertEqual(vm.qmp("object-add", {"qom-type": "secret", "id": "s1", "data": "y"}),
                         {"return": {}})
        r = vm.qmp("object-add", conv_keys=False, qom_type="secret", id="s2", data="z")
        self.assertEqual(r["error"]["class"], "GenericError")
        self.assertEqual(vm.qmp("no-such-command")["error"]["class"], "CommandNotFound")
        self.assertEqual(vm.command("query-status")["status"], "running")
        self.assertEqual(vm.command("query-name"), {})
        with self.assertRaises(ExecuteError) as cm:
            vm.command("no-such-command")
        self.assertEqual(cm.exception.error_class, "CommandNotFound")
        self.assertEqual(str(cm.exception), "The command no-such-command has not been found")

    # -- events

    def test_event_match(self):
        match = self.machine_class.event_match
        self.assertTrue(match({"foo": 1}, None))
        self.assertTrue(match({"foo": {"bar": 1}}, {"foo": None}))
        self.assertTrue(match({"foo": 5}, {"foo": None}))
        self.assertFalse(match({"foo": {"bar": 1}}, {"foo": {"abc": None}}))
        self.assertTrue(match({"foo": {"bar": 1, "rab": 2}}, {"foo": {"rab": 2}}))
        self.assertFalse(match({"foo": {"rab": 3}}, {"foo": {"rab": 2}}))
        self.assertTrue(match(5, 5))
        self.assertFalse(match(5, {"a": 1}))

    def test_event_wait_consumes_once(self):
        vm = self.vm()
        vm.launch()
        vm.qmp("stop")
        vm.qmp("system_reset")
        vm.qmp("cont")
        ev = vm.event_wait("RESET", timeout=10.0,
                           match={"data": {"guest": False, "reason": None}})
        self.assertEqual(ev["data"], {"guest": False, "reason": "host-qmp-system-reset"})
        self.assertIn("seconds", ev["timestamp"])
        # no STOP with guest data: times out; RESUME is kept on the way
        with self.assertRaises(asyncio.TimeoutError):
            vm.event_wait("STOP", timeout=1.0, match={"data": {"guest": True}})
        self.assertEqual(vm.event_wait("STOP", timeout=1.0)["event"], "STOP")
        self.assertIsNone(vm.event_wait("RESET", timeout=0.0))
        self.assertEqual([e["event"] for e in vm.get_qmp_events()], ["RESUME"])
        self.assertEqual(vm.get_qmp_events(), [])
        self.assertIsNone(vm.get_qmp_event())

    def test_events_wait_and_get_qmp_event(self):
        vm = self.vm()
        vm.launch()
        self.assertIsNone(vm.get_qmp_event(wait=False))
        vm.qmp("stop")
        self.assertEqual(vm.get_qmp_event(wait=10.0)["event"], "STOP")
        vm.qmp("cont")
        vm.qmp("stop")
        ev = vm.events_wait([("RESET", None), ("STOP", None)], timeout=10.0)
        self.assertEqual(ev["event"], "STOP")
        self.assertEqual(vm.get_qmp_event()["event"], "RESUME")  # passed over, kept
        self.assertIsNone(vm.get_qmp_event())
        with self.assertRaises(asyncio.TimeoutError):
            vm.get_qmp_event(wait=0.5)

    # -- console

    def test_console_socket(self):
        bios = os.path.join(self.tmp, "hello.bin")
        write_bios(bios)
        vm = self.vm(args=["-machine", "pc", "-nodefaults", "-S", "-m", "16", "-accel", "tcg",
                           "-bios", bios])
        vm.set_console()
        vm.launch()
        sock = vm.console_socket
        sock.settimeout(20)
        vm.qmp("cont")
        data = b""
        while HELLO not in data:
            chunk = sock.recv(4096)
            self.assertTrue(chunk, "console closed; got %r" % data)
            data += chunk
        vm.shutdown()

    # -- file descriptors

    def test_add_fd_in_query_fdsets(self):
        with open(os.path.join(self.tmp, "image"), "wb") as f:
            vm = self.vm()
            vm.add_fd(f.fileno(), 1, "image0:r")
            vm.launch()
            fdsets = vm.command("query-fdsets")
        self.assertEqual(len(fdsets), 1)
        self.assertEqual(fdsets[0]["fdset-id"], 1)
        self.assertEqual([fd["opaque"] for fd in fdsets[0]["fds"]], ["image0:r"])

    def test_send_fd_scm_then_getfd(self):
        path = os.path.join(self.tmp, "image")
        open(path, "wb").close()
        vm = self.vm()
        vm.launch()
        self.assertEqual(vm.send_fd_scm(file_path=path), 0)
        self.assertEqual(vm.qmp("getfd", fdname="image0:r"), {"return": {}})
        self.assertEqual(vm.qmp("closefd", fdname="image0:r"), {"return": {}})
        with open(path, "rb") as f:
            self.assertEqual(vm.send_fd_scm(fd=f.fileno()), 0)
        r = vm.qmp("getfd", fdname="0image0:r")
        self.assertEqual(r["error"], {"class": "GenericError",
                                      "desc": "Parameter 'fdname' expects a name not starting with a digit"})

    def test_send_fd_scm_then_add_fd(self):
        # iotest 045's test_add_fd: the fd goes with the next command, add-fd.
        path = os.path.join(self.tmp, "image")
        open(path, "wb").close()
        vm = self.vm()
        vm.launch()
        self.assertEqual(vm.send_fd_scm(file_path=path), 0)
        r = vm.qmp("add-fd", fdset_id=2, opaque="image0:r")
        self.assertEqual(r["return"]["fdset-id"], 2)
        fdsets = vm.command("query-fdsets")
        self.assertEqual([(s["fdset-id"], [fd["opaque"] for fd in s["fds"]]) for s in fdsets],
                         [(2, ["image0:r"])])
        vm.shutdown()

    # -- qtest

    def test_qtest(self):
        binary = qtest_binary()
        if binary is None:
            self.skipTest(NO_QTEST)
        vm = self.qtest_class(binary, ["-machine", "pc", "-nodefaults", "-m", "16"],
                              base_temp_dir=self.tmp, **self.extra_kw)
        self.track(vm)
        vm.launch()
        self.assertEqual(vm.qtest("writeb 0x1000 0x5a"), "OK\n")
        self.assertEqual(vm.qtest("readb 0x1000"), "OK 0x000000000000005a\n")
        vm.shutdown()
        self.assertEqual(vm.exitcode(), 0)

    # -- directories

    def test_directories(self):
        vm = self.vm()
        temp = vm.temp_dir
        self.assertTrue(os.path.isdir(temp))
        self.assertEqual(os.path.dirname(temp), self.tmp)
        self.assertTrue(os.path.basename(temp).startswith("qemu-machine-"))
        self.assertEqual(os.stat(temp).st_uid, os.geteuid())
        self.assertEqual(vm.sock_dir, temp)
        self.assertEqual(vm.log_dir, temp)
        vm.launch()
        vm.shutdown()
        self.assertFalse(os.path.exists(temp))


class OriginalQEMUMachine(Behaviour, unittest.TestCase):
    """The tests against QEMU 7.2's own qemu.machine."""

    extra_kw = {}

    @classmethod
    def setUpClass(cls):
        if original_machine is None:
            raise unittest.SkipTest(NO_SOURCE)
        cls.machine_module = original_machine
        cls.machine_class = original_machine.QEMUMachine
        from qemu.machine import qtest  # noqa: E402
        cls.qtest_class = qtest.QEMUQtestMachine

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="qm-orig-")
        self.addCleanup(qmtest.shutil.rmtree, self.tmp, True)

    def make(self, binary, args, **kw):
        return self.machine_class(binary, args, **kw)

    def track(self, vm):
        self.addCleanup(vm.shutdown, hard=True)
        return vm


class QEMUMachineThroughDaemon(Behaviour, qmtest.QMTestCase):
    """The same tests against qmachine.QEMUMachine and the real daemon."""

    machine_module = qemu_machine
    machine_class = qemu_machine.QEMUMachine
    qtest_class = qmachine_qtest.QEMUQtestMachine

    def setUp(self):
        super().setUp()
        self.tmp = os.path.join(self.env.tmp, "vm")
        os.mkdir(self.tmp)
        self.extra_kw = {"qmachine_address": self.env.address}
        self.vms = []

    def tearDown(self):
        # before the daemon and the directories go
        for vm in self.vms:
            vm.shutdown(hard=True)
        super().tearDown()

    def track(self, vm):
        self.vms.append(vm)
        return vm

    def make(self, binary, args, **kw):
        return self.machine_class(binary, args, qmachine_address=self.env.address, **kw)

    def test_each_launch_is_a_daemon_machine_removed_at_shutdown(self):
        new = self.record(MANAGER_IFACE, "MachineNew")
        removed = self.record(MANAGER_IFACE, "MachineRemoved")
        vm = self.vm()
        for _ in range(2):
            vm.launch()
            self.assertEqual(self.manager_prop("MachineCount"), 1)
            vm.shutdown()
            self.assertEqual(self.manager_prop("MachineCount"), 0)
        new.wait(lambda s: len(s) == 2)
        removed.wait(lambda s: len(s) == 2)
        names = [a[0] for a in new.args("MachineNew")]
        self.assertEqual(len(set(names)), 2)
        for name in names:
            self.assertRegex(name, r"^py-%d-\d+$" % os.getpid())

    def test_environment_variable_names_the_bus(self):
        os.environ["QMACHINE_ADDRESS"] = self.env.address
        self.addCleanup(os.environ.pop, "QMACHINE_ADDRESS")
        vm = self.track(self.machine_class(qemu_binary(), none_args(), base_temp_dir=self.tmp))
        vm.launch()
        self.assertEqual(self.manager_prop("MachineCount"), 1)

    def test_compat_path_runs_an_unchanged_script(self):
        new = self.record(MANAGER_IFACE, "MachineNew")
        script = textwrap.dedent("""\
            import sys
            from qemu.machine import QEMUMachine
            from qemu.machine import machine, qtest
            vm = QEMUMachine(sys.argv[1], sys.argv[3:], base_temp_dir=sys.argv[2])
            vm.launch()
            print(vm.command("query-status")["status"])
            vm.shutdown()
            print(type(vm).__module__, machine.VMLaunchFailure.__module__,
                  qtest.QEMUQtestMachine.__module__, vm.exitcode())
            try:
                import qemu.qmp
                print(qemu.qmp.__file__)
            except ImportError:
                print("no qemu.qmp")
            """)
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.env.address)
        env.pop("QMACHINE_ADDRESS", None)
        path = [COMPAT_DIR, PYTHON_DIR] + ([QEMU_PYTHON] if QEMU_PYTHON else [])
        env["PYTHONPATH"] = os.pathsep.join(path)
        out = subprocess.run([sys.executable, "-c", script, qemu_binary(), self.tmp] + none_args(),
                             env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.splitlines()
        self.assertEqual(lines[0], "running")
        self.assertEqual(lines[1], "qmachine.qemu_machine qmachine.qemu_machine qmachine.qtest 0")
        if QEMU_PYTHON:
            self.assertTrue(lines[2].startswith(QEMU_PYTHON + os.sep), lines[2])
        new.wait(lambda s: len(s) == 1)


if __name__ == "__main__":
    qmtest.main()
