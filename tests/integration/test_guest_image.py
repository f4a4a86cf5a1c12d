#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The test guest itself (tests/guest), booted with plain QEMU, without the
daemon: its guest agent answers on a virtio-serial port (guest-sync-delimited,
guest-info, guest-exec), its web server answers through a forwarded host
port, its console helpers (qm-agent-restart, qm-counter) work, and without
those devices it boots as before. Prints the boot timings."""

import base64
import http.client
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402  (accel, QEMU binary; makes us a subreaper)

BOOT_TIMEOUT = 120.0  # TCG on a busy 2-core machine: seconds, not minutes
AGENT_PORT_NAME = "org.qemu.guest_agent.0"
GUEST_HTTP_PORT = 8080
KERNEL_ARGS = "console=ttyS0 panic=-1 quiet cryptomgr.notests"


def guest_dir():
    """The built guest (meson target test-guest); without it nothing here can
    be proven, so the tests fail."""
    d = os.environ.get("QMACHINED_TEST_GUEST_DIR", "")
    if not d or not os.path.exists(os.path.join(d, "vmlinuz")):
        raise AssertionError("no test guest: set QMACHINED_TEST_GUEST_DIR to the output of "
                             "tests/guest/build-guest.sh (meson target test-guest)")
    return d


def free_tcp_port():
    """A port on 127.0.0.1 that is free now (QEMU binds it a moment later;
    Guest.start retries when another process took it meanwhile)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.02)


class Console:
    """The serial console through a unix socket: a thread reads everything
    (a console nobody reads stalls the guest) into a buffer."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.data = b""
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            with self.lock:
                self.data += chunk

    def text(self):
        with self.lock:
            return self.data

    def wait(self, pattern, timeout=BOOT_TIMEOUT, start=0):
        """Wait for the regex pattern in the output from offset start;
        returns the match."""
        rx = re.compile(pattern)
        found = []

        def seen():
            m = rx.search(self.text(), start)
            if m:
                found.append(m)
            return bool(m)
        try:
            wait_for(seen, timeout, "%r on the console" % pattern)
        except AssertionError as e:
            raise AssertionError("%s; tail: %r" % (e, self.text()[-2000:])) from None
        return found[0]

    def send(self, text):
        self.sock.sendall(text.encode())

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.reader.join(10)
        self.sock.close()


class Agent:
    """A client of qemu-ga's JSON protocol on the chardev socket."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.buf = b""

    def _recv(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout()
        self.sock.settimeout(left)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise AssertionError("the agent's socket closed")
        self.buf += chunk

    def sync(self, timeout=BOOT_TIMEOUT):
        """guest-sync-delimited until qemu-ga answers with our id: the 0xFF we
        send resets its parser, the 0xFF before its reply marks where the
        answer to this sync starts (what came before is stale). Retried,
        as the agent may not listen yet; returns the number of tries."""
        deadline = time.monotonic() + timeout
        tries = 0
        while True:
            tries += 1
            sync_id = random.randrange(1, 1 << 31)
            self.buf = b""
            cmd = {"execute": "guest-sync-delimited", "arguments": {"id": sync_id}}
            self.sock.sendall(b"\xff" + json.dumps(cmd).encode() + b"\n")
            try_end = min(deadline, time.monotonic() + 2.0)
            try:
                while True:
                    i = self.buf.find(b"\xff")
                    if i >= 0 and b"\n" in self.buf[i:]:
                        line, self.buf = self.buf[i + 1:].split(b"\n", 1)
                        if json.loads(line).get("return") == sync_id:
                            return tries
                        continue  # an older sync's answer
                    if i > 0:
                        self.buf = self.buf[i:]
                    self._recv(try_end)
            except socket.timeout:
                if time.monotonic() >= deadline:
                    raise AssertionError("qemu-ga did not answer guest-sync-delimited "
                                         "in %.0f s (%d tries)" % (timeout, tries))

    def execute(self, command, arguments=None, timeout=30.0):
        """One command after sync: its "return" value; fails on an error."""
        cmd = {"execute": command}
        if arguments is not None:
            cmd["arguments"] = arguments
        self.sock.sendall(json.dumps(cmd).encode() + b"\n")
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            try:
                self._recv(deadline)
            except socket.timeout:
                raise AssertionError("no answer to %s" % command) from None
        line, self.buf = self.buf.split(b"\n", 1)
        reply = json.loads(line)
        if "return" not in reply:
            raise AssertionError("%s failed: %r" % (command, reply))
        return reply["return"]

    def close(self):
        self.sock.close()


class Guest:
    """One QEMU running the test guest, with the console on a unix socket;
    with devices=True also the agent's virtio-serial port (a unix socket)
    and a virtio-net user NIC forwarding a host port to guest port 8080."""

    def __init__(self, tmp, devices):
        self.tmp = tmp
        self.devices = devices
        self.proc = None
        self.console = None
        self.agent = None
        self.console_path = os.path.join(tmp, "console.sock")
        self.agent_path = os.path.join(tmp, "qga.sock")
        self.log_path = os.path.join(tmp, "qemu.log")
        self.http_port = None
        self.t0 = None

    def args(self):
        d = guest_dir()
        args = [qmtest.qemu_binary()] + qmtest.accel_args() + [
            "-machine", "pc", "-m", "256", "-no-reboot",
            "-device", "pvpanic", "-action", "panic=none",
            "-kernel", os.path.join(d, "vmlinuz"),
            "-initrd", os.path.join(d, "initramfs.gz"),
            "-append", KERNEL_ARGS,
            "-display", "none", "-vga", "none",
            # wait=on: QEMU starts the guest once we are connected, so the
            # console shows everything.
            "-chardev", "socket,id=console,path=%s,server=on,wait=on" % self.console_path,
            "-serial", "chardev:console",
        ]
        if self.devices:
            args += [
                "-device", "virtio-serial-pci",
                "-chardev", "socket,id=qga0,path=%s,server=on,wait=off" % self.agent_path,
                "-device", "virtserialport,chardev=qga0,name=%s" % AGENT_PORT_NAME,
                "-nic", "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:%d-:%d"
                % (self.http_port, GUEST_HTTP_PORT),
            ]
        return args

    def start(self):
        for attempt in range(3):
            self.http_port = free_tcp_port()
            for p in (self.console_path, self.agent_path):
                if os.path.exists(p):
                    os.unlink(p)
            with open(self.log_path, "wb") as log:
                self.t0 = time.monotonic()
                self.proc = subprocess.Popen(self.args(), stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=subprocess.STDOUT)
            wait_for(lambda: os.path.exists(self.console_path) or self.proc.poll() is not None,
                     30, "QEMU's console socket")
            if self.proc.poll() is None:
                self.console = Console(self.console_path)
                return
            with open(self.log_path, "rb") as f:
                out = f.read().decode(errors="replace")
            self.proc = None
            if "host forwarding" not in out:
                break  # not a port taken meanwhile: no use retrying
        raise AssertionError("QEMU did not start: %s" % out)

    def since_start(self):
        return time.monotonic() - self.t0

    def connect_agent(self):
        self.agent = Agent(self.agent_path)
        return self.agent

    def run(self, command, timeout=60.0):
        """Type a shell command on the console; returns the output offset
        from before it, after the command printed its end marker."""
        start = len(self.console.text())
        tag = "%08x" % random.randrange(1 << 32)
        # $((...)) makes the echoed command line differ from the marker.
        self.console.send("%s; echo done-%s-$((1+1))\n" % (command, tag))
        self.console.wait(rb"done-%s-2\r?\n" % tag.encode(), timeout, start)
        return start

    def stop(self):
        if self.agent:
            self.agent.close()
        if self.proc:
            qmtest.stop_process(self.proc, timeout=5.0)
        if self.console:
            self.console.close()


def http_get(port, timeout):
    """GET / through the forwarded port, retried until it answers: QEMU
    accepts on the host before the guest's server does."""
    deadline = time.monotonic() + timeout
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/")
            resp = conn.getresponse()
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
        finally:
            conn.close()


class GuestImageTest(unittest.TestCase):

    def new_guest(self, devices):
        tmp = tempfile.mkdtemp(prefix="qmtest-guest-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        g = Guest(tmp, devices)
        self.addCleanup(g.stop)
        g.start()
        return g

    def test_agent_network_and_helpers(self):
        g = self.new_guest(devices=True)
        con = g.console
        con.wait(rb"QMACHINE-GUEST-READY")
        t_banner = g.since_start()
        con.wait(rb"QMACHINE-GUEST-AGENT-STARTED")
        t_agent_started = g.since_start()

        # (a) the agent answers: guest-sync-delimited, then guest-info.
        agent = g.connect_agent()
        tries = agent.sync()
        t_agent = g.since_start()
        info = agent.execute("guest-info")
        self.assertRegex(info["version"], r"^\d+\.\d+")
        names = {c["name"] for c in info["supported_commands"] if c["enabled"]}
        self.assertLessEqual({"guest-sync-delimited", "guest-exec", "guest-exec-status",
                              "guest-shutdown"}, names)

        # (b) guest-exec with captured output.
        pid = agent.execute("guest-exec", {"path": "/bin/sh", "arg": ["-c", "echo hi"],
                                           "capture-output": True})["pid"]
        status = {}

        def exited():
            status.update(agent.execute("guest-exec-status", {"pid": pid}))
            return status["exited"]
        wait_for(exited, 30, "guest-exec of echo hi to exit")
        self.assertEqual(status["exitcode"], 0)
        self.assertEqual(base64.b64decode(status["out-data"]), b"hi\n")

        # (c) the guest's web server through the forwarded host port.
        con.wait(rb"QMACHINE-GUEST-NET-UP")
        t_net = g.since_start()
        code, body = http_get(g.http_port, 60)
        t_http = g.since_start()
        self.assertEqual(code, 200)
        self.assertIn(b"QMACHINE-GUEST-HTTP", body)
        print("with agent and NIC: banner %.1f s, agent started %.1f s, agent answering "
              "%.1f s (%d tries), net up %.1f s, HTTP answered %.1f s"
              % (t_banner, t_agent_started, t_agent, tries, t_net, t_http), file=sys.stderr)

        # The address came from QEMU's DHCP server.
        start = g.run("ip -4 addr show eth0")
        self.assertIn(b"inet 10.0.2.15/24", con.text()[start:])

        # qm-agent-restart: the agent goes away and comes back (a new
        # process); the same host connection talks to it after a sync.
        old_pid = self.agent_pid(g)
        start = g.run("qm-agent-restart")
        self.assertRegex(con.text()[start:],
                         rb"QMACHINE-GUEST-AGENT-STOPPED\r?\n(.*\n)*QMACHINE-GUEST-AGENT-STARTED")
        new_pid = self.agent_pid(g)
        self.assertNotEqual(new_pid, old_pid)
        agent.sync(30)
        self.assertEqual(agent.execute("guest-info")["version"], info["version"])

        # qm-counter counts on the console, every 0.5 s.
        start = len(con.text())
        con.send("qm-counter &\n")
        con.wait(rb"QMACHINE-COUNT 3\r?\n", 30, start)
        counts = [int(n) for n in re.findall(rb"QMACHINE-COUNT (\d+)", con.text()[start:])]
        self.assertEqual(counts[:4], [0, 1, 2, 3])
        g.run("kill $!")

        # guest-shutdown (qemu-ga runs /sbin/shutdown -h -P +0): the guest
        # powers off and QEMU exits. It has no reply on success.
        agent.sync(30)
        agent.sock.sendall(b'{"execute":"guest-shutdown"}\n')
        con.wait(rb"QMACHINE-GUEST-SHUTDOWN poweroff", 30)
        try:
            g.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.fail("QEMU still runs 30 s after guest-shutdown")
        self.assertEqual(g.proc.returncode, 0)

    def agent_pid(self, g):
        """qemu-ga's pid from its pid file, when it runs."""
        start = g.run("echo agent-pid-$(cat /run/qemu-ga.pid)-$(kill -0 $(cat /run/qemu-ga.pid) "
                      "&& echo alive)")
        m = re.search(rb"\nagent-pid-(\d+)-alive\r?\n", g.console.text()[start:])
        self.assertTrue(m, "qemu-ga does not run")
        return int(m.group(1))

    def test_boots_as_before_without_new_devices(self):
        # (d) no virtio-serial, no virtio NIC (QEMU's default e1000 is there,
        # which the guest has no driver for): the banner, a shell, no agent
        # or network markers, no virtio module loaded.
        g = self.new_guest(devices=False)
        g.console.wait(rb"QMACHINE-GUEST-READY")
        t_banner = g.since_start()
        print("without them: banner %.1f s" % t_banner, file=sys.stderr)
        start = g.run("echo virtio-modules-$(grep -c ^virtio /proc/modules)")
        out = g.console.text()
        self.assertIn(b"virtio-modules-0", out[start:])
        self.assertNotIn(b"guest-init:", out)
        self.assertNotIn(b"QMACHINE-GUEST-AGENT-STARTED", out)
        self.assertNotIn(b"QMACHINE-GUEST-NET-UP", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
