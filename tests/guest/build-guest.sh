#!/bin/bash
# Build the integration-test guest: OUTDIR/vmlinuz and OUTDIR/initramfs.gz.
#
#   tests/guest/build-guest.sh OUTDIR
#
# The kernel is Debian's cloud kernel, the userland busybox-static; both are
# fetched with apt-get download and unpacked with dpkg-deb, nothing is
# installed. A second run with the same script and init does nothing.
# See tests/guest/README.md.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
outdir=$1
init_script=$here/init
kernel_meta=linux-image-cloud-amd64
# The kernel modules the guest loads (the cloud kernel has them as modules).
modules="drivers/input/evdev.ko drivers/acpi/button.ko
drivers/misc/pvpanic/pvpanic.ko drivers/misc/pvpanic/pvpanic-mmio.ko"

log() { echo "build-guest: $*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
stamp=$outdir/guest.stamp

# The inputs: this script and the guest's init.
inputs_hash=$(cat "${BASH_SOURCE[0]}" "$init_script" | sha256sum | cut -d' ' -f1)
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
pkgs=$kpkg
if [ "$bb_installed" = no ]; then
    pkgs="$pkgs busybox-static"
fi

log "downloading $pkgs"
# shellcheck disable=SC2086
if ! download $pkgs 2>"$work/download.err"; then
    # Stale package lists: the archive may have dropped that version.
    cat "$work/download.err" >&2
    apt_update || die "apt-get download $pkgs failed"
    kpkg=$(kernel_package)
    [ -n "$kpkg" ] || die "cannot resolve $kernel_meta"
    pkgs=$kpkg
    if [ "$bb_installed" = no ]; then
        pkgs="$pkgs busybox-static"
    fi
    # shellcheck disable=SC2086
    download $pkgs || die "apt-get download $pkgs failed"
fi

# The kernel and the few modules the guest needs.
mkdir kernel
kmods=()
for m in $modules; do
    kmods+=("./lib/modules/*/kernel/$m")
done
dpkg-deb --fsys-tarfile "$kpkg"_*.deb |
    tar -x -C kernel --wildcards './boot/vmlinuz-*' "${kmods[@]}"
vmlinuz=$(find kernel/boot -name 'vmlinuz-*' -type f | head -n1)
[ -n "$vmlinuz" ] || die "no boot/vmlinuz-* in $kpkg"

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
mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,root,etc,lib/modules}
ln -s bin "$root/sbin"
mkdir -p "$root/usr"
ln -s ../bin "$root/usr/bin"
ln -s ../bin "$root/usr/sbin"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
for m in $modules; do
    f=$(find kernel/lib/modules -path "*/kernel/$m" -type f | head -n1)
    [ -n "$f" ] || die "no $m in $kpkg"
    cp "$f" "$root/lib/modules/"
done
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
} >"$stamp"
log "built $outdir/vmlinuz and $outdir/initramfs.gz from $kpkg"
