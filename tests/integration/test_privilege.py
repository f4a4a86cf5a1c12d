#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Least privilege (API.md "Owners, users and the sandbox"): machines have
an Owner; QEMU runs as the machine's user (root's machines: the system user
qmachine) with exactly that user's groups, no capabilities, no_new_privs,
QEMU's seccomp sandbox, a clean environment and none of the daemon's fds;
the owner needs no polkit check for their own machines; Config and
CommandLine are for root and the owner only.

Callers other than root are as_user.py run with setpriv; polkit is the
dbusmock template, which allows nothing until told and logs each check."""

import grp
import json
import os
import pwd
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import (ACCESS_DENIED, INVALID_ARGS, MACHINE_IFACE, MANAGER_IFACE,  # noqa: E402
                    MANAGER_PATH, PROPS_IFACE, DBusCallError, GLib,
                    config_variant, err, machine_path, none_args)

HERE = os.path.dirname(os.path.abspath(__file__))
AS_USER = os.path.join(HERE, "as_user.py")
NOBODY = 65534
# a second unprivileged caller (dbus-daemon refuses uids without a user entry)
OTHER = pwd.getpwnam("daemon").pw_uid
SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
CLEAN_ENV_KEYS = {"PATH", "HOME", "USER", "LOGNAME"}


def vm_user():
    try:
        return pwd.getpwnam("qmachine")
    except KeyError:
        raise AssertionError("the system user qmachine is missing: tools/check creates it "
                             "(or systemd-sysusers with data/qmachine.sysusers)") from None


def proc_status(pid):
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return fields


def proc_environ(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        return dict(e.decode().split("=", 1) for e in f.read().split(b"\0") if e)


def fd_targets(pid):
    """What each fd of a process refers to (its /proc link text)."""
    d = "/proc/%d/fd" % pid
    out = set()
    for fd in os.listdir(d):
        try:
            out.add(os.readlink(os.path.join(d, fd)))
        except OSError:
            pass
    return out


def groups_of(name, gid):
    return sorted(set(os.getgrouplist(name, gid)))


def vtext(signature, value):
    return GLib.Variant(signature, value).print_(True)


class UserCalls:
    """One D-Bus call as another uid (as_user.py under setpriv)."""

    def call_as(self, uid, path, iface, method, args=""):
        if isinstance(args, GLib.Variant):
            args = args.print_(True)
        cmd = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups",
               "/usr/bin/python3", AS_USER, "--timeout", "30", path, iface, method, args]
        p = subprocess.run(cmd, capture_output=True, text=True, cwd="/",
                           stdin=subprocess.DEVNULL, timeout=90)
        lines = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
        if p.returncode != 0 or len(lines) != 1:
            self.fail("as_user.py failed (exit %d):\nstdout: %s\nstderr: %s"
                      % (p.returncode, p.stdout, p.stderr))
        r = lines[0]
        if "error" in r:
            raise DBusCallError(r["error"], r["message"])
        return r["ok"]

    def manager_as(self, uid, method, args=""):
        return self.call_as(uid, MANAGER_PATH, MANAGER_IFACE, method, args)

    def machine_as(self, uid, path, method, args=""):
        return self.call_as(uid, path, MACHINE_IFACE, method, args)

    def get_as(self, uid, path, prop):
        return self.call_as(uid, path, PROPS_IFACE, "Get", vtext("(ss)", (MACHINE_IFACE, prop)))

    def create_as(self, uid, name, **config):
        config.setdefault("args", none_args())
        return self.manager_as(uid, "CreateMachine",
                               vtext("(sa{sv})", (name, config_variant(config))))


class QemuUserTest(qmtest.QMTestCase):
    """Machines root creates: QEMU as qmachine, in the sandbox."""

    def running(self, name, **config):
        path = self.create_none_machine(name, **config)
        self.launch(path)
        self.wait_property(path, "RunState", "running")
        return path, self.mprop(path, "Pid")

    def test_root_machines_run_as_qmachine_in_the_sandbox(self):
        user = vm_user()
        path, pid = self.running("confined")
        self.assertEqual(self.mprop(path, "Owner"), 0)
        st = proc_status(pid)
        self.assertEqual(st["Uid"], [str(user.pw_uid)] * 4, st["Uid"])
        self.assertEqual(st["Gid"], [str(user.pw_gid)] * 4, st["Gid"])
        self.assertEqual(sorted(int(g) for g in st["Groups"]),
                         groups_of("qmachine", user.pw_gid))
        self.assertIn(grp.getgrnam("kvm").gr_gid, [int(g) for g in st["Groups"]])
        self.assertEqual(st["CapEff"], ["0000000000000000"])
        self.assertEqual(st["CapPrm"], ["0000000000000000"])
        self.assertEqual(st["NoNewPrivs"], ["1"])
        self.assertEqual(st["Seccomp"], ["2"])
        cmdline = self.mprop(path, "CommandLine")
        i = cmdline.index("-sandbox")
        self.assertEqual(cmdline[i + 1], SANDBOX)

        # A clean environment.
        env = proc_environ(pid)
        self.assertEqual(set(env), CLEAN_ENV_KEYS, env)
        self.assertEqual(env["USER"], "qmachine")
        self.assertNotIn("DBUS_SYSTEM_BUS_ADDRESS", env)

        # None of the daemon's fds (bus connection, state, other sockets).
        shared = {t for t in fd_targets(pid) & fd_targets(self.env.daemon.pid)
                  if not t.startswith("anon_inode:") and t != "/dev/null"}
        self.assertEqual(shared, set())

        # The machine still works: QMP, events, shutdown.
        self.assertEqual(self.command(path, "query-status")["status"], "running")
        self.command(path, "stop")
        seq, _ = self.wait_event(path, [("STOP", "")])
        self.assertGreater(seq, 0)
        self.shutdown(path)
        self.assertEqual(self.mprop(path, "State"), "stopped")
        self.assertEqual(self.mprop(path, "ExitCode"), 0)

    def test_root_must_ask_for_root(self):
        path, pid = self.running("as-root", user="root")
        st = proc_status(pid)
        self.assertEqual(st["Uid"], ["0"] * 4)
        self.assertEqual(sorted(int(g) for g in st["Groups"]), groups_of("root", 0))
        self.assertEqual(st["NoNewPrivs"], ["1"])
        self.assertEqual(self.mprop(path, "Config")["user"], "root")
        self.shutdown(path)

    def test_user_by_uid(self):
        nobody = pwd.getpwuid(NOBODY)
        path, pid = self.running("by-uid", user=str(NOBODY))
        st = proc_status(pid)
        self.assertEqual(st["Uid"], [str(NOBODY)] * 4)
        self.assertEqual(sorted(int(g) for g in st["Groups"]),
                         groups_of(nobody.pw_name, nobody.pw_gid))
        self.shutdown(path)

    def test_sandbox_false(self):
        path, pid = self.running("unsandboxed", sandbox=False)
        self.assertNotIn("-sandbox", self.mprop(path, "CommandLine"))
        self.assertEqual(proc_status(pid)["Seccomp"], ["0"])
        self.assertEqual(proc_status(pid)["NoNewPrivs"], ["1"])
        self.shutdown(path)

    def test_bad_users(self):
        for bad in ("no-such-user-qm", "a:b", "-x", "x" * 300, "../root"):
            with self.subTest(user=bad):
                self.expect_error(INVALID_ARGS, self.create_none_machine, "bad", user=bad)
        self.expect_error(INVALID_ARGS, self.create_none_machine, "bad", user="")
        self.assertEqual(self.manager_prop("MachineCount"), 0)

    def test_qemu_cannot_write_roots_files(self):
        secret = self.env.path("root-only.log")
        with open(secret, "wb"):
            pass
        os.chmod(secret, 0o644)
        # (not -drive: QEMU opens a drive it cannot write read-only)
        drive = ["-chardev", "file,id=f0,path=%s" % secret]
        path = self.create_none_machine("writer", args=none_args() + drive)
        e = self.expect_error(err("LaunchFailed"), self.launch, path)
        self.assertIn("Permission denied", e.text)
        self.assertIn(secret, e.text)

        path = self.create_none_machine("root-writer", user="root", args=none_args() + drive)
        self.launch(path)
        self.shutdown(path)

    def test_images_belong_to_qmachine(self):
        user = vm_user()
        p = self.manager("CreateImage", GLib.Variant("(ssta{sv})", ("vm.qcow2", "qcow2", 1 << 20, {})),
                         "(s)")
        st = os.stat(p)
        self.assertEqual((st.st_uid, st.st_gid), (user.pw_uid, user.pw_gid))
        self.assertEqual(st.st_mode & 0o777, 0o600)
        # and a VM of the default user can write it
        path = self.create_none_machine("disk", args=none_args() + [
            "-drive", "file=%s,format=qcow2,if=none,id=d0" % p])
        self.launch(path)
        self.shutdown(path)


class OwnerTest(UserCalls, qmtest.QMTestCase):
    """Machines of an unprivileged user (uid 65534)."""

    polkit_mock = True

    def setUp(self):
        super().setUp()
        self.pk = self.env.polkit

    def test_owner_needs_no_polkit(self):
        self.pk.set_allowed(["create"])
        path = self.create_as(NOBODY, "mine")
        self.assertEqual(path, machine_path("mine"))
        self.assertEqual(self.mprop(path, "Owner"), NOBODY)
        self.pk.set_allowed([])
        self.pk.clear_calls()

        self.assertIsNone(self.machine_as(NOBODY, path, "Launch"))
        pid = self.mprop(path, "Pid")
        nobody = pwd.getpwuid(NOBODY)
        st = proc_status(pid)
        self.assertEqual(st["Uid"], [str(NOBODY)] * 4)
        self.assertEqual(sorted(int(g) for g in st["Groups"]),
                         groups_of(nobody.pw_name, nobody.pw_gid))
        self.assertEqual(st["CapEff"], ["0000000000000000"])
        self.assertEqual(proc_environ(pid)["USER"], nobody.pw_name)
        reply = self.machine_as(NOBODY, path, "Qmp", vtext("(ss)", ("query-status", "")))
        self.assertIn('"running"', reply)
        # even a command that needs admin from anyone else
        self.machine_as(NOBODY, path, "Qmp", vtext("(ss)", ("stop", "")))
        reply = self.machine_as(NOBODY, path, "Qmp", vtext("(ss)", ("query-status", "")))
        self.assertIn('"paused"', reply)
        # the owner reads its secrets
        self.assertEqual(self.get_as(NOBODY, path, "Config")["args"], none_args())
        self.assertEqual(self.get_as(NOBODY, path, "CommandLine")[0],
                         self.manager_prop("DefaultBinary"))
        self.assertIsNone(self.machine_as(NOBODY, path, "Shutdown", vtext("(bd)", (False, 10.0))))
        self.assertEqual(self.mprop(path, "State"), "stopped")
        self.assertEqual(self.pk.check_calls(), [])

        # Anyone else is still asked.
        e = self.expect_error(ACCESS_DENIED, self.machine_as, OTHER, path, "Launch")
        self.assertIn("org.qmachine.QMachine1.manage", e.text)
        self.assertEqual(len(self.pk.check_calls()), 1)
        self.assertEqual(self.mprop(path, "State"), "stopped")

    def test_only_root_chooses_the_user(self):
        self.pk.set_allowed(["create", "admin"])
        for user in ("root", "0", "qmachine", str(OTHER)):
            with self.subTest(user=user):
                e = self.expect_error(ACCESS_DENIED, self.create_as, NOBODY, "other", user=user)
                self.assertIn("only root", e.text)
        self.assertEqual(self.manager_prop("MachineCount"), 0)
        nobody = pwd.getpwuid(NOBODY).pw_name
        for i, user in enumerate((str(NOBODY), nobody)):
            path = self.create_as(NOBODY, "self-%d" % i, user=user)
            self.assertEqual(self.mprop(path, "Config")["user"], user)

    def test_create_needs_the_create_action(self):
        e = self.expect_error(ACCESS_DENIED, self.create_as, NOBODY, "denied")
        self.assertIn("org.qmachine.QMachine1.create", e.text)
        calls = self.pk.check_calls()
        self.assertEqual([c[1] for c in calls], ["org.qmachine.QMachine1.create"])

    def test_secrets_are_for_root_and_the_owner(self):
        roots = self.create_none_machine("roots", args=none_args() + [
            "-object", "secret,id=s0,data=hunter2"])
        self.launch(roots)
        for prop in ("Config", "CommandLine"):
            with self.subTest(prop=prop):
                e = self.expect_error(ACCESS_DENIED, self.get_as, NOBODY, roots, prop)
                self.assertIn("only root and its owner", e.text)
        # GetAll leaves them out, for everyone
        props = self.call_as(NOBODY, roots, PROPS_IFACE, "GetAll", vtext("(s)", (MACHINE_IFACE,)))
        self.assertNotIn("Config", props)
        self.assertNotIn("CommandLine", props)
        self.assertEqual(props["Owner"], 0)
        managed = self.call_as(NOBODY, MANAGER_PATH, "org.freedesktop.DBus.ObjectManager",
                               "GetManagedObjects")
        self.assertNotIn("hunter2", json.dumps(managed))
        self.assertIn("hunter2", " ".join(self.mprop(roots, "CommandLine")))
        self.shutdown(roots)

        self.pk.set_allowed(["create"])
        mine = self.create_as(NOBODY, "nobodys")
        self.assertEqual(self.get_as(NOBODY, mine, "Config")["args"], none_args())
        self.expect_error(ACCESS_DENIED, self.get_as, OTHER, mine, "Config")
        self.assertEqual(self.mprop(mine, "Config")["args"], none_args())

    def test_clone(self):
        self.pk.set_allowed(["create"])
        mine = self.create_as(NOBODY, "orig")
        self.create_none_machine("roots")
        self.pk.clear_calls()
        clone = self.manager_as(NOBODY, "CloneMachine", vtext("(ssa{sv})", ("orig", "copy", {})))
        self.assertEqual(self.mprop(clone, "Owner"), NOBODY)
        self.assertEqual([c[1] for c in self.pk.check_calls()], ["org.qmachine.QMachine1.create"])
        self.assertIsNotNone(mine)
        # another's machine: admin
        self.pk.clear_calls()
        e = self.expect_error(ACCESS_DENIED, self.manager_as, NOBODY, "CloneMachine",
                              vtext("(ssa{sv})", ("roots", "copy2", {})))
        self.assertIn("org.qmachine.QMachine1.admin", e.text)

    def test_update(self):
        self.pk.set_allowed(["create"])
        mine = self.create_as(NOBODY, "upd")
        self.create_none_machine("roots-upd")
        self.pk.clear_calls()
        self.manager_as(NOBODY, "UpdateMachine", vtext("(sa{sv})", ("upd", {"description": GLib.Variant("s", "x")})))
        self.assertEqual(self.pk.check_calls(), [], "the owner needs no polkit")
        self.assertEqual(self.mprop(mine, "Config")["description"], "x")
        self.assertEqual(self.mprop(mine, "Owner"), NOBODY)
        # Only root names another user, here as at creation.
        e = self.expect_error(ACCESS_DENIED, self.manager_as, NOBODY, "UpdateMachine",
                              vtext("(sa{sv})", ("upd", {"user": GLib.Variant("s", "root")})))
        self.assertNotIn("user", self.mprop(mine, "Config"))
        # Another's machine: admin.
        e = self.expect_error(ACCESS_DENIED, self.manager_as, NOBODY, "UpdateMachine",
                              vtext("(sa{sv})", ("roots-upd", {"description": GLib.Variant("s", "x")})))
        self.assertIn("org.qmachine.QMachine1.admin", e.text)

    def test_owner_and_user_survive_a_restart(self):
        self.pk.set_allowed(["create"])
        running = self.create_as(NOBODY, "kept")
        defined = self.create_as(NOBODY, "defined", persistent=True)
        self.machine_as(NOBODY, running, "Launch")
        pid = self.mprop(running, "Pid")
        self.restart_daemon(signal.SIGTERM)
        self.assertEqual(self.mprop(running, "Pid"), pid)
        self.assertEqual(self.mprop(running, "Owner"), NOBODY)
        self.assertEqual(self.mprop(defined, "Owner"), NOBODY)
        self.assertEqual(proc_status(pid)["Uid"], [str(NOBODY)] * 4)
        self.pk.set_allowed([])
        self.pk.clear_calls()
        self.machine_as(NOBODY, running, "Shutdown", vtext("(bd)", (False, 10.0)))
        self.assertEqual(self.mprop(running, "State"), "stopped")
        self.assertEqual(self.pk.check_calls(), [])


if __name__ == "__main__":
    qmtest.main()
