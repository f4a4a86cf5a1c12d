/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* QEMUMachine.event_match() semantics, with the seed's own examples. */
#include <string.h>
#include "event-match.h"
#include "events.h"
#include "json-util.h"

static gboolean match(const char *event, const char *pattern) {
        g_autoptr(JsonNode) e = qm_json_parse(event, -1, NULL);
        g_autoptr(JsonNode) p = pattern ? qm_json_parse(pattern, -1, NULL) : NULL;
        g_assert_nonnull(e);
        g_assert_true(!pattern || p);
        return qm_event_match(e, p);
}

static void test_seed_examples(void) {
        /* None matches any object. */
        g_assert_true(match("{\"foo\": {\"bar\": 1}}", NULL));
        g_assert_true(match("{\"foo\": {\"bar\": 1}}", "null"));
        g_assert_true(match("{\"foo\": {\"bar\": 1}}", "{\"foo\": null}"));
        g_assert_true(match("{\"foo\": 5}", "{\"foo\": null}"));
        g_assert_false(match("{\"foo\": {\"bar\": 1}}", "{\"foo\": {\"abc\": null}}"));
        g_assert_true(match("{\"foo\": {\"bar\": 1, \"rab\": 2}}", "{\"foo\": {\"rab\": 2}}"));
}

static void test_values(void) {
        g_assert_true(match("{\"a\": \"x\"}", "{\"a\": \"x\"}"));
        g_assert_false(match("{\"a\": \"x\"}", "{\"a\": \"y\"}"));
        g_assert_true(match("{\"a\": 1}", "{\"a\": 1.0}"));
        g_assert_false(match("{\"a\": 1}", "{\"a\": true}"));
        g_assert_false(match("{\"a\": 1}", "{\"b\": 1}"));
        g_assert_false(match("{\"a\": 1}", "{\"a\": {\"b\": 1}}"));
        g_assert_true(match("{\"a\": [1, {\"b\": 2}]}", "{\"a\": [1, {\"b\": 2}]}"));
        g_assert_false(match("{\"a\": [1, 2]}", "{\"a\": [1]}"));
        g_assert_true(match("{\"a\": 1}", "{}"));
}

static void test_whole_event(void) {
        const char *guest = "{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": true, \"reason\": \"guest-shutdown\"},"
                            " \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}";
        const char *host = "{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": \"host-qmp-quit\"},"
                           " \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}";
        g_assert_true(match(guest, "{\"data\": {\"guest\": true}}"));
        g_assert_false(match(host, "{\"data\": {\"guest\": true}}"));
}

static QmEvent *event(const char *json, guint64 seq) {
        g_autoptr(JsonNode) n = qm_json_parse(json, -1, NULL);
        return qm_event_new(n, json, strlen(json), seq);
}

static void test_filters(void) {
        g_autoptr(QmEventFilters) any = qm_event_filters_new();
        g_autoptr(QmEventFilters) f = qm_event_filters_new();
        g_autoptr(QmEvent) stop = event("{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 5, \"microseconds\": 7}}", 3);
        g_autoptr(QmEvent) quit = event("{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": false}}", 4);
        QmError *e = NULL;

        g_assert_true(qm_event_filters_match(any, stop));
        g_assert_true(qm_event_filters_add(f, "SHUTDOWN", "{\"data\": {\"guest\": true}}", &e));
        g_assert_true(qm_event_filters_add(f, "STOP", "", &e));
        g_assert_true(qm_event_filters_match(f, stop));
        g_assert_false(qm_event_filters_match(f, quit));
        g_assert_false(qm_event_filters_add(f, "X", "{bad", &e));
        g_assert_cmpstr(e->name, ==, "org.freedesktop.DBus.Error.InvalidArgs");
        qm_error_free(e);

        g_assert_cmpuint(stop->timestamp_us, ==, 5000007);
        g_assert_cmpstr(stop->data_json, ==, "{}");
        g_assert_cmpstr(quit->data_json, ==, "{\"guest\":false}");
        g_assert_cmpuint(quit->timestamp_us, ==, 0);
}

static void test_ring(void) {
        g_autoptr(QmEventRing) r = qm_event_ring_new(4, G_MAXSIZE);

        g_assert_null(qm_event_ring_nth_after(r, 0, 0));
        for (guint64 seq = 1; seq <= 6; seq++)
                qm_event_ring_push(r, event("{\"event\": \"X\"}", seq));
        /* 1 and 2 were dropped */
        g_assert_cmpuint(qm_event_ring_count(r), ==, 4);
        g_assert_cmpuint(qm_event_ring_nth_after(r, 0, 0)->seq, ==, 3);
        g_assert_cmpuint(qm_event_ring_nth_after(r, 0, 3)->seq, ==, 6);
        g_assert_null(qm_event_ring_nth_after(r, 0, 4));
        g_assert_cmpuint(qm_event_ring_nth_after(r, 4, 0)->seq, ==, 5);
        g_assert_null(qm_event_ring_nth_after(r, 6, 0));
        g_assert_null(qm_event_ring_nth_after(r, 100, 0));
}

/* What each waiter heard, as "tag:how:seq". */
static GPtrArray *heard;

static void on_end(QmEventWaitEnd how, const QmEvent *e, gpointer data) {
        g_ptr_array_add(heard, g_strdup_printf("%s:%d:%" G_GUINT64_FORMAT, (char *)data, how, e ? e->seq : 0));
}

static QmEventFilters *only(const char *name) {
        QmEventFilters *f = qm_event_filters_new();
        QmError *e = NULL;

        g_assert_true(qm_event_filters_add(f, name, "", &e));
        return f;
}

static gboolean is_tag(gpointer data, gpointer user) {
        return g_strcmp0(data, user) == 0;
}

static void test_waiters(void) {
        g_autoptr(QmEvent) stop = event("{\"event\": \"STOP\"}", 7);
        QmEventWaiters *w = qm_event_waiters_new();

        heard = g_ptr_array_new_with_free_func(g_free);
        qm_event_waiters_add(w, only("STOP"), 0, on_end, g_strdup("a"), g_free);
        qm_event_waiters_add(w, only("RESUME"), 0, on_end, g_strdup("b"), g_free);
        qm_event_waiters_add(w, only(""), 0, on_end, g_strdup("c"), g_free);
        qm_event_waiters_add(w, only("RESUME"), 0, on_end, g_strdup("d"), g_free);
        qm_event_waiters_wake(w, stop);
        g_assert_cmpuint(heard->len, ==, 2);
        g_assert_cmpstr(heard->pdata[0], ==, "a:0:7");
        g_assert_cmpstr(heard->pdata[1], ==, "c:0:7");
        g_assert_cmpuint(qm_event_waiters_count(w), ==, 2);
        qm_event_waiters_drop_if(w, is_tag, "d");
        g_assert_cmpuint(qm_event_waiters_count(w), ==, 1);
        qm_event_waiters_end(w, TRUE);
        g_assert_cmpstr(heard->pdata[2], ==, "b:2:0");
        qm_event_waiters_add(w, only("X"), 0.01, on_end, g_strdup("t"), g_free);
        while (heard->len < 4)
                g_main_context_iteration(NULL, TRUE);
        g_assert_cmpstr(heard->pdata[3], ==, "t:1:0");
        qm_event_waiters_add(w, only("X"), 0, on_end, g_strdup("gone"), g_free);
        qm_event_waiters_free(w); /* silently */
        g_assert_cmpuint(heard->len, ==, 4);
        g_ptr_array_unref(heard);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/event-match/seed-examples", test_seed_examples);
        g_test_add_func("/event-match/values", test_values);
        g_test_add_func("/event-match/whole-event", test_whole_event);
        g_test_add_func("/events/filters", test_filters);
        g_test_add_func("/events/ring", test_ring);
        g_test_add_func("/events/waiters", test_waiters);
        return g_test_run();
}
