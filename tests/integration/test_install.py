#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""`meson install` puts the daemon and its system integration files where
the configured directories say, and what it installs is valid:

- the D-Bus bus policy and the polkit actions are well-formed XML, and the
  polkit actions are the five of the contract with their defaults;
- the D-Bus activation file names the bus name, qmachined.service and the
  installed daemon;
- the systemd unit has the settings the service depends on, passes
  `systemd-analyze verify` where that tool works, and `systemd-analyze
  security` rates it no worse than UNIT_MAX_EXPOSURE;
- the sysusers.d snippet creates the user qmachine (nologin, in group kvm)
  with systemd-sysusers in a temporary root;
- the directory options and the pkg-config lookups behind them work
  (checked on a second, configure-only build directory with stub .pc files);
- the example polkit rules (data/polkit/, not installed) are valid
  JavaScript that grants what README.md says, checked with node when it
  is there;
- the Python package qmachine (python/qmachine) lands in a directory
  Debian's /usr/bin/python3 searches (for the prefixes /usr and
  /usr/local), and imports from the installed tree with PYTHONPATH;
- the interface XML lands in dbus-1/interfaces as it is in introspection/;
- the logrotate file lands in SYSCONFDIR/logrotate.d and, run by logrotate
  on a log a writer holds open, rotates it in place (copytruncate);
- the bash completion lands in bash-completion's completionsdir (below
  our DATADIR);
- the manual pages, when built, land in MANDIR/man1, man5 and man8.

Nothing here needs root: everything is installed below a temporary DESTDIR.

Environment (tests/integration/meson.build sets the first two):
  QMACHINED_BUILD_ROOT   the build directory to install from (default:
                         MESON_BUILD_ROOT, else SOURCE_ROOT/build)
  QMACHINED_SOURCE_ROOT  the source tree (default: two levels up)
  QMACHINED_TEST_KEEP    1 keeps the temporary directory
"""

import configparser
import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qmtest.users import read_passwd_group  # noqa: E402

BUS_NAME = "org.qmachine.QMachine1"
DAEMON = "qmachined"
UNIT = "qmachined.service"
ACTIVATION = BUS_NAME + ".service"
BUS_POLICY = BUS_NAME + ".conf"
POLKIT_ACTIONS = BUS_NAME + ".policy"
SYSUSERS = "qmachined.conf"
INTERFACES = ("org.qmachine.QMachine1.Manager.xml", "org.qmachine.QMachine1.Machine.xml")
# named after the package like the daemon: looked up with its directory
LOGROTATE = "logrotate.d/qmachined"
COMPLETION = "completions/qmachinectl"
MAN_PAGES = ("qmachined.8", "qmachinectl.1", "org.qmachine.QMachine1.5")

# The "Overall exposure level" of `systemd-analyze security --offline=true`
# for the unit (systemd 252): 7.7 before issue 11's hardening, 3.8 after.
UNIT_MAX_EXPOSURE = 3.8

PYTHON = "/usr/bin/python3"
PYTHON_PACKAGE = "qmachine"

# API.md, "Authorization (polkit)": (allow_any, allow_inactive, allow_active).
POLKIT_DEFAULTS = {
    BUS_NAME + ".admin": ("auth_admin", "auth_admin", "auth_admin"),
    BUS_NAME + ".create": ("auth_admin", "auth_admin", "yes"),
    BUS_NAME + ".manage": ("auth_admin", "auth_admin", "auth_admin_keep"),
    BUS_NAME + ".console": ("auth_admin", "auth_admin", "auth_admin_keep"),
    BUS_NAME + ".monitor": ("auth_admin", "auth_admin", "auth_admin_keep"),
    BUS_NAME + ".images": ("auth_admin", "auth_admin", "auth_admin_keep"),
    BUS_NAME + ".guest": ("auth_admin", "auth_admin", "auth_admin_keep"),
}

# Unit settings the service depends on (see the comments in
# data/qmachined.service.in).
UNIT_REQUIRED = {
    "Service": {
        "Type": "dbus",
        "BusName": BUS_NAME,
        "KillMode": "process",
        "Restart": "on-failure",
        "LimitNOFILE": "524288",
        "StateDirectory": "qmachined",
        "RuntimeDirectory": "qmachined",
        "RuntimeDirectoryPreserve": "yes",
        "LogsDirectory": "qmachined",
        "ProtectSystem": "full",
        "NoNewPrivileges": "yes",
    },
    "Install": {
        "WantedBy": "multi-user.target",
    },
}

# Settings that would break VMs: W+X memory for TCG, /dev/kvm, /dev/net/tun
# and vhost devices, disk images below /home or /tmp. ProtectClock= implies
# a DeviceAllow= that turns device access into an allow list on older
# systemd releases. PrivateUsers= forbids setuid to the machines' users,
# ProtectProc= hides their QEMUs' /proc/PID/stat, ProcSubset=pid QEMU's
# /proc/filesystems.
UNIT_FORBIDDEN = (
    "MemoryDenyWriteExecute",
    "PrivateDevices",
    "DevicePolicy",
    "DeviceAllow",
    "ProtectClock",
    "ProtectHome",
    "PrivateTmp",
    "PrivateUsers",
    "ProtectProc",
    "ProcSubset",
)

# Stub .pc files for the configure-only check: every directory they name
# is distinct, and their own prefix is one the build must replace by its own.
STUB_PC = {
    "dbus-1.pc": """prefix=/stub-prefix
datadir=${prefix}/stub-share
system_bus_services_dir=${datadir}/dbus-1/stub-system-services
interfaces_dir=${datadir}/dbus-1/stub-interfaces

Name: dbus-1
Description: stub for test_install
Version: 1.14.0
""",
    "systemd.pc": """prefix=/stub-prefix
rootprefix=/stub-root
systemdsystemunitdir=${rootprefix}/stub/systemd/system
sysusersdir=${prefix}/stub/sysusers.d

Name: systemd
Description: stub for test_install
Version: 252
""",
    "polkit-gobject-1.pc": """prefix=/stub-prefix
datadir=${prefix}/stub-share
policydir=${datadir}/polkit-1/stub-actions

Name: polkit-gobject-1
Description: stub for test_install
Version: 122
""",
}


RULES_EXAMPLE = os.path.join("data", "polkit", "50-qmachined-vmops.rules.example")

# (action, details, groups of the caller, what the rules decide: "yes" or
# None for NOT_HANDLED, i.e. the action's default, an admin password).
RULES_CASES = [
    ("monitor", {"machine": "ci-1", "verb": "Qmp", "command": "query-status"}, ["vmops"], "yes"),
    ("monitor", {"machine": "ci-1", "verb": "Command", "command": "query-block"}, ["vmops"], "yes"),
    ("monitor", {"machine": "prod", "verb": "Qmp", "command": "query-status"}, ["vmops"], None),
    ("monitor", {"machine": "my-ci-1", "verb": "Qmp", "command": "query-status"}, ["vmops"], None),
    ("monitor", {"machine": "ci-1", "verb": "GetEvents"}, ["vmops"], None),
    ("monitor", {"machine": "ci-1", "verb": "GetLog"}, ["vmops"], None),
    ("manage", {"machine": "ci-1", "verb": "Reset"}, ["vmops"], "yes"),
    ("manage", {"machine": "prod", "verb": "Reset"}, ["vmops"], None),
    ("manage", {"machine": "ci-1", "verb": "Kill"}, ["vmops"], None),
    ("manage", {"machine": "ci-1", "verb": "Launch"}, ["vmops"], None),
    ("admin", {"machine": "ci-1", "verb": "Qmp", "command": "system_reset"}, ["vmops"], "yes"),
    ("admin", {"machine": "ci-1", "verb": "Command", "command": "system_reset"}, ["vmops"], "yes"),
    ("admin", {"machine": "ci-1", "verb": "Qmp", "command": "quit"}, ["vmops"], None),
    ("admin", {"machine": "ci-1", "verb": "CreateMachine"}, ["vmops"], None),
    ("console", {"machine": "ci-1", "verb": "OpenConsole"}, ["vmops"], None),
    ("images", {"verb": "CreateImage"}, ["vmops"], None),
    ("manage", {"machine": "ci-1", "verb": "Reset"}, [], None),
    ("monitor", {"machine": "ci-1", "verb": "Qmp", "command": "query-status"}, ["users"], None),
    ("manage", {"machine": "prod", "verb": "Kill"}, ["vmadmins"], "yes"),
    ("console", {"machine": "prod", "verb": "OpenConsole"}, ["vmadmins"], "yes"),
    ("monitor", {"machine": "prod", "verb": "WaitEvent"}, ["vmadmins"], "yes"),
    ("monitor", {"machine": "prod", "verb": "Qmp", "command": "query-kvm"}, ["vmadmins"], "yes"),
    ("admin", {"machine": "prod", "verb": "CreateMachine"}, ["vmadmins"], None),
    ("admin", {"machine": "prod", "verb": "Qmp", "command": "quit"}, ["vmadmins"], None),
    ("images", {"verb": "RemoveImage"}, ["vmadmins"], None),
    ("manage", {"machine": "prod", "verb": "Kill"}, ["vmops", "vmadmins"], "yes"),
    ("create", {"machine": "mine", "verb": "CreateMachine"}, ["vmusers"], "yes"),
    ("create", {"machine": "mine", "verb": "CreateMachine"}, ["vmops", "vmadmins"], None),
    ("admin", {"machine": "theirs", "verb": "RemoveMachine"}, ["vmusers"], None),
    ("manage", {"machine": "theirs", "verb": "Launch"}, ["vmusers"], None),
]

# Loads a rules file the way polkitd does (a script whose global "polkit"
# collects rules) and answers each case with the first rule's result that
# is not NOT_HANDLED.
NODE_RULES_RUNNER = r"""
const fs = require("fs");
const vm = require("vm");
const [file, casesJson] = process.argv.slice(1);
const rules = [];
const polkit = {
    Result: { YES: "yes", NO: "no", AUTH_SELF: "auth_self", AUTH_SELF_KEEP: "auth_self_keep",
              AUTH_ADMIN: "auth_admin", AUTH_ADMIN_KEEP: "auth_admin_keep", NOT_HANDLED: null },
    addRule: (f) => rules.push(f),
    addAdminRule: () => {},
    log: () => {},
};
vm.runInNewContext(fs.readFileSync(file, "utf8"), { polkit: polkit }, { filename: file });
const out = JSON.parse(casesJson).map(([id, details, groups]) => {
    const action = { id: id, lookup: (k) => details[k] };
    const subject = { user: "someone", isInGroup: (g) => groups.includes(g) };
    for (const rule of rules) {
        const r = rule(action, subject);
        if (r !== null && r !== undefined) return r;
    }
    return null;
});
process.stdout.write(JSON.stringify(out));
"""


def source_root():
    root = os.environ.get("QMACHINED_SOURCE_ROOT")
    if root:
        return os.path.abspath(root)
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.dirname(os.path.dirname(here))


def build_root():
    for var in ("QMACHINED_BUILD_ROOT", "MESON_BUILD_ROOT"):
        if os.environ.get(var):
            return os.path.abspath(os.environ[var])
    return os.path.join(source_root(), "build")


def run(argv, env=None):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env, stdin=subprocess.DEVNULL)


def check_run(argv, env=None):
    r = run(argv, env=env)
    if r.returncode != 0:
        raise AssertionError("%s failed (exit %d):\n%s%s"
                             % (shlex.join(argv), r.returncode, r.stdout, r.stderr))
    return r


def introspect(build, what):
    return json.loads(check_run(["meson", "introspect", "--" + what, build]).stdout)


def build_options(build):
    return {o["name"]: o["value"] for o in introspect(build, "buildoptions")}


def norm(path):
    return os.path.normpath(path)


def in_destdir(destdir, path):
    return os.path.join(destdir, path.lstrip("/"))


def pkg_config_variable(pkg, variable, define, env):
    """The variable of an installed .pc file with one variable redefined,
    as meson's get_variable(pkgconfig_define:) sees it; None when the
    package or the variable is missing."""
    if shutil.which("pkg-config") is None:
        return None
    if run(["pkg-config", "--exists", pkg], env=env).returncode != 0:
        return None
    r = run(["pkg-config", "--define-variable=%s=%s" % define,
             "--variable=" + variable, pkg], env=env)
    value = r.stdout.strip()
    return value if r.returncode == 0 and value else None


def expected_dirs(options, env):
    """Where data/meson.build must install each file: the option when set
    (relative to the prefix), else the pkg-config variable evaluated with
    our prefix, else the fallback."""
    prefix = options["prefix"]
    datadir = os.path.join(prefix, options["datadir"])

    def choose(option, auto):
        value = options[option]
        return norm(os.path.join(prefix, value if value else auto()))

    def dbus_datadir():
        return pkg_config_variable("dbus-1", "datadir", ("prefix", prefix), env) or datadir

    return {
        BUS_POLICY: choose("dbus_policy_dir",
                           lambda: os.path.join(dbus_datadir(), "dbus-1", "system.d")),
        ACTIVATION: choose("dbus_system_services_dir",
                           lambda: pkg_config_variable("dbus-1", "system_bus_services_dir",
                                                       ("prefix", prefix), env)
                           or os.path.join(datadir, "dbus-1", "system-services")),
        UNIT: choose("systemd_system_unit_dir",
                     lambda: pkg_config_variable("systemd", "systemdsystemunitdir",
                                                 ("rootprefix", prefix), env)
                     or os.path.join(prefix, "lib", "systemd", "system")),
        SYSUSERS: choose("sysusers_dir",
                         lambda: pkg_config_variable("systemd", "sysusersdir",
                                                     ("prefix", prefix), env)
                         or os.path.join(prefix, "lib", "sysusers.d")),
        POLKIT_ACTIONS: choose("polkit_actions_dir",
                               lambda: pkg_config_variable("polkit-gobject-1", "policydir",
                                                           ("prefix", prefix), env)
                               or os.path.join(datadir, "polkit-1", "actions")),
        DAEMON: norm(os.path.join(prefix, options["sbindir"])),
        INTERFACES[0]: norm(os.path.join(
            prefix, pkg_config_variable("dbus-1", "interfaces_dir", ("prefix", prefix), env)
            or os.path.join(datadir, "dbus-1", "interfaces"))),
        LOGROTATE: norm(os.path.join(prefix, options["sysconfdir"], "logrotate.d")),
        COMPLETION: norm(os.path.join(
            prefix, pkg_config_variable("bash-completion", "completionsdir", ("datadir", datadir), env)
            or os.path.join(datadir, "bash-completion", "completions"))),
    }


def pkg_config_env(options, extra=()):
    env = dict(os.environ)
    paths = list(extra) + list(options.get("pkg_config_path") or [])
    if env.get("PKG_CONFIG_PATH"):
        paths.append(env["PKG_CONFIG_PATH"])
    if paths:
        env["PKG_CONFIG_PATH"] = os.pathsep.join(paths)
    return env


def installed_path(installed, name):
    """The one install destination whose file name is NAME (or, when NAME
    has a directory, whose path ends with NAME)."""
    if "/" in name:
        found = [dst for dst in installed.values() if dst.endswith("/" + name)]
    else:
        found = [dst for dst in installed.values() if os.path.basename(dst) == name
                 and not dst.endswith("/" + LOGROTATE)]
    if len(found) != 1:
        raise AssertionError("%s is installed %d times: %s" % (name, len(found), found))
    return found[0]


def read_ini(path):
    """A systemd-style INI file (unit or D-Bus service file): keys keep
    their case, '=' is the only delimiter, no interpolation; a key given
    twice is an error."""
    parser = configparser.ConfigParser(delimiters=("=",), comment_prefixes=("#", ";"),
                                       interpolation=None, strict=True,
                                       empty_lines_in_values=False)
    parser.optionxform = str
    with open(path, encoding="utf-8") as f:
        parser.read_file(f)
    return parser


class InstallTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.source = source_root()
        cls.build = build_root()
        cls.tmp = tempfile.mkdtemp(prefix="qmachined-install-")
        if os.environ.get("QMACHINED_TEST_KEEP") == "1":
            print("keeping %s" % cls.tmp, file=sys.stderr)
        else:
            cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)
        cls.destdir = os.path.join(cls.tmp, "root")
        # The build is up to date (meson test built it): install only.
        check_run(["meson", "install", "-C", cls.build, "--no-rebuild", "--quiet",
                   "--destdir", cls.destdir])
        cls.installed = introspect(cls.build, "installed")
        cls.options = build_options(cls.build)
        cls.expected = expected_dirs(cls.options, pkg_config_env(cls.options))

    def dest(self, name):
        """(path on the target system, path below DESTDIR) of an installed file."""
        path = installed_path(self.installed, name)
        return path, in_destdir(self.destdir, path)

    def assert_xml_well_formed(self, path):
        r = run(["xmllint", "--noout", "--nonet", path])
        self.assertEqual(r.returncode, 0, "xmllint %s:\n%s" % (path, r.stderr))
        self.assertEqual(r.stderr, "")

    def assert_daemon_command(self, command, where):
        argv = shlex.split(command)
        daemon, _ = self.dest(DAEMON)
        self.assertEqual(argv, [daemon, "--system"], where)

    # ------------------------------------------------------------------

    def test_installs_what_introspection_lists(self):
        # meson install wrote exactly the files meson introspect --installed
        # lists, no more, no less.
        on_disk = set()
        for top, _dirs, files in os.walk(self.destdir):
            for f in files:
                on_disk.add("/" + os.path.relpath(os.path.join(top, f), self.destdir))
        self.assertEqual(on_disk, {norm(p) for p in self.installed.values()})

    def test_files_land_in_configured_dirs(self):
        for name in (DAEMON, BUS_POLICY, ACTIVATION, UNIT, POLKIT_ACTIONS, SYSUSERS):
            with self.subTest(file=name):
                path, copy = self.dest(name)
                self.assertEqual(norm(os.path.dirname(path)), self.expected[name])
                self.assertTrue(os.path.isfile(copy), copy)
        _path, daemon = self.dest(DAEMON)
        self.assertTrue(os.stat(daemon).st_mode & stat.S_IXUSR, "%s is not executable" % daemon)
        for name in (BUS_POLICY, ACTIVATION, UNIT, POLKIT_ACTIONS, SYSUSERS):
            with self.subTest(file=name):
                mode = stat.S_IMODE(os.stat(self.dest(name)[1]).st_mode)
                self.assertEqual(mode & 0o444, 0o444, "%s: mode %o" % (name, mode))
                self.assertEqual(mode & 0o022, 0, "%s: mode %o" % (name, mode))

    def test_bus_policy(self):
        _path, copy = self.dest(BUS_POLICY)
        self.assert_xml_well_formed(copy)
        with open(copy, "rb") as f, \
                open(os.path.join(self.source, "data", BUS_POLICY), "rb") as g:
            self.assertEqual(f.read(), g.read(), "installed policy differs from data/")

    def test_polkit_actions(self):
        _path, copy = self.dest(POLKIT_ACTIONS)
        self.assert_xml_well_formed(copy)
        root = ET.parse(copy).getroot()
        self.assertEqual(root.tag, "policyconfig")
        self.assertEqual(root.findtext("vendor"), "qmachined")
        got = {}
        for action in root.findall("action"):
            aid = action.get("id")
            with self.subTest(action=aid):
                self.assertNotIn(aid, got, "action given twice")
                self.assertTrue((action.findtext("description") or "").strip())
                self.assertTrue((action.findtext("message") or "").strip())
                d = action.find("defaults")
                self.assertIsNotNone(d)
                got[aid] = tuple(d.findtext(k) for k in
                                 ("allow_any", "allow_inactive", "allow_active"))
        self.assertEqual(got, POLKIT_DEFAULTS)

    def test_activation_file(self):
        path, copy = self.dest(ACTIVATION)
        ini = read_ini(copy)
        self.assertEqual(ini.sections(), ["D-BUS Service"])
        s = ini["D-BUS Service"]
        self.assertEqual(s.get("Name"), BUS_NAME)
        # dbus-daemon only activates a system service from a file named
        # after the bus name.
        self.assertEqual(os.path.basename(path), s.get("Name") + ".service")
        self.assertEqual(s.get("User"), "root")
        self.assertEqual(s.get("SystemdService"), UNIT)
        self.assert_daemon_command(s.get("Exec", ""), "Exec= of " + ACTIVATION)
        # SystemdService= names the unit we install.
        self.dest(s.get("SystemdService"))

    def test_unit_settings(self):
        _path, copy = self.dest(UNIT)
        ini = read_ini(copy)
        self.assertEqual(set(ini.sections()), {"Unit", "Service", "Install"})
        for section, settings in UNIT_REQUIRED.items():
            for key, value in settings.items():
                with self.subTest(setting="%s/%s" % (section, key)):
                    self.assertEqual(ini[section].get(key), value)
        self.assert_daemon_command(ini["Service"].get("ExecStart", ""), "ExecStart= of " + UNIT)
        for key in UNIT_FORBIDDEN:
            with self.subTest(forbidden=key):
                self.assertNotIn(key, ini["Service"])

    def test_unit_systemd_analyze_verify(self):
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            self.skipTest("systemd-analyze verify skipped: systemd-analyze is not installed "
                          "(the systemd package); test_unit_settings still checks the unit")
        work = os.path.join(self.tmp, "verify")
        os.makedirs(work)
        # systemd-analyze runs without systemd as PID 1, but find out first
        # whether it works here at all, with a unit that cannot be wrong.
        probe = os.path.join(work, "qm-probe.service")
        with open(probe, "w") as f:
            f.write("[Service]\nExecStart=/bin/true\n")
        r = run([analyze, "verify", "--man=no", probe])
        if r.returncode != 0:
            self.skipTest("systemd-analyze verify skipped: it fails on this machine even "
                          "for a trivial unit (exit %d: %s); test_unit_settings still "
                          "checks the unit" % (r.returncode, r.stderr.strip()[:300]))
        # ExecStart= must name an existing executable: verify a copy that
        # points at the DESTDIR copy of the daemon.
        _path, copy = self.dest(UNIT)
        daemon, daemon_copy = self.dest(DAEMON)
        with open(copy, encoding="utf-8") as f:
            text = f.read()
        self.assertIn("ExecStart=%s " % daemon, text)
        text = text.replace("ExecStart=%s " % daemon, "ExecStart=%s " % daemon_copy)
        unit = os.path.join(work, UNIT)
        with open(unit, "w", encoding="utf-8") as f:
            f.write(text)
        r = run([analyze, "verify", "--man=no", unit])
        # verify exits 0 on unknown keys and bad values but prints them,
        # prefixed with the unit's path or name.
        complaints = [line for line in (r.stdout + r.stderr).splitlines() if UNIT in line]
        self.assertEqual((r.returncode, complaints), (0, []),
                         "systemd-analyze verify:\n%s%s" % (r.stdout, r.stderr))

    def test_unit_security_exposure(self):
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            self.skipTest("systemd-analyze security skipped: systemd-analyze is not installed")
        # --offline=true (systemd 250 and later) reads the unit file instead
        # of asking a running systemd; the unit's name must end in .service.
        _path, copy = self.dest(UNIT)
        r = run([analyze, "security", "--offline=true", "--no-pager", copy])
        if r.returncode != 0 and "offline" in r.stderr:
            self.skipTest("systemd-analyze security skipped: no --offline here (%s)"
                          % r.stderr.strip()[:200])
        self.assertEqual(r.returncode, 0, "systemd-analyze security:\n%s" % r.stderr)
        levels = [line for line in r.stdout.splitlines() if "Overall exposure level" in line]
        self.assertEqual(len(levels), 1, r.stdout)
        level = float(levels[0].split(":", 1)[1].split()[0])
        self.assertLessEqual(level, UNIT_MAX_EXPOSURE,
                             "the unit's exposure got worse:\n%s" % r.stdout)

    def test_sysusers_creates_qmachine(self):
        sysusers = shutil.which("systemd-sysusers")
        if sysusers is None:
            self.skipTest("sysusers.d snippet not checked: systemd-sysusers is not installed")
        _path, copy = self.dest(SYSUSERS)
        # A temporary root whose /etc already has a group kvm without
        # members (as udev's postinst leaves it), and then one without it.
        for kvm_exists in (True, False):
            with self.subTest(kvm_exists=kvm_exists):
                root = tempfile.mkdtemp(prefix="sysusers-", dir=self.tmp)
                os.makedirs(os.path.join(root, "etc"))
                with open(os.path.join(root, "etc", "passwd"), "w") as f:
                    f.write("root:x:0:0:root:/root:/bin/bash\n")
                with open(os.path.join(root, "etc", "group"), "w") as f:
                    f.write("root:x:0:\n" + ("kvm:x:108:\n" if kvm_exists else ""))
                # Twice: the second run finds everything there and changes nothing.
                check_run([sysusers, "--root=" + root, copy])
                passwd, group = read_passwd_group(root)
                check_run([sysusers, "--root=" + root, copy])
                self.assertEqual(read_passwd_group(root), (passwd, group))
                user = passwd.get("qmachine")
                self.assertIsNotNone(user, passwd)
                self.assertTrue(user[6].endswith("/nologin"), user)
                self.assertNotEqual(user[2], "0")
                self.assertIn("kvm", group)
                self.assertIn("qmachine", group["kvm"][3].split(","))
                if kvm_exists:
                    self.assertEqual(group["kvm"][2], "108")

    def test_polkit_rules_example(self):
        node = shutil.which("node") or shutil.which("nodejs")
        if node is None:
            self.skipTest("polkit rules example not checked: node is not installed")
        rules = os.path.join(self.source, RULES_EXAMPLE)
        with open(rules, encoding="utf-8") as f:
            r = subprocess.run([node, "--check"], stdin=f, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        self.assertEqual(r.returncode, 0, "node --check %s:\n%s" % (RULES_EXAMPLE, r.stderr))
        cases = [[BUS_NAME + "." + action, details, groups]
                 for action, details, groups, _want in RULES_CASES]
        r = check_run([node, "-e", NODE_RULES_RUNNER, rules, json.dumps(cases)])
        got = json.loads(r.stdout)
        for (action, details, groups, want), result in zip(RULES_CASES, got):
            with self.subTest(action=action, details=details, groups=groups):
                self.assertEqual(result, want)
        # Actions of other services are left alone, whatever the groups.
        r = check_run([node, "-e", NODE_RULES_RUNNER, rules,
                       json.dumps([["org.freedesktop.login1.reboot", {}, ["vmops", "vmadmins"]]])])
        self.assertEqual(json.loads(r.stdout), [None])

    def test_readme_shows_rules_example(self):
        # README.md's "Permissions" shows the example rules as they are.
        with open(os.path.join(self.source, RULES_EXAMPLE), encoding="utf-8") as f:
            rules = f.read().rstrip("\n")
        with open(os.path.join(self.source, "README.md"), encoding="utf-8") as f:
            readme = f.read()
        self.assertIn("```js\n%s\n```\n" % rules, readme)

    def python_package_files(self):
        """{file name: path on the target system} of the installed
        qmachine package."""
        return {os.path.basename(dst): dst for dst in self.installed.values()
                if os.path.basename(os.path.dirname(dst)) == PYTHON_PACKAGE}

    def test_python_package_files(self):
        # every module of python/qmachine is installed, in one directory
        files = self.python_package_files()
        src = os.path.join(self.source, "python", PYTHON_PACKAGE)
        self.assertEqual(sorted(files), sorted(f for f in os.listdir(src) if f.endswith(".py")))
        self.assertEqual(len({os.path.dirname(p) for p in files.values()}), 1, files)
        for name, path in files.items():
            with self.subTest(file=name):
                copy = in_destdir(self.destdir, path)
                with open(copy, "rb") as f, open(os.path.join(src, name), "rb") as g:
                    self.assertEqual(f.read(), g.read())
                mode = stat.S_IMODE(os.stat(copy).st_mode)
                self.assertEqual(mode & 0o444, 0o444, "%s: mode %o" % (name, mode))
                self.assertEqual(mode & 0o022, 0, "%s: mode %o" % (name, mode))

    def test_python_package_dir_is_searched(self):
        # below /usr and /usr/local, the package lands where Debian's
        # python3 looks without PYTHONPATH
        site_dir = os.path.dirname(os.path.dirname(self.python_package_files()["__init__.py"]))
        prefix = norm(self.options["prefix"])
        if prefix not in ("/usr", "/usr/local"):
            self.skipTest("prefix %s: a PYTHONPATH is needed" % prefix)
        sys_path = json.loads(check_run([PYTHON, "-I", "-c",
                                         "import json, sys; print(json.dumps(sys.path))"]).stdout)
        self.assertIn(site_dir, sys_path)

    def test_python_package_imports_from_installed_tree(self):
        init = self.python_package_files()["__init__.py"]
        site_dir = in_destdir(self.destdir, os.path.dirname(os.path.dirname(init)))
        env = dict(os.environ, PYTHONPATH=site_dir, PYTHONDONTWRITEBYTECODE="1")
        code = ("import json, pydoc, qmachine; "
                "print(json.dumps([qmachine.__file__, callable(qmachine.connect), "
                "issubclass(qmachine.NoSuchMachine, qmachine.QMachineError), "
                "len(pydoc.render_doc(qmachine, renderer=pydoc.plaintext))]))")
        # from the temp dir, so the source tree is not on sys.path
        r = subprocess.run([PYTHON, "-c", code], cwd=self.tmp, env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stderr)
        path, has_connect, mapped, doc_len = json.loads(r.stdout)
        self.assertEqual(path, os.path.join(site_dir, PYTHON_PACKAGE, "__init__.py"))
        self.assertTrue(has_connect)
        self.assertTrue(mapped)
        self.assertGreater(doc_len, 1000)

    def test_interface_xml(self):
        for name in INTERFACES:
            with self.subTest(file=name):
                path, copy = self.dest(name)
                self.assertEqual(norm(os.path.dirname(path)), self.expected[INTERFACES[0]])
                self.assert_xml_well_formed(copy)
                with open(copy, "rb") as f, \
                        open(os.path.join(self.source, "introspection", name), "rb") as g:
                    self.assertEqual(f.read(), g.read(), "installed XML differs from introspection/")

    def test_bash_completion(self):
        path, copy = self.dest(COMPLETION)
        self.assertEqual(norm(os.path.dirname(path)), self.expected[COMPLETION])
        with open(copy, "rb") as f, \
                open(os.path.join(self.source, "data", "completion", "qmachinectl.bash"), "rb") as g:
            self.assertEqual(f.read(), g.read())

    def test_man_pages(self):
        if self.options.get("man") == "disabled" or not any(
                os.path.basename(p) in MAN_PAGES for p in self.installed.values()):
            self.skipTest("manual pages not built (-Dman, rst2man)")
        mandir = norm(os.path.join(self.options["prefix"], self.options["mandir"]))
        for name in MAN_PAGES:
            with self.subTest(page=name):
                path, copy = self.dest(name)
                self.assertEqual(os.path.dirname(path), os.path.join(mandir, "man" + name.rsplit(".", 1)[1]))
                with open(copy, encoding="ascii") as f:
                    self.assertIn(".TH ", f.read())

    def test_logrotate(self):
        path, copy = self.dest(LOGROTATE)
        self.assertEqual(norm(os.path.dirname(path)), self.expected[LOGROTATE])
        with open(copy, encoding="utf-8") as f:
            conf = f.read()
        self.assertIn("/var/log/qmachined/*/*.log {", conf)
        for word in ("copytruncate", "missingok", "notifempty", "compress"):
            self.assertRegex(conf, r"\n\s+%s\n" % word)
        logrotate = shutil.which("logrotate") or "/usr/sbin/logrotate"
        if not os.access(logrotate, os.X_OK):
            self.skipTest("logrotate is not installed")
        # The installed file, pointed at a log below a temporary directory
        # that a writer in append mode (as QEMU's stdout) holds open.
        logs = os.path.join(self.tmp, "logrotate", "log")
        os.makedirs(os.path.join(logs, "vm1"))
        os.chmod(os.path.dirname(logs), 0o755)
        os.chmod(logs, 0o750)
        test_conf = os.path.join(self.tmp, "logrotate", "qmachined")
        with open(test_conf, "w", encoding="utf-8") as f:
            f.write(conf.replace("/var/log/qmachined", logs))
        os.chmod(test_conf, 0o644)
        log = os.path.join(logs, "vm1", "qemu.log")
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            os.write(fd, b"before rotation\n" * 100)
            check_run([logrotate, "--force", "--state", os.path.join(self.tmp, "logrotate", "state"),
                       test_conf])
            os.write(fd, b"after\n")
        finally:
            os.close(fd)
        with open(log, "rb") as f:
            self.assertEqual(f.read(), b"after\n")
        # delaycompress: the first rotation stays uncompressed
        with open(log + ".1", "rb") as f:
            self.assertEqual(f.read(), b"before rotation\n" * 100)

    def test_dir_options_and_pkg_config(self):
        # A configure-only build directory (nothing compiled) with stub .pc
        # files for dbus-1, systemd and polkit-gobject-1 ahead of the real
        # ones: options win over pkg-config, pkg-config variables are taken
        # with our prefix instead of theirs.
        stubs = os.path.join(self.tmp, "pkgconfig")
        os.makedirs(stubs)
        for name, text in STUB_PC.items():
            with open(os.path.join(stubs, name), "w") as f:
                f.write(text)
        build = os.path.join(self.tmp, "build-dirs")
        env = pkg_config_env({}, [stubs])
        check_run(["meson", "setup", build, self.source, "--prefix=/usr", "-Dtests=false",
                   "-Ddbus_policy_dir=etc/dbus-1/system.d",
                   "-Dpolkit_actions_dir=/opt/qm-test/actions"], env=env)
        installed = introspect(build, "installed")
        want = {
            BUS_POLICY: "/usr/etc/dbus-1/system.d",
            ACTIVATION: "/usr/stub-share/dbus-1/stub-system-services",
            UNIT: "/usr/stub/systemd/system",
            SYSUSERS: "/usr/stub/sysusers.d",
            POLKIT_ACTIONS: "/opt/qm-test/actions",
            DAEMON: "/usr/sbin",
            INTERFACES[0]: "/usr/stub-share/dbus-1/stub-interfaces",
            LOGROTATE: "/etc/logrotate.d",
            COMPLETION: "/usr/share/bash-completion/completions",
        }
        got = {name: os.path.dirname(installed_path(installed, name)) for name in want}
        self.assertEqual(got, want)
        # Debian's python3 searches /usr/lib/python3/dist-packages
        self.assertIn("/usr/lib/python3/dist-packages/%s/client.py" % PYTHON_PACKAGE,
                      installed.values())
        # The same rules as expected_dirs(), which checks the real build.
        self.assertEqual(expected_dirs(build_options(build), env),
                         {k: norm(v) for k, v in want.items()})
        # The generated files name the daemon below this build's prefix.
        unit = read_ini(os.path.join(build, "data", UNIT))
        self.assertEqual(unit["Service"]["ExecStart"], "/usr/sbin/qmachined --system")
        service = read_ini(os.path.join(build, "data", ACTIVATION))
        self.assertEqual(service["D-BUS Service"]["Exec"], "/usr/sbin/qmachined --system")


if __name__ == "__main__":
    unittest.main(verbosity=2)
