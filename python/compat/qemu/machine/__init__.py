# SPDX-License-Identifier: LGPL-2.1-or-later
"""qemu.machine, answered by qmachined (the qmachine compatibility path).

With `python/compat` (or its installed copy) first on sys.path, an
unchanged `from qemu.machine import QEMUMachine`, `from qemu.machine
import machine` or `from qemu.machine import qtest` gets qmachine's
drop-ins, which run QEMU through qmachined.  `qemu` stays a namespace
package (there is no qemu/__init__.py here, and QEMU's own python/qemu has
none either), so `qemu.qmp` and `qemu.utils` still come from wherever the
program finds them.
"""

from .machine import QEMUMachine
from .qtest import QEMUQtestMachine, QEMUQtestProtocol

__all__ = (
    "QEMUMachine",
    "QEMUQtestProtocol",
    "QEMUQtestMachine",
)
