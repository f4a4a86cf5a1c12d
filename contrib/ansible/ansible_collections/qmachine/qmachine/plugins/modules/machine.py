#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Ansible module qmachine.qmachine.machine: one qmachined machine in a
wanted state, idempotently, through the qmachine Python client on the
managed host."""

DOCUMENTATION = r"""
module: machine
short_description: A QEMU virtual machine run by qmachined
description:
  - Defines, changes, starts, stops, migrates and removes one machine of
    the qmachined daemon on the managed host, through the C(qmachine)
    Python client (python3-gi), which must be installed there.
  - Idempotent; supports check mode.
  - Config keys are those of the daemon's CreateMachine (see the
    org.qmachine.QMachine1.Manager interface); only the keys given are
    compared and changed. A machine that runs is never changed: the task
    fails and says so.
options:
  name:
    description: The machine name.
    type: str
    required: true
  state:
    description:
      - C(present) defines the machine (started or not), C(running) also
        starts it, C(stopped) shuts it down (QMP quit, then SIGKILL after
        I(shutdown_timeout)), C(absent) stops and removes it.
    type: str
    choices: [present, running, stopped, absent]
    default: present
  config:
    description: Config keys (dashes or underscores), e.g. C(args), C(nics), C(persistent).
    type: dict
    default: {}
  shutdown_timeout:
    description: Seconds a clean shutdown may take before QEMU is killed.
    type: float
    default: 60
  migrate_to:
    description:
      - C([user@]host) whose qmachined (reached over ssh, as C(qmachinectl -H))
        must run the machine afterwards; with I(state=running). When the
        machine runs here it is live-migrated there (the destination is
        prepared from this machine's config); when it already runs there
        and not here, nothing changes; when it is defined here and runs
        nowhere, it is started here first.
    type: str
  persistent_destination:
    description: Keep the machine's definition on the destination.
    type: bool
    default: false
  undefine_source:
    description: Remove the source machine after a successful migration.
    type: bool
    default: false
  address:
    description: D-Bus address of the daemon's bus (default the system bus).
    type: str
"""

EXAMPLES = r"""
- name: a machine that runs
  qmachine.qmachine.machine:
    name: web
    state: running
    config:
      args: [-machine, none]
      persistent: true
"""

RETURN = r"""
machine:
  description: The machine after the task (name, State, Pid; host when migrated).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

RUNNING = ("starting", "running", "stopping")


def normalized(value):
    if isinstance(value, tuple):
        return [normalized(v) for v in value]
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def config_differences(current, wanted, types):
    """The wanted keys whose value differs from the current config."""
    out = {}
    for key, value in wanted.items():
        key = key.replace("_", "-")
        t = types.get(key)
        if t == "d" and value is not None:
            value = float(value)
        elif t == "u" and value is not None:
            value = int(value)
        have = normalized(current.get(key))
        if value in ("", []) and key not in current:
            continue
        if have != normalized(value):
            out[key] = value
    return out


def describe(machine, host=None):
    d = {"name": machine.name, "state": machine.state, "pid": machine.pid}
    if host:
        d["host"] = host
    return d


class Task:
    def __init__(self, module, qmachine):
        self.module = module
        self.q = qmachine
        self.p = module.params
        self.changed = False
        self.mgr = qmachine.connect(self.p["address"]) if self.p["address"] else qmachine.connect()

    def act(self, fn, *args, **kwargs):
        """A change: done unless in check mode."""
        self.changed = True
        if not self.module.check_mode:
            return fn(*args, **kwargs)
        return None

    def find(self, mgr, name):
        try:
            return mgr.get_machine(name)
        except self.q.NoSuchMachine:
            return None

    def ensure_defined(self):
        name, wanted = self.p["name"], self.p["config"]
        m = self.find(self.mgr, name)
        if m is None:
            self.act(self.mgr.create_machine, name, wanted)
            return None if self.module.check_mode else self.mgr.get_machine(name)
        diff = config_differences(m.config, wanted, self.q.client.CONFIG_TYPES)
        if diff:
            if m.is_running():
                self.module.fail_json(msg="machine %s runs: stop it to change %s" % (name, ", ".join(sorted(diff))),
                                      changed=self.changed)
            self.act(self.mgr.update_machine, name, diff)
        return m

    def ensure_stopped(self, m):
        if m is not None and m.is_running():
            self.act(m.shutdown, timeout=self.p["shutdown_timeout"])

    def run(self):
        state = self.p["state"]
        if state == "absent":
            m = self.find(self.mgr, self.p["name"])
            if m is not None:
                self.ensure_stopped(m)
                self.act(self.mgr.remove_machine, self.p["name"])
            return {"name": self.p["name"], "state": "absent"}
        if self.p["migrate_to"]:
            return self.run_migration()
        m = self.ensure_defined()
        if state == "running" and (m is None or not m.is_running()):
            if m is not None and m.state == "migrated":
                self.module.fail_json(msg="machine %s was migrated away; use migrate_to or update it first"
                                      % self.p["name"])
            if m is not None:  # else check mode: it would be created first
                self.act(m.launch)
        elif state == "stopped":
            self.ensure_stopped(m)
        if m is None:
            return {"name": self.p["name"], "state": "defined"}
        return describe(m)

    def run_migration(self):
        name, host = self.p["name"], self.p["migrate_to"]
        if self.p["state"] != "running":
            self.module.fail_json(msg="migrate_to needs state=running")
        dest = self.q.connect(host=host)
        there = self.find(dest, name)
        here = self.find(self.mgr, name)
        if there is not None and there.is_running() and (here is None or not here.is_running()):
            if here is not None and self.p["undefine_source"]:
                self.act(self.mgr.remove_machine, name)
            return describe(there, host)
        if here is None and self.module.check_mode:
            # an earlier task of this check run would have defined it
            self.changed = True
            return {"name": name, "state": "defined"}
        if here is None or here.state == "migrated":
            self.module.fail_json(msg="machine %s runs neither here nor on %s" % (name, host))
        if self.module.check_mode:
            self.changed = True
            return describe(here)
        self.changed = True
        if not here.is_running():
            # defined here, running nowhere: it starts here, then moves
            here.launch()
        options = {"persistent": self.p["persistent_destination"]}
        _, uri = dest.prepare_incoming(name, here.config, options)
        here.migrate(uri)
        if self.p["undefine_source"]:
            self.mgr.remove_machine(name)
        return describe(dest.get_machine(name), host)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", default="present", choices=["present", "running", "stopped", "absent"]),
            config=dict(type="dict", default={}),
            shutdown_timeout=dict(type="float", default=60.0),
            migrate_to=dict(type="str"),
            persistent_destination=dict(type="bool", default=False),
            undefine_source=dict(type="bool", default=False),
            address=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    try:
        import qmachine
        import qmachine.client  # noqa: F401
    except ImportError as e:
        module.fail_json(msg="the qmachine Python client is missing on the managed host: %s" % e)
    try:
        task = Task(module, qmachine)
        result = task.run()
    except qmachine.QMachineError as e:
        module.fail_json(msg="%s: %s" % (type(e).__name__, e.message))
    module.exit_json(changed=task.changed, machine=result)


if __name__ == "__main__":
    main()
