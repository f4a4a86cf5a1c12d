#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The introspection XML in introspection/ is the source of truth for the
shape of the API: it must be valid, fully documented, and say exactly what
the live daemon reports."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import (MACHINE_IFACE, MANAGER_IFACE, MANAGER_PATH,  # noqa: E402
                    GLib)

DOC_NS = "http://www.freedesktop.org/dbus/1.0/doc.dtd"
DOC = "{%s}doc" % DOC_NS
SUMMARY = "{%s}summary" % DOC_NS

STANDARD = {
    "org.freedesktop.DBus.Properties",
    "org.freedesktop.DBus.Introspectable",
    "org.freedesktop.DBus.Peer",
    "org.freedesktop.DBus.ObjectManager",
}


def xml_file(iface):
    return os.path.join(qmtest.source_root(), "introspection", iface + ".xml")


def shape(iface_el):
    """Methods, properties and signals of an <interface>, annotations and
    docs left out."""
    methods = {}
    for m in iface_el.findall("method"):
        args = []
        for a in m.findall("arg"):
            args.append((a.get("direction", "in"), a.get("name"), a.get("type")))
        methods[m.get("name")] = args
    props = {p.get("name"): (p.get("type"), p.get("access"))
             for p in iface_el.findall("property")}
    signals = {s.get("name"): [(a.get("name"), a.get("type")) for a in s.findall("arg")]
               for s in iface_el.findall("signal")}
    return methods, props, signals


def interfaces(xml_text):
    root = ET.fromstring(xml_text)
    return {i.get("name"): i for i in root.findall("interface")}


class IntrospectionTest(qmtest.QMTestCase):

    def introspect(self, path):
        return self.call(path, "org.freedesktop.DBus.Introspectable",
                         "Introspect", None, "(s)")

    def file_interface(self, iface):
        with open(xml_file(iface), "rb") as f:
            ifaces = interfaces(f.read())
        self.assertEqual(list(ifaces), [iface], "one interface per file")
        return ifaces[iface]

    def compare(self, iface, live_xml):
        live = interfaces(live_xml)
        self.assertIn(iface, live)
        f_methods, f_props, f_signals = shape(self.file_interface(iface))
        l_methods, l_props, l_signals = shape(live[iface])
        self.assertEqual(sorted(f_methods), sorted(l_methods), "method names")
        for name in f_methods:
            self.assertEqual(f_methods[name], l_methods[name], "arguments of " + name)
        self.assertEqual(f_props, l_props, "properties")
        self.assertEqual(sorted(f_signals), sorted(l_signals), "signal names")
        for name in f_signals:
            self.assertEqual(f_signals[name], l_signals[name], "arguments of " + name)
        return live

    def test_xmllint(self):
        files = [xml_file(MANAGER_IFACE), xml_file(MACHINE_IFACE)]
        r = subprocess.run(["xmllint", "--noout"] + files,
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_everything_documented(self):
        for iface in (MANAGER_IFACE, MACHINE_IFACE):
            el = self.file_interface(iface)
            items = [("interface", iface, el)]
            for kind in ("method", "property", "signal"):
                for m in el.findall(kind):
                    items.append((kind, m.get("name"), m))
                    for a in m.findall("arg"):
                        items.append(("argument", m.get("name") + "." + a.get("name"), a))
            for kind, name, node in items:
                doc = node.find(DOC)
                self.assertIsNotNone(doc, "%s %s has no doc:doc" % (kind, name))
                summary = doc.find(SUMMARY)
                self.assertTrue(summary is not None and "".join(summary.itertext()).strip(),
                                "%s %s has no doc:summary" % (kind, name))

    def test_every_argument_named(self):
        for iface in (MANAGER_IFACE, MACHINE_IFACE):
            methods, _props, signals = shape(self.file_interface(iface))
            for m, args in methods.items():
                for _d, name, _t in args:
                    self.assertTrue(name, "unnamed argument of %s" % m)
            for s, args in signals.items():
                for name, _t in args:
                    self.assertTrue(name, "unnamed argument of %s" % s)

    def test_manager_matches_daemon(self):
        live = self.compare(MANAGER_IFACE, self.introspect(MANAGER_PATH))
        for std in STANDARD:
            self.assertIn(std, live, "manager object lacks " + std)
        # Nothing else of ours is on the manager object.
        ours = [i for i in live if i.startswith("org.qmachine.")]
        self.assertEqual(ours, [MANAGER_IFACE])

    def test_machine_matches_daemon(self):
        path = self.create_machine("intro-1")
        live = self.compare(MACHINE_IFACE, self.introspect(path))
        ours = [i for i in live if i.startswith("org.qmachine.")]
        self.assertEqual(ours, [MACHINE_IFACE])
        for std in ("org.freedesktop.DBus.Properties",
                    "org.freedesktop.DBus.Introspectable",
                    "org.freedesktop.DBus.Peer"):
            self.assertIn(std, live)

    def test_change_signal_annotations(self):
        # sd-bus writes EmitsChangedSignal only when it is not "true".
        path = self.create_machine("intro-3")
        key = "org.freedesktop.DBus.Property.EmitsChangedSignal"

        def emits(iface_el):
            out = {}
            for p in iface_el.findall("property"):
                value = "true"
                for a in p.findall("annotation"):
                    if a.get("name") == key:
                        value = a.get("value")
                out[p.get("name")] = value
            return out
        for iface, obj in ((MANAGER_IFACE, MANAGER_PATH), (MACHINE_IFACE, path)):
            live = interfaces(self.introspect(obj))[iface]
            self.assertEqual(emits(self.file_interface(iface)), emits(live), iface)

    def test_properties_match_getall(self):
        # The types the daemon really sends match the XML.
        path = self.create_machine("intro-2")
        for iface, obj in ((MANAGER_IFACE, MANAGER_PATH), (MACHINE_IFACE, path)):
            _m, props, _s = shape(self.file_interface(iface))
            r = self.conn.call_sync(qmtest.BUS_NAME, obj, qmtest.PROPS_IFACE, "GetAll",
                                    GLib.Variant("(s)", (iface,)),
                                    GLib.VariantType.new("(a{sv})"), 0, 10000, None)
            got = r.get_child_value(0)
            types = {}
            for i in range(got.n_children()):
                entry = got.get_child_value(i)
                types[entry.get_child_value(0).get_string()] = \
                    entry.get_child_value(1).get_variant().get_type_string()
            # Explicit properties (they may hold secrets) are only given
            # when asked for by name.
            explicit = {p.get("name") for p in self.file_interface(iface).findall("property")
                        for a in p.findall("annotation")
                        if a.get("name") == "org.freedesktop.systemd1.Explicit"}
            self.assertEqual(types, {k: v[0] for k, v in props.items() if k not in explicit})
            if iface == MACHINE_IFACE:
                self.assertEqual(explicit, {"Config", "CommandLine"})


if __name__ == "__main__":
    qmtest.main()
