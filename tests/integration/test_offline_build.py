#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The default build never touches the network: `meson setup` and `meson
compile` of a fresh build directory succeed in a network namespace with
nothing but a loopback interface (`unshare -n`, or `unshare -rn` when not
root), as a distribution's builder runs them.

Also: the default build leaves out what needs the network or is only
asked for (the test guest, bench/), and -Dtests=false still builds the C
unit tests when asked (`meson compile unit-tests`).

Environment (tests/integration/meson.build sets it):
  QMACHINED_SOURCE_ROOT  the source tree (default: two levels up)
  QMACHINED_TEST_KEEP    1 keeps the temporary directory
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest


def source_root():
    root = os.environ.get("QMACHINED_SOURCE_ROOT")
    if root:
        return os.path.abspath(root)
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def offline(argv):
    """ARGV in a new network namespace: no route anywhere."""
    return ["unshare", "-n" if os.geteuid() == 0 else "-rn"] + argv


def check_run(argv):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise AssertionError("%s failed (exit %d):\n%s%s"
                             % (shlex.join(argv), r.returncode, r.stdout[-6000:], r.stderr[-3000:]))
    return r.stdout


class OfflineBuildTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if shutil.which("unshare") is None:
            raise unittest.SkipTest("unshare (util-linux) is not installed")
        r = subprocess.run(offline(["true"]), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
        if r.returncode != 0:
            raise unittest.SkipTest("cannot make a network namespace here: %s" % r.stdout.strip())
        cls.source = source_root()
        cls.tmp = tempfile.mkdtemp(prefix="qmachined-offline-")
        if os.environ.get("QMACHINED_TEST_KEEP") == "1":
            print("keeping %s" % cls.tmp, file=sys.stderr)
        else:
            cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)

    def test_namespace_is_offline(self):
        # what the other tests rely on: no interface but lo, and lo is down
        out = check_run(offline(["cat", "/proc/net/dev"]))
        names = [line.split(":")[0].strip() for line in out.splitlines()[2:]]
        self.assertEqual(names, ["lo"])

    def test_default_build_offline(self):
        build = os.path.join(self.tmp, "build")
        check_run(offline(["meson", "setup", build, self.source]))
        check_run(offline(["meson", "compile", "-C", build]))
        for f in ("src/qmachined/qmachined", "src/qmachinectl/qmachinectl", "tests/unit/test-json"):
            self.assertTrue(os.access(os.path.join(build, f), os.X_OK), f)
        # the guest is fetched with apt-get: only the tests that boot it build it
        self.assertFalse(os.path.exists(os.path.join(build, "tests", "guest", "vmlinuz")))
        # bench/ only with -Dbench=enabled
        self.assertFalse(os.path.exists(os.path.join(build, "bench")))

    def test_no_tests_but_unit_tests_when_asked(self):
        build = os.path.join(self.tmp, "build-notests")
        check_run(offline(["meson", "setup", build, self.source, "-Dtests=false"]))
        tests = json.loads(check_run(["meson", "introspect", "--tests", build]))
        self.assertEqual(tests, [])
        check_run(offline(["meson", "compile", "-C", build, "unit-tests"]))
        unit = os.path.join(build, "tests", "unit", "test-json")
        out = check_run([unit, "--tap"])
        self.assertIn("ok 1", out)
        self.assertNotIn("not ok", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
