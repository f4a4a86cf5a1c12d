/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qmachinectl show [NAME] [-p PROP]... [--value]: every property of a
 * machine (or of the Manager) as Name=Value lines, as `machinectl show`
 * prints them; with --json an object of the properties.
 */
#include "ctl.h"

#include <stdio.h>
#include <string.h>

/* The properties GetAll leaves out; shown when the caller may read them. */
static const char *const explicit_properties[] = { "CommandLine", "Config" };

static bool wanted(const CtlOptions *o, const char *name) {
        if (o->properties->len == 0)
                return true;
        for (guint i = 0; i < o->properties->len; i++)
                if (strcmp(o->properties->pdata[i], name) == 0)
                        return true;
        return false;
}

static void print_lines(const Ctl *c, JsonNode *node, const void *userdata) {
        GPtrArray *props = (GPtrArray *)userdata;

        for (guint i = 0; i < props->len; i++) {
                const CtlProperty *p = props->pdata[i];
                g_autofree char *text = ctl_property_text(p);
                if (c->o.value)
                        printf("%s\n", text);
                else
                        printf("%s=%s\n", p->name, text);
        }
}

int cmd_show(Ctl *c, int argc, char **argv) {
        g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func((GDestroyNotify)ctl_property_free);
        g_autoptr(GPtrArray) shown = g_ptr_array_new();
        g_autoptr(JsonObject) o = json_object_new();
        g_autoptr(JsonNode) node = NULL;
        g_autofree char *path = NULL;
        const char *iface = argc > 0 ? QM_MACHINE_IFACE : QM_MANAGER_IFACE;
        int r;

        if (argc > 0) {
                r = ctl_machine_path(c, argv[0], &path);
                if (r != EXIT_OK)
                        return r;
        } else {
                path = g_strdup(QM_MANAGER_PATH);
        }
        r = ctl_get_all_properties(c, path, iface, all);
        if (r != EXIT_OK)
                return r;
        for (size_t i = 0; argc > 0 && i < G_N_ELEMENTS(explicit_properties); i++) {
                CtlProperty *p;
                if (!wanted(&c->o, explicit_properties[i]))
                        continue;
                /* only root and the owner may: left out for anyone else */
                p = ctl_get_property(c, path, iface, explicit_properties[i], NULL);
                if (p)
                        g_ptr_array_add(all, p);
        }
        for (guint i = 0; i < all->len; i++) {
                CtlProperty *p = all->pdata[i];
                if (!wanted(&c->o, p->name))
                        continue;
                g_ptr_array_add(shown, p);
                json_object_set_member(o, p->name, json_node_copy(p->value));
        }
        node = json_node_init_object(json_node_alloc(), o);
        ctl_pager_open(c);
        if (c->output == CTL_OUTPUT_VALUE) /* -o value is --value, with show's formatting */
                c->o.value = true;
        if (!ctl_json_mode(c)) {
                print_lines(c, node, shown);
                return EXIT_OK;
        }
        return ctl_output(c, node, print_lines, shown);
}
