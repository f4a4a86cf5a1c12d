#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <unistd.h>

#include "json-util.h"
#include "state-file.h"

/* Definitions and records are small; a bigger file is not ours. */
#define MAX_STATE_FILE (4 * 1024 * 1024)

static gboolean fail(GError **error, const char *what, const char *path) {
        int e = errno;
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "%s %s: %s", what, path, g_strerror(e));
        return FALSE;
}

gboolean qm_file_write_atomic(const char *path, const char *data, gsize len, gboolean durable, GError **error) {
        g_autofree char *dir = g_path_get_dirname(path);
        g_autofree char *tmp = g_strconcat(path, ".tmp-XXXXXX", NULL);
        int fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, 0644);
        gsize done = 0;

        if (fd < 0)
                return fail(error, "cannot create", tmp);
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
        if (close(fd) < 0) {
                fd = -1;
                goto fail;
        }
        fd = -1;
        if (rename(tmp, path) < 0)
                goto fail;
        if (durable) {
                int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd >= 0) {
                        fsync(dfd);
                        close(dfd);
                }
        }
        return TRUE;
fail:
        fail(error, "cannot write", path);
        if (fd >= 0)
                close(fd);
        g_unlink(tmp);
        return FALSE;
}

gboolean qm_json_file_write(const char *path, JsonNode *node, gboolean durable, GError **error) {
        g_autoptr(JsonGenerator) gen = json_generator_new();
        g_autofree char *text = NULL;
        gsize len;

        json_generator_set_root(gen, node);
        json_generator_set_pretty(gen, TRUE);
        text = json_generator_to_data(gen, &len);
        return qm_file_write_atomic(path, text, len, durable, error);
}

JsonNode *qm_json_file_read(const char *path, GError **error) {
        g_autofree char *text = NULL;
        gsize len;
        JsonNode *node;

        if (!g_file_get_contents(path, &text, &len, error))
                return NULL;
        if (len > MAX_STATE_FILE) {
                g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "%s is larger than %d bytes", path,
                            MAX_STATE_FILE);
                return NULL;
        }
        node = qm_json_parse(text, len, error);
        if (node && !JSON_NODE_HOLDS_OBJECT(node)) {
                json_node_unref(node);
                g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "%s does not hold a JSON object", path);
                return NULL;
        }
        return node;
}
