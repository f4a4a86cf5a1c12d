/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "keys.h"

/* QEMU's QKeyCode names (qapi/ui.json). */
static const char *const qcodes[] = {
        "unmapped", "pause", "ro", "kp_comma", "kp_equals", "power", "hiragana", "henkan", "yen", "sleep",
        "wake", "audionext", "audioprev", "audiostop", "audioplay", "audiomute", "volumeup", "volumedown",
        "mediaselect", "mail", "calculator", "computer", "ac_home", "ac_back", "ac_forward", "ac_refresh",
        "ac_bookmarks", "muhenkan", "katakanahiragana", "lang1", "lang2", "f13", "f14", "f15", "f16", "f17",
        "f18", "f19", "f20", "f21", "f22", "f23", "f24", "shift", "shift_r", "alt", "alt_r", "ctrl", "ctrl_r",
        "menu", "esc", "1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "minus", "equal", "backspace", "tab",
        "q", "w", "e", "r", "t", "y", "u", "i", "o", "p", "bracket_left", "bracket_right", "ret", "a", "s",
        "d", "f", "g", "h", "j", "k", "l", "semicolon", "apostrophe", "grave_accent", "backslash", "z", "x",
        "c", "v", "b", "n", "m", "comma", "dot", "slash", "asterisk", "spc", "caps_lock", "f1", "f2", "f3",
        "f4", "f5", "f6", "f7", "f8", "f9", "f10", "f11", "f12", "num_lock", "scroll_lock", "kp_divide",
        "kp_multiply", "kp_subtract", "kp_add", "kp_enter", "kp_decimal", "sysrq", "kp_0", "kp_1", "kp_2",
        "kp_3", "kp_4", "kp_5", "kp_6", "kp_7", "kp_8", "kp_9", "less", "home", "pgup", "pgdn", "end",
        "left", "up", "down", "right", "insert", "delete", "stop", "again", "props", "undo", "front", "copy",
        "open", "paste", "find", "cut", "lf", "help", "meta_l", "meta_r", "compose",
};

gboolean qm_key_is_valid(const char *qcode) {
        for (gsize i = 0; i < G_N_ELEMENTS(qcodes); i++)
                if (strcmp(qcodes[i], qcode) == 0)
                        return TRUE;
        return FALSE;
}

JsonNode *qm_keys_parse_combo(const char *combo, guint hold_ms, QmError **error) {
        g_auto(GStrv) keys = NULL;
        g_autoptr(JsonBuilder) b = NULL;
        guint n;

        if (strnlen(combo, QM_KEYS_MAX_COMBO_LENGTH + 1) > QM_KEYS_MAX_COMBO_LENGTH) {
                *error = qm_error_new(QM_ERROR_INVALID_ARGS, "a key combo is at most %d bytes long",
                                      QM_KEYS_MAX_COMBO_LENGTH);
                return NULL;
        }
        keys = g_strsplit(combo, "-", -1);
        b = json_builder_new_immutable();
        n = g_strv_length(keys);
        if (!*combo || n > QM_KEYS_MAX_PER_COMBO) {
                *error = qm_error_new(QM_ERROR_INVALID_ARGS, "key combo '%s' must name 1 to %d keys joined by '-'",
                                      combo, QM_KEYS_MAX_PER_COMBO);
                return NULL;
        }
        if (hold_ms > QM_KEYS_MAX_HOLD_MS) {
                *error = qm_error_new(QM_ERROR_INVALID_ARGS, "hold_ms must be at most %d", QM_KEYS_MAX_HOLD_MS);
                return NULL;
        }
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "keys");
        json_builder_begin_array(b);
        for (guint i = 0; i < n; i++) {
                if (!qm_key_is_valid(keys[i])) {
                        *error = qm_error_new(QM_ERROR_INVALID_ARGS,
                                              "unknown key '%s' in '%s' (QEMU qcode names: ctrl, alt, delete, "
                                              "shift, a, ret, f1, kp_1, …; '-' is 'minus')",
                                              keys[i], combo);
                        return NULL;
                }
                json_builder_begin_object(b);
                json_builder_set_member_name(b, "type");
                json_builder_add_string_value(b, "qcode");
                json_builder_set_member_name(b, "data");
                json_builder_add_string_value(b, keys[i]);
                json_builder_end_object(b);
        }
        json_builder_end_array(b);
        if (hold_ms > 0) {
                json_builder_set_member_name(b, "hold-time");
                json_builder_add_int_value(b, hold_ms);
        }
        json_builder_end_object(b);
        return json_builder_get_root(b);
}
