/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qmachinectl migrate: to a URI (Migrate as it is), or the whole move to
 * another host's daemon (virsh migrate --live vm qemu+ssh://B/system):
 * PrepareIncoming there with this machine's config, Migrate here with a
 * progress bar from MigrationProgress, then the source is left migrated
 * (or removed), or, on failure, whatever was prepared there is removed.
 */
#include "ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Migrate's a{sv} from the command's options. */
static int append_migrate_options(sd_bus_message *m, const CtlOptions *o) {
        int r = sd_bus_message_open_container(m, 'a', "{sv}");

        if (r >= 0 && o->timeout_set)
                r = sd_bus_message_append(m, "{sv}", "timeout", "d", o->timeout);
        if (r >= 0 && o->offline)
                r = sd_bus_message_append(m, "{sv}", "offline", "b", 1);
        if (r >= 0 && o->cancel_after_set)
                r = sd_bus_message_append(m, "{sv}", "cancel-after", "d", o->cancel_after);
        if (r >= 0 && o->bandwidth_set)
                r = sd_bus_message_append(m, "{sv}", "bandwidth", "t", o->bandwidth);
        if (r >= 0 && o->downtime_limit_set)
                r = sd_bus_message_append(m, "{sv}", "downtime-limit", "t", o->downtime_limit);
        if (r >= 0 && o->auto_converge)
                r = sd_bus_message_append(m, "{sv}", "auto-converge", "b", 1);
        if (r >= 0 && o->postcopy)
                r = sd_bus_message_append(m, "{sv}", "postcopy", "b", 1);
        if (r >= 0 && o->postcopy_after_set)
                r = sd_bus_message_append(m, "{sv}", "postcopy-after", "d", o->postcopy_after);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

/* The D-Bus timeout of a Migrate call: its own limit plus a margin. */
static uint64_t migrate_call_usec(const CtlOptions *o) {
        double limit = o->timeout_set ? o->timeout : 3600;

        if (o->cancel_after_set && (limit <= 0 || o->cancel_after < limit))
                limit = o->cancel_after;
        return ctl_timeout_usec(limit <= 0 ? -1 : limit);
}

/* What the progress bar shows; the signal updates it. */
typedef struct {
        bool terminal;
        bool shown;
        bool done;
        int ret;
        sd_bus_error error;
} Progress;

static int on_progress(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        Progress *p = userdata;
        uint64_t transferred, remaining, total, downtime;
        g_autofree char *done = NULL, *all = NULL, *left = NULL;
        unsigned percent;

        if (!p->terminal || sd_bus_message_read(msg, "tttt", &transferred, &remaining, &total, &downtime) < 0)
                return 0;
        percent = total ? (unsigned)MIN(100, (total - MIN(remaining, total)) * 100 / total) : 0;
        done = ctl_format_size(transferred);
        all = ctl_format_size(total);
        left = ctl_format_size(remaining);
        /* one line, redrawn: a bar of 40 '#' at most */
        fprintf(stderr, "\r[%-40.*s] %3u%%  %s sent of %s, %s left, downtime ~%" PRIu64 " ms  ",
                (int)(percent * 40 / 100), "########################################", percent, done, all, left,
                downtime);
        p->shown = true;
        return 0;
}

static int on_migrate_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Progress *p = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        p->done = true;
        if (e)
                sd_bus_error_copy(&p->error, e);
        return 0;
}

/* Migrate the machine at @path to @uri, with progress; EXIT_OK on success. */
static int run_migrate(Ctl *c, const char *path, const char *uri) {
        g_autoptr(sd_bus_message) m = NULL;
        g_autoptr(sd_bus_slot) match = NULL, call = NULL;
        Progress p = { .terminal = isatty(STDERR_FILENO), .error = SD_BUS_ERROR_NULL };
        int r;

        r = sd_bus_match_signal(c->bus, &match, QM_BUS_NAME, path, QM_MACHINE_IFACE, "MigrationProgress",
                                on_progress, &p);
        if (r < 0)
                return ctl_error("cannot watch the migration's progress: %s", g_strerror(-r));
        r = sd_bus_message_new_method_call(c->bus, &m, QM_BUS_NAME, path, QM_MACHINE_IFACE, "Migrate");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", uri);
        if (r >= 0)
                r = append_migrate_options(m, &c->o);
        if (r >= 0)
                r = sd_bus_call_async(c->bus, &call, m, on_migrate_reply, &p, migrate_call_usec(&c->o));
        if (r < 0)
                return ctl_error("cannot call Migrate: %s", g_strerror(-r));
        while (!p.done) {
                r = sd_bus_process(c->bus, NULL);
                if (r < 0)
                        return ctl_error("lost the bus during the migration: %s", g_strerror(-r));
                if (r == 0 && (r = sd_bus_wait(c->bus, UINT64_MAX)) < 0 && r != -EINTR)
                        return ctl_error("lost the bus during the migration: %s", g_strerror(-r));
        }
        if (p.shown)
                fputc('\n', stderr);
        if (sd_bus_error_is_set(&p.error)) {
                r = ctl_bus_error(&p.error, 0);
                sd_bus_error_free(&p.error);
                return r;
        }
        return EXIT_OK;
}

/* "[user@]host" → "host" (the address the destination listens on). */
static char *host_part(const char *to) {
        const char *at = strrchr(to, '@');
        return g_strdup(at ? at + 1 : to);
}

/* The numeric address of HOST as this host reaches it: the daemon there
 * listens on it (it never resolves names itself). */
static int resolve_host(const char *to, char **ret) {
        g_autofree char *host = host_part(to);
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG };
        struct addrinfo *res = NULL;
        char buf[INET6_ADDRSTRLEN];
        int r;

        r = getaddrinfo(host, NULL, &hints, &res);
        if (r != 0)
                return ctl_error("cannot resolve %s: %s (give --listen-address)", host, gai_strerror(r));
        r = getnameinfo(res->ai_addr, res->ai_addrlen, buf, sizeof(buf), NULL, 0, NI_NUMERICHOST);
        freeaddrinfo(res);
        if (r != 0)
                return ctl_error("cannot resolve %s: %s (give --listen-address)", host, gai_strerror(r));
        *ret = g_strdup(buf);
        return EXIT_OK;
}

static bool is_local(const char *to) {
        g_autofree char *h = host_part(to);
        return strcmp(h, "localhost") == 0 || strcmp(h, "127.0.0.1") == 0 || strcmp(h, "::1") == 0;
}

/* The source machine's Config, copied into @m as an a{sv}. */
static int append_source_config(Ctl *c, const char *path, sd_bus_message *m) {
        g_autoptr(sd_bus_message) reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call_method(c->bus, QM_BUS_NAME, path, "org.freedesktop.DBus.Properties", "Get", &error, &reply,
                               "ss", QM_MACHINE_IFACE, "Config");
        if (r < 0) {
                r = ctl_bus_error(&error, r);
                sd_bus_error_free(&error);
                return r;
        }
        r = sd_bus_message_enter_container(reply, 'v', "a{sv}");
        if (r >= 0)
                r = sd_bus_message_copy(m, reply, true);
        if (r < 0)
                return ctl_error("cannot copy the machine's config: %s", g_strerror(-r));
        return EXIT_OK;
}

/* PrepareIncoming on @dest: the destination machine and the URI to
 * migrate to. */
static int prepare_destination(Ctl *c, Ctl *dest, const char *src_path, const char *name, char **ret_path,
                               char **ret_uri) {
        const CtlOptions *o = &c->o;
        g_autoptr(sd_bus_message) m = NULL, reply = NULL;
        g_autofree char *address = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *path, *uri;
        int r;

        if (o->listen_address)
                address = g_strdup(o->listen_address);
        else if (!is_local(o->to)) {
                r = resolve_host(o->to, &address);
                if (r != EXIT_OK)
                        return r;
        }
        r = sd_bus_message_new_method_call(dest->bus, &m, QM_BUS_NAME, QM_MANAGER_PATH, QM_MANAGER_IFACE,
                                           "PrepareIncoming");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", name);
        if (r < 0)
                return ctl_error("cannot build PrepareIncoming: %s", g_strerror(-r));
        r = append_source_config(c, src_path, m);
        if (r != EXIT_OK)
                return r;
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && address)
                r = sd_bus_message_append(m, "{sv}", "address", "s", address);
        if (r >= 0)
                r = sd_bus_message_append(m, "{sv}", "persistent", "b", o->persistent);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return ctl_error("cannot build PrepareIncoming: %s", g_strerror(-r));
        r = sd_bus_call(dest->bus, m, ctl_timeout_usec(0), &error, &reply);
        if (r < 0) {
                fprintf(stderr, "qmachinectl: the destination %s cannot take the machine:\n", o->to);
                r = ctl_bus_error(&error, r);
                sd_bus_error_free(&error);
                return r;
        }
        r = sd_bus_message_read(reply, "os", &path, &uri);
        if (r < 0)
                return ctl_error("bad reply to PrepareIncoming: %s", g_strerror(-r));
        *ret_path = g_strdup(path);
        *ret_uri = g_strdup(uri);
        return EXIT_OK;
}

/* After a failure: nothing of the machine may stay on the destination
 * (its daemon removes a failed incoming machine itself; this covers a
 * migration that never reached it). Best effort. */
static void clean_destination(Ctl *dest, const char *name) {
        g_autofree char *path = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;

        if (sd_bus_call_method(dest->bus, QM_BUS_NAME, QM_MANAGER_PATH, QM_MANAGER_IFACE, "GetMachine", &error,
                               NULL, "s", name) < 0) {
                sd_bus_error_free(&error);
                return;
        }
        if (ctl_machine_path(dest, name, &path) != EXIT_OK)
                return;
        (void)sd_bus_call_method(dest->bus, QM_BUS_NAME, path, QM_MACHINE_IFACE, "Kill", &error, NULL, "");
        sd_bus_error_free(&error);
        (void)sd_bus_call_method(dest->bus, QM_BUS_NAME, QM_MANAGER_PATH, QM_MANAGER_IFACE, "RemoveMachine",
                                 &error, NULL, "s", name);
        sd_bus_error_free(&error);
}

static int migrate_to_host(Ctl *c, const char *name) {
        const CtlOptions *o = &c->o;
        Ctl dest = { .ask_password = c->ask_password };
        g_autofree char *src_path = NULL, *state = NULL, *dest_path = NULL, *uri = NULL;
        const char *dname = o->dname ? o->dname : name;
        struct timespec t0, t1;
        int r;

        /* localhost: the same bus as the source, without ssh. */
        if (is_local(o->to)) {
                dest.host = c->host;
                dest.address = c->address;
                dest.session = c->session;
        } else {
                dest.host = o->to;
        }
        r = ctl_machine_path(c, name, &src_path);
        if (r == EXIT_OK)
                r = ctl_get_string_property(c, src_path, QM_MACHINE_IFACE, "State", &state);
        if (r != EXIT_OK)
                return r;
        if (strcmp(state, "running") != 0)
                return ctl_error("machine %s is %s: only a running machine migrates", name, state);
        r = ctl_connect(&dest);
        if (r != EXIT_OK)
                return r;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        r = prepare_destination(c, &dest, src_path, dname, &dest_path, &uri);
        if (r == EXIT_OK)
                r = run_migrate(c, src_path, uri);
        if (r != EXIT_OK) {
                if (dest_path)
                        clean_destination(&dest, dname);
                ctl_disconnect(&dest);
                fprintf(stderr, "qmachinectl: %s keeps running here\n", name);
                return r;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (o->undefine_source) {
                g_autoptr(sd_bus_message) reply = NULL;
                if (ctl_manager_call(c, "RemoveMachine", 0, &reply, "s", name) != EXIT_OK)
                        fprintf(stderr, "qmachinectl: the migration succeeded, but %s stays defined here\n",
                                name);
        }
        printf("%s runs on %s as %s (%.1f s)\n", name, o->to, dname,
                       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
        ctl_disconnect(&dest);
        return EXIT_OK;
}

int cmd_migrate(Ctl *c, int argc, char **argv) {
        g_autofree char *path = NULL;
        int r;

        if (c->o.to) {
                if (argc != 1)
                        return ctl_error("migrate NAME --to HOST takes no URI");
                return migrate_to_host(c, argv[0]);
        }
        if (argc != 2)
                return ctl_error("migrate needs a URI or --to HOST");
        r = ctl_machine_path(c, argv[0], &path);
        if (r != EXIT_OK)
                return r;
        return run_migrate(c, path, argv[1]);
}
