#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The control socket, end to end, against the ticker guest (prints "TICK n" every 50 ms).

    ctl.py VIREO TICKER

- status: one JSON line: state running, vcpus, memory_bytes, pid, cpu_template, boots.
- pause: {"ok":true,"state":"paused"}; the guest makes no progress (no TICK lines), console
  input waits; pause again is harmless. resume: progress resumes where it stopped, the input
  typed while paused arrives.
- malformed requests get {"ok":false,...} (or nothing) and leave the VM running.
- stop (also while paused): vireo exits 0 promptly and removes the socket file.
- shutdown: the guest sees the ACPI power button and powers off: exit 0.
- without --api-sock: $XDG_RUNTIME_DIR/vireo-<pid>.sock, mode 0600, removed at exit.
Exit 77 without a usable /dev/kvm.
"""
import json
import os
import socket
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clitest  # noqa: E402
from clitest import Checker, Vm, ctl, ctl_raw  # noqa: E402

BOOT_TIMEOUT = 30.0


def started(c, vm, what):
    ok = vm.wait_for(r"^TICKER: READY", BOOT_TIMEOUT) is not None
    c.check(ok, "%s: the ticker guest is up" % what, vm.describe())
    return ok


def wait_ticks(vm, n, timeout):
    """Wait until n more TICK lines than now have appeared; returns how many did."""
    base = len(vm.ticks())
    end = time.monotonic() + timeout
    while time.monotonic() < end and len(vm.ticks()) - base < n:
        time.sleep(0.05)
    return len(vm.ticks()) - base


def status_checks(c, vireo, vm, sock, cpus):
    r, js = ctl(vireo, sock, "status")
    c.check(r.rc == 0 and js is not None, "status: exit 0 and a JSON reply", r.describe())
    c.check(r.out.count(b"\n") == 1 and r.out.endswith(b"\n"), "status: exactly one line",
            r.describe())
    if js is None:
        return
    c.check(js.get("state") == "running", "status: state running (%r)" % js.get("state"))
    c.check(js.get("vcpus") == cpus, "status: vcpus %d (%r)" % (cpus, js.get("vcpus")))
    c.check(js.get("memory_bytes") == 64 << 20, "status: memory_bytes 64 MiB (%r)" % js.get("memory_bytes"))
    c.check(js.get("pid") == vm.proc.pid, "status: pid of the VMM (%r)" % js.get("pid"))
    c.check(js.get("cpu_template") == "host", "status: cpu_template host (%r)" % js.get("cpu_template"))
    c.check(js.get("boots") == 1, "status: boots 1 (%r)" % js.get("boots"))
    c.check(isinstance(js.get("uptime_ms"), int) and js["uptime_ms"] > 0, "status: uptime_ms > 0")
    c.check(isinstance(js.get("exits"), int) and js["exits"] > 0, "status: exits counted (%r)" % js.get("exits"))
    disks = js.get("disks")
    keys = {"reads", "writes", "flushes", "read_bytes", "write_bytes", "errors", "merges",
            "merged_requests"}
    c.check(isinstance(disks, list) and len(disks) == 1 and set(disks[0]) == keys and
            all(isinstance(v, int) for v in disks[0].values()),
            "status: one disk with its I/O counters (%r)" % disks)
    c.check(js.get("nics") == [], "status: no NICs (%r)" % js.get("nics"))


def pause_resume(c, vireo, vm, sock):
    print("== pause / resume")
    c.check(wait_ticks(vm, 3, 5) >= 3, "the guest ticks before pause", vm.describe())
    t0 = time.monotonic()
    r, js = ctl(vireo, sock, "pause")
    c.check(r.rc == 0 and js == {"ok": True, "state": "paused"},
            "pause: {\"ok\":true,\"state\":\"paused\"}", r.describe())
    c.check(time.monotonic() - t0 < 3, "pause: answered promptly (%.2f s)" % (time.monotonic() - t0))
    time.sleep(0.3)  # console bytes already in the pipe
    before = vm.ticks()
    vm.write(b"typed-while-paused\n")
    time.sleep(1.5)
    after = vm.ticks()
    c.check(after == before, "paused: no TICK lines for 1.5 s (%d new)" % (len(after) - len(before)),
            vm.describe())
    c.check(vm.count(r"^ECHO: typed-while-paused$") == 0, "paused: input is not consumed")
    r, js = ctl(vireo, sock, "status")
    c.check(js is not None and js.get("state") == "paused", "status while paused: state paused",
            r.describe())
    r, js = ctl(vireo, sock, "pause")
    c.check(r.rc == 0 and js == {"ok": True, "state": "paused"}, "pause again: still ok, paused",
            r.describe())
    time.sleep(0.5)
    c.check(vm.ticks() == before, "paused twice: still no progress", vm.describe())

    r, js = ctl(vireo, sock, "resume")
    c.check(r.rc == 0 and js == {"ok": True, "state": "running"},
            "resume: {\"ok\":true,\"state\":\"running\"}", r.describe())
    c.check(wait_ticks(vm, 3, 5) >= 3, "resumed: ticks again", vm.describe())
    now = vm.ticks()
    if before and len(now) > len(before):
        c.check(now[len(before)] == before[-1] + 1,
                "resumed: the counter continues (%d after %d)" % (now[len(before)], before[-1]))
    c.check(vm.wait_for(r"^ECHO: typed-while-paused$", 5) is not None,
            "resumed: input typed while paused reaches the guest", vm.describe())
    r, js = ctl(vireo, sock, "resume")
    c.check(r.rc == 0 and js == {"ok": True, "state": "running"}, "resume again: still ok, running",
            r.describe())
    r, js = ctl(vireo, sock, "status")
    c.check(js is not None and js.get("state") == "running", "status after resume: running", r.describe())


def reply_json(data):
    try:
        return json.loads(data.decode("utf-8", "replace"))
    except ValueError:
        return None


def malformed(c, vireo, vm, sock):
    print("== malformed requests")
    for what, payload in [("unknown command", b"frob\n"), ("empty line", b"\n"),
                          ("command with an argument", b"status now\n"),
                          ("upper case", b"PAUSE\n"), ("binary junk", b"\x00\xff\xfe\x01x\n"),
                          ("NUL inside a command", b"pau\x00se\n"),
                          ("pause with trailing space", b"pause \n")]:
        try:
            data = ctl_raw(sock, payload)
        except OSError as e:
            data = ("<%s>" % e).encode()
        js = reply_json(data)
        c.check(js is not None and js.get("ok") is False and isinstance(js.get("error"), str),
                "%s %r: {\"ok\":false,\"error\":...}" % (what, payload), "    reply: %r" % data)
    # No newline, connection kept open: the server gives up waiting and answers what it got.
    t0 = time.monotonic()
    try:
        data = ctl_raw(sock, b"stat", timeout=10)
    except OSError as e:
        data = ("<%s>" % e).encode()
    js = reply_json(data)
    c.check(time.monotonic() - t0 < 5 and (data == b"" or (js is not None and js.get("ok") is False)),
            "partial command without newline: ok:false or closed within 5 s (%.1f s)" % (time.monotonic() - t0),
            "    reply: %r" % data)
    # A flood longer than the server's line buffer.
    try:
        data = ctl_raw(sock, b"x" * 100000 + b"\n", timeout=10)
    except OSError as e:
        data = b""  # reset by the server after it answered or dropped us: fine
    js = reply_json(data)
    c.check(data == b"" or (js is not None and js.get("ok") is False), "100 kB line: ok:false or closed",
            "    reply: %r" % data[:200])
    # Connect and hang up at once; connect and half-close without sending.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    s.close()
    data = ctl_raw(sock, b"", shut_write=True)
    c.check(data == b"", "empty request: closed without a reply (%r)" % data)
    # CR LF line ending works.
    js = reply_json(ctl_raw(sock, b"status\r\n"))
    c.check(js is not None and js.get("state") == "running", "status\\r\\n: answered")
    # A client that connects and sends nothing does not wedge the socket for long.
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    idle.connect(sock)
    t0 = time.monotonic()
    r, js = ctl(vireo, sock, "status")
    dt = time.monotonic() - t0
    idle.close()
    c.check(js is not None and dt < 5, "status while another client idles: answered in %.1f s" % dt,
            r.describe())

    # Clients that hang up before the reply: writing it must not kill the VMM (SIGPIPE).
    for _ in range(20):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock)
        s.sendall(b"status\n")
        s.close()
    time.sleep(0.5)
    c.check(vm.proc.poll() is None, "20 clients hanging up before the reply: vireo still runs",
            vm.describe())
    c.check(vm.proc.poll() is None, "after malformed requests: vireo still runs", vm.describe())
    r, js = ctl(vireo, sock, "status")
    c.check(js is not None and js.get("state") == "running", "after malformed requests: state running",
            r.describe())
    c.check(wait_ticks(vm, 3, 5) >= 3, "after malformed requests: the guest still ticks", vm.describe())


def stop_checks(c, vireo, vm, sock, what):
    t0 = time.monotonic()
    r, js = ctl(vireo, sock, "stop")
    c.check(r.rc == 0 and js is not None and js.get("ok") is True, "%s: stop answered ok" % what,
            r.describe())
    rc = vm.wait_exit(10)
    dt = time.monotonic() - t0
    c.check(rc == 0, "%s: vireo exits 0 (%r)" % (what, rc), vm.describe())
    c.check(dt < 5, "%s: exits promptly (%.1f s)" % (what, dt))
    c.check(not os.path.lexists(sock), "%s: socket file removed" % what)
    c.check(vm.count(r"PROBE-ERROR|PROBE ticker: FAIL") == 0, "%s: the guest reported no error" % what,
            vm.describe())
    r, js = ctl(vireo, sock, "status")
    c.check(r.rc == 1 and len(r.err_lines()) == 1, "%s: ctl to the gone VM: one error line, exit 1" % what,
            r.describe())


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    clitest.kvm_or_skip()
    vireo, ticker = sys.argv[1], sys.argv[2]
    c = Checker("cli-ctl")
    tmp = clitest.tmpdir("ctl")
    cpus = 2 if (os.cpu_count() or 1) >= 2 else 1

    print("== VM 1 (--cpus %d): status, pause, resume, malformed requests, stop" % cpus)
    sock = os.path.join(tmp, "vm1.sock")
    disk = os.path.join(tmp, "vm1.raw")
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    vm = Vm(vireo, ticker, ["--cpus", str(cpus), "--disk", disk], sock=sock)
    try:
        if started(c, vm, "VM 1"):
            st = os.lstat(sock) if os.path.lexists(sock) else None
            c.check(st is not None and stat.S_ISSOCK(st.st_mode), "--api-sock: a socket exists at the path")
            c.check(st is not None and (st.st_mode & 0o077) == 0,
                    "--api-sock: mode 0600 (%s)" % (oct(st.st_mode & 0o777) if st else None))
            status_checks(c, vireo, vm, sock, cpus)
            pause_resume(c, vireo, vm, sock)
            malformed(c, vireo, vm, sock)
            print("== stop")
            stop_checks(c, vireo, vm, sock, "VM 1")
    finally:
        vm.kill()

    print("== VM 2: stop while paused")
    sock = os.path.join(tmp, "vm2.sock")
    vm = Vm(vireo, ticker, sock=sock)
    try:
        if started(c, vm, "VM 2"):
            r, js = ctl(vireo, sock, "pause")
            c.check(js is not None and js.get("state") == "paused", "VM 2: paused", r.describe())
            stop_checks(c, vireo, vm, sock, "VM 2 (paused)")
    finally:
        vm.kill()

    print("== VM 3: shutdown (ACPI power button)")
    sock = os.path.join(tmp, "vm3.sock")
    vm = Vm(vireo, ticker, sock=sock)
    try:
        if started(c, vm, "VM 3"):
            r, js = ctl(vireo, sock, "shutdown")
            c.check(r.rc == 0 and js == {"ok": True}, "shutdown: {\"ok\":true}", r.describe())
            c.check(vm.wait_for(r"^TICKER: power button$", 10) is not None,
                    "shutdown: the guest saw the power button", vm.describe())
            rc = vm.wait_exit(10)
            c.check(rc == 0, "shutdown: vireo exits 0 after the guest powers off (%r)" % rc, vm.describe())
            c.check(not os.path.lexists(sock), "shutdown: socket file removed")
    finally:
        vm.kill()

    print("== VM 4: the default socket path")
    rt = os.path.join(tmp, "xdg")
    os.mkdir(rt, 0o700)
    vm = Vm(vireo, ticker, env=dict(os.environ, XDG_RUNTIME_DIR=rt))
    try:
        if started(c, vm, "VM 4"):
            sock = os.path.join(rt, "vireo-%d.sock" % vm.proc.pid)
            c.check(os.path.lexists(sock), "default socket: %s exists" % sock, "    %s: %r" % (rt, os.listdir(rt)))
            if os.path.lexists(sock):
                c.check((os.lstat(sock).st_mode & 0o077) == 0, "default socket: mode 0600")
                stop_checks(c, vireo, vm, sock, "VM 4")
    finally:
        vm.kill()
    c.finish()


if __name__ == "__main__":
    main()
