# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by tools/check and tools/quickstart (sourced, not run).

# systemd: for systemd-analyze, which tests/integration/test_install.py uses
# to verify the unit (libsystemd-dev does not pull it in).
# clang, libclang-rt-14-dev: the libFuzzer targets (libclang_rt.fuzzer).
QM_PACKAGES="meson ninja-build gcc pkg-config libsystemd-dev libglib2.0-dev libpcre2-dev
libjson-glib-dev qemu-system-x86 qemu-utils dbus python3 python3-gi
python3-dbus python3-dbusmock libxml2-utils systemd clang libclang-rt-14-dev"
# iproute2, openssh-server: the two hosts of the remote and migration tests
# (network namespaces, sshd; tests/integration/qmtest/twohost.py).
# ansible-core: the Ansible module's test (contrib/ansible).
QM_PACKAGES="$QM_PACKAGES iproute2 openssh-server ansible-core"
# dpkg-dev, build-essential, debhelper, dh-python, lintian: the Debian
# packages (debian/) and their test (tests/integration/test_debian_package.py).
QM_PACKAGES="$QM_PACKAGES dpkg-dev build-essential debhelper dh-python lintian"
# python3-docutils: rst2man for the manual pages (man/), man-db and
# groff-base to check them; bash-completion, logrotate: their files' tests;
# libglib2.0-dev-bin: gdbus-codegen (tests/codegen).
QM_PACKAGES="$QM_PACKAGES python3-docutils man-db groff-base bash-completion logrotate libglib2.0-dev-bin"

# qm_install_packages: install the Debian packages we need that are missing.
qm_install_packages() {
    local missing="" p status
    for p in $QM_PACKAGES; do
        status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        case "$status" in
            *" installed") ;;
            *) missing="$missing $p" ;;
        esac
    done
    if [ -z "$missing" ]; then
        return 0
    fi
    echo "Installing missing packages:$missing"
    if [ "$(id -u)" != 0 ]; then
        echo "error: missing packages and not root; run: apt-get install$missing" >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q || return 1
    # shellcheck disable=SC2086
    apt-get install -y -q $missing || return 1
}

# qm_setup_build DIR [MESON OPTIONS...]: configure DIR, or reconfigure it.
qm_setup_build() {
    local dir=$1
    shift
    if [ -f "$dir/build.ninja" ]; then
        meson setup --reconfigure "$dir" "$@"
    else
        rm -rf "$dir"
        meson setup "$dir" "$@"
    fi
}

# qm_kvm_usable: true when the CPU can run KVM guests (TESTING.md).
qm_kvm_usable() {
    case "${QMACHINED_TEST_KVM:-}" in
        1) return 0 ;;
        0) return 1 ;;
    esac
    grep -qwE 'vmx|svm' /proc/cpuinfo && [ -e /dev/kvm ]
}

# qm_ensure_qmachine_user: as root, create the system user "qmachine"
# (QEMU's default user for machines root defines, member of group kvm) when
# it is missing, the way an installed qmachined gets it: systemd-sysusers
# with data/qmachine.sysusers (it needs no running systemd), else useradd.
# Does nothing when the user exists or when not root.
qm_ensure_qmachine_user() {
    if getent passwd qmachine >/dev/null; then
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "note: there is no user qmachine, and only root can create it" >&2
        return 0
    fi
    # systemd-sysusers reads a relative file name below its config dirs.
    local conf
    conf=$(readlink -f "$(dirname "${BASH_SOURCE[0]}")/../data/qmachine.sysusers")
    if command -v systemd-sysusers >/dev/null; then
        echo "Creating user qmachine: systemd-sysusers $conf"
        systemd-sysusers "$conf" || return 1
    else
        if ! getent group kvm >/dev/null; then
            echo "Creating group kvm: groupadd --system kvm"
            groupadd --system kvm || return 1
        fi
        echo "Creating user qmachine: useradd --system ... --groups kvm qmachine"
        useradd --system --user-group --no-create-home --home-dir / --shell /usr/sbin/nologin \
            --comment "QEMU virtual machines of qmachined" --groups kvm qmachine || return 1
    fi
    getent passwd qmachine
}
