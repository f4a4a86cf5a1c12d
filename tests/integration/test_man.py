#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The manual pages (man/) build, render without a warning, and say what
the programs and the interface have:

- qmachined(8), qmachinectl(1) and org.qmachine.QMachine1(5) render with
  `man --warnings -l` at 80 columns, in the C and C.UTF-8 locales, and pass
  `groff -ww -z`, without a single message; they are plain ASCII;
- every command of `qmachinectl --help` has its entry in qmachinectl(1),
  and every option of every command's `--help` is on the page;
- every option of `qmachined --help-all` is in qmachined(8);
- every method, property and signal of introspection/*.xml has its entry
  in org.qmachine.QMachine1(5), with its summary, and every argument of a
  method is named there.

Environment (tests/integration/meson.build sets them):
  QMACHINED_BUILD_ROOT   the build directory (its man/ holds the pages)
  QMACHINED_SOURCE_ROOT  the source tree
  QMACHINED, QMACHINECTL the built programs
"""

import os
import re
import subprocess
import unittest
import xml.etree.ElementTree as ET

DOC_NS = "{http://www.freedesktop.org/dbus/1.0/doc.dtd}"
PAGES = ("qmachined.8", "qmachinectl.1", "org.qmachine.QMachine1.5")
INTERFACES = ("org.qmachine.QMachine1.Manager.xml", "org.qmachine.QMachine1.Machine.xml")
# A definition list entry: 7 spaces of indentation, then the term.
ENTRY_INDENT = " " * 7


def env_path(var, default):
    return os.path.abspath(os.environ.get(var) or default)


SOURCE = env_path("QMACHINED_SOURCE_ROOT",
                  os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD = env_path("QMACHINED_BUILD_ROOT", os.path.join(SOURCE, "build"))
QMACHINECTL = env_path("QMACHINECTL", os.path.join(BUILD, "src", "qmachinectl", "qmachinectl"))
QMACHINED = env_path("QMACHINED", os.path.join(BUILD, "src", "qmachined", "qmachined"))


def run(argv, **env):
    e = dict(os.environ, **env)
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          stdin=subprocess.DEVNULL, env=e)


def page_path(page):
    return os.path.join(BUILD, "man", page)


def render(page, width=80, lang="C.UTF-8"):
    """(text, messages) of `man -l` with every warning on."""
    r = run(["man", "--warnings=w", "-l", page_path(page)], MANWIDTH=str(width), LANG=lang,
            LC_ALL=lang, MANPAGER="cat", PAGER="cat", MAN_KEEP_FORMATTING="")
    if r.returncode != 0:
        raise AssertionError("man -l %s failed: %s" % (page, r.stderr))
    return r.stdout, r.stderr


def entries(text):
    """The terms of the page's definition lists (the first word of each
    line indented by exactly 7 spaces, any trailing ( , stripped)."""
    found = set()
    for line in text.splitlines():
        if line.startswith(ENTRY_INDENT) and not line.startswith(ENTRY_INDENT + " "):
            word = line[len(ENTRY_INDENT):].split(" ")[0]
            found.add(re.split(r"[(,]", word)[0])
    return found


def help_lines(argv):
    r = run(argv)
    if r.returncode != 0:
        raise AssertionError("%s failed: %s" % (" ".join(argv), r.stderr))
    return r.stdout.splitlines()


def ctl_commands():
    """The commands of `qmachinectl --help`, in order."""
    lines = help_lines([QMACHINECTL, "--help"])
    start = lines.index("Commands:") + 1
    commands = []
    for line in lines[start:]:
        if not line.strip():
            break
        m = re.match(r"^  (\S+)", line)
        if m and not line.startswith("      "):
            commands.append(m.group(1))
    return commands


def long_options(lines):
    return {m.group(1) for line in lines for m in [re.match(r"^\s+(?:-\w, )?(--[a-z][a-z-]*)", line)] if m}


class ManTest(unittest.TestCase):

    def test_pages_render_without_warnings(self):
        for page in PAGES:
            for lang in ("C", "C.UTF-8"):
                with self.subTest(page=page, lang=lang):
                    text, messages = render(page, lang=lang)
                    self.assertEqual(messages, "")
                    self.assertGreater(len(text.splitlines()), 50)
            with self.subTest(page=page, check="groff"):
                r = run(["groff", "-ww", "-z", "-man", "-Tutf8", page_path(page)])
                self.assertEqual((r.returncode, r.stderr), (0, ""))
            with self.subTest(page=page, check="ascii"):
                with open(page_path(page), "rb") as f:
                    data = f.read()
                self.assertTrue(data.isascii(), "non-ASCII bytes in %s" % page)

    def test_header(self):
        # NAME, section and version, as man and apropos read them
        version = help_lines([QMACHINECTL, "--version"])[0].split()[-1]
        for page in PAGES:
            name, section = page.rsplit(".", 1)
            with self.subTest(page=page):
                text, _ = render(page)
                first = text.splitlines()[0]
                self.assertTrue(first.startswith("%s(%s)" % (name.upper(), section)), first)
                self.assertIn("qmachined %s" % version, text.splitlines()[-1])
                self.assertRegex(text, r"NAME\n {7}%s - \w" % re.escape(name))

    def test_every_qmachinectl_command(self):
        commands = ctl_commands()
        self.assertIn("list", commands)
        self.assertGreater(len(commands), 20)
        text, _ = render("qmachinectl.1")
        commands_section = text[text.index("\nCOMMANDS\n"):text.index("\nEXIT STATUS\n")]
        # "start NAME, launch NAME": both are entries
        documented = entries(commands_section) | {
            m.group(1) for m in re.finditer(r"^ {7}\S.*?, (\S+)", commands_section, re.M)}
        missing = [c for c in commands if c not in documented]
        self.assertEqual(missing, [], "commands missing in qmachinectl.1")

    def test_every_qmachinectl_option(self):
        text, _ = render("qmachinectl.1")
        tokens = set(re.findall(r"--[a-z][a-z-]*", text))
        wanted = {("", o) for o in long_options(help_lines([QMACHINECTL, "--help"]))}
        for command in ctl_commands():
            wanted |= {(command, o) for o in long_options(help_lines([QMACHINECTL, command, "--help"]))}
        self.assertIn(("stop", "--force"), wanted)
        missing = sorted((c, o) for c, o in wanted if o not in tokens)
        self.assertEqual(missing, [], "options missing in qmachinectl.1")

    def test_every_qmachined_option(self):
        text, _ = render("qmachined.8")
        options = long_options(help_lines([QMACHINED, "--help-all"]))
        self.assertIn("--max-machines", options)
        terms = {t for line in text.splitlines()
                 if line.startswith(ENTRY_INDENT) and not line.startswith(ENTRY_INDENT + " ")
                 for t in re.findall(r"--[a-z][a-z-]*", line)}
        missing = sorted(o for o in options if o not in terms and o != "--help-all")
        self.assertEqual(missing, [], "options missing in qmachined.8")

    def test_every_interface_member(self):
        text, _ = render("org.qmachine.QMachine1.5", width=200)
        flat = " ".join(text.split())
        documented = entries(text)
        for xml in INTERFACES:
            root = ET.parse(os.path.join(SOURCE, "introspection", xml)).getroot()
            for iface in root.findall("interface"):
                self.assertIn(iface.get("name"), text)
                for kind in ("method", "property", "signal"):
                    for member in iface.findall(kind):
                        name = member.get("name")
                        with self.subTest(interface=iface.get("name"), member=name):
                            self.assertIn(name, documented)
                            summary = member.find("%sdoc/%ssummary" % (DOC_NS, DOC_NS))
                            if summary is not None:
                                words = " ".join("".join(summary.itertext()).split())
                                self.assertIn(words[:40].replace("\u2026", "..."), flat)
                            for arg in member.findall("arg"):
                                self.assertRegex(flat, r"\b%s %s\b" % (re.escape(arg.get("type")),
                                                                       re.escape(arg.get("name"))))

    def test_api_page_is_generated(self):
        # a method added to the XML shows up on the page: the generator
        # reads the XML, nothing is copied by hand
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            xml = os.path.join(tmp, "x.xml")
            with open(xml, "w") as f:
                f.write('<node xmlns:doc="http://www.freedesktop.org/dbus/1.0/doc.dtd">'
                        '<interface name="org.qmachine.QMachine1.Test"><method name="Frobnicate">'
                        '<doc:doc><doc:summary>Frob *it* `now`_</doc:summary></doc:doc>'
                        '<arg name="how" type="s" direction="in"/></method></interface></node>')
            rst = os.path.join(tmp, "x.rst")
            r = run(["/usr/bin/python3", os.path.join(SOURCE, "man", "dbus-api-rst.py"), "9.9", rst, xml])
            self.assertEqual(r.returncode, 0, r.stderr)
            out = os.path.join(tmp, "x.5")
            r = run(["rst2man", "--halt=warning", rst, out])
            self.assertEqual(r.returncode, 0, r.stderr)
            r = run(["man", "-l", out], MANWIDTH="80", LANG="C.UTF-8", LC_ALL="C.UTF-8")
            self.assertIn("Frobnicate(in s how)", r.stdout)
            # markup characters of the XML's text come out as they are
            self.assertIn("Frob *it* `now`_", r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
