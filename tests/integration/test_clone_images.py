#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""CloneMachine (a copy of a definition, never of runtime state) and the
disk images of the Manager: CreateImage, CheckImage, RemoveImage and
ListImages, with the real qemu-img."""

import contextlib
import datetime
import json
import os
import re
import struct
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import INVALID_ARGS, GLib, err, machine_path  # noqa: E402

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
PIB = 1024 * 1024 * GIB

# Runtime properties a fresh definition has (API.md, Machine properties).
FRESH = {
    "State": "defined",
    "RunState": "",
    "Pid": 0,
    "EventSequence": 0,
    "LaunchTimestamp": 0,
    "KernelCrash": "",
}


def qcow2_l2_entry_offset(f):
    """File offset of the first L2 entry of a qcow2 image (guest offset 0)."""
    f.seek(0)
    hdr = f.read(72)
    l1 = struct.unpack(">Q", hdr[40:48])[0]
    f.seek(l1)
    l1e = struct.unpack(">Q", f.read(8))[0]
    return l1e & 0x00fffffffffffe00


def qcow2_make_leak(path):
    """Unmap guest cluster 0: its data cluster keeps refcount 1 but nothing
    refers to it any more (qemu-img check: leaked cluster, exit 3)."""
    with open(path, "r+b") as f:
        off = qcow2_l2_entry_offset(f)
        f.seek(off)
        f.write(b"\0" * 8)


def qcow2_make_corrupt(path):
    """Set the refcount of the data cluster of guest offset 0 to 0 while
    the L2 table still refers to it (qemu-img check: ERROR, exit 2)."""
    with open(path, "r+b") as f:
        f.seek(0)
        hdr = f.read(104)
        cluster_size = 1 << struct.unpack(">I", hdr[20:24])[0]
        if struct.unpack(">I", hdr[4:8])[0] >= 3:
            assert struct.unpack(">I", hdr[96:100])[0] == 4, "16-bit refcounts expected"
        rt = struct.unpack(">Q", hdr[48:56])[0]
        f.seek(rt)
        rb = struct.unpack(">Q", f.read(8))[0]
        off = qcow2_l2_entry_offset(f)
        f.seek(off)
        data = struct.unpack(">Q", f.read(8))[0] & 0x00fffffffffffe00
        assert data, "guest cluster 0 is not allocated"
        f.seek(rb + 2 * (data // cluster_size))
        f.write(b"\0\0")


def qemu_io_write(path, fmt, length):
    subprocess.run(["qemu-io", "-f", fmt, "-c", "write -P 0x5a 0 %d" % length, path],
                   check=True, capture_output=True)


def qemu_img_info(path):
    out = subprocess.run(["qemu-img", "info", "--output=json", "-U", path],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def qemu_img_chain(path, fmt):
    """The files qemu-img opens for the image at path read as fmt."""
    out = subprocess.run(["qemu-img", "info", "--output=json", "-U", "--backing-chain",
                          "-f", fmt, path],
                         check=True, capture_output=True, text=True).stdout
    return [i["filename"] for i in json.loads(out)]


def qcow2_header_naming(tmp_dir, backing):
    """The first bytes of a qcow2 image whose backing file is the host file
    backing: what a guest can write at the start of its raw disk."""
    made = os.path.join(tmp_dir, "guest-made.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=512",
                    "-b", backing, "-F", "raw", made, "1M"], check=True)
    with open(made, "rb") as f:
        data = f.read()
    os.unlink(made)
    assert data.startswith(b"QFI\xfb") and len(data) < 64 * KIB
    return data


def write_at_start(path, data):
    """Overwrite the start of a file, as a guest writes its disk."""
    with open(path, "r+b") as f:
        f.write(data)


class CloneTest(qmtest.QMTestCase):

    def clone(self, name, new_name, overrides=None):
        return self.manager("CloneMachine",
                            GLib.Variant("(ssa{sv})",
                                         (name, new_name,
                                          qmtest.config_variant(overrides or {}))),
                            "(o)")

    def clone_raw(self, name, new_name, overrides):
        """Overrides as a dict of GLib.Variant values, sent as they are."""
        return self.manager("CloneMachine",
                            GLib.Variant("(ssa{sv})", (name, new_name, overrides)), "(o)")

    def assert_fresh(self, path):
        props = self.get_all(path, qmtest.MACHINE_IFACE)
        for key, value in FRESH.items():
            self.assertEqual(props[key], value, key)
        self.assertEqual(self.get_events(path), [])
        self.assertEqual(self.machine(path, "GetLog", None, "(s)"), "")
        return props

    def test_clone_copies_config_not_state(self):
        u = "3e0f1c2a-9b7d-4c61-8f0e-1a2b3c4d5e6f"
        src = self.create_machine("src", args=qmtest.pc_args(), nics=2, uuid=u,
                                  description="the original", qmp_timeout=7.5)
        src_macs = self.mprop(src, "MacAddresses")
        self.assertEqual(len(src_macs), 2)
        # Give the source runtime state: a run with events and a log.
        self.launch(src)
        self.machine(src, "Reset", None, "()")
        self.wait_event(src, [("RESET", "")], 0, 5)
        self.assertGreater(self.mprop(src, "EventSequence"), 0)
        src_pid = self.mprop(src, "Pid")
        src_config = self.mprop(src, "Config")

        mgr_sigs = self.record(qmtest.MANAGER_IFACE, "MachineNew", qmtest.MANAGER_PATH)
        path = self.clone("src", "copy")
        self.assertEqual(path, machine_path("copy"))
        self.assertTrue(mgr_sigs.wait(lambda s: len(s) >= 1))
        self.assertEqual(mgr_sigs.args("MachineNew"), [("copy", path)])
        self.assertEqual(self.manager_prop("MachineCount"), 2)
        self.assertEqual(self.manager("GetMachine", GLib.Variant("(s)", ("copy",)), "(o)"),
                         path)

        props = self.assert_fresh(path)
        self.assertEqual(props["Name"], "copy")
        self.assertEqual(self.mprop(path, "CommandLine"), [])
        # A new random UUID, so other MACs.
        new_uuid = props["UUID"]
        self.assertEqual(str(uuid.UUID(new_uuid)), new_uuid.lower())
        self.assertNotEqual(new_uuid.lower(), u)
        macs = props["MacAddresses"]
        self.assertEqual(len(macs), 2)
        self.assertFalse(set(m.lower() for m in macs) & set(m.lower() for m in src_macs),
                         (macs, src_macs))
        # The config is the source's, except the uuid.
        config = self.mprop(path, "Config")
        self.assertEqual(config["uuid"], new_uuid)
        self.assertEqual({k: v for k, v in config.items() if k != "uuid"},
                         {k: v for k, v in src_config.items() if k != "uuid"})
        self.assertEqual(config["description"], "the original")
        self.assertEqual(config["qmp-timeout"], 7.5)
        self.assertEqual(config["nics"], 2)

        # The source is untouched.
        self.assertEqual(self.mprop(src, "UUID"), u)
        self.assertEqual(self.mprop(src, "MacAddresses"), src_macs)
        self.assertEqual(self.mprop(src, "Pid"), src_pid)
        self.assertEqual(self.mprop(src, "State"), "running")

        # The clone launches next to its source, with its own identity.
        self.launch(path)
        self.assertEqual(self.mprop(path, "State"), "running")
        self.assertNotEqual(self.mprop(path, "Pid"), src_pid)
        self.assertEqual(self.command(path, "query-uuid"), {"UUID": new_uuid})
        cmdline = " ".join(self.mprop(path, "CommandLine")).lower()
        for mac in macs:
            self.assertIn(mac.lower(), cmdline)
        for mac in src_macs:
            self.assertNotIn(mac.lower(), cmdline)
        self.assertEqual(self.command(src, "query-uuid"), {"UUID": u})
        self.kill(path)
        self.kill(src)

    def test_clone_overrides(self):
        self.create_none_machine("base", description="base", qmp_timeout=3.0)
        u = "9d8c7b6a-5f4e-4d3c-8b2a-19f8e7d6c5b4"
        path = self.clone("base", "over", {"description": "changed", "uuid": u,
                                           "persistent": True})
        config = self.mprop(path, "Config")
        self.assertEqual(config["description"], "changed")
        self.assertEqual(config["uuid"], u)
        self.assertEqual(config["persistent"], True)
        self.assertEqual(config["qmp-timeout"], 3.0)
        self.assertEqual(config["args"], qmtest.none_args())
        self.assertEqual(self.mprop(path, "UUID"), u)
        self.assertEqual(self.mprop(path, "Persistent"), True)
        # The source keeps its own values.
        base = self.mprop(machine_path("base"), "Config")
        self.assertEqual(base["description"], "base")
        self.assertEqual(base["persistent"], False)
        self.assertNotEqual(base["uuid"], u)

        # Same UUID, same MACs: the MACs follow the UUID, not the name.
        src = self.create_machine("nic-src", args=qmtest.pc_args(), nics=1)
        same = self.clone("nic-src", "nic-same", {"uuid": self.mprop(src, "UUID")})
        self.assertEqual(self.mprop(same, "MacAddresses"), self.mprop(src, "MacAddresses"))
        # More NICs by override.
        more = self.clone("nic-src", "nic-more", {"nics": 3})
        self.assertEqual(len(self.mprop(more, "MacAddresses")), 3)

        # A clone of a clone; the clone launches.
        again = self.clone("over", "over2")
        self.assertEqual(self.mprop(again, "Config")["description"], "changed")
        self.assertNotEqual(self.mprop(again, "UUID"), u)
        self.launch(again)
        self.assertEqual(self.mprop(again, "State"), "running")
        self.assertEqual(self.command(again, "query-status")["status"], "running")
        self.shutdown(again, False, 10)
        self.assertEqual(self.mprop(again, "State"), "stopped")

    def test_clone_generated_name(self):
        self.create_none_machine("gen-src")
        path = self.clone("gen-src", "")
        name = self.mprop(path, "Name")
        m = re.match(r"^vm-(\d{8})-(\d{6})-[A-Za-z0-9]{4}$", name)
        self.assertTrue(m, name)
        stamp = datetime.datetime.strptime(m.group(1) + m.group(2), "%Y%m%d%H%M%S")
        now_local = datetime.datetime.now()
        now_utc = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        self.assertTrue(min(abs((stamp - now_local).total_seconds()),
                            abs((stamp - now_utc).total_seconds())) < 120, name)
        self.assertEqual(path, machine_path(name))
        path2 = self.clone("gen-src", "")
        self.assertNotEqual(path, path2)
        self.assertEqual(self.manager_prop("MachineCount"), 3)
        self.launch(path)
        self.assertEqual(self.mprop(path, "State"), "running")

    def test_clone_errors(self):
        src = self.create_none_machine("orig", description="keep")
        self.create_none_machine("taken")
        e = self.expect_error(err("NoSuchMachine"), self.clone, "nope", "new")
        self.assertIn("nope", e.text)
        e = self.expect_error(err("MachineExists"), self.clone, "orig", "taken")
        self.assertTrue(e.text)
        self.expect_error(err("MachineExists"), self.clone, "orig", "orig")
        for bad in ("../x", "a/b", "-x", ".x", "a b", "a" * 65):
            with self.subTest(new_name=bad):
                self.expect_error(INVALID_ARGS, self.clone, "orig", bad)
        # Overrides are checked like CreateMachine's config.
        for key in ("bogus", "Binary", "qmp_timeout"):
            with self.subTest(key=key):
                e = self.expect_error(INVALID_ARGS, self.clone_raw, "orig", "new",
                                      {key: GLib.Variant("s", "x")})
                self.assertIn(key, e.text)
        wrong = {"s": GLib.Variant("i", 1), "as": GLib.Variant("s", "-S"),
                 "b": GLib.Variant("s", "true"), "u": GLib.Variant("s", "2"),
                 "d": GLib.Variant("s", "1.5"), "aq": GLib.Variant("au", [22])}
        for key, t in qmtest.CONFIG_TYPES.items():
            with self.subTest(key=key):
                e = self.expect_error(INVALID_ARGS, self.clone_raw, "orig", "new",
                                      {key: wrong[t]})
                self.assertIn(key, e.text)
        e = self.expect_error(INVALID_ARGS, self.clone_raw, "orig", "new",
                              {"uuid": GLib.Variant("s", "not-a-uuid")})
        self.assertIn("uuid", e.text)
        e = self.expect_error(INVALID_ARGS, self.clone_raw, "orig", "new",
                              {"nics": GLib.Variant("i", 1)})
        self.assertIn("nics", e.text)
        # An unknown source with a bad override: either error is fine, but
        # nothing is created.
        with self.assertRaises(qmtest.DBusCallError):
            self.clone_raw("nope", "new", {"bogus": GLib.Variant("s", "x")})
        self.expect_error(err("NoSuchMachine"), self.manager, "GetMachine",
                          GLib.Variant("(s)", ("new",)), "(o)")
        self.assert_daemon_answers(2)
        self.assertEqual(self.mprop(src, "Config")["description"], "keep")


class ImagesTest(qmtest.QMTestCase):

    def create_image(self, name, fmt, size, options=None):
        return self.manager("CreateImage",
                            GLib.Variant("(ssta{sv})", (name, fmt, size, options or {})),
                            "(s)")

    def check_image(self, name):
        return self.manager("CheckImage", GLib.Variant("(s)", (name,)), "(ss)")

    def remove_image(self, name):
        return self.manager("RemoveImage", GLib.Variant("(s)", (name,)), "()")

    def list_images(self):
        return self.manager("ListImages", None, "(a(sst))")

    def image_dir(self):
        return self.manager_prop("ImageDirectory")

    def test_image_directory(self):
        d = self.image_dir()
        self.assertEqual(os.path.realpath(d),
                         os.path.realpath(self.env.path("state", "images")))
        self.assertEqual(self.list_images(), [])

    def test_create_list_remove(self):
        d = self.image_dir()
        p = self.create_image("disk.qcow2", "qcow2", 64 * MIB)
        self.assertEqual(p, os.path.join(d, "disk.qcow2"))
        self.assertTrue(os.path.isfile(p))
        info = qemu_img_info(p)
        self.assertEqual(info["format"], "qcow2")
        self.assertEqual(info["virtual-size"], 64 * MIB)
        self.assertEqual(info["cluster-size"], 64 * KIB)

        r = self.create_image("disk.raw", "raw", 3 * MIB + 512)
        self.assertEqual(r, os.path.join(d, "disk.raw"))
        self.assertEqual(os.path.getsize(r), 3 * MIB + 512)
        self.assertEqual(qemu_img_info(r)["format"], "raw")

        small = self.create_image("small.qcow2", "qcow2", 1 * MIB,
                                  {"cluster-size": GLib.Variant("t", 4096)})
        self.assertEqual(qemu_img_info(small)["cluster-size"], 4096)
        for cs in (512, 2 * MIB):
            with self.subTest(cluster_size=cs):
                p2 = self.create_image("cs-%d.qcow2" % cs, "qcow2", 4 * MIB,
                                       {"cluster-size": GLib.Variant("t", cs)})
                self.assertEqual(qemu_img_info(p2)["cluster-size"], cs)
                self.remove_image("cs-%d.qcow2" % cs)

        # A name with a leading letter, dots inside, a space: a file name.
        self.create_image("A b.img", "raw", 4096)
        # 1 PiB is the largest size; qcow2 only stores a header for it.
        self.create_image("huge.qcow2", "qcow2", PIB)

        # Sorted by name; qcow2 size from the header, raw = file size.
        # Files qmachined did not make count too, with no format (never a
        # guessed one) and their file size.
        with open(os.path.join(d, "other.bin"), "wb") as f:
            f.write(b"x" * 1000)
        self.assertEqual(self.list_images(), [
            ("A b.img", "raw", 4096),
            ("disk.qcow2", "qcow2", 64 * MIB),
            ("disk.raw", "raw", 3 * MIB + 512),
            ("huge.qcow2", "qcow2", PIB),
            ("other.bin", "", 1000),
            ("small.qcow2", "qcow2", 1 * MIB),
        ])
        # Writing data into a qcow2 file does not change its virtual size.
        qemu_io_write(p, "qcow2", MIB)
        self.assertIn(("disk.qcow2", "qcow2", 64 * MIB), self.list_images())

        self.assertIsNone(self.remove_image("disk.qcow2"))
        self.assertFalse(os.path.exists(p))
        self.remove_image("other.bin")
        self.remove_image("A b.img")
        self.assertEqual([i[0] for i in self.list_images()],
                         ["disk.raw", "huge.qcow2", "small.qcow2"])
        e = self.expect_error(err("NoSuchImage"), self.remove_image, "disk.qcow2")
        self.assertIn("disk.qcow2", e.text)
        self.expect_error(err("NoSuchImage"), self.check_image, "disk.qcow2")
        # Removed names can be created again.
        self.create_image("disk.qcow2", "qcow2", MIB)
        self.assertIn(("disk.qcow2", "qcow2", MIB), self.list_images())

    def test_backing_file(self):
        base = self.create_image("base.qcow2", "qcow2", 8 * MIB)
        qemu_io_write(base, "qcow2", 64 * KIB)
        over = self.create_image("overlay.qcow2", "qcow2", 8 * MIB,
                                 {"backing-file": GLib.Variant("s", "base.qcow2")})
        info = qemu_img_info(over)
        self.assertEqual(info["format"], "qcow2")
        self.assertEqual(os.path.basename(info["backing-filename"]), "base.qcow2")
        self.assertEqual(info.get("backing-filename-format"), "qcow2")
        self.assertEqual(info["virtual-size"], 8 * MIB)
        # The overlay reads the base's data.
        out = subprocess.run(["qemu-io", "-f", "qcow2", "-c", "read -P 0x5a 0 64k", over],
                             capture_output=True, text=True, cwd=self.image_dir())
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertNotIn("Pattern verification failed", out.stdout)
        self.assertEqual(self.check_image("overlay.qcow2")[0], "ok")

        # A raw base works too.
        self.create_image("base.raw", "raw", MIB)
        over2 = self.create_image("overlay2.qcow2", "qcow2", MIB,
                                  {"backing-file": GLib.Variant("s", "base.raw")})
        self.assertEqual(os.path.basename(qemu_img_info(over2)["backing-filename"]),
                         "base.raw")

        e = self.expect_error(err("NoSuchImage"), self.create_image, "o3.qcow2", "qcow2",
                              MIB, {"backing-file": GLib.Variant("s", "missing.qcow2")})
        self.assertIn("missing.qcow2", e.text)
        self.assertNotIn("o3.qcow2", [i[0] for i in self.list_images()])
        # A backing file is an image name, never a path.
        for bad in ("/etc/passwd", "../base.qcow2", "sub/base.qcow2"):
            with self.subTest(backing=bad):
                with self.assertRaises(qmtest.DBusCallError) as cm:
                    self.create_image("o4.qcow2", "qcow2", MIB,
                                      {"backing-file": GLib.Variant("s", bad)})
                self.assertIn(cm.exception.name, (INVALID_ARGS, err("NoSuchImage")))
        self.assertEqual(sorted(os.listdir(self.image_dir())),
                         ["base.qcow2", "base.raw", "overlay.qcow2", "overlay2.qcow2"])

    def test_create_errors(self):
        d = self.image_dir()
        self.create_image("exists.qcow2", "qcow2", MIB)
        before = os.path.getmtime(os.path.join(d, "exists.qcow2"))
        e = self.expect_error(err("ImageExists"), self.create_image, "exists.qcow2",
                              "qcow2", 2 * MIB)
        self.assertIn("exists.qcow2", e.text)
        self.expect_error(err("ImageExists"), self.create_image, "exists.qcow2", "raw", MIB)
        self.assertEqual(os.path.getmtime(os.path.join(d, "exists.qcow2")), before)
        self.assertEqual(self.list_images(), [("exists.qcow2", "qcow2", MIB)])

        bad_names = ["a/b", "/tmp/x.qcow2", "../x", ".hidden", ".", "..", "",
                     "x\n", "tab\there", "bell\x07", "del\x7f"]
        for name in bad_names:
            with self.subTest(name=name):
                self.expect_error(INVALID_ARGS, self.create_image, name, "qcow2", MIB)
        for fmt in ("vmdk", "QCOW2", "", "qcow", "vdi", "raw,size=1"):
            with self.subTest(fmt=fmt):
                e = self.expect_error(INVALID_ARGS, self.create_image, "f.img", fmt, MIB)
                self.assertTrue(e.text)
        for size in (0, PIB + 1, 2 ** 64 - 1):
            with self.subTest(size=size):
                self.expect_error(INVALID_ARGS, self.create_image, "s.img", "raw", size)
        bad_options = [
            {"cluster-size": GLib.Variant("t", 1000)},        # not a power of two
            {"cluster-size": GLib.Variant("t", 256)},         # too small
            {"cluster-size": GLib.Variant("t", 4 * MIB)},     # too large
            {"cluster-size": GLib.Variant("u", 65536)},       # wrong type
            {"cluster-size": GLib.Variant("s", "64k")},
            {"backing-file": GLib.Variant("i", 1)},
            {"bogus": GLib.Variant("s", "x")},
        ]
        for options in bad_options:
            with self.subTest(options=options):
                e = self.expect_error(INVALID_ARGS, self.create_image, "o.qcow2", "qcow2",
                                      MIB, options)
                self.assertIn(list(options)[0], e.text)
        # cluster-size is a qcow2 option.
        self.expect_error(INVALID_ARGS, self.create_image, "o.raw", "raw", MIB,
                          {"cluster-size": GLib.Variant("t", 65536)})
        # Nothing was made by any of them, here or elsewhere.
        self.assertEqual(os.listdir(d), ["exists.qcow2"])
        self.assertFalse(os.path.exists(self.env.path("state", "x.qcow2")))
        self.assertEqual(self.list_images(), [("exists.qcow2", "qcow2", MIB)])
        for method in ("CheckImage", "RemoveImage"):
            for name in ("a/b", "../images/exists.qcow2", ".hidden", ""):
                with self.subTest(method=method, name=name):
                    with self.assertRaises(qmtest.DBusCallError) as cm:
                        self.manager(method, GLib.Variant("(s)", (name,)))
                    self.assertIn(cm.exception.name, (INVALID_ARGS, err("NoSuchImage")))
        self.assertEqual(os.listdir(d), ["exists.qcow2"])
        self.assert_daemon_answers(0)

    def test_cluster_size_zero(self):
        """0 is not a power of two from 512 to 2 MiB: refused, not taken
        as "the default"."""
        e = self.expect_error(INVALID_ARGS, self.create_image, "z.qcow2", "qcow2", MIB,
                              {"cluster-size": GLib.Variant("t", 0)})
        self.assertIn("cluster-size", e.text)
        self.assertEqual(self.list_images(), [])

    def test_check(self):
        d = self.image_dir()
        self.create_image("fresh.qcow2", "qcow2", 16 * MIB)
        verdict, report = self.check_image("fresh.qcow2")
        self.assertEqual(verdict, "ok", report)
        self.assertIn("No errors were found", report)

        self.create_image("plain.raw", "raw", MIB)
        verdict, report = self.check_image("plain.raw")
        self.assertEqual(verdict, "unsupported", report)

        # Written, still fine.
        p = self.create_image("data.qcow2", "qcow2", 16 * MIB)
        qemu_io_write(p, "qcow2", MIB)
        self.assertEqual(self.check_image("data.qcow2")[0], "ok")

        # A leaked cluster: exit 3.
        p = self.create_image("leaky.qcow2", "qcow2", 16 * MIB)
        qemu_io_write(p, "qcow2", MIB)
        qcow2_make_leak(p)
        verdict, report = self.check_image("leaky.qcow2")
        self.assertEqual(verdict, "leaks", report)
        self.assertIn("leaked", report)

        # A referenced cluster with refcount 0: exit 2.
        p = self.create_image("broken.qcow2", "qcow2", 16 * MIB)
        qemu_io_write(p, "qcow2", MIB)
        qcow2_make_corrupt(p)
        verdict, report = self.check_image("broken.qcow2")
        self.assertEqual(verdict, "corrupt", report)
        self.assertIn("ERROR", report)

        # Checking repairs nothing: the verdict stays.
        self.assertEqual(self.check_image("leaky.qcow2")[0], "leaks")
        self.assertEqual(self.check_image("broken.qcow2")[0], "corrupt")

        # A file that claims to be qcow2, put there by hand: no recorded
        # format, so it is not checked at all.
        with open(os.path.join(d, "garbage.qcow2"), "wb") as f:
            f.write(b"QFI\xfb" + b"\xff" * 200)
        e = self.expect_error(err("ImageCheckFailed"), self.check_image, "garbage.qcow2")
        self.assertIn("garbage.qcow2", e.text)
        self.assertIn("no recorded format", e.text)

        e = self.expect_error(err("NoSuchImage"), self.check_image, "none.qcow2")
        self.assertIn("none.qcow2", e.text)
        self.assert_daemon_answers(0)

    def test_remove_busy_while_used(self):
        disk = self.create_image("busy.raw", "raw", MIB)
        self.create_image("idle.raw", "raw", MIB)
        path = self.create_machine(
            "user", args=qmtest.pc_args() + ["-drive", "file=%s,format=raw,if=ide" % disk])
        # Defined but not running: the image is not in use.
        self.launch(path)
        pid = self.mprop(path, "Pid")
        self.assertIn("file=%s,format=raw,if=ide" % disk, self.mprop(path, "CommandLine"))
        e = self.expect_error(err("Busy"), self.remove_image, "busy.raw")
        self.assertIn("user", e.text)
        self.assertTrue(os.path.exists(disk))
        self.assertEqual(self.check_image("busy.raw")[0], "unsupported")
        # Other images are free.
        self.remove_image("idle.raw")
        self.assertEqual(self.mprop(path, "Pid"), pid)
        self.kill(path)
        self.assertIsNone(self.remove_image("busy.raw"))
        self.assertFalse(os.path.exists(disk))
        self.assertEqual(self.list_images(), [])


    # -- formats are recorded, never guessed from content (a guest's)

    def record_dir(self):
        return self.env.path("state", "image-records")

    def records(self):
        d = self.record_dir()
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def test_guest_written_header_is_not_followed(self):
        """A raw disk whose guest wrote a qcow2 header naming a host file
        stays raw: listed as raw, checked as raw, and an overlay on it
        reads it as raw, never the host file."""
        secret = self.env.path("secret")
        with open(secret, "wb") as f:
            f.write(b"\x5a" * MIB)
        disk = self.create_image("disk.raw", "raw", MIB)
        write_at_start(disk, qcow2_header_naming(self.env.tmp, secret))
        # What probing would have found in it:
        self.assertEqual(qemu_img_chain(disk, "qcow2"), [disk, secret])

        self.assertEqual(self.list_images(), [("disk.raw", "raw", MIB)])
        verdict, report = self.check_image("disk.raw")
        self.assertEqual(verdict, "unsupported", report)   # raw has no checks
        self.assertNotIn(secret, report)

        over = self.create_image("over.qcow2", "qcow2", MIB,
                                 {"backing-file": GLib.Variant("s", "disk.raw")})
        info = qemu_img_info(over)
        self.assertEqual(info["backing-filename"], disk)
        self.assertEqual(info.get("backing-filename-format"), "raw")
        self.assertEqual(qemu_img_chain(over, "qcow2"), [over, disk])
        # The overlay reads the disk's bytes (the header), not the host file.
        out = subprocess.run(["qemu-io", "-f", "qcow2", "-r", "-U", "-c", "read -P 0x51 0 1", over],
                             capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertNotIn("Pattern verification failed", out.stdout)  # 0x51 is 'Q' of QFI
        self.assertEqual(self.check_image("over.qcow2")[0], "ok")
        self.assertIn(("over.qcow2", "qcow2", MIB), self.list_images())

    def test_unrecorded_image(self):
        """An image file put into the directory by hand (or by an older
        daemon) has no recorded format: listed with format "", never a
        backing file, never checked."""
        d = self.image_dir()
        os.makedirs(d, exist_ok=True)
        dropped = os.path.join(d, "dropped.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", dropped, "4M"], check=True)
        size = os.path.getsize(dropped)
        self.assertEqual(self.list_images(), [("dropped.qcow2", "", size)])

        e = self.expect_error(INVALID_ARGS, self.create_image, "o.qcow2", "qcow2", MIB,
                              {"backing-file": GLib.Variant("s", "dropped.qcow2")})
        self.assertIn("dropped.qcow2", e.text)
        self.assertIn("no recorded format", e.text)
        e = self.expect_error(err("ImageCheckFailed"), self.check_image, "dropped.qcow2")
        self.assertIn("dropped.qcow2", e.text)
        self.assertEqual(os.listdir(d), ["dropped.qcow2"])
        self.assertEqual(self.records(), [])

        # A broken record is no record.
        self.create_image("made.raw", "raw", MIB)
        [rec] = self.records()
        with open(os.path.join(self.record_dir(), rec), "w") as f:
            f.write('{"name": "made.raw", "format": "vmdk"}')
        self.assertIn(("made.raw", "", MIB), self.list_images())
        e = self.expect_error(INVALID_ARGS, self.create_image, "o.qcow2", "qcow2", MIB,
                              {"backing-file": GLib.Variant("s", "made.raw")})
        self.assertIn("made.raw", e.text)

        # It can still be removed.
        self.remove_image("dropped.qcow2")
        self.assertEqual([i[0] for i in self.list_images()], ["made.raw"])
        self.assert_daemon_answers(0)

    def test_remove_removes_record(self):
        """A file put by hand where a removed image was does not inherit
        the removed image's format."""
        d = self.image_dir()
        p = self.create_image("x.img", "raw", MIB)
        self.assertEqual(len(self.records()), 1)
        self.remove_image("x.img")
        self.assertEqual(self.records(), [])
        with open(p, "wb") as f:
            f.write(qcow2_header_naming(self.env.tmp, "/etc/hostname"))
        self.assertEqual(self.list_images(), [("x.img", "", os.path.getsize(p))])
        # CreateImage of that name again refuses; after removal it works.
        self.expect_error(err("ImageExists"), self.create_image, "x.img", "qcow2", MIB)
        os.unlink(p)
        self.create_image("x.img", "qcow2", MIB)
        self.assertEqual(self.list_images(), [("x.img", "qcow2", MIB)])
        self.assertEqual(os.listdir(d), ["x.img"])

    # -- storage errors

    @contextlib.contextmanager
    def tmpfs_on(self, path, size):
        """A tiny tmpfs mounted at path for the block (tests run as root)."""
        os.makedirs(path, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0755" % size,
                            "qmtest-images", path], capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs here: " + r.stderr.strip())
        try:
            yield path
        finally:
            # A process may still be letting go of a file there (umount:
            # "target is busy", seen 3 times in 15 runs): retry, then
            # detach it lazily rather than fail the test on cleanup.
            for _ in range(20):
                if subprocess.run(["umount", path], capture_output=True).returncode == 0:
                    break
                time.sleep(0.1)
            else:
                subprocess.run(["umount", "-l", path], check=True)

    def remount_read_only(self, path):
        subprocess.run(["mount", "-o", "remount,ro", path], check=True)

    def test_storage_full(self):
        d = self.image_dir()
        with self.tmpfs_on(d, 64 * KIB):
            e = self.expect_error(err("StorageFailed"), self.create_image, "big.qcow2",
                                  "qcow2", MIB)
            self.assertIn(os.path.join(d, "big.qcow2"), e.text)
            self.assertIn("No space left on device", e.text)
            # Nothing left behind; the name is free again.
            self.assertEqual(os.listdir(d), [])
            self.assertEqual(self.list_images(), [])
            self.assertEqual(self.records(), [])
            self.create_image("small.raw", "raw", 4096)
            self.assertEqual(self.list_images(), [("small.raw", "raw", 4096)])
        self.assert_daemon_answers(0)

    def test_storage_read_only(self):
        d = self.image_dir()
        with self.tmpfs_on(d, MIB):
            self.create_image("kept.raw", "raw", 4096)
            self.remount_read_only(d)
            for fmt in ("raw", "qcow2"):
                with self.subTest(fmt=fmt):
                    e = self.expect_error(err("StorageFailed"), self.create_image,
                                          "new." + fmt, fmt, MIB)
                    self.assertIn(os.path.join(d, "new." + fmt), e.text)
                    self.assertIn("Read-only file system", e.text)
            e = self.expect_error(err("StorageFailed"), self.remove_image, "kept.raw")
            self.assertIn(os.path.join(d, "kept.raw"), e.text)
            self.assertIn("Read-only file system", e.text)
            # Nothing changed: the image is there with its format.
            self.assertEqual(os.listdir(d), ["kept.raw"])
            self.assertEqual(self.list_images(), [("kept.raw", "raw", 4096)])
            self.assertEqual(len(self.records()), 1)
        self.assert_daemon_answers(0)

    def test_record_not_writable(self):
        """An image whose format cannot be recorded is not kept: it would
        have no known format."""
        d = self.image_dir()
        with open(self.record_dir(), "w") as f:   # a file where the records go
            f.write("in the way")
        e = self.expect_error(err("StorageFailed"), self.create_image, "a.qcow2", "qcow2", MIB)
        self.assertIn(os.path.join(d, "a.qcow2"), e.text)
        self.assertIn(self.record_dir(), e.text)
        self.assertEqual(os.listdir(d), [])
        self.assertEqual(self.list_images(), [])
        os.unlink(self.record_dir())
        self.create_image("a.qcow2", "qcow2", MIB)
        self.assertEqual(self.list_images(), [("a.qcow2", "qcow2", MIB)])

if __name__ == "__main__":
    qmtest.main()
