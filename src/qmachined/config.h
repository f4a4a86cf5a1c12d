/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Machine configuration: the a{sv} of CreateMachine, validated. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>
#include <sys/types.h>

#include "errors.h"

#define QM_CONFIG_MAX_NICS 32
#define QM_CONFIG_MAX_CONSOLE_INDEX 3   /* QEMU has 4 serial ports */
#define QM_CONFIG_MAX_QMP_TIMEOUT 86400.0
#define QM_CONFIG_MAX_TEXT (64 * 1024)  /* description, a single string */
#define QM_CONFIG_MAX_STRV 4096         /* entries of args, wrapper */
#define QM_CONFIG_MAX_FORWARD_PORTS 64  /* entries of forward-ports */
/* The user QEMU runs as in machines root created, unless `user` says. */
#define QM_DEFAULT_USER "qmachine"

typedef struct {
        char *binary;         /* NULL: the daemon's default */
        char **args;
        char **wrapper;
        char *machine;        /* NULL: QEMU's default */
        gboolean qmp;
        gboolean console;
        char *console_device; /* NULL: -serial chardev:console */
        guint32 console_index;
        double qmp_timeout;
        gboolean persistent;
        char *uuid;
        char *incoming;
        guint32 nics;
        char *description;
        char *user;           /* NULL: the owner's default (qm_config_effective_user) */
        gboolean sandbox;
        GArray *forward_ports; /* guint16 guest TCP ports of NIC 0, distinct, non-zero */
        gboolean guest_agent;  /* a virtio-serial port for the QEMU guest agent */
        gboolean autostart;    /* launched when the daemon first starts after a host boot */
        /* Not a key: the uid that created the machine (its Owner). Set by
         * the daemon, never by a caller; kept in definitions and records. */
        uid_t owner;
} QmConfig;

QmConfig *qm_config_new(void);
void qm_config_free(QmConfig *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmConfig, qm_config_free)

/* Validate an a{sv}: unknown keys, wrong types and bad values give
 * InvalidArgs naming the key. A missing uuid gets a random one. */
QmConfig *qm_config_from_variant(GVariant *asv, QmError **error);

/* The Config property: the keys that are set (an unset string, e.g.
 * binary or user, is left out), so it can be given back to CreateMachine
 * or UpdateMachine unchanged. */
GVariant *qm_config_to_variant(const QmConfig *c);

/* The config as a JSON object of the keys that are set, and back (with
 * the same validation as qm_config_from_variant). */
JsonNode *qm_config_to_json(const QmConfig *c);
QmConfig *qm_config_from_json(JsonNode *node, QmError **error);

/* CloneMachine: @base's config with @overrides (an a{sv}) applied; a new
 * random uuid unless the overrides give one. Validated like a new config. */
QmConfig *qm_config_clone(const QmConfig *base, GVariant *overrides, QmError **error);

/* UpdateMachine: @base with @overrides applied, keeping its uuid and
 * owner unless overridden; an empty value ("", an empty array) removes
 * the key, so it takes its default. Validated like a new config. */
QmConfig *qm_config_update(const QmConfig *base, GVariant *overrides, QmError **error);

/* The user QEMU runs as: the `user` key, else the owner's default
 * (the system user "qmachine" for machines of root, the owner's own uid
 * as a decimal string otherwise). */
char *qm_config_effective_user(const QmConfig *c);

/* MAC of NIC @index: locally administered unicast, derived from the UUID. */
char *qm_config_mac_address(const QmConfig *c, guint index);
