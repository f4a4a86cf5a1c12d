/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Image names, check verdicts, and the per-image records that hold an
 * image's format (never guessed from its content). */
#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "images.h"

static void test_names_and_verdicts(void) {
        g_assert_true(qm_image_name_is_valid("disk.qcow2"));
        g_assert_false(qm_image_name_is_valid(""));
        g_assert_false(qm_image_name_is_valid(".hidden"));
        g_assert_false(qm_image_name_is_valid("a/b"));
        g_assert_false(qm_image_name_is_valid("../x"));
        g_assert_false(qm_image_name_is_valid("tab\there"));
        g_assert_true(qm_image_format_is_supported("qcow2"));
        g_assert_false(qm_image_format_is_supported("vmdk"));
        g_assert_cmpstr(qm_image_check_verdict(0), ==, "ok");
        g_assert_cmpstr(qm_image_check_verdict(3), ==, "leaks");
        g_assert_cmpstr(qm_image_check_verdict(2), ==, "corrupt");
        g_assert_cmpstr(qm_image_check_verdict(1), ==, "check-errors");
        g_assert_cmpstr(qm_image_check_verdict(63), ==, "unsupported");
        g_assert_null(qm_image_check_verdict(42));
}

static gboolean parse(const char *text, const char *name, QmImageRecord *r) {
        g_autoptr(GError) error = NULL;
        gboolean ok = qm_image_record_parse(text, strlen(text), name, r, &error);

        if (!ok) {
                g_assert_nonnull(error);
                g_assert_nonnull(strstr(error->message, name)); /* says which image */
        }
        return ok;
}

static void test_record_round_trip(void) {
        QmImageRecord in = { .format = (char *)"qcow2", .backing_file = (char *)"base ä.raw",
                             .backing_format = (char *)"raw" };
        QmImageRecord out = {};
        g_autofree char *text = qm_image_record_to_json("over\"lay.qcow2", &in);
        g_autofree char *plain = NULL;

        g_assert_true(parse(text, "over\"lay.qcow2", &out));
        g_assert_cmpstr(out.format, ==, "qcow2");
        g_assert_cmpstr(out.backing_file, ==, "base ä.raw");
        g_assert_cmpstr(out.backing_format, ==, "raw");
        qm_image_record_clear(&out);

        in = (QmImageRecord){ .format = (char *)"raw" };
        plain = qm_image_record_to_json("d.raw", &in);
        g_assert_true(parse(plain, "d.raw", &out));
        g_assert_cmpstr(out.format, ==, "raw");
        g_assert_null(out.backing_file);
        g_assert_null(out.backing_format);
        qm_image_record_clear(&out);

        /* Unknown members are for later versions. */
        g_assert_true(parse("{\"name\":\"x\",\"format\":\"raw\",\"created\":5}", "x", &out));
        g_assert_cmpstr(out.format, ==, "raw");
        qm_image_record_clear(&out);
}

static void test_record_rejects_garbage(void) {
        static const char *const bad[] = {
                "",
                "null",
                "[]",
                "\"raw\"",
                "{",
                "{\"name\":\"x\"}",
                "{\"name\":\"x\",\"format\":\"vmdk\"}",
                "{\"name\":\"x\",\"format\":\"QCOW2\"}",
                "{\"name\":\"x\",\"format\":1}",
                "{\"name\":\"x\",\"format\":null}",
                "{\"name\":\"y\",\"format\":\"raw\"}",          /* another image's */
                "{\"format\":\"raw\"}",
                "{\"name\":[\"x\"],\"format\":\"raw\"}",
                /* backing files: image names with a known format, qcow2 only */
                "{\"name\":\"x\",\"format\":\"qcow2\",\"backing-file\":\"/etc/passwd\",\"backing-format\":\"raw\"}",
                "{\"name\":\"x\",\"format\":\"qcow2\",\"backing-file\":\"../b\",\"backing-format\":\"raw\"}",
                "{\"name\":\"x\",\"format\":\"qcow2\",\"backing-file\":\".b\",\"backing-format\":\"raw\"}",
                "{\"name\":\"x\",\"format\":\"qcow2\",\"backing-file\":\"\",\"backing-format\":\"raw\"}",
                "{\"name\":\"x\",\"format\":\"qcow2\",\"backing-file\":null,\"backing-format\":\"raw\"}",
                "{\"name\":\"x\",\"format\":\"qcow2\",\"backing-file\":\"b\"}",
                "{\"name\":\"x\",\"format\":\"qcow2\",\"backing-file\":\"b\",\"backing-format\":\"vmdk\"}",
                "{\"name\":\"x\",\"format\":\"raw\",\"backing-file\":\"b\",\"backing-format\":\"raw\"}",
        };
        QmImageRecord r = { .format = g_strdup("raw") };
        g_autofree char *deep = g_strnfill(100000, '[');
        g_autofree char *big = NULL;
        g_autoptr(GString) padded = g_string_new("{\"name\":\"x\",\"format\":\"raw\",\"pad\":\"");
        g_autoptr(GError) error = NULL;

        for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
                g_test_message("%s", bad[i]);
                g_assert_false(parse(bad[i], "x", &r));
        }
        g_assert_false(parse(deep, "x", &r));
        /* Not UTF-8, a NUL inside: refused, not cut short. */
        g_assert_false(qm_image_record_parse("{\"name\":\"x\",\"format\":\"raw\"}\0{", 29, "x", &r, &error));
        g_clear_error(&error);
        g_assert_false(parse("{\"name\":\"x\",\"format\":\"raw\",\"p\":\"\xff\"}", "x", &r));
        /* Bounded: one byte over the limit is refused, whatever it holds. */
        while (padded->len < QM_IMAGE_RECORD_MAX - 2)
                g_string_append_c(padded, 'a');
        g_string_append(padded, "\"}");
        g_assert_cmpuint(padded->len, ==, QM_IMAGE_RECORD_MAX);
        g_assert_true(parse(padded->str, "x", &r));
        big = g_strconcat(padded->str, " ", NULL);
        g_assert_false(parse(big, "x", &r));
        /* A failed parse leaves the record as it was. */
        g_assert_cmpstr(r.format, ==, "raw");
        qm_image_record_clear(&r);
}

static void test_record_files(void) {
        g_autofree char *top = g_dir_make_tmp("qm-unit-XXXXXX", NULL);
        g_autofree char *image_dir = g_build_filename(top, "images", NULL);
        g_autofree char *record_dir = qm_image_record_dir(image_dir);
        g_autofree char *record_parent = g_path_get_dirname(record_dir);
        g_autofree char *long_name = g_strnfill(255, 'n');
        g_autofree char *path = NULL;
        g_autofree char *target = g_build_filename(top, "target.json", NULL);
        QmImageRecord in = { .format = (char *)"qcow2", .backing_file = (char *)"b.raw",
                             .backing_format = (char *)"raw" };
        QmImageRecord out = {};
        g_autoptr(GError) error = NULL;
        g_autofree char *text = NULL;

        /* Beside the image directory, never in it; one fixed-length file
         * name per image, whatever the image name's length. */
        g_assert_cmpstr(record_parent, ==, top);
        path = qm_image_record_path(image_dir, long_name);
        g_assert_true(g_str_has_prefix(path, record_dir));
        g_assert_cmpuint(strlen(path) - strlen(record_dir), ==, 1 + 64 + 5);

        g_assert_false(qm_image_record_load(image_dir, "a.qcow2", &out, &error));
        g_assert_error(error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
        g_clear_error(&error);
        g_assert_true(qm_image_record_remove(image_dir, "a.qcow2", &error)); /* none is fine */

        g_assert_true(qm_image_record_save(image_dir, long_name, &in, &error));
        g_assert_no_error(error);
        g_assert_true(qm_image_record_load(image_dir, long_name, &out, &error));
        g_assert_cmpstr(out.format, ==, "qcow2");
        g_assert_cmpstr(out.backing_file, ==, "b.raw");
        g_assert_cmpstr(out.backing_format, ==, "raw");
        qm_image_record_clear(&out);
        /* Another name does not read it. */
        g_assert_false(qm_image_record_load(image_dir, "other", &out, &error));
        g_clear_error(&error);

        /* Never through a symlink, never a directory. */
        g_assert_true(qm_image_record_remove(image_dir, long_name, &error));
        g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
        text = qm_image_record_to_json(long_name, &in);
        g_assert_true(g_file_set_contents(target, text, -1, NULL));
        g_assert_cmpint(symlink(target, path), ==, 0);
        g_assert_false(qm_image_record_load(image_dir, long_name, &out, &error));
        g_clear_error(&error);
        g_assert_cmpint(unlink(path), ==, 0);
        g_assert_cmpint(mkdir(path, 0755), ==, 0);
        g_assert_false(qm_image_record_load(image_dir, long_name, &out, &error));
        g_assert_nonnull(strstr(error->message, "is a directory"));
        g_clear_error(&error);
        g_assert_cmpint(rmdir(path), ==, 0);
        g_assert_null(out.format);

        g_assert_cmpint(unlink(target), ==, 0);
        g_assert_cmpint(rmdir(record_dir), ==, 0);
        g_assert_cmpint(rmdir(top), ==, 0);
}

static void test_virtual_size(void) {
        g_autofree char *dir = g_dir_make_tmp("qm-unit-XXXXXX", NULL);
        g_autofree char *file = g_build_filename(dir, "a", NULL);
        guint8 header[40] = { 'Q', 'F', 'I', 0xfb };
        guint64 size = 0;

        header[29] = 0x10; /* virtual size 0x100000 (big-endian, offset 24) */
        g_assert_true(g_file_set_contents(file, (const char *)header, sizeof(header), NULL));
        /* The header counts only for an image recorded as qcow2: a raw
         * disk's first bytes are the guest's. */
        g_assert_true(qm_image_virtual_size(file, "qcow2", &size));
        g_assert_cmpuint(size, ==, 0x100000);
        g_assert_true(qm_image_virtual_size(file, "raw", &size));
        g_assert_cmpuint(size, ==, sizeof(header));
        g_assert_true(qm_image_virtual_size(file, NULL, &size));
        g_assert_cmpuint(size, ==, sizeof(header));
        g_assert_true(g_file_set_contents(file, "12345", 5, NULL));
        g_assert_true(qm_image_virtual_size(file, "qcow2", &size)); /* not a qcow2 header */
        g_assert_cmpuint(size, ==, 5);
        g_assert_false(qm_image_virtual_size(dir, "raw", &size)); /* not a regular file */
        g_assert_cmpint(unlink(file), ==, 0);
        g_assert_cmpint(rmdir(dir), ==, 0);
}

static void test_storage_errno(void) {
        g_assert_cmpint(qm_image_storage_errno("qemu-img: /i/a.qcow2: Could not write refcount table: No space left "
                                               "on device"),
                        ==, ENOSPC);
        g_assert_cmpint(qm_image_storage_errno("qemu-img: /i/c.raw: Could not create '/i/c.raw': Read-only file "
                                               "system"),
                        ==, EROFS);
        g_assert_cmpint(qm_image_storage_errno("Disk quota exceeded"), ==, EDQUOT);
        g_assert_cmpint(qm_image_storage_errno("qemu-img: Could not open backing file: Invalid argument"), ==, 0);
        g_assert_cmpint(qm_image_storage_errno(""), ==, 0);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/images/names-and-verdicts", test_names_and_verdicts);
        g_test_add_func("/images/record-round-trip", test_record_round_trip);
        g_test_add_func("/images/record-rejects-garbage", test_record_rejects_garbage);
        g_test_add_func("/images/record-files", test_record_files);
        g_test_add_func("/images/virtual-size", test_virtual_size);
        g_test_add_func("/images/storage-errno", test_storage_errno);
        return g_test_run();
}
