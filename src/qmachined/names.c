/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <systemd/sd-bus.h>

#include "names.h"

gboolean qm_name_is_valid(const char *name) {
        size_t n = 0;

        if (!name || !g_ascii_isalnum(name[0]))
                return FALSE;
        for (const char *p = name; *p; p++, n++) {
                if (n >= QM_NAME_MAX)
                        return FALSE;
                if (!g_ascii_isalnum(*p) && *p != '.' && *p != '_' && *p != '-')
                        return FALSE;
        }
        return TRUE;
}

char *qm_name_generate(GDateTime *now, GRand *rand) {
        static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
        g_autofree char *stamp = g_date_time_format(now, "%Y%m%d-%H%M%S");
        char suffix[5];

        for (int i = 0; i < 4; i++)
                suffix[i] = alphabet[g_rand_int_range(rand, 0, sizeof(alphabet) - 1)];
        suffix[4] = 0;
        return g_strdup_printf("vm-%s-%s", stamp, suffix);
}

char *qm_name_to_path(const char *name) {
        char *sd_path = NULL;
        char *path;

        if (sd_bus_path_encode(QM_MACHINE_PREFIX, name, &sd_path) < 0)
                g_error("out of memory encoding object path");
        /* Hand out GLib-allocated memory so callers can use g_free. */
        path = g_strdup(sd_path);
        free(sd_path);
        return path;
}
