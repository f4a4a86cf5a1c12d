/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Key combos (SendKey): the input is a hold time (two bytes, big endian)
 * and the combo as D-Bus gives it (valid UTF-8, no NUL). Either an
 * InvalidArgs error with a message fit for D-Bus, or send-key arguments
 * whose keys are the combo's parts in order, each a valid qcode, 1 to
 * QM_KEYS_MAX_PER_COMBO of them, with the hold time when not 0.
 */
#include <string.h>

#include "fuzz-common.h"
#include "json-util.h"
#include "keys.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        fuzz_init_logging(TRUE);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        g_autofree char *combo = NULL;
        g_auto(GStrv) parts = NULL;
        g_autoptr(JsonNode) args = NULL;
        g_autoptr(QmError) e = NULL;
        g_autofree char *text = NULL;
        JsonObject *obj;
        JsonArray *keys;
        guint hold;

        if (size < 2)
                return 0;
        hold = data[0] << 8 | data[1];
        combo = g_strndup((const char *)data + 2, size - 2);
        if (!fuzz_text_ok(combo, size - 2))
                return 0; /* D-Bus refuses such strings before we see them */
        args = qm_keys_parse_combo(combo, hold, &e);
        if (!args) {
                fuzz_assert(e && strcmp(e->name, QM_ERROR_INVALID_ARGS) == 0, "refused without InvalidArgs");
                fuzz_assert(fuzz_text_ok(e->message, -1), "error message not valid UTF-8");
                return 0;
        }
        fuzz_assert(!e, "an error with a result");
        fuzz_assert(hold <= QM_KEYS_MAX_HOLD_MS, "hold time %u accepted", hold);
        text = qm_json_to_string(args);
        fuzz_assert(qm_json_check(text, NULL), "arguments are not valid JSON: %s", text);
        fuzz_assert(JSON_NODE_HOLDS_OBJECT(args), "arguments are not an object");
        obj = json_node_get_object(args);
        fuzz_assert(qm_json_get_int(obj, "hold-time", 0) == hold, "hold-time is not %u: %s", hold, text);
        fuzz_assert(json_object_get_size(obj) == (hold ? 2u : 1u), "unexpected members: %s", text);
        fuzz_assert(JSON_NODE_HOLDS_ARRAY(json_object_get_member(obj, "keys")), "keys is not an array: %s", text);
        keys = json_object_get_array_member(obj, "keys");
        parts = g_strsplit(combo, "-", -1);
        fuzz_assert(json_array_get_length(keys) == g_strv_length(parts), "%u keys for '%s'",
                    json_array_get_length(keys), combo);
        fuzz_assert(g_strv_length(parts) >= 1 && g_strv_length(parts) <= QM_KEYS_MAX_PER_COMBO, "%u keys accepted",
                    g_strv_length(parts));
        for (guint i = 0; i < json_array_get_length(keys); i++) {
                JsonNode *k = json_array_get_element(keys, i);
                JsonObject *ko = JSON_NODE_HOLDS_OBJECT(k) ? json_node_get_object(k) : NULL;
                const char *qcode = qm_json_get_string(ko, "data", NULL);
                fuzz_assert(g_strcmp0(qm_json_get_string(ko, "type", NULL), "qcode") == 0, "key %u: %s", i, text);
                fuzz_assert(qcode && qm_key_is_valid(qcode), "key %u is not a qcode: %s", i, text);
                fuzz_assert(strcmp(qcode, parts[i]) == 0, "key %u is not '%s': %s", i, parts[i], text);
        }
        return 0;
}
