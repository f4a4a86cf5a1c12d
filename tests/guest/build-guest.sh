#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build the integration-test guest: OUTDIR/vmlinuz and OUTDIR/initramfs.gz.
#
#   tests/guest/build-guest.sh OUTDIR
#
# The kernel is Debian's cloud kernel, the userland busybox-static plus
# qemu-ga from qemu-guest-agent and the libraries it loads; all are fetched
# with apt-get download and unpacked with dpkg-deb, nothing is installed. A
# second run with the same script, init and rootfs/ does nothing.
# See tests/guest/README.md.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
outdir=$1
init_script=$here/init
rootfs=$here/rootfs
kernel_meta=linux-image-cloud-amd64
# The kernel modules the guest loads (the cloud kernel has them as modules),
# each after the modules it depends on: /init loads them in this order.
# A module the kernel builds in (modules.builtin) is skipped.
modules="drivers/input/evdev.ko drivers/acpi/button.ko
drivers/misc/pvpanic/pvpanic.ko drivers/misc/pvpanic/pvpanic-mmio.ko
drivers/virtio/virtio_ring.ko drivers/virtio/virtio.ko
drivers/virtio/virtio_pci_modern_dev.ko drivers/virtio/virtio_pci_legacy_dev.ko
drivers/virtio/virtio_pci.ko drivers/char/virtio_console.ko
net/core/failover.ko drivers/net/net_failover.ko drivers/net/virtio_net.ko"
# qemu-ga and the packages of every library its loader needs (the closure of
# the NEEDED entries is computed below; a missing one fails the build).
agent_pkgs="qemu-guest-agent libc6 libglib2.0-0 libpcre2-8-0 libnuma1 libudev1
liburing2"
libdir=lib/x86_64-linux-gnu

log() { echo "build-guest: $*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
stamp=$outdir/guest.stamp

# The inputs: this script, the guest's init and the files of rootfs/.
inputs_hash=$({
    cat "${BASH_SOURCE[0]}" "$init_script"
    (cd "$rootfs" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
} | sha256sum | cut -d' ' -f1)
if [ -f "$outdir/vmlinuz" ] && [ -f "$outdir/initramfs.gz" ] &&
    [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "$inputs_hash" ]; then
    # Up to date. Touch the outputs so that build tools see them as newer
    # than their inputs.
    touch "$outdir/vmlinuz" "$outdir/initramfs.gz" "$stamp"
    exit 0
fi

# Work next to the outputs: the unpacked busybox runs from there (a
# noexec /tmp would not do), and the outputs are moved into place.
work=$(mktemp -d "$outdir/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT

apt_opts=(-q)
if [ "$(id -u)" = 0 ]; then
    # apt-get download would otherwise warn that user _apt cannot write
    # to our work directory.
    apt_opts+=(-o APT::Sandbox::User=root)
fi
updated=no

apt_update() {
    if [ "$updated" = yes ]; then
        return 1
    fi
    if [ "$(id -u)" != 0 ]; then
        log "apt-get update is needed but we are not root"
        return 1
    fi
    log "running apt-get update"
    apt-get update -q >&2 || return 1
    updated=yes
}

# kernel_package: the versioned package the metapackage depends on,
# e.g. linux-image-6.1.0-56-cloud-amd64.
kernel_package() {
    local deps
    deps=$(apt-cache depends "$kernel_meta" 2>/dev/null || true)
    sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' <<<"$deps" |
        head -n1
}

# download PACKAGE...: fetch the .deb files into the current directory.
download() {
    apt-get download "${apt_opts[@]}" "$@" >&2
}

cd "$work"

kpkg=$(kernel_package)
if [ -z "$kpkg" ]; then
    apt_update || die "cannot resolve $kernel_meta (apt-get update as root?)"
    kpkg=$(kernel_package)
    [ -n "$kpkg" ] || die "$kernel_meta depends on no linux-image-*-cloud-amd64"
fi

bb_installed=no
if [ "$(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null || true)" = \
    "install ok installed" ] && [ -x /bin/busybox ]; then
    bb_installed=yes
fi
pkgs="$kpkg $agent_pkgs"
if [ "$bb_installed" = no ]; then
    pkgs="$pkgs busybox-static"
fi

# shellcheck disable=SC2086 # one word per package
log "downloading" $pkgs
# shellcheck disable=SC2086
if ! download $pkgs 2>"$work/download.err"; then
    # Stale package lists: the archive may have dropped that version.
    cat "$work/download.err" >&2
    apt_update || die "apt-get download $pkgs failed"
    kpkg=$(kernel_package)
    [ -n "$kpkg" ] || die "cannot resolve $kernel_meta"
    pkgs="$kpkg $agent_pkgs"
    if [ "$bb_installed" = no ]; then
        pkgs="$pkgs busybox-static"
    fi
    # shellcheck disable=SC2086
    download $pkgs || die "apt-get download $pkgs failed"
fi

# The kernel and the few modules the guest needs. tar complains about a
# module the kernel builds in; what must be there is checked below.
mkdir kernel
kmods=()
for m in $modules; do
    kmods+=("./lib/modules/*/kernel/$m")
done
dpkg-deb --fsys-tarfile "$kpkg"_*.deb |
    tar -x -C kernel --wildcards './boot/vmlinuz-*' \
        './lib/modules/*/modules.builtin' "${kmods[@]}" 2>"$work/tar.err" || true
vmlinuz=$(find kernel/boot -name 'vmlinuz-*' -type f | head -n1)
[ -n "$vmlinuz" ] || die "no boot/vmlinuz-* in $kpkg: $(cat "$work/tar.err")"
builtin=$(find kernel/lib/modules -name modules.builtin -type f | head -n1)
[ -n "$builtin" ] || die "no modules.builtin in $kpkg"

# module_depends KO: the modules KO needs, from its .modinfo "depends=".
module_depends() {
    tr '\0' '\n' <"$1" | sed -n 's/^depends=//p' | head -n1 | tr ',' ' '
}

# The modules to copy, checked against the order /init loads them in: each
# one's dependencies are built in or come earlier in the list.
ko_files=()
loaded=" "
for m in $modules; do
    name=$(basename "$m" .ko)
    f=$(find kernel/lib/modules -path "*/kernel/$m" -type f | head -n1)
    if [ -z "$f" ]; then
        grep -qx "kernel/$m" "$builtin" || die "$m is neither in $kpkg nor built in"
        loaded="$loaded$name "
        continue
    fi
    for dep in $(module_depends "$f"); do
        dep=${dep//-/_}
        case "$loaded" in
        *" $dep "*) ;;
        *) grep -q "/$dep.ko\$" "$builtin" ||
            die "$name needs $dep, which is not loaded before it" ;;
        esac
    done
    loaded="$loaded${name//-/_} "
    ko_files+=("$f")
done

# qemu-ga and the libraries its loader needs: the closure of the NEEDED
# entries over the unpacked packages, the loader included.
mkdir agent
for p in $agent_pkgs; do
    dpkg-deb -x "$p"_*.deb agent
done
qemu_ga=agent/usr/sbin/qemu-ga
[ -x "$qemu_ga" ] || die "no usr/sbin/qemu-ga in qemu-guest-agent"
interp=$(readelf -l "$qemu_ga" | sed -n 's/.*interpreter: \(.*\)\]$/\1/p')
[ "$interp" = /lib64/ld-linux-x86-64.so.2 ] || die "qemu-ga wants the loader $interp"

# needed ELF: the sonames in ELF's dynamic section.
needed() {
    readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'
}

# find_lib SONAME: where an unpacked package has it.
find_lib() {
    local d
    for d in "agent/$libdir" "agent/usr/$libdir"; do
        if [ -e "$d/$1" ]; then
            echo "$d/$1"
            return 0
        fi
    done
    return 1
}

libs=(ld-linux-x86-64.so.2)
seen=" ld-linux-x86-64.so.2 "
queue=("$qemu_ga")
while [ ${#queue[@]} -gt 0 ]; do
    elf=${queue[0]}
    queue=("${queue[@]:1}")
    for so in $(needed "$elf"); do
        case "$seen" in
        *" $so "*) continue ;;
        esac
        seen="$seen$so "
        f=$(find_lib "$so") || die "$(basename "$elf") needs $so, in none of: $agent_pkgs"
        libs+=("$so")
        queue+=("$f")
    done
done

# busybox, as the host's busybox-static or unpacked from its .deb.
if [ "$bb_installed" = yes ]; then
    busybox=/bin/busybox
else
    mkdir bb
    dpkg-deb -x busybox-static_*.deb bb
    busybox=$work/bb/bin/busybox
fi
[ -x "$busybox" ] || die "no busybox binary"

# The initramfs tree: busybox with a link per applet in /bin, the modules,
# and /init. /init creates everything else at boot.
root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,root,etc,var,lib/modules,lib64,$libdir}
ln -s bin "$root/sbin"
ln -s ../run "$root/var/run"
mkdir -p "$root/usr"
ln -s ../bin "$root/usr/bin"
ln -s ../bin "$root/usr/sbin"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
cp "${ko_files[@]}" "$root/lib/modules/"
install -m 0755 "$qemu_ga" "$root/bin/qemu-ga"
for so in "${libs[@]}"; do
    f=$(find_lib "$so") || die "no $so"
    cp -L "$f" "$root/$libdir/$so"
done
ln -s "../$libdir/ld-linux-x86-64.so.2" "$root/lib64/ld-linux-x86-64.so.2"
# The helpers (qm-agent-start, qm-counter, ...), udhcpc's script and the web
# server's page.
cp -R "$rootfs/." "$root/"
install -m 0755 "$init_script" "$root/init"

(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
    "$busybox" cpio -o -H newc -R 0:0 --ignore-devno --renumber-inodes 2>/dev/null) |
    gzip -n -9 >"$work/initramfs.gz"

# Replace the outputs; the stamp last, so that an interrupted build is
# redone.
rm -f "$stamp"
mv -f "$vmlinuz" "$outdir/vmlinuz"
mv -f "$work/initramfs.gz" "$outdir/initramfs.gz"
# The kernel keeps the package's mtime otherwise; build tools compare it.
touch "$outdir/vmlinuz" "$outdir/initramfs.gz"
{
    echo "$inputs_hash"
    echo "kernel: $kpkg"
    echo "busybox: $("$busybox" 2>&1 | head -n1)"
    for p in $agent_pkgs; do
        echo "agent: $p $(dpkg-deb -f "$p"_*.deb Version)"
    done
    echo "agent libraries: ${libs[*]}"
} >"$stamp"
log "built $outdir/vmlinuz and $outdir/initramfs.gz from $kpkg"
