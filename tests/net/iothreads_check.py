#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""While a VM started with --io-threads N runs: poll its control socket until the status shows
every device I/O thread io0..ioN-1 by name in /proc/PID/task/*/comm and with dispatched events
("io_loops" in the status JSON), i.e. each one carried queue traffic.

    iothreads_check.py SOCKET N [TIMEOUT]

Exit 0 once seen; 1 if the VM went away (or TIMEOUT passed) before, with the last status.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from vireo_ctl import status  # noqa: E402


def thread_names(pid):
    names = []
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, t)) as f:
                names.append(f.read().strip())
        except OSError:
            pass
    return names


def main():
    path, n = sys.argv[1], int(sys.argv[2])
    end = time.monotonic() + (float(sys.argv[3]) if len(sys.argv) > 3 else 50)
    want = ["io%d" % i for i in range(n)]
    last, seen_vm, err = None, False, None
    while time.monotonic() < end:
        try:
            st = status(path, timeout=2)
            names = thread_names(st["pid"])
        except (OSError, ValueError, KeyError) as e:
            if seen_vm:
                break  # the VM exited
            err = "%s: %s" % (type(e).__name__, e)
            time.sleep(0.02)
            continue
        seen_vm = True
        loops = {l["thread"]: l["events"] for l in st.get("io_loops", [])}
        last = (st.get("io_threads"), loops, sorted(set(names)))
        if (st.get("io_threads") == n and all(w in names for w in want) and
                all(loops.get(w, 0) > 0 for w in want)):
            print("PASS: threads %s present; events per loop %s" % (want, loops))
            return 0
        time.sleep(0.02)
    print("FAIL: never saw threads %s all with events (last: io_threads, loops, thread names = %s;"
          " last error before the first status: %s)" % (want, last, err))
    return 1


if __name__ == "__main__":
    sys.exit(main())
