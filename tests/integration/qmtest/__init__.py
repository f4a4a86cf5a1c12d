# SPDX-License-Identifier: LGPL-2.1-or-later
"""Shared harness for the qmachined integration tests.

Every test gets its own temporary directory, a private dbus-daemon of the
*system* type whose configuration includes the project's real policy file
(data/org.qmachine.QMachine1.conf), and its own qmachined on that bus.
Teardown stops the daemon with SIGTERM (which must exit 0), then kills by
PID every process the test left behind (VMs outlive the daemon on purpose)
and reaps them, then stops the bus and removes the directory.

The package's modules (tests import everything from `qmtest` itself):
  names      the D-Bus names of the API, machine paths, error names
  processes  the /proc walk, reaping, the subreaper (no gi: bench uses it)
  qemu       the QEMU binary and the accelerator (KVM or TCG)
  calls      calls, replies, errors, signal recorders, main-context waits
  bus        the private buses, the polkit mock and the daemon: Environment
  testcase   QMTestCase and main()
  twohost    two hosts (network namespaces, each with its bus and daemon,
             sshd on B): TwoHosts, TwoHostTestCase

Run the tests with Debian's /usr/bin/python3 (it has gi, dbus, dbusmock).

Environment:
  QMACHINED              path of the qmachined binary (default:
                         SOURCE_ROOT/build/src/qmachined/qmachined)
  QMACHINED_SOURCE_ROOT  the source tree (default: three levels up)
  QMACHINED_TEST_KVM     1 forces KVM, 0 forces TCG (default: KVM only when
                         the CPU has vmx or svm and /dev/kvm exists)
  QMACHINED_TEST_KEEP    1 keeps the temporary directory of each test
"""

import shutil  # noqa: F401  (tests use qmtest.shutil)

from .bus import (MOCK_IFACE, POLKIT_IFACE, POLKIT_NAME, POLKIT_PATH, ServiceMock,
                  SANITIZER_PATTERNS, Environment, PolkitMock, bus_config,
                  policy_file, qmachined_binary, session_bus_config,
                  source_root, start_dbus_daemon, stop_dbus_daemon,
                  system_bus_config)
from .calls import (AsyncCall, DBusCallError, Gio, GLib, SignalRecorder, ask_bus,
                    changed_values, config_variant, convert_error,
                    iterate_for, iterate_until, unpack_reply)
from .names import (ACCESS_DENIED, BUS_NAME, CONFIG_TYPES, ERROR_PREFIX,
                    INVALID_ARGS, MACHINE_IFACE, MACHINE_PATH_PREFIX,
                    MANAGER_IFACE, MANAGER_PATH, OM_IFACE, PROPS_IFACE,
                    UNKNOWN_OBJECT, err, machine_path, path_encode)
from .processes import (PR_SET_CHILD_SUBREAPER, all_pids, children_of,
                        is_qemu_process, pid_alive, proc_cmdline, proc_read,
                        proc_stat, reap, reap_all_children, set_subreaper,
                        stop_process)
from .users import read_passwd_group
from .qemu import (accel, accel_args, kvm_usable, none_args, pc_args,
                   qemu_binary)
from .testcase import QMTestCase, main
from .twohost import HostEnvironment, TwoHosts, TwoHostTestCase

# Importing the harness makes this process the reaper of its orphans, as
# before any test starts anything (TESTING.md: PID 1 here does not reap).
set_subreaper()

__all__ = [
    "ACCESS_DENIED", "AsyncCall", "BUS_NAME", "CONFIG_TYPES", "DBusCallError",
    "ERROR_PREFIX", "Environment", "GLib", "Gio", "INVALID_ARGS",
    "MACHINE_IFACE", "MACHINE_PATH_PREFIX", "MANAGER_IFACE", "MANAGER_PATH",
    "MOCK_IFACE", "OM_IFACE", "POLKIT_IFACE", "POLKIT_NAME", "POLKIT_PATH",
    "PROPS_IFACE", "PR_SET_CHILD_SUBREAPER", "PolkitMock", "QMTestCase", "ServiceMock",
    "HostEnvironment", "TwoHosts", "TwoHostTestCase",
    "SANITIZER_PATTERNS", "bus_config", "session_bus_config",
    "SignalRecorder", "UNKNOWN_OBJECT", "accel", "accel_args", "all_pids", "ask_bus",
    "changed_values", "children_of", "config_variant", "convert_error", "err",
    "is_qemu_process", "iterate_for", "iterate_until", "kvm_usable",
    "machine_path", "main", "none_args", "path_encode", "pc_args", "pid_alive",
    "policy_file", "proc_cmdline", "proc_read", "proc_stat", "qemu_binary",
    "qmachined_binary", "reap", "reap_all_children", "set_subreaper", "shutil",
    "read_passwd_group", "source_root", "start_dbus_daemon", "stop_dbus_daemon", "stop_process",
    "system_bus_config", "unpack_reply",
]
