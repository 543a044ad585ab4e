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


def run_vireo(tool, path, fmt, engine, cache, rw, bs, qd, secs):
    out = sh([tool, "run", "--path", path, "--format", fmt, "--engine", engine, "--cache", cache,
              "--rw", rw, "--bs", str(bs), "--qd", str(qd), "--time", str(secs)])
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
    a = ap.parse_args()

    tool = os.path.join(a.build, "bench", "blk-bench")
    if not os.access(tool, os.X_OK):
        sys.exit("block.py: %s not built" % tool)
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
        print("file %s, %d MiB on %s; %s; %g s per case; 1 job, no polling, no fixed buffers"
              % (a.dir, a.size, sh(["df", "--output=fstype", a.dir]).split()[-1],
                 "O_DIRECT (cache=none)" if direct else
                 "BUFFERED: O_DIRECT refused by this filesystem, numbers include the page cache",
                 a.time))
        print("NOTE: this host is a nested VM: absolute figures are those of its virtual disk;"
              " compare the columns.")
        print("CPU us/IO = (user+sys of the whole process, all threads) / completed I/Os"
              " (getrusage; fio: its usr_cpu+sys_cpu)\n")
        hdr = "%-13s %3s  %-22s %9s %9s %10s %8s  %s" % (
            "workload", "qd", "contender", "IOPS", "MiB/s", "CPU us/IO", "x fio", "qcow2 vs raw")
        print(hdr)
        print("-" * len(hdr))
        verdicts = []
        for label, rw, bs, qd in WORKLOADS:
            if a.only and a.only not in label:
                continue
            res = []
            if fio:
                res.append(("fio io_uring", run_fio(raw, size, direct, rw, bs, qd, a.time)))
            res.append(("vireo raw io_uring",
                        run_vireo(tool, raw, "raw", "io_uring", cache, rw, bs, qd, a.time)))
            res.append(("vireo raw threads",
                        run_vireo(tool, raw, "raw", "threads", cache, rw, bs, qd, a.time)))
            res.append(("vireo qcow2 (image)",
                        run_vireo(tool, qcow, "qcow2", "auto", cache, rw, bs, qd, a.time)))
            base = res[0][1]["iops"] if fio else None
            by = dict(res)
            for name, r in res:
                ratio = "" if not base or name.startswith("fio") else "%.2f" % (r["iops"] / base)
                extra = ""
                if name.startswith("vireo qcow2"):
                    extra = "%.2fx io_uring, %.2fx threads" % (
                        r["iops"] / by["vireo raw io_uring"]["iops"],
                        r["iops"] / by["vireo raw threads"]["iops"])
                print("%-13s %3d  %-22s %9.0f %9.1f %10.2f %8s  %s" % (
                    label, qd, name, r["iops"], r["mibs"], r["cpu"], ratio, extra))
                sys.stdout.flush()
            if base:
                verdicts.append((label, qd, by["vireo raw io_uring"]["iops"] / base))
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
