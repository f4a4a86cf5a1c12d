# SPDX-License-Identifier: LGPL-2.1-or-later
"""qemu.machine.qtest, answered by qmachine.qtest (see the package)."""

from qmachine.qtest import QEMUQtestMachine, QEMUQtestProtocol

__all__ = (
    "QEMUQtestMachine",
    "QEMUQtestProtocol",
)
