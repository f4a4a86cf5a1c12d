/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * org.qmachine.QMachine1.Machine: argument checks, then the model does the
 * work and answers through a QmReply made here (HOLD), later or at once;
 * the handler returns 1 without replying. The model reports up through the
 * MachineNotify installed by machine_export().
 */
#include <linux/sockios.h>
#include <math.h>
#include <string.h>
#include <sys/ioctl.h>

#include "bus-gvariant.h"
#include "console-expect-dbus.h"
#include "dbus-common.h"
#include "guest-agent-dbus.h"
#include "json-util.h"
#include "keys.h"
#include "machine-dbus.h"
#include "machine-internal.h"
#include "names.h"
#include "ports-dbus.h"
#include "save-dbus.h"

/* D-Bus allows 128 MiB per message; leave room for the framing. */
#define GET_EVENTS_MAX_BYTES (64u * 1024 * 1024)

static Machine *M(void *userdata) {
        return userdata;
}

/* The model answers the call later, through a QmReply. */
#define HOLD(msg, userdata) qm_reply_new(M(userdata)->daemon->calls, (msg))

static int check_timeout(double timeout, sd_bus_error *error) {
        if (isnan(timeout))
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "timeout must be a number");
        return 0;
}

static int read_timeout(sd_bus_message *msg, double *timeout, sd_bus_error *error) {
        int r = sd_bus_message_read(msg, "d", timeout);
        return r < 0 ? r : check_timeout(*timeout, error);
}

static int method_launch(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        AUTHORIZE(msg, M(userdata), QM_AUTH_MANAGE, NULL, error);
        machine_launch(M(userdata), HOLD(msg, userdata));
        return 1;
}

static int method_shutdown(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        int hard, r;
        double timeout;

        AUTHORIZE(msg, M(userdata), QM_AUTH_MANAGE, NULL, error);
        r = sd_bus_message_read(msg, "bd", &hard, &timeout);
        if (r < 0)
                return r;
        if ((r = check_timeout(timeout, error)) < 0)
                return r;
        machine_shutdown(M(userdata), HOLD(msg, userdata), hard, timeout);
        return 1;
}

static int method_kill(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        AUTHORIZE(msg, M(userdata), QM_AUTH_MANAGE, NULL, error);
        machine_shutdown(M(userdata), HOLD(msg, userdata), TRUE, 0);
        return 1;
}

static int method_wait(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        double timeout;
        int r;

        AUTHORIZE(msg, M(userdata), QM_AUTH_MANAGE, NULL, error);
        r = read_timeout(msg, &timeout, error);
        if (r < 0)
                return r;
        machine_wait(M(userdata), HOLD(msg, userdata), timeout);
        return 1;
}

static int method_powerdown(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        double timeout;
        int r;

        AUTHORIZE(msg, M(userdata), QM_AUTH_MANAGE, NULL, error);
        r = read_timeout(msg, &timeout, error);
        if (r < 0)
                return r;
        machine_powerdown(M(userdata), HOLD(msg, userdata), timeout);
        return 1;
}


static int method_send_key(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        g_auto(GStrv) keys = NULL;
        uint32_t hold_ms;
        int r;

        AUTHORIZE(msg, M(userdata), QM_AUTH_MANAGE, NULL, error);
        r = bus_message_read_strv_max(msg, QM_KEYS_MAX_COMBOS, &keys);
        if (r == -E2BIG)
                return sd_bus_error_setf(error, QM_ERROR_LIMIT_EXCEEDED, "at most %u key combos",
                                         QM_KEYS_MAX_COMBOS);
        if (r < 0)
                return r;
        r = sd_bus_message_read(msg, "u", &hold_ms);
        if (r < 0)
                return r;
        machine_send_keys(M(userdata), HOLD(msg, userdata), keys, hold_ms);
        return 1;
}

static int method_add_fd(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        const char *opaque, *opts;
        uint32_t fdset;
        int fd, r;

        AUTHORIZE(msg, M(userdata), QM_AUTH_ADMIN, NULL, error);
        r = sd_bus_message_read(msg, "huss", &fd, &fdset, &opaque, &opts);
        if (r < 0)
                return r;
        machine_add_fd(M(userdata), HOLD(msg, userdata), fd, fdset, opaque, opts);
        return 1;
}

static int method_send_fd(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        const char *fdname;
        int fd, r;

        AUTHORIZE(msg, M(userdata), QM_AUTH_ADMIN, NULL, error);
        r = sd_bus_message_read(msg, "sh", &fdname, &fd);
        if (r < 0)
                return r;
        if (!*fdname || strlen(fdname) > 255)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "fdname must have 1 to 255 characters");
        machine_send_fd(M(userdata), HOLD(msg, userdata), fdname, fd);
        return 1;
}

/* One Migrate option into @o; FALSE when unknown or of the wrong type. */
static gboolean set_migrate_option(QmMigrateOptions *o, const char *key, GVariant *v) {
        static const struct {
                const char *key;
                const char *type;
        } known[] = {
                { "timeout", "d" },        { "offline", "b" },        { "cancel-after", "d" },
                { "bandwidth", "t" },      { "downtime-limit", "t" }, { "auto-converge", "b" },
                { "postcopy", "b" },       { "postcopy-after", "d" },
        };
        gboolean found = FALSE;

        for (gsize i = 0; i < G_N_ELEMENTS(known); i++)
                if (strcmp(key, known[i].key) == 0)
                        found = g_variant_is_of_type(v, G_VARIANT_TYPE(known[i].type));
        if (!found)
                return FALSE;
        if (strcmp(key, "timeout") == 0)
                o->timeout = g_variant_get_double(v);
        else if (strcmp(key, "offline") == 0)
                o->offline = g_variant_get_boolean(v);
        else if (strcmp(key, "cancel-after") == 0)
                o->cancel_after = g_variant_get_double(v);
        else if (strcmp(key, "bandwidth") == 0)
                o->bandwidth_set = TRUE, o->bandwidth = g_variant_get_uint64(v);
        else if (strcmp(key, "downtime-limit") == 0)
                o->downtime_limit_set = TRUE, o->downtime_limit = g_variant_get_uint64(v);
        else if (strcmp(key, "auto-converge") == 0)
                o->auto_converge = g_variant_get_boolean(v);
        else if (strcmp(key, "postcopy") == 0)
                o->postcopy = g_variant_get_boolean(v);
        else
                o->postcopy_after = g_variant_get_double(v);
        return TRUE;
}

/* Ranges QEMU accepts (max-bandwidth is an int64 of bytes/s, downtime-limit
 * at most 2000 s in ms), and numbers that are numbers. */
static int check_migrate_options(const QmMigrateOptions *o, gboolean postcopy_after_given, sd_bus_error *error) {
        if (isnan(o->timeout) || isnan(o->cancel_after) || (o->cancel_after < 0 && o->cancel_after != -1))
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                        "timeout and cancel-after must be numbers, cancel-after not negative");
        if (o->bandwidth_set && (o->bandwidth == 0 || o->bandwidth > (guint64)G_MAXINT64))
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                        "bandwidth must be 1 to 2^63-1 bytes per second");
        if (o->downtime_limit_set && o->downtime_limit > 2000000)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                        "downtime-limit must be 0 to 2000000 ms");
        if (!isfinite(o->postcopy_after) || o->postcopy_after < 0 || o->postcopy_after > 86400)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                        "postcopy-after must be 0 to 86400 seconds");
        if (postcopy_after_given && !o->postcopy)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "postcopy-after needs postcopy: true");
        if (o->postcopy && o->offline)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                        "postcopy and offline do not go together");
        return 0;
}

static int method_migrate(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        g_autoptr(GVariant) options = NULL;
        QmMigrateOptions o = { .timeout = 3600, .cancel_after = -1 };
        gboolean postcopy_after_given = FALSE;
        GVariantIter it;
        const char *uri, *key;
        GVariant *value;
        int r;

        AUTHORIZE(msg, M(userdata), QM_AUTH_ADMIN, NULL, error);
        r = sd_bus_message_read(msg, "s", &uri);
        if (r < 0)
                return r;
        r = bus_message_read_gvariant(msg, &options);
        if (r < 0)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "cannot read options");
        if (!*uri)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "uri must not be empty");
        g_variant_iter_init(&it, options);
        while (g_variant_iter_next(&it, "{&sv}", &key, &value)) {
                g_autoptr(GVariant) v = value;
                if (!set_migrate_option(&o, key, v))
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "unknown or ill-typed option '%s' (timeout d, offline b, "
                                                 "cancel-after d, bandwidth t, downtime-limit t, "
                                                 "auto-converge b, postcopy b, postcopy-after d)",
                                                 key);
                postcopy_after_given |= strcmp(key, "postcopy-after") == 0;
        }
        r = check_migrate_options(&o, postcopy_after_given, error);
        if (r < 0)
                return r;
        machine_migrate(M(userdata), HOLD(msg, userdata), uri, &o);
        return 1;
}

static int method_verify_alive(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        AUTHORIZE(msg, M(userdata), QM_AUTH_MONITOR, NULL, error);
        machine_verify_alive(M(userdata), HOLD(msg, userdata));
        return 1;
}

static int method_open_console(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        AUTHORIZE(msg, M(userdata), QM_AUTH_CONSOLE, NULL, error);
        machine_open_console(M(userdata), HOLD(msg, userdata));
        return 1;
}

static int method_get_console_output(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        AUTHORIZE(msg, M(userdata), QM_AUTH_CONSOLE, NULL, error);
        machine_get_console_output(M(userdata), HOLD(msg, userdata));
        return 1;
}

static int method_simple_qmp(sd_bus_message *msg, void *userdata, const char *command, sd_bus_error *error) {
        AUTHORIZE(msg, M(userdata), QM_AUTH_MANAGE, NULL, error);
        machine_qmp(M(userdata), HOLD(msg, userdata), command, NULL, QMP_REPLY_EMPTY);
        return 1;
}

static int method_reset(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return method_simple_qmp(msg, userdata, "system_reset", error);
}

static int method_pause(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return method_simple_qmp(msg, userdata, "stop", error);
}

static int method_resume(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return method_simple_qmp(msg, userdata, "cont", error);
}

/* Parse a JSON object argument; "" is no value. */
/* A JSON object argument ("" is no value), checked without a tree. */
static int check_json_object(const char *text, const char *what, sd_bus_error *error) {
        g_autoptr(GError) err = NULL;

        if (!*text)
                return 0;
        if (!qm_json_check(text, &err))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "%s is not valid JSON: %s", what,
                                         err->message);
        if (!qm_json_text_is_object(text))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "%s must be a JSON object", what);
        return 0;
}

static int qmp_common(sd_bus_message *msg, void *userdata, sd_bus_error *error, QmpReplyKind kind,
                      gboolean with_fd) {
        Machine *m = M(userdata);
        const char *command, *arguments;
        int fd = -1;
        int r;

        r = sd_bus_message_read(msg, "ss", &command, &arguments);
        if (r >= 0 && with_fd)
                r = sd_bus_message_read(msg, "h", &fd);
        if (r < 0)
                return r;
        /* query-* commands are QEMU's side-effect-free queries; an fd
         * given to QEMU is never just a query. */
        AUTHORIZE(msg, m, g_str_has_prefix(command, "query-") && !with_fd ? QM_AUTH_MONITOR : QM_AUTH_ADMIN,
                  command, error);
        if (strlen(arguments) > m->daemon->limits.max_qmp_arguments)
                return sd_bus_error_setf(error, QM_ERROR_LIMIT_EXCEEDED,
                                         "QMP arguments are limited to %zu bytes", m->daemon->limits.max_qmp_arguments);
        if (!*command || strlen(command) > 256)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                        "command must be a QMP command name of 1 to 256 characters");
        if (strcmp(command, "qmp_capabilities") == 0)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                        "qmp_capabilities is done by the daemon at launch");
        r = check_json_object(arguments, "arguments", error);
        if (r < 0)
                return r;
        machine_qmp_with_fd(m, HOLD(msg, m), command, *arguments ? arguments : NULL, kind, fd);
        return 1;
}

static int method_qmp(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return qmp_common(msg, userdata, error, QMP_REPLY_RAW, FALSE);
}

static int method_command(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return qmp_common(msg, userdata, error, QMP_REPLY_RETURN, FALSE);
}

static int method_qmp_with_fd(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return qmp_common(msg, userdata, error, QMP_REPLY_RAW, TRUE);
}

static int method_wait_event(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        g_autoptr(QmEventFilters) filters = qm_event_filters_new();
        const char *name, *match;
        uint64_t after;
        double timeout;
        int r;

        AUTHORIZE(msg, M(userdata), QM_AUTH_MONITOR, NULL, error);
        r = sd_bus_message_enter_container(msg, 'a', "(ss)");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(msg, "(ss)", &name, &match)) > 0) {
                g_autoptr(QmError) e = NULL;
                if (filters->items->len >= 256)
                        return sd_bus_error_set(error, QM_ERROR_LIMIT_EXCEEDED, "at most 256 filters");
                if (!qm_event_filters_add(filters, name, match, &e))
                        return sd_bus_error_set(error, e->name, e->message);
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(msg);
        if (r < 0)
                return r;
        r = sd_bus_message_read(msg, "td", &after, &timeout);
        if (r < 0)
                return r;
        if ((r = check_timeout(timeout, error)) < 0)
                return r;
        machine_wait_event(M(userdata), HOLD(msg, userdata), g_steal_pointer(&filters), after, timeout);
        return 1;
}

static int method_get_events(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Machine *m = M(userdata);
        g_autoptr(sd_bus_message) reply = NULL;
        const QmEvent *e;
        uint64_t after;
        gsize size = 0;
        int r;

        AUTHORIZE(msg, m, QM_AUTH_MONITOR, NULL, error);
        r = sd_bus_message_read(msg, "t", &after);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(ts)");
        if (r < 0)
                return r;
        /* Within the bus's message limit: a caller asks again from the
         * last number it got. */
        for (guint i = 0; (e = qm_event_ring_nth_after(m->events, after, i)); i++) {
                size += strlen(e->json) + 16;
                if (i > 0 && size > GET_EVENTS_MAX_BYTES)
                        break;
                r = sd_bus_message_append(reply, "(ts)", e->seq, e->json);
                if (r < 0)
                        break;
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return qm_reply_send(msg, reply, r);
}

static int method_get_log(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        g_autofree char *log = NULL;

        AUTHORIZE(msg, M(userdata), QM_AUTH_MONITOR, NULL, error);
        log = machine_read_log(M(userdata));
        return qm_reply_return(msg, "s", log);
}

static int get_string(sd_bus_message *reply, const char *s) {
        return sd_bus_message_append(reply, "s", s ? s : "");
}

/* Config and CommandLine may hold secrets (-object secret,data=...):
 * root and the owner may read them. */
static int check_may_read_secrets(Machine *m, sd_bus *bus, const char *property, sd_bus_error *error) {
        sd_bus_message *call = sd_bus_get_current_message(bus);
        uid_t uid;

        if (!call || !qm_auth_sender_uid(m->daemon->auth, call, &uid))
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                         "%s of '%s' is only for root and its owner, and who asks is not known",
                                         property, m->name);
        if (uid != 0 && uid != m->config->owner)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                         "%s of '%s' may hold secrets: only root and its owner (uid %u) may read it",
                                         property, m->name, (unsigned)m->config->owner);
        return 0;
}

PROPERTY_GETTER(prop_name) { return get_string(reply, M(userdata)->name); }
PROPERTY_GETTER(prop_uuid) { return get_string(reply, M(userdata)->config->uuid); }
PROPERTY_GETTER(prop_state) { return get_string(reply, qm_state_to_string(M(userdata)->state)); }
PROPERTY_GETTER(prop_run_state) { return get_string(reply, M(userdata)->run_state); }
PROPERTY_GETTER(prop_pid) { return sd_bus_message_append(reply, "u", (uint32_t)machine_pid(M(userdata))); }
PROPERTY_GETTER(prop_exit_code) { return sd_bus_message_append(reply, "i", (int32_t)M(userdata)->exit_code); }
PROPERTY_GETTER(prop_command_line) {
        int r = check_may_read_secrets(M(userdata), bus, property, error);
        return r < 0 ? r : sd_bus_message_append_strv(reply, M(userdata)->command_line);
}
PROPERTY_GETTER(prop_persistent) { return sd_bus_message_append(reply, "b", M(userdata)->config->persistent); }
PROPERTY_GETTER(prop_qemu_version) { return get_string(reply, M(userdata)->qemu_version); }
PROPERTY_GETTER(prop_event_sequence) { return sd_bus_message_append(reply, "t", M(userdata)->event_seq); }
PROPERTY_GETTER(prop_launch_timestamp) {
        return sd_bus_message_append(reply, "t", (uint64_t)M(userdata)->launch_timestamp);
}
PROPERTY_GETTER(prop_kernel_crash) { return get_string(reply, M(userdata)->kernel_crash); }
PROPERTY_GETTER(prop_runtime_directory) { return get_string(reply, M(userdata)->runtime_dir); }
PROPERTY_GETTER(prop_log_directory) { return get_string(reply, M(userdata)->log_dir); }

PROPERTY_GETTER(prop_config) {
        int r = check_may_read_secrets(M(userdata), bus, property, error);
        return r < 0 ? r : bus_message_append_gvariant(reply, M(userdata)->config_variant);
}

PROPERTY_GETTER(prop_owner) { return sd_bus_message_append(reply, "u", (uint32_t)M(userdata)->config->owner); }

PROPERTY_GETTER(prop_mac_addresses) {
        Machine *m = M(userdata);
        int r = sd_bus_message_open_container(reply, 'a', "s");
        if (r < 0)
                return r;
        for (guint i = 0; i < m->config->nics; i++) {
                g_autofree char *mac = qm_config_mac_address(m->config, i);
                r = sd_bus_message_append(reply, "s", mac);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

#define CONST SD_BUS_VTABLE_PROPERTY_CONST
#define CHANGES SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE
#define INVALIDATES SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION
#define SECRET SD_BUS_VTABLE_PROPERTY_EXPLICIT

static const sd_bus_vtable machine_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", prop_name, 0, CONST),
        SD_BUS_PROPERTY("UUID", "s", prop_uuid, 0, CHANGES),
        SD_BUS_PROPERTY("State", "s", prop_state, 0, CHANGES),
        SD_BUS_PROPERTY("RunState", "s", prop_run_state, 0, CHANGES),
        SD_BUS_PROPERTY("Pid", "u", prop_pid, 0, CHANGES),
        SD_BUS_PROPERTY("ExitCode", "i", prop_exit_code, 0, CHANGES),
        /* Not in GetAll, GetManagedObjects, InterfacesAdded nor, but as a
         * name, in PropertiesChanged: their values are not for everyone. */
        SD_BUS_PROPERTY("CommandLine", "as", prop_command_line, 0, SECRET | INVALIDATES),
        SD_BUS_PROPERTY("Config", "a{sv}", prop_config, 0, SECRET | INVALIDATES),
        SD_BUS_PROPERTY("Owner", "u", prop_owner, 0, CONST),
        SD_BUS_PROPERTY("Persistent", "b", prop_persistent, 0, CHANGES),
        SD_BUS_PROPERTY("QemuVersion", "s", prop_qemu_version, 0, CHANGES),
        SD_BUS_PROPERTY("EventSequence", "t", prop_event_sequence, 0, CHANGES),
        SD_BUS_PROPERTY("KernelCrash", "s", prop_kernel_crash, 0, CHANGES),
        SD_BUS_PROPERTY("MacAddresses", "as", prop_mac_addresses, 0, CHANGES),
        SD_BUS_PROPERTY("LaunchTimestamp", "t", prop_launch_timestamp, 0, CHANGES),
        SD_BUS_PROPERTY("RuntimeDirectory", "s", prop_runtime_directory, 0, CONST),
        SD_BUS_PROPERTY("LogDirectory", "s", prop_log_directory, 0, CONST),
        /* Changes with every console byte: no signal (a client reads it
         * when it wants "from now on"). */
        SD_BUS_PROPERTY("ConsoleBytes", "t", machine_dbus_console_bytes, 0, 0),
        SD_BUS_PROPERTY("ForwardedPorts", "a{qq}", ports_dbus_forwarded_ports, 0, CHANGES),
        SD_BUS_PROPERTY("GuestAgentConnected", "b", prop_guest_agent_connected, 0, CHANGES),
        SD_BUS_METHOD_WITH_ARGS("Launch", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_launch, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("Shutdown", SD_BUS_ARGS("b", hard, "d", timeout), SD_BUS_NO_RESULT,
                                method_shutdown, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("Kill", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_kill, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("Wait", SD_BUS_ARGS("d", timeout), SD_BUS_NO_RESULT, method_wait, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("Powerdown", SD_BUS_ARGS("d", timeout), SD_BUS_NO_RESULT, method_powerdown,
                                ANYONE),
        SD_BUS_METHOD_WITH_ARGS("Reset", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_reset, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("Pause", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_pause, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("Resume", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_resume, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("Qmp", SD_BUS_ARGS("s", command, "s", arguments), SD_BUS_RESULT("s", response),
                                method_qmp, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("Command", SD_BUS_ARGS("s", command, "s", arguments), SD_BUS_RESULT("s", result),
                                method_command, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("QmpWithFd", SD_BUS_ARGS("s", command, "s", arguments, "h", fd),
                                SD_BUS_RESULT("s", response), method_qmp_with_fd, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("WaitEvent", SD_BUS_ARGS("a(ss)", filters, "t", after, "d", timeout),
                                SD_BUS_RESULT("t", seq, "s", event), method_wait_event, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("GetEvents", SD_BUS_ARGS("t", after), SD_BUS_RESULT("a(ts)", events),
                                method_get_events, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("GetLog", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", log), method_get_log, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("OpenConsole", SD_BUS_NO_ARGS, SD_BUS_RESULT("h", fd), method_open_console,
                                ANYONE),
        SD_BUS_METHOD_WITH_ARGS("GetConsoleOutput", SD_BUS_NO_ARGS, SD_BUS_RESULT("ay", data),
                                method_get_console_output, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("AddFd", SD_BUS_ARGS("h", fd, "u", fdset, "s", opaque, "s", opts),
                                SD_BUS_NO_RESULT, method_add_fd, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("SendFd", SD_BUS_ARGS("s", fdname, "h", fd), SD_BUS_NO_RESULT, method_send_fd,
                                ANYONE),
        SD_BUS_METHOD_WITH_ARGS("Migrate", SD_BUS_ARGS("s", uri, "a{sv}", options), SD_BUS_NO_RESULT,
                                method_migrate, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("VerifyAlive", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_verify_alive, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("SendKey", SD_BUS_ARGS("as", keys, "u", hold_ms), SD_BUS_NO_RESULT,
                                method_send_key, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("WaitConsole", SD_BUS_ARGS("s", regex, "t", after, "d", timeout),
                                SD_BUS_RESULT("t", offset, "s", match), machine_dbus_wait_console, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("WriteConsole", SD_BUS_ARGS("ay", data), SD_BUS_NO_RESULT,
                                machine_dbus_write_console, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("GetPort", SD_BUS_ARGS("q", guest_port), SD_BUS_RESULT("q", host_port),
                                ports_dbus_get_port, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("GetAddress", SD_BUS_ARGS("u", nic), SD_BUS_RESULT("s", address),
                                ports_dbus_get_address, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("GuestAgent", SD_BUS_ARGS("s", command, "s", arguments),
                                SD_BUS_RESULT("s", response), method_guest_agent, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("GuestExec", SD_BUS_ARGS("as", argv, "ay", stdin, "a{sv}", options),
                                SD_BUS_RESULT("i", exit_code, "ay", stdout, "ay", stderr), method_guest_exec,
                                ANYONE),
        SD_BUS_METHOD_WITH_ARGS("CopyToGuest", SD_BUS_ARGS("h", fd, "s", guest_path, "u", mode), SD_BUS_NO_RESULT,
                                method_copy_to_guest, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("CopyFromGuest", SD_BUS_ARGS("s", guest_path, "h", fd), SD_BUS_NO_RESULT,
                                method_copy_from_guest, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("Save", SD_BUS_ARGS("h", fd, "a{sv}", options), SD_BUS_NO_RESULT, method_save,
                                ANYONE),
        SD_BUS_METHOD_WITH_ARGS("Restore", SD_BUS_ARGS("h", fd, "a{sv}", options), SD_BUS_NO_RESULT,
                                method_restore, ANYONE),
        SD_BUS_SIGNAL_WITH_ARGS("Event", SD_BUS_ARGS("s", name, "s", data, "t", seq, "t", timestamp), 0),
        SD_BUS_SIGNAL_WITH_ARGS("KernelCrashDetected", SD_BUS_ARGS("s", text), 0),
        SD_BUS_SIGNAL_WITH_ARGS("MigrationProgress",
                                SD_BUS_ARGS("t", transferred, "t", remaining, "t", total, "t", expected_downtime_ms),
                                0),
        SD_BUS_VTABLE_END,
};

/* Bytes the bus daemon has not read from us yet. sd-bus makes the socket
 * buffer 8 MiB: full, it would hold tens of thousands of signals ahead of
 * any answer. */
#define BUS_BACKLOG_BYTES (16 * 1024)

static gboolean notify_congested(Machine *m) {
        uint64_t queued;
        int unread = 0;

        if (sd_bus_get_n_queued_write(m->daemon->bus, &queued) >= 0 && queued > 0)
                return TRUE;
        return ioctl(sd_bus_get_fd(m->daemon->bus), SIOCOUTQ, &unread) == 0 && unread > BUS_BACKLOG_BYTES;
}

/* A signal that cannot be sent is logged: nobody waits for it, but
 * it must not vanish silently. */
static void check_emitted(Machine *m, const char *what, int r) {
        if (r < 0)
                g_warning("machine %s: cannot emit %s: %s", m->name, what, g_strerror(-r));
}

static void notify_changed(Machine *m, char **properties) {
        check_emitted(m, "PropertiesChanged",
                      sd_bus_emit_properties_changed_strv(m->daemon->bus, m->path, QM_MACHINE_IFACE, properties));
}

static void notify_event(Machine *m, const QmEvent *e) {
        check_emitted(m, "Event",
                      sd_bus_emit_signal(m->daemon->bus, m->path, QM_MACHINE_IFACE, "Event", "sstt", e->name,
                                         e->data_json, e->seq, e->timestamp_us));
}

static void notify_crash(Machine *m, const char *text) {
        check_emitted(m, "KernelCrashDetected",
                      sd_bus_emit_signal(m->daemon->bus, m->path, QM_MACHINE_IFACE, "KernelCrashDetected", "s",
                                         text));
}

static void notify_migration_progress(Machine *m, guint64 transferred, guint64 remaining, guint64 total,
                                      guint64 downtime_ms) {
        check_emitted(m, "MigrationProgress",
                      sd_bus_emit_signal(m->daemon->bus, m->path, QM_MACHINE_IFACE, "MigrationProgress", "tttt",
                                         transferred, remaining, total, downtime_ms));
}

/* The object goes with the machine (m->front is its vtable slot). */
static void notify_freed(Machine *m) {
        sd_bus_slot_unref(m->front);
        m->front = NULL;
        m->notify = NULL;
}

static const MachineNotify dbus_notify = {
        .changed = notify_changed,
        .event = notify_event,
        .crash = notify_crash,
        .congested = notify_congested,
        .freed = notify_freed,
        .migration_progress = notify_migration_progress,
};

static gboolean is_secret_get(sd_bus_message *msg) {
        const char *iface = NULL, *property = NULL;
        gboolean secret;

        if (!sd_bus_message_is_method_call(msg, "org.freedesktop.DBus.Properties", "Get") ||
            !g_str_has_prefix(sd_bus_message_get_path(msg) ?: "", QM_MACHINE_PREFIX "/"))
                return FALSE;
        if (sd_bus_message_read(msg, "ss", &iface, &property) < 0)
                secret = FALSE; /* sd-bus answers the malformed call */
        else
                secret = strcmp(iface, QM_MACHINE_IFACE) == 0 &&
                         (strcmp(property, "Config") == 0 || strcmp(property, "CommandLine") == 0);
        sd_bus_message_rewind(msg, TRUE);
        return secret;
}

static int on_incoming(sd_bus_message *msg, void *userdata, sd_bus_error *unused) {
        QmDaemon *d = userdata;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        if (!is_secret_get(msg))
                return 0;
        r = qm_auth_resolve_sender(d->auth, msg, &error);
        if (r > 0)
                return 0; /* on to the getter */
        if (r < 0) {
                qm_reply_errorf(msg, error.name, "%s", error.message);
                sd_bus_error_free(&error);
        }
        return 1; /* answered, or held until the uid is known */
}

int machine_dbus_add_secret_filter(QmDaemon *d, sd_bus_slot **slot) {
        return sd_bus_add_filter(d->bus, slot, on_incoming, d);
}

int machine_export(Machine *m) {
        sd_bus_slot *slot = NULL;
        int r = sd_bus_add_object_vtable(m->daemon->bus, &slot, m->path, QM_MACHINE_IFACE, machine_vtable, m);

        if (r < 0)
                return r;
        m->front = slot;
        m->notify = &dbus_notify;
        return r;
}
