#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The Ansible module qmachine.qmachine.machine (contrib/ansible) against
the real daemon on a private bus: each state, idempotence (a second run
reports changed=0), check mode, config changes. Migration between two
hosts is in test_two_hosts.py."""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402
from qmtest import source_root  # noqa: E402

PLAYBOOK = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: the machine
      qmachine.qmachine.machine:
        name: "{name}"
        state: "{state}"
        config: {config}
      register: result
    - name: show it
      debug:
        var: result.machine
"""


class AnsibleModuleTest(qmtest.QMTestCase):

    def setUp(self):
        super().setUp()
        if not shutil.which("ansible-playbook"):
            self.skipTest("ansible-playbook is not installed (Debian package ansible-core)")
        self.tmp = tempfile.mkdtemp(prefix="qm-ansible-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        with open(os.path.join(self.tmp, "hosts"), "w") as f:
            f.write("localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n")

    def play(self, name, state, config=None, check=False, expect_rc=0):
        """Run the playbook; returns (changed, failed, output)."""
        path = os.path.join(self.tmp, "play.yml")
        cfg = "{}" if config is None else repr(config).replace("True", "true").replace("False", "false")
        with open(path, "w") as f:
            f.write(PLAYBOOK.format(name=name, state=state, config=cfg))
        env = dict(os.environ)
        env.update({
            "DBUS_SYSTEM_BUS_ADDRESS": self.env.system_address,
            "ANSIBLE_COLLECTIONS_PATH": os.path.join(source_root(), "contrib", "ansible"),
            "PYTHONPATH": os.path.join(source_root(), "python"),
            "ANSIBLE_LOCAL_TEMP": os.path.join(self.tmp, "local"),
            "ANSIBLE_REMOTE_TEMP": os.path.join(self.tmp, "remote"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_HOST_KEY_CHECKING": "0",
        })
        cmd = ["ansible-playbook", "-i", os.path.join(self.tmp, "hosts"), path]
        if check:
            cmd.append("--check")
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300,
                           stdin=subprocess.DEVNULL)
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, expect_rc, out)
        m = re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", out)
        self.assertIsNotNone(m, out)
        return int(m.group(1)), int(m.group(2)), out

    def state_of(self, name):
        return self.mprop(qmtest.machine_path(name), "State")

    def test_states_and_idempotence(self):
        config = {"args": qmtest.none_args(), "description": "from ansible"}
        # check mode changes nothing
        changed, _, _ = self.play("web", "running", config, check=True)
        self.assertEqual(changed, 1)
        self.assertEqual(self.manager("ListMachines", None, "(a(ssuo))"), [])
        changed, _, _ = self.play("web", "running", config)
        self.assertEqual(changed, 1)
        self.assertEqual(self.state_of("web"), "running")
        changed, _, _ = self.play("web", "running", config)
        self.assertEqual(changed, 0, "a second run changes nothing")
        # a running machine's config is not changed behind its back
        _, failed, out = self.play("web", "running", dict(config, description="new"), expect_rc=2)
        self.assertEqual(failed, 1)
        self.assertIn("stop it to change description", out)
        changed, _, _ = self.play("web", "stopped", config)
        self.assertEqual(changed, 1)
        self.assertEqual(self.state_of("web"), "stopped")
        self.assertEqual(self.play("web", "stopped", config)[0], 0)
        # a stopped machine's config is updated
        changed, _, _ = self.play("web", "present", dict(config, description="new", nics=1))
        self.assertEqual(changed, 1)
        c = self.mprop(qmtest.machine_path("web"), "Config")
        self.assertEqual((c["description"], c["nics"]), ("new", 1))
        self.assertEqual(self.play("web", "present", dict(config, description="new", nics=1))[0], 0)
        changed, _, _ = self.play("web", "absent")
        self.assertEqual(changed, 1)
        self.assertEqual(self.manager("ListMachines", None, "(a(ssuo))"), [])
        self.assertEqual(self.play("web", "absent")[0], 0)

    def test_daemon_errors_fail_the_task(self):
        _, failed, out = self.play("bad", "present", {"nics": 1000}, expect_rc=2)
        self.assertEqual(failed, 1)
        self.assertIn("InvalidArgs", out)


if __name__ == "__main__":
    qmtest.main()
