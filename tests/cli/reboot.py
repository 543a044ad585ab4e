#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Guest reboot handling: --on-reboot restart (default) boots again in the same process,
--on-reboot exit makes vireo exit 0 after the first reset. Boots are counted by the
"PROBE-BOOT <name>" banner every probe guest prints.

    reboot.py VIREO TICKER RESET_PROBE

- the reset probe (tests/probe/reset.c), ACPI and i8042 resets, both modes;
- the ticker with reboots=3: four boots in restart mode, one in exit mode;
- the control socket keeps working across restarts and counts them ("boots").
Exit 77 without a usable /dev/kvm.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clitest  # noqa: E402
from clitest import Checker, Vm, ctl, run  # noqa: E402


def boots(r, name):
    return len(re.findall(rb"^PROBE-BOOT %s\b" % name.encode(), r.out, re.M))


def case(c, vireo, kernel, name, cmdline, extra, want_boots, also=()):
    what = "%s %r %s" % (name, cmdline, " ".join(extra) or "(default: restart)")
    r = run([vireo, "run", "--kernel", kernel, "--memory", "64M", "--cmdline", cmdline] + extra,
            timeout=45)
    n = boots(r, name)
    c.check(not r.timed_out, "%s: vireo exits by itself" % what, r.describe())
    c.check(r.rc == 0, "%s: exit status 0 (%r)" % (what, r.rc), r.describe())
    c.check(n == want_boots, "%s: %d boot(s) (%d)" % (what, want_boots, n), r.describe())
    c.check(not re.search(rb"PROBE-ERROR|: FAIL", r.out), "%s: no probe error" % what, r.describe())
    out = r.out.replace(b"\r\n", b"\n")
    for rx in also:
        c.check(re.search(rx.encode(), out, re.M) is not None, "%s: /%s/ on the console" % (what, rx),
                r.describe())
    return r


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    clitest.kvm_or_skip()
    vireo, ticker, reset = sys.argv[1:4]
    c = Checker("cli-reboot")

    print("== the reset probe")
    for how in ["acpi", "i8042"]:
        r = case(c, vireo, reset, "reset", "how=%s mem=64" % how, ["--on-reboot", "exit"], 1,
                 also=[r"^PROBE reset: first boot"])
        c.check(b"second boot" not in r.out, "reset how=%s, exit mode: no second boot" % how)
        case(c, vireo, reset, "reset", "how=%s mem=64" % how, [], 2,
             also=[r"^PROBE reset: first boot", r"^PROBE-INFO reset: second boot"])
    case(c, vireo, reset, "reset", "how=acpi mem=64", ["--on-reboot", "restart"], 2)

    print("== the ticker resetting three times")
    case(c, vireo, ticker, "ticker", "reboots=3 ticks=1", [], 4,
         also=[r"^TICKER: boot 4$", r"^TICKER: done$"])
    r = case(c, vireo, ticker, "ticker", "reboots=3 ticks=1", ["--on-reboot", "exit"], 1,
             also=[r"^TICKER: boot 1$"])
    c.check(b"TICK 1" not in r.out, "ticker, exit mode: stopped at the first reset")

    print("== the control socket across restarts")
    tmp = clitest.tmpdir("reboot")
    sock = os.path.join(tmp, "r.sock")
    vm = Vm(vireo, ticker, cmdline="reboots=2", sock=sock)
    try:
        up = vm.wait_for(r"^TICKER: READY", 45) is not None
        c.check(up, "ticker reboots=2: up after the restarts", vm.describe())
        if up:
            c.check(vm.count(r"^PROBE-BOOT ticker") == 3, "ticker reboots=2: 3 boots", vm.describe())
            r, js = ctl(vireo, sock, "status")
            c.check(js is not None and js.get("boots") == 3 and js.get("state") == "running",
                    "status after two restarts: boots 3, running", r.describe())
            r, js = ctl(vireo, sock, "stop")
            c.check(vm.wait_exit(10) == 0, "stop after restarts: exit 0", vm.describe())
            c.check(not os.path.lexists(sock), "stop after restarts: socket removed")
    finally:
        vm.kill()
    c.finish()


if __name__ == "__main__":
    main()
