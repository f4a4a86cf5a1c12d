# SPDX-License-Identifier: LGPL-2.1-or-later
"""Two hosts on one machine: TwoHosts and TwoHostTestCase.

For tests that need two hosts (remote control over ssh, migration from one
daemon to another). Each test gets, with names unique to the test run:

  host A  network namespace qmA-<run>, 10.77.0.1/24 on its end ("qm0") of a
          veth pair, loopback up; its own private system bus, polkit mock
          and qmachined (an Environment, started inside the namespace).
          A is "here": TwoHostTestCase's self.env and self.conn.
  host B  namespace qmB-<run>, 10.77.0.2/24 on the other end, the same
          bus, polkit mock and qmachined (self.env_b, self.conn_b), and an
          sshd listening on 10.77.0.2:22 that lets root in with a
          throwaway key only. Its sessions get DBUS_SYSTEM_BUS_ADDRESS of
          B's bus and a PATH that starts with the build's qmachinectl and
          a `systemd-stdio-bridge` wrapper (the bridge ignores that
          variable), so the far end of sd-bus's remote transport and
          `qmachinectl` there reach B's daemon.

The addresses exist only inside the namespaces. The file system is shared:
the test process talks to both buses directly over their unix sockets (as
local clients of each host would). What needs a host's network runs in
its namespace: qmachined and its QEMUs (a migration connects from A's QEMU
to B's), sshd, and clients on A that use ssh.

Clients on A: hosts.run("a", argv) / hosts.popen("a", argv) run argv in
A's namespace with hosts.client_env("a"): DBUS_SYSTEM_BUS_ADDRESS of A's
bus, and a PATH whose first directory holds the build's qmachinectl and a
wrapper `ssh` that runs /usr/bin/ssh -F <tmp>/ssh_config (the client key,
a known_hosts file with B's host key, StrictHostKeyChecking, BatchMode).
Anything that execs plain `ssh` therefore reaches B as hosts.b.ssh_target
("root@10.77.0.2") without a prompt: sd_bus_open_system_remote()
(`qmachinectl -H`, `busctl -H`), the Python client's host=, and
`ssh -t HOST qmachinectl console NAME`. In-process clients (Gio.Subprocess,
sockets) use `with hosts.client_side("a"):` instead, which puts the calling
thread in A's namespace and that PATH in os.environ for the block.

Teardown, also after a failed test: sshd is stopped by PID, then B's and
A's Environments (daemon with its checks, mocks, leftovers, bus), then
whatever still lives in a namespace is killed, and the namespaces are
deleted (the veth pair goes with them).

TwoHosts.unavailable() (no root, no `ip`, sshd, ssh-keygen or
systemd-stdio-bridge) and a start that cannot create the namespaces make
TwoHostTestCase skip with the reason instead of failing; sshd is Debian's
openssh-server (tools/lib.sh installs it).
"""

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from .bus import Environment, source_root
from .calls import GLib, SignalRecorder, config_variant
from .processes import all_pids, reap, stop_process
from .testcase import QMTestCase

CLONE_NEWNET = 0x40000000
PREFIX_LEN = 24
VETH = "qm0"
SSH_PORT = 22
SSHD = "/usr/sbin/sshd"
SSH = "/usr/bin/ssh"
TOOLS = ("ip", "ssh-keygen", "systemd-stdio-bridge")

_libc = ctypes.CDLL(None, use_errno=True)


class Unavailable(Exception):
    """This machine cannot run two hosts (the reason is the message)."""


def qmachinectl_binary():
    exe = os.environ.get("QMACHINECTL")
    if exe:
        return os.path.abspath(exe)
    return os.path.join(source_root(), "build", "src", "qmachinectl", "qmachinectl")


def _run(argv, timeout=30):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv), r.returncode,
                                                r.stderr.strip()))
    return r.stdout


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: " + os.strerror(e))


def _netns_inode(pid):
    try:
        return os.stat("/proc/%d/ns/net" % pid).st_ino
    except OSError:
        return None


class Netns:
    """A named network namespace (`ip netns add`)."""

    def __init__(self, name):
        self.name = name
        self.path = os.path.join("/run/netns", name)
        self.inode = None

    def create(self):
        try:
            _run(["ip", "netns", "add", self.name])
        except RuntimeError as e:
            raise Unavailable("cannot create a network namespace: %s" % e) from None
        self.inode = os.stat(self.path).st_ino

    def ip(self, *args):
        return _run(["ip", "-n", self.name] + list(args))

    def delete(self):
        if self.inode is not None:
            subprocess.run(["ip", "netns", "delete", self.name], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=30)

    @contextlib.contextmanager
    def entered(self):
        """The calling thread is in this namespace for the block; what it
        starts meanwhile (processes, sockets) stays there."""
        here = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            there = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(there)
            finally:
                os.close(there)
            try:
                yield self
            finally:
                _setns(here)
        finally:
            os.close(here)

    def pids(self):
        """Live processes in this namespace."""
        if self.inode is None:
            return set()
        return {p for p in all_pids() if _netns_inode(p) == self.inode}


class HostEnvironment(Environment):
    """An Environment whose processes start inside a network namespace.
    foreign is a callable: the pids its leftover checks must leave alone
    (the other host's)."""

    def __init__(self, netns, daemon_args=(), polkit=True, foreign=None):
        super().__init__(daemon_args, polkit=polkit)
        self.netns = netns
        self.foreign = foreign

    def start(self):
        with self.netns.entered():
            super().start()

    def start_daemon(self, timeout=20.0):
        with self.netns.entered():
            super().start_daemon(timeout)

    def start_polkit(self):
        with self.netns.entered():
            return super().start_polkit()

    def popen_pids(self):
        """The processes this Environment started itself."""
        procs = (self.daemon, self.bus, self.session_bus,
                 self.polkit.proc if self.polkit is not None else None,
                 *(m.proc for m in self.mocks.values()))
        return {p.pid for p in procs if p is not None}

    def foreign_pids(self):
        return self.foreign() if self.foreign else set()


class Host:
    """One of the two hosts: name ("a", "b"), netns, address, env."""

    def __init__(self, name, netns, address):
        self.name = name
        self.netns = netns
        self.address = address
        self.env = None

    @property
    def ssh_target(self):
        """What ssh, `qmachinectl -H` and connect(host=) take."""
        return "root@" + self.address


SSH_CONFIG = """Host *
    User root
    IdentityFile {dir}/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile {dir}/known_hosts
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    UpdateHostKeys no
    BatchMode yes
    ConnectTimeout 10
    LogLevel ERROR
"""

# SHLVL=1: Debian's bash runs ~/.bashrc for a command over ssh, but only at
# shell level 1; whatever the machine's root has there stays out of the
# sessions (it could print into the D-Bus stream of systemd-stdio-bridge).
SSHD_CONFIG = """ListenAddress {address}:{port}
HostKey {dir}/ssh_host_ed25519_key
PidFile none
AuthorizedKeysFile {dir}/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
PermitTTY yes
LogLevel VERBOSE
SetEnv DBUS_SYSTEM_BUS_ADDRESS={bus} PATH={path} SHLVL=1
"""

SSH_WRAPPER = """#!/bin/sh
# ssh with the test's throwaway key and known_hosts (qmtest.twohost)
exec {ssh} -F {dir}/ssh_config "$@"
"""

# systemd-stdio-bridge ignores DBUS_SYSTEM_BUS_ADDRESS: without --bus-path
# it connects to /run/dbus/system_bus_socket, which is not B's bus.
BRIDGE_WRAPPER = """#!/bin/sh
# systemd-stdio-bridge to this host's bus (qmtest.twohost)
exec {bridge} --bus-path="$DBUS_SYSTEM_BUS_ADDRESS" "$@"
"""


class TwoHosts:
    """Two hosts, A and B, joined by a veth pair; see the module doc."""

    ADDRESSES = ("10.77.0.1", "10.77.0.2")

    def __init__(self, daemon_args=(), polkit=True):
        self.daemon_args = list(daemon_args)
        self.polkit = polkit
        tag = "%d-%d" % (os.getpid(), time.monotonic_ns() % 1000000)
        self.a = Host("a", Netns("qmA-" + tag), self.ADDRESSES[0])
        self.b = Host("b", Netns("qmB-" + tag), self.ADDRESSES[1])
        self.tmp = None
        self.sshd = None
        self.sshd_log = None
        self.problems = []
        self.startup_seconds = None

    @staticmethod
    def unavailable():
        """Why this machine cannot run two hosts, or None."""
        if os.geteuid() != 0:
            return "two hosts need root (network namespaces, sshd)"
        for tool in TOOLS:
            if shutil.which(tool) is None:
                return "%s is not installed" % tool
        for exe in (SSHD, SSH):
            if not os.access(exe, os.X_OK):
                return "%s is not installed (Debian's openssh-server/-client)" % exe
        if not os.path.isdir("/proc/self/ns"):
            return "the kernel has no namespaces"
        return None

    def host(self, name):
        return {"a": self.a, "b": self.b}[name]

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    # -- start

    def start(self):
        t0 = time.monotonic()
        self.tmp = tempfile.mkdtemp(prefix="qmtest-2h-")
        os.chmod(self.tmp, 0o755)
        for d in ("bin", "session-bin"):
            os.mkdir(self.path(d))
        self.make_network()
        self.a.env = HostEnvironment(self.a.netns, self.daemon_args, self.polkit,
                                     foreign=lambda: self.pids_of(self.b))
        self.b.env = HostEnvironment(self.b.netns, self.daemon_args, self.polkit,
                                     foreign=lambda: self.pids_of(self.a))
        self.b.env.start()
        self.a.env.start()
        # "Here" is A, also for clients that read the environment.
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = self.a.env.system_address
        self.make_keys()
        self.make_bin_dirs()
        self.start_sshd()
        self.startup_seconds = time.monotonic() - t0

    def make_network(self):
        for h in (self.a, self.b):
            h.netns.create()
        self.a.netns.ip("link", "add", VETH, "type", "veth", "peer", "name", VETH,
                        "netns", self.b.netns.name)
        for h in (self.a, self.b):
            h.netns.ip("link", "set", "lo", "up")
            h.netns.ip("addr", "add", "%s/%d" % (h.address, PREFIX_LEN), "dev", VETH)
            h.netns.ip("link", "set", VETH, "up")

    def make_keys(self):
        for key in ("ssh_host_ed25519_key", "id_ed25519"):
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "qmtest",
                  "-f", self.path(key)])
        shutil.copy(self.path("id_ed25519.pub"), self.path("authorized_keys"))
        with open(self.path("ssh_host_ed25519_key.pub")) as f:
            host_key = f.read().split()
        with open(self.path("known_hosts"), "w") as f:
            f.write("%s %s %s\n" % (self.b.address, host_key[0], host_key[1]))
        with open(self.path("ssh_config"), "w") as f:
            f.write(SSH_CONFIG.format(dir=self.tmp))

    def make_bin_dirs(self):
        """tmp/bin, first in PATH of clients: the ssh wrapper and
        qmachinectl; tmp/session-bin, first in PATH of ssh sessions on B:
        the systemd-stdio-bridge wrapper and qmachinectl."""
        self.write_script(self.path("bin", "ssh"), SSH_WRAPPER.format(ssh=SSH, dir=self.tmp))
        self.write_script(self.path("session-bin", "systemd-stdio-bridge"),
                          BRIDGE_WRAPPER.format(bridge=shutil.which("systemd-stdio-bridge")))
        for d in ("bin", "session-bin"):
            os.symlink(qmachinectl_binary(), self.path(d, "qmachinectl"))

    @staticmethod
    def write_script(path, text):
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)

    def session_path(self):
        return self.path("session-bin") + ":/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    def start_sshd(self, timeout=10.0):
        # sshd's privilege separation needs its empty directory (the
        # package's tmpfiles.d makes it at boot).
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        bus = "unix:path=" + self.b.env.path("bus", "system_bus_socket")
        with open(self.path("sshd_config"), "w") as f:
            f.write(SSHD_CONFIG.format(address=self.b.address, port=SSH_PORT, dir=self.tmp,
                                       bus=bus, path=self.session_path()))
        self.sshd_log = self.path("sshd.log")
        with self.b.netns.entered():
            self.sshd = subprocess.Popen(
                [SSHD, "-D", "-f", self.path("sshd_config"), "-E", self.sshd_log],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self.tcp_reaches(self.a, self.b.address, SSH_PORT):
            if self.sshd.poll() is not None:
                raise RuntimeError("sshd exited with %d:\n%s" % (self.sshd.returncode,
                                                                 self.sshd_output()))
            if time.monotonic() > deadline:
                raise RuntimeError("sshd does not answer on %s:%d within %.0f s:\n%s"
                                   % (self.b.address, SSH_PORT, timeout, self.sshd_output()))
            time.sleep(0.01)

    def sshd_output(self):
        try:
            with open(self.sshd_log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def tcp_reaches(self, host, address, port, timeout=1.0):
        """Whether a TCP connection from host to address:port succeeds."""
        with host.netns.entered():
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.settimeout(timeout)
            s.connect((address, port))
            return True
        except OSError:
            return False
        finally:
            s.close()

    # -- clients

    def client_env(self, name, extra=None):
        """The environment of a client on host name: its bus, and PATH with
        the ssh wrapper and qmachinectl first."""
        env = dict(os.environ)
        env["DBUS_SYSTEM_BUS_ADDRESS"] = self.host(name).env.system_address
        env["PATH"] = self.path("bin") + ":" + env.get("PATH", "/usr/bin:/bin")
        env.update(extra or {})
        return env

    def popen(self, name, argv, **kw):
        """subprocess.Popen of argv as a client on host name (its
        namespace, client_env); kw go to Popen. The caller stops it."""
        kw.setdefault("env", self.client_env(name))
        kw.setdefault("stdin", subprocess.DEVNULL)
        with self.host(name).netns.entered():
            return subprocess.Popen(argv, **kw)

    def run(self, name, argv, timeout=60, input=None):
        """Run argv as a client on host name; returns the CompletedProcess
        (text). A client still running after timeout is killed."""
        p = self.popen(name, argv, stdin=subprocess.PIPE if input is not None
                       else subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = p.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            raise AssertionError("%s did not end within %s s; stderr: %r"
                                 % (" ".join(argv), timeout, err)) from None
        return subprocess.CompletedProcess(argv, p.returncode, out, err)

    def qmachinectl(self, name, *args, timeout=60, input=None):
        """qmachinectl ARGS as a client on host name."""
        return self.run(name, [qmachinectl_binary()] + list(args), timeout, input)

    @contextlib.contextmanager
    def client_side(self, name):
        """In-process clients of host name: the calling thread is in its
        namespace and os.environ has its client_env for the block."""
        saved = dict(os.environ)
        os.environ.update(self.client_env(name))
        try:
            with self.host(name).netns.entered():
                yield self.host(name)
        finally:
            for k in set(os.environ) - set(saved):
                del os.environ[k]
            os.environ.update(saved)

    # -- processes

    def pids_of(self, host):
        """Processes of host: those its Environment started, those in its
        namespace, and sshd (which both hosts' leftover checks leave to
        stop())."""
        pids = host.netns.pids()
        if host.env is not None:
            pids |= host.env.popen_pids()
        if self.sshd is not None:
            pids.add(self.sshd.pid)
        return pids

    # -- teardown

    def stop(self, check=True):
        """Stop everything; returns the list of problems found (empty when
        all went well)."""
        try:
            if self.sshd is not None:
                stop_process(self.sshd)
            for h in (self.b, self.a):
                if h.env is not None:
                    h.env.stop(check=check)
                    self.problems += ["host %s: %s" % (h.name.upper(), p)
                                      for p in h.env.problems]
        finally:
            self.kill_namespace_leftovers()
            for h in (self.a, self.b):
                h.netns.delete()
            if self.tmp and os.environ.get("QMACHINED_TEST_KEEP") != "1":
                shutil.rmtree(self.tmp, ignore_errors=True)
        return self.problems

    def kill_namespace_leftovers(self):
        for h in (self.a, self.b):
            left = h.netns.pids()
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for pid in left:
                reap(pid)
            if left:
                self.problems.append("host %s: processes left in its namespace: %s"
                                     % (h.name.upper(), sorted(left)))


class TwoHostTestCase(QMTestCase):
    """A QMTestCase on two hosts (see the module doc).

    self.hosts  the TwoHosts
    self.env, self.conn      host A's Environment and a connection to its
                             bus: every QMTestCase helper works on A
    self.env_b, self.conn_b  host B's; helpers take conn=self.conn_b
                             (self.manager(..., conn=self.conn_b))
    Skips when the machine cannot run two hosts.
    """

    daemon_args = ()
    polkit_mock = True

    def setUp(self):
        reason = TwoHosts.unavailable()
        if reason:
            self.skipTest(reason)
        self.hosts = TwoHosts(self.daemon_args, polkit=self.polkit_mock)
        try:
            self.hosts.start()
        except Unavailable as e:
            self.hosts.stop(check=False)
            self.skipTest(str(e))
        except Exception:
            self.hosts.stop(check=False)
            raise
        self.env = self.hosts.a.env
        self.env_b = self.hosts.b.env
        self.conn = self.env.connect()
        self.conn_b = self.env_b.connect()
        self.recorders = []

    def tearDown(self):
        for r in self.recorders:
            r.close()
        # The logs go with the temp dirs: read them first.
        logs = (self.env.daemon_output()[-10000:], self.env_b.daemon_output()[-10000:])
        problems = self.hosts.stop()
        if problems:
            self.fail("; ".join(problems) + "\n--- host A's qmachined ---\n" + logs[0]
                      + "\n--- host B's qmachined ---\n" + logs[1])

    def record(self, iface=None, member=None, path=None, arg0=None, conn=None):
        """QMTestCase.record, from B's daemon when conn is self.conn_b."""
        conn = conn or self.conn
        env = self.env_b if conn is self.conn_b else self.env
        r = SignalRecorder(conn, env.daemon_unique_name, iface, member, path, arg0)
        self.recorders.append(r)
        return r

    def create_machine_on(self, conn, name, **config):
        """create_machine on the daemon of conn (self.conn or self.conn_b)."""
        return self.manager("CreateMachine",
                            GLib.Variant("(sa{sv})", (name, config_variant(config))),
                            "(o)", conn=conn)

    def launch_on(self, conn, path, timeout=120.0):
        """launch on the daemon of conn."""
        return self.machine(path, "Launch", None, "()", timeout=timeout, conn=conn)
