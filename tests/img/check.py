#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`vireo img check`: exit statuses as qemu-img's (0 clean, 3 leaks, 2 corruptions,
63 nothing to check, 1 cannot check) on images qemu-img made and then damaged by hand;
-r leaks repairs leaks only, -r all repairs refcounts too, and qemu-img check agrees with
the result; --json parses and carries the counts.

    check.py VIREO
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imgtest import Env, MiB, Qcow2, one_error_line  # noqa: E402


def make(e, name, vireo_made=False):
    """A 16M qcow2 with 256K of data, by qemu-img/qemu-io when there, else by vireo."""
    path = e.p(name)
    if e.qemu_img and e.qemu_io and not vireo_made:
        r = e.qimg("create", "-q", "-f", "qcow2", path, "16M")
        r2 = e.qio("qcow2", path, "write -P 0x41 0 128k", "write -P 0x42 4M 128k")
        assert r.rc == 0 and r2.rc == 0, r.describe() + r2.describe()
    else:
        src = e.p(name + ".src")
        with open(src, "wb") as f:
            f.truncate(16 * MiB)
            f.write(b"A" * 131072)
            f.seek(4 * MiB)
            f.write(b"B" * 131072)
        r = e.vireo("convert", "-O", "qcow2", src, path)
        assert r.rc == 0, r.describe()
    return path


def add_leaks(path, n):
    """Grow the file by n clusters and count them as used: n leaked clusters."""
    q = Qcow2(path)
    size = os.path.getsize(path)
    first = (size + q.cluster_size - 1) // q.cluster_size
    with open(path, "r+b") as f:
        f.truncate((first + n) * q.cluster_size)
    for k in range(n):
        q.set_refcount(first + k, 1)


def qcheck(e, path, want, what):
    if e.need_qemu("qemu-img check %s" % what):
        r = e.qimg("check", path)
        e.c.check(r.rc == want, "qemu-img check %s: exit %d" % (what, want), r.describe())


def clean(e):
    c = e.c
    print("== clean images")
    for name, vm in (("clean.qcow2", False), ("vclean.qcow2", True)):
        p = make(e, name, vm)
        r = e.vireo("check", p)
        c.check(r.rc == 0 and b"No errors were found" in r.out and r.err == b"",
                "check %s: exit 0, no errors" % name, r.describe())
        js = e.vjson("check --json %s" % name, "check", "--json", "-f", "qcow2", p)
        if js is not None:
            c.check(js.get("leaks") == 0 and js.get("corruptions") == 0 and
                    js.get("total-clusters") == 256 and js.get("allocated-clusters") == 4 and
                    js.get("format") == "qcow2", "check --json counts", repr(js))
            if e.qemu_img:
                r = e.qimg("check", "--output=json", p)
                q = json.loads(r.out)
                for k in ("image-end-offset", "total-clusters", "allocated-clusters"):
                    c.check(js.get(k) == q.get(k), "check --json %s as qemu-img's" % k,
                            "vireo %r qemu %r" % (js.get(k), q.get(k)))


def leaks(e):
    c = e.c
    print("== leaked clusters")
    p = make(e, "leak.qcow2")
    add_leaks(p, 3)
    qcheck(e, p, 3, "leaked image")
    r = e.vireo("check", p)
    c.check(r.rc == 3 and b"3 leaked clusters were found" in r.out, "check: exit 3, 3 leaks",
            r.describe())
    js = e.vjson("check --json leaked", "check", "--output=json", p)
    c.check(js is not None and js.get("leaks") == 3 and js.get("corruptions") == 0,
            "--json: 3 leaks", repr(js))
    if js is not None and e.qemu_img:  # leaked clusters at the end count, as qemu-img's
        r = e.qimg("check", "--output=json", p)
        q = json.loads(r.out) if r.out else {}
        c.check(js.get("image-end-offset") == q.get("image-end-offset"),
                "leaked image: image-end-offset as qemu-img's",
                "vireo %r qemu %r" % (js.get("image-end-offset"), q.get("image-end-offset")))
    r = e.vireo("check", "-q", p)
    c.check(r.rc == 3 and r.out == b"", "-q: status only", r.describe())
    r = e.vireo("check", "-r", "leaks", p)
    c.check(r.rc == 0 and b"3 leaked clusters" in r.out and b"No errors were found" in r.out,
            "-r leaks: repaired, exit 0", r.describe())
    qcheck(e, p, 0, "after -r leaks")
    r = e.vireo("check", p)
    c.check(r.rc == 0, "check after repair: clean", r.describe())


def corruption(e):
    c = e.c
    print("== refcount too low (corruption)")
    p = make(e, "corrupt.qcow2")
    q = Qcow2(p)
    add_leaks(p, 1)
    q.set_refcount(q.l1_offset // q.cluster_size, 0)  # the L1 table: in use, counted 0
    qcheck(e, p, 2, "corrupted image")
    r = e.vireo("check", p)
    c.check(r.rc == 2 and b"1 errors were found" in r.out, "check: exit 2, 1 error",
            r.describe())
    js = e.vjson("check -r leaks --json", "check", "-r", "leaks", "--json", p)
    c.check(js is not None and js.get("leaks-fixed") == 1 and js.get("corruptions-fixed") == 0
            and js.get("leaks") == 0 and js.get("refcount-errors") == 1,
            "-r leaks: the leak is repaired, the corruption left", repr(js))
    r = e.vireo("check", p)
    c.check(r.rc == 2 and b"1 errors were found" in r.out and b"leaked" not in r.out,
            "after -r leaks: exit 2, one error, no leak", r.describe())
    qcheck(e, p, 2, "after -r leaks")
    if e.qemu_img:
        r = e.qimg("check", "--output=json", p)
        q = json.loads(r.out) if r.out else {}
        c.check(q.get("leaks", 0) == 0 and q.get("corruptions") == 1,
                "qemu-img check after vireo -r leaks: no leak, 1 corruption", r.describe())
    add_leaks(p, 2)
    r = e.vireo("check", "-r", "leaks", p)
    c.check(r.rc == 2 and b"2 leaked clusters" in r.out and b"1 errors were found" in r.out,
            "-r leaks (human): says 2 leaks repaired, 1 error left, exit 2", r.describe())
    add_leaks(p, 1)
    js = e.vjson("check -r all --json", "check", "-r", "all", "--json", p)
    c.check(js is not None and js.get("corruptions-fixed") == 1 and js.get("leaks-fixed") == 1
            and js.get("corruptions") == 0 and js.get("leaks") == 0,
            "-r all: 1 corruption and 1 leak fixed", repr(js))
    qcheck(e, p, 0, "after -r all")

    print("== data cluster beyond the end of the file")
    p = make(e, "oob.qcow2")
    q = Qcow2(p)
    q.poke(q.first_l2(), ">Q", (1 << 63) | (0x7000 * q.cluster_size))
    r = e.vireo("check", p)
    c.check(r.rc == 2 and b"outside the file" in r.out, "check: exit 2, entry outside the file",
            r.describe())
    r = e.vireo("check", "-r", "all", p)
    c.check(r.rc == 2, "-r all cannot fix it: still exit 2", r.describe())


def leaks_only_vs_qemu(e):
    """-r leaks on leaks plus a refcount that is too low (but not 0, which qemu-img can only
    rebuild): both tools repair the leaks, leave the corruption and exit 2."""
    c = e.c
    print("== -r leaks with a corruption, vireo against qemu-img")
    if not e.need_qemu_io("qemu-img -r leaks comparison"):
        return
    p = make(e, "lc.qcow2")
    r = e.qimg("snapshot", "-c", "s1", p)
    c.check(r.rc == 0, "qemu-img snapshot -c", r.describe())
    q = Qcow2(p)
    add_leaks(p, 2)
    q.set_refcount((q.peek(q.first_l2(), ">Q") & 0x00fffffffffffe00) // q.cluster_size, 1)
    qp = e.p("lc-q.qcow2")
    with open(p, "rb") as f, open(qp, "wb") as g:
        g.write(f.read())
    r = e.qimg("check", "-r", "leaks", qp)
    c.check(r.rc == 2, "qemu-img check -r leaks: exit 2", r.describe())
    r = e.vireo("check", "-r", "leaks", p)
    # the refcount and the COPIED flag that no longer matches it: 2 errors in both tools
    c.check(r.rc == 2 and b"2 leaked clusters" in r.out and b"2 errors were found" in r.out,
            "vireo check -r leaks: 2 leaks repaired, 2 errors left, exit 2", r.describe())
    for path, who in ((p, "vireo"), (qp, "qemu-img")):
        r = e.qimg("check", "--output=json", path)
        js = json.loads(r.out) if r.out else {}
        c.check(r.rc == 2 and js.get("leaks", 0) == 0 and js.get("corruptions") == 2,
                "qemu-img check after %s -r leaks: no leak, 2 corruptions" % who, r.describe())
    r = e.vireo("check", "-r", "all", p)
    c.check(r.rc == 0, "-r all then repairs the rest", r.describe())
    qcheck(e, p, 0, "after -r leaks then -r all")


def others(e):
    c = e.c
    print("== formats without checks, bad input")
    raw = e.p("x.raw")
    with open(raw, "wb") as f:
        f.truncate(MiB)
    r = e.vireo("check", "-f", "raw", raw)
    one_error_line(c, "check raw", r, 63, r"raw images have no metadata")
    r = e.vireo("check", "-f", "qcow2", raw)
    one_error_line(c, "check -f qcow2 on a raw file", r, 1, r"bad magic")
    r = e.vireo("check", e.p("missing.qcow2"))
    one_error_line(c, "check missing file", r, 1, r"No such file")
    r = e.vireo("check", "-r", "bogus", raw)
    one_error_line(c, "check -r bogus", r, 2, r"-r 'bogus'")
    r = e.vireo("check", "-r", "all", "-U", raw)
    one_error_line(c, "check -r all -U", r, 2, r"-U")


def main():
    e = Env("check")
    clean(e)
    leaks(e)
    leaks_only_vs_qemu(e)
    corruption(e)
    others(e)
    e.finish()


if __name__ == "__main__":
    main()
