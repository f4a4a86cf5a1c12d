/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* QEMUMachine.event_match(): does a QMP event contain a match pattern? */
#pragma once

#include <json-glib/json-glib.h>

/*
 * Sub-dict matching, recursively: a NULL @match or a JSON null matches
 * anything; a JSON object matches an object that has every one of its keys
 * with matching values; any other value must equal the event's value.
 *   {"foo": null}          matches {"foo": {"bar": 1}} and {"foo": 5}
 *   {"foo": {"abc": null}} does not match {"foo": {"bar": 1}}
 *   {"foo": {"rab": 2}}    matches {"foo": {"bar": 1, "rab": 2}}
 */
gboolean qm_event_match(JsonNode *event, JsonNode *match);

/* JSON equality (numbers compare by value, 1 == 1.0). */
gboolean qm_json_equal(JsonNode *a, JsonNode *b);
