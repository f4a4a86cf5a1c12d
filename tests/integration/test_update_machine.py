#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Manager.UpdateMachine (API version 2): the definition of a machine
that does not run changes, validated as CreateMachine's config, with
empty values removing keys; and Config lists only the keys that are set,
so it can be given back unchanged."""

import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import INVALID_ARGS, GLib, changed_values, config_variant, err  # noqa: E402


class UpdateMachineTest(qmtest.QMTestCase):

    def update(self, name, **overrides):
        return self.manager("UpdateMachine",
                            GLib.Variant("(sa{sv})", (name, config_variant(overrides))), "()")

    def update_raw(self, name, overrides):
        return self.manager("UpdateMachine", GLib.Variant("(sa{sv})", (name, overrides)), "()")

    def definition_path(self, name):
        return self.env.path("state", "machines", name + ".json")

    def test_changes_keys_and_announces_them(self):
        path = self.create_none_machine("up", description="before", nics=1)
        uuid_ = self.mprop(path, "UUID")
        macs = self.mprop(path, "MacAddresses")
        props = self.record_properties(path)
        self.update("up", description="after", nics=2, machine="none")
        c = self.mprop(path, "Config")
        self.assertEqual(c["description"], "after")
        self.assertEqual(c["nics"], 2)
        self.assertEqual(c["machine"], "none")
        self.assertEqual(c["uuid"], uuid_, "the uuid stays unless given")
        self.assertEqual(self.mprop(path, "MacAddresses")[0], macs[0], "same uuid, same MAC")
        self.assertEqual(len(self.mprop(path, "MacAddresses")), 2)
        self.assertTrue(props.wait(lambda s: changed_values(props, "MacAddresses")))
        self.assertIn("<invalidated>", changed_values(props, "Config"))
        # A new uuid gives new MACs, announced.
        new = "12345678-1234-1234-1234-123456789abc"
        self.update("up", uuid=new)
        self.assertEqual(self.mprop(path, "UUID"), new)
        self.assertNotEqual(self.mprop(path, "MacAddresses")[0], macs[0])
        self.assertTrue(props.wait(lambda s: new in changed_values(props, "UUID")))
        # The new config applies at the next launch.
        self.launch(path)
        cmdline = self.mprop(path, "CommandLine")
        self.assertIn(new, cmdline)
        self.machine(path, "Shutdown", GLib.Variant("(bd)", (False, 30.0)), "()")

    def test_empty_values_remove_keys(self):
        path = self.create_none_machine("rm", machine="none", description="d",
                                        wrapper=["env"])
        self.update_raw("rm", {"machine": GLib.Variant("s", ""),
                               "wrapper": GLib.Variant("as", []),
                               "description": GLib.Variant("s", "")})
        c = self.mprop(path, "Config")
        self.assertNotIn("machine", c)
        self.assertEqual(c["wrapper"], [])
        self.assertEqual(c["description"], "")
        self.assertEqual(c["args"], qmtest.none_args(), "keys not named stay")

    def test_config_feeds_back(self):
        path = self.create_none_machine("fb", description="x", nics=1,
                                        forward_ports=GLib.Variant("aq", [22]))
        config = self.get_property_variant(path, qmtest.MACHINE_IFACE, "Config")
        self.assertNotIn("binary", config.unpack())
        self.assertNotIn("incoming", config.unpack())
        # Back into UpdateMachine: nothing changes.
        self.manager("UpdateMachine", GLib.Variant.new_tuple(GLib.Variant("s", "fb"), config), "()")
        self.assertEqual(self.mprop(path, "Config"), config.unpack())

    def test_refusals_change_nothing(self):
        path = self.create_none_machine("bad", description="kept")
        before = self.mprop(path, "Config")
        cases = [
            ({"bogus": GLib.Variant("s", "x")}, "bogus"),
            ({"nics": GLib.Variant("s", "2")}, "nics"),
            ({"qmp-timeout": GLib.Variant("d", -1.0)}, "qmp-timeout"),
            ({"uuid": GLib.Variant("s", "nope")}, "uuid"),
            ({"console-index": GLib.Variant("u", 1)}, "console"),
            ({"description": GLib.Variant("s", "new"), "nics": GLib.Variant("u", 1000)}, "nics"),
        ]
        for overrides, word in cases:
            with self.subTest(overrides=overrides):
                e = self.expect_error(INVALID_ARGS, self.update_raw, "bad", overrides)
                self.assertIn(word, e.text)
        self.assertEqual(self.mprop(path, "Config"), before)
        self.expect_error(err("NoSuchMachine"), self.update, "ghost", description="x")
        self.launch(path)
        e = self.expect_error(err("Busy"), self.update, "bad", description="x")
        self.assertIn("running", e.text)
        self.assertEqual(self.mprop(path, "Config"), before)
        self.machine(path, "Kill", None, "()")

    def test_persistence_follows(self):
        path = self.create_none_machine("p", description="one")
        self.assertFalse(os.path.exists(self.definition_path("p")))
        self.update("p", persistent=True, description="two")
        self.assertTrue(self.mprop(path, "Persistent"))
        with open(self.definition_path("p")) as f:
            self.assertEqual(json.load(f)["config"]["description"], "two")
        self.update("p", description="three")
        self.restart_daemon(signal.SIGTERM)
        self.assertEqual(self.mprop(path, "Config")["description"], "three")
        self.update("p", persistent=False)
        self.assertFalse(self.mprop(path, "Persistent"))
        self.assertFalse(os.path.exists(self.definition_path("p")))
        self.restart_daemon(signal.SIGTERM)
        self.expect_error(err("NoSuchMachine"), self.manager, "GetMachine",
                          GLib.Variant("(s)", ("p",)), "(o)")


if __name__ == "__main__":
    qmtest.main()
