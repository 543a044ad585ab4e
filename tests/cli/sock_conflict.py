#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Two VMs and one control socket path.

    sock_conflict.py VIREO TICKER

- While VM A lives, VM B asking for A's socket path fails at once (exit 1, one line naming the
  path) and A keeps its socket and keeps answering.
- The socket file of a VMM killed with SIGKILL (it cannot clean up) is stale: the next VM on
  that path replaces it and answers on it.
Exit 77 without a usable /dev/kvm.
"""
import os
import re
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clitest  # noqa: E402
from clitest import Checker, Vm, ctl, one_error_line, run  # noqa: E402

BOOT_TIMEOUT = 30.0


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    clitest.kvm_or_skip()
    vireo, ticker = sys.argv[1], sys.argv[2]
    c = Checker("cli-sock-conflict")
    tmp = clitest.tmpdir("sock")
    sock = os.path.join(tmp, "shared.sock")

    print("== a live VM keeps its socket")
    a = Vm(vireo, ticker, sock=sock)
    try:
        c.check(a.wait_for(r"^TICKER: READY", BOOT_TIMEOUT) is not None, "VM A is up", a.describe())
        ino = os.lstat(sock).st_ino if os.path.lexists(sock) else None
        r = run([vireo, "run", "--kernel", ticker, "--memory", "64M", "--cmdline", "ticks=1",
                 "--api-sock", sock], timeout=20)
        one_error_line(c, "VM B on A's socket", r, 1, re.escape(sock), max_seconds=15)
        c.check(r.out == b"", "VM B did not run its guest", r.describe())
        c.check(os.path.lexists(sock) and os.lstat(sock).st_ino == ino,
                "A's socket file is still A's after B failed")
        r, js = ctl(vireo, sock, "status")
        c.check(js is not None and js.get("pid") == a.proc.pid and js.get("state") == "running",
                "A still answers on the socket", r.describe())
        c.check(a.proc.poll() is None, "A still runs", a.describe())

        print("== a stale socket from a killed VMM is replaced")
        a.proc.send_signal(signal.SIGKILL)
        a.wait_exit(10)
        c.check(os.path.lexists(sock), "after SIGKILL the socket file is left behind (stale)")
        r, js = ctl(vireo, sock, "status")
        c.check(r.rc == 1, "ctl to the stale socket: exit 1", r.describe())
    finally:
        a.kill()

    b = Vm(vireo, ticker, sock=sock)
    try:
        c.check(b.wait_for(r"^TICKER: READY", BOOT_TIMEOUT) is not None,
                "VM B starts on the stale socket path", b.describe())
        r, js = ctl(vireo, sock, "status")
        c.check(js is not None and js.get("pid") == b.proc.pid, "B answers on the replaced socket",
                r.describe())
        r, js = ctl(vireo, sock, "stop")
        rc = b.wait_exit(10)
        c.check(rc == 0, "B stops with exit 0 (%r)" % rc, b.describe())
        c.check(not os.path.lexists(sock), "B removed its socket")
    finally:
        b.kill()

    print("== two VMs on two paths run side by side")
    s1, s2 = os.path.join(tmp, "one.sock"), os.path.join(tmp, "two.sock")
    v1, v2 = Vm(vireo, ticker, sock=s1), Vm(vireo, ticker, sock=s2)
    try:
        up = all(v.wait_for(r"^TICKER: READY", BOOT_TIMEOUT) is not None for v in (v1, v2))
        c.check(up, "both VMs are up", v1.describe() + "\n" + v2.describe())
        r1, j1 = ctl(vireo, s1, "pause")
        r2, j2 = ctl(vireo, s2, "status")
        c.check(j1 is not None and j1.get("state") == "paused" and j2 is not None
                and j2.get("state") == "running" and j2.get("pid") == v2.proc.pid,
                "pausing one VM leaves the other running", r1.describe() + "\n" + r2.describe())
        for s, v, n in [(s1, v1, "one"), (s2, v2, "two")]:
            ctl(vireo, s, "stop")
            c.check(v.wait_exit(10) == 0, "VM %s stops with exit 0" % n, v.describe())
    finally:
        v1.kill()
        v2.kill()
    c.finish()


if __name__ == "__main__":
    main()
