# SPDX-License-Identifier: LGPL-2.1-or-later
"""Processes: the /proc walk, reaping, and the subreaper.

PID 1 on the test machines does not reap orphans, so whoever starts
processes here (the tests, bench/bench.py) must reap them itself. Nothing
in this module needs gi: bench/bench.py uses it too.
"""

import ctypes
import os
import signal
import subprocess
import time

PR_SET_CHILD_SUBREAPER = 36


def set_subreaper():
    """Make this process reap the orphans of everything it starts.

    PID 1 on the test machines does not reap; QEMUs orphaned by a daemon
    that exits must become our children so that their exit is reaped.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "prctl(PR_SET_CHILD_SUBREAPER): " + os.strerror(e))


def proc_read(pid, what):
    try:
        with open("/proc/%d/%s" % (pid, what), "rb") as f:
            return f.read()
    except OSError:
        return None


def proc_stat(pid):
    """(state, ppid) of a process, or None when it is gone."""
    data = proc_read(pid, "stat")
    if data is None:
        return None
    rest = data[data.rfind(b")") + 2:].split()
    return rest[0].decode(), int(rest[1])


def proc_cmdline(pid):
    data = proc_read(pid, "cmdline")
    if data is None:
        return None
    return [a.decode("utf-8", "replace") for a in data.split(b"\0")[:-1]]


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def pid_alive(pid):
    """True while the process exists and is not a zombie."""
    st = proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def is_qemu_process(pid):
    cmd = proc_cmdline(pid)
    return bool(cmd) and "qemu-system" in os.path.basename(cmd[0]) and pid_alive(pid)


def children_of(pid):
    """(pid, state) of every process whose parent is pid."""
    out = []
    for p in all_pids():
        st = proc_stat(p)
        if st is not None and st[1] == pid:
            out.append((p, st[0]))
    return out


def reap(pid, timeout=10.0):
    """Wait for a process to disappear; reap it when it is our child."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            r, _ = os.waitpid(pid, os.WNOHANG)
            if r == pid:
                return True
        except ChildProcessError:
            if proc_stat(pid) is None:
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def reap_all_children():
    """Reap every exited child (orphans handed to us as subreaper)."""
    while True:
        try:
            r, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if r == 0:
            return


def stop_process(proc, sig=signal.SIGTERM, timeout=10.0):
    """Signal one process we started (a Popen) and wait for it; SIGKILL it
    when it does not exit within timeout."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
