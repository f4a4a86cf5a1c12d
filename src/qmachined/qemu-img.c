/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qemu-img as an asynchronous subprocess with its output captured. */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fd-util.h"
#include "images.h"
#include "qemu-process.h"

#define QEMU_IMG_OUTPUT_MAX (256 * 1024)

typedef struct {
        int output_fd;
        QmQemuImgDone done;
        gpointer userdata;
} QemuImgRun;

static void on_qemu_img_exit(QemuProcess *p, int code, gpointer data) {
        QemuImgRun *run = data;
        g_autofree char *out = g_malloc(QEMU_IMG_OUTPUT_MAX + 1);
        g_autofree char *valid = NULL;
        ssize_t n = pread(run->output_fd, out, QEMU_IMG_OUTPUT_MAX, 0);

        out[n > 0 ? n : 0] = 0;
        valid = g_utf8_make_valid(out, -1);
        qemu_process_free(p);
        close(run->output_fd);
        run->done(code, g_strstrip(valid), run->userdata);
        g_free(run);
}

gboolean qm_qemu_img_run(const char *const *args, QmQemuImgDone done, gpointer userdata, GError **error) {
        g_autoptr(GPtrArray) argv = g_ptr_array_new();
        g_auto(QmFd) fd = memfd_create("qemu-img-output", MFD_CLOEXEC);
        /* the daemon's user, without its environment */
        char *env[] = { (char *)QM_CHILD_PATH, NULL };
        const QemuCredentials creds = { .switch_user = FALSE, .envp = env };
        QemuImgRun *run;

        if (fd < 0) {
                g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno), "memfd_create: %s",
                            g_strerror(errno));
                return FALSE;
        }
        g_ptr_array_add(argv, (char *)"qemu-img");
        for (const char *const *a = args; *a; a++)
                g_ptr_array_add(argv, (char *)*a);
        g_ptr_array_add(argv, NULL);
        run = g_new0(QemuImgRun, 1);
        run->done = done;
        run->userdata = userdata;
        if (!qemu_process_spawn((char **)argv->pdata, &creds, fd, NULL, NULL, 0, on_qemu_img_exit, run, error)) {
                g_free(run);
                return FALSE;
        }
        /* the exit is seen from the main loop, never before this */
        run->output_fd = qm_fd_steal(&fd);
        return TRUE;
}
