#!/bin/sh
# Vireo guest kit: /init of the test initramfs (busybox sh).
#
# Prints what the guest sees as "VIREO-INIT: key=value" lines on the console, one fact per
# line, so that tests/linux/smoke.py can parse them, then acts on the kernel command line:
#   vireo.test=poweroff  power off at once (the VMM must exit with status 0)
#   vireo.test=reboot    reboot at once, on every boot; the test counts "VIREO-INIT: start"
#                        lines (the VMM reloads the same command line, so a boot cannot tell
#                        whether it is the first one, and need not)
#   vireo.test=panic     exit /init, so that the kernel panics ("Attempted to kill init")
#   vireo.script=vdX     run the script on raw disk /dev/vdX, print "VIREO-INIT: script_rc=N",
#                        power off (tests/linux/user_disk.py, tests/linux/user_net.py)
#   (nothing)            interactive shell on the console (make run)
# Modules listed in /etc/vireo-modules (cloud kernel initramfs) are loaded first, in order.

export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /tmp
mount -t devpts devpts /dev/pts 2>/dev/null

say() {
	echo "VIREO-INIT: $*"
}

say start
say kernel=$(uname -r)

if [ -f /etc/vireo-modules ]; then
	while read -r mod; do
		[ -n "$mod" ] || continue
		if insmod "/lib/modules/$mod" 2>/dev/null; then
			say "insmod=$mod ok"
		else
			say "insmod=$mod failed"
		fi
	done </etc/vireo-modules
	# Give the drivers a moment to bind to the devices probed by the new modules.
	usleep 1000000
fi

say nproc=$(grep -c '^processor' /proc/cpuinfo)
# Shell built-ins and integer-only applets: the i386 busybox's awk, sleep and timeout use x87
# instructions, which the nested kvm_pvm KVM cannot run right after a trap
# (docs/linux-on-nested-kvm.md).
while read -r key val _; do
	[ "$key" = MemTotal: ] && say memtotal_kb=$val
done </proc/meminfo

# /dev/hwrng exists as soon as the hw_random core is in; a read blocks until a backend
# (virtio-rng) delivers, so bound it.
if [ -r /sys/class/misc/hw_random/rng_current ]; then
	say hwrng_current=$(cat /sys/class/misc/hw_random/rng_current)
fi
if [ -c /dev/hwrng ]; then
	dd if=/dev/hwrng of=/tmp/hwrng bs=16 count=1 2>/dev/null &
	pid=$!
	i=0
	while kill -0 $pid 2>/dev/null && [ $i -lt 100 ]; do
		usleep 100000
		i=$((i + 1))
	done
	kill $pid 2>/dev/null
	wait $pid 2>/dev/null
	say hwrng=$(wc -c </tmp/hwrng)
else
	say hwrng=none
fi

count=0
for dev in /sys/bus/virtio/devices/*; do
	[ -e "$dev" ] || continue
	drv=none
	[ -e "$dev/driver" ] && drv=$(basename "$(readlink "$dev/driver")")
	say "virtio=$(basename "$dev") device=$(cat "$dev/device") vendor=$(cat "$dev/vendor") driver=$drv"
	count=$((count + 1))
done
say virtio_count=$count

test=
script=
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	vireo.test=*) test=${arg#vireo.test=} ;;
	vireo.script=*) script=${arg#vireo.script=} ;;
	esac
done

# vireo.script=vdX: run the shell script a test put on that raw disk (text padded with
# newlines to whole sectors), then power off unless the script rebooted or powered off.
if [ -n "$script" ]; then
	if [ -b "/dev/$script" ]; then
		say "script=$script"
		sh "/dev/$script"
		say "script_rc=$?"
	else
		say "script_rc=no /dev/$script"
	fi
	say poweroff
	poweroff -f
fi

case "$test" in
poweroff)
	say poweroff
	poweroff -f
	;;
reboot)
	say reboot
	reboot -f
	;;
panic)
	say panic
	exit 1
	;;
esac

say shell
# cttyhack gives the shell a controlling tty, so that ^C works. /init must not exit (the
# kernel would panic): start a new shell when one ends.
while :; do
	setsid cttyhack sh
	say "shell exited, starting a new one"
	usleep 1000000
done
