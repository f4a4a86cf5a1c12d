/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qmachinectl's guest agent commands: exec (and machinectl's spelling
 * shell NAME -- CMD), copy-to, copy-from. Host files are opened here, as
 * the calling user, and passed as fds: the daemon never opens a host path
 * for a caller.
 */
#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The daemon's limit of GuestExec's stdin. */
#define EXEC_MAX_STDIN (16u * 1024 * 1024)

/* All of stdin when it is not a terminal (a terminal: nothing). */
static int read_stdin(GByteArray *buf) {
        char chunk[65536];

        if (isatty(STDIN_FILENO))
                return EXIT_OK;
        for (;;) {
                ssize_t n = read(STDIN_FILENO, chunk, sizeof(chunk));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return ctl_error("cannot read stdin: %s", g_strerror(errno));
                if (n == 0)
                        return EXIT_OK;
                if (buf->len + n > EXEC_MAX_STDIN)
                        return ctl_error("stdin is longer than %u bytes", EXEC_MAX_STDIN);
                g_byte_array_append(buf, (const guint8 *)chunk, n);
        }
}

static int write_all(int fd, const void *data, size_t len) {
        const char *p = data;

        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                p += n;
                len -= n;
        }
        return 0;
}

static int build_exec(Ctl *c, sd_bus_message *m, char **argv, GByteArray *input) {
        int r = sd_bus_message_append_strv(m, argv);

        if (r >= 0)
                r = sd_bus_message_append_array(m, 'y', input->data, input->len);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && c->o.timeout_set)
                r = sd_bus_message_append(m, "{sv}", "timeout", "d", c->o.timeout);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

/* {exit_code, signal, stdout, stderr}: exit_code null when signal ended
 * it; output that is not UTF-8 as stdout_base64/stderr_base64. */
static void print_exec_json(Ctl *c, int32_t code, const void *out, size_t out_len, const void *err,
                            size_t err_len) {
        g_autoptr(JsonObject) o = json_object_new();
        g_autoptr(JsonNode) node = NULL;

        if (code < 0) {
                json_object_set_null_member(o, "exit_code");
                json_object_set_int_member(o, "signal", -code);
        } else {
                json_object_set_int_member(o, "exit_code", code);
                json_object_set_null_member(o, "signal");
        }
        ctl_json_set_bytes(o, "stdout", out, out_len);
        ctl_json_set_bytes(o, "stderr", err, err_len);
        node = json_node_init_object(json_node_alloc(), o);
        ctl_output(c, node, NULL, NULL);
}

/* exec NAME -- PROGRAM ARGS...: the guest program's exit status is ours,
 * 128+N when signal N ended it (as a shell reports it). */
int cmd_exec(Ctl *c, int argc, char **argv) {
        g_autoptr(sd_bus_message) m = NULL;
        g_autoptr(sd_bus_message) reply = NULL;
        g_autoptr(GByteArray) input = g_byte_array_new();
        g_autofree char *path = NULL;
        const void *out, *err;
        size_t out_len, err_len;
        int32_t code;
        int r;

        r = read_stdin(input);
        if (r != EXIT_OK)
                return r;
        r = ctl_machine_path(c, argv[0], &path);
        if (r != EXIT_OK)
                return r;
        r = sd_bus_message_new_method_call(c->bus, &m, QM_BUS_NAME, path, QM_MACHINE_IFACE, "GuestExec");
        if (r >= 0)
                r = build_exec(c, m, argv + 1, input);
        if (r < 0)
                return ctl_error("cannot build the call: %s", g_strerror(-r));
        r = ctl_send(c, m, ctl_timeout_usec(c->o.timeout_set ? c->o.timeout : 60), &reply);
        if (r != EXIT_OK)
                return r;
        r = sd_bus_message_read(reply, "i", &code);
        if (r >= 0)
                r = sd_bus_message_read_array(reply, 'y', &out, &out_len);
        if (r >= 0)
                r = sd_bus_message_read_array(reply, 'y', &err, &err_len);
        if (r < 0)
                return ctl_error("bad reply to GuestExec: %s", g_strerror(-r));
        if (ctl_json_mode(c))
                print_exec_json(c, code, out, out_len, err, err_len);
        else if (write_all(STDOUT_FILENO, out, out_len) < 0 || write_all(STDERR_FILENO, err, err_len) < 0)
                return ctl_error("cannot write the program's output: %s", g_strerror(errno));
        return code < 0 ? 128 + (-code & 0x7f) : code & 0xff;
}

static int call_with_fd(Ctl *c, const char *name, const char *member, const char *types, const char *guest_path,
                        int fd, uint32_t mode) {
        g_autoptr(sd_bus_message) m = NULL;
        g_autofree char *path = NULL;
        int r;

        r = ctl_machine_path(c, name, &path);
        if (r != EXIT_OK)
                return r;
        r = sd_bus_message_new_method_call(c->bus, &m, QM_BUS_NAME, path, QM_MACHINE_IFACE, member);
        if (r >= 0 && strcmp(types, "hsu") == 0)
                r = sd_bus_message_append(m, "hsu", fd, guest_path, mode);
        else if (r >= 0)
                r = sd_bus_message_append(m, "sh", guest_path, fd);
        if (r < 0)
                return ctl_error("cannot build the call: %s", g_strerror(-r));
        /* a copy takes as long as it takes */
        return ctl_send(c, m, ctl_timeout_usec(-1), NULL);
}

/* copy-to NAME HOST_PATH GUEST_PATH [--mode OCTAL] */
int cmd_copy_to(Ctl *c, int argc, char **argv) {
        int fd = open(argv[1], O_RDONLY | O_CLOEXEC | O_NOCTTY);
        int r;

        if (fd < 0)
                return ctl_error("cannot open %s: %s", argv[1], g_strerror(errno));
        r = call_with_fd(c, argv[0], "CopyToGuest", "hsu", argv[2], fd, c->o.mode);
        close(fd);
        return r;
}

/* copy-from NAME GUEST_PATH HOST_PATH: a host file this created is
 * removed again when the copy fails. */
int cmd_copy_from(Ctl *c, int argc, char **argv) {
        bool created = false;
        int fd, r;

        fd = open(argv[2], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0666);
        if (fd >= 0)
                created = true;
        else if (errno == EEXIST)
                fd = open(argv[2], O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return ctl_error("cannot open %s: %s", argv[2], g_strerror(errno));
        r = call_with_fd(c, argv[0], "CopyFromGuest", "sh", argv[1], fd, 0);
        if (close(fd) < 0 && r == EXIT_OK)
                r = ctl_error("cannot write %s: %s", argv[2], g_strerror(errno));
        if (r != EXIT_OK && created)
                unlink(argv[2]);
        return r;
}
