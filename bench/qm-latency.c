/*
 * qm-latency: launch and QMP round-trip latency of qmachined against the
 * floor measured in the same run (a bare QEMU started and handshaken by
 * hand, and query-status on a QMP socket directly).
 *
 *   qm-latency [--launches N] [--calls N] [--binary PATH] [-- QEMU ARGS]
 *
 * Talks to qmachined on the system bus (DBUS_SYSTEM_BUS_ADDRESS).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <glib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#define MGR_PATH "/org/qmachine/QMachine1"
#define MGR_IFACE "org.qmachine.QMachine1.Manager"
#define M_IFACE "org.qmachine.QMachine1.Machine"
#define SERVICE "org.qmachine.QMachine1"

static double now_us(void) {
        return (double)g_get_monotonic_time();
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

typedef struct {
        double min, median, p99;
} Stats;

static Stats stats(double *v, int n) {
        qsort(v, n, sizeof(double), cmp_double);
        return (Stats){ v[0], v[n / 2], v[(int)((n - 1) * 0.99)] };
}

static void die(const char *what, int r, const sd_bus_error *e) {
        fprintf(stderr, "qm-latency: %s: %s\n", what, e && e->message ? e->message : strerror(-r));
        exit(1);
}

static void call(sd_bus *bus, const char *path, const char *member, sd_bus_message **reply, const char *types, ...) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL;
        va_list ap;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, SERVICE, path, path == NULL || strcmp(path, MGR_PATH) == 0 ? MGR_IFACE : M_IFACE, member);
        if (r < 0)
                die(member, r, NULL);
        if (types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
                if (r < 0)
                        die(member, r, NULL);
        }
        r = sd_bus_call(bus, m, 120 * 1000000ULL, &e, reply);
        if (r < 0)
                die(member, r, &e);
        sd_bus_message_unref(m);
}

/* Read one line from a blocking socket (QMP is line-based). */
static void read_line(int fd) {
        char c;
        while (read(fd, &c, 1) == 1 && c != '\n')
                ;
}

/* The floor: bind, spawn QEMU with the listening fd, connect, greeting,
 * qmp_capabilities answered. Returns µs; the process is quit and reaped. */
static double bare_launch(char **qemu_argv, const char *dir, double *rtt, int calls) {
        g_autofree char *path = g_build_filename(dir, "bare.sock", NULL);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        const char *cmd = "{\"execute\":\"query-status\"}\n";
        GPtrArray *argv = g_ptr_array_new_with_free_func(g_free);
        double t0, t1;
        int lfd, cfd, status;
        pid_t pid;

        g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
        unlink(path);
        t0 = now_us();
        lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0)
                die("bind", -errno, NULL);
        cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(cfd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                die("connect", -errno, NULL);
        for (char **a = qemu_argv; *a; a++)
                g_ptr_array_add(argv, g_strdup(*a));
        g_ptr_array_add(argv, g_strdup("-display"));
        g_ptr_array_add(argv, g_strdup("none"));
        g_ptr_array_add(argv, g_strdup("-vga"));
        g_ptr_array_add(argv, g_strdup("none"));
        g_ptr_array_add(argv, g_strdup("-chardev"));
        g_ptr_array_add(argv, g_strdup("socket,id=mon,fd=3,server=on,wait=off"));
        g_ptr_array_add(argv, g_strdup("-mon"));
        g_ptr_array_add(argv, g_strdup("chardev=mon,mode=control"));
        g_ptr_array_add(argv, NULL);
        pid = fork();
        if (pid == 0) {
                int null = open("/dev/null", O_RDWR);
                dup2(lfd, 3);
                dup2(null, 0);
                dup2(null, 1);
                dup2(null, 2);
                execvp(argv->pdata[0], (char **)argv->pdata);
                _exit(127);
        }
        close(lfd);
        read_line(cfd); /* greeting */
        if (write(cfd, "{\"execute\":\"qmp_capabilities\"}\n", 31) != 31)
                die("write", -errno, NULL);
        read_line(cfd);
        t1 = now_us();
        for (int i = 0; rtt && i < calls; i++) {
                double s = now_us();
                if (write(cfd, cmd, strlen(cmd)) < 0)
                        die("write", -errno, NULL);
                read_line(cfd);
                rtt[i] = now_us() - s;
        }
        if (write(cfd, "{\"execute\":\"quit\"}\n", 19) < 0)
                die("write", -errno, NULL);
        waitpid(pid, &status, 0);
        close(cfd);
        unlink(path);
        g_ptr_array_unref(argv);
        return t1 - t0;
}

int main(int argc, char **argv) {
        int launches = 20, calls = 1000;
        const char *binary = "qemu-system-x86_64";
        char *default_args[] = { "-machine", "none", "-accel", "tcg", NULL };
        char **qemu_args = default_args;
        g_autoptr(GPtrArray) bare_argv = g_ptr_array_new();
        g_autofree char *dir = g_dir_make_tmp("qm-latency-XXXXXX", NULL);
        g_autofree char *name = g_strdup_printf("bench-%d", (int)getpid());
        sd_bus *bus = NULL;
        sd_bus_message *reply = NULL, *m = NULL;
        const char *path;
        char *path_copy;
        int r;

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--launches") == 0 && i + 1 < argc)
                        launches = atoi(argv[++i]);
                else if (strcmp(argv[i], "--calls") == 0 && i + 1 < argc)
                        calls = atoi(argv[++i]);
                else if (strcmp(argv[i], "--binary") == 0 && i + 1 < argc)
                        binary = argv[++i];
                else if (strcmp(argv[i], "--") == 0) {
                        qemu_args = &argv[i + 1];
                        break;
                } else {
                        fprintf(stderr, "usage: qm-latency [--launches N] [--calls N] [--binary PATH] [-- QEMU ARGS]\n");
                        return 2;
                }
        }
        if (launches < 1 || calls < 1)
                return 2;
        g_ptr_array_add(bare_argv, (char *)binary);
        for (char **a = qemu_args; *a; a++)
                g_ptr_array_add(bare_argv, *a);
        g_ptr_array_add(bare_argv, NULL);

        r = sd_bus_open_system(&bus);
        if (r < 0)
                die("connect to the bus", r, NULL);

        /* CreateMachine name {binary, args} */
        r = sd_bus_message_new_method_call(bus, &m, SERVICE, MGR_PATH, MGR_IFACE, "CreateMachine");
        if (r < 0)
                die("CreateMachine", r, NULL);
        sd_bus_message_append(m, "s", name);
        sd_bus_message_open_container(m, 'a', "{sv}");
        sd_bus_message_append(m, "{sv}", "binary", "s", binary);
        sd_bus_message_open_container(m, 'e', "sv");
        sd_bus_message_append(m, "s", "args");
        sd_bus_message_open_container(m, 'v', "as");
        sd_bus_message_append_strv(m, qemu_args);
        sd_bus_message_close_container(m);
        sd_bus_message_close_container(m);
        sd_bus_message_close_container(m);
        {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                r = sd_bus_call(bus, m, 0, &e, &reply);
                if (r < 0)
                        die("CreateMachine", r, &e);
        }
        sd_bus_message_read(reply, "o", &path);
        path_copy = g_strdup(path);
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);

        double *ours = g_new(double, launches), *floor_l = g_new(double, launches);
        for (int i = 0; i < launches; i++) {
                double t = now_us();
                call(bus, path_copy, "Launch", NULL, NULL);
                ours[i] = now_us() - t;
                call(bus, path_copy, "Shutdown", NULL, "bd", 0, 10.0);
                floor_l[i] = bare_launch((char **)bare_argv->pdata, dir, NULL, 0);
        }

        double *rtt = g_new(double, calls), *floor_rtt = g_new(double, calls), *get = g_new(double, calls);
        call(bus, path_copy, "Launch", NULL, NULL);
        for (int i = 0; i < calls; i++) {
                double t = now_us();
                call(bus, path_copy, "Qmp", &reply, "ss", "query-status", "");
                rtt[i] = now_us() - t;
                sd_bus_message_unref(reply);
        }
        for (int i = 0; i < calls; i++) {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                char *state = NULL;
                double t = now_us();
                r = sd_bus_get_property_string(bus, SERVICE, path_copy, M_IFACE, "State", &e, &state);
                if (r < 0)
                        die("Get State", r, &e);
                get[i] = now_us() - t;
                free(state);
        }
        call(bus, path_copy, "Shutdown", NULL, "bd", 0, 10.0);
        bare_launch((char **)bare_argv->pdata, dir, floor_rtt, calls);
        call(bus, MGR_PATH, "RemoveMachine", NULL, "s", name);

        Stats a = stats(ours, launches), b = stats(floor_l, launches);
        Stats c = stats(rtt, calls), d = stats(floor_rtt, calls), g = stats(get, calls);
        printf("%-34s %10s %10s %10s %8s\n", "figure (µs)", "min", "median", "p99", "ratio");
        printf("%-34s %10.0f %10.0f %10.0f %8.2f\n", "Launch() -> reply", a.min, a.median, a.p99, a.median / b.median);
        printf("%-34s %10.0f %10.0f %10.0f %8s\n", "  floor: bare QEMU to QMP ready", b.min, b.median, b.p99, "1.00");
        printf("%-34s %10.0f %10.0f %10.0f %8.2f\n", "Qmp(query-status) round trip", c.min, c.median, c.p99, c.median / d.median);
        printf("%-34s %10.0f %10.0f %10.0f %8s\n", "  floor: query-status on socket", d.min, d.median, d.p99, "1.00");
        printf("%-34s %10.0f %10.0f %10.0f %8s\n", "Get(State) round trip", g.min, g.median, g.p99, "-");
        printf("launches: %d, calls: %d, launch overhead over floor (median): %.1f ms\n", launches, calls,
               (a.median - b.median) / 1000.0);
        rmdir(dir);
        sd_bus_unref(bus);
        return 0;
}
