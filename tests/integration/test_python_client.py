#!/usr/bin/python3
"""The Python client library (python/qmachine) against the real daemon on a
private bus, with a real QEMU: every wrapper of the Manager and Machine
interfaces, the error mapping, fd passing, the events() stream, the
console socket and the docstrings."""

import json
import os
import pydoc
import re
import socket
import subprocess
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

    def test_update(self):
        a = self.none_machine("upd", nics=1, description="old")
        self.mgr.update_machine("upd", {"description": "new", "forward_ports": [22]})
        self.assertEqual(a.config["description"], "new")
        self.assertEqual(a.config["forward-ports"], [22])
        self.mgr.update_machine("upd", {"forward_ports": []})
        self.assertEqual(a.config["forward-ports"], [])
        with self.assertRaises(qmachine.InvalidArgs):
            self.mgr.update_machine("upd", {"nics": 1000})

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
        # a host has only its system bus, and is no ssh option
        with self.assertRaises(ValueError):
            qmachine.connect(address=self.env.address, host="elsewhere")
        for host in ("", "-oProxyCommand=true", "a b", "a\nb"):
            with self.assertRaises(ValueError):
                qmachine.connect(host=host)
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
            shutdown = next(e for e in stream if e.name == "SHUTDOWN")
            self.assertEqual(shutdown.data.get("guest"), False)

    def console_machine(self, name):
        """A machine whose console is an HMP monitor (`-machine none` has no
        serial port), so the console talks back."""
        return self.running_machine(name, console=True,
                                    args=["-mon", "chardev=console,mode=readline"])

    def test_console(self):
        m = self.console_machine("con")
        sock = m.open_console()
        self.addCleanup(sock.close)
        self.assertIsInstance(sock, socket.socket)
        self.assertEqual(sock.family, socket.AF_UNIX)
        sock.settimeout(10)
        sock.sendall(b"info status\n")
        got = b""
        while b"VM status: running" not in got:
            data = sock.recv(4096)
            self.assertTrue(data, "console closed; got %r" % got)
            got += data
        out = m.get_console_output()
        self.assertIsInstance(out, bytes)
        self.assertIn(b"monitor - type 'help'", out)
        self.assertIn(b"VM status: running", out)

        plain = self.running_machine("plain")
        with self.assertRaises(qmachine.NoConsole):
            plain.open_console()
        m.shutdown()
        with self.assertRaises(qmachine.NotRunning):
            m.open_console()

    def test_kernel_crashes(self):
        """The HMP monitor on the console echoes what is typed: typing a
        kernel panic line puts it on the console, where the daemon finds
        it."""
        m = self.console_machine("crash")
        self.assertEqual(m.kernel_crash, "")
        sock = m.open_console()
        self.addCleanup(sock.close)
        with m.kernel_crashes(timeout=10) as crashes:
            sock.sendall(b"Kernel panic - not syncing: from the test\n")
            text = next(crashes)
        self.assertIn("Kernel panic - not syncing", text)
        self.assertEqual(m.kernel_crash, text)
        with m.kernel_crashes(timeout=0.2) as crashes:
            self.assertEqual(list(crashes), [])

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

    def test_send_key(self):
        m = self.running_machine("keys")
        m.send_key(["a", "shift-b"], hold_ms=10)
        m.send_key("ctrl-alt-delete")
        with self.assertRaises(qmachine.InvalidArgs):
            m.send_key("no-such-key")

    def test_migrate(self):
        with socket.socket() as s:  # a free port
            s.bind(("127.0.0.1", 0))
            uri = "tcp:127.0.0.1:%d" % s.getsockname()[1]
        dst = self.none_machine("dst", incoming=uri)
        dst.launch()
        self.addCleanup(self.stop_quietly, dst)
        src = self.running_machine("src")
        with self.assertRaises(qmachine.InvalidArgs):
            src.migrate(uri, no_such_option=True)
        src.migrate(uri, timeout=60, cancel_after=-1)
        # the guest runs at the destination only; the source is refused
        self.assertEqual(src.state, "migrated")
        with self.assertRaises(qmachine.Migrated):
            src.resume()
        seq, _ev = dst.wait_event([("RESUME", None)], timeout=30)
        self.assertGreater(seq, 0)
        self.assertEqual(dst.command("query-migrate")["status"], "completed")

    def test_powerdown_without_acpi_is_abnormal(self):
        m = self.running_machine("pd")
        # -machine none has no ACPI: the guest cannot power off by itself
        with self.assertRaises(qmachine.AbnormalShutdown):
            m.powerdown(timeout=0.5)
        self.assertFalse(m.is_running())


# Run as uid 65534: the daemon asks polkit (the mock) for a non-root caller.
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
NOBODY_SCRIPT = """
import json, sys
import qmachine
out = {}
with qmachine.connect(sys.argv[1], interactive=sys.argv[2] == "1") as mgr:
    m = mgr.get_machine("theirs")
    for what, fn in (("pause", m.pause),
                     ("create", lambda: mgr.create_machine("mine", {}))):
        try:
            fn()
            out[what] = "ok"
        except qmachine.QMachineError as e:
            out[what] = type(e).__name__
print(json.dumps(out))
"""


class AuthorizationTest(ClientTestCase):
    """polkit's answers reach a non-root client as the matching exceptions,
    and connect(interactive=True) lets polkit ask."""

    polkit_mock = True

    def as_nobody(self, interactive=False):
        env = dict(os.environ, PYTHONPATH=os.path.join(source_root(), "python"),
                   PYTHONDONTWRITEBYTECODE="1")
        r = subprocess.run(NOBODY + [sys.executable, "-c", NOBODY_SCRIPT, self.env.address,
                                     "1" if interactive else "0"],
                           cwd="/", env=env, text=True, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_denied_challenged_allowed(self):
        self.running_machine("theirs")
        self.assertEqual(self.as_nobody(), {"pause": "AccessDenied", "create": "AccessDenied"})
        # polkit answers is_challenge: it wants to ask the user
        self.env.polkit.call("AddMethod", GLib.Variant("(sssss)", (
            qmtest.POLKIT_IFACE, "CheckAuthorization", "(sa{sv})sa{ss}us", "(bba{ss})",
            "ret = (False, True, {})")))
        self.assertEqual(self.as_nobody(),
                         {"pause": "InteractiveAuthorizationRequired",
                          "create": "InteractiveAuthorizationRequired"})
        self.assertEqual(self.as_nobody(interactive=True),
                         {"pause": "AccessDenied", "create": "AccessDenied"})
        self.env.polkit.call("AddMethod", GLib.Variant("(sssss)", (
            qmtest.POLKIT_IFACE, "CheckAuthorization", "(sa{sv})sa{ss}us", "(bba{ss})",
            "ret = (True, False, {})")))
        self.assertEqual(self.as_nobody()["pause"], "ok")
        self.assertEqual(self.mgr.get_machine("theirs").run_state, "paused")


def readme_client_examples():
    """The ```python blocks of python/README.md's client section."""
    with open(os.path.join(source_root(), "python", "README.md")) as f:
        text = f.read()
    section = text[text.index("\n## The client library"):]
    end = section.find("\n## ", 1)
    section = section if end < 0 else section[:end]
    return re.findall(r"```python\n(.*?)```", section, re.S)


class ReadmeTest(ClientTestCase):

    def test_readme_examples_run(self):
        examples = readme_client_examples()
        self.assertGreaterEqual(len(examples), 5)
        env = dict(os.environ, PYTHONPATH=os.path.join(source_root(), "python"),
                   DBUS_SYSTEM_BUS_ADDRESS=self.env.address,
                   PYTHONDONTWRITEBYTECODE="1")
        for i, code in enumerate(examples):
            with self.subTest(example=i, first_line=code.splitlines()[2]):
                r = subprocess.run([sys.executable, "-c", code], cwd=self.env.path(),
                                   env=env, text=True, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                   timeout=120)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                self.assertEqual(r.stderr, "")
                self.assertTrue(r.stdout)
                # each example cleans up after itself
                self.assertEqual(self.mgr.list_machines(), [])
                self.assertEqual(self.mgr.list_images(), [])


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
