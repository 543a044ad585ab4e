#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The serial console on stdin/stdout, end to end, against the ticker guest.

    console.py VIREO TICKER

- stdin a pipe: lines reach the guest (it echoes them); Ctrl-A Ctrl-A sends one Ctrl-A, Ctrl-A
  and another byte sends both; Ctrl-A x stops the VM: exit 0, socket removed.
- stdin /dev/null, a pipe closed by the writer, or no fd 0 at all: end of input does not stop
  the VM.
- stdout /dev/full, or a pipe whose reader went away: the guest runs on, one warning at most.
- stdin/stdout a terminal (pty, controlling terminal, foreground): raw mode while running
  (no echo, no canonical mode, no signals), the exact previous settings afterwards, whether
  vireo ends by Ctrl-A x, `ctl stop`, guest power-off, SIGTERM, SIGHUP or SIGINT.
- a terminal whose foreground process group is another one: left untouched.
Exit 77 without a usable /dev/kvm.
"""
import fcntl
import os
import signal
import subprocess
import sys
import termios
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clitest  # noqa: E402
from clitest import Checker, Vm, ctl  # noqa: E402

BOOT_TIMEOUT = 30.0


def pipe_console(c, vireo, ticker, tmp):
    print("== stdin a pipe: echo, escape pass-through, Ctrl-A x")
    sock = os.path.join(tmp, "pipe.sock")
    vm = Vm(vireo, ticker, sock=sock)
    try:
        if vm.wait_for(r"^TICKER: READY", BOOT_TIMEOUT) is None:
            c.check(False, "pipe: the guest is up", vm.describe())
            return
        vm.write(b"hello console\n")
        c.check(vm.wait_for(r"^ECHO: hello console$", 5) is not None, "pipe: a line reaches the guest",
                vm.describe())
        vm.write(b"a\x01\x01b\n")
        c.check(vm.wait_for("^ECHO: a\x01b$", 5) is not None,
                "pipe: Ctrl-A Ctrl-A sends one Ctrl-A", vm.describe())
        vm.write(b"c\x01yd\n")
        c.check(vm.wait_for("^ECHO: c\x01yd$", 5) is not None,
                "pipe: Ctrl-A y sends both bytes", vm.describe())
        vm.write(b"split\x01")
        time.sleep(0.3)
        vm.write(b"\x01end\n")
        c.check(vm.wait_for("^ECHO: split\x01end$", 5) is not None,
                "pipe: an escape split across two writes", vm.describe())
        c.check(vm.proc.poll() is None, "pipe: still running before Ctrl-A x")
        t0 = time.monotonic()
        vm.write(b"\x01x")
        rc = vm.wait_exit(10)
        c.check(rc == 0, "pipe: Ctrl-A x exits 0 (%r)" % rc, vm.describe())
        c.check(time.monotonic() - t0 < 5, "pipe: Ctrl-A x exits promptly (%.1f s)" % (time.monotonic() - t0))
        c.check(not os.path.lexists(sock), "pipe: Ctrl-A x removes the socket")
        c.check(vm.stderr_text().strip() == "" or "vireo:" in vm.stderr_text(),
                "pipe: stderr empty or only vireo messages", vm.describe())
    finally:
        vm.kill()


def eof_keeps_running(c, vireo, ticker, tmp, what, **kw):
    sock = os.path.join(tmp, "eof.sock")
    vm = Vm(vireo, ticker, sock=sock, **kw.pop("vm_kw", {}))
    try:
        if vm.wait_for(r"^TICKER: READY", BOOT_TIMEOUT) is None:
            c.check(False, "%s: the guest is up" % what, vm.describe())
            return
        if kw.get("close_pipe"):
            vm.write(b"last words\n")
            vm.proc.stdin.close()
            c.check(vm.wait_for(r"^ECHO: last words$", 5) is not None,
                    "%s: input before the EOF arrives" % what, vm.describe())
        n = len(vm.ticks())
        time.sleep(2)
        c.check(vm.proc.poll() is None and len(vm.ticks()) - n >= 10,
                "%s: the VM keeps running after end of input (%d ticks in 2 s)" % (what, len(vm.ticks()) - n),
                vm.describe())
        r, js = ctl(vireo, sock, "stop")
        c.check(vm.wait_exit(10) == 0, "%s: stop exits 0" % what, vm.describe())
    finally:
        vm.kill()


def broken_stdout(c, vireo, ticker):
    print("== stdout that fails: the guest keeps running, one warning")
    args = [vireo, "run", "--kernel", ticker, "--memory", "64M", "--cmdline", "ticks=30"]
    with open("/dev/full", "wb") as full:
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=full, stderr=subprocess.PIPE)
        try:
            _, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
    lines = err.decode("utf-8", "replace").splitlines()
    c.check(p.returncode == 0 and len(lines) <= 1 and all(l.startswith("vireo: ") for l in lines),
            "stdout /dev/full: the guest runs to its power-off, exit 0, at most one warning",
            "    exit %r, stderr %r" % (p.returncode, err))
    # The reader of stdout goes away after the first line.
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = p.stdout.readline()
    p.stdout.close()
    try:
        _, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    lines = err.decode("utf-8", "replace").splitlines()
    c.check(first.startswith(b"PROBE-BOOT") and p.returncode == 0 and len(lines) <= 1,
            "stdout reader gone: the guest runs to its power-off, exit 0, at most one warning",
            "    first line %r, exit %r, stderr %r" % (first, p.returncode, err))


class PtyVm:
    """vireo run on a pseudo-terminal (stdin and stdout), console output read from the master."""

    def __init__(self, vireo, ticker, sock, slave_path, cmdline="", foreground=True):
        args = [vireo, "run", "--kernel", ticker, "--memory", "64M", "--cmdline", cmdline,
                "--api-sock", sock]
        if foreground:
            def pre():
                os.setsid()
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            cmd = args
        else:
            # A session leader owns the terminal in the foreground; vireo runs in a second
            # process group of that session, like a shell's background job.
            pre = None
            cmd = [sys.executable, "-c", BACKGROUND_LAUNCHER] + args
        self.slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY)
        self.proc = subprocess.Popen(cmd, stdin=self.slave, stdout=self.slave, stderr=subprocess.PIPE,
                                     preexec_fn=pre if foreground else os.setsid)

    def stop_reading(self):
        os.close(self.slave)


BACKGROUND_LAUNCHER = r"""
import fcntl, os, sys, termios
fcntl.ioctl(0, termios.TIOCSCTTY, 0)
pid = os.fork()
if pid == 0:
    os.setpgid(0, 0)
    os.execv(sys.argv[1], sys.argv[1:])
_, st = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(st) & 0xff)
"""


class Pty:
    def __init__(self):
        self.master, slave = os.openpty()
        self.path = os.ttyname(slave)
        # Distinctive "cooked" settings, so a restore to anything else shows.
        a = termios.tcgetattr(slave)
        a[0] |= termios.ICRNL | termios.IXON
        a[1] |= termios.OPOST | termios.ONLCR
        a[3] |= termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN
        a[6][termios.VINTR] = b"\x05"
        a[6][termios.VMIN] = b"\x01"
        termios.tcsetattr(slave, termios.TCSANOW, a)
        self.slave = slave  # kept open: our view of the terminal's settings
        self.data = b""
        self.lock = threading.Lock()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        while True:
            try:
                d = os.read(self.master, 65536)
            except OSError:
                return
            if not d:
                return
            with self.lock:
                self.data += d

    def text(self):
        with self.lock:
            return self.data.decode("latin-1")

    def wait_text(self, s, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if s in self.text():
                return True
            time.sleep(0.05)
        return False

    def attrs(self):
        return termios.tcgetattr(self.slave)

    def close(self):
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


def attrs_diff(a, b):
    names = ["iflag", "oflag", "cflag", "lflag", "ispeed", "ospeed", "cc"]
    return ", ".join("%s %r -> %r" % (n, x, y) for n, x, y in zip(names, a, b) if x != y) or "none"


def pty_case(c, vireo, ticker, tmp, how):
    what = "pty, ended by %s" % how
    pty = Pty()
    before = pty.attrs()
    sock = os.path.join(tmp, "pty.sock")
    cmdline = "ticks=30" if how == "guest poweroff" else ""
    vm = PtyVm(vireo, ticker, sock, pty.path, cmdline=cmdline)
    try:
        up = pty.wait_text("TICKER: READY", BOOT_TIMEOUT)
        c.check(up, "%s: the guest is up" % what, "    terminal output: %r" % pty.text()[-300:])
        if not up:
            return
        during = pty.attrs()
        lflag = during[3]
        c.check(not (lflag & (termios.ICANON | termios.ECHO | termios.ISIG)),
                "%s: raw mode while running (no ICANON, ECHO, ISIG)" % what, "    lflag %#x" % lflag)
        os.write(pty.master, b"typed on the tty\n")
        c.check(pty.wait_text("ECHO: typed on the tty", 5), "%s: terminal input reaches the guest" % what,
                "    terminal output: %r" % pty.text()[-300:])
        t0 = time.monotonic()
        if how == "Ctrl-A x":
            os.write(pty.master, b"\x01x")
        elif how == "ctl stop":
            ctl(vireo, sock, "stop")
        elif how.startswith("SIG"):
            vm.proc.send_signal(getattr(signal, how))
        try:
            rc = vm.proc.wait(15 if how == "guest poweroff" else 10)
        except subprocess.TimeoutExpired:
            rc = None
        want = (0,) if how in ("Ctrl-A x", "ctl stop", "guest poweroff") else (0, -getattr(signal, how, 0))
        c.check(rc in want, "%s: exit status %r (want %s)" % (what, rc, " or ".join(map(str, want))),
                "    stderr: %r" % (vm.proc.stderr.read() if rc is not None else b"(running)"))
        c.check(rc is not None and time.monotonic() - t0 < 10, "%s: exits promptly" % what)
        after = pty.attrs()
        c.check(after == before, "%s: terminal settings restored" % what,
                "    changed: %s" % attrs_diff(before, after))
    finally:
        if vm.proc.poll() is None:
            vm.proc.kill()
            vm.proc.wait()
        vm.stop_reading()
        pty.close()


def pty_background(c, vireo, ticker, tmp):
    what = "pty, vireo in a background process group"
    pty = Pty()
    before = pty.attrs()
    sock = os.path.join(tmp, "bg.sock")
    vm = PtyVm(vireo, ticker, sock, pty.path, foreground=False)
    try:
        up = pty.wait_text("TICKER: READY", BOOT_TIMEOUT)
        c.check(up, "%s: the guest is up (output still reaches the terminal)" % what,
                "    terminal output: %r\n    stderr: %r" % (pty.text()[-300:], b""))
        if not up:
            return
        c.check(pty.attrs() == before, "%s: terminal settings untouched while running" % what,
                "    changed: %s" % attrs_diff(before, pty.attrs()))
        r, js = ctl(vireo, sock, "stop")
        try:
            rc = vm.proc.wait(10)
        except subprocess.TimeoutExpired:
            rc = None
        c.check(rc == 0, "%s: ctl stop exits 0 (%r)" % (what, rc))
        c.check(pty.attrs() == before, "%s: terminal settings untouched afterwards" % what,
                "    changed: %s" % attrs_diff(before, pty.attrs()))
    finally:
        if vm.proc.poll() is None:
            os.killpg(vm.proc.pid, signal.SIGKILL)
            vm.proc.wait()
        vm.stop_reading()
        pty.close()


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    clitest.kvm_or_skip()
    vireo, ticker = sys.argv[1], sys.argv[2]
    c = Checker("cli-console")
    tmp = clitest.tmpdir("console")

    pipe_console(c, vireo, ticker, tmp)
    print("== end of input does not stop the VM")
    eof_keeps_running(c, vireo, ticker, tmp, "stdin /dev/null", vm_kw={"stdin": subprocess.DEVNULL})
    eof_keeps_running(c, vireo, ticker, tmp, "stdin pipe closed by the writer", close_pipe=True)
    eof_keeps_running(c, vireo, ticker, tmp, "no fd 0",
                      vm_kw={"stdin": subprocess.DEVNULL, "preexec_fn": lambda: os.close(0)})
    broken_stdout(c, vireo, ticker)
    print("== terminal settings are restored")
    for how in ["Ctrl-A x", "ctl stop", "guest poweroff", "SIGTERM", "SIGHUP", "SIGINT"]:
        pty_case(c, vireo, ticker, tmp, how)
    pty_background(c, vireo, ticker, tmp)
    c.finish()


if __name__ == "__main__":
    main()
