/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qmachined: options, bus connection, name, main loop, signals. */
#include <errno.h>
#include <glib-unix.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "bus-glib.h"
#include "daemon.h"
#include "manager-dbus.h"
#include "names.h"

typedef struct {
        gboolean system;
        gboolean session;
        char *bus_address;
        char *state_dir;
        char *runtime_dir;
        char *log_dir;
        char *default_binary;
        gint max_machines;
        gint max_pending_calls;
        gint max_console_clients;
        gint max_waiters;
        gint max_qmp_arguments;
} Options;

static gboolean parse_options(int *argc, char ***argv, Options *o) {
        GOptionEntry entries[] = {
                { "system", 0, 0, G_OPTION_ARG_NONE, &o->system, "Serve on the system bus (default)", NULL },
                { "session", 0, 0, G_OPTION_ARG_NONE, &o->session, "Serve on the session bus", NULL },
                { "bus-address", 0, 0, G_OPTION_ARG_STRING, &o->bus_address, "Serve on the bus at ADDRESS",
                  "ADDRESS" },
                { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &o->state_dir, "Persistent state", "DIR" },
                { "runtime-dir", 0, 0, G_OPTION_ARG_FILENAME, &o->runtime_dir, "Sockets of running VMs", "DIR" },
                { "log-dir", 0, 0, G_OPTION_ARG_FILENAME, &o->log_dir, "QEMU logs", "DIR" },
                { "default-binary", 0, 0, G_OPTION_ARG_STRING, &o->default_binary,
                  "QEMU binary for machines whose config names none", "PATH" },
                { "max-machines", 0, 0, G_OPTION_ARG_INT, &o->max_machines, "Machines in total (1024)", "N" },
                { "max-pending-calls", 0, 0, G_OPTION_ARG_INT, &o->max_pending_calls,
                  "Calls one client may have waiting for an answer (256)", "N" },
                { "max-console-clients", 0, 0, G_OPTION_ARG_INT, &o->max_console_clients,
                  "Console connections per machine (16)", "N" },
                { "max-waiters", 0, 0, G_OPTION_ARG_INT, &o->max_waiters,
                  "WaitEvent callers per machine (1024)", "N" },
                { "max-qmp-arguments", 0, 0, G_OPTION_ARG_INT, &o->max_qmp_arguments,
                  "Bytes of Qmp/Command arguments (1048576)", "N" },
                { NULL },
        };
        g_autoptr(GOptionContext) ctx = g_option_context_new("- run QEMU virtual machines as a D-Bus service");
        g_autoptr(GError) err = NULL;

        o->max_machines = 1024;
        o->max_pending_calls = 256;
        o->max_console_clients = 16;
        o->max_waiters = 1024;
        o->max_qmp_arguments = 1024 * 1024;
        g_option_context_add_main_entries(ctx, entries, NULL);
        if (!g_option_context_parse(ctx, argc, argv, &err)) {
                g_printerr("qmachined: %s\n", err->message);
                return FALSE;
        }
        if (o->system + o->session + (o->bus_address != NULL) > 1) {
                g_printerr("qmachined: --system, --session and --bus-address exclude each other\n");
                return FALSE;
        }
        if (o->max_machines <= 0 || o->max_waiters <= 0 || o->max_qmp_arguments <= 0 ||
            o->max_pending_calls <= 0 || o->max_console_clients <= 0) {
                g_printerr("qmachined: limits must be positive\n");
                return FALSE;
        }
        return TRUE;
}

static char *default_dir(gboolean session, const char *system_dir, const char *(*xdg)(void),
                         const char *sub) {
        if (!session)
                return g_strdup(system_dir);
        return g_build_filename(xdg(), "qmachined", sub, NULL);
}

static const char *xdg_state_dir(void) {
        const char *s = g_getenv("XDG_STATE_HOME");
        static char *fallback;
        if (s && *s)
                return s;
        if (!fallback)
                fallback = g_build_filename(g_get_home_dir(), ".local", "state", NULL);
        return fallback;
}

static char *find_default_binary(void) {
        char *path = g_find_program_in_path("qemu-system-x86_64");
        return path ? path : g_strdup("qemu-system-x86_64");
}

static int open_bus(const Options *o, sd_bus **out) {
        g_autoptr(sd_bus) bus = NULL;
        int r;

        if (o->session)
                return sd_bus_open_user(out);
        if (!o->bus_address)
                return sd_bus_open_system(out);
        r = sd_bus_new(&bus);
        if (r < 0)
                return r;
        r = sd_bus_set_address(bus, o->bus_address);
        if (r < 0)
                return r;
        r = sd_bus_set_bus_client(bus, 1);
        if (r < 0)
                return r;
        r = sd_bus_start(bus);
        if (r < 0)
                return r;
        *out = g_steal_pointer(&bus);
        return 0;
}

static gboolean on_quit_signal(gpointer data) {
        g_message("terminating on signal; running VMs are left running");
        g_main_loop_quit(data);
        return G_SOURCE_CONTINUE;
}

static gboolean bus_lost;

/* Without the bus nobody can reach the VMs: exit with a failure, so that
 * the service manager (Restart=on-failure) starts us again. */
static void on_bus_lost(gpointer data) {
        g_warning("lost the D-Bus connection; exiting so that the service is restarted (VMs keep running)");
        bus_lost = TRUE;
        g_main_loop_quit(data);
}

/*
 * Each running VM takes 2 to 4 fds (QMP, console, pidfd, clients): the
 * usual soft limit of 1024 would run out long before --max-machines.
 * Take what the hard limit allows (LimitNOFILE= in the unit sets it).
 */
static void raise_fd_limit(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
                return;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                g_warning("cannot raise the fd limit to %llu: %s", (unsigned long long)rl.rlim_max,
                          g_strerror(errno));
}

int main(int argc, char **argv) {
        Options o = { 0 };
        QmDaemon d = { 0 };
        g_autoptr(sd_bus) bus = NULL;
        g_autoptr(Manager) mgr = NULL;
        g_autoptr(GMainLoop) loop = NULL;
        GSource *bus_source;
        int r;

        /* A write to a closed socket must be an error, not our death. */
        signal(SIGPIPE, SIG_IGN);
        if (!parse_options(&argc, &argv, &o))
                return 2;
        raise_fd_limit();

        d.state_dir = o.state_dir ? o.state_dir : default_dir(o.session, "/var/lib/qmachined", xdg_state_dir, NULL);
        d.runtime_dir = o.runtime_dir ? o.runtime_dir
                                      : default_dir(o.session, "/run/qmachined", g_get_user_runtime_dir, NULL);
        d.log_dir = o.log_dir ? o.log_dir : default_dir(o.session, "/var/log/qmachined", xdg_state_dir, "log");
        d.image_dir = g_build_filename(d.state_dir, "images", NULL);
        d.definitions_dir = g_build_filename(d.state_dir, "machines", NULL);
        d.default_binary = o.default_binary ? o.default_binary : find_default_binary();
        d.limits.max_machines = o.max_machines;
        d.limits.max_pending_calls = o.max_pending_calls;
        d.limits.max_console_clients = o.max_console_clients;
        d.limits.max_waiters = o.max_waiters;
        d.limits.max_qmp_arguments = o.max_qmp_arguments;
        if (g_mkdir_with_parents(d.state_dir, 0755) < 0 || g_mkdir_with_parents(d.runtime_dir, 0755) < 0 ||
            g_mkdir_with_parents(d.log_dir, 0750) < 0) {
                g_printerr("qmachined: cannot create the state, runtime or log directory: %s\n", g_strerror(errno));
                return 1;
        }

        r = open_bus(&o, &bus);
        if (r < 0) {
                g_printerr("qmachined: cannot connect to the bus: %s\n", g_strerror(-r));
                return 1;
        }
        d.bus = bus;
        d.calls = qm_calls_new(d.limits.max_pending_calls);
        d.auth = qm_auth_new(bus, o.session ? QM_AUTH_SESSION : QM_AUTH_POLKIT, d.calls);
        /* machined serves the system bus only; a session's VMs stay in the session's cgroup. */
        if (!o.session)
                d.registrar = qm_registrar_new(bus);
        loop = g_main_loop_new(NULL, FALSE);
        mgr = manager_new(&d);
        r = manager_export(mgr);
        if (r < 0) {
                g_printerr("qmachined: cannot export objects: %s\n", g_strerror(-r));
                return 1;
        }
        manager_restore(mgr);
        r = sd_bus_request_name(bus, QM_BUS_NAME, 0);
        if (r < 0) {
                g_printerr("qmachined: cannot own %s: %s\n", QM_BUS_NAME, g_strerror(-r));
                return 1;
        }
        bus_source = bus_glib_attach(bus, NULL, on_bus_lost, loop);
        g_unix_signal_add(SIGTERM, on_quit_signal, loop);
        g_unix_signal_add(SIGINT, on_quit_signal, loop);

        g_main_loop_run(loop);

        g_clear_pointer(&mgr, manager_free);
        qm_auth_free(d.auth);
        qm_registrar_free(d.registrar);
        qm_calls_free(d.calls);
        sd_bus_flush(bus);
        g_source_destroy(bus_source);
        g_source_unref(bus_source);
        g_free(o.bus_address);
        g_free(d.state_dir);
        g_free(d.runtime_dir);
        g_free(d.log_dir);
        g_free(d.image_dir);
        g_free(d.definitions_dir);
        g_free(d.default_binary);
        return bus_lost ? 1 : 0;
}
