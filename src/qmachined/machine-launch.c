/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Launching a machine's QEMU: directories, sockets, the command line, the
 * process, and the QMP handshake with QEMU 7.2's retries; the held Launch
 * call is answered when the handshake completes (or by the exit handler
 * in machine.c when the launch fails).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "machine-internal.h"
#include "fd-util.h"
#include "qemu-argv.h"
#include "safe-open.h"
#include "unix-socket.h"
#include "user-lookup.h"

#define QMP_FD_IN_QEMU 3
#define CONSOLE_FD_IN_QEMU 4
#define AGENT_FD_IN_QEMU 5
#define ADD_FD_FIRST_IN_QEMU 10
#define LAUNCH_LOG_TAIL (64 * 1024)
#define HANDSHAKE_FIRST_RETRY_MS 250

/*
 * Fds that must stay free after a launch or an AddFd: a launch takes up
 * to a dozen at once, and the bus connection must always be able to
 * receive a message carrying fds (sd-bus drops the connection when the
 * kernel cannot install them).
 */
#define FD_HEADROOM 64

/* NULL if @n more fds can be opened now, else LimitExceeded. */
QmError *machine_fd_headroom_error(Machine *m) {
        const guint n = FD_HEADROOM;
        int fds[FD_HEADROOM];
        guint i;
        int e = 0;

        for (i = 0; i < n && i < G_N_ELEMENTS(fds); i++) {
                fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (fds[i] < 0) {
                        e = errno;
                        break;
                }
        }
        while (i-- > 0)
                close(fds[i]);
        if (e != EMFILE && e != ENFILE)
                return NULL;
        return qm_error_new(QM_ERROR_LIMIT_EXCEEDED,
                            "The daemon has too few file descriptors left for machine '%s' (%s); stop other "
                            "machines or raise its fd limit (LimitNOFILE=)",
                            m->name, g_strerror(e));
}

void machine_reply_launch_failed(Machine *m) {
        if (machine_restore_reply_failed(m))
                return;
        g_autofree char *cmdline = qm_argv_to_string(m->command_line);
        g_autofree char *output = machine_read_log_tail(m, LAUNCH_LOG_TAIL);
        g_autoptr(QmError) e = qm_error_new(QM_ERROR_LAUNCH_FAILED,
                                            "QEMU of '%s' failed to launch: %s\n"
                                            "Exit code: %d\nCommand: %s\nOutput: %s",
                                            m->name, m->launch_error ? m->launch_error : "QEMU exited while starting",
                                            m->exit_code, cmdline, output);
        qm_reply_fail(g_steal_pointer(&m->launch_call), e);
}

void machine_stop_launch_timers(Machine *m) {
        if (m->launch_timer)
                g_source_remove(m->launch_timer);
        if (m->handshake_timer)
                g_source_remove(m->handshake_timer);
        m->launch_timer = m->handshake_timer = 0;
}

/*
 * QEMU 7.2 sometimes loses a client that connected before its monitor was
 * set up (seen about once in 1,500 launches): it greets, then never reads
 * qmp_capabilities. A new connection gets a fresh monitor session, so a
 * handshake that stalls after the greeting is retried on a new connection,
 * with growing patience; before the greeting QEMU may just be busy, and we
 * wait. The launch timeout still bounds the whole.
 */
gboolean machine_on_handshake_stall(gpointer data) {
        Machine *m = data;
        g_autoptr(GError) err = NULL;

        m->handshake_timer = 0;
        if (m->state != QM_STATE_STARTING || !m->process || qmp_client_is_ready(m->qmp))
                return G_SOURCE_REMOVE;
        if (!qmp_client_greeted(m->qmp)) {
                m->handshake_timer = g_timeout_add(m->handshake_delay_ms, machine_on_handshake_stall, m);
                return G_SOURCE_REMOVE;
        }
        g_message("machine %s: QMP handshake stalled (%s, %d bytes unread by QEMU); connecting again", m->name,
                  qmp_client_progress(m->qmp), qmp_client_unread_by_peer(m->qmp));
        if (!machine_qmp_reconnect(m, &err)) {
                g_message("machine %s: %s", m->name, err->message);
                return G_SOURCE_REMOVE;
        }
        m->handshake_delay_ms *= 2;
        m->handshake_timer = g_timeout_add(m->handshake_delay_ms, machine_on_handshake_stall, m);
        return G_SOURCE_REMOVE;
}

static gboolean on_launch_timeout(gpointer data) {
        Machine *m = data;

        m->launch_timer = 0;
        if (qmp_client_greeted(m->qmp) && !m->launch_retried) {
                /* QEMU 7.2's monitor can be wedged from the start (see
                 * on_handshake_stall): a fresh QEMU is the cure. */
                g_message("machine %s: QEMU greeted but never answered qmp_capabilities; starting it again",
                          m->name);
                m->launch_retried = TRUE;
                m->relaunching = TRUE;
                machine_kill(m, SIGKILL);
                return G_SOURCE_REMOVE;
        }
        g_free(m->launch_error);
        m->launch_error = g_strdup_printf("the QMP handshake did not complete within %g s (%s)",
                                          m->config->qmp_timeout, qmp_client_progress(m->qmp));
        machine_kill(m, SIGKILL);
        return G_SOURCE_REMOVE;
}

/* Called by machine-qmp.c when the launch handshake has completed. */
void machine_launch_done(Machine *m) {
        if (m->killed_by_us)
                return; /* the launch is failing; its exit answers the caller */
        if (machine_restore_take_over(m) || machine_incoming_take_over(m))
                return; /* loads the state first */
        machine_stop_launch_timers(m);
        /* AddFd's fds are for this launch only (QEMUMachine closes them
         * after launch too). */
        g_array_set_size(m->add_fds, 0);
        machine_set_state(m, QM_STATE_RUNNING);
        machine_save_record(m);
        qm_reply_ok(g_steal_pointer(&m->launch_call));
}

static gboolean prepare_dirs(Machine *m, QmError **error) {
        g_autoptr(GError) err = NULL;

        if (!qm_private_dir_ensure(m->runtime_dir, 0700, &err) || !qm_private_dir_ensure(m->log_dir, 0750, &err)) {
                *error = qm_error_new(QM_ERROR_LAUNCH_FAILED, "the directories of '%s': %s", m->name, err->message);
                return FALSE;
        }
        return TRUE;
}

static void reset_run(Machine *m) {
        m->taken_back = FALSE;
        m->reconnect_attempts = 0;
        m->dropped_connections = 0;
        g_clear_handle_id(&m->reconnect_timer, g_source_remove);
        m->quit_issued = FALSE;
        m->exit_expected = FALSE;
        m->guest_shutdown = FALSE;
        m->abnormal = FALSE;
        m->killed_by_us = FALSE;
        m->exit_code = QM_EXIT_CODE_UNKNOWN;
        g_clear_pointer(&m->launch_error, g_free);
        g_free(m->qemu_version);
        m->qemu_version = g_strdup("");
        g_free(m->run_state);
        m->run_state = g_strdup("");
        machine_console_reset(m);
}

/* Bind @path and connect to it before QEMU starts: the connection waits in
 * the backlog and QEMU serves it as soon as its main loop runs. */
static gboolean open_socket(const char *path, int *listen_fd, int *client_fd, GError **error) {
        *listen_fd = qm_unix_listen(path, error);
        if (*listen_fd < 0)
                return FALSE;
        *client_fd = qm_unix_connect(path, error);
        if (*client_fd < 0) {
                close(*listen_fd);
                *listen_fd = -1;
                return FALSE;
        }
        return TRUE;
}

static void close_fds(int *fds, guint n) {
        for (guint i = 0; i < n; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
}

/* Why QEMU cannot run as @user (the lookup's error @e). */
static QmError *user_error(Machine *m, const char *user, const QmError *e) {
        return qm_error_new(QM_ERROR_LAUNCH_FAILED, "QEMU of '%s' cannot run as '%s': %s%s", m->name, user,
                            e->message,
                            strcmp(user, QM_DEFAULT_USER) == 0
                                    ? " (the system user qmachined runs VMs as; systemd-sysusers creates it)"
                                    : "");
}

/*
 * Who QEMU runs as: the machine's user, looked up at each Launch (the
 * user database may have changed since the machine was created) and kept
 * for its retries. A daemon that is not root (a session service) can
 * only run QEMU as itself. @creds point into m->launch_user.
 */
static gboolean resolve_credentials(Machine *m, QemuCredentials *creds, QmError **error) {
        QmUserIdentity *u = m->launch_user;
        GPtrArray *env;

        if (geteuid() != 0 && u->uid != geteuid()) {
                *error = qm_error_new(QM_ERROR_LAUNCH_FAILED,
                                      "QEMU of '%s' cannot run as '%s': this daemon runs as uid %u and can only "
                                      "start QEMU as itself",
                                      m->name, u->name, (unsigned)geteuid());
                return FALSE;
        }
        env = g_ptr_array_new();
        g_ptr_array_add(env, g_strdup(QM_CHILD_PATH));
        g_ptr_array_add(env, g_strconcat("HOME=", u->home, NULL));
        g_ptr_array_add(env, g_strconcat("USER=", u->name, NULL));
        g_ptr_array_add(env, g_strconcat("LOGNAME=", u->name, NULL));
        g_ptr_array_add(env, NULL);
        *creds = (QemuCredentials){
                .switch_user = geteuid() == 0,
                .uid = u->uid,
                .gid = u->gid,
                .groups = u->groups,
                .n_groups = u->n_groups,
                .envp = (char **)g_ptr_array_free(env, FALSE),
        };
        return TRUE;
}

/* Start QEMU for a launch or its retry: sockets, command line, process,
 * console, and the QMP handshake under way. */
gboolean machine_spawn_qemu(Machine *m, QmError **error) {
        g_autoptr(GError) err = NULL;
        g_autofree char *log_path = NULL;
        /* [0] QMP, [1] console: listening ends go to QEMU, clients stay */
        int listen_fds[2] = { -1, -1 }, client_fds[2] = { -1, -1 };
        int targets[2] = { QMP_FD_IN_QEMU, CONSOLE_FD_IN_QEMU };
        g_autoptr(GArray) pass_fds = g_array_new(FALSE, FALSE, sizeof(int));
        g_autoptr(GArray) pass_targets = g_array_new(FALSE, FALSE, sizeof(int));
        g_autoptr(GArray) add_fd_args = g_array_new(FALSE, FALSE, sizeof(QmAddFdArg));
        QemuCredentials creds = { 0 };
        int log_fd;
        /* the guest agent's socket, as the others */
        int agent_listen = -1, agent_client = -1;
        int agent_target = AGENT_FD_IN_QEMU;
        g_autofree char *agent_socket = machine_agent_socket_path(m);

        if (!machine_ports_pick(m, error))
                return FALSE;
        if (!resolve_credentials(m, &creds, error))
                return FALSE;
        if (!prepare_dirs(m, error)) {
                g_strfreev(creds.envp);
                return FALSE;
        }
        log_path = g_build_filename(m->log_dir, "qemu.log", NULL);
        log_fd = qm_log_open(log_path, FALSE, &err);
        if (log_fd < 0) {
                g_strfreev(creds.envp);
                *error = qm_error_new(QM_ERROR_LAUNCH_FAILED, "%s", err->message);
                return FALSE;
        }
        if ((m->config->qmp && !open_socket(m->qmp_socket, &listen_fds[0], &client_fds[0], &err)) ||
            (m->config->console && !open_socket(m->console_socket, &listen_fds[1], &client_fds[1], &err)) ||
            (m->config->guest_agent && !open_socket(agent_socket, &agent_listen, &agent_client, &err))) {
                close_fds(listen_fds, 2);
                close_fds(client_fds, 2);
                qm_fd_close(agent_listen);
                qm_fd_close(agent_client);
                close(log_fd);
                g_strfreev(creds.envp);
                machine_remove_runtime_files(m);
                *error = qm_error_new(QM_ERROR_LAUNCH_FAILED, "sockets of '%s': %s", m->name, err->message);
                return FALSE;
        }
        for (guint i = 0; i < 2; i++) {
                if (listen_fds[i] < 0)
                        continue;
                g_array_append_val(pass_fds, listen_fds[i]);
                g_array_append_val(pass_targets, targets[i]);
        }
        if (agent_listen >= 0) {
                g_array_append_val(pass_fds, agent_listen);
                g_array_append_val(pass_targets, agent_target);
        }
        for (guint i = 0; i < m->add_fds->len; i++) {
                QmHeldFd *h = &g_array_index(m->add_fds, QmHeldFd, i);
                QmAddFdArg arg = { ADD_FD_FIRST_IN_QEMU + (int)i, h->fdset, h->opaque, h->opts };
                g_array_append_val(pass_fds, h->fd);
                g_array_append_val(pass_targets, arg.fd);
                g_array_append_val(add_fd_args, arg);
        }

        reset_run(m);
        g_strfreev(m->command_line);
        m->command_line = qm_build_argv(m->config, m->daemon->default_binary,
                                        m->config->qmp ? QMP_FD_IN_QEMU : -1,
                                        m->config->console ? CONSOLE_FD_IN_QEMU : -1,
                                        (QmAddFdArg *)add_fd_args->data, add_fd_args->len,
                                        (QmPortPair *)m->forwarded_ports->data, m->forwarded_ports->len);
        if (agent_listen >= 0)
                qm_argv_append_guest_agent(&m->command_line, AGENT_FD_IN_QEMU);
        machine_restore_extend_argv(m);
        m->launch_timestamp = g_get_real_time();
        m->process = qemu_process_spawn(m->command_line, &creds, log_fd, (int *)pass_fds->data,
                                        (int *)pass_targets->data, pass_fds->len, machine_on_process_exit, m, &err);
        g_strfreev(creds.envp);
        close(log_fd);
        close_fds(listen_fds, 2);
        qm_fd_close(agent_listen);
        if (!m->process) {
                g_autofree char *cmdline = qm_argv_to_string(m->command_line);
                close_fds(client_fds, 2);
                qm_fd_close(agent_client);
                machine_remove_runtime_files(m);
                *error = qm_error_new(QM_ERROR_LAUNCH_FAILED,
                                      "QEMU of '%s' failed to launch: %s\nExit code: %d\nCommand: %s\nOutput: ",
                                      m->name, err->message, m->exit_code, cmdline);
                return FALSE;
        }
        /* Without its record a daemon that crashes now would lose this
         * QEMU and start a second one on the same disks: no record, no
         * launch. */
        if (!machine_write_record(m, &err)) {
                m->launch_error = g_strdup_printf("cannot write the runtime record: %s", err->message);
                close_fds(client_fds, 2);
                qm_fd_close(agent_client);
                machine_kill(m, SIGKILL);
                return TRUE; /* the exit handler answers with launch_error */
        }
        qm_registrar_register(m->daemon->registrar, m->name, m->config->uuid, qemu_process_pid(m->process));
        if (client_fds[1] >= 0)
                machine_console_start(m, client_fds[1], FALSE);
        if (agent_client >= 0)
                machine_agent_start(m, agent_client);
        if (m->config->qmp) {
                m->launch_timer = g_timeout_add((guint)(m->config->qmp_timeout * 1000), on_launch_timeout, m);
                /* the first retry well inside the launch timeout */
                m->handshake_delay_ms = (guint)MIN(HANDSHAKE_FIRST_RETRY_MS, m->config->qmp_timeout * 1000 / 5);
                m->handshake_timer = g_timeout_add(m->handshake_delay_ms, machine_on_handshake_stall, m);
                m->qmp = machine_qmp_connect(m, client_fds[0]);
        }
        return TRUE;
}

/* The launch ends before QEMU started: FAILED, the call answered, and a
 * Restore's or PrepareIncoming's launch undone. */
static void launch_failed_early(Machine *m, const QmError *e) {
        g_array_set_size(m->add_fds, 0);
        machine_set_state(m, QM_STATE_FAILED);
        qm_reply_fail(g_steal_pointer(&m->launch_call), e);
        machine_restore_free(m);
        machine_incoming_exited(m);
}

static void start_qemu(Machine *m) {
        g_autoptr(QmError) e = NULL;

        if (!machine_spawn_qemu(m, &e)) {
                launch_failed_early(m, e);
                return;
        }
        if (!m->config->qmp && !m->killed_by_us) {
                g_array_set_size(m->add_fds, 0);
                machine_set_state(m, QM_STATE_RUNNING);
                qm_reply_ok(g_steal_pointer(&m->launch_call));
        }
        /* else the handshake or QEMU's exit answers the call */
}

/* On the main loop, the machine still starting: a Kill, Shutdown or the
 * machine's end cancel the lookup (machine_launch_abort_lookup(),
 * machine_free()), so this is never called for a launch that was given
 * up. */
static void on_user_resolved(QmUserIdentity **u, QmError **e, gpointer data) {
        Machine *m = data;
        g_autofree char *user = qm_config_effective_user(m->config);

        m->user_lookup = NULL;
        if (!*u) {
                g_autoptr(QmError) why = user_error(m, user, *e);
                launch_failed_early(m, why);
                return;
        }
        qm_user_identity_free(m->launch_user);
        m->launch_user = g_steal_pointer(u);
        start_qemu(m);
}

gboolean machine_launch_abort_lookup(Machine *m) {
        if (!m->user_lookup)
                return FALSE;
        qm_user_lookup_cancel(g_steal_pointer(&m->user_lookup));
        /* what the exit handler would otherwise take for this run's */
        g_array_set_size(m->forwarded_ports, 0);
        m->relaunching = FALSE;
        machine_on_process_exit(NULL, QM_EXIT_CODE_UNKNOWN, m);
        return TRUE;
}

/*
 * The machine is STARTING from here on: a second Launch, a Restore or a
 * PrepareIncoming answer AlreadyRunning, RemoveMachine and UpdateMachine
 * Busy, while its user is looked up off the main loop; QEMU starts when
 * the answer is back.
 */
void machine_launch(Machine *m, QmReply *call) {
        g_autoptr(QmError) e = machine_migrated_error(m);
        g_autofree char *user = NULL;

        if (e) {
                qm_reply_fail(call, e);
                return;
        }
        if (machine_is_active(m)) {
                qm_reply_failf(call, QM_ERROR_ALREADY_RUNNING, "Machine '%s' is already %s",
                                           m->name, qm_state_to_string(m->state));
                return;
        }
        e = machine_fd_headroom_error(m);
        if (e) {
                qm_reply_fail(call, e);
                return;
        }
        m->launch_retried = FALSE;
        m->port_tries = 0;
        m->launch_call = call;
        machine_set_state(m, QM_STATE_STARTING);
        user = qm_config_effective_user(m->config);
        m->user_lookup = qm_user_lookup_start(user, on_user_resolved, m);
}
