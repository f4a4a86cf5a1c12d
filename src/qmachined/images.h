/* Disk images in the daemon's image directory, made and checked with
 * qemu-img as asynchronous subprocesses. */
#pragma once

#include <glib.h>

#include "errors.h"

#define QM_IMAGE_MAX_SIZE (G_GUINT64_CONSTANT(1) << 50) /* 1 PiB */

/* A file name in the image directory: 1 to 255 bytes, no '/', not
 * starting with '.', no control characters. */
gboolean qm_image_name_is_valid(const char *name);

/* qcow2 and raw are the formats the daemon makes and lists. */
gboolean qm_image_format_is_supported(const char *format);

/* Format and virtual size from the file's header: qcow2 by its magic,
 * anything else is raw with the file's size. FALSE if unreadable. */
gboolean qm_image_probe(const char *path, char **format, guint64 *virtual_size);

/* What qemu-img check's exit status means. */
const char *qm_image_check_verdict(int exit_code);

/* qemu-img.c */
typedef void (*QmQemuImgDone)(int exit_code, const char *output, gpointer userdata);

/* Run qemu-img with @args (argv without the program), output captured;
 * @done runs from the main loop. FALSE with @error if it cannot start. */
gboolean qm_qemu_img_run(const char *const *args, QmQemuImgDone done, gpointer userdata, GError **error);
