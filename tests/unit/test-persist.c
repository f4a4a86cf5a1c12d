/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Definitions and runtime records read back strictly: a file that is not
 * a plain file, too big, or holds a member of the wrong type or range is
 * corrupt, never read with a silent default. */
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json-util.h"
#include "persist.h"
#include "state-file.h"
#include "test-files.h"

static char *config_json(void) {
        g_autoptr(GVariant) v = g_variant_ref_sink(g_variant_new_parsed("@a{sv} {}"));
        g_autoptr(QmError) e = NULL;
        g_autoptr(QmConfig) c = qm_config_from_variant(v, &e);
        g_autoptr(JsonNode) n = NULL;

        g_assert_nonnull(c);
        n = qm_config_to_json(c);
        return qm_json_to_string(n);
}

static void test_file_read_refuses(void) {
        g_autofree char *dir = test_tmp_dir("qm-persist");
        g_autofree char *fifo = g_build_filename(dir, "fifo.json", NULL);
        g_autofree char *zero = g_build_filename(dir, "zero.json", NULL);
        g_autofree char *good = g_build_filename(dir, "good.json", NULL);
        g_autofree char *link = g_build_filename(dir, "link.json", NULL);
        g_autofree char *big = g_build_filename(dir, "big.json", NULL);
        g_autofree char *wide = g_build_filename(dir, "wide.json", NULL);
        g_autoptr(GString) text = g_string_new("{\"a\": \"");
        g_autoptr(GError) err = NULL;
        g_autoptr(JsonNode) n = NULL;
        const char *wide_numbers[] = {
                "{\"a\": 18446744073709551615}", "{\"a\": -18446744073709551615}", "{\"a\": 9223372036854775808}",
                "{\"a\": [1, -9223372036854775809]}", "{\"a\": 99999999999999999999999}",
        };

        g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
        g_assert_cmpint(symlink("/dev/zero", zero), ==, 0);
        test_write_file(good, "{\"a\": [9223372036854775807, -9223372036854775808, 0.12345678901234567890123, "
                         "\"99999999999999999999\", 1e300]}");
        g_assert_cmpint(symlink(good, link), ==, 0);
        n = qm_json_file_read(good, &err);
        g_assert_no_error(err);
        g_assert_nonnull(n);

        g_assert_null(qm_json_file_read(fifo, &err));
        g_clear_error(&err);
        g_assert_null(qm_json_file_read(zero, &err));
        g_clear_error(&err);
        g_assert_null(qm_json_file_read(link, &err));
        g_clear_error(&err);

        while (text->len <= 4 * 1024 * 1024)
                g_string_append(text, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        g_string_append(text, "\"}");
        test_write_file(big, text->str);
        g_assert_null(qm_json_file_read(big, &err));
        g_assert_nonnull(strstr(err->message, "larger than"));
        g_clear_error(&err);

        for (guint i = 0; i < G_N_ELEMENTS(wide_numbers); i++) {
                test_write_file(wide, wide_numbers[i]);
                g_assert_null(qm_json_file_read(wide, &err));
                g_assert_nonnull(err);
                g_clear_error(&err);
        }
        test_remove_tree(dir);
}

static void write_definition(const char *dir, const char *name, const char *event_sequence) {
        g_autofree char *config = config_json();
        g_autofree char *file = g_strconcat(name, ".json", NULL);
        g_autofree char *path = g_build_filename(dir, file, NULL);
        g_autofree char *text = g_strdup_printf("{\"name\": \"%s\", \"config\": %s%s%s}", name, config,
                                                event_sequence ? ", \"event-sequence\": " : "",
                                                event_sequence ? event_sequence : "");
        test_write_file(path, text);
}

static gboolean set_aside(const char *dir, const char *name) {
        g_autofree char *file = g_strconcat(name, ".json.corrupt", NULL);
        g_autofree char *path = g_build_filename(dir, file, NULL);
        return g_file_test(path, G_FILE_TEST_EXISTS);
}

/* Setting aside a corrupt file warns; count those, fail on any other. */
static void count_set_aside(const char *domain, GLogLevelFlags level, const char *message, gpointer data) {
        if (!strstr(message, "is unusable"))
                g_error("unexpected warning: %s", message);
        (*(guint *)data)++;
}

static void test_definitions_strict(void) {
        g_autofree char *dir = test_tmp_dir("qm-persist");
        g_autofree char *fifo = g_build_filename(dir, "fifo.json", NULL);
        g_autofree char *zero = g_build_filename(dir, "zero.json", NULL);
        g_autoptr(GPtrArray) defs = NULL;
        const char *bad[][2] = {
                { "wrapped", "18446744073709551615" }, { "negative", "-5" },     { "string", "\"abc\"" },
                { "float", "1.5" },                    { "wrapped-neg", "-18446744073709551615" },
                { "null", "null" },                    { "object", "{}" },
        };
        guint warnings = 0, handler;
        QmDefinition *d;

        write_definition(dir, "good", "41");
        write_definition(dir, "absent", NULL);
        for (guint i = 0; i < G_N_ELEMENTS(bad); i++)
                write_definition(dir, bad[i][0], bad[i][1]);
        g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
        g_assert_cmpint(symlink("/dev/zero", zero), ==, 0);

        /* warnings stay fatal elsewhere; criticals here too */
        g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
        handler = g_log_set_handler("qmachined", G_LOG_LEVEL_WARNING, count_set_aside, &warnings);
        defs = qm_definitions_load(dir);
        g_log_remove_handler("qmachined", handler);
        g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
        g_assert_cmpuint(warnings, ==, G_N_ELEMENTS(bad) + 2);
        g_assert_cmpuint(defs->len, ==, 2);
        d = g_ptr_array_index(defs, 0);
        g_assert_cmpstr(d->name, ==, "absent");
        g_assert_cmpuint(d->event_sequence, ==, 0);
        d = g_ptr_array_index(defs, 1);
        g_assert_cmpstr(d->name, ==, "good");
        g_assert_cmpuint(d->event_sequence, ==, 41);
        for (guint i = 0; i < G_N_ELEMENTS(bad); i++)
                if (!set_aside(dir, bad[i][0]))
                        g_error("%s (event-sequence %s) was not set aside", bad[i][0], bad[i][1]);
        g_assert_true(set_aside(dir, "fifo"));
        g_assert_true(set_aside(dir, "zero"));
        test_remove_tree(dir);
}

static void test_records_strict(void) {
        g_autofree char *dir = test_tmp_dir("qm-persist");
        g_autofree char *path = g_build_filename(dir, "record.json", NULL);
        g_autofree char *config = config_json();
        g_autoptr(GError) err = NULL;
        /* each replaces one member of a good record */
        const char *bad[] = {
                "\"pid\": \"123\"",          "\"pid\": -123",         "\"pid\": 2147483648",
                "\"pid\": 1.5",              "\"start-time\": -1",    "\"start-time\": \"1\"",
                "\"launch-timestamp\": -1",  "\"event-sequence-mark\": -5",
                "\"event-sequence-mark\": 18446744073709551615",    "\"event-sequence-mark\": \"abc\"",
                "\"quit-issued\": \"yes\"",  "\"quit-issued\": 1",    "\"qemu-version\": 7",
                "\"command-line\": [\"qemu\", 1]", "\"command-line\": \"qemu\"", "\"name\": 5",
                "\"owner\": -1",           "\"owner\": 4294967295", "\"owner\": \"0\"",
        };
        const char *good = "\"pid\": 123, \"start-time\": 5, \"launch-timestamp\": 6, \"event-sequence-mark\": 7, "
                           "\"quit-issued\": true, \"qemu-version\": \"7.2.0\", \"command-line\": [\"qemu\", \"-S\"]";
        g_autofree char *text = g_strdup_printf("{\"name\": \"vm\", \"config\": %s, %s}", config, good);
        g_autoptr(QmRunRecord) r = NULL;

        test_write_file(path, text);
        r = qm_run_record_load(path, &err);
        g_assert_no_error(err);
        g_assert_cmpint(r->pid, ==, 123);
        g_assert_cmpuint(r->start_time, ==, 5);
        g_assert_cmpuint(r->launch_timestamp, ==, 6);
        g_assert_cmpuint(r->event_sequence_mark, ==, 7);
        g_assert_true(r->quit_issued);
        g_assert_cmpstr(r->qemu_version, ==, "7.2.0");
        g_assert_cmpstr(r->command_line[1], ==, "-S");
        g_assert_null(r->command_line[2]);
        g_assert_cmpuint(r->config->owner, ==, 0); /* absent: a version 1 record, root's */

        for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
                /* the later duplicate member wins in json-glib: put the bad one last */
                g_autofree char *t = g_strdup_printf("{\"name\": \"vm\", \"config\": %s, %s, %s}", config, good,
                                                     bad[i]);
                g_autoptr(QmRunRecord) b = NULL;
                test_write_file(path, t);
                b = qm_run_record_load(path, &err);
                if (b)
                        g_error("a record with %s was accepted", bad[i]);
                g_clear_error(&err);
        }
        test_remove_tree(dir);
}

/* The owner is kept in definitions and records alike. */
static void test_owner_round_trip(void) {
        g_autofree char *dir = test_tmp_dir("qm-persist");
        g_autofree char *path = g_build_filename(dir, "record.json", NULL);
        g_autoptr(QmConfig) c = qm_config_new();
        g_autoptr(GPtrArray) defs = NULL;
        g_autoptr(GError) err = NULL;
        g_autoptr(QmRunRecord) back = NULL;
        char *argv[] = { (char *)"qemu", NULL };
        QmRunRecord r = { .name = (char *)"vm", .pid = 42, .command_line = argv };

        c->owner = 65534;
        c->user = g_strdup("65534");
        g_assert_true(qm_definition_save(dir, "owned", c, 3, &err));
        g_assert_no_error(err);
        defs = qm_definitions_load(dir);
        g_assert_cmpuint(defs->len, ==, 1);
        g_assert_cmpuint(((QmDefinition *)g_ptr_array_index(defs, 0))->config->owner, ==, 65534);
        g_assert_cmpstr(((QmDefinition *)g_ptr_array_index(defs, 0))->config->user, ==, "65534");

        r.config = c;
        g_assert_true(qm_run_record_save(path, &r, &err));
        back = qm_run_record_load(path, &err);
        g_assert_no_error(err);
        g_assert_cmpuint(back->config->owner, ==, 65534);
        g_assert_cmpuint(back->forwarded_ports->len, ==, 0);
        test_remove_tree(dir);
}

/* The host ports of a run come back to a restarted daemon; a record with
 * a bad pair is corrupt. */
static void test_forwarded_ports_round_trip(void) {
        g_autofree char *dir = test_tmp_dir("qm-persist");
        g_autofree char *path = g_build_filename(dir, "record.json", NULL);
        g_autofree char *cfg = config_json();
        g_autoptr(GVariant) v = g_variant_ref_sink(g_variant_new_parsed("@a{sv} {}"));
        g_autoptr(QmError) ce = NULL;
        g_autoptr(QmConfig) c = qm_config_from_variant(v, &ce);
        g_autoptr(GArray) ports = g_array_new(FALSE, FALSE, sizeof(QmPortPair));
        g_autoptr(GError) err = NULL;
        g_autoptr(QmRunRecord) back = NULL;
        char *argv[] = { (char *)"qemu", NULL };
        QmRunRecord r = { .name = (char *)"vm", .pid = 42, .command_line = argv, .config = c };
        const char *bad[] = { "[[8080]]", "[[8080, 0]]", "[[65536, 1]]", "[8080]", "{}", "[[1, \"2\"]]" };

        g_array_append_vals(ports, (QmPortPair[]){ { 8080, 40001 }, { 22, 65535 } }, 2);
        r.forwarded_ports = ports;
        g_assert_true(qm_run_record_save(path, &r, &err));
        back = qm_run_record_load(path, &err);
        g_assert_no_error(err);
        g_assert_cmpuint(back->forwarded_ports->len, ==, 2);
        g_assert_cmpuint(g_array_index(back->forwarded_ports, QmPortPair, 0).guest, ==, 8080);
        g_assert_cmpuint(g_array_index(back->forwarded_ports, QmPortPair, 0).host, ==, 40001);
        g_assert_cmpuint(g_array_index(back->forwarded_ports, QmPortPair, 1).guest, ==, 22);
        g_assert_cmpuint(g_array_index(back->forwarded_ports, QmPortPair, 1).host, ==, 65535);
        for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
                g_autofree char *text = g_strdup_printf("{\"name\": \"vm\", \"pid\": 42, \"config\": %s, "
                                                        "\"forwarded-ports\": %s}", cfg, bad[i]);
                g_autoptr(QmRunRecord) none = NULL;
                g_autoptr(GError) e = NULL;
                g_assert_true(g_file_set_contents(path, text, -1, NULL));
                none = qm_run_record_load(path, &e);
                g_assert_null(none);
                g_assert_nonnull(strstr(e->message, "forwarded-ports"));
        }
        test_remove_tree(dir);
}

/* A migrated definition says where the guest went; a record names the
 * migrations under way (incoming and outgoing); wrong types are corrupt. */
static void test_migration_round_trip(void) {
        g_autofree char *dir = test_tmp_dir("qm-persist");
        g_autofree char *path = g_build_filename(dir, "record.json", NULL);
        g_autoptr(QmConfig) c = qm_config_new();
        g_autoptr(GPtrArray) defs = NULL;
        g_autoptr(GError) err = NULL;
        g_autoptr(QmRunRecord) back = NULL;
        g_autofree char *def_path = qm_definition_path(dir, "gone");
        g_autofree char *bad = NULL;
        char *argv[] = { (char *)"qemu", NULL };
        QmRunRecord r = { .name = (char *)"vm", .pid = 42, .command_line = argv, .config = c };
        guint warnings = 0, handler;

        g_assert_true(qm_definition_save_migrated(dir, "gone", c, 3, "tcp:10.0.0.2:4444", &err));
        g_assert_true(qm_definition_save(dir, "here", c, 3, &err));
        g_assert_no_error(err);
        defs = qm_definitions_load(dir);
        g_assert_cmpuint(defs->len, ==, 2);
        g_assert_cmpstr(((QmDefinition *)g_ptr_array_index(defs, 0))->migrated_to, ==, "tcp:10.0.0.2:4444");
        g_assert_null(((QmDefinition *)g_ptr_array_index(defs, 1))->migrated_to);

        r.incoming_uri = (char *)"unix:/run/x/migrate.sock";
        r.incoming_persistent = TRUE;
        r.migrating_to = (char *)"tcp:10.0.0.3:1";
        r.migrating_was_paused = TRUE;
        g_assert_true(qm_run_record_save(path, &r, &err));
        back = qm_run_record_load(path, &err);
        g_assert_no_error(err);
        g_assert_cmpstr(back->incoming_uri, ==, "unix:/run/x/migrate.sock");
        g_assert_true(back->incoming_persistent);
        g_assert_false(back->incoming_paused);
        g_assert_cmpstr(back->migrating_to, ==, "tcp:10.0.0.3:1");
        g_assert_true(back->migrating_was_paused);

        bad = g_strdup_printf("{\"name\": \"gone\", \"config\": {}, \"migrated\": true}");
        g_assert_true(g_file_set_contents(def_path, bad, -1, NULL));
        g_clear_pointer(&defs, g_ptr_array_unref);
        g_assert_cmpint(g_unlink(path), ==, 0); /* the record is no definition */
        g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
        handler = g_log_set_handler("qmachined", G_LOG_LEVEL_WARNING, count_set_aside, &warnings);
        defs = qm_definitions_load(dir);
        g_log_remove_handler("qmachined", handler);
        g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
        g_assert_cmpuint(warnings, ==, 1);
        g_assert_cmpuint(defs->len, ==, 1); /* "gone" was moved aside */
        g_assert_true(set_aside(dir, "gone"));
        test_remove_tree(dir);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/persist/file-read-refuses", test_file_read_refuses);
        g_test_add_func("/persist/definitions-strict", test_definitions_strict);
        g_test_add_func("/persist/records-strict", test_records_strict);
        g_test_add_func("/persist/owner-round-trip", test_owner_round_trip);
        g_test_add_func("/persist/forwarded-ports-round-trip", test_forwarded_ports_round_trip);
        g_test_add_func("/persist/migration-round-trip", test_migration_round_trip);
        return g_test_run();
}
