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

/* An "as" argument as a NULL-terminated strv (never NULL), read in linear
 * time (sd-bus's read_strv() reallocates per item: quadratic on a huge
 * array); -E2BIG when it has more than @max items. */
int bus_message_read_strv_max(sd_bus_message *m, guint max, char ***out);
