#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`vireo img map`: on sparse images (qcow2 with data, zero clusters and a backing file;
a sparse raw file) the extents agree with qemu-img map: JSON entry for entry (start,
length, depth, present, zero, data, offset) and the human table line for line; the JSON
parses; --start-offset/--max-length limit the range. On a qemu-img-made sparse vmdk and
dynamic vhd the data/zero extents and data offsets are qemu-img's too.

    map.py VIREO
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imgtest import Env, MiB, write_pattern  # noqa: E402

KEYS = ("start", "length", "depth", "present", "zero", "data", "offset")


def norm(doc):
    return [tuple(x.get(k) for k in KEYS) for x in doc]


def coverage(e, what, doc, size):
    pos = 0
    ok = True
    for x in doc:
        ok &= x["start"] == pos and x["length"] > 0
        pos = x["start"] + x["length"]
    e.c.check(ok and pos == size, "%s: extents cover the disk in order" % what, repr(doc)[:800])


def compare(e, what, fmt, path, size):
    c = e.c
    js = e.vjson("map --json %s" % what, "map", "--json", "-f", fmt, path)
    if js is None:
        return
    coverage(e, what, js, size)
    if not e.qemu_img:
        return
    q = json.loads(e.qimg("map", "--output=json", "-f", fmt, path).out)
    c.check(norm(js) == norm(q), "%s: JSON extents as qemu-img map's" % what,
            "vireo %s\nqemu  %s" % (norm(js), norm(q)))
    if fmt == "qcow2":
        r = e.vireo("map", "-f", fmt, path)
        rq = e.qimg("map", "-f", fmt, path)
        mine = [ln.split()[:3] for ln in r.out.decode().splitlines()]
        theirs = [ln.split()[:3] for ln in rq.out.decode().splitlines()]
        c.check(r.rc == 0 and mine == theirs, "%s: human table as qemu-img map's" % what,
                "vireo:\n%s\nqemu:\n%s" % (r.out.decode(), rq.out.decode()))


def main():
    e = Env("map")
    c = e.c
    print("== sparse qcow2")
    src = e.p("s.raw")
    write_pattern(src, 16 * MiB, [(0, 128 * 1024), (3 * MiB, 64 * 1024), (3 * MiB + 192 * 1024,
                                  64 * 1024), (15 * MiB, MiB)])
    img = e.p("s.qcow2")
    e.ok("convert", e.vireo("convert", "-O", "qcow2", src, img))
    compare(e, "sparse qcow2", "qcow2", img, 16 * MiB)
    js = e.vjson("map --json", "map", "--json", img)
    if js is not None:
        data = [(x["start"], x["length"]) for x in js if x["data"]]
        c.check(data == [(0, 131072), (3 * MiB, 65536), (3 * MiB + 196608, 65536),
                         (15 * MiB, MiB)], "data extents where the pattern is", repr(data))
    js = e.vjson("map --start-offset --max-length", "map", "--output=json",
                 "--start-offset", "3M", "--max-length", "128K", img)
    c.check(js is not None and js[0]["start"] == 3 * MiB and
            sum(x["length"] for x in js) == 131072, "range limited", repr(js))

    print("== raw (holes)")
    compare(e, "sparse raw", "raw", src, 16 * MiB)

    print("== vmdk (monolithicSparse) and vhd (dynamic) made by qemu-img")
    if e.need_qemu("vmdk/vhd map"):
        for fmt, qfmt, name in (("vmdk", "vmdk", "s.vmdk"), ("vhd", "vpc", "s.vhd")):
            path = e.p(name)
            r = e.qimg("convert", "-O", qfmt, src, path)
            c.check(r.rc == 0, "qemu-img convert -O %s" % qfmt, r.describe())
            js = e.vjson("map --json %s" % name, "map", "--json", "-f", fmt, path)
            q = json.loads(e.qimg("map", "--output=json", "-f", qfmt, path).out)
            if js is None:
                continue
            coverage(e, name, js, q[-1]["start"] + q[-1]["length"])
            # holes read as zeroes, allocated grains/blocks are data at qemu-img's offsets
            keys = KEYS
            mine = [tuple(x.get(k) for k in keys) for x in js]
            theirs = [tuple(x.get(k) for k in keys) for x in q]
            c.check(mine == theirs, "%s: extents and offsets as qemu-img map's" % name,
                    "vireo %s\nqemu  %s" % (mine, theirs))

    print("== overlay with zero clusters over a raw base")
    if e.need_qemu_io("overlay map"):
        base = e.p("b.raw")
        write_pattern(base, 4 * MiB, [(0, 2 * MiB)], seed=4)
        top = e.p("t.qcow2")
        e.ok("create overlay", e.vireo("create", "-q", "-f", "qcow2", "-b", "b.raw", "-F", "raw",
                                       top, "6M"))
        r = e.qio("qcow2", top, "write -P 1 1M 64k", "write -z 1536k 128k", "write -P 2 5M 64k")
        c.check(r.rc == 0, "qemu-io writes", r.describe())
        compare(e, "overlay", "qcow2", top, 6 * MiB)
        r = e.vireo("map", "-f", "qcow2", top)
        c.check(r.rc == 0 and b"b.raw" in r.out and b"t.qcow2" in r.out,
                "human map names both files", r.describe())
    e.finish()


if __name__ == "__main__":
    main()
