# SPDX-License-Identifier: LGPL-2.1-or-later
"""The exceptions QEMU's own QMP library raises, for the QEMUMachine drop-in.

Code written for QEMU's QEMUMachine catches what `qemu.qmp` raises:
`qemu.qmp.ExecuteError` from `command()` on a QMP error, and
`qemu.qmp.ExecInterruptedError` when QEMU went away during a command.  When
`qemu.qmp` can be imported (it is looked up when the error happens, so a
program's own sys.path decides), the exceptions raised here are instances
of those very classes; otherwise of look-alikes defined here.
"""

import importlib

__all__ = ["execute_error", "interrupted_error"]


class ExecuteError(Exception):
    """A QMP command failed (stand-in for qemu.qmp.ExecuteError).

    `.error_class` is QEMU's error class, `.sent` the command sent,
    `.received` the whole error response, `.error` its "error" member.
    """

    def __init__(self, response, sent):
        super().__init__(response["error"].get("desc", ""))
        self.sent = sent
        self.received = response
        self.error = response["error"]
        self.error_class = response["error"].get("class", "GenericError")


class ExecInterruptedError(Exception):
    """QEMU went away before it answered (stand-in for
    qemu.qmp.ExecInterruptedError)."""


def _qemu_qmp():
    try:
        return importlib.import_module("qemu.qmp")
    except ImportError:
        return None


def execute_error(response, sent):
    """The exception for the QMP error `response` (a dict with "error")
    to the command `sent` (a dict with "execute")."""
    qmp = _qemu_qmp()
    if qmp is None:
        return ExecuteError(response, sent)
    from qemu.qmp.message import Message  # noqa: E402 (only with qemu.qmp)
    from qemu.qmp.models import ErrorResponse

    received = Message(response)
    return qmp.ExecuteError(ErrorResponse(received), Message(sent), received)


def interrupted_error(text):
    """The exception for a command QEMU never answered."""
    qmp = _qemu_qmp()
    cls = qmp.ExecInterruptedError if qmp is not None else ExecInterruptedError
    return cls(text)
