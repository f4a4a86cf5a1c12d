/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The image methods of org.qmachine.QMachine1.Manager: CreateImage,
 * CheckImage, RemoveImage, ListImages over the image directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>

#include "bus-gvariant.h"
#include "dbus-common.h"
#include "fd-util.h"
#include "images-dbus.h"
#include "user-lookup.h"
#include "images.h"

typedef struct {
        Manager *mgr;
        sd_bus_message *call;
        char *name;
        char *path;
        QmImageRecord record; /* CreateImage: what to record once made */
} ImageCall;

static ImageCall *image_call_new(Manager *mgr, sd_bus_message *call, const char *name) {
        ImageCall *ic = g_new0(ImageCall, 1);
        ic->mgr = mgr;
        ic->call = qm_calls_hold(mgr->daemon->calls, call);
        ic->name = g_strdup(name);
        ic->path = g_build_filename(mgr->daemon->image_dir, name, NULL);
        return ic;
}

static void image_call_free(ImageCall *ic) {
        qm_calls_release(ic->mgr->daemon->calls, ic->call);
        g_free(ic->name);
        g_free(ic->path);
        qm_image_record_clear(&ic->record);
        g_free(ic);
}

static int check_name(const char *name, sd_bus_error *error) {
        if (!qm_image_name_is_valid(name))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "'%s' is not an image name: a file name without '/', not starting "
                                         "with '.', at most 255 bytes", name);
        return 0;
}

static char *image_path(Manager *mgr, const char *name) {
        return g_build_filename(mgr->daemon->image_dir, name, NULL);
}

static gboolean image_exists(Manager *mgr, const char *name) {
        g_autofree char *path = image_path(mgr, name);
        return g_file_test(path, G_FILE_TEST_EXISTS);
}

static gboolean image_in_progress(Manager *mgr, const char *name) {
        return g_hash_table_contains(mgr->images_in_progress, name);
}

/* The recorded format of image @name; NULL (and a reason in @why) when it
 * has no usable record. */
static char *recorded_format(Manager *mgr, const char *name, char **why) {
        g_auto(QmImageRecord) rec = {};
        g_autoptr(GError) err = NULL;

        if (!qm_image_record_load(mgr->daemon->image_dir, name, &rec, &err)) {
                if (why)
                        *why = g_error_matches(err, G_FILE_ERROR, G_FILE_ERROR_NOENT)
                                       ? g_strdup("it was not made by CreateImage")
                                       : g_strdup(err->message);
                return NULL;
        }
        return g_steal_pointer(&rec.format);
}

/* Every image method needs the images action; no polkit details. */
static int authorize(Manager *mgr, sd_bus_message *msg, sd_bus_error *error) {
        return qm_auth_check(mgr->daemon->auth, msg, QM_AUTH_IMAGES, NULL, NULL, error);
}

/* The name argument of Check/RemoveImage, after authorization: as
 * qm_auth_check(), 1 go on, 0 a check is under way, < 0 an error. */
static int read_name_authorized(Manager *mgr, sd_bus_message *msg, const char **name, sd_bus_error *error) {
        int r = sd_bus_message_read(msg, "s", name);

        if (r < 0)
                return r;
        r = authorize(mgr, msg, error);
        if (r <= 0)
                return r;
        r = check_name(*name, error);
        return r < 0 ? r : 1;
}

/* A full, read-only or failing disk is StorageFailed with its reason;
 * anything else qemu-img reports stays a plain failure. */
static void reply_create_failed(ImageCall *ic, int code, const char *output) {
        int e = qm_image_storage_errno(output);

        if (e)
                qm_reply_errorf(ic->call, QM_ERROR_STORAGE_FAILED, "cannot write image %s: %s (%s)",
                                           ic->path, g_strerror(e), output);
        else
                qm_reply_errorf(ic->call, SD_BUS_ERROR_FAILED, "qemu-img create failed (exit code %d): %s",
                                           code, output);
}

/* The image is made: it goes to the VM user (@vm_user; NULL for a
 * daemon that is not root), and its format is recorded. */
static void finish_created(ImageCall *ic, const QmUserIdentity *vm_user, const QmError *lookup_error) {
        g_autoptr(GError) err = NULL;

        g_hash_table_remove(ic->mgr->images_in_progress, ic->name);
        if (lookup_error) {
                g_unlink(ic->path);
                qm_reply_errorf(ic->call, SD_BUS_ERROR_FAILED, "cannot give %s to the VM user: %s", ic->path,
                                lookup_error->message);
        } else if (vm_user && !qm_image_give_to_user(ic->path, vm_user, &err)) {
                g_unlink(ic->path);
                qm_reply_errorf(ic->call, SD_BUS_ERROR_FAILED, "%s", err->message);
        } else if (!qm_image_record_save(ic->mgr->daemon->image_dir, ic->name, &ic->record, &err)) {
                /* An image without its record would have no known format. */
                g_unlink(ic->path);
                qm_reply_errorf(ic->call, QM_ERROR_STORAGE_FAILED,
                                           "cannot record the format of image %s: %s", ic->path, err->message);
        } else
                qm_reply_return(ic->call, "s", ic->path);
        image_call_free(ic);
}

static void on_vm_user(QmUserIdentity **u, QmError **e, gpointer data) {
        finish_created(data, *u, *e);
}

static void on_created(int code, const char *output, gpointer data) {
        ImageCall *ic = data;

        if (code != 0) {
                g_hash_table_remove(ic->mgr->images_in_progress, ic->name);
                g_unlink(ic->path);
                reply_create_failed(ic, code, output);
                image_call_free(ic);
        } else if (geteuid() == 0)
                /* the user database may be slow: not on the main loop */
                qm_user_lookup_start(QM_DEFAULT_USER, on_vm_user, ic);
        else
                finish_created(ic, NULL, NULL);
}

/* The backing image's recorded format, into @format; never a guess from
 * its content. */
static int backing_format(Manager *mgr, const char *backing, char **format, sd_bus_error *error) {
        g_autofree char *why = NULL;
        int r = check_name(backing, error);

        if (r < 0)
                return r;
        if (!image_exists(mgr, backing) || image_in_progress(mgr, backing))
                return sd_bus_error_setf(error, QM_ERROR_NO_SUCH_IMAGE, "No image named '%s'", backing);
        *format = recorded_format(mgr, backing, &why);
        if (!*format)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "image '%s' has no recorded format (%s), so it cannot be a backing file: "
                                         "its format is never guessed from its content",
                                         backing, why);
        return 0;
}

/* Make the image's file, so that a full or read-only directory is told
 * with its errno, and so that two callers never make the same image. */
static int reserve_file(Manager *mgr, const char *name, sd_bus_error *error) {
        g_autofree char *path = image_path(mgr, name);
        g_auto(QmFd) fd = -1;

        if (g_mkdir_with_parents(mgr->daemon->image_dir, 0755) < 0)
                return sd_bus_error_setf(error, QM_ERROR_STORAGE_FAILED, "cannot create %s: %s",
                                         mgr->daemon->image_dir, g_strerror(errno));
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0 && errno == EEXIST)
                return sd_bus_error_setf(error, QM_ERROR_IMAGE_EXISTS, "An image named '%s' exists already", name);
        if (fd < 0)
                return sd_bus_error_setf(error, QM_ERROR_STORAGE_FAILED, "cannot create image %s: %s", path,
                                         g_strerror(errno));
        return 0;
}

int images_method_create(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *mgr = userdata;
        g_autoptr(GVariant) options = NULL;
        g_autoptr(GPtrArray) args = g_ptr_array_new_with_free_func(g_free);
        g_autoptr(GError) err = NULL;
        const char *name, *format, *key;
        guint64 size, cluster_size = 0;
        gboolean has_cluster_size = FALSE;
        g_autofree char *backing = NULL;
        g_autofree char *bformat = NULL;
        GVariantIter it;
        GVariant *value;
        ImageCall *ic;
        int r;

        r = sd_bus_message_read(msg, "sst", &name, &format, &size);
        if (r < 0)
                return r;
        QM_RETURN_UNLESS_AUTHORIZED(authorize(mgr, msg, error));
        r = bus_message_read_gvariant(msg, &options);
        if (r < 0)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "cannot read options");
        if ((r = check_name(name, error)) < 0)
                return r;
        if (!qm_image_format_is_supported(format))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "unknown image format '%s': qcow2 or raw", format);
        if (size == 0 || size > QM_IMAGE_MAX_SIZE)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "size must be 1 byte to %" G_GUINT64_FORMAT " bytes", QM_IMAGE_MAX_SIZE);
        g_variant_iter_init(&it, options);
        while (g_variant_iter_next(&it, "{&sv}", &key, &value)) {
                g_autoptr(GVariant) v = value;
                if (strcmp(key, "cluster-size") == 0 && g_variant_is_of_type(v, G_VARIANT_TYPE_UINT64)) {
                        cluster_size = g_variant_get_uint64(v);
                        has_cluster_size = TRUE;
                }
                else if (strcmp(key, "backing-file") == 0 && g_variant_is_of_type(v, G_VARIANT_TYPE_STRING))
                        backing = g_variant_dup_string(v, NULL);
                else
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "unknown or ill-typed option '%s' (cluster-size t, backing-file s)",
                                                 key);
        }
        if ((has_cluster_size || backing) && strcmp(format, "qcow2") != 0)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                        "cluster-size and backing-file are for qcow2 only");
        if (has_cluster_size && (cluster_size < 512 || cluster_size > 2 * 1024 * 1024 ||
                             (cluster_size & (cluster_size - 1))))
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                        "cluster-size must be a power of two from 512 to 2097152");
        if (backing && (r = backing_format(mgr, backing, &bformat, error)) < 0)
                return r;
        if (image_exists(mgr, name) || image_in_progress(mgr, name))
                return sd_bus_error_setf(error, QM_ERROR_IMAGE_EXISTS, "An image named '%s' exists already", name);
        if ((r = reserve_file(mgr, name, error)) < 0)
                return r;

        ic = image_call_new(mgr, msg, name);
        ic->record.format = g_strdup(format);
        ic->record.backing_file = g_strdup(backing);
        ic->record.backing_format = g_strdup(bformat);
        g_ptr_array_add(args, g_strdup("create"));
        g_ptr_array_add(args, g_strdup("-q"));
        g_ptr_array_add(args, g_strdup("-f"));
        g_ptr_array_add(args, g_strdup(format));
        if (cluster_size) {
                g_ptr_array_add(args, g_strdup("-o"));
                g_ptr_array_add(args, g_strdup_printf("cluster_size=%" G_GUINT64_FORMAT, cluster_size));
        }
        if (backing) {
                g_ptr_array_add(args, g_strdup("-b"));
                g_ptr_array_add(args, image_path(mgr, backing));
                g_ptr_array_add(args, g_strdup("-F"));
                g_ptr_array_add(args, g_strdup(bformat));
        }
        g_ptr_array_add(args, g_strdup(ic->path));
        g_ptr_array_add(args, g_strdup_printf("%" G_GUINT64_FORMAT, size));
        g_ptr_array_add(args, NULL);
        if (!qm_qemu_img_run((const char *const *)args->pdata, on_created, ic, &err)) {
                g_unlink(ic->path);
                image_call_free(ic);
                return sd_bus_error_setf(error, SD_BUS_ERROR_FAILED, "cannot run qemu-img: %s", err->message);
        }
        g_hash_table_add(mgr->images_in_progress, g_strdup(name));
        return 1;
}

static void on_checked(int code, const char *output, gpointer data) {
        ImageCall *ic = data;
        const char *verdict = qm_image_check_verdict(code);

        if (verdict)
                qm_reply_return(ic->call, "ss", verdict, output);
        else
                qm_reply_errorf(ic->call, QM_ERROR_IMAGE_CHECK_FAILED,
                                           "qemu-img check could not check '%s' (exit code %d): %s", ic->name, code,
                                           output);
        image_call_free(ic);
}

int images_method_check(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *mgr = userdata;
        g_autoptr(GError) err = NULL;
        g_autofree char *format = NULL;
        g_autofree char *why = NULL;
        const char *name;
        ImageCall *ic;

        QM_RETURN_UNLESS_AUTHORIZED(read_name_authorized(mgr, msg, &name, error));
        if (!image_exists(mgr, name) || image_in_progress(mgr, name))
                return sd_bus_error_setf(error, QM_ERROR_NO_SUCH_IMAGE, "No image named '%s'", name);
        format = recorded_format(mgr, name, &why);
        if (!format)
                return sd_bus_error_setf(error, QM_ERROR_IMAGE_CHECK_FAILED,
                                         "image '%s' has no recorded format (%s), so it is not checked: its "
                                         "format is never guessed from its content",
                                         name, why);
        ic = image_call_new(mgr, msg, name);
        const char *args[] = { "check", "-f", format, ic->path, NULL };
        if (!qm_qemu_img_run(args, on_checked, ic, &err)) {
                image_call_free(ic);
                return sd_bus_error_setf(error, SD_BUS_ERROR_FAILED, "cannot run qemu-img: %s", err->message);
        }
        return 1;
}

/* Does a running machine's command line name @path? */
static Machine *image_user(Manager *mgr, const char *path) {
        GHashTableIter it;
        Machine *m;

        g_hash_table_iter_init(&it, mgr->machines);
        while (g_hash_table_iter_next(&it, NULL, (gpointer *)&m)) {
                if (!machine_is_active(m))
                        continue;
                for (char *const *a = machine_get_command_line(m); a && *a; a++)
                        if (strstr(*a, path))
                                return m;
        }
        return NULL;
}

int images_method_remove(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *mgr = userdata;
        g_autoptr(GError) err = NULL;
        g_autofree char *path = NULL;
        const char *name;
        Machine *user;

        QM_RETURN_UNLESS_AUTHORIZED(read_name_authorized(mgr, msg, &name, error));
        path = image_path(mgr, name);
        if (!g_file_test(path, G_FILE_TEST_EXISTS) || image_in_progress(mgr, name))
                return sd_bus_error_setf(error, QM_ERROR_NO_SUCH_IMAGE, "No image named '%s'", name);
        user = image_user(mgr, path);
        if (user)
                return sd_bus_error_setf(error, QM_ERROR_BUSY, "Image '%s' is used by running machine '%s'", name,
                                         machine_get_name(user));
        if (!qm_image_remove(mgr->daemon->image_dir, name, &err))
                return sd_bus_error_setf(error, QM_ERROR_STORAGE_FAILED, "%s", err->message);
        return sd_bus_reply_method_return(msg, NULL);
}

static gint compare_names(gconstpointer a, gconstpointer b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

int images_method_list(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *mgr = userdata;
        g_autoptr(sd_bus_message) reply = NULL;
        g_autoptr(GDir) dir = g_dir_open(mgr->daemon->image_dir, 0, NULL);
        g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
        const char *entry;
        int r;

        while (dir && (entry = g_dir_read_name(dir)))
                if (qm_image_name_is_valid(entry) && !image_in_progress(mgr, entry))
                        g_ptr_array_add(names, g_strdup(entry));
        g_ptr_array_sort(names, compare_names);
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(sst)");
        if (r < 0)
                return r;
        for (guint i = 0; i < names->len; i++) {
                g_autofree char *path = image_path(mgr, names->pdata[i]);
                g_autofree char *format = recorded_format(mgr, names->pdata[i], NULL);
                guint64 size;
                if (!qm_image_virtual_size(path, format, &size))
                        continue; /* not a regular file */
                /* "": no record, so no known format */
                r = sd_bus_message_append(reply, "(sst)", names->pdata[i], format ? format : "", size);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}
