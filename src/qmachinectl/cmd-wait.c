/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qmachinectl wait --no-kill: wait for QEMU to exit without the API's
 * Wait, which kills QEMU when its timeout runs out. Here the timeout only
 * ends the waiting: exit 1, the machine left as it is. The State property
 * is read again on each PropertiesChanged of the machine, and at least
 * once a second in case a signal is lost.
 */
#include "ctl.h"

#include <errno.h>
#include <string.h>

#define RECHECK_USEC (1 * G_USEC_PER_SEC)

static bool still_runs(const char *state) {
        return strcmp(state, "starting") == 0 || strcmp(state, "running") == 0 ||
                strcmp(state, "stopping") == 0;
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        *(bool *)userdata = true;
        return 0;
}

/* EXIT_OK with *runs set, or an exit code. */
static int read_state(Ctl *c, const char *path, bool *runs) {
        g_autofree char *state = NULL;
        int r;

        r = ctl_get_string_property(c, path, QM_MACHINE_IFACE, "State", &state);
        if (r == EXIT_OK)
                *runs = still_runs(state);
        return r;
}

int ctl_wait_no_kill(Ctl *c, const char *name, double timeout) {
        g_autoptr(sd_bus_slot) slot = NULL;
        g_autofree char *path = NULL;
        bool changed = true, runs = true;
        uint64_t deadline = UINT64_MAX;
        int r;

        if (timeout == 0)
                timeout = 30; /* as Wait */
        if (timeout > 0 && timeout < 1e9)
                deadline = g_get_monotonic_time() + (uint64_t)(timeout * G_USEC_PER_SEC);
        r = ctl_machine_path(c, name, &path);
        if (r != EXIT_OK)
                return r;
        /* the match first, then the state: no change falls in between */
        r = sd_bus_match_signal(c->bus, &slot, QM_BUS_NAME, path, "org.freedesktop.DBus.Properties",
                                "PropertiesChanged", on_properties_changed, &changed);
        if (r < 0)
                return ctl_error("cannot watch %s: %s", name, g_strerror(-r));
        for (;;) {
                uint64_t now = g_get_monotonic_time();
                if (changed) {
                        changed = false;
                        r = read_state(c, path, &runs);
                        if (r != EXIT_OK)
                                return r;
                        if (!runs)
                                return EXIT_OK;
                }
                if (now >= deadline)
                        return ctl_error("%s still runs after %g s (left running: --no-kill)", name, timeout);
                r = sd_bus_process(c->bus, NULL);
                if (r < 0)
                        return ctl_error("lost the bus: %s", g_strerror(-r));
                if (r > 0)
                        continue;
                r = sd_bus_wait(c->bus, MIN(deadline - now, RECHECK_USEC));
                if (r < 0 && r != -EINTR)
                        return ctl_error("lost the bus: %s", g_strerror(-r));
                if (r == 0)
                        changed = true; /* a second without a signal: look again */
        }
}
