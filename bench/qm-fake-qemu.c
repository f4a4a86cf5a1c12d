/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qm-fake-qemu: a stand-in for qemu-system-* that speaks just enough QMP
 * for the benchmarks and floods events on request, as fast as asked.
 *
 * It finds its QMP socket like QEMU does when qmachined starts it: a
 * listening socket inherited as the fd named in `-chardev
 * socket,id=mon,fd=N,...`. Every other argument is ignored. Started with
 * `--listen PATH` instead, it binds PATH itself (for the direct floor).
 *
 * Commands: qmp_capabilities, query-status, cont, stop, quit, and
 *   x-flood {"rate": R, "count": N}
 * which answers {"return": {}} and then sends N events named BENCH with
 * data {"n": 1..N}, paced to R events/s (0: as fast as the socket takes
 * them), each stamped with the time it was written (CLOCK_REALTIME, as
 * QEMU does). Writes block, so a slow reader slows the flood down instead
 * of losing events; the achieved rate is the reader's to measure. With
 * "end": true in the arguments, one more event follows the last one:
 * X_FLOOD_END with data {"count": N}, a marker a reader can wait for by
 * name without looking at the N events before it.
 */
#include <errno.h>
#include <stdarg.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int mon = -1;
static char out[1 << 16];
static size_t out_len;

static void flush_out(void) {
        size_t off = 0;
        while (off < out_len) {
                ssize_t n = write(mon, out + off, out_len - off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        exit(0); /* the reader went away */
                }
                off += (size_t)n;
        }
        out_len = 0;
}

static void put(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void put(const char *fmt, ...) {
        va_list ap;
        int n;

        if (out_len > sizeof(out) - 512)
                flush_out();
        va_start(ap, fmt);
        n = vsnprintf(out + out_len, sizeof(out) - out_len, fmt, ap);
        va_end(ap);
        if (n > 0)
                out_len += (size_t)n;
}

static double mono(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The raw JSON value of "key" at the top level of a small object, or "". */
static void json_raw(const char *line, const char *key, char *val, size_t size) {
        char pat[64];
        const char *p;
        size_t n = 0;
        int depth = 0, in_str = 0;

        val[0] = '\0';
        snprintf(pat, sizeof(pat), "\"%s\"", key);
        p = strstr(line, pat);
        if (!p)
                return;
        p = strchr(p + strlen(pat), ':');
        if (!p)
                return;
        for (p++; *p == ' '; p++)
                ;
        for (; *p && n + 1 < size; p++) {
                if (in_str) {
                        if (*p == '\\' && p[1])
                                val[n++] = *p++;
                        else if (*p == '"')
                                in_str = 0;
                } else if (*p == '"') {
                        in_str = 1;
                } else if (*p == '{' || *p == '[') {
                        depth++;
                } else if (*p == '}' || *p == ']') {
                        if (depth == 0)
                                break;
                        depth--;
                } else if (*p == ',' && depth == 0) {
                        break;
                }
                val[n++] = *p;
        }
        val[n] = '\0';
}

static void reply(const char *id, const char *ret) {
        if (id[0])
                put("{\"return\": %s, \"id\": %s}\r\n", ret, id);
        else
                put("{\"return\": %s}\r\n", ret);
        flush_out();
}

static void flood_end(long count) {
        struct timespec now;

        clock_gettime(CLOCK_REALTIME, &now);
        put("{\"timestamp\": {\"seconds\": %lld, \"microseconds\": %ld}, \"event\": \"X_FLOOD_END\", "
            "\"data\": {\"count\": %ld}}\r\n",
            (long long)now.tv_sec, now.tv_nsec / 1000, count);
        flush_out();
}

static void flood(double rate, long count) {
        double t0 = mono();
        long sent = 0;

        while (sent < count) {
                long due = rate > 0 ? (long)((mono() - t0) * rate) + 1 : count;
                if (due > count)
                        due = count;
                if (due <= sent) {
                        struct timespec ts = { 0, 50 * 1000 };
                        nanosleep(&ts, NULL);
                        continue;
                }
                while (sent < due) {
                        struct timespec now;
                        clock_gettime(CLOCK_REALTIME, &now);
                        sent++;
                        put("{\"timestamp\": {\"seconds\": %lld, \"microseconds\": %ld}, \"event\": \"BENCH\", "
                            "\"data\": {\"n\": %ld}}\r\n",
                            (long long)now.tv_sec, now.tv_nsec / 1000, sent);
                        /* Send in small batches so that the stamp is the
                         * time the event left, not when a big buffer fills. */
                        if (out_len > 4096)
                                flush_out();
                }
                flush_out();
        }
}

static void serve(void) {
        static char buf[1 << 20];
        size_t len = 0;

        put("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 9}, \"package\": "
            "\"qm-fake-qemu\"}, \"capabilities\": []}}\r\n");
        flush_out();
        for (;;) {
                char *nl;
                ssize_t n = read(mon, buf + len, sizeof(buf) - 1 - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return;
                len += (size_t)n;
                buf[len] = '\0';
                while ((nl = strchr(buf, '\n')) != NULL) {
                        char cmd[128], id[128], rate[64], count[64], end[16];
                        *nl = '\0';
                        json_raw(buf, "execute", cmd, sizeof(cmd));
                        json_raw(buf, "id", id, sizeof(id));
                        if (strcmp(cmd, "\"query-status\"") == 0) {
                                reply(id, "{\"status\": \"running\", \"singlestep\": false, \"running\": true}");
                        } else if (strcmp(cmd, "\"quit\"") == 0) {
                                reply(id, "{}");
                                put("{\"timestamp\": {\"seconds\": 0, \"microseconds\": 0}, \"event\": "
                                    "\"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": \"host-qmp-quit\"}}\r\n");
                                flush_out();
                                exit(0);
                        } else if (strcmp(cmd, "\"x-flood\"") == 0) {
                                json_raw(buf, "rate", rate, sizeof(rate));
                                json_raw(buf, "count", count, sizeof(count));
                                json_raw(buf, "end", end, sizeof(end));
                                reply(id, "{}");
                                flood(atof(rate), atol(count));
                                if (strcmp(end, "true") == 0)
                                        flood_end(atol(count));
                        } else if (cmd[0]) {
                                reply(id, "{}");
                        }
                        len -= (size_t)(nl + 1 - buf);
                        memmove(buf, nl + 1, len + 1);
                }
        }
}

int main(int argc, char **argv) {
        int lfd = -1;

        for (int i = 1; i < argc; i++) {
                const char *p = strstr(argv[i], "id=mon,fd=");
                if (p && strncmp(argv[i], "socket,", 7) == 0)
                        lfd = atoi(p + strlen("id=mon,fd="));
                if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
                        struct sockaddr_un sa = { .sun_family = AF_UNIX };
                        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[++i]);
                        lfd = socket(AF_UNIX, SOCK_STREAM, 0);
                        unlink(sa.sun_path);
                        if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0) {
                                perror("qm-fake-qemu: bind");
                                return 1;
                        }
                }
        }
        if (lfd < 0) {
                fprintf(stderr, "qm-fake-qemu: no -chardev socket,id=mon,fd=N and no --listen PATH\n");
                for (;;)
                        pause();
        }
        mon = accept(lfd, NULL, NULL);
        if (mon < 0) {
                perror("qm-fake-qemu: accept");
                return 1;
        }
        close(lfd);
        serve();
        return 0;
}
