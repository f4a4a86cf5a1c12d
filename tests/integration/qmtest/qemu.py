# SPDX-License-Identifier: LGPL-2.1-or-later
"""Which QEMU to run and how: the binary and the accelerator (TESTING.md:
KVM only when the CPU flags say so, with an override)."""

import os
import re
import shutil


def kvm_usable():
    """KVM vs TCG, as TESTING.md says: CPU flags plus an override."""
    override = os.environ.get("QMACHINED_TEST_KVM")
    if override in ("0", "1"):
        return override == "1"
    try:
        with open("/proc/cpuinfo") as f:
            cpuinfo = f.read()
    except OSError:
        return False
    if not re.search(r"\b(vmx|svm)\b", cpuinfo):
        return False
    return os.path.exists("/dev/kvm")


def accel():
    return "kvm" if kvm_usable() else "tcg"


def accel_args():
    """Arguments that select the accelerator, for a machine's `args`."""
    return ["-accel", accel()]


def none_args():
    """Args of the cheapest QEMU: no machine at all, QMP only."""
    return ["-machine", "none", "-nodefaults"] + accel_args()


def pc_args():
    """Args of a real but stopped x86 machine (pc, CPUs not started)."""
    return ["-machine", "pc", "-nodefaults", "-S", "-m", "64"] + accel_args()


def qemu_binary():
    return shutil.which("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64"
