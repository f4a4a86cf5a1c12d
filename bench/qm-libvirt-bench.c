/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qm-libvirt-bench: the peer figures of bench/run, measured on a libvirtd
 * that bench/run started privately. Same output format as qm-bench.
 *
 *   qm-libvirt-bench --uri URI --emulator PATH [--starts N] [--calls N]
 *                    [--domains K] [--libvirtd-pid PID]
 *                    [--dbus ADDRESS]   a bus where libvirt-dbus runs
 *
 * Figures: domain start (virDomainCreateXML of a transient q35 domain, no
 * disks, no devices, TCG, started paused: the equivalent of qmachined's
 * `-machine q35 -S`), virDomainQemuMonitorCommand(query-status) round
 * trip, libvirtd's RSS per running domain, and a libvirt-dbus property
 * read (org.libvirt.Domain.Active) when --dbus is given.
 */
#include <glib.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include "bench-time.h"

static void report(const char *key, double *v, size_t n) {
        if (n == 0)
                return;
        qsort(v, n, sizeof(double), qm_bench_cmp_double);
        size_t p99 = (size_t)((double)n * 0.99 + 0.999999);
        printf("R %s %zu %.1f %.1f %.1f\n", key, n, v[0], v[n / 2], v[p99 - 1]);
        fflush(stdout);
}

static void fail(const char *what) {
        const char *msg = virGetLastErrorMessage();
        printf("E %s: %s\n", what, msg ? msg : "unknown error");
        fflush(stdout);
        exit(1);
}

static double rss_kib(int pid) {
        char path[64], line[256];
        double v = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", pid);
        f = fopen(path, "r");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, "VmRSS:", 6) == 0)
                        v = atof(line + 6);
        fclose(f);
        return v;
}

static char *domain_xml(const char *name, const char *emulator) {
        return g_strdup_printf("<domain type='qemu'>"
                               "<name>%s</name>"
                               "<memory unit='MiB'>64</memory><vcpu>1</vcpu>"
                               "<os><type arch='x86_64' machine='q35'>hvm</type></os>"
                               "<devices><emulator>%s</emulator>"
                               "<controller type='usb' model='none'/>"
                               "<memballoon model='none'/>"
                               "<video><model type='none'/></video>"
                               "</devices></domain>",
                               name, emulator);
}

static virDomainPtr start(virConnectPtr conn, const char *name, const char *emulator) {
        g_autofree char *xml = domain_xml(name, emulator);
        virDomainPtr d = virDomainCreateXML(conn, xml, VIR_DOMAIN_START_PAUSED);
        if (!d)
                fail("virDomainCreateXML");
        return d;
}

static void destroy(virDomainPtr d) {
        if (virDomainDestroy(d) < 0)
                fail("virDomainDestroy");
        virDomainFree(d);
}

static void dbus_property(const char *address, const char *domain, int calls) {
        sd_bus *bus = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *path;
        double *v = g_new(double, calls);
        int r;

        r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_address(bus, address);
        if (r >= 0)
                r = sd_bus_set_bus_client(bus, 1);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0) {
                printf("E libvirt-dbus: connect to %s: %s\n", address, strerror(-r));
                return;
        }
        r = sd_bus_call_method(bus, "org.libvirt", "/org/libvirt/QEMU", "org.libvirt.Connect", "DomainLookupByName",
                               &e, &reply, "s", domain);
        if (r < 0) {
                printf("E libvirt-dbus: DomainLookupByName: %s\n", e.message ? e.message : strerror(-r));
                return;
        }
        sd_bus_message_read(reply, "o", &path);
        path = g_strdup(path);
        sd_bus_message_unref(reply);
        for (int i = 0; i < calls + 20; i++) {
                int active = 0;
                double t = qm_bench_now_us();
                r = sd_bus_get_property_trivial(bus, "org.libvirt", path, "org.libvirt.Domain", "Active", &e, 'b',
                                                &active);
                if (r < 0) {
                        printf("E libvirt-dbus: Get(Active): %s\n", e.message ? e.message : strerror(-r));
                        return;
                }
                if (i >= 20)
                        v[i - 20] = qm_bench_now_us() - t;
        }
        report("libvirt.dbus_get_active", v, calls);
        sd_bus_flush_close_unref(bus);
}

int main(int argc, char **argv) {
        const char *uri = "qemu:///session", *emulator = "/usr/bin/qemu-system-x86_64", *dbus = NULL;
        int starts = 10, calls = 1000, domains = 8, lpid = 0;
        char name[64];

        for (int i = 1; i < argc; i++) {
#define OPT(s) (strcmp(argv[i], s) == 0 && i + 1 < argc)
                if (OPT("--uri"))
                        uri = argv[++i];
                else if (OPT("--emulator"))
                        emulator = argv[++i];
                else if (OPT("--starts"))
                        starts = atoi(argv[++i]);
                else if (OPT("--calls"))
                        calls = atoi(argv[++i]);
                else if (OPT("--domains"))
                        domains = atoi(argv[++i]);
                else if (OPT("--libvirtd-pid"))
                        lpid = atoi(argv[++i]);
                else if (OPT("--dbus"))
                        dbus = argv[++i];
                else {
                        fprintf(stderr, "usage: see bench/qm-libvirt-bench.c\n");
                        return 2;
                }
#undef OPT
        }
        if (starts < 1 || calls < 1 || domains < 1)
                return 2;
        setvbuf(stdout, NULL, _IOLBF, 0);
        virConnectPtr conn = virConnectOpen(uri);
        if (!conn)
                fail("virConnectOpen");

        double *st = g_new(double, starts), *de = g_new(double, starts), *rtt = g_new(double, calls);
        /* warm-up, not counted: the first start of a fresh libvirtd probes
         * QEMU's capabilities (several seconds) */
        destroy(start(conn, "bench-warmup", emulator));
        for (int i = 0; i < starts; i++) {
                snprintf(name, sizeof(name), "bench-start-%d", i);
                double t = qm_bench_now_us();
                virDomainPtr d = start(conn, name, emulator);
                st[i] = qm_bench_now_us() - t;
                t = qm_bench_now_us();
                destroy(d);
                de[i] = qm_bench_now_us() - t;
        }
        report("libvirt.start", st, starts);
        report("libvirt.destroy", de, starts);

        /* monitor round trip, and libvirt-dbus on the same domain */
        virDomainPtr d = start(conn, "bench-rtt", emulator);
        for (int i = 0; i < calls + 20; i++) {
                char *result = NULL;
                double t = qm_bench_now_us();
                if (virDomainQemuMonitorCommand(d, "{\"execute\":\"query-status\"}", &result, 0) < 0)
                        fail("virDomainQemuMonitorCommand");
                if (i >= 20)
                        rtt[i - 20] = qm_bench_now_us() - t;
                free(result);
        }
        report("libvirt.qmp", rtt, calls);
        if (dbus)
                dbus_property(dbus, "bench-rtt", calls);
        destroy(d);

        /* libvirtd's memory per running domain */
        if (lpid > 0) {
                virDomainPtr *ds = g_new(virDomainPtr, domains);
                double before = rss_kib(lpid), after;
                for (int i = 0; i < domains; i++) {
                        snprintf(name, sizeof(name), "bench-rss-%d", i);
                        ds[i] = start(conn, name, emulator);
                }
                after = rss_kib(lpid);
                printf("V libvirt.rss_kib_before %.0f\n", before);
                printf("V libvirt.rss_kib_per_running %.1f\n", (after - before) / domains);
                for (int i = 0; i < domains; i++)
                        destroy(ds[i]);
                g_free(ds);
        }
        virConnectClose(conn);
        return 0;
}
