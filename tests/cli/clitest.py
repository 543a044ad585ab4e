# SPDX-License-Identifier: MIT
"""Helpers shared by the command-line tests (python3 standard library only).

- Checker: collects failures; finish() prints a summary and exits 0 (all passed) or 1.
- run(): one vireo invocation with a deadline; the process group is killed on timeout.
- one_error_line(): the contract for bad input (exit status, one "vireo: " line on stderr).
- Vm: a running `vireo run` with its console captured line by line (reader threads), for
  tests that talk to it while it runs (wait_for, ctl, ...).
- kvm_or_skip(): exit 77 (meson's "skipped") when /dev/kvm is unusable.
"""
import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SKIP = 77


def kvm_problem():
    """None if /dev/kvm can be opened read-write, else why not."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return "cannot open /dev/kvm: %s" % os.strerror(e.errno)
    os.close(fd)
    return None


def kvm_or_skip():
    why = kvm_problem()
    if why:
        print("SKIP: %s" % why)
        sys.exit(SKIP)


def quote(args):
    out = []
    for a in args:
        a = str(a)
        if len(a) > 60:
            a = a[:40] + "...(%d chars)" % len(a)
        out.append(repr(a) if (not a or " " in a) else a)
    return " ".join(out)


class Checker:
    def __init__(self, name):
        self.name = name
        self.failures = []
        self.passed = 0

    def check(self, cond, what, detail=""):
        if cond:
            self.passed += 1
            print("  ok   %s" % what)
        else:
            self.failures.append(what)
            print("  FAIL %s%s" % (what, ("\n" + detail) if detail else ""))
        return cond

    def finish(self):
        print("%s: %d check(s) passed, %d failed" % (self.name, self.passed, len(self.failures)))
        for f in self.failures:
            print("  failed: %s" % f)
        sys.exit(1 if self.failures else 0)


class Result:
    def __init__(self, args, rc, out, err, elapsed, timed_out):
        self.args, self.rc, self.out, self.err = args, rc, out, err
        self.elapsed, self.timed_out = elapsed, timed_out

    def err_lines(self):
        return self.err.decode("utf-8", "replace").splitlines()

    def describe(self):
        return ("    command: %s\n    exit: %s%s, %.1f s\n    stdout: %r\n    stderr: %r"
                % (quote(self.args), self.rc, " (timed out, killed)" if self.timed_out else "",
                   self.elapsed, self.out[:300], self.err[:600]))


def run(args, timeout=10.0, stdin=subprocess.DEVNULL, env=None, input_data=None):
    """Run args to completion or timeout. stdin: a file object/fd/DEVNULL, or input_data bytes."""
    t0 = time.monotonic()
    p = subprocess.Popen([str(a) for a in args], stdin=subprocess.PIPE if input_data is not None else stdin,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                         start_new_session=True)
    timed_out = False
    try:
        out, err = p.communicate(input=input_data, timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        killpg(p)
        out, err = p.communicate()
    return Result(args, p.returncode, out, err, time.monotonic() - t0, timed_out)


def killpg(p, sig=signal.SIGKILL):
    try:
        os.killpg(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def one_error_line(c, what, r, want_rc, msg_re=None, max_seconds=8.0):
    """Check the bad-input contract; msg_re (regex) must match the line when given."""
    lines = r.err_lines()
    text = r.err.decode("utf-8", "replace")
    ok = True
    ok &= c.check(not r.timed_out and r.elapsed < max_seconds,
                  "%s: finishes promptly" % what, r.describe())
    ok &= c.check(r.rc == want_rc, "%s: exit status %d" % (what, want_rc), r.describe())
    ok &= c.check(len(lines) == 1 and lines[0].startswith("vireo: ") and len(lines[0]) > 8,
                  "%s: exactly one 'vireo: ...' line on stderr" % what, r.describe())
    ok &= c.check(not re.search(r"Segmentation|Aborted|core dumped|AddressSanitizer|runtime error",
                                text), "%s: no crash report" % what, r.describe())
    if msg_re is not None and lines:
        ok &= c.check(re.search(msg_re, lines[0]) is not None,
                      "%s: message matches /%s/" % (what, msg_re), r.describe())
    return ok


class Vm:
    """A running `vireo run`. Console lines (stdout) and stderr are collected by threads."""

    def __init__(self, vireo, kernel, args=(), cmdline="", memory="64M", stdin=subprocess.PIPE,
                 env=None, preexec_fn=None, sock=None):
        self.sock = sock
        self.args = [str(vireo), "run", "--kernel", str(kernel), "--memory", memory,
                     "--cmdline", cmdline] + list(args)
        if sock:
            self.args += ["--api-sock", sock]
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(self.args, stdin=stdin, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, start_new_session=True,
                                     preexec_fn=preexec_fn)
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.lines = []  # (time, text)
        self.partial = b""
        self.err = b""
        self.out_raw = b""
        self.threads = [threading.Thread(target=self._read_out, daemon=True),
                        threading.Thread(target=self._read_err, daemon=True)]
        for t in self.threads:
            t.start()

    def _read_out(self):
        fd = self.proc.stdout.fileno()
        while True:
            try:
                d = os.read(fd, 65536)
            except OSError:
                d = b""
            with self.cond:
                if not d:
                    if self.partial:
                        self.lines.append((time.monotonic(), self.partial.decode("latin-1").rstrip("\r")))
                        self.partial = b""
                    self.cond.notify_all()
                    return
                self.out_raw += d
                self.partial += d
                *done, self.partial = self.partial.split(b"\n")
                now = time.monotonic()
                for l in done:
                    self.lines.append((now, l.decode("latin-1").rstrip("\r")))
                self.cond.notify_all()

    def _read_err(self):
        fd = self.proc.stderr.fileno()
        while True:
            try:
                d = os.read(fd, 65536)
            except OSError:
                d = b""
            if not d:
                return
            with self.cond:
                self.err += d

    def wait_for(self, regex, timeout=20.0, start=0):
        """Index of the first console line at or after `start` matching regex, or None."""
        rx = re.compile(regex)
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for i in range(start, len(self.lines)):
                    if rx.search(self.lines[i][1]):
                        return i
                left = end - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.threads[0].is_alive()):
                    return None
                self.cond.wait(min(left, 0.2))

    def snapshot(self):
        with self.lock:
            return list(self.lines)

    def ticks(self, start=0):
        """Tick numbers printed by the ticker guest from line index `start` on."""
        return [int(m.group(1)) for _, l in self.snapshot()[start:]
                for m in [re.match(r"^TICK (\d+)$", l)] if m]

    def count(self, regex):
        rx = re.compile(regex)
        return sum(1 for _, l in self.snapshot() if rx.search(l))

    def wait_exit(self, timeout):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        # The process is gone: let the reader threads drain its last output.
        for t in self.threads:
            t.join(2.0)
        return rc

    def write(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def kill(self):
        if self.proc.poll() is None:
            killpg(self.proc)
            self.proc.wait()
        for t in self.threads:
            t.join(2)

    def stderr_text(self):
        with self.lock:
            return self.err.decode("utf-8", "replace")

    def describe(self, n=15):
        lines = [l for _, l in self.snapshot()]
        cut = lines[-n:]
        return ("    command: %s\n    exit: %s\n    console (last %d of %d lines):\n%s\n    stderr:\n%s"
                % (quote(self.args), self.proc.poll(), len(cut), len(lines),
                   "\n".join("      | " + l for l in cut) or "      (empty)",
                   "\n".join("      | " + l for l in self.stderr_text().splitlines()[-10:]) or "      (empty)"))


def ctl_raw(path, payload, timeout=5.0, shut_write=False):
    """Send raw bytes to a control socket, return the reply (bytes) until the server closes."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        if payload:
            s.sendall(payload)
        if shut_write:
            s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            d = s.recv(4096)
            if not d:
                return data
            data += d
    finally:
        s.close()


def ctl(vireo, path, cmd, timeout=10.0):
    """`vireo ctl path cmd`: (Result, parsed JSON or None)."""
    r = run([vireo, "ctl", path, cmd], timeout=timeout)
    try:
        js = json.loads(r.out.decode())
    except ValueError:
        js = None
    return r, js


def tmpdir(tag):
    """A short private directory (Unix socket paths are limited to 107 bytes)."""
    d = tempfile.mkdtemp(prefix="vireo-%s-" % tag, dir="/tmp")
    atexit.register(shutil.rmtree, d, True)
    return d
