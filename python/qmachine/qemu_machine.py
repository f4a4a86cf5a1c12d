# SPDX-License-Identifier: LGPL-2.1-or-later
"""qmachine.QEMUMachine: QEMU 7.2's qemu.machine.QEMUMachine through qmachined.

The class has the public interface and the behaviour of QEMU's own
`qemu.machine.QEMUMachine` (QEMU 7.2), so that code written for it keeps
working: the same constructor arguments, `launch`, `shutdown`, `kill`,
`wait`, `qmp`, `cmd`/`command`, the event methods with their consuming
semantics, `get_log`, `console_socket`, `add_fd`, `send_fd_scm`, the
argument setters, the directories, the context manager, and the same
exceptions.  Subclasses that override `_base_args`, `_pre_launch`,
`_post_launch` or `_post_shutdown`, or append to `self._args`, keep
working.

What differs is who runs QEMU: every `launch()` creates a machine in
qmachined (named `py-<pid>-<n>`, QEMU running as the calling user) from
the object's arguments and launches it there; `shutdown()`/`kill()`/`wait()`
remove it again.  The QMP monitor, the console chardev and `-display none
-vga none` are the daemon's: the arguments `_base_args` makes for them are
left out of what is sent.  Everything else a subclass adds is kept.

The daemon is found with `qmachine.connect()`'s defaults (the system bus;
`DBUS_SYSTEM_BUS_ADDRESS` is honoured), or at the D-Bus address in the
environment variable `QMACHINE_ADDRESS`, or the keyword-only constructor
argument `qmachine_address`.

Known differences: `monitor_address` is accepted and ignored (the daemon
owns the monitor); QEMU is started without the daemon's seccomp sandbox,
as the original starts it; a file descriptor given to `send_fd_scm()` is
handed to QEMU with the next QMP command (the daemon's QmpWithFd), as
the original's socket does.
"""

import itertools
import logging
import os
import pwd
import shutil
import signal
import tempfile
import weakref

from . import errors
from ._event_queue import EventQueue, event_match
from ._qmp_errors import execute_error, interrupted_error

__all__ = [
    "AbnormalShutdown",
    "QEMUMachine",
    "QEMUMachineAddDeviceError",
    "QEMUMachineError",
    "VMLaunchFailure",
]

LOG = logging.getLogger(__name__)

# Names of the daemon's machines made by this process.
_COUNTER = itertools.count(1)

# ExitCode when the daemon does not know it.
_EXIT_UNKNOWN = -1000


class QEMUMachineError(Exception):
    """An error of QEMUMachine."""


class QEMUMachineAddDeviceError(QEMUMachineError):
    """A device cannot be added with the arguments given (a limitation of
    QEMUMachine, not an error QEMU reported)."""


class VMLaunchFailure(QEMUMachineError):
    """QEMU was launched but did not start.

    `.exitcode` (None when QEMU never ran), `.command` (the command line as
    one string) and `.output` (what QEMU printed).
    """

    def __init__(self, exitcode, command, output):
        super().__init__(exitcode, command, output)
        self.exitcode = exitcode
        self.command = command
        self.output = output

    def __str__(self):
        text = ""
        cause = self.__cause__
        if cause is not None:
            reason = str(cause)
            text += type(cause).__name__ + (f": {reason}" if reason else "") + "\n"
        if self.exitcode is not None:
            text += f"\tExit code: {self.exitcode}\n"
        text += f"\tCommand: {self.command}\n"
        text += f"\tOutput: {self.output}\n"
        return text


class AbnormalShutdown(QEMUMachineError, errors.AbnormalShutdown):
    """A graceful shutdown was asked for, but QEMU had to be killed.

    Also a qmachine.AbnormalShutdown (the daemon's error of the same
    meaning), so `except qmachine.AbnormalShutdown` catches both."""


def _caller_user():
    """The calling user's name (or uid), for the machine's `user` key: QEMU
    then opens exactly the files this process could."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _finalize_machine(manager, name):
    """Stop and remove a daemon machine whose QEMUMachine was never shut
    down (garbage collected or the interpreter exiting)."""
    try:
        manager.get_machine(name).kill()
        manager.remove_machine(name)
    except Exception:  # noqa: BLE001 (best effort at exit)
        pass
    try:
        manager.close()
    except Exception:  # noqa: BLE001
        pass


class QEMUMachine:
    """A QEMU VM run by qmachined, with the interface of QEMU's QEMUMachine.

    Use it as a context manager so that QEMU is always shut down::

        with QEMUMachine("/usr/bin/qemu-system-x86_64") as vm:
            vm.launch()
            vm.qmp("query-status")
    """

    # pylint: disable=too-many-instance-attributes,too-many-public-methods

    def __init__(self, binary, args=(), wrapper=(), name=None, base_temp_dir="/var/tmp",
                 monitor_address=None, sock_dir=None, drain_console=False, console_log=None,
                 log_dir=None, qmp_timer=None, *, qmachine_address=None):
        """binary: the QEMU binary; args: more arguments; wrapper: a command
        prefix (e.g. ["taskset", "-c", "1"]); name: prefix of socket and log
        file names; base_temp_dir: where temp_dir is made; monitor_address:
        ignored (the daemon owns the monitor); sock_dir: where sockets go
        (default temp_dir); drain_console, console_log: kept for
        compatibility; log_dir: where the log file goes (default temp_dir);
        qmp_timer: seconds for the QMP handshake and each command.
        qmachine_address (keyword only, not in the original): the D-Bus
        address of the daemon's bus. QEMU starts at launch()."""
        # pylint: disable=too-many-arguments
        self._binary = binary
        self._args = list(args)
        self._wrapper = wrapper
        self._qmp_timer = qmp_timer
        self._name = name or f"{id(self):x}"
        self._temp_dir = None
        self._base_temp_dir = base_temp_dir
        self._sock_dir = sock_dir
        self._log_dir = log_dir
        self._monitor_address = monitor_address
        self._console_log_path = console_log
        self._drain_console = bool(console_log) or drain_console
        self._qmachine_address = qmachine_address

        # run state
        self._qemu_log_path = None
        self._qemu_log_file = None
        self._popen = None  # there is no local process; subclasses test it
        self._events = []  # taken from the daemon, not consumed yet
        self._event_queue = None
        self._iolog = None
        self._qmp_set = True
        self._qemu_full_args = ()
        self._launched = False
        self._machine = None
        self._console_index = 0
        self._console_set = False
        self._console_device_type = None
        self._console_address = os.path.join(self.sock_dir, f"{self._name}.con")
        self._console_socket = None
        self._remove_files = []
        self._user_killed = False
        self._quit_issued = False

        # the daemon's side
        self._fds = []  # (fd, fdset, opaque, opts) from add_fd
        self._pending_scm_fd = None  # from send_fd_scm, for the next getfd
        self._manager = None
        self._vm = None  # the qmachine.Machine of this run
        self._vm_name = None
        self._finalizer = None
        self._exitcode = None  # of the last run, once it ended
        self._owned_args = []  # (option, value) pairs of _base_args the daemon owns

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.shutdown()

    # -- arguments

    def add_monitor_null(self):
        """Add a second, unused monitor (`-monitor null`)."""
        self._args.append("-monitor")
        self._args.append("null")

    def add_fd(self, fd, fdset, opaque, opts=""):
        """Pass the file descriptor `fd` to QEMU as `-add-fd` in fd set
        `fdset` at every launch; the fd travels to the daemon over D-Bus,
        so it must stay open until launch().  Returns self."""
        self._fds.append((fd, fdset, opaque, opts))
        return self

    def add_args(self, *args):
        """Append arguments for the QEMU binary."""
        self._args.extend(args)

    def set_machine(self, machine_type):
        """Set the machine type (`-machine TYPE`)."""
        self._machine = machine_type

    def set_console(self, device_type=None, console_index=0):
        """Give QEMU a serial console (read it with console_socket):
        `-serial chardev:console`, or a `device_type` device on it;
        `console_index` null serial ports come first."""
        self._console_set = True
        self._console_device_type = device_type
        self._console_index = console_index

    def set_qmp_monitor(self, enabled=True):
        """With enabled False, QEMU runs without a QMP monitor (only
        launch, wait, kill and shutdown work). Call before launch()."""
        self._qmp_set = enabled

    @property
    def args(self):
        """The list of extra arguments given to the QEMU binary."""
        return self._args

    @property
    def _base_args(self):
        """The arguments QEMUMachine puts before `args`. The monitor and
        console ones are made as in the original, so subclasses see the
        same list, but the daemon supplies its own instead of them."""
        args = []
        owned = []

        def own(option, value):
            args.extend([option, value])
            owned.append((option, value))

        own("-display", "none")
        own("-vga", "none")
        if self._qmp_set:
            own("-chardev", f"socket,id=mon,path={self._monitor_socket_path()}")
            own("-mon", "chardev=mon,mode=control")
        if self._machine is not None:
            args.extend(["-machine", self._machine])
        for _ in range(self._console_index):
            if self._console_set:
                own("-serial", "null")  # the daemon puts them before its console
            else:
                args.extend(["-serial", "null"])
        if self._console_set:
            own("-chardev", f"socket,id=console,path={self._console_address},server=on,wait=off")
            if self._console_device_type is None:
                own("-serial", "chardev:console")
            else:
                own("-device", f"{self._console_device_type},chardev=console")
        self._owned_args = owned
        return args

    def _monitor_socket_path(self):
        if isinstance(self._monitor_address, str):
            return self._monitor_address
        return os.path.join(self.sock_dir, f"{self._name}-monitor.sock")

    def _daemon_args(self, full):
        """`full` without the daemon's own arguments (each owned pair is
        left out once, where it first appears)."""
        owned = list(self._owned_args)
        out = []
        i = 0
        while i < len(full):
            pair = tuple(full[i:i + 2])
            if len(pair) == 2 and pair in owned:
                owned.remove(pair)
                i += 2
                continue
            out.append(full[i])
            i += 1
        return out

    # -- launch

    def launch(self):
        """Launch QEMU; on failure clean up and raise VMLaunchFailure with
        the exit code, the command line and QEMU's output."""
        if self._launched:
            raise QEMUMachineError("VM already launched")
        try:
            self._launch()
        except BaseException as exc:
            if self._launched:
                self.wait()
            else:
                self._post_shutdown()
            if isinstance(exc, Exception):
                raise VMLaunchFailure(exitcode=self.exitcode(),
                                      command=" ".join(self._qemu_full_args),
                                      output=self._iolog) from exc
            raise

    def _pre_launch(self):
        if self._console_set:
            self._remove_files.append(self._console_address)
        self._qemu_log_path = os.path.join(self.log_dir, self._name + ".log")
        # pylint: disable=consider-using-with
        self._qemu_log_file = open(self._qemu_log_path, "wb")
        self._iolog = None
        self._exitcode = None
        self._qemu_full_args = tuple(list(self._wrapper) + [self._binary] + self._base_args + self._args)

    def _launch(self):
        self._pre_launch()
        full = list(self._qemu_full_args)[len(self._wrapper) + 1:]
        self._create_daemon_machine(self._daemon_args(full))
        try:
            self._vm.launch()
        except errors.LaunchFailed as exc:
            self._note_launch_failure(exc)
            raise
        self._qemu_full_args = tuple(self._vm.command_line)
        self._launched = True
        self._post_launch()

    def _config(self, args):
        config = {
            "binary": self._binary,
            "args": args,
            "wrapper": list(self._wrapper),
            "qmp": self._qmp_set,
            "user": _caller_user(),
            # the original starts QEMU without a seccomp filter
            "sandbox": False,
        }
        if self._console_set:
            config["console"] = True
            config["console-index"] = self._console_index
            if self._console_device_type is not None:
                config["console-device"] = self._console_device_type
        if self._qmp_timer is not None:
            config["qmp-timeout"] = float(self._qmp_timer)
        return config

    def _connect(self):
        if self._manager is None:
            from .client import connect

            address = self._qmachine_address or os.environ.get("QMACHINE_ADDRESS") or None
            self._manager = connect(address)
        return self._manager

    def _create_daemon_machine(self, args):
        manager = self._connect()
        self._vm_name = f"py-{os.getpid()}-{next(_COUNTER)}"
        self._vm = manager.create_machine(self._vm_name, self._config(args))
        self._finalizer = weakref.finalize(self, _finalize_machine, manager, self._vm_name)
        self._manager = None  # the finalizer closes it now
        self._event_queue = EventQueue(self._vm)
        for fd, fdset, opaque, opts in self._fds:
            self._vm.add_fd(fd, fdset, opaque, opts)

    def _note_launch_failure(self, exc):
        """Exit code and command line of a launch the daemon reports failed."""
        self._exitcode = exc.exitcode if exc.exitcode != _EXIT_UNKNOWN else None
        try:
            self._qemu_full_args = tuple(self._vm.command_line)
        except errors.QMachineError:
            if exc.command is not None:
                self._qemu_full_args = (exc.command,)
        if self._exitcode is None and not self._qemu_full_args:
            self._qemu_full_args = ()

    def _post_launch(self):
        pass

    # -- shutdown

    def _close_qemu_log_file(self):
        if self._qemu_log_file is not None:
            self._qemu_log_file.close()
            self._qemu_log_file = None

    def _load_io_log(self):
        """QEMU's output of this run, from the daemon, also written to the
        log file like the original's."""
        if self._vm is None:
            return
        try:
            self._iolog = self._vm.get_log()
        except errors.QMachineError as exc:
            LOG.warning("cannot read QEMU's log: %s", exc)
            return
        if self._qemu_log_path is not None and os.path.isdir(os.path.dirname(self._qemu_log_path)):
            with open(self._qemu_log_path, "w", encoding="utf-8") as log:
                log.write(self._iolog)

    def _remove_daemon_machine(self):
        if self._vm is None:
            return
        if self._exitcode is None:
            self._exitcode = self._read_exitcode()
        try:
            self._finalizer()  # kills what is left, removes, disconnects
        finally:
            self._vm = self._event_queue = self._finalizer = None

    def _post_shutdown(self):
        """Clean up after QEMU exited (also after a failed launch)."""
        self._close_qemu_log_file()
        self._load_io_log()
        self._remove_daemon_machine()
        self._qemu_log_path = None
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir)
            self._temp_dir = None
        while self._remove_files:
            self._remove_if_exists(self._remove_files.pop())
        self._close_pending_fd()
        exitcode = self.exitcode()
        if exitcode is not None and exitcode < 0 and not (self._user_killed and exitcode == -signal.SIGKILL):
            LOG.warning('qemu received signal %i; command: "%s"', -int(exitcode),
                        " ".join(self._qemu_full_args))
        self._quit_issued = False
        self._user_killed = False
        self._launched = False

    def _early_cleanup(self):
        # a console socket nobody reads must not hold QEMU up
        if self._console_socket is not None:
            self._console_socket.close()
            self._console_socket = None

    def _hard_shutdown(self):
        self._early_cleanup()
        self._vm.kill()

    def _soft_shutdown(self, timeout):
        """Ask QEMU to quit (unless it was asked already) and wait for it;
        raises when it did not exit by itself in time (it was killed)."""
        self._early_cleanup()
        seconds = -1.0 if timeout is None else max(float(timeout), 0.001)
        if self._qmp_set and not self._quit_issued:
            if not self.is_running():
                # the original's quit fails on a monitor QEMU closed
                raise interrupted_error("QEMU exited before it was asked to quit")
            self._vm.shutdown(hard=False, timeout=seconds)
        else:
            try:
                self._vm.wait(timeout=seconds)
            finally:
                if self.is_running():
                    self._vm.kill()

    def _do_shutdown(self, timeout):
        try:
            self._soft_shutdown(timeout)
        except Exception as exc:
            self._hard_shutdown()
            raise AbnormalShutdown("Could not perform graceful shutdown") from exc

    def shutdown(self, hard=False, timeout=30):
        """Stop QEMU: ask it to quit, wait up to `timeout` seconds (None:
        forever), then kill it and raise AbnormalShutdown; `hard` kills at
        once. Cleanup always happens. Nothing to do when not launched."""
        if not self._launched:
            return
        try:
            if hard:
                self._user_killed = True
                self._hard_shutdown()
            else:
                self._do_shutdown(timeout)
        finally:
            self._post_shutdown()

    def kill(self):
        """Kill QEMU, wait for it and clean up."""
        self.shutdown(hard=True)

    def wait(self, timeout=30):
        """Wait up to `timeout` seconds (None: forever) for QEMU to exit by
        itself, then clean up; kill it and raise AbnormalShutdown when it
        did not."""
        self._quit_issued = True
        self.shutdown(timeout=timeout)

    # -- process state

    def _read_exitcode(self):
        try:
            if self._vm.pid:
                return None
            code = self._vm.exit_code
        except errors.QMachineError:
            return None
        return None if code == _EXIT_UNKNOWN else code

    def is_running(self):
        """True while QEMU runs."""
        if self._vm is None:
            return False
        try:
            return self._vm.pid != 0
        except errors.QMachineError:
            return False

    def exitcode(self):
        """QEMU's exit status (negative: killed by that signal), or None
        while it runs or before it ran."""
        if self._vm is not None:
            return self._read_exitcode()
        return self._exitcode

    def get_pid(self):
        """QEMU's PID while it runs, else None."""
        if self._vm is None:
            return None
        try:
            return self._vm.pid or None
        except errors.QMachineError:
            return None

    @staticmethod
    def _remove_if_exists(path):
        try:
            os.remove(path)
        except FileNotFoundError:
            pass

    # -- QMP

    @property
    def _qmp(self):
        if self._vm is None or not self._qmp_set:
            raise QEMUMachineError("Attempt to access QMP with no connection")
        return self._vm

    @classmethod
    def _qmp_args(cls, conv_keys, args):
        if conv_keys:
            return {k.replace("_", "-"): v for k, v in args.items()}
        return args

    def _execute(self, cmd, arguments):
        """The whole QMP response to `cmd` with `arguments` (a dict)."""
        try:
            if self._pending_scm_fd is not None:
                return self._execute_with_pending_fd(cmd, arguments)
            return self._qmp.qmp(cmd, arguments or None)
        except (errors.QmpDisconnected, errors.NotRunning) as exc:
            raise interrupted_error(str(exc)) from exc

    def qmp(self, cmd, args_dict=None, conv_keys=None, **args):
        """Run the QMP command `cmd` and return the whole response dict
        ({"return": ...} or {"error": ...}). Keyword arguments have "_" in
        their names turned into "-" (unless conv_keys is False); args_dict
        is taken as it is."""
        if args_dict is not None:
            assert not args
            assert conv_keys is None
            args = args_dict
            conv_keys = False
        if conv_keys is None:
            conv_keys = True
        ret = self._execute(cmd, self._qmp_args(conv_keys, args))
        if cmd == "quit" and "error" not in ret and "return" in ret:
            self._quit_issued = True
        return ret

    def command(self, cmd, conv_keys=True, **args):
        """Run the QMP command `cmd` and return its "return" value; a QMP
        error raises qemu.qmp.ExecuteError (a look-alike when qemu.qmp
        cannot be imported)."""
        arguments = self._qmp_args(conv_keys, args)
        ret = self._execute(cmd, arguments)
        if "error" in ret:
            sent = {"execute": cmd}
            if arguments:
                sent["arguments"] = arguments
            raise execute_error(ret, sent)
        if cmd == "quit":
            self._quit_issued = True
        return ret.get("return")

    cmd = command

    # -- file descriptors

    def send_fd_scm(self, fd=None, file_path=None):
        """Give QEMU a file descriptor with the next QMP command (getfd,
        add-fd, ...): `fd`, or `file_path` opened read-only. Exactly one of
        them. Returns 0."""
        if file_path is not None:
            assert fd is None
            with open(file_path, "rb") as passfile:
                new = os.dup(passfile.fileno())
        else:
            assert fd is not None
            new = os.dup(fd)
        self._qmp  # pylint: disable=pointless-statement  (no monitor: raise)
        self._close_pending_fd()
        self._pending_scm_fd = new
        return 0

    def _execute_with_pending_fd(self, cmd, arguments):
        # As with QEMU's socket: the fd goes with the very next command.
        fd, self._pending_scm_fd = self._pending_scm_fd, None
        try:
            return self._vm.qmp_with_fd(cmd, fd, arguments or None)
        finally:
            os.close(fd)

    def _close_pending_fd(self):
        if self._pending_scm_fd is not None:
            os.close(self._pending_scm_fd)
            self._pending_scm_fd = None

    # -- events

    def get_qmp_event(self, wait=False):
        """The oldest event not consumed yet (consuming it), or None; `wait`
        False/0: do not wait, True: wait forever, a float: that many
        seconds (asyncio.TimeoutError when none came)."""
        if self._events:
            return self._events.pop(0)
        return self._queue.pull(wait)

    def get_qmp_events(self, wait=False):
        """Consume and return every pending event (waiting for one as
        get_qmp_event does when there is none)."""
        events = self._queue.pull_all(wait)
        events.extend(self._events)
        del self._events[:]
        return events

    def clear_events(self):
        """Drop every pending event."""
        self._queue.skip_all()
        del self._events[:]

    @property
    def _queue(self):
        if self._event_queue is None:
            raise QEMUMachineError("Attempt to access QMP with no connection")
        self._event_queue.cached = self._events
        return self._event_queue

    @staticmethod
    def event_match(event, match):
        """True when `event` is a superset of the sub-dict `match`,
        recursively; None in `match` matches any value (so None matches
        anything; values that are not dicts must be equal)."""
        return event_match(event, match)

    def event_wait(self, name, timeout=60.0, match=None):
        """Wait for and consume the event `name` that matches `match`
        (see event_match); timeout as for get_qmp_event."""
        return self.events_wait([(name, match)], timeout)

    def events_wait(self, events, timeout=60.0):
        """Wait for and consume the first event that matches one of the
        (name, match) pairs `events`; the other events stay pending. None
        when timeout is 0 and none matched; asyncio.TimeoutError when a
        timeout ran out."""
        return self._queue.wait_for(events, timeout)

    # -- output and console

    def get_log(self):
        """QEMU's output, after shutdown or a failed launch."""
        return self._iolog

    @property
    def console_socket(self):
        """A socket connected to QEMU's serial console (set_console)."""
        if self._console_socket is None:
            self._console_socket = self._running_vm().open_console()
        return self._console_socket

    def _running_vm(self):
        if self._vm is None:
            raise QEMUMachineError("the VM is not launched")
        return self._vm

    # -- directories

    @property
    def temp_dir(self):
        """A temporary directory of this object (made on first use,
        removed at shutdown)."""
        if self._temp_dir is None:
            self._temp_dir = tempfile.mkdtemp(prefix="qemu-machine-", dir=self._base_temp_dir)
        return self._temp_dir

    @property
    def sock_dir(self):
        """The directory for socket files (default temp_dir)."""
        if self._sock_dir:
            return self._sock_dir
        return self.temp_dir

    @property
    def log_dir(self):
        """The directory for log files (default temp_dir)."""
        if self._log_dir is None:
            return self.temp_dir
        return self._log_dir
