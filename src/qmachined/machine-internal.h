/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Private to the machine*.c files: the struct and what they share. */
#pragma once

#include "guest-agent.h"
#include "machine.h"
#include "user-lookup.h"

typedef struct QmSave QmSave;
typedef struct QmRestore QmRestore;
typedef struct QmIncoming QmIncoming;

/* An fd given with AddFd, kept for the next launch. */
typedef struct {
        int fd;
        guint32 fdset;
        char *opaque;
        char *opts;
} QmHeldFd;

struct Machine {
        /* While a guest that left comes back (machine_prepare_comeback):
         * the migrated definition, restored if it does not arrive. */
        QmConfig *comeback_config;
        char *comeback_from;
        QmDaemon *daemon;
        char *name;
        char *path;
        QmConfig *config;
        GVariant *config_variant; /* the Config property, built once */
        const MachineNotify *notify;
        gpointer front; /* the front end's own data */

        QmState state;
        char *run_state;
        int exit_code;
        char **command_line;
        char *qemu_version;
        guint64 launch_timestamp;
        char *runtime_dir;
        char *log_dir;
        char *qmp_socket;
        char *console_socket;

        QemuProcess *process;
        QmpClient *qmp;
        QmConsole *console;
        QmByteRing *console_output; /* this run's, kept after exit */
        QmCrashScan *crash_scan;
        char *kernel_crash;
        guint64 console_bytes;      /* console output of this run, retained or not */
        GPtrArray *console_waiters; /* WaitConsole callers (NULL: none yet) */
        guint console_reconnect_timer;
        guint console_reconnects; /* in a row, with no output in between */

        QmEventRing *events;
        guint64 event_seq;
        guint64 event_mark; /* numbers up to here are reserved on disk */
        guint64 reserve;      /* numbers reserved by the last reservation */
        gint64 reserve_time;  /* when it was made (monotonic µs) */
        QmEventWaiters *waiters; /* WaitEvent callers */

        GArray *add_fds; /* QmHeldFd */
        QmMigration *migration;
        QmReply *launch_call;
        guint launch_timer;
        guint announce_seq_id;  /* EventSequence change to announce */
        guint reconnect_timer;  /* QMP of a taken-back QEMU, again */
        guint reconnect_attempts;
        gboolean taken_back;    /* this QEMU was started by an earlier daemon */
        guint handshake_timer; /* reconnects a stalled QMP handshake */
        gboolean launch_retried;  /* this Launch started QEMU a second time */
        gboolean relaunching;     /* the exit being waited for is a retry's */
        guint handshake_delay_ms;
        guint dropped_connections; /* monitor connections QEMU closed ungreeted, this launch */
        GPtrArray *exit_calls; /* ExitCall: Shutdown/Kill/Wait waiting for exit */
        char *launch_error;     /* why the launch is failing, if known */
        gboolean quit_issued;   /* quit was sent (by us or a client) */
        gboolean exit_expected; /* a Wait caller expects QEMU to exit */
        gboolean guest_shutdown;/* QEMU announced SHUTDOWN */
        gboolean abnormal;      /* we had to SIGKILL after a timeout */
        gboolean killed_by_us;
        gboolean runstate_query_busy;
        gboolean runstate_query_again;
        GArray *forwarded_ports; /* QmPortPair: forward-ports of this run */
        guint port_tries;        /* host port choices in this Launch */
        QmGuestAgent *agent; /* this run's, when config guest-agent */
        GQueue guest_ops;    /* QmGuestOp: GuestExec and copies under way */
        QmSave *save;       /* a Save under way (machine-save.c) */
        QmRestore *restore; /* a Restore's launch under way (machine-save.c) */
        char *migrated_to;  /* the URI the guest left for (state migrated, or quitting for it) */
        QmIncoming *incoming; /* PrepareIncoming's launch under way (machine-incoming.c) */
        QmUserLookup *user_lookup; /* a Launch's user lookup under way (machine-launch.c) */
        QmUserIdentity *launch_user; /* who QEMU runs as, for this Launch and its retries */
};

#define QM_EXIT_CODE_UNKNOWN (-1000)

void machine_set_state(Machine *m, QmState state);
void machine_kill(Machine *m, int sig);
void machine_launch_done(Machine *m);

/* machine.c: a guest coming back did not arrive: the migrated
 * definition is back (TRUE), or there was none to restore (FALSE). */
gboolean machine_comeback_failed(Machine *m);
/* It arrived: the old definition is dropped. */
void machine_comeback_done(Machine *m);

/* machine-launch.c */
/* Start QEMU for a launch or its retry: sockets, command line, process,
 * console, record, and the QMP handshake under way. */
gboolean machine_spawn_qemu(Machine *m, QmError **error);
void machine_stop_launch_timers(Machine *m);
/* The timer that connects again when the QMP handshake stalls. */
gboolean machine_on_handshake_stall(gpointer data);
/* Answer the held Launch call with LaunchFailed (exit code, command, log). */
void machine_reply_launch_failed(Machine *m);
/* NULL if the daemon can spare the fds of a launch, else LimitExceeded. */
QmError *machine_fd_headroom_error(Machine *m);
/* A Launch still looking up its user ends (as a QEMU that exited at
 * once would end it): TRUE; FALSE when no lookup is under way. */
gboolean machine_launch_abort_lookup(Machine *m);

/* machine.c */
/* QEMU exited (the process watch): state, answers, a launch's retry. */
void machine_on_process_exit(QemuProcess *p, int code, gpointer data);
/* Write the runtime record, reserving event numbers ahead. */
gboolean machine_write_record(Machine *m, GError **error);
void machine_remove_runtime_files(Machine *m);
/* The tail of qemu.log, valid UTF-8 without NUL. */
char *machine_read_log_tail(Machine *m, gsize max);
/* A client left the bus: drop its held exit calls (machine.c). */
void machine_forget_exit_calls(Machine *m, const char *unique_name);
/* The monitor of a taken-back QEMU closed while QEMU lives (machine.c). */
void machine_qmp_lost(Machine *m);
/* `incoming` is for one launch: its migration ended, the key goes. */
void machine_drop_incoming(Machine *m);
/* Write the runtime record (reserving event numbers ahead). */
void machine_save_record(Machine *m);

/* machine-qmp.c */
/* Connect to QEMU's monitor socket again, dropping the old connection. */
gboolean machine_qmp_reconnect(Machine *m, GError **error);
/* Send a command on the machine's monitor with its QMP timeout. */
void machine_qmp_call(Machine *m, const char *command, JsonNode *arguments, QmpReplyFunc func, gpointer data);
QmpClient *machine_qmp_connect(Machine *m, int fd);
/* FALSE when there is no usable monitor to send quit on. */
gboolean machine_qmp_send_quit(Machine *m);
/* FALSE after answering @call with why the monitor cannot be used. */
gboolean machine_qmp_send_powerdown(Machine *m, QmReply *call);

/* machine-migrate.c: answer a running Migrate with MigrateFailed. */
void machine_migration_abort(Machine *m, const char *why);
/* machine-migrate.c: the outcome of a migration the daemon runs for
 * itself (Save, Restore): @error NULL when it completed. */
typedef void (*MachineMigrationDone)(Machine *m, const QmError *error, gpointer data);
/* QMP migrate (migrate-incoming when @incoming) to/from @uri, followed
 * (polled, or a destination by its events) until the outcome, then @done; the caller checked the monitor. FALSE (Busy)
 * when a migration runs already. */
gboolean machine_migration_run(Machine *m, const char *uri, gboolean incoming, double timeout,
                               MachineMigrationDone done, gpointer data, QmError **error);

/* The same without starting it: the command was issued already. */
gboolean machine_migration_watch(Machine *m, const char *uri, gboolean incoming, double timeout,
                                 MachineMigrationDone done, gpointer data, QmError **error);
/* An incoming migration is not polled: ask QEMU once how it stands (a
 * restarted daemon missed the events in between). */
void machine_migration_check(Machine *m);
/* machine-qmp.c passes on the status of each MIGRATION event. */
void machine_migration_event(Machine *m, const char *status);
/* The runtime record names a Migrate under way (a restarted daemon
 * watches it to its end: machine_migration_reattach()). */
void machine_migration_fill_record(Machine *m, QmRunRecord *r);
void machine_migration_reattach(Machine *m, const QmRunRecord *r);
/* A completed live migration waits for QEMU to quit: TRUE meanwhile. */
gboolean machine_migration_handing_over(Machine *m);
/* QEMU quit after the hand-over: answer Migrate (state is migrated). */
void machine_migration_handed_over(Machine *m);
/* NULL, or Migrated when the guest runs elsewhere. */
QmError *machine_migrated_error(Machine *m);

/* machine-incoming.c: PrepareIncoming's part in a launch. */
/* The handshake completed: TRUE if the machine goes on to listen. */
gboolean machine_incoming_take_over(Machine *m);
/* QEMU exited: a machine whose guest did not arrive is removed. */
void machine_incoming_exited(Machine *m);
void machine_incoming_free(Machine *m);
/* The daemon stops: whatever fails now, QEMU lives on for its successor. */
void machine_incoming_detach(Machine *m);
/* What the runtime record says of an incoming migration under way. */
void machine_incoming_fill_record(Machine *m, QmRunRecord *r);

/* machine-save.c: Restore's part in a launch. */
/* Append what this launch needs (-incoming defer, -S) to m->command_line. */
void machine_restore_extend_argv(Machine *m);
/* The handshake completed: TRUE if the Restore goes on loading the state
 * (it calls machine_launch_done() again when the guest runs). */
gboolean machine_restore_take_over(Machine *m);
/* The launch failed: TRUE if Restore answered the held call itself. */
gboolean machine_restore_reply_failed(Machine *m);
/* The machine goes away: forget the Restore. */
void machine_restore_free(Machine *m);
/* The daemon stops: the load goes on for its successor. */
void machine_restore_detach(Machine *m);
/* What the runtime record says of a Save or a Restore under way. */
void machine_save_fill_record(Machine *m, QmRunRecord *r);
/* A restarted daemon finds them: a Save's caller had its error, so the
 * save ends and the guest goes on as before; a Restore's load is
 * watched to its end (the guest runs) or the machine fails. */
void machine_save_reattach(Machine *m, const QmRunRecord *r);
void machine_restore_reattach(Machine *m, const QmRunRecord *r);

/* machine-qmp.c: NULL when the monitor can take commands, else why not. */
QmError *machine_monitor_unavailable(Machine *m);
/* Ask QEMU for the run state (changes without an event, e.g. postmigrate). */
void machine_refresh_run_state(Machine *m);

/* machine-ports.c */
/* Choose this launch's host ports for forward-ports (LaunchFailed when
 * none is free). */
gboolean machine_ports_pick(Machine *m, QmError **error);
/* A launch's QEMU exited: TRUE when it was because a chosen host port was
 * taken and another try is left (else, when that was the cause, sets
 * launch_error). */
gboolean machine_ports_retry_wanted(Machine *m);
/* A restarted daemon takes back the ports of the run's record. */
void machine_ports_restore(Machine *m, const GArray *pairs);

/* machine-console.c */
void machine_console_start(Machine *m, int fd, gboolean append_log);
/* Reads the last output, then closes the console and its clients. */
void machine_console_stop(Machine *m);
void machine_console_reset(Machine *m);

/* machine-console-expect.c */
/* New console output was counted and retained: search the waiters. */
void machine_console_expect_output(Machine *m);
/* A new run: offsets from 0 again. */
void machine_console_expect_restart(Machine *m);
/* QEMU exited: answer every waiter NotRunning. */
void machine_console_waiters_end(Machine *m);
/* The machine goes away: drop the waiters without an answer. */
void machine_console_waiters_free(Machine *m);
/* A client left the bus: drop its waiters. */
void machine_console_waiters_forget(Machine *m, const char *unique_name);
/* machine-agent.c */
char *machine_agent_socket_path(Machine *m);
/* Connect (@fd: made before QEMU started, or -1) and synchronise. */
void machine_agent_start(Machine *m, int fd);
/* The run ended: its guest agent calls answer NotRunning. */
void machine_agent_stop(Machine *m);
/* VSERPORT_CHANGE of the agent's port. */
void machine_agent_on_event(Machine *m, const QmEvent *e);

/* Reports up, through the installed MachineNotify (if any). */
static inline void machine_notify_changed(Machine *m, char **properties) {
        if (m->notify && m->notify->changed)
                m->notify->changed(m, properties);
}

static inline void machine_notify_event(Machine *m, const QmEvent *e) {
        if (m->notify && m->notify->event)
                m->notify->event(m, e);
}

static inline void machine_notify_crash(Machine *m, const char *text) {
        if (m->notify && m->notify->crash)
                m->notify->crash(m, text);
}

static inline gboolean machine_notify_congested(Machine *m) {
        return m->notify && m->notify->congested && m->notify->congested(m);
}
