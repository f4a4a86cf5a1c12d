#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Migration between two hosts (qmtest.twohost: namespaces A and B, each
with its bus and daemon, sshd on B) with the test guest counting on its
console (/bin/qm-counter prints QMACHINE-COUNT n every 0.5 s):

- `qmachinectl migrate vm --to root@B`: the count goes on on B without a
  gap, B's events go on, A's machine is `migrated` and refuses Resume and
  Launch, one QEMU runs; --persistent survives B's daemon restart,
  --undefine-source leaves nothing on A, --offline resumes on B;
- a destination that fails at the end (a device A has and B lacks):
  MigrateFailed, the guest runs on in A, nothing stays on B;
- cancelled, B's QEMU killed, B's daemon killed, each mid-migration:
  exactly one running copy once things settle;
- `qmachinectl -H root@B` on the migrated machine;
- the Ansible module defines a machine on A, starts it and moves it to B,
  and a second run changes nothing.

Prints the one-command migration's wall time and QEMU's own figures."""

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import GLib, MACHINE_IFACE, TwoHostTestCase, err, is_qemu_process  # noqa: E402
from test_guest import BANNER, Console, guest_config  # noqa: E402
from test_remote import assert_console_fails_at_once_over_ssh  # noqa: E402

COUNT = re.compile(rb"QMACHINE-COUNT (\d+)")
BOOT_TIMEOUT = 120.0
SETTLE = 30.0
# A bandwidth that keeps the guest's non-zero RAM (kernel, initramfs:
# tens of MB) in flight for many seconds: time to act mid-migration.
SLOW = "1000000"
FAST = 1 << 30


def counts(data):
    return [int(n) for n in COUNT.findall(data)]


def drain(con, quiet=1.0, limit=15.0):
    """Everything the console socket still delivers: until it closes or
    stays quiet for `quiet` seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        r, _, _ = select.select([con.sock], [], [], quiet)
        if not r:
            break
        try:
            chunk = con.sock.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        con.data += chunk
    return con.data


class TwoHostGuestCase(TwoHostTestCase):
    """Helpers: the counting guest on A, both hosts' machines and QEMUs."""

    def setUp(self):
        super().setUp()
        self.target = self.hosts.b.ssh_target
        self.consoles = []

    def tearDown(self):
        for con in self.consoles:
            con.close()
        super().tearDown()

    # -- the guest

    def guest_config(self, extra_args=(), **extra):
        return guest_config(extra_args, **extra)

    def counting_guest(self, name="vm", extra_args=(), **extra):
        """The guest booted on A with qm-counter started on its console.
        Returns (path, console); the console saw every count."""
        path = self.create_machine_on(self.conn, name, **self.guest_config(extra_args, **extra))
        t0 = time.monotonic()
        self.launch_on(self.conn, path)
        con = self.open_console(path)
        ok = qmtest.iterate_until(lambda: BANNER in self.console_output(path), BOOT_TIMEOUT)
        self.assertTrue(ok, "the guest did not boot: %r" % self.console_output(path)[-2000:])
        con.send("qm-counter &\n")
        con.read_until(rb"QMACHINE-COUNT 2\r?\n", 30)
        print("%s: launch to counting %.1f s" % (self.id().split(".")[-1], time.monotonic() - t0),
              file=sys.stderr)
        return path, con

    def open_console(self, path):
        r = self.conn.call_with_unix_fd_list_sync(
            qmtest.BUS_NAME, path, MACHINE_IFACE, "OpenConsole", None,
            GLib.VariantType.new("(h)"), qmtest.Gio.DBusCallFlags.NONE, 30000, None, None)
        reply, fds = r
        con = Console(fds.get(reply.unpack()[0]))
        self.consoles.append(con)
        return con

    def assert_counter_goes_on(self, con, more=2):
        """The guest still runs on A: its count grows by `more`."""
        last = max(counts(con.data))
        con.read_until(rb"QMACHINE-COUNT %d\r?\n" % (last + more), 30)

    def assert_counter_moved_to_b(self, con, path_b, more=3):
        """The count went on on B where it stopped on A: A's console up
        to its end, then B's, count on by one with no gap and no repeat.
        (A line cut by the move is completed by B's first bytes.)"""
        self.wait_console_output(path_b, rb"(?s)(?:QMACHINE-COUNT \d+.*?){%d}" % more, 30, conn=self.conn_b,
                                 after_move=True)
        on_b = self.console_output(path_b, self.conn_b)
        on_a = drain(con)
        seen = counts(on_a + on_b)
        self.assertEqual(seen, list(range(seen[0], seen[0] + len(seen))),
                         "a gap or a repeat in the count:\nA: %r\nB: %r" % (on_a[-300:], on_b[:300]))
        self.assertGreaterEqual(len(counts(on_b)), more)

    # -- hosts

    def conn_of(self, host):
        return self.conn if host == "a" else self.conn_b

    def names(self, host):
        return [m[0] for m in self.manager("ListMachines", None, "(a(ssuo))",
                                           conn=self.conn_of(host))]

    def prop(self, host, path, name):
        return self.get_property(path, MACHINE_IFACE, name, conn=self.conn_of(host))

    def qemus(self, host):
        """Live QEMUs in a host's namespace."""
        return sorted(p for p in self.hosts.host(host).netns.pids() if is_qemu_process(p))

    def copies(self, name="vm"):
        """The hosts whose daemon has the machine with State running."""
        out = []
        for host in ("a", "b"):
            if name in self.names(host) and self.prop(host, qmtest.machine_path(name), "State") == "running":
                out.append(host)
        return out

    def assert_one_copy(self, name="vm", where=None):
        """Once things settle: the machine runs (QEMU and guest) on exactly
        one host (`where` when given), and that QEMU is the only one."""
        path = qmtest.machine_path(name)

        def settled():
            c = self.copies(name)
            return (len(c) == 1 and self.prop(c[0], path, "RunState") == "running"
                    and len(self.qemus("a")) + len(self.qemus("b")) == 1)

        ok = qmtest.iterate_until(settled, SETTLE)
        here = self.copies(name)
        self.assertTrue(ok, "not exactly one running copy: machine runs on %s (RunState %s), "
                        "QEMUs A %s B %s" % (here, [self.prop(h, path, "RunState") for h in here],
                                             self.qemus("a"), self.qemus("b")))
        host = here[0]
        if where is not None:
            self.assertEqual(host, where)
        self.assertEqual(self.qemus(host), [self.prop(host, path, "Pid")])
        return host

    def assert_nothing_on_b(self):
        ok = qmtest.iterate_until(lambda: not self.names("b") and not self.qemus("b"), SETTLE)
        self.assertTrue(ok, "B keeps %s, QEMUs %s" % (self.names("b"), self.qemus("b")))

    def assert_migrated_on_a(self, path):
        self.assertEqual(self.prop("a", path, "State"), "migrated")
        self.assertEqual(self.qemus("a"), [])
        self.expect_error(err("Migrated"), self.machine, path, "Resume", None, "()")
        self.expect_error(err("Migrated"), self.machine, path, "Launch", None, "()")
        self.assertEqual(self.prop("a", path, "State"), "migrated")

    # -- migrating

    def ctl_migrate(self, *options, timeout=120):
        return self.hosts.qmachinectl("a", "migrate", "vm", "--to", self.target, *options,
                                      timeout=timeout)

    def ctl_migrate_async(self, *options):
        return self.hosts.popen("a", [qmtest.twohost.qmachinectl_binary(), "migrate", "vm",
                                      "--to", self.target] + list(options),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish(self, proc, timeout=120):
        try:
            out, errs = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, errs = proc.communicate()
            self.fail("qmachinectl migrate did not end within %d s: %r" % (timeout, errs))
        return proc.returncode, out, errs

    def wait_transfer_started(self, path, proc):
        """B has the incoming machine and A's QEMU sends: returns B's
        machine path."""
        path_b = qmtest.machine_path("vm")

        def sending():
            if proc.poll() is not None:
                return True
            if "vm" not in self.names("b"):
                return False
            info = self.qmp(path, "query-migrate")["return"]
            return info.get("status") == "active" and info.get("ram", {}).get("transferred", 0) > 0

        ok = qmtest.iterate_until(sending, 60)
        if proc.poll() is not None:
            self.fail("qmachinectl migrate ended early: %r" % (proc.communicate(),))
        self.assertTrue(ok, "the migration never got going")
        return path_b

    def report_figures(self, label, wall):
        """QEMU's own figures of the last completed migration where the
        daemons recorded them, and the wall time."""
        lines = []
        for env in (self.env, self.env_b):
            lines += [m.group(0) for m in re.finditer(r"[^\n]*downtime[^\n]*", env.daemon_output())]
        print("%s: %.2f s end to end%s" % (label, wall, "".join("\n  " + x for x in lines[-2:])),
              file=sys.stderr)


class MigrateToHostTest(TwoHostGuestCase):
    """qmachinectl migrate vm --to root@B."""

    def test_live_migration_persistent(self):
        path, con = self.counting_guest()
        uuid = self.prop("a", path, "Config")["uuid"]
        progress = self.record(MACHINE_IFACE, "MigrationProgress", path)
        t0 = time.monotonic()
        r = self.ctl_migrate("--persistent")
        wall = time.monotonic() - t0
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^vm runs on %s as vm \(\d+\.\d s\)\n$" % re.escape(self.target))
        self.report_figures("qmachinectl migrate --to", wall)

        path_b = qmtest.machine_path("vm")
        self.assertEqual(self.assert_one_copy(where="b"), "b")
        self.assert_migrated_on_a(path)
        self.assert_counter_moved_to_b(con, path_b)
        # the same machine: same UUID (so the same MACs), no incoming left
        config_b = self.prop("b", path_b, "Config")
        self.assertEqual(config_b["uuid"], uuid)
        self.assertNotIn("incoming", config_b)
        self.assertTrue(config_b["persistent"])
        # B's events go on: its QEMU resumed the guest, and more come
        events = [e["event"] for _s, e in self.get_events_on(self.conn_b, path_b)]
        self.assertIn("RESUME", events)
        seq = self.prop("b", path_b, "EventSequence")
        self.call(path_b, MACHINE_IFACE, "Pause", None, "()", conn=self.conn_b)
        self.call(path_b, MACHINE_IFACE, "Resume", None, "()", conn=self.conn_b)
        later = [e["event"] for _s, e in self.get_events_on(self.conn_b, path_b, seq)]
        self.assertEqual(later[:2], ["STOP", "RESUME"])
        # MigrationProgress came from A while it ran
        self.assertTrue(progress.wait(timeout=5), "no MigrationProgress from A")
        last = progress.args("MigrationProgress")[-1]
        print("last MigrationProgress (transferred, remaining, total, expected downtime ms): %s"
              % (last,), file=sys.stderr)

        # remote control of the machine where it now runs
        out = self.ctl_ok("-H", self.target, "list")
        self.assertRegex(out, r"\nvm\s+running\s+%d\n" % self.prop("b", path_b, "Pid"))
        out = self.ctl_ok("-H", self.target, "status", "vm")
        self.assertRegex(out, r"(?m)^ *State: running( since .*)?$")
        out = self.ctl_ok("-H", self.target, "qmp", "vm", "query-status")
        self.assertIn('"running"', out)
        assert_console_fails_at_once_over_ssh(self, self.hosts, "vm")

        # --persistent: B's daemon takes it back after a restart
        pid = self.prop("b", path_b, "Pid")
        self.env_b.restart_daemon()
        self.assertEqual(self.names("b"), ["vm"])
        self.assertEqual(self.prop("b", path_b, "State"), "running")
        self.assertEqual(self.prop("b", path_b, "Pid"), pid)
        self.assertEqual(self.assert_one_copy(), "b")

    def test_undefine_source(self):
        _path, con = self.counting_guest()
        r = self.ctl_migrate("--undefine-source")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.names("a"), [])
        self.assertEqual(self.assert_one_copy(where="b"), "b")
        self.assert_counter_moved_to_b(con, qmtest.machine_path("vm"))

    def test_offline(self):
        path, con = self.counting_guest()
        r = self.ctl_migrate("--offline")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.assert_one_copy(where="b"), "b")
        self.assert_migrated_on_a(path)
        self.assert_counter_moved_to_b(con, qmtest.machine_path("vm"))

    def ctl_ok(self, *args):
        r = self.hosts.qmachinectl("a", *args)
        self.assertEqual(r.returncode, 0, "qmachinectl %s: %r" % (" ".join(args), r.stderr))
        return r.stdout

    def get_events_on(self, conn, path, after=0):
        return [(seq, json.loads(ev)) for seq, ev in
                self.call(path, MACHINE_IFACE, "GetEvents", GLib.Variant("(t)", (after,)),
                          "(a(ts))", conn=conn)]


class MigrationFailureTest(TwoHostGuestCase):
    """Whatever goes wrong, the guest runs in exactly one place."""

    def test_destination_fails_at_the_end(self):
        """B's machine lacks a device A's has: B's QEMU refuses the state
        once it has all of it; with return-path A hears it and resumes."""
        path, con = self.counting_guest(extra_args=["-device", "virtio-rng-pci"])
        config = self.get_property_variant(path, MACHINE_IFACE, "Config")
        fields = {k: config.lookup_value(k, None) for k in config.keys()}
        args = list(fields["args"].unpack())
        i = args.index("virtio-rng-pci")
        del args[i - 1:i + 1]
        fields["args"] = GLib.Variant("as", args)
        options = {"address": GLib.Variant("s", self.hosts.b.address)}
        path_b, uri = self.manager("PrepareIncoming",
                                   GLib.Variant("(sa{sv}a{sv})", ("vm", fields, options)),
                                   "(os)", conn=self.conn_b)
        self.assertEqual(self.prop("b", path_b, "RunState"), "inmigrate")
        self.assertTrue(uri.startswith("tcp:%s:" % self.hosts.b.address), uri)
        e = self.expect_error(err("MigrateFailed"), self.machine, path, "Migrate",
                              GLib.Variant("(sa{sv})", (uri, {})), "()", timeout=120)
        print("MigrateFailed: %s" % e.text, file=sys.stderr)
        # QEMU 7.2's source learns only that the destination failed (no
        # error-desc): the daemon says so; a newer QEMU may give the reason.
        self.assertIn(uri, e.text)
        self.assertIn("destination", e.text)
        self.assert_nothing_on_b()
        self.assertEqual(self.assert_one_copy(where="a"), "a")
        self.assert_counter_goes_on(con)

    def test_cancel_after(self):
        _path, con = self.counting_guest()
        r = self.ctl_migrate("--bandwidth", SLOW, "--cancel-after", "2")
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("vm keeps running here", r.stderr)
        self.assert_nothing_on_b()
        self.assertEqual(self.assert_one_copy(where="a"), "a")
        self.assert_counter_goes_on(con)

    def test_destination_qemu_killed(self):
        path, con = self.counting_guest()
        proc = self.ctl_migrate_async("--bandwidth", SLOW)
        path_b = self.wait_transfer_started(path, proc)
        os.kill(self.prop("b", path_b, "Pid"), signal.SIGKILL)
        rc, _out, errs = self.finish(proc)
        self.assertNotEqual(rc, 0, errs)
        self.assertIn("vm keeps running here", errs)
        self.assert_nothing_on_b()
        self.assertEqual(self.assert_one_copy(where="a"), "a")
        self.assert_counter_goes_on(con)

    def test_destination_daemon_killed(self):
        """B's daemon dies mid-migration and comes back; its QEMU goes on
        receiving. The migration then ends one way or the other, with one
        running copy."""
        path, con = self.counting_guest()
        proc = self.ctl_migrate_async("--bandwidth", SLOW)
        self.wait_transfer_started(path, proc)
        self.env_b.signal_daemon(signal.SIGKILL)
        self.env_b.start_daemon()
        # the rest at full speed
        self.command(path, "migrate-set-parameters", '{"max-bandwidth": %d}' % FAST)
        rc, _out, errs = self.finish(proc)
        host = self.assert_one_copy()
        print("daemon of B killed mid-migration: qmachinectl exit %d (%s), the guest runs on %s"
              % (rc, errs.strip().replace("\n", " / "), host.upper()), file=sys.stderr)
        if host == "b":
            self.assertEqual(rc, 0, errs)
            self.assert_migrated_on_a(path)
            self.assert_counter_moved_to_b(con, qmtest.machine_path("vm"))
        else:
            self.assertNotEqual(rc, 0)
            self.assert_nothing_on_b()
            self.assert_counter_goes_on(con)


PLAYBOOK = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: defined on A
      qmachine.qmachine.machine:
        name: fleet-vm
        state: present
        config:
          args: {args}
          description: moved by ansible
    - name: started on A and moved to B
      qmachine.qmachine.machine:
        name: fleet-vm
        state: running
        migrate_to: {target}
        persistent_destination: true
"""


class AnsibleTwoHostsTest(TwoHostGuestCase):
    """The Ansible module against both hosts, run on A."""

    def setUp(self):
        if not shutil.which("ansible-playbook"):
            self.skipTest("ansible-playbook is not installed (Debian package ansible-core)")
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="qm-ansible-2h-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        with open(os.path.join(self.tmp, "hosts"), "w") as f:
            f.write("localhost ansible_connection=local "
                    "ansible_python_interpreter=/usr/bin/python3\n")
        with open(os.path.join(self.tmp, "play.yml"), "w") as f:
            f.write(PLAYBOOK.format(args="[%s]" % ", ".join('"%s"' % a for a in qmtest.none_args()),
                                    target=self.target))

    def play(self, check=False):
        """ansible-playbook in A's namespace; returns (changed, output)."""
        env = self.hosts.client_env("a", {
            "ANSIBLE_COLLECTIONS_PATH": os.path.join(qmtest.source_root(), "contrib", "ansible"),
            "PYTHONPATH": os.path.join(qmtest.source_root(), "python"),
            "ANSIBLE_LOCAL_TEMP": os.path.join(self.tmp, "local"),
            "ANSIBLE_REMOTE_TEMP": os.path.join(self.tmp, "remote"),
            "ANSIBLE_NOCOLOR": "1",
        })
        argv = ["ansible-playbook", "-i", os.path.join(self.tmp, "hosts"),
                os.path.join(self.tmp, "play.yml")] + (["--check"] if check else [])
        p = self.hosts.popen("a", argv, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        rc, out, _ = self.finish(p, 300)
        self.assertEqual(rc, 0, out)
        m = re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", out)
        self.assertIsNotNone(m, out)
        return int(m.group(1)), out

    def test_define_start_migrate_idempotent(self):
        # check mode changes nothing
        changed, _ = self.play(check=True)
        self.assertEqual(changed, 2)
        self.assertEqual(self.names("a") + self.names("b"), [])
        changed, out = self.play()
        self.assertEqual(changed, 2, out)
        path = qmtest.machine_path("fleet-vm")
        self.assertEqual(self.assert_one_copy("fleet-vm", where="b"), "b")
        self.assertEqual(self.prop("a", path, "State"), "migrated")
        self.assertTrue(self.prop("b", path, "Config")["persistent"])
        changed, out = self.play()
        self.assertEqual(changed, 0, "a second run changes nothing:\n" + out)
        changed, out = self.play(check=True)
        self.assertEqual(changed, 0, out)
        self.assertEqual(self.assert_one_copy("fleet-vm", where="b"), "b")


if __name__ == "__main__":
    qmtest.main()
