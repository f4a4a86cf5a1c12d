/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qmachinectl: shared declarations of the command-line client. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC(sd_bus_message, sd_bus_message_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(sd_bus_slot, sd_bus_slot_unref)

#define QM_BUS_NAME "org.qmachine.QMachine1"
#define QM_MANAGER_PATH "/org/qmachine/QMachine1"
#define QM_MANAGER_IFACE "org.qmachine.QMachine1.Manager"
#define QM_MACHINE_IFACE "org.qmachine.QMachine1.Machine"
#define QM_MACHINE_PATH_PREFIX "/org/qmachine/QMachine1/machine"

/* Exit codes. */
#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2

/* Options of the commands (each command accepts a subset). */
typedef struct {
        double timeout;
        bool timeout_set;
        bool force;
        uint64_t after;
        unsigned hold_ms;
        const char *machine;
        const char *binary;
        const char *uuid;
        const char *incoming;
        const char *description;
        const char *console_device;
        const char *backing;
        GPtrArray *args;    /* const char * */
        GPtrArray *wrapper; /* const char * */
        bool persistent;
        bool console;
        bool no_qmp;
        bool offline;
        bool nics_set;
        unsigned nics;
        bool console_index_set;
        unsigned console_index;
        bool qmp_timeout_set;
        double qmp_timeout;
        bool cluster_size_set;
        uint64_t cluster_size;
        bool cancel_after_set;
        double cancel_after;
        double drain;
        /* migrate --to */
        const char *to;
        const char *dname;
        const char *listen_address;
        bool undefine_source;
        bool bandwidth_set;
        uint64_t bandwidth;
        bool downtime_limit_set;
        uint64_t downtime_limit;
        bool auto_converge;
        bool postcopy;
        bool postcopy_after_set;
        double postcopy_after;
        uint32_t mode; /* copy-to --mode */
        bool paused;
        bool no_kill;          /* wait --no-kill */
        GPtrArray *properties; /* show -p: const char * */
        bool value;            /* show --value */
} CtlOptions;

/* -o/--output, --json */
typedef enum {
        CTL_OUTPUT_TABLE,
        CTL_OUTPUT_JSON, /* one line */
        CTL_OUTPUT_JSON_PRETTY,
        CTL_OUTPUT_VALUE,
} CtlOutputMode;

typedef struct {
        bool session;
        const char *address;
        const char *host; /* -H [USER@]HOST: the system bus there, over ssh */
        bool ask_password;
        sd_bus *bus;
        CtlOptions o;
        CtlOutputMode output;
        bool no_legend;
        bool no_pager;
        bool quiet;
        bool color;    /* ctl_setup_color() */
        int pager_pid; /* 0: no pager */
} Ctl;

/* bus.c */
int ctl_connect(Ctl *c);
void ctl_disconnect(Ctl *c);
int ctl_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
int ctl_bus_error(const sd_bus_error *error, int r);
uint64_t ctl_timeout_usec(double seconds);
/* Send a call built by hand and wait for its reply (when @reply, kept);
 * EXIT_OK, or the error reported on stderr and EXIT_FAIL. A method that
 * passes fds fails at once where the connection cannot carry them. */
int ctl_send(Ctl *c, sd_bus_message *m, uint64_t usec, sd_bus_message **reply);
int ctl_call(Ctl *c, const char *path, const char *iface, const char *member, uint64_t usec,
             sd_bus_message **reply, const char *types, ...);
int ctl_manager_call(Ctl *c, const char *member, uint64_t usec, sd_bus_message **reply, const char *types,
                     ...);
int ctl_machine_path(Ctl *c, const char *name, char **path);
int ctl_machine_call(Ctl *c, const char *name, const char *member, uint64_t usec, sd_bus_message **reply,
                     const char *types, ...);
int ctl_get_string_property(Ctl *c, const char *path, const char *iface, const char *property, char **value);
/* Whether the connection can pass file descriptors (not over ssh). */
bool ctl_can_pass_fds(Ctl *c);
/* EXIT_OK when it can; else prints why @what cannot work here and returns
 * EXIT_FAIL. ctl_call() does this itself for the methods that pass fds. */
int ctl_require_fd_passing(Ctl *c, const char *what);

/* remote.c */
int ctl_remote_console(Ctl *c, const char *name);

/* util.c */
int ctl_parse_size(const char *s, uint64_t *ret);
int ctl_parse_double(const char *s, double *ret);
int ctl_parse_uint(const char *s, unsigned *ret);
int ctl_parse_u64(const char *s, uint64_t *ret);
char *ctl_format_size(uint64_t bytes);

char *ctl_json_pretty(const char *text);
bool ctl_json_has_member(const char *text, const char *member);
void ctl_print_text(const char *text);
char *ctl_shell_join(char **argv);

/* output.c */
typedef enum {
        CTL_COLOR_NONE,
        CTL_COLOR_BOLD,
        CTL_COLOR_STATE, /* by the text: running green, failed red */
} CtlColor;

typedef struct {
        const char *header;
        const char *key;             /* member of each row object */
        char *(*format)(JsonNode *); /* NULL: ctl_json_value_text */
        CtlColor color;
} CtlColumn;

typedef void (*CtlHumanPrinter)(const Ctl *c, JsonNode *node, const void *userdata);

int ctl_parse_output(const char *s, CtlOutputMode *ret);
int ctl_parse_json(const char *s, CtlOutputMode *ret);
bool ctl_json_mode(const Ctl *c);
void ctl_setup_color(Ctl *c);
const char *ctl_color_on(const Ctl *c, CtlColor color, const char *text);
const char *ctl_color_off(const Ctl *c, CtlColor color, const char *text);
/* An informational message on stderr; nothing with -q. */
void ctl_info(const Ctl *c, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
void ctl_pager_open(Ctl *c);
void ctl_pager_close(Ctl *c);
JsonNode *ctl_json_parse(const char *text);
char *ctl_json_to_string(JsonNode *node, bool pretty);
void ctl_json_set_bytes(JsonObject *o, const char *key, const void *data, size_t len);
char *ctl_json_value_text(JsonNode *node);
/* Prints @node as JSON, as values, or (table mode) with @human; with
 * @human NULL as values in every mode but JSON. */
int ctl_output(Ctl *c, JsonNode *node, CtlHumanPrinter human, const void *userdata);
/* One string: as a line, or {"@key": "@value"} with --json. */
int ctl_output_string(Ctl *c, const char *key, const char *value);
void ctl_print_columns(const Ctl *c, const CtlColumn *cols, size_t n, JsonArray *rows);

/* json-text.c: JSON text around QEMU's JSON text, which goes out
 * unchanged (json-glib would turn 18446744073709551615 into -1). */
typedef struct {
        uint64_t seq;
        char *json; /* as QEMU sent it */
} CtlEvent;

CtlEvent *ctl_event_new(uint64_t seq, const char *json);
void ctl_event_free(CtlEvent *e);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CtlEvent, ctl_event_free)
/* @json laid out again, compact or indented as json-glib does, numbers
 * and strings as they are; NULL if it is not one strict JSON value. */
char *ctl_json_layout(const char *json, bool pretty);
/* Append compact JSON: a tree (json-glib), a string, QEMU's text (as a
 * string when it is not JSON), {"seq": N, "event": QEMU's text}, or an
 * array of those (CtlEvent *). */
void ctl_json_append_node(GString *s, JsonNode *node);
void ctl_json_append_string(GString *s, const char *value);
void ctl_json_append_qemu(GString *s, const char *json);
void ctl_json_append_event(GString *s, const CtlEvent *e);
void ctl_json_append_events(GString *s, GPtrArray *events);
/* The compact text of @member of an event object; NULL if none. */
char *ctl_event_member(const CtlEvent *e, const char *member);
/* Prints compact JSON text as -o json or json-pretty asks. */
int ctl_output_json_text(const Ctl *c, const char *compact);

/* props.c: D-Bus properties as JSON (show, status). */
typedef struct {
        char *name;
        char *signature;
        JsonNode *value;
} CtlProperty;

void ctl_property_free(CtlProperty *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CtlProperty, ctl_property_free)
/* Reads one value of any type at the message's position into JSON. */
int ctl_read_json(sd_bus_message *m, JsonNode **ret);
/* GetAll of @iface at @path, in the daemon's order, into @props
 * (CtlProperty *, freed by the array). */
int ctl_get_all_properties(Ctl *c, const char *path, const char *iface, GPtrArray *props);
/* One property by name; NULL when it cannot be read (@why set). */
CtlProperty *ctl_get_property(Ctl *c, const char *path, const char *iface, const char *name, char **why);
CtlProperty *ctl_find_property(GPtrArray *props, const char *name);
/* show's text of a value: as space separated, a{qq} GUEST:HOST pairs,
 * booleans yes/no, other containers as JSON. */
char *ctl_property_text(const CtlProperty *p);

/* Commands: each returns an exit code. */
int cmd_list(Ctl *c, int argc, char **argv);
int cmd_status(Ctl *c, int argc, char **argv);
int cmd_show(Ctl *c, int argc, char **argv);
/* cmd-wait.c: wait --no-kill */
int ctl_wait_no_kill(Ctl *c, const char *name, double timeout);
int cmd_create(Ctl *c, int argc, char **argv);
int cmd_clone(Ctl *c, int argc, char **argv);
int cmd_remove(Ctl *c, int argc, char **argv);
int cmd_enable(Ctl *c, int argc, char **argv);
int cmd_powerdown_all(Ctl *c, int argc, char **argv);
int cmd_disable(Ctl *c, int argc, char **argv);
int cmd_start(Ctl *c, int argc, char **argv);
int cmd_stop(Ctl *c, int argc, char **argv);
int cmd_kill(Ctl *c, int argc, char **argv);
int cmd_wait(Ctl *c, int argc, char **argv);
int cmd_powerdown(Ctl *c, int argc, char **argv);
int cmd_pause(Ctl *c, int argc, char **argv);
int cmd_resume(Ctl *c, int argc, char **argv);
int cmd_reset(Ctl *c, int argc, char **argv);
int cmd_send_key(Ctl *c, int argc, char **argv);
int cmd_migrate(Ctl *c, int argc, char **argv);
int cmd_version(Ctl *c, int argc, char **argv);

int cmd_qmp(Ctl *c, int argc, char **argv);
int cmd_command(Ctl *c, int argc, char **argv);
int cmd_events(Ctl *c, int argc, char **argv);
int cmd_wait_event(Ctl *c, int argc, char **argv);
int cmd_log(Ctl *c, int argc, char **argv);
int cmd_console_output(Ctl *c, int argc, char **argv);

int cmd_monitor(Ctl *c, int argc, char **argv);
int cmd_console(Ctl *c, int argc, char **argv);
int cmd_expect(Ctl *c, int argc, char **argv);
int cmd_send(Ctl *c, int argc, char **argv);

int cmd_exec(Ctl *c, int argc, char **argv);
int cmd_copy_to(Ctl *c, int argc, char **argv);
int cmd_copy_from(Ctl *c, int argc, char **argv);
int cmd_save(Ctl *c, int argc, char **argv);
int cmd_restore(Ctl *c, int argc, char **argv);

int cmd_images(Ctl *c, int argc, char **argv);
int cmd_image_create(Ctl *c, int argc, char **argv);
int cmd_image_check(Ctl *c, int argc, char **argv);
int cmd_image_remove(Ctl *c, int argc, char **argv);

int cmd_port(Ctl *c, int argc, char **argv);
