/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "fd-util.h"
#include "json-util.h"
#include "safe-open.h"
#include "state-file.h"

/* Definitions and records are small; a bigger file is not ours. */
#define MAX_STATE_FILE (4 * 1024 * 1024)

static gboolean fail(GError **error, const char *what, const char *path) {
        int e = errno;
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "%s %s: %s", what, path, g_strerror(e));
        return FALSE;
}

/* Best effort: the rename is made durable where the directory allows. */
static void fsync_dir(const char *dir) {
        g_auto(QmFd) dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (dfd >= 0)
                fsync(dfd);
}

gboolean qm_file_write_atomic(const char *path, const char *data, gsize len, gboolean durable, GError **error) {
        g_autofree char *dir = g_path_get_dirname(path);
        g_autofree char *tmp = g_strconcat(path, ".tmp-XXXXXX", NULL);
        g_auto(QmFd) fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, 0644);
        gsize done = 0;

        if (fd < 0)
                return fail(error, "cannot create a temporary file for", path);
        while (done < len) {
                ssize_t n = write(fd, data + done, len - done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        goto fail;
                done += n;
        }
        if (durable && fsync(fd) < 0)
                goto fail;
        /* close() here, not at scope exit: its error means the data may be lost */
        if (close(qm_fd_steal(&fd)) < 0)
                goto fail;
        if (rename(tmp, path) < 0)
                goto fail;
        if (durable)
                fsync_dir(dir);
        return TRUE;
fail:
        fail(error, "cannot write", path);
        g_unlink(tmp);
        return FALSE;
}

gboolean qm_json_file_write(const char *path, JsonNode *node, gboolean durable, GError **error) {
        g_autofree char *text = qm_json_generate(node, TRUE);

        return qm_file_write_atomic(path, text, strlen(text), durable, error);
}

/* Reads at most MAX_STATE_FILE bytes: one more is an error. */
static char *read_bounded(int fd, const char *path, gsize *len, GError **error) {
        g_autofree char *buf = g_malloc(MAX_STATE_FILE + 1);
        gsize done = 0;

        while (done <= MAX_STATE_FILE) {
                ssize_t n = read(fd, buf + done, MAX_STATE_FILE + 1 - done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        fail(error, "cannot read", path);
                        return NULL;
                }
                if (n == 0)
                        break;
                done += n;
        }
        if (done > MAX_STATE_FILE) {
                g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "%s is larger than %d bytes", path,
                            MAX_STATE_FILE);
                return NULL;
        }
        *len = done;
        return g_realloc(g_steal_pointer(&buf), done + 1);
}

/* Do @n decimal digits fit in a gint64 (its magnitude, for @negative)? */
static gboolean digits_fit(const char *p, gsize n, gboolean negative) {
        static const char max[] = "9223372036854775807", min[] = "9223372036854775808";

        while (n > 1 && *p == '0') {
                p++;
                n--;
        }
        if (n != sizeof(max) - 1)
                return n < sizeof(max) - 1;
        return strncmp(p, negative ? min : max, n) <= 0;
}

/* json-glib wraps integers beyond 64 bits without a word (18446744073709551615
 * reads as -1, -18446744073709551615 as 1). The daemon never writes such a
 * number, so a file holding one is corrupt. @text passed qm_json_parse(). */
static gboolean integers_fit(const char *text, gsize len) {
        gsize i = 0;

        while (i < len) {
                gboolean negative = text[i] == '-';
                gsize start, end;

                if (text[i] == '"') {
                        for (i++; i < len && text[i] != '"'; i++)
                                if (text[i] == '\\')
                                        i++;
                        i++;
                        continue;
                }
                if (!negative && !g_ascii_isdigit(text[i])) {
                        i++;
                        continue;
                }
                start = end = i + negative;
                while (end < len && g_ascii_isdigit(text[end]))
                        end++;
                if (end < len && (text[end] == '.' || text[end] == 'e' || text[end] == 'E')) {
                        /* a float: skip it whole */
                        while (end < len && (g_ascii_isdigit(text[end]) || memchr(".eE+-", text[end], 5)))
                                end++;
                } else if (!digits_fit(text + start, end - start, negative)) {
                        return FALSE;
                }
                i = end;
        }
        return TRUE;
}

JsonNode *qm_json_file_read(const char *path, GError **error) {
        g_autofree char *text = NULL;
        gsize len = 0;
        JsonNode *node;
        g_auto(QmFd) fd = qm_open_regular(AT_FDCWD, path, error);

        if (fd < 0)
                return NULL;
        text = read_bounded(fd, path, &len, error);
        if (!text)
                return NULL;
        node = qm_json_parse(text, len, error);
        if (!node)
                return NULL;
        if (!JSON_NODE_HOLDS_OBJECT(node)) {
                json_node_unref(node);
                g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "%s does not hold a JSON object", path);
                return NULL;
        }
        if (!integers_fit(text, len)) {
                json_node_unref(node);
                g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "%s holds an integer beyond 64 bits", path);
                return NULL;
        }
        return node;
}
