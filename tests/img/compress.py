#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`vireo img convert -c`: compressed qcow2 output (zlib and zstd, several cluster sizes,
refcount widths and both versions) that qemu-img compare calls identical to the source and
qemu-img check calls clean, with compressed clusters where data compresses and plain
clusters where it does not; vireo reads it back byte for byte.

    compress.py VIREO
"""
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imgtest import Env, MiB, same_file  # noqa: E402

SIZE = 6 * MiB + 1536  # the last cluster is partial


def make_source(path):
    """Compressible text, random bytes that do not compress, zeros, an odd tail."""
    rnd = random.Random(7)
    with open(path, "wb") as f:
        f.truncate(SIZE)
        for i in range(0, 6 * MiB, MiB):
            f.seek(i)
            f.write(bytes(rnd.getrandbits(8) for _ in range(70000)))
            f.seek(i + 300000)
            f.write(("block %d says hello " % i).encode() * 6000)
        f.seek(SIZE - 900)
        f.write(b"the end" * 10)


def one(e, src, name, opts):
    c = e.c
    dst = e.p(name)
    args = ["convert", "-c", "-O", "qcow2"] + (["-o", opts] if opts else []) + [src, dst]
    r = e.vireo(*args)
    e.ok("convert -c %s" % (opts or "(defaults)"), r)
    r = e.vireo("check", dst)
    c.check(r.rc == 0, "%s: vireo check clean" % name, r.describe())
    back = e.p(name + ".raw")
    e.ok("%s back to raw" % name, e.vireo("convert", "-f", "qcow2", dst, back))
    c.check(same_file(src, back), "%s: vireo reads the source back byte for byte" % name)
    if not e.qemu_img:
        return None
    r = e.qimg("compare", "-f", "raw", "-F", "qcow2", src, dst)
    c.check(r.rc == 0, "%s: qemu-img compare: identical" % name, r.describe())
    r = e.qimg("check", "--output=json", dst)
    q = json.loads(r.out) if r.rc == 0 and r.out else {}
    comp, alloc = q.get("compressed-clusters", 0), q.get("allocated-clusters", 0)
    c.check(r.rc == 0 and 0 < comp <= alloc,
            "%s: qemu-img check clean, %d of %d clusters compressed" % (name, comp, alloc),
            r.describe())
    return comp, alloc


def main():
    e = Env("compress")
    c = e.c
    src = e.p("src.raw")
    make_source(src)
    print("== convert -c")
    plain = e.p("plain.qcow2")
    e.ok("convert without -c", e.vireo("convert", "-O", "qcow2", src, plain))
    for name, opts in (("zlib.qcow2", None), ("zstd.qcow2", "compression_type=zstd"),
                       ("c512.qcow2", "cluster_size=512"),
                       ("c4k-rc1.qcow2", "cluster_size=4k,refcount_bits=1"),
                       ("v2.qcow2", "compat=0.10"),
                       ("c2m.qcow2", "cluster_size=2M,compression_type=zstd"),
                       ("c1k-rc2.qcow2", "cluster_size=1k,refcount_bits=2,compression_type=zlib")):
        got = one(e, src, name, opts)
        if got and name == "zlib.qcow2":  # random 64K clusters do not compress
            c.check(got[0] < got[1], "incompressible clusters are stored plain", repr(got))
    for n in ("zlib.qcow2", "zstd.qcow2"):
        c.check(os.path.getsize(e.p(n)) < os.path.getsize(plain) * 3 // 4,
                "%s: smaller than the uncompressed conversion" % n,
                "%d vs %d" % (os.path.getsize(e.p(n)), os.path.getsize(plain)))
    if e.qemu_img:
        qi = e.qinfo(e.p("zstd.qcow2"))
        c.check(qi and qi["format-specific"]["data"].get("compression-type") == "zstd",
                "qemu-img info: compression type zstd", repr(qi))
        # qemu-img's own -c output converts back to the same bytes through vireo
        qz = e.p("qemu-zstd.qcow2")
        r = e.qimg("convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", src, qz)
        c.check(r.rc == 0, "qemu-img convert -c", r.describe())
        r = e.vireo("convert", "-c", "-O", "qcow2", "-f", "qcow2", qz, e.p("re.qcow2"))
        e.ok("vireo convert -c of qemu-img's compressed image", r)
        r = e.qimg("compare", src, e.p("re.qcow2"))
        c.check(r.rc == 0, "recompressed image identical to the source", r.describe())
    if e.need_qemu_io("qemu-io writes over vireo's compressed clusters"):
        z = e.p("zlib.qcow2")
        r = e.qio("qcow2", z, "write -P 0x5a 300000 5000", "write -P 0x33 65536 512")
        c.check(r.rc == 0, "qemu-io overwrites compressed clusters", r.describe())
        r = e.qimg("check", z)
        c.check(r.rc == 0, "qemu-img check after qemu-io's overwrite: clean", r.describe())
        r = e.vireo("check", z)
        c.check(r.rc == 0, "vireo check after qemu-io's overwrite: clean", r.describe())
        with open(src, "rb") as f:
            want = bytearray(f.read())
        want[300000:305000] = b"\x5a" * 5000
        want[65536:66048] = b"\x33" * 512
        e.ok("overwritten image to raw", e.vireo("convert", z, e.p("ow.raw")))
        with open(e.p("ow.raw"), "rb") as f:
            c.check(f.read() == bytes(want), "vireo reads qemu-io's overwrite of compressed data")
    print("== bad combinations")
    r = e.vireo("convert", "-c", "-O", "qcow2", "-o", "compat=0.10,compression_type=zstd", src,
                e.p("bad.qcow2"))
    c.check(r.rc == 2 and b"compat=1.1" in r.err, "zstd with compat=0.10 refused", r.describe())
    r = e.vireo("convert", "-c", "-O", "qcow2", "-o", "compression_type=lzo", src,
                e.p("bad.qcow2"))
    c.check(r.rc == 2 and b"zlib or zstd" in r.err, "unknown compression type refused",
            r.describe())
    e.finish()


if __name__ == "__main__":
    main()
