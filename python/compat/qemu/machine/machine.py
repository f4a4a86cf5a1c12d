# SPDX-License-Identifier: LGPL-2.1-or-later
"""qemu.machine.machine, answered by qmachine.qemu_machine (see the package)."""

from qmachine.qemu_machine import (AbnormalShutdown, QEMUMachine,
                                   QEMUMachineAddDeviceError,
                                   QEMUMachineError, VMLaunchFailure)

__all__ = (
    "AbnormalShutdown",
    "QEMUMachine",
    "QEMUMachineAddDeviceError",
    "QEMUMachineError",
    "VMLaunchFailure",
)
