#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A slow user database (LDAP, sssd) must not stall the daemon: user
lookups run in a worker thread, off the main loop (ARCHITECTURE.md).

The daemon runs with tests/preload's shim (LD_PRELOAD), which makes
every lookup of one user sleep SLOW seconds (getpwnam_r and getgrouplist
each: a lookup takes 2 * SLOW). While a Launch of a machine of that user
waits for its lookup, another client's calls answer at once; a Kill in
that time ends the launch before any QEMU starts."""

import os
import pwd
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import (INVALID_ARGS, MACHINE_IFACE, MANAGER_IFACE, MANAGER_PATH,  # noqa: E402
                    DBusCallError, Environment, GLib, config_variant, err, none_args)
from qmtest.bus import qmachined_binary  # noqa: E402

SLOW_USER = "nobody"
SLOW = 2            # seconds per slowed call
LOOKUP = 2 * SLOW   # a lookup: the passwd entry, then the groups
QUICK = 1.0         # what "at once" means on a loaded 2-core machine


def slow_nss_library():
    lib = os.environ.get("QMACHINED_SLOW_NSS")
    if not lib or not os.path.exists(lib):
        raise AssertionError("the slow-nss shim is missing (QMACHINED_SLOW_NSS=%r): meson builds it "
                             "with the tests" % lib)
    return lib


def asan_runtime(exe):
    """The ASan runtime qmachined links, or None: it must come first in
    LD_PRELOAD, before a shim built without ASan."""
    out = subprocess.run(["ldd", exe], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "libasan" in line and "=>" in line:
            return line.split("=>")[1].split()[0]
    return None


class SlowNssEnvironment(Environment):
    def start_daemon(self, timeout=20.0):
        preload = [slow_nss_library()]
        asan = asan_runtime(qmachined_binary())
        if asan:
            preload.insert(0, asan)
        saved = {k: os.environ.get(k) for k in ("LD_PRELOAD", "QM_SLOW_NSS_USER", "QM_SLOW_NSS_SECONDS")}
        os.environ.update(LD_PRELOAD=":".join(preload), QM_SLOW_NSS_USER=SLOW_USER,
                          QM_SLOW_NSS_SECONDS=str(SLOW))
        try:
            return super().start_daemon(timeout)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


class SlowNssTest(qmtest.QMTestCase):
    environment_class = SlowNssEnvironment

    def setUp(self):
        try:
            pwd.getpwnam(SLOW_USER)
        except KeyError:
            self.skipTest("no user %s" % SLOW_USER)
        super().setUp()

    def shim_calls(self):
        return self.env.daemon_output().count("slow-nss: ")

    def slow_machine(self, name):
        """A machine of SLOW_USER (its creation looks the user up too)."""
        return self.create_none_machine(name, user=SLOW_USER)

    def timed(self, fn, *args, **kwargs):
        t = time.monotonic()
        r = fn(*args, **kwargs)
        return r, time.monotonic() - t

    def assert_quick(self, fn, *args, **kwargs):
        r, took = self.timed(fn, *args, **kwargs)
        self.assertLess(took, QUICK, "%s answered in %.2f s while a user lookup was pending"
                        % (getattr(fn, "__name__", fn), took))
        return r

    def test_main_loop_answers_during_launch_lookup(self):
        fast = self.create_none_machine("fast")
        self.launch(fast)
        slow = self.slow_machine("slow")
        other = self.env.connect()  # another client

        before = self.shim_calls()
        t0 = time.monotonic()
        launch = self.call_async(slow, MACHINE_IFACE, "Launch", None, "()")
        time.sleep(0.3)  # the daemon has taken the Launch and is looking up
        machines = self.assert_quick(self.call, MANAGER_PATH, MANAGER_IFACE, "ListMachines", None,
                                     "(a(ssuo))", conn=other)
        self.assertEqual(sorted(m[0] for m in machines), ["fast", "slow"])
        status = self.assert_quick(self.qmp, fast, "query-status", conn=other)
        self.assertEqual(status["return"]["status"], "running")
        self.assertEqual(self.assert_quick(self.mprop, slow, "State"), "starting")
        self.assertLess(time.monotonic() - t0, LOOKUP, "too slow to tell: the lookup may be over")
        # a second Launch meanwhile starts no second QEMU
        self.expect_error(err("AlreadyRunning"), self.launch, slow)

        launch.wait(LOOKUP + 60)
        took = launch.finished_at - t0
        self.assertGreaterEqual(took, LOOKUP - 0.5, "the Launch did not wait for the lookup: no shim?")
        self.assertGreater(self.shim_calls(), before, "the shim never slowed a lookup")
        self.assertEqual(self.mprop(slow, "State"), "running")
        pid = self.mprop(slow, "Pid")
        with open("/proc/%d/status" % pid) as f:
            uid = [line.split()[1] for line in f if line.startswith("Uid:")][0]
        self.assertEqual(int(uid), pwd.getpwnam(SLOW_USER).pw_uid)
        self.assertEqual(sorted(self.qemu_pids()), sorted([pid, self.mprop(fast, "Pid")]))
        self.kill(slow)
        self.kill(fast)

    def test_main_loop_answers_during_create_and_update_lookups(self):
        other = self.env.connect()
        plain = self.create_none_machine("plain")

        # CreateMachine (so CloneMachine too: the same path) checks its user
        before = self.shim_calls()
        t0 = time.monotonic()
        create = self.call_async(MANAGER_PATH, MANAGER_IFACE, "CreateMachine",
                                 GLib.Variant("(sa{sv})", ("slow", config_variant(
                                     {"args": none_args(), "user": SLOW_USER}))), "(o)")
        time.sleep(0.3)
        machines = self.assert_quick(self.call, MANAGER_PATH, MANAGER_IFACE, "ListMachines", None,
                                     "(a(ssuo))", conn=other)
        self.assertEqual([m[0] for m in machines], ["plain"])
        self.assertLess(time.monotonic() - t0, LOOKUP, "too slow to tell: the lookup may be over")
        slow = create.wait(LOOKUP + 60)
        self.assertGreaterEqual(create.finished_at - t0, LOOKUP - 0.5, "no slow lookup: no shim?")
        self.assertGreater(self.shim_calls(), before)
        self.assertEqual(self.mprop(slow, "Config")["user"], SLOW_USER)

        # UpdateMachine to that user
        t0 = time.monotonic()
        update = self.call_async(MANAGER_PATH, MANAGER_IFACE, "UpdateMachine",
                                 GLib.Variant("(sa{sv})", ("plain", {"user": GLib.Variant("s", SLOW_USER)})),
                                 "()")
        time.sleep(0.3)
        self.assert_quick(self.mprop, plain, "State")
        self.assertLess(time.monotonic() - t0, LOOKUP, "too slow to tell: the lookup may be over")
        update.wait(LOOKUP + 60)
        self.assertGreaterEqual(update.finished_at - t0, LOOKUP - 0.5)
        self.assertEqual(self.mprop(plain, "Config")["user"], SLOW_USER)
        # a user that does not exist is still refused, as before
        self.expect_error(INVALID_ARGS, self.create_none_machine,
                          "bad", user="no-such-user-qmachined")

    def test_kill_and_remove_during_launch_lookup(self):
        slow = self.slow_machine("slow")
        t0 = time.monotonic()
        launch = self.call_async(slow, MACHINE_IFACE, "Launch", None, "()")
        time.sleep(0.3)
        # starting: not to be removed (Busy), as with QEMU started
        self.expect_error(err("Busy"), self.manager, "RemoveMachine", GLib.Variant("(s)", ("slow",)))
        self.assert_quick(self.kill, slow)
        with self.assertRaises(DBusCallError) as cm:
            launch.wait(30)
        self.assertEqual(cm.exception.name, err("LaunchFailed"), cm.exception.text)
        self.assertIn("shut down while starting", cm.exception.text)
        self.assertLess(time.monotonic() - t0, LOOKUP, "the Kill waited for the lookup")
        self.assertEqual(self.mprop(slow, "State"), "failed")
        self.assertEqual(self.mprop(slow, "Pid"), 0)
        # the lookup ends; no QEMU starts after all
        time.sleep(LOOKUP + 0.5)
        self.assertIn("slow-nss: ", self.env.daemon_output())
        self.assertEqual(self.mprop(slow, "State"), "failed")
        self.assertEqual(self.qemu_pids(), [])
        self.manager("RemoveMachine", GLib.Variant("(s)", ("slow",)))
        self.assert_daemon_answers(0)
        self.assert_no_test_processes()

    def test_daemon_stops_during_launch_lookup(self):
        slow = self.create_none_machine("slow", user=SLOW_USER, persistent=True)
        launch = self.call_async(slow, MACHINE_IFACE, "Launch", None, "()")
        time.sleep(0.3)
        t0 = time.monotonic()
        self.assertEqual(self.restart_daemon(), 0)  # stops at once, cleanly
        self.assertLess(time.monotonic() - t0, LOOKUP, "the daemon waited for the lookup to stop")
        with self.assertRaises(DBusCallError):
            launch.wait(30)
        # the definition is back, not running, and no QEMU started
        time.sleep(LOOKUP)
        self.assertIn(self.mprop(slow, "State"), ("defined", "failed"))
        self.assertEqual(self.qemu_pids(), [])
        self.assert_daemon_answers(1)


if __name__ == "__main__":
    qmtest.main()
