/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One machine's lifecycle: exit, shutdown, the runtime record, and the
 * calls held until QEMU exits. Nothing here blocks: every long operation
 * keeps its QmReply and answers it from a later callback. Launching is in
 * machine-launch.c, the QMP traffic and events in machine-qmp.c, the
 * D-Bus surface in machine-dbus.c (reached only through MachineNotify).
 */
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "machine-internal.h"
#include "names.h"
#include "qemu-argv.h"
#include "safe-open.h"
#include "unix-socket.h"

#define MAX_ADD_FDS 64
#define GET_LOG_TAIL (8 * 1024 * 1024)
#define DEFAULT_STOP_TIMEOUT 30.0

typedef enum {
        EXIT_HARD,      /* Kill, Shutdown(hard): just wait for the exit */
        EXIT_SOFT,      /* Shutdown, Wait: AbnormalShutdown if we had to kill */
        EXIT_POWERDOWN, /* Powerdown: AbnormalShutdown unless the guest powered off */
} ExitKind;

/* A held Shutdown/Kill/Wait/Powerdown call, answered when QEMU exits. */
typedef struct {
        Machine *machine;
        QmReply *call;
        ExitKind kind;
        gboolean escalates; /* its timer stops QEMU harder (Shutdown, Powerdown) */
        double timeout;
        guint timer;
} ExitCall;

#define POWERDOWN_QUIT_GRACE 5.0
/* Event numbers reserved on disk at a time: at least this many, more the
 * faster events come (see event_reserve()). */
#define EVENT_RESERVE 1024
#define EVENT_RESERVE_MAX (1024 * 1024)

static gboolean save_record(Machine *m, guint64 reserve, GError **error);
static void save_definition_seq(Machine *m, guint64 event_sequence);

const char *qm_state_to_string(QmState s) {
        static const char *const names[] = {
                [QM_STATE_DEFINED] = "defined",   [QM_STATE_STARTING] = "starting",
                [QM_STATE_RUNNING] = "running",   [QM_STATE_STOPPING] = "stopping",
                [QM_STATE_STOPPED] = "stopped",   [QM_STATE_FAILED] = "failed",
                [QM_STATE_MIGRATED] = "migrated",
        };
        return names[s];
}

static void exit_call_free(gpointer p) {
        ExitCall *ec = p;
        if (ec->timer)
                g_source_remove(ec->timer);
        qm_reply_drop(ec->call);
        g_free(ec);
}

static void held_fd_clear(gpointer p) {
        QmHeldFd *h = p;
        close(h->fd);
        g_free(h->opaque);
        g_free(h->opts);
}

void machine_add_fd(Machine *m, QmReply *call, int fd, guint32 fdset, const char *opaque,
                    const char *opts) {
        QmHeldFd h = { .fdset = fdset };
        g_autoptr(QmError) e = NULL;

        if (machine_is_active(m)) {
                qm_reply_failf(call, QM_ERROR_ALREADY_RUNNING,
                                           "AddFd is for the next launch; machine '%s' is %s", m->name,
                                           qm_state_to_string(m->state));
                return;
        }
        if (strchr(opaque, ',') || strchr(opaque, '\n') || strchr(opts, '\n')) {
                qm_reply_failf(call, QM_ERROR_INVALID_ARGS,
                                           "opaque must not contain ',' and neither it nor opts a newline");
                return;
        }
        if (m->add_fds->len >= MAX_ADD_FDS) {
                qm_reply_failf(call, QM_ERROR_LIMIT_EXCEEDED, "at most %d fds per launch", MAX_ADD_FDS);
                return;
        }
        e = machine_fd_headroom_error(m);
        if (e) {
                qm_reply_fail(call, e);
                return;
        }
        h.fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (h.fd < 0) {
                qm_reply_failf(call, qm_error_name_for_errno(errno), "cannot keep the fd: %s", g_strerror(errno));
                return;
        }
        h.opaque = g_strdup(opaque);
        h.opts = g_strdup(opts);
        g_array_append_val(m->add_fds, h);
        qm_reply_ok(call);
}

Machine *machine_new(QmDaemon *d, const char *name, QmConfig *config) {
        Machine *m = g_new0(Machine, 1);

        m->daemon = d;
        m->name = g_strdup(name);
        m->path = qm_name_to_path(name);
        m->config = config;
        m->config_variant = g_variant_ref_sink(qm_config_to_variant(config));
        m->state = QM_STATE_DEFINED;
        m->run_state = g_strdup("");
        m->exit_code = QM_EXIT_CODE_UNKNOWN;
        m->command_line = g_new0(char *, 1);
        m->qemu_version = g_strdup("");
        m->runtime_dir = g_build_filename(d->runtime_dir, name, NULL);
        m->log_dir = g_build_filename(d->log_dir, name, NULL);
        m->qmp_socket = g_build_filename(m->runtime_dir, "qmp.sock", NULL);
        m->console_socket = g_build_filename(m->runtime_dir, "console.sock", NULL);
        m->events = qm_event_ring_new(QM_EVENT_RING_SIZE, QM_EVENT_RING_BYTES);
        m->waiters = qm_event_waiters_new();
        m->console_output = qm_byte_ring_new(1024 * 1024);
        m->crash_scan = qm_crash_scan_new();
        m->kernel_crash = g_strdup("");
        m->exit_calls = g_ptr_array_new_with_free_func(exit_call_free);
        m->add_fds = g_array_new(FALSE, FALSE, sizeof(QmHeldFd));
        g_array_set_clear_func(m->add_fds, held_fd_clear);
        m->forwarded_ports = g_array_new(FALSE, FALSE, sizeof(QmPortPair));
        return m;
}

void machine_free(Machine *m) {
        g_autoptr(GError) err = NULL;

        if (!m)
                return;
        g_clear_handle_id(&m->announce_seq_id, g_source_remove);
        g_clear_handle_id(&m->reconnect_timer, g_source_remove);
        g_clear_handle_id(&m->console_reconnect_timer, g_source_remove);
        machine_incoming_detach(m);
        qm_user_lookup_cancel(g_steal_pointer(&m->user_lookup));
        qm_user_identity_free(m->launch_user);
        machine_restore_detach(m);
        /* A running QEMU is left alone: VMs outlive the daemon. On an
         * orderly exit the record gets the exact event number, so the next
         * daemon continues without a gap, and a migration under way. */
        if (m->process && !save_record(m, 0, &err))
                g_warning("machine %s: %s; a restarted daemon will not find this VM", m->name, err->message);
        /* First the QMP client: failing its pending commands runs callbacks
         * that still use the machine. */
        g_clear_pointer(&m->qmp, qmp_client_free);
        g_clear_pointer(&m->console, qm_console_free);
        machine_agent_stop(m);
        machine_migration_abort(m, "the daemon is stopping");
        qm_event_waiters_end(m->waiters, FALSE);
        machine_console_waiters_free(m);
        qemu_process_free(m->process);
        machine_stop_launch_timers(m);
        qm_reply_drop(g_steal_pointer(&m->launch_call));
        machine_restore_free(m);
        machine_incoming_free(m);
        g_ptr_array_unref(m->exit_calls);
        g_array_unref(m->add_fds);
        g_array_unref(m->forwarded_ports);
        if (m->notify && m->notify->freed)
                m->notify->freed(m);
        qm_event_ring_free(m->events);
        qm_event_waiters_free(m->waiters);
        qm_byte_ring_free(m->console_output);
        qm_crash_scan_free(m->crash_scan);
        g_free(m->kernel_crash);
        qm_config_free(m->config);
        g_variant_unref(m->config_variant);
        g_strfreev(m->command_line);
        g_free(m->launch_error);
        g_free(m->migrated_to);
        machine_comeback_done(m);
        g_free(m->name);
        g_free(m->path);
        g_free(m->run_state);
        g_free(m->qemu_version);
        g_free(m->runtime_dir);
        g_free(m->log_dir);
        g_free(m->qmp_socket);
        g_free(m->console_socket);
        g_free(m);
}

const char *machine_get_name(const Machine *m) {
        return m->name;
}

const char *machine_get_path(const Machine *m) {
        return m->path;
}

QmState machine_get_state(const Machine *m) {
        return m->state;
}

const QmConfig *machine_get_config(const Machine *m) {
        return m->config;
}

char *const *machine_get_command_line(const Machine *m) {
        return m->command_line;
}

void machine_set_event_sequence(Machine *m, guint64 seq) {
        m->event_seq = seq;
}

const char *machine_get_migrated_to(const Machine *m) {
        return m->state == QM_STATE_MIGRATED ? (m->migrated_to ? m->migrated_to : "") : NULL;
}

void machine_set_migrated(Machine *m, const char *to) {
        g_free(m->migrated_to);
        m->migrated_to = g_strdup(to);
        machine_set_state(m, QM_STATE_MIGRATED);
}

QmError *machine_migrated_error(Machine *m) {
        if (m->state != QM_STATE_MIGRATED)
                return NULL;
        return qm_error_new(QM_ERROR_MIGRATED,
                            "The guest of '%s' was migrated to %s and runs there now: use the destination's "
                            "machine. RemoveMachine removes this definition; UpdateMachine makes it launchable "
                            "again (only once the guest runs nowhere else)",
                            m->name, m->migrated_to && *m->migrated_to ? m->migrated_to : "another QEMU");
}

/* The migrated state leaves a definition (UpdateMachine, a guest coming
 * back): back to defined. */
static void clear_migrated(Machine *m) {
        if (m->state != QM_STATE_MIGRATED)
                return;
        g_clear_pointer(&m->migrated_to, g_free);
        machine_set_state(m, QM_STATE_DEFINED);
}

gboolean machine_is_active(Machine *m) {
        return m->state == QM_STATE_STARTING || m->state == QM_STATE_RUNNING ||
               m->state == QM_STATE_STOPPING;
}

pid_t machine_pid(Machine *m) {
        return qemu_process_pid(m->process);
}

/* The one place the state changes; it announces every property that may
 * have changed with it. */
void machine_set_state(Machine *m, QmState state) {
        static const char *const props[] = {
                "State",       "Pid",         "ExitCode",        "RunState",
                "QemuVersion", "CommandLine", "LaunchTimestamp", "KernelCrash",
                "ForwardedPorts", NULL,
        };
        m->state = state;
        machine_notify_changed(m, (char **)props);
}

char *machine_read_log_tail(Machine *m, gsize max) {
        g_autofree char *path = g_build_filename(m->log_dir, "qemu.log", NULL);
        int fd = qm_open_regular(AT_FDCWD, path, NULL);
        struct stat st;
        g_autofree char *buf = NULL;
        gsize len = 0;

        if (fd < 0)
                return g_strdup("");
        if (fstat(fd, &st) == 0 && (gsize)st.st_size > max)
                lseek(fd, st.st_size - max, SEEK_SET);
        buf = g_malloc(max + 1);
        while (len < max) {
                ssize_t n = read(fd, buf + len, max - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                len += n;
        }
        close(fd);
        buf[len] = 0;
        /* D-Bus strings are UTF-8 without NUL; QEMU's output is bytes. */
        for (gsize i = 0; i < len; i++)
                if (buf[i] == 0)
                        buf[i] = '?';
        return g_utf8_make_valid(buf, len);
}

char *machine_read_log(Machine *m) {
        return machine_read_log_tail(m, GET_LOG_TAIL);
}

static char *record_path(Machine *m) {
        return g_build_filename(m->runtime_dir, "record.json", NULL);
}

/* Remove what a run leaves in the runtime directory. */
void machine_remove_runtime_files(Machine *m) {
        g_autofree char *record = record_path(m);
        g_autofree char *agent = machine_agent_socket_path(m);

        g_unlink(record);
        g_unlink(agent);
        g_unlink(m->qmp_socket);
        g_unlink(m->console_socket);
        g_rmdir(m->runtime_dir);
}

/*
 * How many numbers to reserve now. A persistent machine's reservation is
 * an fsync'd write of its definition: under an event flood the reserve
 * doubles while reservations come less than a second apart, so the
 * daemon writes about once a second however fast QEMU sends; it falls
 * back to the minimum once events slow down. A crash skips at most the
 * numbers reserved; they are never handed out twice.
 */
static guint64 event_reserve(Machine *m) {
        gint64 now = g_get_monotonic_time();

        if (m->reserve_time && now - m->reserve_time < G_USEC_PER_SEC)
                m->reserve = MIN(m->reserve * 2, EVENT_RESERVE_MAX);
        else if (!m->reserve_time || now - m->reserve_time > 10 * G_USEC_PER_SEC)
                m->reserve = EVENT_RESERVE;
        m->reserve_time = now;
        return m->reserve;
}

gboolean machine_write_record(Machine *m, GError **error) {
        return save_record(m, event_reserve(m), error);
}

void machine_save_record(Machine *m) {
        g_autoptr(GError) err = NULL;

        if (!machine_write_record(m, &err))
                g_warning("machine %s: %s; a restarted daemon will not find this VM", m->name, err->message);
}

/* FALSE if the record could not be written (a process that is already
 * gone needs none). */
static gboolean save_record(Machine *m, guint64 reserve, GError **error) {
        g_autofree char *path = record_path(m);
        QmRunRecord r = {
                .name = m->name,
                .config = m->config,
                .pid = machine_pid(m),
                .launch_timestamp = m->launch_timestamp,
                .command_line = m->command_line,
                .qemu_version = m->qemu_version,
                .quit_issued = m->quit_issued,
                .forwarded_ports = m->forwarded_ports,
        };
        machine_incoming_fill_record(m, &r);
        machine_migration_fill_record(m, &r);
        machine_save_fill_record(m, &r);
        char state;

        if (r.pid <= 0 || !qm_process_stat(r.pid, &r.start_time, &state))
                return TRUE;
        m->event_mark = m->event_seq + reserve;
        r.event_sequence_mark = m->event_mark;
        if (!qm_run_record_save(path, &r, error))
                return FALSE;
        /* The record is gone after a host reboot; the definition is not. */
        if (reserve > 0 && m->config->persistent)
                save_definition_seq(m, m->event_mark);
        return TRUE;
}

static void save_definition_seq(Machine *m, guint64 event_sequence) {
        g_autoptr(GError) err = NULL;

        /* A migrated machine's definition says so: a restarted daemon
         * must not launch a second copy of the guest. */
        if (m->config->persistent &&
            !qm_definition_save_migrated(m->daemon->definitions_dir, m->name, m->config, event_sequence,
                                         m->migrated_to, &err))
                g_warning("machine %s: cannot save its definition: %s", m->name, err->message);
}

static void save_definition(Machine *m) {
        save_definition_seq(m, m->event_seq);
}

gboolean machine_prepare_comeback(Machine *m, QmConfig *config, QmError **error) {
        g_autoptr(QmConfig) owned = config;
        g_autoptr(GVariant) nothing = g_variant_ref_sink(g_variant_new("a{sv}", NULL));
        g_autoptr(QmConfig) kept = NULL;
        g_autofree char *from = g_strdup(m->migrated_to);

        /* a copy (uuid and owner too): update_config frees the old one */
        kept = qm_config_update(m->config, nothing, error);
        if (!kept)
                return FALSE;
        if (!machine_update_config(m, g_steal_pointer(&owned), error))
                return FALSE;
        qm_config_free(m->comeback_config);
        m->comeback_config = g_steal_pointer(&kept);
        g_free(m->comeback_from);
        m->comeback_from = g_steal_pointer(&from);
        return TRUE;
}

gboolean machine_comeback_failed(Machine *m) {
        g_autoptr(QmError) e = NULL;
        g_autofree char *from = g_steal_pointer(&m->comeback_from);
        QmConfig *config = g_steal_pointer(&m->comeback_config);

        if (!config)
                return FALSE;
        if (!machine_update_config(m, config, &e)) {
                g_warning("machine %s: cannot restore its migrated definition: %s", m->name, e->message);
                return FALSE;
        }
        machine_set_migrated(m, from);
        save_definition(m); /* says migrated again */
        g_message("machine %s: the guest did not come back; it is still migrated to %s", m->name, from);
        return TRUE;
}

void machine_comeback_done(Machine *m) {
        g_clear_pointer(&m->comeback_config, qm_config_free);
        g_clear_pointer(&m->comeback_from, g_free);
}

gboolean machine_update_config(Machine *m, QmConfig *config, QmError **error) {
        static const char *const props[] = { "UUID", "Persistent", "MacAddresses", "Config", NULL };
        g_autoptr(QmConfig) owned = config;
        g_autoptr(GError) err = NULL;

        if (machine_is_active(m)) {
                *error = qm_error_new(QM_ERROR_BUSY, "Machine '%s' is %s; shut it down first", m->name,
                                      qm_state_to_string(m->state));
                return FALSE;
        }
        /* The definition on disk first: when it cannot follow, nothing
         * changes. */
        if (owned->persistent) {
                if (!qm_definition_save(m->daemon->definitions_dir, m->name, owned, m->event_seq, &err)) {
                        *error = qm_error_new(QM_ERROR_STORAGE_FAILED, "cannot save the definition of '%s': %s",
                                              m->name, err->message);
                        return FALSE;
                }
        } else if (m->config->persistent) {
                if (!qm_definition_remove(m->daemon->definitions_dir, m->name, &err)) {
                        *error = qm_error_new(QM_ERROR_STORAGE_FAILED, "cannot remove the definition of '%s': %s",
                                              m->name, err->message);
                        return FALSE;
                }
        }
        qm_config_free(m->config);
        m->config = g_steal_pointer(&owned);
        g_variant_unref(m->config_variant);
        m->config_variant = g_variant_ref_sink(qm_config_to_variant(m->config));
        machine_notify_changed(m, (char **)props);
        clear_migrated(m);
        return TRUE;
}

void machine_drop_incoming(Machine *m) {
        char *props[] = { "Config", NULL };

        if (!m->config->incoming)
                return;
        g_clear_pointer(&m->config->incoming, g_free);
        g_variant_unref(m->config_variant);
        m->config_variant = g_variant_ref_sink(qm_config_to_variant(m->config));
        save_definition(m);
        machine_save_record(m);
        machine_notify_changed(m, props);
}

static void reply_exit_calls(Machine *m) {
        g_autoptr(GPtrArray) calls = g_steal_pointer(&m->exit_calls);

        m->exit_calls = g_ptr_array_new_with_free_func(exit_call_free);
        for (guint i = 0; i < calls->len; i++) {
                ExitCall *ec = g_ptr_array_index(calls, i);
                if (!ec->call)
                        continue; /* its caller left the bus */
                if (ec->kind == EXIT_POWERDOWN && !m->guest_shutdown)
                        qm_reply_failf(g_steal_pointer(&ec->call), QM_ERROR_ABNORMAL_SHUTDOWN,
                                                   "The guest of '%s' did not power off by itself within %g s; "
                                                   "QEMU was stopped (exit code %d)",
                                                   m->name, ec->timeout, m->exit_code);
                else if (ec->kind != EXIT_HARD && m->abnormal)
                        qm_reply_failf(g_steal_pointer(&ec->call), QM_ERROR_ABNORMAL_SHUTDOWN,
                                                   "Could not perform graceful shutdown of '%s' in time; "
                                                   "QEMU was killed (exit code %d)",
                                                   m->name, m->exit_code);
                else
                        qm_reply_ok(g_steal_pointer(&ec->call));
        }
}

void machine_on_process_exit(QemuProcess *p, int code, gpointer data) {
        Machine *m = data;
        gboolean launching = m->launch_call != NULL;
        gboolean handed_over;
        QmState final;

        g_clear_pointer(&m->process, qemu_process_free);
        if (p) /* NULL: a launch ended before QEMU started */
                qm_registrar_unregister(m->daemon->registrar, m->name);
        m->exit_code = code;
        machine_stop_launch_timers(m);
        g_clear_handle_id(&m->reconnect_timer, g_source_remove);
        /* QEMU's last messages (SHUTDOWN, ...) may still sit unread in the
         * socket when the exit is noticed first. */
        qmp_client_drain(m->qmp);
        g_clear_pointer(&m->qmp, qmp_client_free);
        machine_agent_stop(m);
        handed_over = machine_migration_handing_over(m);
        if (!handed_over)
                machine_migration_abort(m, "QEMU exited during the migration");
        machine_console_stop(m);
        machine_remove_runtime_files(m);
        g_free(m->run_state);
        m->run_state = g_strdup("");

        /* a host port of forward-ports was taken before QEMU bound it */
        if (launching && !m->relaunching && machine_ports_retry_wanted(m))
                m->relaunching = TRUE;
        if (launching && m->relaunching) {
                g_autoptr(QmError) e = NULL;
                m->relaunching = FALSE;
                if (machine_spawn_qemu(m, &e)) {
                        machine_set_state(m, QM_STATE_STARTING); /* announces the new Pid */
                        return;
                }
                g_free(m->launch_error);
                m->launch_error = g_strdup(e->message);
        }
        if (launching)
                g_array_set_size(m->add_fds, 0);

        if (handed_over || m->migrated_to)
                final = QM_STATE_MIGRATED; /* the destination has the guest */
        else if (launching)
                final = QM_STATE_FAILED;
        /* A taken-back QEMU is not our child: its status is unknown. */
        else if ((code == 0 || code == QM_EXIT_CODE_UNKNOWN) &&
                 (m->quit_issued || m->guest_shutdown || m->exit_expected))
                final = QM_STATE_STOPPED;
        else
                final = QM_STATE_FAILED;
        if (!m->killed_by_us && !launching && final == QM_STATE_FAILED) {
                if (code < 0)
                        g_message("machine %s: QEMU was killed by signal %d", m->name, -code);
                else
                        g_message("machine %s: QEMU exited with code %d unexpectedly", m->name, code);
        }

        save_definition(m);

        /* Announce first, then answer: a caller that reads State after its
         * reply sees the final one. */
        machine_set_state(m, final);
        if (launching)
                machine_reply_launch_failed(m);
        machine_restore_free(m); /* one a restarted daemon watched */
        machine_migration_handed_over(m);
        qm_event_waiters_end(m->waiters, TRUE);
        machine_console_waiters_end(m);
        reply_exit_calls(m);
        machine_incoming_exited(m);
}

void machine_kill(Machine *m, int sig) {
        if (sig == SIGKILL)
                m->killed_by_us = TRUE;
        if (machine_launch_abort_lookup(m))
                return; /* no QEMU yet, and there will be none */
        qemu_process_kill(m->process, sig);
}

static gboolean on_exit_call_timeout(gpointer data) {
        ExitCall *ec = data;
        Machine *m = ec->machine;

        ec->timer = 0;
        g_message("machine %s: did not exit in time; killing QEMU", m->name);
        m->abnormal = TRUE;
        machine_kill(m, SIGKILL);
        return G_SOURCE_REMOVE;
}

static guint timeout_add_seconds(double seconds, GSourceFunc func, gpointer data) {
        return g_timeout_add((guint)MIN(seconds * 1000.0, (double)G_MAXUINT), func, data);
}

/* Powerdown's time is up: quit, and kill if even that is not enough. */
static gboolean on_powerdown_timeout(gpointer data) {
        ExitCall *ec = data;
        Machine *m = ec->machine;

        g_message("machine %s: the guest did not power off in time; quitting QEMU", m->name);
        if (!m->quit_issued) {
                if (!machine_qmp_send_quit(m))
                        machine_kill(m, SIGTERM);
                m->quit_issued = TRUE;
        }
        ec->timer = timeout_add_seconds(POWERDOWN_QUIT_GRACE, on_exit_call_timeout, ec);
        return G_SOURCE_REMOVE;
}

/* Hold @call until QEMU exits; @timeout < 0: no limit, 0: the default. */
static void add_exit_call(Machine *m, QmReply *call, ExitKind kind, gboolean escalates, double timeout) {
        ExitCall *ec = g_new0(ExitCall, 1);

        ec->machine = m;
        ec->call = call;
        ec->kind = kind;
        ec->escalates = escalates;
        if (timeout == 0)
                timeout = DEFAULT_STOP_TIMEOUT;
        ec->timeout = timeout;
        if (kind != EXIT_HARD && timeout > 0)
                ec->timer = timeout_add_seconds(timeout, kind == EXIT_POWERDOWN ? on_powerdown_timeout
                                                                                : on_exit_call_timeout,
                                                ec);
        g_ptr_array_add(m->exit_calls, ec);
}

void machine_shutdown(Machine *m, QmReply *call, gboolean hard, double timeout) {
        if (!machine_is_active(m)) {
                qm_reply_ok(call);
                return;
        }
        if (m->state == QM_STATE_STARTING) {
                /* Nothing to talk to yet: abort the launch. */
                g_free(m->launch_error);
                m->launch_error = g_strdup("it was shut down while starting");
                hard = TRUE;
        }
        if (hard) {
                add_exit_call(m, call, EXIT_HARD, FALSE, 0);
                machine_kill(m, SIGKILL);
                return;
        }
        add_exit_call(m, call, EXIT_SOFT, TRUE, timeout);
        if (!m->quit_issued) {
                /* Without a monitor, SIGTERM is QEMU's own orderly quit. */
                if (!machine_qmp_send_quit(m))
                        machine_kill(m, SIGTERM);
                m->quit_issued = TRUE;
                machine_save_record(m);
        }
        if (m->state == QM_STATE_RUNNING)
                machine_set_state(m, QM_STATE_STOPPING);
}

void machine_wait(Machine *m, QmReply *call, double timeout) {
        if (!machine_is_active(m)) {
                qm_reply_ok(call);
                return;
        }
        /* The caller expects QEMU to exit by itself: that exit is clean. */
        m->exit_expected = TRUE;
        add_exit_call(m, call, EXIT_SOFT, FALSE, timeout);
}

void machine_powerdown(Machine *m, QmReply *call, double timeout) {
        if (!machine_is_active(m)) {
                qm_reply_ok(call);
                return;
        }
        if (!machine_qmp_send_powerdown(m, call))
                return; /* answered with why not */
        add_exit_call(m, call, EXIT_POWERDOWN, TRUE, timeout);
        if (m->state == QM_STATE_RUNNING)
                machine_set_state(m, QM_STATE_STOPPING);
}

/*
 * A client left the bus: its Shutdown/Kill/Wait/Powerdown calls need no
 * answer. A Wait's kill on timeout was for its caller only; a Shutdown's
 * or Powerdown's escalation still stops QEMU, so one such timer is kept
 * (without a call) when no other call's timer would do it.
 */
void machine_forget_exit_calls(Machine *m, const char *unique_name) {
        guint escalations = 0; /* escalating timers among the calls */

        for (guint i = 0; i < m->exit_calls->len; i++) {
                ExitCall *ec = g_ptr_array_index(m->exit_calls, i);
                escalations += ec->escalates && ec->timer;
        }
        for (guint i = m->exit_calls->len; i-- > 0;) {
                ExitCall *ec = g_ptr_array_index(m->exit_calls, i);

                if (!ec->call || g_strcmp0(qm_reply_sender(ec->call), unique_name) != 0)
                        continue;
                qm_reply_drop(g_steal_pointer(&ec->call));
                if (ec->escalates && ec->timer) {
                        if (escalations == 1)
                                continue; /* the last one that would stop QEMU: kept */
                        escalations--;
                }
                g_ptr_array_remove_index(m->exit_calls, i);
        }
}

static void reattach_failed(Machine *m, const char *why) {
        g_message("machine %s: its QEMU is gone (%s); marking it failed", m->name, why);
        machine_remove_runtime_files(m);
        m->exit_code = QM_EXIT_CODE_UNKNOWN;
        machine_set_state(m, QM_STATE_FAILED);
        save_definition(m);
}

#define RECONNECT_ATTEMPTS 6
#define RECONNECT_FIRST_DELAY_MS 100

static gboolean on_reconnect(gpointer data) {
        Machine *m = data;
        g_autoptr(GError) err = NULL;

        m->reconnect_timer = 0;
        if (!m->process || (m->state != QM_STATE_RUNNING && m->state != QM_STATE_STOPPING))
                return G_SOURCE_REMOVE;
        m->reconnect_attempts++;
        if (machine_qmp_reconnect(m, &err)) {
                g_message("machine %s: QMP connected again", m->name);
                return G_SOURCE_REMOVE;
        }
        if (m->reconnect_attempts >= RECONNECT_ATTEMPTS) {
                g_warning("machine %s: giving up on QMP: %s", m->name, err->message);
                return G_SOURCE_REMOVE;
        }
        m->reconnect_timer = g_timeout_add(RECONNECT_FIRST_DELAY_MS << m->reconnect_attempts, on_reconnect, m);
        return G_SOURCE_REMOVE;
}

/*
 * A taken-back QEMU's monitor went away while QEMU runs (QEMU 7.2 can
 * drop the connection that raced with its predecessor's close): connect
 * again, at once and then with growing delays; a few times in this
 * QEMU's life, so a monitor that keeps breaking the protocol is not
 * served forever.
 */
void machine_qmp_lost(Machine *m) {
        if (!m->taken_back || m->reconnect_timer || m->quit_issued || m->guest_shutdown || m->killed_by_us ||
            m->reconnect_attempts >= RECONNECT_ATTEMPTS)
                return;
        g_message("machine %s: QMP connection of a taken-back QEMU lost; connecting again", m->name);
        m->reconnect_timer = g_idle_add(on_reconnect, m);
}

void machine_reattach(Machine *m, const QmRunRecord *r) {
        g_autoptr(GError) err = NULL;
        int fd;

        m->event_seq = MAX(m->event_seq, r->event_sequence_mark);
        m->event_mark = m->event_seq;
        g_strfreev(m->command_line);
        m->command_line = g_strdupv(r->command_line);
        m->launch_timestamp = r->launch_timestamp;
        g_free(m->qemu_version);
        m->qemu_version = g_strdup(r->qemu_version);
        m->quit_issued = r->quit_issued;
        machine_ports_restore(m, r->forwarded_ports);
        m->taken_back = TRUE;

        m->process = qemu_process_attach(r->pid, r->start_time, machine_on_process_exit, m, &err);
        if (!m->process) {
                reattach_failed(m, err->message);
                return;
        }
        if (m->config->qmp) {
                /* QEMU listens on the socket again since our predecessor's
                 * connection closed. */
                if (!machine_qmp_reconnect(m, &err))
                        g_warning("machine %s: no QMP after restart: %s", m->name, err->message);
                g_clear_error(&err);
        }
        if (m->config->console) {
                fd = qm_unix_connect(m->console_socket, &err);
                if (fd >= 0)
                        machine_console_start(m, fd, TRUE);
                else
                        g_warning("machine %s: no console after restart: %s", m->name, err->message);
        }
        if (m->config->guest_agent)
                machine_agent_start(m, -1); /* QEMU listens again, as for QMP */
        g_message("machine %s: took back QEMU %d", m->name, (int)r->pid);
        if (r->incoming_uri)
                return; /* still waiting for its guest: machine_incoming_reattach() */
        if (r->restoring) {
                machine_restore_reattach(m, r);
                return;
        }
        machine_set_state(m, QM_STATE_RUNNING);
        if (r->migrating_to)
                machine_migration_reattach(m, r);
        if (r->saving)
                machine_save_reattach(m, r);
        machine_save_record(m);
}
