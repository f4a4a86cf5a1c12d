/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Exit is watched through a pidfd rather than SIGCHLD/g_child_watch: it is
 * an ordinary fd in the main loop, it cannot confuse a recycled PID, and it
 * works the same for a process that is not our child (after a restart).
 */
#include <errno.h>
#include <glib-unix.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fd-util.h"
#include "persist.h"
#include "qemu-process.h"

struct QemuProcess {
        pid_t pid;
        gboolean own_group; /* leads its process group (setsid at spawn) */
        int pidfd;
        guint watch_id;
        QemuExitFunc on_exit;
        gpointer userdata;
};

static int pidfd_open_compat(pid_t pid) {
        return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int status_to_code(int status) {
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        if (WIFSIGNALED(status))
                return -WTERMSIG(status);
        return -1000;
}

static void kill_group(QemuProcess *p, int sig) {
        if (p->own_group && p->pid > 0 && kill(-p->pid, sig) < 0 && errno != ESRCH)
                g_warning("cannot signal the processes of QEMU %d: %s", (int)p->pid, g_strerror(errno));
}

/* Async-signal-safe: a message on stderr (the log) and exit. */
_Noreturn static void child_fail(const char *what) {
        int e = errno;
        const char *text = strerrordesc_np(e) ?: "unknown error";

        (void)!write(STDERR_FILENO, "qmachined: cannot ", 18);
        (void)!write(STDERR_FILENO, what, strlen(what));
        (void)!write(STDERR_FILENO, ": ", 2);
        (void)!write(STDERR_FILENO, text, strlen(text));
        (void)!write(STDERR_FILENO, "\n", 1);
        _exit(126);
}

/*
 * Runs in the child after GLib set up its fds and before exec: a session
 * and process group of its own, so that whatever QEMU starts can be found
 * and ended with it; then the user's groups, gid and uid (groups first:
 * only root may set them), and no privilege gains through exec.
 */
static void child_setup(gpointer data) {
        const QemuCredentials *c = data;

        setsid();
        if (c->switch_user) {
                if (setgroups(c->n_groups, c->groups) < 0)
                        child_fail("set the supplementary groups");
                if (setresgid(c->gid, c->gid, c->gid) < 0)
                        child_fail("set the group id");
                if (setresuid(c->uid, c->uid, c->uid) < 0)
                        child_fail("set the user id");
        }
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                child_fail("set no_new_privs");
}

static gboolean on_pidfd(int fd, GIOCondition cond, gpointer data) {
        QemuProcess *p = data;
        siginfo_t si = { 0 };
        int status = 0;
        int code = -1000;
        pid_t r;

        /* Peek first (WNOWAIT): the zombie keeps the PID, and so the
         * group's id, from being reused while the group is killed. */
        if (waitid(P_PID, p->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == 0)
                return G_SOURCE_CONTINUE; /* spurious: not exited yet */
        /* What QEMU started must not outlive it. */
        kill_group(p, SIGKILL);
        do
                r = waitpid(p->pid, &status, WNOHANG);
        while (r < 0 && errno == EINTR);
        /* r < 0 (ECHILD): not our child, the pidfd alone says it exited */
        if (r == p->pid)
                code = status_to_code(status);
        p->watch_id = 0;
        p->pid = 0;
        p->on_exit(p, code, p->userdata);
        return G_SOURCE_REMOVE;
}

static QemuProcess *watch(pid_t pid, int pidfd, QemuExitFunc on_exit, gpointer userdata) {
        QemuProcess *p = g_new0(QemuProcess, 1);

        p->pid = pid;
        p->own_group = getpgid(pid) == pid;
        p->pidfd = pidfd;
        p->on_exit = on_exit;
        p->userdata = userdata;
        p->watch_id = g_unix_fd_add(pidfd, G_IO_IN, on_pidfd, p);
        return p;
}

QemuProcess *qemu_process_spawn(char **argv, const QemuCredentials *creds, int log_fd, const int *source_fds,
                                const int *target_fds, guint n_fds, QemuExitFunc on_exit, gpointer userdata,
                                GError **error) {
        GPid pid;
        int pidfd;

        /* GLib closes every other fd (no G_SPAWN_LEAVE_DESCRIPTORS_OPEN);
         * the PATH search uses @creds->envp's PATH. */
        if (!g_spawn_async_with_pipes_and_fds(NULL, (const char *const *)argv, (const char *const *)creds->envp,
                                              G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_SEARCH_PATH_FROM_ENVP |
                                                      G_SPAWN_STDIN_FROM_DEV_NULL,
                                              child_setup, (gpointer)creds, -1, log_fd, log_fd, source_fds,
                                              target_fds, n_fds,
                                              &pid, NULL, NULL, NULL, error))
                return NULL;

        pidfd = pidfd_open_compat(pid);
        if (pidfd < 0) {
                int err = errno;
                kill(pid, SIGKILL);
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                g_set_error(error, G_SPAWN_ERROR, G_SPAWN_ERROR_FAILED, "pidfd_open failed: %s",
                            g_strerror(err));
                return NULL;
        }
        return watch(pid, pidfd, on_exit, userdata);
}

QemuProcess *qemu_process_attach(pid_t pid, guint64 start_time, QemuExitFunc on_exit, gpointer userdata,
                                 GError **error) {
        guint64 started;
        char state;
        g_auto(QmFd) pidfd = pidfd_open_compat(pid);

        if (pidfd < 0) {
                g_set_error(error, G_SPAWN_ERROR, G_SPAWN_ERROR_FAILED, "process %d: %s", (int)pid, g_strerror(errno));
                return NULL;
        }
        /* Checked after pidfd_open: the fd now pins this very process. */
        if (!qm_process_stat(pid, &started, &state) || started != start_time || state == 'Z' || state == 'X') {
                g_set_error(error, G_SPAWN_ERROR, G_SPAWN_ERROR_FAILED, "process %d is not the QEMU we started",
                            (int)pid);
                return NULL;
        }
        return watch(pid, qm_fd_steal(&pidfd), on_exit, userdata);
}

pid_t qemu_process_pid(QemuProcess *p) {
        return p ? p->pid : 0;
}

void qemu_process_kill(QemuProcess *p, int sig) {
        if (!p || p->pid <= 0)
                return;
        /* pidfd_send_signal: never hits a recycled PID */
        if (syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0) < 0 && errno != ESRCH)
                g_warning("cannot signal QEMU %d: %s", (int)p->pid, g_strerror(errno));
        /* A kill ends everything QEMU started too; a gentler signal is
         * QEMU's to pass on. */
        if (sig == SIGKILL)
                kill_group(p, sig);
}

void qemu_process_free(QemuProcess *p) {
        if (!p)
                return;
        if (p->watch_id)
                g_source_remove(p->watch_id);
        close(p->pidfd);
        g_free(p);
}
