"""The qmachined D-Bus client: `connect()`, `Manager` and `Machine`.

Blocking calls on a private D-Bus connection; no threads.  Signals
(`Machine.events()`, `Manager.machine_changes()`) are dispatched on a
GLib main context of the connection's own, iterated only while the caller
waits for them, so the module works from plain scripts and does not
disturb other GLib code in the process.
"""

import collections
import json
import os
import socket
import time
import unicodedata

import gi

gi.require_version("Gio", "2.0")
gi.require_version("GLib", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

from . import errors  # noqa: E402

BUS_NAME = "org.qmachine.QMachine1"
MANAGER_PATH = "/org/qmachine/QMachine1"
MANAGER_IFACE = "org.qmachine.QMachine1.Manager"
MACHINE_IFACE = "org.qmachine.QMachine1.Machine"
PROPS_IFACE = "org.freedesktop.DBus.Properties"

# The API's "no limit" timeout (Shutdown, Wait, WaitEvent, Powerdown).
WAIT_FOREVER = -1.0
# The daemon's own default for a timeout of 0.
DAEMON_DEFAULT_TIMEOUT = 30.0
# How much longer than a method's own timeout the D-Bus call may take.
CALL_MARGIN = 30.0
# The D-Bus timeout of calls without a timeout of their own (Launch waits
# for QEMU's start and the QMP handshake, each bounded by the daemon).
DEFAULT_CALL_TIMEOUT = 300.0
# GDBus: G_MAXINT milliseconds means no timeout.
_NO_CALL_TIMEOUT_MS = GLib.MAXINT

# API.md "Machine config": the D-Bus type of each key.
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
    "user": "s",
    "sandbox": "b",
    "autostart": "b",
    "forward-ports": "aq",
    "guest-agent": "b",
}

# CreateImage options and Migrate options.
IMAGE_OPTION_TYPES = {"cluster-size": "t", "backing-file": "s"}
# Save and Restore options (the daemon refuses any other key).
SAVE_OPTION_TYPES = {"timeout": "d", "paused": "b"}
MIGRATE_OPTION_TYPES = {
    "timeout": "d",
    "offline": "b",
    "cancel-after": "d",
    "bandwidth": "t",
    "downtime-limit": "t",
    "auto-converge": "b",
    "postcopy": "b",
    "postcopy-after": "d",
}

# PrepareIncoming options.
INCOMING_OPTION_TYPES = {"address": "s", "persistent": "b", "paused": "b"}

MigrationProgress = collections.namedtuple(
    "MigrationProgress", "transferred remaining total expected_downtime_ms")
MigrationProgress.__doc__ = """One MigrationProgress signal of a running
Migrate (Machine.migration_progress()): bytes of guest RAM sent, still to
send and in all, and QEMU's expected downtime in ms."""

MachineInfo = collections.namedtuple("MachineInfo", "name state pid path")
MachineInfo.__doc__ = """One entry of Manager.list_machines(): the machine's
name, State, Pid (0 when not running) and D-Bus object path."""

ImageInfo = collections.namedtuple("ImageInfo", "name format size")
ImageInfo.__doc__ = """One entry of Manager.list_images(): file name, format
and virtual size in bytes."""

GuestExecResult = collections.namedtuple("GuestExecResult", "exit_code stdout stderr")
GuestExecResult.__doc__ = """What Machine.guest_exec() returns: the program's
exit code (-N when signal N ended it), its stdout and stderr (bytes)."""

Event = collections.namedtuple("Event", "seq name data timestamp")
Event.__doc__ = """One QMP event from Machine.events(): its sequence number,
name (e.g. "STOP"), data (a dict, {} when QEMU sent none) and timestamp (µs
since the epoch, QEMU's own time)."""


def _call_timeout_ms(timeout):
    """D-Bus call timeout for a method that waits up to `timeout` seconds
    itself (None or < 0: forever; 0: the daemon's default)."""
    if timeout is None or timeout < 0:
        return _NO_CALL_TIMEOUT_MS
    if timeout == 0:
        timeout = DAEMON_DEFAULT_TIMEOUT
    return int(min((timeout + CALL_MARGIN) * 1000, _NO_CALL_TIMEOUT_MS))


def _api_timeout(timeout):
    """A Python timeout (None = no limit) as the API's double."""
    return WAIT_FOREVER if timeout is None else float(timeout)


def _guess_type(value):
    if isinstance(value, bool):
        return "b"
    if isinstance(value, int):
        return "u" if value >= 0 else "i"
    if isinstance(value, float):
        return "d"
    if isinstance(value, (list, tuple)):
        return "as"
    return "s"


def _vardict(values, types):
    """a{sv} contents from a dict of plain values: known keys get their API
    type, others a type guessed from the value (so the daemon names the
    unknown key), GLib.Variant values pass through. Underscores in keys
    stand for dashes."""
    out = {}
    for key, value in (values or {}).items():
        key = key.replace("_", "-")
        if isinstance(value, GLib.Variant):
            out[key] = value
            continue
        t = types.get(key) or _guess_type(value)
        if t == "d":
            value = float(value)
        elif t in ("as", "aq"):
            value = list(value)
        out[key] = GLib.Variant(t, value)
    return out


def _json_arg(arguments, kwargs):
    """The JSON text of a QMP arguments object ("" when there is none)."""
    merged = dict(arguments or {})
    merged.update(kwargs)
    return json.dumps(merged) if merged else ""


def _event_from_object(seq, obj):
    """An Event from a QMP event object as GetEvents/WaitEvent return it."""
    ts = obj.get("timestamp") or {}
    us = int(ts.get("seconds", 0)) * 1000000 + int(ts.get("microseconds", 0))
    return Event(seq, obj.get("event", ""), obj.get("data") or {}, us)


_CONNECTION_FLAGS = (Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION
                     | Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT)
# How long closing waits for ssh to exit after its stdin closed.
_SSH_EXIT_TIMEOUT = 5.0


def _check_host(host):
    """A [user@]host for ssh: not empty, no option, no blank or control
    character."""
    if not isinstance(host, str) or not host or host.startswith("-") or any(
            c.isspace() or unicodedata.category(c).startswith("C") for c in host):
        raise ValueError("connect(): invalid host %r" % (host,))


def _open_over_ssh(host):
    """A connection to the system bus of host through
    `ssh -xT -- HOST systemd-stdio-bridge`, the transport of sd-bus's
    sd_bus_open_system_remote() (busctl -H); ssh is found through PATH.
    Returns (connection, the ssh Gio.Subprocess)."""
    _check_host(host)
    try:
        ssh = Gio.Subprocess.new(["ssh", "-xT", "--", host, "systemd-stdio-bridge"],
                                 Gio.SubprocessFlags.STDIN_PIPE
                                 | Gio.SubprocessFlags.STDOUT_PIPE)
    except GLib.Error as e:
        raise errors.DBusError("cannot run ssh to %s: %s" % (host, e.message)) from None
    stream = Gio.SimpleIOStream.new(ssh.get_stdout_pipe(), ssh.get_stdin_pipe())
    try:
        conn = Gio.DBusConnection.new_sync(stream, None, _CONNECTION_FLAGS, None, None)
    except GLib.Error as e:
        _end_ssh(ssh, stream)
        raise errors.DBusError("cannot reach the system bus of %s over ssh (ssh says why "
                               "on stderr): %s" % (host, e.message)) from None
    return conn, ssh


def _end_ssh(ssh, stream=None):
    """Close ssh's pipes and wait for it to exit (killed when it does not
    within _SSH_EXIT_TIMEOUT)."""
    if stream is not None:
        try:
            stream.close(None)
        except GLib.Error:
            pass
    deadline = time.monotonic() + _SSH_EXIT_TIMEOUT
    # The identifier (pid) goes away once GLib has reaped ssh.
    while ssh.get_identifier() is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    if ssh.get_identifier() is not None:
        ssh.force_exit()
        try:
            ssh.wait(None)
        except GLib.Error:
            pass


class _Bus:
    """The private connection and the main context its signals use."""

    def __init__(self, address, interactive, host=None):
        self.context = GLib.MainContext.new()
        self.interactive = interactive
        self.host = host
        self.ssh = None
        if host is not None:
            self.conn, self.ssh = _open_over_ssh(host)
            return
        try:
            self.conn = Gio.DBusConnection.new_for_address_sync(
                address, _CONNECTION_FLAGS, None, None)
        except GLib.Error as e:
            raise errors.from_gerror(e) from None

    def can_pass_fds(self):
        return bool(self.conn.get_capabilities() & Gio.DBusCapabilityFlags.UNIX_FD_PASSING)

    def _require_fd_passing(self, method):
        if not self.can_pass_fds():
            where = "ssh to %s" % self.host if self.host else "this connection"
            raise errors.NoFdPassing("%s passes a file descriptor, which cannot cross %s; "
                                     "run the client on the machine's host" % (method, where))

    def _flags(self):
        if self.interactive:
            return Gio.DBusCallFlags.ALLOW_INTERACTIVE_AUTHORIZATION
        return Gio.DBusCallFlags.NONE

    def call(self, path, iface, method, args=None, reply_type=None,
             timeout_ms=None, fds=None):
        """Call a method; returns the reply's values as a tuple, or
        (values, fd list) when `fds` is given (a list of fds to pass, or
        [] to receive some)."""
        if timeout_ms is None:
            timeout_ms = int(DEFAULT_CALL_TIMEOUT * 1000)
        if fds is not None:
            # The transport would drop the message: no reply, ever.
            self._require_fd_passing(method)
        rt = GLib.VariantType.new(reply_type) if reply_type else None
        try:
            if fds is None:
                reply = self.conn.call_sync(BUS_NAME, path, iface, method, args,
                                            rt, self._flags(), timeout_ms, None)
                return reply
            fd_list = Gio.UnixFDList.new()
            for fd in fds:
                fd_list.append(fd)
            return self.conn.call_with_unix_fd_list_sync(
                BUS_NAME, path, iface, method, args, rt, self._flags(),
                timeout_ms, fd_list, None)
        except GLib.Error as e:
            raise errors.from_gerror(e) from None

    def get_property(self, path, iface, name):
        reply = self.call(path, PROPS_IFACE, "Get",
                          GLib.Variant("(ss)", (iface, name)), "(v)")
        return reply.unpack()[0]

    def get_all(self, path, iface):
        reply = self.call(path, PROPS_IFACE, "GetAll",
                          GLib.Variant("(s)", (iface,)), "(a{sv})")
        return reply.unpack()[0]

    def subscribe(self, iface, member, path, callback):
        """Subscribe to a signal of the daemon; the callback runs while
        self.context is iterated. Returns the subscription id, effective
        once this returns (the bus has the match rule)."""
        self.context.push_thread_default()
        try:
            sub = self.conn.signal_subscribe(
                BUS_NAME, iface, member, path, None, Gio.DBusSignalFlags.NONE,
                callback, None)
        finally:
            self.context.pop_thread_default()
        # A round trip to the bus orders what follows after its AddMatch.
        try:
            self.conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                "org.freedesktop.DBus", "GetId", None, None,
                                Gio.DBusCallFlags.NONE, 25000, None)
        except GLib.Error as e:
            self.conn.signal_unsubscribe(sub)
            raise errors.from_gerror(e) from None
        return sub

    def unsubscribe(self, sub):
        self.conn.signal_unsubscribe(sub)

    def iterate(self, deadline):
        """Dispatch the signals of our context, blocking until one came or
        the deadline (time.monotonic(); None = no limit) passed."""
        source = None
        if deadline is not None:
            ms = max(0, int((deadline - time.monotonic()) * 1000))
            source = GLib.timeout_source_new(ms)
            source.set_callback(lambda *_: False)
            source.attach(self.context)
        try:
            self.context.iteration(True)
            while self.context.pending():
                self.context.iteration(False)
        finally:
            if source is not None:
                source.destroy()

    def close(self):
        if self.conn is not None and not self.conn.is_closed():
            try:
                self.conn.close_sync(None)
            except GLib.Error:
                pass
        if self.ssh is not None:
            _end_ssh(self.ssh)
            self.ssh = None


class _SignalStream:
    """Iterator over signals of one subscription; see Machine.events()."""

    def __init__(self, bus, iface, member, path, timeout):
        self._bus = bus
        self._timeout = timeout
        self._queue = collections.deque()
        self._sub = bus.subscribe(iface, member, path, self._on_signal)

    def _on_signal(self, _conn, _sender, path, _iface, _member, params, _data):
        self._queue.append((path, params.unpack()))

    def _next_signal(self):
        """The next (path, args), or None when the timeout passed."""
        if self._sub is None:
            return None
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        while not self._queue:
            if deadline is not None and time.monotonic() >= deadline:
                return None
            self._bus.iterate(deadline)
        return self._queue.popleft()

    def close(self):
        """Unsubscribe; the iteration ends."""
        if self._sub is not None:
            self._bus.unsubscribe(self._sub)
            self._sub = None
            self._queue.clear()

    def __iter__(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class EventStream(_SignalStream):
    """The QMP events of a machine as `Event` tuples, in order.

    Returned by Machine.events(); iterate it (`for ev in stream`) and close
    it, or use it as a context manager, which unsubscribes at the end.
    Each step waits for the next event; with a timeout, the iteration ends
    when none comes within that many seconds.
    """

    def __init__(self, machine, after, timeout):
        super().__init__(machine._bus, MACHINE_IFACE, "Event", machine.path,
                         timeout)
        self._last = 0
        self._backlog = collections.deque()
        if after is not None:
            # Subscribed first, so nothing falls between the two.
            self._backlog.extend(machine._events_after(after))
            self._last = after

    def __next__(self):
        while True:
            if self._backlog:
                ev = self._backlog.popleft()
            else:
                sig = self._next_signal()
                if sig is None:
                    raise StopIteration
                name, data, seq, ts = sig[1]
                try:
                    data = json.loads(data) if data else {}
                except ValueError:
                    data = {}
                ev = Event(seq, name, data, ts)
            if ev.seq > self._last:
                self._last = ev.seq
                return ev


class KernelCrashStream(_SignalStream):
    """The KernelCrashDetected signals of a machine, as the crash texts
    (str); see Machine.kernel_crashes()."""

    def __init__(self, machine, timeout):
        super().__init__(machine._bus, MACHINE_IFACE, "KernelCrashDetected",
                         machine.path, timeout)

    def __next__(self):
        sig = self._next_signal()
        if sig is None:
            raise StopIteration
        return sig[1][0]


class MigrationProgressStream(_SignalStream):
    """The MigrationProgress signals of a machine as MigrationProgress
    tuples; see Machine.migration_progress()."""

    def __init__(self, machine, timeout):
        super().__init__(machine._bus, MACHINE_IFACE, "MigrationProgress",
                         machine.path, timeout)

    def __next__(self):
        sig = self._next_signal()
        if sig is None:
            raise StopIteration
        return MigrationProgress(*sig[1])


class MachineChangeStream(_SignalStream):
    """MachineNew/MachineRemoved signals as ("new" | "removed", name,
    path) tuples; see Manager.machine_changes()."""

    def __init__(self, bus, timeout):
        super().__init__(bus, MANAGER_IFACE, None, MANAGER_PATH, timeout)

    def _on_signal(self, conn, sender, path, iface, member, params, data):
        kinds = {"MachineNew": "new", "MachineRemoved": "removed"}
        if member in kinds:
            name, obj = params.unpack()
            self._queue.append((path, (kinds[member], name, obj)))

    def __next__(self):
        sig = self._next_signal()
        if sig is None:
            raise StopIteration
        return sig[1]


def connect(address=None, *, system=None, session=None, host=None,
            interactive=False):
    """Connect to qmachined and return its `Manager`.

    address      a D-Bus address ("unix:path=..."): that bus;
    session      True: the session bus (a daemon run with --session);
    system       True or nothing given: the system bus
                 (DBUS_SYSTEM_BUS_ADDRESS is honoured, as Gio does);
    host         "[user@]host": the system bus of that host, over ssh
                 (`ssh -xT -- HOST systemd-stdio-bridge`, as busctl -H and
                 qmachinectl -H; ssh is found through PATH and must not
                 ask for a password). File descriptors cannot cross ssh:
                 open_console, add_fd, send_fd and qmp_with_fd raise
                 NoFdPassing at once. The ssh process ends with the
                 connection;
    interactive  let polkit ask the user for a password
                 (ALLOW_INTERACTIVE_AUTHORIZATION); without it a call that
                 needs one fails with InteractiveAuthorizationRequired.

    The connection is private to the returned Manager: close it with
    Manager.close() or a `with` block.
    """
    if host is not None:
        if address is not None or session:
            raise ValueError("connect(): a host has only its system bus; give no address "
                             "or session")
        return Manager(_Bus(None, interactive, host=host))
    if address is None:
        if session and system:
            raise ValueError("connect(): choose one of system and session")
        bus_type = Gio.BusType.SESSION if session else Gio.BusType.SYSTEM
        try:
            address = Gio.dbus_address_get_for_bus_sync(bus_type, None)
        except GLib.Error as e:
            raise errors.from_gerror(e) from None
    elif system or session:
        raise ValueError("connect(): give either an address or system/session")
    return Manager(_Bus(address, interactive))


class Manager:
    """The daemon's manager object: machines and images.

    Get one with qmachine.connect(). Properties are read from the daemon
    each time.
    """

    def __init__(self, bus):
        self._bus = bus

    def __repr__(self):
        return "<qmachine.Manager on %s>" % (self._bus.conn.get_unique_name(),)

    # -- connection

    def close(self):
        """Close the connection. Machine objects of this manager stop
        working."""
        self._bus.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @property
    def connection(self):
        """The Gio.DBusConnection (private to this Manager)."""
        return self._bus.conn

    # -- properties

    def _prop(self, name):
        return self._bus.get_property(MANAGER_PATH, MANAGER_IFACE, name)

    @property
    def version(self):
        """The daemon's version string."""
        return self._prop("Version")

    @property
    def default_binary(self):
        """The qemu-system binary used when a config names none."""
        return self._prop("DefaultBinary")

    @property
    def image_directory(self):
        """The directory of the images of create_image() and friends."""
        return self._prop("ImageDirectory")

    @property
    def machine_count(self):
        """How many machines are defined."""
        return self._prop("MachineCount")

    # -- methods

    def _call(self, method, args=None, reply_type=None, **kw):
        reply = self._bus.call(MANAGER_PATH, MANAGER_IFACE, method, args,
                               reply_type, **kw)
        return reply.unpack() if reply is not None else ()

    def _machine(self, path, name=None):
        return Machine(self._bus, path, name)

    def create_machine(self, name, config=None):
        """Define a machine (not started) and return it.

        name    the machine name, or "" for a generated unique one;
        config  a dict of API.md's config keys with plain values, e.g.
                {"args": ["-machine", "none"], "qmp-timeout": 10,
                "console": True}; a GLib.Variant value is sent unchanged.

        Raises MachineExists, InvalidArgs (naming the key), AccessDenied.
        """
        (path,) = self._call("CreateMachine",
                             GLib.Variant("(sa{sv})", (name, _vardict(config, CONFIG_TYPES))),
                             "(o)")
        return self._machine(path, name or None)

    def clone_machine(self, name, new_name, overrides=None):
        """Define new_name as a copy of machine `name`'s config with the
        overrides (a config dict) applied; a new UUID unless given."""
        (path,) = self._call("CloneMachine",
                             GLib.Variant("(ssa{sv})", (name, new_name,
                                                        _vardict(overrides, CONFIG_TYPES))),
                             "(o)")
        return self._machine(path, new_name or None)

    def update_machine(self, name, overrides):
        """Change the definition of machine `name` (not running, else
        Busy): the overrides (a config dict) are applied and validated as
        create_machine's config; an empty value ("" or []) removes a key."""
        self._call("UpdateMachine",
                   GLib.Variant("(sa{sv})", (name, _vardict(overrides, CONFIG_TYPES))), "()")

    def prepare_incoming(self, name, config, options=None, **kw):
        """The destination of a migration (PrepareIncoming): define machine
        `name` from the source's config (Machine.config, same UUID), launch
        it waiting for the migration, and return (Machine, uri); pass the
        uri to the source's Machine.migrate().

        Options, as a dict or keywords (underscores for dashes): address
        (a local numeric IP address to listen on; default a unix socket,
        for a move on the same host), persistent (keep the definition once
        the guest arrived), paused (the guest stays paused on arrival).

        The machine is "starting" until the guest has arrived, then
        "running"; when the migration fails it is removed. Raises
        MachineExists, InvalidArgs, LaunchFailed, AccessDenied."""
        merged = dict(options or {})
        merged.update(kw)
        path, uri = self._call("PrepareIncoming",
                               GLib.Variant("(sa{sv}a{sv})",
                                            (name, _vardict(config, CONFIG_TYPES),
                                             _vardict(merged, INCOMING_OPTION_TYPES))),
                               "(os)")
        return self._machine(path, name), uri

    def list_machines(self):
        """All machines as a list of MachineInfo(name, state, pid, path)."""
        (machines,) = self._call("ListMachines", None, "(a(ssuo))")
        return [MachineInfo(*m) for m in machines]

    def machines(self):
        """Iterate over all machines as Machine objects."""
        for info in self.list_machines():
            yield self._machine(info.path, info.name)

    def get_machine(self, name):
        """The machine of that name; NoSuchMachine when there is none."""
        (path,) = self._call("GetMachine", GLib.Variant("(s)", (name,)), "(o)")
        return self._machine(path, name)

    def get_machine_by_pid(self, pid):
        """The machine whose QEMU has that PID; NoSuchMachine when none."""
        (path,) = self._call("GetMachineByPID", GLib.Variant("(u)", (pid,)), "(o)")
        return self._machine(path)

    def remove_machine(self, name):
        """Delete a machine that does not run (Busy when it does) with its
        definition and runtime files. `name` may also be a Machine."""
        if isinstance(name, Machine):
            name = name.name
        self._call("RemoveMachine", GLib.Variant("(s)", (name,)), "()")

    def create_image(self, name, format, size, options=None):
        """Create a disk image `name` (a file name in image_directory) with
        qemu-img; size in bytes; options "cluster-size" (int) and
        "backing-file" (an image name). Returns the image's path."""
        (path,) = self._call("CreateImage",
                             GLib.Variant("(ssta{sv})",
                                          (name, format, size,
                                           _vardict(options, IMAGE_OPTION_TYPES))),
                             "(s)")
        return path

    def check_image(self, name):
        """Run qemu-img check: returns (verdict, report), verdict one of
        "ok", "leaks", "check-errors", "corrupt", "unsupported"."""
        verdict, report = self._call("CheckImage", GLib.Variant("(s)", (name,)), "(ss)")
        return verdict, report

    def remove_image(self, name):
        """Delete an image (NoSuchImage; Busy while a running machine uses
        it)."""
        self._call("RemoveImage", GLib.Variant("(s)", (name,)), "()")

    def list_images(self):
        """All images as a list of ImageInfo(name, format, size)."""
        (images,) = self._call("ListImages", None, "(a(sst))")
        return [ImageInfo(*i) for i in images]

    # -- signals

    def machine_changes(self, timeout=None):
        """Iterate over ("new" | "removed", name, path) tuples from the
        MachineNew and MachineRemoved signals, from now on. With a timeout
        (seconds), the iteration ends when nothing came for that long.
        Close the returned stream (or use it in a `with` block)."""
        return MachineChangeStream(self._bus, timeout)


# Machine property (Python name) → D-Bus property name.
_MACHINE_PROPERTIES = {
    "uuid": ("UUID", "The machine's UUID (passed to QEMU as -uuid)."),
    "state": ("State", "defined, starting, running, stopping, stopped, failed or migrated (the guest "
              "runs elsewhere now; see Machine.migrate())."),
    "run_state": ("RunState", "The guest's QMP run state (running, paused, ...; \"\" when not running)."),
    "pid": ("Pid", "QEMU's PID; 0 when not running."),
    "exit_code": ("ExitCode", "The last run's exit status, -N for signal N, -1000 when unknown."),
    "command_line": ("CommandLine", "The full argv of the current or last launch (list of str)."),
    "config": ("Config", "The machine's config as a dict of plain values."),
    "persistent": ("Persistent", "Whether the definition survives daemon restarts."),
    "qemu_version": ("QemuVersion", "QEMU's version from the QMP greeting."),
    "event_sequence": ("EventSequence", "Sequence number of the newest event (0 = none)."),
    "kernel_crash": ("KernelCrash", "\"\" or the kernel crash text seen on the console in this run."),
    "mac_addresses": ("MacAddresses", "One MAC address per NIC (list of str)."),
    "launch_timestamp": ("LaunchTimestamp", "CLOCK_REALTIME µs of the last launch; 0 if never."),
    "runtime_directory": ("RuntimeDirectory", "The daemon's runtime directory of this machine."),
    "log_directory": ("LogDirectory", "The daemon's log directory of this machine."),
    "owner": ("Owner", "The uid that created the machine."),
    "forwarded_ports": ("ForwardedPorts", "Guest TCP port → host port on 127.0.0.1 (dict of "
                        "int to int) for config forward-ports, in this run; empty when not running."),
    "guest_agent_connected": ("GuestAgentConnected",
                              "True while the guest agent answers (config guest_agent)."),
}


def _machine_property(dbus_name, doc):
    def get(self):
        return self._bus.get_property(self.path, MACHINE_IFACE, dbus_name)
    get.__name__ = dbus_name
    return property(get, doc=doc + " Read from the daemon at each access.")


class Machine:
    """One machine of the daemon.

    Its properties are read from the daemon at each access (no caching);
    its methods block until the daemon answers. Timeouts are in seconds;
    None means no limit. Errors are raised as qmachine.errors classes.
    Used as a context manager, it shuts the machine down at the end (it
    does not remove it).
    """

    def __init__(self, bus, path, name=None):
        self._bus = bus
        self.path = path
        self._name = name

    @property
    def name(self):
        """The machine name."""
        if self._name is None:
            self._name = self._bus.get_property(self.path, MACHINE_IFACE, "Name")
        return self._name

    def __repr__(self):
        return "<qmachine.Machine %s>" % (self._name or self.path,)

    def __eq__(self, other):
        return isinstance(other, Machine) and other.path == self.path

    def __hash__(self):
        return hash(self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()
        return False

    def get_properties(self):
        """Every property of the Machine interface the caller may read, as a
        dict keyed by the D-Bus names (Properties.GetAll)."""
        return self._bus.get_all(self.path, MACHINE_IFACE)

    def is_running(self):
        """True while QEMU runs (State starting, running or stopping)."""
        return self.state in ("starting", "running", "stopping")

    # -- calls

    def _call(self, method, args=None, reply_type=None, **kw):
        reply = self._bus.call(self.path, MACHINE_IFACE, method, args,
                               reply_type, **kw)
        return reply.unpack() if reply is not None else ()

    def launch(self):
        """Start QEMU; returns when the QMP monitor is ready.
        AlreadyRunning, LaunchFailed (with .exitcode, .command, .output)."""
        self._call("Launch", None, "()")

    def shutdown(self, hard=False, timeout=30.0):
        """Stop QEMU: hard → SIGKILL; else QMP quit, wait up to timeout
        (None: forever), then SIGKILL and AbnormalShutdown. Not running:
        nothing happens."""
        self._call("Shutdown", GLib.Variant("(bd)", (bool(hard), _api_timeout(timeout))),
                   "()", timeout_ms=_call_timeout_ms(timeout))

    def kill(self):
        """SIGKILL QEMU and wait for its end."""
        self._call("Kill", None, "()")

    def wait(self, timeout=None):
        """Wait for QEMU to exit by itself (None: forever); on timeout it is
        killed and AbnormalShutdown raised."""
        self._call("Wait", GLib.Variant("(d)", (_api_timeout(timeout),)), "()",
                   timeout_ms=_call_timeout_ms(timeout))

    def powerdown(self, timeout=60.0):
        """ACPI power button, wait for the guest to power off; on timeout
        quit, then SIGKILL, and AbnormalShutdown."""
        self._call("Powerdown", GLib.Variant("(d)", (_api_timeout(timeout),)), "()",
                   timeout_ms=_call_timeout_ms(timeout))

    def reset(self):
        """QMP system_reset."""
        self._call("Reset", None, "()")

    def pause(self):
        """QMP stop."""
        self._call("Pause", None, "()")

    def resume(self):
        """QMP cont."""
        self._call("Resume", None, "()")

    def qmp(self, command, arguments=None, **kwargs):
        """Send a QMP command; returns QEMU's whole response as a dict:
        {"return": ...} or {"error": {"class": ..., "desc": ...}}.
        Keyword arguments are merged into `arguments` (names unchanged)."""
        (text,) = self._call("Qmp", GLib.Variant("(ss)", (command, _json_arg(arguments, kwargs))),
                             "(s)")
        return json.loads(text)

    def command(self, command, arguments=None, **kwargs):
        """Send a QMP command; returns the decoded "return" value, raises
        QmpError (with .qmp_class and .desc) on a QMP error."""
        (text,) = self._call("Command", GLib.Variant("(ss)", (command, _json_arg(arguments, kwargs))),
                             "(s)")
        return json.loads(text)

    def wait_event(self, filters, after=0, timeout=60.0):
        """Wait for the first event with sequence number > after that
        matches one of the filters; returns (seq, event dict).

        filters  a list of (name, match): name "" matches any event; match
                 None or "" matches anything, a dict (or its JSON) is a
                 partial match of the whole event object, e.g.
                 ("SHUTDOWN", {"data": {"guest": True}}); a bare name
                 stands for (name, None).
        timeout  seconds; 0 only searches (returns (0, None) when none);
                 None waits forever. Timeout when none came, NotRunning when
                 the machine stopped first.
        """
        fl = []
        for f in filters:
            name, match = (f, None) if isinstance(f, str) else f
            if match is None:
                match = ""
            elif not isinstance(match, str):
                match = json.dumps(match)
            fl.append((name, match))
        seq, text = self._call("WaitEvent",
                               GLib.Variant("(a(ss)td)", (fl, int(after), _api_timeout(timeout))),
                               "(ts)", timeout_ms=_call_timeout_ms(timeout))
        return seq, (json.loads(text) if text else None)

    def get_events(self, after=0):
        """The retained events with sequence number > after, as a list of
        (seq, event dict) (nothing is consumed)."""
        (events,) = self._call("GetEvents", GLib.Variant("(t)", (int(after),)), "(a(ts))")
        return [(seq, json.loads(text)) for seq, text in events]

    def _events_after(self, after):
        return [_event_from_object(seq, obj) for seq, obj in self.get_events(after)]

    def events(self, after=None, timeout=None):
        """Iterate over the machine's QMP events as Event(seq, name, data,
        timestamp) tuples, from the Event signal.

        after    None: events from now on; a number: first the retained
                 events after that sequence number, then new ones;
        timeout  None: each step waits for as long as it takes; seconds:
                 the iteration ends when no event came for that long.

        Returns an EventStream; use it in a `with` block (or close it) so
        the subscription ends.
        """
        return EventStream(self, after, timeout)

    def kernel_crashes(self, timeout=None):
        """Iterate over the kernel crashes found on the console from now on
        (the KernelCrashDetected signal, at most one per run), as the
        crash text. With a timeout (seconds) the iteration ends when none
        came for that long. The `kernel_crash` property holds this run's
        crash, if any. Returns a stream to close or use in `with`."""
        return KernelCrashStream(self, timeout)

    def migration_progress(self, timeout=None):
        """Iterate over the MigrationProgress signals of a Migrate of this
        machine (at least one a second while it runs; the last one has
        remaining 0), as MigrationProgress(transferred, remaining, total,
        expected_downtime_ms) tuples. With a timeout (seconds) the
        iteration ends when none came for that long. Returns a stream to
        close or use in `with`."""
        return MigrationProgressStream(self, timeout)

    def get_log(self):
        """QEMU's stdout and stderr of the current or last run."""
        (log,) = self._call("GetLog", None, "(s)")
        return log

    def open_console(self):
        """A new socket.socket connected to the serial console (output
        from now on). NoConsole, NotRunning."""
        reply, fd_list = self._bus.call(self.path, MACHINE_IFACE, "OpenConsole", None,
                                        "(h)", fds=[])
        fds = fd_list.steal_fds() if fd_list is not None else []
        (index,) = reply.unpack()
        if index >= len(fds):
            for fd in fds:
                _close_fd(fd)
            raise errors.DBusError("OpenConsole: the reply carries no file descriptor")
        for i, fd in enumerate(fds):
            if i != index:
                _close_fd(fd)
        return socket.socket(fileno=fds[index])

    def get_console_output(self):
        """The retained serial console output of this run, as bytes."""
        reply = self._bus.call(self.path, MACHINE_IFACE, "GetConsoleOutput", None, "(ay)")
        return bytes(reply.get_child_value(0).get_data_as_bytes().get_data())

    def add_fd(self, fd, fdset, opaque="", opts=""):
        """Before launch: pass fd to QEMU as
        -add-fd fd=N,set=FDSET,opaque=OPAQUE[,OPTS] (AlreadyRunning once
        it runs). The fd is duplicated; the caller keeps its own."""
        fd = _fileno(fd)
        self._bus.call(self.path, MACHINE_IFACE, "AddFd",
                       GLib.Variant("(huss)", (0, fdset, opaque, opts)), "()", fds=[fd])

    def send_fd(self, fdname, fd):
        """While running: give QEMU the fd under fdname (QMP getfd)."""
        fd = _fileno(fd)
        self._bus.call(self.path, MACHINE_IFACE, "SendFd",
                       GLib.Variant("(sh)", (fdname, 0)), "()", fds=[fd])

    def qmp_with_fd(self, command, fd, arguments=None, **kwargs):
        """Send a QMP command together with a file descriptor (SCM_RIGHTS),
        for commands that take the fd sent with them (add-fd, getfd);
        returns the whole response as qmp() does."""
        fd = _fileno(fd)
        reply, _fds = self._bus.call(self.path, MACHINE_IFACE, "QmpWithFd",
                                     GLib.Variant("(ssh)", (command, _json_arg(arguments, kwargs), 0)),
                                     "(s)", fds=[fd])
        return json.loads(reply.unpack()[0])

    def migrate(self, uri, **options):
        """Migrate the guest to uri (usually one that
        Manager.prepare_incoming() returned) and wait until the outcome is
        final. Success: the guest runs at the destination and this machine
        is "migrated" (its QEMU quit; launch, resume, reset and restore
        raise Migrated until Manager.update_machine() clears it).
        Failure: MigrateFailed (with the destination's reason where QEMU
        gives it), MigrateTimeout or MigrateCancelled, and the guest runs
        here again unless it was paused before.

        Options (underscores for dashes): timeout (s, default 3600),
        offline (pause first), cancel_after (s), bandwidth (bytes/s),
        downtime_limit (ms), auto_converge (bool), postcopy (bool),
        postcopy_after (s after the start; with postcopy). Follow the
        progress with migration_progress() from another connection or
        before the call in a thread."""
        timeout = options.get("timeout", 3600.0)
        self._call("Migrate",
                   GLib.Variant("(sa{sv})", (uri, _vardict(options, MIGRATE_OPTION_TYPES))),
                   "()", timeout_ms=_call_timeout_ms(timeout))

    def save(self, fd, timeout=3600.0):
        """Save the guest's state into fd (a file object or an fd number
        the caller opened for writing; the daemon never opens a path) and
        stop the machine (BaseVM save_to_file). timeout bounds the
        migration (None: no limit). NotRunning, NoMonitor, Busy,
        MigrateFailed, MigrateTimeout; after a failure the machine runs on
        as before."""
        self._call_with_fd("Save", fd, {"timeout": 0.0 if timeout is None else float(timeout)}, timeout)

    def restore(self, fd, paused=False, timeout=3600.0):
        """Launch the machine from a state save() wrote, read from fd (open
        for reading), and resume it unless paused. AlreadyRunning,
        LaunchFailed, MigrateFailed (bad or truncated state: the machine
        ends failed), MigrateTimeout."""
        self._call_with_fd("Restore", fd, {"paused": bool(paused),
                                           "timeout": 0.0 if timeout is None else float(timeout)},
                           timeout)

    def _call_with_fd(self, method, fd, options, timeout):
        """method(h fd, a{sv} options), waiting up to timeout seconds."""
        self._bus.call(self.path, MACHINE_IFACE, method,
                       GLib.Variant("(ha{sv})", (0, _vardict(options, SAVE_OPTION_TYPES))), "()",
                       timeout_ms=_call_timeout_ms(timeout), fds=[_fileno(fd)])

    def verify_alive(self):
        """Raise Dead unless QEMU runs and answers query-status."""
        self._call("VerifyAlive", None, "()")

    def send_key(self, keys, hold_ms=0):
        """Send key combos (QMP send-key): a str or a list of str like
        "ctrl-alt-delete" or "shift-a"."""
        if isinstance(keys, str):
            keys = [keys]
        self._call("SendKey", GLib.Variant("(asu)", (list(keys), int(hold_ms))), "()")

    def get_port(self, guest_port):
        """The host port on 127.0.0.1 forwarded to guest TCP port
        guest_port in this run (BaseVM get_port). PortNotRedirected when it
        is not in config forward-ports, NotRunning."""
        (host_port,) = self._call("GetPort", GLib.Variant("(q)", (int(guest_port),)), "(q)")
        return host_port

    def get_address(self, nic=0):
        """The address a host process uses to reach the guest of NIC nic
        (BaseVM get_address): "127.0.0.1" for the user-mode NICs, reached
        through get_port(). NoSuchNic."""
        (address,) = self._call("GetAddress", GLib.Variant("(u)", (int(nic),)), "(s)")
        return address


    # -- the guest agent (config guest_agent)

    def guest_agent(self, command, arguments=None, **kwargs):
        """Send a raw guest agent command (libvirt's
        virDomainQemuAgentCommand); returns the agent's whole response as a
        dict, {"return": ...} or {"error": ...}. Keyword arguments are
        merged into `arguments`. NoGuestAgent, NotRunning,
        GuestAgentUnavailable (the agent does not answer)."""
        (text,) = self._call("GuestAgent",
                             GLib.Variant("(ss)", (command, _json_arg(arguments, kwargs))), "(s)")
        return json.loads(text)

    def guest_exec(self, argv, stdin=b"", timeout=60.0, env=None):
        """Run a program in the guest (BaseVM session.cmd); returns
        GuestExecResult(exit_code, stdout, stderr). argv is a list (the
        program first, searched in the agent's PATH); stdin bytes for its
        standard input (at most 16 MiB); env a list of "NAME=value"
        replacing the agent's environment. Timeout when it runs longer than
        timeout seconds (it keeps running in the guest); GuestExecFailed
        when the agent cannot start it."""
        options = {"timeout": GLib.Variant("d", float(timeout))}
        if env is not None:
            options["env"] = GLib.Variant("as", list(env))
        data = GLib.Variant.new_from_bytes(GLib.VariantType.new("ay"), GLib.Bytes.new(bytes(stdin)), True)
        args = GLib.Variant.new_tuple(GLib.Variant("as", list(argv)), data, GLib.Variant("a{sv}", options))
        reply = self._bus.call(self.path, MACHINE_IFACE, "GuestExec", args, "(iayay)",
                               timeout_ms=_call_timeout_ms(timeout))

        def child_bytes(i):
            return bytes(reply.get_child_value(i).get_data_as_bytes().get_data())
        return GuestExecResult(reply.get_child_value(0).get_int32(), child_bytes(1), child_bytes(2))

    def copy_to_guest(self, source, guest_path, mode=0):
        """Copy into the guest file guest_path (created or truncated;
        BaseVM copy_files_to). source is a host path (opened here, as the
        calling user) or an open file or fd (read from its offset to its
        end). mode: permission bits, 0 for the agent's default."""
        with _open_source(source) as fd:
            self._bus.call(self.path, MACHINE_IFACE, "CopyToGuest",
                           GLib.Variant("(hsu)", (0, guest_path, int(mode))), "()",
                           timeout_ms=_NO_CALL_TIMEOUT_MS, fds=[fd])

    def copy_from_guest(self, guest_path, destination):
        """Copy the guest file guest_path to the host (BaseVM
        copy_files_from). destination is a host path (created or
        truncated here, as the calling user) or an open file or fd
        (written at its offset). The agent's errors (e.g. no such file)
        raise QmpError."""
        with _open_destination(destination) as fd:
            self._bus.call(self.path, MACHINE_IFACE, "CopyFromGuest",
                           GLib.Variant("(sh)", (guest_path, 0)), "()",
                           timeout_ms=_NO_CALL_TIMEOUT_MS, fds=[fd])


class _HostFile:
    """An fd for a copy: opened here from a path (and closed after), or
    the caller's own (left open)."""

    def __init__(self, target, flags):
        if isinstance(target, (str, bytes, os.PathLike)):
            self.fd = os.open(target, flags | os.O_CLOEXEC, 0o666)
            self.owned = True
        else:
            self.fd = _fileno(target)
            self.owned = False

    def __enter__(self):
        return self.fd

    def __exit__(self, *exc):
        if self.owned:
            os.close(self.fd)
        return False


def _open_source(source):
    return _HostFile(source, os.O_RDONLY)


def _open_destination(destination):
    return _HostFile(destination, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)


for _py_name, (_dbus_name, _doc) in _MACHINE_PROPERTIES.items():
    setattr(Machine, _py_name, _machine_property(_dbus_name, _doc))
del _py_name, _dbus_name, _doc


def _fileno(fd):
    return fd if isinstance(fd, int) else fd.fileno()


def _close_fd(fd):
    try:
        os.close(fd)
    except OSError:
        pass
