/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The guest agent's answers (guest-reply.c), as the guest could write
 * them: one response text, read as the answer to each command. Checked
 * against what the schema and the request allow: a pid > 0, a handle >=
 * 0; exec output at most the cap and a prefix of the full base64 decode
 * (all of it when the text is within the cap); an exit code or a
 * negative signal, clamped to int32; file data exactly count bytes,
 * within what was asked, and the decode of buf-b64.
 */
#include <string.h>

#include "fuzz-common.h"
#include "guest-reply.h"
#include "json-util.h"

/* Small caps, so that inputs reach them, and the daemon's. */
static const gsize exec_caps[] = { 16, 16u * 1024 * 1024 };
static const gsize read_caps[] = { 8, 1024u * 1024 };

static gboolean member_is(JsonObject *obj, const char *key, GType type) {
        JsonNode *n = obj ? json_object_get_member(obj, key) : NULL;
        return n && json_node_get_value_type(n) == type;
}

static void check_pid(JsonObject *ret) {
        gint64 pid = qm_guest_reply_exec_pid(ret);

        fuzz_assert(pid == -1 || (pid > 0 && pid == qm_json_get_int(ret, "pid", 0)), "pid %" G_GINT64_FORMAT,
                    pid);
}

static void check_handle(JsonNode *ret) {
        gint64 h = qm_guest_reply_file_handle(ret);

        fuzz_assert(h == -1 ||
                            (h >= 0 && json_node_get_value_type(ret) == G_TYPE_INT64 &&
                             json_node_get_int(ret) == h),
                    "handle %" G_GINT64_FORMAT, h);
}

/* @out against the full decode of the member @key. */
static void check_output(JsonObject *ret, const char *key, GBytes *out, gsize cap) {
        const char *b64 = qm_json_get_string(ret, key, "");
        gsize full_len = 0, len = g_bytes_get_size(out);
        g_autofree guchar *full = g_base64_decode(b64, &full_len);

        fuzz_assert(len <= cap, "%s: %zu bytes over the cap %zu", key, len, cap);
        fuzz_assert(len <= full_len && memcmp(g_bytes_get_data(out, NULL), full, len) == 0,
                    "%s: %zu bytes are not a prefix of the decode", key, len);
        if (strlen(b64) <= (cap + 2) / 3 * 4)
                fuzz_assert(len == MIN(full_len, cap), "%s: %zu bytes of %zu", key, len, full_len);
}

static gint32 expected_code(JsonObject *ret) {
        gint64 v;

        if (member_is(ret, "exitcode", G_TYPE_INT64))
                return (gint32)CLAMP(qm_json_get_int(ret, "exitcode", 0), G_MININT32, G_MAXINT32);
        v = qm_json_get_int(ret, "signal", 0);
        if (v <= -(gint64)G_MAXINT32)
                return G_MAXINT32;
        return (gint32)CLAMP(-v, G_MININT32, G_MAXINT32);
}

static void check_exec_status(JsonObject *ret, gsize cap) {
        g_auto(QmGuestExecStatus) st = { 0 };
        const char *why = NULL;
        gboolean ok = qm_guest_reply_exec_status(ret, cap, &st, &why);
        gboolean exited = member_is(ret, "exited", G_TYPE_BOOLEAN) &&
                json_object_get_boolean_member(ret, "exited");
        gboolean has_code = member_is(ret, "exitcode", G_TYPE_INT64) || member_is(ret, "signal", G_TYPE_INT64);

        fuzz_assert(st.exited == exited, "exited %d", st.exited);
        fuzz_assert(ok == (!exited || has_code), "verdict %d, exited %d, code %d", ok, exited, has_code);
        fuzz_assert(ok || (why && *why), "refused without a reason");
        if (!ok || !exited) {
                fuzz_assert(!st.out && !st.err, "output without an ended program");
                return;
        }
        fuzz_assert(st.code == expected_code(ret), "code %d", st.code);
        check_output(ret, "out-data", st.out, cap);
        check_output(ret, "err-data", st.err, cap);
}

static void check_written(JsonObject *ret) {
        fuzz_assert(qm_guest_reply_file_written(ret) == qm_json_get_int(ret, "count", -1), "count");
}

static void check_read(JsonObject *ret, gsize max) {
        const char *why = NULL;
        gboolean eof = FALSE;
        g_autoptr(GBytes) data = qm_guest_reply_file_read(ret, max, &eof, &why);
        const char *b64 = qm_json_get_string(ret, "buf-b64", "");
        g_autofree guchar *full = NULL;
        gsize full_len = 0, len;

        if (!data) {
                fuzz_assert(why && *why, "refused without a reason");
                return;
        }
        len = g_bytes_get_size(data);
        fuzz_assert(len <= max, "%zu bytes, %zu asked", len, max);
        fuzz_assert((gint64)len == qm_json_get_int(ret, "count", -1), "%zu bytes, not the count", len);
        full = g_base64_decode(b64, &full_len);
        fuzz_assert(full_len == len && memcmp(full, g_bytes_get_data(data, NULL), len) == 0,
                    "the data is not buf-b64's");
        fuzz_assert(eof ==
                            (len == 0 ||
                             (member_is(ret, "eof", G_TYPE_BOOLEAN) &&
                              json_object_get_boolean_member(ret, "eof"))),
                    "eof %d", eof);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        fuzz_init_logging(TRUE);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        g_autoptr(JsonNode) response = NULL;
        JsonNode *ret;
        JsonObject *obj;

        /* what the QMP client passes on: strict JSON text, no NUL */
        if (!fuzz_text_ok((const char *)data, size) ||
            !(response = qm_json_parse((const char *)data, size, NULL)))
                return 0;
        ret = qm_guest_reply_return(response);
        obj = qm_guest_reply_return_object(response);
        fuzz_assert(!obj || (ret && JSON_NODE_HOLDS_OBJECT(ret)), "an object that is not the return member");
        check_pid(obj);
        if (ret)
                check_handle(ret);
        check_written(obj);
        for (gsize i = 0; i < G_N_ELEMENTS(exec_caps); i++)
                check_exec_status(obj, exec_caps[i]);
        for (gsize i = 0; i < G_N_ELEMENTS(read_caps); i++)
                check_read(obj, read_caps[i]);
        return 0;
}
