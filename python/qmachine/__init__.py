"""qmachine: a Python client of qmachined, the QEMU virtual machine service.

qmachined runs and supervises QEMU virtual machines on behalf of D-Bus
clients. This package talks to it through Gio (python3-gi), on a private
connection, with blocking calls and no threads.

Connecting
    manager = qmachine.connect()                  # the system bus
    manager = qmachine.connect(session=True)      # a daemon run with --session
    manager = qmachine.connect("unix:path=/run/x") # any D-Bus address
    manager = qmachine.connect(host="root@hostb") # hostb's system bus, over ssh

    connect() returns a Manager; close it with manager.close() or use it
    in a `with` block.

Machines
    m = manager.create_machine("vm1", {"args": ["-machine", "none"]})
    m.launch()
    print(m.state, m.pid, m.qemu_version)
    print(m.command("query-status"))        # {'status': 'running', ...}
    print(m.qmp("no-such-command"))         # {'error': {...}}
    m.shutdown()
    manager.remove_machine("vm1")

    Config keys (API.md "Machine config") take plain Python values: str,
    list of str, bool, int, float ("qmp-timeout": 10 is sent as a double,
    "nics": 2 as uint32); underscores may stand for dashes. Machine
    properties (state, run_state, pid, exit_code, command_line, config,
    persistent, qemu_version, event_sequence, kernel_crash, mac_addresses,
    launch_timestamp, runtime_directory, log_directory, owner, uuid) are
    read from the daemon at each access.

Events
    seq, ev = m.wait_event([("STOP", None)], timeout=10)
    for seq, ev in m.get_events(after=0): ...
    with m.events() as stream:              # the Event signal, from now
        for ev in stream:                   # Event(seq, name, data, timestamp)
            if ev.name == "RESUME":
                break

Consoles and file descriptors
    sock = m.open_console()                 # a socket.socket
    data = m.get_console_output()           # bytes
    m.add_fd(fd, fdset=1, opaque="disk")    # before launch: -add-fd
    m.send_fd("myfd", fd)                   # while running: QMP getfd

Errors
    Every D-Bus error is raised as a subclass of QMachineError named after
    the error: NoSuchMachine, MachineExists, AlreadyRunning, NotRunning,
    Busy, LaunchFailed (.exitcode, .command, .output), AbnormalShutdown,
    NoMonitor, QmpError (.qmp_class, .desc), QmpDisconnected, Timeout,
    NoConsole, Dead, MigrateFailed, MigrateTimeout, MigrateCancelled,
    NoSuchImage, ImageExists, ImageCheckFailed, LimitExceeded,
    StorageFailed, PortNotRedirected, NoSuchNic, NoGuestAgent,
    GuestAgentUnavailable, GuestExecFailed, and for the standard ones AccessDenied, InvalidArgs,
    InteractiveAuthorizationRequired, UnknownObject; others as DBusError.
    Each has .name (the D-Bus error name) and .message. Over ssh
    (connect(host=...)) the methods that pass file descriptors
    (open_console, add_fd, send_fd, qmp_with_fd) raise NoFdPassing at once.

QEMU's python API
    qmachine.QEMUMachine and qmachine.QEMUQtestMachine have the interface of
    qemu.machine.QEMUMachine (QEMU 7.2) and run their QEMU through the
    daemon (loaded on first use).
"""

import importlib
import importlib.util

from . import errors
from .client import (CALL_MARGIN, WAIT_FOREVER, Event, EventStream,
                     ImageInfo, KernelCrashStream, Machine,
                     MachineChangeStream, MachineInfo,
                     Manager, connect)
from .errors import (AbnormalShutdown, AccessDenied, AlreadyRunning, Busy,
                     DBusError, Dead, GuestAgentUnavailable,
                     GuestExecFailed, ImageCheckFailed, ImageExists,
                     InteractiveAuthorizationRequired, InvalidArgs,
                     LaunchFailed, LimitExceeded, MachineExists, Migrated,
                     MigrateCancelled, MigrateFailed, MigrateTimeout,
                     NoConsole, NoGuestAgent, NoMonitor, NoSuchImage,
                     NoSuchMachine, NoSuchNic, NotRunning,
                     PortNotRedirected, QMachineError, QmpDisconnected, QmpError,
                     StorageFailed, Timeout, UnknownMethod, UnknownObject)
from .errors import NoFdPassing

# Names loaded from the QEMUMachine drop-in on first use, so the client
# works without those modules.
_LAZY = {
    "QEMUMachine": "qemu_machine",
    "QEMUMachineError": "qemu_machine",
    "VMLaunchFailure": "qemu_machine",
    "QEMUMachineAddDeviceError": "qemu_machine",
    "QEMUQtestMachine": "qtest",
}


def _lazy_module(name):
    """The drop-in module that defines `name`, or None when it is not
    installed (only the client is)."""
    module = _LAZY.get(name)
    if module is None or importlib.util.find_spec("." + module, __name__) is None:
        return None
    return importlib.import_module("." + module, __name__)


def __getattr__(name):
    module = _lazy_module(name)
    if module is None:
        raise AttributeError("module 'qmachine' has no attribute %r" % (name,))
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | {n for n in _LAZY if _lazy_module(n) is not None})


__all__ = [
    "connect", "Manager", "Machine", "MachineInfo", "ImageInfo", "Event",
    "EventStream", "KernelCrashStream", "MachineChangeStream", "WAIT_FOREVER", "CALL_MARGIN",
    "errors",
] + [n for n in errors.__all__ if n[0].isupper()]  # the error classes

from .client import GuestExecResult  # noqa: E402
__all__.append("GuestExecResult")

from .client import MigrationProgress, MigrationProgressStream  # noqa: E402
__all__ += ["MigrationProgress", "MigrationProgressStream"]
