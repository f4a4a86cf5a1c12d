/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qmachinectl powerdown-all: what qmachined-guests.service runs when the
 * host shuts down (libvirt-guests). Every running machine gets Powerdown
 * at once, so one slow guest does not hold up the others; Powerdown
 * itself ends with QMP quit and SIGKILL when its timeout runs out.
 */
#include "ctl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

typedef struct {
        char *name;
        sd_bus_slot *slot;
        bool done;
        char *error; /* NULL: powered off by the guest itself */
} Pending;

static int on_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Pending *p = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        p->done = true;
        if (e)
                p->error = g_strdup(e->message ? e->message : e->name);
        return 0;
}

/* The running machines' names (ListMachines). */
static int running_machines(Ctl *c, GPtrArray *names) {
        g_autoptr(sd_bus_message) reply = NULL;
        const char *name, *state, *path;
        uint32_t pid;
        int r;

        r = ctl_manager_call(c, "ListMachines", 0, &reply, NULL);
        if (r != EXIT_OK)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(ssuo)");
        while (r > 0 && (r = sd_bus_message_read(reply, "(ssuo)", &name, &state, &pid, &path)) > 0)
                if (strcmp(state, "running") == 0 || strcmp(state, "starting") == 0)
                        g_ptr_array_add(names, g_strdup(name));
        if (r < 0)
                return ctl_error("bad reply to ListMachines: %s", g_strerror(-r));
        return EXIT_OK;
}

static int call_powerdown(Ctl *c, Pending *p, const char *path, double timeout) {
        g_autoptr(sd_bus_message) m = NULL;
        int r;

        r = sd_bus_message_new_method_call(c->bus, &m, QM_BUS_NAME, path, QM_MACHINE_IFACE, "Powerdown");
        if (r >= 0)
                r = sd_bus_message_append(m, "d", timeout);
        if (r >= 0) /* Powerdown answers within its timeout and the kill */
                r = sd_bus_call_async(c->bus, &p->slot, m, on_reply, p, ctl_timeout_usec(timeout));
        return r;
}

/* JSON: {name, powered_off, error} */
static void add_result(JsonArray *results, const Pending *p) {
        JsonObject *o = json_object_new();

        json_object_set_string_member(o, "name", p->name);
        json_object_set_boolean_member(o, "powered_off", !p->error);
        if (p->error)
                json_object_set_string_member(o, "error", p->error);
        else
                json_object_set_null_member(o, "error");
        json_array_add_object_element(results, o);
}

int cmd_powerdown_all(Ctl *c, int argc, char **argv) {
        g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
        double timeout = c->o.timeout_set ? c->o.timeout : 120;
        g_autofree Pending *pending = NULL;
        g_autoptr(JsonArray) results = json_array_new();
        guint left, forced = 0;
        int r;

        r = running_machines(c, names);
        if (r != EXIT_OK)
                return r;
        pending = g_new0(Pending, names->len + 1);
        for (guint i = 0; i < names->len; i++) {
                g_autofree char *path = NULL;
                Pending *p = &pending[i];

                p->name = g_ptr_array_index(names, i);
                if (ctl_machine_path(c, p->name, &path) != EXIT_OK) {
                        p->done = true; /* gone meanwhile */
                        continue;
                }
                r = call_powerdown(c, p, path, timeout);
                if (r < 0) {
                        p->done = true;
                        p->error = g_strdup(g_strerror(-r));
                }
        }
        for (;;) {
                left = 0;
                for (guint i = 0; i < names->len; i++)
                        left += !pending[i].done;
                if (left == 0)
                        break;
                r = sd_bus_process(c->bus, NULL);
                if (r < 0)
                        return ctl_error("lost the bus: %s", g_strerror(-r));
                if (r == 0 && (r = sd_bus_wait(c->bus, UINT64_MAX)) < 0 && r != -EINTR)
                        return ctl_error("lost the bus: %s", g_strerror(-r));
        }
        for (guint i = 0; i < names->len; i++) {
                Pending *p = &pending[i];
                if (p->error) {
                        fprintf(stderr, "qmachinectl: %s: %s\n", p->name, p->error);
                        forced++;
                } else if (!ctl_json_mode(c)) {
                        printf("%s powered off\n", p->name);
                }
                add_result(results, p);
                sd_bus_slot_unref(p->slot);
                g_free(p->error);
        }
        if (ctl_json_mode(c)) {
                g_autoptr(JsonNode) node = json_node_init_array(json_node_alloc(), results);
                ctl_output(c, node, NULL, NULL);
        }
        return forced ? EXIT_FAIL : EXIT_OK;
}
