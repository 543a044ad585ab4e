#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Command-line errors that need no KVM: bad options and values (exit 2), --help/--version
(exit 0, stdout), `vireo ctl` misuse and unreachable sockets (exit 1/2), a missing default guest
and a KVM device that is missing or not KVM at all (exit 1).

    usage.py VIREO

Every error must be exactly one line "vireo: ..." on stderr, nothing on stdout, the right exit
status, no crash, and it must finish promptly.
"""
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clitest  # noqa: E402
from clitest import Checker, one_error_line, run  # noqa: E402


def err_case(c, vireo, args, want_rc, msg_re=None, env=None, what=None):
    r = run([vireo] + args, env=env)
    what = what or clitest.quote(args)
    ok = one_error_line(c, what, r, want_rc, msg_re)
    c.check(r.out == b"", "%s: nothing on stdout" % what, r.describe())
    return ok


def usage_errors(c, vireo, k):
    print("== usage errors (exit 2)")
    err_case(c, vireo, ["frobnicate"], 2, r"unknown command 'frobnicate'")
    err_case(c, vireo, ["--frobnicate"], 2, r"--frobnicate")
    err_case(c, vireo, ["run", "--kernel", k, "--bogus"], 2, r"unknown option '--bogus'")
    err_case(c, vireo, ["run", "--kernel", k, "-x"], 2, r"unknown option '-x'")
    err_case(c, vireo, ["run", "--kernel"], 2, r"'--kernel' needs a value")
    err_case(c, vireo, ["run", "--kernel", k, "--memory"], 2, r"'--memory' needs a value")
    err_case(c, vireo, ["run", "--kernel", k, "--cpus"], 2, r"'--cpus' needs a value")
    err_case(c, vireo, ["run", "--kernel", k, "extra"], 2, r"unexpected argument 'extra'")
    err_case(c, vireo, ["run", "--kernel", k, "a", "b"], 2, r"unexpected argument 'a'")
    err_case(c, vireo, ["run", "--no-rng=yes", "--kernel", k], 2, r"no-rng")

    for m in ["12X", "1.5G", "-1", "", "0", "0x100", " 64M", "64 M", "M", "64MM", "+64M",
              "99999999999999999999", "16777216T"]:
        err_case(c, vireo, ["run", "--kernel", k, "--memory", m], 2,
                 r"--memory '%s'" % re.escape(m), what="--memory %r" % m)
    # Values too large to represent: the message must not claim the value is too small.
    for m in ["99999999999999999999", "16777216T", "18446744073709551616"]:
        r = run([vireo, "run", "--kernel", k, "--memory", m])
        c.check(re.search(r"too (large|big)|out of range|at most", r.err.decode()) is not None,
                "--memory %r: says the value is too large" % m, r.describe())

    for n in ["abc", "0", "-1", "", "1x", "0x2", " 1", "1.0", "+1"]:
        err_case(c, vireo, ["run", "--kernel", k, "--cpus", n], 2,
                 r"--cpus '%s'" % re.escape(n), what="--cpus %r" % n)
    for n in ["4294967296", "99999999999999999999"]:
        r = run([vireo, "run", "--kernel", k, "--cpus", n])
        one_error_line(c, "--cpus %s" % n, r, 2, r"--cpus")
        c.check(not re.search(r"at least 1", r.err.decode()),
                "--cpus %s: does not say 'must be at least 1' about a huge value" % n, r.describe())

    for t in ["nope", "", "HOST "]:
        err_case(c, vireo, ["run", "--kernel", k, "--cpu-template", t], 2,
                 r"--cpu-template '%s'.*host.*baseline" % re.escape(t), what="--cpu-template %r" % t)
    for a in ["sometimes", "", "Exit"]:
        err_case(c, vireo, ["run", "--kernel", k, "--on-reboot", a], 2,
                 r"--on-reboot '%s'" % re.escape(a), what="--on-reboot %r" % a)
    for n in ["0", "17", "-1", "", "x", "2x", "99999999999999999999"]:
        err_case(c, vireo, ["run", "--kernel", k, "--io-threads", n], 2,
                 r"--io-threads '%s'.*1 to 16" % re.escape(n), what="--io-threads %r" % n)
    err_case(c, vireo, ["run", "--kernel", k, "--io-threads"], 2, r"'--io-threads' needs a value")
    for n in ["1001", "-1", "", "x", "5us", "99999999999999999999"]:
        err_case(c, vireo, ["run", "--kernel", k, "--io-poll-us", n], 2,
                 r"--io-poll-us '%s'.*0 to 1000" % re.escape(n), what="--io-poll-us %r" % n)
    # The first bad option wins, and nothing is started.
    err_case(c, vireo, ["run", "--cpus", "x", "--memory", "y", "--kernel", k], 2, r"--cpus 'x'")

    print("== vireo with no arguments: usage on stderr, exit 2")
    r = run([vireo])
    c.check(r.rc == 2 and r.out == b"" and b"Usage" in r.err, "no arguments: usage, exit 2",
            r.describe())


def help_version(c, vireo):
    print("== --help / --version: exit 0, stdout only")
    for args, want in [(["--help"], rb"Usage: vireo COMMAND"), (["-h"], rb"Usage: vireo COMMAND"),
                       (["help"], rb"Usage: vireo COMMAND"),
                       (["run", "--help"], rb"Usage: vireo run --kernel FILE"),
                       (["ctl", "--help"], rb"Usage: vireo ctl SOCKET"),
                       (["--version"], rb"^vireo \d+\.\d+\.\d+\n$"), (["-V"], rb"^vireo \d+\.\d+\.\d+\n$")]:
        r = run([vireo] + args)
        c.check(r.rc == 0 and r.err == b"" and re.search(want, r.out) is not None,
                "%s: exit 0, /%s/ on stdout, nothing on stderr" % (" ".join(args), want.decode()),
                r.describe())
    r = run([vireo, "run", "--help"])
    text = r.out.decode()
    for opt in ["--kernel", "--initrd", "--cmdline", "--cpus", "--memory", "--cpu-template",
                "--on-reboot", "--no-rng", "--api-sock", "--kvm-device"]:
        c.check(opt in text, "run --help documents %s" % opt)
    c.check("host" in text and "baseline" in text, "run --help lists the CPU templates")


class FakeServer:
    """A Unix socket server that misbehaves in a chosen way, for `vireo ctl`."""

    def __init__(self, path, mode):
        self.path, self.mode = path, mode
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.bind(path)
        self.s.listen(4)
        self.conns = []
        self.t = threading.Thread(target=self.serve, daemon=True)
        self.t.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.s.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.mode == "close":
                conn.close()
            elif self.mode == "fail":
                conn.recv(128)
                conn.sendall(b'{"ok":false,"error":"nope"}\n')
                conn.close()
            # "silent": read nothing, answer nothing, keep the connection open

    def close(self):
        self.s.close()
        for conn in self.conns:
            try:
                conn.close()
            except OSError:
                pass


def ctl_errors(c, vireo, tmp):
    print("== vireo ctl misuse and unreachable sockets")
    sock = os.path.join(tmp, "none.sock")
    err_case(c, vireo, ["ctl"], 2, r"usage: vireo ctl")
    err_case(c, vireo, ["ctl", sock], 2, r"usage: vireo ctl")
    err_case(c, vireo, ["ctl", sock, "status", "extra"], 2, r"usage: vireo ctl")
    err_case(c, vireo, ["ctl", sock, "frob"], 2, r"unknown command 'frob'")
    err_case(c, vireo, ["ctl", sock, ""], 2, r"unknown command ''")
    err_case(c, vireo, ["ctl", "/tmp/" + "a" * 200, "status"], 2, r"too long",
             what="ctl <200-char path> status")
    err_case(c, vireo, ["ctl", sock, "status"], 1, r"cannot connect to '%s'" % re.escape(sock))
    regular = os.path.join(tmp, "regular")
    with open(regular, "w") as f:
        f.write("not a socket\n")
    err_case(c, vireo, ["ctl", regular, "status"], 1, r"cannot connect")
    err_case(c, vireo, ["ctl", tmp, "status"], 1, r"cannot connect", what="ctl <directory> status")
    # A socket file nobody listens on (its server is gone).
    dead = os.path.join(tmp, "dead.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(dead)
    s.close()
    err_case(c, vireo, ["ctl", dead, "status"], 1, r"cannot connect", what="ctl <stale socket> status")

    srv = FakeServer(os.path.join(tmp, "close.sock"), "close")
    err_case(c, vireo, ["ctl", srv.path, "status"], 1, r"no reply",
             what="ctl status: server closes without a reply")
    srv.close()
    srv = FakeServer(os.path.join(tmp, "fail.sock"), "fail")
    r = run([vireo, "ctl", srv.path, "pause"])
    c.check(r.rc == 1 and b'"ok":false' in r.out, "ctl: an {\"ok\":false} reply exits 1",
            r.describe())
    srv.close()
    # A server that accepts and never answers (a wedged VMM): ctl must give up on its own.
    srv = FakeServer(os.path.join(tmp, "silent.sock"), "silent")
    r = run([vireo, "ctl", srv.path, "status"], timeout=15)
    c.check(not r.timed_out, "ctl status: gives up on a server that never answers (no hang)",
            r.describe())
    if not r.timed_out:
        one_error_line(c, "ctl status: server never answers", r, 1, max_seconds=15)
    srv.close()


def kvm_device_errors(c, vireo, k, tmp):
    print("== --kvm-device: missing, a directory, not KVM at all (exit 1)")
    err_case(c, vireo, ["run", "--kernel", k, "--kvm-device", "/nonexistent/kvm"], 1,
             r"/nonexistent/kvm.*(no such|not found|does not exist)")
    err_case(c, vireo, ["run", "--kernel", k, "--kvm-device", tmp], 1, re.escape(tmp),
             what="--kvm-device <directory>")
    plain = os.path.join(tmp, "plainfile")
    with open(plain, "w") as f:
        f.write("this is not /dev/kvm\n")
    os.chmod(plain, 0o600 if os.geteuid() == 0 else 0)
    for dev, what in [(plain, "--kvm-device <regular file>"), ("/dev/null", "--kvm-device /dev/null")]:
        r = run([vireo, "run", "--kernel", k, "--kvm-device", dev])
        one_error_line(c, what, r, 1, re.escape(dev))
        # A file that is not KVM must not be reported as a KVM that is too old.
        c.check(not re.search(r"lacks a required capability|API version", r.err.decode()),
                "%s: not reported as an old KVM" % what, r.describe())


def default_guest_errors(c, vireo, tmp):
    print("== vireo run without --kernel and no default guest")
    env = dict(os.environ, VIREO_CACHE=os.path.join(tmp, "no-cache"))
    err_case(c, vireo, ["run"], 1, r"no default guest", env=env, what="run (no default guest)")
    cache = os.path.join(tmp, "cache")
    os.mkdir(cache)
    with open(os.path.join(cache, "default-guest.conf"), "w") as f:
        f.write("cmdline=console=ttyS0\n")
    env = dict(os.environ, VIREO_CACHE=cache)
    err_case(c, vireo, ["run"], 1, r"names no kernel", env=env, what="run (conf without kernel)")
    # Option errors still come first.
    err_case(c, vireo, ["run", "--cpus", "zero"], 2, r"--cpus 'zero'", env=env)


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    vireo = sys.argv[1]
    c = Checker("cli-usage")
    tmp = clitest.tmpdir("usage")
    kernel = os.path.join(tmp, "kernel")  # options are rejected before the kernel is read
    with open(kernel, "wb") as f:
        f.write(b"\x7fELF")
    t0 = time.monotonic()
    usage_errors(c, vireo, kernel)
    help_version(c, vireo)
    ctl_errors(c, vireo, tmp)
    kvm_device_errors(c, vireo, kernel, tmp)
    default_guest_errors(c, vireo, tmp)
    print("(%.1f s)" % (time.monotonic() - t0))
    c.finish()


if __name__ == "__main__":
    main()
