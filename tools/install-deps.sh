#!/bin/sh
# Installs the Debian packages Vireo needs to build, test and run its guest kit.
# Uses sudo when not root. Does nothing when everything is already installed.
set -eu
PKGS="meson ninja-build pkg-config gcc clang llvm libclang-rt-14-dev libcmocka-dev python3
      acpica-tools qemu-system-x86 linux-source-6.1 busybox-static cpio bc bison flex
      libelf-dev libssl-dev xz-utils kmod
      liburing-dev zlib1g-dev libzstd-dev qemu-utils passt nftables dnsmasq-base iproute2 fio
      e2fsprogs"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
# The guest kit's initramfs takes Debian's i386 busybox-static (downloaded, never installed):
# apt must know the i386 architecture (tools/guest-kit/build.sh).
if ! dpkg --print-foreign-architectures | grep -qx i386; then
	echo "install-deps: adding the i386 architecture to dpkg (for the guest kit's busybox)"
	$SUDO dpkg --add-architecture i386
	$SUDO apt-get update -q
fi
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing:$missing"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
