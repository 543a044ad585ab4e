#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`vireo img resize` and `vireo img commit`.

resize: absolute, +SIZE and -SIZE on qcow2 and raw; qemu-img info shows each new size,
qemu-img check stays clean, the data below the old size survives, a shrink needs --shrink,
an image with snapshots is refused. commit: after committing an overlay (qemu-io writes,
data and zeroes) into a raw or qcow2 base, the base holds exactly what the overlay showed;
the overlay is then empty (as after qemu-img commit), or keeps its clusters with -d; -p shows
progress.

    resize_commit.py VIREO
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imgtest import Env, MiB, one_error_line, pattern_bytes, same_file, write_pattern  # noqa: E402


def vsize(e, path):
    js = e.vjson("info --json", "info", "--json", "-f", "qcow2", path)
    return js and js.get("virtual-size")


def resize_qcow2(e):
    c = e.c
    print("== resize qcow2")
    src = e.p("r.raw")
    write_pattern(src, 4 * MiB, [(0, 4 * MiB)], seed=5)
    img = e.p("r.qcow2")
    e.ok("convert", e.vireo("convert", "-O", "qcow2", src, img))
    steps = [("+1G", 4 * MiB + 1024 * MiB), ("3G", 3072 * MiB), ("+1000", 3072 * MiB + 1024)]
    for arg, want in steps:
        r = e.vireo("resize", img, arg)
        c.check(r.rc == 0 and b"Image resized." in r.out, "resize %s" % arg, r.describe())
        c.check(vsize(e, img) == want, "resize %s: vireo info says %d" % (arg, want))
        if e.qemu_img:
            qi = e.qinfo(img)
            c.check(qi and qi["virtual-size"] == want, "resize %s: qemu-img info says %d" %
                    (arg, want), repr(qi))
            r = e.qimg("check", img)
            c.check(r.rc == 0, "resize %s: qemu-img check clean" % arg, r.describe())
    r = e.vireo("resize", img, "1G")
    one_error_line(c, "shrink without --shrink", r, 2, r"--shrink")
    r = e.vireo("resize", "--shrink", "-q", img, "-3070M")
    c.check(r.rc == 0 and r.out == b"", "resize --shrink -3070M", r.describe())
    c.check(vsize(e, img) == 2 * MiB + 1024, "shrunk to 2M + 1024")
    e.ok("resize back to 4M", e.vireo("resize", img, "4M"))
    out = e.p("r.out")
    e.ok("convert back", e.vireo("convert", "-f", "qcow2", img, out))
    with open(out, "rb") as f:
        got = f.read()
    want = pattern_bytes(4 * MiB, 5)[:2 * MiB + 1024] + bytes(2 * MiB - 1024)
    c.check(got == want, "data below the smallest size kept, beyond it zeroes after growing")
    if e.qemu_img:
        r = e.qimg("check", img)
        c.check(r.rc == 0, "qemu-img check after shrink and grow: clean", r.describe())
    e.ok("snapshot", e.vireo("snapshot", "-c", "s", img))
    r = e.vireo("resize", img, "+1M")
    one_error_line(c, "resize with snapshots", r, 1, r"snapshots")


def resize_raw(e):
    c = e.c
    print("== resize raw")
    raw = e.p("x.raw")
    write_pattern(raw, MiB, [(0, MiB)], seed=2)
    e.ok("raw +1M", e.vireo("resize", "-f", "raw", raw, "+1M"))
    c.check(os.path.getsize(raw) == 2 * MiB, "raw file is 2M")
    r = e.vireo("resize", "-f", "raw", raw, "-1536K")
    one_error_line(c, "raw shrink without --shrink", r, 2, r"--shrink")
    e.ok("raw --shrink -1536K", e.vireo("resize", "--shrink", "-f", "raw", raw, "-1536K"))
    c.check(os.path.getsize(raw) == 512 * 1024, "raw file is 512K")
    with open(raw, "rb") as f:
        c.check(f.read() == pattern_bytes(MiB, 2)[:512 * 1024], "raw data kept")
    for bad, rc, msg in (("abc", 2, r"size 'abc'"), ("-2M", 2, r"larger than the image"),
                         ("+99999999999999999999", 2, r"too large"), ("1.5", 2, r"size '1.5'")):
        r = e.vireo("resize", "-f", "raw", raw, bad)
        one_error_line(c, "resize %s" % bad, r, rc, msg)
    r = e.vireo("resize", raw)
    one_error_line(c, "resize without SIZE", r, 2, r"missing SIZE")
    if e.qemu_img:
        r = e.qimg("convert", "-O", "vmdk", raw, e.p("x.vmdk"))
        r = e.vireo("resize", "-f", "vmdk", e.p("x.vmdk"), "+1M")
        one_error_line(c, "resize vmdk", r, 1, r"read-only")


def commit(e, base_fmt):
    c = e.c
    print("== commit into a %s base" % base_fmt)
    if not e.need_qemu_io("commit test"):
        return
    base_raw = e.p("cb.raw")
    write_pattern(base_raw, 6 * MiB, [(0, 6 * MiB)], seed=9)
    base = e.p("cbase." + base_fmt)
    if base_fmt == "raw":
        os.rename(base_raw, base)
    else:
        e.ok("base as qcow2", e.vireo("convert", "-O", "qcow2", base_raw, base))
    top = e.p("ctop-%s.qcow2" % base_fmt)
    e.ok("create overlay", e.vireo("create", "-q", "-f", "qcow2", "-b", os.path.basename(base),
                                   "-F", base_fmt, top, "8M"))
    r = e.qio("qcow2", top, "write -P 0x5a 64k 64k", "write -z 1M 192k",
              "write -P 0x6b 5M 1536k", "write -P 0x7c 7M 4k")
    c.check(r.rc == 0, "qemu-io writes data and zeroes into the overlay", r.describe())
    view = e.p("cview-%s.raw" % base_fmt)
    r = e.qimg("convert", "-f", "qcow2", "-O", "raw", top, view)
    c.check(r.rc == 0, "overlay view saved", r.describe())
    keep = base_fmt == "raw"  # -d with one base format, the default (empty) with the other
    args = ["commit", "-f", "qcow2"] + (["-d"] if keep else ["-p"]) + [top]
    r = e.vireo(*args)
    c.check(r.rc == 0 and b"Image committed." in r.out, " ".join(args[:-1]), r.describe())
    if not keep:
        c.check(b"100.0%" in r.err, "commit -p shows progress", r.describe())
    r = e.qimg("map", "--output=json", "-f", "qcow2", top)
    own = [x for x in json.loads(r.out) if x["depth"] == 0 and x["present"]] if r.rc == 0 else None
    if keep:
        c.check(own, "commit -d: the overlay keeps its clusters", r.describe())
    else:
        c.check(own == [], "commit: the overlay is emptied (as qemu-img commit)", r.describe())
    got = e.p("cgot-%s.raw" % base_fmt)
    r = e.qimg("convert", "-f", base_fmt, "-O", "raw", base, got)
    c.check(r.rc == 0 and os.path.getsize(got) == 8 * MiB, "base grew to the overlay's 8M",
            r.describe())
    c.check(same_file(view, got), "base now reads exactly as the overlay did")
    r = e.qimg("compare", "-f", "qcow2", "-F", base_fmt, top, base)
    c.check(r.rc == 0, "qemu-img compare overlay base: identical", r.describe())
    r = e.qimg("check", top)
    c.check(r.rc == 0, "overlay still clean", r.describe())
    if base_fmt == "qcow2":
        r = e.qimg("check", base)
        c.check(r.rc == 0, "qcow2 base clean after commit", r.describe())


def commit_errors(e):
    c = e.c
    print("== commit errors")
    img = e.p("solo.qcow2")
    e.ok("create", e.vireo("create", "-q", "-f", "qcow2", img, "1M"))
    r = e.vireo("commit", img)
    one_error_line(c, "commit without a backing file", r, 1, r"no backing file")
    r = e.vireo("commit", "-f", "raw", e.p("x.raw"))
    one_error_line(c, "commit raw", r, 1, r"raw images")
    r = e.vireo("commit")
    one_error_line(c, "commit without FILE", r, 2, r"missing FILE")


def main():
    e = Env("resize-commit")
    resize_qcow2(e)
    resize_raw(e)
    commit(e, "raw")
    commit(e, "qcow2")
    commit_errors(e)
    e.finish()


if __name__ == "__main__":
    main()
