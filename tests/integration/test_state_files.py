#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""State files and directories that cannot hurt the daemon.

A state directory that cannot be written (read-only, full) makes
CreateMachine and RemoveMachine fail with StorageFailed and change
nothing. Definitions that are FIFOs, symlinks, or hold members of the
wrong type or range are set aside as corrupt at start-up, which stays
prompt. Symlinks planted at a machine's log files or runtime directory
are never written through.

Read-only and full directories are bind and tmpfs mounts in a private
mount namespace of this test process (its daemons inherit it): nothing
is mounted on the host, and it all goes away with the process.
"""

import ctypes
import errno
import json
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import GLib, err  # noqa: E402

CLONE_NEWNS = 0x00020000
MOUNT_NAMESPACE = False


def setUpModule():
    global MOUNT_NAMESPACE
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) == 0:
        subprocess.run(["mount", "--make-rprivate", "/"], check=True)
        MOUNT_NAMESPACE = True


class StateFilesTest(qmtest.QMTestCase):

    def setUp(self):
        super().setUp()
        self.mounts = []

    def tearDown(self):
        for m in reversed(self.mounts):
            subprocess.run(["umount", m], check=False)
        super().tearDown()

    # -- helpers

    def machines_dir(self):
        d = self.env.path("state", "machines")
        os.makedirs(d, exist_ok=True)
        return d

    def definition_path(self, name):
        return os.path.join(self.machines_dir(), name + ".json")

    def names(self):
        return sorted(m[0] for m in self.manager("ListMachines", None, "(a(ssuo))"))

    def need_mounts(self):
        if not MOUNT_NAMESPACE:
            self.skipTest("needs a private mount namespace (root)")

    def mount_read_only(self, path):
        self.need_mounts()
        subprocess.run(["mount", "--bind", path, path], check=True)
        self.mounts.append(path)
        subprocess.run(["mount", "-o", "remount,bind,ro", path], check=True)

    def mount_full(self, path):
        """A tiny tmpfs at path, filled up."""
        self.need_mounts()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", path],
                       check=True)
        self.mounts.append(path)
        fd = os.open(os.path.join(path, "filler"), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            while True:
                os.write(fd, b"x" * 4096)
        except OSError as e:
            self.assertEqual(e.errno, errno.ENOSPC)
        finally:
            os.close(fd)

    def unmount(self, path):
        subprocess.run(["umount", path], check=True)
        self.mounts.remove(path)

    def restart_promptly(self, timeout=10.0):
        """Restart the daemon; it must own its name within timeout."""
        self.env.stop_daemon()
        start = time.monotonic()
        self.env.start_daemon(timeout=timeout)
        return time.monotonic() - start

    def assert_set_aside(self, name):
        files = os.listdir(self.machines_dir())
        self.assertIn(name + ".json.corrupt", files)
        self.assertNotIn(name + ".json", files)
        self.assertIn(name + ".json", self.env.daemon_output(), "the corrupt file is logged")

    def definition_text(self, name, event_sequence):
        """A definition like the daemon's own, with event-sequence given as
        raw JSON text (None: the member left out)."""
        with open(self.definition_path("good")) as f:
            d = json.load(f)
        d["name"] = name
        d.pop("event-sequence", None)
        text = json.dumps(d)
        if event_sequence is not None:
            text = text[:-1] + ', "event-sequence": ' + event_sequence + "}"
        return text

    # -- defect 9 and 14: a state directory that cannot be written

    def test_remove_with_read_only_state_fails_and_keeps_machine(self):
        path = self.create_none_machine("keep", persistent=True)
        removed = self.record(qmtest.MANAGER_IFACE, "MachineRemoved")
        self.mount_read_only(self.machines_dir())
        e = self.expect_error(err("StorageFailed"), self.manager, "RemoveMachine",
                              GLib.Variant("(s)", ("keep",)), "()")
        self.assertIn("keep.json", e.text)
        self.assertIn(os.strerror(errno.EROFS), e.text)
        # Nothing changed: the machine is still there, no signal went out.
        self.assertEqual(self.names(), ["keep"])
        self.assertEqual(self.mprop(path, "Name"), "keep")
        qmtest.iterate_for(0.2)
        self.assertEqual(removed.members(), [])
        self.assertEqual(self.restart_daemon(signal.SIGTERM), 0)
        self.assertEqual(self.names(), ["keep"])
        # Once the directory is writable again, the removal sticks.
        self.unmount(self.machines_dir())
        self.manager("RemoveMachine", GLib.Variant("(s)", ("keep",)), "()")
        self.assertEqual(self.restart_daemon(signal.SIGTERM), 0)
        self.assertEqual(self.names(), [])

    def assert_nothing_created(self, name, before):
        self.expect_error(err("NoSuchMachine"), self.manager, "GetMachine",
                          GLib.Variant("(s)", (name,)), "(o)")
        self.assertEqual(self.names(), [])
        self.assertEqual(self.manager_prop("MachineCount"), 0)
        self.assertEqual(sorted(os.listdir(self.machines_dir())), before)

    def test_create_with_read_only_state_is_storage_failed(self):
        self.mount_read_only(self.machines_dir())
        before = sorted(os.listdir(self.machines_dir()))
        new = self.record(qmtest.MANAGER_IFACE, "MachineNew")
        e = self.expect_error(err("StorageFailed"), self.create_none_machine, "ro",
                              persistent=True)
        self.assertIn("ro.json", e.text)
        self.assertIn(os.strerror(errno.EROFS), e.text)
        self.assert_nothing_created("ro", before)
        qmtest.iterate_for(0.2)
        self.assertEqual(new.members(), [])
        # A machine that stores nothing is still welcome.
        self.create_none_machine("transient")
        self.assertEqual(self.names(), ["transient"])

    def test_create_with_full_state_is_storage_failed(self):
        self.mount_full(self.machines_dir())
        before = sorted(os.listdir(self.machines_dir()))
        e = self.expect_error(err("StorageFailed"), self.create_none_machine, "full",
                              persistent=True)
        self.assertIn("full.json", e.text)
        self.assertIn(os.strerror(errno.ENOSPC), e.text)
        self.assert_nothing_created("full", before)  # no temp file left either
        self.assertEqual(self.restart_daemon(signal.SIGTERM), 0)
        self.assertEqual(self.names(), [])

    # -- defect 10: definitions that are not regular files

    def test_fifo_and_symlink_definitions_are_set_aside(self):
        self.create_none_machine("good", persistent=True)
        elsewhere = self.env.path("elsewhere.json")
        with open(elsewhere, "w") as f:
            f.write(self.definition_text("linked", None))
        os.mkfifo(self.definition_path("fifo"))
        os.symlink("/dev/zero", self.definition_path("zero"))
        os.symlink(elsewhere, self.definition_path("linked"))
        took = self.restart_promptly()
        self.assertLess(took, 10.0)
        self.assertEqual(self.names(), ["good"])
        for name in ("fifo", "zero", "linked"):
            self.assert_set_aside(name)
        self.assertTrue(os.path.islink(self.definition_path("zero") + ".corrupt"))
        self.assert_daemon_answers(1)

    # -- defect 13: members of the wrong type or range

    def test_bad_event_sequence_is_corrupt(self):
        self.create_none_machine("good", persistent=True)
        bad = {
            "wrapped": "18446744073709551615",   # json-glib reads -1
            "wrapped-neg": "-18446744073709551615",  # json-glib reads 1
            "negative": "-5",
            "string": '"abc"',
            "float": "1.5",
            "null": "null",
        }
        for name, value in bad.items():
            with open(self.definition_path(name), "w") as f:
                f.write(self.definition_text(name, value))
        with open(self.definition_path("fine"), "w") as f:
            f.write(self.definition_text("fine", "41"))
        self.assertEqual(self.restart_daemon(signal.SIGTERM), 0)
        self.assertEqual(self.names(), ["fine", "good"])
        for name in bad:
            self.assert_set_aside(name)
        path = self.manager("GetMachine", GLib.Variant("(s)", ("fine",)), "(o)")
        self.assertEqual(self.mprop(path, "EventSequence"), 41)

    def test_lone_surrogate_in_args_is_corrupt(self):
        """json-glib turns a lone surrogate into a GLib-CRITICAL and drops
        the string; the strict JSON check must refuse the file instead."""
        self.create_none_machine("good", persistent=True)
        with open(self.definition_path("good")) as f:
            d = json.load(f)
        d["name"] = "surrogate"
        d["config"]["args"].append("SURROGATE")
        # (a lone surrogate followed by more text: json-glib takes it)
        text = json.dumps(d).replace('"SURROGATE"', '"\\ud800x"')
        with open(self.definition_path("surrogate"), "w") as f:
            f.write(text)
        self.assertEqual(self.restart_daemon(signal.SIGTERM), 0)
        self.assertEqual(self.names(), ["good"])
        self.assert_set_aside("surrogate")

    # -- defect 11: log files and runtime directory

    def test_symlinked_logs_are_not_written_through(self):
        path = self.create_none_machine("logs", console=True)
        log_dir = self.env.path("log", "logs")
        os.makedirs(log_dir, mode=0o750)
        victims = {}
        for name in ("qemu.log", "console.log"):
            victims[name] = self.env.path("victim-" + name)
            with open(victims[name], "w") as f:
                f.write("precious\n")
            os.symlink(victims[name], os.path.join(log_dir, name))
        hard_victim = self.env.path("victim-hard")
        self.launch(path)
        for name, victim in victims.items():
            with open(victim) as f:
                self.assertEqual(f.read(), "precious\n", "%s was written through" % name)
            self.assertFalse(os.path.islink(os.path.join(log_dir, name)))
            self.assertTrue(os.path.isfile(os.path.join(log_dir, name)))
        self.shutdown(path)
        # A hard link to another file is not written through either.
        with open(hard_victim, "w") as f:
            f.write("precious\n")
        os.unlink(os.path.join(log_dir, "qemu.log"))
        os.link(hard_victim, os.path.join(log_dir, "qemu.log"))
        self.launch(path)
        with open(hard_victim) as f:
            self.assertEqual(f.read(), "precious\n")
        self.assertEqual(os.stat(os.path.join(log_dir, "qemu.log")).st_nlink, 1)
        self.shutdown(path)

    def test_symlinked_runtime_or_log_dir_is_refused(self):
        for kind in ("run", "log"):
            name = "linked-" + kind
            path = self.create_none_machine(name)
            elsewhere = self.env.path("elsewhere-" + kind)
            os.mkdir(elsewhere)
            os.symlink(elsewhere, self.env.path(kind, name))
            e = self.expect_error(err("LaunchFailed"), self.launch, path)
            self.assertIn("symbolic link", e.text)
            self.assertEqual(self.mprop(path, "State"), "failed")
            self.assertEqual(os.listdir(elsewhere), [])
            self.assertTrue(os.path.islink(self.env.path(kind, name)))
        self.assertEqual(self.qemu_pids(), [])
        self.assert_daemon_answers(2)

    def test_record_behind_symlinked_runtime_dir_is_ignored(self):
        """A record is only read from a real directory of ours: one behind
        a symlink is neither taken back nor cleaned up through the link."""
        path = self.create_none_machine("ghost")
        self.launch(path)
        with open(self.env.path("run", "ghost", "record.json")) as f:
            record = f.read()
        self.shutdown(path)
        elsewhere = self.env.path("elsewhere")
        os.mkdir(elsewhere)
        with open(os.path.join(elsewhere, "record.json"), "w") as f:
            f.write(record)
        os.symlink(elsewhere, self.env.path("run", "ghost"))
        self.assertEqual(self.restart_daemon(signal.SIGTERM), 0)
        self.assertEqual(self.names(), [])
        self.assertEqual(os.listdir(elsewhere), ["record.json"])
        self.assertIn("not a directory of ours", self.env.daemon_output())


if __name__ == "__main__":
    unittest.main(verbosity=2)
