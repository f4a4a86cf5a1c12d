/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Machine configs from JSON (definition files) and from a{sv}
 * (CreateMachine): every input is tried as both, a JSON text and a
 * serialized a{sv} (untrusted, then in normal form). A config that is
 * accepted must survive the round trips unchanged:
 *  config -> JSON text -> config -> JSON text    (a fixed point)
 *  config -> a{sv} (qm_config_to_variant) -> config -> a{sv}
 *  config -> CloneMachine with its own uuid      (the same config)
 * and what it gives out is fit for D-Bus.
 */
#include <string.h>

#include "config.h"
#include "fuzz-common.h"
#include "json-util.h"

static char *config_json_text(const QmConfig *c) {
        g_autoptr(JsonNode) j = qm_config_to_json(c);
        char *s = qm_json_to_string(j);

        fuzz_assert(fuzz_text_ok(s, -1), "config JSON is not valid UTF-8");
        fuzz_assert(qm_json_check(s, NULL), "config JSON does not pass the check: %s", s);
        return s;
}

static void check_error(QmError *e) {
        fuzz_assert(e && strcmp(e->name, QM_ERROR_INVALID_ARGS) == 0, "a refusal that is not InvalidArgs");
        fuzz_assert(fuzz_text_ok(e->message, -1), "error message not valid UTF-8");
}

static void check_round_trips(const QmConfig *c) {
        g_autofree char *text = config_json_text(c);
        /* Config as the property shows it: given back, it is the same. */
        g_autoptr(GVariant) full = g_variant_ref_sink(qm_config_to_variant(c));
        g_autoptr(GVariant) overrides = NULL;
        g_autoptr(GVariant) full2 = NULL;
        g_autoptr(GVariant) full3 = NULL;
        g_autoptr(QmConfig) updated = NULL;
        g_autoptr(JsonNode) node = NULL;
        g_autoptr(QmConfig) from_text = NULL;
        g_autoptr(QmConfig) from_variant = NULL;
        g_autoptr(QmConfig) clone = NULL;
        g_autoptr(QmError) e = NULL;
        g_autofree char *text2 = NULL;
        g_autofree char *clone_text = NULL;

        node = qm_json_parse(text, -1, NULL);
        fuzz_assert(node, "config JSON does not parse");
        from_text = qm_config_from_json(node, &e);
        fuzz_assert(from_text, "config JSON refused: %s: %.300s", e->message, text);
        text2 = config_json_text(from_text);
        fuzz_assert(strcmp(text, text2) == 0, "JSON round trip changed the config:\n%s\n%s", text, text2);

        from_variant = qm_config_from_variant(full, &e);
        fuzz_assert(from_variant, "its own a{sv} refused: %s", e->message);
        full2 = g_variant_ref_sink(qm_config_to_variant(from_variant));
        fuzz_assert(g_variant_equal(full, full2), "a{sv} round trip changed the config");

        /* UpdateMachine with the whole Config changes nothing. */
        updated = qm_config_update(c, full, &e);
        fuzz_assert(updated, "UpdateMachine with its own Config refused: %s", e->message);
        full3 = g_variant_ref_sink(qm_config_to_variant(updated));
        fuzz_assert(g_variant_equal(full, full3), "UpdateMachine with its own Config changed it");

        overrides = g_variant_ref_sink(g_variant_new_parsed("{'uuid': <%s>}", c->uuid));
        clone = qm_config_clone(c, overrides, &e);
        fuzz_assert(clone, "clone with its own uuid refused: %s", e->message);
        clone_text = config_json_text(clone);
        fuzz_assert(strcmp(text, clone_text) == 0, "clone changed the config:\n%s\n%s", text, clone_text);

        for (guint i = 0; i < c->nics; i++) {
                g_autofree char *mac = qm_config_mac_address(c, i);
                fuzz_assert(strlen(mac) == 17 && (g_ascii_xdigit_value(mac[1]) & 3) == 2, "MAC %s", mac);
        }
}

static void try_json(const char *text, gsize len) {
        g_autoptr(JsonNode) node = qm_json_parse(text, len, NULL);
        g_autoptr(QmConfig) c = NULL;
        g_autoptr(QmError) e = NULL;

        if (!node)
                return;
        c = qm_config_from_json(node, &e);
        if (!c) {
                check_error(e);
                return;
        }
        check_round_trips(c);
}

static void try_variant(const uint8_t *data, size_t size) {
        g_autoptr(GVariant) raw = g_variant_ref_sink(
                g_variant_new_from_data(G_VARIANT_TYPE("a{sv}"), data, size, FALSE, NULL, NULL));
        g_autoptr(GVariant) asv = g_variant_get_normal_form(raw);
        g_autoptr(QmConfig) c = NULL;
        g_autoptr(QmError) e = NULL;

        c = qm_config_from_variant(asv, &e);
        if (!c) {
                check_error(e);
                return;
        }
        check_round_trips(c);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        fuzz_init_logging(TRUE);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        try_json((const char *)data, size);
        try_variant(data, size);
        return 0;
}
