# SPDX-License-Identifier: LGPL-2.1-or-later
"""Exceptions raised by the qmachine client.

Every D-Bus error the daemon answers with becomes an instance of a
subclass of `QMachineError` named after the last component of the D-Bus
error name: `org.qmachine.QMachine1.Error.NoSuchMachine` is raised as
`NoSuchMachine`, `org.freedesktop.DBus.Error.AccessDenied` as
`AccessDenied`.  An error name this module does not know is raised as
`QMachineError` itself (or `DBusError` for other freedesktop names), with
`.name` telling which it was.

    try:
        manager.get_machine("nope")
    except qmachine.NoSuchMachine as e:
        print(e.name, e.message)
"""

import re

import gi

gi.require_version("Gio", "2.0")
gi.require_version("GLib", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

ERROR_PREFIX = "org.qmachine.QMachine1.Error."
FREEDESKTOP_PREFIX = "org.freedesktop.DBus.Error."


class QMachineError(Exception):
    """Base of every error of the qmachine client.

    `.name` is the D-Bus error name (None for an error raised by the
    client itself or by the transport without a name), `.message` the text
    the daemon sent with it.
    """

    def __init__(self, message, name=None):
        super().__init__(message)
        self.name = name
        self.message = message

    def __str__(self):
        if self.name:
            return "%s: %s" % (self.name, self.message)
        return self.message


class DBusError(QMachineError):
    """A D-Bus error that is none of the daemon's own errors (e.g.
    `org.freedesktop.DBus.Error.ServiceUnknown`, `NoReply`,
    `UnknownObject`), or a local transport failure."""


# -- the standard errors the daemon uses (API.md, "Names")

class AccessDenied(DBusError):
    """The caller may not do this (polkit said no, or another user's
    machine)."""


class InvalidArgs(DBusError):
    """A malformed name, bad JSON, an unknown or ill-typed config key or
    option."""


class InteractiveAuthorizationRequired(DBusError):
    """polkit would allow it after asking the user, and the call did not
    allow interactive authorization."""


class UnknownObject(DBusError):
    """The machine object no longer exists (removed meanwhile)."""


class UnknownMethod(DBusError):
    """The daemon does not know this method (an older daemon)."""


# -- the daemon's errors (API.md, "Errors")

class NoSuchMachine(QMachineError):
    """No machine has that name (or that PID)."""


class MachineExists(QMachineError):
    """A machine with that name exists already."""


class AlreadyRunning(QMachineError):
    """The machine runs already (Launch, AddFd)."""


class NotRunning(QMachineError):
    """The machine does not run (or stopped while the call waited)."""


class Busy(QMachineError):
    """The machine or image is in use (e.g. RemoveMachine of a running
    machine)."""


class LaunchFailed(QMachineError):
    """QEMU failed to start.

    Besides `.message`, the parts of the daemon's message when it has them:
    `.exitcode` (int or None), `.command` (the command line as one string,
    or None) and `.output` (QEMU's output, or None).
    """

    _PARTS = re.compile(r"\nExit code: (-?\d+)\nCommand: (.*?)\nOutput: (.*)\Z", re.S)

    def __init__(self, message, name=None):
        super().__init__(message, name)
        m = self._PARTS.search(message)
        self.exitcode = int(m.group(1)) if m else None
        self.command = m.group(2) if m else None
        self.output = m.group(3) if m else None


class AbnormalShutdown(QMachineError):
    """QEMU did not exit as asked within the timeout and was killed."""


class NoMonitor(QMachineError):
    """The machine was defined with `qmp: False`."""


class QmpError(QMachineError):
    """QEMU answered a command with an error.

    `.qmp_class` is QEMU's error class (e.g. "GenericError",
    "CommandNotFound") and `.desc` its description, taken from the
    daemon's message "CLASS: desc" (None when the message has another
    form).
    """

    def __init__(self, message, name=None, qmp_class=None, desc=None):
        super().__init__(message, name)
        if qmp_class is None:
            m = re.match(r"([A-Za-z][A-Za-z0-9_]*): (.*)\Z", message, re.S)
            if m:
                qmp_class, desc = m.group(1), m.group(2)
        self.qmp_class = qmp_class
        self.desc = desc


class QmpDisconnected(QMachineError):
    """The QMP connection closed while a command waited."""


class Timeout(QMachineError):
    """Nothing matching came within the timeout (WaitEvent)."""


class NoConsole(QMachineError):
    """The machine was defined without `console: True`."""


class Dead(QMachineError):
    """VerifyAlive: the process is gone or the monitor does not answer."""


class MigrateFailed(QMachineError):
    """The migration failed."""


class MigrateTimeout(QMachineError):
    """The migration did not complete within its timeout."""


class MigrateCancelled(QMachineError):
    """The migration was cancelled."""


class NoSuchImage(QMachineError):
    """No image has that name."""


class ImageExists(QMachineError):
    """An image with that name exists already."""


class ImageCheckFailed(QMachineError):
    """`qemu-img check` could not run."""


class LimitExceeded(QMachineError):
    """One of the daemon's limits (machines, calls, waiters, consoles,
    argument size, file descriptors) was reached."""


class StorageFailed(QMachineError):
    """The daemon could not write its state directory or image store."""


class Migrated(QMachineError):
    """The machine's guest runs elsewhere now (version 2 daemons)."""


class PortNotRedirected(QMachineError):
    """No host port is forwarded to that guest port (BaseVM's
    VMPortNotRedirectedError)."""


class NoSuchNic(QMachineError):
    """The machine has no NIC with that index."""


class NoGuestAgent(QMachineError):
    """The machine is not configured with a guest agent."""


class GuestAgentUnavailable(QMachineError):
    """The guest agent is configured but does not answer (not started
    yet, stopped, or the guest hangs)."""


class GuestExecFailed(QMachineError):
    """The guest agent could not start the program."""


class NoFdPassing(DBusError):
    """The connection cannot carry file descriptors (a remote host over
    ssh: `connect(host=...)`), so a method that passes one (open_console,
    add_fd, send_fd, qmp_with_fd, and any other whose D-Bus signature has
    an `h`) cannot work; raised at once by the client, before any call.
    Run the code on the machine's host instead. `.name` is None."""


# The daemon's error names (last component) → class.
_QMACHINE_ERRORS = {cls.__name__: cls for cls in (
    NoSuchMachine, MachineExists, AlreadyRunning, NotRunning, Busy,
    LaunchFailed, AbnormalShutdown, NoMonitor, QmpError, QmpDisconnected,
    Timeout, NoConsole, Dead, MigrateFailed, MigrateTimeout,
    MigrateCancelled, NoSuchImage, ImageExists, ImageCheckFailed,
    LimitExceeded, StorageFailed, Migrated, PortNotRedirected, NoSuchNic,
    NoGuestAgent, GuestAgentUnavailable, GuestExecFailed)}

_FREEDESKTOP_ERRORS = {cls.__name__: cls for cls in (
    AccessDenied, InvalidArgs, InteractiveAuthorizationRequired,
    UnknownObject, UnknownMethod)}


def error_class(name):
    """The exception class for a D-Bus error name."""
    if name and name.startswith(ERROR_PREFIX):
        return _QMACHINE_ERRORS.get(name[len(ERROR_PREFIX):], QMachineError)
    if name and name.startswith(FREEDESKTOP_PREFIX):
        return _FREEDESKTOP_ERRORS.get(name[len(FREEDESKTOP_PREFIX):], DBusError)
    return DBusError


def from_dbus(name, message):
    """The exception for a D-Bus error name and its message."""
    return error_class(name)(message, name)


def from_gerror(error):
    """The QMachineError for a GLib.Error raised by a Gio D-Bus call.

    A remote error keeps its D-Bus name; a local one (no connection, a
    call timeout) is a `DBusError` whose name is Gio's mapping of it
    (e.g. `org.freedesktop.DBus.Error.NoReply`) or None.
    """
    name = Gio.DBusError.get_remote_error(error)
    if name is not None:
        # Gio.DBusError.strip_remote_error() edits a temporary copy under
        # PyGObject: strip the "GDBus.Error:NAME: " prefix here instead.
        prefix = "GDBus.Error:%s: " % name
        message = error.message
        if message.startswith(prefix):
            message = message[len(prefix):]
        return from_dbus(name, message)
    if error.domain == GLib.quark_to_string(Gio.DBusError.quark()):
        return from_dbus(Gio.DBusError.encode_gerror(error), error.message)
    return DBusError(error.message, None)


__all__ = [
    "QMachineError", "DBusError", "AccessDenied", "InvalidArgs",
    "InteractiveAuthorizationRequired", "UnknownObject", "UnknownMethod",
    "NoSuchMachine", "MachineExists", "AlreadyRunning", "NotRunning", "Busy",
    "LaunchFailed", "AbnormalShutdown", "NoMonitor", "QmpError",
    "QmpDisconnected", "Timeout", "NoConsole", "Dead", "MigrateFailed",
    "MigrateTimeout", "MigrateCancelled", "NoSuchImage", "ImageExists",
    "ImageCheckFailed", "LimitExceeded", "StorageFailed", "Migrated",
    "PortNotRedirected", "NoSuchNic", "NoGuestAgent", "GuestAgentUnavailable",
    "GuestExecFailed",
    "NoFdPassing",
    "error_class", "from_dbus", "from_gerror",
]
