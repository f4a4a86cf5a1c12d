#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""One D-Bus method call, for running as another user.

The integration tests run as root, and root is always allowed by qmachined.
To make the daemon ask polkit, a test runs this script under another uid:

    setpriv --reuid=65534 --regid=65534 --clear-groups \\
        /usr/bin/python3 as_user.py [options] PATH INTERFACE METHOD [ARGS]

ARGS is the GVariant text of the argument tuple (GLib.Variant.parse), for
example "('vm-1', @a{sv} {})"; empty or absent means no arguments.

Output, one JSON object per line:
    {"name": ":1.7"}                       first, with --print-name
    {"ok": <reply>, "elapsed": SEC}        the unpacked reply: null when it
                                           is empty, the value when it has
                                           one, a list when more
    {"error": "<D-Bus error name>", "message": "...", "elapsed": SEC}

"elapsed" is the time the call took, in seconds.

Options:
  --address ADDR   connect to this bus (default: the system bus, that is
                   DBUS_SYSTEM_BUS_ADDRESS)
  --dest NAME      destination (default org.qmachine.QMachine1)
  --interactive    set ALLOW_INTERACTIVE_AUTHORIZATION on the call
  --print-name     print the connection's unique name before calling
  --repeat N       make the same call N times on the same connection, one
                   after the other (one output line each)
  --timeout SEC    call timeout (default 30)

Exit status: 0 after a reply or an error reply, 2 on bad usage.
"""

import argparse
import json
import os
import sys
import time

import gi

gi.require_version("Gio", "2.0")
gi.require_version("GLib", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qmtest.calls import convert_error  # noqa: E402


def emit(obj):
    sys.stdout.write(json.dumps(obj, default=repr) + "\n")
    sys.stdout.flush()


def jsonable(v):
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v


def main():
    p = argparse.ArgumentParser(description="one D-Bus call, JSON result")
    p.add_argument("--address")
    p.add_argument("--dest", default="org.qmachine.QMachine1")
    p.add_argument("--interactive", action="store_true")
    p.add_argument("--print-name", action="store_true")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("path")
    p.add_argument("interface")
    p.add_argument("method")
    p.add_argument("args", nargs="?", default="")
    o = p.parse_args()

    params = None
    if o.args.strip():
        try:
            params = GLib.Variant.parse(None, o.args, None, None)
        except GLib.Error as e:
            sys.stderr.write("as_user.py: bad arguments %r: %s\n" % (o.args, e.message))
            return 2
        if not params.get_type_string().startswith("("):
            params = GLib.Variant.new_tuple(params)

    if o.address:
        conn = Gio.DBusConnection.new_for_address_sync(
            o.address,
            Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
            | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
            None, None)
    else:
        conn = Gio.bus_get_sync(Gio.BusType.SYSTEM, None)
    conn.set_exit_on_close(False)

    if o.print_name:
        emit({"name": conn.get_unique_name()})

    flags = Gio.DBusCallFlags.NONE
    if o.interactive:
        flags |= Gio.DBusCallFlags.ALLOW_INTERACTIVE_AUTHORIZATION
    for _ in range(max(1, o.repeat)):
        call(conn, o, params, flags)
    return 0


def call(conn, o, params, flags):
    t0 = time.monotonic()
    try:
        r = conn.call_sync(o.dest, o.path, o.interface, o.method, params, None,
                           flags, int(o.timeout * 1000), None)
    except GLib.Error as e:
        elapsed = time.monotonic() - t0
        err = convert_error(e)
        emit({"error": err.name, "message": err.text, "elapsed": elapsed})
        return
    elapsed = time.monotonic() - t0
    values = r.unpack() if r is not None else ()
    if len(values) == 0:
        value = None
    elif len(values) == 1:
        value = values[0]
    else:
        value = list(values)
    emit({"ok": jsonable(value), "elapsed": elapsed})


if __name__ == "__main__":
    sys.exit(main())
