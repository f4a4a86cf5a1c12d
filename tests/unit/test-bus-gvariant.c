/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sd-bus message contents <-> GVariant (bus-gvariant.c): every D-Bus type
 * both ways, checked against sd-bus's own readers and writers, not only
 * against each other; what D-Bus cannot carry, or carry that deep, is
 * refused with an errno, never a crash.
 */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus-gvariant.h"

static sd_bus *bus;

/* sd-bus makes messages only for a started bus; one over a socketpair
 * that never authenticates will do, nothing is sent. */
static void bus_setup(void) {
        int sv[2];

        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), ==, 0);
        g_assert_cmpint(sd_bus_new(&bus), >=, 0);
        g_assert_cmpint(sd_bus_set_fd(bus, sv[0], sv[0]), >=, 0);
        g_assert_cmpint(sd_bus_start(bus), >=, 0);
        close(sv[1]);
}

static sd_bus_message *new_message(void) {
        sd_bus_message *m = NULL;

        g_assert_cmpint(sd_bus_message_new_method_call(bus, &m, "org.example.T", "/t", "org.example.T", "M"), >=, 0);
        return m;
}

/* Seal the message and go back to its start, as a received one. */
static void seal(sd_bus_message *m) {
        g_assert_cmpint(sd_bus_message_seal(m, 1, 0), >=, 0);
        g_assert_cmpint(sd_bus_message_rewind(m, TRUE), >=, 0);
}

static GVariant *read_all(sd_bus_message *m) {
        GVariant *v = NULL;

        g_assert_cmpint(bus_message_read_gvariant(m, &v), >=, 0);
        g_assert_nonnull(v);
        g_assert_false(g_variant_is_floating(v));
        g_assert_cmpint(sd_bus_message_at_end(m, TRUE), >, 0);
        return v;
}

/* GVariant -> message -> GVariant gives the same value and type. */
static void assert_round_trip(GVariant *v) {
        sd_bus_message *m = new_message();
        g_autoptr(GVariant) out = NULL;

        g_variant_ref_sink(v);
        g_assert_cmpint(bus_message_append_gvariant(m, v), >=, 0);
        seal(m);
        g_assert_cmpstr(sd_bus_message_get_signature(m, TRUE), ==, g_variant_get_type_string(v));
        out = read_all(m);
        if (!g_variant_equal(v, out)) {
                g_autofree char *a = g_variant_print(v, TRUE), *b = g_variant_print(out, TRUE);
                g_error("round trip changed %s into %s", a, b);
        }
        sd_bus_message_unref(m);
        g_variant_unref(v);
}

static void assert_round_trip_text(const char *text) {
        assert_round_trip(g_variant_new_parsed(text));
}

/* Every basic type at its limits, in GVariant text format. */
static const char *const basic_values[] = {
        "byte 0", "byte 255", "true", "false",
        "int16 -32768", "uint16 65535", "int32 -2147483648", "uint32 4294967295",
        "int64 -9223372036854775808", "int64 9223372036854775807", "uint64 18446744073709551615",
        "-0.5", "1.7976931348623157e308", "2.2250738585072014e-308",
        "''", "'h\u00e9llo \U0001f427'",
        "objectpath '/'", "objectpath '/org/qmachine/QMachine1/machine/_31x'",
        "signature ''", "signature 'a{sv}(iy)'", NULL,
};

/* Arrays, structs, dict entries and variants, nested in each other. */
static const char *const container_values[] = {
        "[byte 1, 2, 255]", "[true, false]", "[int16 -1, 2]", "[uint16 1, 2]", "[1, -2, 3]",
        "[uint32 1, 2]", "[int64 -1, 2]", "[uint64 1, 2]", "[1.5, -2.25]", "['a', 'b', '']",
        "[objectpath '/a', '/b']", "[signature 'as', 'v']",
        "('a', 1, true, @ay [1, 2])",
        "{'key': <'value'>}",
        "{'binary': <'qemu'>, 'args': <['-S', '-m', '64']>, 'qmp-timeout': <5.0>}",
        "{1: 'one', 2: 'two'}",
        "{'outer': {'inner': <(1, 'x', [<true>, <@y 7>])>}}",
        "[[[1, 2], [3]], [[4]]]",
        "[('a', [<1>, <'b'>]), ('c', @av [])]",
        "((1, (2, (3, 'deep'))), <<<'three variants'>>>)",
        "<{'a': <[(uint64 1, objectpath '/x', signature 'g')]>}>", NULL,
};

static const char *const empty_array_values[] = {
        "@as []", "@ay []", "@ad []", "@a{sv} {}", "@a(ii) []", "@aav []",
        "@aas [[], ['x'], []]", "@a{sa{sv}} {'empty': {}}", "(@as [], @a{ss} {}, 1)", "<@a{sv} {}>", NULL,
};

static void test_round_trips(gconstpointer data) {
        const char *const *values = data;

        for (gsize i = 0; values[i]; i++)
                assert_round_trip_text(values[i]);
}

static void test_read_what_sd_bus_wrote(void) {
        sd_bus_message *m = new_message();
        g_autoptr(GVariant) v = NULL, expected = NULL;

        g_assert_cmpint(sd_bus_message_append(m, "a{sv}", 3,
                                              "name", "s", "vm1",
                                              "cpus", "u", 4,
                                              "args", "as", 2, "-S", "-nodefaults"), >=, 0);
        g_assert_cmpint(sd_bus_message_append(m, "(yqnixtdbog)", 1, 2, -3, -4, (int64_t)-5, (uint64_t)6,
                                              7.5, 1, "/o", "sig"), >=, 0);
        g_assert_cmpint(sd_bus_message_append(m, "v", "v", "i", 42), >=, 0);
        seal(m);

        g_assert_cmpint(bus_message_read_gvariant(m, &v), >=, 0);
        expected = g_variant_ref_sink(g_variant_new_parsed(
                "{'name': <'vm1'>, 'cpus': <uint32 4>, 'args': <['-S', '-nodefaults']>}"));
        g_assert_true(g_variant_equal(v, expected));
        g_clear_pointer(&v, g_variant_unref);
        g_clear_pointer(&expected, g_variant_unref);

        g_assert_cmpint(bus_message_read_gvariant(m, &v), >=, 0);
        expected = g_variant_ref_sink(g_variant_new("(yqnixtdbog)", 1, 2, -3, -4, (gint64)-5, (guint64)6,
                                                    7.5, TRUE, "/o", "sig"));
        g_assert_true(g_variant_equal(v, expected));
        g_clear_pointer(&v, g_variant_unref);
        g_clear_pointer(&expected, g_variant_unref);

        g_assert_cmpint(bus_message_read_gvariant(m, &v), >=, 0);
        expected = g_variant_ref_sink(g_variant_new_parsed("<<42>>"));
        g_assert_true(g_variant_equal(v, expected));
        g_assert_cmpint(sd_bus_message_at_end(m, TRUE), >, 0);

        /* nothing left: a clean error, not a value */
        g_clear_pointer(&v, g_variant_unref);
        g_assert_cmpint(bus_message_read_gvariant(m, &v), <, 0);
        g_assert_null(v);
        sd_bus_message_unref(m);
}

/* bus-gvariant writes, sd-bus reads. */
static void test_sd_bus_reads_what_was_written(void) {
        sd_bus_message *m = new_message();
        g_autoptr(GVariant) v = g_variant_ref_sink(g_variant_new_parsed(
                "({'k': <uint32 7>}, [(int16 -2, 'x')], <@x -9>, byte 3)"));
        const char *key = NULL, *s = NULL;
        uint32_t u = 0;
        int16_t n = 0;
        int64_t x = 0;
        uint8_t y = 0;

        g_assert_cmpint(bus_message_append_gvariant(m, v), >=, 0);
        seal(m);
        g_assert_cmpint(sd_bus_message_enter_container(m, 'r', "a{sv}a(ns)vy"), >, 0);
        g_assert_cmpint(sd_bus_message_read(m, "a{sv}", 1, &key, "u", &u), >, 0);
        g_assert_cmpstr(key, ==, "k");
        g_assert_cmpuint(u, ==, 7);
        g_assert_cmpint(sd_bus_message_read(m, "a(ns)", 1, &n, &s), >, 0);
        g_assert_cmpint(n, ==, -2);
        g_assert_cmpstr(s, ==, "x");
        g_assert_cmpint(sd_bus_message_read(m, "v", "x", &x), >, 0);
        g_assert_cmpint(x, ==, -9);
        g_assert_cmpint(sd_bus_message_read(m, "y", &y), >, 0);
        g_assert_cmpuint(y, ==, 3);
        g_assert_cmpint(sd_bus_message_exit_container(m), >, 0);
        sd_bus_message_unref(m);
}

/* Types D-Bus has but a config has no use for (unix fds), and GVariant
 * types D-Bus lacks (maybe, the empty tuple): an errno, nothing else. */
static void test_refused_types(void) {
        const char *types[] = { "@ms 'x'", "@ms nothing", "[()]", "@a{s(ms)} {'k': (nothing,)}" };

        for (gsize i = 0; i < G_N_ELEMENTS(types); i++) {
                sd_bus_message *m = new_message();
                g_autoptr(GVariant) v = g_variant_ref_sink(g_variant_new_parsed(types[i]));
                g_assert_cmpint(bus_message_append_gvariant(m, v), <, 0);
                sd_bus_message_unref(m);
        }
        for (gsize i = 0; i < 2; i++) {
                sd_bus_message *m = new_message();
                g_autoptr(GVariant) v = g_variant_ref_sink(g_variant_new_handle(0));
                g_autoptr(GVariant) out = NULL;
                int r;

                if (i == 0) {
                        g_assert_cmpint(bus_message_append_gvariant(m, v), <, 0);
                        sd_bus_message_unref(m);
                        continue;
                }
                /* a unix fd in a message that came in: refused on reading */
                r = sd_bus_message_append(m, "(sh)", "fd", 0);
                if (r < 0) {
                        sd_bus_message_unref(m);
                        g_test_message("sd-bus refused to append an fd here (%s)", g_strerror(-r));
                        continue;
                }
                seal(m);
                g_assert_cmpint(bus_message_read_gvariant(m, &out), <, 0);
                g_assert_null(out);
                sd_bus_message_unref(m);
        }
}

/* D-Bus has no empty struct: "()" is no valid signature. */
static void test_empty_tuple_refused(void) {
        sd_bus_message *m = new_message();
        g_autoptr(GVariant) v = g_variant_ref_sink(g_variant_new_parsed("()"));
        int r = bus_message_append_gvariant(m, v);

        sd_bus_message_unref(m);
        /* D-Bus has no empty struct: sd-bus would write the signature "()". */
        g_assert_cmpint(r, ==, -EINVAL);
}

static GVariant *nested_variants(int depth) {
        GVariant *v = g_variant_new_string("core");

        for (int i = 0; i < depth; i++)
                v = g_variant_new_variant(v);
        return v;
}

static char *nested_array_type(int depth) {
        g_autofree char *as = g_strnfill(depth, 'a');
        return g_strconcat(as, "s", NULL);
}

/* Nesting D-Bus allows goes through; nesting beyond what sd-bus takes is
 * refused with an errno on either side, with no crash and no value. */
static void test_maximum_nesting(void) {
        /* 32 nested arrays: the D-Bus limit */
        g_autofree char *t32 = nested_array_type(32);
        g_autofree char *t64 = nested_array_type(64);
        GVariant *deep;

        assert_round_trip(g_variant_new_from_data(G_VARIANT_TYPE(t32), NULL, 0, TRUE, NULL, NULL));
        {
                sd_bus_message *m = new_message();
                g_autoptr(GVariant) v = g_variant_ref_sink(
                        g_variant_new_from_data(G_VARIANT_TYPE(t64), NULL, 0, TRUE, NULL, NULL));
                g_assert_cmpint(bus_message_append_gvariant(m, v), <, 0);
                sd_bus_message_unref(m);
        }

        /* variants inside variants: fine while sd-bus reads them */
        assert_round_trip(nested_variants(32));
        /* sd-bus writes 300 nested variants but refuses to read them: the
         * reader must fail cleanly */
        {
                sd_bus_message *m = new_message();
                g_autoptr(GVariant) v = g_variant_ref_sink(nested_variants(300));
                g_autoptr(GVariant) out = NULL;
                int r = bus_message_append_gvariant(m, v);

                if (r >= 0) {
                        seal(m);
                        g_assert_cmpint(bus_message_read_gvariant(m, &out), <, 0);
                        g_assert_null(out);
                }
                sd_bus_message_unref(m);
        }
        /* the same inside a dict, after a first good entry */
        deep = g_variant_new_parsed("{'ok': <1>, 'deep': %v}", nested_variants(300));
        {
                sd_bus_message *m = new_message();
                g_autoptr(GVariant) v = g_variant_ref_sink(deep);
                g_autoptr(GVariant) out = NULL;

                if (bus_message_append_gvariant(m, v) >= 0) {
                        seal(m);
                        g_assert_cmpint(bus_message_read_gvariant(m, &out), <, 0);
                        g_assert_null(out);
                }
                sd_bus_message_unref(m);
        }
}

int main(int argc, char **argv) {
        int r;

        g_test_init(&argc, &argv, NULL);
        bus_setup();
        g_test_add_data_func("/bus-gvariant/basic-types", basic_values, test_round_trips);
        g_test_add_data_func("/bus-gvariant/containers", container_values, test_round_trips);
        g_test_add_data_func("/bus-gvariant/empty-arrays", empty_array_values, test_round_trips);
        g_test_add_func("/bus-gvariant/read-what-sd-bus-wrote", test_read_what_sd_bus_wrote);
        g_test_add_func("/bus-gvariant/sd-bus-reads-what-was-written", test_sd_bus_reads_what_was_written);
        g_test_add_func("/bus-gvariant/refused-types", test_refused_types);
        g_test_add_func("/bus-gvariant/empty-tuple-refused", test_empty_tuple_refused);
        g_test_add_func("/bus-gvariant/maximum-nesting", test_maximum_nesting);
        r = g_test_run();
        sd_bus_flush_close_unref(bus);
        return r;
}
