/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.qmachine.QMachine1.Manager and the ObjectManager at its path. */
#include <arpa/inet.h>
#include <string.h>

#include "build-config.h"
#include "bus-gvariant.h"
#include "dbus-common.h"
#include "images-dbus.h"
#include "machine-dbus.h"
#include "manager-dbus.h"
#include "names.h"
#include "user-lookup.h"

static Manager *MGR(void *userdata) {
        return userdata;
}

static int reply_error(sd_bus_error *error, const QmError *e) {
        return sd_bus_error_set(error, e->name, e->message);
}

typedef struct {
        const char *address;
        gboolean persistent;
        gboolean paused;
} IncomingOptions;

/*
 * A method whose config names a user goes on once that user is known to
 * be allowed (qm_user_check_allowed()); the lookup runs in a worker
 * (user-lookup.h), as the user database may be slow. @done answers @call.
 */
typedef struct UserCheck UserCheck;
struct UserCheck {
        Manager *mgr;
        QmReply *call;
        char *name;
        QmConfig *config;
        uid_t caller;
        char *uuid;               /* UpdateMachine: the machine's, when authorized */
        GVariant *overrides;      /* UpdateMachine's */
        IncomingOptions incoming; /* PrepareIncoming's; the address is owned */
        void (*done)(UserCheck *c);
};

static void user_check_free(UserCheck *c) {
        qm_reply_drop(c->call); /* NULL when answered */
        g_free(c->name);
        qm_config_free(c->config);
        g_free(c->uuid);
        if (c->overrides)
                g_variant_unref(c->overrides);
        g_free((char *)c->incoming.address);
        g_free(c);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(UserCheck, user_check_free)

static UserCheck *user_check_new(Manager *mgr, sd_bus_message *msg, const char *name, QmConfig *config,
                                 uid_t caller, void (*done)(UserCheck *c)) {
        UserCheck *c = g_new0(UserCheck, 1);

        c->mgr = mgr;
        c->call = qm_reply_new(mgr->daemon->calls, msg);
        c->name = g_strdup(name);
        c->config = config;
        c->caller = caller;
        c->done = done;
        return c;
}

static void on_user_looked_up(QmUserIdentity **u, QmError **lookup_error, gpointer data) {
        g_autoptr(UserCheck) c = data;
        g_autoptr(QmError) e = NULL;

        if (!qm_user_check_result(c->config->user, c->caller, *u, *lookup_error, &e)) {
                qm_reply_fail(g_steal_pointer(&c->call), e);
                return;
        }
        c->done(c);
}

/* Takes @c; the method handler's return value (its call is held). The
 * daemon keeps no handle: a lookup cannot be interrupted, and its answer
 * finds the machine again by name. */
static int check_user_then(UserCheck *c) {
        if (!qm_user_check_needs_lookup(c->config->user, c->caller)) {
                g_autoptr(UserCheck) owned = c;
                c->done(c);
                return 1;
        }
        qm_user_lookup_start(c->config->user, on_user_looked_up, c);
        return 1;
}

static int sender_uid(Manager *mgr, sd_bus_message *msg, uid_t *caller, sd_bus_error *error) {
        if (!qm_auth_sender_uid(mgr->daemon->auth, msg, caller))
                return sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED, "Cannot tell who the caller is");
        return 0;
}

/* The caller (already authorized) owns what it creates; QEMU runs as
 * the user it may choose. */
static void create_checked(UserCheck *c) {
        g_autoptr(QmError) e = NULL;
        Machine *m;

        c->config->owner = c->caller;
        m = manager_create_machine(c->mgr, c->name, g_steal_pointer(&c->config), &e);
        if (!m)
                qm_reply_fail(g_steal_pointer(&c->call), e);
        else
                qm_reply_value(g_steal_pointer(&c->call), "o", machine_get_path(m));
}

/* Takes @config. */
static int create_for_caller(Manager *mgr, sd_bus_message *msg, const char *name, QmConfig *config,
                             sd_bus_error *error) {
        g_autoptr(QmConfig) owned = config;
        uid_t caller;
        int r;

        r = sender_uid(mgr, msg, &caller, error);
        if (r < 0)
                return r;
        return check_user_then(user_check_new(mgr, msg, name, g_steal_pointer(&owned), caller, create_checked));
}

static int method_create_machine(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *mgr = MGR(userdata);
        g_autoptr(GVariant) asv = NULL;
        g_autoptr(QmError) e = NULL;
        QmConfig *config;
        const char *name;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        QM_AUTHORIZE(mgr->daemon->auth, msg, QM_AUTH_CREATE, name, NULL, error);
        r = bus_message_read_gvariant(msg, &asv);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "cannot read config: %s",
                                         g_strerror(-r));
        config = qm_config_from_variant(asv, &e);
        if (!config)
                return reply_error(error, e);
        return create_for_caller(mgr, msg, name, config, error);
}

static int method_clone_machine(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *mgr = MGR(userdata);
        g_autoptr(GVariant) overrides = NULL;
        g_autoptr(QmError) e = NULL;
        const char *name, *new_name;
        QmConfig *config;
        Machine *src;
        int r;

        r = sd_bus_message_read(msg, "ss", &name, &new_name);
        if (r < 0)
                return r;
        src = g_hash_table_lookup(mgr->machines, name);
        if (!src)
                return sd_bus_error_setf(error, QM_ERROR_NO_SUCH_MACHINE, "No machine named '%s'", name);
        /* A clone is a new machine of the caller's: its owner needs
         * "create", anyone else "admin" to copy another's definition. */
        QM_RETURN_UNLESS_AUTHORIZED(qm_auth_check_request(mgr->daemon->auth, msg,
                                                          &(QmAuthRequest){
                                                                  .action = QM_AUTH_ADMIN,
                                                                  .owner = machine_get_config(src)->owner,
                                                                  .owner_action = QM_AUTH_CREATE,
                                                                  .machine = new_name,
                                                          },
                                                          error));
        r = bus_message_read_gvariant(msg, &overrides);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "cannot read overrides: %s",
                                         g_strerror(-r));
        config = qm_config_clone(machine_get_config(src), overrides, &e);
        if (!config)
                return reply_error(error, e);
        return create_for_caller(mgr, msg, new_name, config, error);
}

/* The machine may have changed while its new user was looked up: the
 * overrides apply to its config as it is now. */
static void update_checked(UserCheck *c) {
        Machine *m = g_hash_table_lookup(c->mgr->machines, c->name);
        g_autoptr(QmConfig) config = NULL;
        g_autoptr(QmError) e = NULL;

        if (!m || g_strcmp0(machine_get_config(m)->uuid, c->uuid) != 0) {
                qm_reply_failf(g_steal_pointer(&c->call), QM_ERROR_NO_SUCH_MACHINE,
                               "Machine '%s' was removed or changed meanwhile", c->name);
                return;
        }
        config = qm_config_update(machine_get_config(m), c->overrides, &e);
        if (config && g_strcmp0(config->user, machine_get_config(m)->user) != 0 &&
            g_strcmp0(config->user, c->config->user) != 0)
                e = qm_error_new(QM_ERROR_BUSY, "Machine '%s' changed meanwhile; try again", c->name);
        if (!e)
                machine_update_config(m, g_steal_pointer(&config), &e);
        qm_reply_ok_or_fail(g_steal_pointer(&c->call), e);
}

static int method_update_machine(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *mgr = MGR(userdata);
        g_autoptr(GVariant) overrides = NULL;
        g_autoptr(QmConfig) config = NULL;
        g_autoptr(QmError) e = NULL;
        const char *name;
        UserCheck *c;
        uid_t caller;
        Machine *m;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        m = g_hash_table_lookup(mgr->machines, name);
        /* the owner changes their own machine without asking */
        QM_RETURN_UNLESS_AUTHORIZED(qm_auth_check_request(mgr->daemon->auth, msg,
                                                          &(QmAuthRequest){
                                                                  .action = QM_AUTH_ADMIN,
                                                                  .owner = m ? machine_get_config(m)->owner
                                                                             : QM_NO_OWNER,
                                                                  .owner_action = QM_AUTH_NONE,
                                                                  .machine = name,
                                                          },
                                                          error));
        if (!m)
                return sd_bus_error_setf(error, QM_ERROR_NO_SUCH_MACHINE, "No machine named '%s'", name);
        r = bus_message_read_gvariant(msg, &overrides);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "cannot read overrides: %s",
                                         g_strerror(-r));
        config = qm_config_update(machine_get_config(m), overrides, &e);
        if (!config)
                return reply_error(error, e);
        r = sender_uid(mgr, msg, &caller, error);
        if (r < 0)
                return r;
        /* Whoever may name a user at creation may name it here. */
        if (g_strcmp0(config->user, machine_get_config(m)->user) == 0) {
                if (!machine_update_config(m, g_steal_pointer(&config), &e))
                        return reply_error(error, e);
                return sd_bus_reply_method_return(msg, NULL);
        }
        c = user_check_new(mgr, msg, name, g_steal_pointer(&config), caller, update_checked);
        c->uuid = g_strdup(machine_get_config(m)->uuid);
        c->overrides = g_variant_ref(overrides);
        return check_user_then(c);
}

/* PrepareIncoming's config: the source's, without what belongs to the
 * source's host (its incoming, its persistence: an option here). */
static GVariant *incoming_config(GVariant *asv) {
        GVariantBuilder b;
        GVariantIter it;
        const char *key;
        GVariant *value;

        g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
        g_variant_iter_init(&it, asv);
        while (g_variant_iter_next(&it, "{&sv}", &key, &value)) {
                if (strcmp(key, "incoming") != 0 && strcmp(key, "persistent") != 0)
                        g_variant_builder_add(&b, "{sv}", key, value);
                g_variant_unref(value);
        }
        return g_variant_ref_sink(g_variant_builder_end(&b));
}

/* The daemon never resolves names (that would block its main loop). */
static gboolean is_numeric_address(const char *s) {
        struct in6_addr a;

        return inet_pton(AF_INET, s, &a) == 1 || inet_pton(AF_INET6, s, &a) == 1;
}

static int read_incoming_options(GVariant *asv, IncomingOptions *o, sd_bus_error *error) {
        GVariantIter it;
        const char *key;
        GVariant *value;

        g_variant_iter_init(&it, asv);
        while (g_variant_iter_next(&it, "{&sv}", &key, &value)) {
                g_autoptr(GVariant) v = value;
                if (strcmp(key, "address") == 0 && g_variant_is_of_type(v, G_VARIANT_TYPE_STRING) &&
                    !is_numeric_address(g_variant_get_string(v, NULL)))
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "option address must be a numeric IPv4 or IPv6 address, not '%s'",
                                                 g_variant_get_string(v, NULL));
                if (strcmp(key, "address") == 0 && g_variant_is_of_type(v, G_VARIANT_TYPE_STRING))
                        o->address = g_variant_get_string(v, NULL); /* lives in @asv */
                else if (strcmp(key, "persistent") == 0 && g_variant_is_of_type(v, G_VARIANT_TYPE_BOOLEAN))
                        o->persistent = g_variant_get_boolean(v);
                else if (strcmp(key, "paused") == 0 && g_variant_is_of_type(v, G_VARIANT_TYPE_BOOLEAN))
                        o->paused = g_variant_get_boolean(v);
                else
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "unknown or ill-typed option '%s' (address s, persistent b, "
                                                 "paused b)",
                                                 key);
        }
        return 0;
}

/* NULL when the guest may come into @m (none: a new machine), else
 * MachineExists. */
static QmError *incoming_target_error(Machine *m, const char *name, const QmConfig *config) {
        if (m && (machine_get_state(m) != QM_STATE_MIGRATED ||
                  g_strcmp0(machine_get_config(m)->uuid, config->uuid) != 0))
                return qm_error_new(QM_ERROR_MACHINE_EXISTS, "A machine named '%s' exists already", name);
        return NULL;
}

/* The machine to take the guest: a new one, or a definition whose guest
 * left for elsewhere and now comes back (same UUID). Checked again: it
 * may have changed while the user was looked up. */
static void incoming_checked(UserCheck *c) {
        Machine *m = g_hash_table_lookup(c->mgr->machines, c->name);
        g_autoptr(QmError) e = incoming_target_error(m, c->name, c->config);

        if (!e && !m) {
                c->config->owner = c->caller;
                m = manager_create_machine(c->mgr, c->name, g_steal_pointer(&c->config), &e);
        } else if (!e) {
                c->config->owner = machine_get_config(m)->owner;
                c->config->persistent = FALSE; /* saved when the guest has arrived */
                if (!machine_prepare_comeback(m, g_steal_pointer(&c->config), &e))
                        m = NULL;
        }
        if (e) {
                qm_reply_fail(g_steal_pointer(&c->call), e);
                return;
        }
        machine_prepare_incoming(m, g_steal_pointer(&c->call), c->incoming.address, c->incoming.persistent,
                                 c->incoming.paused, manager_remove_failed_incoming, c->mgr);
}

static int method_prepare_incoming(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *mgr = MGR(userdata);
        g_autoptr(GVariant) asv = NULL, options = NULL, filtered = NULL;
        g_autoptr(QmConfig) config = NULL;
        g_autoptr(QmError) e = NULL;
        IncomingOptions o = { 0 };
        const char *name;
        UserCheck *c;
        uid_t caller;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        QM_AUTHORIZE(mgr->daemon->auth, msg, QM_AUTH_ADMIN, name, NULL, error);
        r = bus_message_read_gvariant(msg, &asv);
        if (r >= 0)
                r = bus_message_read_gvariant(msg, &options);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "cannot read config or options: %s",
                                         g_strerror(-r));
        r = read_incoming_options(options, &o, error);
        if (r < 0)
                return r;
        if (!*name)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "the machine needs its name");
        filtered = incoming_config(asv);
        config = qm_config_from_variant(filtered, &e);
        if (!config)
                return reply_error(error, e);
        e = incoming_target_error(g_hash_table_lookup(mgr->machines, name), name, config);
        if (e)
                return reply_error(error, e);
        r = sender_uid(mgr, msg, &caller, error);
        if (r < 0)
                return r;
        c = user_check_new(mgr, msg, name, g_steal_pointer(&config), caller, incoming_checked);
        c->incoming = o;
        c->incoming.address = g_strdup(o.address); /* o's lives in @options */
        return check_user_then(c);
}

static int method_list_machines(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *mgr = MGR(userdata);
        g_autoptr(sd_bus_message) reply = NULL;
        g_autoptr(GList) names = NULL;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(ssuo)");
        if (r < 0)
                return r;
        names = g_list_sort(g_hash_table_get_keys(mgr->machines), (GCompareFunc)g_strcmp0);
        for (GList *l = names; l; l = l->next) {
                Machine *m = g_hash_table_lookup(mgr->machines, l->data);
                r = sd_bus_message_append(reply, "(ssuo)", machine_get_name(m), qm_state_to_string(machine_get_state(m)),
                                          (uint32_t)machine_pid(m), machine_get_path(m));
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_get_machine(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Machine *m;
        const char *name;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        m = g_hash_table_lookup(MGR(userdata)->machines, name);
        if (!m)
                return sd_bus_error_setf(error, QM_ERROR_NO_SUCH_MACHINE, "No machine named '%s'", name);
        return sd_bus_reply_method_return(msg, "o", machine_get_path(m));
}

static int method_get_machine_by_pid(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Machine *m;
        uint32_t pid;
        int r;

        r = sd_bus_message_read(msg, "u", &pid);
        if (r < 0)
                return r;
        m = pid <= G_MAXINT ? manager_find_by_pid(MGR(userdata), (pid_t)pid) : NULL;
        if (!m)
                return sd_bus_error_setf(error, QM_ERROR_NO_SUCH_MACHINE, "No machine runs as PID %u", pid);
        return sd_bus_reply_method_return(msg, "o", machine_get_path(m));
}

static int method_remove_machine(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        g_autoptr(QmError) e = NULL;
        const char *name;
        Machine *m;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        m = g_hash_table_lookup(MGR(userdata)->machines, name);
        /* the owner removes their own machine without asking */
        QM_RETURN_UNLESS_AUTHORIZED(qm_auth_check_request(MGR(userdata)->daemon->auth, msg,
                                                          &(QmAuthRequest){
                                                                  .action = QM_AUTH_ADMIN,
                                                                  .owner = m ? machine_get_config(m)->owner
                                                                             : QM_NO_OWNER,
                                                                  .owner_action = QM_AUTH_NONE,
                                                                  .machine = name,
                                                          },
                                                          error));
        if (!manager_remove_machine(MGR(userdata), name, &e))
                return reply_error(error, e);
        return sd_bus_reply_method_return(msg, NULL);
}

PROPERTY_GETTER(prop_version) { return sd_bus_message_append(reply, "s", PACKAGE_VERSION); }
PROPERTY_GETTER(prop_default_binary) {
        return sd_bus_message_append(reply, "s", MGR(userdata)->daemon->default_binary);
}
PROPERTY_GETTER(prop_image_directory) {
        return sd_bus_message_append(reply, "s", MGR(userdata)->daemon->image_dir);
}
PROPERTY_GETTER(prop_machine_count) {
        return sd_bus_message_append(reply, "u", (uint32_t)g_hash_table_size(MGR(userdata)->machines));
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", prop_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("DefaultBinary", "s", prop_default_binary, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ImageDirectory", "s", prop_image_directory, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("MachineCount", "u", prop_machine_count, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("CreateMachine", SD_BUS_ARGS("s", name, "a{sv}", config),
                                SD_BUS_RESULT("o", machine), method_create_machine, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("CloneMachine", SD_BUS_ARGS("s", name, "s", new_name, "a{sv}", overrides),
                                SD_BUS_RESULT("o", machine), method_clone_machine, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("UpdateMachine", SD_BUS_ARGS("s", name, "a{sv}", overrides), SD_BUS_NO_RESULT,
                                method_update_machine, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("PrepareIncoming", SD_BUS_ARGS("s", name, "a{sv}", config, "a{sv}", options),
                                SD_BUS_RESULT("o", machine, "s", uri), method_prepare_incoming, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("ListMachines", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(ssuo)", machines),
                                method_list_machines, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("GetMachine", SD_BUS_ARGS("s", name), SD_BUS_RESULT("o", machine),
                                method_get_machine, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("GetMachineByPID", SD_BUS_ARGS("u", pid), SD_BUS_RESULT("o", machine),
                                method_get_machine_by_pid, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("RemoveMachine", SD_BUS_ARGS("s", name), SD_BUS_NO_RESULT,
                                method_remove_machine, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("CreateImage", SD_BUS_ARGS("s", name, "s", format, "t", size, "a{sv}", options),
                                SD_BUS_RESULT("s", path), images_method_create, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("CheckImage", SD_BUS_ARGS("s", name), SD_BUS_RESULT("s", verdict, "s", report),
                                images_method_check, ANYONE),
        SD_BUS_METHOD_WITH_ARGS("RemoveImage", SD_BUS_ARGS("s", name), SD_BUS_NO_RESULT, images_method_remove,
                                ANYONE),
        SD_BUS_METHOD_WITH_ARGS("ListImages", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(sst)", images), images_method_list,
                                ANYONE),
        SD_BUS_SIGNAL_WITH_ARGS("MachineNew", SD_BUS_ARGS("s", name, "o", machine), 0),
        SD_BUS_SIGNAL_WITH_ARGS("MachineRemoved", SD_BUS_ARGS("s", name, "o", machine), 0),
        SD_BUS_VTABLE_END,
};

/* Held calls of a client that left would otherwise wait forever. */
static int on_name_owner_changed(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *mgr = MGR(userdata);
        const char *name, *old_owner, *new_owner;
        GHashTableIter it;
        Machine *m;

        if (sd_bus_message_read(msg, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        if (name[0] != ':' || *new_owner)
                return 0;
        qm_auth_forget_client(mgr->daemon->auth, name);
        g_hash_table_iter_init(&it, mgr->machines);
        while (g_hash_table_iter_next(&it, NULL, (gpointer *)&m))
                machine_forget_client(m, name);
        return 0;
}

/* The Manager's bus objects: its vtable, the object manager, the match
 * on clients leaving. */
typedef struct {
        sd_bus_slot *vtable;
        sd_bus_slot *object_manager;
        sd_bus_slot *name_owner;
        sd_bus_slot *secret_filter;
} ManagerSlots;

static void notify_count_changed(Manager *mgr) {
        sd_bus_emit_properties_changed(mgr->daemon->bus, QM_MANAGER_PATH, QM_MANAGER_IFACE, "MachineCount",
                                       NULL);
}

static int notify_added(Manager *mgr, Machine *m) {
        int r = machine_export(m);

        if (r < 0)
                return r;
        sd_bus_emit_object_added(mgr->daemon->bus, machine_get_path(m));
        sd_bus_emit_signal(mgr->daemon->bus, QM_MANAGER_PATH, QM_MANAGER_IFACE, "MachineNew", "so", machine_get_name(m),
                           machine_get_path(m));
        return r;
}

/* InterfacesRemoved needs the object still registered. */
static void notify_removing(Manager *mgr, Machine *m) {
        sd_bus_emit_object_removed(mgr->daemon->bus, machine_get_path(m));
}

static void notify_removed(Manager *mgr, const char *name, const char *path) {
        sd_bus_emit_signal(mgr->daemon->bus, QM_MANAGER_PATH, QM_MANAGER_IFACE, "MachineRemoved", "so", name,
                           path);
}

static void notify_freed(Manager *mgr) {
        ManagerSlots *slots = mgr->front;

        sd_bus_slot_unref(slots->vtable);
        sd_bus_slot_unref(slots->object_manager);
        sd_bus_slot_unref(slots->name_owner);
        sd_bus_slot_unref(slots->secret_filter);
        g_free(slots);
        mgr->front = NULL;
}

static const ManagerNotify dbus_notify = {
        .added = notify_added,
        .removing = notify_removing,
        .removed = notify_removed,
        .count_changed = notify_count_changed,
        .freed = notify_freed,
};

int manager_export(Manager *mgr) {
        ManagerSlots *slots = g_new0(ManagerSlots, 1);
        int r;

        mgr->front = slots;
        mgr->notify = &dbus_notify;
        /* arg2='': only names that lost their owner wake us. */
        r = sd_bus_add_match_async(mgr->daemon->bus, &slots->name_owner,
                                   "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                                   "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg2=''",
                                   on_name_owner_changed, NULL, mgr);
        if (r < 0)
                return r;
        r = machine_dbus_add_secret_filter(mgr->daemon, &slots->secret_filter);
        if (r < 0)
                return r;

        r = sd_bus_add_object_vtable(mgr->daemon->bus, &slots->vtable, QM_MANAGER_PATH, QM_MANAGER_IFACE,
                                     manager_vtable, mgr);
        if (r < 0)
                return r;
        return sd_bus_add_object_manager(mgr->daemon->bus, &slots->object_manager, QM_MANAGER_PATH);
}
