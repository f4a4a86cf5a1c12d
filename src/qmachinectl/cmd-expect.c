/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qmachinectl expect and send: console expect without holding a console
 * connection (WaitConsole, WriteConsole). */
#include "ctl.h"

#include <stdio.h>
#include <string.h>

int cmd_expect(Ctl *c, int argc, char **argv) {
        g_autoptr(sd_bus_message) reply = NULL;
        double timeout = c->o.timeout_set ? c->o.timeout : -1;
        const char *match;
        uint64_t offset;
        int r;

        /* timeout 0 only searches: the default call timeout is enough. */
        r = ctl_machine_call(c, argv[0], "WaitConsole", timeout == 0 ? 0 : ctl_timeout_usec(timeout), &reply,
                             "std", argv[1], c->o.after, timeout);
        if (r != EXIT_OK)
                return r;
        r = sd_bus_message_read(reply, "ts", &offset, &match);
        if (r < 0)
                return ctl_error("bad reply to WaitConsole: %s", g_strerror(-r));
        if (offset == 0 && timeout == 0)
                return ctl_error("the console output does not match");
        if (ctl_json_mode(c)) {
                g_autoptr(JsonObject) o = json_object_new();
                g_autoptr(JsonNode) node = NULL;
                json_object_set_int_member(o, "offset", (gint64)offset);
                json_object_set_string_member(o, "match", match);
                node = json_node_init_object(json_node_alloc(), o);
                return ctl_output(c, node, NULL, NULL);
        }
        printf("%" G_GUINT64_FORMAT " %s\n", offset, match);
        return EXIT_OK;
}

static int hex_digit(char ch) {
        if (g_ascii_isxdigit(ch))
                return g_ascii_xdigit_value(ch);
        return -1;
}

/* One escape after the backslash at *@p; advances *@p past it. */
static int unescape_one(const char **p, GByteArray *out) {
        static const char from[] = "abefnrtv\\\"'", to[] = "\a\b\x1b\f\n\r\t\v\\\"'";
        const char *s = *p, *k;
        guint8 b;

        if (*s == 'x') {
                int hi = hex_digit(s[1]), lo = hi < 0 ? -1 : hex_digit(s[2]);
                if (lo < 0)
                        return ctl_error("\\x needs two hex digits");
                b = (guint8)(hi * 16 + lo);
                *p = s + 3;
        } else if (*s >= '0' && *s <= '7') {
                int v = 0, n = 0;
                for (; n < 3 && s[n] >= '0' && s[n] <= '7'; n++)
                        v = v * 8 + (s[n] - '0');
                if (v > 255)
                        return ctl_error("octal escape \\%.3s is over 255", s);
                b = (guint8)v;
                *p = s + n;
        } else if (*s && (k = strchr(from, *s))) {
                b = (guint8)to[k - from];
                *p = s + 1;
        } else {
                return ctl_error("unknown escape \\%c (known: \\n \\r \\t \\\\ \\xHH \\NNN \\a \\b \\e \\f \\v)",
                                 *s ? *s : ' ');
        }
        g_byte_array_append(out, &b, 1);
        return EXIT_OK;
}

/* TEXT with C escapes as bytes. */
static int unescape(const char *text, GByteArray *out) {
        for (const char *p = text; *p;) {
                if (*p != '\\') {
                        g_byte_array_append(out, (const guint8 *)p++, 1);
                        continue;
                }
                p++;
                int r = unescape_one(&p, out);
                if (r != EXIT_OK)
                        return r;
        }
        return EXIT_OK;
}

int cmd_send(Ctl *c, int argc, char **argv) {
        g_autoptr(GByteArray) data = g_byte_array_new();
        g_autoptr(sd_bus_message) m = NULL;
        g_autofree char *path = NULL;
        int r;

        r = unescape(argv[1], data);
        if (r != EXIT_OK)
                return EXIT_USAGE;
        r = ctl_machine_path(c, argv[0], &path);
        if (r != EXIT_OK)
                return r;
        r = sd_bus_message_new_method_call(c->bus, &m, QM_BUS_NAME, path, QM_MACHINE_IFACE, "WriteConsole");
        if (r >= 0)
                r = sd_bus_message_append_array(m, 'y', data->data, data->len);
        if (r < 0)
                return ctl_error("cannot build the call: %s", g_strerror(-r));
        return ctl_send(c, m, 0, NULL);
}
