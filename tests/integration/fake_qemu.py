#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A stand-in for qemu-system-* that speaks QMP badly on purpose.

qmachined starts it like QEMU: the listening QMP socket (and the console
socket) arrive as inherited fds named in `-chardev socket,id=mon,fd=N,...`.
The behaviour comes from `--fake-mode=MODE` at the end of the arguments:

  split            every message is sent one byte at a time
  garbage-greeting the first line is not JSON
  console-flood    writes 4 MiB to the console socket, then FLOOD-DONE
  panic-flood      a panic line that goes on for 40 MiB before its newline,
                   then PANIC-DONE
  console-hello    writes "hello from the fake\n", a line that is not
                   UTF-8 ("bad \xff byte\n") and "READY\n" to the console
  fork-child       starts a child ("sleep") that would outlive it, and
                   prints "CHILD <pid>"
  ignore-quit      answers quit but goes on running
  slow-regreet     greets a second and later monitor connection (a
                   restarted daemon's) only after 2 s
  console-drop     writes "BEFORE-DROP\n" to the console, closes it, and
                   writes "AFTER-DROP\n" to the next console connection
  console-drop-always
                   closes every console connection at once
  drop-first       closes the first monitor connection without a
                   greeting (as QEMU 7.2 now and then does with one made
                   before its monitor is ready), then serves the next
  drop-always      closes every monitor connection without a greeting
  powers-off       answers system_powerdown as a guest that powers off:
                   POWERDOWN, a guest SHUTDOWN, then exit 0
  cancel-fails     a migration source that stays active until
                   migrate_cancel, which makes it "failed" with
                   "Unable to write to socket: Broken pipe" (as QEMU 7.2
                   does now and then, its return path shut first)
  incoming         a migration destination: prints "COMMAND <name>" for
                   each QMP command; migrate-incoming "unix:PATH" listens
                   on PATH, and a client that connects and sends a line
                   is a source: MIGRATION events setup, active, then
                   completed (the line "ok") or failed (any other line);
                   query-migrate answers the status so far

Whatever the mode, these commands misbehave when asked:
  x-burst    three events and the reply in a single write
  x-garbage  a line that is not JSON
  x-oversize a 17 MiB line
  x-eof      half a reply, then the socket is closed (the process lives on)
  x-hang     never answered
  x-surrogate        a reply holding a lone UTF-16 surrogate ("\\ud800x")
  x-surrogate-event  an event holding one, then the reply
  x-numbers  an event and a reply with a uint64 above 2^63 and 1e400
  x-extra    a reply with a member besides "return", numbers json-glib
             would print wrongly
  x-bignum   an event X_BIGNUM and a reply with numbers json-glib
             mangles (UINT64_MAX, INT64_MIN, 1.50, 1e3, -0) and a string
             with escapes, for clients that must print them as they are
  x-nul-event  a guest SHUTDOWN event named "SHUTDOWN\\u0000JUNK", then exit 0
  x-drop     closes the monitor connection (the process lives on and
             accepts a new one, as QEMU does)
"""

import json
import os
import socket
import sys
import threading
import time

ARGS = sys.argv[1:]
MODE = next((a.split("=", 1)[1] for a in ARGS if a.startswith("--fake-mode=")), "normal")


def chardev_fd(name):
    prefix = "socket,id=%s,fd=" % name
    for a in ARGS:
        if a.startswith(prefix):
            return int(a[len(prefix):].split(",")[0])
    return None


def now():
    t = time.time()
    return {"seconds": int(t), "microseconds": int((t % 1) * 1e6)}


def sleep_forever():
    while True:
        time.sleep(1000)


class Monitor:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.lock = threading.Lock()  # the incoming source's events

    def send(self, obj):
        data = (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\r\n"
        with self.lock:
            if MODE == "split":
                for i in range(len(data)):
                    self.sock.sendall(data[i:i + 1])
            else:
                self.sock.sendall(data)

    def lines(self):
        while True:
            while b"\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)


def event(name, data=None):
    e = {"timestamp": now(), "event": name}
    if data is not None:
        e["data"] = data
    return e


class Incoming:
    """The destination side of a migration (mode incoming)."""
    status = "none"
    runstate = "inmigrate"
    events = False

    mon = None  # the monitor connection of now (a daemon may restart)

    def set_status(self, status):
        Incoming.status = status
        if Incoming.events:
            Incoming.mon.send(event("MIGRATION", {"status": status}))

    def listen(self, uri):
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(uri[len("unix:"):])
        listener.listen(1)
        threading.Thread(target=self.source, args=(listener,), daemon=True).start()

    def source(self, listener):
        sock, _ = listener.accept()
        self.set_status("setup")
        self.set_status("active")
        line = sock.makefile("rb").readline().strip()
        if line == b"ok":
            Incoming.runstate = "paused"  # -S
        self.set_status("completed" if line == b"ok" else "failed")
        sock.close()


class CancelFails:
    """A source whose migrate_cancel ends in "failed" (mode cancel-fails)."""
    status = "none"


def serve(mon):
    incoming = Incoming()
    Incoming.mon = mon
    for cmd in mon.lines():
        name = cmd.get("execute")
        rid = cmd.get("id")
        if MODE == "incoming":
            print("COMMAND", name, flush=True)

        def reply(ret):
            mon.send({"return": ret, "id": rid})

        if MODE == "incoming" and name in ("query-status", "cont"):
            if name == "cont" and Incoming.runstate == "paused":
                Incoming.runstate = "running"
            reply({} if name == "cont" else
                  {"status": Incoming.runstate, "singlestep": False,
                   "running": Incoming.runstate == "running"})
        elif name in ("qmp_capabilities", "cont", "stop", "system_reset"):
            reply({})
        elif MODE == "incoming" and name == "migrate-set-capabilities":
            for c in cmd["arguments"]["capabilities"]:
                if c["capability"] == "events":
                    Incoming.events = c["state"]
            reply({})
        elif MODE == "incoming" and name == "migrate-incoming":
            incoming.listen(cmd["arguments"]["uri"])
            reply({})
        elif MODE == "cancel-fails" and name in ("migrate-set-capabilities", "migrate-set-parameters",
                                                  "migrate", "migrate_cancel"):
            if name == "migrate":
                CancelFails.status = "active"
            elif name == "migrate_cancel":
                CancelFails.status = "failed"
            reply({})
        elif MODE == "cancel-fails" and name == "query-migrate":
            reply({"status": CancelFails.status} if CancelFails.status != "failed" else
                  {"status": "failed", "error-desc": "Unable to write to socket: Broken pipe"})
        elif MODE == "incoming" and name == "query-migrate":
            reply({"status": Incoming.status} if Incoming.status != "none" else {})
        elif name == "quit" and MODE == "ignore-quit":
            reply({})
        elif name == "query-status":
            reply({"status": "running", "singlestep": False, "running": True})
        elif name == "quit":
            mon.send(event("SHUTDOWN", {"guest": False, "reason": "host-qmp-quit"}))
            reply({})
            sys.exit(0)
        elif name == "system_powerdown" and MODE == "powers-off":
            reply({})
            mon.send(event("POWERDOWN"))
            mon.send(event("SHUTDOWN", {"guest": True, "reason": "guest-shutdown"}))
            time.sleep(0.2)
            sys.exit(0)
        elif name == "x-burst":
            batch = b"".join(json.dumps(o).encode() + b"\r\n" for o in (
                event("X_ONE", {"n": 1}), event("X_TWO", {"n": 2}), event("X_THREE"),
                {"return": {"burst": 3}, "id": rid}))
            mon.sock.sendall(batch)
        elif name == "x-garbage":
            mon.sock.sendall(b"this is not json\r\n")
        elif name == "x-oversize":
            try:
                mon.sock.sendall(b'{"return": "' + b"x" * (17 * 1024 * 1024))
            except OSError:
                pass
        elif name == "x-eof":
            mon.sock.sendall(b'{"return": {"half')
            mon.sock.close()
            sleep_forever()
        elif name == "x-hang":
            pass
        elif name == "x-surrogate":
            mon.send(b'{"return": {"s": "\\ud800x"}, "id": %d}' % rid)
        elif name == "x-surrogate-event":
            mon.send(b'{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "X_BAD", '
                     b'"data": {"s": "a\\udc00b"}}')
            reply({})
        elif name == "x-numbers":
            mon.send(b'{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "X_NUMBERS", '
                     b'"data": {"big": 18446744073709551615, "huge": 1e400, "neg": -9223372036854775809}}')
            mon.send(b'{"id": %d, "return": {"big": 18446744073709551615, "huge": 1e400}}' % rid)
        elif name == "x-extra":
            mon.send(b'{"return": [1e17, 18446744073709551615], "extra": true, "id": %d}' % rid)
        elif name == "x-bignum":
            mon.send(b'{"timestamp": {"seconds": 1700000000, "microseconds": 2}, "event": "X_BIGNUM", '
                     b'"data": {"max": 18446744073709551615, "min": -9223372036854775808, "f": 1.50, '
                     b'"list": [1e3, -0, {}], "s": "caf\\u00E9 \\"q\\" \\/"}}')
            mon.send(b'{"return": {"max": 18446744073709551615, "min": -9223372036854775808, "f": 1.50, '
                     b'"e": 1e3, "z": -0, "empty": {}, "s": "caf\\u00E9"}, "id": %d}' % rid)
        elif name == "x-nul-event":
            mon.send(b'{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "SHUTDOWN\\u0000JUNK", '
                     b'"data": {"guest": true, "reason": "guest-shutdown"}}')
            time.sleep(0.2)
            sys.exit(0)
        elif name == "x-drop":
            mon.sock.close()
            return
        else:
            mon.send({"error": {"class": "CommandNotFound",
                                "desc": "The command %s has not been found" % name}, "id": rid})


def panic_flood(console):
    """More than dbus-daemon's 32 MiB message limit on one panic line."""
    console.sendall(b"Kernel panic - not syncing: boom ")
    chunk = b"x" * (1024 * 1024)
    for _ in range(40):
        console.sendall(chunk)
    console.sendall(b"\r\nPANIC-DONE\n")


def drop_console(listener, always):
    """Close the console connection while running on, as a QEMU may."""
    console, _ = listener.accept()
    if not always:
        console.sendall(b"BEFORE-DROP\n")
    console.close()
    while always:
        listener.accept()[0].close()
    console, _ = listener.accept()
    console.sendall(b"AFTER-DROP\n")
    sleep_forever()


def main():
    print("fake qemu starting in mode", MODE, flush=True)
    console_fd = chardev_fd("console")
    if console_fd is not None and MODE in ("console-drop", "console-drop-always"):
        import threading
        threading.Thread(target=drop_console, daemon=True,
                         args=(socket.socket(fileno=console_fd), MODE == "console-drop-always")).start()
    elif console_fd is not None:
        listener = socket.socket(fileno=console_fd)
        console, _ = listener.accept()
        if MODE == "console-flood":
            chunk = b"c" * 65535 + b"\n"
            for _ in range(64):
                console.sendall(chunk)
            console.sendall(b"FLOOD-DONE\n")
        elif MODE == "panic-flood":
            panic_flood(console)
        elif MODE == "console-hello":
            console.sendall(b"hello from the fake\nbad \xff byte\nREADY\n")
    if MODE == "fork-child":
        import subprocess
        child = subprocess.Popen(["sleep", "300"])
        print("CHILD", child.pid, flush=True)
    mon_fd = chardev_fd("mon")
    if mon_fd is None:
        sleep_forever()
    listener = socket.socket(fileno=mon_fd)
    # Like QEMU: one monitor connection at a time, the next one accepted
    # when it closes (a restarted daemon connects again).
    for n in range(1000):
        sock, _ = listener.accept()
        if (MODE == "drop-first" and n == 0) or MODE == "drop-always":
            sock.close()
            continue
        mon = Monitor(sock)
        if MODE == "garbage-greeting":
            sock.sendall(b"\x01\x02 garbage instead of a greeting\r\n")
            sleep_forever()
        if MODE == "slow-regreet" and n > 0:
            time.sleep(2)
        try:
            mon.send({"QMP": {"version": {"qemu": {"micro": 9, "minor": 9, "major": 9}, "package": "fake"},
                              "capabilities": []}})
            serve(mon)
        except OSError:
            pass
        try:
            sock.close()
        except OSError:
            pass
    sleep_forever()


if __name__ == "__main__":
    main()
