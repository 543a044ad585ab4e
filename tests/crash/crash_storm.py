#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Crash test: SIGKILL vireo in the middle of a virtio-blk write storm, then check the image.

    crash_storm.py VIREO PROBE_ELF [--iterations N] [--seed S] [--formats raw,qcow2] [-v]

The probe (tests/probe/virtio_blk_storm.c) writes numbered 4 KiB records to scattered slots
and prints "STORM: flushed SEQ" after each FLUSH completed. For each format the runner makes a
fresh image, starts vireo, and after a seeded random number of flushed lines (5..30) kills it
with SIGKILL. Then, on the host:
- qcow2: `qemu-img check` must report no corruption (exit 0, or 3 = leaked clusters only);
  the image is read through `qemu-img convert -O raw`, a raw image directly;
- every record 1..F, F = the highest flushed SEQ printed, must be in its slot byte for byte;
- every other slot holds zeroes or an intact record that belongs to that slot (seq > F).
Exit status: 0 pass, 1 fail, 77 skip (no usable /dev/kvm or no qemu-img). Standard library only.
"""
import argparse
import os
import random
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

SKIP = 77
REC = 4096
BASE = 1024 * 1024
SLOTS = 4096
STRIDE = 1237
MAGIC = 0x4d54534f45524956
DISK = 32 << 20
M64 = (1 << 64) - 1
FLUSHED = re.compile(rb"^STORM: flushed (\d+)\r?$")


def word(seq, i):
    z = (seq * 0x9e3779b97f4a7c15 + i * 0xbf58476d1ce4e5b9 + 0x632be59bd9b4e019) & M64
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M64
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
    return z ^ (z >> 31)


TABLE = [word(0x5354524d, j) for j in range(1024)] * 2


def record(seq, run_id):
    """The 4 KiB record the probe writes for seq (see virtio_blk_storm.c)."""
    r = ((seq * 0x9e3779b97f4a7c15) & M64) >> 54
    words = [MAGIC, seq, run_id] + TABLE[r + 3:r + REC // 8 - 1]
    words.append(word(sum(words) & M64, 511))
    return struct.pack("<512Q", *words)


def slot_of(seq):
    return seq * STRIDE % SLOTS


def kvm_usable():
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return "cannot open /dev/kvm: %s" % os.strerror(e.errno)
    os.close(fd)
    return None


def run_storm(a, fmt, cache, every, path, run_id, kill_after, kill_delay):
    """Start vireo, SIGKILL it after kill_after flushed lines. Returns (flushed seqs seen,
    console bytes, stderr bytes, exit status, killed)."""
    cmdline = "cpus=1 mem=64 disk=%d run=%d every=%d" % (DISK, run_id, every)
    cmd = [a.vireo, "run", "--kernel", a.elf, "--cmdline", cmdline, "--cpus", "1",
           "--memory", "64M", "--no-rng", "--disk", "%s,format=%s,cache=%s" % (path, fmt, cache)]
    if a.verbose:
        print("run:", " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    out, err, partial, flushed = b"", b"", b"", []
    killed = False
    t0 = time.monotonic()
    streams = [proc.stdout, proc.stderr]

    def pump(timeout):
        nonlocal out, err, partial
        ready, _, _ = select.select(streams, [], [], timeout)
        for f in ready:
            data = os.read(f.fileno(), 65536)
            if not data:
                streams.remove(f)
                continue
            if f is proc.stderr:
                err += data
                continue
            out += data
            partial += data
            *lines, partial = partial.split(b"\n")
            for line in lines:
                m = FLUSHED.match(line)
                if m:
                    flushed.append(int(m.group(1)))

    while streams and time.monotonic() - t0 < a.timeout:
        pump(0.05)
        if not killed and len(flushed) >= kill_after:
            time.sleep(kill_delay)
            os.killpg(proc.pid, signal.SIGKILL)
            killed = True
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    while streams:  # whatever the guest printed before it died
        pump(0.1)
    m = FLUSHED.match(partial)
    if m:
        flushed.append(int(m.group(1)))
    return flushed, out, err, proc.returncode, killed


def check_image(a, fmt, path, tmp, run_id, last):
    """Returns (failure or None, note)."""
    note = ""
    if fmt == "qcow2":
        r = subprocess.run([a.qemu_img, "check", "-f", "qcow2", path], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        text = r.stdout.decode("utf-8", "replace").strip()
        if r.returncode not in (0, 3):
            return "qemu-img check exit %d:\n%s" % (r.returncode, text), note
        note = "check exit %d" % r.returncode
        raw = os.path.join(tmp, "converted.raw")
        r = subprocess.run([a.qemu_img, "convert", "-f", "qcow2", "-O", "raw", path, raw],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            return "qemu-img convert failed: %s" % r.stdout.decode("utf-8", "replace"), note
        path = raw
    with open(path, "rb") as f:
        data = f.read()
    if len(data) != DISK:
        return "image reads as %d bytes, expected %d" % (len(data), DISK), note
    if data[:BASE].count(0) != BASE:
        return "the first MiB (never written) is not all zeroes", note
    zero = bytes(REC)
    extra = 0
    for slot in range(SLOTS):
        got = data[BASE + slot * REC:BASE + (slot + 1) * REC]
        magic, seq, rid = struct.unpack_from("<3Q", got)
        if got == zero:
            seq = None
        elif magic != MAGIC or rid != run_id or not 1 <= seq <= SLOTS or slot_of(seq) != slot \
                or got != record(seq, run_id):
            return ("slot %d (byte %d) holds neither zeroes nor an intact record for this slot "
                    "(magic 0x%x seq %d run %d)" % (slot, BASE + slot * REC, magic, seq, rid)), note
        if seq is not None and seq > last:
            extra += 1
        a.slot_seq[slot] = seq
    for seq in range(1, last + 1):
        if a.slot_seq[slot_of(seq)] != seq:
            return ("record %d (flushed: <= %d) is missing from slot %d (byte %d)"
                    % (seq, last, slot_of(seq), BASE + slot_of(seq) * REC)), note
    return None, note + ("; " if note else "") + "%d unflushed records also present" % extra


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("vireo")
    p.add_argument("elf")
    p.add_argument("--iterations", type=int, default=3, help="runs per format")
    p.add_argument("--formats", default="raw,qcow2")
    p.add_argument("--seed", type=int, help="default: VIREO_CRASH_SEED or the time")
    p.add_argument("--caches", default="writeback,writethrough,none",
                   help="cache modes, one per iteration in turn")
    p.add_argument("--timeout", type=float, default=12.0, help="seconds per run")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args()

    why = kvm_usable()
    if why:
        print("SKIP: %s" % why)
        return SKIP
    a.qemu_img = shutil.which("qemu-img")
    formats = a.formats.split(",")
    if "qcow2" in formats and not a.qemu_img:
        print("SKIP: qemu-img not found (needed to create and check qcow2 images)")
        return SKIP
    for x in (a.vireo, a.elf):
        if not os.path.isfile(x):
            print("FAIL: %s does not exist" % x)
            return 1
    seed = a.seed if a.seed is not None else int(os.environ.get("VIREO_CRASH_SEED", time.time()))
    print("seed %d (rerun with --seed %d)" % (seed, seed), flush=True)
    rng = random.Random(seed)
    a.slot_seq = [None] * SLOTS
    t_start = time.monotonic()
    total_checked = 0
    with tempfile.TemporaryDirectory(prefix="vireo-crash-", dir=os.environ.get("VIREO_CRASH_DIR")) as tmp:
        for it in range(a.iterations):
            for fmt in formats:
                path = os.path.join(tmp, "storm.%s" % fmt)
                if os.path.exists(path):
                    os.unlink(path)
                if fmt == "qcow2":
                    r = subprocess.run([a.qemu_img, "create", "-q", "-f", "qcow2", path, str(DISK)],
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                    if r.returncode != 0:
                        print("FAIL: qemu-img create: %s" % r.stdout.decode("utf-8", "replace"))
                        return 1
                else:
                    with open(path, "wb") as f:
                        f.truncate(DISK)
                run_id = rng.randrange(1, 1 << 40)
                kill_after = rng.randint(5, 30)
                kill_delay = rng.choice([0, 0, 0.001, 0.003, 0.01])
                every = rng.choice([4, 8, 16, 32])
                caches = a.caches.split(",")
                cache = caches[it % len(caches)]
                flushed, out, err, rc, killed = run_storm(a, fmt, cache, every, path, run_id,
                                                          kill_after, kill_delay)
                tag = "%s cache=%s every=%d #%d" % (fmt, cache, every, it + 1)

                def fail(why):
                    print("FAIL: %s: %s" % (tag, why))
                    print("  vireo exit status %s; console tail:" % rc)
                    for l in out.decode("utf-8", "replace").splitlines()[-15:]:
                        print("    | " + l)
                    print("  vireo stderr tail:")
                    for l in err.decode("utf-8", "replace").splitlines()[-15:]:
                        print("    | " + l)
                    return 1

                if b"STORM: start" not in out:
                    if cache == "none" and re.search(rb"O_DIRECT|EINVAL|Invalid argument", err):
                        print("NOTE: %s: cache=none unsupported here, skipped" % tag)
                        continue
                    if b"unknown option '--disk'" in err:
                        print("SKIP: this vireo has no --disk option")
                        return SKIP
                    return fail("the probe never started its storm")
                if re.search(rb"PROBE virtio_blk_storm: FAIL|PROBE-ERROR", out):
                    return fail("the probe failed")
                if not killed:
                    if not re.search(rb"PROBE virtio_blk_storm: PASS", out):
                        return fail("only %d flushed lines within %.0f s, wanted %d"
                                    % (len(flushed), a.timeout, kill_after))
                    print("NOTE: %s: the storm finished before the kill" % tag)
                if flushed != sorted(flushed):
                    return fail("flushed lines out of order: %s" % flushed)
                last = max(flushed)
                why, note = check_image(a, fmt, path, tmp, run_id, last)
                if why:
                    return fail(why)
                total_checked += last
                print("ok: %s: killed after %d flushed lines (wanted %d, +%.1f ms), records "
                      "1..%d intact; %s" % (tag, len(flushed), kill_after, kill_delay * 1000,
                                            last, note), flush=True)
    print("PASS: %d runs, %d flushed records verified, %.1f s"
          % (a.iterations * len(formats), total_checked, time.monotonic() - t_start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
