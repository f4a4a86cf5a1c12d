/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qmachinectl: command-line client of qmachined (org.qmachine.QMachine1). */
#include "ctl.h"

#include <getopt.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build-config.h"

enum {
        OPT_HELP = 'h',
        OPT_HOST = 'H',
        OPT_OUTPUT = 'o',
        OPT_QUIET = 'q',
        OPT_PROPERTY = 'p',
        OPT_FIRST = 0x100,
        OPT_SESSION = OPT_FIRST,
        OPT_ADDRESS,
        OPT_NO_ASK_PASSWORD,
        OPT_VERSION,
        /* Options of the commands. */
        OPT_TIMEOUT,
        OPT_FORCE,
        OPT_AFTER,
        OPT_HOLD,
        OPT_MACHINE,
        OPT_ARG,
        OPT_WRAPPER,
        OPT_BINARY,
        OPT_PERSISTENT,
        OPT_CONSOLE,
        OPT_CONSOLE_DEVICE,
        OPT_CONSOLE_INDEX,
        OPT_NICS,
        OPT_QMP_TIMEOUT,
        OPT_UUID,
        OPT_INCOMING,
        OPT_DESCRIPTION,
        OPT_NO_QMP,
        OPT_CLUSTER_SIZE,
        OPT_BACKING,
        OPT_OFFLINE,
        OPT_CANCEL_AFTER,
        OPT_DRAIN,
        OPT_TO,
        OPT_DNAME,
        OPT_LISTEN_ADDRESS,
        OPT_UNDEFINE_SOURCE,
        OPT_BANDWIDTH,
        OPT_DOWNTIME_LIMIT,
        OPT_AUTO_CONVERGE,
        OPT_POSTCOPY,
        OPT_POSTCOPY_AFTER,
        OPT_MODE,
        OPT_PAUSED,
        OPT_JSON,
        OPT_NO_LEGEND,
        OPT_NO_PAGER,
        OPT_NO_KILL,
        OPT_VALUE,
};

typedef struct {
        struct option opt;
        const char *arg;
        const char *help;
} OptionInfo;

static const OptionInfo global_options[] = {
        { { "help", no_argument, NULL, OPT_HELP }, NULL, "show help" },
        { { "session", no_argument, NULL, OPT_SESSION }, NULL, "talk to the daemon on the session bus" },
        { { "address", required_argument, NULL, OPT_ADDRESS },
          "ADDR",
          "talk to the daemon on the bus at this D-Bus address" },
        { { "host", required_argument, NULL, OPT_HOST },
          "[USER@]HOST",
          "-H: talk to the daemon of a remote host, over ssh (file descriptors cannot cross it)" },
        { { "no-ask-password", no_argument, NULL, OPT_NO_ASK_PASSWORD },
          NULL,
          "do not ask for a password when polkit wants one" },
        { { "version", no_argument, NULL, OPT_VERSION }, NULL, "print the version of qmachinectl" },
        { { "output", required_argument, NULL, OPT_OUTPUT },
          "MODE",
          "-o: print data as a table (default), json (one line), json-pretty or value (values only)" },
        { { "json", optional_argument, NULL, OPT_JSON },
          "MODE",
          "pretty, short or off: -o json-pretty, -o json, -o table (no MODE: pretty on a terminal)" },
        { { "no-legend", no_argument, NULL, OPT_NO_LEGEND }, NULL, "no header line above a table" },
        { { "no-pager", no_argument, NULL, OPT_NO_PAGER }, NULL, "never pipe the output into a pager" },
        { { "quiet", no_argument, NULL, OPT_QUIET }, NULL, "-q: no informational messages (errors still)" },
};

static const OptionInfo command_options[] = {
        { { "timeout", required_argument, NULL, OPT_TIMEOUT }, "S", NULL },
        { { "force", no_argument, NULL, OPT_FORCE }, NULL, "kill QEMU at once (SIGKILL) instead of a QMP quit" },
        { { "after", required_argument, NULL, OPT_AFTER },
          "N",
          "only events with a sequence number greater than N (default 0)" },
        { { "hold", required_argument, NULL, OPT_HOLD },
          "MS",
          "hold each combo that many milliseconds (default: QEMU's 100)" },
        { { "machine", required_argument, NULL, OPT_MACHINE }, "T", "-machine T" },
        { { "arg", required_argument, NULL, OPT_ARG }, "A", "one more QEMU argument (repeat it for each)" },
        { { "wrapper", required_argument, NULL, OPT_WRAPPER },
          "W",
          "one more word of a command prefix, e.g. taskset (repeatable)" },
        { { "binary", required_argument, NULL, OPT_BINARY },
          "B",
          "the qemu-system binary (default: the daemon's DefaultBinary)" },
        { { "persistent", no_argument, NULL, OPT_PERSISTENT },
          NULL,
          "keep the definition across daemon restarts" },
        { { "console", no_argument, NULL, OPT_CONSOLE }, NULL, "give the machine a serial console" },
        { { "console-device", required_argument, NULL, OPT_CONSOLE_DEVICE },
          "D",
          "a -device type for the console (with --console)" },
        { { "console-index", required_argument, NULL, OPT_CONSOLE_INDEX },
          "N",
          "that many -serial null before the console (with --console)" },
        { { "nics", required_argument, NULL, OPT_NICS }, "N", "that many user-mode NICs" },
        { { "qmp-timeout", required_argument, NULL, OPT_QMP_TIMEOUT },
          "S",
          "seconds for the QMP handshake and each command (default 30)" },
        { { "uuid", required_argument, NULL, OPT_UUID }, "U", "the machine's UUID" },
        { { "incoming", required_argument, NULL, OPT_INCOMING },
          "URI",
          "-incoming URI (a migration destination)" },
        { { "description", required_argument, NULL, OPT_DESCRIPTION }, "D", "free text" },
        { { "no-qmp", no_argument, NULL, OPT_NO_QMP }, NULL, "no QMP monitor" },
        { { "cluster-size", required_argument, NULL, OPT_CLUSTER_SIZE },
          "N",
          "qcow2 cluster size (suffixes K, M)" },
        { { "backing", required_argument, NULL, OPT_BACKING }, "B", "backing image (an image name)" },
        { { "offline", no_argument, NULL, OPT_OFFLINE },
          NULL,
          "pause the guest first (a consistent copy; the guest does not run meanwhile)" },
        { { "to", required_argument, NULL, OPT_TO },
          "[USER@]HOST",
          "move the machine to the daemon of HOST, reached over ssh (localhost: this daemon)" },
        { { "dname", required_argument, NULL, OPT_DNAME },
          "NAME",
          "the machine's name on the destination (default its own; needed for localhost)" },
        { { "listen-address", required_argument, NULL, OPT_LISTEN_ADDRESS },
          "ADDR",
          "the address the destination listens on (default HOST; localhost: a unix socket)" },
        { { "undefine-source", no_argument, NULL, OPT_UNDEFINE_SOURCE },
          NULL,
          "remove the machine here once it runs there" },
        { { "bandwidth", required_argument, NULL, OPT_BANDWIDTH },
          "B",
          "at most B bytes per second (suffixes K, M, G)" },
        { { "downtime-limit", required_argument, NULL, OPT_DOWNTIME_LIMIT },
          "MS",
          "the longest pause of the guest at the switch-over" },
        { { "auto-converge", no_argument, NULL, OPT_AUTO_CONVERGE },
          NULL,
          "slow the guest's CPUs down when it dirties memory faster than it is sent" },
        { { "postcopy", no_argument, NULL, OPT_POSTCOPY },
          NULL,
          "switch to post-copy (the guest runs there while its memory follows)" },
        { { "postcopy-after", required_argument, NULL, OPT_POSTCOPY_AFTER },
          "S",
          "with --postcopy: switch after S seconds of pre-copy (default 0)" },
        { { "cancel-after", required_argument, NULL, OPT_CANCEL_AFTER },
          "S",
          "cancel the migration after S seconds" },
        { { "drain", required_argument, NULL, OPT_DRAIN },
          "S",
          "without a terminal: after EOF on stdin, go on printing console output "
          "until it was quiet for S seconds (default 1)" },
        { { "mode", required_argument, NULL, OPT_MODE },
          "OCTAL",
          "permission bits of the guest file, e.g. 0644 (default: the agent's)" },
        { { "paused", no_argument, NULL, OPT_PAUSED }, NULL, "leave the guest paused" },
        { { "no-kill", no_argument, NULL, OPT_NO_KILL },
          NULL,
          "when the timeout runs out, exit with 1 and leave the machine running" },
        { { "property", required_argument, NULL, OPT_PROPERTY },
          "PROP",
          "-p: only this property (repeatable, or comma-separated)" },
        { { "value", no_argument, NULL, OPT_VALUE }, NULL, "print only the values, not NAME=" },
};

typedef struct {
        const char *name;
        const char *usage;
        const char *summary;
        int min_args;
        int max_args; /* -1: no limit */
        int (*run)(Ctl *c, int argc, char **argv);
        const int *options; /* 0-terminated */
        const char *timeout_help;
} Command;

#define OPTS(...) ((const int[]){ __VA_ARGS__, 0 })
#define NO_OPTS ((const int[]){ 0 })

static const Command commands[] = {
        { "list", "", "list the machines (NAME STATE PID)", 0, 0, cmd_list, NO_OPTS, NULL },
        { "status", "NAME",
          "show a machine's state and since when, QEMU, owner, addresses, the end of its log and its last "
          "events",
          1, 1, cmd_status, NO_OPTS, NULL },
        { "show", "[NAME] [-p PROP]... [--value]",
          "print the properties of a machine (without NAME: of the daemon) as NAME=VALUE lines", 0, 1,
          cmd_show, OPTS(OPT_PROPERTY, OPT_VALUE), NULL },
        { "create", "NAME [OPTIONS]",
          "define a machine (NAME \"-\": the daemon picks a name); prints its name", 1, 1, cmd_create,
          OPTS(OPT_MACHINE, OPT_ARG, OPT_BINARY, OPT_WRAPPER, OPT_PERSISTENT, OPT_CONSOLE,
               OPT_CONSOLE_DEVICE, OPT_CONSOLE_INDEX, OPT_NICS, OPT_QMP_TIMEOUT, OPT_UUID, OPT_INCOMING,
               OPT_DESCRIPTION, OPT_NO_QMP),
          NULL },
        { "clone", "NAME NEW_NAME", "define a copy of a machine (new UUID and MACs)", 2, 2, cmd_clone,
          NO_OPTS, NULL },
        { "remove", "NAME", "remove a machine that does not run", 1, 1, cmd_remove, NO_OPTS, NULL },
        { "enable", "NAME",
          "start the machine when the daemon first starts after a host boot (autostart; makes it persistent)",
          1, 1, cmd_enable, NO_OPTS, NULL },
        { "disable", "NAME", "no autostart for the machine", 1, 1, cmd_disable, NO_OPTS, NULL },
        { "start", "NAME", "start QEMU; returns when its QMP monitor is ready", 1, 1, cmd_start, NO_OPTS,
          NULL },
        { "launch", "NAME", "the same as start", 1, 1, cmd_start, NO_OPTS, NULL },
        { "stop", "NAME [--timeout S] [--force]", "shut QEMU down: QMP quit, SIGKILL after the timeout", 1,
          1, cmd_stop, OPTS(OPT_TIMEOUT, OPT_FORCE),
          "seconds to wait for QEMU to exit (default 30; negative: no limit)" },
        { "kill", "NAME", "kill QEMU with SIGKILL", 1, 1, cmd_kill, NO_OPTS, NULL },
        { "wait", "NAME [--timeout S] [--no-kill]",
          "wait for QEMU to exit by itself; when the timeout runs out QEMU is KILLED (SIGKILL, as the API's "
          "Wait does) unless --no-kill",
          1, 1, cmd_wait, OPTS(OPT_TIMEOUT, OPT_NO_KILL),
          "seconds to wait (default 30; negative: no limit), then QEMU is killed (not with --no-kill)" },
        { "powerdown", "NAME [--timeout S]",
          "press the ACPI power button and wait for the guest to power off", 1, 1, cmd_powerdown,
          OPTS(OPT_TIMEOUT), "seconds to wait for the guest (default 30; negative: no limit)" },
        { "powerdown-all", "[--timeout S]",
          "press the ACPI power button of every running machine at once and wait; a guest that has not "
          "powered off when the timeout runs out is ended (QMP quit, then SIGKILL); exit 1 if any was. "
          "qmachined-guests.service runs this at host shutdown",
          0, 0, cmd_powerdown_all, OPTS(OPT_TIMEOUT), "seconds each guest has (default 120)" },
        { "pause", "NAME", "pause the guest's CPUs (QMP stop)", 1, 1, cmd_pause, NO_OPTS, NULL },
        { "resume", "NAME", "resume the guest's CPUs (QMP cont)", 1, 1, cmd_resume, NO_OPTS, NULL },
        { "reset", "NAME", "reset the guest (QMP system_reset)", 1, 1, cmd_reset, NO_OPTS, NULL },
        { "qmp", "NAME COMMAND [JSON-ARGS]",
          "send a QMP command and print the whole response (exit 1 for an error response)", 2, 3, cmd_qmp,
          NO_OPTS, NULL },
        { "command", "NAME COMMAND [JSON-ARGS]", "run a QMP command and print its return value", 2, 3,
          cmd_command, NO_OPTS, NULL },
        { "events", "NAME [--after N]", "print the retained events, one \"SEQ JSON\" line each", 1, 1,
          cmd_events, OPTS(OPT_AFTER), NULL },
        { "wait-event", "NAME EVENT [MATCH-JSON] [--after N] [--timeout S]",
          "wait for an event (EVENT \"\" or \"*\": any) whose object contains MATCH-JSON; "
          "prints \"SEQ JSON\"",
          2, 3, cmd_wait_event, OPTS(OPT_AFTER, OPT_TIMEOUT),
          "seconds to wait (default: no limit; 0: only search the retained events)" },
        { "monitor", "[NAME]",
          "print \"NAME SEQ EVENT DATA\" for every event (of all machines or one) until "
          "Ctrl-C",
          0, 1, cmd_monitor, NO_OPTS, NULL },
        { "log", "NAME", "print QEMU's output of the current or last run", 1, 1, cmd_log, NO_OPTS, NULL },
        { "console", "NAME [--drain S]",
          "connect the terminal to the serial console (Ctrl-] leaves); without a terminal, "
          "copy stdin to the console and the console to stdout",
          1, 1, cmd_console, OPTS(OPT_DRAIN), NULL },
        { "console-output", "NAME", "print the retained console output", 1, 1, cmd_console_output, NO_OPTS,
          NULL },
        { "login", "NAME [--drain S]",
          "the same as console: an interactive shell goes through the serial console", 1, 1, cmd_console,
          OPTS(OPT_DRAIN), NULL },
        { "expect", "NAME REGEX [--after N] [--timeout S]",
          "wait until the console output of this run after byte N matches REGEX (GLib, multiline); "
          "prints \"OFFSET MATCH\", OFFSET just past the match",
          2, 2, cmd_expect, OPTS(OPT_AFTER, OPT_TIMEOUT),
          "seconds to wait (default: no limit; 0: only search the retained output)" },
        { "send", "NAME TEXT", "write TEXT to the serial console; C escapes such as \\n \\r \\t \\\\ \\xHH",
          2, 2, cmd_send, NO_OPTS, NULL },
        { "send-key", "NAME COMBO... [--hold MS]", "press key combos such as ctrl-alt-delete or shift-a", 2,
          -1, cmd_send_key, OPTS(OPT_HOLD), NULL },
        { "images", "", "list the disk images (NAME FORMAT SIZE)", 0, 0, cmd_images, NO_OPTS, NULL },
        { "image-create", "NAME FORMAT SIZE [--cluster-size N] [--backing B]",
          "create a disk image; SIZE takes the suffixes K, M, G, T (powers of 1024); "
          "prints its path",
          3, 3, cmd_image_create, OPTS(OPT_CLUSTER_SIZE, OPT_BACKING), NULL },
        { "image-check", "NAME",
          "check an image; prints the verdict and qemu-img's report, exit 0 only when ok", 1, 1,
          cmd_image_check, NO_OPTS, NULL },
        { "image-remove", "NAME", "remove a disk image", 1, 1, cmd_image_remove, NO_OPTS, NULL },
        { "migrate",
          "NAME {URI | --to [USER@]HOST [--persistent] [--undefine-source] [--dname N]} [--offline] "
          "[--bandwidth B] [--postcopy] [--timeout S] [--cancel-after S]",
          "migrate the VM and wait for the end: to a QEMU migration URI, or with --to the whole move to "
          "another host's daemon (prepared there from this machine's config, progress shown on a terminal; "
          "on success it runs there and this one is left migrated, on failure nothing stays there)",
          1, 2, cmd_migrate,
          OPTS(OPT_TIMEOUT, OPT_OFFLINE, OPT_CANCEL_AFTER, OPT_TO, OPT_PERSISTENT, OPT_UNDEFINE_SOURCE,
               OPT_DNAME, OPT_LISTEN_ADDRESS, OPT_BANDWIDTH, OPT_DOWNTIME_LIMIT, OPT_AUTO_CONVERGE, OPT_POSTCOPY,
               OPT_POSTCOPY_AFTER),
          "seconds until the migration is cancelled (default 3600; 0 or less: no limit)" },
        { "exec", "NAME [--timeout S] -- PROGRAM [ARGS...]",
          "run a program in the guest through its agent (stdin passed when it is not a terminal); "
          "exits with the program's status, 128+N for signal N",
          2, -1, cmd_exec, OPTS(OPT_TIMEOUT), "seconds the program may run (default 60)" },
        { "shell", "NAME -- COMMAND [ARGS...]",
          "machinectl's spelling of exec (no terminal: for an interactive shell use console)", 2, -1,
          cmd_exec, OPTS(OPT_TIMEOUT), "seconds the program may run (default 60)" },
        { "copy-to", "NAME HOST_PATH GUEST_PATH [--mode OCTAL]",
          "copy a host file into the guest through its agent", 3, 3, cmd_copy_to, OPTS(OPT_MODE), NULL },
        { "copy-from", "NAME GUEST_PATH HOST_PATH", "copy a guest file to the host through its agent", 3, 3,
          cmd_copy_from, NO_OPTS, NULL },
        { "save", "NAME FILE [--timeout S]",
          "save the guest's state into FILE (\"-\": stdout) and stop the machine", 2, 2, cmd_save,
          OPTS(OPT_TIMEOUT), "seconds the state may take to save (default 3600; 0 or less: no limit)" },
        { "restore", "NAME FILE [--paused] [--timeout S]",
          "start the machine from a state that save wrote into FILE (\"-\": stdin) and resume it", 2, 2,
          cmd_restore, OPTS(OPT_PAUSED, OPT_TIMEOUT),
          "seconds the state may take to load (default 3600; 0 or less: no limit)" },
        { "version", "", "print the versions and the daemon's default QEMU binary", 0, 0, cmd_version,
          NO_OPTS, NULL },
        { "port", "NAME [GUEST_PORT]",
          "print the host port on 127.0.0.1 forwarded to a guest TCP port; without one, every forwarded "
          "port as \"GUEST HOST\" lines",
          1, 2, cmd_port, NO_OPTS, NULL },
};

static const OptionInfo *find_option(int code) {
        for (size_t i = 0; i < G_N_ELEMENTS(command_options); i++)
                if (command_options[i].opt.val == code)
                        return &command_options[i];
        return NULL;
}

static const Command *find_command(const char *name) {
        for (size_t i = 0; i < G_N_ELEMENTS(commands); i++)
                if (strcmp(commands[i].name, name) == 0)
                        return &commands[i];
        return NULL;
}

static void print_option(FILE *f, const OptionInfo *o, const char *help) {
        g_autofree char *left = !o->arg               ? g_strdup_printf("--%s", o->opt.name)
                : o->opt.has_arg == optional_argument ? g_strdup_printf("--%s[=%s]", o->opt.name, o->arg)
                                                      : g_strdup_printf("--%s=%s", o->opt.name, o->arg);
        fprintf(f, "  %-22s %s\n", left, help ? help : o->help);
}

static void print_global_options(FILE *f) {
        fprintf(f, "\nOptions (before or after the command):\n");
        for (size_t i = 0; i < G_N_ELEMENTS(global_options); i++)
                print_option(f, &global_options[i], NULL);
}

static void program_help(FILE *f) {
        fprintf(f,
                "Usage: qmachinectl [OPTIONS] COMMAND [ARGS]\n\n"
                "Control the QEMU machines of qmachined (%s).\n\nCommands:\n",
                QM_BUS_NAME);
        for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
                g_autofree char *left = g_strdup_printf("%s%s%s", commands[i].name,
                                                        commands[i].usage[0] ? " " : "", commands[i].usage);
                fprintf(f, "  %s\n      %s\n", left, commands[i].summary);
        }
        print_global_options(f);
        fprintf(f,
                "\n\"qmachinectl COMMAND --help\" describes one command.\n"
                "Commands that only act (start, stop, kill, pause...) print nothing, also with --json.\n"
                "Errors exit with 1, usage errors with 2.\n");
}

static void command_help(FILE *f, const Command *cmd) {
        fprintf(f, "Usage: qmachinectl %s%s%s\n\n%s.\n", cmd->name, cmd->usage[0] ? " " : "", cmd->usage,
                cmd->summary);
        if (cmd->options[0]) {
                fprintf(f, "\nOptions:\n");
                for (const int *o = cmd->options; *o; o++) {
                        const OptionInfo *info = find_option(*o);
                        print_option(f, info, *o == OPT_TIMEOUT ? cmd->timeout_help : NULL);
                }
        }
        print_global_options(f);
}

static int usage_error(const Command *cmd, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static int usage_error(const Command *cmd, const char *fmt, ...) {
        va_list ap;

        fputs("qmachinectl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        if (cmd)
                fprintf(stderr, "Usage: qmachinectl %s%s%s\n", cmd->name, cmd->usage[0] ? " " : "",
                        cmd->usage);
        else
                fprintf(stderr, "Try \"qmachinectl --help\".\n");
        return EXIT_USAGE;
}

/* One option of a command; EXIT_OK or EXIT_USAGE. */
static int handle_option(Ctl *c, const Command *cmd, int code, const char *arg, bool *done) {
        CtlOptions *o = &c->o;
        const char *name = NULL;
        int r = 0;

        switch (code) {
        case OPT_HELP:
                if (cmd)
                        command_help(stdout, cmd);
                else
                        program_help(stdout);
                *done = true;
                return EXIT_OK;
        case OPT_VERSION:
                printf("qmachinectl %s\n", PACKAGE_VERSION);
                *done = true;
                return EXIT_OK;
        case OPT_SESSION:
                c->session = true;
                c->address = NULL;
                c->host = NULL;
                return EXIT_OK;
        case OPT_ADDRESS:
                c->address = arg;
                c->session = false;
                c->host = NULL;
                return EXIT_OK;
        case OPT_HOST:
                if (arg[0] == '\0' || arg[0] == '-')
                        return usage_error(cmd, "invalid host for -H: \"%s\"", arg);
                c->host = arg;
                c->session = false;
                c->address = NULL;
                return EXIT_OK;
        case OPT_NO_ASK_PASSWORD:
                c->ask_password = false;
                return EXIT_OK;
        case OPT_TIMEOUT:
                r = ctl_parse_double(arg, &o->timeout);
                o->timeout_set = true;
                name = "timeout";
                break;
        case OPT_FORCE:
                o->force = true;
                break;
        case OPT_AFTER:
                r = ctl_parse_u64(arg, &o->after);
                name = "after";
                break;
        case OPT_HOLD:
                r = ctl_parse_uint(arg, &o->hold_ms);
                name = "hold";
                break;
        case OPT_MACHINE:
                o->machine = arg;
                break;
        case OPT_ARG:
                g_ptr_array_add(o->args, (gpointer)arg);
                break;
        case OPT_WRAPPER:
                g_ptr_array_add(o->wrapper, (gpointer)arg);
                break;
        case OPT_BINARY:
                o->binary = arg;
                break;
        case OPT_PERSISTENT:
                o->persistent = true;
                break;
        case OPT_CONSOLE:
                o->console = true;
                break;
        case OPT_CONSOLE_DEVICE:
                o->console_device = arg;
                break;
        case OPT_CONSOLE_INDEX:
                r = ctl_parse_uint(arg, &o->console_index);
                o->console_index_set = true;
                name = "console-index";
                break;
        case OPT_NICS:
                r = ctl_parse_uint(arg, &o->nics);
                o->nics_set = true;
                name = "nics";
                break;
        case OPT_QMP_TIMEOUT:
                r = ctl_parse_double(arg, &o->qmp_timeout);
                o->qmp_timeout_set = true;
                name = "qmp-timeout";
                break;
        case OPT_UUID:
                o->uuid = arg;
                break;
        case OPT_INCOMING:
                o->incoming = arg;
                break;
        case OPT_DESCRIPTION:
                o->description = arg;
                break;
        case OPT_NO_QMP:
                o->no_qmp = true;
                break;
        case OPT_CLUSTER_SIZE:
                r = ctl_parse_size(arg, &o->cluster_size);
                o->cluster_size_set = true;
                name = "cluster-size";
                break;
        case OPT_BACKING:
                o->backing = arg;
                break;
        case OPT_OFFLINE:
                o->offline = true;
                break;
        case OPT_CANCEL_AFTER:
                r = ctl_parse_double(arg, &o->cancel_after);
                o->cancel_after_set = true;
                name = "cancel-after";
                break;
        case OPT_DRAIN:
                r = ctl_parse_double(arg, &o->drain);
                name = "drain";
                break;
        case OPT_TO:
                if (arg[0] == '\0' || arg[0] == '-')
                        return usage_error(cmd, "invalid host for --to: \"%s\"", arg);
                o->to = arg;
                break;
        case OPT_DNAME:
                o->dname = arg;
                break;
        case OPT_LISTEN_ADDRESS:
                o->listen_address = arg;
                break;
        case OPT_UNDEFINE_SOURCE:
                o->undefine_source = true;
                break;
        case OPT_BANDWIDTH:
                r = ctl_parse_size(arg, &o->bandwidth);
                o->bandwidth_set = true;
                name = "bandwidth";
                break;
        case OPT_DOWNTIME_LIMIT:
                r = ctl_parse_u64(arg, &o->downtime_limit);
                o->downtime_limit_set = true;
                name = "downtime-limit";
                break;
        case OPT_AUTO_CONVERGE:
                o->auto_converge = true;
                break;
        case OPT_POSTCOPY:
                o->postcopy = true;
                break;
        case OPT_POSTCOPY_AFTER:
                r = ctl_parse_double(arg, &o->postcopy_after);
                o->postcopy_after_set = true;
                name = "postcopy-after";
                break;
        case OPT_MODE: {
                char *end = NULL;
                unsigned long v = strtoul(arg, &end, 8);
                r = !*arg || *end || v > 07777 ? -1 : 0;
                o->mode = (uint32_t)v;
                name = "mode";
                break;
        }
        case OPT_PAUSED:
                o->paused = true;
                break;
        case OPT_OUTPUT:
                r = ctl_parse_output(arg, &c->output);
                name = "output";
                break;
        case OPT_JSON:
                r = ctl_parse_json(arg, &c->output);
                name = "json";
                break;
        case OPT_NO_LEGEND:
                c->no_legend = true;
                break;
        case OPT_NO_PAGER:
                c->no_pager = true;
                break;
        case OPT_QUIET:
                c->quiet = true;
                break;
        case OPT_NO_KILL:
                o->no_kill = true;
                break;
        case OPT_PROPERTY: {
                g_auto(GStrv) names = g_strsplit(arg, ",", -1);
                for (char **n = names; *n; n++)
                        if (**n)
                                g_ptr_array_add(o->properties, g_strdup(*n));
                break;
        }
        case OPT_VALUE:
                o->value = true;
                break;
        case ':':
                return usage_error(cmd, "option %s needs a value", arg);
        default:
                return usage_error(cmd, "unknown option %s", arg);
        }
        if (r < 0)
                return usage_error(cmd, "invalid value for --%s: %s", name, arg);
        return EXIT_OK;
}

static bool takes_option(const Command *cmd, int code) {
        for (const int *o = cmd->options; *o; o++)
                if (*o == code)
                        return true;
        return false;
}

/* getopt_long's table: the global options plus those of the command. */
static struct option *option_table(const Command *cmd) {
        GArray *a = g_array_new(TRUE, TRUE, sizeof(struct option));

        for (size_t i = 0; i < G_N_ELEMENTS(global_options); i++)
                g_array_append_val(a, global_options[i].opt);
        for (const int *o = cmd ? cmd->options : NO_OPTS; *o; o++)
                g_array_append_val(a, find_option(*o)->opt);
        return (struct option *)(void *)g_array_free(a, FALSE);
}

/* Parses argv[start..] (permuting options and arguments); returns the
 * exit code when done (help, error) or -1 to go on. */
static int parse_options(Ctl *c, const Command *cmd, int argc, char **argv, const char *shortopts) {
        g_autofree struct option *table = option_table(cmd);
        bool done = false;
        int code;

        opterr = 0;
        while ((code = getopt_long(argc, argv, shortopts, table, NULL)) != -1) {
                /* For errors, the word that was wrong. */
                const char *arg = code == '?' || code == ':' ? argv[optind - 1] : optarg;
                int r = handle_option(c, cmd, code, arg, &done);
                if (r != EXIT_OK || done)
                        return r;
        }
        return -1;
}

int main(int argc, char **argv) {
        Ctl c = { .ask_password = true };
        const Command *cmd;
        int r;

        setlocale(LC_ALL, "");
        c.o.args = g_ptr_array_new();
        c.o.wrapper = g_ptr_array_new();
        c.o.drain = 1.0;
        c.o.properties = g_ptr_array_new_with_free_func(g_free);

        /* Global options up to the command name. */
        r = parse_options(&c, NULL, argc, argv, "+:hH:o:q");
        if (r >= 0)
                return r;
        if (optind >= argc)
                return usage_error(NULL, "no command given");
        if (strcmp(argv[optind], "help") == 0) {
                if (optind + 1 >= argc) {
                        program_help(stdout);
                        return EXIT_OK;
                }
                cmd = find_command(argv[optind + 1]);
                if (!cmd)
                        return usage_error(NULL, "unknown command \"%s\"", argv[optind + 1]);
                command_help(stdout, cmd);
                return EXIT_OK;
        }
        cmd = find_command(argv[optind]);
        if (!cmd)
                return usage_error(NULL, "unknown command \"%s\"", argv[optind]);

        /* The command's arguments and options, in any order; "--" ends the
         * options (for arguments that start with "-"). */
        argc -= optind;
        argv += optind;
        optind = 0;
        r = parse_options(&c, cmd, argc, argv, takes_option(cmd, OPT_PROPERTY) ? ":hH:o:qp:" : ":hH:o:q");
        if (r >= 0)
                return r;
        argc -= optind;
        argv += optind;
        if (argc < cmd->min_args || (cmd->max_args >= 0 && argc > cmd->max_args))
                return usage_error(cmd, "%s arguments", argc < cmd->min_args ? "too few" : "too many");

        ctl_setup_color(&c); /* before a pager takes stdout */
        if (c.host && cmd->run == cmd_console)
                return ctl_remote_console(&c, argv[0]);
        r = ctl_connect(&c);
        if (r != EXIT_OK)
                return r;
        r = cmd->run(&c, argc, argv);
        fflush(stdout);
        ctl_pager_close(&c);
        ctl_disconnect(&c);
        g_ptr_array_unref(c.o.args);
        g_ptr_array_unref(c.o.wrapper);
        g_ptr_array_unref(c.o.properties);
        return r;
}
