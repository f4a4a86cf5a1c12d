/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Disk images in the daemon's image directory, made and checked with
 * qemu-img as asynchronous subprocesses. */
#pragma once

#include <glib.h>

#include "errors.h"
#include "user-identity.h"

#define QM_IMAGE_MAX_SIZE (G_GUINT64_CONSTANT(1) << 50) /* 1 PiB */

/* A file name in the image directory: 1 to 255 bytes, no '/', not
 * starting with '.', no control characters. */
gboolean qm_image_name_is_valid(const char *name);

/* qcow2 and raw are the formats the daemon makes and lists. */
gboolean qm_image_format_is_supported(const char *format);

/* What the daemon knows about an image it made, written once CreateImage
 * succeeded. The format of an image comes from its record and only from
 * there: never from the file's content, which a guest may have written
 * (a raw disk holding a qcow2 header would otherwise lead qemu-img to any
 * host file named as its "backing file"). An image without a record has
 * no known format. */
typedef struct {
        char *format;         /* qcow2 or raw */
        char *backing_file;   /* an image name, or NULL */
        char *backing_format; /* the recorded format of backing_file; NULL without one */
} QmImageRecord;

/* Records are small; a bigger file is not one. */
#define QM_IMAGE_RECORD_MAX (16 * 1024)

void qm_image_record_clear(QmImageRecord *r);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(QmImageRecord, qm_image_record_clear)

/* Records live beside the image directory, not in it (so it holds nothing
 * but images): DIR/../image-records/SHA256(NAME).json. Hashed, because an
 * image name may be 255 bytes, the longest a file name can be. */
char *qm_image_record_dir(const char *image_dir);
char *qm_image_record_path(const char *image_dir, const char *name);

/* The record of image @name as JSON text:
 * {"name", "format"[, "backing-file", "backing-format"]}. The virtual size
 * is not kept: it is the file's (raw) or its qcow2 header's, which resize
 * changes. */
char *qm_image_record_to_json(const char *name, const QmImageRecord *r);

/* Parse and check @len bytes of record text for image @name: at most
 * QM_IMAGE_RECORD_MAX bytes, a JSON object naming @name, a supported
 * format, a backing file that is an image
 * name with a supported format (qcow2 images only). Unknown members are
 * ignored. FALSE with @error (and @r untouched) otherwise. */
gboolean qm_image_record_parse(const char *text, gsize len, const char *name, QmImageRecord *r, GError **error);

/* Read the record of image @name: a regular file (never through a
 * symlink), read bounded. FALSE with @error if there is none
 * (G_FILE_ERROR_NOENT) or it is unusable. */
gboolean qm_image_record_load(const char *image_dir, const char *name, QmImageRecord *r, GError **error);

/* Write it atomically and durably, making the record directory if need
 * be. @error says which file and why (errno text). */
gboolean qm_image_record_save(const char *image_dir, const char *name, const QmImageRecord *r, GError **error);

/* Remove it; none is fine. */
gboolean qm_image_record_remove(const char *image_dir, const char *name, GError **error);

/* Remove image @name of @image_dir and its record. On failure (@error
 * names the file and the errno text) both stay as they were. */
gboolean qm_image_remove(const char *image_dir, const char *name, GError **error);

/* Virtual size of the regular file at @path read as @format, which the
 * caller knows from the record (NULL: unknown): a qcow2 header's size
 * field, otherwise the file's size. FALSE if it is not a regular file. */
/* A new image in the image directory belongs to the user VMs run as by
 * default (QM_DEFAULT_USER, looked up as @u), mode 0600: their QEMU can
 * use it, other users cannot read a guest's disk. Only for a daemon that
 * is root (else its images are its own). */
gboolean qm_image_give_to_user(const char *path, const QmUserIdentity *u, GError **error);

gboolean qm_image_virtual_size(const char *path, const char *format, guint64 *virtual_size);

/* The errno of a storage failure (ENOSPC, EDQUOT, EROFS, EFBIG, EIO) whose
 * text qemu-img printed in @output, 0 if none. */
int qm_image_storage_errno(const char *output);

/* What qemu-img check's exit status means. */
const char *qm_image_check_verdict(int exit_code);

/* qemu-img.c */
typedef void (*QmQemuImgDone)(int exit_code, const char *output, gpointer userdata);

/* Run qemu-img with @args (argv without the program), output captured;
 * @done runs from the main loop. FALSE with @error if it cannot start. */
gboolean qm_qemu_img_run(const char *const *args, QmQemuImgDone done, gpointer userdata, GError **error);
