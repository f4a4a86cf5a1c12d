/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A GSource over the sd-bus fd. We chose this over wrapping an sd_event loop:
 * the daemon's own timers and fd watches are all GLib, so one loop model is
 * simpler than two nested ones, and sd_bus_enqueue_for_read() still works
 * because a queued message makes sd_bus_get_timeout() return 0.
 *
 * The three traps (see TESTING.md) and how this file avoids them:
 *  1. sd_bus_get_events() stops asking for POLLIN while messages sit in the
 *     read queue; only the timeout says "dispatch now" -> prepare() honours
 *     sd_bus_get_timeout() and reports ready when it has passed.
 *  2. The timeout also carries async call deadlines -> the same code path.
 *  3. g_source_modify_unix_fd() wakes the context -> only call it when the
 *     wanted events actually changed.
 */
#include <poll.h>

#include "bus-glib.h"

/* How many messages one dispatch handles before letting other sources run. */
#define BUS_DISPATCH_BATCH 64

typedef struct {
        GSource source;
        sd_bus *bus;
        gpointer fd_tag;
        GIOCondition events;
        void (*on_disconnect)(gpointer);
        gpointer userdata;
        gboolean disconnected;
} BusSource;

static GIOCondition bus_condition(sd_bus *bus) {
        int e = sd_bus_get_events(bus);
        GIOCondition c = 0;

        if (e < 0)
                return 0;
        if (e & POLLIN)
                c |= G_IO_IN;
        if (e & POLLOUT)
                c |= G_IO_OUT;
        return c;
}

static gboolean bus_source_prepare(GSource *source, gint *timeout) {
        BusSource *s = (BusSource *)source;
        GIOCondition c = bus_condition(s->bus);
        uint64_t until;
        gint64 now;

        if (c != s->events) {
                g_source_modify_unix_fd(source, s->fd_tag, c);
                s->events = c;
        }

        if (sd_bus_get_timeout(s->bus, &until) < 0 || until == UINT64_MAX) {
                *timeout = -1;
                return FALSE;
        }
        now = g_get_monotonic_time(); /* CLOCK_MONOTONIC µs, like sd-bus */
        if ((gint64)until <= now) {
                *timeout = 0;
                return TRUE;
        }
        *timeout = (gint)MIN((until - now + 999) / 1000, (uint64_t)G_MAXINT);
        return FALSE;
}

static gboolean bus_source_check(GSource *source) {
        BusSource *s = (BusSource *)source;
        uint64_t until;

        if (g_source_query_unix_fd(source, s->fd_tag) != 0)
                return TRUE;
        return sd_bus_get_timeout(s->bus, &until) >= 0 && until != UINT64_MAX &&
               (gint64)until <= g_get_monotonic_time();
}

static gboolean bus_source_dispatch(GSource *source, GSourceFunc cb, gpointer data) {
        BusSource *s = (BusSource *)source;

        for (int i = 0; i < BUS_DISPATCH_BATCH; i++) {
                int r = sd_bus_process(s->bus, NULL);
                if (r == 0)
                        break;
                if (r < 0) {
                        if (!s->disconnected) {
                                s->disconnected = TRUE;
                                g_warning("D-Bus connection failed: %s", g_strerror(-r));
                                if (s->on_disconnect)
                                        s->on_disconnect(s->userdata);
                        }
                        return G_SOURCE_REMOVE;
                }
        }
        return G_SOURCE_CONTINUE;
}

static void bus_source_finalize(GSource *source) {
        BusSource *s = (BusSource *)source;
        sd_bus_unref(s->bus);
}

static GSourceFuncs bus_source_funcs = {
        .prepare = bus_source_prepare,
        .check = bus_source_check,
        .dispatch = bus_source_dispatch,
        .finalize = bus_source_finalize,
};

GSource *bus_glib_attach(sd_bus *bus, GMainContext *context,
                         void (*on_disconnect)(gpointer), gpointer userdata) {
        GSource *source = g_source_new(&bus_source_funcs, sizeof(BusSource));
        BusSource *s = (BusSource *)source;

        s->bus = sd_bus_ref(bus);
        s->events = bus_condition(bus);
        s->fd_tag = g_source_add_unix_fd(source, sd_bus_get_fd(bus), s->events);
        s->on_disconnect = on_disconnect;
        s->userdata = userdata;
        g_source_set_name(source, "sd-bus");
        /* GLib blocks a source that cannot recurse while it dispatches:
         * its fd leaves the poll set and comes back, and each of those
         * wakes the context (two eventfd writes and a spurious loop
         * iteration per dispatch). This daemon never runs a nested loop. */
        g_source_set_can_recurse(source, TRUE);
        g_source_attach(source, context);
        return source;
}
