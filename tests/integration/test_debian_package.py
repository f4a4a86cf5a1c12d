#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The Debian packages (debian/) build, are lintian clean, hold the right
files, install into a fresh root, and what they install works:

- `dpkg-buildpackage -us -uc -b` in a copy of the source tree (the files
  git knows, as a fresh clone of the working tree would have them), so
  the repository itself is never touched; the versions of meson.build and
  debian/changelog agree;
- lintian on the .changes reports no error and no warning, and every
  override in debian/*.lintian-overrides says why (a comment above it);
- the file lists (`dpkg-deb -c`): the daemon and its system integration
  files in qmachined, the client alone in qmachinectl, every module of
  python/qmachine in python3-qmachine; no file in two packages;
- the control fields: what the daemon needs at run time;
- the maintainer scripts (`dpkg-deb -e`) are valid sh, and the postinst
  creates the user qmachine in group kvm: for real with `dpkg --root`
  into an empty root (dpkg runs the scripts with DPKG_ROOT, and
  systemd-sysusers honours it), and, without systemd-sysusers, through
  adduser (stubbed: adduser knows no DPKG_ROOT);
- the installed daemon, with the installed bus policy, owns its name on a
  private bus, and the installed qmachinectl and Python client talk to it.

Skipped with the reason when dpkg-buildpackage or debhelper (dh,
dh_python3) is missing; the lintian check alone when lintian is.

Environment (tests/integration/meson.build sets the first):
  QMACHINED_SOURCE_ROOT  the source tree (default: two levels up)
  QMACHINED_TEST_KEEP    1 keeps the temporary directory
"""

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import qmtest

PACKAGES = ("qmachined", "qmachinectl", "python3-qmachine")
BUILD_TOOLS = ("dpkg-buildpackage", "dh", "dh_python3", "dpkg-deb")

# Files each package must hold (paths as dpkg-deb -c shows them, without
# the leading "."); python3-qmachine's modules are checked separately.
REQUIRED_FILES = {
    "qmachined": (
        "/usr/sbin/qmachined",
        "/lib/systemd/system/qmachined.service",
        "/lib/systemd/system/qmachined-guests.service",
        "/usr/lib/sysusers.d/qmachined.conf",
        "/usr/share/dbus-1/system.d/org.qmachine.QMachine1.conf",
        "/usr/share/dbus-1/system-services/org.qmachine.QMachine1.service",
        "/usr/share/polkit-1/actions/org.qmachine.QMachine1.policy",
        "/usr/share/dbus-1/interfaces/org.qmachine.QMachine1.Manager.xml",
        "/usr/share/dbus-1/interfaces/org.qmachine.QMachine1.Machine.xml",
        "/etc/logrotate.d/qmachined",
        "/usr/share/man/man8/qmachined.8.gz",
        "/usr/share/man/man5/org.qmachine.QMachine1.5.gz",
        "/usr/share/doc/qmachined/copyright",
    ),
    "qmachinectl": (
        "/usr/bin/qmachinectl",
        "/usr/share/man/man1/qmachinectl.1.gz",
        "/usr/share/bash-completion/completions/qmachinectl",
        "/usr/share/doc/qmachinectl/copyright",
    ),
    "python3-qmachine": (
        "/usr/share/doc/python3-qmachine/copyright",
    ),
}
PYTHON_DIR = "/usr/lib/python3/dist-packages/qmachine"

# Relations of the daemon's package (debian/control): what it runs.
QMACHINED_DEPENDS = ("qemu-system-x86 | qemu-system", "qemu-utils", "adduser",
                     "default-dbus-system-bus | dbus-system-bus")


def source_root():
    root = os.environ.get("QMACHINED_SOURCE_ROOT")
    if root:
        return os.path.abspath(root)
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(argv, **kwargs):
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, **kwargs)


def check_run(argv, **kwargs):
    r = run(argv, **kwargs)
    if r.returncode != 0:
        raise AssertionError("%s failed (exit %d):\n%s" % (" ".join(argv), r.returncode,
                                                           r.stdout[-6000:]))
    return r.stdout


def meson_version(source):
    with open(os.path.join(source, "meson.build"), encoding="utf-8") as f:
        m = re.search(r"^\s*version\s*:\s*'([^']+)'", f.read(), re.M)
    return m.group(1)


def source_files(source):
    """The files a fresh clone of the working tree has: what git tracks
    and what it does not ignore (a new, uncommitted file included)."""
    out = subprocess.run(["git", "-C", source, "ls-files", "-z", "--cached", "--others",
                          "--exclude-standard"], stdout=subprocess.PIPE, check=True).stdout
    names = sorted({n for n in out.decode().split("\0") if n})
    return [n for n in names if os.path.lexists(os.path.join(source, n))]


def copy_tree(source, dest, names):
    for name in names:
        target = os.path.join(dest, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(os.path.join(source, name), target, follow_symlinks=False)


def git_status(source):
    return subprocess.run(["git", "-C", source, "status", "--porcelain", "--ignored",
                           "--", "debian"], stdout=subprocess.PIPE, text=True).stdout


class InstalledEnvironment(qmtest.Environment):
    """The private system bus with the installed bus policy (not the
    source tree's), and the installed daemon (QMACHINED)."""

    def __init__(self, root):
        super().__init__()
        self.root = root

    def start_bus(self):
        policy = os.path.join(self.root, "usr/share/dbus-1/system.d/org.qmachine.QMachine1.conf")
        with open(self.path("bus", "dbus-daemon.log"), "wb") as log:
            self.bus, line = qmtest.start_dbus_daemon(
                self.path("bus", "system.conf"),
                qmtest.system_bus_config(self.path("bus", "system_bus_socket"), policy), log)
        if not line:
            raise RuntimeError("dbus-daemon did not start (exit %s)" % self.bus.poll())
        self.address = self.system_address = line


class DebianPackageTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        missing = [t for t in BUILD_TOOLS if shutil.which(t) is None]
        if missing:
            raise unittest.SkipTest("cannot build the Debian packages: %s missing "
                                    "(apt-get install dpkg-dev debhelper dh-python)"
                                    % ", ".join(missing))
        cls.source = source_root()
        if not os.path.isdir(os.path.join(cls.source, ".git")) and \
                not os.path.isfile(os.path.join(cls.source, ".git")):
            raise unittest.SkipTest("not a git checkout: the files to package are unknown")
        cls.version = meson_version(cls.source)
        r = run(["dpkg-checkbuilddeps", os.path.join(cls.source, "debian", "control")])
        if r.returncode != 0:
            raise unittest.SkipTest("the build dependencies are missing (tools/lib.sh "
                                    "installs them): %s" % r.stdout.strip())
        cls.tmp = tempfile.mkdtemp(prefix="qmachined-deb-")
        if os.environ.get("QMACHINED_TEST_KEEP") == "1":
            print("keeping %s" % cls.tmp, file=sys.stderr)
        else:
            cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)
        status_before = git_status(cls.source)
        tree = os.path.join(cls.tmp, "qmachined")
        copy_tree(cls.source, tree, source_files(cls.source))
        # The outputs land in the parent directory, cls.tmp.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MESON", "DEB_"))}
        env["LC_ALL"] = "C.UTF-8"
        start = time.monotonic()
        r = run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=tree, env=env)
        cls.build_seconds = time.monotonic() - start
        with open(os.path.join(cls.tmp, "build.log"), "w") as f:
            f.write(r.stdout)
        if r.returncode != 0:
            raise AssertionError("dpkg-buildpackage failed (exit %d):\n%s"
                                 % (r.returncode, r.stdout[-8000:]))
        print("dpkg-buildpackage: %.1f s" % cls.build_seconds, file=sys.stderr)
        cls.changes = glob.glob(os.path.join(cls.tmp, "qmachined_%s_*.changes" % cls.version))
        cls.debs = {}
        for pkg in PACKAGES:
            found = glob.glob(os.path.join(cls.tmp, "%s_%s_*.deb" % (pkg, cls.version)))
            if len(found) == 1:
                cls.debs[pkg] = found[0]
        cls.status_unchanged = (status_before == git_status(cls.source), status_before)

    def deb(self, pkg):
        self.assertIn(pkg, self.debs, "no %s_%s_*.deb in %s" % (pkg, self.version,
                                                               sorted(os.listdir(self.tmp))))
        return self.debs[pkg]

    def contents(self, pkg):
        """{path: dpkg-deb -c line} of the regular files and links."""
        out = {}
        for line in check_run(["dpkg-deb", "-c", self.deb(pkg)]).splitlines():
            path = line.split(None, 5)[5].split(" -> ")[0]
            if path.startswith("./") and not line.startswith("d"):
                out[path[1:]] = line
        return out

    def field(self, pkg, name):
        return check_run(["dpkg-deb", "-f", self.deb(pkg), name]).strip()

    def test_built_from_a_copy(self):
        self.assertEqual(sorted(self.debs), sorted(PACKAGES))
        self.assertEqual(len(self.changes), 1, os.listdir(self.tmp))
        # the build ran in the copy: nothing new below debian/ here
        same, before = self.status_unchanged
        self.assertTrue(same, "the source tree's debian/ changed; before:\n%s" % before)

    def test_changelog_version_is_meson_version(self):
        out = check_run(["dpkg-parsechangelog", "-l",
                         os.path.join(self.source, "debian", "changelog"), "-S", "Version"])
        self.assertEqual(out.strip(), self.version)
        for pkg in PACKAGES:
            with self.subTest(pkg=pkg):
                self.assertEqual(self.field(pkg, "Version"), self.version)

    def test_lintian_clean(self):
        if shutil.which("lintian") is None:
            self.skipTest("lintian is not installed")
        r = run(["lintian", "--pedantic", "--display-info", self.changes[0]])
        tags = [line for line in r.stdout.splitlines() if re.match(r"^[A-Z]: ", line)]
        bad = [t for t in tags if t[0] in "EW"]
        self.assertEqual(bad, [], "lintian:\n%s" % r.stdout)
        self.assertNotIn("E:", r.stdout)
        if tags:
            print("lintian (info and pedantic only):\n  " + "\n  ".join(tags), file=sys.stderr)

    def test_lintian_overrides_give_reasons(self):
        for path in glob.glob(os.path.join(self.source, "debian", "*lintian-overrides")):
            with open(path, encoding="utf-8") as f:
                lines = [line.rstrip("\n") for line in f]
            for i, line in enumerate(lines):
                if line.strip() and not line.startswith("#"):
                    with self.subTest(override=line):
                        self.assertTrue(i > 0 and lines[i - 1].startswith("# "),
                                        "%s: no reason above %r" % (path, line))

    def test_file_lists(self):
        seen = {}
        for pkg in PACKAGES:
            files = self.contents(pkg)
            with self.subTest(pkg=pkg):
                for path in REQUIRED_FILES[pkg]:
                    self.assertIn(path, files)
                for path in files:
                    self.assertFalse(path.startswith("/usr/local/"), path)
                    self.assertNotIn(path, seen, "%s is in %s and %s"
                                     % (path, seen.get(path), pkg))
                    seen[path] = pkg
        # the client alone, no daemon files
        ctl = [p for p in self.contents("qmachinectl")
               if not p.startswith(("/usr/share/doc/", "/usr/share/man/"))]
        self.assertEqual(ctl, ["/usr/bin/qmachinectl",
                               "/usr/share/bash-completion/completions/qmachinectl"])
        # every module of python/qmachine, and only there
        modules = sorted(f for f in os.listdir(os.path.join(self.source, "python", "qmachine"))
                         if f.endswith(".py"))
        py = sorted(os.path.basename(p) for p in self.contents("python3-qmachine")
                    if os.path.dirname(p) == PYTHON_DIR)
        self.assertEqual(py, modules)
        self.assertEqual([p for p in seen if p.endswith(".py") and seen[p] != "python3-qmachine"],
                         [])
        # executables are executable, the rest is not
        lines = self.contents("qmachined")
        self.assertTrue(lines["/usr/sbin/qmachined"].startswith("-rwxr-xr-x"))
        self.assertTrue(lines["/lib/systemd/system/qmachined.service"].startswith("-rw-r--r--"))

    def test_control_fields(self):
        depends = [d.strip() for d in self.field("qmachined", "Depends").split(",")]
        for want in QMACHINED_DEPENDS:
            self.assertIn(want, depends)
        self.assertIn("polkitd", self.field("qmachined", "Recommends"))
        self.assertEqual(self.field("python3-qmachine", "Architecture"), "all")
        py_depends = self.field("python3-qmachine", "Depends")
        self.assertRegex(py_depends, r"(^|, )python3(:any)?( |,|$)")
        self.assertIn("python3-gi", py_depends)
        self.assertNotIn("qmachined", self.field("qmachinectl", "Depends"))

    def maintainer_scripts(self, pkg):
        out = os.path.join(self.tmp, "control", pkg)
        if not os.path.isdir(out):
            os.makedirs(os.path.dirname(out), exist_ok=True)
            check_run(["dpkg-deb", "-e", self.deb(pkg), out])
        return out

    def test_maintainer_scripts_are_valid_sh(self):
        for pkg in PACKAGES:
            control = self.maintainer_scripts(pkg)
            for name in ("preinst", "postinst", "prerm", "postrm"):
                script = os.path.join(control, name)
                if os.path.exists(script):
                    with self.subTest(pkg=pkg, script=name):
                        check_run(["sh", "-n", script])
        postinst = os.path.join(self.maintainer_scripts("qmachined"), "postinst")
        with open(postinst, encoding="utf-8") as f:
            text = f.read()
        self.assertIn('systemd-sysusers ${DPKG_ROOT:+--root="$DPKG_ROOT"} qmachined.conf', text)
        self.assertIn("adduser --system", text)

    def test_logrotate_file_is_a_conffile(self):
        with open(os.path.join(self.maintainer_scripts("qmachined"), "conffiles"),
                  encoding="utf-8") as f:
            self.assertEqual(f.read().split(), ["/etc/logrotate.d/qmachined"])

    def fresh_root(self, name):
        """An empty root that dpkg --root accepts, with /etc/passwd and
        /etc/group as a base system has them (group kvm from udev)."""
        root = os.path.join(self.tmp, name)
        for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"):
            os.makedirs(os.path.join(root, d))
        for f in ("var/lib/dpkg/status", "var/lib/dpkg/available"):
            open(os.path.join(root, f), "w").close()
        with open(os.path.join(root, "etc", "passwd"), "w") as f:
            f.write("root:x:0:0:root:/root:/bin/bash\n")
        with open(os.path.join(root, "etc", "group"), "w") as f:
            f.write("root:x:0:\nkvm:x:108:\n")
        return root

    def dpkg_root(self, root, *args):
        # Scripts run outside a chroot with DPKG_ROOT set; the base system
        # (libc, dbus, qemu) is not in the root, hence --force-depends.
        return check_run(["dpkg", "--root=" + root, "--force-script-chrootless",
                          "--force-not-root", "--force-depends", "--log=/dev/null"] + list(args))

    def test_install_into_fresh_root(self):
        if shutil.which("systemd-sysusers") is None:
            self.skipTest("systemd-sysusers is not installed (the postinst's first choice)")
        root = self.fresh_root("root-dpkg")
        self.dpkg_root(root, "-i", self.deb("qmachined"), self.deb("qmachinectl"))
        # dh_python3's postinst runs py3compile, which knows no DPKG_ROOT:
        # unpacked only.
        self.dpkg_root(root, "--unpack", self.deb("python3-qmachine"))
        status = check_run(["dpkg-query", "--root=" + root, "-W", "-f",
                            "${Package} ${Status}\n"])
        self.assertEqual(sorted(status.splitlines()),
                         ["python3-qmachine install ok unpacked",
                          "qmachinectl install ok installed",
                          "qmachined install ok installed"])
        passwd, group = qmtest.read_passwd_group(root)
        user = passwd.get("qmachine")
        self.assertIsNotNone(user, passwd)
        self.assertNotEqual(user[2], "0")
        self.assertTrue(user[6].endswith("/nologin"), user)
        self.assertEqual(group["kvm"][2], "108")
        self.assertIn("qmachine", group["kvm"][3].split(","))
        # the unit is enabled in the root (deb-systemd-helper), not here
        self.assertTrue(os.path.islink(os.path.join(
            root, "etc/systemd/system/multi-user.target.wants/qmachined.service")))
        for path in REQUIRED_FILES["qmachined"]:
            self.assertTrue(os.path.exists(root + path), path)
        # configuring again (as on an upgrade) changes nothing
        self.dpkg_root(root, "-i", self.deb("qmachined"))
        self.assertEqual(qmtest.read_passwd_group(root), (passwd, group))

    def test_postinst_without_sysusers_uses_adduser(self):
        # A PATH of stubs only: no systemd-sysusers, getent finds nothing,
        # adduser, addgroup and the debhelper tools log their arguments.
        bindir = os.path.join(self.tmp, "stubs")
        os.makedirs(bindir)
        log = os.path.join(self.tmp, "stubs.log")
        for name in ("adduser", "addgroup", "deb-systemd-helper", "deb-systemd-invoke",
                     "systemctl"):
            with open(os.path.join(bindir, name), "w") as f:
                f.write('#!/bin/sh\necho "%s $*" >>%s\n' % (name, log))
            os.chmod(os.path.join(bindir, name), 0o755)
        with open(os.path.join(bindir, "getent"), "w") as f:
            f.write("#!/bin/sh\nexit 2\n")
        os.chmod(os.path.join(bindir, "getent"), 0o755)
        postinst = os.path.join(self.maintainer_scripts("qmachined"), "postinst")
        check_run(["/bin/sh", postinst, "configure", ""], env={"PATH": bindir})
        with open(log, encoding="utf-8") as f:
            calls = [line.split() for line in f
                     if line.startswith(("adduser", "addgroup"))]
        self.assertEqual(calls[0], ["addgroup", "--system", "--quiet", "kvm"])
        self.assertEqual(calls[1][:2], ["adduser", "--system"])
        self.assertEqual(calls[1][-1], "qmachine")
        self.assertIn("/usr/sbin/nologin", calls[1])
        self.assertIn("--no-create-home", calls[1])
        self.assertEqual(calls[2], ["adduser", "--quiet", "qmachine", "kvm"])
        self.assertEqual(len(calls), 3, calls)
        r = run(["/bin/sh", postinst, "bogus"], env={"PATH": bindir})
        self.assertNotEqual(r.returncode, 0)

    def test_installed_daemon_and_clients(self):
        root = os.path.join(self.tmp, "root-extracted")
        for pkg in PACKAGES:
            check_run(["dpkg-deb", "-x", self.deb(pkg), root])
        os.environ["QMACHINED"] = os.path.join(root, "usr/sbin/qmachined")
        env = InstalledEnvironment(root)
        try:
            env.start()
            self.check_clients(root, env)
        finally:
            env.stop()
        self.assertEqual(env.problems, [])

    def check_clients(self, root, env):
        ctl = [os.path.join(root, "usr/bin/qmachinectl"), "--address", env.address]
        self.assertEqual(check_run(ctl + ["--version"]).split()[-1], self.version)
        args = ["--machine", "none"]
        for a in ["-nodefaults"] + qmtest.accel_args():
            args += ["--arg", a]
        self.assertEqual(check_run(ctl + ["create", "pkg-1"] + args), "pkg-1\n")
        check_run(ctl + ["start", "pkg-1"])
        rows = [line.split()[:2] for line in check_run(ctl + ["list"]).splitlines()]
        self.assertIn(["pkg-1", "running"], rows)
        # the Python client from the package, not from the source tree
        code = ("import qmachine, sys; m = qmachine.connect(sys.argv[1]); "
                "print(qmachine.__file__); "
                "print(*sorted((i.name, i.state) for i in m.list_machines()))")
        pyenv = dict(os.environ, PYTHONPATH=os.path.join(root, "usr/lib/python3/dist-packages"),
                     PYTHONDONTWRITEBYTECODE="1")
        out = check_run(["/usr/bin/python3", "-c", code, env.address], env=pyenv,
                        cwd=self.tmp).splitlines()
        self.assertEqual(out, [os.path.join(root, PYTHON_DIR.lstrip("/"), "__init__.py"),
                               "('pkg-1', 'running')"])
        check_run(ctl + ["stop", "pkg-1"])
        check_run(ctl + ["remove", "pkg-1"])
        rows = [line.split()[:2] for line in check_run(ctl + ["list"]).splitlines()]
        self.assertNotIn("pkg-1", [row[0] for row in rows if row])


if __name__ == "__main__":
    unittest.main(verbosity=2)
