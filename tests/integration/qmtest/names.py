# SPDX-License-Identifier: LGPL-2.1-or-later
"""Names of the D-Bus API under test (API.md) and helpers that build them."""

BUS_NAME = "org.qmachine.QMachine1"
MANAGER_PATH = "/org/qmachine/QMachine1"
MANAGER_IFACE = "org.qmachine.QMachine1.Manager"
MACHINE_IFACE = "org.qmachine.QMachine1.Machine"
MACHINE_PATH_PREFIX = "/org/qmachine/QMachine1/machine/"
PROPS_IFACE = "org.freedesktop.DBus.Properties"
OM_IFACE = "org.freedesktop.DBus.ObjectManager"
ERROR_PREFIX = "org.qmachine.QMachine1.Error."
INVALID_ARGS = "org.freedesktop.DBus.Error.InvalidArgs"
ACCESS_DENIED = "org.freedesktop.DBus.Error.AccessDenied"
UNKNOWN_OBJECT = "org.freedesktop.DBus.Error.UnknownObject"

# Types of the machine config keys (API.md, "Machine config").
CONFIG_TYPES = {
    "binary": "s",
    "args": "as",
    "wrapper": "as",
    "machine": "s",
    "qmp": "b",
    "console": "b",
    "console-device": "s",
    "console-index": "u",
    "qmp-timeout": "d",
    "persistent": "b",
    "uuid": "s",
    "incoming": "s",
    "nics": "u",
    "description": "s",
    "user": "s",
    "sandbox": "b",
    "forward-ports": "aq",
    "guest-agent": "b",
    "autostart": "b",
}


def path_encode(name):
    """sd_bus_path_encode() of a machine name: every byte that is not
    [A-Za-z0-9] (and a leading digit) becomes _XX in lower-case hex."""
    if name == "":
        return "_"
    out = []
    for i, b in enumerate(name.encode()):
        c = chr(b)
        if (c.isascii() and c.isalpha()) or (i > 0 and c.isascii() and c.isdigit()):
            out.append(c)
        else:
            out.append("_%02x" % b)
    return "".join(out)


def machine_path(name):
    return MACHINE_PATH_PREFIX + path_encode(name)


def err(name):
    """Full D-Bus error name of one of our errors."""
    return ERROR_PREFIX + name
