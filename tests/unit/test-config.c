/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Config validation, names, object paths and the QEMU command line. */
#include <string.h>

#include "config.h"
#include "names.h"
#include "qemu-argv.h"

static QmConfig *parse(const char *text, char **error_name, char **error_message) {
        g_autoptr(GError) err = NULL;
        g_autoptr(GVariant) v = g_variant_parse(G_VARIANT_TYPE_VARDICT, text, NULL, NULL, &err);
        QmError *e = NULL;
        QmConfig *c;

        g_assert_no_error(err);
        c = qm_config_from_variant(v, &e);
        if (e) {
                *error_name = g_strdup(e->name);
                *error_message = g_strdup(e->message);
                qm_error_free(e);
        }
        return c;
}

static void assert_invalid(const char *text, const char *mentions) {
        g_autofree char *name = NULL, *message = NULL;
        g_autoptr(QmConfig) c = parse(text, &name, &message);
        g_assert_null(c);
        g_assert_cmpstr(name, ==, "org.freedesktop.DBus.Error.InvalidArgs");
        if (!strstr(message, mentions))
                g_error("'%s' does not mention '%s'", message, mentions);
}

static void test_defaults(void) {
        g_autofree char *n = NULL, *msg = NULL;
        g_autoptr(QmConfig) c = parse("@a{sv} {}", &n, &msg);
        g_assert_nonnull(c);
        g_assert_true(c->qmp);
        g_assert_false(c->console);
        g_assert_cmpfloat(c->qmp_timeout, ==, 30.0);
        g_assert_true(g_uuid_string_is_valid(c->uuid));
        g_assert_null(c->binary);
        g_assert_cmpuint(g_strv_length(c->args), ==, 0);
}

static void test_all_keys(void) {
        g_autofree char *n = NULL, *msg = NULL;
        g_autoptr(QmConfig) c = parse(
                "{'binary': <'qemu-system-x86_64'>, 'args': <['-S']>, 'wrapper': <['taskset', '-c', '1']>,"
                " 'machine': <'q35'>, 'qmp': <true>, 'console': <true>, 'console-device': <'isa-serial'>,"
                " 'console-index': <uint32 1>, 'qmp-timeout': <5.0>, 'persistent': <true>,"
                " 'uuid': <'0F0E0D0C-0B0A-0908-0706-050403020100'>, 'incoming': <'defer'>, 'nics': <uint32 2>,"
                " 'description': <'test vm'>, 'forward-ports': <[uint16 22, 8080]>, 'guest-agent': <true>}",
                &n, &msg);
        g_autoptr(GVariant) back = NULL;
        g_assert_nonnull(c);
        g_assert_cmpstr(c->uuid, ==, "0f0e0d0c-0b0a-0908-0706-050403020100");
        back = g_variant_ref_sink(qm_config_to_variant(c));
        /* every key but the unset user */
        g_assert_cmpuint(g_variant_n_children(back), ==, 18);
        g_assert_false(g_variant_lookup(back, "user", "&s", NULL));
        g_assert_cmpuint(c->forward_ports->len, ==, 2);
        g_assert_cmpuint(g_array_index(c->forward_ports, guint16, 1), ==, 8080);
        g_assert_true(c->guest_agent);
}

/* forward-ports survives JSON and a clone, and is checked. */
static void test_forward_ports(void) {
        g_autofree char *n = NULL, *msg = NULL;
        g_autoptr(QmConfig) c = parse("{'nics': <uint32 1>, 'forward-ports': <[uint16 22, 80]>}", &n, &msg);
        g_autoptr(JsonNode) json = NULL;
        g_autoptr(QmConfig) back = NULL;
        g_autoptr(GVariant) none = g_variant_ref_sink(g_variant_new("a{sv}", NULL));
        g_autoptr(QmConfig) clone = NULL;
        QmError *e = NULL;

        g_assert_nonnull(c);
        json = qm_config_to_json(c);
        back = qm_config_from_json(json, &e);
        g_assert_null(e);
        g_assert_cmpuint(back->forward_ports->len, ==, 2);
        g_assert_cmpuint(g_array_index(back->forward_ports, guint16, 0), ==, 22);
        clone = qm_config_clone(c, none, &e);
        g_assert_null(e);
        g_assert_cmpuint(clone->forward_ports->len, ==, 2);
        g_assert_cmpuint(g_array_index(clone->forward_ports, guint16, 1), ==, 80);

        assert_invalid("{'forward-ports': <[uint16 22]>}", "nics");
        assert_invalid("{'nics': <uint32 1>, 'forward-ports': <[uint16 0]>}", "port 0");
        assert_invalid("{'nics': <uint32 1>, 'forward-ports': <[uint16 22, 22]>}", "twice");
        assert_invalid("{'nics': <uint32 1>, 'forward-ports': <[22]>}", "'aq'");
        assert_invalid("{'guest-agent': <'yes'>}", "guest-agent");
        assert_invalid("{'autostart': <true>}", "persistent");
}

static void test_errors(void) {
        assert_invalid("{'bogus': <1>}", "bogus");
        assert_invalid("{'nics': <'2'>}", "nics");
        assert_invalid("{'nics': <int32 2>}", "'u'");
        assert_invalid("{'args': <'-S'>}", "args");
        assert_invalid("{'qmp-timeout': <0.0>}", "qmp-timeout");
        assert_invalid("{'qmp-timeout': <-1.0>}", "qmp-timeout");
        assert_invalid("{'qmp-timeout': <1e12>}", "qmp-timeout");
        assert_invalid("{'uuid': <'not-a-uuid'>}", "uuid");
        assert_invalid("{'nics': <uint32 1000>}", "nics");
        assert_invalid("{'console-device': <'virtio-serial'>}", "console-device");
        assert_invalid("{'console': <true>, 'console-index': <uint32 4>}", "console-index");
        assert_invalid("{'binary': <''>}", "binary");
        assert_invalid("{'machine': <''>}", "machine");
}

static void test_names(void) {
        g_autofree char *n64 = g_strnfill(64, 'a');
        g_autofree char *n65 = g_strnfill(65, 'a');
        g_autoptr(GRand) rand = g_rand_new_with_seed(1);
        g_autoptr(GDateTime) t = g_date_time_new_local(2026, 11, 22, 1, 2, 3);
        g_autofree char *gen = qm_name_generate(t, rand);
        g_autofree char *path = qm_name_to_path("vm-1");

        g_assert_true(qm_name_is_valid("vm-1"));
        g_assert_true(qm_name_is_valid("A.b_c-9"));
        g_assert_true(qm_name_is_valid(n64));
        g_assert_false(qm_name_is_valid(n65));
        g_assert_false(qm_name_is_valid(""));
        g_assert_false(qm_name_is_valid("../x"));
        g_assert_false(qm_name_is_valid("a/b"));
        g_assert_false(qm_name_is_valid("-x"));
        g_assert_false(qm_name_is_valid(".x"));
        g_assert_false(qm_name_is_valid("a b"));
        g_assert_false(qm_name_is_valid("é"));
        g_assert_true(g_str_has_prefix(gen, "vm-20261122-010203-"));
        g_assert_cmpuint(strlen(gen), ==, strlen("vm-20261122-010203-xxxx"));
        g_assert_true(qm_name_is_valid(gen));
        g_assert_cmpstr(path, ==, "/org/qmachine/QMachine1/machine/vm_2d1");
}

static void test_argv(void) {
        g_autofree char *n = NULL, *msg = NULL;
        g_autoptr(QmConfig) c = parse("{'machine': <'pc'>, 'nics': <uint32 2>, 'args': <['-S', 'a b']>,"
                                      " 'wrapper': <['taskset', '-c', '1']>, 'incoming': <'defer'>,"
                                      " 'uuid': <'00000000-0000-0000-0000-000000000001'>}",
                                      &n, &msg);
        QmAddFdArg fds[] = { { 10, 1, "disk", "" }, { 11, 2, "", "extra=1" } };
        QmPortPair fwd[] = { { 8080, 40001 }, { 22, 40002 } };
        g_auto(GStrv) argv = qm_build_argv(c, "qemu-system-x86_64", 3, -1, fds, 2, fwd, 2);
        g_autofree char *line = qm_argv_to_string(argv);
        g_autofree char *mac0 = qm_config_mac_address(c, 0);
        g_autofree char *mac1 = qm_config_mac_address(c, 1);
        g_autofree char *expect = g_strdup_printf(
                "taskset -c 1 qemu-system-x86_64 -display none -vga none "
                "-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny "
                "-chardev socket,id=mon,fd=3,server=on,wait=off -mon chardev=mon,mode=control "
                "-machine pc -uuid 00000000-0000-0000-0000-000000000001 "
                "-nic user,model=virtio-net-pci,id=nic0,mac=%s,hostfwd=tcp:127.0.0.1:40001-:8080,"
                "hostfwd=tcp:127.0.0.1:40002-:22 -nic user,model=virtio-net-pci,id=nic1,mac=%s "
                "-add-fd fd=10,set=1,opaque=disk -add-fd fd=11,set=2,opaque=,extra=1 -incoming defer -S 'a b'",
                mac0, mac1);

        g_assert_cmpstr(line, ==, expect);
        /* locally administered unicast, distinct, stable */
        g_assert_cmpstr(mac0, !=, mac1);
        g_assert_cmpint(g_ascii_xdigit_value(mac0[1]) & 3, ==, 2);
        g_autofree char *again = qm_config_mac_address(c, 0);
        g_assert_cmpstr(mac0, ==, again);
}

static void test_argv_console(void) {
        g_autofree char *n = NULL, *msg = NULL;
        /* sandbox false: no -sandbox */
        g_autoptr(QmConfig) c = parse("{'console': <true>, 'console-index': <uint32 2>, 'qmp': <false>,"
                                      " 'sandbox': <false>, 'uuid': <'00000000-0000-0000-0000-000000000001'>}",
                                      &n, &msg);
        g_auto(GStrv) argv = qm_build_argv(c, "qemu", -1, 4, NULL, 0, NULL, 0);
        g_autofree char *line = qm_argv_to_string(argv);

        g_assert_cmpstr(line, ==,
                        "qemu -display none -vga none -chardev socket,id=console,fd=4,server=on,wait=off "
                        "-serial null -serial null -serial chardev:console "
                        "-uuid 00000000-0000-0000-0000-000000000001");
}

static void test_clone(void) {
        g_autofree char *n = NULL, *msg = NULL;
        g_autoptr(QmConfig) base = parse("{'machine': <'pc'>, 'nics': <uint32 1>, 'args': <['-S']>,"
                                         " 'uuid': <'00000000-0000-0000-0000-000000000001'>}", &n, &msg);
        g_autoptr(GVariant) none = g_variant_ref_sink(g_variant_new_parsed("@a{sv} {}"));
        g_autoptr(GVariant) over = g_variant_ref_sink(g_variant_new_parsed("{'nics': <uint32 2>, 'uuid': <'00000000-0000-0000-0000-0000000000AB'>}"));
        g_autoptr(GVariant) bad = g_variant_ref_sink(g_variant_new_parsed("{'bogus': <1>}"));
        QmError *e = NULL;
        g_autoptr(QmConfig) c1 = qm_config_clone(base, none, &e);
        g_autoptr(QmConfig) c2 = qm_config_clone(base, over, &e);

        g_assert_nonnull(c1);
        g_assert_cmpstr(c1->machine, ==, "pc");
        g_assert_cmpstr(c1->args[0], ==, "-S");
        g_assert_cmpuint(c1->nics, ==, 1);
        g_assert_cmpstr(c1->uuid, !=, base->uuid); /* a new UUID, so new MACs */
        g_assert_nonnull(c2);
        g_assert_cmpuint(c2->nics, ==, 2);
        g_assert_cmpstr(c2->uuid, ==, "00000000-0000-0000-0000-0000000000ab");
        g_assert_null(qm_config_clone(base, bad, &e));
        g_assert_cmpstr(e->name, ==, "org.freedesktop.DBus.Error.InvalidArgs");
        qm_error_free(e);
}

static void test_json_round_trip(void) {
        g_autofree char *n = NULL, *msg = NULL;
        g_autoptr(QmConfig) c = parse("{'machine': <'q35'>, 'nics': <uint32 3>, 'qmp-timeout': <2.5>,"
                                      " 'args': <['-m', '256']>, 'persistent': <true>}", &n, &msg);
        g_autoptr(JsonNode) j = qm_config_to_json(c);
        QmError *e = NULL;
        g_autoptr(QmConfig) back = qm_config_from_json(j, &e);
        g_autoptr(JsonNode) bad = json_from_string("{\"nics\": -1}", NULL);

        g_assert_nonnull(back);
        g_assert_cmpstr(back->machine, ==, "q35");
        g_assert_cmpuint(back->nics, ==, 3);
        g_assert_cmpfloat(back->qmp_timeout, ==, 2.5);
        g_assert_cmpstr(back->args[1], ==, "256");
        g_assert_true(back->persistent);
        g_assert_cmpstr(back->uuid, ==, c->uuid);
        g_assert_null(qm_config_from_json(bad, &e));
        qm_error_free(e);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/config/defaults", test_defaults);
        g_test_add_func("/config/all-keys", test_all_keys);
        g_test_add_func("/config/errors", test_errors);
        g_test_add_func("/config/forward-ports", test_forward_ports);
        g_test_add_func("/names/validate-generate-path", test_names);
        g_test_add_func("/argv/base-args", test_argv);
        g_test_add_func("/argv/console", test_argv_console);
        g_test_add_func("/config/clone", test_clone);
        g_test_add_func("/config/json-round-trip", test_json_round_trip);
        return g_test_run();
}
