# SPDX-License-Identifier: MIT
"""Helpers for the `vireo img` tests (python3 standard library only).

Builds on tests/cli/clitest.py (Checker, run, one_error_line). Adds:
- Env: the vireo binary, a private temporary folder, vireo()/qimg() runners, and
  need_qemu(): qemu-img steps are skipped with a printed reason when it is missing.
- pattern files (deterministic data with holes), qcow2 header/refcount patching for
  hand-made corruption, byte comparison.
"""
import json
import os
import shutil
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cli"))
import clitest  # noqa: E402
from clitest import Checker, one_error_line, run  # noqa: E402,F401

SKIP = 77
MiB = 1 << 20


class Env:
    def __init__(self, name):
        if len(sys.argv) < 2:
            print("usage: %s VIREO" % sys.argv[0])
            sys.exit(2)
        self.vireo_bin = os.path.abspath(sys.argv[1])
        self.c = Checker(name)
        self.dir = clitest.tmpdir("img-" + name)
        self.qemu_img = shutil.which("qemu-img")
        self.qemu_io = shutil.which("qemu-io")

    def p(self, name):
        return os.path.join(self.dir, name)

    def vireo(self, *args, timeout=60.0):
        return run([self.vireo_bin, "img"] + [str(a) for a in args], timeout=timeout)

    def ok(self, what, r):
        """A vireo run that must succeed quietly on stderr."""
        return self.c.check(r.rc == 0 and not r.timed_out, what, r.describe())

    def need_qemu(self, what):
        if self.qemu_img:
            return True
        print("  SKIP %s: qemu-img is not installed" % what)
        return False

    def need_qemu_io(self, what):
        if self.qemu_img and self.qemu_io:
            return True
        print("  SKIP %s: qemu-img/qemu-io is not installed" % what)
        return False

    def qimg(self, *args, timeout=60.0):
        return run([self.qemu_img] + [str(a) for a in args], timeout=timeout)

    def qio(self, fmt, path, *cmds):
        args = [self.qemu_io, "-f", fmt]
        for cmd in cmds:
            args += ["-c", cmd]
        return run(args + [path], timeout=60.0)

    def qinfo(self, path, fmt=None):
        args = ["info", "--output=json"] + (["-f", fmt] if fmt else []) + [path]
        r = self.qimg(*args)
        return json.loads(r.out) if r.rc == 0 else None

    def vjson(self, what, *args):
        """Run vireo with JSON output; the parsed document, or None (a failed check)."""
        r = self.vireo(*args)
        try:
            doc = json.loads(r.out.decode("utf-8"))
        except ValueError as e:
            self.c.check(False, "%s: output is JSON" % what, "%s\n%s" % (e, r.describe()))
            return None
        self.c.check(True, "%s: output is JSON" % what)
        return doc

    def finish(self):
        self.c.finish()


def pattern_bytes(n, seed):
    """n bytes of a pattern that differs per seed and per position (never all zero)."""
    block = bytes(((i * 131 + seed * 17) % 251) + 1 for i in range(4096))
    return (block * (n // 4096 + 1))[:n]


def write_pattern(path, size, extents, seed=1):
    """A sparse raw file of `size` bytes with data at [(offset, length), ...]."""
    with open(path, "wb") as f:
        f.truncate(size)
        for i, (off, ln) in enumerate(extents):
            f.seek(off)
            f.write(pattern_bytes(ln, seed + i))


def same_file(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


class Qcow2:
    """Just enough of a qcow2 header to damage an image on purpose."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            h = f.read(104)
        self.cluster_bits = struct.unpack(">I", h[20:24])[0]
        self.cluster_size = 1 << self.cluster_bits
        self.l1_offset = struct.unpack(">Q", h[40:48])[0]
        self.reftable_offset = struct.unpack(">Q", h[48:56])[0]
        self.refcount_order = struct.unpack(">I", h[96:100])[0] if len(h) >= 100 else 4

    def poke(self, off, fmt, value):
        with open(self.path, "r+b") as f:
            f.seek(off)
            f.write(struct.pack(fmt, value))

    def peek(self, off, fmt):
        with open(self.path, "rb") as f:
            f.seek(off)
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

    def set_refcount(self, cluster, value):
        """16-bit refcounts only (the default), cluster covered by the first block."""
        assert self.refcount_order == 4
        rb = self.peek(self.reftable_offset, ">Q")
        assert cluster < self.cluster_size // 2
        self.poke(rb + 2 * cluster, ">H", value)

    def first_l2(self):
        return self.peek(self.l1_offset, ">Q") & 0x00fffffffffffe00
