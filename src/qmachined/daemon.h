/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What every part of the daemon shares: the bus, directories, limits. */
#pragma once

#include <glib.h>
#include <systemd/sd-bus.h>

#include "auth.h"
#include "bus-util.h"
#include "registrar.h"

typedef struct {
        guint max_machines;
        guint max_pending_calls; /* held calls per client */
        guint max_console_clients;
        guint max_waiters;       /* WaitEvent callers per machine */
        gsize max_qmp_arguments; /* bytes of Qmp/Command arguments */
} QmLimits;

typedef struct {
        sd_bus *bus;
        QmAuth *auth;
        QmCalls *calls;
        QmRegistrar *registrar; /* systemd scopes and machined */
        char *state_dir;
        char *definitions_dir; /* <state>/machines */
        char *runtime_dir;
        char *log_dir;
        char *image_dir;
        char *default_binary;
        QmLimits limits;
} QmDaemon;
