/* Method calls the daemon holds for later answers, counted per client,
 * so one client cannot pile up unbounded work. */
#pragma once

#include <glib.h>
#include <systemd/sd-bus.h>

typedef struct QmCalls QmCalls;

QmCalls *qm_calls_new(guint max_per_client);
void qm_calls_free(QmCalls *c);

/* < 0 with LimitExceeded in @error when @call's sender already has the
 * maximum of held calls; 0 otherwise. */
int qm_calls_admit(QmCalls *c, sd_bus_message *call, sd_bus_error *error);

/* Take a reference on @call and count it; release it exactly once. */
sd_bus_message *qm_calls_hold(QmCalls *c, sd_bus_message *call);
void qm_calls_release(QmCalls *c, sd_bus_message *call);

guint qm_calls_held(QmCalls *c, const char *sender);
