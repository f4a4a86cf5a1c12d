/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One virtual machine: its config, its state machine and its QEMU. */
#pragma once

#include "config.h"
#include "console.h"
#include "console-expect.h"
#include "daemon.h"
#include "events.h"
#include "qemu-process.h"
#include "persist.h"
#include "qmp.h"

/*
 * States and the only transitions between them (machine_set_state()):
 *
 *   defined|stopped|failed --Launch--> starting
 *   starting --QMP ready (or spawned without QMP)--> running
 *   starting --exit, handshake timeout, kill--> failed
 *   running --Shutdown/Wait--> stopping
 *   running|stopping --exit--> stopped  (status 0 after our or a client's
 *                                        quit, a guest SHUTDOWN, or Wait)
 *                              failed   (anything else: crash, signal,
 *                                        an exit nobody asked for)
 *   running --Migrate completed, quit, exit--> migrated  (the guest runs on
 *                                        the destination: Launch, Resume,
 *                                        Reset, Restore refuse)
 *   migrated --UpdateMachine, or an incoming migration back--> defined
 *
 * PrepareIncoming launches a new machine that stays starting (RunState
 * inmigrate) until the incoming migration completes (then running) or
 * fails (then the machine is removed).
 */
typedef enum {
        QM_STATE_DEFINED,
        QM_STATE_STARTING,
        QM_STATE_RUNNING,
        QM_STATE_STOPPING,
        QM_STATE_STOPPED,
        QM_STATE_FAILED,
        QM_STATE_MIGRATED,
} QmState;

const char *qm_state_to_string(QmState s);

typedef struct Machine Machine;
typedef struct QmMigration QmMigration;

/*
 * How a machine reports up, to whatever serves it (machine-dbus.c
 * installs one): the model calls these and knows nothing of the bus.
 * Every member is optional.
 */
typedef struct {
        /* @properties changed (NULL-terminated names of the interface). */
        void (*changed)(Machine *m, char **properties);
        /* A QMP event arrived (already numbered and retained). */
        void (*event)(Machine *m, const QmEvent *e);
        /* The console showed a kernel crash. */
        void (*crash)(Machine *m, const char *text);
        /* The front end cannot pass more on now (its output is backed up):
         * QEMU's output should wait. */
        gboolean (*congested)(Machine *m);
        /* The machine object is about to be freed. */
        void (*freed)(Machine *m);
        /* A live migration's progress (bytes; the expected downtime in ms). */
        void (*migration_progress)(Machine *m, guint64 transferred, guint64 remaining, guint64 total,
                                   guint64 expected_downtime_ms);
} MachineNotify;

/* What the rest of the daemon reads of a machine (the struct is private
 * to the machine*.c files: machine-internal.h). */
const char *machine_get_name(const Machine *m);
const char *machine_get_path(const Machine *m);
QmState machine_get_state(const Machine *m);
const QmConfig *machine_get_config(const Machine *m);
/* The QEMU command line of the current or last run. */
char *const *machine_get_command_line(const Machine *m);
/* Event numbers continue from @seq (a restored definition's). */
void machine_set_event_sequence(Machine *m, guint64 seq);


Machine *machine_new(QmDaemon *d, const char *name, QmConfig *config);
/* Only for a machine that is not running (see machine_is_active()). */
void machine_free(Machine *m);

gboolean machine_is_active(Machine *m);

/* UpdateMachine: take @config (validated, owner set) for a machine that
 * does not run (else Busy); the definition on disk follows it (saved,
 * or removed when no longer persistent) or nothing changes. */
gboolean machine_update_config(Machine *m, QmConfig *config, QmError **error);
pid_t machine_pid(Machine *m);

/* Take back a QEMU that a previous daemon started (record in the runtime
 * directory). A process that is gone leaves the machine failed, ExitCode
 * unknown. */
void machine_reattach(Machine *m, const QmRunRecord *r);


/* Lifecycle; each takes the held method call and answers it later. */
void machine_launch(Machine *m, QmReply *call);
void machine_shutdown(Machine *m, QmReply *call, gboolean hard, double timeout);
void machine_wait(Machine *m, QmReply *call, double timeout);

/* QMP passthrough: @raw TRUE answers with the whole response (Qmp),
 * FALSE with the JSON of "return" or a QmpError (Command); @empty: reply
 * carries no value (Pause/Resume/Reset). */
typedef enum { QMP_REPLY_RAW, QMP_REPLY_RETURN, QMP_REPLY_EMPTY } QmpReplyKind;
void machine_qmp(Machine *m, QmReply *call, const char *command, const char *arguments,
                 QmpReplyKind kind);
/* The same with @fd (the call's; copied) sent with the command over
 * SCM_RIGHTS, for commands that take one (add-fd, getfd). */
void machine_qmp_with_fd(Machine *m, QmReply *call, const char *command, const char *arguments,
                         QmpReplyKind kind, int fd);

/* Migrate's options, checked by the caller. */
typedef struct {
        double timeout;      /* seconds; <= 0: none */
        gboolean offline;    /* pause the guest first */
        double cancel_after; /* seconds; < 0: never */
        gboolean bandwidth_set;
        guint64 bandwidth; /* bytes/s */
        gboolean downtime_limit_set;
        guint64 downtime_limit; /* ms */
        gboolean auto_converge;
        gboolean postcopy;
        double postcopy_after; /* seconds after the start */
} QmMigrateOptions;

/* QMP migrate and wait for its final outcome; see machine-migrate.c. */
void machine_migrate(Machine *m, QmReply *call, const char *uri, const QmMigrateOptions *options);

/* PrepareIncoming (machine-incoming.c): launch with -incoming defer,
 * listen on @address (NULL: a unix socket), answer @call with (o path,
 * s uri); when the guest does not arrive, @remove is called (from an idle)
 * to take the machine away. */
typedef void (*MachineRemoveFunc)(Machine *m, gpointer data);
void machine_prepare_incoming(Machine *m, QmReply *call, const char *address, gboolean persistent,
                              gboolean paused, MachineRemoveFunc remove, gpointer data);

/* A guest that left this machine (State migrated) comes back: @config
 * (validated, owner set) replaces the definition for the incoming
 * migration. The migrated definition is kept aside and comes back,
 * still migrated, if the guest does not arrive: then it runs on where it
 * was, and this definition still says so. */
gboolean machine_prepare_comeback(Machine *m, QmConfig *config, QmError **error);

/* A restarted daemon took back (machine_reattach()) a QEMU whose incoming
 * migration was under way (@r->incoming_uri): it finishes the job, the
 * guest resumes or the machine is removed through @remove. */
void machine_incoming_reattach(Machine *m, const QmRunRecord *r, MachineRemoveFunc remove, gpointer data);

/* Where a machine in state migrated went ("" when not known), else NULL. */
const char *machine_get_migrated_to(const Machine *m);
/* A restored definition says the guest runs elsewhere: state migrated. */
void machine_set_migrated(Machine *m, const char *to);

/* Save (BaseVM save_to_file): pause, migrate the state into @fd (the
 * caller's, copied), quit QEMU; answered when the machine is stopped.
 * Restore: launch with -incoming defer, load the state from @fd, resume
 * unless @paused. @timeout bounds the migration (<= 0: none). */
void machine_save(Machine *m, QmReply *call, int fd, double timeout);
void machine_restore(Machine *m, QmReply *call, int fd, gboolean paused, double timeout);

/* The process runs and query-status answers in time; else Dead. */
void machine_verify_alive(Machine *m, QmReply *call);

/* AddFd: keep a dup of @fd for the next launch's -add-fd. */
void machine_add_fd(Machine *m, QmReply *call, int fd, guint32 fdset, const char *opaque,
                    const char *opts);
/* SendFd: QMP getfd with @fd passed by SCM_RIGHTS. */
void machine_send_fd(Machine *m, QmReply *call, const char *fdname, int fd);

/* machine-console.c */
void machine_open_console(Machine *m, QmReply *call);
void machine_get_console_output(Machine *m, QmReply *call);
/* @keys: combos like "ctrl-alt-delete"; answered after QEMU took all. */
void machine_send_keys(Machine *m, QmReply *call, char **keys, guint hold_ms);

/* ACPI power button, then wait (BaseVM destroy(gracefully=True)). */
void machine_powerdown(Machine *m, QmReply *call, double timeout);

/* Answers with (t seq, s event) now or when a match arrives. */
void machine_wait_event(Machine *m, QmReply *call, QmEventFilters *filters,
                        guint64 after, double timeout);

/* A client left the bus: drop its WaitEvent calls (nobody to answer). */
void machine_forget_client(Machine *m, const char *unique_name);

/* machine-console-expect.c: WaitConsole (answers (t offset, s match) now
 * or when the output matches; takes @expect), WriteConsole, ConsoleBytes. */
void machine_wait_console(Machine *m, QmReply *call, QmConsoleExpect *expect, double timeout);
void machine_write_console(Machine *m, QmReply *call, const void *data, gsize len);
guint64 machine_console_bytes(Machine *m);

/* The log of the current or last run, valid UTF-8, at most the tail. */
char *machine_read_log(Machine *m);

/* machine-ports.c: forward-ports. QmPortPair of this run (empty when not
 * running). */
const GArray *machine_get_forwarded_ports(Machine *m);
/* NULL and the host port of @guest_port, or NotRunning/PortNotRedirected. */
QmError *machine_get_port(Machine *m, guint16 guest_port, guint16 *host_port);
/* NULL and the address of NIC @nic's guest, or NoSuchNic. */
QmError *machine_get_address(Machine *m, guint32 nic, const char **address);
