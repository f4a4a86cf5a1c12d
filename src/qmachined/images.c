#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "images.h"

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

gboolean qm_image_probe(const char *path, char **format, guint64 *virtual_size) {
        guint8 header[32];
        struct stat st;
        ssize_t n;
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

        if (fd < 0)
                return FALSE;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                close(fd);
                return FALSE;
        }
        n = pread(fd, header, sizeof(header), 0);
        close(fd);
        if (n == (ssize_t)sizeof(header) && memcmp(header, "QFI\xfb", 4) == 0) {
                guint64 size = 0;
                for (int i = 24; i < 32; i++) /* big-endian virtual size */
                        size = (size << 8) | header[i];
                *format = g_strdup("qcow2");
                *virtual_size = size;
        } else {
                *format = g_strdup("raw");
                *virtual_size = (guint64)st.st_size;
        }
        return TRUE;
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

