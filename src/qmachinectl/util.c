/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qmachinectl: parsing of numbers and sizes, JSON and text output. */
#include "ctl.h"

#include <errno.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A size in bytes with an optional suffix K, M, G or T (powers of 1024). */
int ctl_parse_size(const char *s, uint64_t *ret) {
        static const char suffixes[] = "KMGT";
        uint64_t v, mult = 1;
        char *end;
        const char *p;

        if (!s || !g_ascii_isdigit(s[0]))
                return -EINVAL;
        errno = 0;
        v = g_ascii_strtoull(s, &end, 10);
        if (errno != 0)
                return -ERANGE;
        if (*end) {
                p = strchr(suffixes, g_ascii_toupper(*end));
                if (!p || end[1])
                        return -EINVAL;
                for (long i = 0; i <= p - suffixes; i++)
                        mult *= 1024;
        }
        if (v > UINT64_MAX / mult)
                return -ERANGE;
        *ret = v * mult;
        return 0;
}

int ctl_parse_double(const char *s, double *ret) {
        char *end;
        double v;

        if (!s || !*s)
                return -EINVAL;
        errno = 0;
        v = g_ascii_strtod(s, &end);
        if (errno != 0 || *end || isnan(v))
                return -EINVAL;
        *ret = v;
        return 0;
}

int ctl_parse_u64(const char *s, uint64_t *ret) {
        char *end;
        uint64_t v;

        if (!s || !g_ascii_isdigit(s[0]))
                return -EINVAL;
        errno = 0;
        v = g_ascii_strtoull(s, &end, 10);
        if (errno != 0 || *end)
                return -EINVAL;
        *ret = v;
        return 0;
}

int ctl_parse_uint(const char *s, unsigned *ret) {
        uint64_t v;

        if (ctl_parse_u64(s, &v) < 0 || v > UINT32_MAX)
                return -EINVAL;
        *ret = (unsigned)v;
        return 0;
}

/* "64M" when the size is an exact multiple, else the bytes. */
char *ctl_format_size(uint64_t bytes) {
        static const char suffixes[] = "KMGT";
        int i = -1;

        while (bytes != 0 && i < 3 && bytes % 1024 == 0) {
                bytes /= 1024;
                i++;
        }
        if (i < 0)
                return g_strdup_printf("%" G_GUINT64_FORMAT, bytes);
        return g_strdup_printf("%" G_GUINT64_FORMAT "%c", bytes, suffixes[i]);
}

/* JSON text indented by two spaces, its numbers and strings exactly as
 * they are; text that is not JSON as it is. */
char *ctl_json_pretty(const char *text) {
        char *pretty = ctl_json_layout(text, true);

        return pretty ? pretty : g_strdup(text ? text : "");
}

bool ctl_json_has_member(const char *text, const char *member) {
        g_autoptr(JsonNode) root = ctl_json_parse(text);

        return root && JSON_NODE_HOLDS_OBJECT(root) &&
                json_object_has_member(json_node_get_object(root), member);
}

/* Text on stdout, ending with a newline. */
void ctl_print_text(const char *text) {
        size_t n = strlen(text);

        fputs(text, stdout);
        if (n == 0 || text[n - 1] != '\n')
                fputc('\n', stdout);
}

/* argv as one line a shell would split back into the same words. */
char *ctl_shell_join(char **argv) {
        GString *s = g_string_new(NULL);

        for (size_t i = 0; argv && argv[i]; i++) {
                const char *a = argv[i];
                bool plain = a[0] != '\0';

                for (const char *p = a; *p && plain; p++)
                        plain = g_ascii_isalnum(*p) || strchr("-_./=:,+@%", *p);
                if (i > 0)
                        g_string_append_c(s, ' ');
                if (plain) {
                        g_string_append(s, a);
                } else {
                        g_autofree char *q = g_shell_quote(a);
                        g_string_append(s, q);
                }
        }
        return g_string_free(s, FALSE);
}
