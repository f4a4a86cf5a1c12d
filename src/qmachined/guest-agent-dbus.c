/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * GuestAgent, GuestExec, CopyToGuest, CopyFromGuest and
 * GuestAgentConnected: argument checks (nothing changes on bad ones),
 * then the model (machine-agent.c) answers through a QmReply.
 */
#include <math.h>
#include <string.h>

#include "bus-gvariant.h"
#include "dbus-common.h"
#include "guest-agent-dbus.h"
#include "guest-file.h"
#include "json-util.h"
#include "machine-agent.h"
#include "machine-internal.h"

#define GUEST_AGENT_MAX_ARGUMENTS (1024u * 1024)
#define GUEST_EXEC_MAX_ENV 4096

static Machine *M(void *userdata) {
        return userdata;
}

#define HOLD(msg, userdata) qm_reply_new(M(userdata)->daemon->calls, (msg))

static int invalid(sd_bus_error *error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static int invalid(sd_bus_error *error, const char *fmt, ...) {
        g_autofree char *text = NULL;
        va_list ap;

        va_start(ap, fmt);
        text = g_strdup_vprintf(fmt, ap);
        va_end(ap);
        return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, text);
}

int method_guest_agent(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        g_autoptr(GError) err = NULL;
        const char *command, *arguments;
        int r;

        r = sd_bus_message_read(msg, "ss", &command, &arguments);
        if (r < 0)
                return r;
        AUTHORIZE(msg, M(userdata), QM_AUTH_GUEST, command, error);
        if (!*command || strlen(command) > 256)
                return invalid(error, "command must be a guest agent command name of 1 to 256 characters");
        /* The daemon keeps the agent synchronised; a client's sync would
         * take its answers away from it. */
        if (strcmp(command, "guest-sync") == 0 || strcmp(command, "guest-sync-delimited") == 0)
                return invalid(error, "%s is done by the daemon", command);
        if (strlen(arguments) > GUEST_AGENT_MAX_ARGUMENTS)
                return invalid(error, "arguments are limited to %u bytes", GUEST_AGENT_MAX_ARGUMENTS);
        if (*arguments && !qm_json_check(arguments, &err))
                return invalid(error, "arguments is not valid JSON: %s", err->message);
        if (*arguments && !qm_json_text_is_object(arguments))
                return invalid(error, "arguments must be a JSON object");
        machine_guest_agent(M(userdata), HOLD(msg, userdata), command, *arguments ? arguments : NULL);
        return 1;
}


static int read_exec_options(sd_bus_message *msg, QmGuestExecRequest *req, char ***env, sd_bus_error *error) {
        g_autoptr(GVariant) options = NULL;
        GVariantIter it;
        const char *key;
        GVariant *value;

        if (bus_message_read_gvariant(msg, &options) < 0)
                return invalid(error, "cannot read options");
        g_variant_iter_init(&it, options);
        while (g_variant_iter_next(&it, "{&sv}", &key, &value)) {
                g_autoptr(GVariant) v = value;

                if (strcmp(key, "timeout") == 0 && g_variant_is_of_type(v, G_VARIANT_TYPE_DOUBLE)) {
                        req->timeout = g_variant_get_double(v);
                        if (isnan(req->timeout) || req->timeout <= 0 ||
                            req->timeout > QM_GUEST_EXEC_MAX_TIMEOUT)
                                return invalid(error, "timeout must be more than 0 and at most %g s",
                                               QM_GUEST_EXEC_MAX_TIMEOUT);
                } else if (strcmp(key, "env") == 0 && g_variant_is_of_type(v, G_VARIANT_TYPE_STRING_ARRAY)) {
                        g_strfreev(*env);
                        *env = g_variant_dup_strv(v, NULL);
                        if (g_strv_length(*env) > GUEST_EXEC_MAX_ENV)
                                return invalid(error, "at most %u environment variables", GUEST_EXEC_MAX_ENV);
                        for (char **e = *env; *e; e++)
                                if (!strchr(*e, '=') || **e == '=')
                                        return invalid(error, "env entries must be NAME=value, not '%s'", *e);
                } else {
                        return invalid(error, "unknown option '%s' or wrong type (timeout d, env as)", key);
                }
        }
        return 0;
}

int method_guest_exec(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        QmGuestExecRequest req = { .timeout = QM_GUEST_EXEC_DEFAULT_TIMEOUT };
        g_auto(GStrv) argv = NULL;
        g_auto(GStrv) env = NULL;
        g_autoptr(GBytes) input = NULL;
        const void *data;
        size_t len;
        int r;

        AUTHORIZE(msg, M(userdata), QM_AUTH_GUEST, NULL, error);
        r = bus_message_read_strv_max(msg, QM_GUEST_EXEC_MAX_ARGS, &argv);
        if (r == -E2BIG)
                return invalid(error, "at most %u arguments", QM_GUEST_EXEC_MAX_ARGS);
        if (r < 0)
                return r;
        r = sd_bus_message_read_array(msg, 'y', &data, &len);
        if (r < 0)
                return r;
        if (len > QM_GUEST_EXEC_MAX_STDIN)
                return invalid(error, "stdin is limited to %u bytes", QM_GUEST_EXEC_MAX_STDIN);
        input = g_bytes_new(data, len);
        r = read_exec_options(msg, &req, &env, error);
        if (r < 0)
                return r;
        if (!argv[0] || !*argv[0])
                return invalid(error, "argv must name a program");
        req.argv = argv;
        req.env = env;
        req.input = input;
        machine_guest_exec(M(userdata), HOLD(msg, userdata), &req);
        return 1;
}

static int check_guest_path(const char *path, sd_bus_error *error) {
        if (!*path || strlen(path) > QM_GUEST_PATH_MAX)
                return invalid(error, "guest_path must have 1 to %u bytes", QM_GUEST_PATH_MAX);
        return 0;
}

int method_copy_to_guest(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        const char *path;
        uint32_t mode;
        int fd, r;

        AUTHORIZE(msg, M(userdata), QM_AUTH_GUEST, NULL, error);
        r = sd_bus_message_read(msg, "hsu", &fd, &path, &mode);
        if (r < 0)
                return r;
        if ((r = check_guest_path(path, error)) < 0)
                return r;
        if (mode > QM_GUEST_FILE_MODE_MAX)
                return invalid(error, "mode must be at most 07777 (0: the agent's default)");
        machine_copy_to_guest(M(userdata), HOLD(msg, userdata), fd, path, mode);
        return 1;
}

int method_copy_from_guest(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        const char *path;
        int fd, r;

        AUTHORIZE(msg, M(userdata), QM_AUTH_GUEST, NULL, error);
        r = sd_bus_message_read(msg, "sh", &path, &fd);
        if (r < 0)
                return r;
        if ((r = check_guest_path(path, error)) < 0)
                return r;
        machine_copy_from_guest(M(userdata), HOLD(msg, userdata), path, fd);
        return 1;
}

int prop_guest_agent_connected(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "b", machine_guest_agent_connected(M(userdata)));
}
