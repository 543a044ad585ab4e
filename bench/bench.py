#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Vireo benchmarks, side by side with QEMU microvm and a raw-KVM floor (bench/run.sh).

Part 1+2 (default): start -> run -> exit of bench-guest (bench/guest.S, a PVH ELF that prints
one line on COM1 and asks for a reset) under
  vireo      vireo run --kernel G --memory 256M --on-reboot exit --no-rng
  qemu       qemu-system-x86_64 -M microvm -enable-kvm -cpu host -m 256M -kernel G ...
  kvm-floor  bench/kvm-floor G 256 (open /dev/kvm, VM, vCPU, 256 MiB slot, run, exit)
Runs are interleaved (one of each per round, rotating the order) after warm-up runs; a run
counts only if it exited 0 and printed the guest's line. For each side: wall time (fork to
reaped), CPU time (user+sys from wait4's rusage) and peak RSS (ru_maxrss, KiB).

Part 3 (--linux): Linux boot of the guest kit's minimal kernel + initramfs to a serial console
marker ("Run /init as init process" by default), Vireo with --cpu-template baseline against
QEMU microvm with -cpu host minus the same features; both are killed at the marker.

Only the Python standard library is used. Nothing is written outside a temporary directory.
"""
import argparse
import os
import re
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

GUEST_LINE = b"VIREO-BENCH: guest ran"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# docs/cpu-templates.md, "baseline hides", as QEMU -cpu feature names. Names this QEMU does not
# know are left out (and listed); OSXSAVE/OSPKE are not settable (they follow CR4).
BASELINE_HIDDEN_QEMU = (
    # leaf 1 ECX
    "pclmulqdq fma cx16 pcid movbe popcnt aes xsave avx f16c rdrand "
    # leaf 7.0 EBX
    "fsgsbase bmi1 hle avx2 smep bmi2 invpcid rtm mpx avx512f avx512dq rdseed adx smap "
    "avx512ifma clflushopt clwb intel-pt avx512pf avx512er avx512cd sha-ni avx512bw avx512vl "
    # leaf 7.0 ECX
    "avx512vbmi umip pku waitpkg avx512vbmi2 cet-ss gfni vaes vpclmulqdq avx512vnni "
    "avx512bitalg avx512-vpopcntdq la57 rdpid kl movdiri movdir64b enqcmd "
    # leaf 7.0 EDX
    "avx512-4vnniw avx512-4fmaps fsrm avx512-vp2intersect serialize tsx-ldtrk amx-bf16 "
    "avx512-fp16 amx-tile amx-int8 "
    # leaf 7.1 EAX (all)
    "avx-vnni avx512-bf16 fzrm fsrs fsrc "
    # 0x80000001 ECX / EDX
    "abm sse4a misalignsse xop fma4 tbm rdtscp "
    # leaves 0xD (XSAVE state), 0x12 (SGX) removed
    "xsaveopt xsavec xgetbv1 xsaves sgx"
).split()

# Serial console markers of a Linux boot, in the order they appear. Printk output before the
# console is registered is replayed in one burst, so only the later ones measure progress.
LINUX_MARKERS = [
    ("console up", "printk: console [ttyS0] enabled"),
    ("clocksource", "clocksource: Switched to clocksource"),
    ("free initmem", "Freeing unused kernel image"),
    ("run /init", "Run /init as init process"),
]
PANIC_MARKER = "Kernel panic"


def die(msg):
    print("bench: " + msg, file=sys.stderr)
    sys.exit(1)


def fmt_cmd(cmd):
    return " ".join(shlex.quote(c) for c in cmd)


class Run:
    """One finished process: wall/cpu in seconds, rss in KiB, ok + why, output bytes."""

    def __init__(self, wall, user, sys_, rss, status, out, err):
        self.wall, self.user, self.sys, self.rss = wall, user, sys_, rss
        self.cpu = user + sys_
        self.status, self.out, self.err = status, out, err
        self.ok, self.why = True, ""


class _Alarm(Exception):
    pass


def run_to_exit(cmd, timeout, workdir):
    """Runs cmd with stdin from /dev/null and output to files; reaps it with wait4."""
    out_path = os.path.join(workdir, "out")
    err_path = os.path.join(workdir, "err")
    with open(out_path, "wb") as out, open(err_path, "wb") as err, \
            open(os.devnull, "rb") as devnull:
        pid_box = []

        def on_alarm(_sig, _frm):
            if pid_box:
                os.kill(pid_box[0], signal.SIGKILL)

        old = signal.signal(signal.SIGALRM, on_alarm)
        try:
            t0 = time.perf_counter()
            p = subprocess.Popen(cmd, stdin=devnull, stdout=out, stderr=err, close_fds=True)
            pid_box.append(p.pid)
            signal.setitimer(signal.ITIMER_REAL, timeout)
            _, status, ru = os.wait4(p.pid, 0)
            t1 = time.perf_counter()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        p.returncode = os.waitstatus_to_exitcode(status)
    with open(out_path, "rb") as f:
        o = f.read()
    with open(err_path, "rb") as f:
        e = f.read()
    r = Run(t1 - t0, ru.ru_utime, ru.ru_stime, ru.ru_maxrss, p.returncode, o, e)
    if p.returncode != 0:
        r.ok = False
        r.why = ("killed after %gs timeout" % timeout if p.returncode == -signal.SIGKILL
                 else "exit status %d" % p.returncode)
    elif GUEST_LINE not in o:
        r.ok = False
        r.why = "guest line missing from stdout"
    if not r.ok:
        tail = (e or o).decode(errors="replace").strip().splitlines()[-3:]
        if tail:
            r.why += ": " + " | ".join(tail)
    return r


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def ratio(a, b):
    return a / b if b else float("nan")


def verdict(ok):
    return "PASS" if ok else "FAIL"


def find_build_file(build, rel):
    p = os.path.join(build, rel)
    if not os.access(p, os.X_OK):
        die("%s not found or not executable (build with: ninja -C %s)" % (p, build))
    return os.path.abspath(p)


def qemu_flags(qemu):
    """The CPUID flag names this QEMU recognises (from -cpu help)."""
    try:
        txt = subprocess.run([qemu, "-cpu", "help"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return set()
    _, _, tail = txt.partition("Recognized CPUID flags:")
    return set(tail.split())


# ---- part 1 + 2 -------------------------------------------------------------------------------

def bench_start_exit(a, vireo, floor, guest):
    contenders = [
        ("vireo", [vireo, "run", "--kernel", guest, "--memory", "256M", "--on-reboot", "exit",
                   "--no-rng"]),
        ("qemu", [a.qemu, "-M", "microvm", "-enable-kvm", "-cpu", "host", "-m", "256M",
                  "-kernel", guest, "-nographic", "-no-reboot", "-nodefaults",
                  "-serial", "stdio"]),
        ("kvm-floor", [floor, guest, "256"]),
    ]
    print("== 1+2. start -> run -> exit of a tiny PVH guest (256 MiB, touches ~8 KiB) ==")
    print("guest: %s (prints %r on COM1, then resets: i8042 0xFE, else microvm GED)"
          % (guest, GUEST_LINE.decode()))
    print("commands (stdin </dev/null, stdout+stderr to files):")
    for name, cmd in contenders:
        print("  %-9s %s" % (name, fmt_cmd(cmd)))
    print("%d warm-up run(s) each, then %d interleaved rounds (order rotates each round)"
          % (a.warmup, a.runs))
    sys.stdout.flush()

    res = {name: [] for name, _ in contenders}
    bad = {name: [] for name, _ in contenders}
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vireo-bench-") as wd:
        for i in range(a.warmup + a.runs):
            k = i % len(contenders)
            for name, cmd in contenders[k:] + contenders[:k]:
                r = run_to_exit(cmd, a.timeout, wd)
                if i < a.warmup:
                    if not r.ok:
                        print("  warm-up %s: INVALID (%s)" % (name, r.why))
                    continue
                (res if r.ok else bad)[name].append(r)
    elapsed = time.monotonic() - t_start

    print()
    hdr = "%-9s %7s  %-26s  %-21s  %-17s" % ("", "valid", "wall ms med (min..max)",
                                               "CPU ms med (usr+sys)", "peak RSS KiB med")
    print(hdr)
    print("-" * len(hdr))
    stats = {}
    for name, _ in contenders:
        rs = res[name]
        s = {
            "n": len(rs),
            "wall": med([r.wall for r in rs]) * 1e3,
            "wmin": min((r.wall for r in rs), default=float("nan")) * 1e3,
            "wmax": max((r.wall for r in rs), default=float("nan")) * 1e3,
            "cpu": med([r.cpu for r in rs]) * 1e3,
            "usr": med([r.user for r in rs]) * 1e3,
            "sys": med([r.sys for r in rs]) * 1e3,
            "rss": med([r.rss for r in rs]),
            "rssmax": max((r.rss for r in rs), default=float("nan")),
        }
        stats[name] = s
        print("%-9s %3d/%-3d  %7.1f (%6.1f..%7.1f)  %6.1f (%5.1f+%5.1f)  %7.0f (max %.0f)"
              % (name, s["n"], a.runs, s["wall"], s["wmin"], s["wmax"], s["cpu"], s["usr"],
                 s["sys"], s["rss"], s["rssmax"]))
    for name, _ in contenders:
        for r in bad[name][:3]:
            print("  INVALID %s run: %s" % (name, r.why))
        if len(bad[name]) > 3:
            print("  ... and %d more invalid %s runs" % (len(bad[name]) - 3, name))

    v, q, f = stats["vireo"], stats["qemu"], stats["kvm-floor"]
    valid = v["n"] > 0 and q["n"] > 0
    print()
    print("ratios (medians):")
    wr = ratio(v["wall"], q["wall"])
    print("  wall  vireo/qemu  %.3fx   [target <= 0.5x: %s]"
          % (wr, verdict(valid and wr <= 0.5) if valid else "INVALID"))
    print("  wall  vireo/floor %.2fx   (vireo - floor = %.1f ms; qemu/floor %.2fx)"
          % (ratio(v["wall"], f["wall"]), v["wall"] - f["wall"], ratio(q["wall"], f["wall"])))
    print("  CPU   vireo/qemu  %.3fx   (vireo/floor %.2fx)"
          % (ratio(v["cpu"], q["cpu"]), ratio(v["cpu"], f["cpu"])))
    print("  RSS   vireo/qemu  %.3fx   (vireo/floor %.2fx)"
          % (ratio(v["rss"], q["rss"]), ratio(v["rss"], f["rss"])))
    print()
    print("== 2. peak RSS of vireo, 256 MiB guest touching little: %.0f KiB median, %.0f KiB max"
          " [target <= 4096 KiB: %s] ==" % (v["rss"], v["rssmax"],
                                            verdict(v["rssmax"] <= 4096) if v["n"] else "INVALID"))
    print("(part 1+2 took %.1f s)" % elapsed)
    return valid


# ---- part 3 -----------------------------------------------------------------------------------

def find_kit(a):
    """Returns (kernel, initrd, how) or (None, None, reason)."""
    elf = bz = initrd = None
    how = "command line"
    if not a.kernel:
        kit = os.path.join(REPO, "tools", "guest-kit", "build.sh")
        if not os.access(kit, os.X_OK):
            return None, None, "%s not found" % kit
        try:
            txt = subprocess.run([kit, "--print", "--no-cloud"], capture_output=True, text=True,
                                 timeout=120).stdout
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, None, "%s --print failed: %s" % (kit, e)
        kv = dict(line.split("=", 1) for line in txt.splitlines() if "=" in line)
        elf, bz, initrd = (kv.get("KERNEL_MINIMAL_ELF"), kv.get("KERNEL_MINIMAL_BZ"),
                           kv.get("INITRD"))
        how = "tools/guest-kit/build.sh --print"
    if a.kernel:
        kernel = a.kernel
    elif a.linux_image == "bzimage":
        kernel = bz
    else:
        kernel = elf
    if a.initrd is not None:
        initrd = a.initrd or None
    if not kernel or not os.path.isfile(kernel):
        return None, None, "kernel %s not built" % (kernel or "(none)")
    if initrd and not os.path.isfile(initrd):
        return None, None, "initramfs %s not built" % initrd
    return kernel, initrd, how


def run_to_marker(cmd, final, timeout):
    """Runs cmd, timestamps the first occurrence of each marker in its stdout, SIGKILLs it at
    the final marker (or a panic, or the timeout). Returns (times, end, run)."""
    markers = [m for _, m in LINUX_MARKERS if m != final] + [final, PANIC_MARKER]
    seen = {}
    with tempfile.TemporaryFile() as err, open(os.devnull, "rb") as devnull:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=devnull, stdout=subprocess.PIPE, stderr=err,
                             close_fds=True)
        fd = p.stdout.fileno()
        buf = b""
        end = "timeout"
        first = None
        while True:
            left = timeout - (time.perf_counter() - t0)
            if left <= 0:
                break
            rd, _, _ = select.select([fd], [], [], left)
            if not rd:
                continue
            chunk = os.read(fd, 65536)
            now = time.perf_counter() - t0
            if not chunk:
                end = "exited"
                break
            if first is None:
                first = now
            look = buf[-256:] + chunk
            buf += chunk
            for m in markers:
                if m not in seen and m.encode() in look:
                    seen[m] = now
            if final in seen:
                end = "marker"
                break
            if PANIC_MARKER in seen:
                end = "panic"
                break
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        _, status, ru = os.wait4(p.pid, 0)
        t1 = time.perf_counter()
        p.returncode = os.waitstatus_to_exitcode(status)
        p.stdout.close()
        err.seek(0)
        e = err.read()
    if first is not None:
        seen["first output"] = first
    r = Run(t1 - t0, ru.ru_utime, ru.ru_stime, ru.ru_maxrss, p.returncode, buf, e)
    return seen, end, r


def bench_linux(a, vireo):
    print("== 3. Linux boot to a serial marker (minimal 6.1 kernel, baseline CPU features) ==")
    kernel, initrd, how = find_kit(a)
    if not kernel:
        print("skipped: guest kit not built (%s); build it with tools/guest-kit/build.sh"
              " or pass --kernel/--initrd" % how)
        return True
    known = qemu_flags(a.qemu)
    hide = [f for f in BASELINE_HIDDEN_QEMU if f in known]
    unknown = [f for f in BASELINE_HIDDEN_QEMU if f not in known]
    vcmd = [vireo, "run", "--kernel", kernel] + (["--initrd", initrd] if initrd else []) + [
        "--cmdline", a.cmdline, "--cpus", "1", "--memory", "256M", "--cpu-template", "baseline",
        "--on-reboot", "exit", "--no-rng"]
    qcmd = [a.qemu, "-M", "microvm", "-enable-kvm",
            "-cpu", "host" + "".join(",-" + f for f in hide), "-smp", "1", "-m", "256M",
            "-kernel", kernel] + (["-initrd", initrd] if initrd else []) + [
        "-append", a.cmdline, "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio"]
    contenders = [("vireo", vcmd), ("qemu", qcmd)]
    print("artifacts from %s" % how)
    print("final marker: %r (each side is SIGKILLed there, on a panic, or after %gs)"
          % (a.marker, a.linux_timeout))
    if unknown:
        print("(baseline features this QEMU cannot name, left out: %s)" % " ".join(unknown))
    print("commands:")
    for name, cmd in contenders:
        print("  %-5s %s" % (name, fmt_cmd(cmd)))
    print("%d run(s) each, interleaved (--linux-runs N; a boot here takes about a minute)"
          % a.linux_runs)
    sys.stdout.flush()

    order = ["first output"] + [m for _, m in LINUX_MARKERS if m != a.marker] + [a.marker]
    label = {m: lbl for lbl, m in LINUX_MARKERS}
    label["first output"] = "first output"
    label.setdefault(a.marker, a.marker)
    results = {name: [] for name, _ in contenders}
    for i in range(a.linux_runs):
        k = i % len(contenders)
        for name, cmd in contenders[k:] + contenders[:k]:
            seen, end, r = run_to_marker(cmd, a.marker, a.linux_timeout)
            results[name].append((seen, end, r))
            last = max(seen, key=seen.get) if seen else "nothing"
            print("  run %d %-5s: ended by %-7s after %6.1f s; furthest marker %r at %.1f s"
                  % (i + 1, name, end, r.wall, label.get(last, last), seen.get(last, 0.0)))
            if end in ("exited", "panic", "timeout") and r.err:
                tail = r.err.decode(errors="replace").strip().splitlines()[-2:]
                print("          stderr: %s" % " | ".join(tail))
            sys.stdout.flush()

    # Markers every run of both sides reached; the furthest such one is the headline.
    reached = [m for m in order
               if all(m in s for name in results for s, _, _ in results[name])]
    print()
    print("%-22s %12s %12s %9s" % ("seconds to marker", "vireo med", "qemu med", "v/q"))
    for m in order:
        vs = [s[m] for s, _, _ in results["vireo"] if m in s]
        qs = [s[m] for s, _, _ in results["qemu"] if m in s]
        print("%-22s %7.2f (%d/%d) %6.2f (%d/%d) %8.3fx%s"
              % (label[m], med(vs), len(vs), a.linux_runs, med(qs), len(qs), a.linux_runs,
                 ratio(med(vs), med(qs)), "" if m in reached else "  (not reached by all)"))
    for name in ("vireo", "qemu"):
        rs = [r for _, _, r in results[name]]
        print("%-5s until killed: CPU %.2f s (usr %.2f + sys %.2f), peak RSS %.0f KiB (medians)"
              % (name, med([r.cpu for r in rs]), med([r.user for r in rs]),
                 med([r.sys for r in rs]), med([r.rss for r in rs])))
    if reached:
        m = reached[-1]
        vs = med([s[m] for s, _, _ in results["vireo"]])
        qs = med([s[m] for s, _, _ in results["qemu"]])
        print("furthest common marker: %r: vireo %.2f s, qemu %.2f s, vireo/qemu %.3fx"
              % (label[m], vs, qs, ratio(vs, qs)))
    else:
        print("no marker was reached by every run of both sides")
    return True


def main():
    ap = argparse.ArgumentParser(description="Vireo vs QEMU microvm vs raw KVM benchmarks.")
    ap.add_argument("--build", default="build", help="meson build dir (default: build)")
    ap.add_argument("--runs", type=int, default=15, help="measured runs each (default 15)")
    ap.add_argument("--warmup", type=int, default=2, help="warm-up runs each (default 2)")
    ap.add_argument("--timeout", type=float, default=10.0, help="per-run timeout, s (10)")
    ap.add_argument("--qemu", default="qemu-system-x86_64", help="QEMU binary")
    ap.add_argument("--skip-start", action="store_true", help="skip parts 1+2")
    ap.add_argument("--linux", action="store_true", help="also run part 3 (slow)")
    ap.add_argument("--linux-runs", type=int, default=3, help="Linux boots each (default 3)")
    ap.add_argument("--linux-timeout", type=float, default=240.0,
                    help="give up on one Linux boot after this many seconds (240)")
    ap.add_argument("--linux-image", choices=["elf", "bzimage"], default="elf",
                    help="kit kernel to boot on both sides: PVH vmlinux (default) or bzImage")
    ap.add_argument("--kernel", help="Linux kernel instead of the guest kit's")
    ap.add_argument("--initrd", help="initramfs instead of the guest kit's ('' for none)")
    ap.add_argument("--cmdline", default="console=ttyS0 reboot=k panic=1",
                    help="Linux command line, both sides")
    ap.add_argument("--marker", default="Run /init as init process",
                    help="serial console text that ends a Linux run")
    a = ap.parse_args()
    if a.runs < 1 or a.warmup < 0 or a.linux_runs < 1:
        die("--runs and --linux-runs must be >= 1, --warmup >= 0")

    vireo = find_build_file(a.build, "src/cli/vireo")
    floor = find_build_file(a.build, "bench/kvm-floor")
    guest = os.path.abspath(os.path.join(a.build, "bench", "bench-guest"))
    if not os.path.isfile(guest):
        die("%s not found (ninja -C %s bench/bench-guest)" % (guest, a.build))
    if not shutil.which(a.qemu):
        die("%s not found (apt-get install qemu-system-x86)" % a.qemu)
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        die("/dev/kvm is not accessible")

    qv = subprocess.run([a.qemu, "--version"], capture_output=True, text=True).stdout
    print("Vireo bench: %s | %s | %s | %d CPUs, load %.2f" % (
        vireo, qv.splitlines()[0] if qv else a.qemu, os.uname().release,
        os.cpu_count() or 0, os.getloadavg()[0]))
    print("(nested KVM host: absolute guest timings mean little; compare the sides)")
    print()
    ok = True
    if not a.skip_start:
        ok = bench_start_exit(a, vireo, floor, guest) and ok
    if a.linux:
        print()
        ok = bench_linux(a, vireo) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
