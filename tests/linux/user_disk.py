#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Linux disk test with user space: a shell script in the guest writes files to an ext4
filesystem on a virtio-blk disk, syncs, reboots without unmounting, verifies the files on the
next boot; the host then checks the image.

    user_disk.py VIREO --variant raw|qcow2 [--timeout S] [--log FILE] [--keep] [-v]

The host builds a 64 MiB ext4 image (mkfs.ext4 -d, no root needed) holding /base/keep.bin
(128 KiB of random bytes, never written by the guest), /base/append.txt (known text whose
length is not a multiple of the 4 KiB block) and /base/delete-me (192 KiB of random bytes).
With --variant qcow2 that raw image is the backing file of a qcow2 overlay made by
`qemu-img create`, and the guest writes go to the overlay (a write into a block of
append.txt copies the rest of its 64 KiB cluster from the backing file).

vireo runs the kit's minimal kernel (PVH ELF) with the kit's initramfs, 1 vCPU, 256 MiB,
--on-reboot restart and three disks, in this order: the ext4 disk (serial vireo-ext4), a
read-only raw disk holding the test's shell script (vireo-script) and a read-only raw disk of
1 MiB of host-made random bytes (vireo-payload). The command line has vireo.script=vdb, so
/init runs `sh /dev/vdb` on every boot. The script first checks that vda, vdb and vdc are
those disks (size, read-only flag, serial: the names follow the --disk order), mounts
/dev/vda on /mnt, lowers the console log level to warnings (so kernel lines do not cut into
its own), then:

  boot 1 (no /mnt/t): creates /t/random.bin (256 KiB from /dev/urandom, dd conv=fsync, so
         fsync(2)), /t/payload.bin (1 MiB copied by dd from vdc: contents the host knows),
         /t/text.txt (200 known lines, written by the shell), /t/many/f0..f99 (100 small
         files of known text), appends a known line to /base/append.txt, deletes
         /base/delete-me, sync; writes the MD5 of every /t/many file to /t/sums-many and of
         random.bin, payload.bin, text.txt, append.txt, keep.bin and sums-many to /t/sums,
         prints the latter ("VIREO-TEST: sum HASH NAME"), writes /t/marker, sync, and
         `reboot -f` without unmounting: the data must be on the disk because it was synced,
         and the journal is left to replay.
  boot 2 (/t/marker present): the mount replays the journal ("recovery complete"); the
         script checks `md5sum -c` of both sum files, the size of random.bin, that
         /base/delete-me is gone and /t/many holds 100 files, prints "VIREO-TEST: verify ok"
         (or each mismatch), writes /t/verified, unmounts, and /init powers off: vireo must
         exit 0.

Why MD5 and these sizes: user code is slow on the nested kvm_pvm KVM (about a second per
applet started; busybox md5sum hashes about 45 KB/s there, sha256sum 14 KB/s), and the sums
only guard against corruption. The host knows the exact contents of every file but
random.bin, and checks them byte for byte.

Host checks: vireo exits 0 on its own within --timeout after exactly two boots; both boots
started /init and the script; boot 1 printed the six sums and rebooted; boot 2 printed
"verify ok" and script_rc=0; boot 2's mount recovered the journal; no ext4, JBD2 or block I/O
errors and no "Illegal instruction" in the log. Then, on the image (raw) or on the overlay
converted to raw (qcow2, after `qemu-img check` is clean; the backing file must be unchanged,
by SHA-256): e2fsck -fn is clean; dumpe2fs: state clean, no needs_recovery (boot 2 unmounted),
mount count 2; `debugfs rdump` of /t and /base: exactly the expected files (delete-me gone);
every file the guest hashed has, on the host, the MD5 the guest printed in boot 1 (so the data
reached the image file, not just the guest's page cache); payload.bin, text.txt, append.txt
(base text + the appended line), keep.bin, marker, verified and each of the 100 small files
have exactly the expected contents; random.bin is 256 KiB and not mostly zeros; sums-many
lists exactly the 100 files with their host-computed hashes.

What this does not cover: discard, O_DIRECT, parallel I/O from several vCPUs or queues,
writes that were not synced before the reboot (their fate is not defined).

Exit status: 0 pass, 1 fail, 77 skip (no /dev/kvm; no e2fsprogs; no qemu-img for qcow2; on the
nested kvm_pvm KVM: a kit initramfs without the i386 busybox, the only user space that runs
there).
"""
import argparse
import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from smoke import (BASE_CMDLINE, GUEST_KNOBS, SKIP, USER_KNOBS, Guest, Verdict,  # noqa: E402
                   fail, host_kvm_hides_cpuid, kit_paths, kvm_problem, last_kernel_line, run,
                   skip, split_boots, user_space_problem, vmm_error, RE_BANNER)

IMAGE_SIZE = 64 << 20
KEEP_SIZE = 128 << 10
DELETE_SIZE = 192 << 10
RANDOM_SIZE = 256 << 10
PAYLOAD_SIZE = 1 << 20
TEXT_LINES = 200
MANY = 100
DISK_SERIAL = "vireo-ext4"
SCRIPT_SERIAL = "vireo-script"
PAYLOAD_SERIAL = "vireo-payload"
# The files whose sums boot 1 prints, in the order of /t/sums.
SUMMED = ["t/random.bin", "t/payload.bin", "t/text.txt", "base/append.txt", "base/keep.bin",
          "t/sums-many"]

RE_TEST = re.compile(r"VIREO-TEST: (.*)$")
RE_SUM = re.compile(r"^sum ([0-9a-f]{32}) /mnt/(\S+)$")
BAD_KERNEL = re.compile(r"EXT4-fs error|EXT4-fs warning|I/O error|blk_update_request|"
                        r"JBD2: .*(error|failed)|Aborting journal|remounting filesystem read-only|"
                        r"Illegal instruction|segfault|Kernel panic")

# The guest's test script (busybox sh: built-ins and integer-only applets, see
# docs/linux-on-nested-kvm.md). @TOKEN@ and the @...@ sizes are filled in by the host.
SCRIPT = r"""
say() { echo "VIREO-TEST: $*"; }
die() { say "error $*"; exit 1; }
T=/mnt/t
B=/mnt/base

# Shell built-ins where they do: every applet costs a fork and an exec, about a second here.
for d in vda vdb vdc; do
	read -r size </sys/block/$d/size
	read -r ro </sys/block/$d/ro
	read -r serial </sys/block/$d/serial
	say "dev $d size=$size ro=$ro serial=$serial"
	eval "serial_$d=\$serial"
done
[ "$serial_vda" = @DISK_SERIAL@ ] || die "vda is not the ext4 disk"
[ "$serial_vdb" = @SCRIPT_SERIAL@ ] || die "vdb is not the script disk"
[ "$serial_vdc" = @PAYLOAD_SERIAL@ ] || die "vdc is not the payload disk"
[ -d /mnt ] || mkdir /mnt || die "mkdir /mnt"
mount -t ext4 /dev/vda /mnt || die "mount /dev/vda: $?"
# Warnings and worse still reach the console; the rest would cut into our lines.
echo 5 >/proc/sys/kernel/printk

if [ -e $T/verified ]; then
	die "a third boot (/t/verified exists)"
elif [ -e $T/marker ]; then
	say "boot 2"
	bad=0
	md5sum -c $T/sums >/tmp/check 2>&1 || bad=1
	md5sum -c $T/sums-many >>/tmp/check 2>&1 || bad=1
	n=0
	while read -r line; do
		case "$line" in
		*": OK") n=$((n + 1)) ;;
		*) say "mismatch $line"; bad=1 ;;
		esac
	done </tmp/check
	say "checked $n files"
	[ $n -eq @NSUMS@ ] || { say "mismatch: $n files checked, want @NSUMS@"; bad=1; }
	size=$(( $(wc -c <$T/random.bin) ))
	[ "$size" -eq @RANDOM_SIZE@ ] || { say "mismatch random.bin size $size"; bad=1; }
	[ -e $B/delete-me ] && { say "mismatch: delete-me is back"; bad=1; }
	set -- $T/many/*
	[ $# -eq @MANY@ ] || { say "mismatch: $# files in many"; bad=1; }
	[ $bad -eq 0 ] || die "verify failed"
	echo "verified @TOKEN@" >$T/verified || die "write verified"
	umount /mnt || die "umount: $?"
	say "verify ok"
	exit 0
elif [ -e $T ]; then
	die "/t exists without a marker (boot 1 did not finish)"
fi

say "boot 1"
mkdir $T $T/many || die "mkdir"
# fsync(2) by dd; the rest of the writes reach the disk by sync(2).
dd if=/dev/urandom of=$T/random.bin bs=65536 count=@RANDOM_BLOCKS@ conv=fsync status=none ||
	die "dd urandom: $?"
dd if=/dev/vdc of=$T/payload.bin bs=65536 count=@PAYLOAD_BLOCKS@ status=none || die "dd vdc: $?"
i=0
while [ $i -lt @TEXT_LINES@ ]; do
	echo "vireo user-disk text line $i @TOKEN@"
	i=$((i + 1))
done >$T/text.txt || die "text.txt"
i=0
while [ $i -lt @MANY@ ]; do
	echo "small file $i @TOKEN@" >$T/many/f$i || die "many/f$i"
	i=$((i + 1))
done
echo "appended by boot 1 @TOKEN@" >>$B/append.txt || die "append"
rm $B/delete-me || die "rm delete-me: $?"
sync || die "sync: $?"
say "written"
md5sum $T/many/* >$T/sums-many || die "md5sum many: $?"
md5sum $T/random.bin $T/payload.bin $T/text.txt $B/append.txt $B/keep.bin $T/sums-many \
	>$T/sums || die "md5sum: $?"
while read -r h f; do
	say "sum $h $f"
done <$T/sums
sync || die "sync: $?"
echo "marker @TOKEN@" >$T/marker || die "marker"
sync || die "sync: $?"
say "rebooting"
reboot -f
die "reboot -f returned"
"""


def log(msg):
    print("user-disk: " + msg, flush=True)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def md5(data):
    """The guest's sums: busybox md5sum runs about three times faster than its sha256sum on
    the nested KVM, and the sums guard against corruption, not against an adversary."""
    return hashlib.md5(data).hexdigest()


def sha_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


class Image:
    """The ext4 image, the script disk, and what the guest must leave on the image."""

    def __init__(self, work):
        rnd = random.Random(os.getpid() ^ int(time.time() * 1000))
        self.token = "%016x" % rnd.getrandbits(64)
        self.keep = rnd.randbytes(KEEP_SIZE)
        # ~5 KB: the append goes into a partly used second block.
        self.append = "".join("base text line %d %s\n" % (i, self.token)
                              for i in range(150)).encode()
        assert len(self.append) % 4096
        root = os.path.join(work, "root")
        os.makedirs(os.path.join(root, "base"))
        write(os.path.join(root, "base", "keep.bin"), self.keep)
        write(os.path.join(root, "base", "append.txt"), self.append)
        write(os.path.join(root, "base", "delete-me"), rnd.randbytes(DELETE_SIZE))
        self.payload = rnd.randbytes(PAYLOAD_SIZE)
        self.payload_disk = os.path.join(work, "payload.raw")
        write(self.payload_disk, self.payload)
        self.path = os.path.join(work, "disk.raw")
        with open(self.path, "wb") as f:
            f.truncate(IMAGE_SIZE)
        # Lazy inode table / journal init off: no ext4lazyinit writes racing the test.
        run("mkfs.ext4", "-q", "-F", "-T", "default", "-b", "4096", "-L", "vireo-udisk",
            "-E", "lazy_itable_init=0,lazy_journal_init=0", "-d", root, self.path)
        shutil.rmtree(root)

        subst = {"TOKEN": self.token, "DISK_SERIAL": DISK_SERIAL,
                 "SCRIPT_SERIAL": SCRIPT_SERIAL, "PAYLOAD_SERIAL": PAYLOAD_SERIAL,
                 "RANDOM_SIZE": str(RANDOM_SIZE), "RANDOM_BLOCKS": str(RANDOM_SIZE // 65536),
                 "PAYLOAD_BLOCKS": str(PAYLOAD_SIZE // 65536), "TEXT_LINES": str(TEXT_LINES),
                 "MANY": str(MANY), "NSUMS": str(len(SUMMED) + MANY)}
        text = re.sub(r"@([A-Z_]+)@", lambda m: subst[m.group(1)], SCRIPT.lstrip("\n"))
        data = text.encode()
        data += b"\n" * (-len(data) % 512)
        self.script = os.path.join(work, "script.raw")
        write(self.script, data)
        self.script_sectors = len(data) // 512

    def expected(self):
        """Exact contents of the files that are known in advance (path -> bytes)."""
        want = {
            "t/text.txt": "".join("vireo user-disk text line %d %s\n" % (i, self.token)
                                  for i in range(TEXT_LINES)).encode(),
            "base/append.txt": self.append + ("appended by boot 1 %s\n" % self.token).encode(),
            "base/keep.bin": self.keep,
            "t/payload.bin": self.payload,
            "t/marker": ("marker %s\n" % self.token).encode(),
            "t/verified": ("verified %s\n" % self.token).encode(),
        }
        for i in range(MANY):
            want["t/many/f%d" % i] = ("small file %d %s\n" % (i, self.token)).encode()
        return want


def boot(a, paths, disk_arg, img):
    knobs = not host_kvm_hides_cpuid()
    cmdline = " ".join(x for x in [BASE_CMDLINE, GUEST_KNOBS if knobs else "",
                                   USER_KNOBS if knobs else "", "vireo.script=vdb",
                                   a.cmdline] if x)
    cmd = [a.vmm, "run", "--kernel", paths["KERNEL_MINIMAL_ELF"], "--initrd", paths["INITRD"],
           "--cmdline", cmdline, "--cpus", "1", "--memory", "256M", "--cpu-template", "baseline",
           "--on-reboot", "restart",
           "--disk", disk_arg + ",serial=" + DISK_SERIAL,
           "--disk", img.script + ",format=raw,readonly=on,serial=" + SCRIPT_SERIAL,
           "--disk", img.payload_disk + ",format=raw,readonly=on,serial=" + PAYLOAD_SERIAL]
    log("log: " + a.log)
    log("running: " + " ".join(cmd))
    g = Guest(cmd, a.log)
    banners = 0
    try:
        for l in g.follow(a.timeout, a.verbose):
            if RE_BANNER.search(l):
                banners += 1
                log("boot %d started at %.1f s" % (banners, g.elapsed()))
                if banners > 2:
                    break
            if "Run /init as init process" in l:
                log("  /init at %.1f s" % g.elapsed())
            m = RE_TEST.search(l)
            if m and not m.group(1).startswith("sum "):
                log("  %.1f s: %s" % (g.elapsed(), l.strip()))
    finally:
        rc = g.stop()
    log("vireo ended after %.1f s (exit status %s%s)"
        % (g.elapsed(), rc, ", stopped at the timeout" if g.timed_out else ""))
    a.elapsed = g.elapsed()
    if g.timed_out:
        fail("no power-off within %.0f s (%d boot(s)); last kernel line: %s; last line: %s"
             % (a.timeout, banners, last_kernel_line(g.lines),
                g.lines[-1].strip() if g.lines else "(none)"))
    if banners > 2:
        fail("a third boot started: the script did not power off after boot 2")
    if rc != 0:
        fail("vireo exited with status %s (want 0 after the guest's power-off)%s; last kernel "
             "line: %s" % (rc, (": " + vmm_error(g.lines)) if vmm_error(g.lines) else "",
                           last_kernel_line(g.lines)))
    return g.lines


def test_lines(boot_lines):
    out = []
    for l in boot_lines:
        m = RE_TEST.search(l)
        if m:
            out.append(m.group(1).strip())
    return out


def check_console(lines, img):
    """The guest's side; returns boot 1's sums (name -> hash)."""
    boots = split_boots(lines)
    if len(boots) != 2:
        fail("%d boot(s) in the console log, want 2" % len(boots))
    bad = [l.strip() for b in boots for l in b if BAD_KERNEL.search(l)]
    if bad:
        fail("errors in the console log: " + " | ".join(bad[:5]))
    for n, b in enumerate(boots, 1):
        t = test_lines(b)
        errors = [x for x in t if x.startswith("error") or x.startswith("mismatch")]
        if errors:
            fail("boot %d: the script reports: %s" % (n, " | ".join(errors[:10])))
        if sum("VIREO-INIT: start" in l for l in b) != 1:
            fail("boot %d: /init did not start (once)" % n)
        if not any("VIREO-INIT: script=vdb" in l for l in b):
            fail("boot %d: /init did not run the script on vdb" % n)
        devs = dict((x.split()[1], x) for x in t if x.startswith("dev "))
        want = {"vda": "dev vda size=%d ro=0 serial=%s" % (IMAGE_SIZE // 512, DISK_SERIAL),
                "vdb": "dev vdb size=%d ro=1 serial=%s" % (img.script_sectors, SCRIPT_SERIAL),
                "vdc": "dev vdc size=%d ro=1 serial=%s" % (PAYLOAD_SIZE // 512, PAYLOAD_SERIAL)}
        if devs != want:
            fail("boot %d: the disks are not as given to vireo: %s, want %s"
                 % (n, sorted(devs.values()), sorted(want.values())))
        if ("boot %d" % n) not in t:
            fail("boot %d: the script did not say 'boot %d' (it said: %s)" % (n, n, t))
    log("ok: both boots: vda is the ext4 disk (%d sectors, rw), vdb the script disk (%d "
        "sectors, ro), vdc the payload disk (%d sectors, ro), by serial: the --disk order"
        % (IMAGE_SIZE // 512, img.script_sectors, PAYLOAD_SIZE // 512))
    t1, t2 = test_lines(boots[0]), test_lines(boots[1])
    sums = {}
    for x in t1:
        m = RE_SUM.match(x)
        if m:
            sums[m.group(2)] = m.group(1)
    if sorted(sums) != sorted(SUMMED):
        fail("boot 1 printed sums for %s, want %s" % (sorted(sums), sorted(SUMMED)))
    if "rebooting" not in t1 or any("script_rc" in l for l in boots[0]):
        fail("boot 1 did not end with the script's reboot")
    log("ok: boot 1 wrote the files, printed %d sums and rebooted without unmounting"
        % len(sums))
    if not any("EXT4-fs (vda): recovery complete" in l for l in boots[1]):
        fail("boot 2: no 'EXT4-fs (vda): recovery complete': the journal boot 1 left open "
             "was not replayed")
    if ("checked %d files" % (len(SUMMED) + MANY)) not in t2 or "verify ok" not in t2:
        fail("boot 2: no 'verify ok' after checking %d files (the script said: %s)"
             % (len(SUMMED) + MANY, t2))
    if not any("VIREO-INIT: script_rc=0" in l for l in boots[1]):
        fail("boot 2: the script did not exit 0")
    if not any("VIREO-INIT: poweroff" in l for l in boots[1]):
        fail("boot 2: /init did not power off")
    log("ok: boot 2 replayed the journal, verified %d files against boot 1's sums, unmounted "
        "and powered off" % (len(SUMMED) + MANY))
    return sums


def check_image(result, work, img, sums):
    out = run("e2fsck", "-fn", result)
    log("ok: e2fsck -fn: clean (%s)" % out.strip().splitlines()[-1])
    sb = dict((k.strip(), v.strip()) for k, v in
              (l.split(":", 1) for l in run("dumpe2fs", "-h", result).splitlines() if ":" in l))
    features = sb.get("Filesystem features", "")
    if (sb.get("Filesystem state") != "clean" or "needs_recovery" in features
            or sb.get("Mount count") != "2"):
        fail("superblock: state %r, features %r, mount count %r; want clean, no "
             "needs_recovery, 2 (boot 2 unmounted)" % (sb.get("Filesystem state"),
                                                       sb.get("Filesystem features"),
                                                       sb.get("Mount count")))
    log("ok: superblock: clean, no needs_recovery, mount count 2")
    dump = os.path.join(work, "dump")
    os.mkdir(dump)
    r = subprocess.run(["debugfs", "-R", "rdump /t /base " + dump, result],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    if r.returncode != 0 or not os.path.isdir(os.path.join(dump, "t")):
        fail("debugfs rdump /t /base: exit %d: %s" % (r.returncode, r.stdout.strip()))
    files = {}
    for top, _, names in os.walk(dump):
        for n in names:
            p = os.path.join(top, n)
            with open(p, "rb") as f:
                files[os.path.relpath(p, dump)] = f.read()
    want_names = set(img.expected()) | {"t/random.bin", "t/sums", "t/sums-many"}
    if set(files) != want_names:
        fail("files on the image: extra %s, missing %s"
             % (sorted(set(files) - want_names)[:10], sorted(want_names - set(files))[:10]))
    log("ok: the image holds exactly the %d expected files under /t and /base (delete-me is "
        "gone)" % len(files))
    for name, h in sorted(sums.items()):
        got = md5(files[name])
        if got != h:
            fail("%s on the image: md5 %s, the guest printed %s in boot 1 (%d bytes)"
                 % (name, got, h, len(files[name])))
    log("ok: the %d files hashed by boot 1 have the same MD5 on the image" % len(sums))
    for name, data in sorted(img.expected().items()):
        if files[name] != data:
            fail("%s on the image: %d bytes, sha256 %s; want %d bytes, sha256 %s"
                 % (name, len(files[name]), sha(files[name])[:16], len(data), sha(data)[:16]))
    rnd = files["t/random.bin"]
    if len(rnd) != RANDOM_SIZE or rnd.count(0) > RANDOM_SIZE // 64:
        fail("t/random.bin: %d bytes, %d of them zero: not %d KiB of random data"
             % (len(rnd), rnd.count(0), RANDOM_SIZE >> 10))
    many = {}
    for l in files["t/sums-many"].decode().splitlines():
        h, _, path = l.partition("  ")
        many[path] = h
    want_many = dict(("/mnt/t/many/f%d" % i, md5(img.expected()["t/many/f%d" % i]))
                     for i in range(MANY))
    if many != want_many:
        fail("t/sums-many does not list the %d small files with their hashes (%d lines)"
             % (MANY, len(many)))
    want_sums = "".join("%s  /mnt/%s\n" % (sums[n], n) for n in SUMMED).encode()
    if files["t/sums"] != want_sums:
        fail("t/sums on the image differs from what boot 1 printed")
    log("ok: exact contents: payload.bin, text.txt, append.txt (base text + boot 1's line), "
        "keep.bin, marker, verified, the %d small files and both sum files; random.bin is "
        "%d KiB of random bytes" % (MANY, RANDOM_SIZE >> 10))


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("vmm", help="the vireo executable")
    p.add_argument("--variant", choices=["raw", "qcow2"], required=True)
    p.add_argument("--timeout", type=float, default=1200.0,
                   help="seconds for both boots (default 1200: 554 s measured under load)")
    p.add_argument("--cmdline", default="", help="extra kernel command line")
    p.add_argument("--log", help="console log (default ./linux-user-ext4-<variant>.log)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("-v", "--verbose", action="store_true", help="echo the console")
    a = p.parse_args()
    a.vmm = os.path.abspath(a.vmm)
    a.log = os.path.abspath(a.log or "linux-user-ext4-%s.log" % a.variant)
    work = None
    t0 = time.monotonic()
    try:
        why = kvm_problem()
        if why:
            skip(why)
        if not os.access(a.vmm, os.X_OK):
            fail("vireo %r is not an executable" % a.vmm)
        tools = ["mkfs.ext4", "debugfs", "dumpe2fs", "e2fsck"] + (
            ["qemu-img"] if a.variant == "qcow2" else [])
        missing = [t for t in tools if not shutil.which(t)]
        if missing:
            skip("no %s in PATH (e2fsprogs%s)" % (", ".join(missing),
                                                 ", qemu-utils" if a.variant == "qcow2" else ""))
        paths, why = kit_paths(False)
        if why:
            fail(why)
        why = user_space_problem(paths)
        if why:
            skip(why)
        work = tempfile.mkdtemp(prefix="vireo-udisk-")
        img = Image(work)
        if a.variant == "raw":
            disk_arg = img.path + ",format=raw"
        else:
            base_sha = sha_file(img.path)
            overlay = os.path.join(work, "disk.qcow2")
            run("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", img.path, overlay)
            disk_arg = overlay + ",format=qcow2"
        log("image ready (token %s)" % img.token)
        lines = boot(a, paths, disk_arg, img)
        sums = check_console(lines, img)
        if a.variant == "qcow2":
            if sha_file(img.path) != base_sha:
                fail("the raw backing file changed (the guest's writes must go to the overlay)")
            log("ok: the backing file is unchanged (sha256 %s...)" % base_sha[:16])
            out = run("qemu-img", "check", overlay)
            log("ok: qemu-img check: %s" % out.strip().splitlines()[0])
            result = os.path.join(work, "overlay-as-raw.raw")
            run("qemu-img", "convert", "-f", "qcow2", "-O", "raw", overlay, result)
        else:
            result = img.path
        check_image(result, work, img, sums)
        log("PASS (vireo %.0f s, whole test %.0f s)" % (a.elapsed, time.monotonic() - t0))
        return 0
    except Verdict as v:
        print(("SKIP: " if v.code == SKIP else "FAIL: ") + v.msg, flush=True)
        if v.code != SKIP and work:
            a.keep = True
        if v.code != SKIP and os.path.exists(a.log):
            with open(a.log, "rb") as f:
                tail = f.read().decode("utf-8", "replace").splitlines()[-30:]
            print("\n".join("    | " + l for l in tail))
        return v.code
    finally:
        if work and a.keep:
            log("work directory kept: " + work)
        elif work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
