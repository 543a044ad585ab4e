#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Run one probe guest under vireo (or QEMU, for validating the probes) and judge it.

    run_probe.py VMM PROBE_ELF [options]

The probe prints "PROBE <name>: PASS" or "PROBE <name>: FAIL <reason>" on COM1 (vireo's
stdout) and powers off; every boot prints "PROBE-BOOT <name>". The runner checks the verdict,
the expected output lines, the number of boots and the VMM's exit status. Exit status: 0 pass,
1 fail, 77 skip (no usable /dev/kvm). Python standard library only.
"""
import argparse
import atexit
import errno
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time

SKIP = 77
VIREO_EXIT = {0: "powered off", 1: "error", 2: "bad usage", 3: "guest crashed the vCPU"}


def parse_size_mib(s):
    m = re.fullmatch(r"(\d+)([KMG]?)", s.strip().upper())
    if not m:
        raise argparse.ArgumentTypeError("bad size %r" % s)
    n = int(m.group(1))
    return {"K": n // 1024, "M": n, "G": n * 1024, "": n // (1024 * 1024)}[m.group(2)]


def kvm_usable():
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return "cannot open /dev/kvm: %s" % os.strerror(e.errno)
    os.close(fd)
    return None


def disk_pattern(offset, n):
    """The bytes make_disk writes at offset (probes check them): sector-dependent."""
    return bytes((((offset + i) >> 9) * 7 + ((offset + i) & 511) * 3 + 1) & 0xff for i in range(n))


def make_disk(spec):
    """--disk SIZE[,OPTS]: a sparse temporary raw file of SIZE whose first and last 64 sectors
    hold disk_pattern(); removed at exit. Returns (path, size in bytes, OPTS or '')."""
    size_s, _, opts = spec.partition(",")
    size = parse_size_mib(size_s) << 20
    if size < 128 * 512:
        raise SystemExit("run_probe.py: --disk %s: at least 64 KiB" % spec)
    fd, path = tempfile.mkstemp(prefix="vireo-probe-disk-", suffix=".img")
    atexit.register(lambda: os.path.exists(path) and os.unlink(path))
    with os.fdopen(fd, "wb") as f:
        f.truncate(size)
        for off in (0, size - 64 * 512):
            f.seek(off)
            f.write(disk_pattern(off, 64 * 512))
    return path, size, opts


def disk_command(a):
    """The VMM arguments that attach the --disk file."""
    if not a.disk:
        return []
    path, _, opts = a.disk_file
    if a.qemu:
        serial = [o[len("serial="):] for o in opts.split(",") if o.startswith("serial=")]
        dev = "virtio-blk-pci,drive=disk0,disable-legacy=on" + (",serial=" + serial[0] if serial else "")
        ro = ",readonly=on" if "readonly=on" in opts.split(",") else ""
        return ["-drive", "file=%s,if=none,id=disk0,format=raw%s" % (path, ro), "-device", dev]
    return ["--disk", path + ("," + opts if opts else "")]


def build_command(a, name, cmdline):
    if a.qemu:
        cmd = [a.vmm, "-M", "q35", "-enable-kvm", "-cpu", "host", "-smp", str(a.cpus),
               "-m", str(a.memory), "-kernel", a.elf,
               "-append", cmdline + " qemu ecam=0xb0000000",
               "-display", "none", "-serial", "stdio", "-monitor", "none",
               "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
               "-device", "virtio-rng-pci,disable-legacy=on"]
        if a.on_reboot == "exit":
            cmd.append("-no-reboot")
    else:
        cmd = [a.vmm, "run", "--kernel", a.elf, "--cmdline", cmdline, "--cpus", str(a.cpus),
               "--memory", "%dM" % a.memory]
        if a.on_reboot:
            cmd += ["--on-reboot", a.on_reboot]
    return cmd + disk_command(a) + a.vmm_arg


class Run:
    def __init__(self, proc):
        self.proc = proc
        self.out = b""
        self.err = b""
        self.lines = []      # complete stdout lines, decoded, without CR/LF
        self.partial = b""

    def pump(self, timeout):
        """Read whatever is available on stdout/stderr within timeout seconds."""
        fds = [f for f in (self.proc.stdout, self.proc.stderr) if f is not None and not f.closed]
        if not fds:
            time.sleep(timeout)
            return False
        ready, _, _ = select.select(fds, [], [], timeout)
        got = False
        for f in ready:
            data = os.read(f.fileno(), 65536)
            if not data:
                f.close()
                continue
            got = True
            if f is self.proc.stdout:
                self.out += data
                self.partial += data
                *done, self.partial = self.partial.split(b"\n")
                self.lines += [d.decode("utf-8", "replace").rstrip("\r") for d in done]
            else:
                self.err += data
        return got

    def all_lines(self):
        tail = self.partial.decode("utf-8", "replace").rstrip("\r")
        return self.lines + ([tail] if tail else [])

    def streams_open(self):
        return any(f is not None and not f.closed for f in (self.proc.stdout, self.proc.stderr))


def tail(text, n=40):
    lines = text.splitlines()
    cut = lines[-n:]
    pre = "    [... %d lines cut]\n" % (len(lines) - n) if len(lines) > n else ""
    return pre + "\n".join("    | " + l for l in cut)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("vmm")
    p.add_argument("elf")
    p.add_argument("--name", help="probe name (default: from the ELF name probe-<name>)")
    p.add_argument("--cpus", type=int, default=1)
    p.add_argument("--memory", type=parse_size_mib, default=64, help="e.g. 64M")
    p.add_argument("--cmdline", default="", help="extra probe command line (cpus= and mem= are added)")
    p.add_argument("--on-reboot", choices=["exit", "restart"])
    p.add_argument("--stdin", help="text written to the VMM's stdin (backslash escapes allowed; "
                   "{bulkN} stands for N bytes of abc...zabc...)")
    p.add_argument("--stdin-after", help="regex: write --stdin once a console line matches it")
    p.add_argument("--expect", action="append", default=[], help="regex a console line must match")
    p.add_argument("--reject", action="append", default=[], help="regex no console line may match")
    p.add_argument("--no-pass", action="store_true", help="no verdict line expected (the VM exits first)")
    p.add_argument("--expect-exit", type=int, default=0)
    p.add_argument("--boots", type=int, help="expected number of boots (default 1)")
    p.add_argument("--max-stderr-lines", type=int,
                   help="fail if the VMM writes more lines than this on stderr (log flooding)")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--exit-grace", type=float, default=5.0, help="seconds allowed between verdict and exit")
    p.add_argument("--vmm-arg", action="append", default=[])
    p.add_argument("--disk", help="SIZE[,OPTS]: attach a temporary raw disk of SIZE (e.g. 8M) as "
                   "--disk FILE[,OPTS]; the probe gets disk=<bytes> (and serial=) on its command line")
    p.add_argument("--disk-expect", action="append", default=[], metavar="OFFSET:TEXT",
                   help="after the run, the --disk file must hold TEXT at byte OFFSET")
    p.add_argument("--run-after", metavar="REGEX",
                   help="start the --run command once a console line matches REGEX")
    p.add_argument("--run", metavar="CMD",
                   help="shell command run during the test (after --run-after); it must exit 0 "
                   "within --timeout (e.g. a ping of the guest)")
    p.add_argument("--qemu", action="store_true", help="VMM is qemu-system-x86_64 (probe validation)")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args()

    name = a.name or re.sub(r"^probe-", "", os.path.basename(a.elf))
    boots_expected = a.boots or 1
    why = kvm_usable()
    if why:
        print("SKIP: %s" % why)
        return SKIP
    if not os.access(a.vmm, os.X_OK):
        print("FAIL: VMM %r is not an executable" % a.vmm)
        return 1
    if not os.path.isfile(a.elf):
        print("FAIL: probe %r does not exist" % a.elf)
        return 1

    a.disk_file = make_disk(a.disk) if a.disk else None
    disk_words = []
    if a.disk_file:
        disk_words = ["disk=%d" % a.disk_file[1]] + [o for o in a.disk_file[2].split(",")
                                                     if o.startswith("serial=")]
    cmdline = " ".join(x for x in [a.cmdline, "cpus=%d" % a.cpus, "mem=%d" % a.memory,
                                   "epoch=%d" % int(time.time())] + disk_words if x)
    cmd = build_command(a, name, cmdline)
    stdin_data = None
    if a.stdin:
        # backslash escapes, then {bulkN}: N bytes of the pattern abc..zabc.. (probe-checked)
        text = a.stdin.encode().decode("unicode_escape")
        text = re.sub(r"\{bulk(\d+)\}",
                      lambda m: "".join(chr(97 + i % 26) for i in range(int(m.group(1)))), text)
        stdin_data = text.encode("latin-1")
    print("run:", " ".join(repr(c) if (" " in c or not c) else c for c in cmd), flush=True)

    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
    except OSError as e:
        print("FAIL: cannot start %s: %s" % (a.vmm, e))
        return 1
    run = Run(proc)
    verdict_re = re.compile(r"^PROBE %s: (PASS|FAIL)( .*)?$" % re.escape(name))
    boot_re = re.compile(r"^PROBE-BOOT %s\b" % re.escape(name))
    stdin_after = re.compile(a.stdin_after) if a.stdin_after else None
    stdin_sent = False
    side = None  # the --run command
    verdict_at = None
    failure = None
    timed_out = False

    def feed():
        nonlocal stdin_sent
        stdin_sent = True
        try:
            proc.stdin.write(stdin_data)
            proc.stdin.flush()
        except OSError as e:
            if e.errno != errno.EPIPE:
                raise

    if stdin_data is not None and stdin_after is None:
        feed()
    while True:
        now = time.monotonic()
        if now - t0 > a.timeout:
            timed_out = True
            break
        if verdict_at is not None and now - verdict_at > a.exit_grace:
            break
        if proc.poll() is not None and not run.streams_open():
            break
        run.pump(0.05)
        lines = run.all_lines()
        if stdin_after and not stdin_sent and any(stdin_after.search(l) for l in lines):
            feed()
        if a.run and side is None and (not a.run_after or
                                       any(re.search(a.run_after, l) for l in lines)):
            side = subprocess.Popen(a.run, shell=True, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        if verdict_at is None and any(verdict_re.match(l) for l in lines):
            verdict_at = time.monotonic()
        if sum(1 for l in lines if boot_re.match(l)) > boots_expected:
            failure = "the guest booted more than %d time(s) (unexpected reset or reboot loop)" % boots_expected
            break

    side_out, side_rc = "", None
    if side is not None:
        try:
            side_out = side.communicate(timeout=max(1.0, a.timeout - (time.monotonic() - t0)))[0]
        except subprocess.TimeoutExpired:
            os.killpg(side.pid, signal.SIGKILL)
            side_out = side.communicate()[0]
        side_out = side_out.decode("utf-8", "replace")
        side_rc = side.returncode
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        still_running = True
    else:
        still_running = False
    while run.streams_open() and run.pump(0.1):
        pass
    elapsed = time.monotonic() - t0
    rc = proc.returncode
    if a.qemu and rc == 1:
        rc = 0  # isa-debug-exit(0) -> 1: the probe's poweroff fallback under QEMU
    lines = run.all_lines()
    verdicts = [verdict_re.match(l) for l in lines if verdict_re.match(l)]
    boots = sum(1 for l in lines if boot_re.match(l))

    if (boots == 0 and not a.qemu and rc not in (0, None) and
            re.search(r"--cpus \d+: .*host CPUs", run.err.decode("utf-8", "replace"))):
        # The VMM refuses to overcommit vCPUs on this host: not a failure of the probe.
        line = [l for l in run.err.decode("utf-8", "replace").splitlines() if "--cpus" in l][0]
        print("SKIP: %s" % line.strip())
        return SKIP
    if (a.disk and boots == 0 and not a.qemu and rc not in (0, None) and
            "unknown option '--disk'" in run.err.decode("utf-8", "replace")):
        print("SKIP: this vireo has no --disk option")
        return SKIP
    if failure is None:
        fails = [m for m in verdicts if m.group(1) == "FAIL"]
        errors = [l for l in lines if l.startswith("PROBE-ERROR")]
        if fails:
            failure = "probe reported: FAIL%s" % (fails[0].group(2) or "")
        elif errors:
            failure = errors[0]
        elif boots == 0:
            failure = ("no 'PROBE-BOOT %s' line on the console: the guest never ran or the "
                       "serial console does not reach stdout" % name)
        elif timed_out and not verdicts and not a.no_pass:
            failure = ("timed out after %.0f s without a verdict (the guest hung, or the VMM "
                       "stopped running it)" % a.timeout)
        elif a.no_pass and verdicts:
            failure = "a verdict line appeared but the VM should have exited before it"
        elif not a.no_pass and not verdicts:
            failure = "no verdict line ('PROBE %s: PASS') on the console" % name
        elif len(verdicts) > 1:
            failure = "%d verdict lines (expected one)" % len(verdicts)
    if failure is None and boots != boots_expected:
        failure = "the guest booted %d time(s), expected %d" % (boots, boots_expected)
    if failure is None:
        for e in a.expect:
            if not any(re.search(e, l) for l in lines):
                failure = "expected console output not seen: /%s/" % e
                break
    if failure is None:
        for e in a.reject:
            bad = [l for l in lines if re.search(e, l)]
            if bad:
                failure = "unwanted console output: %r" % bad[0]
                break
    if failure is None and a.max_stderr_lines is not None:
        n = len(run.err.decode("utf-8", "replace").splitlines())
        if n > a.max_stderr_lines:
            failure = ("the VMM wrote %d lines on stderr, more than %d: guest-triggered messages "
                       "are not rate-limited" % (n, a.max_stderr_lines))
    if failure is None and a.run and side is None:
        failure = "never saw /%s/ to start --run after" % a.run_after
    if failure is None and a.run and side_rc != 0:
        failure = "--run %r exited with %s:\n%s" % (a.run, side_rc, tail(side_out))
    if failure is None and stdin_after is not None and not stdin_sent:
        failure = "never saw /%s/ to send stdin after" % a.stdin_after
    if failure is None and timed_out:
        failure = ("timed out after %.0f s%s" % (a.timeout, " after the verdict: the VM did not exit"
                                                  if verdicts else ""))
    if failure is None and still_running:
        failure = "the VM was still running %.0f s after the verdict (poweroff did not exit)" % a.exit_grace
    def describe(code):
        if code < 0:
            return "killed by signal %d" % -code
        return "%d%s" % (code, "" if a.qemu or code not in VIREO_EXIT else " (%s)" % VIREO_EXIT[code])

    if failure is None and a.disk_expect:
        with open(a.disk_file[0], "rb") as f:
            for e in a.disk_expect:
                off, _, text = e.partition(":")
                f.seek(int(off, 0))
                got = f.read(len(text.encode()))
                if got != text.encode():
                    failure = "disk byte %s: %r, expected %r" % (off, got, text.encode())
                    break
    if failure is None and rc != a.expect_exit:
        failure = "VMM exit status %s, expected %d" % (describe(rc), a.expect_exit)

    if failure is None:
        print("PASS: probe %s (exit %d, %d boot(s), %.1f s)" % (name, rc, boots, elapsed))
        if a.verbose:
            print("console:\n" + tail(run.out.decode("utf-8", "replace"), 200))
        return 0
    print("FAIL: probe %s: %s" % (name, failure))
    print("  VMM exit status: %s, %.1f s" % ("killed by the runner" if still_running else describe(rc),
                                              elapsed))
    print("  console (stdout):\n" + (tail(run.out.decode("utf-8", "replace")) or "    (empty)"))
    print("  VMM stderr:\n" + (tail(run.err.decode("utf-8", "replace")) or "    (empty)"))
    return 1


if __name__ == "__main__":
    sys.exit(main())
