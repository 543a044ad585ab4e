#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Vireo's block layer against host fio on the same file (bench/block.sh).

For each workload (4 KiB random read/write, 1 MiB sequential read/write, each at queue depth
1 and 32) it runs, back to back on one file, two submission patterns, each with fio (io_uring
engine) and blk-bench (Vireo's block layer in-process) driven the same way:

  per-I/O  fio's defaults (iodepth_batch_submit=1, iodepth_batch_complete_min=1): every
           request goes to the kernel in its own io_uring_enter as soon as its slot is free.
           blk-bench --per-io 1 --loop 1: each request submitted, kicked and handed to the
           kernel alone (io_uring_enter, to_submit=1, no wait); completions through the
           evloop (epoll on the ring fd), the VMM's I/O-thread path.
  batched  the device's pattern: everything freed by one wake-up goes out in one system call.
           blk-bench's default (blk_poll: one io_uring_enter submits the batch and waits for
           the next completion) against fio --iodepth_batch_submit=QD
           --iodepth_batch_complete_min=1 --iodepth_batch_complete_max=QD (reap every ready
           completion, at least one, resubmit them in one io_uring_enter). At queue depth 1
           these fio options are fio's defaults, so both patterns share one fio run.

The batched pattern also has blk-bench with the thread-pool engine and on a qcow2 image of
the same size (image engine). `x fio` compares each row with fio of the same pattern. All use
O_DIRECT (cache=none) unless the filesystem refuses it. Files are written once before the
runs so reads hit the device, not unwritten extents. --syscalls runs every io_uring row once
under `strace -f -c` (or `perf stat` on the syscall tracepoints) instead and prints system
calls per I/O. bench/block.md has the method and the measurements.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

WORKLOADS = [  # (label, fio rw / blk-bench rw, block size, queue depth)
    ("4k randread", "randread", 4096, 1), ("4k randread", "randread", 4096, 32),
    ("4k randwrite", "randwrite", 4096, 1), ("4k randwrite", "randwrite", 4096, 32),
    ("1M read", "read", 1 << 20, 1), ("1M read", "read", 1 << 20, 32),
    ("1M write", "write", 1 << 20, 1), ("1M write", "write", 1 << 20, 32),
]
TARGET = 0.9
PER_IO, BATCHED = "per-I/O", "batched"
PATTERN_OPT = {"per-io": PER_IO, "batched": BATCHED}
# blk-bench arguments of each completion path, per pattern. evloop + --per-io is
# --kick-each in a loop (what builds without --per-io get for "before" rows).
VIREO_ARGS = {
    (PER_IO, "evloop"): ["--loop", "1", "--per-io", "1"],
    (PER_IO, "blk_poll"): ["--per-io", "1"],
    (BATCHED, "blk_poll"): [],
    (BATCHED, "evloop"): ["--loop", "1"],
}
# The row each pattern's target line uses, and the other completion path (--loop).
MAIN_PATH = {PER_IO: "evloop", BATCHED: "blk_poll"}
OTHER_PATH = {PER_IO: "blk_poll", BATCHED: "evloop"}


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, **kw).stdout


def run_vireo(tool, path, fmt, engine, cache, rw, bs, qd, secs, extra=(), wrap=()):
    out = sh(list(wrap) + [tool, "run", "--path", path, "--format", fmt, "--engine", engine,
                           "--cache", cache, "--rw", rw, "--bs", str(bs), "--qd", str(qd),
                           "--time", str(secs)] + list(extra))
    kv = dict(tok.split("=", 1) for tok in out.split())
    return {"iops": float(kv["iops"]), "mibs": float(kv["mibs"]), "ios": int(kv["ios"]),
            "cpu": float(kv["cpu_us_per_io"]), "engine": kv["engine"]}


def fio_batch_opts(qd):
    """fio options of the batched pattern (at qd 1 they are fio's defaults)."""
    return ["--iodepth_batch_submit=%d" % qd, "--iodepth_batch_complete_min=1",
            "--iodepth_batch_complete_max=%d" % qd]


def run_fio(path, size, direct, rw, bs, qd, secs, batched=False, wrap=()):
    out = sh(list(wrap) + [
        "fio", "--name=blk", "--filename=" + path, "--rw=" + rw, "--bs=%d" % bs,
        "--iodepth=%d" % qd, "--ioengine=io_uring", "--direct=%d" % direct, "--time_based",
        "--runtime=%dms" % round(secs * 1000), "--size=%d" % size, "--norandommap",
        "--randrepeat=0", "--output-format=json"] + (fio_batch_opts(qd) if batched else []))
    job = json.loads(out[out.index("{"):])["jobs"][0]
    d = job["write" if "write" in rw else "read"]
    ios = d["total_ios"] or 1
    # usr_cpu/sys_cpu are percentages of the job's runtime (ms), from its getrusage().
    cpu_us = (job["usr_cpu"] + job["sys_cpu"]) / 100.0 * d["runtime"] * 1000.0
    return {"iops": d["iops"], "mibs": d["bw_bytes"] / 1048576.0, "cpu": cpu_us / ios,
            "ios": d["total_ios"], "engine": "fio"}


def syscall_counts(fn, how, names):
    """Run fn(wrap) under `strace -f -c` or `perf stat` (syscall tracepoints, all threads and
    children); return (result, {syscall: (calls, errors)}, all calls). perf counts no errors."""
    fd, out = tempfile.mkstemp(prefix="vireo-syscalls-", suffix=".txt")
    os.close(fd)
    calls = {}
    try:
        if how == "strace":
            res = fn(["strace", "-f", "-c", "-o", out])
            with open(out) as f:
                for line in f:
                    tok = line.split()
                    # "% time seconds usecs/call calls [errors] syscall"; skip header/total.
                    if len(tok) in (5, 6) and tok[0][0].isdigit() and tok[-1] != "total":
                        calls[tok[-1]] = (int(tok[3]), int(tok[4]) if len(tok) == 6 else 0)
            return res, calls, sum(v[0] for v in calls.values())
        ev = ["syscalls:sys_enter_" + n for n in names] + ["raw_syscalls:sys_enter"]
        res = fn(["perf", "stat", "-x", ",", "-o", out, "-e", ",".join(ev), "--"])
        with open(out) as f:
            for line in f:
                tok = line.strip().split(",")
                if len(tok) > 2 and tok[0].isdigit():
                    calls[tok[2].split(":")[-1].replace("sys_enter_", "")] = (int(tok[0]), 0)
        total = calls.pop("sys_enter", (0, 0))[0]
        return res, calls, total
    finally:
        os.unlink(out)


def supports_per_io(tool):
    r = subprocess.run([tool], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return "--per-io" in r.stderr


def vireo_args(pattern, path, per_io_ok):
    extra = VIREO_ARGS[(pattern, path)]
    if "--per-io" in extra and not per_io_ok:
        if path == "blk_poll":
            return None  # no equivalent in builds without --per-io
        extra = ["--loop", "1", "--kick-each", "1"]
    return extra


def direct_ok(path):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError:
        return False
    try:
        import mmap
        buf = mmap.mmap(-1, 4096)
        os.preadv(fd, [buf], 0)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def contenders(a, label, rw, bs, qd, tool, old, old_per_io, fio, paths):
    """(pattern, name, kind, fn(wrap)) in running order; kind is fio/uring/other."""
    raw, qcow, size, direct, cache = paths
    runs = []
    for pattern in (PER_IO, BATCHED):
        if a.pattern != "both" and PATTERN_OPT[a.pattern] != pattern:
            continue
        if fio and (pattern == PER_IO or qd > 1 or a.pattern == "batched"):
            name = "fio" if pattern == PER_IO or qd == 1 else "fio batch_submit=%d" % qd
            runs.append((pattern, name, "fio",
                         lambda w, b=(pattern == BATCHED): run_fio(raw, size, direct, rw, bs,
                                                                   qd, a.time, b, w)))
        comp = [MAIN_PATH[pattern]] + ([OTHER_PATH[pattern]] if a.loop else [])
        for who, t, ok in (("before", old, old_per_io), ("vireo", tool, True)):
            if not t:
                continue
            for path in comp:
                extra = vireo_args(pattern, path, ok)
                if extra is None:
                    continue
                runs.append((pattern, "%s io_uring %s" % (who, path), "uring",
                             lambda w, t=t, e=extra: run_vireo(t, raw, "raw", "io_uring", cache,
                                                               rw, bs, qd, a.time, e, w)))
        if pattern == BATCHED and not a.uring_only:
            runs.append((pattern, "vireo raw threads", "other", lambda w: run_vireo(
                tool, raw, "raw", "threads", cache, rw, bs, qd, a.time, (), w)))
            runs.append((pattern, "vireo qcow2 (image)", "other", lambda w: run_vireo(
                tool, qcow, "qcow2", "auto", cache, rw, bs, qd, a.time, (), w)))
    return runs


def fio_key(pattern, qd, keys):
    """The fio run a row of this pattern is compared with (qd 1: one run for both)."""
    for k in keys:
        if k[0] == pattern and k[1].startswith("fio"):
            return k
    for k in keys:
        if k[1].startswith("fio"):
            return k if qd == 1 else None
    return None


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else 0.0


SYSCALL_COLS = ("io_uring_enter", "epoll_wait", "poll")


def syscall_table(a, runs_of):
    if a.syscalls == "strace":
        print("System calls per completed I/O, one run each under `strace -f -c` (%g s;"
              " strace slows every call, so more completions are ready per wait than"
              " without it)." % a.time)
        print("(n) = how many of them failed (EINTR: the completion's task work interrupted"
              " the wait); rest = every other call of the run / I/Os")
    else:
        print("System calls per completed I/O, one run each under `perf stat -e"
              " syscalls:sys_enter_*` (%g s; counts only, the run is not slowed)." % a.time)
        print("rest = every other call of the run / I/Os")
    print("(process setup; for fio also its monitoring parent: pselect6, wait4,"
          " clock_nanosleep...)\n")
    hdr = "%-13s %3s  %-8s %-24s %8s %15s %15s %13s %6s" % (
        "workload", "qd", "pattern", "contender", "I/Os", "io_uring_enter", "epoll_wait",
        "poll", "rest")
    print(hdr)
    print("-" * len(hdr))
    for label, qd, runs in runs_of:
        for pattern, name, kind, fn in runs:
            if kind == "other":
                continue
            res, calls, total = syscall_counts(fn, a.syscalls, SYSCALL_COLS)
            ios = max(1, res["ios"])
            rest = total - sum(v[0] for k, v in calls.items() if k in SYSCALL_COLS)
            cols = []
            for k in SYSCALL_COLS:
                n, err = calls.get(k, (0, 0))
                cols.append("%.3f" % (n / ios) + (" (%.2f)" % (err / ios) if err else ""))
            print("%-13s %3d  %-8s %-24s %8d %15s %15s %13s %6.3f" % (
                label, qd, pattern, name, res["ios"], *cols, rest / ios))
            sys.stdout.flush()
        print()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--time", type=float, default=3.0, help="seconds per case (default 3)")
    ap.add_argument("--size", type=int, default=1024, help="file size in MiB (default 1024)")
    ap.add_argument("--dir", default="/var/tmp", help="where the test files go")
    ap.add_argument("--keep", action="store_true", help="keep the test files")
    ap.add_argument("--no-fio", action="store_true")
    ap.add_argument("--only", help="run only workloads whose label contains this (e.g. 4k)")
    ap.add_argument("--qd", type=int, help="run only this queue depth")
    ap.add_argument("--pattern", choices=("both", "per-io", "batched"), default="both",
                    help="submission patterns to run (default both)")
    ap.add_argument("--reps", type=int, default=1,
                    help="runs per contender, interleaved; the median is reported (default 1)")
    ap.add_argument("--loop", action="store_true",
                    help="add the other completion path in each pattern (batched: evloop,"
                         " per-I/O: blk_poll)")
    ap.add_argument("--compare", metavar="BUILD_DIR",
                    help="add the raw io_uring rows of another build's blk-bench ('before')")
    ap.add_argument("--uring-only", action="store_true", help="skip the threads and qcow2 rows")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="also print every round's IOPS (in running order) after each row")
    ap.add_argument("--syscalls", nargs="?", const="strace", choices=("strace", "perf"),
                    help="instead of the table: system calls per I/O of every io_uring row,"
                         " one run each under strace -f -c (default) or perf stat")
    a = ap.parse_args()

    tool = os.path.join(a.build, "bench", "blk-bench")
    if not os.access(tool, os.X_OK):
        sys.exit("block.py: %s not built" % tool)
    old = a.compare and os.path.join(a.compare, "bench", "blk-bench")
    if old and not os.access(old, os.X_OK):
        sys.exit("block.py: %s not built" % old)
    old_per_io = bool(old) and supports_per_io(old)
    fio = not a.no_fio and shutil.which("fio")
    if a.syscalls and not shutil.which(a.syscalls):
        sys.exit("block.py: --syscalls %s needs %s" % (a.syscalls, a.syscalls))
    size = a.size << 20
    raw = os.path.join(a.dir, "vireo-bench-%d.raw" % os.getpid())
    qcow = os.path.join(a.dir, "vireo-bench-%d.qcow2" % os.getpid())
    t_start = time.monotonic()
    try:
        with open(raw, "wb") as f:
            os.posix_fallocate(f.fileno(), 0, size)
        cache, direct = "none", 1
        if not direct_ok(raw):
            cache, direct = "writeback", 0
        sh([tool, "fill", "--path", raw, "--cache", cache])
        if not a.uring_only and not a.syscalls:
            sh([tool, "create-qcow2", "--path", qcow, "--size", str(size)])
            sh([tool, "fill", "--path", qcow, "--format", "qcow2", "--cache", cache])
        paths = (raw, qcow, size, direct, cache)
        runs_of = []
        for label, rw, bs, qd in WORKLOADS:
            if (a.only and a.only not in label) or (a.qd and a.qd != qd):
                continue
            runs_of.append((label, qd, contenders(a, label, rw, bs, qd, tool, old, old_per_io,
                                                  fio, paths)))

        print("Vireo block layer (in-process, bench/blk_bench.c) vs host fio %s, same file"
              % (sh(["fio", "--version"]).strip() if fio else "(not run)"))
        print("file %s, %d MiB on %s; %s; %g s per case%s; 1 job, no polling, no fixed buffers"
              % (a.dir, a.size, sh(["df", "--output=fstype", a.dir]).split()[-1],
                 "O_DIRECT (cache=none)" if direct else
                 "BUFFERED: O_DIRECT refused by this filesystem, numbers include the page cache",
                 a.time, ", median of %d interleaved runs" % a.reps if a.reps > 1 else ""))
        if old:
            print("before = %s%s" % (old, "" if old_per_io else
                                     " (no --per-io: per-I/O evloop row uses --kick-each 1)"))
        print("patterns: per-I/O = fio defaults | blk-bench --per-io 1 --loop 1 (one"
              " io_uring_enter per request);")
        print("          batched = fio --iodepth_batch_submit=QD --iodepth_batch_complete_min=1"
              " --iodepth_batch_complete_max=QD | blk-bench default (blk_poll)")
        if a.syscalls:
            print()
            syscall_table(a, runs_of)
            print("total %.0f s" % (time.monotonic() - t_start))
            return
        print("NOTE: this host is a nested VM: absolute figures are those of its virtual disk;"
              " compare the columns.")
        print("CPU us/IO = (user+sys of the whole process, all threads) / completed I/Os"
              " (getrusage; fio: its usr_cpu+sys_cpu)")
        print("x fio = IOPS / IOPS of fio in the same pattern%s\n" % (
            " (ratio of the medians [median of the per-round ratios; the target lines use"
            " it])" if a.reps > 1 else ""))
        hdr = "%-13s %3s  %-8s %-24s %9s %9s %10s %13s  %s" % (
            "workload", "qd", "pattern", "contender", "IOPS", "MiB/s", "CPU us/IO", "x fio",
            "qcow2 vs raw")
        print(hdr)
        print("-" * len(hdr))
        verdicts = {PER_IO: [], BATCHED: []}
        for label, qd, runs in runs_of:
            # Interleave the repetitions so a slow patch of the host hits every contender.
            keys = [(p, n) for p, n, _, _ in runs]
            got = {k: [] for k in keys}
            for _ in range(max(1, a.reps)):
                for p, n, _, fn in runs:
                    got[(p, n)].append(fn(()))
            med = {k: sorted(v, key=lambda r: r["iops"])[len(v) // 2] for k, v in got.items()}
            for pattern in (PER_IO, BATCHED):
                fk = fio_key(pattern, qd, keys)
                rows = [k for k in keys if k[0] == pattern]
                if not rows:
                    continue
                if fk and fk[0] != pattern:
                    rows.insert(0, fk)  # qd 1: the same fio run, shown in both patterns
                for k in rows:
                    r = med[k]
                    name = k[1] if k[0] == pattern else "fio (as per-I/O)"
                    ratio = ""
                    if fk and k != fk and med[fk]["iops"]:
                        # Median of the per-round ratios: each round ran every contender back
                        # to back, so it cancels a busy host's drift better than the medians.
                        rr = median([v["iops"] / f["iops"] for v, f in zip(got[k], got[fk])
                                     if f["iops"]])
                        ratio = "%.2f" % (r["iops"] / med[fk]["iops"])
                        if a.reps > 1:
                            ratio += " [%.2f]" % rr
                        if k[1] == "vireo io_uring " + MAIN_PATH[pattern]:
                            verdicts[pattern].append((label, qd, rr))
                    extra = ""
                    if k[1].startswith("vireo qcow2") and (BATCHED, "vireo raw threads") in med:
                        extra = "%.2fx io_uring, %.2fx threads" % (
                            r["iops"] / med[(BATCHED, "vireo io_uring blk_poll")]["iops"],
                            r["iops"] / med[(BATCHED, "vireo raw threads")]["iops"])
                    if a.verbose:
                        extra += "  rounds: " + " ".join("%.0f" % v["iops"] for v in got[k])
                    print("%-13s %3d  %-8s %-24s %9.0f %9.1f %10.2f %13s  %s" % (
                        label, qd, pattern, name, r["iops"], r["mibs"], r["cpu"], ratio, extra))
                    sys.stdout.flush()
            print()
        for pattern, how in ((PER_IO, "fio defaults vs vireo io_uring evloop --per-io"),
                             (BATCHED, "fio batch_submit=QD vs vireo io_uring blk_poll")):
            v = verdicts[pattern]
            if not v:
                continue
            ok = [x for x in v if x[2] >= TARGET]
            print("target vireo >= %.1fx fio, %s (%s): met in %d/%d cases%s" % (
                TARGET, pattern, how, len(ok), len(v), "" if len(ok) == len(v) else
                "; missed: " + ", ".join("%s qd%d (%.2fx)" % x for x in v if x[2] < TARGET)))
        print("total %.0f s" % (time.monotonic() - t_start))
    finally:
        if not a.keep:
            for p in (raw, qcow):
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass


if __name__ == "__main__":
    main()
