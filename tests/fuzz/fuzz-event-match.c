/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Event matching (event-match.h) and WaitEvent filters (events.h). The
 * input is an event JSON, optionally followed by a newline and a match
 * JSON. What event-match.h promises, checked:
 *  - a NULL match and a JSON null match any event;
 *  - an event matches itself used as a match (sub-dict semantics: every
 *    key of the match is in the event with a matching value);
 *  - qm_json_equal() is reflexive and symmetric, and equal values match;
 *  - a filter set answers what its filters say: empty matches all, a name
 *    must be equal unless "", the match as qm_event_match().
 */
#include <string.h>

#include "event-match.h"
#include "events.h"
#include "fuzz-common.h"
#include "json-util.h"

static JsonNode *parse(const char *text, gsize len) {
        return qm_json_parse(text, len, NULL);
}

static gboolean filters_say(const char *name, const char *match_json, const QmEvent *e) {
        g_autoptr(QmEventFilters) f = qm_event_filters_new();
        g_autoptr(QmError) error = NULL;

        if (!qm_event_filters_add(f, name, match_json, &error)) {
                fuzz_assert(error && fuzz_text_ok(error->message, -1), "a bad match without a valid message");
                return FALSE;
        }
        return qm_event_filters_match(f, e);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        fuzz_init_logging(TRUE);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *text = (const char *)data;
        const char *nl = memchr(text, '\n', size);
        gsize event_len = nl ? (gsize)(nl - text) : size;
        g_autoptr(JsonNode) event = parse(text, event_len);
        g_autoptr(JsonNode) match = NULL;
        g_autoptr(JsonNode) null = json_node_new(JSON_NODE_NULL);
        g_autoptr(QmEventFilters) empty = qm_event_filters_new();
        g_autofree char *match_text = NULL;
        g_autofree char *event_text = NULL;
        QmEvent e = { 0 };

        if (!event)
                return 0;
        fuzz_assert(qm_event_match(event, NULL), "a NULL match did not match");
        fuzz_assert(qm_event_match(event, null), "a JSON null match did not match");
        fuzz_assert(qm_json_equal(event, event), "qm_json_equal is not reflexive");
        fuzz_assert(qm_event_match(event, event), "an event does not match itself");

        if (nl) {
                match_text = g_strndup(nl + 1, size - event_len - 1);
                match = parse(match_text, strlen(match_text));
        }
        if (match) {
                gboolean eq = qm_json_equal(event, match);
                fuzz_assert(eq == qm_json_equal(match, event), "qm_json_equal is not symmetric");
                fuzz_assert(!eq || qm_event_match(event, match), "an equal match did not match");
                fuzz_assert(qm_event_match(match, match), "a match does not match itself");
        }

        /* Filters work on events as the daemon keeps them: objects. */
        if (!JSON_NODE_HOLDS_OBJECT(event))
                return 0;
        e.node = event;
        e.name = (char *)qm_json_get_string(json_node_get_object(event), "event", "");
        event_text = qm_json_to_string(event);
        fuzz_assert(qm_event_filters_match(empty, &e), "an empty filter set did not match");
        fuzz_assert(filters_say("", NULL, &e), "filter (\"\", NULL) did not match");
        fuzz_assert(filters_say(e.name, NULL, &e), "a filter on the event's own name did not match");
        if (qm_json_check(event_text, NULL))
                fuzz_assert(filters_say("", event_text, &e), "a filter of the event itself did not match");
        if (match_text) {
                gboolean says = filters_say("", match_text, &e);
                /* "" is no match: any event */
                gboolean want = !*match_text || (match && qm_event_match(event, match));
                fuzz_assert(says == want, "the filter says %d", says);
                fuzz_assert(filters_say(e.name, match_text, &e) == says, "a filter on its own name says otherwise");
        }
        return 0;
}
