/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qmachinectl: JSON output written as text around QEMU's own JSON text.
 * json-glib keeps integers as int64 (QEMU's 18446744073709551615 would
 * come out as -1) and prints numbers its own way (1.50 as 1.5), so what
 * came from QEMU is never parsed into a tree to be printed: it is spliced
 * into the wrapper (seq, machine, ...) and the whole laid out again by
 * qm_json_reformat(), which copies every number and string as it is.
 */
#include "ctl.h"

#include <stdio.h>
#include <string.h>

#include "json-reformat.h"
#include "json-util.h"

char *ctl_json_layout(const char *json, bool pretty) {
        if (!json)
                return NULL;
        return qm_json_reformat(json, strlen(json), pretty ? QM_JSON_LAYOUT_PRETTY : QM_JSON_LAYOUT_COMPACT);
}

void ctl_json_append_node(GString *s, JsonNode *node) {
        g_autofree char *text = qm_json_to_string(node);

        g_string_append(s, text);
}

void ctl_json_append_string(GString *s, const char *value) {
        g_autoptr(JsonNode) node = json_node_init_string(json_node_alloc(), value);

        ctl_json_append_node(s, node);
}

void ctl_json_append_qemu(GString *s, const char *json) {
        g_autofree char *compact = ctl_json_layout(json, false);

        if (compact)
                g_string_append(s, compact);
        else
                ctl_json_append_string(s, json ? json : "");
}

void ctl_event_free(CtlEvent *e) {
        if (!e)
                return;
        g_free(e->json);
        g_free(e);
}

CtlEvent *ctl_event_new(uint64_t seq, const char *json) {
        CtlEvent *e = g_new0(CtlEvent, 1);

        e->seq = seq;
        e->json = g_strdup(json);
        return e;
}

void ctl_json_append_event(GString *s, const CtlEvent *e) {
        g_string_append_printf(s, "{\"seq\":%" G_GUINT64_FORMAT ",\"event\":", e->seq);
        ctl_json_append_qemu(s, e->json);
        g_string_append_c(s, '}');
}

void ctl_json_append_events(GString *s, GPtrArray *events) {
        g_string_append_c(s, '[');
        for (guint i = 0; i < events->len; i++) {
                if (i > 0)
                        g_string_append_c(s, ',');
                ctl_json_append_event(s, events->pdata[i]);
        }
        g_string_append_c(s, ']');
}

char *ctl_event_member(const CtlEvent *e, const char *member) {
        gsize len = strlen(e->json), start, value_len;
        g_autofree char *value = NULL;

        if (!qm_json_check_len(e->json, len, NULL) ||
            !qm_json_member_text(e->json, len, member, &start, &value_len))
                return NULL;
        value = g_strndup(e->json + start, value_len);
        return ctl_json_layout(value, false);
}

int ctl_output_json_text(const Ctl *c, const char *compact) {
        g_autofree char *text = ctl_json_layout(compact, c->output == CTL_OUTPUT_JSON_PRETTY);

        /* our own wrapper is always JSON; printed as built if not */
        printf("%s\n", text ? text : compact);
        return EXIT_OK;
}
