/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qm-bench: the measuring client of bench/run. Each subcommand measures
 * one figure of qmachined together with its floor, in the same process
 * and the same run, and prints machine-readable lines:
 *
 *   R KEY N MIN MEDIAN P99      samples (µs unless the key says otherwise)
 *   V KEY VALUE                 a single value
 *   E MESSAGE                   something failed (the exit status is 1)
 *
 * Subcommands (qmachined on the system bus, DBUS_SYSTEM_BUS_ADDRESS):
 *
 *   launch --n N --label L [--binary B] -- QEMU ARGS
 *       Launch() call to reply vs a bare QEMU spawned and handshaken here
 *   rtt --n N [--cpu-n M] [--echo NAME] -- QEMU ARGS
 *       Qmp(query-status) vs query-status on a QMP socket directly,
 *       Peer.Ping to the daemon, Properties.Get(State), and Echo() on the
 *       echo service NAME (plain sd-bus: the bus's own cost); then the
 *       daemon's CPU time (utime + stime) per call over M Qmp and M Ping
 *   throughput --clients 1,8,64 --vms 1,8 --seconds S [--echo NAME] -- ARGS
 *       threads with a connection each, synchronous Qmp calls in a loop
 *   events --binary FAKE --rates R1,R2,.. --seconds S
 *       Event signal latency and delivered rate, fake QEMU flooding events
 *   flood --n N --count C --cap S --fake FAKE -- QEMU ARGS
 *       Qmp(query-status) on one machine, N times with the other (a fake
 *       QEMU) quiet, then while the other floods C events; how fast the
 *       flood got through; at most S s for the flood
 *   scale --n N --rounds K -- QEMU ARGS
 *       N machines launched at once vs N bare QEMUs in parallel; daemon
 *       RSS and fds; ListMachines and GetManagedObjects at N
 *   echo-service NAME
 *       the echo floor: owns NAME, answers Echo(s) -> s at /
 */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include "bench-time.h"

#define MGR_PATH "/org/qmachine/QMachine1"
#define MGR_IFACE "org.qmachine.QMachine1.Manager"
#define M_IFACE "org.qmachine.QMachine1.Machine"
#define SERVICE "org.qmachine.QMachine1"
#define ECHO_PATH "/org/qmachine/Bench"
#define ECHO_IFACE "org.qmachine.Bench"
#define CALL_TIMEOUT (300 * 1000000ULL)

static int failures;

static double real_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* R line: min, median, p99 (nearest rank) of n samples; sorts v. */
static void report(const char *key, double *v, size_t n) {
        if (n == 0) {
                printf("E no samples for %s\n", key);
                failures++;
                return;
        }
        qsort(v, n, sizeof(double), qm_bench_cmp_double);
        size_t p99 = (size_t)((double)n * 0.99 + 0.999999);
        if (p99 < 1)
                p99 = 1;
        printf("R %s %zu %.1f %.1f %.1f\n", key, n, v[0], v[n / 2], v[p99 - 1]);
        fflush(stdout);
}

static void value(const char *key, double v) {
        printf("V %s %.3f\n", key, v);
        fflush(stdout);
}

static void die(const char *what, int r, const sd_bus_error *e) {
        printf("E %s: %s\n", what, e && e->message ? e->message : strerror(-r));
        fflush(stdout);
        exit(1);
}

static sd_bus *connect_system(void) {
        sd_bus *bus = NULL;
        int r = sd_bus_open_system(&bus);
        if (r < 0)
                die("connect to the system bus", r, NULL);
        return bus;
}

/* Comma-separated integers. */
static int parse_list(const char *s, int *out, int max) {
        int n = 0;
        char **parts = g_strsplit(s, ",", -1);
        for (char **p = parts; *p && n < max; p++)
                out[n++] = atoi(*p);
        g_strfreev(parts);
        return n;
}

/* ---------------------------------------------------------------------- */
/* qmachined helpers */

static char *create_machine(sd_bus *bus, const char *name, const char *binary, char **args) {
        sd_bus_message *m = NULL, *reply = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *path;
        char *ret;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, SERVICE, MGR_PATH, MGR_IFACE, "CreateMachine");
        if (r < 0)
                die("CreateMachine", r, NULL);
        sd_bus_message_append(m, "s", name);
        sd_bus_message_open_container(m, 'a', "{sv}");
        if (binary)
                sd_bus_message_append(m, "{sv}", "binary", "s", binary);
        sd_bus_message_open_container(m, 'e', "sv");
        sd_bus_message_append(m, "s", "args");
        sd_bus_message_open_container(m, 'v', "as");
        sd_bus_message_append_strv(m, args);
        sd_bus_message_close_container(m);
        sd_bus_message_close_container(m);
        r = sd_bus_message_close_container(m);
        if (r < 0)
                die("CreateMachine", r, NULL);
        r = sd_bus_call(bus, m, CALL_TIMEOUT, &e, &reply);
        if (r < 0)
                die("CreateMachine", r, &e);
        sd_bus_message_read(reply, "o", &path);
        ret = g_strdup(path);
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);
        return ret;
}

static void mcall(sd_bus *bus, const char *path, const char *member, const char *types, ...) {
        sd_bus_message *m = NULL, *reply = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        va_list ap;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, SERVICE, path,
                                           strcmp(path, MGR_PATH) == 0 ? MGR_IFACE : M_IFACE, member);
        if (r < 0)
                die(member, r, NULL);
        if (types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
                if (r < 0)
                        die(member, r, NULL);
        }
        r = sd_bus_call(bus, m, CALL_TIMEOUT, &e, &reply);
        if (r < 0)
                die(member, r, &e);
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);
}

static void qmp_call(sd_bus *bus, const char *path, const char *cmd, const char *args) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int r = sd_bus_call_method(bus, SERVICE, path, M_IFACE, "Qmp", &e, &reply, "ss", cmd, args);
        if (r < 0)
                die("Qmp", r, &e);
        sd_bus_message_unref(reply);
}

static pid_t daemon_pid(sd_bus *bus) {
        sd_bus_creds *c = NULL;
        pid_t pid = 0;
        int r = sd_bus_get_name_creds(bus, SERVICE, SD_BUS_CREDS_PID, &c);
        if (r < 0)
                die("GetConnectionUnixProcessID", r, NULL);
        sd_bus_creds_get_pid(c, &pid);
        sd_bus_creds_unref(c);
        return pid;
}

/* VmRSS in KiB and the number of open fds of a process. */
static void proc_usage(pid_t pid, double *rss_kib, double *fds) {
        char path[64], line[256];
        FILE *f;

        *rss_kib = *fds = -1;
        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        f = fopen(path, "r");
        if (f) {
                while (fgets(line, sizeof(line), f))
                        if (strncmp(line, "VmRSS:", 6) == 0)
                                *rss_kib = atof(line + 6);
                fclose(f);
        }
        snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
        GDir *d = g_dir_open(path, 0, NULL);
        if (d) {
                *fds = 0;
                while (g_dir_read_name(d))
                        (*fds)++;
                g_dir_close(d);
        }
}

/* utime + stime of a process in µs (utime alone in *user_us) (/proc/PID/stat, fields 14 and 15:
 * clock ticks; the kernel derives them from its precise runtime, so the
 * error is under one tick per reading); -1 if unreadable. */
static double proc_cpu_split_us(pid_t pid, double *user_us) {
        char path[64], buf[1024];
        unsigned long utime, stime;
        const char *p;
        ssize_t n;
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return -1;
        buf[n] = '\0';
        /* the command name may hold spaces and parentheses: skip to the last ')' */
        p = strrchr(buf, ')');
        if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
                return -1;
        if (user_us)
                *user_us = (double)utime * 1e6 / (double)sysconf(_SC_CLK_TCK);
        return (double)(utime + stime) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

/* Voluntary context switches of a process's main thread: how often it
 * went to sleep waiting (/proc/PID/status); -1 if unreadable. */
static double proc_sleeps(pid_t pid) {
        char path[64], line[256];
        double v = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0)
                        v = atof(line + 24);
        fclose(f);
        return v;
}

/* ---------------------------------------------------------------------- */
/* Bare QEMUs: the floor. Spawned like qmachined does (a listening socket
 * passed as fd 3), connected, greeting read, qmp_capabilities answered. */

typedef struct {
        pid_t pid;
        int fd;
        int lines;
        char *path;
} Bare;

static char *tmp_dir;

static void bare_spawn(Bare *b, char **qemu_argv, int idx) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        GPtrArray *argv = g_ptr_array_new_with_free_func(g_free);
        int lfd;

        b->path = g_strdup_printf("%s/bare-%d.sock", tmp_dir, idx);
        b->lines = 0;
        g_strlcpy(sa.sun_path, b->path, sizeof(sa.sun_path));
        unlink(b->path);
        lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0)
                die("bind", -errno, NULL);
        b->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(b->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                die("connect", -errno, NULL);
        for (char **a = qemu_argv; *a; a++)
                g_ptr_array_add(argv, g_strdup(*a));
        /* what qmachined adds (API.md: -display none -vga none, QMP) */
        g_ptr_array_add(argv, g_strdup("-display"));
        g_ptr_array_add(argv, g_strdup("none"));
        g_ptr_array_add(argv, g_strdup("-vga"));
        g_ptr_array_add(argv, g_strdup("none"));
        g_ptr_array_add(argv, g_strdup("-chardev"));
        g_ptr_array_add(argv, g_strdup("socket,id=mon,fd=3,server=on,wait=off"));
        g_ptr_array_add(argv, g_strdup("-mon"));
        g_ptr_array_add(argv, g_strdup("chardev=mon,mode=control"));
        g_ptr_array_add(argv, NULL);
        b->pid = fork();
        if (b->pid == 0) {
                int null = open("/dev/null", O_RDWR);
                dup2(lfd, 3);
                dup2(null, 0);
                dup2(null, 1);
                dup2(null, 2);
                execvp(argv->pdata[0], (char **)argv->pdata);
                _exit(127);
        }
        if (b->pid < 0)
                die("fork", -errno, NULL);
        close(lfd);
        g_ptr_array_unref(argv);
}

/* Read what is there; count complete lines. FALSE on EOF. */
static gboolean bare_read(Bare *b) {
        char buf[4096];
        ssize_t n = read(b->fd, buf, sizeof(buf));
        if (n <= 0)
                return FALSE;
        for (ssize_t i = 0; i < n; i++)
                if (buf[i] == '\n')
                        b->lines++;
        return TRUE;
}

static void write_all(int fd, const char *s) {
        size_t len = strlen(s), off = 0;
        while (off < len) {
                ssize_t n = write(fd, s + off, len - off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        die("write to QMP", -errno, NULL);
                off += (size_t)n;
        }
}

/* Spawn n bare QEMUs at once and take each to QMP ready; µs for all. */
static double bare_launch_many(Bare *b, int n, char **qemu_argv) {
        double t0 = qm_bench_now_us();
        struct pollfd *p = g_new0(struct pollfd, n);
        int ready = 0;

        for (int i = 0; i < n; i++) {
                bare_spawn(&b[i], qemu_argv, i);
                p[i].fd = b[i].fd;
                p[i].events = POLLIN;
        }
        while (ready < n) {
                if (poll(p, n, 60000) <= 0)
                        die("bare QEMU: no QMP greeting within 60 s", -ETIMEDOUT, NULL);
                for (int i = 0; i < n; i++) {
                        if (!(p[i].revents & (POLLIN | POLLHUP)))
                                continue;
                        int before = b[i].lines;
                        if (!bare_read(&b[i]))
                                die("bare QEMU closed QMP (bad arguments?)", -EPIPE, NULL);
                        if (before < 1 && b[i].lines >= 1)
                                write_all(b[i].fd, "{\"execute\":\"qmp_capabilities\"}\n");
                        if (b[i].lines >= 2) {
                                p[i].fd = -1;
                                ready++;
                        }
                }
        }
        g_free(p);
        return qm_bench_now_us() - t0;
}

static void read_line(int fd) {
        char c;
        while (read(fd, &c, 1) == 1 && c != '\n')
                ;
}

static void bare_stop_many(Bare *b, int n) {
        for (int i = 0; i < n; i++)
                write_all(b[i].fd, "{\"execute\":\"quit\"}\n");
        for (int i = 0; i < n; i++) {
                /* A QEMU that ignores quit (seen once in a few hundred
                 * right after the handshake) must not hang the run. */
                double deadline = qm_bench_now_us() + 5e6;
                while (waitpid(b[i].pid, NULL, WNOHANG) == 0) {
                        if (qm_bench_now_us() > deadline) {
                                printf("W bare QEMU %d ignored quit; killed\n", (int)b[i].pid);
                                kill(b[i].pid, SIGKILL);
                                waitpid(b[i].pid, NULL, 0);
                                break;
                        }
                        usleep(1000);
                }
                close(b[i].fd);
                unlink(b[i].path);
                g_free(b[i].path);
        }
}

static void bare_rtt(Bare *b) {
        write_all(b->fd, "{\"execute\":\"query-status\"}\n");
        read_line(b->fd);
}

/* ---------------------------------------------------------------------- */
/* launch */

static char **qemu_argv_of(const char *binary, char **args) {
        GPtrArray *a = g_ptr_array_new();
        g_ptr_array_add(a, g_strdup(binary));
        for (char **p = args; *p; p++)
                g_ptr_array_add(a, g_strdup(*p));
        g_ptr_array_add(a, NULL);
        return (char **)g_ptr_array_free(a, FALSE);
}

static int cmd_launch(int n, const char *label, const char *binary, char **args) {
        sd_bus *bus = connect_system();
        g_autofree char *name = g_strdup_printf("bench-launch-%s-%d", label, (int)getpid());
        g_autofree char *path = create_machine(bus, name, binary, args);
        char **qargv = qemu_argv_of(binary, args);
        g_autofree double *ours = g_new(double, n);
        g_autofree double *floor_ = g_new(double, n);
        g_autofree double *stop = g_new(double, n);
        g_autofree double *first = g_new(double, n);
        char key[128];

        for (int i = 0; i < n; i++) {
                Bare b;
                double t = qm_bench_now_us();
                mcall(bus, path, "Launch", NULL);
                ours[i] = qm_bench_now_us() - t;
                t = qm_bench_now_us();
                mcall(bus, path, "Shutdown", "bd", 0, 10.0);
                stop[i] = qm_bench_now_us() - t;
                floor_[i] = bare_launch_many(&b, 1, qargv);
                /* what the daemon adds to the handshake: one query-status,
                 * so that RunState is right when Launch returns */
                t = qm_bench_now_us();
                bare_rtt(&b);
                first[i] = qm_bench_now_us() - t;
                bare_stop_many(&b, 1);
        }
        mcall(bus, MGR_PATH, "RemoveMachine", "s", name);
        snprintf(key, sizeof(key), "launch.%s.ours", label);
        report(key, ours, n);
        snprintf(key, sizeof(key), "launch.%s.floor", label);
        report(key, floor_, n);
        snprintf(key, sizeof(key), "launch.%s.shutdown", label);
        report(key, stop, n);
        snprintf(key, sizeof(key), "launch.%s.floor_first_query", label);
        report(key, first, n);
        g_strfreev(qargv);
        sd_bus_unref(bus);
        return 0;
}

/* ---------------------------------------------------------------------- */
/* rtt */

static void echo_call(sd_bus *bus, const char *echo) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int r = sd_bus_call_method(bus, echo, ECHO_PATH, ECHO_IFACE, "Echo", &e, &reply, "s", "running");
        if (r < 0)
                die("Echo", r, &e);
        sd_bus_message_unref(reply);
}

static void ping_call(sd_bus *bus, const char *dest) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int r = sd_bus_call_method(bus, dest, MGR_PATH, "org.freedesktop.DBus.Peer", "Ping", &e, &reply, "");
        if (r < 0)
                die("Peer.Ping", r, &e);
        sd_bus_message_unref(reply);
}

static void get_state(sd_bus *bus, const char *path) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *state = NULL;
        int r = sd_bus_get_property_string(bus, SERVICE, path, M_IFACE, "State", &e, &state);
        if (r < 0)
                die("Get(State)", r, &e);
        free(state);
}

/* The CPU time of a process in ns: the sum of its threads' runtime in
 * /proc/PID/task/TID/schedstat, the precise figure utime + stime are
 * rounded from; -1 if unreadable. */
static double proc_runtime_ns(pid_t pid) {
        char path[96], buf[128];
        double sum = 0;
        const char *tid;
        GDir *d;

        snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
        d = g_dir_open(path, 0, NULL);
        if (!d)
                return -1;
        while ((tid = g_dir_read_name(d))) {
                ssize_t n;
                int fd;

                snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", (int)pid, tid);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue; /* a thread that just ended */
                n = read(fd, buf, sizeof(buf) - 1);
                close(fd);
                if (n <= 0)
                        continue;
                buf[n] = '\0';
                sum += g_ascii_strtod(buf, NULL);
        }
        g_dir_close(d);
        return sum;
}

/* The daemon's own CPU per call: its CPU time over sequential calls of
 * one kind, divided by their number. Peer.Ping is the floor: what sd-bus
 * costs to receive a call and send its answer, without the daemon's own
 * work. Qmp and Ping alternate in chunks, so that a neighbour's burst or
 * the daemon's own timers hit both alike, and the chunks' figures (from
 * schedstat, in ns) give min / median / p99. The mean over all calls
 * comes from utime + stime (/proc/PID/stat, clock ticks): per kind the
 * sum of the chunks' differences, off by at most a tick per reading. */
#define CPU_CHUNK 250
static void daemon_cpu_per_call(sd_bus *bus, const char *path, int n) {
        pid_t dpid = daemon_pid(bus);
        int chunk = MIN(n, CPU_CHUNK), nchunks = (n + chunk - 1) / chunk;
        g_autofree double *qmp = g_new(double, nchunks), *ping = g_new(double, nchunks);
        double *per_call[2] = { qmp, ping };
        double ticks_us[2] = { 0, 0 }, user_us[2] = { 0, 0 }, sleeps[2] = { 0, 0 }, wall_us[2] = { 0, 0 };
        int calls[2] = { 0, 0 }, samples = 0;

        for (int c = 0; c < nchunks; c++) {
                int m = MIN(chunk, n - c * chunk);
                for (int kind = 0; kind < 2; kind++) {
                        double u0, u1, s0 = proc_sleeps(dpid), c0 = proc_cpu_split_us(dpid, &u0);
                        double r0 = proc_runtime_ns(dpid), t0 = qm_bench_now_us();
                        for (int i = 0; i < m; i++) {
                                if (kind == 0)
                                        qmp_call(bus, path, "query-status", "");
                                else
                                        ping_call(bus, SERVICE);
                        }
                        double t1 = qm_bench_now_us(), r1 = proc_runtime_ns(dpid), c1 = proc_cpu_split_us(dpid, &u1);
                        double s1 = proc_sleeps(dpid);
                        if (c0 < 0 || c1 < 0 || r0 < 0 || r1 < 0) {
                                printf("E cannot read the CPU time of qmachined (/proc/%d)\n", (int)dpid);
                                failures++;
                                return;
                        }
                        per_call[kind][c] = (r1 - r0) / 1e3 / m;
                        ticks_us[kind] += c1 - c0;
                        user_us[kind] += u1 - u0;
                        sleeps[kind] += s1 - s0;
                        wall_us[kind] += t1 - t0;
                        calls[kind] += m;
                }
                samples++;
        }
        report("rtt.cpu.qmp", per_call[0], samples);
        report("rtt.cpu.ping", per_call[1], samples);
        value("rtt.cpu.qmp_us", ticks_us[0] / calls[0]);
        value("rtt.cpu.ping_us", ticks_us[1] / calls[1]);
        value("rtt.cpu.qmp_user_us", user_us[0] / calls[0]);
        value("rtt.cpu.ping_user_us", user_us[1] / calls[1]);
        value("rtt.cpu.qmp_sleeps", sleeps[0] / calls[0]);
        value("rtt.cpu.ping_sleeps", sleeps[1] / calls[1]);
        value("rtt.cpu.qmp_wall_us", wall_us[0] / calls[0]);
        value("rtt.cpu.ping_wall_us", wall_us[1] / calls[1]);
        value("rtt.cpu.n", n);
        value("rtt.cpu.chunk", chunk);
        value("rtt.cpu.tick_us", 1e6 / (double)sysconf(_SC_CLK_TCK));
}

enum { K_QMP, K_DIRECT, K_PING, K_GET, K_ECHO, K_ECHO_PING, K_N };
static const char *rtt_keys[K_N] = { "rtt.qmp", "rtt.direct", "rtt.ping", "rtt.get_state", "rtt.echo", "rtt.echo_ping" };

static int cmd_rtt(int n, int cpu_n, const char *echo, const char *binary, char **args) {
        sd_bus *bus = connect_system();
        g_autofree char *name = g_strdup_printf("bench-rtt-%d", (int)getpid());
        g_autofree char *path = create_machine(bus, name, binary, args);
        char **qargv = qemu_argv_of(binary, args);
        double *v[K_N];
        int chunk = n < 100 ? n : 100;
        Bare b;

        mcall(bus, path, "Launch", NULL);
        bare_launch_many(&b, 1, qargv);
        for (int k = 0; k < K_N; k++)
                v[k] = g_new(double, n);
        /* warm up each path */
        for (int i = 0; i < 20; i++) {
                qmp_call(bus, path, "query-status", "");
                bare_rtt(&b);
        }
        /* interleaved chunks, so that load changes hit every kind alike */
        for (int done = 0; done < n; done += chunk) {
                int m = MIN(chunk, n - done);
                for (int k = 0; k < K_N; k++) {
                        if ((k == K_ECHO || k == K_ECHO_PING) && !echo)
                                continue;
                        for (int i = done; i < done + m; i++) {
                                double t = qm_bench_now_us();
                                switch (k) {
                                case K_QMP: qmp_call(bus, path, "query-status", ""); break;
                                case K_DIRECT: bare_rtt(&b); break;
                                case K_PING: ping_call(bus, SERVICE); break;
                                case K_GET: get_state(bus, path); break;
                                case K_ECHO: echo_call(bus, echo); break;
                                case K_ECHO_PING: ping_call(bus, echo); break;
                                }
                                v[k][i] = qm_bench_now_us() - t;
                        }
                }
        }
        for (int k = 0; k < K_N; k++)
                if ((k != K_ECHO && k != K_ECHO_PING) || echo)
                        report(rtt_keys[k], v[k], n);
        daemon_cpu_per_call(bus, path, cpu_n);
        bare_stop_many(&b, 1);
        mcall(bus, path, "Shutdown", "bd", 0, 10.0);
        mcall(bus, MGR_PATH, "RemoveMachine", "s", name);
        g_strfreev(qargv);
        sd_bus_unref(bus);
        return 0;
}

/* ---------------------------------------------------------------------- */
/* throughput */

enum { T_OURS, T_DIRECT, T_ECHO };

typedef struct {
        int kind, index, vms;
        char **paths;
        Bare *bares;
        const char *echo;
        double deadline;
        pthread_barrier_t *start;
        double *lat;
        size_t n, cap;
        double end;
        sd_bus *bus;
} Worker;

static void *worker_main(void *p) {
        Worker *w = p;
        pthread_barrier_wait(w->start);
        for (size_t i = 0;; i++) {
                double t = qm_bench_now_us();
                if (t >= w->deadline)
                        break;
                switch (w->kind) {
                case T_OURS:
                        qmp_call(w->bus, w->paths[(w->index + i) % w->vms], "query-status", "");
                        break;
                case T_DIRECT:
                        bare_rtt(&w->bares[w->index]);
                        break;
                case T_ECHO:
                        echo_call(w->bus, w->echo);
                        break;
                }
                if (w->n == w->cap) {
                        w->cap = w->cap ? w->cap * 2 : 4096;
                        w->lat = g_renew(double, w->lat, w->cap);
                }
                w->lat[w->n++] = qm_bench_now_us() - t;
        }
        w->end = qm_bench_now_us();
        return NULL;
}

static void run_workers(int kind, int clients, int vms, char **paths, Bare *bares, const char *echo,
                        double seconds, const char *key) {
        Worker *w = g_new0(Worker, clients);
        pthread_t *th = g_new(pthread_t, clients);
        pthread_barrier_t start;
        double t0, end = 0, *all;
        size_t total = 0;
        char k[160];

        pthread_barrier_init(&start, NULL, clients + 1);
        for (int i = 0; i < clients; i++) {
                w[i] = (Worker){ .kind = kind, .index = i, .vms = vms, .paths = paths, .bares = bares,
                                 .echo = echo, .start = &start };
                if (kind != T_DIRECT)
                        w[i].bus = connect_system();
        }
        t0 = qm_bench_now_us();
        for (int i = 0; i < clients; i++)
                w[i].deadline = t0 + 5000 + seconds * 1e6;
        for (int i = 0; i < clients; i++)
                pthread_create(&th[i], NULL, worker_main, &w[i]);
        /* the clock starts when every thread is ready */
        usleep(5000 > (int)(qm_bench_now_us() - t0) ? 5000 - (int)(qm_bench_now_us() - t0) : 0);
        pthread_barrier_wait(&start);
        t0 = qm_bench_now_us();
        for (int i = 0; i < clients; i++) {
                pthread_join(th[i], NULL);
                end = MAX(end, w[i].end);
                total += w[i].n;
        }
        all = g_new(double, total ? total : 1);
        total = 0;
        for (int i = 0; i < clients; i++) {
                memcpy(all + total, w[i].lat, w[i].n * sizeof(double));
                total += w[i].n;
                g_free(w[i].lat);
                if (w[i].bus)
                        sd_bus_flush_close_unref(w[i].bus);
        }
        snprintf(k, sizeof(k), "%s.calls_per_s", key);
        value(k, (double)total / ((end - t0) / 1e6));
        snprintf(k, sizeof(k), "%s.latency", key);
        report(k, all, total);
        g_free(all);
        g_free(w);
        g_free(th);
        pthread_barrier_destroy(&start);
}

static int cmd_throughput(const char *clients_s, const char *vms_s, double seconds, const char *echo,
                          const char *binary, char **args) {
        int clients[16], vms[16], nc = parse_list(clients_s, clients, 16), nv = parse_list(vms_s, vms, 16);
        int maxv = 0;
        sd_bus *bus = connect_system();
        char **qargv = qemu_argv_of(binary, args);
        char **paths, **names;
        Bare *bares;

        for (int i = 0; i < nv; i++)
                maxv = MAX(maxv, vms[i]);
        paths = g_new0(char *, maxv + 1);
        names = g_new0(char *, maxv + 1);
        bares = g_new0(Bare, maxv);
        for (int i = 0; i < maxv; i++) {
                names[i] = g_strdup_printf("bench-tput-%d-%d", (int)getpid(), i);
                paths[i] = create_machine(bus, names[i], binary, args);
                mcall(bus, paths[i], "Launch", NULL);
        }
        bare_launch_many(bares, maxv, qargv);
        for (int v = 0; v < nv; v++) {
                for (int c = 0; c < nc; c++) {
                        char key[128];
                        snprintf(key, sizeof(key), "tput.c%d.v%d.ours", clients[c], vms[v]);
                        run_workers(T_OURS, clients[c], vms[v], paths, NULL, NULL, seconds, key);
                        snprintf(key, sizeof(key), "tput.c%d.v%d.direct", clients[c], vms[v]);
                        run_workers(T_DIRECT, MIN(clients[c], vms[v]), vms[v], NULL, bares, NULL, seconds, key);
                        if (echo) {
                                snprintf(key, sizeof(key), "tput.c%d.v%d.echo", clients[c], vms[v]);
                                run_workers(T_ECHO, clients[c], vms[v], NULL, NULL, echo, seconds, key);
                        }
                }
        }
        bare_stop_many(bares, maxv);
        for (int i = 0; i < maxv; i++) {
                mcall(bus, paths[i], "Shutdown", "bd", 0, 10.0);
                mcall(bus, MGR_PATH, "RemoveMachine", "s", names[i]);
        }
        g_strfreev(paths);
        g_strfreev(names);
        g_free(bares);
        g_strfreev(qargv);
        sd_bus_unref(bus);
        return 0;
}

/* ---------------------------------------------------------------------- */
/* events */

typedef struct {
        long expected, received, gaps, bad_n;
        guint64 last_seq;
        long last_n;
        double first_ts, last_ts, last_recv;
        double *lat;
        gboolean reply_done;
        int reply_error;
} EvState;

static long data_n(const char *data) {
        const char *p = strstr(data, "\"n\"");
        if (!p)
                return -1;
        p = strchr(p, ':');
        return p ? atol(p + 1) : -1;
}

static void ev_record(EvState *s, long n, double ts) {
        double now = real_us();
        if (s->received < s->expected)
                s->lat[s->received] = now - ts;
        if (s->received == 0)
                s->first_ts = ts;
        else if (n != s->last_n + 1)
                s->bad_n++;
        s->last_n = n;
        s->last_ts = ts;
        s->last_recv = now;
        s->received++;
}

static int on_event(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        EvState *s = userdata;
        const char *name, *data;
        uint64_t seq, ts;

        if (sd_bus_message_read(m, "sstt", &name, &data, &seq, &ts) < 0)
                return 0;
        if (strcmp(name, "BENCH") != 0)
                return 0;
        if (s->received > 0 && seq != s->last_seq + 1)
                s->gaps++;
        s->last_seq = seq;
        ev_record(s, data_n(data), (double)ts);
        return 0;
}

static int on_flood_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        EvState *s = userdata;
        s->reply_done = TRUE;
        if (sd_bus_message_is_method_error(m, NULL)) {
                printf("E x-flood: %s\n", sd_bus_message_get_error(m)->message);
                s->reply_error = 1;
        }
        return 0;
}

/* The floor: the same fake, read directly on its QMP socket. */
static void direct_flood(Bare *b, double rate, long count, EvState *s) {
        static char buf[1 << 16];
        char cmd[128];
        size_t len = 0;
        int seen_reply = 0;

        snprintf(cmd, sizeof(cmd), "{\"execute\":\"x-flood\",\"arguments\":{\"rate\":%.0f,\"count\":%ld}}\n", rate,
                 count);
        write_all(b->fd, cmd);
        while (s->received < count) {
                struct pollfd p = { .fd = b->fd, .events = POLLIN };
                if (poll(&p, 1, 3000) <= 0)
                        break;
                ssize_t n = read(b->fd, buf + len, sizeof(buf) - 1 - len);
                if (n <= 0)
                        break;
                len += (size_t)n;
                buf[len] = '\0';
                char *line = buf, *nl;
                while ((nl = strchr(line, '\n')) != NULL) {
                        *nl = '\0';
                        if (!seen_reply && strstr(line, "\"return\"")) {
                                seen_reply = 1;
                        } else if (strstr(line, "\"BENCH\"")) {
                                const char *sp = strstr(line, "\"seconds\":"), *up = strstr(line, "\"microseconds\":");
                                double ts = sp && up ? atof(sp + 10) * 1e6 + atof(up + 15) : 0;
                                ev_record(s, data_n(line), ts);
                        }
                        line = nl + 1;
                }
                len = strlen(line);
                memmove(buf, line, len + 1);
        }
}

static void ev_report(const char *who, double rate, EvState *s) {
        char key[128];
        double span = (s->last_recv - s->first_ts) / 1e6;
        double emit_span = (s->last_ts - s->first_ts) / 1e6;
        long lost = s->expected - s->received;
        int r = (int)rate;

        snprintf(key, sizeof(key), "events.r%d.%s.latency", r, who);
        report(key, s->lat, MIN(s->received, s->expected));
        snprintf(key, sizeof(key), "events.r%d.%s.lost", r, who);
        value(key, (double)lost + (double)s->gaps + (double)s->bad_n);
        snprintf(key, sizeof(key), "events.r%d.%s.delivered_per_s", r, who);
        value(key, span > 0 ? (double)s->received / span : 0);
        snprintf(key, sizeof(key), "events.r%d.%s.emitted_per_s", r, who);
        value(key, emit_span > 0 ? (double)(s->received - 1) / emit_span : 0);
}

static int cmd_events(const char *fake, const char *rates_s, double seconds) {
        int rates[32], nr = parse_list(rates_s, rates, 32);
        sd_bus *bus = connect_system();
        g_autofree char *name = g_strdup_printf("bench-events-%d", (int)getpid());
        char *noargs[] = { NULL };
        g_autofree char *path = create_machine(bus, name, fake, noargs);
        char *fake_argv[] = { (char *)fake, NULL };
        Bare b;
        int r;

        mcall(bus, path, "Launch", NULL);
        bare_launch_many(&b, 1, fake_argv);
        for (int i = 0; i < nr; i++) {
                double rate = rates[i];
                /* rate 0: as fast as it goes, for a fixed count */
                long count = rate > 0 ? (long)(rate * seconds) : (long)(50000 * seconds);
                g_autofree char *args = g_strdup_printf("{\"rate\": %.0f, \"count\": %ld}", rate, count);
                EvState s = { .expected = count, .lat = g_new(double, count) };
                sd_bus_slot *match = NULL, *slot = NULL;
                double idle_since;

                /* ours: the Event signal of the machine, through the bus */
                r = sd_bus_match_signal(bus, &match, SERVICE, path, M_IFACE, "Event", on_event, &s);
                if (r < 0)
                        die("AddMatch", r, NULL);
                r = sd_bus_call_method_async(bus, &slot, SERVICE, path, M_IFACE, "Qmp", on_flood_reply, &s, "ss",
                                             "x-flood", args);
                if (r < 0)
                        die("Qmp x-flood", r, NULL);
                idle_since = qm_bench_now_us();
                while (s.received < count || !s.reply_done) {
                        long before = s.received;
                        r = sd_bus_process(bus, NULL);
                        if (r < 0)
                                die("sd_bus_process", r, NULL);
                        if (s.received != before || r > 0) {
                                idle_since = qm_bench_now_us();
                                continue;
                        }
                        if (qm_bench_now_us() - idle_since > 3e6)
                                break; /* nothing for 3 s: the rest is lost */
                        sd_bus_wait(bus, 100000);
                }
                sd_bus_slot_unref(match);
                sd_bus_slot_unref(slot);
                ev_report("ours", rate, &s);
                if (s.reply_error)
                        failures++;

                /* the floor */
                EvState d = { .expected = count, .lat = g_new(double, count) };
                direct_flood(&b, rate, count, &d);
                ev_report("floor", rate, &d);
                g_free(s.lat);
                g_free(d.lat);
        }
        bare_stop_many(&b, 1);
        mcall(bus, path, "Shutdown", "bd", 0, 10.0);
        mcall(bus, MGR_PATH, "RemoveMachine", "s", name);
        sd_bus_unref(bus);
        return 0;
}

/* ---------------------------------------------------------------------- */
/* flood: fairness. Machine A (QEMU ARGS) answers Qmp(query-status) while
 * machine B, a qm-fake-qemu, floods COUNT events as fast as its socket
 * takes them. A's round trip is measured with B quiet, then while B
 * floods, until a WaitEvent on another connection sees the X_FLOOD_END
 * marker the fake sends after the last event: then the whole flood went
 * through the daemon and the bus. The floor is query-status on a bare
 * QEMU's socket, interleaved with ours in both phases (what CPU contention
 * alone costs), and the same flood read on a bare fake's socket. */

typedef struct {
        const char *path; /* machine B */
        guint64 after;
        double cap_s;
        int finished;     /* set last (atomic), by the watcher thread */
        double done;      /* CLOCK_MONOTONIC µs when WaitEvent returned */
        double done_real; /* the same in CLOCK_REALTIME µs */
        guint64 seq;
        double marker_ts; /* the marker's own timestamp, CLOCK_REALTIME µs */
        char error[256];
} FloodWatch;

/* The timestamp of a QMP event object, in µs; 0 if it has none. */
static double event_ts_us(const char *json) {
        const char *s = strstr(json, "\"seconds\""), *u = strstr(json, "\"microseconds\"");
        if (!s || !u || !(s = strchr(s, ':')) || !(u = strchr(u, ':')))
                return 0;
        return atof(s + 1) * 1e6 + atof(u + 1);
}

static void *flood_watch_main(void *p) {
        FloodWatch *w = p;
        sd_bus *bus = connect_system();
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        const char *json = "";
        int r;

        r = sd_bus_message_new_method_call(bus, &m, SERVICE, w->path, M_IFACE, "WaitEvent");
        if (r >= 0)
                r = sd_bus_message_append(m, "a(ss)td", 1, "X_FLOOD_END", "", w->after, w->cap_s);
        if (r >= 0)
                r = sd_bus_call(bus, m, (uint64_t)((w->cap_s + 10) * 1e6), &e, &reply);
        w->done = qm_bench_now_us();
        w->done_real = real_us();
        if (r >= 0)
                r = sd_bus_message_read(reply, "ts", &w->seq, &json);
        if (r < 0)
                snprintf(w->error, sizeof(w->error), "WaitEvent(X_FLOOD_END): %s",
                         e.message ? e.message : strerror(-r));
        else
                w->marker_ts = event_ts_us(json);
        sd_bus_error_free(&e);
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);
        sd_bus_flush_close_unref(bus);
        __atomic_store_n(&w->finished, 1, __ATOMIC_RELEASE);
        return NULL;
}

/* Qmp(query-status) that counts a failure instead of ending the run: under
 * a flood a starved call may time out, and that is a result. */
static gboolean qmp_try(sd_bus *bus, const char *path, int *errors) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int r = sd_bus_call_method(bus, SERVICE, path, M_IFACE, "Qmp", &e, &reply, "ss", "query-status", "");
        if (r < 0 && (*errors)++ < 3)
                printf("W Qmp(query-status) during the flood: %s\n", e.message ? e.message : strerror(-r));
        sd_bus_error_free(&e);
        sd_bus_message_unref(reply);
        return r >= 0;
}

static guint64 event_sequence(sd_bus *bus, const char *path) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        uint64_t seq = 0;
        int r = sd_bus_get_property_trivial(bus, SERVICE, path, M_IFACE, "EventSequence", &e, 't', &seq);
        if (r < 0)
                die("Get(EventSequence)", r, &e);
        return seq;
}

/* One sample of ours (Qmp to A) and one of the floor (A's bare twin). */
static void flood_sample(sd_bus *bus, const char *path, Bare *b, GArray *ours, GArray *sock, int *errors) {
        double t = qm_bench_now_us();
        if (qmp_try(bus, path, errors)) {
                t = qm_bench_now_us() - t;
                g_array_append_val(ours, t);
        }
        t = qm_bench_now_us();
        bare_rtt(b);
        t = qm_bench_now_us() - t;
        g_array_append_val(sock, t);
}

static GArray *samples_new(void) {
        return g_array_new(FALSE, FALSE, sizeof(double));
}

static void report_array(const char *key, GArray *a) {
        report(key, (double *)(void *)a->data, a->len);
}

static int cmd_flood(int n, long count, double cap_s, const char *fake, const char *binary, char **args) {
        sd_bus *bus = connect_system();
        g_autofree char *name_a = g_strdup_printf("bench-flood-a-%d", (int)getpid());
        g_autofree char *name_b = g_strdup_printf("bench-flood-b-%d", (int)getpid());
        char *noargs[] = { NULL };
        char *fake_argv[] = { (char *)fake, NULL };
        g_autofree char *path_a = create_machine(bus, name_a, binary, args);
        g_autofree char *path_b = create_machine(bus, name_b, fake, noargs);
        g_autofree char *flood_args = g_strdup_printf("{\"rate\": 0, \"count\": %ld, \"end\": true}", count);
        char **qargv = qemu_argv_of(binary, args);
        GArray *idle = samples_new(), *idle_sock = samples_new(), *busy = samples_new(), *busy_sock = samples_new();
        FloodWatch w = { .path = path_b, .cap_s = cap_s };
        EvState d = { .expected = count, .lat = g_new(double, count) };
        double rss0, rss1, fds, t0, t0_real, deadline;
        int errors = 0;
        gboolean timed_out;
        pid_t dpid = daemon_pid(bus);
        pthread_t th;
        Bare qb, fb;

        mcall(bus, path_a, "Launch", NULL);
        mcall(bus, path_b, "Launch", NULL);
        bare_launch_many(&qb, 1, qargv);
        for (int i = 0; i < 20; i++) /* warm up both paths */
                flood_sample(bus, path_a, &qb, idle, idle_sock, &errors);
        g_array_set_size(idle, 0);
        g_array_set_size(idle_sock, 0);
        for (int i = 0; i < n; i++)
                flood_sample(bus, path_a, &qb, idle, idle_sock, &errors);
        proc_usage(dpid, &rss0, &fds);

        /* the flood: the watcher waits for the marker on its own connection */
        w.after = event_sequence(bus, path_b);
        if (pthread_create(&th, NULL, flood_watch_main, &w) != 0)
                die("pthread_create", -errno, NULL);
        usleep(20000); /* its WaitEvent is in place before the first event */
        t0 = qm_bench_now_us();
        t0_real = real_us();
        deadline = t0 + cap_s * 1e6;
        qmp_call(bus, path_b, "x-flood", flood_args);
        do
                flood_sample(bus, path_a, &qb, busy, busy_sock, &errors);
        while (!__atomic_load_n(&w.finished, __ATOMIC_ACQUIRE) && qm_bench_now_us() < deadline);
        timed_out = !__atomic_load_n(&w.finished, __ATOMIC_ACQUIRE);
        if (timed_out) {
                printf("E the flood of %ld events did not get through qmachined within %.0f s\n", count, cap_s);
                failures++;
                /* B stops; its WaitEvent fails with NotRunning and the watcher ends */
                mcall(bus, path_b, "Shutdown", "bd", 1, 10.0);
        }
        pthread_join(th, NULL);
        proc_usage(dpid, &rss1, &fds);
        if (!timed_out && (w.error[0] || w.marker_ts <= 0)) {
                printf("E %s\n", w.error[0] ? w.error : "the X_FLOOD_END event has no timestamp");
                failures++;
        } else if (!timed_out) {
                value("flood.count", (double)count);
                value("flood.absorbed_s", (w.done - t0) / 1e6);
                value("flood.events_per_s", (double)count / ((w.done - t0) / 1e6));
                /* when the fake wrote its marker: the flood had left B's socket */
                value("flood.written_s", (w.marker_ts - t0_real) / 1e6);
                value("flood.lag_ms", (w.done_real - w.marker_ts) / 1e3);
                /* each line is one numbered event: 0 when none was lost */
                value("flood.seq_missing", (double)(w.after + (guint64)count + 1) - (double)w.seq);
        }
        value("flood.qmp_errors", errors);
        if (errors) {
                printf("E %d Qmp(query-status) calls to the other machine failed during the flood\n", errors);
                failures++;
        }
        value("flood.rss_kib_before", rss0);
        value("flood.rss_kib_after", rss1);
        report_array("flood.idle.ours", idle);
        report_array("flood.idle.socket", idle_sock);
        report_array("flood.busy.ours", busy);
        report_array("flood.busy.socket", busy_sock);

        /* the floor of the flood: the same fake read on its socket */
        bare_launch_many(&fb, 1, fake_argv);
        t0_real = real_us();
        direct_flood(&fb, 0, count, &d);
        if (d.received > 0)
                value("flood.socket_events_per_s", (double)d.received / ((d.last_recv - t0_real) / 1e6));
        bare_stop_many(&fb, 1);
        bare_stop_many(&qb, 1);
        mcall(bus, path_a, "Shutdown", "bd", 0, 10.0);
        mcall(bus, path_b, "Shutdown", "bd", 0, 10.0);
        mcall(bus, MGR_PATH, "RemoveMachine", "s", name_a);
        mcall(bus, MGR_PATH, "RemoveMachine", "s", name_b);
        g_array_unref(idle);
        g_array_unref(idle_sock);
        g_array_unref(busy);
        g_array_unref(busy_sock);
        g_free(d.lat);
        g_strfreev(qargv);
        sd_bus_unref(bus);
        return 0;
}

/* ---------------------------------------------------------------------- */
/* scale */

typedef struct {
        int pending, errors;
        double last;
} Batch;

static int on_batch_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Batch *b = userdata;
        if (sd_bus_message_is_method_error(m, NULL)) {
                if (b->errors++ < 3)
                        printf("E %s\n", sd_bus_message_get_error(m)->message);
        }
        b->pending--;
        b->last = qm_bench_now_us();
        return 0;
}

/* The same method on every machine at once; µs until the last reply.
 * Spread over connections: the daemon limits pending calls per client. */
static double batch_call(sd_bus **buses, int nbus, char **paths, int n, const char *member, const char *types,
                         gboolean hard) {
        Batch b = { 0 };
        sd_bus_slot **slots = g_new0(sd_bus_slot *, n);
        double t0 = qm_bench_now_us();
        int r;

        for (int i = 0; i < n; i++) {
                sd_bus *bus = buses[i % nbus];
                if (types)
                        r = sd_bus_call_method_async(bus, &slots[i], SERVICE, paths[i], M_IFACE, member, on_batch_reply,
                                                     &b, types, hard, 10.0);
                else
                        r = sd_bus_call_method_async(bus, &slots[i], SERVICE, paths[i], M_IFACE, member, on_batch_reply,
                                                     &b, "");
                if (r < 0)
                        die(member, r, NULL);
                b.pending++;
        }
        while (b.pending > 0) {
                int any = 0;
                for (int i = 0; i < nbus; i++) {
                        r = sd_bus_process(buses[i], NULL);
                        if (r < 0)
                                die("sd_bus_process", r, NULL);
                        any |= r > 0;
                }
                if (!any) {
                        struct pollfd *p = g_new0(struct pollfd, nbus);
                        for (int i = 0; i < nbus; i++) {
                                p[i].fd = sd_bus_get_fd(buses[i]);
                                p[i].events = sd_bus_get_events(buses[i]);
                        }
                        poll(p, nbus, 100);
                        g_free(p);
                }
        }
        for (int i = 0; i < n; i++)
                sd_bus_slot_unref(slots[i]);
        g_free(slots);
        if (b.errors)
                failures++;
        return b.last - t0;
}

static int cmd_scale(int n, int rounds, int queries, const char *label, const char *binary, char **args) {
        int nbus = (n + 127) / 128;
        sd_bus **buses = g_new0(sd_bus *, nbus);
        char **paths = g_new0(char *, n + 1), **names = g_new0(char *, n + 1);
        char **qargv = qemu_argv_of(binary, args);
        double *ours = g_new(double, rounds), *floor_ = g_new(double, rounds), *stop = g_new(double, rounds);
        double *create = g_new(double, n), *lm = g_new(double, queries), *gmo = g_new(double, queries);
        double rss0, fds0, rss1, fds1, rss2 = 0, fds2 = 0;
        Bare *bares = g_new0(Bare, n);
        pid_t dpid;
        char key[128];

        for (int i = 0; i < nbus; i++)
                buses[i] = connect_system();
        dpid = daemon_pid(buses[0]);
        proc_usage(dpid, &rss0, &fds0);
        for (int i = 0; i < n; i++) {
                double t = qm_bench_now_us();
                names[i] = g_strdup_printf("bench-scale-%s-%d-%d", label, (int)getpid(), i);
                paths[i] = create_machine(buses[0], names[i], binary, args);
                create[i] = qm_bench_now_us() - t;
        }
        proc_usage(dpid, &rss1, &fds1);
        for (int r = 0; r < rounds; r++) {
                ours[r] = batch_call(buses, nbus, paths, n, "Launch", NULL, FALSE);
                if (r == rounds - 1) {
                        proc_usage(dpid, &rss2, &fds2);
                        for (int q = 0; q < queries; q++) {
                                sd_bus_error e = SD_BUS_ERROR_NULL;
                                sd_bus_message *reply = NULL;
                                double t = qm_bench_now_us();
                                int rr = sd_bus_call_method(buses[0], SERVICE, MGR_PATH, MGR_IFACE, "ListMachines", &e,
                                                            &reply, "");
                                if (rr < 0)
                                        die("ListMachines", rr, &e);
                                lm[q] = qm_bench_now_us() - t;
                                sd_bus_message_unref(reply);
                                t = qm_bench_now_us();
                                rr = sd_bus_call_method(buses[0], SERVICE, MGR_PATH,
                                                        "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", &e,
                                                        &reply, "");
                                if (rr < 0)
                                        die("GetManagedObjects", rr, &e);
                                gmo[q] = qm_bench_now_us() - t;
                                sd_bus_message_unref(reply);
                        }
                }
                stop[r] = batch_call(buses, nbus, paths, n, "Shutdown", "bd", FALSE);
                floor_[r] = bare_launch_many(bares, n, qargv);
                bare_stop_many(bares, n);
        }
        snprintf(key, sizeof(key), "scale.%s.ours", label);
        report(key, ours, rounds);
        snprintf(key, sizeof(key), "scale.%s.floor", label);
        report(key, floor_, rounds);
        snprintf(key, sizeof(key), "scale.%s.shutdown", label);
        report(key, stop, rounds);
        snprintf(key, sizeof(key), "scale.%s.create", label);
        report(key, create, n);
        snprintf(key, sizeof(key), "scale.%s.list_machines", label);
        report(key, lm, queries);
        snprintf(key, sizeof(key), "scale.%s.get_managed_objects", label);
        report(key, gmo, queries);
        snprintf(key, sizeof(key), "scale.%s.rss_kib_before", label);
        value(key, rss0);
        snprintf(key, sizeof(key), "scale.%s.rss_kib_per_defined", label);
        value(key, (rss1 - rss0) / n);
        snprintf(key, sizeof(key), "scale.%s.rss_kib_per_running", label);
        value(key, (rss2 - rss0) / n);
        snprintf(key, sizeof(key), "scale.%s.rss_kib_running", label);
        value(key, rss2);
        snprintf(key, sizeof(key), "scale.%s.fds_before", label);
        value(key, fds0);
        snprintf(key, sizeof(key), "scale.%s.fds_per_running", label);
        value(key, (fds2 - fds0) / n);
        for (int i = 0; i < n; i++)
                mcall(buses[0], MGR_PATH, "RemoveMachine", "s", names[i]);
        for (int i = 0; i < nbus; i++)
                sd_bus_unref(buses[i]);
        g_strfreev(paths);
        g_strfreev(names);
        g_strfreev(qargv);
        g_free(bares);
        return 0;
}

/* ---------------------------------------------------------------------- */
/* echo service (UNPRIVILEGED: without it sd-bus asks the bus for the
 * caller's credentials on every call, a second round trip) */

static int echo_method(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *s;
        int r = sd_bus_message_read(m, "s", &s);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, "s", s);
}

static const sd_bus_vtable echo_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Echo", "s", "s", echo_method, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static int cmd_echo_service(const char *name) {
        sd_bus *bus = connect_system();
        int r = sd_bus_add_object_vtable(bus, NULL, ECHO_PATH, ECHO_IFACE, echo_vtable, NULL);
        if (r < 0)
                die("add vtable", r, NULL);
        r = sd_bus_request_name(bus, name, 0);
        if (r < 0)
                die("RequestName", r, NULL);
        printf("ready\n");
        fflush(stdout);
        for (;;) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return 0; /* the bus went away */
                if (r > 0)
                        continue;
                r = sd_bus_wait(bus, UINT64_MAX);
                if (r < 0)
                        return 0;
        }
}

/* ---------------------------------------------------------------------- */

static void usage(void) {
        fprintf(stderr, "usage: qm-bench launch|rtt|throughput|events|flood|scale|echo-service [OPTIONS]\n"
                        "       [-- QEMU ARGS]\n"
                        "(see the comment at the top of bench/qm-bench.c)\n");
        exit(2);
}

int main(int argc, char **argv) {
        const char *binary = "qemu-system-x86_64", *label = "none", *echo = NULL, *fake = NULL;
        const char *clients = "1,8,64", *vms = "1,8", *rates = "1000,20000";
        char *default_args[] = { "-machine", "none", "-nodefaults", "-accel", "tcg", NULL };
        char **args = default_args;
        int n = 20, cpu_n = 2000, rounds = 3, queries = 50, r = 0;
        double seconds = 1.0, cap = 120.0;
        long count = 100000;
        const char *cmd;

        if (argc < 2)
                usage();
        cmd = argv[1];
        signal(SIGPIPE, SIG_IGN);
        setvbuf(stdout, NULL, _IOLBF, 0);
        for (int i = 2; i < argc; i++) {
#define OPT(s) (strcmp(argv[i], s) == 0 && i + 1 < argc)
                if (OPT("--n"))
                        n = atoi(argv[++i]);
                else if (OPT("--cpu-n"))
                        cpu_n = atoi(argv[++i]);
                else if (OPT("--rounds"))
                        rounds = atoi(argv[++i]);
                else if (OPT("--queries"))
                        queries = atoi(argv[++i]);
                else if (OPT("--label"))
                        label = argv[++i];
                else if (OPT("--binary"))
                        binary = argv[++i];
                else if (OPT("--echo"))
                        echo = argv[++i];
                else if (OPT("--clients"))
                        clients = argv[++i];
                else if (OPT("--vms"))
                        vms = argv[++i];
                else if (OPT("--rates"))
                        rates = argv[++i];
                else if (OPT("--seconds"))
                        seconds = atof(argv[++i]);
                else if (OPT("--count"))
                        count = atol(argv[++i]);
                else if (OPT("--cap"))
                        cap = atof(argv[++i]);
                else if (OPT("--fake"))
                        fake = argv[++i];
                else if (strcmp(argv[i], "--") == 0) {
                        args = &argv[i + 1];
                        break;
                } else if (strcmp(cmd, "echo-service") == 0 && i == 2)
                        echo = argv[i];
                else
                        usage();
#undef OPT
        }
        if (n < 1 || cpu_n < 1 || rounds < 1 || queries < 1 || count < 1 || cap <= 0)
                usage();
        if (strcmp(cmd, "echo-service") == 0) {
                if (!echo)
                        usage();
                return cmd_echo_service(echo);
        }
        /* for the bare QEMUs' sockets (the echo service, ended by a
         * signal, would leave one behind after every run) */
        tmp_dir = g_dir_make_tmp("qm-bench-XXXXXX", NULL);
        if (!tmp_dir)
                die("temporary directory", -errno, NULL);
        if (strcmp(cmd, "launch") == 0)
                r = cmd_launch(n, label, binary, args);
        else if (strcmp(cmd, "rtt") == 0)
                r = cmd_rtt(n, cpu_n, echo, binary, args);
        else if (strcmp(cmd, "throughput") == 0)
                r = cmd_throughput(clients, vms, seconds, echo, binary, args);
        else if (strcmp(cmd, "events") == 0)
                r = cmd_events(binary, rates, seconds);
        else if (strcmp(cmd, "flood") == 0 && fake)
                r = cmd_flood(n, count, cap, fake, binary, args);
        else if (strcmp(cmd, "scale") == 0)
                r = cmd_scale(n, rounds, queries, label, binary, args);
        else
                usage();
        rmdir(tmp_dir);
        return r || failures ? 1 : 0;
}
