#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`vireo img` on bad input: missing files, unknown formats, bad sizes and options (exit 2
with a hint), and malformed qcow2 images (bad magic, offsets beyond the file, overlapping
tables, huge sizes, backing loops, ...). Every one gives exactly one "vireo: img <cmd>: ..."
line, the right exit status, no crash and no hang. Corrupt tables found while reading
(not at open) fail the command without a crash.

    errors.py VIREO
"""
import os
import re
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imgtest import Env, MiB, Qcow2, one_error_line  # noqa: E402

CMDS = ["create", "info", "check", "convert", "resize", "snapshot", "commit", "map"]


def usage(e):
    c = e.c
    print("== usage")
    for cmd in CMDS:
        r = e.vireo(cmd, "--help")
        c.check(r.rc == 0 and r.out.startswith(b"Usage: vireo img " + cmd.encode()) and
                r.err == b"", "%s --help" % cmd, r.describe())
        r = e.vireo(cmd, "--bogus", "x")
        one_error_line(c, "%s --bogus" % cmd, r, 2,
                       r"^vireo: img %s: unknown option '--bogus' \(try 'vireo img %s --help'\)$"
                       % (cmd, cmd))
        r = e.vireo(cmd)
        one_error_line(c, "%s without arguments" % cmd, r, 2, r"(missing|say what).*--help")
    r = e.vireo()
    one_error_line(c, "img without a command", r, 2, r"missing COMMAND")
    r = e.vireo("frob")
    one_error_line(c, "unknown command", r, 2, r"unknown command 'frob'")
    r = e.vireo("--help")
    c.check(r.rc == 0 and b"convert" in r.out, "img --help", r.describe())
    r = e.vireo("info", "a", "b")
    one_error_line(c, "extra argument", r, 2, r"unexpected argument 'b'")
    r = e.vireo("info", "-f")
    one_error_line(c, "-f without value", r, 2, r"'-f' needs a value")
    r = e.vireo("info", "--output=xml", "a")
    one_error_line(c, "--output=xml", r, 2, r"--output 'xml'")


def formats_and_sizes(e):
    c = e.c
    print("== formats, sizes, missing files")
    x = e.p("x.img")
    for cmd in ("info", "check", "map", "snapshot -l", "commit", "resize", "convert"):
        args = cmd.split() + ["-f", "qcow2", e.p("missing.qcow2")]
        args += {"resize": ["1M"], "convert": [e.p("out.raw")]}.get(cmd, [])
        r = e.vireo(*args)
        one_error_line(c, "%s: missing file" % cmd, r, 1,
                       r"^vireo: img %s: image '.*missing.qcow2': .*No such file" % cmd.split()[0])
    for args in (["info", "-f", "bogus", x], ["create", "-f", "bogus", x, "1M"],
                 ["convert", "-O", "bogus", x, x], ["create", "-f", "vhd", x, "1M"],
                 ["create", "-f", "qcow2", "-b", x, "-F", "bogus", x]):
        r = e.vireo(*args)
        one_error_line(c, " ".join(args[:3]), r, 2, r"'(bogus|vhd)'.*--help")
    for size in ("-1", "-5G", "12X", "", "1.5", "0x10", " 64M", "64 M", "M", "64MM", "+64M",
                 "99999999999999999999", "16E", "1e9"):
        r = e.vireo("create", "-f", "qcow2", x, size)
        one_error_line(c, "create size %r" % size, r, 2, r"size '%s'" % re.escape(size))
    c.check(not os.path.exists(x), "no image left behind by a refused create")
    for fmt, size in (("qcow2", "8E"), ("raw", "8E"), ("qcow2", "5E")):
        r = e.vireo("create", "-f", fmt, e.p("huge." + fmt), size)
        one_error_line(c, "create %s %s" % (fmt, size), r, 1, r"too large")
    r = e.vireo("create", "-f", "qcow2", "-o", "cluster_size=3000", x, "1M")
    one_error_line(c, "cluster_size=3000", r, 2, r"power of two")
    r = e.vireo("create", "-f", "qcow2", "-o", "preallocation=some", x, "1M")
    one_error_line(c, "preallocation=some", r, 2, r"preallocation='some'")
    r = e.vireo("create", "-f", "raw", "-b", "y", x, "1M")
    one_error_line(c, "raw with backing", r, 2, r"backing")
    r = e.vireo("create", "-f", "qcow2", "-b", "nosuch.raw", "-F", "raw", x)
    one_error_line(c, "missing backing file", r, 1, r"backing file.*No such file")
    r = e.vireo("create", "-f", "qcow2", "-b", "x.img", "-F", "raw", x, "1M")
    c.check(r.rc != 0, "backing file = the image itself refused", r.describe())


def corrupt_cases(e, good):
    """(name, patch function) pairs; each gets a fresh copy of `good`."""
    q = Qcow2(good)
    cs = q.cluster_size
    big = 1 << 40

    def at(off, fmt, *vals):
        def f(p):
            with open(p, "r+b") as fh:
                fh.seek(off)
                fh.write(struct.pack(fmt, *vals))
        return f

    def backing_loop(p):
        # The image names itself as its backing file, as qcow2 with a backing format.
        name = os.path.basename(p).encode()
        with open(p, "r+b") as f:
            f.seek(512)
            f.write(name)
            f.seek(8)
            f.write(struct.pack(">QI", 512, len(name)))
            f.seek(100)
            hdr_len = struct.unpack(">I", f.read(4))[0]
            f.seek(hdr_len)  # header extension: backing format "qcow2", then the end marker
            f.write(struct.pack(">II", 0xe2792aca, 5) + b"qcow2\0\0\0" + bytes(8))

    def truncate(n):
        def f(p):
            with open(p, "r+b") as fh:
                fh.truncate(n)
        return f

    return [
        ("bad magic", at(0, ">I", 0x12345678), r"bad magic"),
        ("version 9", at(4, ">I", 9), r"version"),
        ("cluster_bits 40", at(20, ">I", 40), r"cluster_bits"),
        ("huge virtual size", at(24, ">Q", 1 << 63), r"too large"),
        ("L1 beyond the file", at(40, ">Q", big), r"L1 table"),
        ("L1 overlaps the refcount table", at(40, ">Q", q.reftable_offset), r"overlap"),
        ("L1 too large", at(36, ">I", 0x7fffffff), r"L1 table"),
        ("refcount table beyond the file", at(48, ">Q", big), r"refcount table"),
        ("refcount table offset 0", at(48, ">Q", 0), r"refcount table"),
        ("backing name beyond the header", at(8, ">QI", cs * 4, 16), r"backing file name"),
        ("backing loop", backing_loop, r"loop"),
        ("snapshot table beyond the file", at(60, ">IQ", 3, big), r"snapshot"),
        ("many snapshots", at(60, ">IQ", 0xffffffff, cs), r"snapshot"),
        ("unknown incompatible feature", at(72, ">Q", 1 << 40), r"incompatible feature"),
        ("encrypted", at(32, ">I", 1), r"encrypt"),
        ("header length", at(100, ">I", 3), r"header length"),
        ("truncated to 50 bytes", truncate(50), r"qcow2"),
        ("empty file", truncate(0), r"qcow2"),
    ]


def corrupt(e):
    c = e.c
    print("== malformed qcow2 headers")
    good = e.p("good.qcow2")
    e.ok("create", e.vireo("create", "-q", "-f", "qcow2", good, "4M"))
    with open(good, "rb") as f:
        data = f.read()
    for i, (name, patch, msg) in enumerate(corrupt_cases(e, good)):
        p = e.p("bad%d.qcow2" % i)
        with open(p, "wb") as f:
            f.write(data)
        patch(p)
        # info opens no backing file (as qemu-img): a loop shows only with --backing-chain
        chain = ["--backing-chain"] if name == "backing loop" else []
        for args in (["info", "-f", "qcow2"] + chain + [p], ["check", "-f", "qcow2", p],
                     ["map", "-f", "qcow2", "--json", p],
                     ["convert", "-f", "qcow2", p, e.p("bad.raw")],
                     ["snapshot", "-f", "qcow2", "-c", "s", p],
                     ["resize", "-f", "qcow2", p, "+1M"]):
            r = e.vireo(*args)
            one_error_line(c, "%s: %s" % (name, args[0]), r, 1,
                           r"^vireo: img %s: image '.*': .*%s" % (args[0], msg))


def corrupt_tables(e):
    c = e.c
    print("== corrupt tables found while reading")
    src = e.p("t.raw")
    with open(src, "wb") as f:
        f.write(b"\x11" * (256 * 1024))
        f.truncate(4 * MiB)
    p = e.p("t.qcow2")
    e.ok("convert", e.vireo("convert", "-O", "qcow2", src, p))
    q = Qcow2(p)
    cases = [("data cluster beyond the file", (1 << 63) | (1 << 40), r"beyond end of file"),
             ("data cluster on the refcount table", (1 << 63) | q.reftable_offset,
              r"points into metadata"),
             ("unaligned data cluster", (1 << 63) | (q.cluster_size * 5 + 4096), r"unaligned"),
             ("compressed beyond the file", (1 << 62) | (1 << 40), r"compressed data beyond")]
    top = e.p("t-top.qcow2")
    e.ok("overlay", e.vireo("create", "-q", "-f", "qcow2", "-b", "t.qcow2", "-F", "qcow2", top))
    for name, entry, why in cases:
        q.poke(q.first_l2(), ">Q", entry)
        # one line: what failed, and the reason the image gave (issue 3, finding 4)
        for args in (["convert", "-f", "qcow2", p, e.p("t.out")], ["map", "-f", "qcow2", p]):
            r = e.vireo(*args)
            one_error_line(c, "%s: %s" % (name, args[0]), r, 1,
                           r"^vireo: img %s: image '.*t.qcow2': .*L2 table 0x[0-9a-f]+ entry 0 "
                           r"\(0x[0-9a-f]+\): .*%s" % (args[0], why))
        r = e.vireo("convert", "-f", "qcow2", top, e.p("t.out"))
        one_error_line(c, "%s: convert of an overlay" % name, r, 1,
                       r"^vireo: img convert: image '.*t-top.qcow2': .*backing file "
                       r"'.*t.qcow2': L2 table .*%s" % why)
        r = e.vireo("check", "-f", "qcow2", p)
        c.check(r.rc == 2, "%s: check finds it (exit 2)" % name, r.describe())

    print("== L2 entry with only the COPIED flag (reads as unallocated, as qemu)")
    q.poke(q.first_l2(), ">Q", 1 << 63)
    r = e.vireo("convert", "-f", "qcow2", p, e.p("t.out"))
    e.ok("convert reads it", r)
    with open(e.p("t.out"), "rb") as f:
        head = f.read(2 * q.cluster_size)
    c.check(head == bytes(q.cluster_size) + b"\x11" * q.cluster_size,
            "the cluster reads as zeroes, the next one as before")
    # the entry's old cluster is now referenced by nothing: a leak, and only that
    r = e.vireo("check", "-f", "qcow2", p)
    c.check(r.rc == 3 and b"1 leaked clusters" in r.out, "check agrees: one leak, no error",
            r.describe())
    if e.qemu_img:
        r = e.qimg("check", p)
        c.check(r.rc == 3, "qemu-img check: the same", r.describe())
        r = e.qimg("compare", "-F", "raw", p, e.p("t.out"))
        c.check(r.rc == 0, "qemu-img reads it the same way", r.describe())


def main():
    e = Env("errors")
    usage(e)
    formats_and_sizes(e)
    corrupt(e)
    corrupt_tables(e)
    e.finish()


if __name__ == "__main__":
    main()
