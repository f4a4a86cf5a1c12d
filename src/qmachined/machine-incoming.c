/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * PrepareIncoming's machine (virsh migrate's destination side): a launch
 * with -incoming defer and -S; once the QMP handshake is done, the
 * return-path (and, where the host allows, postcopy-ram) capability, then
 * migrate-incoming on a listener we choose, and the held call is answered
 * with (path, uri). The machine stays starting (RunState inmigrate) until
 * the guest has arrived: then cont (unless paused), running, and the
 * definition saved if persistent. A migration that fails, or a QEMU that
 * exits first, removes the machine: a destination never keeps a guest
 * that did not arrive whole.
 *
 * Without an address the listener is a unix socket in a directory of the
 * daemon's runtime directory owned by the user QEMU runs as, mode 0700:
 * QEMU creates the socket there, and only QEMUs of that same user (and
 * root) can connect to it. A same-host move between machines of
 * different users needs an address.
 */
#include <errno.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "json-util.h"
#include "machine-internal.h"
#include "port-forward.h"
#include "user-identity.h"

/* migrate-incoming on a port taken meanwhile: another free port. */
#define INCOMING_PORT_TRIES 3

struct QmIncoming {
        char *address; /* NULL: a unix socket */
        gboolean persistent;
        gboolean paused;
        guint tries;
        char *uri;
        char *socket_dir;
        guint remove_idle;
        gboolean detached; /* the daemon stops: QEMU is left to the next one */
        MachineRemoveFunc remove;
        gpointer remove_data;
};

void machine_incoming_free(Machine *m) {
        QmIncoming *in = g_steal_pointer(&m->incoming);

        if (!in)
                return;
        g_clear_handle_id(&in->remove_idle, g_source_remove);
        /* a daemon that stops leaves QEMU listening for the source */
        if (in->socket_dir && !in->detached) {
                g_autofree char *sock = g_build_filename(in->socket_dir, "migrate.sock", NULL);
                g_unlink(sock);
                g_rmdir(in->socket_dir);
        }
        g_free(in->socket_dir);
        g_free(in->address);
        g_free(in->uri);
        g_free(in);
}

static gboolean on_remove(gpointer data) {
        Machine *m = data;
        MachineRemoveFunc remove = m->incoming->remove;
        gpointer remove_data = m->incoming->remove_data;

        m->incoming->remove_idle = 0;
        if (!machine_is_active(m)) {
                machine_incoming_free(m);
                if (machine_comeback_failed(m))
                        return G_SOURCE_REMOVE; /* a migrated definition stays */
        }
        g_message("machine %s: the incoming migration did not complete; removing the machine", m->name);
        remove(m, remove_data); /* frees @m */
        return G_SOURCE_REMOVE;
}

/* The guest did not arrive: the machine goes (from an idle: the caller
 * still uses it). */
static void schedule_removal(Machine *m) {
        if (m->incoming && !m->incoming->remove_idle)
                m->incoming->remove_idle = g_idle_add(on_remove, m);
}

void machine_incoming_exited(Machine *m) {
        schedule_removal(m);
}

/* End QEMU; its exit removes the machine (or answers the held call with
 * LaunchFailed, when it was not answered yet). */
static void incoming_fail(Machine *m, const char *why) {
        if (m->incoming && m->incoming->detached)
                return;
        g_message("machine %s: incoming migration failed: %s", m->name, why);
        if (m->launch_call && !m->launch_error)
                m->launch_error = g_strdup(why);
        if (m->process)
                machine_kill(m, SIGKILL);
        else
                schedule_removal(m);
}

static void arrived(Machine *m, const char *status) {
        g_autoptr(GError) err = NULL;
        QmIncoming *in = m->incoming;
        char *props[] = { "Persistent", "Config", NULL };

        g_free(m->run_state);
        m->run_state = g_strdup(status);
        if (in->persistent && !m->config->persistent) {
                m->config->persistent = TRUE;
                g_variant_unref(m->config_variant);
                m->config_variant = g_variant_ref_sink(qm_config_to_variant(m->config));
                if (!qm_definition_save(m->daemon->definitions_dir, m->name, m->config, m->event_seq, &err))
                        g_warning("machine %s: cannot save its definition: %s", m->name, err->message);
                machine_notify_changed(m, props);
        }
        machine_incoming_free(m);
        machine_comeback_done(m);
        machine_set_state(m, QM_STATE_RUNNING);
        machine_save_record(m);
        g_message("machine %s: the incoming migration completed", m->name);
}

static void on_arrived_status(const QmpResponse *r, const QmError *failure, gpointer data) {
        Machine *m = data;
        JsonObject *ret;

        if (!m->incoming)
                return;
        if (failure || r->error) {
                incoming_fail(m, failure ? failure->message : r->error->message);
                return;
        }
        ret = qm_json_get_object(json_node_get_object(r->node), "return");
        arrived(m, qm_json_get_string(ret, "status", ""));
}

static void on_continued(const QmpResponse *r, const QmError *failure, gpointer data) {
        Machine *m = data;

        if (!m->incoming)
                return;
        if (failure || r->error) {
                incoming_fail(m, failure ? failure->message : r->error->message);
                return;
        }
        machine_qmp_call(m, "query-status", NULL, on_arrived_status, m);
}

static void on_loaded(Machine *m, const QmError *error, gpointer data) {
        if (!m->incoming)
                return;
        if (error) {
                incoming_fail(m, error->message);
                return;
        }
        machine_qmp_call(m, m->incoming->paused ? "query-status" : "cont", NULL,
                         m->incoming->paused ? on_arrived_status : on_continued, m);
}

/* A TCP port on @address that is free now (bind to port 0, read it,
 * close); 0 and @error on failure. */
static guint16 pick_port(const char *address, QmError **error) {
        guint16 port = qm_tcp_port_probe(address, 0);

        if (!port && errno == EINVAL)
                *error = qm_error_new(QM_ERROR_INVALID_ARGS, "address '%s' is not a numeric IP address",
                                      address);
        else if (!port)
                *error = qm_error_new(QM_ERROR_LAUNCH_FAILED, "cannot listen on %s: %s", address,
                                      g_strerror(errno));
        return port;
}

/* The directory of the unix socket: QEMU's user owns it (see the top). */
static char *make_socket_dir(Machine *m, QmError **error) {
        g_autofree char *dir_name = g_strconcat(".incoming-", m->name, NULL);
        g_autofree char *dir = g_build_filename(m->daemon->runtime_dir, dir_name, NULL);
        const QmUserIdentity *u = m->launch_user; /* QEMU's, looked up at its launch */
        g_autofree char *sock = NULL;

        sock = g_build_filename(dir, "migrate.sock", NULL);
        if (strlen(sock) >= sizeof(((struct sockaddr_un *)NULL)->sun_path)) {
                *error = qm_error_new(QM_ERROR_LAUNCH_FAILED,
                                      "the socket path %s is too long; give an address", sock);
                return NULL;
        }
        if (!u) {
                *error = qm_error_new(QM_ERROR_LAUNCH_FAILED, "the user QEMU of '%s' runs as is unknown", m->name);
                return NULL;
        }
        g_unlink(sock);
        g_rmdir(dir);
        if (mkdir(dir, 0700) < 0 || (geteuid() == 0 && chown(dir, u->uid, u->gid) < 0)) {
                *error = qm_error_new(QM_ERROR_LAUNCH_FAILED, "cannot make %s: %s", dir, g_strerror(errno));
                g_rmdir(dir);
                return NULL;
        }
        return g_steal_pointer(&dir);
}

static void listen_next(Machine *m);

static void on_listening(const QmpResponse *r, const QmError *failure, gpointer data) {
        Machine *m = data;
        QmIncoming *in = m->incoming;
        g_autoptr(QmError) e = NULL;

        if (!in)
                return;
        if (failure) {
                incoming_fail(m, failure->message);
                return;
        }
        if (r->error) {
                /* the port was taken between our pick and QEMU's bind */
                if (in->address && strstr(r->error->message, "in use") && ++in->tries < INCOMING_PORT_TRIES) {
                        listen_next(m);
                        return;
                }
                incoming_fail(m, r->error->message);
                return;
        }
        qm_reply_value(g_steal_pointer(&m->launch_call), "os", m->path, in->uri);
        if (!machine_migration_watch(m, in->uri, TRUE, 0, on_loaded, NULL, &e))
                incoming_fail(m, e->message);
        machine_save_record(m);
}

static void listen_next(Machine *m) {
        QmIncoming *in = m->incoming;
        g_autoptr(QmError) e = NULL;
        g_autoptr(JsonNode) args = NULL;

        g_clear_pointer(&in->uri, g_free);
        if (in->address) {
                guint16 port = pick_port(in->address, &e);
                if (port)
                        in->uri = g_strdup_printf(strchr(in->address, ':') ? "tcp:[%s]:%u" : "tcp:%s:%u",
                                                  in->address, port);
        } else {
                in->socket_dir = in->socket_dir ? in->socket_dir : make_socket_dir(m, &e);
                if (in->socket_dir)
                        in->uri = g_strconcat("unix:", in->socket_dir, "/migrate.sock", NULL);
        }
        if (!in->uri) {
                incoming_fail(m, e->message);
                return;
        }
        args = qm_json_new_object_string("uri", in->uri);
        machine_qmp_call(m, "migrate-incoming", args, on_listening, m);
}

static void on_capabilities(const QmpResponse *r, const QmError *failure, gpointer data) {
        Machine *m = data;

        if (!m->incoming)
                return;
        if (failure || r->error) {
                incoming_fail(m, failure ? failure->message : r->error->message);
                return;
        }
        listen_next(m);
}

static void set_capabilities(Machine *m, gboolean postcopy, QmpReplyFunc func) {
        g_autofree char *json = g_strdup_printf(
                "{\"capabilities\": [{\"capability\": \"events\", \"state\": true}, "
                "{\"capability\": \"return-path\", \"state\": true}%s]}",
                postcopy ? ", {\"capability\": \"postcopy-ram\", \"state\": true}" : "");
        g_autoptr(JsonNode) args = json_from_string(json, NULL);

        machine_qmp_call(m, "migrate-set-capabilities", args, func, m);
}

/* postcopy-ram needs userfaultfd: where the host refuses it, a pre-copy
 * migration still comes in. */
static void on_postcopy_capability(const QmpResponse *r, const QmError *failure, gpointer data) {
        Machine *m = data;

        if (!m->incoming)
                return;
        if (!failure && r->error) {
                g_message("machine %s: no postcopy for this incoming migration: %s", m->name,
                          r->error->message);
                set_capabilities(m, FALSE, on_capabilities);
                return;
        }
        on_capabilities(r, failure, data);
}

gboolean machine_incoming_take_over(Machine *m) {
        char *props[] = { "RunState", NULL };

        if (!m->incoming || !m->launch_call)
                return FALSE;
        machine_stop_launch_timers(m);
        machine_notify_changed(m, props); /* inmigrate */
        set_capabilities(m, TRUE, on_postcopy_capability);
        return TRUE;
}

void machine_incoming_detach(Machine *m) {
        if (m->incoming)
                m->incoming->detached = TRUE;
}

void machine_incoming_fill_record(Machine *m, QmRunRecord *r) {
        QmIncoming *in = m->incoming;

        if (!in || !in->uri || m->launch_call)
                return; /* not listening yet: a restart cannot finish it */
        r->incoming_uri = in->uri;
        r->incoming_persistent = in->persistent;
        r->incoming_paused = in->paused;
}

void machine_incoming_reattach(Machine *m, const QmRunRecord *r, MachineRemoveFunc remove, gpointer data) {
        g_autoptr(QmError) e = NULL;
        QmIncoming *in = g_new0(QmIncoming, 1);

        in->uri = g_strdup(r->incoming_uri);
        in->persistent = r->incoming_persistent;
        in->paused = r->incoming_paused;
        in->remove = remove;
        in->remove_data = data;
        if (g_str_has_prefix(in->uri, "unix:"))
                in->socket_dir = g_path_get_dirname(in->uri + strlen("unix:"));
        m->incoming = in;
        if (!m->process) {
                schedule_removal(m); /* it ended while no daemon watched */
                return;
        }
        g_message("machine %s: its incoming migration from before the restart goes on", m->name);
        machine_set_state(m, QM_STATE_STARTING);
        g_free(m->run_state);
        m->run_state = g_strdup("inmigrate");
        if (!machine_migration_watch(m, in->uri, TRUE, 0, on_loaded, NULL, &e)) {
                incoming_fail(m, e->message);
                return;
        }
        machine_migration_check(m); /* it may have ended while no daemon listened */
}

void machine_prepare_incoming(Machine *m, QmReply *call, const char *address, gboolean persistent,
                              gboolean paused, MachineRemoveFunc remove, gpointer data) {
        QmIncoming *in;

        if (machine_is_active(m)) {
                qm_reply_failf(call, QM_ERROR_ALREADY_RUNNING, "Machine '%s' is already %s", m->name,
                               qm_state_to_string(m->state));
                return;
        }
        if (!m->config->qmp) {
                qm_reply_failf(call, QM_ERROR_NO_MONITOR,
                               "Machine '%s' has no QMP monitor: it cannot take a migration", m->name);
                return;
        }
        in = g_new0(QmIncoming, 1);
        in->address = g_strdup(address);
        in->persistent = persistent;
        in->paused = paused;
        in->remove = remove;
        in->remove_data = data;
        m->incoming = in;
        machine_launch(m, call);
        if (!m->launch_call && m->incoming && !machine_is_active(m))
                schedule_removal(m); /* it did not even start */
}
