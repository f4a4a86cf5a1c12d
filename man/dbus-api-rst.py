#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Write the reStructuredText of org.qmachine.QMachine1(5), the D-Bus API,
from the introspection XML, so that the manual page cannot drift from it.

    dbus-api-rst.py VERSION OUTPUT.rst INTERFACE.xml...

Every interface of the files, in order: its <doc:doc> text, then each
method with its arguments, each property with its type, access and
change notification, each signal with its arguments, each with its own
<doc:doc> text. rst2man turns the result into the page (man/meson.build).
"""

import re
import sys
import xml.etree.ElementTree as ET

DOC_NS = "{http://www.freedesktop.org/dbus/1.0/doc.dtd}"
BUS_NAME = "org.qmachine.QMachine1"
CHANGED = "org.freedesktop.DBus.Property.EmitsChangedSignal"
EXPLICIT = "org.freedesktop.systemd1.Explicit"

# What each value of EmitsChangedSignal other than the default "true"
# means to a client.
CHANGED_TEXT = {
    "invalidates": "PropertiesChanged without the value",
    "const": "constant",
    "false": "no PropertiesChanged",
}
ACCESS_TEXT = {"read": "read-only", "write": "write-only", "readwrite": "read-write"}

HEADER = """\
{rule}
{title}
{rule}

---------------------------------------------
the D-Bus interface of qmachined
---------------------------------------------

:Manual section: 5
:Manual group: qmachined
:Version: qmachined {version}

SYNOPSIS
========

| Bus name: ``{bus}``, on the system bus
|     (on the session bus with ``qmachined --session``)
| Manager object: ``/org/qmachine/QMachine1``
| Machine objects: ``/org/qmachine/QMachine1/machine/LABEL``
| Interfaces:
{interfaces}

DESCRIPTION
===========

**qmachined**\\(8) runs and supervises QEMU virtual machines and is
controlled over D-Bus only. This page describes its interfaces, method by
method, property by property and signal by signal. It is generated from the
introspection XML that is installed in ``/usr/share/dbus-1/interfaces``
(one file per interface), so both say the same; the introspection data a
running daemon returns describes the same interfaces without the
documentation.

Besides the interfaces below, the manager object implements
``org.freedesktop.DBus.ObjectManager``, and every object
``org.freedesktop.DBus.Properties``, ``org.freedesktop.DBus.Introspectable``
and ``org.freedesktop.DBus.Peer``.

In the signatures below, each argument is written as its direction
(**in** or **out**), its D-Bus type signature and its name. A property
announces each change with ``PropertiesChanged`` and its new value, unless
its heading says otherwise: *constant*, *PropertiesChanged without the
value* (read it again), *only when asked for by name* (left out of
``GetAll``, ``GetManagedObjects`` and ``InterfacesAdded``).
"""

FOOTER = """\
EXAMPLES
========

List the machines, then ask one of them for its state::

    busctl call org.qmachine.QMachine1 /org/qmachine/QMachine1 \\
        org.qmachine.QMachine1.Manager ListMachines
    busctl get-property org.qmachine.QMachine1 \\
        /org/qmachine/QMachine1/machine/vm_2d1 \\
        org.qmachine.QMachine1.Machine State

Generate a C client with GDBus::

    gdbus-codegen --interface-prefix org.qmachine.QMachine1. \\
        --c-namespace Qm --generate-c-code qm-client \\
        /usr/share/dbus-1/interfaces/org.qmachine.QMachine1.*.xml

SEE ALSO
========

**qmachined**\\(8), **qmachinectl**\\(1), **busctl**\\(1), **gdbus-codegen**\\(1),
**polkit**\\(8)
"""

# The page is ASCII, so that it renders on any terminal and in any locale
# (groff's ascii device has no glyph for most of Unicode).
ASCII = {"\u2026": "...", "\u2013": "-", "\u2014": "--", "\u2018": "'", "\u2019": "'",
         "\u201c": '"', "\u201d": '"', "\u2192": "->", "\u00d7": "x", "\u00a0": " "}


def to_ascii(text):
    return "".join(c if ord(c) < 128 else ASCII.get(c, "<U+%04X>" % ord(c)) for c in text)


# Characters that are markup in running reStructuredText.
_SPECIAL = re.compile(r"([\\*`|_\[\]])")


def escape(text):
    """TEXT as plain running text: no character of it is markup."""
    return _SPECIAL.sub(r"\\\1", text)


def literal(text):
    return "``%s``" % text.replace("``", "` `") if text else ""


def inline(elem):
    """The text of a <doc:para> or <doc:summary>, with <doc:tt> as literal
    and <doc:ref> in italics, white space collapsed."""
    parts = [escape(elem.text or "")]
    for child in elem:
        tag = child.tag.replace(DOC_NS, "")
        inner = " ".join("".join(child.itertext()).split())
        if tag == "tt":
            parts.append(" %s " % literal(inner))
        elif tag == "ref":
            parts.append(" *%s* " % escape(inner) if inner else "")
        else:
            parts.append(escape(inner))
        parts.append(escape(child.tail or ""))
    text = " ".join("".join(parts).split())
    # ``x`` must stand apart from words, but not from punctuation after it
    text = re.sub(r"(``|\*) ([.,;:)])", r"\1\2", text)
    text = re.sub(r"\( (``|\*)", r"(\1", text)
    return block_safe(text)


def block_safe(text):
    """A paragraph that reStructuredText reads as a paragraph, not as a
    list item, a comment or the start of a literal block."""
    if re.match(r"([-+*#]|\d+[.)]|[A-Za-z][.)]|\.\.)(\s|$)", text):
        text = "\\" + text
    if text.endswith("::"):
        text = text[:-2] + "\\:\\:"
    return text


def doc_paragraphs(node):
    """The paragraphs of NODE's <doc:doc>: its summary, then its
    description's paragraphs."""
    doc = node.find(DOC_NS + "doc")
    if doc is None:
        return []
    paras = []
    summary = doc.find(DOC_NS + "summary")
    if summary is not None:
        paras.append(inline(summary))
    description = doc.find(DOC_NS + "description")
    if description is not None:
        for para in description.findall(DOC_NS + "para"):
            paras.append(inline(para))
    return [p for p in paras if p]


def indent(lines, by="    "):
    return [by + line if line else "" for line in lines]


def body(paras):
    out = []
    for p in paras:
        out += [p, ""]
    return out


def annotations(node):
    return {a.get("name"): a.get("value") for a in node.findall("annotation")}


def args_section(args, with_direction):
    """A definition list of the arguments that have documentation."""
    out = []
    for a in args:
        paras = doc_paragraphs(a)
        if not paras:
            continue
        what = [a.get("type")]
        if with_direction:
            what.insert(0, a.get("direction", "in"))
        out.append("*%s* (%s)" % (escape(a.get("name", "")), ", ".join(what)))
        out += indent(body(paras))
    return out


def signature(name, args, with_direction):
    parts = []
    for a in args:
        words = [a.get("type"), a.get("name", "")]
        if with_direction:
            words.insert(0, a.get("direction", "in"))
        parts.append(" ".join(w for w in words if w))
    return "%s(%s)" % (name, ", ".join(parts))


def method_section(method):
    args = method.findall("arg")
    out = ["**%s**" % escape(signature(method.get("name"), args, True))]
    out += indent(body(doc_paragraphs(method)) + args_section(args, True))
    return out


def signal_section(signal):
    args = signal.findall("arg")
    out = ["**%s**" % escape(signature(signal.get("name"), args, False))]
    out += indent(body(doc_paragraphs(signal)) + args_section(args, False))
    return out


def property_section(prop):
    ann = annotations(prop)
    access = prop.get("access", "read")
    facts = [prop.get("type"), ACCESS_TEXT.get(access, access)]
    changed = ann.get(CHANGED, "true")
    if changed != "true":
        facts.append(CHANGED_TEXT.get(changed, changed))
    if ann.get(EXPLICIT) == "true":
        facts.append("only when asked for by name")
    out = ["**%s** (%s)" % (escape(prop.get("name")), escape("; ".join(facts)))]
    out += indent(body(doc_paragraphs(prop)))
    return out


def heading(text, char):
    return [text, char * len(text), ""]


def interface_section(iface):
    name = iface.get("name")
    out = heading(name, "=")
    out += body(doc_paragraphs(iface))
    for kind, title, section in (("method", "Methods", method_section),
                                 ("property", "Properties", property_section),
                                 ("signal", "Signals", signal_section)):
        members = iface.findall(kind)
        if not members:
            continue
        out += heading("%s of %s" % (title, name.rsplit(".", 1)[-1]), "-")
        for m in members:
            out += section(m) + [""]
    return out


def render(version, paths):
    interfaces = []
    for path in paths:
        interfaces += ET.parse(path).getroot().findall("interface")
    title = BUS_NAME
    rule = "=" * len(title)
    text = HEADER.format(rule=rule, title=title, version=version, bus=BUS_NAME,
                         interfaces="\n".join("|     " + literal(i.get("name")) for i in interfaces))
    lines = [""]
    for iface in interfaces:
        lines += interface_section(iface)
    return to_ascii(text + "\n".join(lines).rstrip("\n") + "\n\n" + FOOTER)


def main(argv):
    if len(argv) < 4:
        print("usage: %s VERSION OUTPUT.rst INTERFACE.xml..." % argv[0], file=sys.stderr)
        return 2
    text = render(argv[1], argv[3:])
    with open(argv[2], "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
