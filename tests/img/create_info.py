#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`vireo img create` and `vireo img info`: images made with every option are what
qemu-img sees (size, cluster size, version, backing file, clean check), and info's text and
JSON report the same facts.

    create_info.py VIREO
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imgtest import Env, MiB, one_error_line, write_pattern  # noqa: E402


def create_qcow2(e):
    c = e.c
    print("== create qcow2")
    a = e.p("a.qcow2")
    r = e.vireo("create", "-f", "qcow2", a, "64M")
    e.ok("create -f qcow2 64M", r)
    c.check(b"Formatting" in r.out and b"size=67108864" in r.out, "create says what it made",
            r.describe())
    r = e.vireo("create", "-q", "-f", "qcow2", "-o", "cluster_size=4K,compat=0.10", e.p("b.qcow2"),
                "1.5G")
    e.ok("create -o cluster_size=4K,compat=0.10 1.5G", r)
    c.check(r.out == b"", "-q prints nothing", r.describe())
    r = e.vireo("create", "-q", "-f", "qcow2", "-o", "refcount_bits=64,preallocation=metadata",
                e.p("m.qcow2"), "3M")
    e.ok("create -o preallocation=metadata", r)
    r = e.vireo("create", "-q", "-f", "qcow2", "-o", "preallocation=full", e.p("f.qcow2"), "2M")
    e.ok("create -o preallocation=full", r)
    c.check(os.stat(e.p("f.qcow2")).st_blocks * 512 >= 2 * MiB,
            "preallocation=full allocates the data clusters on disk")
    if not e.need_qemu("qemu-img view of created qcow2 images"):
        return
    qi = e.qinfo(a)
    c.check(qi and qi["virtual-size"] == 64 * MiB and qi["cluster-size"] == 65536 and
            qi["format-specific"]["data"]["compat"] == "1.1",
            "qemu-img info: 64M, 64K clusters, compat 1.1", repr(qi))
    qi = e.qinfo(e.p("b.qcow2"))
    c.check(qi and qi["virtual-size"] == 1536 * MiB and qi["cluster-size"] == 4096 and
            qi["format-specific"]["data"]["compat"] == "0.10",
            "qemu-img info: 1.5G, 4K clusters, compat 0.10", repr(qi))
    qi = e.qinfo(e.p("m.qcow2"))
    c.check(qi and qi["format-specific"]["data"]["refcount-bits"] == 64,
            "qemu-img info: refcount bits 64", repr(qi))
    for n in ("a.qcow2", "b.qcow2", "m.qcow2", "f.qcow2"):
        r = e.qimg("check", e.p(n))
        c.check(r.rc == 0, "qemu-img check %s: clean" % n, r.describe())
    r = e.qimg("map", "--output=json", e.p("m.qcow2"))
    c.check(r.rc == 0 and b'"data": true' in r.out and b'"data": false' not in r.out,
            "preallocation=metadata: qemu-img map shows every cluster allocated", r.describe())


def create_empty(e):
    """A 0-byte qcow2 has no L1 table: nothing leaks (issue 3, finding 1)."""
    c = e.c
    print("== create an empty qcow2")
    for compat in ("1.1", "0.10"):
        z = e.p("z%s.qcow2" % compat)
        e.ok("create -o compat=%s 0" % compat,
             e.vireo("create", "-q", "-f", "qcow2", "-o", "compat=" + compat, z, "0"))
        r = e.vireo("check", z)
        c.check(r.rc == 0 and b"No errors" in r.out, "check of an empty image: clean",
                r.describe())
        c.check(os.path.getsize(z) == 3 * 65536, "empty image: header + reftable + refblock",
                "size %d" % os.path.getsize(z))
        if e.need_qemu("qemu-img check of an empty image"):
            r = e.qimg("check", z)
            c.check(r.rc == 0, "qemu-img check of an empty compat=%s image: clean" % compat,
                    r.describe())
        e.ok("resize the empty image to 3M", e.vireo("resize", "-q", z, "3M"))
        r = e.vireo("check", z)
        c.check(r.rc == 0, "grown empty image: clean", r.describe())
        if e.qemu_img:
            r = e.qimg("check", z)
            c.check(r.rc == 0, "qemu-img check of the grown image: clean", r.describe())


def create_raw(e):
    c = e.c
    print("== create raw")
    r = e.vireo("create", e.p("r.raw"), "1000")
    e.ok("create raw 1000", r)
    c.check(os.path.getsize(e.p("r.raw")) == 1024, "raw size rounded up to whole sectors")
    c.check(os.stat(e.p("r.raw")).st_blocks == 0, "raw image is sparse")
    r = e.vireo("create", "-f", "raw", "-o", "preallocation=full", e.p("full.raw"), "1M")
    e.ok("create raw preallocation=full", r)
    c.check(os.stat(e.p("full.raw")).st_blocks * 512 >= MiB, "preallocation=full writes blocks")
    r = e.vireo("create", "-f", "raw", "-o", "preallocation=falloc", e.p("fa.raw"), "1M")
    e.ok("create raw preallocation=falloc", r)
    r = e.vireo("create", "-f", "raw", "-o", "help")
    c.check(r.rc == 0 and b"preallocation" in r.out, "-o help lists raw options", r.describe())
    r = e.vireo("create", "-f", "qcow2", "-o", "help")
    c.check(r.rc == 0 and b"cluster_size" in r.out, "-o help lists qcow2 options", r.describe())


def create_backing(e):
    c = e.c
    print("== create with a backing file")
    base = e.p("base.raw")
    write_pattern(base, 8 * MiB, [(0, 65536)])
    top = e.p("top.qcow2")
    # Relative backing names are taken from the image's folder, as qemu-img does.
    r = e.vireo("create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", top)
    e.ok("create -b base.raw -F raw (size from the backing file)", r)
    r = e.vireo("create", "-q", "-f", "qcow2", "-b", "top.qcow2", "-F", "qcow2", e.p("top2.qcow2"),
                "16M")
    e.ok("create -b top.qcow2 -F qcow2 16M", r)
    # Without -F: a raw-looking backing file is recorded as raw, a qcow2 one needs -F.
    r = e.vireo("create", "-q", "-f", "qcow2", "-b", "base.raw", e.p("nof.qcow2"))
    e.ok("create -b raw file without -F", r)
    r = e.vireo("create", "-f", "qcow2", "-b", "top.qcow2", e.p("bad.qcow2"))
    c.check(r.rc == 2 and b"-F qcow2" in r.err, "a qcow2 backing file without -F is refused",
            r.describe())
    js = e.vjson("info --backing-chain --json", "info", "-f", "qcow2", "--backing-chain",
                 "--json", e.p("top2.qcow2"))
    if js is not None:
        c.check(isinstance(js, list) and len(js) == 3, "backing chain has 3 images", repr(js))
        if isinstance(js, list) and len(js) == 3:
            c.check(js[0]["virtual-size"] == 16 * MiB and js[1]["virtual-size"] == 8 * MiB and
                    js[2]["format"] == "raw", "chain sizes and formats", repr(js))
            c.check(js[0]["backing-filename"] == "top.qcow2" and
                    js[0]["backing-filename-format"] == "qcow2" and
                    js[1]["backing-filename"] == "base.raw", "chain backing names", repr(js))
    r = e.vireo("info", "-f", "qcow2", "--backing-chain", e.p("top2.qcow2"))
    c.check(r.rc == 0 and r.out.count(b"image: ") == 3, "human --backing-chain shows 3 images",
            r.describe())
    # A guessed format never opens a backing file: info opens none unless --backing-chain.
    r = e.vireo("info", e.p("top2.qcow2"))
    c.check(r.rc == 0 and b"(probed)" in r.out and b"backing file: top.qcow2" in r.out,
            "info without -f: the header, backing file not opened", r.describe())
    r = e.vireo("info", "--backing-chain", e.p("top2.qcow2"))
    c.check(r.rc == 1 and b"-f qcow2" in r.err, "info --backing-chain without -f is refused",
            r.describe())
    if e.need_qemu("qemu-img view of the overlay"):
        qi = e.qinfo(e.p("nof.qcow2"))
        c.check(qi and qi.get("backing-filename-format") == "raw" and
                qi["virtual-size"] == 8 * MiB, "qemu-img sees backing format raw, size 8M",
                repr(qi))
        qi = e.qinfo(e.p("top2.qcow2"))
        c.check(qi and qi.get("backing-filename") == "top.qcow2" and
                qi.get("backing-filename-format") == "qcow2", "qemu-img sees the backing file",
                repr(qi))


def missing_backing(e):
    """info shows the header of an image whose backing file is gone (issue 3, finding 5);
    what needs the data fails with one line naming the missing file."""
    c = e.c
    print("== backing file missing")
    d = os.path.join(e.dir, "mb")
    os.mkdir(d)
    base, top = os.path.join(d, "gone.raw"), os.path.join(d, "orphan.qcow2")
    write_pattern(base, MiB, [(0, 4096)])
    e.ok("create the overlay", e.vireo("create", "-q", "-f", "qcow2", "-b", "gone.raw", "-F",
                                       "raw", top))
    os.unlink(base)
    for fmt in ([], ["-f", "qcow2"]):
        r = e.vireo("info", *(fmt + [top]))
        c.check(r.rc == 0 and b"backing file: gone.raw (actual path: " + base.encode() in r.out
                and b"virtual size: 1 MiB" in r.out,
                "info %s: header and the missing backing file's name" % " ".join(fmt),
                r.describe())
    js = e.vjson("info --json, backing file missing", "info", "--json", "-f", "qcow2", top)
    q = e.qinfo(top) if e.qemu_img else None
    if js is not None:
        c.check(js.get("backing-filename") == "gone.raw" and
                js.get("full-backing-filename") == base and
                js.get("backing-filename-format") == "raw", "info --json backing names",
                repr(js))
        if q:
            for k in ("backing-filename", "full-backing-filename", "backing-filename-format",
                      "virtual-size"):
                c.check(js.get(k) == q.get(k), "info --json %s as qemu-img's" % k,
                        "vireo %r qemu %r" % (js.get(k), q.get(k)))
    r = e.vireo("info", "-f", "qcow2", "--backing-chain", top)
    one_error_line(c, "info --backing-chain, backing file missing", r, 1,
                   r"^vireo: img info: image '.*orphan.qcow2': backing file 'gone.raw'.*"
                   r"No such file")
    r = e.vireo("convert", "-f", "qcow2", top, os.path.join(d, "x.raw"))
    one_error_line(c, "convert, backing file missing", r, 1, r"gone.raw.*No such file")


def info(e):
    c = e.c
    print("== info")
    a = e.p("a.qcow2")
    r = e.vireo("info", a)
    c.check(r.rc == 0 and b"file format: qcow2 (probed)" in r.out, "info: probed format shown",
            r.describe())
    c.check(b"virtual size: 64 MiB (67108864 bytes)" in r.out and b"cluster_size: 65536" in
            r.out and b"dirty: false" in r.out, "info: size, cluster size, flags", r.describe())
    r = e.vireo("info", "-f", "qcow2", a)
    c.check(r.rc == 0 and b"(probed)" not in r.out, "info -f: not probed", r.describe())
    js = e.vjson("info --json", "info", "--json", a)
    if js is not None:
        c.check(js.get("virtual-size") == 64 * MiB and js.get("format") == "qcow2" and
                js.get("cluster-size") == 65536 and js.get("dirty-flag") is False and
                js.get("format-probed") is True and isinstance(js.get("actual-size"), int),
                "info --json keys", repr(js))
        if e.need_qemu("info --json against qemu-img"):
            q = e.qinfo(a)
            for k in ("virtual-size", "cluster-size", "format", "actual-size", "dirty-flag"):
                c.check(q and js.get(k) == q.get(k), "info --json %s as qemu-img's" % k,
                        "vireo %r qemu %r" % (js.get(k), q and q.get(k)))
            c.check(q and js["format-specific"]["data"] == q["format-specific"]["data"],
                    "format-specific data as qemu-img's", "%r\n%r" % (js, q))
    js = e.vjson("info --output=json raw", "info", "--output=json", e.p("r.raw"))
    if js is not None:
        c.check(js.get("format") == "raw" and js.get("virtual-size") == 1024, "raw info",
                repr(js))
    # A file name that is not UTF-8 and has a newline still gives valid JSON.
    odd = os.path.join(e.dir.encode(), b"odd\n\xff\"name.raw")
    with open(odd, "wb") as f:
        f.truncate(4096)
    js = e.vjson("info --json with an odd file name", "info", "--json", "-f", "raw",
                 odd.decode("utf-8", "surrogateescape"))
    if js is not None:
        c.check("odd\n\ufffd\"name.raw" in js.get("filename", ""), "odd name escaped", repr(js))


def main():
    e = Env("create-info")
    create_qcow2(e)
    create_empty(e)
    create_raw(e)
    create_backing(e)
    missing_backing(e)
    info(e)
    e.finish()


if __name__ == "__main__":
    main()
