#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Linux network test with user space: TCP between a Linux guest on virtio-net and the host,
in both directions, data checked by SHA-256, one boot.

    user_net.py VIREO --mode tap|user [--queues N] [--timeout S] [--log FILE] [-v]

The guest kit's minimal kernel and busybox initramfs boot with `vireo.script=vda`: /init runs a
shell script the test puts on a small raw virtio-blk disk (tools/guest-kit/init.sh), then
powers off. A second read-only disk, vdb, holds SIZE random bytes from the host. The script
uses busybox only (sh built-ins, nc, dd, stat, ls, grep, taskset, usleep, cat); its results
come back as "UNET: ..." console lines. Host side, Python threads serve one TCP connection
each, listening before the boot. On the nested KVM of the Vireo CI machine a fork costs about
1.5 s and user-space computation is very slow (busybox sha256sum: ~90 s per MiB; head -c:
~75 s per MiB; reading /dev/urandom: ~25 s per MiB), so the guest hashes nothing and data
moves through `nc HOST PORT -e dd ... bs=65536` (busybox nc on its own copies 1 KiB per
select/read/write round; dd makes 64 KiB writes, which TCP turns into TSO super-frames):

  guest -> host  `nc HOST PORT -e dd if=/dev/vdb bs=65536`: the host's sink must receive
                 exactly the data disk (length and SHA-256).
  host -> guest  `nc HOST PORT -e dd of=/tmp/in bs=65536` from a host source sending SIZE
                 other random bytes; the guest's file must have SIZE bytes (stat), and the
                 guest then sends it back to a third host socket, where its SHA-256 must be
                 the one of the bytes sent.

Modes:
  tap   a TAP with vnet_hdr (multi_queue with --queues N > 1) in a network namespace made for
        the test (deleted afterwards), host side HOST_ADDR/24; the guest gets GUEST_ADDR by a
        static ip= kernel parameter; --net tap=IF[,queues=N]. Offload checks, each of which
        fails without TSO/GSO (a frame without segmentation offload is at most MTU + 14 =
        MAX_FRAME = 1514 bytes, so no average of frame sizes can exceed that):
          - the guest negotiated CSUM, GUEST_CSUM, GUEST_TSO4, HOST_TSO4, MRG_RXBUF
            (/sys/class/net/eth0/device/features);
          - guest -> host: the guest's eth0 tx_bytes/tx_packets over the transfer (its
            driver counts one packet per TSO super-frame) and the TAP's rx counters on the
            host (one per frame vireo wrote, before the host kernel segments) both average
            more than 1.5 x 1514 bytes: the guest used TSO and vireo passed the GSO frames
            to the TAP whole (measured: ~2900 bytes per frame);
          - host -> guest: the TAP's tx counters (frames the host kernel handed to vireo)
            average more than 1514 bytes, i.e. some were GSO super-frames, which needs
            vireo's TUNSETOFFLOAD; and the guest's eth0 rx counters (frames vireo delivered,
            counted before GRO) show the same number of frames (within 4) and bytes: each
            went into the guest's mergeable receive buffers whole. The host's TCP sends
            into the slow guest's receive window mostly one segment at a time when the
            machine is busy, so the average can be only a little above 1514 (measured:
            1530 on a loaded machine, 2978 on a quieter one).
        --queues N (N > 1, with --cpus N): the guest has rx-0..rx-N-1 and tx-0..tx-N-1, and
        vireo's status (control socket) shows queue_pairs N; the guest -> host transfer runs
        pinned to CPU 0 (`taskset 1`) and the host -> guest one to CPU N-1, so the driver's
        XPS map sends them on tx-0 and tx-N-1 and the TAP's flow table steers each flow's
        packets back to the queue it came from: every virtioN-input.I interrupt count of the
        guest (/proc/interrupts, one MSI-X vector per queue) must grow over the transfers.
  user  --net user (passt) with hostfwd=tcp:127.0.0.1:HPORT-:GPORT, in the host's own
        network namespace (no root needed), the guest configured by ip=dhcp from passt's
        DHCP; HOST is passt's gateway address, which passt maps to the host's loopback
        (the host's listeners are on 127.0.0.1). Also port forwarding, both ways at once:
        the guest runs an echo, `nc -l -p GPORT -e cat`, and prints "listening"; the host
        connects to 127.0.0.1:HPORT (again if passt's connection to the guest is refused
        because nc is not listening yet), sends FWD_SIZE random bytes, half-closes, and
        must read the same bytes back (SHA-256). The host's sinks send one byte when they
        accept ("poke"): Debian 12's passt (0.0~git20230309) resets a guest-initiated
        connection whose host side sends nothing about 20 s after the handshake (its
        "ACK due from the guest" flag is never cleared; fixed upstream in passt 2023_03_29;
        docs/virtio.md, "User-mode networking"), and a 4 MiB upload from this slow guest
        takes longer than that (measured: reset after 1.8-3.2 MB in 3 of 3 runs without
        the poke, 2 of 2 complete with it). No offload check: vireo's passt backend carries
        plain Ethernet frames, MTU 1500 (the frame counts are printed).

Each transfer's duration (guest clock, /proc/uptime) and the resulting rate are printed; on
the nested KVM of the Vireo CI machine these figures say little about vireo itself.

What this does not check: UDP, IPv6, vhost-net, more than one connection per direction at a
time, checksum offload separately from TSO (TSO implies it), TAP and passt error paths.

Exit status: 0 pass, 1 fail, 77 skip (no /dev/kvm; on the nested kvm_pvm KVM: a kit without
its i386 busybox, a KVM emulation failure or a boot that did not reach /init in time;
tap: not root, no ip, no /dev/net/tun, no network namespace; user: no passt or no IPv4
default route).
"""
import argparse
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from smoke import (GUEST_KNOBS, USER_KNOBS, SKIP, Guest, Verdict, fail,  # noqa: E402
                   host_kvm_hides_cpuid, kit_paths, kvm_problem, last_kernel_line, skip,
                   user_space_problem, vmm_error, RE_TIMESTAMP)
from kernel_net import host_ipv4, sh  # noqa: E402
sys.path.insert(0, os.path.join(HERE, "..", "support"))
from vireo_ctl import status as vireo_status  # noqa: E402

SIZE = 4 << 20           # each TCP transfer (the data disk's size), both modes
FWD_SIZE = 1 << 20       # echoed through the forwarded port (user mode)
GUEST_MAC = "0e:76:72:4b:4e:02"
TAP = "vtap0"
HOST_ADDR = "10.0.2.1"
GUEST_ADDR = "10.0.2.15"
GUEST_FWD_PORT = 5555
MAX_FRAME = 1514         # MTU 1500 + Ethernet header: the largest frame without GSO
GSO_AVG = 1.5 * MAX_FRAME
# virtio-net feature bits the tap mode wants negotiated
WANT_FEATURES = {"CSUM": 0, "GUEST_CSUM": 1, "GUEST_TSO4": 7, "HOST_TSO4": 11, "MRG_RXBUF": 15}
FEATURE_MQ = 22
RE_UNET = re.compile(r"UNET: (\S+) ?(.*)$")
RE_KV = re.compile(r"(\w+)=(\S*)")
RE_IPCONFIG = re.compile(r"device=eth0, hwaddr=(\S+), ipaddr=(\S+), mask=(\S+), gw=(\S+)")
# what busybox sh prints when an applet dies or is missing (lines without a kernel timestamp)
RE_ILLEGAL = re.compile(r"Illegal instruction|Segmentation fault|: not found|applet not found")


def log(msg):
    print("user-net: " + msg, flush=True)


def listener(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 0))
    s.listen(1)
    return s


def tap_stats():
    d = "/sys/class/net/%s/statistics/" % TAP
    out = {}
    for k in ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes"):
        with open(d + k) as f:
            out[k] = int(f.read())
    return out


class Server:
    """One TCP connection on addr in a thread: 'sink' hashes what it receives until EOF
    (with poke, after sending the peer one byte: see the docstring on passt), 'source' sends
    data, then waits for the peer's EOF. Records the TAP counters (counters: a function or
    None) at accept and at the end, and the time between them."""

    def __init__(self, addr, kind, data=None, counters=None, timeout=600, poke=False):
        self.sock = listener(addr)
        self.port = self.sock.getsockname()[1]
        self.kind, self.data, self.counters, self.timeout = kind, data, counters, timeout
        self.poke = poke
        self.sha = self.length = self.secs = self.error = None
        self.c0 = self.c1 = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.sock.settimeout(self.timeout)
            c, _ = self.sock.accept()
            c.settimeout(120)
            t0 = time.monotonic()
            self.c0 = self.counters() if self.counters else None
            h, n = hashlib.sha256(), 0
            if self.kind == "source":
                c.sendall(self.data)
                c.shutdown(socket.SHUT_WR)
            elif self.poke:
                c.sendall(b"!")
            while True:
                d = c.recv(1 << 16)
                if not d:
                    break
                h.update(d)
                n += len(d)
            self.secs = time.monotonic() - t0
            self.c1 = self.counters() if self.counters else None
            c.close()
            self.sha, self.length = h.hexdigest(), n
        except OSError as e:
            self.error = "%s: %s" % (type(e).__name__, e)
        finally:
            self.sock.close()

    def delta(self, key):
        return self.c1[key] - self.c0[key]


class FwdClient:
    """User mode: connect to the forwarded port once the guest listens (`nc -l -e cat`, an
    echo), send data, half-close, and receive the echo at the same time until EOF."""

    def __init__(self, port, data):
        self.port, self.data = port, data
        self.sha = self.length = self.error = None
        self.attempts = 0
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _once(self):
        c = socket.create_connection(("127.0.0.1", self.port), 10)
        c.settimeout(120)
        sent = []
        t = threading.Thread(target=lambda: sent.append(self._send(c)), daemon=True)
        t.start()
        h, n = hashlib.sha256(), 0
        try:
            while True:
                d = c.recv(1 << 16)
                if not d:
                    break
                h.update(d)
                n += len(d)
        finally:
            t.join(120)
            c.close()
        return h.hexdigest(), n, sent[0] if sent else "sender did not finish"

    def _send(self, c):
        try:
            c.sendall(self.data)
            c.shutdown(socket.SHUT_WR)
            return None
        except OSError as e:
            return "%s: %s" % (type(e).__name__, e)

    def _run(self):
        # passt accepts on the host side before the guest answers: a connection the guest
        # refused (nc not listening yet) ends at once with nothing received: try again.
        for self.attempts in range(1, 21):
            try:
                sha, n, err = self._once()
            except OSError as e:
                self.error = "%s: %s" % (type(e).__name__, e)
                time.sleep(0.5)
                continue
            if n == 0 and err:
                self.error = err
                time.sleep(0.5)
                continue
            self.sha, self.length, self.error = sha, n, err
            return


# ---- the guest's script ----------------------------------------------------------------------

def guest_script(a, host, tx_port, rx_port, echo_port):
    """The shell script /init runs (busybox sh). Forks and user-space CPU work are what is
    slow on the nested KVM (a fork about 1.5 s; sha256sum about 90 s per MiB): counters and
    the clock are read with the shell's read built-in, data moves through dd with 64 KiB
    blocks (busybox nc itself copies 1 KiB per select/read/write round)."""
    pin_tx = pin_rx = ""
    if a.queues > 1:
        pin_tx, pin_rx = "taskset 1 ", "taskset %d " % (1 << (a.queues - 1))
    s = """\
say() { echo "UNET: $*"; }
# centiseconds since boot (/proc/uptime has two decimals) into $now
cs() { read -r u _ </proc/uptime; now=$(( ${u%%.*} * 100 + 1${u#*.} - 100 )); }
# the counter $1 of eth0 into $v
st() { read -r v </sys/class/net/eth0/statistics/$1; }
irqs() { grep virtio /proc/interrupts | while read -r l; do say "irq $1 $l"; done; }
say begin
read -r f </sys/class/net/eth0/device/features
say features $f
say queues $(ls /sys/class/net/eth0/queues)
read -r mtu </sys/class/net/eth0/mtu
say link mtu=$mtu
irqs before
# guest -> host: the data disk, 64 KiB per write(2)
st tx_packets; p=$v; st tx_bytes; b=$v; cs; t=$now
%(pin_tx)snc %(host)s %(tx_port)d -e dd if=/dev/vdb bs=65536
rc=$?
cs; t=$((now - t)); st tx_packets; p=$((v - p)); st tx_bytes; b=$((v - b))
say tx rc=$rc cs=$t packets=$p bytes=$b
# host -> guest into tmpfs, 64 KiB per read(2)
st rx_packets; p=$v; st rx_bytes; b=$v; cs; t=$now
%(pin_rx)snc %(host)s %(rx_port)d -e dd of=/tmp/in bs=65536
rc=$?
cs; t=$((now - t)); st rx_packets; p=$((v - p)); st rx_bytes; b=$((v - b))
say rx rc=$rc cs=$t packets=$p bytes=$b len=$(stat -c %%s /tmp/in)
irqs after
# what arrived goes back for the host to compare
nc %(host)s %(echo_port)d -e dd if=/tmp/in bs=65536
say echo rc=$?
rm -f /tmp/in
""" % {"host": host, "tx_port": tx_port, "rx_port": rx_port, "echo_port": echo_port,
       "pin_tx": pin_tx, "pin_rx": pin_rx}
    if a.mode == "user":
        s += """\
# port forwarding: echo what the host sends through the forwarded port
nc -l -p %(port)d -e cat &
pid=$!
# a bound on the wait: the host may never connect
( i=0; while [ $i -lt 120 ] && kill -0 $pid 2>/dev/null; do usleep 1000000; i=$((i + 1)); done
  kill $pid 2>/dev/null ) &
usleep 500000
say listening
wait $pid
say fwd rc=$?
""" % {"port": GUEST_FWD_PORT}
    s += "say end\n"
    return s


def write_script_disk(path, text):
    data = text.encode()
    data += b"\n" * (-len(data) % 512)
    with open(path, "wb") as f:
        f.write(data)


# ---- the boot ----------------------------------------------------------------------------------

def shell_errors(lines):
    return [l.strip() for l in lines if RE_ILLEGAL.search(l) and not RE_TIMESTAMP.match(l)]


def parse_report(lines):
    """{key: [rest, ...]} of the UNET lines, and the irq lines {'before'|'after': [...]}"""
    rep, irqs = {}, {"before": [], "after": []}
    for l in lines:
        m = RE_UNET.search(l)
        if not m:
            continue
        key, rest = m.group(1), m.group(2)
        if key == "irq":
            when, _, line = rest.partition(" ")
            if when in irqs:
                irqs[when].append(line)
            continue
        rep.setdefault(key, []).append(rest)
    return rep, irqs


def kv(rep, key):
    if key not in rep:
        fail("the guest script printed no '%s' line" % key)
    return dict(RE_KV.findall(rep[key][0]))


def irq_counts(lines, cpus):
    """{name: total count} from /proc/interrupts lines 'N: c0 c1 ... chip ... name'."""
    out = {}
    for l in lines:
        f = l.split()
        if len(f) < cpus + 2 or not f[0].endswith(":"):
            continue
        try:
            out[f[-1]] = sum(int(x) for x in f[1:1 + cpus])
        except ValueError:
            continue
    return out


def boot(a, paths, net, ipconf, host, servers, data, fwd=None):
    """Boot with the script, follow the console; returns (lines, vireo status or None)."""
    work = tempfile.mkdtemp(prefix="vireo-unet-")
    try:
        disk = os.path.join(work, "script.img")
        write_script_disk(disk, guest_script(a, host, servers["tx"].port, servers["rx"].port,
                                             servers["echo"].port))
        data_disk = os.path.join(work, "data.img")
        with open(data_disk, "wb") as f:
            f.write(data)
        sock = os.path.join(work, "api.sock")
        knobs = not host_kvm_hides_cpuid()
        # On the nested KVM a slow syscall makes RCU report a stall; the report's backtrace
        # IPI is a KVM hypercall that the host's emulator turns into a write to the guest's
        # read-only kernel text (an Oops, "Fatal exception in interrupt"): no stall reports.
        cmdline = " ".join(x for x in [
            "console=ttyS0 panic=-1 ip=" + ipconf, "vireo.script=vda",
            GUEST_KNOBS if knobs else "", USER_KNOBS if knobs else "",
            "rcupdate.rcu_cpu_stall_suppress=1" if knobs else "", a.cmdline] if x)
        cmd = [a.vmm, "run", "--kernel", paths["KERNEL_MINIMAL_ELF"], "--initrd",
               paths["INITRD"], "--cmdline", cmdline, "--cpus", str(max(1, a.queues)),
               "--memory", "512M", "--cpu-template", "baseline", "--on-reboot", "exit",
               "--net", net, "--disk", disk + ",format=raw,readonly=on",
               "--disk", data_disk + ",format=raw,readonly=on", "--api-sock", sock]
        log("log: " + a.log)
        log("running: " + " ".join(cmd))
        g = Guest(cmd, a.log)
        status = None
        try:
            for l in g.follow(a.timeout, a.verbose):
                m = RE_UNET.search(l)
                if m or "VIREO-INIT: s" in l or "Run /init" in l or RE_IPCONFIG.search(l):
                    log("  %5.1f s: %s" % (g.elapsed(), RE_TIMESTAMP.sub("", l).strip()))
                if RE_ILLEGAL.search(l) and not RE_TIMESTAMP.match(l):
                    log("  %5.1f s: %s" % (g.elapsed(), l.strip()))
                if m and m.group(1) == "queues":
                    try:
                        status = vireo_status(sock)
                    except (OSError, ValueError) as e:
                        fail("vireo's control socket: %s" % e)
                if m and m.group(1) == "listening" and fwd:
                    fwd.start()
        finally:
            rc = g.stop()
        log("vireo exit status %s after %.1f s" % (rc, g.elapsed()))
        lines = g.lines
        if not any("UNET: begin" in l for l in lines):
            where = last_kernel_line(lines)
            if not host_kvm_hides_cpuid() and (g.timed_out or rc == 3) and \
                    not any("VIREO-INIT: start" in l for l in lines):
                skip("this host's nested KVM did not get the guest to user space (%s); last "
                     "kernel line: %s" % ("timeout after %.0f s" % a.timeout if g.timed_out
                                          else vmm_error(lines) or "vCPU crashed", where))
            fail("the guest script did not start (%s, vireo exit %s); last kernel line: %s"
                 % ("timeout" if g.timed_out else "no timeout", rc, where))
        if not any("UNET: end" in l for l in lines):
            bad = shell_errors(lines)
            fail("the guest script did not finish (%s, vireo exit %s)%s"
                 % ("timeout after %.0f s" % a.timeout if g.timed_out else "no timeout", rc,
                    "; " + "; ".join(bad[:5]) if bad else ""))
        if rc != 0:
            fail("vireo exited with %s after the guest powered off (want 0)" % rc)
        return lines, status
    finally:
        shutil.rmtree(work, ignore_errors=True)


def rate(nbytes, secs):
    return "%.1f MB/s" % (nbytes / secs / 1e6) if secs and secs > 0 else "n/a"


def check_transfers(a, lines, servers, data, blob):
    """guest -> host: the sink got the data disk; host -> guest: the echo sink got back what
    the source sent (the guest stored it in tmpfs and sent the file back)."""
    rep, irqs = parse_report(lines)
    bad = shell_errors(lines)
    if bad:
        fail("the guest script hit: %s" % "; ".join(bad[:5]))
    link = kv(rep, "link")
    log("guest eth0: mtu %s" % link.get("mtu"))
    tx, rx, echo = kv(rep, "tx"), kv(rep, "rx"), kv(rep, "echo")
    for srv in servers.values():
        srv.thread.join(30)
    sink, src, esink = servers["tx"], servers["rx"], servers["echo"]
    # guest -> host
    if sink.error or sink.sha is None:
        fail("guest -> host: the host's sink got no complete connection (%s); guest nc rc=%s"
             % (sink.error or "no connection", tx.get("rc")))
    if tx.get("rc") != "0":
        fail("guest -> host: nc -e dd exited with %s (the host got %d of %d bytes)"
             % (tx.get("rc"), sink.length, len(data)))
    want = hashlib.sha256(data).hexdigest()
    if sink.length != len(data) or sink.sha != want:
        fail("guest -> host: the host received %d bytes, SHA-256 %s; the guest's data disk "
             "has %d bytes, SHA-256 %s" % (sink.length, sink.sha, len(data), want))
    gsecs = int(tx["cs"]) / 100.0
    log("ok: guest -> host: %d bytes of the data disk arrived intact (SHA-256); %.2f s on the "
        "guest's clock, %s; host side %.2f s" % (len(data), gsecs, rate(len(data), gsecs),
                                                  sink.secs))
    # host -> guest
    if src.error or src.sha is None:
        fail("host -> guest: the host's source: %s" % (src.error or "no connection"))
    if rx.get("rc") != "0":
        fail("host -> guest: nc -e dd exited with %s" % rx.get("rc"))
    if rx.get("len") != str(len(blob)):
        fail("host -> guest: the guest stored %s bytes, the host sent %d"
             % (rx.get("len"), len(blob)))
    want = hashlib.sha256(blob).hexdigest()
    if echo.get("rc") != "0" or esink.error or esink.sha is None:
        fail("host -> guest: sending the data back failed (guest nc rc=%s, host: %s, "
             "%s of %d bytes)" % (echo.get("rc"), esink.error or "ok", esink.length,
                                  len(blob)))
    if esink.length != len(blob) or esink.sha != want:
        fail("host -> guest: the guest sent back %d bytes, SHA-256 %s; the host had sent %d, "
             "SHA-256 %s" % (esink.length, esink.sha, len(blob), want))
    gsecs = int(rx["cs"]) / 100.0
    log("ok: host -> guest: %d bytes arrived intact (the guest's copy, sent back, has the "
        "same SHA-256); %.2f s on the guest's clock, %s" % (len(blob), gsecs,
                                                           rate(len(blob), gsecs)))
    return rep, irqs, tx, rx


def avg(b, p):
    return b / p if p else 0.0


def check_offloads(a, rep, irqs, tx, rx, sink, src, status):
    feats = rep.get("features", [""])[0].strip()
    missing = [n for n, bit in WANT_FEATURES.items() if len(feats) <= bit or feats[bit] != "1"]
    if missing:
        fail("virtio-net features not negotiated: %s (guest's features: %s)"
             % (", ".join(missing), feats))
    log("ok: negotiated %s" % ", ".join(WANT_FEATURES))
    # guest -> host: the guest's TCP builds 64 KiB writes into TSO frames.
    for what, b, p in (
            ("guest -> host, guest eth0 tx (TSO super-frames)", int(tx["bytes"]),
             int(tx["packets"])),
            ("guest -> host, host %s rx (frames vireo wrote)" % TAP, sink.delta("rx_bytes"),
             sink.delta("rx_packets"))):
        if b < SIZE:
            fail("%s: only %d bytes counted for a %d byte transfer" % (what, b, SIZE))
        if avg(b, p) <= GSO_AVG:
            fail("%s: %d frames, %d bytes, %.0f bytes per frame: no TSO (want more than %.0f; "
                 "without segmentation offload a frame has at most %d)"
                 % (what, p, b, avg(b, p), GSO_AVG, MAX_FRAME))
        log("ok: %s: %d frames, %d bytes, %.0f bytes per frame" % (what, p, b, avg(b, p)))
    # host -> guest: the host's TCP, sending into the slow guest's small window, mostly makes
    # one-segment frames, so the average is only a little above MAX_FRAME; but any average
    # above it means super-frames, and the guest must count as many frames as the TAP
    # handed to vireo (vireo delivered each one whole, not segmented).
    tb, tp = src.delta("tx_bytes"), src.delta("tx_packets")
    gb, gp = int(rx["bytes"]), int(rx["packets"])
    if tb < SIZE or gb < SIZE:
        fail("host -> guest: %d bytes counted by the TAP, %d by the guest, for a %d byte "
             "transfer" % (tb, gb, SIZE))
    if avg(tb, tp) <= MAX_FRAME:
        fail("host -> guest, host %s tx: %d frames, %d bytes, %.0f bytes per frame: no GSO "
             "frame went to vireo (TUNSETOFFLOAD?)" % (TAP, tp, tb, avg(tb, tp)))
    if abs(gp - tp) > 4 or abs(gb - tb) > 4 * MAX_FRAME:
        fail("host -> guest: the TAP handed vireo %d frames (%d bytes), the guest counted %d "
             "(%d bytes): frames were split or lost on the way" % (tp, tb, gp, gb))
    log("ok: host -> guest: host %s tx %d frames, %d bytes, %.0f bytes per frame (super-frames "
        "among them); the guest's eth0 counted %d frames, %d bytes: delivered whole"
        % (TAP, tp, tb, avg(tb, tp), gp, gb))
    if status is None:
        fail("no vireo status was read")
    nic = status["nics"][0]
    if nic.get("queue_pairs") != a.queues or nic.get("max_queue_pairs") != a.queues:
        fail("vireo's status: queue_pairs %s of %s, want %d"
             % (nic.get("queue_pairs"), nic.get("max_queue_pairs"), a.queues))
    log("ok: vireo's status: queue_pairs %d of %d" % (nic["queue_pairs"], nic["max_queue_pairs"]))
    if a.queues > 1:
        check_queues(a, rep, irqs, feats)


def check_queues(a, rep, irqs, feats):
    if len(feats) <= FEATURE_MQ or feats[FEATURE_MQ] != "1":
        fail("VIRTIO_NET_F_MQ not negotiated (features %s)" % feats)
    names = rep.get("queues", [""])[0].split()
    want = ["%s-%d" % (d, i) for d in ("rx", "tx") for i in range(a.queues)]
    if sorted(names) != sorted(want):
        fail("the guest's eth0 queues are %s, want %s" % (names, want))
    log("ok: the guest's eth0 has queues %s" % " ".join(names))
    before, after = irq_counts(irqs["before"], a.queues), irq_counts(irqs["after"], a.queues)
    grown = {}
    for i in range(a.queues):
        name = [n for n in after if n.endswith("-input.%d" % i)]
        if not name:
            fail("no interrupt of its own for receive queue %d in the guest's /proc/interrupts "
                 "(%s)" % (i, ", ".join(sorted(after))))
        n = name[0]
        grown[n] = after[n] - before.get(n, 0)
        if grown[n] <= 0:
            fail("receive queue %d (%s) got no interrupt over the transfers: %s"
                 % (i, n, grown))
    for n in sorted(after):
        if "-output." in n:
            grown[n] = after[n] - before.get(n, 0)
    log("ok: interrupts per queue over the transfers: %s"
        % ", ".join("%s +%d" % (n, c) for n, c in sorted(grown.items())))


# ---- tap -----------------------------------------------------------------------------------------

def tap_inside(a, paths):
    """In the namespace: the TAP exists and is up; serve, boot, check."""
    data, blob = os.urandom(SIZE), os.urandom(SIZE)
    servers = {"tx": Server(HOST_ADDR, "sink", counters=tap_stats, timeout=a.timeout),
               "rx": Server(HOST_ADDR, "source", data=blob, counters=tap_stats,
                            timeout=a.timeout),
               "echo": Server(HOST_ADDR, "sink", timeout=a.timeout)}
    net = "tap=%s,mac=%s" % (TAP, GUEST_MAC) + (",queues=%d" % a.queues if a.queues > 1 else "")
    ipconf = "%s::%s:255.255.255.0::eth0:off" % (GUEST_ADDR, HOST_ADDR)
    lines, status = boot(a, paths, net, ipconf, HOST_ADDR, servers, data)
    rep, irqs, tx, rx = check_transfers(a, lines, servers, data, blob)
    check_offloads(a, rep, irqs, tx, rx, servers["tx"], servers["rx"], status)


def mode_tap(a, paths):
    with open("/proc/self/status") as f:
        caps = [l for l in f if l.startswith("CapEff:")]
    if not caps or not (int(caps[0].split()[1], 16) >> 12) & 1:
        skip("no CAP_NET_ADMIN (a TAP in a network namespace needs root)")
    if not shutil.which("ip"):
        skip("no 'ip' in PATH")
    if not os.path.exists("/dev/net/tun"):
        skip("no /dev/net/tun")
    ns = "vireo-un%d" % os.getpid()
    r = subprocess.run(["ip", "netns", "add", ns], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    if r.returncode != 0:
        skip("cannot create a network namespace: %s" % r.stdout.strip())
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "tuntap", "add", "dev", TAP, "mode", "tap", "vnet_hdr",
           *(["multi_queue"] if a.queues > 1 else []))
        sh("ip", "-n", ns, "addr", "add", HOST_ADDR + "/24", "dev", TAP)
        sh("ip", "-n", ns, "link", "set", TAP, "up")
        cmd = ["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__), a.vmm,
               "--mode", "tap", "--inside", "--queues", str(a.queues), "--kernel-path",
               paths["KERNEL_MINIMAL_ELF"], "--initrd-path", paths["INITRD"],
               "--timeout", str(a.timeout), "--log", a.log] + (
            ["-v"] if a.verbose else []) + (["--cmdline", a.cmdline] if a.cmdline else [])
        try:
            # It prints its own verdict.
            return subprocess.run(cmd, timeout=a.timeout + 120).returncode
        except subprocess.TimeoutExpired:
            fail("the namespace stage did not finish within %.0f s" % (a.timeout + 120))
    finally:
        pids = subprocess.run(["ip", "netns", "pids", ns], stdout=subprocess.PIPE,
                              universal_newlines=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", ns])


# ---- user (passt) --------------------------------------------------------------------------------

def mode_user(a, paths):
    if not shutil.which("passt"):
        skip("no passt in PATH (--net user)")
    host = host_ipv4()
    if not host:
        skip("no IPv4 default route with a global address: passt has nothing to hand out")
    addr, _, gw = host
    data, blob = os.urandom(SIZE), os.urandom(SIZE)
    fwd_blob = os.urandom(FWD_SIZE)
    fwd_sha = hashlib.sha256(fwd_blob).hexdigest()
    servers = {"tx": Server("127.0.0.1", "sink", timeout=a.timeout, poke=True),
               "rx": Server("127.0.0.1", "source", data=blob, timeout=a.timeout),
               "echo": Server("127.0.0.1", "sink", timeout=a.timeout, poke=True)}
    probe = listener("127.0.0.1")  # a free port for the forward
    hport = probe.getsockname()[1]
    probe.close()
    fwd = FwdClient(hport, fwd_blob)
    net = "user,mac=%s,hostfwd=tcp:127.0.0.1:%d-:%d" % (GUEST_MAC, hport, GUEST_FWD_PORT)
    lines, status = boot(a, paths, net, "dhcp", gw, servers, data, fwd)
    ipc = [RE_IPCONFIG.search(RE_TIMESTAMP.sub("", l)) for l in lines]
    ipc = [m for m in ipc if m]
    if not ipc or ipc[0].group(2) != addr or ipc[0].group(4) != gw:
        fail("IP-Config: want address %s gateway %s from passt's DHCP, got %s"
             % (addr, gw, ipc[0].group(0) if ipc else "nothing"))
    log("ok: DHCP from passt: %s" % ipc[0].group(0))
    rep, irqs, tx, rx = check_transfers(a, lines, servers, data, blob)
    log("guest frames: tx %d for %d bytes (%.0f per frame), rx %d for %d bytes (%.0f per frame)"
        % (int(tx["packets"]), int(tx["bytes"]), avg(int(tx["bytes"]), int(tx["packets"])),
           int(rx["packets"]), int(rx["bytes"]), avg(int(rx["bytes"]), int(rx["packets"]))))
    if status is None or status["nics"][0].get("queue_pairs") != 1:
        fail("vireo's status: %s" % (status and status.get("nics")))
    # port forwarding
    fin = kv(rep, "fwd")
    if fwd.thread is None:
        fail("the guest never said it was listening on port %d" % GUEST_FWD_PORT)
    fwd.thread.join(30)
    if fwd.sha is None:
        fail("hostfwd: no connection through 127.0.0.1:%d after %d attempts: %s"
             % (hport, fwd.attempts, fwd.error))
    if fwd.error:
        fail("hostfwd: sending to the guest: %s" % fwd.error)
    if fin.get("rc") != "0":
        fail("hostfwd: the guest's nc -l -e cat exited with %s" % fin.get("rc"))
    if fwd.length != FWD_SIZE or fwd.sha != fwd_sha:
        fail("hostfwd: %d bytes sent to the guest's echo, %d came back, SHA-256 %s, want %s"
             % (FWD_SIZE, fwd.length, fwd.sha, fwd_sha))
    log("ok: hostfwd 127.0.0.1:%d -> guest port %d: %d bytes to the guest's echo and back, "
        "SHA-256 matches (connection attempt %d)" % (hport, GUEST_FWD_PORT, FWD_SIZE,
                                                      fwd.attempts))


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("vmm", help="the vireo executable")
    p.add_argument("--mode", choices=["tap", "user"], required=True)
    p.add_argument("--queues", type=int, default=1, help="tap: queue pairs (and vCPUs)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds for the boot")
    p.add_argument("--cmdline", default="", help="extra kernel command line")
    p.add_argument("--log", help="console log (default ./linux-user-net-<mode>.log)")
    p.add_argument("-v", "--verbose", action="store_true", help="echo the console")
    p.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)  # tap: in the netns
    p.add_argument("--kernel-path", help=argparse.SUPPRESS)
    p.add_argument("--initrd-path", help=argparse.SUPPRESS)
    a = p.parse_args()
    a.vmm = os.path.abspath(a.vmm)
    a.log = os.path.abspath(a.log or "linux-user-net-%s%s.log"
                            % (a.mode, "-mq%d" % a.queues if a.queues > 1 else ""))
    try:
        if a.queues < 1 or (a.queues > 1 and a.mode != "tap"):
            fail("--queues N > 1 is for --mode tap")
        if a.inside:
            tap_inside(a, {"KERNEL_MINIMAL_ELF": a.kernel_path, "INITRD": a.initrd_path})
            log("PASS")
            return 0
        why = kvm_problem()
        if why:
            skip(why)
        paths, why = kit_paths(False)
        if why:
            fail(why)
        why = user_space_problem(paths)
        if why:
            skip(why)
        if a.mode == "tap":
            return mode_tap(a, paths)
        mode_user(a, paths)
        log("PASS")
        return 0
    except Verdict as v:
        print(("SKIP: " if v.code == SKIP else "FAIL: ") + v.msg, flush=True)
        return v.code


if __name__ == "__main__":
    sys.exit(main())
