/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fd-util.h"
#include "config.h"
#include "images.h"
#include "json-util.h"
#include "safe-open.h"
#include "state-file.h"
#include "user-identity.h"

gboolean qm_image_name_is_valid(const char *name) {
        gsize n = strlen(name);

        if (n == 0 || n > 255 || name[0] == '.' || strchr(name, '/'))
                return FALSE;
        for (const char *p = name; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        return FALSE;
        return g_utf8_validate(name, -1, NULL);
}

gboolean qm_image_format_is_supported(const char *format) {
        return strcmp(format, "qcow2") == 0 || strcmp(format, "raw") == 0;
}

void qm_image_record_clear(QmImageRecord *r) {
        g_clear_pointer(&r->format, g_free);
        g_clear_pointer(&r->backing_file, g_free);
        g_clear_pointer(&r->backing_format, g_free);
}

char *qm_image_record_dir(const char *image_dir) {
        g_autofree char *parent = g_path_get_dirname(image_dir);
        return g_build_filename(parent, "image-records", NULL);
}

char *qm_image_record_path(const char *image_dir, const char *name) {
        g_autofree char *dir = qm_image_record_dir(image_dir);
        g_autofree char *hash = g_compute_checksum_for_string(G_CHECKSUM_SHA256, name, -1);
        g_autofree char *file = g_strconcat(hash, ".json", NULL);
        return g_build_filename(dir, file, NULL);
}

static JsonNode *record_to_node(const char *name, const QmImageRecord *r) {
        g_autoptr(JsonBuilder) b = json_builder_new();

        json_builder_begin_object(b);
        json_builder_set_member_name(b, "name");
        json_builder_add_string_value(b, name);
        json_builder_set_member_name(b, "format");
        json_builder_add_string_value(b, r->format);
        if (r->backing_file) {
                json_builder_set_member_name(b, "backing-file");
                json_builder_add_string_value(b, r->backing_file);
                json_builder_set_member_name(b, "backing-format");
                json_builder_add_string_value(b, r->backing_format);
        }
        json_builder_end_object(b);
        return json_builder_get_root(b);
}

char *qm_image_record_to_json(const char *name, const QmImageRecord *r) {
        g_autoptr(JsonNode) node = record_to_node(name, r);
        return qm_json_to_string(node);
}

static gboolean invalid(GError **error, const char *name, const char *why) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "the record of image '%s' is invalid: %s", name, why);
        return FALSE;
}

/* A format member: present, a string, one the daemon supports. */
static const char *get_format(JsonObject *obj, const char *key) {
        const char *format = qm_json_get_string(obj, key, NULL);
        return format && qm_image_format_is_supported(format) ? format : NULL;
}

gboolean qm_image_record_parse(const char *text, gsize len, const char *name, QmImageRecord *r, GError **error) {
        g_autoptr(JsonNode) root = NULL;
        g_autoptr(GError) parse_error = NULL;
        const char *format, *backing, *backing_format = NULL;
        JsonObject *obj;

        if (len > QM_IMAGE_RECORD_MAX)
                return invalid(error, name, "too large");
        root = qm_json_parse(text, len, &parse_error);
        if (!root)
                return invalid(error, name, parse_error->message);
        if (!JSON_NODE_HOLDS_OBJECT(root))
                return invalid(error, name, "not a JSON object");
        obj = json_node_get_object(root);
        if (g_strcmp0(qm_json_get_string(obj, "name", NULL), name) != 0)
                return invalid(error, name, "it names another image");
        format = get_format(obj, "format");
        if (!format)
                return invalid(error, name, "no format, or not qcow2 or raw");
        backing = qm_json_get_string(obj, "backing-file", NULL);
        if (json_object_has_member(obj, "backing-file")) {
                if (!backing || !qm_image_name_is_valid(backing) || strcmp(format, "qcow2") != 0)
                        return invalid(error, name, "backing-file is not an image name, or not of a qcow2 image");
                backing_format = get_format(obj, "backing-format");
                if (!backing_format)
                        return invalid(error, name, "no backing-format, or not qcow2 or raw");
        }
        qm_image_record_clear(r);
        r->format = g_strdup(format);
        r->backing_file = g_strdup(backing);
        r->backing_format = g_strdup(backing_format);
        return TRUE;
}

static gboolean file_error(GError **error, int e, const char *what, const char *path) {
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "%s %s: %s", what, path, g_strerror(e));
        return FALSE;
}

/* At most QM_IMAGE_RECORD_MAX + 1 bytes of the regular file @path: one
 * more than a record may have, so that the parser sees it is too long. */
static gboolean read_bounded(const char *path, char **text, gsize *len, GError **error) {
        g_autofree char *buf = NULL;
        gsize done = 0;
        g_auto(QmFd) fd = qm_open_regular(AT_FDCWD, path, error);

        if (fd < 0)
                return FALSE;
        buf = g_malloc(QM_IMAGE_RECORD_MAX + 1);
        while (done < QM_IMAGE_RECORD_MAX + 1) {
                ssize_t n = read(fd, buf + done, QM_IMAGE_RECORD_MAX + 1 - done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return file_error(error, errno, "cannot read", path);
                if (n == 0)
                        break;
                done += n;
        }
        *text = g_steal_pointer(&buf);
        *len = done;
        return TRUE;
}

gboolean qm_image_record_load(const char *image_dir, const char *name, QmImageRecord *r, GError **error) {
        g_autofree char *path = qm_image_record_path(image_dir, name);
        g_autofree char *text = NULL;
        gsize len;

        if (!read_bounded(path, &text, &len, error))
                return FALSE;
        return qm_image_record_parse(text, len, name, r, error);
}

gboolean qm_image_record_save(const char *image_dir, const char *name, const QmImageRecord *r, GError **error) {
        g_autofree char *dir = qm_image_record_dir(image_dir);
        g_autofree char *path = qm_image_record_path(image_dir, name);
        g_autoptr(JsonNode) node = record_to_node(name, r);

        if (!qm_private_dir_ensure(dir, 0755, error))
                return FALSE;
        return qm_json_file_write(path, node, TRUE, error);
}

gboolean qm_image_record_remove(const char *image_dir, const char *name, GError **error) {
        g_autofree char *path = qm_image_record_path(image_dir, name);

        if (unlink(path) < 0 && errno != ENOENT)
                return file_error(error, errno, "cannot remove", path);
        return TRUE;
}

gboolean qm_image_remove(const char *image_dir, const char *name, GError **error) {
        g_autofree char *path = g_build_filename(image_dir, name, NULL);
        g_auto(QmImageRecord) rec = {};
        gboolean had_record = qm_image_record_load(image_dir, name, &rec, NULL);
        int e;

        /* The record first: a record left without its image would vouch
         * for whatever file is put under that name next. */
        if (!qm_image_record_remove(image_dir, name, error))
                return FALSE;
        if (unlink(path) == 0)
                return TRUE;
        e = errno;
        if (had_record)
                qm_image_record_save(image_dir, name, &rec, NULL); /* as it was */
        return file_error(error, e, "cannot remove", path);
}

gboolean qm_image_give_to_user(const char *path, const QmUserIdentity *u, GError **error) {
        g_auto(QmFd) fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);

        if (fd < 0 || fchown(fd, u->uid, u->gid) < 0 || fchmod(fd, 0600) < 0)
                return file_error(error, errno, "cannot give to " QM_DEFAULT_USER, path);
        return TRUE;
}

gboolean qm_image_virtual_size(const char *path, const char *format, guint64 *virtual_size) {
        guint8 header[32];
        struct stat st;
        ssize_t n = 0;
        g_auto(QmFd) fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);

        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return FALSE;
        /* The header is read only when the record says qcow2: a qcow2
         * image's header is QEMU's metadata, never guest data. */
        if (g_strcmp0(format, "qcow2") == 0)
                n = pread(fd, header, sizeof(header), 0);
        if (n == (ssize_t)sizeof(header) && memcmp(header, "QFI\xfb", 4) == 0) {
                guint64 size = 0;
                for (int i = 24; i < 32; i++) /* big-endian virtual size */
                        size = (size << 8) | header[i];
                *virtual_size = size;
        } else
                *virtual_size = (guint64)st.st_size;
        return TRUE;
}

int qm_image_storage_errno(const char *output) {
        static const int storage_errnos[] = { ENOSPC, EDQUOT, EROFS, EFBIG, EIO };

        /* qemu-img prints strerror() text and does not translate it. */
        for (gsize i = 0; i < G_N_ELEMENTS(storage_errnos); i++)
                if (strstr(output, strerrordesc_np(storage_errnos[i])))
                        return storage_errnos[i];
        return 0;
}

const char *qm_image_check_verdict(int exit_code) {
        switch (exit_code) {
        case 0:
                return "ok";
        case 1:
                return "check-errors";
        case 2:
                return "corrupt";
        case 3:
                return "leaks";
        case 63: /* "This image format does not support checks" */
                return "unsupported";
        default:
                return NULL;
        }
}
