/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Key combos ("ctrl-alt-delete", "shift-a") to QMP send-key arguments. */
#pragma once

#include <json-glib/json-glib.h>

#include "errors.h"

#define QM_KEYS_MAX_HOLD_MS 10000
#define QM_KEYS_MAX_PER_COMBO 16
/* Combos in one SendKey call. */
#define QM_KEYS_MAX_COMBOS 256
#define QM_KEYS_MAX_COMBO_LENGTH 256

gboolean qm_key_is_valid(const char *qcode);

/* {"keys": [{"type": "qcode", "data": …}, …], "hold-time": @hold_ms}
 * ("hold-time" left out when 0: QEMU's default); NULL and InvalidArgs
 * naming the bad key otherwise. */
JsonNode *qm_keys_parse_combo(const char *combo, guint hold_ms, QmError **error);
