#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Vireo guest kit: builds the Linux guests that Vireo's smoke tests and `make run` boot.
#
#   minimal kernel   linux-source-6.1 (Debian package) + tools/guest-kit/kernel.config,
#                    as vmlinux (PVH ELF) and bzImage
#   initramfs        busybox-static + tools/guest-kit/init.sh, newc cpio, plain (INITRD)
#                    and gzip'ed (INITRD_GZ): the guest inflates gzip very slowly on nested KVM.
#                    The busybox is Debian's i386 build (apt-get download busybox-static:i386,
#                    never installed; needs `dpkg --add-architecture i386`): 32-bit user space
#                    runs on the nested kvm_pvm KVM with patch 0003, 64-bit cannot. Without
#                    it the host's amd64 /bin/busybox is used and a warning printed.
#   cloud kernel     Debian's linux-image-cloud-amd64 (fetched with apt-get download, never
#                    installed) + an initramfs with the same /init and its virtio modules
#
# Everything is cached under ${VIREO_CACHE:-$HOME/.cache/vireo}, in directories named after a
# hash of their inputs (this script, the config fragment, /init, the package versions), so a
# second run does nothing and a changed input rebuilds only what depends on it. The kernel's
# object directory is kept across keys, so a config change is an incremental build.
#
# Usage: build.sh [--print] [--no-cloud] [-h]
#   (no option)  build what is missing, then print the artifact paths (KEY=path lines)
#   --print      only print the paths; exit 1 if an artifact is missing
#   --no-cloud   neither fetch nor build the cloud kernel (KERNEL_CLOUD= stays empty)
# Environment: VIREO_CACHE (cache root), VIREO_KIT_JOBS (make -j, default 2).
# Only stdout carries the KEY=path lines; progress goes to stderr.

set -eu
umask 022

KIT_DIR=$(cd "$(dirname "$0")" && pwd)
SELF="$KIT_DIR/$(basename "$0")"
CACHE=${VIREO_CACHE:-$HOME/.cache/vireo}
JOBS=${VIREO_KIT_JOBS:-2}
SRC_PKG=linux-source-6.1
SRC_TARBALL=/usr/src/$SRC_PKG.tar.xz
CLOUD_META=linux-image-cloud-amd64
# Modules the cloud initramfs loads (with their dependencies) when they are not built in.
CLOUD_MODULES="virtio_pci virtio_rng virtio_blk virtio_net virtio_console"

print_only=0
want_cloud=1
for arg in "$@"; do
	case "$arg" in
	--print) print_only=1 ;;
	--no-cloud) want_cloud=0 ;;
	-h | --help)
		sed -n '4,/^$/s/^# \{0,1\}//p' "$SELF"
		exit 0
		;;
	*)
		echo "build.sh: unknown option '$arg' (try --help)" >&2
		exit 2
		;;
	esac
done

log() { echo "guest-kit: $*" >&2; }
die() {
	echo "guest-kit: error: $*" >&2
	exit 1
}

hash_of() { # hash_of STRING FILE... -> 16 hex digits
	{
		printf '%s\n' "$1"
		shift
		for f in "$@"; do
			printf '%s\n' "$(basename "$f")"
			cat "$f"
		done
	} | sha256sum | cut -c1-16
}

pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }

# ---- inputs and keys ------------------------------------------------------------------------

src_version=$(pkg_version "$SRC_PKG")
busybox_version=$(pkg_version busybox-static)
[ -n "$src_version" ] && [ -f "$SRC_TARBALL" ] ||
	die "$SRC_PKG is not installed (apt-get install $SRC_PKG)"
[ -n "$busybox_version" ] && [ -x /bin/busybox ] ||
	die "busybox-static is not installed (apt-get install busybox-static)"

patches=()
if [ -d "$KIT_DIR/patches" ]; then
	for p in "$KIT_DIR"/patches/*.patch; do
		[ -e "$p" ] && patches+=("$p")
	done
fi
patch_key=$(hash_of "patches" ${patches[@]+"${patches[@]}"} | cut -c1-12)

src_dir="$CACHE/src/linux-$src_version-$patch_key"
obj_dir="$CACHE/build/linux-$src_version-$patch_key"
kernel_key=$(hash_of "kernel $src_version" "$SELF" "$KIT_DIR/kernel.config" \
	${patches[@]+"${patches[@]}"})
# The initramfs's busybox: Debian's i386 build where apt knows it (see the header).
bb32_version=$(apt-cache policy busybox-static:i386 2>/dev/null | sed -n 's/^ *Candidate: //p' |
	head -n1)
[ "$bb32_version" = "(none)" ] && bb32_version=
initrd_key=$(hash_of "initrd $busybox_version i386:$bb32_version" "$SELF" "$KIT_DIR/init.sh")
kernel_out="$CACHE/kernel-$kernel_key"
initrd_out="$CACHE/initrd-$initrd_key"

# The cloud image is whatever linux-image-cloud-amd64 depends on in the local apt lists.
cloud_pkg=
cloud_version=
cloud_out=
if [ "$want_cloud" = 1 ]; then
	cloud_pkg=$(apt-cache depends "$CLOUD_META" 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[^ ]*-cloud-amd64\)$/\1/p' | head -n1)
	if [ -n "$cloud_pkg" ]; then
		cloud_version=$(apt-cache policy "$cloud_pkg" 2>/dev/null |
			sed -n 's/^ *Candidate: //p' | head -n1)
	fi
	if [ -n "$cloud_pkg" ] && [ -n "$cloud_version" ] && [ "$cloud_version" != "(none)" ]; then
		cloud_key=$(hash_of "cloud $cloud_pkg $cloud_version $busybox_version $CLOUD_MODULES" \
			"$SELF" "$KIT_DIR/init.sh")
		cloud_out="$CACHE/cloud-$cloud_key"
	else
		log "warning: no $CLOUD_META in the apt lists (apt-get update?): cloud kernel skipped"
	fi
fi

print_paths() {
	local cloud_k= cloud_i=
	if [ -n "$cloud_out" ] && [ -f "$cloud_out/vmlinuz" ]; then
		cloud_k="$cloud_out/vmlinuz"
		cloud_i="$cloud_out/initrd.cpio"
	fi
	echo "KERNEL_MINIMAL_ELF=$kernel_out/vmlinux"
	echo "KERNEL_MINIMAL_BZ=$kernel_out/bzImage"
	echo "INITRD=$initrd_out/initrd.cpio"
	echo "INITRD_GZ=$initrd_out/initrd.cpio.gz"
	echo "KERNEL_CLOUD=$cloud_k"
	echo "INITRD_CLOUD=$cloud_i"
}

if [ "$print_only" = 1 ]; then
	print_paths
	[ -f "$kernel_out/vmlinux" ] && [ -f "$kernel_out/bzImage" ] &&
		[ -f "$initrd_out/initrd.cpio" ] && [ -f "$initrd_out/initrd.cpio.gz" ] &&
		{ [ -z "$cloud_out" ] || [ -f "$cloud_out/vmlinuz" ]; }
	exit $?
fi

mkdir -p "$CACHE"
# One builder at a time (a test and `make run` may start together).
exec 9>"$CACHE/.lock"
if ! flock -n 9; then
	log "waiting for another build.sh to finish..."
	flock 9
fi

# ---- helpers --------------------------------------------------------------------------------

# run_logged NAME CMD...: run with output in $CACHE/logs/NAME.log, show its tail on failure.
run_logged() {
	local name=$1
	shift
	mkdir -p "$CACHE/logs"
	if ! "$@" >"$CACHE/logs/$name.log" 2>&1; then
		tail -n 30 "$CACHE/logs/$name.log" >&2
		die "$name failed (full log: $CACHE/logs/$name.log)"
	fi
}

ensure_source() {
	[ -f "$src_dir/.vireo-complete" ] && return 0
	log "extracting $SRC_TARBALL ($src_version) to $src_dir"
	rm -rf "$src_dir.tmp"
	mkdir -p "$src_dir.tmp"
	tar -xJf "$SRC_TARBALL" -C "$src_dir.tmp" --strip-components=1
	for p in ${patches[@]+"${patches[@]}"}; do
		log "applying $(basename "$p")"
		patch -d "$src_dir.tmp" -p1 --quiet <"$p" || die "patch $p does not apply"
	done
	touch "$src_dir.tmp/.vireo-complete"
	rm -rf "$src_dir"
	mv "$src_dir.tmp" "$src_dir"
}

gen_init_cpio() {
	local tool="$CACHE/tools/gen_init_cpio-$src_version"
	if [ ! -x "$tool" ]; then
		mkdir -p "$CACHE/tools"
		cc -O2 -o "$tool.tmp" "$src_dir/usr/gen_init_cpio.c" || die "cannot build gen_init_cpio"
		mv "$tool.tmp" "$tool"
	fi
	"$tool" "$@"
}

# fetch_deb PKG VERSION ARCH: print the path of the package file in $CACHE/debs, downloading
# it first if needed (apt-get download, never installed); nothing printed if that fails.
fetch_deb() {
	local pkg=$1 ver=$2 arch=$3 deb_dir="$CACHE/debs" deb dl
	mkdir -p "$deb_dir"
	deb=$(ls "$deb_dir/${pkg}_${ver//:/%3a}_$arch.deb" 2>/dev/null || true)
	if [ -z "$deb" ]; then
		log "fetching $pkg:$arch $ver with apt-get download"
		# apt's sandbox user cannot write to a private cache: download in a world-writable
		# temporary directory, then move the file.
		dl=$(mktemp -d)
		chmod 0777 "$dl"
		if ! (cd "$dl" && apt-get download "$pkg:$arch=$ver" >&2); then
			rm -rf "$dl"
			return 0
		fi
		mv "$dl"/*.deb "$deb_dir/"
		rm -rf "$dl"
		deb=$(ls "$deb_dir/${pkg}_${ver//:/%3a}_$arch.deb" 2>/dev/null || true)
	fi
	echo "$deb"
}

# busybox_i386: print the path of the i386 busybox binary (cached), or nothing.
busybox_i386() {
	[ -n "$bb32_version" ] || return 0
	local out="$CACHE/tools/busybox-i386-${bb32_version//:/_}" deb x
	if [ ! -x "$out" ]; then
		deb=$(fetch_deb busybox-static "$bb32_version" i386)
		[ -n "$deb" ] || return 0
		x=$(mktemp -d)
		dpkg-deb -x "$deb" "$x" && [ -x "$x/bin/busybox" ] || {
			rm -rf "$x"
			return 0
		}
		mkdir -p "$CACHE/tools"
		mv "$x/bin/busybox" "$out"
		rm -rf "$x"
	fi
	echo "$out"
}

# busybox_cpio_list [BUSYBOX]: the cpio entries shared by both initramfs images, with BUSYBOX
# (default: the host's /bin/busybox) as /bin/busybox. Applets are listed by the host's busybox
# (same Debian version: same applets).
busybox_cpio_list() {
	local d applet bb=${1:-/bin/busybox}
	for d in /bin /sbin /usr /usr/bin /usr/sbin /etc /lib /lib/modules /proc /sys /root \
		/dev /mnt /run /var; do
		echo "dir $d 0755 0 0"
	done
	echo "dir /tmp 01777 0 0"
	# The kernel opens /dev/console before /init runs: it must be in the archive.
	echo "nod /dev/console 0600 0 0 c 5 1"
	echo "file /bin/busybox $bb 0755 0 0"
	echo "file /init $KIT_DIR/init.sh 0755 0 0"
	/bin/busybox --list-full | while read -r applet; do
		[ "$applet" = bin/busybox ] && continue
		echo "slink /$applet /bin/busybox 0777 0 0"
	done
}

# make_initrd LISTFILE OUT: newc archive with fixed timestamps (reproducible).
make_initrd() {
	gen_init_cpio -t 0 "$1" >"$2" || die "gen_init_cpio failed"
}

# ---- minimal kernel -------------------------------------------------------------------------

check_config() { # every line of the fragment must hold in the final .config
	local line opt bad=0
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*)
			grep -qxF "$line" "$obj_dir/.config" || {
				log "config: wanted '$line', got '$(grep "^${line%%=*}=" "$obj_dir/.config" || echo unset)'"
				bad=1
			}
			;;
		"# CONFIG_"*" is not set")
			opt=${line#\# }
			opt=${opt%% *}
			if grep -q "^$opt=" "$obj_dir/.config"; then
				log "config: wanted $opt unset, got '$(grep "^$opt=" "$obj_dir/.config")'"
				bad=1
			fi
			;;
		esac
	done <"$KIT_DIR/kernel.config"
	[ "$bad" = 0 ] || die "kernel.config does not apply cleanly (a dependency is missing?)"
}

build_kernel() {
	[ -f "$kernel_out/vmlinux" ] && [ -f "$kernel_out/bzImage" ] && return 0
	ensure_source
	mkdir -p "$obj_dir"
	local mk=(make -C "$src_dir" O="$obj_dir" ARCH=x86_64)
	log "configuring the minimal kernel (tinyconfig + kernel.config) in $obj_dir"
	run_logged kernel-config "${mk[@]}" tinyconfig
	run_logged kernel-merge "$src_dir/scripts/kconfig/merge_config.sh" -m -O "$obj_dir" \
		"$obj_dir/.config" "$KIT_DIR/kernel.config"
	run_logged kernel-olddefconfig "${mk[@]}" olddefconfig
	check_config
	log "building the minimal kernel with nice -n 19 make -j$JOBS (first build: ~10 min on 2 cores)"
	local start=$SECONDS
	run_logged kernel-build nice -n 19 "${mk[@]}" -j"$JOBS" vmlinux bzImage
	local secs=$((SECONDS - start))
	readelf -n "$obj_dir/vmlinux" | grep -q 'Xen.*0x00000012' ||
		die "vmlinux has no XEN_ELFNOTE_PHYS32_ENTRY note (is CONFIG_PVH set?)"
	rm -rf "$kernel_out.tmp"
	mkdir -p "$kernel_out.tmp"
	cp "$obj_dir/vmlinux" "$obj_dir/arch/x86/boot/bzImage" "$obj_dir/System.map" "$kernel_out.tmp/"
	cp "$obj_dir/.config" "$kernel_out.tmp/config"
	{
		echo "linux_source=$SRC_PKG $src_version"
		echo "kernel_release=$(cat "$obj_dir/include/config/kernel.release")"
		echo "build_seconds=$secs"
	} >"$kernel_out.tmp/build-info"
	rm -rf "$kernel_out"
	mv "$kernel_out.tmp" "$kernel_out"
	log "minimal kernel built in ${secs}s: $kernel_out"
	prune_trees
}

# prune_trees: drop the source and object trees of other versions or patch sets (about
# 2 GB each).
prune_trees() {
	local d
	for d in "$CACHE"/src/linux-* "$CACHE"/build/linux-*; do
		[ -d "$d" ] || continue
		case "$d" in
		"$src_dir" | "$obj_dir") continue ;;
		esac
		log "removing the stale tree $d"
		rm -rf "$d"
	done
}

# prune_artifacts: drop artifact directories of other keys once they are a day old (a VM
# started from one a moment ago, or another checkout's, is left alone meanwhile).
prune_artifacts() {
	local d
	for d in $(find "$CACHE" -mindepth 1 -maxdepth 1 -type d \
		\( -name 'kernel-*' -o -name 'initrd-*' -o -name 'cloud-*' \) -mtime +0); do
		case "$d" in
		"$kernel_out" | "$initrd_out" | "$cloud_out") continue ;;
		esac
		log "removing the old artifacts $d"
		rm -rf "$d"
	done
}

# ---- busybox initramfs ----------------------------------------------------------------------

build_initrd() {
	[ -f "$initrd_out/initrd.cpio" ] && [ -f "$initrd_out/initrd.cpio.gz" ] && return 0
	ensure_source # for gen_init_cpio.c
	rm -rf "$initrd_out.tmp"
	mkdir -p "$initrd_out.tmp"
	local bb
	bb=$(busybox_i386)
	if [ -z "$bb" ]; then
		log "warning: no i386 busybox (dpkg --add-architecture i386; apt-get update): the" \
			"initramfs gets the amd64 one, whose user space cannot run on nested kvm_pvm KVM"
		bb=/bin/busybox
	fi
	busybox_cpio_list "$bb" >"$initrd_out.tmp/cpio.list"
	make_initrd "$initrd_out.tmp/cpio.list" "$initrd_out.tmp/initrd.cpio"
	echo "busybox=$(basename "$bb")" >"$initrd_out.tmp/build-info"
	gzip -n -9 <"$initrd_out.tmp/initrd.cpio" >"$initrd_out.tmp/initrd.cpio.gz"
	rm -rf "$initrd_out"
	mv "$initrd_out.tmp" "$initrd_out"
	log "initramfs built: $initrd_out/initrd.cpio (and .gz)"
}

# ---- Debian cloud kernel --------------------------------------------------------------------

# cloud_modules_order MODDIR: print, dependencies first, the .ko paths (relative to MODDIR)
# that CLOUD_MODULES need; built-in ones are skipped.
cloud_modules_order() {
	local moddir=$1 want path deps dep seen=" "
	for want in $CLOUD_MODULES; do
		# modules.dep uses file names, where '-' and '_' are interchangeable.
		path=$(awk -F: -v w="$want" '{
				n = $1; sub(/.*\//, "", n); sub(/\.ko(\.[a-z]+)?$/, "", n); gsub(/-/, "_", n)
				if (n == w) { print $1; exit }
			}' "$moddir/modules.dep")
		if [ -z "$path" ]; then
			if sed 's/.*\///; s/\.ko$//; s/-/_/g' "$moddir/modules.builtin" | grep -qx "$want"; then
				log "cloud: $want is built in"
				continue
			fi
			die "cloud: module $want is neither built in nor in modules.dep"
		fi
		deps=$(awk -F': *' -v p="$path" '$1 == p { print $2; exit }' "$moddir/modules.dep")
		# modules.dep lists a module's dependencies so that loading them from last to first works.
		for dep in $(echo "$deps" | tr ' ' '\n' | tac) "$path"; do
			case "$seen" in *" $dep "*) continue ;; esac
			seen="$seen$dep "
			echo "$dep"
		done
	done
}

build_cloud() {
	[ -z "$cloud_out" ] && return 0
	[ -f "$cloud_out/vmlinuz" ] && [ -f "$cloud_out/initrd.cpio" ] && return 0
	ensure_source # for gen_init_cpio.c
	local work="$cloud_out.tmp" deb
	deb=$(fetch_deb "$cloud_pkg" "$cloud_version" amd64)
	if [ -z "$deb" ]; then
		log "warning: cannot download $cloud_pkg (offline?): cloud kernel skipped"
		cloud_out=
		return 0
	fi
	rm -rf "$work"
	mkdir -p "$work/x" "$work/modules"
	dpkg-deb -x "$deb" "$work/x"
	local kver moddir
	kver=$(ls "$work/x/lib/modules" | head -n1)
	moddir="$work/x/lib/modules/$kver"
	# The package ships no modules.dep (depmod runs at install time): make one.
	depmod -b "$work/x" "$kver" || die "depmod failed on $deb"
	local list="$work/cpio.list" order="$work/vireo-modules" rel name
	busybox_cpio_list >"$list"
	: >"$order"
	for rel in $(cloud_modules_order "$moddir"); do
		name=$(basename "$rel")
		case "$name" in
		*.ko.xz) xz -dc "$moddir/$rel" >"$work/modules/${name%.xz}" ;;
		*.ko.zst) zstd -qdc "$moddir/$rel" >"$work/modules/${name%.zst}" ;;
		*.ko.gz) gzip -dc "$moddir/$rel" >"$work/modules/${name%.gz}" ;;
		*.ko) cp "$moddir/$rel" "$work/modules/$name" ;;
		*) die "cloud: unexpected module file $rel" ;;
		esac
		name=${name%.xz}
		name=${name%.zst}
		name=${name%.gz}
		echo "$name" >>"$order"
		echo "file /lib/modules/$name $work/modules/$name 0644 0 0" >>"$list"
	done
	echo "file /etc/vireo-modules $order 0644 0 0" >>"$list"
	make_initrd "$list" "$work/initrd.cpio"
	cp "$work/x/boot/vmlinuz-$kver" "$work/vmlinuz"
	cp "$work/x/boot/config-$kver" "$work/config"
	echo "package=$cloud_pkg $cloud_version" >"$work/build-info"
	rm -rf "$work/x" "$work/modules"
	rm -rf "$cloud_out"
	mv "$work" "$cloud_out"
	log "cloud kernel $kver and its initramfs: $cloud_out"
}

build_kernel
build_initrd
build_cloud
prune_artifacts
print_paths
