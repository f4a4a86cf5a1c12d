/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "guest-reply.h"
#include "json-util.h"

JsonNode *qm_guest_reply_return(JsonNode *response) {
        if (!response || !JSON_NODE_HOLDS_OBJECT(response))
                return NULL;
        return json_object_get_member(json_node_get_object(response), "return");
}

JsonObject *qm_guest_reply_return_object(JsonNode *response) {
        JsonNode *ret = qm_guest_reply_return(response);

        return ret && JSON_NODE_HOLDS_OBJECT(ret) ? json_node_get_object(ret) : NULL;
}

static gboolean get_bool(JsonObject *obj, const char *key) {
        JsonNode *n = obj ? json_object_get_member(obj, key) : NULL;
        return n && json_node_get_value_type(n) == G_TYPE_BOOLEAN && json_node_get_boolean(n);
}

static gboolean has_int(JsonObject *obj, const char *key) {
        JsonNode *n = obj ? json_object_get_member(obj, key) : NULL;
        return n && json_node_get_value_type(n) == G_TYPE_INT64;
}

gint64 qm_guest_reply_exec_pid(JsonObject *ret) {
        gint64 pid = qm_json_get_int(ret, "pid", -1);

        return pid > 0 ? pid : -1;
}

/* The base64 member @key, decoded as far as @max bytes go: only the
 * text that decodes to those is read, however long the guest made it. */
static GBytes *get_output(JsonObject *obj, const char *key, gsize max) {
        const char *b64 = qm_json_get_string(obj, key, "");
        gsize enc = MIN(strlen(b64), (max + 2) / 3 * 4);
        guchar *data = g_malloc(enc / 4 * 3 + 3);
        gint state = 0;
        guint save = 0;
        gsize len = g_base64_decode_step(b64, enc, data, &state, &save);

        return g_bytes_new_take(data, MIN(len, max));
}

static gint32 clamp32(gint64 v) {
        return (gint32)CLAMP(v, G_MININT32, G_MAXINT32);
}

gboolean qm_guest_reply_exec_status(JsonObject *ret, gsize max_output, QmGuestExecStatus *st,
                                    const char **error) {
        *st = (QmGuestExecStatus){ .exited = get_bool(ret, "exited") };
        if (!st->exited)
                return TRUE;
        if (has_int(ret, "exitcode"))
                st->code = clamp32(qm_json_get_int(ret, "exitcode", 0));
        else if (has_int(ret, "signal"))
                /* clamped before the minus: -G_MININT64 does not exist */
                st->code = clamp32(-CLAMP(qm_json_get_int(ret, "signal", 0), -G_MAXINT64, G_MAXINT64));
        else {
                *error = "The guest agent reported neither an exit code nor a signal";
                return FALSE;
        }
        st->out = get_output(ret, "out-data", max_output);
        st->err = get_output(ret, "err-data", max_output);
        return TRUE;
}

void qm_guest_exec_status_clear(QmGuestExecStatus *st) {
        g_clear_pointer(&st->out, g_bytes_unref);
        g_clear_pointer(&st->err, g_bytes_unref);
}

gint64 qm_guest_reply_file_handle(JsonNode *ret) {
        if (!ret || json_node_get_value_type(ret) != G_TYPE_INT64 || json_node_get_int(ret) < 0)
                return -1;
        return json_node_get_int(ret);
}

gint64 qm_guest_reply_file_written(JsonObject *ret) {
        return qm_json_get_int(ret, "count", -1);
}

GBytes *qm_guest_reply_file_read(JsonObject *ret, gsize max, gboolean *eof, const char **error) {
        const char *b64 = qm_json_get_string(ret, "buf-b64", "");
        gint64 count = qm_json_get_int(ret, "count", -1);
        guchar *data;
        gsize len = 0;

        /* The agent gives at most what we asked for. */
        if (count < 0 || (guint64)count > max) {
                *error = "its count is missing or out of range";
                return NULL;
        }
        if (strlen(b64) > (max / 3 + 1) * 4) {
                *error = "its buf-b64 is longer than the bytes asked for";
                return NULL;
        }
        data = g_base64_decode(b64, &len);
        if ((gint64)len != count) {
                g_free(data);
                *error = "its buf-b64 does not hold count bytes";
                return NULL;
        }
        *eof = get_bool(ret, "eof") || len == 0;
        return g_bytes_new_take(data, len);
}
