"""Shared harness for the qmachined integration tests.

Every test gets its own temporary directory, a private dbus-daemon of the
*system* type whose configuration includes the project's real policy file
(data/org.qmachine.QMachine1.conf), and its own qmachined on that bus.
Teardown stops the daemon with SIGTERM (which must exit 0), then kills by
PID every process the test left behind (VMs outlive the daemon on purpose)
and reaps them, then stops the bus and removes the directory.

Run the tests with Debian's /usr/bin/python3 (it has gi, dbus, dbusmock).

Environment:
  QMACHINED              path of the qmachined binary (default:
                         SOURCE_ROOT/build/src/qmachined/qmachined)
  QMACHINED_SOURCE_ROOT  the source tree (default: two levels up)
  QMACHINED_TEST_KVM     1 forces KVM, 0 forces TCG (default: KVM only when
                         the CPU has vmx or svm and /dev/kvm exists)
  QMACHINED_TEST_KEEP    1 keeps the temporary directory of each test
"""

import ctypes
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import unittest

import gi

gi.require_version("Gio", "2.0")
gi.require_version("GLib", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

BUS_NAME = "org.qmachine.QMachine1"
MANAGER_PATH = "/org/qmachine/QMachine1"
MANAGER_IFACE = "org.qmachine.QMachine1.Manager"
MACHINE_IFACE = "org.qmachine.QMachine1.Machine"
MACHINE_PATH_PREFIX = "/org/qmachine/QMachine1/machine/"
PROPS_IFACE = "org.freedesktop.DBus.Properties"
OM_IFACE = "org.freedesktop.DBus.ObjectManager"
ERROR_PREFIX = "org.qmachine.QMachine1.Error."
INVALID_ARGS = "org.freedesktop.DBus.Error.InvalidArgs"
ACCESS_DENIED = "org.freedesktop.DBus.Error.AccessDenied"
UNKNOWN_OBJECT = "org.freedesktop.DBus.Error.UnknownObject"

# Types of the machine config keys (API.md, "Machine config").
CONFIG_TYPES = {
    "binary": "s",
    "args": "as",
    "wrapper": "as",
    "machine": "s",
    "qmp": "b",
    "console": "b",
    "console-device": "s",
    "console-index": "u",
    "qmp-timeout": "d",
    "persistent": "b",
    "uuid": "s",
    "incoming": "s",
    "nics": "u",
    "description": "s",
}

PR_SET_CHILD_SUBREAPER = 36


def path_encode(name):
    """sd_bus_path_encode() of a machine name: every byte that is not
    [A-Za-z0-9] (and a leading digit) becomes _XX in lower-case hex."""
    if name == "":
        return "_"
    out = []
    for i, b in enumerate(name.encode()):
        c = chr(b)
        if (c.isascii() and c.isalpha()) or (i > 0 and c.isascii() and c.isdigit()):
            out.append(c)
        else:
            out.append("_%02x" % b)
    return "".join(out)


def machine_path(name):
    return MACHINE_PATH_PREFIX + path_encode(name)


def err(name):
    """Full D-Bus error name of one of our errors."""
    return ERROR_PREFIX + name


# --------------------------------------------------------------------------
# Process helpers


def set_subreaper():
    """Make this process reap the orphans of everything it starts.

    PID 1 on the test machines does not reap; QEMUs orphaned by a daemon
    that exits must become our children so that their exit is reaped.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "prctl(PR_SET_CHILD_SUBREAPER): " + os.strerror(e))


set_subreaper()


def source_root():
    root = os.environ.get("QMACHINED_SOURCE_ROOT")
    if root:
        return os.path.abspath(root)
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.dirname(os.path.dirname(here))


def qmachined_binary():
    exe = os.environ.get("QMACHINED")
    if exe:
        return os.path.abspath(exe)
    return os.path.join(source_root(), "build", "src", "qmachined", "qmachined")


def proc_read(pid, what):
    try:
        with open("/proc/%d/%s" % (pid, what), "rb") as f:
            return f.read()
    except OSError:
        return None


def proc_stat(pid):
    """(state, ppid) of a process, or None when it is gone."""
    data = proc_read(pid, "stat")
    if data is None:
        return None
    rest = data[data.rfind(b")") + 2:].split()
    return rest[0].decode(), int(rest[1])


def proc_cmdline(pid):
    data = proc_read(pid, "cmdline")
    if data is None:
        return None
    return [a.decode("utf-8", "replace") for a in data.split(b"\0")[:-1]]


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def pid_alive(pid):
    """True while the process exists and is not a zombie."""
    st = proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def is_qemu_process(pid):
    cmd = proc_cmdline(pid)
    return bool(cmd) and "qemu-system" in os.path.basename(cmd[0]) and pid_alive(pid)


def children_of(pid):
    out = []
    for p in all_pids():
        st = proc_stat(p)
        if st is not None and st[1] == pid:
            out.append((p, st[0]))
    return out


def reap(pid, timeout=10.0):
    """Wait for a process to disappear; reap it when it is our child."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            r, _ = os.waitpid(pid, os.WNOHANG)
            if r == pid:
                return True
        except ChildProcessError:
            if proc_stat(pid) is None:
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def reap_all_children():
    """Reap every exited child (orphans handed to us as subreaper)."""
    while True:
        try:
            r, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if r == 0:
            return


# --------------------------------------------------------------------------
# QEMU acceleration


def kvm_usable():
    """KVM vs TCG, as TESTING.md says: CPU flags plus an override."""
    override = os.environ.get("QMACHINED_TEST_KVM")
    if override in ("0", "1"):
        return override == "1"
    try:
        with open("/proc/cpuinfo") as f:
            cpuinfo = f.read()
    except OSError:
        return False
    if not re.search(r"\b(vmx|svm)\b", cpuinfo):
        return False
    return os.path.exists("/dev/kvm")


def accel():
    return "kvm" if kvm_usable() else "tcg"


def accel_args():
    """Arguments that select the accelerator, for a machine's `args`."""
    return ["-accel", accel()]


def none_args():
    """Args of the cheapest QEMU: no machine at all, QMP only."""
    return ["-machine", "none", "-nodefaults"] + accel_args()


def pc_args():
    """Args of a real but stopped x86 machine (pc, CPUs not started)."""
    return ["-machine", "pc", "-nodefaults", "-S", "-m", "64"] + accel_args()


# --------------------------------------------------------------------------
# Variants


def config_variant(config):
    """a{sv} from a dict; values get the types of CONFIG_TYPES.

    A value that is a GLib.Variant already is sent as is (to send wrongly
    typed values on purpose). Keys may use underscores for dashes.
    """
    d = {}
    for key, value in config.items():
        key = key.replace("_", "-")
        if isinstance(value, GLib.Variant):
            d[key] = value
            continue
        t = CONFIG_TYPES.get(key)
        if t is None:
            if isinstance(value, bool):
                t = "b"
            elif isinstance(value, int):
                t = "u"
            elif isinstance(value, float):
                t = "d"
            elif isinstance(value, (list, tuple)):
                t = "as"
            else:
                t = "s"
        if t == "d":
            value = float(value)
        d[key] = GLib.Variant(t, value)
    return d


def unpack_reply(v):
    if v is None:
        return None
    r = v.unpack()
    if len(r) == 0:
        return None
    if len(r) == 1:
        return r[0]
    return r


class DBusCallError(Exception):
    """A D-Bus error reply: .name and .text (the message)."""

    def __init__(self, name, text):
        super().__init__("%s: %s" % (name, text))
        self.name = name
        self.text = text


def convert_error(e):
    name = Gio.DBusError.get_remote_error(e)
    msg = e.message
    m = re.match(r"GDBus\.Error:([^ ]+?): (.*)\Z", msg, re.S)
    if m:
        name = name or m.group(1)
        msg = m.group(2)
    if name is None:
        name = "(local) " + e.domain + ":" + str(e.code)
    return DBusCallError(name, msg)


# --------------------------------------------------------------------------
# Main context helpers


def iterate_until(pred, timeout):
    """Run the default main context until pred() is true or the deadline.

    Returns the final value of pred().
    """
    ctx = GLib.MainContext.default()
    deadline = time.monotonic() + timeout
    tick = GLib.timeout_add(20, lambda: True)
    try:
        while True:
            while ctx.pending():
                ctx.iteration(False)
            if pred():
                return True
            if time.monotonic() >= deadline:
                return bool(pred())
            ctx.iteration(True)
    finally:
        GLib.source_remove(tick)


def iterate_for(seconds):
    iterate_until(lambda: False, seconds)


class AsyncCall:
    """A method call in flight; .done, .result (unpacked) or .error."""

    def __init__(self, conn, path, iface, method, args=None, reply_type=None,
                 timeout=60.0, dest=BUS_NAME):
        self.done = False
        self.result = None
        self.error = None
        self.finished_at = None
        self.started_at = time.monotonic()
        rt = GLib.VariantType.new(reply_type) if reply_type else None
        conn.call(dest, path, iface, method, args, rt,
                  Gio.DBusCallFlags.NONE, int(timeout * 1000), None,
                  self._done, None)

    def _done(self, conn, res, _data):
        try:
            self.result = unpack_reply(conn.call_finish(res))
        except GLib.Error as e:
            self.error = convert_error(e)
        self.done = True
        self.finished_at = time.monotonic()

    def wait(self, timeout=60.0):
        """Wait for the reply; returns the result or raises the error."""
        if not iterate_until(lambda: self.done, timeout):
            raise AssertionError("no reply within %.1f s" % timeout)
        if self.error:
            raise self.error
        return self.result


class SignalRecorder:
    """Records signals matching a subscription.

    .signals is a list of (path, interface, member, args-tuple).
    """

    def __init__(self, conn, sender, iface=None, member=None, path=None,
                 arg0=None):
        self.conn = conn
        self.signals = []
        self.sub = conn.signal_subscribe(
            sender, iface, member, path, arg0, Gio.DBusSignalFlags.NONE,
            self._on_signal, None)
        # Make sure the bus has the match rule before anything happens:
        # a round trip to the bus daemon orders it after AddMatch.
        conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus",
                       "org.freedesktop.DBus", "GetId", None, None,
                       Gio.DBusCallFlags.NONE, 5000, None)

    def _on_signal(self, conn, sender, path, iface, member, params, _data):
        self.signals.append((path, iface, member, params.unpack()))

    def wait(self, pred=None, timeout=10.0):
        """Iterate until pred(signals) is true (default: any signal)."""
        if pred is None:
            def pred(s):
                return len(s) > 0
        return iterate_until(lambda: pred(self.signals), timeout)

    def members(self):
        return [s[2] for s in self.signals]

    def args(self, member=None):
        return [s[3] for s in self.signals if member is None or s[2] == member]

    def clear(self):
        self.signals = []

    def close(self):
        if self.sub is not None:
            self.conn.signal_unsubscribe(self.sub)
            self.sub = None


# --------------------------------------------------------------------------
# The private bus and the daemon


BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>

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

  <!-- Test doubles: a polkit mock owned by root. -->
  <policy user="root">
    <allow own="org.freedesktop.PolicyKit1"/>
  </policy>
  <policy context="default">
    <allow send_destination="org.freedesktop.PolicyKit1"/>
  </policy>

  <!-- The policy we ship. -->
  <include>{policy}</include>

  <!-- Tests pipeline many calls on one connection. -->
  <limit name="max_replies_per_connection">50000</limit>
  <limit name="reply_timeout">300000</limit>
</busconfig>
"""

# A session bus for `qmachined --session`: everybody may connect (a session
# bus lets only its own user in by default), so that the daemon, not the bus,
# has to turn other users away.
SESSION_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
  <limit name="max_replies_per_connection">50000</limit>
  <limit name="reply_timeout">300000</limit>
</busconfig>
"""

POLKIT_NAME = "org.freedesktop.PolicyKit1"
POLKIT_PATH = "/org/freedesktop/PolicyKit1/Authority"
POLKIT_IFACE = "org.freedesktop.PolicyKit1.Authority"
MOCK_IFACE = "org.freedesktop.DBus.Mock"


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
        try:
            r = self.conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                    "org.freedesktop.DBus", "NameHasOwner",
                                    GLib.Variant("(s)", (POLKIT_NAME,)),
                                    GLib.VariantType.new("(b)"),
                                    Gio.DBusCallFlags.NONE, 5000, None)
            return r.unpack()[0]
        except GLib.Error:
            return False

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
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, AttributeError):
            return ""

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


SANITIZER_PATTERNS = [
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "-CRITICAL **",
]


class Environment:
    """Temp dir + private system bus + qmachined.

    polkit=True also starts the polkit mock (self.polkit, a PolkitMock) on
    the system bus before the daemon. session=True also starts a private
    session bus and runs the daemon with --session on it; self.address
    (what connect() uses) is then the session bus, self.system_address is
    always the system bus.
    """

    def __init__(self, daemon_args=(), polkit=False, session=False):
        self.daemon_args = list(daemon_args)
        self.want_polkit = polkit
        self.session = session
        self.polkit = None
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
        self.start_daemon()

    def start_polkit(self):
        if self.polkit is None:
            self.polkit = PolkitMock(self)
        self.polkit.start()
        return self.polkit

    def start_session_bus(self):
        socket = os.path.join(self.tmp, "bus", "session_bus_socket")
        conf = os.path.join(self.tmp, "bus", "session.conf")
        with open(conf, "w") as f:
            f.write(SESSION_BUS_CONFIG.format(socket=socket))
        with open(os.path.join(self.tmp, "bus", "dbus-daemon-session.log"), "wb") as log:
            self.session_bus = subprocess.Popen(
                ["dbus-daemon", "--nofork", "--print-address=1",
                 "--config-file=" + conf],
                stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        line = self.session_bus.stdout.readline().decode().strip()
        if not line:
            raise RuntimeError("session dbus-daemon did not start (exit %s)"
                               % self.session_bus.poll())
        self.session_address = line
        self.address = line

    def start_bus(self):
        socket = os.path.join(self.tmp, "bus", "system_bus_socket")
        policy = os.path.join(source_root(), "data", "org.qmachine.QMachine1.conf")
        if not os.path.exists(policy):
            raise RuntimeError("policy file missing: " + policy)
        conf = os.path.join(self.tmp, "bus", "system.conf")
        with open(conf, "w") as f:
            f.write(BUS_CONFIG.format(socket=socket, policy=policy))
        with open(os.path.join(self.tmp, "bus", "dbus-daemon.log"), "wb") as log:
            self.bus = subprocess.Popen(
                ["dbus-daemon", "--nofork", "--print-address=1",
                 "--config-file=" + conf],
                stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        line = self.bus.stdout.readline().decode().strip()
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
        try:
            r = conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus",
                               "org.freedesktop.DBus", "GetNameOwner",
                               GLib.Variant("(s)", (BUS_NAME,)),
                               GLib.VariantType.new("(s)"),
                               Gio.DBusCallFlags.NONE, 5000, None)
            return r.unpack()[0]
        except GLib.Error:
            return None

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
        try:
            with open(self.daemon_log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, AttributeError):
            return ""

    # -- teardown

    def daemon_zombies(self):
        if self.daemon is None:
            return []
        return [p for p, state in children_of(self.daemon.pid) if state == "Z"]

    def leftover_pids(self):
        """Processes that belong to this test: they name our temp dir in
        their command line or environment (QEMU inherits the daemon's
        DBUS_SYSTEM_BUS_ADDRESS, which names it)."""
        mine = {os.getpid()}
        if self.bus is not None:
            mine.add(self.bus.pid)
        if self.session_bus is not None:
            mine.add(self.session_bus.pid)
        needle = self.tmp.encode()
        out = []
        for pid in all_pids():
            if pid in mine:
                continue
            cmd = proc_read(pid, "cmdline") or b""
            envb = proc_read(pid, "environ") or b""
            if needle in cmd or needle in envb:
                out.append(pid)
        return out

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
        keep = set()
        for proc in (self.daemon, self.bus, self.session_bus,
                     self.polkit.proc if self.polkit is not None else None):
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
            self.kill_leftovers()
            if self.session_bus is not None:
                self.session_bus.terminate()
                try:
                    self.session_bus.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.session_bus.kill()
                    self.session_bus.wait()
                self.session_bus.stdout.close()
                self.session_bus = None
            if self.bus is not None:
                self.bus.terminate()
                try:
                    self.bus.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.bus.kill()
                    self.bus.wait()
                self.bus.stdout.close()
                self.bus = None
            reap_all_children()
            if self.tmp and os.environ.get("QMACHINED_TEST_KEEP") != "1":
                shutil.rmtree(self.tmp, ignore_errors=True)


# --------------------------------------------------------------------------
# Test case base class


class QMTestCase(unittest.TestCase):
    """Each test runs against its own bus and daemon.

    self.env   the Environment
    self.conn  a Gio.DBusConnection to the private bus
    """

    daemon_args = ()
    # Start the polkit mock (self.env.polkit) before the daemon.
    polkit_mock = False
    # Run the daemon with --session on a private session bus.
    session_bus = False

    # The Environment class to run (a subclass may wrap the daemon).
    environment_class = None

    def setUp(self):
        cls = self.environment_class or Environment
        self.env = cls(self.daemon_args, polkit=self.polkit_mock,
                       session=self.session_bus)
        try:
            self.env.start()
        except Exception:
            self.env.stop(check=False)
            raise
        self.conn = self.env.connect()
        self.recorders = []

    def tearDown(self):
        for r in self.recorders:
            r.close()
        self.env.stop()
        if self.env.problems:
            out = self.env.daemon_output()
            self.fail("; ".join(self.env.problems) + "\n--- qmachined output ---\n"
                      + out[-20000:])

    # -- calls

    def call(self, path, iface, method, args=None, reply_type=None,
             timeout=60.0, conn=None):
        """Synchronous call; returns the unpacked reply (one value when the
        reply has one, a tuple when more, None when none) or raises
        DBusCallError."""
        conn = conn or self.conn
        rt = GLib.VariantType.new(reply_type) if reply_type else None
        try:
            r = conn.call_sync(BUS_NAME, path, iface, method, args, rt,
                               Gio.DBusCallFlags.NONE, int(timeout * 1000), None)
        except GLib.Error as e:
            raise convert_error(e) from None
        return unpack_reply(r)

    def call_async(self, path, iface, method, args=None, reply_type=None,
                   timeout=60.0, conn=None):
        return AsyncCall(conn or self.conn, path, iface, method, args,
                         reply_type, timeout)

    def expect_error(self, name, fn, *args, **kwargs):
        """Run fn(*args); assert it raises the D-Bus error `name`.
        Returns the error (with .text)."""
        try:
            r = fn(*args, **kwargs)
        except DBusCallError as e:
            self.assertEqual(e.name, name, "wrong error; message: %s" % e.text)
            return e
        self.fail("expected %s, got a reply: %r" % (name, r))

    def manager(self, method, args=None, reply_type=None, **kw):
        return self.call(MANAGER_PATH, MANAGER_IFACE, method, args, reply_type, **kw)

    def machine(self, path, method, args=None, reply_type=None, **kw):
        return self.call(path, MACHINE_IFACE, method, args, reply_type, **kw)

    def get_property(self, path, iface, name, conn=None):
        return self.call(path, PROPS_IFACE, "Get",
                         GLib.Variant("(ss)", (iface, name)), "(v)", conn=conn)

    def get_all(self, path, iface, conn=None):
        return self.call(path, PROPS_IFACE, "GetAll",
                         GLib.Variant("(s)", (iface,)), "(a{sv})", conn=conn)

    def get_property_variant(self, path, iface, name, conn=None):
        """The property's GLib.Variant itself (to check its type)."""
        conn = conn or self.conn
        try:
            r = conn.call_sync(BUS_NAME, path, PROPS_IFACE, "Get",
                               GLib.Variant("(ss)", (iface, name)),
                               GLib.VariantType.new("(v)"),
                               Gio.DBusCallFlags.NONE, 30000, None)
        except GLib.Error as e:
            raise convert_error(e) from None
        return r.get_child_value(0).get_variant()

    def mprop(self, path, name):
        return self.get_property(path, MACHINE_IFACE, name)

    def manager_prop(self, name):
        return self.get_property(MANAGER_PATH, MANAGER_IFACE, name)

    # -- machines

    def create_machine(self, name, **config):
        """CreateMachine(name, config) → object path. Keyword arguments are
        config keys (underscores stand for dashes)."""
        return self.manager("CreateMachine",
                            GLib.Variant("(sa{sv})", (name, config_variant(config))),
                            "(o)")

    def create_none_machine(self, name, **config):
        """A `-machine none` QEMU, the fastest one to launch."""
        args = none_args() + list(config.pop("args", []))
        return self.create_machine(name, args=args, **config)

    def launch(self, path, timeout=60.0):
        return self.machine(path, "Launch", None, "()", timeout=timeout)

    def qmp(self, path, command, arguments="", conn=None):
        r = self.call(path, MACHINE_IFACE, "Qmp",
                      GLib.Variant("(ss)", (command, arguments)), "(s)", conn=conn)
        return json.loads(r)

    def command(self, path, command, arguments="", conn=None):
        r = self.call(path, MACHINE_IFACE, "Command",
                      GLib.Variant("(ss)", (command, arguments)), "(s)", conn=conn)
        return json.loads(r)

    def shutdown(self, path, hard=False, timeout=10.0):
        return self.machine(path, "Shutdown", GLib.Variant("(bd)", (hard, float(timeout))),
                            "()", timeout=max(30.0, timeout + 30.0))

    def kill(self, path):
        return self.machine(path, "Kill", None, "()")

    def wait_event(self, path, filters, after=0, timeout=10.0, conn=None):
        """WaitEvent; filters is a list of (name, match) with match a str
        or a dict (JSON-encoded here). Returns (seq, event dict or None)."""
        fl = [(n, m if isinstance(m, str) else json.dumps(m)) for n, m in filters]
        call_timeout = 60.0 if timeout < 0 else timeout + 30.0
        seq, ev = self.call(path, MACHINE_IFACE, "WaitEvent",
                            GLib.Variant("(a(ss)td)", (fl, after, float(timeout))),
                            "(ts)", timeout=call_timeout, conn=conn)
        return seq, (json.loads(ev) if ev else None)

    def wait_event_async(self, path, filters, after=0, timeout=10.0, conn=None):
        fl = [(n, m if isinstance(m, str) else json.dumps(m)) for n, m in filters]
        call_timeout = 120.0 if timeout < 0 else timeout + 30.0
        return self.call_async(path, MACHINE_IFACE, "WaitEvent",
                               GLib.Variant("(a(ss)td)", (fl, after, float(timeout))),
                               "(ts)", timeout=call_timeout, conn=conn)

    def get_events(self, path, after=0):
        return [(seq, json.loads(ev)) for seq, ev in
                self.machine(path, "GetEvents", GLib.Variant("(t)", (after,)), "(a(ts))")]

    def wait_property(self, path, name, value, timeout=10.0, iface=MACHINE_IFACE):
        """Poll a property until it equals value (or value(v) is true)."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            last = self.get_property(path, iface, name)
            if (value(last) if callable(value) else last == value):
                return last
            if time.monotonic() > deadline:
                self.fail("property %s of %s is %r, expected %r" % (name, path, last, value))
            iterate_for(0.02)

    def record(self, iface=None, member=None, path=None, arg0=None, conn=None):
        """Start recording signals from the daemon."""
        r = SignalRecorder(conn or self.conn, self.env.daemon_unique_name,
                           iface, member, path, arg0)
        self.recorders.append(r)
        return r

    def record_properties(self, path, iface=MACHINE_IFACE, conn=None):
        return self.record(PROPS_IFACE, "PropertiesChanged", path, iface, conn)

    def restart_daemon(self, sig=signal.SIGTERM, daemon_args=None):
        """Environment.restart_daemon; signal recorders made before it
        listen to the old daemon's unique name: record again after it."""
        return self.env.restart_daemon(sig, daemon_args)

    def qemu_pids(self):
        return self.env.qemu_pids()

    def live_test_processes(self):
        """Live processes of this test other than the bus and the daemon
        (QEMUs, scripts): they name the temp dir in argv or environment."""
        skip = set()
        if self.env.daemon is not None:
            skip.add(self.env.daemon.pid)
        return [p for p in self.env.leftover_pids() if p not in skip and pid_alive(p)]

    def assert_no_test_processes(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            left = self.live_test_processes()
            if not left:
                return
            if time.monotonic() > deadline:
                self.fail("processes left: %s" % [(p, proc_cmdline(p)) for p in left])
            time.sleep(0.05)

    def sockets_under(self, directory):
        """Unix sockets below a directory."""
        out = []
        for root, _dirs, files in os.walk(directory):
            for f in files:
                p = os.path.join(root, f)
                try:
                    if stat.S_ISSOCK(os.lstat(p).st_mode):
                        out.append(p)
                except OSError:
                    pass
        return out

    def assert_daemon_answers(self, machine_count=None):
        """The daemon still works: ListMachines answers and MachineCount
        agrees (and equals machine_count when given)."""
        machines = self.manager("ListMachines", None, "(a(ssuo))")
        count = self.manager_prop("MachineCount")
        self.assertEqual(count, len(machines))
        if machine_count is not None:
            self.assertEqual(count, machine_count)
        self.assertIsNone(self.env.daemon.poll(), "qmachined died")

    def write_script(self, name, text):
        """An executable shell script in the test's temp dir."""
        p = self.env.path("scripts", name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, 0o755)
        return p


def qemu_binary():
    return shutil.which("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64"


def changed_values(recorder, name):
    """Values a property took in the recorded PropertiesChanged signals
    (including invalidations as the string '<invalidated>')."""
    out = []
    for _path, _iface, _member, args in recorder.signals:
        _ifc, changed, invalidated = args
        if name in changed:
            out.append(changed[name])
        elif name in invalidated:
            out.append("<invalidated>")
    return out


def main():
    unittest.main(verbosity=2)
