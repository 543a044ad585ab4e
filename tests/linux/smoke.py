#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Linux smoke test: boot a guest-kit kernel under vireo and check what the guest sees.

    smoke.py VIREO --case minimal|reboot|cloud [--cpus N] [--memory MIB] [options]

Cases:
  minimal  the kit's minimal 6.1 kernel (vmlinux through the PVH entry, or --bzimage) with the
           busybox initramfs and vireo.test=poweroff. Kernel checks: every vCPU is brought up
           ("smp: Brought up 1 node, N CPUs"), the RAM seen matches --memory ("Memory: a/bK
           available"), the virtio-rng PCI function [1af4:1044] is enumerated and its virtio
           device probed ("probe of virtioN returned 0", printed by initcall_debug), and the
           kernel gets to "Run /init as init process". Where user space runs ("VIREO-INIT:
           start"), /init's report is checked too (nproc, memtotal_kb, hwrng=16, a virtio
           device 0x0004 bound to virtio_rng) and power-off must end vireo with status 0.
  reboot   the minimal kernel with vireo.test=reboot and --on-reboot restart: the guest must
           boot a second time (counted by "Linux version" banners, so a kernel panic with
           panic=-1 serves where user space cannot run).
  cloud    Debian's linux-image-cloud-amd64 bzImage with its virtio modules in the initramfs:
           the same checks, but the virtio probe (virtio-pci is a module there, which /init
           loads) and with CLOUD_CMDLINE.

The guest kit (tools/guest-kit/build.sh) is built on first use and cached. Exit status: 0 pass,
1 fail, 77 skip with the reason printed: no /dev/kvm, no cloud kernel in the kit, or, on the
nested kvm_pvm KVM only, the host cannot run the guest any further (a KVM emulation failure,
vireo exit 3; user space not starting; a boot slower than --timeout). Elsewhere those fail.
The console goes to --log (default ./linux-<case>-<N>cpu.log). Python standard library only.

On hosts whose KVM cannot hide CPUID features from the guest (the nested "kvm_pvm" KVM of the
Vireo CI machine, see docs/linux-on-nested-kvm.md), the guest is also told on its command line
not to use them (GUEST_KNOBS); --knobs on|off|auto (default auto) controls that.
"""
import argparse
import os
import re
import select
import signal
import subprocess
import sys
import time

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
BUILD_SH = os.path.normpath(os.path.join(HERE, "..", "..", "tools", "guest-kit", "build.sh"))

# Features the guest kernel must leave alone where KVM cannot hide them
# (docs/linux-on-nested-kvm.md).
# Only the last clearcpuid= counts: cases add to the list, not a second option.
CLEARCPUID = "cx16,popcnt,smap,smep,fsgsbase,rdrand,rdseed,rdpid,invpcid,pcid,bmi1,bmi2"
GUEST_KNOBS = "noxsave clearcpuid=" + CLEARCPUID
# For the kit's 32-bit user space on those hosts: the kernel hands unknown NAME=value words to
# /init as environment, and glibc's string functions then keep to plain i386 code (the
# instruction emulator that runs guest code right after a trap has no SSE2 integer ops).
# rcu_cpu_stall_suppress: with 2 vCPUs a slow system call here sets off an RCU stall report
# whose backtrace IPI (a KVM hypercall) the host's emulator turns into a write to kernel text.
USER_KNOBS = ("rcupdate.rcu_cpu_stall_suppress=1 GLIBC_TUNABLES=glibc.cpu.hwcaps=-SSE2,-SSE3,-SSSE3,-SSE4_1,-SSE4_2,-AVX,-AVX2,"
              "-POPCNT,-ERMS,-FSRM,-BMI1,-BMI2,-CMOV")
# initcall_debug prints "probe of <dev> returned <ret>" for every driver probe (KERN_DEBUG).
BASE_CMDLINE = "console=ttyS0 panic=-1 initcall_debug loglevel=8"
# The Debian kernel spends minutes of a nested-KVM boot in three tracing initcalls and in the
# crypto self-tests (which also wait for modprobe, i.e. for user space), none of which matter
# to a VMM test; its random.c uses SSSE3 BLAKE2s, on which the nested KVM stops.
CLOUD_CMDLINE = ("initcall_blacklist=init_kprobe_trace,trace_eval_init,tracer_init_tracefs "
                 "cryptomgr.notests")
CLOUD_CLEARCPUID = "ssse3"

RE_SMP = re.compile(r"smp: Brought up (\d+) nodes?, (\d+) CPUs?")
RE_MEMORY = re.compile(r"Memory: (\d+)K/(\d+)K available")
RE_RNG_PCI = re.compile(r"pci (\S+): \[1af4:1044\] type")
RE_VIRTIO_PROBE = re.compile(r"probe of (virtio\d+) returned (-?\d+)")
RE_RUN_INIT = re.compile(r"Run /init as init process")
RE_BANNER = re.compile(r"Linux version \d")
RE_PANIC = re.compile(r"Kernel panic - not syncing: (.*)")
RE_INIT = re.compile(r"VIREO-INIT: (\S+?)(?:=(.*))?$")
RE_TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\] ")


def log(msg):
    print("smoke: " + msg, flush=True)


def kvm_problem():
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return "cannot open /dev/kvm: %s" % os.strerror(e.errno)
    os.close(fd)
    return None


def host_kvm_hides_cpuid():
    """False on hosts known to pass most CPUID bits through whatever the VMM sets."""
    return not os.path.isdir("/sys/module/kvm_pvm")


def kit_paths(want_cloud):
    """Run build.sh --print, building the kit first if something is missing."""
    base = [BUILD_SH] + ([] if want_cloud else ["--no-cloud"])
    r = subprocess.run(base + ["--print"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                       universal_newlines=True)
    if r.returncode != 0:
        log("guest kit missing: running %s (cached afterwards; the first build takes ~10 min)"
            % " ".join(base))
        r = subprocess.run(base, stdout=subprocess.PIPE, universal_newlines=True)
        if r.returncode != 0:
            return None, "tools/guest-kit/build.sh failed (exit %d)" % r.returncode
    paths = dict(l.split("=", 1) for l in r.stdout.splitlines() if "=" in l)
    return paths, None


def kit_has_compat_user(initrd):
    """Whether the kit's initramfs holds the i386 busybox (build-info next to it), the user
    space that runs on the nested kvm_pvm KVM (docs/linux-on-nested-kvm.md)."""
    try:
        with open(os.path.join(os.path.dirname(initrd or ""), "build-info")) as f:
            return "busybox=busybox-i386" in f.read()
    except OSError:
        return False


class Guest:
    """A running VMM whose console lines are collected (stdout and stderr are merged)."""

    def __init__(self, cmd, logpath):
        self.cmd = cmd
        self.lines = []
        self.partial = b""
        self.logf = open(logpath, "wb")
        self.logf.write(("$ " + " ".join(cmd) + "\n").encode())
        self.start = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.rc = None
        self.timed_out = False

    def elapsed(self):
        return time.monotonic() - self.start

    def pump(self, timeout):
        """Collect output for up to timeout s; returns the new complete lines."""
        new = []
        if self.proc.stdout.closed:
            time.sleep(timeout)
            return new
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if ready:
            data = os.read(self.proc.stdout.fileno(), 65536)
            if not data:
                self.proc.stdout.close()
                return new
            self.logf.write(data)
            self.logf.flush()
            self.partial += data
            *done, self.partial = self.partial.split(b"\n")
            new = [d.decode("utf-8", "replace").rstrip("\r") for d in done]
            self.lines += new
        return new

    def follow(self, timeout, verbose=False):
        """Yield console lines as they come until the VMM is done, or until timeout s after
        its start (self.timed_out is then set); verbose echoes each line."""
        while self.running():
            left = timeout - self.elapsed()
            if left <= 0:
                self.timed_out = True
                return
            for l in self.pump(min(left, 1.0)):
                if verbose:
                    print("  | " + l, flush=True)
                yield l

    def running(self):
        if self.rc is None:
            self.rc = self.proc.poll()
        return self.rc is None or not self.proc.stdout.closed

    def stop(self):
        """Terminate the VMM (and anything it started); returns its exit status."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        while not self.proc.stdout.closed:
            self.pump(0.1)
        self.rc = self.proc.returncode
        tail = self.partial.decode("utf-8", "replace").rstrip("\r")
        if tail:
            self.lines.append(tail)
        self.logf.close()
        return self.rc


def kernel_lines(lines):
    return [RE_TIMESTAMP.sub("", l) for l in lines]


def last_kernel_line(lines):
    for l in reversed(lines):
        if RE_TIMESTAMP.match(l):
            return RE_TIMESTAMP.sub("", l).strip()
    return "(no kernel output)"


def vmm_error(lines):
    """The VMM's one-line error (KVM internal error etc.), if it printed one."""
    for l in lines:
        if l.startswith("vireo:") and not RE_TIMESTAMP.match(l):
            return l.strip()
    for l in lines:  # QEMU's way of saying it
        if "KVM internal error" in l or "emulation failure" in l:
            return l.strip()
    return None


def build_cmd(a, kernel, initrd, cmdline, on_reboot):
    if a.qemu:
        cpu = "host" if a.cpu_template == "host" else "host,-cx16"
        cmd = [a.vmm, "-M", "microvm,pcie=on,rtc=on", "-enable-kvm", "-cpu", cpu,
               "-smp", str(a.cpus), "-m", str(a.memory), "-kernel", kernel, "-initrd", initrd,
               "-append", cmdline, "-device", "virtio-rng-pci,disable-legacy=on",
               "-nographic", "-monitor", "none"]
        if on_reboot == "exit":
            cmd.append("-no-reboot")
        return cmd
    return [a.vmm, "run", "--kernel", kernel, "--initrd", initrd, "--cmdline", cmdline,
            "--cpus", str(a.cpus), "--memory", "%dM" % a.memory,
            "--cpu-template", a.cpu_template, "--on-reboot", on_reboot]


class Verdict(Exception):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code
        self.msg = msg


def fail(msg):
    raise Verdict(1, msg)


def skip(msg):
    raise Verdict(SKIP, msg)


# ---- helpers shared by the Linux tests (kernel_*.py, user_*.py) -------------------------------

def run(*cmd, ok=(0,), merge=True):
    """Run a host command; the test fails (exit 1) unless its exit status is in ok (None: any).
    Returns its stdout, with stderr merged in when merge (otherwise stderr only goes into the
    failure message)."""
    r = subprocess.run(cmd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT if merge else subprocess.PIPE,
                       universal_newlines=True)
    if ok is not None and r.returncode not in ok:
        fail("%s: exit %d:\n%s" % (" ".join(cmd), r.returncode,
                                   ((r.stderr or "") + r.stdout).strip()))
    return r.stdout


def split_boots(lines):
    """Console lines cut into boots at each kernel banner, kernel timestamps removed."""
    boots = []
    for l in lines:
        if RE_BANNER.search(l):
            boots.append([])
        if boots:
            boots[-1].append(RE_TIMESTAMP.sub("", l))
    return boots


def user_space_problem(paths):
    """Why the kit's user space cannot run on this host (None: it can): on the nested kvm_pvm
    KVM only the kit's i386 busybox runs (docs/linux-on-nested-kvm.md)."""
    if host_kvm_hides_cpuid() or kit_has_compat_user(paths["INITRD"]):
        return None
    return ("the guest kit's initramfs has no i386 busybox, the only user space that runs on "
            "this host's nested KVM (rebuild the kit: tools/guest-kit/build.sh)")


def run_guest(a, kernel, initrd, test):
    """Boot (twice for the reboot case); returns (Guest, exit status, banners, /init starts)."""
    knobs = a.knobs == "on" or (a.knobs == "auto" and not host_kvm_hides_cpuid())
    guest_knobs = GUEST_KNOBS + ("," + CLOUD_CLEARCPUID if a.case == "cloud" else "")
    cmdline = " ".join(x for x in [BASE_CMDLINE, guest_knobs if knobs else "",
                                   USER_KNOBS if knobs else "",
                                   CLOUD_CMDLINE if a.case == "cloud" else "",
                                   "vireo.test=" + test, a.cmdline] if x)
    on_reboot = "restart" if a.case == "reboot" else "exit"
    cmd = build_cmd(a, kernel, initrd, cmdline, on_reboot)
    log("log: " + a.log)
    log("running: " + " ".join(cmd))
    g = Guest(cmd, a.log)
    banners = 0
    starts = 0
    try:
        for l in g.follow(a.timeout, a.verbose):
            if RE_BANNER.search(l):
                banners += 1
                log("boot %d started at %.1f s" % (banners, g.elapsed()))
            if "VIREO-INIT: start" in l:
                starts += 1
            if RE_RUN_INIT.search(l):
                log("kernel reached /init at %.1f s" % g.elapsed())
            if a.qemu and l.startswith("Code="):  # QEMU hangs after a KVM internal error
                g.proc.send_signal(signal.SIGTERM)
            if a.case == "reboot" and banners >= 2:
                # The second boot has started: the reset and restart path works.
                if starts == 0 or starts >= 2:
                    break
        if g.timed_out:
            log("timeout after %.0f s" % a.timeout)
            a.timed_out = True
    finally:
        rc = g.stop()
    if a.qemu and vmm_error(g.lines) and rc != 0:
        rc = 3
    log("vmm exit status %s after %.1f s, %d boot(s)" % (rc, g.elapsed(), banners))
    return g, rc, banners, starts


def check_kernel(a, lines, rc):
    """Kernel-side checks on the first boot; raises Verdict on failure or skip."""
    kl = kernel_lines(lines)
    err = vmm_error(lines)
    where = last_kernel_line(lines)

    def missing(what):
        # Cut short by the host (KVM internal error) or by a real bug in the VMM?
        if a.timed_out and not host_kvm_hides_cpuid():
            skip("the guest was still booting after %.0f s (this host's nested KVM runs "
                 "guest kernels very slowly); last kernel line: %s; missing: %s"
                 % (a.timeout, where, what))
        if a.timed_out:
            fail("%s not seen within %.0f s; last kernel line: %s" % (what, a.timeout, where))
        if rc == 3 and not host_kvm_hides_cpuid():
            skip("this host's nested KVM cannot run the guest any further: %s; last kernel "
                 "line: %s; missing: %s" % (err or "vCPU crashed (exit 3)", where, what))
        if rc == 3:
            fail("vCPU crashed (exit 3) before %s: %s; last kernel line: %s" % (what, err, where))
        fail("%s not seen (vmm exit %s); last kernel line: %s" % (what, rc, where))

    if not any(RE_BANNER.search(l) for l in kl):
        missing("the kernel banner")
    smp = [RE_SMP.search(l) for l in kl]
    smp = [m for m in smp if m]
    if not smp:
        missing("'smp: Brought up ... CPUs'")
    if int(smp[0].group(2)) != a.cpus:
        fail("the kernel brought up %s CPUs, --cpus %d: '%s'" % (smp[0].group(2), a.cpus,
                                                                  smp[0].group(0)))
    log("ok: " + smp[0].group(0))

    mem = [RE_MEMORY.search(l) for l in kl]
    mem = [m for m in mem if m]
    if not mem:
        missing("'Memory: ...K available'")
    total_k = int(mem[0].group(2))
    want_k = a.memory * 1024
    # The kernel counts the RAM the e820 map gives it: all of it but the legacy hole below
    # 1 MiB and what the VMM reserves (ACPI tables, boot data): a few hundred KiB.
    if not (want_k - 8192 <= total_k <= want_k):
        fail("the kernel sees %dK of RAM, --memory %dM is %dK (allowed: %dK..%dK)"
             % (total_k, a.memory, want_k, want_k - 8192, want_k))
    log("ok: %s (--memory %dM = %dK)" % (mem[0].group(0), a.memory, want_k))

    rng = [RE_RNG_PCI.search(l) for l in kl]
    rng = [m for m in rng if m]
    if not rng:
        missing("the virtio-rng PCI function [1af4:1044]")
    log("ok: virtio-rng at PCI %s" % rng[0].group(1))
    if a.case != "cloud":  # virtio-pci is a module there: /init loads it
        probes = [RE_VIRTIO_PROBE.search(l) for l in kl]
        probes = [m for m in probes if m]
        if not probes:
            missing("a virtio device probe ('probe of virtioN returned 0')")
        bad = [m.group(0) for m in probes if m.group(2) != "0"]
        if bad:
            fail("virtio driver probe failed: " + "; ".join(bad))
        log("ok: " + "; ".join(m.group(0) for m in probes))

    if not any(RE_RUN_INIT.search(l) for l in kl):
        missing("'Run /init as init process'")
    log("ok: the kernel reached 'Run /init as init process'")


def init_report(lines):
    """The key=value lines /init printed on its first boot."""
    rep = {"virtio": [], "insmod": []}
    for l in lines:
        m = RE_INIT.search(l)
        if not m:
            continue
        if m.group(1) == "start" and "start" in rep:
            break
        if m.group(1) in ("virtio", "insmod"):
            rep[m.group(1)].append(m.group(2))
        else:
            rep[m.group(1)] = m.group(2)
    return rep


def check_user(a, lines, rc):
    rep = init_report(lines)
    if "start" not in rep:
        where = last_kernel_line(lines)
        panic = [RE_PANIC.search(l) for l in lines]
        panic = [m.group(1) for m in panic if m]
        err = vmm_error(lines) if rc == 3 else None
        why = ("/init never printed 'VIREO-INIT: start'; last kernel line: %s%s%s"
               % (where, (" (panic: %s)" % panic[0]) if panic else "",
                  ("; then %s" % err) if err else ""))
        if host_kvm_hides_cpuid() or (a.case != "cloud" and kit_has_compat_user(a.boot_initrd)):
            # Only the nested kvm_pvm KVM is known to break user space (SYSCALL), and the
            # kit's patched kernel with its i386 busybox runs there all the same.
            fail("user space did not start: " + why)
        skip("user space cannot start on this host's KVM: " + why)
    failed = [m for m in rep["insmod"] if m.endswith(" failed")]
    if failed:
        fail("/init could not load modules: %s" % ", ".join(failed))
    if rep.get("nproc") != str(a.cpus):
        fail("/init counts %s CPUs, --cpus %d" % (rep.get("nproc"), a.cpus))
    try:
        memtotal = int(rep.get("memtotal_kb", "0"))
    except ValueError:
        memtotal = 0
    # MemTotal leaves out the kernel image and early reservations: give it 64 MiB.
    if not (a.memory * 1024 - 65536 <= memtotal <= a.memory * 1024):
        fail("/init sees MemTotal %s kB for --memory %dM" % (rep.get("memtotal_kb"), a.memory))
    if rep.get("hwrng") != "16":
        fail("reading 16 bytes from /dev/hwrng gave %s" % rep.get("hwrng"))
    if not any("device=0x0004" in v and "driver=virtio_rng" in v for v in rep["virtio"]):
        fail("no virtio entropy device (0x0004) bound to virtio_rng: %s" % rep["virtio"])
    log("ok: /init sees nproc=%s memtotal_kb=%s hwrng=%s virtio=%s"
        % (rep["nproc"], rep["memtotal_kb"], rep["hwrng"], rep["virtio"]))
    if a.case != "reboot":
        if "poweroff" not in rep:
            fail("/init did not get to power off")
        if rc != 0:
            fail("vireo exited with %s after the guest powered off (want 0)" % rc)
        log("ok: power-off ended vireo with status 0")


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("vmm", help="the vireo executable (qemu-system-x86_64 with --qemu)")
    p.add_argument("--case", choices=["minimal", "reboot", "cloud"], required=True)
    p.add_argument("--cpus", type=int, default=1)
    p.add_argument("--memory", type=int, default=512, help="MiB (default 512)")
    p.add_argument("--bzimage", action="store_true", help="minimal kernel as bzImage, not PVH ELF")
    p.add_argument("--cpu-template", default="baseline", choices=["host", "baseline"])
    p.add_argument("--knobs", default="auto", choices=["auto", "on", "off"],
                   help="add GUEST_KNOBS to the kernel command line (auto: on kvm_pvm hosts)")
    p.add_argument("--cmdline", default="", help="extra kernel command line")
    p.add_argument("--timeout", type=float, default=420.0, help="seconds for the whole run")
    p.add_argument("--log", help="console log file (default ./linux-<case>-<cpus>cpu.log)")
    p.add_argument("--kernel", help="boot this kernel instead of the guest kit's")
    p.add_argument("--initrd", help="with --kernel: its initramfs")
    p.add_argument("--qemu", action="store_true",
                   help="VMM is qemu-system-x86_64 (to develop the test without vireo)")
    p.add_argument("-v", "--verbose", action="store_true", help="echo the console")
    a = p.parse_args()
    a.log = a.log or os.path.abspath("linux-%s-%dcpu.log" % (a.case, a.cpus))
    a.timed_out = False

    try:
        why = kvm_problem()
        if why:
            skip(why)
        if not os.access(a.vmm, os.X_OK):
            fail("VMM %r is not an executable" % a.vmm)
        if a.kernel:
            paths = {"KERNEL_CLOUD": a.kernel, "INITRD_CLOUD": a.initrd,
                     "KERNEL_MINIMAL_BZ": a.kernel, "KERNEL_MINIMAL_ELF": a.kernel,
                     "INITRD": a.initrd}
        else:
            paths, why = kit_paths(a.case == "cloud")
            if why:
                fail(why)
        if a.case == "cloud":
            kernel, initrd = paths.get("KERNEL_CLOUD"), paths.get("INITRD_CLOUD")
            if not kernel:
                skip("no Debian cloud kernel in the guest kit (apt-get download failed or "
                     "linux-image-cloud-amd64 is not in the apt lists)")
        else:
            kernel = paths["KERNEL_MINIMAL_BZ" if a.bzimage else "KERNEL_MINIMAL_ELF"]
            initrd = paths["INITRD"]
        a.boot_initrd = initrd
        test = "reboot" if a.case == "reboot" else "poweroff"
        g, rc, banners, starts = run_guest(a, kernel, initrd, test)
        lines = g.lines
        if a.case == "reboot":
            if banners < 2:
                check_kernel(a, lines, rc)  # explains why there was no reboot
                fail("the guest did not boot a second time (vmm exit %s); last kernel "
                     "line: %s" % (rc, last_kernel_line(lines)))
            log("ok: the guest rebooted and vireo restarted it (%d boots)" % banners)
            if starts == 0:
                panic = [m.group(1) for m in map(RE_PANIC.search, lines) if m]
                why = ("user space did not run: the reboot came from a kernel panic (%s)"
                       % (panic[0] if panic else "no panic line"))
                if kit_has_compat_user(initrd):
                    fail(why)
                log(why)
            return 0
        check_kernel(a, lines, rc)
        check_user(a, lines, rc)
        log("PASS")
        return 0
    except Verdict as v:
        print(("SKIP: " if v.code == SKIP else "FAIL: ") + v.msg, flush=True)
        if v.code != SKIP and os.path.exists(a.log):
            with open(a.log, "rb") as f:
                tail = f.read().decode("utf-8", "replace").splitlines()[-40:]
            print("\n".join("    | " + l for l in tail))
        return v.code


if __name__ == "__main__":
    sys.exit(main())
