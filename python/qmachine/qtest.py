# SPDX-License-Identifier: LGPL-2.1-or-later
"""qmachine.QEMUQtestMachine: QEMU 7.2's qemu.machine.qtest through qmachined.

QEMUQtestMachine is a QEMUMachine with QEMU's qtest protocol: QEMU runs
with `-accel qtest` and connects, as the calling user, to a unix socket
that this object listens on in its sock_dir (`-qtest unix:path=...`).  The
socket is a client-side resource QEMU reaches by path, so the mechanism is
the original's even though the daemon starts QEMU.
"""

import os
import socket

from .qemu_machine import QEMUMachine

__all__ = ["QEMUQtestMachine", "QEMUQtestProtocol"]


class QEMUQtestProtocol:
    """A qtest connection: one command line out, one answer line back.

    `address` is a unix socket path or a (host, port) pair; with `server`
    the socket listens there at once and accept() waits for QEMU.
    """

    def __init__(self, address, server=False):
        self._address = address
        family = socket.AF_INET if isinstance(address, tuple) else socket.AF_UNIX
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sockfile = None
        if server:
            self._sock.bind(self._address)
            self._sock.listen(1)

    def connect(self):
        """Connect to a qtest socket QEMU listens on."""
        self._sock.connect(self._address)
        self._sockfile = self._sock.makefile(mode="r")

    def accept(self):
        """Wait for QEMU to connect."""
        listener = self._sock
        self._sock, _ = listener.accept()
        listener.close()
        self._sockfile = self._sock.makefile(mode="r")

    def cmd(self, qtest_cmd):
        """Send one qtest command and return QEMU's answer line."""
        assert self._sockfile is not None
        self._sock.sendall((qtest_cmd + "\n").encode("utf-8"))
        return self._sockfile.readline()

    def close(self):
        """Close the connection."""
        self._sock.close()
        if self._sockfile:
            self._sockfile.close()
            self._sockfile = None

    def settimeout(self, timeout):
        """Seconds a command may wait for its answer (None: forever)."""
        self._sock.settimeout(timeout)


class QEMUQtestMachine(QEMUMachine):
    """A QEMUMachine with a qtest socket (see qtest())."""

    def __init__(self, binary, args=(), wrapper=(), name=None, base_temp_dir="/var/tmp",
                 sock_dir=None, qmp_timer=None, *, qmachine_address=None):
        # pylint: disable=too-many-arguments
        if name is None:
            name = "qemu-%d" % os.getpid()
        if sock_dir is None:
            sock_dir = base_temp_dir
        super().__init__(binary, args, wrapper=wrapper, name=name, base_temp_dir=base_temp_dir,
                         sock_dir=sock_dir, qmp_timer=qmp_timer, qmachine_address=qmachine_address)
        self._qtest = None
        self._qtest_path = os.path.join(sock_dir, name + "-qtest.sock")

    @property
    def _base_args(self):
        args = super()._base_args
        args.extend(["-qtest", f"unix:path={self._qtest_path}", "-accel", "qtest"])
        return args

    def _pre_launch(self):
        super()._pre_launch()
        self._qtest = QEMUQtestProtocol(self._qtest_path, server=True)

    def _post_launch(self):
        assert self._qtest is not None
        super()._post_launch()
        self._qtest.accept()

    def _post_shutdown(self):
        super()._post_shutdown()
        if self._qtest is not None:
            self._qtest.close()
            self._qtest = None
        self._remove_if_exists(self._qtest_path)

    def qtest(self, cmd):
        """Send the qtest command `cmd` and return QEMU's answer."""
        if self._qtest is None:
            raise RuntimeError("qtest socket not available")
        return self._qtest.cmd(cmd)
