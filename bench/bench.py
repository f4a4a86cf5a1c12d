#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Orchestration of bench/run: a private system bus, qmachined, an echo
service, the measuring clients (qm-bench, qm-libvirt-bench), libvirt as the
peer, and one table. See bench/README.md.

Environment (bench/run sets them):
  QMACHINED               the daemon binary
  QMACHINED_BENCH_BUILD   the build directory of bench/ (qm-bench, ...)
  QMACHINED_SOURCE_ROOT   the source tree (default: one level up)
  QMACHINED_TEST_KVM      1 forces KVM, 0 forces TCG (default: CPU flags)
  QMACHINED_BENCH_LIBVIRT_SKIP  a reason not to measure libvirt
  QMACHINED_BENCH_DAEMON_PREFIX  a command to run the daemon under (profiling)
"""

import argparse
import datetime
import os
import signal
import subprocess
import sys
import tempfile
import time

# The bus configurations and the process helpers are the integration
# tests' (tests/integration/qmtest), not copies of them.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from qmtest import (children_of, kvm_usable, session_bus_config,  # noqa: E402
                    reap_all_children, set_subreaper, start_dbus_daemon,
                    stop_dbus_daemon, stop_process, system_bus_config)

BUS_NAME = "org.qmachine.QMachine1"
ECHO_NAME = "org.qmachine.Bench.Echo"
NOBODY = 65534

# Iterations per mode. "full" is the default, "quick" fits in 3 minutes on
# 2 cores, "smoke" only proves that every figure runs.
PROFILES = {
    "full": dict(launch=50, launch_q35=30, rtt=10000, cpu_n=10000, tput_s=3.0, clients="1,8,64", tput_vms="1,8",
                 ev_s=3.0, rates="1000,5000,10000,15000,20000,30000,40000,80000,0", scale_rounds=3, scale8_rounds=10,
                 queries=200, lv_starts=20, lv_calls=5000, lv_domains=8,
                 flood_n=2000, flood_count=1000000, flood_cap=300),
    "quick": dict(launch=20, launch_q35=12, rtt=3000, cpu_n=5000, tput_s=1.0, clients="1,8,64", tput_vms="1,8",
                  ev_s=1.0, rates="1000,10000,15000,20000,40000,0", scale_rounds=2, scale8_rounds=5,
                  queries=50, lv_starts=8, lv_calls=1000, lv_domains=8,
                  flood_n=1000, flood_count=1000000, flood_cap=300),
    "smoke": dict(launch=3, launch_q35=2, rtt=50, cpu_n=100, tput_s=0.2, clients="1,8", tput_vms="1,2",
                  ev_s=0.2, rates="1000,20000", scale_rounds=1, scale8_rounds=1,
                  queries=5, lv_starts=2, lv_calls=20, lv_domains=2,
                  flood_n=50, flood_count=20000, flood_cap=30),
}


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def proc_usage(pid):
    rss = None
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = float(line.split()[1])
        fds = len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None, None
    return rss, fds


def child_pids(pid=None):
    """PIDs whose parent is pid (default: this process, to which orphans
    come: it is a subreaper)."""
    return [p for p, _state in children_of(os.getpid() if pid is None else pid)]


def kill_pid(pid, timeout=5.0):
    """Stop a process by PID (one we started or one orphaned to us)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r, _ = os.waitpid(pid, os.WNOHANG)
            if r == pid:
                return
        except ChildProcessError:
            if not os.path.exists("/proc/%d" % pid):
                return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass



def tool_env(env):
    """The environment of a measuring client. In a sanitizer build the
    clients are sanitized too; they are one-shot programs whose memory the
    exit returns, so LeakSanitizer's report would only fail the run. The
    daemon's leaks are checked by the integration tests."""
    env = dict(env)
    opts = env.get("ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = (opts + ":" if opts else "") + "detect_leaks=0"
    return env

class Results:
    def __init__(self):
        self.r = {}      # key -> (n, min, median, p99)
        self.v = {}      # key -> value
        self.errors = []  # (figure, message)
        self.notes = []

    def parse(self, figure, text):
        for line in text.splitlines():
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "R" and len(parts) == 6:
                self.r[parts[1]] = (int(parts[2]), float(parts[3]), float(parts[4]), float(parts[5]))
            elif parts[0] == "V" and len(parts) == 3:
                self.v[parts[1]] = float(parts[2])
            elif parts[0] == "E":
                self.errors.append((figure, line[2:]))


class Bench:
    def __init__(self, opts):
        self.opts = opts
        self.mode = "smoke" if opts.smoke else ("quick" if opts.quick else "full")
        self.p = PROFILES[self.mode]
        self.root = os.path.abspath(os.environ.get("QMACHINED_SOURCE_ROOT")
                                    or os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
        self.build = os.environ.get("QMACHINED_BENCH_BUILD") or os.path.join(self.root, "build-bench", "bench")
        self.qmachined = os.environ.get("QMACHINED") or os.path.join(
            os.path.dirname(self.build), "src", "qmachined", "qmachined")
        self.kvm = kvm_usable()
        self.accel = "kvm" if self.kvm else "tcg"
        self.res = Results()
        self.tmp = None
        self.bus = self.daemon = self.echo = None
        self.env = dict(os.environ)
        self.n_vms = opts.vms if opts.vms else (4 if opts.smoke else 100)

    # -- processes

    def path(self, *p):
        return os.path.join(self.tmp, *p)

    def start(self):
        self.tmp = tempfile.mkdtemp(prefix="qm-bench-")
        os.chmod(self.tmp, 0o755)
        for d in ("bus", "state", "run", "log"):
            os.mkdir(self.path(d))
        policy = os.path.join(self.root, "data", "org.qmachine.QMachine1.conf")
        self.bus, address = start_dbus_daemon(
            self.path("bus", "system.conf"),
            system_bus_config(self.path("bus", "system_bus_socket"), policy, services=(ECHO_NAME,)))
        if not address:
            raise RuntimeError("dbus-daemon did not start")
        self.env["DBUS_SYSTEM_BUS_ADDRESS"] = address
        self.address = address
        self.daemon_log = open(self.path("daemon.log"), "ab")
        # e.g. "valgrind --tool=callgrind" to see where the daemon's time goes
        prefix = os.environ.get("QMACHINED_BENCH_DAEMON_PREFIX", "").split()
        self.daemon = subprocess.Popen(
            prefix + [self.qmachined, "--bus-address=" + address, "--state-dir=" + self.path("state"),
             "--runtime-dir=" + self.path("run"), "--log-dir=" + self.path("log")],
            stdin=subprocess.DEVNULL, stdout=self.daemon_log, stderr=subprocess.STDOUT, env=self.env)
        self.echo = subprocess.Popen([self.tool("qm-bench"), "echo-service", ECHO_NAME],
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=tool_env(self.env))
        if self.echo.stdout.readline().decode().strip() != "ready":
            raise RuntimeError("the echo service did not start")
        deadline = time.monotonic() + 20
        while not self.name_owned(BUS_NAME):
            if self.daemon.poll() is not None:
                raise RuntimeError("qmachined exited with %s; log: %s" % (self.daemon.returncode,
                                                                          self.path("daemon.log")))
            if time.monotonic() > deadline:
                raise RuntimeError("qmachined did not own its name within 20 s")
            time.sleep(0.01)
        time.sleep(0.2)
        rss, fds = proc_usage(self.daemon.pid)
        self.res.v["daemon.idle_rss_kib"] = rss
        self.res.v["daemon.idle_fds"] = fds

    def name_owned(self, name, address=None):
        r = subprocess.run(["dbus-send", "--bus=" + (address or self.address), "--print-reply",
                            "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
                            "org.freedesktop.DBus.NameHasOwner", "string:" + name],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        return b"boolean true" in r.stdout

    def stop_ours(self):
        qemus = []
        if self.daemon is not None and self.daemon.poll() is None:
            qemus = child_pids(self.daemon.pid)
        stop_process(self.echo)
        stop_process(self.daemon)
        for p in qemus:  # VMs outlive the daemon; ours are shut down already
            kill_pid(p)
        stop_dbus_daemon(self.bus)

    def stop(self):
        self.stop_ours()
        for p in child_pids():  # whatever was orphaned to us
            kill_pid(p)
        reap_all_children()
        if getattr(self, "daemon_log", None):
            self.daemon_log.close()
        if self.tmp and not self.opts.keep:
            subprocess.run(["rm", "-rf", self.tmp])

    def tool(self, name):
        return os.path.join(self.build, name)

    def run_tool(self, figure, argv, timeout=600, env=None, prefix=()):
        t0 = time.monotonic()
        sys.stderr.write("bench: %s ...\n" % figure)
        sys.stderr.flush()
        try:
            r = subprocess.run(list(prefix) + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=tool_env(env or self.env), timeout=timeout, cwd=self.tmp)
        except subprocess.TimeoutExpired:
            self.res.errors.append((figure, "timed out after %d s" % timeout))
            return False
        out = r.stdout.decode("utf-8", "replace")
        self.res.parse(figure, out)
        if r.returncode != 0 and not any(f == figure for f, _ in self.res.errors):
            self.res.errors.append((figure, "exit %d: %s" % (r.returncode, r.stderr.decode()[-500:])))
        sys.stderr.write("bench: %s done in %.1f s\n" % (figure, time.monotonic() - t0))
        if self.daemon is not None and prefix == ():
            self.res.v["daemon.rss_kib_after." + figure.replace(" ", "_")] = proc_usage(self.daemon.pid)[0]
        return r.returncode == 0

    # -- figures

    def none_args(self):
        return ["-machine", "none", "-nodefaults", "-accel", self.accel]

    def q35_args(self):
        return ["-machine", "q35", "-S", "-nodefaults", "-m", "64", "-accel", self.accel]

    def wanted(self, figure):
        return not self.opts.only or figure in self.opts.only.split(",")

    def run_figures(self):
        qb = self.tool("qm-bench")
        p = self.p
        if self.wanted("launch"):
            self.run_tool("launch none", [qb, "launch", "--n", str(p["launch"]), "--label", "none", "--"]
                          + self.none_args())
            self.run_tool("launch q35", [qb, "launch", "--n", str(p["launch_q35"]), "--label", "q35", "--"]
                          + self.q35_args())
        if self.wanted("rtt"):
            self.run_tool("round trips", [qb, "rtt", "--n", str(p["rtt"]), "--cpu-n", str(p["cpu_n"]),
                                          "--echo", ECHO_NAME, "--"] + self.none_args())
        if self.wanted("scale"):
            self.run_tool("scale 8", [qb, "scale", "--n", "8", "--rounds", str(p["scale8_rounds"]),
                                      "--queries", str(p["queries"]), "--label", "8", "--"] + self.none_args())
            self.run_tool("scale N", [qb, "scale", "--n", str(self.n_vms), "--rounds", str(p["scale_rounds"]),
                                      "--queries", str(p["queries"]), "--label", "N", "--"] + self.none_args())
        if self.wanted("throughput"):
            self.run_tool("throughput", [qb, "throughput", "--clients", p["clients"], "--vms", p["tput_vms"],
                                         "--seconds", str(p["tput_s"]), "--echo", ECHO_NAME, "--"]
                          + self.none_args())
        if self.wanted("events"):
            self.run_tool("events", [qb, "events", "--binary", self.tool("qm-fake-qemu"), "--rates", p["rates"],
                                     "--seconds", str(p["ev_s"])])
        if self.wanted("flood"):
            # last: the flood leaves the daemon's heap grown (see README)
            count = self.opts.flood or p["flood_count"]
            self.run_tool("flood", [qb, "flood", "--n", str(p["flood_n"]), "--count", str(count),
                                    "--cap", str(p["flood_cap"]), "--fake", self.tool("qm-fake-qemu"), "--"]
                          + self.none_args(), timeout=p["flood_cap"] + 120)
        rss, fds = proc_usage(self.daemon.pid)
        self.res.v["daemon.end_rss_kib"] = rss
        if self.daemon.poll() is not None:
            self.res.errors.append(("daemon", "qmachined exited with %s during the run" % self.daemon.returncode))

    # -- libvirt, the peer

    def libvirt(self):
        reason = os.environ.get("QMACHINED_BENCH_LIBVIRT_SKIP")
        if self.mode == "smoke" and not reason:
            reason = "skipped in --smoke mode (the smoke run only proves that qmachined's figures run)"
        tool = self.tool("qm-libvirt-bench")
        if not reason and not os.path.exists("/usr/sbin/libvirtd"):
            reason = "libvirtd is not installed (Debian package libvirt-daemon)"
        if not reason and not os.path.exists(tool):
            reason = "qm-libvirt-bench was not built (libvirt-dev was missing when the build was configured)"
        if reason:
            self.libvirt_reason = reason
            return
        self.libvirt_reason = None
        lv = Libvirt(self)
        try:
            err = lv.start()
            if err:
                self.libvirt_reason = err
                return
            argv = [tool, "--uri", "qemu:///session", "--starts", str(self.p["lv_starts"]),
                    "--calls", str(self.p["lv_calls"]), "--domains", str(self.p["lv_domains"]),
                    "--libvirtd-pid", str(lv.libvirtd_pid)]
            if lv.dbus_address:
                argv += ["--dbus", lv.dbus_address]
            else:
                self.res.notes.append("libvirt-dbus: " + lv.dbus_reason)
            ok = self.run_tool("libvirt", argv, env=lv.env, prefix=lv.as_nobody())
            if not ok:
                msgs = [m for f, m in self.res.errors if f == "libvirt"]
                self.libvirt_reason = "libvirt failed: " + "; ".join(msgs)[:300]
                # a peer that cannot run is reported, not a failure of ours
                self.res.errors = [(f, m) for f, m in self.res.errors if f != "libvirt"]
        finally:
            lv.stop()

    # -- the table

    def table(self):
        R, V = self.res.r, self.res.v
        rows = []
        lvr = self.libvirt_reason
        lv_na = "not measured" if lvr else None

        def med(key):
            return R[key][2] if key in R else None

        def fmt(x, unit):
            if x is None:
                return "-"
            if unit == "ms":
                return "%.1f" % (x / 1000.0)
            if unit == "µs":
                return "%.0f" % x
            if unit == "/s":
                return "%.0f" % x
            if unit == "KiB":
                return "%.0f" % x
            return "%.2f" % x

        def spread(key, unit):
            if key not in R:
                return "-"
            n, lo, md, hi = R[key]
            return "%s / %s / %s" % (fmt(lo, unit), fmt(md, unit), fmt(hi, unit))

        def ratio(a, b):
            if a is None or b is None or b == 0:
                return "-"
            return "%.2f" % (a / b)

        def verdict(ok):
            if ok is None:
                return "not measured"
            return "met" if ok else "MISSED"

        def row(fig, unit, ours, floor, rat, peer="", peer_ratio="", target="", ok=""):
            rows.append((fig + " [" + unit + "]", ours, floor, rat, peer, peer_ratio, target, ok))

        # 1. Launch
        for label, what in (("none", "-machine none"), ("q35", "q35 -S")):
            o, f = med("launch.%s.ours" % label), med("launch.%s.floor" % label)
            over = o - f if o is not None and f is not None else None
            peer, pr, tgt, ok = "", "", "overhead <= 5 ms", verdict(over is not None and over <= 5000)
            if label == "none":
                peer = "n/a (libvirt refuses machine 'none')"
            else:
                lo = med("libvirt.start")
                peer = lv_na or fmt(lo, "ms")
                pr = ratio(lo, o) if lo else "-"
                tgt += "; libvirt/ours >= 10"
                ok += "; " + verdict(None if lo is None else lo / o >= 10)
            row("Launch() -> QMP ready, %s (%s)" % (what, self.accel), "ms",
                spread("launch.%s.ours" % label, "ms"), fmt(f, "ms"), ratio(o, f), peer, pr,
                tgt + (" (+%.1f ms)" % (over / 1000.0) if over is not None else ""), ok)

        # 2. Round trips
        o, f = med("rtt.qmp"), med("rtt.direct")
        lo = med("libvirt.qmp")
        row("Qmp(query-status) round trip", "µs", spread("rtt.qmp", "µs"), fmt(f, "µs") + " socket",
            ratio(o, f), lv_na or fmt(lo, "µs"), ratio(lo, o) if lo else "-",
            "<= 1.5x socket; libvirt/ours >= 4",
            verdict(o is not None and f is not None and o / f <= 1.5) + "; "
            + verdict(None if lo is None else lo / o >= 4))
        e = med("rtt.echo")
        ping = med("rtt.ping")
        row("Peer.Ping to qmachined", "µs", spread("rtt.ping", "µs"), fmt(e, "µs") + " echo",
            ratio(ping, e), "", "", "(bus + sd-bus dispatch)", "")
        # what the daemon itself adds to a Qmp call: the socket is QEMU's
        # share, Ping the bus's and sd-bus's
        share = o - f - ping if None not in (o, f, ping) else None
        row("daemon's wall-clock share of Qmp (Qmp - socket - Ping)", "µs", fmt(share, "µs"),
            "%s socket + %s Ping" % (fmt(f, "µs"), fmt(ping, "µs")), "", "", "", "<= 40 µs",
            verdict(None if share is None else share <= 40))
        # chunks of Qmp and Ping calls alternate; min / median / p99 over
        # the chunks (schedstat), and the mean of all from utime + stime
        cq, cp = med("rtt.cpu.qmp"), med("rtt.cpu.ping")
        mq, mp = V.get("rtt.cpu.qmp_us"), V.get("rtt.cpu.ping_us")
        if cq is not None or "rtt.qmp" in R:
            row("daemon CPU per Qmp(query-status), %s calls each" % fmt(V.get("rtt.cpu.n"), "/s"), "µs",
                spread("rtt.cpu.qmp", "µs") + " (mean %s)" % fmt(mq, "µs"),
                "%s Ping (mean %s)" % (fmt(cp, "µs"), fmt(mp, "µs")), ratio(cq, cp), "", "", "<= 40 µs",
                verdict(None if cq is None else cq <= 40))
        g = med("rtt.get_state")
        ld = med("libvirt.dbus_get_active")
        dbus_na = lv_na or ("not measured" if ld is None else None)
        row("Properties.Get(State)", "µs", spread("rtt.get_state", "µs"), fmt(e, "µs") + " echo",
            ratio(g, e), dbus_na or fmt(ld, "µs"), ratio(ld, g) if ld else "-",
            "<= 1.5x echo; libvirt-dbus/ours >= 5",
            verdict(g is not None and e is not None and g / e <= 1.5) + "; "
            + verdict(None if ld is None else ld / g >= 5))

        # 3. Throughput
        for v in self.p["tput_vms"].split(","):
            for c in self.p["clients"].split(","):
                k = "tput.c%s.v%s" % (c, v)
                o = V.get(k + ".ours.calls_per_s")
                fd = V.get(k + ".direct.calls_per_s")
                fe = V.get(k + ".echo.calls_per_s")
                p99 = R.get(k + ".ours.latency")
                row("Qmp throughput, %s clients, %s VM%s" % (c, v, "s" if v != "1" else ""), "calls/s",
                    fmt(o, "/s") + (" (p99 %.0f µs)" % p99[3] if p99 else ""),
                    "%s socket x%d / %s echo" % (fmt(fd, "/s"), min(int(c), int(v)), fmt(fe, "/s")),
                    ratio(o, fd) + " / " + ratio(o, fe), "", "", "", "")

        # 4. Events
        rates = [int(x) for x in self.p["rates"].split(",")]
        for rate in rates:
            if rate not in (1000, 20000):
                continue
            k = "events.r%d" % rate
            o, f = R.get(k + ".ours.latency"), R.get(k + ".floor.latency")
            lost = V.get(k + ".ours.lost")
            ok = None if o is None else (o[3] <= 2000 and lost == 0)
            row("Event latency, %d events/s (ratio of p99s)" % rate, "µs",
                spread(k + ".ours.latency", "µs") + " lost %s" % fmt(lost, "/s"),
                (fmt(f[3], "µs") + " p99 socket") if f else "-",
                ratio(o[3] if o else None, f[3] if f else None), "", "",
                "p99 <= 2 ms, no loss", verdict(ok))
        # the latency of one event where no queue builds up: medians
        k = "events.r1000"
        o, f = med(k + ".ours.latency"), med(k + ".floor.latency")
        if o is not None or f is not None:
            row("Event -> Event signal latency, 1000 events/s (medians)", "µs", fmt(o, "µs"),
                fmt(f, "µs") + " socket", ratio(o, f), "", "", "<= 2x socket",
                verdict(None if o is None or f is None else o <= 2 * f))
        best = {"ours": 0.0, "floor": 0.0}
        for who in best:
            for rate in rates:
                k = "events.r%d.%s" % (rate, who)
                if k + ".delivered_per_s" not in V:
                    continue
                dl, lost = V[k + ".delivered_per_s"], V[k + ".lost"]
                offered = rate if rate > 0 else V.get(k + ".emitted_per_s", 0)
                lat = R.get(k + ".latency")
                # sustained: nothing lost, >= 90 % delivered, and no standing
                # queue (a backlog shows as a median latency of many ms)
                if lost == 0 and dl >= 0.9 * offered and lat and lat[2] <= 10000:
                    best[who] = max(best[who], rate if rate > 0 else dl)
        if any(k.startswith("events.") for k in V):
            row("Events sustained, zero loss", "events/s", fmt(best["ours"], "/s"),
                fmt(best["floor"], "/s") + " socket", ratio(best["ours"], best["floor"]), "", "", ">= 20000/s",
                verdict(best["ours"] >= 20000))

        # 7. Fairness: Qmp on one machine while another floods events
        fi, ff = med("flood.idle.ours"), med("flood.busy.ours")
        si, sf = med("flood.idle.socket"), med("flood.busy.socket")
        if fi is not None or ff is not None:
            n_ev = V.get("flood.count") or self.opts.flood or self.p["flood_count"]
            pi, pf = R.get("flood.idle.ours"), R.get("flood.busy.ours")
            errs = V.get("flood.qmp_errors")
            row("Qmp(query-status), other machine quiet", "µs", spread("flood.idle.ours", "µs"),
                fmt(si, "µs") + " socket", ratio(fi, si), "", "", "(the flood's baseline)", "")
            row("Qmp(query-status), other machine floods %d events" % n_ev, "µs",
                spread("flood.busy.ours", "µs") + (" errors %d" % errs if errs else ""),
                "%s quiet (socket %s -> %s)" % (fmt(fi, "µs"), fmt(si, "µs"), fmt(sf, "µs")),
                ratio(ff, fi) + " (p99 %s)" % ratio(pf[3] if pf else None, pi[3] if pi else None),
                "", "", "flood/quiet: one machine must not starve another", "")
            ev = V.get("flood.events_per_s")
            detail = ""
            if ev is not None:
                detail = " (%.1f s; lag %.0f ms; %s missing)" % (
                    V["flood.absorbed_s"], V["flood.lag_ms"], fmt(V["flood.seq_missing"], "/s"))
            fs = V.get("flood.socket_events_per_s")
            row("Event flood through qmachined, %d events" % n_ev, "events/s", fmt(ev, "/s") + detail,
                fmt(fs, "/s") + " socket", ratio(ev, fs), "", "", "", "")

        # 5. Scale
        for label, n in (("8", 8), ("N", self.n_vms)):
            o, f = med("scale.%s.ours" % label), med("scale.%s.floor" % label)
            row("%d VMs launched at once (%s)" % (n, "-machine none"), "ms", spread("scale.%s.ours" % label, "ms"),
                fmt(f, "ms") + " parallel", ratio(o, f), "", "", "<= 1.5x parallel bare",
                verdict(o is not None and f is not None and o / f <= 1.5))
        n = self.n_vms
        one = med("launch.none.ours")
        row("8 Launch() at once vs one Launch()", "ms", fmt(med("scale.8.ours"), "ms"), fmt(one, "ms") + " one",
            ratio(med("scale.8.ours"), one), "", "", "~ one + CPU contention", "")
        for q, what in (("list_machines", "ListMachines"), ("get_managed_objects", "GetManagedObjects")):
            k = "scale.N.%s" % q
            row("%s at %d machines" % (what, n), "µs", spread(k, "µs"), fmt(e, "µs") + " echo",
                ratio(med(k), e), "", "", "", "")
        idle = V.get("daemon.idle_rss_kib")
        row("qmachined RSS idle", "KiB", fmt(idle, "KiB"), "", "", fmt(V.get("libvirt.rss_kib_before"), "KiB")
            if not lvr else lv_na, "", "<= 8 MiB", verdict(idle is not None and idle <= 8192))
        per = V.get("scale.N.rss_kib_per_running")
        lper = V.get("libvirt.rss_kib_per_running")
        row("qmachined RSS per running VM", "KiB", fmt(per, "KiB"), "", "", lv_na or fmt(lper, "KiB"),
            ratio(lper, per) if lper and per and per > 0 else "-", "<= 64 KiB",
            verdict(per is not None and per <= 64))
        row("qmachined fds per running VM", "fds", "%.1f" % V["scale.N.fds_per_running"]
            if "scale.N.fds_per_running" in V else "-", "", "", "", "", "", "")
        return rows

    def print_table(self):
        rows = self.table()
        if self.opts.only:  # the rows of figures not run say nothing ("-")
            rows = [r for r in rows if not (r[1] == "-" or r[1].startswith("- "))]
        head = ("figure", "ours (min / median / p99)", "floor (median)", "ours/floor",
                "libvirt (median)", "libvirt/ours", "target", "verdict")
        widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
        line = "  ".join("%-*s" % (widths[i], head[i]) for i in range(len(head)))
        print(line)
        print("-" * len(line))
        for r in rows:
            print("  ".join("%-*s" % (widths[i], r[i]) for i in range(len(head))))
        print()
        if self.libvirt_reason:
            print("libvirt not measured: " + self.libvirt_reason)
        for n in self.res.notes:
            print("note: " + n)
        for f, m in self.res.errors:
            print("FAILED %s: %s" % (f, m))


def reaper_main(argv):
    """`bench.py --reaper CMD...`: run CMD under a subreaper that reaps
    every orphan at once. libvirtd double-forks QEMU and virtlogd, then
    waits for a killed QEMU's PID to vanish; a zombie never does, so the
    orphans must be reaped while libvirtd runs (PID 1 here does not).
    SIGTERM goes to CMD; when CMD exits, the orphans left are stopped."""
    set_subreaper()
    pid = os.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGTERM))
    status = 0
    while True:
        try:
            p, st = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if p == pid:
            status = os.waitstatus_to_exitcode(st)
            for left in child_pids():
                try:
                    os.kill(left, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 5
            while child_pids() and time.monotonic() < deadline:
                reap_all_children()
                time.sleep(0.05)
            for left in child_pids():
                os.kill(left, signal.SIGKILL)
            reap_all_children()
            break
    sys.exit(status if status >= 0 else 128 - status)


class Libvirt:
    """libvirtd in session mode as an unprivileged user, everything in a
    temp dir; libvirt-dbus on a private session bus, as the same user."""

    def __init__(self, bench):
        self.b = bench
        self.base = bench.path("libvirt")
        self.libvirtd = self.sbus = self.ldbus = None
        self.dbus_address = None
        self.dbus_reason = "not started"
        home, run = os.path.join(self.base, "home"), os.path.join(self.base, "run")
        self.run_dir = run
        self.env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": home,
            "XDG_RUNTIME_DIR": run,
            "XDG_CONFIG_HOME": os.path.join(home, ".config"),
            "XDG_CACHE_HOME": os.path.join(home, ".cache"),
            "XDG_DATA_HOME": os.path.join(home, ".local", "share"),
            "LANG": "C.UTF-8",
        }

    def as_nobody(self):
        return ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups", "--"]

    def start(self):
        os.makedirs(self.env["HOME"])
        os.makedirs(self.run_dir, mode=0o700)
        for d in (self.base, self.env["HOME"], self.run_dir):
            os.chown(d, NOBODY, NOBODY)
        self.log = open(os.path.join(self.base, "libvirtd.log"), "ab")
        reaper = ["/usr/bin/python3", os.path.abspath(__file__), "--reaper"]
        self.libvirtd_pid = None
        self.libvirtd = subprocess.Popen(reaper + self.as_nobody() + ["libvirtd"], env=self.env, cwd="/",
                                         stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        sock = os.path.join(self.run_dir, "libvirt", "libvirt-sock")
        deadline = time.monotonic() + 30
        while not os.path.exists(sock) or not self.find_libvirtd():
            if self.libvirtd.poll() is not None:
                return "libvirtd (session mode, uid %d) exited with %d: %s" % (
                    NOBODY, self.libvirtd.returncode, self.log_tail())
            if time.monotonic() > deadline:
                return "libvirtd did not create its socket within 30 s: " + self.log_tail()
            time.sleep(0.05)
        if not os.path.exists("/usr/sbin/libvirt-dbus"):
            self.dbus_reason = "not installed (Debian package libvirt-dbus)"
            return None
        bsock = os.path.join(self.base, "session_bus_socket")
        self.sbus, address = start_dbus_daemon(os.path.join(self.base, "session.conf"),
                                               session_bus_config(bsock))
        env = dict(self.env, DBUS_SESSION_BUS_ADDRESS=address)
        self.ldbus = subprocess.Popen(self.as_nobody() + ["libvirt-dbus", "--session"], env=env, cwd="/",
                                      stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not self.b.name_owned("org.libvirt", address):
            if self.ldbus.poll() is not None or time.monotonic() > deadline:
                self.dbus_reason = "libvirt-dbus did not own org.libvirt: " + self.log_tail()
                return None
            time.sleep(0.05)
        self.dbus_address = address
        return None

    def find_libvirtd(self):
        """libvirtd's PID: the child of the reaper."""
        for p in child_pids(self.libvirtd.pid):
            try:
                with open("/proc/%d/comm" % p) as f:
                    if f.read().strip() == "libvirtd":
                        self.libvirtd_pid = p
            except OSError:
                pass
        return self.libvirtd_pid

    def log_tail(self):
        try:
            with open(os.path.join(self.base, "libvirtd.log"), "rb") as f:
                lines = f.read().decode("utf-8", "replace").strip().splitlines()
            errs = [ln for ln in lines if " error : " in ln] or lines
            return " | ".join(errs[-3:])
        except OSError:
            return ""

    def stop(self):
        virtlogd = None
        try:
            with open(os.path.join(self.run_dir, "libvirt", "virtlogd.pid")) as f:
                virtlogd = int(f.read().strip())
        except (OSError, ValueError):
            pass
        stop_process(self.ldbus)
        stop_dbus_daemon(self.sbus)
        stop_process(self.libvirtd)  # the reaper: it stops libvirtd and its orphans
        if virtlogd:
            kill_pid(virtlogd)
        if getattr(self, "log", None):
            self.log.close()


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--reaper":
        reaper_main(sys.argv[2:])
    ap = argparse.ArgumentParser(prog="bench/run", description="qmachined against the floor and libvirt")
    ap.add_argument("--quick", action="store_true", help="fewer iterations (under 3 minutes on 2 cores)")
    ap.add_argument("--smoke", action="store_true", help="every figure with a few iterations; fails if one fails")
    ap.add_argument("--vms", type=int, default=0, help="machines of the scale figure (default 100)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    ap.add_argument("--raw", action="store_true", help="also print every raw result after the table")
    ap.add_argument("--flood", type=int, default=0,
                    help="events of the flood figure (default 1000000, 20000 with --smoke)")
    ap.add_argument("--only", default="",
                    help="only these figures (comma-separated: launch,rtt,scale,throughput,events,flood,libvirt)")
    opts = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/run: run as root (the daemon runs as a system service)")
    set_subreaper()
    b = Bench(opts)
    for exe in (b.qmachined, b.tool("qm-bench"), b.tool("qm-fake-qemu")):
        if not os.access(exe, os.X_OK):
            sys.exit("bench/run: missing %s (build first, or set QMACHINED / QMACHINED_BENCH_BUILD)" % exe)
    t0 = time.monotonic()
    started = datetime.datetime.now().astimezone()
    load0 = loadavg()
    b.libvirt_reason = "not run: qmachined's figures failed"
    try:
        b.start()
        b.run_figures()
        b.stop_ours()
        if b.wanted("libvirt"):
            b.libvirt()
        else:
            b.libvirt_reason = "not asked for (--only)"
    except Exception as e:  # noqa: BLE001 - reported, then cleaned up
        b.res.errors.append(("setup", "%s: %s" % (type(e).__name__, e)))
    finally:
        b.stop()
    print("qmachined benchmark (%s): %s" % (b.mode, started.strftime("%Y-%m-%d %H:%M %Z")))
    print("machine: %d CPUs, %s, %s (KVM %s), load average %s at start, %s at end, %.0f s"
          % (os.cpu_count(), cpu_model(), b.accel.upper(),
             "usable" if b.kvm else "not usable: no vmx/svm CPU flag" if not os.environ.get("QMACHINED_TEST_KVM")
             else "forced off", load0, loadavg(), time.monotonic() - t0))
    print("daemon: %s" % b.qmachined)
    print("times: ms or µs as the figure says; floor = the same work without qmachined, in the same run")
    print()
    b.print_table()
    if opts.raw:
        print()
        for k in sorted(b.res.r):
            print("R %s n=%d min=%.1f median=%.1f p99=%.1f" % ((k,) + b.res.r[k]))
        for k in sorted(b.res.v):
            print("V %s %s" % (k, b.res.v[k]))
    if b.res.errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
