/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Convert between sd-bus message contents and GVariant. */
#pragma once

#include <glib.h>
#include <systemd/sd-bus.h>

/* Read the next complete value of @m into a new GVariant (not floating).
 * Returns a negative errno on a malformed message. */
int bus_message_read_gvariant(sd_bus_message *m, GVariant **out);

/* Append @v (any type D-Bus can carry) to @m. */
int bus_message_append_gvariant(sd_bus_message *m, GVariant *v);
