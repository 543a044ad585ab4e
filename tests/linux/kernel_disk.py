#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Linux disk test without user space: the guest kernel mounts an ext4 root filesystem from a
virtio-blk disk, writes to it by itself, reboots, mounts it again; the host then checks the
image.

    kernel_disk.py VIREO --variant raw|qcow2 [--timeout S] [--log FILE] [--keep] [-v]

The host builds an ext4 image (mkfs.ext4 -d, no root needed) holding /marker and /keep (known
contents) and two files that debugfs puts on the superblock's orphan list, the state a crash
leaves behind: /trunc (256 KiB, inode size set to 4 KiB: an interrupted truncate) and an
unlinked 64 KiB file (links_count 0: deleted while open). The minimal kernel of the guest kit
boots with root=/dev/vda rw, no initramfs and no init on the disk, so each boot goes:

  mount  mount count + 1 and needs_recovery written at once (synchronous superblock write);
         boot 1 only: orphan cleanup truncates /trunc and frees the unlinked inode, through
         the journal, and the journal is flushed and checkpointed before the mount returns
         ("1 orphan inode deleted", "1 truncate cleaned up", "recovery complete");
         boot 2: "recovery complete" again (boot 1 left needs_recovery on the disk) and no
         orphan work (boot 1's cleanup is on the disk): the guest reads back its own writes
  panic  "No working init found", panic=-1 reboots, vireo --on-reboot restart boots again

The test stops vireo (SIGTERM) once the second boot has panicked. Then, on the image (raw) or
on the overlay converted to raw (qcow2, after `qemu-img check`; the raw backing file must be
unchanged, by SHA-256): e2fsck -fn is clean, and so is a replayed copy (e2fsck -fy, then -fn);
dumpe2fs: mount count 2, orphan list empty; debugfs: /marker and /keep unchanged, /trunc is
4 KiB long with 8 sectors and its first 4 KiB intact, the unlinked inode is free. The same
checks before the boot (mount count 0, orphan list set, /trunc 512 sectors, inode in use)
show that the guest did the writes.

What this cannot show: file writes from user space (write(2), fsync(2)): tests/linux/user_disk.py
does that with the kit's 32-bit user space.

Exit status: 0 pass, 1 fail, 77 skip (no /dev/kvm, no e2fsprogs, no qemu-img for qcow2; on
the nested kvm_pvm KVM only: a KVM emulation failure or a boot slower than --timeout).
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
from smoke import (GUEST_KNOBS, SKIP, Guest, Verdict, fail, host_kvm_hides_cpuid,  # noqa: E402
                   kit_paths, kvm_problem, last_kernel_line, run, skip, split_boots,
                   vmm_error, RE_BANNER, RE_TIMESTAMP)

IMAGE_SIZE = 32 << 20
TRUNC_SIZE = 256 << 10   # /trunc before the boot
TRUNC_KEEP = 4096        # its i_size, which orphan cleanup truncates it to
GONE_SIZE = 64 << 10

RE_NO_INIT = re.compile(r"Kernel panic - not syncing: No working init found")
RE_PANIC = re.compile(r"Kernel panic - not syncing: (.*)")
BAD_KERNEL = re.compile(r"EXT4-fs error|EXT4-fs warning|I/O error|blk_update_request|"
                        r"JBD2: .*(error|failed)|Aborting journal|remounting filesystem read-only")


def log(msg):
    print("kernel-disk: " + msg, flush=True)


def debugfs(img, req):
    return subprocess.run(["debugfs", "-R", req, img], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL).stdout


def sb_fields(img):
    out = run("dumpe2fs", "-h", img)
    return dict((k.strip(), v.strip()) for k, v in
                (l.split(":", 1) for l in out.splitlines() if ":" in l))


def inode_of(img, path):
    m = re.search(rb"Inode: (\d+)", debugfs(img, "stat " + path))
    if not m:
        fail("debugfs cannot find %s in %s" % (path, img))
    return int(m.group(1))


def inode_info(img, spec):
    out = debugfs(img, "stat " + spec).decode("utf-8", "replace")
    size = re.search(r"Size: (\d+)", out)
    blocks = re.search(r"Blockcount: (\d+)", out)
    links = re.search(r"Links: (\d+)", out)
    return (int(size.group(1)) if size else None, int(blocks.group(1)) if blocks else None,
            int(links.group(1)) if links else None)


def in_use(img, ino):
    out = debugfs(img, "testi <%d>" % ino).decode()
    if "is not in use" in out:
        return False
    if "is marked in use" in out:
        return True
    fail("debugfs testi <%d>: %r" % (ino, out))


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


class Image:
    """The ext4 image and what the checks expect of it."""

    def __init__(self, work):
        rnd = random.Random(os.getpid() ^ int(time.time()))
        self.marker = ("vireo kernel-disk marker %016x\n" % rnd.getrandbits(64)).encode()
        self.keep = rnd.randbytes(48 << 10)
        self.trunc = rnd.randbytes(TRUNC_SIZE)
        root = os.path.join(work, "root")
        os.mkdir(root)
        for name, data in (("marker", self.marker), ("keep", self.keep), ("trunc", self.trunc),
                           ("gone", os.urandom(GONE_SIZE))):
            with open(os.path.join(root, name), "wb") as f:
                f.write(data)
        self.path = os.path.join(work, "disk.raw")
        with open(self.path, "wb") as f:
            f.truncate(IMAGE_SIZE)
        # Lazy inode table / journal init off: no ext4lazyinit writes racing the test.
        run("mkfs.ext4", "-q", "-F", "-T", "default", "-b", "4096", "-L", "vireo-kdisk",
            "-E", "lazy_itable_init=0,lazy_journal_init=0", "-d", root, self.path)
        self.trunc_ino = inode_of(self.path, "/trunc")
        self.gone_ino = inode_of(self.path, "/gone")
        # The orphan list is s_last_orphan -> /trunc -(i_dtime)-> gone -> 0.
        script = os.path.join(work, "orphans.debugfs")
        with open(script, "w") as f:
            f.write("sif /trunc size %d\n" % TRUNC_KEEP)
            f.write("sif /trunc dtime %d\n" % self.gone_ino)
            f.write("unlink /gone\n")
            f.write("sif <%d> links_count 0\n" % self.gone_ino)
            f.write("ssv last_orphan %d\n" % self.trunc_ino)
        run("debugfs", "-w", "-f", script, self.path)

    def check(self, img, before):
        """The state before the boot (before=True) or after two boots."""
        sb = sb_fields(img)
        count = sb.get("Mount count")
        orphan = sb.get("First orphan inode")
        size, blocks, _ = inode_info(img, "/trunc")
        gone = in_use(img, self.gone_ino)
        if before:
            if (count, orphan, size, blocks, gone) != ("0", str(self.trunc_ino), TRUNC_KEEP,
                                                       TRUNC_SIZE // 512, True):
                fail("the prepared image is not as intended: mount count %s, first orphan %s, "
                     "/trunc %s bytes / %s sectors, unlinked inode in use: %s"
                     % (count, orphan, size, blocks, gone))
            log("image ready: mount count 0, orphans: inode %d (/trunc, %d sectors for %d "
                "bytes) -> inode %d (unlinked)" % (self.trunc_ino, blocks, size, self.gone_ino))
            return
        if count != "2":
            fail("mount count %s on the disk after two boots (want 2): the guest's superblock "
                 "writes did not all reach the image" % count)
        log("ok: mount count 2 (last mount time %s)" % sb.get("Last mount time"))
        if orphan is not None:
            fail("the orphan list still starts at inode %s: boot 1's orphan cleanup is not on "
                 "the disk" % orphan)
        if (size, blocks) != (TRUNC_KEEP, TRUNC_KEEP // 512):
            fail("/trunc: %s bytes in %s sectors, want %d in %d (the truncate is not on the "
                 "disk)" % (size, blocks, TRUNC_KEEP, TRUNC_KEEP // 512))
        if gone:
            fail("inode %d (unlinked orphan) is still in use" % self.gone_ino)
        log("ok: orphan list empty, /trunc truncated to %d bytes (%d sectors), inode %d freed"
            % (size, blocks, self.gone_ino))
        for name, want in (("/marker", self.marker), ("/keep", self.keep),
                           ("/trunc", self.trunc[:TRUNC_KEEP])):
            got = debugfs(img, "cat " + name)
            if got != want:
                fail("%s: %d bytes, sha256 %s; want %d bytes, sha256 %s"
                     % (name, len(got), hashlib.sha256(got).hexdigest()[:16], len(want),
                        hashlib.sha256(want).hexdigest()[:16]))
        log("ok: /marker, /keep and the kept part of /trunc read back unchanged")


def fsck(img, work):
    out = run("e2fsck", "-fn", img)
    log("ok: e2fsck -fn: clean (%s)" % out.strip().splitlines()[-1])
    copy = os.path.join(work, "fsck-copy.raw")
    shutil.copyfile(img, copy)
    out = run("e2fsck", "-fy", copy, ok=(0, 1))
    run("e2fsck", "-fn", copy)
    log("ok: a copy replayed and fixed up by e2fsck -fy (%s) passes e2fsck -fn"
        % out.strip().splitlines()[-1])
    os.unlink(copy)


def boot(a, kernel, disk_arg):
    cmdline = " ".join(x for x in [
        "console=ttyS0 panic=-1 root=/dev/vda rw rootfstype=ext4",
        GUEST_KNOBS if not host_kvm_hides_cpuid() else "", a.cmdline] if x)
    cmd = [a.vmm, "run", "--kernel", kernel, "--cmdline", cmdline, "--cpus", "1",
           "--memory", "256M", "--cpu-template", "baseline", "--on-reboot", "restart",
           "--disk", disk_arg]
    log("log: " + a.log)
    log("running: " + " ".join(cmd))
    g = Guest(cmd, a.log)
    panics = 0
    try:
        for l in g.follow(a.timeout, a.verbose):
            if RE_BANNER.search(l):
                log("boot started at %.1f s" % g.elapsed())
            if "EXT4-fs (vda)" in l or "VFS: Mounted root" in l:
                log("  " + RE_TIMESTAMP.sub("", l).strip())
            m = RE_PANIC.search(l)
            if m:
                log("panic at %.1f s: %s" % (g.elapsed(), m.group(1)))
                panics += 1
                if panics >= 2:
                    break
    finally:
        rc = g.stop()
    timed_out = g.timed_out
    log("vireo stopped after %.1f s (exit status %s)" % (g.elapsed(), rc))
    if panics < 2:
        where = last_kernel_line(g.lines)
        err = vmm_error(g.lines)
        if not host_kvm_hides_cpuid() and (timed_out or rc == 3):
            skip("this host's nested KVM did not get the guest through two boots (%s); last "
                 "kernel line: %s" % ("timeout after %.0f s" % a.timeout if timed_out
                                      else err or "vCPU crashed", where))
        fail("the guest did not boot twice to the root mount (%s, vireo exit %s); last kernel "
             "line: %s" % ("timeout" if timed_out else "%d panic(s)" % panics, rc, where))
    return g.lines


def check_kernel_log(lines):
    boots = split_boots(lines)
    if len(boots) < 2:
        fail("%d boot(s) in the console log, want 2" % len(boots))
    bad = [l.strip() for b in boots for l in b if BAD_KERNEL.search(l)]
    if bad:
        fail("the kernel reports disk or filesystem errors: " + " | ".join(bad[:5]))
    want = {
        1: ["EXT4-fs (vda): 1 orphan inode deleted", "EXT4-fs (vda): 1 truncate cleaned up",
            "EXT4-fs (vda): recovery complete"],
        2: ["EXT4-fs (vda): recovery complete"],
    }
    for n in (1, 2):
        text = boots[n - 1]
        for w in want[n] + ["EXT4-fs (vda): mounted filesystem with ordered data mode",
                            "VFS: Mounted root (ext4 filesystem) on device"]:
            if not any(w in l for l in text):
                fail("boot %d: no '%s' in the kernel log" % (n, w))
        panic = [RE_PANIC.search(l).group(1) for l in text if RE_PANIC.search(l)]
        if not panic or not RE_NO_INIT.search("Kernel panic - not syncing: " + panic[0]):
            fail("boot %d ended with an unexpected panic: %s" % (n, panic))
    again = [l.strip() for l in boots[1] if "EXT4-fs" in l and ("orphan" in l or "truncate" in l)]
    if again:
        fail("boot 2 redid orphan cleanup (boot 1's writes did not persist): %s" % again)
    log("ok: kernel log: both boots mounted /dev/vda as ext4 read-write; boot 1 cleaned up "
        "the orphans; boot 2 recovered the journal boot 1 left open and found no orphans")


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("vmm", help="the vireo executable")
    p.add_argument("--variant", choices=["raw", "qcow2"], required=True)
    p.add_argument("--timeout", type=float, default=230.0, help="seconds for both boots")
    p.add_argument("--cmdline", default="", help="extra kernel command line")
    p.add_argument("--log", help="console log (default ./linux-ext4-<variant>.log)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("-v", "--verbose", action="store_true", help="echo the console")
    a = p.parse_args()
    a.vmm = os.path.abspath(a.vmm)
    a.log = os.path.abspath(a.log or "linux-ext4-%s.log" % a.variant)
    work = None
    try:
        why = kvm_problem()
        if why:
            skip(why)
        tools = ["mkfs.ext4", "debugfs", "dumpe2fs", "e2fsck"] + (
            ["qemu-img"] if a.variant == "qcow2" else [])
        missing = [t for t in tools if not shutil.which(t)]
        if missing:
            skip("no %s in PATH (e2fsprogs%s)" % (", ".join(missing),
                                                 ", qemu-utils" if a.variant == "qcow2" else ""))
        paths, why = kit_paths(False)
        if why:
            fail(why)
        work = tempfile.mkdtemp(prefix="vireo-kdisk-")
        img = Image(work)
        img.check(img.path, before=True)
        if a.variant == "raw":
            disk_arg = img.path + ",format=raw"
        else:
            base_sha = sha(img.path)
            overlay = os.path.join(work, "disk.qcow2")
            run("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", img.path, overlay)
            disk_arg = overlay + ",format=qcow2"
        lines = boot(a, paths["KERNEL_MINIMAL_ELF"], disk_arg)
        check_kernel_log(lines)
        if a.variant == "qcow2":
            if sha(img.path) != base_sha:
                fail("the raw backing file changed (the guest's writes must go to the overlay)")
            log("ok: the backing file is unchanged (sha256 %s...)" % base_sha[:16])
            out = run("qemu-img", "check", overlay)
            log("ok: qemu-img check: %s" % out.strip().splitlines()[0])
            result = os.path.join(work, "overlay-as-raw.raw")
            run("qemu-img", "convert", "-f", "qcow2", "-O", "raw", overlay, result)
        else:
            result = img.path
        fsck(result, work)
        img.check(result, before=False)
        log("PASS")
        return 0
    except Verdict as v:
        print(("SKIP: " if v.code == SKIP else "FAIL: ") + v.msg, flush=True)
        if v.code != SKIP and work:
            a.keep = True
        return v.code
    finally:
        if work and a.keep:
            log("work directory kept: " + work)
        elif work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
