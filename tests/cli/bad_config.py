#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Configuration errors found once KVM is open: bad kernels and initrds, an oversized command
line, memory and vCPU counts the host cannot give, control socket paths that cannot be used.

    bad_config.py VIREO GOOD_KERNEL

GOOD_KERNEL is a PVH ELF guest (the ticker); truncated copies of it, and of a bzImage found
under $VIREO_CACHE or ~/.cache/vireo when there is one, are made in a temporary directory.
Every case must fail with exit 1 (2 where a usage error is also right), exactly one line
"vireo: ..." on stderr, nothing on stdout, promptly, and leave no control socket behind.
Exit 77 without a usable /dev/kvm (the errors would be about KVM instead).
"""
import glob
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clitest  # noqa: E402
from clitest import Checker, one_error_line, run  # noqa: E402


def find_bzimage():
    roots = [os.environ.get("VIREO_CACHE") or "", os.path.expanduser("~/.cache/vireo")]
    for root in [r for r in roots if r and os.path.isdir(r)]:
        for pat in ["bzImage", "*/bzImage", "build/*/arch/x86/boot/bzImage", "debs/*/boot/vmlinuz-*",
                    "*/boot/vmlinuz-*", "vmlinuz*"]:
            for p in sorted(glob.glob(os.path.join(root, pat))):
                try:
                    with open(p, "rb") as f:
                        head = f.read(0x210)
                except OSError:
                    continue
                if len(head) == 0x210 and head[0x202:0x206] == b"HdrS":
                    return p
    return None


def elf_load_end(elf):
    """End of the file range of the last PT_LOAD segment of an ELF64 image."""
    import struct
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    end = 0
    for i in range(phnum):
        ptype, _, off, _, _, filesz = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
        if ptype == 1:
            end = max(end, off + filesz)
    return end


def write(path, data, mode=None):
    with open(path, "wb") as f:
        f.write(data)
    if mode is not None:
        os.chmod(path, mode)
    return path


class Cases:
    def __init__(self, c, vireo, kernel, tmp):
        self.c, self.vireo, self.kernel, self.tmp = c, vireo, kernel, tmp
        self.n = 0

    def fail(self, what, args, want_rc, msg_re, kernel=None):
        """vireo run with args must fail as promised; also checks the --api-sock is cleaned up."""
        self.n += 1
        sock = os.path.join(self.tmp, "s%d.sock" % self.n)
        k = self.kernel if kernel is None else kernel
        cmd = [self.vireo, "run", "--kernel", k, "--memory", "64M", "--cmdline", "ticks=1",
               "--api-sock", sock] + args
        # Options later on the line override the defaults above (getopt keeps the last one).
        r = run(cmd, timeout=20)
        c = self.c
        if isinstance(want_rc, tuple):
            ok = c.check(r.rc in want_rc, "%s: exit status in %s" % (what, want_rc), r.describe())
            one_error_line(c, what, r, r.rc if ok else want_rc[0], msg_re, max_seconds=15)
        else:
            one_error_line(c, what, r, want_rc, msg_re, max_seconds=15)
        c.check(r.out == b"", "%s: nothing on stdout (the guest did not run)" % what, r.describe())
        c.check(not os.path.lexists(sock), "%s: no control socket left behind" % what)


def kernel_cases(t, tmp, good):
    print("== bad kernels")
    k = lambda name, data, mode=None: write(os.path.join(tmp, name), data, mode)
    with open(good, "rb") as f:
        elf = f.read()
    t.fail("kernel missing", [], 1, r"kernel '.*/missing'.*no such file",
           kernel=os.path.join(tmp, "missing"))
    t.fail("kernel ''", [], 2, r"kernel ''", kernel="")  # an empty path is a usage error
    t.fail("kernel is a directory", [], 1, r"kernel '.*'.*directory", kernel=tmp)
    t.fail("kernel empty", [], 1, r"kernel '.*'.*empty", kernel=k("empty", b""))
    t.fail("kernel random bytes", [], 1, r"kernel '.*random'.*not a bzImage or ELF",
           kernel=k("random", os.urandom(65536)))
    t.fail("kernel a text file", [], 1, r"kernel '.*text'", kernel=k("text", b"hello, world\n" * 100))
    t.fail("kernel a tiny text file", [], 1, r"kernel '.*tiny'", kernel=k("tiny", b"hi\n"))
    t.fail("kernel /bin/true (ELF without a PVH note)", [], 1, r"kernel '/bin/true'", kernel="/bin/true")
    t.fail("kernel /dev/zero", [], 1, r"kernel '/dev/zero'", kernel="/dev/zero")
    t.fail("kernel /dev/null", [], 1, r"kernel '/dev/null'", kernel="/dev/null")
    fifo = os.path.join(tmp, "fifo")
    os.mkfifo(fifo)
    t.fail("kernel a FIFO (must not block)", [], 1, r"kernel '.*fifo'", kernel=fifo)
    load_end = elf_load_end(elf)  # bytes past this (symbols, section headers) are not needed
    for n in [16, 64, 4096, load_end // 2, load_end - 1]:
        t.fail("kernel: the first %d bytes of a PVH ELF" % n, [], 1, r"kernel '.*elf%d'" % n,
               kernel=k("elf%d" % n, elf[:n]))
    # ELF header intact, program headers pointing outside the file.
    bad = bytearray(elf[:4096])
    bad[0x20:0x28] = (0x7fffffff0).to_bytes(8, "little")  # e_phoff
    t.fail("kernel: ELF with e_phoff beyond the file", [], 1, r"kernel '.*phoff'",
           kernel=k("phoff", bytes(bad)))
    bad = bytearray(elf)
    bad[0x38:0x3a] = (0xffff).to_bytes(2, "little")  # e_phnum
    t.fail("kernel: ELF with e_phnum 65535", [], 1, r"kernel '.*phnum'", kernel=k("phnum", bytes(bad)))
    if os.geteuid() != 0:
        t.fail("kernel unreadable (mode 000)", [], 1, r"kernel '.*'.*(permission|denied)",
               kernel=k("noperm", elf, 0))
    else:
        print("  (running as root: mode 000 does not make a file unreadable; case skipped)")

    bz = find_bzimage()
    if not bz:
        print("  (no bzImage under ~/.cache/vireo: truncated-bzImage cases skipped)")
        return
    print("  truncating bzImage %s" % bz)
    with open(bz, "rb") as f:
        head = f.read(1 << 20)
    size = os.path.getsize(bz)
    for n in [0x1f2, 0x202, 0x206, 0x268, 1024, 4096, 65536, len(head)]:
        if n < size:
            t.fail("kernel: the first %d bytes of a bzImage" % n, [], 1, r"kernel '.*bz%d'" % n,
                   kernel=k("bz%d" % n, head[:n]))


def initrd_cases(t, tmp):
    print("== bad initrds")
    t.fail("initrd missing", ["--initrd", os.path.join(tmp, "nope")], 1, r"initrd '.*nope'.*no such file")
    t.fail("initrd ''", ["--initrd", ""], 1, r"initrd ''")
    t.fail("initrd is a directory", ["--initrd", tmp], 1, r"initrd '.*'.*directory")
    t.fail("initrd /dev/zero", ["--initrd", "/dev/zero"], 1, r"initrd '/dev/zero'")
    big = os.path.join(tmp, "big.img")
    with open(big, "wb") as f:
        f.truncate(2 << 30)  # sparse
    t.fail("initrd (2 GiB, sparse) larger than --memory 64M", ["--initrd", big], 1,
           r"initrd '.*big.img'.*(does not fit|too large|too big)")
    near = os.path.join(tmp, "near.img")
    with open(near, "wb") as f:
        f.truncate(63 << 20)
    t.fail("initrd of 63 MiB with --memory 64M", ["--initrd", near], 1,
           r"initrd '.*near.img'.*(does not fit|too large|too big)")


def cmdline_cases(t):
    print("== command line too long")
    t.fail("--cmdline of 70000 chars", ["--cmdline", "a" * 70000], (1, 2), r"too long")
    t.fail("--cmdline of 65536 chars", ["--cmdline", "x" * 65536], (1, 2), r"too long")


def host_limit_cases(t):
    print("== memory and vCPUs the host cannot give")
    t.fail("--memory 100T", ["--memory", "100T"], (1, 2), r"--memory.*(more than the host|too large)")
    t.fail("--memory 15M", ["--memory", "15M"], (1, 2), r"--memory.*too small")
    t.fail("--memory 1b", ["--memory", "1b"], (1, 2), r"--memory.*too small")
    t.fail("--memory 16385K (not a multiple of 4 KiB)", ["--memory", "16385K"], (1, 2),
           r"--memory.*4 KiB")
    host = os.sysconf("SC_NPROCESSORS_ONLN")
    t.fail("--cpus %d (host has %d)" % (host + 1, host), ["--cpus", str(host + 1)], (1, 2), r"--cpus")
    t.fail("--cpus 1000000", ["--cpus", "1000000"], (1, 2), r"--cpus")
    t.fail("--cpus 4096", ["--cpus", "4096"], (1, 2), r"--cpus")


def socket_cases(c, t, tmp, vireo, kernel):
    print("== unusable --api-sock paths")
    base = [vireo, "run", "--kernel", kernel, "--memory", "64M", "--cmdline", "ticks=1"]
    cases = [("--api-sock in a missing directory", os.path.join(tmp, "no", "dir", "x.sock")),
             ("--api-sock on an existing regular file", write(os.path.join(tmp, "file"), b"keep me\n")),
             ("--api-sock on a directory", tmp),
             ("--api-sock path of 200 chars", "/tmp/" + "s" * 195)]
    for what, path in cases:
        r = run(base + ["--api-sock", path], timeout=20)
        one_error_line(c, what, r, 1, re.escape(path[:40]), max_seconds=15)
        c.check(r.out == b"", "%s: the guest did not run" % what, r.describe())
    with open(os.path.join(tmp, "file"), "rb") as f:
        c.check(f.read() == b"keep me\n", "--api-sock on a regular file: the file is left alone")
    r = run(base + ["--api-sock", ""], timeout=20)
    one_error_line(c, "--api-sock ''", r, r.rc if r.rc in (1, 2) else 2, r"api-sock|socket",
                   max_seconds=15)
    c.check(r.out == b"", "--api-sock '': the guest did not run", r.describe())
    # The default path, $XDG_RUNTIME_DIR/vireo-PID.sock, does not fit in a socket address:
    # an error, not a socket somewhere else (a truncated path).
    parent = os.path.join(tmp, "xdg")
    os.mkdir(parent)
    long_rt = os.path.join(parent, "r" * (110 - len(parent)))
    os.mkdir(long_rt)
    before = set(os.listdir(parent))
    vm = clitest.Vm(vireo, kernel, stdin=subprocess.DEVNULL, env=dict(os.environ, XDG_RUNTIME_DIR=long_rt))
    try:
        vm.wait_for(r"^TICKER: READY", 20)  # returns at once when vireo fails
        created = sorted(set(os.listdir(parent)) - before) + os.listdir(long_rt)
        rc = vm.wait_exit(0.5)
        err = vm.stderr_text().splitlines()
        c.check(rc == 1 and len(err) == 1 and err[0].startswith("vireo: ") and "too long" in err[0],
                "default socket under a %d-char XDG_RUNTIME_DIR: one 'too long' error, exit 1"
                % len(long_rt), vm.describe())
        c.check(created == [], "long XDG_RUNTIME_DIR: no socket created at a truncated path",
                "    created: %r" % created)
    finally:
        vm.kill()


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    clitest.kvm_or_skip()
    vireo, kernel = sys.argv[1], sys.argv[2]
    c = Checker("cli-bad-config")
    tmp = clitest.tmpdir("badcfg")
    t = Cases(c, vireo, kernel, tmp)
    kernel_cases(t, tmp, kernel)
    initrd_cases(t, tmp)
    cmdline_cases(t)
    host_limit_cases(t)
    socket_cases(c, t, tmp, vireo, kernel)
    c.finish()


if __name__ == "__main__":
    main()
