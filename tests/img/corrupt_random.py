#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`vireo img` on randomly damaged qcow2 images (fixed seed, so every run is the same):
bytes in the header, tables and snapshot data are overwritten, then info, check, check -r
all, map, convert (plain and -c), snapshot -l/-a and resize run on the result. Whatever the damage, no
command may crash or hang, the exit status is one of the documented ones, and every stderr
line starts with "vireo: ".

    corrupt_random.py VIREO [ITERATIONS]
"""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imgtest import Env, MiB, run, write_pattern  # noqa: E402

STATUSES = {0, 1, 2, 3, 63}


def seeds(e):
    """Small images with every kind of structure: snapshots, zero and compressed clusters."""
    src = e.p("s.raw")
    write_pattern(src, 2 * MiB, [(0, 96 * 1024), (MiB, 40000)])
    out = []
    for name, opts in (("a.qcow2", ["-o", "cluster_size=512"]),
                       ("b.qcow2", ["-o", "cluster_size=4K"])):
        p = e.p(name)
        r = e.vireo("convert", "-O", "qcow2", *opts, src, p)
        e.ok("seed image %s" % name, r)
        e.ok("seed snapshot", e.vireo("snapshot", "-c", "s1", p))
        out.append(p)
    p = e.p("z.qcow2")  # compressed clusters vireo wrote (zstd, packed)
    e.ok("seed image z.qcow2", e.vireo("convert", "-c", "-O", "qcow2", "-o",
                                       "cluster_size=4K,compression_type=zstd", src, p))
    out.append(p)
    if e.qemu_img:
        p = e.p("c.qcow2")
        r = e.qimg("convert", "-c", "-O", "qcow2", "-o", "cluster_size=4K", src, p)
        if r.rc == 0:
            out.append(p)
    return out


def damage(rnd, data):
    data = bytearray(data)
    for _ in range(rnd.randint(1, 6)):
        hot = rnd.random() < 0.4
        off = rnd.randrange(0, 512 if hot else len(data))
        width = rnd.choice([1, 2, 4, 8])
        data[off:off + width] = rnd.randbytes(width)[:len(data) - off]
    return bytes(data)


def main():
    e = Env("corrupt-random")
    c = e.c
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    rnd = random.Random(20240611)
    images = seeds(e)
    victim = e.p("v.qcow2")
    bad = 0
    for i in range(n):
        src = rnd.choice(images)
        with open(src, "rb") as f:
            data = damage(rnd, f.read())
        for args in (["info", "-f", "qcow2", victim], ["check", "-f", "qcow2", victim],
                     ["map", "-f", "qcow2", "--json", victim],
                     ["convert", "-f", "qcow2", victim, e.p("o.raw")],
                     ["convert", "-c", "-O", "qcow2", "-f", "qcow2", victim, e.p("o.qcow2")],
                     ["snapshot", "-l", "-f", "qcow2", victim],
                     ["check", "-r", "all", "-f", "qcow2", victim],
                     ["snapshot", "-a", "s1", "-f", "qcow2", victim],
                     ["resize", "-f", "qcow2", victim, "+64K"]):
            if args[0] == "info":  # a fresh copy for each round of commands
                with open(victim, "wb") as f:
                    f.write(data)
            r = run([e.vireo_bin, "img"] + args, timeout=30.0)
            lines = r.err_lines()
            ok = (not r.timed_out and r.rc in STATUSES and
                  all(ln.startswith("vireo: ") for ln in lines))
            if not ok:  # the seed is fixed: round i is reproducible
                bad += 1
                c.check(False, "round %d: %s" % (i, " ".join(args[:2])), r.describe())
    c.check(bad == 0, "%d rounds x 9 commands on damaged images: no crash, hang or stray "
            "output" % n)
    e.finish()


if __name__ == "__main__":
    main()
