#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The bash completion of qmachinectl (data/completion/qmachinectl.bash):

- its tables match the program: every command of `qmachinectl --help`,
  the options of each command's `--help` and which of them take a value;
- run in bash against a private daemon with machines and an image, it
  completes commands, options and the names the daemon has, asking the
  daemon that --address on the line names (the environment's system bus
  points nowhere), also with bash-completion loaded and the line split by
  bash at "=" and ":".

Environment (tests/integration/meson.build sets it):
  QMACHINECTL, QMACHINED, QMACHINED_SOURCE_ROOT
"""

import os
import re
import shlex
import subprocess
import unittest
import xml.etree.ElementTree as ET

import qmtest
from qmtest import GLib

BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"


def script():
    return os.path.join(qmtest.source_root(), "data", "completion", "qmachinectl.bash")


def qmachinectl():
    exe = os.environ.get("QMACHINECTL")
    if exe:
        return os.path.abspath(exe)
    return os.path.join(qmtest.source_root(), "build", "src", "qmachinectl", "qmachinectl")


def bash(code, env=None):
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", code], capture_output=True,
                       text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise AssertionError("bash failed: %s\n%s" % (r.stderr, code))
    return r.stdout


def table(expr):
    """A word list of the script, as bash sees it."""
    return bash("source %s; printf '%%s\\n' %s" % (shlex.quote(script()), expr)).split()


def help_text(*args):
    return subprocess.run([qmachinectl()] + list(args) + ["--help"], capture_output=True,
                          text=True, check=True).stdout


def ctl_commands():
    lines = help_text().splitlines()
    out = []
    for line in lines[lines.index("Commands:") + 1:]:
        if not line.strip():
            break
        m = re.match(r"^  (\S+)", line)
        if m and not line.startswith("      "):
            out.append(m.group(1))
    return out


def options_of(text):
    """{option: takes a value} of an "Options" section."""
    return {m.group(1): bool(m.group(2)) for m in re.finditer(r"^  (--[a-z-]+)(=\S+)?", text, re.M)}


class TablesTest(unittest.TestCase):

    def test_commands(self):
        self.assertEqual(sorted(table("$__qmachinectl_commands")), sorted(ctl_commands() + ["help"]))

    def test_options(self):
        values = set(table("$__qmachinectl_value_options"))
        text = help_text()
        global_part = text[text.index("\nOptions (before or after the command):"):]
        globals_ = options_of(global_part)
        self.assertEqual(sorted(o.rstrip("=") for o in table("$__qmachinectl_global_options")
                                if o.startswith("--")), sorted(globals_))
        for o, takes in globals_.items():
            self.assertEqual(o in values, takes, o)
        for command in ctl_commands():
            with self.subTest(command=command):
                text = help_text(command)
                own = text.split("\nOptions (before or after the command):")[0]
                want = options_of(own.split("\nOptions:\n", 1)[1]) if "\nOptions:\n" in own else {}
                got = table("$(__qmachinectl_command_options %s)" % command)
                self.assertEqual(sorted(o.rstrip("=") for o in got), sorted(want))
                for o in got:
                    self.assertEqual(o.endswith("="), want[o.rstrip("=")], o)
                    self.assertEqual(o.rstrip("=") in values, want[o.rstrip("=")], o)


    def test_property_names(self):
        # the Machine interface's, so that the list cannot drift from it
        xml = os.path.join(qmtest.source_root(), "introspection", "org.qmachine.QMachine1.Machine.xml")
        want = [p.get("name") for p in ET.parse(xml).getroot().iter("property")]
        self.assertIn("GuestAgentConnected", want)
        self.assertEqual(sorted(table("$__qmachinectl_properties")), sorted(want))


class CompletionTest(qmtest.QMTestCase):

    def setUp(self):
        super().setUp()
        self.create_none_machine("alpha")
        self.create_none_machine("beta-1")
        self.manager("CreateImage", GLib.Variant("(ssta{sv})", ("disk0", "qcow2", 1 << 20, {})), "(s)")
        # Only a daemon the line names can answer.
        self.bash_env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS="unix:path=/nonexistent")
        self.address = self.env.system_address

    def complete(self, *words, bash_completion=False):
        """COMPREPLY for the line qmachinectl WORDS..., the last word being
        completed. With bash_completion, bash-completion is loaded and the
        words are split as bash splits them (at = and :)."""
        line = " ".join([qmachinectl()] + list(words))
        if bash_completion:
            if not os.path.exists(BASH_COMPLETION):
                self.skipTest("bash-completion is not installed")
            split = re.findall(r"[=:]|[^\s=:]+", line) + ([""] if line.endswith(" ") else [])
            setup = "source %s; " % BASH_COMPLETION
        else:
            split = [qmachinectl()] + list(words)
            setup = ""
        code = (setup + "source %s; COMP_WORDS=(%s); COMP_CWORD=%d; COMP_LINE=%s; COMP_POINT=%d; "
                "_qmachinectl; printf '%%s\\n' \"${COMPREPLY[@]}\""
                % (shlex.quote(script()), " ".join(shlex.quote(w) for w in split), len(split) - 1,
                   shlex.quote(line), len(line)))
        return [w for w in bash(code, env=self.bash_env).splitlines() if w]

    def test_commands(self):
        self.assertEqual(self.complete("st"), ["status", "start", "stop"])
        self.assertIn("image-create", self.complete(""))
        self.assertEqual(self.complete("--session", "mig"), ["migrate"])

    def test_options(self):
        globals_ = [o for o in table("$__qmachinectl_global_options") if o.startswith("--")]
        self.assertEqual(sorted(self.complete("stop", "alpha", "--")),
                         sorted(["--timeout=", "--force"] + globals_))
        self.assertEqual(self.complete("create", "x", "--con"),
                         ["--console", "--console-device=", "--console-index="])
        self.assertEqual(self.complete("--ses"), ["--session"])
        # the value of an option is not a machine name
        self.assertEqual(self.complete("--address", self.address, "stop", "--timeout", ""), [])

    def test_machine_names_from_the_daemon_on_the_line(self):
        self.assertEqual(self.complete("--address", self.address, "start", ""), ["alpha", "beta-1"])
        self.assertEqual(self.complete("--address=%s" % self.address, "status", "b"), ["beta-1"])
        self.assertEqual(self.complete("status", "--address", self.address, "al"), ["alpha"])
        # only the first argument is a machine
        self.assertEqual(self.complete("--address", self.address, "qmp", "alpha", ""), [])
        # without a reachable daemon: nothing, quietly
        self.assertEqual(self.complete("start", ""), [])

    def test_image_names(self):
        self.assertEqual(self.complete("--address", self.address, "image-remove", ""), ["disk0"])
        self.assertEqual(self.complete("--address", self.address, "image-create", ""), [])

    def test_output_options(self):
        self.assertEqual(self.complete("list", "-o", "js"), ["json", "json-pretty"])
        self.assertEqual(self.complete("list", "--output", ""), ["table", "json", "json-pretty", "value"])
        # the value after "=": as one word, as bash splits it, and joined
        # again by bash-completion
        self.assertEqual(self.complete("list", "--output=v"), ["value"])
        self.assertEqual(self.complete("list", "--output", "=", "t"), ["table"])
        self.assertEqual(self.complete("list", "--json", "=", "p"), ["pretty"])
        self.assertEqual(self.complete("list", "--json=sh", bash_completion=True), ["short"])
        self.assertEqual(self.complete("list", "--no-"), ["--no-ask-password", "--no-legend", "--no-pager"])
        self.assertEqual(self.complete("wait", "alpha", "--no"),
                         ["--no-ask-password", "--no-legend", "--no-pager", "--no-kill"])
        self.assertEqual(self.complete("show", "alpha", "--v"), ["--version", "--value"])
        self.assertEqual(self.complete("--address", self.address, "show", "a"), ["alpha"])

    def test_property_names(self):
        self.assertEqual(self.complete("show", "alpha", "-p", "St"), ["State"])
        self.assertEqual(self.complete("show", "alpha", "--property", "Pe"), ["Persistent"])
        self.assertEqual(self.complete("show", "alpha", "--property=Gu"), ["GuestAgentConnected"])
        self.assertEqual(self.complete("show", "alpha", "--property", "=", "Ex"), ["ExitCode"])
        self.assertEqual(self.complete("show", "alpha", "--property=Co", bash_completion=True),
                         ["CommandLine", "Config", "ConsoleBytes"])
        # after the last comma of a list, the list kept
        self.assertEqual(self.complete("show", "alpha", "-p", "State,Pi"), ["State,Pid"])
        self.assertEqual(self.complete("show", "-p", "Name,UUID,Ow"), ["Name,UUID,Owner"])
        self.assertEqual(self.complete("show", "alpha", "-p", "Nope"), [])
        # the value of -p is not a machine name, the word after it is
        self.assertEqual(self.complete("--address", self.address, "show", "-p", "State", "al"), ["alpha"])

    def test_help_completes_commands(self):
        self.assertEqual(self.complete("help", "console"), ["console", "console-output"])

    def test_with_bash_completion_loaded(self):
        # bash splits --address=unix:path=... at = and :, bash-completion
        # joins the words again
        self.assertEqual(self.complete("--address=%s" % self.address, "status", "",
                                       bash_completion=True), ["alpha", "beta-1"])
        self.assertEqual(self.complete("stop", "alpha", "--ti", bash_completion=True), ["--timeout="])


if __name__ == "__main__":
    qmtest.main()
