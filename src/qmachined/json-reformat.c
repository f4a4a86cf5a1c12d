/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "json-reformat.h"
#include "json-util.h"

#define INDENT 2

static gboolean is_ws(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static gsize skip_ws(const char *text, gsize len, gsize i) {
        while (i < len && is_ws(text[i]))
                i++;
        return i;
}

/* The string literal at @i (checked) copied as it is; the index after it. */
static gsize copy_string(GString *out, const char *text, gsize len, gsize i) {
        gsize start = i++;

        while (i < len && text[i] != '"')
                i += text[i] == '\\' ? 2 : 1;
        i++; /* the closing quote */
        g_string_append_len(out, text + start, i - start);
        return i;
}

static void new_line(GString *out, int level) {
        g_string_append_c(out, '\n');
        for (int i = 0; i < level * INDENT; i++)
                g_string_append_c(out, ' ');
}

/* One pass over checked text: each byte is looked at at most twice (the
 * whitespace after an opening bracket), so it is linear. */
static char *relay(const char *text, gsize len, gboolean pretty) {
        GString *out = g_string_sized_new(len + (pretty ? len / 2 : 0));
        int level = 0;

        for (gsize i = 0; i < len;) {
                char c = text[i];
                gsize next;

                switch (c) {
                case ' ':
                case '\t':
                case '\n':
                case '\r':
                        i++;
                        continue;
                case '"':
                        i = copy_string(out, text, len, i);
                        continue;
                case '{':
                case '[':
                        g_string_append_c(out, c);
                        next = skip_ws(text, len, i + 1);
                        if (text[next] == '}' || text[next] == ']') {
                                /* json-glib writes an empty object as "{",
                                 * its closing indent, "}"; an empty array "[]" */
                                if (pretty && c == '{')
                                        g_string_append_printf(out, "%*s", level * INDENT, "");
                                g_string_append_c(out, text[next]);
                                i = next + 1;
                                continue;
                        }
                        level++;
                        if (pretty)
                                new_line(out, level);
                        break;
                case '}':
                case ']':
                        level--;
                        if (pretty)
                                new_line(out, level);
                        g_string_append_c(out, c);
                        break;
                case ',':
                        g_string_append_c(out, c);
                        if (pretty)
                                new_line(out, level);
                        break;
                case ':':
                        g_string_append(out, pretty ? " : " : ":");
                        break;
                default: /* a byte of a number, true, false or null */
                        g_string_append_c(out, c);
                        break;
                }
                i++;
        }
        return g_string_free(out, FALSE);
}

char *qm_json_reformat(const char *text, gsize len, QmJsonLayout layout) {
        if (!text || !qm_json_check_len(text, len, NULL))
                return NULL;
        return relay(text, len, layout == QM_JSON_LAYOUT_PRETTY);
}
