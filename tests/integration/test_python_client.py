#!/usr/bin/python3
"""The Python client library (python/qmachine) against the real daemon on a
private bus, with a real QEMU: every wrapper of the Manager and Machine
interfaces, the error mapping, fd passing, the events() stream, the
console socket and the docstrings."""

import os
import pydoc
import socket
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import GLib, none_args, source_root  # noqa: E402

sys.path.insert(0, os.path.join(source_root(), "python"))
import qmachine  # noqa: E402
from qmachine import errors  # noqa: E402


class ClientTestCase(qmtest.QMTestCase):
    """A QMTestCase with a qmachine Manager on the test's private bus."""

    def setUp(self):
        super().setUp()
        self.mgr = qmachine.connect(address=self.env.address)
        self.addCleanup(self.mgr.close)

    def none_machine(self, name, **config):
        """A `-machine none` QEMU (the cheapest), not launched."""
        config["args"] = none_args() + list(config.get("args", []))
        return self.mgr.create_machine(name, config)

    def running_machine(self, name, **config):
        m = self.none_machine(name, **config)
        m.launch()
        self.addCleanup(self.stop_quietly, m)
        return m

    @staticmethod
    def stop_quietly(m):
        try:
            m.shutdown(hard=True)
        except qmachine.QMachineError:
            pass


class ManagerTest(ClientTestCase):

    def test_manager_properties(self):
        self.assertEqual(self.mgr.version, self.manager_prop("Version"))
        self.assertEqual(self.mgr.default_binary, self.manager_prop("DefaultBinary"))
        self.assertEqual(self.mgr.image_directory, self.manager_prop("ImageDirectory"))
        self.assertEqual(self.mgr.machine_count, 0)
        self.none_machine("a")
        self.assertEqual(self.mgr.machine_count, 1)

    def test_create_get_list_remove(self):
        m = self.none_machine("vm-1", description="first", qmp_timeout=10, nics=2)
        self.assertIsInstance(m, qmachine.Machine)
        self.assertEqual(m.name, "vm-1")
        self.assertEqual(m.path, "/org/qmachine/QMachine1/machine/vm_2d1")
        self.assertEqual(m.state, "defined")
        # the config came through with the API's types
        cfg = m.config
        self.assertEqual(cfg["description"], "first")
        self.assertEqual(cfg["qmp-timeout"], 10.0)
        self.assertEqual(cfg["nics"], 2)
        self.assertEqual(len(m.mac_addresses), 2)

        self.assertEqual(self.mgr.get_machine("vm-1"), m)
        infos = self.mgr.list_machines()
        self.assertEqual(infos, [qmachine.MachineInfo("vm-1", "defined", 0, m.path)])
        self.assertEqual([x.name for x in self.mgr.machines()], ["vm-1"])

        self.mgr.remove_machine("vm-1")
        self.assertEqual(self.mgr.list_machines(), [])
        with self.assertRaises(qmachine.NoSuchMachine) as cm:
            self.mgr.get_machine("vm-1")
        self.assertEqual(cm.exception.name, "org.qmachine.QMachine1.Error.NoSuchMachine")
        self.assertIn("vm-1", cm.exception.message)
        with self.assertRaises(qmachine.UnknownObject):
            m.state

    def test_generated_name(self):
        m = self.none_machine("")
        self.assertRegex(m.name, r"^vm-\d{8}-\d{6}-")

    def test_create_errors(self):
        self.none_machine("dup")
        with self.assertRaises(qmachine.MachineExists):
            self.none_machine("dup")
        with self.assertRaises(qmachine.InvalidArgs) as cm:
            self.mgr.create_machine("bad", {"no-such-key": "x"})
        self.assertIn("no-such-key", cm.exception.message)
        # a GLib.Variant passes through untouched: a wrong type on purpose
        with self.assertRaises(qmachine.InvalidArgs) as cm:
            self.mgr.create_machine("bad", {"nics": GLib.Variant("s", "2")})
        self.assertIn("nics", cm.exception.message)
        with self.assertRaises(qmachine.InvalidArgs):
            self.mgr.create_machine("bad name!", {})
        self.assertIsInstance(cm.exception, qmachine.QMachineError)

    def test_clone(self):
        a = self.none_machine("a", nics=1)
        b = self.mgr.clone_machine("a", "b", {"description": "clone"})
        self.assertEqual(b.name, "b")
        self.assertEqual(b.config["description"], "clone")
        self.assertNotEqual(a.uuid, b.uuid)
        self.assertNotEqual(a.mac_addresses, b.mac_addresses)

    def test_get_machine_by_pid(self):
        m = self.running_machine("bypid")
        found = self.mgr.get_machine_by_pid(m.pid)
        self.assertEqual(found, m)
        self.assertEqual(found.name, "bypid")
        with self.assertRaises(qmachine.NoSuchMachine):
            self.mgr.get_machine_by_pid(1)

    def test_remove_running_is_busy(self):
        self.running_machine("busy")
        with self.assertRaises(qmachine.Busy):
            self.mgr.remove_machine("busy")

    def test_images(self):
        path = self.mgr.create_image("disk.qcow2", "qcow2", 1 << 20,
                                     {"cluster_size": 65536})
        self.assertEqual(os.path.basename(path), "disk.qcow2")
        self.assertEqual(self.mgr.list_images(),
                         [qmachine.ImageInfo("disk.qcow2", "qcow2", 1 << 20)])
        verdict, report = self.mgr.check_image("disk.qcow2")
        self.assertEqual(verdict, "ok")
        self.assertIsInstance(report, str)
        with self.assertRaises(qmachine.ImageExists):
            self.mgr.create_image("disk.qcow2", "qcow2", 1 << 20)
        self.mgr.remove_image("disk.qcow2")
        self.assertEqual(self.mgr.list_images(), [])
        with self.assertRaises(qmachine.NoSuchImage):
            self.mgr.remove_image("disk.qcow2")
        with self.assertRaises(qmachine.InvalidArgs):
            self.mgr.create_image("../x", "qcow2", 1 << 20)

    def test_machine_changes(self):
        with self.mgr.machine_changes(timeout=10) as changes:
            m = self.none_machine("watched")
            self.assertEqual(next(changes), ("new", "watched", m.path))
            self.mgr.remove_machine("watched")
            self.assertEqual(next(changes), ("removed", "watched", m.path))
        with self.mgr.machine_changes(timeout=0.2) as changes:
            self.assertEqual(list(changes), [])

    def test_connect_arguments(self):
        with self.assertRaises(NotImplementedError):
            qmachine.connect(address=self.env.address, host="elsewhere")
        with self.assertRaises(ValueError):
            qmachine.connect(address=self.env.address, session=True)
        # DBUS_SYSTEM_BUS_ADDRESS is honoured (the harness sets it)
        with qmachine.connect() as mgr:
            self.assertEqual(mgr.version, self.mgr.version)
        with self.assertRaises(qmachine.DBusError):
            qmachine.connect(address="unix:path=/nonexistent/bus")


class MachineTest(ClientTestCase):

    def test_lifecycle(self):
        m = self.none_machine("life")
        self.assertFalse(m.is_running())
        self.assertEqual(m.pid, 0)
        self.assertEqual(m.launch_timestamp, 0)
        m.launch()
        self.assertEqual(m.state, "running")
        self.assertTrue(m.is_running())
        self.assertGreater(m.pid, 0)
        self.assertTrue(qmtest.is_qemu_process(m.pid))
        self.assertGreater(m.launch_timestamp, 0)
        self.assertRegex(m.qemu_version, r"^\d+\.\d+")
        self.assertIn("-machine", m.command_line)
        self.assertEqual(m.owner, os.getuid())
        self.assertFalse(m.persistent)
        self.assertEqual(m.kernel_crash, "")
        self.assertTrue(os.path.isdir(m.runtime_directory))
        self.assertIsInstance(m.log_directory, str)
        self.assertIn("State", m.get_properties())
        with self.assertRaises(qmachine.AlreadyRunning):
            m.launch()
        m.verify_alive()
        m.pause()
        self.assertEqual(m.command("query-status")["status"], "paused")
        m.resume()
        self.assertEqual(m.command("query-status")["status"], "running")
        m.reset()
        m.shutdown()
        self.assertEqual(m.state, "stopped")
        self.assertEqual(m.exit_code, 0)
        self.assertEqual(m.pid, 0)
        with self.assertRaises(qmachine.NotRunning):
            m.command("query-status")
        with self.assertRaises(qmachine.Dead):
            m.verify_alive()
        self.assertIsInstance(m.get_log(), str)

    def test_kill_and_wait(self):
        m = self.running_machine("k")
        pid = m.pid
        m.kill()
        self.assertEqual(m.state, "failed")
        self.assertEqual(m.exit_code, -9)
        self.assertFalse(qmtest.pid_alive(pid))
        m.wait()  # not running: returns at once

        m.launch()
        with self.assertRaises(qmachine.AbnormalShutdown):
            m.wait(timeout=0.5)
        self.assertEqual(m.state, "failed")

        m.launch()
        m.qmp("quit")
        m.wait(timeout=None)
        self.assertEqual(m.state, "stopped")

    def test_machine_context_manager_shuts_down(self):
        with self.running_machine("ctx") as m:
            pid = m.pid
            self.assertTrue(qmtest.pid_alive(pid))
        self.assertEqual(m.state, "stopped")
        self.assertFalse(qmtest.pid_alive(pid))

    def test_qmp_and_command(self):
        m = self.running_machine("q")
        r = m.qmp("query-status")
        self.assertEqual(r["return"]["status"], "running")
        r = m.qmp("no-such-command")
        self.assertEqual(r["error"]["class"], "CommandNotFound")
        # arguments as a dict and as keywords
        r = m.command("qom-get", {"path": "/machine"}, property="type")
        self.assertIsInstance(r, str)
        self.assertEqual(m.command("qom-get", path="/machine", property="type"), r)
        with self.assertRaises(qmachine.QmpError) as cm:
            m.command("no-such-command")
        e = cm.exception
        self.assertEqual(e.qmp_class, "CommandNotFound")
        self.assertIn("no-such-command", e.desc)
        self.assertEqual(e.name, "org.qmachine.QMachine1.Error.QmpError")
        with self.assertRaises(qmachine.InvalidArgs):
            m.qmp("qmp_capabilities")

    def test_launch_failed(self):
        m = self.none_machine("lf", args=["-no-such-option"])
        with self.assertRaises(qmachine.LaunchFailed) as cm:
            m.launch()
        e = cm.exception
        self.assertIsInstance(e.exitcode, int)
        self.assertNotEqual(e.exitcode, 0)
        self.assertIn("-no-such-option", e.command)
        self.assertIn("no-such-option", e.output)
        self.assertEqual(m.state, "failed")

    def test_no_monitor(self):
        m = self.none_machine("nomon", qmp=False)
        m.launch()
        self.addCleanup(self.stop_quietly, m)
        with self.assertRaises(qmachine.NoMonitor):
            m.command("query-status")
        m.kill()

    def test_wait_event_and_get_events(self):
        m = self.running_machine("ev")
        m.pause()
        seq, ev = m.wait_event([("STOP", None)], timeout=10)
        self.assertGreater(seq, 0)
        self.assertEqual(ev["event"], "STOP")
        self.assertEqual(m.event_sequence, seq)
        self.assertEqual(m.wait_event(["RESUME"], after=seq, timeout=0), (0, None))
        with self.assertRaises(qmachine.Timeout):
            m.wait_event([("RESUME", "")], after=seq, timeout=0.3)
        m.resume()
        seq2, ev2 = m.wait_event([("RESUME", {"event": "RESUME"})], after=seq)
        self.assertGreater(seq2, seq)
        evs = m.get_events()
        self.assertEqual([(s, e["event"]) for s, e in evs][-2:],
                         [(seq, "STOP"), (seq2, "RESUME")])
        self.assertEqual(m.get_events(after=seq2), [])

    def test_events_stream(self):
        m = self.running_machine("stream")
        with m.events(timeout=10) as stream:
            m.pause()
            m.resume()
            got = [next(stream), next(stream)]
        self.assertEqual([e.name for e in got], ["STOP", "RESUME"])
        self.assertIsInstance(got[0], qmachine.Event)
        self.assertEqual(got[1].seq, got[0].seq + 1)
        self.assertEqual(got[0].data, {})
        self.assertGreater(got[0].timestamp, 0)
        # after=N replays the retained events first, then continues
        with m.events(after=0, timeout=10) as stream:
            replay = [next(stream), next(stream)]
            self.assertEqual(replay, got)
            m.pause()
            self.assertEqual(next(stream).name, "STOP")
        # a timeout ends the iteration; a closed stream yields nothing
        with m.events(timeout=0.3) as stream:
            self.assertEqual(list(stream), [])
        stream = m.events()
        stream.close()
        self.assertEqual(list(stream), [])
        # the SHUTDOWN of quit, with its data
        with m.events(timeout=10) as stream:
            m.shutdown()
            names = [e for e in stream if e.name == "SHUTDOWN"]
            self.assertEqual(names[0].data.get("guest"), False)

    def test_console(self):
        m = self.running_machine("con", console=True)
        sock = m.open_console()
        self.addCleanup(sock.close)
        self.assertIsInstance(sock, socket.socket)
        self.assertEqual(sock.family, socket.AF_UNIX)
        self.assertIsInstance(m.get_console_output(), bytes)
        plain = self.running_machine("plain")
        with self.assertRaises(qmachine.NoConsole):
            plain.open_console()

    def test_console_output_bytes(self):
        """-machine none has no serial output of its own: an isa-less
        console still answers with bytes, empty at start."""
        m = self.running_machine("conout", console=True)
        self.assertEqual(m.get_console_output(), b"")

    def test_add_fd(self):
        m = self.none_machine("fd")
        with tempfile.TemporaryFile(dir=self.env.path()) as f:
            m.add_fd(f.fileno(), 3, "mydisk")
            m.add_fd(f, 4)  # anything with fileno()
        m.launch()
        self.addCleanup(self.stop_quietly, m)
        fdsets = {s["fdset-id"]: s["fds"] for s in m.command("query-fdsets")}
        self.assertEqual(sorted(fdsets), [3, 4])
        self.assertEqual(fdsets[3][0].get("opaque"), "mydisk")
        with self.assertRaises(qmachine.AlreadyRunning):
            m.add_fd(0, 5)

    def test_send_fd(self):
        m = self.running_machine("sendfd")
        r, w = os.pipe()
        try:
            m.send_fd("mypipe", w)
        finally:
            os.close(r)
            os.close(w)
        # the fd is known to QEMU under that name: closefd works once
        m.command("closefd", fdname="mypipe")
        with self.assertRaises(qmachine.QmpError):
            m.command("closefd", fdname="mypipe")

    def test_send_key_and_migrate_errors(self):
        m = self.running_machine("keys")
        with self.assertRaises(qmachine.InvalidArgs):
            m.send_key("no-such-key")
        with self.assertRaises(qmachine.InvalidArgs):
            m.migrate("unix:/nonexistent/x", no_such_option=True)

    def test_powerdown_without_acpi_is_abnormal(self):
        m = self.running_machine("pd")
        with self.assertRaises(qmachine.QMachineError):
            m.powerdown(timeout=0.5)
        self.assertFalse(m.is_running())


class DocsTest(unittest.TestCase):

    def test_every_public_name_has_a_docstring(self):
        missing = []
        for name in qmachine.__all__:
            obj = getattr(qmachine, name)
            if isinstance(obj, (str, int, float)):
                continue
            if not (obj.__doc__ or "").strip():
                missing.append(name)
            if isinstance(obj, type):
                for attr, value in vars(obj).items():
                    if attr.startswith("_"):
                        continue
                    if callable(value) or isinstance(value, property):
                        if not (value.__doc__ or "").strip():
                            missing.append("%s.%s" % (name, attr))
        self.assertEqual(missing, [])

    def test_pydoc_renders(self):
        text = pydoc.render_doc(qmachine, renderer=pydoc.plaintext)
        for word in ("connect", "Manager", "create_machine", "wait_event",
                     "NoSuchMachine", "events"):
            self.assertIn(word, text)

    def test_error_mapping(self):
        cls = errors.error_class
        self.assertIs(cls("org.qmachine.QMachine1.Error.Timeout"), qmachine.Timeout)
        self.assertIs(cls("org.qmachine.QMachine1.Error.Unheard"), qmachine.QMachineError)
        self.assertIs(cls("org.freedesktop.DBus.Error.AccessDenied"), qmachine.AccessDenied)
        self.assertIs(cls("org.freedesktop.DBus.Error.NoReply"), qmachine.DBusError)
        e = errors.from_dbus("org.qmachine.QMachine1.Error.QmpError",
                             "GenericError: it broke: badly")
        self.assertEqual((e.qmp_class, e.desc), ("GenericError", "it broke: badly"))
        self.assertTrue(issubclass(qmachine.DBusError, qmachine.QMachineError))


if __name__ == "__main__":
    qmtest.main()
