#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Network throughput through a guest: Vireo against QEMU, same guest, same backend.

    run.py [--build DIR] [--vireo PATH] [--qemu PATH] [--elf PATH] [--rounds N]
           [--cases a,b,...] [--vmms vireo,qemu] [--quick] [--json] [--keep-logs DIR]

The guest is bench/guest_net/guest_net.c (a polled virtio-net probe guest, see its header).
Runs as root: it creates a network namespace with a TAP (host 10.0.5.1/24, guest 10.0.5.15,
a permanent neighbour entry for the guest's MAC) and a veth "uplink" with a default route (for
passt), re-executes itself inside it, and deletes it at the end. Every case boots the guest under
each VMM in turn, --rounds times (interleaved), and reports medians:

  tap-txrate   guest -> host, 64-byte UDP frames; packets/s from the TAP's rx counters
  tap-rxrate   host -> guest, 60-byte UDP frames blasted by a Python sender; packets/s the guest
               counted over the sender's blast time (the sender's own rate is shown: if the two
               are close, the sender was the limit)
  tap-udpbulk  guest -> host, 1514-byte UDP frames; Mbit/s (Ethernet bytes)
  tap-tcp      guest -> host TCP into a Python socket, TSO (64 KB GSO segments); Mbit/s payload
  tap-tcp-mss  the same without CSUM/TSO negotiated: 1460-byte segments, software checksums
  user-tcp     TCP through user-mode NAT: vireo --net user (passt) vs QEMU -netdev user (slirp)
  user-udp     1514-byte UDP frames through the same NATs; Mbit/s received by a host socket

Timing is host-side: the console lines BENCH-START/BENCH-END are timestamped on arrival, the
TAP counters and the VMM's CPU time (/proc/PID/task/*/schedstat, i.e. user+system in ns, split
into vCPU threads and the rest, plus child processes such as passt) are sampled at both. The
guest busy-polls, so its vCPU thread is always busy: the "I/O CPU" columns (non-vCPU threads +
children) are the device and backend cost, given per gigabit (Mbit/s cases) or per packet.

Exit status: 0, 1 (a run failed), 77 (no root, /dev/kvm, /dev/net/tun or ip).
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
MAC = "52:54:00:12:34:56"
TAP, HOST_IP, GUEST_IP = "gntap0", "10.0.5.1", "10.0.5.15"
UPLINK_IP, UPLINK_GW = "10.0.4.5", "10.0.4.1"
NAT_HOST = "10.0.6.1"  # an address of the namespace on lo: what both NATs reach the host as
PORT_UDP, PORT_UDP_USER, PORT_TCP = 5001, 5002, 5003

# name: (backend, guest mode, unit, guest args (full), guest args (--quick), extra)
CASES = {
    "tap-txrate": ("tap", "txrate", "pps", "count=400000 size=64", "count=20000 size=64"),
    "tap-rxrate": ("tap", "rxrate", "pps", "", ""),
    "tap-rxrate-gso": ("tap", "rxrate", "pps", "rxgso", "rxgso"),
    "tap-udpbulk": ("tap", "udpbulk", "Mbit/s", "count=500000 size=1514", "count=10000 size=1514"),
    "tap-tcp": ("tap", "tcp", "Mbit/s", "bytes=1500000000", "bytes=20000000"),
    "tap-tcp-mss": ("tap", "tcp", "Mbit/s", "bytes=30000000 notso", "bytes=2000000 notso"),
    "user-tcp": ("user", "tcp", "Mbit/s", "bytes=15000000", "bytes=2000000"),
    "user-udp": ("user", "udpbulk", "Mbit/s", "count=150000 size=1514", "count=3000 size=1514"),
}
RX_BLAST = {False: 600000, True: 20000}  # frames the host sends in tap-rxrate


def sh(*cmd, check=True):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check and r.returncode:
        raise RuntimeError("%s: %s" % (" ".join(cmd), r.stdout.strip()))
    return r


# ---- outer: namespace set-up ----------------------------------------------------------------

def outer(a, argv):
    for path, why in (("/dev/kvm", "no usable /dev/kvm"), ("/dev/net/tun", "no /dev/net/tun")):
        try:
            os.close(os.open(path, os.O_RDWR | os.O_CLOEXEC))
        except OSError as e:
            print("SKIP: %s (%s)" % (why, os.strerror(e.errno)))
            return SKIP
    if not shutil.which("ip"):
        print("SKIP: no 'ip' command (iproute2)")
        return SKIP
    ns = "vireo-gn%d" % os.getpid()
    # SIGTERM/SIGHUP unwind through the finally below, which removes the namespace.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(1))
    if sh("ip", "netns", "add", ns, check=False).returncode:
        print("SKIP: cannot create a network namespace (needs root)")
        return SKIP
    try:
        n = ["ip", "-n", ns]
        sh(*n, "link", "set", "lo", "up")
        sh(*n, "tuntap", "add", "dev", TAP, "mode", "tap", "vnet_hdr")
        sh(*n, "addr", "add", HOST_IP + "/24", "dev", TAP)
        sh(*n, "link", "set", TAP, "up")
        sh(*n, "neigh", "replace", GUEST_IP, "lladdr", MAC, "dev", TAP, "nud", "permanent")
        # passt copies its addresses and gateway from the interface with the default route.
        sh(*n, "link", "add", "up0", "type", "veth", "peer", "name", "up1")
        sh(*n, "addr", "add", UPLINK_IP + "/24", "dev", "up0")
        sh(*n, "link", "set", "up0", "up")
        sh(*n, "link", "set", "up1", "up")
        sh(*n, "route", "add", "default", "via", UPLINK_GW)
        sh(*n, "addr", "add", NAT_HOST + "/32", "dev", "lo")
        cmd = ["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__), "--inner"]
        return subprocess.run(cmd + argv).returncode
    except RuntimeError as e:
        print("FAIL: set-up: %s" % e)
        return 1
    finally:
        for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        sh("ip", "netns", "del", ns, check=False)


# ---- inner: host-side measurement ------------------------------------------------------------

def tap_stats():
    d = "/sys/class/net/%s/statistics/" % TAP
    with open(d + "rx_packets") as f1, open(d + "rx_bytes") as f2:
        return int(f1.read()), int(f2.read())


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        if int(st[st.rindex(")") + 2:].split()[1]) == pid:
            out.append(int(d))
    return out


def task_cpu(pid):
    """{tid: (thread name, CPU seconds)} for the threads of pid (schedstat: nanoseconds)."""
    out = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for t in tids:
        try:
            with open("/proc/%d/task/%s/comm" % (pid, t)) as f:
                comm = f.read().strip()
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                out[(pid, int(t))] = (comm, int(f.read().split()[0]) / 1e9)
        except (OSError, ValueError, IndexError):
            continue
    return out


def cpu_sample(pid, kids_pids):
    """Per-thread CPU times of the VMM and its children (cpu_delta compares two samples)."""
    d = task_cpu(pid)
    for k in kids_pids:
        d.update({key: ("child", sec) for key, (_, sec) in task_cpu(k).items()})
    return d


def cpu_delta(c0, c1):
    """(vCPU seconds, other VMM thread seconds, children seconds) between two samples; threads
    that started in between count from zero, threads that ended are lost (the guest waits a
    little after BENCH-END so that the VMM's threads are still there)."""
    vcpu = other = kids = 0.0
    for key, (comm, sec) in c1.items():
        dt = sec - c0.get(key, (comm, 0.0))[1]
        if comm == "child":
            kids += dt
        elif re.match(r"vcpu\d+$|CPU \d+/KVM$", comm):
            vcpu += dt
        else:
            other += dt
    return vcpu, other, kids


class Sink(threading.Thread):
    """Host end of the guest's traffic: a TCP listener or a UDP receiver counting bytes."""

    def __init__(self, kind, port):
        super().__init__(daemon=True)
        self.kind = kind
        self.reset()
        if kind == "tcp":
            self.sock = socket.socket()
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("0.0.0.0", port))
            self.sock.listen(4)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            self.sock.bind(("0.0.0.0", port))
        self.start()

    def reset(self):
        self.bytes = self.packets = 0
        self.first = self.last = None
        self.done = threading.Event()

    def run(self):
        buf = bytearray(1 << 20)
        while True:
            if self.kind == "tcp":
                c, _ = self.sock.accept()
                while True:
                    try:
                        k = c.recv_into(buf)
                    except OSError:
                        break
                    if not k:
                        break
                    self.last = time.monotonic()
                    if self.first is None:
                        self.first = self.last
                    self.bytes += k
                c.close()
                self.done.set()
            else:
                k = self.sock.recv_into(buf)
                self.last = time.monotonic()
                if self.first is None:
                    self.first = self.last
                self.bytes += k
                self.packets += 1


SENDER = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dst, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
p = bytes(18)
t0 = time.monotonic()
for i in range(n):
    try:
        s.sendto(p, (dst, port))
    except OSError:
        pass
t1 = time.monotonic()
print("SENT %d %.6f %.6f" % (n, t0, t1), flush=True)
while True:
    try:
        s.sendto(p, (dst, port + 1))
    except OSError:
        pass
    time.sleep(0.02)
"""


def vmm_command(a, vmm, backend, cmdline):
    if vmm == "vireo":
        net = ("tap=%s" % TAP if backend == "tap" else "user") + ",mac=" + MAC
        return [a.vireo, "run", "--kernel", a.elf, "--memory", "64M", "--cmdline", cmdline,
                "--net", net] + (["--io-poll-us", str(a.io_poll_us)] if a.io_poll_us else [])
    nd = ("tap,id=n0,ifname=%s,script=no,downscript=no,vhost=off" % TAP if backend == "tap"
          else "user,id=n0")
    return [a.qemu, "-name", "guest_net,debug-threads=on", "-M", "q35", "-enable-kvm",
            "-cpu", "host", "-m", "64", "-nodefaults", "-kernel", a.elf,
            "-append", cmdline + " qemu ecam=0xb0000000", "-display", "none",
            "-serial", "stdio", "-monitor", "none",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
            "-netdev", nd, "-device", "virtio-net-pci,netdev=n0,disable-legacy=on,mac=" + MAC]


def guest_cmdline(a, vmm, case, quick):
    backend, mode, _, full, small = CASES[case]
    port = {"tcp": PORT_TCP}.get(mode, PORT_UDP_USER if backend == "user" else PORT_UDP)
    if backend == "tap":
        addr = "ip=%s dst=%s" % (GUEST_IP, HOST_IP)
    elif a.nat_dst == "alias":  # the host as each NAT maps it: passt its gateway, slirp 10.0.2.2
        addr = "dhcp dst=%s" % (UPLINK_GW if vmm == "vireo" else "10.0.2.2")
    else:  # an address of the host itself, the same for both
        addr = "dhcp dst=%s" % NAT_HOST
    return "mode=%s %s port=%d wait=90 %s" % (mode, addr, port, small if quick else full)


def run_one(a, vmm, case, sinks, log):
    backend, mode, unit, _, _ = CASES[case]
    cmdline = guest_cmdline(a, vmm, case, a.quick)
    cmd = vmm_command(a, vmm, backend, cmdline)
    sink = sinks["tcp"] if mode == "tcp" else sinks["udp"] if backend == "user" else None
    if sink:
        sink.reset()
    lines = []
    ev = {}
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    sender = None
    kids = []
    t0 = time.monotonic()
    try:
        while True:
            line = proc.stdout.readline()
            now = time.monotonic()
            if not line:
                break
            line = line.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line)
            if line.startswith("BENCH-START"):
                st = tap_stats()  # first: the guest is already sending
                kids = children(proc.pid)
                ev["start"] = (now, cpu_sample(proc.pid, kids), st)
                if mode == "rxrate":
                    sender = subprocess.Popen(
                        [sys.executable, "-c", SENDER, GUEST_IP, str(PORT_UDP),
                         str(RX_BLAST[a.quick])], stdout=subprocess.PIPE)
            elif line.startswith("BENCH-END"):
                st = tap_stats()
                ev["end"] = (now, cpu_sample(proc.pid, kids), st)
                ev["guest"] = [int(x) for x in line.split()[2:4]]
            elif re.match(r"PROBE guest_net: (PASS|FAIL)", line):
                ev["verdict"] = line
            if now - t0 > a.timeout:
                break
    finally:
        if sender:
            sender.kill()
            sent_line = sender.stdout.read().decode()
            sender.wait()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if log:
        with open(os.path.join(log, "%s-%s-%d.log" % (case, vmm, int(t0 * 1000))), "w") as f:
            f.write(" ".join(cmd) + "\n" + "\n".join(lines) + "\n")
    if not ev.get("verdict", "").endswith("PASS") or "start" not in ev or "end" not in ev:
        return {"error": "no PASS (%s): %s" % (ev.get("verdict"), " | ".join(lines[-4:]))}
    (ts, c0, s0), (te, c1, s1) = ev["start"], ev["end"]
    gframes, gbytes = ev["guest"]
    vcpu, io, kids = cpu_delta(c0, c1)
    r = {"seconds": te - ts, "vcpu_cpu": vcpu, "io_cpu": io, "child_cpu": kids}
    if mode == "tcp":
        if not sink.done.wait(5) or sink.bytes != gbytes:
            return {"error": "host received %d of %d TCP bytes" % (sink.bytes, gbytes)}
        r["seconds"] = sink.last - sink.first
        r["bytes"], r["packets"] = sink.bytes, gframes
    elif mode == "rxrate":
        m = re.search(r"SENT (\d+) ([\d.]+) ([\d.]+)", sent_line)
        if not m:
            return {"error": "sender did not finish"}
        r["seconds"] = float(m.group(3)) - float(m.group(2))
        r["packets"], r["bytes"] = gframes, gbytes
        r["offered_pps"] = int(m.group(1)) / r["seconds"]
    elif backend == "tap":
        # Frames counted between the two samples over the time between them: the guest starts
        # sending as soon as it has printed START, before the host reads the line.
        r["packets"], r["bytes"] = s1[0] - s0[0], s1[1] - s0[1]
        if r["packets"] < 0.8 * gframes:
            return {"error": "TAP saw %d of %d frames" % (r["packets"], gframes)}
    else:
        time.sleep(0.3)  # late datagrams
        r["packets"], r["bytes"] = sink.packets, sink.bytes + 42 * sink.packets
        r["sent_bytes"] = gbytes
        if not r["packets"]:
            return {"error": "no datagram reached the host"}
    r["pps"] = r["packets"] / r["seconds"]
    r["mbps"] = r["bytes"] * 8 / r["seconds"] / 1e6
    r["rate"] = r["pps"] if unit == "pps" else r["mbps"]
    host = r["io_cpu"] + r["child_cpu"]
    # CPU per gigabit (Mbit/s cases) or microseconds per packet
    if unit == "pps":
        r["io_per_unit"] = host / max(r["packets"], 1) * 1e6
        r["all_per_unit"] = (host + r["vcpu_cpu"]) / max(r["packets"], 1) * 1e6
    else:
        gbit = r["bytes"] * 8 / 1e9
        r["io_per_unit"] = host / gbit
        r["all_per_unit"] = (host + r["vcpu_cpu"]) / gbit
    return r


def med(xs):
    return statistics.median(xs) if xs else None


def fmt(x, unit):
    if x is None:
        return "-"
    return ("%.0f" % x) if unit == "pps" or x >= 100 else "%.1f" % x


def inner(a):
    sinks = {"tcp": Sink("tcp", PORT_TCP), "udp": Sink("udp", PORT_UDP_USER)}
    # Traffic to PORT_UDP on the TAP goes to a bound socket that nobody reads (no ICMP errors).
    quiet = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    quiet.bind((HOST_IP, PORT_UDP))
    results = {c: {v: [] for v in a.vmms} for c in a.cases}
    failed = 0
    for rnd in range(a.rounds):
        for case in a.cases:
            order = a.vmms if rnd % 2 == 0 else list(reversed(a.vmms))
            for vmm in order:
                r = run_one(a, vmm, case, sinks, a.keep_logs)
                results[case][vmm].append(r)
                if "error" in r:
                    failed += 1
                    print("round %d %-12s %-5s FAIL %s" % (rnd + 1, case, vmm, r["error"]),
                          flush=True)
                elif a.verbose or not a.json:
                    extra = (" (sender %.0f pps)" % r["offered_pps"]) if "offered_pps" in r else ""
                    print("round %d %-12s %-5s %10s %-6s %.2f s, I/O CPU %.2f s vCPU %.2f s "
                          "children %.2f s%s" % (rnd + 1, case, vmm,
                                                 fmt(r["rate"], CASES[case][2]), CASES[case][2],
                                                 r["seconds"], r["io_cpu"], r["vcpu_cpu"],
                                                 r["child_cpu"], extra), flush=True)
    summary = {}
    for case in a.cases:
        unit = CASES[case][2]
        s = {}
        for vmm in a.vmms:
            ok = [r for r in results[case][vmm] if "error" not in r]
            s[vmm] = {"rate": med([r["rate"] for r in ok]),
                      "min": min([r["rate"] for r in ok], default=None),
                      "max": max([r["rate"] for r in ok], default=None),
                      "io_per_unit": med([r["io_per_unit"] for r in ok]),
                      "all_per_unit": med([r["all_per_unit"] for r in ok]),
                      "runs": len(ok), "failed": len(results[case][vmm]) - len(ok)}
            if case == "tap-rxrate":
                s[vmm]["offered_pps"] = med([r["offered_pps"] for r in ok])
        if "vireo" in s and "qemu" in s and s["vireo"]["rate"] and s["qemu"]["rate"]:
            s["ratio"] = s["vireo"]["rate"] / s["qemu"]["rate"]
            if s["vireo"]["io_per_unit"] is not None and s["qemu"]["io_per_unit"]:
                s["io_ratio"] = s["vireo"]["io_per_unit"] / s["qemu"]["io_per_unit"]
        summary[case] = s
    if a.json:
        json.dump({"cases": summary, "runs": results, "rounds": a.rounds, "quick": a.quick},
                  sys.stdout, indent=1)
        print()
    else:
        cpu_unit = {"pps": "us/pkt", "Mbit/s": "s/Gbit"}
        print("\nmedians of %d round(s); I/O CPU = VMM non-vCPU threads + children (passt), "
              "per packet or per gigabit\n" % a.rounds)
        hdr = "%-12s %-7s" % ("case", "unit")
        for v in a.vmms:
            hdr += " %10s" % v
        if len(a.vmms) == 2:
            hdr += " %8s" % "v/q"
        for v in a.vmms:
            hdr += " %14s" % ("%s I/O CPU" % v)
        if len(a.vmms) == 2:
            hdr += " %8s" % "v/q CPU"
        print(hdr)
        for case in a.cases:
            unit, s = CASES[case][2], summary[case]
            line = "%-12s %-7s" % (case, unit)
            for v in a.vmms:
                line += " %10s" % fmt(s[v]["rate"], unit)
            if len(a.vmms) == 2:
                line += " %8s" % ("%.2fx" % s["ratio"] if "ratio" in s else "-")
            for v in a.vmms:
                x = s[v]["io_per_unit"]
                line += " %14s" % ("-" if x is None else "%.3f %s" % (x, cpu_unit[unit]))
            if len(a.vmms) == 2:
                line += " %8s" % ("%.2fx" % s["io_ratio"] if "io_ratio" in s else "-")
            print(line)
        print("\nspread of the rates (min..max over the rounds):")
        for case in a.cases:
            unit, s = CASES[case][2], summary[case]
            print("%-12s " % case + ", ".join("%s %s..%s" % (v, fmt(s[v]["min"], unit),
                                                             fmt(s[v]["max"], unit))
                                              for v in a.vmms))
        if "tap-rxrate" in summary:
            print("\ntap-rxrate sender rate (offered): " + ", ".join(
                "%s %s pps" % (v, fmt(summary["tap-rxrate"][v].get("offered_pps"), "pps"))
                for v in a.vmms))
    return 1 if failed else 0


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default=os.path.join(HERE, "..", "..", "build"),
                   help="meson build directory (default: build/)")
    p.add_argument("--vireo", help="vireo binary (default BUILD/src/cli/vireo)")
    p.add_argument("--qemu", default=shutil.which("qemu-system-x86_64") or "qemu-system-x86_64")
    p.add_argument("--elf", help="guest (default BUILD/bench/guest_net/guest-net)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--vmms", default="vireo,qemu")
    p.add_argument("--io-poll-us", type=int, default=0, metavar="US",
                   help="vireo --io-poll-us US (its I/O loop polls before sleeping)")
    p.add_argument("--quick", action="store_true", help="tiny counts (smoke test)")
    p.add_argument("--timeout", type=float, default=120, help="per run, seconds")
    p.add_argument("--nat-dst", choices=["host", "alias"], default="host",
                   help="user-* cases: send to %s, an address of the host (default), or to each "
                   "NAT's alias for the host (passt: its gateway, TCP only; slirp: 10.0.2.2)"
                   % NAT_HOST)
    p.add_argument("--json", action="store_true")
    p.add_argument("--keep-logs", metavar="DIR", help="save every run's console here")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    argv = sys.argv[1:]
    a = p.parse_args()
    a.vireo = os.path.abspath(a.vireo or os.path.join(a.build, "src", "cli", "vireo"))
    a.elf = os.path.abspath(a.elf or os.path.join(a.build, "bench", "guest_net", "guest-net"))
    a.cases = [c for c in a.cases.split(",") if c]
    a.vmms = [v for v in a.vmms.split(",") if v]
    bad = [c for c in a.cases if c not in CASES] + [v for v in a.vmms if v not in ("vireo", "qemu")]
    if bad:
        p.error("unknown case or VMM: %s" % ", ".join(bad))
    if a.keep_logs:
        a.keep_logs = os.path.abspath(a.keep_logs)
        os.makedirs(a.keep_logs, exist_ok=True)
    if a.inner:
        return inner(a)
    for path in [a.elf] + ([a.vireo] if "vireo" in a.vmms else []):
        if not os.path.exists(path):
            print("FAIL: %s does not exist (build first, or --build/--vireo/--elf)" % path)
            return 1
    if "qemu" in a.vmms and not shutil.which(a.qemu):
        print("no %s: QEMU left out" % a.qemu, file=sys.stderr)
        a.vmms.remove("qemu")
        argv += ["--vmms", ",".join(a.vmms)]
    if os.geteuid() != 0:
        print("SKIP: needs root (network namespace, TAP)")
        return SKIP
    argv = [x for x in argv]
    for opt, val in (("--vireo", a.vireo), ("--elf", a.elf)):
        argv += [opt, val]
    return outer(a, argv)


if __name__ == "__main__":
    sys.exit(main())
