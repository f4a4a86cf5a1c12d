/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qmachinectl: shared declarations of the command-line client. */
#pragma once

#include <glib.h>
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
} CtlOptions;

typedef struct {
        bool session;
        const char *address;
        const char *host; /* -H [USER@]HOST: the system bus there, over ssh */
        bool ask_password;
        sd_bus *bus;
        CtlOptions o;
} Ctl;

/* bus.c */
int ctl_connect(Ctl *c);
void ctl_disconnect(Ctl *c);
int ctl_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
int ctl_bus_error(const sd_bus_error *error, int r);
uint64_t ctl_timeout_usec(double seconds);
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

/* Print three columns under @headers, aligned; @rows holds char*[3]. */
void ctl_print_table(const char *const headers[3], GPtrArray *rows);
char *ctl_json_pretty(const char *text);
bool ctl_json_has_member(const char *text, const char *member);
void ctl_print_text(const char *text);
char *ctl_shell_join(char **argv);

/* Commands: each returns an exit code. */
int cmd_list(Ctl *c, int argc, char **argv);
int cmd_status(Ctl *c, int argc, char **argv);
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
