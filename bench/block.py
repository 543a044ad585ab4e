#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Vireo's block layer against host fio on the same file (bench/block.sh).

For each workload (4 KiB random read/write, 1 MiB sequential read/write, each at queue depth
1 and 32) it runs, back to back on one file: fio (io_uring engine), blk-bench on the raw file
with the io_uring engine and with the thread-pool engine, and blk-bench on a qcow2 image of the
same size (image engine). All use O_DIRECT (cache=none) unless the filesystem refuses it.
Files are written once before the runs so reads hit the device, not unwritten extents.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

WORKLOADS = [  # (label, fio rw / blk-bench rw, block size, queue depth)
    ("4k randread", "randread", 4096, 1), ("4k randread", "randread", 4096, 32),
    ("4k randwrite", "randwrite", 4096, 1), ("4k randwrite", "randwrite", 4096, 32),
    ("1M read", "read", 1 << 20, 1), ("1M read", "read", 1 << 20, 32),
    ("1M write", "write", 1 << 20, 1), ("1M write", "write", 1 << 20, 32),
]
TARGET = 0.9


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, **kw).stdout


def run_vireo(tool, path, fmt, engine, cache, rw, bs, qd, secs, loop=False):
    out = sh([tool, "run", "--path", path, "--format", fmt, "--engine", engine, "--cache", cache,
              "--rw", rw, "--bs", str(bs), "--qd", str(qd), "--time", str(secs)] +
             (["--loop", "1"] if loop else []))
    kv = dict(tok.split("=", 1) for tok in out.split())
    return {"iops": float(kv["iops"]), "mibs": float(kv["mibs"]),
            "cpu": float(kv["cpu_us_per_io"]), "engine": kv["engine"]}


def run_fio(path, size, direct, rw, bs, qd, secs):
    out = sh(["fio", "--name=blk", "--filename=" + path, "--rw=" + rw, "--bs=%d" % bs,
              "--iodepth=%d" % qd, "--ioengine=io_uring", "--direct=%d" % direct,
              "--time_based", "--runtime=%g" % secs, "--size=%d" % size, "--norandommap",
              "--randrepeat=0", "--output-format=json"])
    job = json.loads(out[out.index("{"):])["jobs"][0]
    d = job["write" if "write" in rw else "read"]
    ios = d["total_ios"] or 1
    # usr_cpu/sys_cpu are percentages of the job's runtime (ms), from its getrusage().
    cpu_us = (job["usr_cpu"] + job["sys_cpu"]) / 100.0 * d["runtime"] * 1000.0
    return {"iops": d["iops"], "mibs": d["bw_bytes"] / 1048576.0, "cpu": cpu_us / ios,
            "engine": "fio"}


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


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--time", type=float, default=4.0, help="seconds per case (default 4)")
    ap.add_argument("--size", type=int, default=1024, help="file size in MiB (default 1024)")
    ap.add_argument("--dir", default="/var/tmp", help="where the test files go")
    ap.add_argument("--keep", action="store_true", help="keep the test files")
    ap.add_argument("--no-fio", action="store_true")
    ap.add_argument("--only", help="run only workloads whose label contains this (e.g. 4k)")
    ap.add_argument("--qd", type=int, help="run only this queue depth")
    ap.add_argument("--reps", type=int, default=1,
                    help="runs per contender, interleaved; the median is reported (default 1)")
    ap.add_argument("--loop", action="store_true",
                    help="add raw io_uring completing through an evloop (the VMM's I/O thread path)")
    ap.add_argument("--compare", metavar="BUILD_DIR",
                    help="add the raw io_uring rows of another build's blk-bench ('before')")
    ap.add_argument("--uring-only", action="store_true", help="skip the threads and qcow2 rows")
    a = ap.parse_args()

    tool = os.path.join(a.build, "bench", "blk-bench")
    if not os.access(tool, os.X_OK):
        sys.exit("block.py: %s not built" % tool)
    old = a.compare and os.path.join(a.compare, "bench", "blk-bench")
    if old and not os.access(old, os.X_OK):
        sys.exit("block.py: %s not built" % old)
    fio = not a.no_fio and shutil.which("fio")
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
        sh([tool, "create-qcow2", "--path", qcow, "--size", str(size)])
        sh([tool, "fill", "--path", qcow, "--format", "qcow2", "--cache", cache])

        print("Vireo block layer (in-process, bench/blk_bench.c) vs host fio %s, same file"
              % (sh(["fio", "--version"]).strip() if fio else "(not run)"))
        print("file %s, %d MiB on %s; %s; %g s per case%s; 1 job, no polling, no fixed buffers"
              % (a.dir, a.size, sh(["df", "--output=fstype", a.dir]).split()[-1],
                 "O_DIRECT (cache=none)" if direct else
                 "BUFFERED: O_DIRECT refused by this filesystem, numbers include the page cache",
                 a.time, ", median of %d interleaved runs" % a.reps if a.reps > 1 else ""))
        if old:
            print("before = %s" % old)
        print("NOTE: this host is a nested VM: absolute figures are those of its virtual disk;"
              " compare the columns.")
        print("CPU us/IO = (user+sys of the whole process, all threads) / completed I/Os"
              " (getrusage; fio: its usr_cpu+sys_cpu)\n")
        if a.reps > 1:
            print("x fio: ratio of the medians [median of the per-round ratios; the target"
                  " line uses it]\n")
        hdr = "%-13s %3s  %-22s %9s %9s %10s %13s  %s" % (
            "workload", "qd", "contender", "IOPS", "MiB/s", "CPU us/IO", "x fio", "qcow2 vs raw")
        print(hdr)
        print("-" * len(hdr))
        verdicts = []
        for label, rw, bs, qd in WORKLOADS:
            if (a.only and a.only not in label) or (a.qd and a.qd != qd):
                continue
            runs = []  # (name, callable)
            if fio:
                runs.append(("fio io_uring",
                             lambda: run_fio(raw, size, direct, rw, bs, qd, a.time)))
            if old:
                runs.append(("before raw io_uring", lambda: run_vireo(
                    old, raw, "raw", "io_uring", cache, rw, bs, qd, a.time)))
                if a.loop:
                    runs.append(("before io_uring loop", lambda: run_vireo(
                        old, raw, "raw", "io_uring", cache, rw, bs, qd, a.time, True)))
            runs.append(("vireo raw io_uring", lambda: run_vireo(
                tool, raw, "raw", "io_uring", cache, rw, bs, qd, a.time)))
            if a.loop:
                runs.append(("vireo io_uring loop", lambda: run_vireo(
                    tool, raw, "raw", "io_uring", cache, rw, bs, qd, a.time, True)))
            if not a.uring_only:
                runs.append(("vireo raw threads", lambda: run_vireo(
                    tool, raw, "raw", "threads", cache, rw, bs, qd, a.time)))
                runs.append(("vireo qcow2 (image)", lambda: run_vireo(
                    tool, qcow, "qcow2", "auto", cache, rw, bs, qd, a.time)))
            # Interleave the repetitions so a slow patch of the host hits every contender.
            got = {name: [] for name, _ in runs}
            for _ in range(max(1, a.reps)):
                for name, fn in runs:
                    got[name].append(fn())
            res = []
            for name, _ in runs:
                rs = sorted(got[name], key=lambda r: r["iops"])
                res.append((name, rs[len(rs) // 2]))
            base = res[0][1]["iops"] if fio else None
            by = dict(res)
            # Median of the per-round ratios: each round ran every contender back to back,
            # so this cancels the drift of a busy host better than the ratio of medians.
            rr = {}
            if fio:
                for name, _ in runs:
                    rs = sorted(v["iops"] / f["iops"] for v, f in
                                zip(got[name], got["fio io_uring"]) if f["iops"])
                    rr[name] = rs[len(rs) // 2] if rs else 0.0
            for name, r in res:
                ratio = "" if not base or name.startswith("fio") else "%.2f" % (r["iops"] / base)
                if ratio and a.reps > 1:
                    ratio += " [%.2f]" % rr[name]
                extra = ""
                if name.startswith("vireo qcow2") and "vireo raw threads" in by:
                    extra = "%.2fx io_uring, %.2fx threads" % (
                        r["iops"] / by["vireo raw io_uring"]["iops"],
                        r["iops"] / by["vireo raw threads"]["iops"])
                print("%-13s %3d  %-22s %9.0f %9.1f %10.2f %13s  %s" % (
                    label, qd, name, r["iops"], r["mibs"], r["cpu"], ratio, extra))
                sys.stdout.flush()
            if base:
                verdicts.append((label, qd, rr["vireo raw io_uring"] if a.reps > 1 else
                                 by["vireo raw io_uring"]["iops"] / base))
            print()
        if verdicts:
            ok = [v for v in verdicts if v[2] >= TARGET]
            print("target vireo raw io_uring >= %.1fx fio: met in %d/%d cases%s" % (
                TARGET, len(ok), len(verdicts), "" if len(ok) == len(verdicts) else
                "; missed: " + ", ".join("%s qd%d (%.2fx)" % v for v in verdicts
                                         if v[2] < TARGET)))
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
