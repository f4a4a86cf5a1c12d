/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Scopes and machined registration, as systemd-vmspawn does it: a
 * transient scope (StartTransientUnit) takes QEMU's pid first, because
 * machined finds a machine's unit from its leader's cgroup; its reply
 * chains RegisterMachine. UnregisterMachine when QEMU has exited; the
 * scope, empty then, is stopped and collected by systemd itself
 * (CollectMode=inactive-or-failed).
 *
 * Whether systemd is there is asked once (NameHasOwner): until the
 * answer comes, requests wait in a bounded queue, in order.
 */
#include <stdint.h>
#include <systemd/sd-id128.h>

#include "bus-util.h"
#include "registrar.h"

#define DBUS_NAME "org.freedesktop.DBus"
#define DBUS_PATH "/org/freedesktop/DBus"
#define SYSTEMD_NAME "org.freedesktop.systemd1"
#define SYSTEMD_PATH "/org/freedesktop/systemd1"
#define SYSTEMD_MANAGER "org.freedesktop.systemd1.Manager"
#define MACHINED_NAME "org.freedesktop.machine1"
#define MACHINED_PATH "/org/freedesktop/machine1"
#define MACHINED_MANAGER "org.freedesktop.machine1.Manager"
#define MACHINED_NO_SUCH_MACHINE "org.freedesktop.machine1.NoSuchMachine"

#define SCOPE_PREFIX "qmachine-"
#define SCOPE_SUFFIX ".scope"
#define SCOPE_SLICE "machine.slice"
#define UNIT_NAME_MAX 255   /* systemd's, without the NUL */
#define MACHINE_NAME_MAX 64 /* machined's: HOST_NAME_MAX */
/* Requests made before the bus told whether systemd is there. */
#define QUEUED_MAX 4096

typedef enum {
        SYSTEMD_ASKING,
        SYSTEMD_PRESENT,
        SYSTEMD_ABSENT,
} SystemdPresence;

/* One QEMU on its way into a scope and machined. */
typedef struct {
        QmRegistrar *registrar;
        char *name;
        char *uuid;
        pid_t leader;
        sd_bus_slot *slot; /* the call in flight */
} Registration;

/* A request waiting for the presence answer; leader 0: an unregistration. */
typedef struct {
        char *name;
        char *uuid;
        pid_t leader;
} Queued;

struct QmRegistrar {
        sd_bus *bus;
        SystemdPresence presence;
        sd_bus_slot *probe_slot;
        GQueue queued;             /* Queued, oldest first */
        GHashTable *registrations; /* name -> Registration with a call in flight */
};

static void registration_free(gpointer p) {
        Registration *g = p;

        sd_bus_slot_unref(g->slot);
        g_free(g->name);
        g_free(g->uuid);
        g_free(g);
}

static void queued_free(gpointer p) {
        Queued *q = p;

        g_free(q->name);
        g_free(q->uuid);
        g_free(q);
}

/*
 * machined's rule for names (hostname_is_valid): letters, digits, '-'
 * and '.', dot-separated labels neither empty nor starting or ending
 * with '-', at most 64 characters. Ours may also hold '_'.
 */
static gboolean machined_accepts_name(const char *name) {
        gboolean label_start = TRUE, after_hyphen = FALSE;
        size_t n = 0;

        for (const char *p = name; *p; p++, n++) {
                if (*p == '.') {
                        if (label_start || after_hyphen)
                                return FALSE;
                        label_start = TRUE;
                } else if (*p == '-') {
                        if (label_start)
                                return FALSE;
                        after_hyphen = TRUE;
                } else if (g_ascii_isalnum(*p)) {
                        label_start = after_hyphen = FALSE;
                } else
                        return FALSE;
        }
        return n > 0 && n <= MACHINE_NAME_MAX && !label_start && !after_hyphen;
}

/* "qmachine-<name>.scope", escaped as systemd does (a '-' is \x2d), or
 * NULL when too long for a unit name. */
static char *scope_name(const char *name) {
        GString *s = g_string_new(SCOPE_PREFIX);

        for (const char *p = name; *p; p++) {
                if (g_ascii_isalnum(*p) || *p == '_' || *p == ':' || (*p == '.' && p != name))
                        g_string_append_c(s, *p);
                else
                        g_string_append_printf(s, "\\x%02x", (unsigned char)*p);
        }
        g_string_append(s, SCOPE_SUFFIX);
        if (s->len > UNIT_NAME_MAX) {
                g_string_free(s, TRUE);
                return NULL;
        }
        return g_string_free(s, FALSE);
}

static const char *error_text(const sd_bus_error *e) {
        return e->message ? e->message : e->name;
}

static void forget(Registration *g) {
        g_hash_table_remove(g->registrar->registrations, g->name);
}

static int on_register_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Registration *g = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        (void)ret_error;
        if (e)
                g_warning("machine %s: cannot register with systemd-machined: %s", g->name, error_text(e));
        else
                g_message("machine %s: registered with systemd-machined, leader %d", g->name, (int)g->leader);
        forget(g);
        return 0;
}

static int call_register_machine(Registration *g) {
        g_autoptr(sd_bus_message) m = NULL;
        sd_id128_t id;
        int r;

        r = sd_id128_from_string(g->uuid, &id);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_call(g->registrar->bus, &m, MACHINED_NAME, MACHINED_PATH,
                                           MACHINED_MANAGER, "RegisterMachine");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", g->name);
        if (r >= 0)
                r = sd_bus_message_append_array(m, 'y', id.bytes, sizeof(id.bytes));
        if (r >= 0)
                r = sd_bus_message_append(m, "ssus", "qmachined", "vm", (uint32_t)g->leader, "");
        if (r < 0)
                return r;
        g->slot = sd_bus_slot_unref(g->slot);
        return sd_bus_call_async(g->registrar->bus, &g->slot, m, on_register_reply, g, 0);
}

static int on_scope_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Registration *g = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int r;

        (void)ret_error;
        if (e) {
                g_warning("machine %s: cannot start its systemd scope: %s", g->name, error_text(e));
                forget(g);
                return 0;
        }
        if (!machined_accepts_name(g->name)) {
                g_message("machine %s: not registered with systemd-machined, which allows only letters, "
                          "digits, '-' and '.' in host-name form",
                          g->name);
                forget(g);
                return 0;
        }
        r = call_register_machine(g);
        if (r < 0) {
                g_warning("machine %s: cannot ask systemd-machined: %s", g->name, g_strerror(-r));
                forget(g);
        }
        return 0;
}

static int call_start_scope(Registration *g, const char *unit) {
        g_autoptr(sd_bus_message) m = NULL;
        g_autofree char *description = g_strdup_printf("QEMU virtual machine %s", g->name);
        int r;

        r = sd_bus_message_new_method_call(g->registrar->bus, &m, SYSTEMD_NAME, SYSTEMD_PATH,
                                           SYSTEMD_MANAGER, "StartTransientUnit");
        if (r >= 0)
                /* name, mode, 4 properties, no auxiliary units */
                r = sd_bus_message_append(m, "ssa(sv)a(sa(sv))", unit, "fail", 4,
                                          "Description", "s", description,
                                          "Slice", "s", SCOPE_SLICE,
                                          "CollectMode", "s", "inactive-or-failed",
                                          "PIDs", "au", 1, (uint32_t)g->leader,
                                          0);
        if (r < 0)
                return r;
        return sd_bus_call_async(g->registrar->bus, &g->slot, m, on_scope_reply, g, 0);
}

static void start_registration(QmRegistrar *r, const char *name, const char *uuid, pid_t leader) {
        g_autofree char *unit = scope_name(name);
        Registration *g;
        int e;

        if (!unit) {
                g_message("machine %s: no systemd scope nor machined registration: the unit name would be too long",
                          name);
                return;
        }
        g = g_new0(Registration, 1);
        g->registrar = r;
        g->name = g_strdup(name);
        g->uuid = g_strdup(uuid);
        g->leader = leader;
        /* One QEMU per machine: an older entry is a call that lost its
         * point; replacing it drops that call. */
        g_hash_table_replace(r->registrations, g->name, g);
        e = call_start_scope(g, unit);
        if (e < 0) {
                g_warning("machine %s: cannot ask systemd for a scope: %s", name, g_strerror(-e));
                forget(g);
        }
}

static int on_unregister_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        const char *name = userdata;

        (void)ret_error;
        /* machined forgets a machine itself when its scope goes away. */
        if (e && !sd_bus_error_has_name(e, MACHINED_NO_SUCH_MACHINE))
                g_warning("machine %s: cannot unregister from systemd-machined: %s", name, error_text(e));
        return 0;
}

static void send_unregistration(QmRegistrar *r, const char *name) {
        g_autoptr(sd_bus_slot) slot = NULL;
        char *data;
        int e;

        /* A registration still under way is dropped: its QEMU is gone. */
        g_hash_table_remove(r->registrations, name);
        if (!machined_accepts_name(name))
                return;
        data = g_strdup(name);
        e = sd_bus_call_method_async(r->bus, &slot, MACHINED_NAME, MACHINED_PATH, MACHINED_MANAGER,
                                     "UnregisterMachine", on_unregister_reply, data, "s", name);
        if (e < 0) {
                g_warning("machine %s: cannot unregister from systemd-machined: %s", name, g_strerror(-e));
                g_free(data);
                return;
        }
        /* The bus owns the call from here and frees @data with it, also
         * when it is dropped at exit. */
        sd_bus_slot_set_destroy_callback(slot, g_free);
        sd_bus_slot_set_floating(slot, 1);
}

static void queue_request(QmRegistrar *r, const char *name, const char *uuid, pid_t leader) {
        Queued *q;

        if (r->queued.length >= QUEUED_MAX) {
                g_warning("machine %s: too many VMs wait for the systemd check; no scope nor registration change",
                          name);
                return;
        }
        q = g_new0(Queued, 1);
        q->name = g_strdup(name);
        q->uuid = g_strdup(uuid);
        q->leader = leader;
        g_queue_push_tail(&r->queued, q);
}

static void settle(QmRegistrar *r, SystemdPresence presence, const char *why) {
        Queued *q;

        r->presence = presence;
        if (presence == SYSTEMD_ABSENT)
                g_message("VMs are not put in systemd scopes nor registered with systemd-machined: %s", why);
        while ((q = g_queue_pop_head(&r->queued))) {
                if (presence == SYSTEMD_PRESENT && q->leader > 0)
                        start_registration(r, q->name, q->uuid, q->leader);
                else if (presence == SYSTEMD_PRESENT)
                        send_unregistration(r, q->name);
                queued_free(q);
        }
}

static int on_probe_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        QmRegistrar *r = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        g_autofree char *why = NULL;
        int has_owner = 0;

        (void)ret_error;
        r->probe_slot = sd_bus_slot_unref(r->probe_slot);
        if (e)
                why = g_strdup_printf("cannot ask the bus whether %s is there: %s", SYSTEMD_NAME,
                                      error_text(e));
        else if (sd_bus_message_read(reply, "b", &has_owner) < 0)
                why = g_strdup_printf("the bus gave a malformed answer about %s", SYSTEMD_NAME);
        else if (!has_owner)
                why = g_strdup_printf("%s is not on the bus", SYSTEMD_NAME);
        settle(r, why ? SYSTEMD_ABSENT : SYSTEMD_PRESENT, why);
        return 0;
}

QmRegistrar *qm_registrar_new(sd_bus *bus) {
        QmRegistrar *r = g_new0(QmRegistrar, 1);
        int e;

        r->bus = bus;
        r->presence = SYSTEMD_ASKING;
        g_queue_init(&r->queued);
        r->registrations = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, registration_free);
        e = sd_bus_call_method_async(bus, &r->probe_slot, DBUS_NAME, DBUS_PATH, DBUS_NAME, "NameHasOwner",
                                     on_probe_reply, r, "s", SYSTEMD_NAME);
        if (e < 0) {
                g_autofree char *why = g_strdup_printf("cannot ask the bus whether %s is there: %s",
                                                       SYSTEMD_NAME, g_strerror(-e));
                settle(r, SYSTEMD_ABSENT, why);
        }
        return r;
}

void qm_registrar_free(QmRegistrar *r) {
        if (!r)
                return;
        sd_bus_slot_unref(r->probe_slot);
        g_queue_clear_full(&r->queued, queued_free);
        g_hash_table_unref(r->registrations);
        g_free(r);
}

void qm_registrar_register(QmRegistrar *r, const char *name, const char *uuid, pid_t leader) {
        if (!r || leader <= 0)
                return;
        if (r->presence == SYSTEMD_ASKING)
                queue_request(r, name, uuid, leader);
        else if (r->presence == SYSTEMD_PRESENT)
                start_registration(r, name, uuid, leader);
}

void qm_registrar_unregister(QmRegistrar *r, const char *name) {
        if (!r)
                return;
        if (r->presence == SYSTEMD_ASKING)
                queue_request(r, name, NULL, 0);
        else if (r->presence == SYSTEMD_PRESENT)
                send_unregistration(r, name);
}
