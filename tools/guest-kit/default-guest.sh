#!/bin/sh
# Builds the guest kit (cached) and records the default guest that `vireo run` without
# --kernel boots: ${VIREO_CACHE:-~/.cache/vireo}/default-guest.conf (KEY=VALUE lines).
# The minimal kernel with the busybox initramfs, serial console, an interactive shell.
# On hosts whose KVM cannot hide CPU features (see docs/linux-on-nested-kvm.md) the kernel
# is told to leave them alone on its command line.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cache=${VIREO_CACHE:-$HOME/.cache/vireo}
eval "$("$here/build.sh" --no-cloud)"
knobs="noxsave clearcpuid=cx16,popcnt,smap,smep,fsgsbase,rdrand,rdseed,rdpid,invpcid,pcid,bmi1,bmi2"
mkdir -p "$cache"
tmp="$cache/default-guest.conf.tmp"
{
	echo "kernel=$KERNEL_MINIMAL_ELF"
	echo "initrd=$INITRD"
	echo "cmdline=console=ttyS0 panic=-1 $knobs"
	echo "cpu_template=baseline"
} > "$tmp"
mv "$tmp" "$cache/default-guest.conf"
echo "default guest: $cache/default-guest.conf" >&2
