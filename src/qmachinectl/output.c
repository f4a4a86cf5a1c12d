/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qmachinectl's output for people and for scripts: -o/--output and
 * --json (each command builds one JSON document; tables, value lines and
 * JSON are all printed from it), --no-legend, colours on a terminal and
 * the pager for listings, as systemd's tools do them.
 */
#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define ANSI_RESET "\033[0m"
#define ANSI_BOLD "\033[1m"
#define ANSI_GREEN "\033[0;32m"
#define ANSI_RED "\033[0;31m"
#define ANSI_YELLOW "\033[0;33m"

int ctl_parse_output(const char *s, CtlOutputMode *ret) {
        static const struct {
                const char *name;
                CtlOutputMode mode;
        } modes[] = {
                /* clang-format off */
                { "table", CTL_OUTPUT_TABLE },
                { "json", CTL_OUTPUT_JSON },
                { "json-short", CTL_OUTPUT_JSON },
                { "json-pretty", CTL_OUTPUT_JSON_PRETTY },
                { "value", CTL_OUTPUT_VALUE },
                /* clang-format on */
        };

        for (size_t i = 0; i < G_N_ELEMENTS(modes); i++)
                if (strcmp(s, modes[i].name) == 0) {
                        *ret = modes[i].mode;
                        return 0;
                }
        return -EINVAL;
}

/* --json[=pretty|short|off]; bare --json is pretty on a terminal and
 * short otherwise (systemd's -j). */
int ctl_parse_json(const char *s, CtlOutputMode *ret) {
        if (!s)
                *ret = isatty(STDOUT_FILENO) ? CTL_OUTPUT_JSON_PRETTY : CTL_OUTPUT_JSON;
        else if (strcmp(s, "pretty") == 0)
                *ret = CTL_OUTPUT_JSON_PRETTY;
        else if (strcmp(s, "short") == 0)
                *ret = CTL_OUTPUT_JSON;
        else if (strcmp(s, "off") == 0)
                *ret = CTL_OUTPUT_TABLE;
        else
                return -EINVAL;
        return 0;
}

bool ctl_json_mode(const Ctl *c) {
        return c->output == CTL_OUTPUT_JSON || c->output == CTL_OUTPUT_JSON_PRETTY;
}

static bool env_false(const char *name) {
        const char *v = getenv(name);

        return v &&
                (strcmp(v, "0") == 0 || g_ascii_strcasecmp(v, "false") == 0 ||
                 g_ascii_strcasecmp(v, "no") == 0 || g_ascii_strcasecmp(v, "off") == 0);
}

/* Colours only on a terminal that has them, and never with NO_COLOR
 * (https://no-color.org) or SYSTEMD_COLORS=0. Decided before a pager
 * takes stdout. */
void ctl_setup_color(Ctl *c) {
        const char *term = getenv("TERM");
        const char *no_color = getenv("NO_COLOR");

        c->color = isatty(STDOUT_FILENO) && term && term[0] && strcmp(term, "dumb") != 0 &&
                !(no_color && no_color[0]) && !env_false("SYSTEMD_COLORS");
}

static const char *state_color(const char *state) {
        if (strcmp(state, "running") == 0)
                return ANSI_GREEN;
        if (strcmp(state, "failed") == 0)
                return ANSI_RED;
        if (strcmp(state, "starting") == 0 || strcmp(state, "stopping") == 0 || strcmp(state, "paused") == 0)
                return ANSI_YELLOW;
        return NULL;
}

const char *ctl_color_on(const Ctl *c, CtlColor color, const char *text) {
        const char *code = NULL;

        if (!c->color)
                return "";
        switch (color) {
        case CTL_COLOR_BOLD:
                code = ANSI_BOLD;
                break;
        case CTL_COLOR_STATE:
                code = text ? state_color(text) : NULL;
                break;
        case CTL_COLOR_NONE:
                break;
        }
        return code ? code : "";
}

const char *ctl_color_off(const Ctl *c, CtlColor color, const char *text) {
        return ctl_color_on(c, color, text)[0] ? ANSI_RESET : "";
}

void ctl_info(const Ctl *c, const char *fmt, ...) {
        va_list ap;

        if (c->quiet)
                return;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
}

/* The pager command: $SYSTEMD_PAGER, $PAGER, else less; NULL for none
 * ("" or "cat"). */
static const char *pager_command(void) {
        const char *p = getenv("SYSTEMD_PAGER");

        if (!p)
                p = getenv("PAGER");
        if (!p)
                return "less";
        if (!p[0] || strcmp(p, "cat") == 0)
                return NULL;
        return p;
}

static void exec_pager(const char *command) {
        const char *less = getenv("SYSTEMD_LESS");

        /* less: quit when it fits (F), raw colours (R), chop long lines (S),
         * keep the screen (X), long prompt (M), quit on Ctrl-C (K) */
        setenv("LESS", less ? less : "FRSXMK", 1);
        if (strcmp(command, "less") == 0) {
                execlp("less", "less", NULL);
                execlp("more", "more", NULL);
        } else {
                execl("/bin/sh", "sh", "-c", command, NULL);
        }
        _exit(EXIT_FAIL);
}

/* A listing's stdout goes through the pager when it is a terminal. */
void ctl_pager_open(Ctl *c) {
        const char *command = pager_command();
        int fds[2];
        pid_t pid;

        if (c->no_pager || c->pager_pid > 0 || !command || !isatty(STDOUT_FILENO))
                return;
        fflush(stdout);
        if (pipe2(fds, O_CLOEXEC) < 0)
                return;
        pid = fork();
        if (pid < 0) {
                close(fds[0]);
                close(fds[1]);
                return;
        }
        if (pid == 0) {
                if (dup2(fds[0], STDIN_FILENO) < 0)
                        _exit(EXIT_FAIL);
                exec_pager(command);
        }
        close(fds[0]);
        if (dup2(fds[1], STDOUT_FILENO) < 0) {
                close(fds[1]);
                kill(pid, SIGTERM);
                waitpid(pid, NULL, 0);
                return;
        }
        close(fds[1]);
        /* a pager that was left early must not be answered by SIGPIPE's death */
        signal(SIGPIPE, SIG_IGN);
        c->pager_pid = pid;
}

void ctl_pager_close(Ctl *c) {
        int null;

        if (c->pager_pid <= 0)
                return;
        fflush(stdout);
        null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null >= 0) {
                dup2(null, STDOUT_FILENO); /* the pager sees EOF */
                close(null);
        } else {
                close(STDOUT_FILENO);
        }
        while (waitpid(c->pager_pid, NULL, 0) < 0 && errno == EINTR)
                ;
        c->pager_pid = 0;
}

JsonNode *ctl_json_parse(const char *text) {
        g_autoptr(JsonParser) parser = json_parser_new();
        JsonNode *root;

        if (!text || !json_parser_load_from_data(parser, text, -1, NULL))
                return NULL;
        root = json_parser_get_root(parser);
        return root ? json_node_copy(root) : NULL;
}

char *ctl_json_to_string(JsonNode *node, bool pretty) {
        g_autoptr(JsonGenerator) gen = json_generator_new();

        json_generator_set_pretty(gen, pretty);
        json_generator_set_indent(gen, 2);
        json_generator_set_root(gen, node);
        return json_generator_to_data(gen, NULL);
}

/* Bytes as a string member when they are valid UTF-8 without NUL, else
 * as KEY_base64 (and KEY null): JSON strings hold only text. */
void ctl_json_set_bytes(JsonObject *o, const char *key, const void *data, size_t len) {
        g_autofree char *b64_key = NULL;
        g_autofree char *b64 = NULL;

        if (len == 0) {
                json_object_set_string_member(o, key, "");
                return;
        }
        if (g_utf8_validate_len(data, len, NULL)) {
                g_autofree char *s = g_strndup(data, len);
                json_object_set_string_member(o, key, s);
                return;
        }
        b64_key = g_strconcat(key, "_base64", NULL);
        b64 = g_base64_encode(data, len);
        json_object_set_null_member(o, key);
        json_object_set_string_member(o, b64_key, b64);
}

/* A scalar as text: strings as they are, booleans yes/no, null "". */
char *ctl_json_value_text(JsonNode *node) {
        if (!node || JSON_NODE_HOLDS_NULL(node))
                return g_strdup("");
        if (JSON_NODE_HOLDS_VALUE(node)) {
                GType t = json_node_get_value_type(node);
                if (t == G_TYPE_STRING)
                        return g_strdup(json_node_get_string(node));
                if (t == G_TYPE_BOOLEAN)
                        return g_strdup(json_node_get_boolean(node) ? "yes" : "no");
                if (t == G_TYPE_INT64)
                        return g_strdup_printf("%" G_GINT64_FORMAT, json_node_get_int(node));
        }
        if (JSON_NODE_HOLDS_ARRAY(node)) {
                JsonArray *a = json_node_get_array(node);
                GString *s = g_string_new(NULL);
                for (guint i = 0; i < json_array_get_length(a); i++) {
                        g_autofree char *v = ctl_json_value_text(json_array_get_element(a, i));
                        g_string_append_printf(s, "%s%s", i ? " " : "", v);
                }
                return g_string_free(s, FALSE);
        }
        return ctl_json_to_string(node, false);
}

/* -o value: a scalar alone; an object's values one per line; an array's
 * elements one per line, an object element as its values separated by a
 * tab (a row of a listing). */
static void print_values(JsonNode *node) {
        if (JSON_NODE_HOLDS_OBJECT(node)) {
                g_autoptr(GList) members = json_object_get_members(json_node_get_object(node));
                for (GList *l = members; l; l = l->next) {
                        g_autofree char *v = ctl_json_value_text(
                                json_object_get_member(json_node_get_object(node), l->data));
                        printf("%s\n", v);
                }
                return;
        }
        if (JSON_NODE_HOLDS_ARRAY(node)) {
                JsonArray *a = json_node_get_array(node);
                for (guint i = 0; i < json_array_get_length(a); i++) {
                        JsonNode *e = json_array_get_element(a, i);
                        if (JSON_NODE_HOLDS_OBJECT(e)) {
                                JsonObject *o = json_node_get_object(e);
                                g_autoptr(GList) members = json_object_get_members(o);
                                for (GList *l = members; l; l = l->next) {
                                        g_autofree char *v = ctl_json_value_text(
                                                json_object_get_member(o, l->data));
                                        printf("%s%s", l == members ? "" : "\t", v);
                                }
                                putchar('\n');
                        } else {
                                g_autofree char *v = ctl_json_value_text(e);
                                printf("%s\n", v);
                        }
                }
                return;
        }
        g_autofree char *v = ctl_json_value_text(node);
        ctl_print_text(v);
}

int ctl_output(Ctl *c, JsonNode *node, CtlHumanPrinter human, const void *userdata) {
        if (ctl_json_mode(c)) {
                g_autofree char *text = ctl_json_to_string(node, c->output == CTL_OUTPUT_JSON_PRETTY);
                printf("%s\n", text);
        } else if (c->output == CTL_OUTPUT_VALUE || !human) {
                print_values(node);
        } else {
                human(c, node, userdata);
        }
        return EXIT_OK;
}

int ctl_output_string(Ctl *c, const char *key, const char *value) {
        g_autoptr(JsonObject) o = json_object_new();
        g_autoptr(JsonNode) node = NULL;

        if (!ctl_json_mode(c)) {
                printf("%s\n", value);
                return EXIT_OK;
        }
        json_object_set_string_member(o, key, value);
        node = json_node_init_object(json_node_alloc(), o);
        return ctl_output(c, node, NULL, NULL);
}

/* A table of an array of objects: one column per CtlColumn, aligned,
 * with a header unless --no-legend. */
void ctl_print_columns(const Ctl *c, const CtlColumn *cols, size_t n, JsonArray *rows) {
        guint nrows = json_array_get_length(rows);
        g_autofree int *width = g_new0(int, n);
        g_autoptr(GPtrArray) cells = g_ptr_array_new_with_free_func(g_free);

        for (size_t j = 0; j < n; j++)
                width[j] = c->no_legend ? 0 : (int)strlen(cols[j].header);
        for (guint i = 0; i < nrows; i++) {
                JsonObject *o = json_array_get_object_element(rows, i);
                for (size_t j = 0; j < n; j++) {
                        JsonNode *v = json_object_get_member(o, cols[j].key);
                        char *text = cols[j].format ? cols[j].format(v) : ctl_json_value_text(v);
                        if (!text[0] || (v && JSON_NODE_HOLDS_NULL(v))) {
                                g_free(text);
                                text = g_strdup("-");
                        }
                        width[j] = MAX(width[j], (int)g_utf8_strlen(text, -1));
                        g_ptr_array_add(cells, text);
                }
        }
        if (!c->no_legend) {
                for (size_t j = 0; j < n; j++)
                        printf("%-*s%s", j + 1 < n ? width[j] : 0, cols[j].header, j + 1 < n ? "  " : "\n");
        }
        for (guint i = 0; i < nrows; i++) {
                for (size_t j = 0; j < n; j++) {
                        const char *text = cells->pdata[i * n + j];
                        int pad = j + 1 < n ? width[j] - (int)g_utf8_strlen(text, -1) : 0;
                        /* colour codes around the text, the padding after them */
                        printf("%s%s%s%*s%s", ctl_color_on(c, cols[j].color, text), text,
                               ctl_color_off(c, cols[j].color, text), MAX(pad, 0), "",
                               j + 1 < n ? "  " : "\n");
                }
        }
}
