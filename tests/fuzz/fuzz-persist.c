/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The files the daemon reads back after a restart (persist.h,
 * state-file.h): the input is written as a run record and as a machine
 * definition in a temp dir and loaded. What loads must survive
 * save -> load unchanged; what does not load is refused cleanly (a
 * definition is moved aside to NAME.json.corrupt, as documented).
 */
#include <errno.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz-common.h"
#include "json-util.h"
#include "persist.h"
#include "state-file.h"

static char *tmpdir;
static char *defs, *defs2, *record, *record2;

static void remove_tree(const char *dir) {
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        const char *name;

        while (d && (name = g_dir_read_name(d))) {
                g_autofree char *path = g_build_filename(dir, name, NULL);
                if (g_file_test(path, G_FILE_TEST_IS_DIR))
                        remove_tree(path);
                else
                        g_unlink(path);
        }
        g_rmdir(dir);
}

static void cleanup(void) {
        if (tmpdir)
                remove_tree(tmpdir);
}

static char *config_text(const QmConfig *c) {
        g_autoptr(JsonNode) j = qm_config_to_json(c);
        return qm_json_to_string(j);
}

static void same_record(const QmRunRecord *a, const QmRunRecord *b) {
        g_autofree char *ca = config_text(a->config);
        g_autofree char *cb = config_text(b->config);

        fuzz_assert(strcmp(a->name, b->name) == 0, "name '%s' became '%s'", a->name, b->name);
        fuzz_assert(a->pid == b->pid, "pid %d became %d", a->pid, b->pid);
        fuzz_assert(a->start_time == b->start_time, "start-time changed");
        fuzz_assert(a->launch_timestamp == b->launch_timestamp, "launch-timestamp changed");
        fuzz_assert(a->event_sequence_mark == b->event_sequence_mark, "event-sequence-mark changed");
        fuzz_assert(g_strcmp0(a->qemu_version, b->qemu_version) == 0, "qemu-version changed");
        fuzz_assert(!a->quit_issued == !b->quit_issued, "quit-issued changed");
        fuzz_assert(g_strv_equal((const char *const *)a->command_line, (const char *const *)b->command_line),
                    "command-line changed");
        fuzz_assert(strcmp(ca, cb) == 0, "config changed:\n%s\n%s", ca, cb);
}

static void try_record(const uint8_t *data, size_t size) {
        g_autoptr(QmRunRecord) r = NULL;
        g_autoptr(QmRunRecord) r2 = NULL;
        g_autoptr(GError) err = NULL;
        g_autofree char *saved = NULL;
        g_autofree char *saved2 = NULL;

        fuzz_assert(g_file_set_contents(record, (const char *)data, size, NULL), "cannot write %s", record);
        r = qm_run_record_load(record, &err);
        if (!r) {
                fuzz_assert(err && fuzz_text_ok(err->message, -1), "refused without a valid message");
                return;
        }
        fuzz_assert(!err, "loaded, with an error");
        fuzz_assert(qm_run_record_save(record2, r, &err), "cannot save the record: %s", err->message);
        r2 = qm_run_record_load(record2, &err);
        fuzz_assert(r2, "a saved record does not load: %s", err->message);
        same_record(r, r2);
        /* and the file is a fixed point */
        g_file_get_contents(record2, &saved, NULL, NULL);
        fuzz_assert(qm_run_record_save(record2, r2, &err), "cannot save the record: %s", err->message);
        g_file_get_contents(record2, &saved2, NULL, NULL);
        fuzz_assert(g_strcmp0(saved, saved2) == 0, "saving again changed the file");
}

static void clear_dir(const char *dir) {
        remove_tree(dir);
        g_mkdir(dir, 0700);
}

static void try_definition(const uint8_t *data, size_t size) {
        g_autofree char *path = g_build_filename(defs, "fuzz.json", NULL);
        g_autofree char *aside = g_strconcat(path, ".corrupt", NULL);
        g_autoptr(GPtrArray) loaded = NULL;
        g_autoptr(GPtrArray) again = NULL;
        g_autoptr(GError) err = NULL;
        QmDefinition *d, *d2;
        g_autofree char *ca = NULL;
        g_autofree char *cb = NULL;

        clear_dir(defs);
        clear_dir(defs2);
        fuzz_assert(g_file_set_contents(path, (const char *)data, size, NULL), "cannot write %s", path);
        loaded = qm_definitions_load(defs);
        fuzz_assert(loaded->len <= 1, "%u definitions from one file", loaded->len);
        if (loaded->len == 0) {
                fuzz_assert(!g_file_test(path, G_FILE_TEST_EXISTS) && g_file_test(aside, G_FILE_TEST_EXISTS),
                            "an unusable definition was not moved aside");
                return;
        }
        d = loaded->pdata[0];
        fuzz_assert(strcmp(d->name, "fuzz") == 0, "the definition is named '%s'", d->name);
        fuzz_assert(d->config->persistent, "a definition that is not persistent");
        fuzz_assert(qm_definition_save(defs2, d->name, d->config, d->event_sequence, &err),
                    "cannot save the definition: %s", err->message);
        again = qm_definitions_load(defs2);
        fuzz_assert(again->len == 1, "a saved definition does not load");
        d2 = again->pdata[0];
        fuzz_assert(strcmp(d->name, d2->name) == 0 && d->event_sequence == d2->event_sequence,
                    "name or event-sequence changed");
        ca = config_text(d->config);
        cb = config_text(d2->config);
        fuzz_assert(strcmp(ca, cb) == 0, "config changed:\n%s\n%s", ca, cb);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        /* the loader warns about the files it moves aside */
        fuzz_init_logging(FALSE);
        tmpdir = g_dir_make_tmp("qmachined-fuzz-persist-XXXXXX", NULL);
        if (!tmpdir)
                abort();
        defs = g_build_filename(tmpdir, "machines", NULL);
        defs2 = g_build_filename(tmpdir, "machines2", NULL);
        record = g_build_filename(tmpdir, "record.json", NULL);
        record2 = g_build_filename(tmpdir, "record2.json", NULL);
        atexit(cleanup);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        try_record(data, size);
        try_definition(data, size);
        return 0;
}
