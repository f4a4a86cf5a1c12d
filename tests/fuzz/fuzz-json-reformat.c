/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The JSON reformatter (json-reformat.c) that qmachinectl prints QEMU's
 * text with:
 *  - it accepts exactly what the strict check (qm_json_check_len) accepts,
 *    in both layouts, and writes valid UTF-8 without NUL;
 *  - compact and pretty output parse (json-glib) to the same tree as the
 *    input; compact(pretty(x)) == compact(x) == qm_json_compact(x), and
 *    each layout is a fixed point;
 *  - on json-glib's own output (whatever numbers json-glib can print) it
 *    is json-glib to the byte: compact unchanged, pretty as json-glib's
 *    pretty generator, so qmachinectl's output only changed where
 *    json-glib got QEMU's numbers or strings wrong.
 */
#include <string.h>

#include "event-match.h"
#include "fuzz-common.h"
#include "json-reformat.h"
#include "json-util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        fuzz_init_logging(TRUE);
        return 0;
}

static char *reformat(const char *text, QmJsonLayout layout) {
        return qm_json_reformat(text, strlen(text), layout);
}

static void same_tree(JsonNode *tree, const char *text, const char *what) {
        g_autoptr(GError) err = NULL;
        g_autoptr(JsonNode) again = qm_json_parse(text, -1, &err);

        fuzz_assert(again, "%s output refused: %s: %.200s", what, err->message, text);
        fuzz_assert(qm_json_equal(tree, again), "%s output is another tree: %.200s", what, text);
}

/* json-glib's text of @tree, laid out again, is json-glib's text. */
static void check_json_glib_layout(JsonNode *tree) {
        g_autofree char *glib = qm_json_generate(tree, FALSE);
        g_autofree char *glib_pretty = qm_json_generate(tree, TRUE);
        g_autofree char *compact = NULL;
        g_autofree char *pretty = NULL;

        /* json-glib 1.6 prints 1e400 as "inf.0": no JSON to lay out */
        if (!qm_json_check(glib, NULL))
                return;
        compact = reformat(glib, QM_JSON_LAYOUT_COMPACT);
        pretty = reformat(glib, QM_JSON_LAYOUT_PRETTY);
        fuzz_assert(compact && strcmp(compact, glib) == 0, "json-glib's compact text changed: %.200s", glib);
        fuzz_assert(pretty && strcmp(pretty, glib_pretty) == 0, "pretty is not json-glib's: %.200s / %.200s",
                    pretty ? pretty : "(null)", glib_pretty);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *text = (const char *)data;
        g_autofree char *compact = qm_json_reformat(text, size, QM_JSON_LAYOUT_COMPACT);
        g_autofree char *pretty = qm_json_reformat(text, size, QM_JSON_LAYOUT_PRETTY);
        g_autofree char *compact_of_pretty = NULL;
        g_autofree char *pretty_of_pretty = NULL;
        g_autofree char *compact_of_compact = NULL;
        g_autofree char *raw_compact = NULL;
        g_autoptr(JsonNode) tree = NULL;
        gboolean ok = qm_json_check_len(text, size, NULL);

        fuzz_assert(!compact == !ok, "compact %s what the check %s", compact ? "took" : "refused",
                    ok ? "accepts" : "refuses");
        fuzz_assert(!pretty == !ok, "pretty %s what the check %s", pretty ? "took" : "refused",
                    ok ? "accepts" : "refuses");
        if (!ok)
                return 0;
        fuzz_assert(fuzz_text_ok(compact, -1) && fuzz_text_ok(pretty, -1), "output not valid UTF-8");
        fuzz_assert(strlen(compact) <= size, "compact output longer than the input");

        compact_of_pretty = reformat(pretty, QM_JSON_LAYOUT_COMPACT);
        pretty_of_pretty = reformat(pretty, QM_JSON_LAYOUT_PRETTY);
        compact_of_compact = reformat(compact, QM_JSON_LAYOUT_COMPACT);
        raw_compact = qm_json_compact(text, size);
        fuzz_assert(compact_of_pretty && strcmp(compact_of_pretty, compact) == 0,
                    "compact(pretty(x)) != compact(x)");
        fuzz_assert(pretty_of_pretty && strcmp(pretty_of_pretty, pretty) == 0, "pretty is no fixed point");
        fuzz_assert(compact_of_compact && strcmp(compact_of_compact, compact) == 0,
                    "compact is no fixed point");
        fuzz_assert(strcmp(raw_compact, compact) == 0, "compact is not qm_json_compact's: %.200s", compact);

        tree = qm_json_parse(text, size, NULL);
        fuzz_assert(tree, "json-glib refused what the check accepted");
        same_tree(tree, compact, "compact");
        same_tree(tree, pretty, "pretty");
        check_json_glib_layout(tree);
        return 0;
}
