#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Vireo benchmarks, side by side with QEMU microvm and a raw-KVM floor (bench/run.sh).

Parts 1+2 (default): start -> run -> exit of bench-guest (bench/guest.S, a PVH ELF that prints
one line on COM1 and asks for a reset) under
  vireo         vireo run --kernel G --memory 256M --on-reboot exit --no-rng
  qemu          qemu-system-x86_64 -M microvm -enable-kvm -cpu host -m 256M -kernel G ...
  floor         kvm-floor G 256: /dev/kvm, VM, vCPU, 256 MiB slot, run, exit (bench/kvm_floor.c)
  floor+irqchip kvm-floor --irqchip G 256: the same plus KVM's in-kernel PIC/IOAPIC/PIT, which
                Vireo and QEMU both create (their teardown is a kernel cost all of them pay)
Runs are interleaved (one of each per round, the order rotating) after warm-up runs; a run
counts only if it exited 0 and printed the guest's line. Each run goes through bench-spawn
(bench/spawn.c), which reports the wall time from fork to reaping, the CPU time (user+sys)
and the peak RSS (ru_maxrss) of that process alone.

Part 3 (--linux): Linux boot of the guest kit's minimal kernel + initramfs to a serial console
marker ("Run /init as init process" by default), Vireo with --cpu-template baseline against
QEMU microvm with -cpu host minus the same features; both are killed at the marker.

Part 4 (--touch): the same exit path after the guest wrote every 4 KiB page of 236 MiB
(bench-guest-touch), against kvm-floor with anonymous RAM, with and without MADV_HUGEPAGE.

--vireo-alt PATH adds a second Vireo binary to every part (A/B test of a change).

Python standard library only; nothing is written outside a temporary directory (but for
--keep-logs).
"""
import argparse
import os
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
RSS_TARGET_KIB = 4096
WALL_TARGET = 0.5

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
    # leaf 7.1 EAX (all of it)
    "avx-vnni avx512-bf16 fzrm fsrs fsrc "
    # 0x80000001 ECX / EDX
    "abm sse4a misalignsse xop fma4 tbm rdtscp "
    # leaves 0xD (XSAVE state components) and 0x12 (SGX) removed
    "xsaveopt xsavec xgetbv1 xsaves sgx"
).split()

# Serial console markers of a Linux 6.1 boot, in the order they appear. Printk output from
# before the console is registered comes out in one burst, so "first line" and "console up"
# both measure the time to console_init(); the later ones measure progress.
LINUX_MARKERS = [
    ("first line", "Linux version "),
    ("console up", "printk: console [ttyS0] enabled"),
    ("BogoMIPS", "BogoMIPS (lpj="),
    ("x86/fpu", "x86/fpu: "),
    ("initramfs", "Unpacking initramfs"),
    ("clocksource", "clocksource: Switched to clocksource"),
    ("serial driver", "Serial: 8250/16550 driver"),
    ("free initmem", "Freeing unused kernel image"),
    ("run /init", "Run /init as init process"),
]
# Either ends a run early: a guest panic, or the VMM giving up on the vCPU (Vireo and QEMU both
# print this, on stderr, which is read together with stdout).
CRASH_MARKERS = ["Kernel panic", "KVM internal error"]


def die(msg):
    print("bench: " + msg, file=sys.stderr)
    sys.exit(1)


def fmt_cmd(cmd):
    return " ".join(shlex.quote(c) for c in cmd)


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def ratio(a, b):
    return a / b if b else float("nan")


class Run:
    """One measured process: wall and CPU in seconds, rss in KiB; ok/why say if it counts."""

    def __init__(self, wall=0.0, user=0.0, sys_=0.0, rss=0, status=-1):
        self.wall, self.user, self.sys, self.rss, self.status = wall, user, sys_, rss, status
        self.cpu = user + sys_
        self.out = self.err = b""
        self.ok, self.why = True, ""


class Spawned:
    """A command started under bench-spawn, which reports on a pipe once the command is reaped."""

    def __init__(self, helper, cmd, timeout, stdout, stderr):
        rfd, wfd = os.pipe()
        try:
            self.p = subprocess.Popen(
                [helper, "-r", str(wfd), str(max(1, int(timeout * 1000)))] + cmd,
                stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, close_fds=True,
                pass_fds=(wfd,))
        except BaseException:
            os.close(rfd)
            raise
        finally:
            os.close(wfd)
        self.rfd = rfd

    def stop(self):
        """Makes bench-spawn SIGKILL the command (no-op once it is gone)."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)

    def reap(self):
        with os.fdopen(self.rfd, "rb") as f:
            line = f.read().decode(errors="replace")
        self.p.wait()
        kv = dict(w.split("=", 1) for w in line.split() if "=" in w)
        try:
            return Run(int(kv["wall_ns"]) / 1e9, int(kv["user_us"]) / 1e6,
                       int(kv["sys_us"]) / 1e6, int(kv["maxrss_kib"]), int(kv["status"]))
        except (KeyError, ValueError):
            r = Run()
            r.ok, r.why = False, "bench-spawn failed (exit %s, %r)" % (self.p.returncode, line)
            return r


def run_to_exit(helper, cmd, timeout, workdir):
    """Runs cmd with stdin from /dev/null and output to files until it exits; judges the run."""
    out_path = os.path.join(workdir, "out")
    err_path = os.path.join(workdir, "err")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        r = Spawned(helper, cmd, timeout, out, err).reap()
    with open(out_path, "rb") as f:
        r.out = f.read()
    with open(err_path, "rb") as f:
        r.err = f.read()
    if not r.ok:
        return r
    if r.status != 0:
        r.ok = False
        r.why = ("killed by the %gs timeout" % timeout if r.status == -signal.SIGKILL
                 else "exit status %d" % r.status)
    elif GUEST_LINE not in r.out:
        r.ok = False
        r.why = "guest line missing from stdout"
    if not r.ok:
        tail = (r.err or r.out).decode(errors="replace").strip().splitlines()[-3:]
        if tail:
            r.why += ": " + " | ".join(tail)
    return r


def tool(build, rel):
    p = os.path.abspath(os.path.join(build, rel))
    if not os.path.isfile(p):
        die("%s not found (build it: ninja -C %s)" % (p, build))
    return p


def qemu_flags(qemu):
    """The CPUID flag names this QEMU recognises (from -cpu help)."""
    try:
        txt = subprocess.run([qemu, "-cpu", "help"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return set(txt.partition("Recognized CPUID flags:")[2].split())


# ---- parts 1, 2 and 4: guests that run to their own exit -------------------------------------

def exit_contenders(a, t, guest, floors):
    """The commands that boot `guest` to its reset: vireo, qemu, kvm-floor variants, and the
    --vireo-alt binary if given."""
    def vireo(path):
        return [path, "run", "--kernel", guest, "--memory", "256M", "--on-reboot", "exit",
                "--no-rng"]
    return ([("vireo", vireo(t["vireo"])),
             ("qemu", [a.qemu, "-M", "microvm", "-enable-kvm", "-cpu", "host", "-m", "256M",
                       "-kernel", guest, "-nographic", "-no-reboot", "-nodefaults",
                       "-serial", "stdio"])]
            + [(name, [t["floor"]] + opts + [guest, "256"]) for name, opts in floors]
            + ([("vireo-alt", vireo(os.path.abspath(a.vireo_alt)))] if a.vireo_alt else []))


def run_rounds(a, t, contenders, runs, warmup):
    """Interleaved rounds of every contender; prints the commands and the table and returns
    per-contender statistics (times in ms, RSS in KiB)."""
    print("commands, each under `bench-spawn -r FD %d` (stdin /dev/null, stdout/stderr to files):"
          % int(a.timeout * 1000))
    for name, cmd in contenders:
        print("  %-13s %s" % (name, fmt_cmd(cmd)))
    print("%d warm-up run(s) each, then %d rounds of one run each, order rotating; medians below"
          % (warmup, runs))
    sys.stdout.flush()

    res = {name: [] for name, _ in contenders}
    bad = {name: [] for name, _ in contenders}
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vireo-bench-") as wd:
        for i in range(warmup + runs):
            k = i % len(contenders)
            for name, cmd in contenders[k:] + contenders[:k]:
                r = run_to_exit(t["spawn"], cmd, a.timeout, wd)
                if i < warmup:
                    if not r.ok:
                        print("  warm-up %s: INVALID (%s)" % (name, r.why))
                    continue
                (res if r.ok else bad)[name].append(r)
    elapsed = time.monotonic() - t_start

    print()
    hdr = "%-13s %7s  %-24s  %-22s  %-18s" % (
        "", "valid", "wall ms: med (min..max)", "CPU ms: med (usr+sys)", "peak RSS KiB: med")
    print(hdr)
    print("-" * len(hdr))
    st = {}
    for name, _ in contenders:
        rs = res[name]
        s = {"n": len(rs),
             "wall": med([r.wall for r in rs]) * 1e3,
             "wmin": min((r.wall for r in rs), default=float("nan")) * 1e3,
             "wmax": max((r.wall for r in rs), default=float("nan")) * 1e3,
             "cpu": med([r.cpu for r in rs]) * 1e3,
             "usr": med([r.user for r in rs]) * 1e3,
             "sys": med([r.sys for r in rs]) * 1e3,
             "rss": med([r.rss for r in rs]),
             "rssmax": max((r.rss for r in rs), default=float("nan"))}
        st[name] = s
        print("%-13s %3d/%-3d  %6.1f (%5.1f..%6.1f)   %6.1f (%5.1f+%5.1f)     %6.0f (max %.0f)"
              % (name, s["n"], runs, s["wall"], s["wmin"], s["wmax"], s["cpu"], s["usr"],
                 s["sys"], s["rss"], s["rssmax"]))
    for name, _ in contenders:
        for r in bad[name][:3]:
            print("  INVALID %s run: %s" % (name, r.why))
        if len(bad[name]) > 3:
            print("  ... and %d more invalid %s runs" % (len(bad[name]) - 3, name))
    print("(CPU = the kernel's exact runtime of the process; its usr/sys split is tick-sampled,"
          " so coarse for short runs.")
    print(" RSS includes shared libraries; bench-spawn's own pre-exec image is ~0.5 MiB.)")
    st["elapsed"] = elapsed
    return st


def bench_start_exit(a, t):
    guest = t["guest"]
    print("== 1+2. start -> run -> exit of a tiny PVH guest, 256 MiB of guest RAM ==")
    print("guest: %s: prints %r on COM1 (2 port exits per byte), then resets"
          % (guest, GUEST_LINE.decode()))
    print("       (i8042 0x64<-0xFE; on QEMU microvm, which has no i8042, the GED reset register)")
    st = run_rounds(a, t, exit_contenders(a, t, guest, [("floor", []),
                                                        ("floor+irqchip", ["--irqchip"])]),
                    a.runs, a.warmup)
    v, q, f, fi = st["vireo"], st["qemu"], st["floor"], st["floor+irqchip"]
    valid = v["n"] > 0 and q["n"] > 0
    wr = ratio(v["wall"], q["wall"])
    print()
    print("ratios of medians:")
    print("  wall vireo/qemu           %6.3fx  [target <= %.1fx: %s]"
          % (wr, WALL_TARGET, ("PASS" if wr <= WALL_TARGET else "FAIL") if valid else "INVALID"))
    print("  wall vireo/floor          %6.2fx  (qemu/floor %.2fx)"
          % (ratio(v["wall"], f["wall"]), ratio(q["wall"], f["wall"])))
    print("  wall vireo/floor+irqchip  %6.2fx  (vireo - floor+irqchip = %+.1f ms;"
          " qemu - floor+irqchip = %+.1f ms)"
          % (ratio(v["wall"], fi["wall"]), v["wall"] - fi["wall"], q["wall"] - fi["wall"]))
    if "vireo-alt" in st:
        print("  wall vireo-alt/vireo      %6.3fx  (vireo-alt/qemu %.3fx)"
              % (ratio(st["vireo-alt"]["wall"], v["wall"]), ratio(st["vireo-alt"]["wall"],
                                                                  q["wall"])))
    print("  CPU  vireo/qemu           %6.3fx  (vireo/floor %.2fx)"
          % (ratio(v["cpu"], q["cpu"]), ratio(v["cpu"], f["cpu"])))
    print("  RSS  vireo/qemu           %6.3fx  (vireo/floor %.2fx)"
          % (ratio(v["rss"], q["rss"]), ratio(v["rss"], f["rss"])))
    print()
    rss_ok = v["n"] > 0 and v["rssmax"] <= RSS_TARGET_KIB
    print("== 2. vireo peak RSS, 256 MiB guest touching little: %.0f KiB median, %.0f KiB max "
          "[target <= %d KiB: %s] ==" % (v["rss"], v["rssmax"], RSS_TARGET_KIB,
                                         ("PASS" if rss_ok else "FAIL") if v["n"] else "INVALID"))
    print("(parts 1+2 took %.1f s)" % st["elapsed"])
    return valid


def bench_touch(a, t):
    guest = t["guest_touch"]
    print("== 4. populating guest RAM: the guest writes every 4 KiB page of 236 MiB, then exits ==")
    print("guest: %s (bench-guest with -DBENCH_TOUCH)" % guest)
    print("floor backs RAM with private anonymous memory; floor+thp adds MADV_HUGEPAGE (as QEMU)")
    st = run_rounds(a, t, exit_contenders(a, t, guest, [("floor", []), ("floor+thp", ["--thp"])]),
                    a.touch_runs, 1)
    v, q = st["vireo"], st["qemu"]
    print()
    print("wall vireo/qemu %.3fx, vireo/floor %.2fx, vireo/floor+thp %.2fx;"
          " CPU vireo/qemu %.3fx; peak RSS vireo %.0f KiB, qemu %.0f KiB"
          % (ratio(v["wall"], q["wall"]), ratio(v["wall"], st["floor"]["wall"]),
             ratio(v["wall"], st["floor+thp"]["wall"]), ratio(v["cpu"], q["cpu"]),
             v["rss"], q["rss"]))
    print("(part 4 took %.1f s)" % st["elapsed"])
    return v["n"] > 0 and q["n"] > 0


# ---- part 3 -----------------------------------------------------------------------------------

def find_kit(a):
    """Returns (kernel, initrd, source) or (None, None, reason)."""
    elf = bz = initrd = None
    source = "command line"
    if not a.kernel:
        kit = os.path.join(REPO, "tools", "guest-kit", "build.sh")
        if not os.access(kit, os.X_OK):
            return None, None, "%s not found" % kit
        try:
            txt = subprocess.run([kit, "--print", "--no-cloud"], capture_output=True,
                                 text=True, timeout=120).stdout
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, None, "%s --print failed: %s" % (kit, e)
        kv = dict(ln.split("=", 1) for ln in txt.splitlines() if "=" in ln)
        elf, bz, initrd = (kv.get("KERNEL_MINIMAL_ELF"), kv.get("KERNEL_MINIMAL_BZ"),
                           kv.get("INITRD"))
        source = "tools/guest-kit/build.sh --print --no-cloud"
    kernel = a.kernel or (bz if a.linux_image == "bzimage" else elf)
    if a.initrd is not None:
        initrd = a.initrd or None
    if not kernel or not os.path.isfile(kernel):
        return None, None, "kernel %s not built" % (kernel or "(none)")
    if initrd and not os.path.isfile(initrd):
        return None, None, "initramfs %s not built" % initrd
    return kernel, initrd, source


def run_to_marker(helper, cmd, markers, final, timeout):
    """Runs cmd and timestamps (since its start) the first appearance of each marker in its
    stdout+stderr; stops it at the final marker, a crash marker, its exit or the timeout.
    Returns (seen, end, run)."""
    seen = {}
    end = "timeout"
    t0 = time.perf_counter()
    sp = Spawned(helper, cmd, timeout + 30, subprocess.PIPE, subprocess.STDOUT)
    fd = sp.p.stdout.fileno()
    buf = b""
    while True:
        left = timeout - (time.perf_counter() - t0)
        if left <= 0:
            break
        if not select.select([fd], [], [], left)[0]:
            continue
        chunk = os.read(fd, 65536)
        now = time.perf_counter() - t0
        if not chunk:
            end = "exit"
            break
        look = buf[-256:] + chunk
        buf += chunk
        for m in markers + CRASH_MARKERS:
            if m not in seen and m.encode() in look:
                seen[m] = now
        if final in seen:
            end = "marker"
            break
        crash = [m for m in CRASH_MARKERS if m in seen]
        if crash:
            end = "crash (%s)" % crash[0]
            break
    sp.stop()
    sp.p.stdout.close()
    r = sp.reap()
    r.out = buf
    return seen, end, r


def bench_linux(a, t):
    print("== 3. Linux boot to a serial console marker (minimal 6.1 kernel, baseline CPU) ==")
    kernel, initrd, source = find_kit(a)
    if not kernel:
        print("skipped: guest kit not built (%s); build it with tools/guest-kit/build.sh or"
              " pass --kernel [--initrd]" % source)
        return True
    known = qemu_flags(a.qemu)
    hide = [f for f in BASELINE_HIDDEN_QEMU if f in known]
    unknown = [f for f in BASELINE_HIDDEN_QEMU if f not in known]
    def vcmd(path):
        return ([path, "run", "--kernel", kernel] + (["--initrd", initrd] if initrd else [])
                + ["--cmdline", a.cmdline, "--cpus", "1", "--memory", "256M",
                   "--cpu-template", "baseline", "--on-reboot", "exit", "--no-rng"])
    qcmd = ([a.qemu, "-M", "microvm", "-enable-kvm",
             "-cpu", "host" + "".join(",-" + f for f in hide), "-smp", "1", "-m", "256M",
             "-kernel", kernel] + (["-initrd", initrd] if initrd else [])
            + ["-append", a.cmdline, "-nographic", "-no-reboot", "-nodefaults",
               "-serial", "stdio"])
    contenders = [("vireo", vcmd(t["vireo"])), ("qemu", qcmd)]
    if a.vireo_alt:
        contenders.append(("vireo-alt", vcmd(os.path.abspath(a.vireo_alt))))
    markers = [m for _, m in LINUX_MARKERS if m != a.marker] + [a.marker]
    label = {m: lbl for lbl, m in LINUX_MARKERS}
    label.setdefault(a.marker, a.marker)
    order = markers

    print("artifacts: %s%s (from %s)" % (kernel, " + " + initrd if initrd else " (no initrd)",
                                         source))
    print("final marker %r; a side is SIGKILLed there, at a crash (%s), or after %gs"
          % (a.marker, " / ".join(repr(m) for m in CRASH_MARKERS), a.linux_timeout))
    if unknown:
        print("baseline features this QEMU has no name for (left out): %s" % " ".join(unknown))
    print("commands, each under bench-spawn (stdin /dev/null, stdout+stderr read here):")
    for name, cmd in contenders:
        print("  %-9s %s" % (name, fmt_cmd(cmd)))
    print("%d run(s) each (--linux-runs N), interleaved; a boot here takes up to a minute"
          % a.linux_runs)
    sys.stdout.flush()

    results = {name: [] for name, _ in contenders}
    for i in range(a.linux_runs):
        k = i % len(contenders)
        for name, cmd in contenders[k:] + contenders[:k]:
            seen, end, r = run_to_marker(t["spawn"], cmd, markers, a.marker, a.linux_timeout)
            results[name].append((seen, r))
            if a.keep_logs:
                os.makedirs(a.keep_logs, exist_ok=True)
                with open(os.path.join(a.keep_logs, "linux-%s-%d.log" % (name, i + 1)),
                          "wb") as f:
                    f.write(r.out)
            last = max((m for m in seen if m in label), key=seen.get, default=None)
            print("  run %d %-9s: stopped after %6.1f s by %s; furthest marker: %s"
                  % (i + 1, name, r.wall, end,
                     "%r at %.2f s" % (label[last], seen[last]) if last else "none"))
            if end != "marker":
                for m in CRASH_MARKERS:
                    at = r.out.find(m.encode())
                    if at >= 0:
                        line = r.out[at:].split(b"\n", 1)[0].decode(errors="replace")
                        print("          %s" % line.strip()[:200])
            sys.stdout.flush()

    reached = [m for m in order if all(m in s for rs in results.values() for s, _ in rs)]
    print()
    names = [name for name, _ in contenders]
    print("%-18s" % "s to marker, med" + "".join("%16s" % n for n in names) + "   vireo/qemu"
          + ("  alt/qemu" if a.vireo_alt else ""))
    for m in order:
        meds = {n: med([s[m] for s, _ in results[n] if m in s]) for n in names}
        cnt = {n: sum(1 for s, _ in results[n] if m in s) for n in names}
        print("%-18s" % label[m]
              + "".join("%10.2f (%d/%d)" % (meds[n], cnt[n], a.linux_runs) for n in names)
              + "   %8.3fx" % ratio(meds["vireo"], meds["qemu"])
              + ("  %7.3fx" % ratio(meds["vireo-alt"], meds["qemu"]) if a.vireo_alt else "")
              + ("" if m in reached else "   (not reached in all runs)"))
    for name, rs in results.items():
        runs = [r for _, r in rs]
        print("%-9s until stopped: CPU %.2f s (usr %.2f + sys %.2f), peak RSS %.0f KiB (medians)"
              % (name, med([r.cpu for r in runs]), med([r.user for r in runs]),
                 med([r.sys for r in runs]), med([r.rss for r in runs])))
    if reached:
        m = reached[-1]
        vs = med([s[m] for s, _ in results["vireo"]])
        qs = med([s[m] for s, _ in results["qemu"]])
        print("furthest marker common to all runs: %r: vireo %.2f s, qemu %.2f s -> %.3fx"
              % (label[m], vs, qs, ratio(vs, qs)))
    else:
        print("no marker was reached by every run of both sides")
    return True


def main():
    ap = argparse.ArgumentParser(description="Vireo vs QEMU microvm vs raw KVM (bench/run.sh).")
    ap.add_argument("--build", default="build", help="meson build dir (default: build)")
    ap.add_argument("--runs", type=int, default=30, help="measured runs each (default 30)")
    ap.add_argument("--warmup", type=int, default=3, help="warm-up runs each (default 3)")
    ap.add_argument("--timeout", type=float, default=10.0, help="per-run timeout, s (10)")
    ap.add_argument("--qemu", default="qemu-system-x86_64", help="QEMU binary")
    ap.add_argument("--vireo-alt", metavar="PATH",
                    help="a second vireo binary (say, with a candidate fix), in every part")
    ap.add_argument("--no-start", action="store_true", help="skip parts 1+2")
    ap.add_argument("--touch", action="store_true",
                    help="also run part 4, a guest populating 236 MiB of RAM (~20 s)")
    ap.add_argument("--touch-runs", type=int, default=7, help="part 4 runs each (default 7)")
    ap.add_argument("--linux", action="store_true", help="also run part 3 (minutes)")
    ap.add_argument("--linux-runs", type=int, default=3, help="Linux boots each (default 3)")
    ap.add_argument("--linux-timeout", type=float, default=240.0,
                    help="stop one Linux boot after this many seconds (240)")
    ap.add_argument("--linux-image", choices=["elf", "bzimage"], default="elf",
                    help="kit kernel booted on both sides: PVH vmlinux (default) or bzImage")
    ap.add_argument("--kernel", help="Linux kernel to use instead of the guest kit's")
    ap.add_argument("--initrd", help="initramfs instead of the guest kit's ('' for none)")
    ap.add_argument("--cmdline", default="console=ttyS0 reboot=k panic=1",
                    help="Linux command line on both sides")
    ap.add_argument("--marker", default="Run /init as init process",
                    help="serial console text that ends a Linux run")
    ap.add_argument("--keep-logs", metavar="DIR",
                    help="save each Linux run's console output (stdout+stderr) in DIR")
    a = ap.parse_args()
    if a.runs < 1 or a.warmup < 0 or a.linux_runs < 1 or a.touch_runs < 1:
        die("--runs, --touch-runs and --linux-runs must be >= 1, --warmup >= 0")

    t = {"vireo": tool(a.build, "src/cli/vireo"), "floor": tool(a.build, "bench/kvm-floor"),
         "guest": tool(a.build, "bench/bench-guest"), "spawn": tool(a.build, "bench/bench-spawn"),
         "guest_touch": tool(a.build, "bench/bench-guest-touch")}
    if not shutil.which(a.qemu):
        die("%s not found (apt-get install qemu-system-x86)" % a.qemu)
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        die("/dev/kvm is not accessible")

    qv = subprocess.run([a.qemu, "--version"], capture_output=True, text=True).stdout
    print("vireo bench: %s | %s | Linux %s | %d CPUs, load %.2f" % (
        t["vireo"], qv.splitlines()[0] if qv else a.qemu, os.uname().release,
        os.cpu_count() or 0, os.getloadavg()[0]))
    print("(nested KVM host: absolute guest timings mean little; compare the sides)")
    ok = True
    if not a.no_start:
        print()
        ok = bench_start_exit(a, t) and ok
    if a.touch:
        print()
        ok = bench_touch(a, t) and ok
    if a.linux:
        print()
        ok = bench_linux(a, t) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
