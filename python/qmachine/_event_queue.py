# SPDX-License-Identifier: LGPL-2.1-or-later
"""QEMUMachine's consuming event queue on top of the daemon's numbered events.

The daemon keeps a machine's QMP events numbered and never consumes them;
QEMU's QEMUMachine consumes each event once.  An EventQueue gives the
second on top of the first: a cursor (the number of the newest event this
object has taken from the daemon) plays the part of QEMU's QMP socket
buffer, and events taken but not wanted yet wait in a local list, as in
the original.
"""

import asyncio
import json
import time

__all__ = ["EventQueue", "event_match", "wait_seconds"]


def event_match(event, match):
    """True when `event` holds `match` as a sub-dict, recursively.

    A None anywhere in `match` matches any value; a non-dict `match`
    must equal the value.  So None matches everything, {"a": None}
    matches any event that has "a", {"a": {"b": 1}} matches
    {"a": {"b": 1, "c": 2}} but not {"a": {"c": 2}}.
    """
    if match is None:
        return True
    try:
        for key in match:
            if key not in event or not event_match(event[key], match[key]):
                return False
        return True
    except TypeError:
        # one side is not a mapping: plain comparison
        return bool(match == event)


def wait_seconds(wait):
    """The wait of QEMU's legacy pull_event as a number of seconds.

    False, None or 0: do not wait (0.0); True: forever (None); a float: that
    many seconds.  Other numbers also mean "forever": the original only
    treats a float as a limit, and a drop-in keeps that.
    """
    if not wait:
        return 0.0
    if isinstance(wait, float):
        return wait
    return None


class EventQueue:
    """The events of one QEMU run, consumed once each.

    `machine` is a qmachine.Machine (or anything with its `get_events`
    and `wait_event` methods).
    """

    def __init__(self, machine, cursor=0):
        self._machine = machine
        self._cursor = cursor
        self.cached = []  # taken from the daemon, not consumed yet

    def _take_upto(self, last):
        """The events after the cursor up to number `last` (None: all),
        in order; the cursor moves past them."""
        out = []
        for seq, event in self._machine.get_events(after=self._cursor):
            if last is not None and seq > last:
                break
            self._cursor = seq
            out.append(event)
        return out

    def _wait_one(self, filters, seconds):
        """Number of the first event after the cursor that the daemon
        matches with `filters`, waiting `seconds` (None: forever); 0 when
        none came and seconds is 0.  Raises asyncio.TimeoutError when a
        wait ran out, like the original."""
        from .errors import NotRunning, Timeout

        try:
            seq, _event = self._machine.wait_event(filters, after=self._cursor, timeout=seconds)
        except (Timeout, NotRunning) as exc:
            # QEMU ended: no event will come, as no event comes in time
            raise asyncio.TimeoutError() from exc
        return seq

    def pull(self, wait=False):
        """The next event from the daemon (QEMUMonitorProtocol.pull_event)."""
        seconds = wait_seconds(wait)
        seq = self._wait_one([("", None)], seconds)
        if not seq:
            return None
        events = self._take_upto(seq)
        # more than one when an event was dropped from the daemon's ring;
        # the others go first into the cache, like unconsumed events
        self.cached.extend(events[:-1])
        return events[-1] if events else None

    def pull_all(self, wait=False):
        """Every event the daemon has after the cursor, waiting for one
        when there is none and `wait` says so (get_events)."""
        events = self._take_upto(None)
        if events or not wait:
            return events
        event = self.pull(wait)
        return [event] if event is not None else []

    def skip_all(self):
        """Forget every event the daemon has now (clear_events)."""
        self._take_upto(None)

    def wait_for(self, wanted, timeout):
        """events_wait: the first event matching one of `wanted`
        ((name, match) pairs), searching the cache first, then waiting
        for new events; the events passed over are cached."""

        def matches(event):
            return any(event.get("event") == name and event_match(event, match)
                       for name, match in wanted)

        for event in self.cached:
            if matches(event):
                self.cached.remove(event)
                return event
        seconds = wait_seconds(timeout)
        deadline = None if seconds is None else time.monotonic() + seconds
        filters = self._daemon_filters(wanted)
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if seconds and left == 0.0:
                raise asyncio.TimeoutError()
            seq = self._wait_one(filters, left)
            if not seq:
                # no wait asked: the pending events are looked at and kept
                self.cached.extend(self._take_upto(None))
                return None
            for event in self._take_upto(seq):
                if matches(event):
                    return event
                self.cached.append(event)

    @staticmethod
    def _daemon_filters(wanted):
        """(name, match) pairs for WaitEvent.  The daemon only gets a match
        that is a JSON object; any other match is left to the check here
        (which always runs), the daemon then filters by name only."""
        out = []
        for name, match in wanted:
            if isinstance(match, dict):
                try:
                    json.dumps(match)
                except (TypeError, ValueError):
                    match = None
            else:
                match = None
            out.append((name, match))
        return out
