#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Bad input of every kind is refused with the right error, and the daemon
keeps working afterwards."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import (CONFIG_TYPES, INVALID_ARGS, MACHINE_IFACE,  # noqa: E402
                    MANAGER_IFACE, MANAGER_PATH, GLib, err)

# (method, a wrong argument tuple). The right signatures are in the XML.
MANAGER_WRONG = [
    ("CreateMachine", GLib.Variant("(s)", ("x",))),
    ("CreateMachine", GLib.Variant("(sa{ss})", ("x", {"binary": "y"}))),
    ("CreateMachine", GLib.Variant("(i)", (1,))),
    ("ListMachines", GLib.Variant("(s)", ("x",))),
    ("GetMachine", GLib.Variant("(u)", (1,))),
    ("GetMachine", None),
    ("GetMachineByPID", GLib.Variant("(s)", ("1",))),
    ("GetMachineByPID", GLib.Variant("(i)", (1,))),
    ("RemoveMachine", GLib.Variant("(o)", ("/x",))),
    ("CloneMachine", GLib.Variant("(ss)", ("x", "y"))),
    ("CloneMachine", GLib.Variant("(ssa{ss})", ("x", "y", {"uuid": "z"}))),
    ("CloneMachine", GLib.Variant("(sa{sv})", ("x", {}))),
    ("CreateImage", GLib.Variant("(sst)", ("x.qcow2", "qcow2", 1024))),
    ("CreateImage", GLib.Variant("(ssua{sv})", ("x.qcow2", "qcow2", 1024, {}))),
    ("CreateImage", GLib.Variant("(stsa{sv})", ("x.qcow2", 1024, "qcow2", {}))),
    ("CheckImage", None),
    ("CheckImage", GLib.Variant("(o)", ("/x",))),
    ("RemoveImage", GLib.Variant("(u)", (1,))),
    ("RemoveImage", None),
    ("ListImages", GLib.Variant("(s)", ("x",))),
]

MACHINE_WRONG = [
    ("Launch", GLib.Variant("(b)", (True,))),
    ("Shutdown", GLib.Variant("(b)", (False,))),
    ("Shutdown", GLib.Variant("(bu)", (False, 5))),
    ("Shutdown", GLib.Variant("(db)", (5.0, False))),
    ("Kill", GLib.Variant("(i)", (9,))),
    ("Wait", GLib.Variant("(u)", (5,))),
    ("Wait", None),
    ("Reset", GLib.Variant("(s)", ("x",))),
    ("Pause", GLib.Variant("(s)", ("x",))),
    ("Resume", GLib.Variant("(s)", ("x",))),
    ("Qmp", GLib.Variant("(s)", ("query-status",))),
    ("Qmp", GLib.Variant("(sas)", ("query-status", []))),
    ("Command", GLib.Variant("(ssb)", ("query-status", "", True))),
    ("WaitEvent", GLib.Variant("(a(ss)t)", ([], 0))),
    ("WaitEvent", GLib.Variant("(a(ss)ti)", ([], 0, 1))),
    ("WaitEvent", GLib.Variant("(asud)", ([], 0, 1.0))),
    ("GetEvents", GLib.Variant("(u)", (0,))),
    ("GetEvents", None),
    ("GetLog", GLib.Variant("(s)", ("x",))),
    ("Migrate", GLib.Variant("(s)", ("tcp:127.0.0.1:1",))),
    ("Migrate", GLib.Variant("(sa{ss})", ("tcp:127.0.0.1:1", {"timeout": "1"}))),
    ("Migrate", GLib.Variant("(a{sv}s)", ({}, "tcp:127.0.0.1:1"))),
    ("VerifyAlive", GLib.Variant("(d)", (1.0,))),
]

# A value of the wrong type for each config key.
WRONG_TYPE = {
    "s": GLib.Variant("i", 1),
    "as": GLib.Variant("s", "-S"),
    "b": GLib.Variant("s", "true"),
    "u": GLib.Variant("s", "2"),
    "d": GLib.Variant("s", "1.5"),
    "aq": GLib.Variant("au", [8080]),
}

BAD_NAMES = [
    "../x", "a/b", "a" * 65, "-x", ".x", "_x", "a b", "x\n", "ä", "a:b",
    "x" * (1024 * 1024),
]

BAD_JSON = ["{", "not json", "{\"a\": }", "{\"a\": 1,}", "'single'", "{}{}"]
NOT_OBJECT = ["[]", "[1, 2]", "42", "\"text\"", "null", "true"]


class BadInputTest(qmtest.QMTestCase):

    def create(self, name, config):
        return self.manager("CreateMachine", GLib.Variant("(sa{sv})", (name, config)), "(o)")

    def test_wrong_signatures(self):
        path = self.create_none_machine("sig")
        for method, args in MANAGER_WRONG:
            with self.subTest(method=method, args=args):
                self.expect_error(INVALID_ARGS, self.call, MANAGER_PATH, MANAGER_IFACE,
                                  method, args)
        for running in (False, True):
            if running:
                self.launch(path)
            for method, args in MACHINE_WRONG:
                with self.subTest(method=method, args=args, running=running):
                    self.expect_error(INVALID_ARGS, self.call, path, MACHINE_IFACE,
                                      method, args)
        # Nothing happened to the machine, nothing was made.
        self.assertEqual(self.manager("ListImages", None, "(a(sst))"), [])
        self.assertEqual(self.mprop(path, "State"), "running")
        self.assertEqual(self.command(path, "query-status")["status"], "running")
        self.assert_daemon_answers(1)

    def test_unknown_config_key(self):
        for key in ("bogus", "Binary", "qmp_timeout", ""):
            with self.subTest(key=key):
                e = self.expect_error(INVALID_ARGS, self.create, "k",
                                      {key: GLib.Variant("s", "x")})
                if key:
                    self.assertIn(key, e.text)
        self.assert_daemon_answers(0)

    def test_wrongly_typed_config_values(self):
        for key, t in CONFIG_TYPES.items():
            with self.subTest(key=key):
                e = self.expect_error(INVALID_ARGS, self.create, "t",
                                      {key: WRONG_TYPE[t]})
                self.assertIn(key, e.text)
        # int32 where uint32 is wanted is wrong too; a nested variant also.
        e = self.expect_error(INVALID_ARGS, self.create, "t", {"nics": GLib.Variant("i", 2)})
        self.assertIn("nics", e.text)
        e = self.expect_error(INVALID_ARGS, self.create, "t",
                              {"qmp": GLib.Variant("v", GLib.Variant("b", True))})
        self.assertIn("qmp", e.text)
        self.assert_daemon_answers(0)

    def test_bad_config_values(self):
        bad = [
            {"uuid": GLib.Variant("s", "not-a-uuid")},
            {"console-device": GLib.Variant("s", "isa-serial")},   # without console
        ]
        for config in bad:
            with self.subTest(config=config):
                e = self.expect_error(INVALID_ARGS, self.create, "v", config)
                self.assertIn(list(config)[0], e.text)
        self.assert_daemon_answers(0)

    def test_bad_names(self):
        for name in BAD_NAMES:
            with self.subTest(name=name[:70]):
                self.expect_error(INVALID_ARGS, self.create, name, {})
        self.assert_daemon_answers(0)
        # The boundaries that are fine.
        for name in ("a" * 64, "A.b_c-1", "9lives", "x"):
            with self.subTest(name=name):
                path = self.create(name, {})
                self.assertEqual(path, qmtest.machine_path(name))
                self.assertEqual(self.mprop(path, "Name"), name)
        self.assert_daemon_answers(4)

    def test_duplicate_and_unknown_names(self):
        self.create_none_machine("dup")
        self.expect_error(err("MachineExists"), self.create_none_machine, "dup")
        self.expect_error(err("MachineExists"), self.create, "dup", {})
        for method in ("GetMachine", "RemoveMachine"):
            with self.subTest(method=method):
                e = self.expect_error(err("NoSuchMachine"), self.manager, method,
                                      GLib.Variant("(s)", ("nope",)))
                self.assertTrue(e.text)
        self.expect_error(err("NoSuchMachine"), self.manager, "GetMachineByPID",
                          GLib.Variant("(u)", (0,)))
        self.expect_error(qmtest.UNKNOWN_OBJECT, self.call,
                          qmtest.machine_path("nope"), MACHINE_IFACE, "Launch", None)
        self.assert_daemon_answers(1)

    def test_bad_json(self):
        path = self.create_none_machine("json")
        self.launch(path)
        for method in ("Qmp", "Command"):
            for arguments in BAD_JSON + NOT_OBJECT:
                with self.subTest(method=method, arguments=arguments):
                    self.expect_error(INVALID_ARGS, self.call, path, MACHINE_IFACE, method,
                                      GLib.Variant("(ss)", ("query-status", arguments)))
        for match in BAD_JSON:
            with self.subTest(match=match):
                self.expect_error(INVALID_ARGS, self.wait_event, path,
                                  [("STOP", match)], 0, 0)
                self.expect_error(INVALID_ARGS, self.wait_event, path,
                                  [("STOP", ""), ("", match)], 0, 5)
        # qmp_capabilities is the daemon's business.
        self.expect_error(INVALID_ARGS, self.qmp, path, "qmp_capabilities")
        self.expect_error(INVALID_ARGS, self.qmp, path, "qmp_capabilities", "{}")
        # A command name that tries to inject JSON is just an unknown command
        # (or refused); never a broken monitor.
        for cmd in ('query-status", "x": "', 'a"}\n{"execute": "quit'):
            try:
                r = self.qmp(path, cmd)
                self.assertIn("error", r)
            except qmtest.DBusCallError as e:
                self.assertEqual(e.name, INVALID_ARGS)
        self.assertEqual(self.command(path, "query-status")["status"], "running")
        self.assertEqual(self.mprop(path, "State"), "running")
        self.assert_daemon_answers(1)

    def test_argument_size_limit(self):
        path = self.create_none_machine("big")
        self.launch(path)
        big = '{"command-line": "' + "x" * (1024 * 1024 + 16) + '"}'
        e = self.expect_error(err("LimitExceeded"), self.qmp, path,
                              "human-monitor-command", big)
        self.assertTrue(e.text)
        self.expect_error(err("LimitExceeded"), self.command, path,
                          "human-monitor-command", big)
        # Just under the limit goes through to QEMU (which dislikes it).
        ok = '{"command-line": "' + "x" * (512 * 1024) + '"}'
        r = self.qmp(path, "human-monitor-command", ok)
        self.assertIn("return", r)
        self.assertEqual(self.command(path, "query-status")["status"], "running")
        self.assert_daemon_answers(1)

    def test_not_running(self):
        path = self.create_none_machine("idle")
        for method, args in (("Qmp", GLib.Variant("(ss)", ("query-status", ""))),
                             ("Command", GLib.Variant("(ss)", ("query-status", ""))),
                             ("Pause", None), ("Resume", None), ("Reset", None)):
            with self.subTest(method=method):
                self.expect_error(err("NotRunning"), self.call, path, MACHINE_IFACE,
                                  method, args)
        self.assertEqual(self.machine(path, "GetEvents", GLib.Variant("(t)", (0,)),
                                      "(a(ts))"), [])
        self.assertEqual(self.wait_event(path, [("STOP", "")], 0, 0), (0, None))
        self.expect_error(err("NotRunning"), self.wait_event, path, [("STOP", "")], 0, 1)
        self.assert_daemon_answers(1)


if __name__ == "__main__":
    qmtest.main()
