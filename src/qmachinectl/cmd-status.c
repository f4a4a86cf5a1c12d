/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qmachinectl status NAME: what `machinectl status` tells of a machine
 * (state and since when, QEMU, owner, addresses, the end of its log and
 * its last events), built as one JSON object that --json prints as it is.
 */
#include "ctl.h"

#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define LOG_LINES 10
#define LAST_EVENTS 5

static JsonNode *prop(GPtrArray *props, const char *name) {
        CtlProperty *p = ctl_find_property(props, name);
        return p ? p->value : NULL;
}

static const char *prop_string(GPtrArray *props, const char *name) {
        JsonNode *n = prop(props, name);
        return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING
                ? json_node_get_string(n)
                : "";
}

static gint64 prop_int(GPtrArray *props, const char *name, gint64 fallback) {
        JsonNode *n = prop(props, name);
        return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_INT64
                ? json_node_get_int(n)
                : fallback;
}

static void set_copy(JsonObject *o, const char *key, JsonNode *value) {
        if (value)
                json_object_set_member(o, key, json_node_copy(value));
        else
                json_object_set_null_member(o, key);
}

static void set_string_or_null(JsonObject *o, const char *key, const char *value) {
        if (value && value[0])
                json_object_set_string_member(o, key, value);
        else
                json_object_set_null_member(o, key);
}

/* "5min ago", "1h 3min ago", "2 days 4h ago": systemd's relative time. */
static char *format_ago(gint64 usec) {
        gint64 s = MAX(usec, 0) / G_USEC_PER_SEC;

        if (s >= 86400)
                return g_strdup_printf("%" G_GINT64_FORMAT " day%s %" G_GINT64_FORMAT "h ago", s / 86400,
                                       s / 86400 == 1 ? "" : "s", s % 86400 / 3600);
        if (s >= 3600)
                return g_strdup_printf("%" G_GINT64_FORMAT "h %" G_GINT64_FORMAT "min ago", s / 3600,
                                       s % 3600 / 60);
        if (s >= 60)
                return g_strdup_printf("%" G_GINT64_FORMAT "min %" G_GINT64_FORMAT "s ago", s / 60, s % 60);
        return g_strdup_printf("%" G_GINT64_FORMAT "s ago", s);
}

/* "Thu 2026-12-04 21:00:00 UTC; 5min ago" of a CLOCK_REALTIME µs time. */
static char *format_since(gint64 usec) {
        g_autoptr(GDateTime) dt = g_date_time_new_from_unix_local(usec / G_USEC_PER_SEC);
        g_autofree char *when = dt ? g_date_time_format(dt, "%a %Y-%m-%d %H:%M:%S %Z") : NULL;
        g_autofree char *ago = format_ago(g_get_real_time() - usec);

        return g_strdup_printf("%s; %s", when ? when : "?", ago);
}

static void set_owner(Ctl *c, JsonObject *o, gint64 uid) {
        g_autoptr(JsonObject) owner = json_object_new();
        struct passwd pw, *found = NULL;
        char buf[4096];

        json_object_set_int_member(owner, "uid", uid);
        /* a user name of this host means nothing for another's uid */
        if (!c->host && uid >= 0 && getpwuid_r((uid_t)uid, &pw, buf, sizeof(buf), &found) == 0 && found)
                json_object_set_string_member(owner, "user", found->pw_name);
        else
                json_object_set_null_member(owner, "user");
        json_object_set_object_member(o, "owner", g_steal_pointer(&owner));
}

static void set_ports(JsonObject *o, JsonNode *ports) {
        g_autoptr(JsonArray) a = json_array_new();

        if (ports && JSON_NODE_HOLDS_OBJECT(ports)) {
                JsonObject *map = json_node_get_object(ports);
                g_autoptr(GList) members = json_object_get_members(map);
                for (GList *l = members; l; l = l->next) {
                        JsonObject *row = json_object_new();
                        json_object_set_int_member(row, "guest", g_ascii_strtoll(l->data, NULL, 10));
                        json_object_set_int_member(row, "host", json_object_get_int_member(map, l->data));
                        json_array_add_object_element(a, row);
                }
        }
        json_object_set_array_member(o, "forwarded_ports", g_steal_pointer(&a));
}

/* The last LOG_LINES lines of GetLog. */
static void set_log(Ctl *c, JsonObject *o, const char *path) {
        g_autoptr(sd_bus_message) reply = NULL;
        g_autoptr(JsonArray) lines = json_array_new();
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *log = NULL;
        g_auto(GStrv) split = NULL;
        guint n, first;

        if (sd_bus_call_method(c->bus, QM_BUS_NAME, path, QM_MACHINE_IFACE, "GetLog", &error, &reply, "") < 0 ||
            sd_bus_message_read(reply, "s", &log) < 0) {
                sd_bus_error_free(&error);
                json_object_set_null_member(o, "log"); /* not allowed: not shown */
                return;
        }
        split = g_strsplit(log, "\n", -1);
        n = g_strv_length(split);
        if (n > 0 && split[n - 1][0] == '\0')
                n--; /* after the last newline */
        first = n > LOG_LINES ? n - LOG_LINES : 0;
        for (guint i = first; i < n; i++)
                json_array_add_string_element(lines, split[i]);
        json_object_set_array_member(o, "log", g_steal_pointer(&lines));
}

/* The last LAST_EVENTS events, as {seq, event}; QEMU's text of each in
 * @raw (NULL when they cannot be read), which --json and the event lines
 * print: the tree has QEMU's numbers as json-glib mangles them. */
static void set_events(Ctl *c, JsonObject *o, const char *path, gint64 sequence, GPtrArray **raw) {
        g_autoptr(sd_bus_message) reply = NULL;
        g_autoptr(JsonArray) events = json_array_new();
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t after = sequence > LAST_EVENTS ? (uint64_t)sequence - LAST_EVENTS : 0;
        const char *json;
        uint64_t seq;
        int r;

        r = sd_bus_call_method(c->bus, QM_BUS_NAME, path, QM_MACHINE_IFACE, "GetEvents", &error, &reply, "t",
                               after);
        sd_bus_error_free(&error);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(ts)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(ts)", &seq, &json)) > 0) {
                JsonObject *e = json_object_new();
                JsonNode *parsed = ctl_json_parse(json);
                json_object_set_int_member(e, "seq", (gint64)seq);
                if (parsed)
                        json_object_set_member(e, "event", parsed);
                else
                        json_object_set_string_member(e, "event", json);
                json_array_add_object_element(events, e);
                g_ptr_array_add(*raw, ctl_event_new(seq, json));
        }
        if (r < 0) {
                json_object_set_null_member(o, "events");
                g_clear_pointer(raw, g_ptr_array_unref);
        } else {
                json_object_set_array_member(o, "events", g_steal_pointer(&events));
        }
}

static void set_state(JsonObject *o, GPtrArray *props) {
        const char *state = prop_string(props, "State");
        gint64 launched = prop_int(props, "LaunchTimestamp", 0);
        gint64 pid = prop_int(props, "Pid", 0);
        gint64 exit_code = prop_int(props, "ExitCode", -1000);

        json_object_set_string_member(o, "state", state);
        set_string_or_null(o, "run_state", prop_string(props, "RunState"));
        if (pid > 0)
                json_object_set_int_member(o, "pid", pid);
        else
                json_object_set_null_member(o, "pid");
        if (launched > 0)
                json_object_set_int_member(o, "launch_timestamp", launched);
        else
                json_object_set_null_member(o, "launch_timestamp");
        /* "since" while QEMU runs: the time of the launch */
        if (launched > 0 && pid > 0) {
                g_autofree char *since = format_since(launched);
                json_object_set_string_member(o, "since", since);
        } else {
                json_object_set_null_member(o, "since");
        }
        if (exit_code == -1000)
                json_object_set_null_member(o, "exit_code");
        else
                json_object_set_int_member(o, "exit_code", exit_code);
}

/* What Config says (only root and the owner may read it). */
static void set_config(Ctl *c, JsonObject *o, const char *path) {
        g_autoptr(CtlProperty) config = ctl_get_property(c, path, QM_MACHINE_IFACE, "Config", NULL);
        JsonObject *cfg = config && JSON_NODE_HOLDS_OBJECT(config->value)
                ? json_node_get_object(config->value)
                : NULL;

        if (cfg && json_object_has_member(cfg, "description"))
                set_copy(o, "description", json_object_get_member(cfg, "description"));
        else
                json_object_set_null_member(o, "description");
        if (cfg)
                json_object_set_boolean_member(
                        o, "autostart", json_object_get_boolean_member_with_default(cfg, "autostart", false));
        else
                json_object_set_null_member(o, "autostart");
}

static void set_command_line(Ctl *c, JsonObject *o, const char *path) {
        g_autoptr(CtlProperty) p = ctl_get_property(c, path, QM_MACHINE_IFACE, "CommandLine", NULL);

        set_copy(o, "command_line", p ? p->value : NULL);
}

static JsonNode *build_status(Ctl *c, const char *path, GPtrArray *props, GPtrArray **events) {
        JsonObject *o = json_object_new();
        JsonNode *node;

        json_object_set_string_member(o, "name", prop_string(props, "Name"));
        set_config(c, o, path);
        set_state(o, props);
        set_string_or_null(o, "qemu_version", prop_string(props, "QemuVersion"));
        set_owner(c, o, prop_int(props, "Owner", -1));
        json_object_set_string_member(o, "uuid", prop_string(props, "UUID"));
        set_copy(o, "persistent", prop(props, "Persistent"));
        set_copy(o, "mac_addresses", prop(props, "MacAddresses"));
        set_ports(o, prop(props, "ForwardedPorts"));
        set_copy(o, "guest_agent_connected", prop(props, "GuestAgentConnected"));
        set_string_or_null(o, "kernel_crash", prop_string(props, "KernelCrash"));
        json_object_set_int_member(o, "event_sequence", prop_int(props, "EventSequence", 0));
        set_command_line(c, o, path);
        json_object_set_string_member(o, "runtime_directory", prop_string(props, "RuntimeDirectory"));
        json_object_set_string_member(o, "log_directory", prop_string(props, "LogDirectory"));
        set_log(c, o, path);
        set_events(c, o, path, prop_int(props, "EventSequence", 0), events);
        node = json_node_init_object(json_node_alloc(), o);
        json_object_unref(o);
        return node;
}

static const char *text_or(JsonObject *o, const char *key, const char *fallback) {
        JsonNode *n = json_object_get_member(o, key);
        return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING
                ? json_node_get_string(n)
                : fallback;
}

static char *member_text(JsonObject *o, const char *key, const char *fallback) {
        JsonNode *n = json_object_get_member(o, key);
        g_autofree char *text = ctl_json_value_text(n);

        return g_strdup(text[0] ? text : fallback);
}

static void print_header(const Ctl *c, JsonObject *o) {
        const char *name = text_or(o, "name", "");
        const char *description = text_or(o, "description", NULL);
        const char *state = text_or(o, "state", "");
        const char *since = text_or(o, "since", NULL);

        if (description && !description[0])
                description = NULL; /* no " - " after the name */
        printf("%s%s%s%s%s\n", ctl_color_on(c, CTL_COLOR_BOLD, NULL), name,
               ctl_color_off(c, CTL_COLOR_BOLD, NULL), description ? " - " : "",
               description ? description : "");
        printf("%16s: %s\n", "Name", name);
        printf("%16s: %s%s%s%s%s\n", "State", ctl_color_on(c, CTL_COLOR_STATE, state), state,
               ctl_color_off(c, CTL_COLOR_STATE, state), since ? " since " : "", since ? since : "");
}

static void print_owner(JsonObject *o) {
        JsonObject *owner = json_object_get_object_member(o, "owner");
        const char *user = text_or(owner, "user", NULL);

        if (user)
                printf("%16s: %" G_GINT64_FORMAT " (%s)\n", "Owner",
                       json_object_get_int_member(owner, "uid"), user);
        else
                printf("%16s: %" G_GINT64_FORMAT "\n", "Owner", json_object_get_int_member(owner, "uid"));
}

static void print_ports(JsonObject *o) {
        JsonArray *a = json_object_get_array_member(o, "forwarded_ports");
        GString *s = g_string_new(NULL);

        for (guint i = 0; i < json_array_get_length(a); i++) {
                JsonObject *row = json_array_get_object_element(a, i);
                g_string_append_printf(s, "%s%" G_GINT64_FORMAT ":%" G_GINT64_FORMAT, i ? " " : "",
                                       json_object_get_int_member(row, "guest"),
                                       json_object_get_int_member(row, "host"));
        }
        printf("%16s: %s\n", "ForwardedPorts", s->len ? s->str : "-");
        g_string_free(s, TRUE);
}

/* @raw: the same event as QEMU wrote it, for its data. */
static void print_event(JsonObject *e, const CtlEvent *raw) {
        JsonNode *ev = json_object_get_member(e, "event");
        JsonObject *eo = ev && JSON_NODE_HOLDS_OBJECT(ev) ? json_node_get_object(ev) : NULL;
        g_autofree char *data = NULL;
        g_autofree char *when = NULL;

        if (eo && json_object_has_member(eo, "data"))
                data = ctl_event_member(raw, "data");
        if (eo && json_object_has_member(eo, "timestamp")) {
                JsonObject *ts = json_object_get_object_member(eo, "timestamp");
                g_autoptr(GDateTime) dt = ts
                        ? g_date_time_new_from_unix_local(
                                  json_object_get_int_member_with_default(ts, "seconds", 0))
                        : NULL;
                when = dt ? g_date_time_format(dt, "%H:%M:%S") : NULL;
        }
        printf("  %" G_GINT64_FORMAT " %s %s%s%s\n", json_object_get_int_member(e, "seq"), when ? when : "-",
               eo ? json_object_get_string_member_with_default(eo, "event", "?") : "?", data ? " " : "",
               data ? data : "");
}

static void print_tail(JsonObject *o, GPtrArray *raw) {
        JsonNode *log = json_object_get_member(o, "log");
        JsonNode *events = json_object_get_member(o, "events");

        if (log && JSON_NODE_HOLDS_ARRAY(log) && json_array_get_length(json_node_get_array(log)) > 0) {
                JsonArray *a = json_node_get_array(log);
                printf("\nLog (last lines):\n");
                for (guint i = 0; i < json_array_get_length(a); i++)
                        printf("  %s\n", json_array_get_string_element(a, i));
        }
        if (raw && events && JSON_NODE_HOLDS_ARRAY(events) &&
            json_array_get_length(json_node_get_array(events)) > 0) {
                JsonArray *a = json_node_get_array(events);
                printf("\nEvents (last):\n");
                for (guint i = 0; i < json_array_get_length(a) && i < raw->len; i++)
                        print_event(json_array_get_object_element(a, i), raw->pdata[i]);
        }
}

static void print_status(const Ctl *c, JsonNode *node, const void *userdata) {
        JsonObject *o = json_node_get_object(node);
        JsonNode *launched = json_object_get_member(o, "launch_timestamp");

#define ROW(label, key, fallback)                                    \
        do {                                                         \
                g_autofree char *v_ = member_text(o, key, fallback); \
                printf("%16s: %s\n", label, v_);                     \
        } while (0)
        print_header(c, o);
        ROW("RunState", "run_state", "-");
        ROW("Pid", "pid", "-");
        ROW("ExitCode", "exit_code", "unknown");
        ROW("QemuVersion", "qemu_version", "-");
        print_owner(o);
        ROW("UUID", "uuid", "-");
        ROW("Persistent", "persistent", "-");
        ROW("Autostart", "autostart", "(only root and the owner may read it)");
        if (json_object_get_null_member(o, "since")) {
                g_autofree char *since = launched && !JSON_NODE_HOLDS_NULL(launched)
                        ? format_since(json_node_get_int(launched))
                        : g_strdup("never");
                printf("%16s: %s\n", "Launched", since);
        }
        ROW("MacAddresses", "mac_addresses", "-");
        print_ports(o);
        printf("%16s: %s\n", "GuestAgent",
               json_object_get_boolean_member_with_default(o, "guest_agent_connected", false)
                       ? "connected"
                       : "not connected");
        ROW("EventSequence", "event_sequence", "0");
        ROW("KernelCrash", "kernel_crash", "none");
        ROW("CommandLine", "command_line", "(only root and the owner may read it)");
        ROW("RuntimeDirectory", "runtime_directory", "-");
        ROW("LogDirectory", "log_directory", "-");
#undef ROW
        print_tail(o, (GPtrArray *)userdata);
}

/* --json: the tree without its events, then the events as QEMU wrote them. */
static int print_status_json(const Ctl *c, JsonNode *node, GPtrArray *events) {
        g_autoptr(GString) text = g_string_new(NULL);

        json_object_remove_member(json_node_get_object(node), "events");
        ctl_json_append_node(text, node);
        g_string_truncate(text, text->len - 1); /* the closing brace */
        if (text->str[text->len - 1] != '{')
                g_string_append_c(text, ',');
        g_string_append(text, "\"events\":");
        if (events)
                ctl_json_append_events(text, events);
        else
                g_string_append(text, "null");
        g_string_append_c(text, '}');
        return ctl_output_json_text(c, text->str);
}

int cmd_status(Ctl *c, int argc, char **argv) {
        g_autoptr(GPtrArray) props = g_ptr_array_new_with_free_func((GDestroyNotify)ctl_property_free);
        g_autoptr(GPtrArray) events = g_ptr_array_new_with_free_func((GDestroyNotify)ctl_event_free);
        g_autoptr(JsonNode) node = NULL;
        g_autofree char *path = NULL;
        int r;

        r = ctl_machine_path(c, argv[0], &path);
        if (r != EXIT_OK)
                return r;
        r = ctl_get_all_properties(c, path, QM_MACHINE_IFACE, props);
        if (r != EXIT_OK)
                return r;
        /* the log, events and config are extras: no password prompt for them */
        sd_bus_set_allow_interactive_authorization(c->bus, false);
        node = build_status(c, path, props, &events);
        sd_bus_set_allow_interactive_authorization(c->bus, c->ask_password);
        ctl_pager_open(c);
        if (ctl_json_mode(c))
                return print_status_json(c, node, events);
        return ctl_output(c, node, print_status, events);
}
