#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""virtio-blk through a guest: Vireo against QEMU on the same probe and the same file.

    python3 bench/guest_blk/run.py [BUILD_DIR] [options]        (see README.md here)

The probe guest bench-guest-blk (guest_blk.c) runs 4 KiB random read/write and 1 MiB
sequential read/write at queue depth 1 and 32, a fixed number of requests each, and prints
"BENCH-START <case>" / "BENCH-END <case> <n> <bytes>" on COM1. This script boots it under
  vireo  vireo run --kernel P --cpus 1 --memory 128M --no-rng --on-reboot exit
               --disk FILE,format=raw,cache=none,aio=io_uring
  qemu   qemu-system-x86_64 -M q35 -enable-kvm -cpu host -smp 1 -m 128 -nodefaults ...
               -drive file=FILE,if=none,id=d0,format=raw,cache=none,aio=io_uring
               -device virtio-blk-pci,drive=d0,disable-legacy=on,num-queues=1,queue-size=256
on one preallocated file whose every 4 KiB block starts with a self-describing word (the probe
checks each block it reads). A case's time runs from the arrival of its START line on the
VMM's stdout to the arrival of the first byte of its END line; its CPU time is utime+stime of
the whole VMM process (every thread: /proc/PID/stat) between the same two moments, split into
vCPU threads and the rest (/proc/PID/task/*/stat). Rounds alternate the sides (vireo, qemu,
then qemu, vireo, ...); the table gives medians. A run whose probe did not PASS, or that lacks
a case's markers, is INVALID and left out.

--smoke: Vireo only, a 96 MiB file and a few requests per case: checks that the probe builds,
runs and passes (meson test probe-guest_blk-smoke). Exit status 0 pass, 1 fail, 77 no KVM.
Python standard library only.
"""
import argparse
import json
import os
import re
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree from these imports
sys.path.insert(0, os.path.join(REPO, "tests", "probe"))
sys.path.insert(0, os.path.dirname(HERE))
from run_probe import kvm_usable  # noqa: E402
from block import direct_ok  # noqa: E402

SKIP = 77
MAGIC = 0x5649524542454E43  # guest_blk.c: every 4 KiB block starts with MAGIC ^ its offset
BLK = 4096
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGET = 1.0
# case -> requests per boot by default (about 1 s each on the build host; --scale multiplies)
CASES = [
    ("4k-randread-qd1", 4000), ("4k-randread-qd32", 10000),
    ("4k-randwrite-qd1", 2500), ("4k-randwrite-qd32", 6000),
    ("1m-read-qd1", 1000), ("1m-read-qd32", 2000),
    ("1m-write-qd1", 1000), ("1m-write-qd32", 2000),
]
SMOKE_CASES = [(c, 8 if c.startswith("1m") else 40) for c, _ in CASES]


def fill_file(path, size):
    """Create path (size bytes, allocated) with every 4 KiB block starting MAGIC ^ offset."""
    filler = bytes((i * 7 + 3) & 0xFF for i in range(BLK))
    chunk = bytearray(filler * 256)  # 1 MiB
    with open(path, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, size)
        for base in range(0, size, 1 << 20):
            for i in range(0, 1 << 20, BLK):
                struct.pack_into("<Q", chunk, i, MAGIC ^ (base + i))
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def file_ok(path):
    """An existing --file: size a multiple of 1 MiB >= 96 MiB, sampled guard words right."""
    size = os.path.getsize(path)
    if size % (1 << 20) or size < (96 << 20):
        return False
    with open(path, "rb") as f:
        # 1 MiB-aligned blocks only: 1 MiB writes keep just the first and last block's word
        for off in range(1 << 20, size, max(1 << 20, (size // 37) & ~((1 << 20) - 1))):
            f.seek(off)
            if struct.unpack("<Q", f.read(8))[0] != MAGIC ^ off:
                return False
    return True


def cpu_sample(pid, vcpu_re):
    """(total, vcpu) CPU seconds of the process: /proc/PID/stat covers every thread, dead ones
    included; vcpu sums the live threads whose name matches vcpu_re."""
    def ticks(stat):
        rest = stat[stat.rindex(")") + 2:].split()
        return int(rest[11]) + int(rest[12])  # utime, stime (fields 14, 15)
    try:
        with open("/proc/%d/stat" % pid) as f:
            total = ticks(f.read())
        vcpu = 0
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                    s = f.read()
            except OSError:
                continue
            if vcpu_re.match(s[s.index("(") + 1:s.rindex(")")]):
                vcpu += ticks(s)
        return total / CLK_TCK, vcpu / CLK_TCK
    except (OSError, ValueError):
        return None


class Side:
    def __init__(self, name, cmd, vcpu_re, ok_exit):
        self.name, self.cmd, self.vcpu_re, self.ok_exit = name, cmd, re.compile(vcpu_re), ok_exit


def vireo_side(vireo, elf, path, cmdline, mem, cache, poll_us=0):
    cmd = [vireo, "run", "--kernel", elf, "--cmdline", cmdline, "--cpus", "1",
           "--memory", "%dM" % mem, "--no-rng", "--on-reboot", "exit",
           "--disk", "%s,format=raw,cache=%s,aio=io_uring" % (path, cache)]
    if poll_us:
        cmd += ["--io-poll-us", str(poll_us)]
    return Side("vireo", cmd, r"vcpu\d+$", (0,))


def qemu_side(qemu, elf, path, cmdline, mem, cache, qsize, iothread):
    dev = "virtio-blk-pci,drive=d0,disable-legacy=on,num-queues=1,queue-size=%d" % qsize
    cmd = [qemu, "-M", "q35", "-enable-kvm", "-cpu", "host", "-smp", "1", "-m", str(mem),
           "-name", "guestblk,debug-threads=on", "-nodefaults", "-no-reboot",
           "-kernel", elf, "-append", cmdline + " qemu ecam=0xb0000000",
           "-display", "none", "-serial", "stdio", "-monitor", "none",
           "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
           "-drive", "file=%s,if=none,id=d0,format=raw,cache=%s,aio=io_uring" % (path, cache)]
    if iothread:
        cmd += ["-object", "iothread,id=io0"]
        dev += ",iothread=io0"
    # isa-debug-exit: the probe's power-off writes 0 -> exit status 1
    return Side("qemu", cmd + ["-device", dev], r"CPU \d+/KVM$", (1,))


def run_side(side, cases, timeout, verbose):
    """Boot once, run every case; returns {"valid", "why", "cases": {case: result}, "log"}."""
    t0 = time.monotonic()
    proc = subprocess.Popen(side.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    out, err = bytearray(), bytearray()
    cur = None       # (time, cpu) at the first byte of the line being received
    lines = []       # (text, first (t, cpu), done (t, cpu))
    streams = [proc.stdout, proc.stderr]
    timed_out = False
    while streams:
        left = timeout - (time.monotonic() - t0)
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select(streams, [], [], min(left, 1.0))
        now = time.monotonic()
        for f in ready:
            data = os.read(f.fileno(), 65536)
            if not data:
                streams.remove(f)
                continue
            if f is proc.stderr:
                err += data
                continue
            pos = 0
            while pos < len(data):
                if cur is None:
                    cur = (now, cpu_sample(proc.pid, side.vcpu_re))
                nl = data.find(b"\n", pos)
                if nl < 0:
                    out += data[pos:]
                    break
                out += data[pos:nl + 1]
                start = out.rfind(b"\n", 0, len(out) - 1) + 1
                text = out[start:-1].decode("utf-8", "replace").rstrip("\r")
                done = (now, cpu_sample(proc.pid, side.vcpu_re)) if text.startswith(
                    "BENCH-START") else cur
                lines.append((text, cur, done))
                cur = None
                pos = nl + 1
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    rc = proc.wait()
    res = {"valid": False, "why": "", "cases": {}, "rc": rc,
           "log": out.decode("utf-8", "replace"), "stderr": err.decode("utf-8", "replace"),
           "seconds": time.monotonic() - t0}
    texts = [l[0] for l in lines]
    fails = [t for t in texts if t.startswith("PROBE guest_blk: FAIL") or t.startswith("PROBE-ERROR")]
    starts = {}
    for text, first, done in lines:
        w = text.split()
        if len(w) == 2 and w[0] == "BENCH-START":
            starts[w[1]] = done
        elif len(w) == 4 and w[0] == "BENCH-END" and w[1] in starts:
            (ta, ca), (tb, cb) = starts[w[1]], first
            # both lines in one read (a tiny --smoke case): no usable interval
            n, nbytes, dt = int(w[2]), int(w[3]), max(tb - ta, 1e-6)
            r = {"n": n, "bytes": nbytes, "seconds": dt, "iops": n / dt,
                 "mibs": nbytes / dt / 1048576.0}
            if ca and cb:
                r["cpu_us"] = (cb[0] - ca[0]) * 1e6 / n
                r["vcpu_us"] = (cb[1] - ca[1]) * 1e6 / n
                r["other_us"] = r["cpu_us"] - r["vcpu_us"]
            res["cases"][w[1]] = r
        elif len(w) >= 2 and w[0] == "BENCH-INFO" and w[1] in res["cases"]:
            res["cases"][w[1]].update({k: int(v) for k, v in
                                       (x.split("=", 1) for x in w[2:])})
    missing = [c for c, _ in cases if c not in res["cases"]]
    if fails:
        res["why"] = fails[0]
    elif timed_out:
        res["why"] = "timed out after %.0f s" % timeout
    elif "PROBE guest_blk: PASS" not in texts:
        res["why"] = "no PASS line"
    elif missing:
        res["why"] = "no markers for " + ", ".join(missing)
    elif rc not in side.ok_exit:
        res["why"] = "exit status %d" % rc
    else:
        bad = [c for c, n in cases if res["cases"][c]["n"] != n]
        res["why"] = "wrong request count for " + ", ".join(bad) if bad else ""
        res["valid"] = not bad
    if verbose or not res["valid"]:
        print("  %s: %s (%.1f s)%s" % (side.name, "ok" if res["valid"] else "INVALID: " + res["why"],
                                       res["seconds"], "" if res["valid"] else
                                       "\n    cmd: %s\n    console tail:\n%s\n    stderr tail:\n%s" % (
                                           " ".join(side.cmd), tail(res["log"]), tail(res["stderr"]))),
              flush=True)
    return res


def tail(text, n=15):
    return "\n".join("      | " + l for l in text.splitlines()[-n:]) or "      (empty)"


def med(xs):
    return statistics.median(xs) if xs else None


def summarize(cases, runs):
    """runs: {side: [result, ...]} -> {case: {side: {metric: median}, "paired": {...}}}: the
    paired entry is the median over rounds of vireo/qemu within the round (drift cancels)."""
    out = {}
    for c, _ in cases:
        out[c] = {}
        if "qemu" in runs:
            pairs = [(v["cases"][c], q["cases"][c]) for v, q in zip(runs["vireo"], runs["qemu"])
                     if v["valid"] and q["valid"]]
            out[c]["paired"] = {
                "iops": med([v["iops"] / q["iops"] for v, q in pairs]),
                "cpu_us": med([v["cpu_us"] / q["cpu_us"] for v, q in pairs
                               if v.get("cpu_us") and q.get("cpu_us")]),
                "rounds": len(pairs)}
        for side, rs in runs.items():
            good = [r["cases"][c] for r in rs if r["valid"]]
            m = {"runs": len(good)}
            for k in ("iops", "mibs", "cpu_us", "vcpu_us", "other_us", "kicks", "irqs",
                      "seconds", "n"):
                vals = [g[k] for g in good if k in g]
                m[k] = med(vals)
            out[c][side] = m
    return out


def fmt(v, f):
    return "-" if v is None else f % v


def print_table(cases, summary, sides):
    print("\n%-18s %-6s %9s %9s %10s %10s %10s %7s %7s  %s" % (
        "case", "side", "IOPS", "MiB/s", "CPU us/IO", "vCPU us", "other us", "kick/IO",
        "irq/IO", "runs"))
    verdicts = []
    for c, _ in cases:
        row = summary[c]
        for s in sides:
            m = row[s]
            n = m["n"] or 0
            print("%-18s %-6s %9s %9s %10s %10s %10s %7s %7s  %d" % (
                c, s, fmt(m["iops"], "%.0f"), fmt(m["mibs"], "%.1f"), fmt(m["cpu_us"], "%.1f"),
                fmt(m["vcpu_us"], "%.1f"), fmt(m["other_us"], "%.1f"),
                fmt(m["kicks"] / n if n and m["kicks"] is not None else None, "%.2f"),
                fmt(m["irqs"] / n if n and m["irqs"] is not None else None, "%.2f"), m["runs"]))
        if "vireo" in row and "qemu" in row and row["vireo"]["iops"] and row["qemu"]["iops"]:
            v, q = row["vireo"], row["qemu"]
            ri = v["iops"] / q["iops"]
            rc = v["cpu_us"] / q["cpu_us"] if q["cpu_us"] else None
            p = row.get("paired", {})
            print("%-18s %-6s %9s %9s %10s   IOPS and CPU/IO ratios (median of per-round "
                  "ratios: %s, %s)" % ("", "v/q", "%.2fx" % ri, "", fmt(rc, "%.2fx"),
                                         fmt(p.get("iops"), "%.2fx"), fmt(p.get("cpu_us"), "%.2fx")))
            verdicts.append((c, p.get("iops") or ri, rc))
    return verdicts


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build", nargs="?", default="build", help="build directory (default: build)")
    ap.add_argument("--vireo", help="vireo binary (default BUILD/src/cli/vireo)")
    ap.add_argument("--elf", help="probe (default BUILD/bench/guest_blk/bench-guest-blk)")
    ap.add_argument("--qemu", default=shutil.which("qemu-system-x86_64"),
                    help="QEMU binary (default from PATH); --no-qemu to skip")
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--rounds", type=int, default=4, help="boots per side (default 4)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every request count")
    ap.add_argument("--only", action="append", help="cases containing this (repeatable)")
    ap.add_argument("--file", help="disk file to use (created and filled if absent, kept)")
    ap.add_argument("--size", type=int, default=1024, help="MiB for a new file (default 1024)")
    ap.add_argument("--dir", default="/var/tmp", help="where a temporary file goes")
    ap.add_argument("--memory", type=int, default=128, help="guest MiB (default 128)")
    ap.add_argument("--mode", choices=["irq", "poll"], default="irq",
                    help="guest completion handling: MSI-X + hlt (default) or polling")
    ap.add_argument("--seg", type=int, default=65536, help="bytes per 1 MiB request segment")
    ap.add_argument("--qsize", type=int, default=256)
    ap.add_argument("--no-evidx", action="store_true", help="do not negotiate EVENT_IDX")
    ap.add_argument("--io-poll-us", type=int, default=0, metavar="US",
                    help="vireo --io-poll-us US (its I/O loop polls before sleeping)")
    ap.add_argument("--qemu-iothread", action="store_true",
                    help="give QEMU's disk an iothread (default: its main loop)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per boot")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON ('-': stdout)")
    ap.add_argument("--smoke", action="store_true", help="Vireo only, tiny counts (a test)")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()

    vireo = a.vireo or os.path.join(a.build, "src", "cli", "vireo")
    elf = a.elf or os.path.join(a.build, "bench", "guest_blk", "bench-guest-blk")
    why = kvm_usable()
    if why:
        print("SKIP: %s" % why)
        return SKIP
    for p in (vireo, elf):
        if not os.path.isfile(p):
            sys.exit("run.py: %s not built (ninja -C %s)" % (p, a.build))
    cases = SMOKE_CASES if a.smoke else [(c, max(1, int(n * a.scale))) for c, n in CASES]
    if a.only:
        cases = [(c, n) for c, n in cases if any(o in c for o in a.only)]
    qemu = None if (a.no_qemu or a.smoke) else a.qemu
    if not a.smoke and not a.no_qemu and not qemu:
        sys.exit("run.py: no qemu-system-x86_64 (--qemu PATH, or --no-qemu)")
    size = (96 if a.smoke else a.size) << 20
    rounds = 1 if a.smoke else a.rounds

    t_start = time.monotonic()
    path, temp = a.file, False
    if not path:
        fd, path = tempfile.mkstemp(prefix="vireo-guestblk-", suffix=".raw", dir=a.dir)
        os.close(fd)
        temp = True
    try:
        if temp or not os.path.exists(path):
            print("filling %s (%d MiB)..." % (path, size >> 20), flush=True)
            fill_file(path, size)
        elif not file_ok(path):
            sys.exit("run.py: --file %s: not a file this script filled" % path)
        size = os.path.getsize(path)
        cache = "none" if direct_ok(path) else "writeback"
        results = {"vireo": []}
        if qemu:
            results["qemu"] = []
        print("virtio-blk through a guest: %s%s, file %s (%d MiB, %s), cache=%s aio=io_uring, "
              "queue %d, 1 MiB = %d x %d KiB (indirect), completions by %s, event_idx %s"
              % (("vireo" + (" --io-poll-us %d" % a.io_poll_us if a.io_poll_us else ""))
                 + ("" if not qemu else " vs " + subprocess.run(
                  [qemu, "--version"], stdout=subprocess.PIPE, text=True).stdout.splitlines()[0]),
                 " (QEMU iothread)" if a.qemu_iothread else "", path, size >> 20,
                 subprocess.run(["df", "--output=fstype", path], stdout=subprocess.PIPE,
                                text=True).stdout.split()[-1], cache, a.qsize,
                 (1 << 20) // a.seg, a.seg >> 10,
                 "MSI-X + hlt" if a.mode == "irq" else "polling", "off" if a.no_evidx else "on"),
              flush=True)
        if cache != "none":
            print("NOTE: O_DIRECT refused by this filesystem: both sides run cache=writeback")
        for r in range(rounds):
            cmdline = "disk=%d seed=%d qsize=%d seg=%d mode=%s evidx=%d mem=%d cases=%s" % (
                size, r + 1, a.qsize, a.seg, a.mode, 0 if a.no_evidx else 1, a.memory,
                ",".join("%s:%d" % cn for cn in cases))
            sides = [vireo_side(vireo, elf, path, cmdline, a.memory, cache, a.io_poll_us)]
            if qemu:
                sides.append(qemu_side(qemu, elf, path, cmdline, a.memory, cache, a.qsize,
                                       a.qemu_iothread))
                if r % 2:
                    sides.reverse()
            print("round %d/%d: %s" % (r + 1, rounds, ", ".join(s.name for s in sides)), flush=True)
            for s in sides:
                results[s.name].append(run_side(s, cases, a.timeout, a.verbose))
        summary = summarize(cases, results)
        verdicts = print_table(cases, summary, list(results))
        invalid = sum(1 for rs in results.values() for r in rs if not r["valid"])
        if verdicts:
            met = [v for v in verdicts if v[1] >= TARGET]
            print("\ntarget vireo >= %.1fx QEMU IOPS (median of per-round ratios): met in %d/%d cases%s" % (
                TARGET, len(met), len(verdicts), "" if len(met) == len(verdicts) else
                "; missed: " + ", ".join("%s (%.2fx)" % (v[0], v[1]) for v in verdicts
                                         if v[1] < TARGET)))
        print("%d INVALID run(s); total %.0f s" % (invalid, time.monotonic() - t_start))
        if a.json:
            doc = {"cases": dict(cases), "summary": summary, "config": {
                "file": path, "size": size, "cache": cache, "qsize": a.qsize, "seg": a.seg,
                "mode": a.mode, "event_idx": not a.no_evidx, "qemu_iothread": a.qemu_iothread,
                "vireo_io_poll_us": a.io_poll_us,
                "rounds": rounds, "memory_mib": a.memory},
                "runs": {s: [{k: v for k, v in r.items() if k not in ("log", "stderr")}
                             for r in rs] for s, rs in results.items()}}
            if a.json == "-":
                json.dump(doc, sys.stdout, indent=1)
                print()
            else:
                with open(a.json, "w") as f:
                    json.dump(doc, f, indent=1)
        if a.smoke:
            ok = results["vireo"][0]["valid"]
            print("%s: guest_blk smoke" % ("PASS" if ok else "FAIL"))
            return 0 if ok else 1
        return 1 if invalid else 0
    finally:
        if temp:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


if __name__ == "__main__":
    sys.exit(main())
