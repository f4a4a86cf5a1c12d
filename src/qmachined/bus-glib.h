/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Drive an sd_bus connection from a GMainContext. */
#pragma once

#include <glib.h>
#include <systemd/sd-bus.h>

/* Attach @bus to @context (NULL: the default one). @on_disconnect runs once
 * when the connection is lost. The source keeps a reference on @bus. */
GSource *bus_glib_attach(sd_bus *bus, GMainContext *context,
                         void (*on_disconnect)(gpointer), gpointer userdata);
