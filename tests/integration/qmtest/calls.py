# SPDX-License-Identifier: LGPL-2.1-or-later
"""Calls and signals: arguments out, replies and errors back, and the
default main context iterated while waiting for them."""

import re
import time

import gi

gi.require_version("Gio", "2.0")
gi.require_version("GLib", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

from .names import BUS_NAME, CONFIG_TYPES  # noqa: E402

def config_variant(config):
    """a{sv} from a dict; values get the types of CONFIG_TYPES.

    A value that is a GLib.Variant already is sent as is (to send wrongly
    typed values on purpose). Keys may use underscores for dashes.
    """
    d = {}
    for key, value in config.items():
        key = key.replace("_", "-")
        if isinstance(value, GLib.Variant):
            d[key] = value
            continue
        t = CONFIG_TYPES.get(key)
        if t is None:
            if isinstance(value, bool):
                t = "b"
            elif isinstance(value, int):
                t = "u"
            elif isinstance(value, float):
                t = "d"
            elif isinstance(value, (list, tuple)):
                t = "as"
            else:
                t = "s"
        if t == "d":
            value = float(value)
        d[key] = GLib.Variant(t, value)
    return d


def unpack_reply(v):
    if v is None:
        return None
    r = v.unpack()
    if len(r) == 0:
        return None
    if len(r) == 1:
        return r[0]
    return r


def ask_bus(conn, method, name, reply_type, timeout=5.0):
    """Ask the bus daemon one question about a name (NameHasOwner,
    GetNameOwner, GetConnectionUnixUser...): its answer, or None when the
    call fails (no such name)."""
    try:
        r = conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus",
                           "org.freedesktop.DBus", method,
                           GLib.Variant("(s)", (name,)),
                           GLib.VariantType.new(reply_type),
                           Gio.DBusCallFlags.NONE, int(timeout * 1000), None)
        return r.unpack()[0]
    except GLib.Error:
        return None


class DBusCallError(Exception):
    """A D-Bus error reply: .name and .text (the message)."""

    def __init__(self, name, text):
        super().__init__("%s: %s" % (name, text))
        self.name = name
        self.text = text


def convert_error(e):
    name = Gio.DBusError.get_remote_error(e)
    msg = e.message
    m = re.match(r"GDBus\.Error:([^ ]+?): (.*)\Z", msg, re.S)
    if m:
        name = name or m.group(1)
        msg = m.group(2)
    if name is None:
        name = "(local) " + e.domain + ":" + str(e.code)
    return DBusCallError(name, msg)


# --------------------------------------------------------------------------
# Main context helpers


def iterate_until(pred, timeout):
    """Run the default main context until pred() is true or the deadline.

    Returns the final value of pred().
    """
    ctx = GLib.MainContext.default()
    deadline = time.monotonic() + timeout
    tick = GLib.timeout_add(20, lambda: True)
    try:
        while True:
            while ctx.pending():
                ctx.iteration(False)
            if pred():
                return True
            if time.monotonic() >= deadline:
                return bool(pred())
            ctx.iteration(True)
    finally:
        GLib.source_remove(tick)


def iterate_for(seconds):
    iterate_until(lambda: False, seconds)


class AsyncCall:
    """A method call in flight; .done, .result (unpacked) or .error."""

    def __init__(self, conn, path, iface, method, args=None, reply_type=None,
                 timeout=60.0, dest=BUS_NAME):
        self.done = False
        self.result = None
        self.error = None
        self.finished_at = None
        self.started_at = time.monotonic()
        rt = GLib.VariantType.new(reply_type) if reply_type else None
        conn.call(dest, path, iface, method, args, rt,
                  Gio.DBusCallFlags.NONE, int(timeout * 1000), None,
                  self._done, None)

    def _done(self, conn, res, _data):
        try:
            self.result = unpack_reply(conn.call_finish(res))
        except GLib.Error as e:
            self.error = convert_error(e)
        self.done = True
        self.finished_at = time.monotonic()

    def wait(self, timeout=60.0):
        """Wait for the reply; returns the result or raises the error."""
        if not iterate_until(lambda: self.done, timeout):
            raise AssertionError("no reply within %.1f s" % timeout)
        if self.error:
            raise self.error
        return self.result


class SignalRecorder:
    """Records signals matching a subscription.

    .signals is a list of (path, interface, member, args-tuple).
    """

    def __init__(self, conn, sender, iface=None, member=None, path=None,
                 arg0=None):
        self.conn = conn
        self.signals = []
        self.sub = conn.signal_subscribe(
            sender, iface, member, path, arg0, Gio.DBusSignalFlags.NONE,
            self._on_signal, None)
        # Make sure the bus has the match rule before anything happens:
        # a round trip to the bus daemon orders it after AddMatch.
        conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus",
                       "org.freedesktop.DBus", "GetId", None, None,
                       Gio.DBusCallFlags.NONE, 5000, None)

    def _on_signal(self, conn, sender, path, iface, member, params, _data):
        self.signals.append((path, iface, member, params.unpack()))

    def wait(self, pred=None, timeout=10.0):
        """Iterate until pred(signals) is true (default: any signal)."""
        if pred is None:
            def pred(s):
                return len(s) > 0
        return iterate_until(lambda: pred(self.signals), timeout)

    def members(self):
        return [s[2] for s in self.signals]

    def args(self, member=None):
        return [s[3] for s in self.signals if member is None or s[2] == member]

    def clear(self):
        self.signals = []

    def close(self):
        if self.sub is not None:
            self.conn.signal_unsubscribe(self.sub)
            self.sub = None


def changed_values(recorder, name):
    """Values a property took in the recorded PropertiesChanged signals
    (including invalidations as the string '<invalidated>')."""
    out = []
    for _path, _iface, _member, args in recorder.signals:
        _ifc, changed, invalidated = args
        if name in changed:
            out.append(changed[name])
        elif name in invalidated:
            out.append("<invalidated>")
    return out

