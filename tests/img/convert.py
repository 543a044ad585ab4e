#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`vireo img convert`: a raw file with a known pattern converted to qcow2 and raw is what
qemu-img compare calls identical, qemu-img check calls clean, and stays sparse; images that
qemu-img made (vmdk in three layouts, vhd dynamic and fixed, qcow2 compressed with zlib and
zstd, qcow2 v2, qcow2 with a backing file) convert to raw byte for byte as qemu-img's own
conversion; progress output only with -p (or on a terminal).

    convert.py VIREO
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imgtest import Env, MiB, same_file, write_pattern  # noqa: E402

SIZE = 24 * MiB
EXTENTS = [(0, 3 * 4096), (1 * MiB + 512, 70000), (5 * MiB, 2 * MiB + 4096),
           (SIZE - 4096, 4096)]


def tty_progress(e, src, dst):
    """Run convert with stderr on a pseudo-terminal; True when it showed progress."""
    master, slave = os.openpty()
    try:
        p = subprocess.Popen([e.vireo_bin, "img", "convert", src, dst], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        out = b""
        while True:
            try:
                d = os.read(master, 4096)
            except OSError:  # EIO once the child has closed the terminal
                break
            if not d:
                break
            out += d
        rc = p.wait(timeout=60)
    finally:
        os.close(master)
    return rc == 0 and b"\r" in out and b"100.0%" in out


def from_raw(e):
    c = e.c
    print("== raw pattern -> qcow2 / raw")
    src = e.p("src.raw")
    write_pattern(src, SIZE, EXTENTS)
    dq = e.p("out.qcow2")
    r = e.vireo("convert", "-O", "qcow2", src, dq)
    e.ok("convert raw -> qcow2", r)
    c.check(r.err == b"", "no progress output when stderr is not a terminal", r.describe())
    dr = e.p("out.raw")
    r = e.vireo("convert", "-f", "qcow2", dq, dr)
    e.ok("convert qcow2 -> raw (default -O raw)", r)
    c.check(same_file(src, dr), "qcow2 -> raw gives the pattern back byte for byte")
    data = sum(ln for _, ln in EXTENTS)
    c.check(os.stat(dr).st_blocks * 512 < data + 2 * MiB, "raw output is sparse",
            "%d blocks" % os.stat(dr).st_blocks)
    c.check(os.path.getsize(dq) < data + 2 * MiB, "qcow2 output holds only the data",
            "%d bytes" % os.path.getsize(dq))
    r = e.vireo("convert", "-O", "qcow2", "-o", "cluster_size=4096", "-p", src, e.p("p.qcow2"))
    e.ok("convert -p -o cluster_size=4096", r)
    c.check(b"\r" in r.err and b"100.0%" in r.err and r.err.endswith(b"\n"),
            "-p shows progress ending at 100%", r.describe())
    c.check(tty_progress(e, src, e.p("tty.raw")), "stderr on a terminal: progress shown")
    r = e.vireo("convert", "-q", "-p", src, e.p("q.raw"))
    c.check(r.rc == 0 and r.err == b"", "-q silences -p", r.describe())
    r = e.vireo("convert", "-S", "0", "-O", "raw", src, e.p("full.raw"))
    e.ok("convert -S 0", r)
    c.check(os.stat(e.p("full.raw")).st_blocks * 512 >= SIZE, "-S 0: fully allocated output")
    c.check(same_file(src, e.p("full.raw")), "-S 0: same bytes")
    if not e.need_qemu("qemu-img compare/check of converted images"):
        return
    for n in ("out.qcow2", "p.qcow2"):
        r = e.qimg("compare", "-f", "raw", "-F", "qcow2", src, e.p(n))
        c.check(r.rc == 0, "qemu-img compare src.raw %s: identical" % n, r.describe())
        r = e.qimg("check", e.p(n))
        c.check(r.rc == 0, "qemu-img check %s: clean" % n, r.describe())
    qi = e.qinfo(e.p("p.qcow2"))
    c.check(qi and qi["cluster-size"] == 4096, "-o cluster_size reaches the image", repr(qi))
    # Only the clusters that hold data are allocated (as qemu-img convert does).
    want = e.qimg("convert", "-O", "qcow2", src, e.p("ref.qcow2"))
    r1 = e.qimg("map", "--output=json", e.p("ref.qcow2"))
    r2 = e.qimg("map", "--output=json", dq)
    def strip(out):
        return [(x["start"], x["length"], x["data"]) for x in json.loads(out)]
    c.check(want.rc == 0 and strip(r1.out) == strip(r2.out),
            "allocated ranges match qemu-img convert's", "%s\n%s" % (r1.out[:600], r2.out[:600]))


def foreign(e):
    c = e.c
    print("== vmdk / vhd / compressed qcow2 -> raw, against qemu-img")
    if not e.need_qemu("conversions of qemu-img-made images"):
        return
    src = e.p("src.raw")
    cases = [
        ("vmdk", "vmdk", []),
        ("vmdk", "vmdk", ["-o", "subformat=monolithicFlat"]),
        ("vmdk", "vmdk", ["-o", "subformat=twoGbMaxExtentSparse"]),
        ("vpc", "vhd", []),
        ("vpc", "vhd", ["-o", "subformat=fixed"]),
        ("vpc", "vhd", ["-o", "subformat=fixed,force_size=on"]),
        ("qcow2", "qcow2", ["-c"]),
        ("qcow2", "qcow2", ["-c", "-o", "compression_type=zstd"]),
        ("qcow2", "qcow2", ["-o", "compat=0.10,cluster_size=512"]),
    ]
    for i, (qf, vf, opts) in enumerate(cases):
        what = "%s %s" % (qf, " ".join(opts))
        img = e.p("f%d.img" % i)
        r = e.qimg("convert", "-f", "raw", "-O", qf, *opts, src, img)
        if r.rc != 0:
            print("  SKIP %s: qemu-img cannot make it (%s)" % (what, r.err.strip()[:100]))
            continue
        want = e.p("f%d.want.raw" % i)
        r = e.qimg("convert", "-f", qf, "-O", "raw", img, want)
        if not c.check(r.rc == 0, "%s: qemu-img converts it" % what, r.describe()):
            continue
        got = e.p("f%d.got.raw" % i)
        r = e.vireo("convert", "-f", vf, "-O", "raw", img, got)
        e.ok("%s: vireo converts it" % what, r)
        c.check(r.rc == 0 and same_file(want, got), "%s: same bytes as qemu-img's" % what)
        gq = e.p("f%d.got.qcow2" % i)
        r = e.vireo("convert", "-f", vf, "-O", "qcow2", img, gq)
        e.ok("%s -> qcow2" % what, r)
        r = e.qimg("compare", "-f", "raw", "-F", "qcow2", want, gq)
        c.check(r.rc == 0, "%s -> qcow2: qemu-img compare identical" % what, r.describe())


def with_backing(e):
    c = e.c
    print("== qcow2 with a backing file -> raw (flattened)")
    if not e.need_qemu_io("backing chain conversion"):
        return
    base = e.p("bb.raw")
    write_pattern(base, 4 * MiB, [(0, 4 * MiB)], seed=7)
    top = e.p("bt.qcow2")
    r = e.vireo("create", "-q", "-f", "qcow2", "-b", "bb.raw", "-F", "raw", top)
    e.ok("create overlay", r)
    r = e.qio("qcow2", top, "write -P 0x5a 1M 64k", "write -z 2M 128k", "write -P 0x33 4032k 64k")
    c.check(r.rc == 0, "qemu-io writes into the overlay", r.describe())
    want = e.p("bt.want.raw")
    r = e.qimg("convert", "-f", "qcow2", "-O", "raw", top, want)
    got = e.p("bt.got.raw")
    r = e.vireo("convert", "-f", "qcow2", top, got)
    e.ok("vireo converts the chain", r)
    c.check(same_file(want, got), "flattened chain: same bytes as qemu-img's")
    r = e.vireo("convert", top, e.p("nope.raw"))
    c.check(r.rc == 1 and b"-f qcow2" in r.err, "a guessed qcow2 with backing is refused",
            r.describe())


def targets(e):
    c = e.c
    print("== targets")
    src = e.p("src.raw")
    r = e.vireo("convert", "-f", "raw", src, src)
    c.check(r.rc == 1 and b"source image itself" in r.err, "DST = SRC refused", r.describe())
    c.check(os.path.getsize(src) == SIZE, "SRC left alone")
    r = e.vireo("convert", "-O", "vmdk", src, e.p("x.vmdk"))
    c.check(r.rc == 2, "-O vmdk refused (read-only format)", r.describe())
    r = e.vireo("convert", "-c", "-O", "raw", src, e.p("x.raw"))
    c.check(r.rc == 2 and b"-O qcow2" in r.err, "-c -O raw refused with a reason", r.describe())
    r = e.vireo("convert", "-o", "backing_file=x", "-O", "qcow2", src, e.p("x.qcow2"))
    c.check(r.rc == 2, "-o backing_file refused", r.describe())


def main():
    e = Env("convert")
    from_raw(e)
    foreign(e)
    with_backing(e)
    targets(e)
    e.finish()


if __name__ == "__main__":
    main()
