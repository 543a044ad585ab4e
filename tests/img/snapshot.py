#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`vireo img snapshot`: create, list, apply and delete internal snapshots, verified with
qemu-img snapshot -l, the disk contents (qemu-img convert) and qemu-img check; errors
(duplicate name, unknown snapshot, raw image, bad usage) are one line each.

    snapshot.py VIREO
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imgtest import Env, MiB, one_error_line, same_file, write_pattern  # noqa: E402


def qsnaps(e, path):
    r = e.qimg("snapshot", "-l", path)
    return r.out.decode() if r.rc == 0 else None


def round_trip(e):
    c = e.c
    print("== create / list / apply / delete")
    src = e.p("v1.raw")
    write_pattern(src, 8 * MiB, [(0, 256 * 1024), (6 * MiB, 64 * 1024)], seed=3)
    img = e.p("s.qcow2")
    e.ok("convert pattern into qcow2", e.vireo("convert", "-O", "qcow2", src, img))
    e.ok("snapshot -c first", e.vireo("snapshot", "-c", "first", img))
    e.ok("snapshot -c second", e.vireo("snapshot", "-c", "second", img))
    r = e.vireo("snapshot", "-l", img)
    c.check(r.rc == 0 and b"first" in r.out and b"second" in r.out and
            r.out.startswith(b"Snapshot list:"), "snapshot -l lists both", r.describe())
    js = e.vjson("snapshot -l --json", "snapshot", "-l", "--json", img)
    c.check(js is not None and [s["name"] for s in js] == ["first", "second"] and
            [s["id"] for s in js] == ["1", "2"] and js[0]["disk-size"] == 8 * MiB,
            "snapshot -l --json: names, ids, sizes", repr(js))
    js = e.vjson("info --json snapshots", "info", "--json", img)
    c.check(js is not None and len(js.get("snapshots", [])) == 2, "info --json shows 2 snapshots",
            repr(js))
    if not e.need_qemu("qemu-img view of snapshots"):
        return
    s = qsnaps(e, img)
    c.check(s is not None and "first" in s and "second" in s, "qemu-img snapshot -l: both", s)
    r = e.qimg("check", img)
    c.check(r.rc == 0, "qemu-img check after creating snapshots: clean", r.describe())
    if not e.need_qemu_io("changing data between snapshots"):
        return
    r = e.qio("qcow2", img, "write -P 0x77 0 128k", "write -z 6M 64k", "write -P 0x78 3M 64k")
    c.check(r.rc == 0, "qemu-io changes the disk", r.describe())
    e.ok("snapshot -a first", e.vireo("snapshot", "-a", "first", img))
    out = e.p("after-apply.raw")
    r = e.qimg("convert", "-f", "qcow2", "-O", "raw", img, out)
    c.check(r.rc == 0 and same_file(src, out), "after -a the disk is the snapshot's again",
            r.describe())
    r = e.qimg("check", img)
    c.check(r.rc == 0, "qemu-img check after apply: clean", r.describe())
    e.ok("snapshot -d first", e.vireo("snapshot", "-d", "first", img))
    s = qsnaps(e, img)
    c.check(s is not None and "first" not in s and "second" in s,
            "qemu-img snapshot -l: only 'second' left", s)
    e.ok("snapshot -d 2 (by id)", e.vireo("snapshot", "-d", "2", img))
    s = qsnaps(e, img)
    c.check(s is not None and "second" not in s, "qemu-img snapshot -l: none left", s)
    r = e.qimg("check", img)
    c.check(r.rc == 0, "qemu-img check after deleting: clean", r.describe())
    # Snapshots qemu-img made are ours to apply.
    r = e.qimg("snapshot", "-c", "qsnap", img)
    c.check(r.rc == 0, "qemu-img snapshot -c qsnap", r.describe())
    r = e.qio("qcow2", img, "write -P 0x99 0 64k")
    e.ok("apply a snapshot qemu-img made", e.vireo("snapshot", "-a", "qsnap", img))
    r = e.qimg("convert", "-f", "qcow2", "-O", "raw", img, out)
    c.check(r.rc == 0 and same_file(src, out), "contents back to qemu-img's snapshot")


def errors(e):
    c = e.c
    print("== errors")
    img = e.p("e.qcow2")
    e.ok("create", e.vireo("create", "-q", "-f", "qcow2", img, "1M"))
    e.ok("snapshot -c dup", e.vireo("snapshot", "-c", "dup", img))
    r = e.vireo("snapshot", "-c", "dup", img)
    one_error_line(c, "duplicate name", r, 1, r"already exists")
    r = e.vireo("snapshot", "-d", "nosuch", img)
    one_error_line(c, "delete unknown", r, 1, r"no snapshot .* 'nosuch'")
    r = e.vireo("snapshot", "-a", "nosuch", img)
    one_error_line(c, "apply unknown", r, 1, r"no snapshot")
    raw = e.p("e.raw")
    with open(raw, "wb") as f:
        f.truncate(MiB)
    r = e.vireo("snapshot", "-l", "-f", "raw", raw)
    one_error_line(c, "snapshot on raw", r, 1, r"no internal snapshots")
    r = e.vireo("snapshot", img)
    one_error_line(c, "no action", r, 2, r"-l, -c NAME")
    r = e.vireo("snapshot", "-l", "-d", "x", img)
    one_error_line(c, "two actions", r, 2, r"only one")
    r = e.vireo("snapshot", "-c", "", img)
    one_error_line(c, "empty name", r, 2, r"empty")
    r = e.vireo("snapshot", "-c", "x" * 300, img)
    one_error_line(c, "name too long", r, 2, r"255")
    r = e.vireo("snapshot", "-c")
    one_error_line(c, "-c without a value", r, 2, r"'-c' needs a value")
    if e.qemu_img:
        r = e.qimg("create", "-q", "-f", "qcow2", "-o", "refcount_bits=1", e.p("r1.qcow2"), "1M")
        if r.rc == 0:
            r = e.vireo("snapshot", "-c", "x", e.p("r1.qcow2"))
            one_error_line(c, "refcount_bits=1 image", r, 1, r"refcount")


def main():
    e = Env("snapshot")
    round_trip(e)
    errors(e)
    e.finish()


if __name__ == "__main__":
    main()
