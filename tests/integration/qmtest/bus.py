# SPDX-License-Identifier: LGPL-2.1-or-later
"""The private buses, the polkit mock and the daemon: Environment.

The system bus's configuration includes the project's real policy file
(data/org.qmachine.QMachine1.conf), so that the tests check the policy we
ship; bench/bench.py starts its bus with the same configuration.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time

import gi

gi.require_version("Gio", "2.0")
gi.require_version("GLib", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

from .calls import ask_bus, convert_error, unpack_reply  # noqa: E402
from .names import BUS_NAME  # noqa: E402
from .processes import (all_pids, children_of, is_qemu_process,  # noqa: E402
                        proc_cmdline, proc_read, proc_stat, reap, reap_all_children,
                        stop_process)

POLKIT_NAME = "org.freedesktop.PolicyKit1"
POLKIT_PATH = "/org/freedesktop/PolicyKit1/Authority"
POLKIT_IFACE = "org.freedesktop.PolicyKit1.Authority"
MOCK_IFACE = "org.freedesktop.DBus.Mock"


def source_root():
    root = os.environ.get("QMACHINED_SOURCE_ROOT")
    if root:
        return os.path.abspath(root)
    # this file is SOURCE_ROOT/tests/integration/qmtest/bus.py
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.dirname(os.path.dirname(os.path.dirname(here)))


def qmachined_binary():
    exe = os.environ.get("QMACHINED")
    if exe:
        return os.path.abspath(exe)
    return os.path.join(source_root(), "build", "src", "qmachined", "qmachined")


def policy_file():
    """The bus policy we ship, in the source tree."""
    return os.path.join(source_root(), "data", "org.qmachine.QMachine1.conf")


# Every private bus: its type, its socket, EXTERNAL auth; then a policy;
# then the limits (tests pipeline many calls on one connection).
BUS_CONFIG_HEAD = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>{type}</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
"""
BUS_CONFIG_TAIL = """  <limit name="max_replies_per_connection">50000</limit>
  <limit name="reply_timeout">300000</limit>
</busconfig>
"""


def bus_config(bus_type, socket, policy_text):
    return (BUS_CONFIG_HEAD.format(type=bus_type, socket=socket) + policy_text
            + BUS_CONFIG_TAIL)


SYSTEM_BUS_POLICY = """
  <!-- The default policy of Debian's system bus: nobody owns names and
       method calls are denied unless a service's policy punches a hole. -->
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus"
          send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>

  <!-- Test doubles (the polkit mock) and helpers: owned by root. -->
{services}
  <!-- The policy we ship. -->
  <include>{policy}</include>

"""

# The hole a test double or helper service gets in the default policy:
# root owns it, everybody may call it.
SERVICE_POLICY = """  <policy user="root">
    <allow own="{name}"/>
  </policy>
  <policy context="default">
    <allow send_destination="{name}"/>
  </policy>
"""


def system_bus_config(socket, policy, services=(POLKIT_NAME,)):
    """A system bus listening on socket, with Debian's default policy, the
    policy file we ship and a hole for each of services."""
    holes = "".join(SERVICE_POLICY.format(name=n) for n in services)
    return bus_config("system", socket,
                      SYSTEM_BUS_POLICY.format(policy=policy, services=holes))


def start_dbus_daemon(conf, text, log=None):
    """Write the configuration text to the file conf and start a
    dbus-daemon with it (stderr to log). Returns (Popen, address); the
    address is empty when the bus did not start. The caller stops it."""
    with open(conf, "w") as f:
        f.write(text)
    proc = subprocess.Popen(
        ["dbus-daemon", "--nofork", "--print-address=1", "--config-file=" + conf],
        stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
    return proc, proc.stdout.readline().decode().strip()


def stop_dbus_daemon(proc):
    """Stop a dbus-daemon that start_dbus_daemon started (None: nothing)."""
    if proc is None:
        return
    stop_process(proc)
    proc.stdout.close()


# A session bus for `qmachined --session`: everybody may connect (a session
# bus lets only its own user in by default), so that the daemon, not the bus,
# has to turn other users away.
SESSION_BUS_POLICY = """  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
"""


def session_bus_config(socket):
    return bus_config("session", socket, SESSION_BUS_POLICY)

def read_log(path):
    """A log file's text ("" when there is none yet)."""
    if path is None:
        return ""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


class PolkitMock:
    """python-dbusmock's polkitd template on the private system bus.

    It allows nothing until told otherwise (set_allowed, allow_unknown) and
    logs every CheckAuthorization call (check_calls)."""

    def __init__(self, env):
        self.env = env
        self.proc = None
        self.conn = None
        self.log = None

    def start(self, timeout=20.0):
        env = dict(os.environ)
        env["DBUS_SYSTEM_BUS_ADDRESS"] = self.env.system_address
        self.log_path = self.env.path("polkit-mock.log")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", "-m", "dbusmock", "--system", "--template", "polkitd"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            env=env, cwd="/")
        if self.conn is None:
            self.conn = self.env.connect(self.env.system_address)
        deadline = time.monotonic() + timeout
        while not self.owned():
            rc = self.proc.poll()
            if rc is not None:
                raise RuntimeError("polkit mock exited with %d:\n%s" % (rc, self.output()))
            if time.monotonic() > deadline:
                raise RuntimeError("polkit mock did not own %s within %.0f s:\n%s"
                                   % (POLKIT_NAME, timeout, self.output()))
            time.sleep(0.01)

    def owned(self):
        return bool(ask_bus(self.conn, "NameHasOwner", POLKIT_NAME, "(b)"))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10.0):
        """Terminate the mock, wait for it and for its name to go away."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.log is not None:
            self.log.close()
            self.log = None
        if self.conn is not None and not self.conn.is_closed():
            deadline = time.monotonic() + timeout
            while self.owned() and time.monotonic() < deadline:
                time.sleep(0.01)

    def output(self):
        return read_log(getattr(self, "log_path", None))

    def call(self, method, args=None, reply_type=None):
        try:
            r = self.conn.call_sync(POLKIT_NAME, POLKIT_PATH, MOCK_IFACE, method, args,
                                    GLib.VariantType.new(reply_type) if reply_type else None,
                                    Gio.DBusCallFlags.NONE, 10000, None)
        except GLib.Error as e:
            raise convert_error(e) from None
        return unpack_reply(r)

    def set_allowed(self, actions):
        """Allow exactly these action ids (short names get the
        org.qmachine.QMachine1. prefix)."""
        actions = [a if "." in a else BUS_NAME + "." + a for a in actions]
        self.call("SetAllowed", GLib.Variant("(as)", (actions,)))

    def allow_unknown(self, allow):
        self.call("AllowUnknown", GLib.Variant("(b)", (allow,)))

    def simulate_hang(self, hang):
        """Leave CheckAuthorization calls unanswered (until release_hanging)."""
        self.call("SimulateHang", GLib.Variant("(b)", (hang,)))

    def release_hanging(self):
        self.call("ReleaseHangingCalls")

    def check_calls(self):
        """Arguments of every CheckAuthorization call so far, oldest first:
        (subject, action_id, details, flags, cancellation_id) tuples."""
        calls = self.call("GetMethodCalls", GLib.Variant("(s)", ("CheckAuthorization",)),
                          "(a(tav))")
        return [tuple(args) for _ts, args in calls]

    def clear_calls(self):
        self.call("ClearCalls")


class ServiceMock:
    """A python-dbusmock service on the private system bus: a template's
    (template="systemd"), or an empty object at path with the main
    interface iface that add_method fills. Every call is logged
    (method_calls). The Environment starts the ones its service_mocks
    name before the daemon and stops them at the end."""

    def __init__(self, env, name, path, iface, template=None):
        self.env = env
        self.name = name
        self.obj_path = path
        self.iface = iface
        self.template = template
        self.proc = None
        self.conn = None
        self.log = None
        self.log_path = None

    def command(self):
        cmd = ["/usr/bin/python3", "-m", "dbusmock", "--system"]
        if self.template:
            return cmd + ["--template", self.template]
        return cmd + [self.name, self.obj_path, self.iface]

    def start(self, timeout=20.0):
        env = dict(os.environ)
        env["DBUS_SYSTEM_BUS_ADDRESS"] = self.env.system_address
        self.log_path = self.env.path("mock-%s.log" % self.name)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env, cwd="/")
        if self.conn is None:
            self.conn = self.env.connect(self.env.system_address)
        deadline = time.monotonic() + timeout
        while not ask_bus(self.conn, "NameHasOwner", self.name, "(b)"):
            rc = self.proc.poll()
            if rc is not None:
                raise RuntimeError("mock of %s exited with %d:\n%s"
                                   % (self.name, rc, read_log(self.log_path)))
            if time.monotonic() > deadline:
                raise RuntimeError("mock of %s did not own its name within %.0f s:\n%s"
                                   % (self.name, timeout, read_log(self.log_path)))
            time.sleep(0.01)

    def stop(self, timeout=10.0):
        """Terminate the mock and wait for it."""
        stop_process(self.proc, timeout=timeout)
        self.proc = None
        if self.log is not None:
            self.log.close()
            self.log = None

    def call(self, method, args=None, reply_type=None):
        """A method of the mock's Mock interface."""
        try:
            r = self.conn.call_sync(self.name, self.obj_path, MOCK_IFACE, method, args,
                                    GLib.VariantType.new(reply_type) if reply_type else None,
                                    Gio.DBusCallFlags.NONE, 10000, None)
        except GLib.Error as e:
            raise convert_error(e) from None
        return unpack_reply(r)

    def add_method(self, name, in_sig, out_sig, code):
        """A method of the main interface that runs the Python code (dbusmock's AddMethod)."""
        self.call("AddMethod", GLib.Variant("(sssss)", ("", name, in_sig, out_sig, code)))

    def method_calls(self, method):
        """The arguments of every call of method so far, oldest first."""
        calls = self.call("GetMethodCalls", GLib.Variant("(s)", (method,)), "(a(tav))")
        return [list(args) for _ts, args in calls]


SANITIZER_PATTERNS = [
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "-CRITICAL **",
]


class Environment:
    """Temp dir + private system bus + qmachined.

    polkit=True also starts the polkit mock (self.polkit, a PolkitMock) on
    the system bus before the daemon; so are the ServiceMocks that a
    subclass's service_mocks makes (self.mocks, by bus name). session=True also starts a private
    session bus and runs the daemon with --session on it; self.address
    (what connect() uses) is then the session bus, self.system_address is
    always the system bus.
    """

    # (name, path, iface, template) of the ServiceMocks to start.
    service_mocks = ()

    def __init__(self, daemon_args=(), polkit=False, session=False):
        self.daemon_args = list(daemon_args)
        self.want_polkit = polkit
        self.session = session
        self.polkit = None
        self.mocks = {}
        self.session_bus = None
        self.system_address = None
        self.session_address = None
        self.tmp = None
        self.bus = None
        self.daemon = None
        self.address = None
        self.connections = []
        self.problems = []
        self.daemon_unique_name = None

    # -- setup

    def start(self):
        self.tmp = tempfile.mkdtemp(prefix="qmtest-")
        os.chmod(self.tmp, 0o755)
        for d in ("bus", "state", "run", "log", "scripts"):
            os.mkdir(os.path.join(self.tmp, d))
            os.chmod(os.path.join(self.tmp, d), 0o755)
        self.start_bus()
        if self.session:
            self.start_session_bus()
        if self.want_polkit:
            self.start_polkit()
        self.start_service_mocks()
        self.start_daemon()

    def start_service_mocks(self):
        for name, path, iface, template in self.service_mocks:
            self.mocks[name] = ServiceMock(self, name, path, iface, template)
            self.mocks[name].start()
        self.prepare_service_mocks()

    def prepare_service_mocks(self):
        """Hook: give the started mocks their methods."""

    def start_polkit(self):
        if self.polkit is None:
            self.polkit = PolkitMock(self)
        self.polkit.start()
        return self.polkit

    def start_session_bus(self):
        socket = self.path("bus", "session_bus_socket")
        with open(self.path("bus", "dbus-daemon-session.log"), "wb") as log:
            self.session_bus, address = start_dbus_daemon(
                self.path("bus", "session.conf"),
                session_bus_config(socket), log)
        if not address:
            raise RuntimeError("session dbus-daemon did not start (exit %s)"
                               % self.session_bus.poll())
        self.session_address = address
        self.address = address

    def start_bus(self):
        socket = self.path("bus", "system_bus_socket")
        policy = policy_file()
        if not os.path.exists(policy):
            raise RuntimeError("policy file missing: " + policy)
        with open(self.path("bus", "dbus-daemon.log"), "wb") as log:
            self.bus, line = start_dbus_daemon(
                self.path("bus", "system.conf"),
                system_bus_config(socket, policy,
                                  (POLKIT_NAME,) + tuple(m[0] for m in self.service_mocks)),
                log)
        if not line:
            raise RuntimeError("dbus-daemon did not start (exit %s)"
                               % self.bus.poll())
        self.address = line
        self.system_address = line
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = self.address

    def daemon_command(self):
        bus = "--session" if self.session else "--bus-address=" + self.address
        return [qmachined_binary(),
                bus,
                "--state-dir=" + self.path("state"),
                "--runtime-dir=" + self.path("run"),
                "--log-dir=" + self.path("log")] + self.daemon_args

    def start_daemon(self, timeout=20.0):
        exe = qmachined_binary()
        if not os.access(exe, os.X_OK):
            raise RuntimeError("qmachined binary not found: %s (set QMACHINED)" % exe)
        env = dict(os.environ)
        env["DBUS_SYSTEM_BUS_ADDRESS"] = self.system_address
        if self.session:
            env["DBUS_SESSION_BUS_ADDRESS"] = self.session_address
        self.daemon_log_path = self.path("daemon.log")
        self.daemon_log = open(self.daemon_log_path, "ab")
        self.daemon = subprocess.Popen(
            self.daemon_command(), stdin=subprocess.DEVNULL,
            stdout=self.daemon_log, stderr=subprocess.STDOUT, env=env)
        conn = self.connect()
        deadline = time.monotonic() + timeout
        while True:
            owner = self.name_owner(conn)
            if owner:
                self.daemon_unique_name = owner
                return
            rc = self.daemon.poll()
            if rc is not None:
                raise RuntimeError("qmachined exited with %d before owning %s:\n%s"
                                   % (rc, BUS_NAME, self.daemon_output()))
            if time.monotonic() > deadline:
                raise RuntimeError("qmachined did not own %s within %.0f s:\n%s"
                                   % (BUS_NAME, timeout, self.daemon_output()))
            time.sleep(0.01)

    def name_owner(self, conn):
        return ask_bus(conn, "GetNameOwner", BUS_NAME, "(s)")

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def connect(self, address=None):
        """A new connection to the private bus (registered with Hello);
        address picks another bus (self.system_address)."""
        conn = Gio.DBusConnection.new_for_address_sync(
            address or self.address,
            Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
            | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
            None, None)
        conn.set_exit_on_close(False)
        self.connections.append(conn)
        return conn

    def daemon_output(self):
        return read_log(getattr(self, "daemon_log_path", None))

    # -- teardown

    def daemon_zombies(self):
        if self.daemon is None:
            return []
        return [p for p, state in children_of(self.daemon.pid) if state == "Z"]

    def leftover_pids(self):
        """Processes that belong to this test, other than its buses and
        mocks: descendants of this process (the daemon, its QEMUs, and
        QEMUs orphaned by a daemon that exited: we are their subreaper),
        and anything naming our temp dir in its command line or
        environment. QEMU gets a clean environment, so the tree is what
        finds it."""
        mine = {os.getpid()} | self.foreign_pids()
        for proc in (self.bus, self.session_bus,
                     self.polkit.proc if self.polkit is not None else None,
                     *(m.proc for m in self.mocks.values())):
            if proc is not None:
                mine.add(proc.pid)
        needle = self.tmp.encode()
        parents = {}
        for pid in all_pids():
            st = proc_stat(pid)
            if st is not None:
                parents[pid] = st[1]
        out = []
        for pid in parents:
            if pid in mine:
                continue
            p, depth = parents.get(pid), 0
            while p and p not in mine and depth < 64:
                p, depth = parents.get(p), depth + 1
            if p == os.getpid():
                out.append(pid)
                continue
            cmd = proc_read(pid, "cmdline") or b""
            envb = proc_read(pid, "environ") or b""
            if needle in cmd or needle in envb:
                out.append(pid)
        return out

    def foreign_pids(self):
        """Hook: processes of this test that belong to another Environment
        (qmtest.twohost runs two): leftover_pids() and reap_orphans() leave
        them and their descendants alone."""
        return set()

    def stop_daemon(self, check=True):
        """SIGTERM the daemon and wait; returns its exit code."""
        if self.daemon is None:
            return None
        # Every child that exited must have been reaped by the daemon.
        deadline = time.monotonic() + 3.0
        zombies = self.daemon_zombies()
        while zombies and time.monotonic() < deadline:
            time.sleep(0.05)
            zombies = self.daemon_zombies()
        if zombies and check:
            self.problems.append("qmachined left zombie children: %s"
                                 % ", ".join("%d %s" % (z, proc_cmdline(z)) for z in zombies))
        rc = self.daemon.poll()
        if rc is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                rc = self.daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.problems.append("qmachined did not exit within 15 s of SIGTERM")
                self.daemon.kill()
                rc = self.daemon.wait()
        elif check:
            self.problems.append("qmachined died during the test (exit %d)" % rc)
        if check and rc != 0:
            self.problems.append("qmachined exited with %d after SIGTERM" % rc)
        self.daemon_log.close()
        out = self.daemon_output()
        for pat in SANITIZER_PATTERNS:
            if check and pat in out:
                self.problems.append("qmachined output contains %r" % pat)
        self.daemon = None
        return rc

    # -- restarting the daemon within one test

    def signal_daemon(self, sig=signal.SIGKILL, timeout=15.0):
        """End the daemon with a signal (default SIGKILL: a crash), wait for
        it and return its exit status (-N for signal N). Unlike stop_daemon
        it checks nothing: the VMs it ran stay, orphaned to this process
        (a subreaper), until a new daemon takes them back or teardown kills
        them."""
        if self.daemon is None:
            return None
        if self.daemon.poll() is None:
            self.daemon.send_signal(sig)
        try:
            rc = self.daemon.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.problems.append("qmachined did not exit within %.0f s of signal %d"
                                 % (timeout, sig))
            self.daemon.kill()
            rc = self.daemon.wait()
        self.daemon_log.close()
        self.daemon = None
        self.daemon_unique_name = None
        return rc

    def restart_daemon(self, sig=signal.SIGTERM, daemon_args=None):
        """Stop the daemon with sig and start a new one on the same bus and
        directories (with other daemon_args when given). SIGTERM goes
        through stop_daemon and its checks (exit 0, no zombies); any other
        signal through signal_daemon. Returns the old daemon's exit status."""
        if sig == signal.SIGTERM:
            rc = self.stop_daemon()
        else:
            rc = self.signal_daemon(sig)
        if daemon_args is not None:
            self.daemon_args = list(daemon_args)
        self.start_daemon()
        return rc

    def qemu_pids(self):
        """Live QEMU processes of this test, whoever their parent is."""
        return sorted(p for p in self.leftover_pids() if is_qemu_process(p))

    def reap_orphans(self):
        """Reap exited children of this process that no Popen here owns:
        VMs orphaned by a daemon that exited, handed to us as subreaper."""
        keep = self.foreign_pids()
        for proc in (self.daemon, self.bus, self.session_bus,
                     self.polkit.proc if self.polkit is not None else None,
                     *(m.proc for m in self.mocks.values())):
            if proc is not None:
                keep.add(proc.pid)
        reaped = []
        for pid, state in children_of(os.getpid()):
            if pid in keep or state != "Z":
                continue
            try:
                r, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            if r == pid:
                reaped.append(pid)
        return reaped

    def kill_leftovers(self):
        pids = self.leftover_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in pids:
            reap(pid)
        reap_all_children()
        return pids

    def stop(self, check=True):
        for conn in self.connections:
            try:
                conn.close_sync(None)
            except GLib.Error:
                pass
        self.connections = []
        # Let queued callbacks of closed connections run.
        ctx = GLib.MainContext.default()
        while ctx.pending():
            ctx.iteration(False)
        try:
            self.stop_daemon(check=check)
        finally:
            if self.polkit is not None:
                self.polkit.stop()
            for mock in self.mocks.values():
                mock.stop()
            self.kill_leftovers()
            stop_dbus_daemon(self.session_bus)
            self.session_bus = None
            stop_dbus_daemon(self.bus)
            self.bus = None
            reap_all_children()
            if self.tmp and os.environ.get("QMACHINED_TEST_KEEP") != "1":
                shutil.rmtree(self.tmp, ignore_errors=True)

