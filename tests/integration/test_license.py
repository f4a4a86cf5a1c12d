#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Every source file names its license (LGPL-2.1-or-later) in an SPDX
line near its top, and the license text is in LICENSES/ (tools/spdx-headers
lists the files that lack the line)."""

import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402


class LicenseTest(unittest.TestCase):

    def test_license_text(self):
        with open(os.path.join(qmtest.source_root(), "LICENSES", "LGPL-2.1-or-later.txt")) as f:
            text = f.read()
        self.assertIn("GNU LESSER GENERAL PUBLIC LICENSE", text)
        self.assertIn("Version 2.1, February 1999", text)

    def test_every_file_has_an_spdx_line(self):
        root = qmtest.source_root()
        if not shutil.which("git") or not os.path.exists(os.path.join(root, ".git")):
            self.skipTest("not a git checkout: the tracked files are unknown")
        p = subprocess.run(["/usr/bin/python3", os.path.join(root, "tools", "spdx-headers"), "--check"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual((p.returncode, p.stdout), (0, ""),
                         "files without an SPDX-License-Identifier line (tools/spdx-headers --fix adds it):\n"
                         + p.stdout + p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
