#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Linux network test without user space: the guest kernel configures its virtio-net NIC by
DHCP (ip=dhcp, IP autoconfiguration) and sends its log to the host over UDP (netconsole).

    kernel_net.py VIREO --mode user|nat [--timeout S] [--log FILE] [-v]

One boot of the guest kit's minimal kernel, without initramfs or root device: it brings eth0
up for netconsole (late_initcall, with a fixed source address, since DHCP comes after it),
replays its log buffer and then every new message as UDP datagrams, gets a DHCP lease, then
panics for want of a root filesystem; panic=-1 reboots and vireo --on-reboot exit ends.

  user  --net user (passt). passt hands the guest the host's own address and gateway, and
        maps the gateway address to the host's loopback: netconsole targets the gateway and a
        UDP socket on the host receives. Checks: "IP-Config: Complete" with the host's address
        and gateway and the NIC's MAC; the datagrams (below).
  nat   a `vireo net create NAME --mode nat` network (bridge, masquerade, dnsmasq) inside a
        network namespace made for the test, the guest on --net network=NAME. netconsole
        sends to the bridge's address (and to its MAC where that is pinned, else to the
        Ethernet broadcast address), from an address of the subnet outside the DHCP range.
        Checks: the lease is in the network's DHCP range, from the bridge
        address, with it as gateway, and dnsmasq's lease list has it (IP and MAC); the
        datagrams.

Datagram checks: every datagram is one kernel line exactly as on the serial console; they
include lines from before netconsole started (the replayed log buffer), "netconsole: network
logging started", the IP-Config lines with the leased address, and at least MIN_LINES in all.
That is virtio-net TX (netconsole, DHCP requests) and RX (DHCP answers) with Linux's driver.

What this cannot show: user-space networking (sockets, TCP, offloads): tests/linux/user_net.py
does that with the kit's 32-bit user space.

Exit status: 0 pass, 1 fail, 77 skip (no /dev/kvm; user: no passt or no IPv4 default route;
nat: not root, no ip/nft/dnsmasq, no /dev/net/tun; on the nested kvm_pvm KVM only: a KVM
emulation failure or a boot slower than --timeout).
"""
import argparse
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from smoke import (GUEST_KNOBS, SKIP, Guest, Verdict, fail, host_kvm_hides_cpuid,  # noqa: E402
                   kit_paths, kvm_problem, last_kernel_line, run, skip, vmm_error,
                   RE_TIMESTAMP)

GUEST_MAC = "0e:76:72:4b:4e:01"
MIN_LINES = 50
RE_DHCP = re.compile(r"IP-Config: Got DHCP answer from (\S+), my address is (\S+)")
RE_COMPLETE = re.compile(r"device=eth0, hwaddr=(\S+), ipaddr=(\S+), mask=(\S+), gw=(\S+)")
RE_PANIC = re.compile(r"Kernel panic - not syncing: (.*)")


def log(msg):
    print("kernel-net: " + msg, flush=True)


def sh(*cmd, check=True):
    """A host command whose stdout is parsed: stderr kept apart (see smoke.run)."""
    return run(*cmd, ok=(0,) if check else None, merge=False)


class UdpSink:
    """Collects the datagrams sent to (addr, port) in a thread."""

    def __init__(self, addr):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((addr, 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.5)
        self.grams = []
        self.sources = set()
        self.done = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done:
            try:
                data, src = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            self.grams.append(data)
            self.sources.add(src[0])

    def close(self):
        self.done = True
        self.thread.join(2)
        self.sock.close()


def boot(a, kernel, net, netconsole):
    cmdline = " ".join(x for x in [
        "console=ttyS0 panic=-1 ip=dhcp netconsole=" + netconsole,
        GUEST_KNOBS if not host_kvm_hides_cpuid() else "", a.cmdline] if x)
    cmd = [a.vmm, "run", "--kernel", kernel, "--cmdline", cmdline, "--cpus", "1",
           "--memory", "256M", "--cpu-template", "baseline", "--on-reboot", "exit",
           "--no-rng", "--net", net]
    log("log: " + a.log)
    log("running: " + " ".join(cmd))
    g = Guest(cmd, a.log)
    panic = None
    try:
        for l in g.follow(a.timeout, a.verbose):
            if ("IP-Config" in l or "netconsole" in l or "ipaddr=" in l
                    or RE_PANIC.search(l)):
                log("  %5.1f s: %s" % (g.elapsed(), RE_TIMESTAMP.sub("", l).strip()))
            m = RE_PANIC.search(l)
            if m and panic is None:
                panic = m.group(1)
    finally:
        rc = g.stop()
    timed_out = g.timed_out
    log("vireo exit status %s after %.1f s" % (rc, g.elapsed()))
    complete = any(RE_COMPLETE.search(l) for l in g.lines)
    if not complete or panic is None:
        where = last_kernel_line(g.lines)
        if not host_kvm_hides_cpuid() and (timed_out or rc == 3):
            skip("this host's nested KVM did not get the guest through its boot (%s); last "
                 "kernel line: %s" % ("timeout after %.0f s" % a.timeout if timed_out
                                      else vmm_error(g.lines) or "vCPU crashed", where))
        fail("no IP-Config: Complete and panic (%s, vireo exit %s); last kernel line: %s"
             % ("timeout" if timed_out else "panic: %s" % panic, rc, where))
    if "Unable to mount root fs" not in panic:
        fail("unexpected panic: " + panic)
    if rc != 0:
        fail("vireo exited with %s after the guest's panic reboot (--on-reboot exit: want 0)"
             % rc)
    return g.lines


def check_ipconfig(lines, server, addr_ok, gw):
    """The guest's DHCP result; returns the leased address."""
    kl = [RE_TIMESTAMP.sub("", l) for l in lines]
    m = [RE_DHCP.search(l) for l in kl]
    m = [x for x in m if x]
    if not m:
        fail("no 'IP-Config: Got DHCP answer' line")
    if m[0].group(1) != server:
        fail("DHCP answer from %s, want %s" % (m[0].group(1), server))
    c = [RE_COMPLETE.search(l) for l in kl]
    c = [x for x in c if x][0]
    hwaddr, ip, mask, got_gw = c.groups()
    if hwaddr != GUEST_MAC:
        fail("eth0 has MAC %s, --net mac=%s" % (hwaddr, GUEST_MAC))
    if ip != m[0].group(2) or not addr_ok(ip):
        fail("eth0 got %s (DHCP said %s): not the expected address" % (ip, m[0].group(2)))
    if got_gw != gw:
        fail("gateway %s, want %s" % (got_gw, gw))
    log("ok: IP-Config: eth0 (%s) got %s mask %s gw %s by DHCP from %s"
        % (hwaddr, ip, mask, got_gw, server))
    return ip


def check_netconsole(sink, lines, ip):
    grams = sink.grams
    console = set(l.rstrip() for l in lines if RE_TIMESTAMP.match(l))
    text = []
    for d in grams:
        t = d.decode("utf-8", "replace")
        if not t.endswith("\n") or t[:-1].rstrip() not in console:
            fail("a datagram is not a kernel line of the console: %r" % d[:120])
        text.append(t[:-1])
    if len(text) < MIN_LINES:
        fail("%d datagrams from netconsole, want at least %d" % (len(text), MIN_LINES))
    for what, pat in (("the kernel banner (replayed log buffer)", r"Linux version \d"),
                      ("'network logging started'", r"netconsole: network logging started"),
                      ("the DHCP answer", r"IP-Config: Got DHCP answer .* my address is "
                       + re.escape(ip) + "$"),
                      ("the IP-Config result", r"ipaddr=" + re.escape(ip) + ","),
                      ("the panic", r"Kernel panic - not syncing")):
        if not any(re.search(pat, t) for t in text):
            fail("netconsole: %s did not arrive (%d datagrams)" % (what, len(text)))
    kernel = sum(1 for l in lines if RE_TIMESTAMP.match(l))
    log("ok: netconsole: %d of the %d console lines arrived over UDP (from %s), each intact, "
        "from the banner to the panic" % (len(text), kernel, ", ".join(sorted(sink.sources))))


# ---- user (passt) -----------------------------------------------------------------------

def host_ipv4():
    """(address, prefix length, gateway) of the first IPv4 default route, as passt picks."""
    out = sh("ip", "-4", "-j", "route", "show", "default", check=False)
    try:
        routes = json.loads(out or "[]")
    except ValueError:
        routes = []
    for r in routes:
        dev, gw = r.get("dev"), r.get("gateway")
        if not dev or not gw:
            continue
        addrs = json.loads(sh("ip", "-4", "-j", "addr", "show", "dev", dev) or "[]")
        for a in addrs:
            for ai in a.get("addr_info", []):
                if ai.get("scope") == "global":
                    return ai["local"], ai["prefixlen"], gw
    return None


def mode_user(a, kernel):
    if not shutil.which("passt"):
        skip("no passt in PATH (--net user)")
    host = host_ipv4()
    if not host:
        skip("no IPv4 default route with a global address: passt has nothing to hand out")
    addr, _, gw = host
    sink = UdpSink("0.0.0.0")
    try:
        # passt gives the guest the host's address; the gateway stands for the host.
        nc = "6665@%s/eth0,%d@%s/" % (addr, sink.port, gw)
        lines = boot(a, kernel, "user,mac=" + GUEST_MAC, nc)
    finally:
        sink.close()
    ip = check_ipconfig(lines, gw, lambda x: x == addr, gw)
    check_netconsole(sink, lines, ip)


# ---- nat (managed network in a namespace) ------------------------------------------------

def nat_inside(a, kernel, statedir):
    # `vireo net` and `vireo run --net network=NAME` find the network's state there.
    os.environ["VIREO_NET_DIR"] = statedir
    sh("ip", "link", "set", "lo", "up")
    sh(a.vmm, "net", "create", "klan", "--mode", "nat")
    try:
        info = json.loads(sh(a.vmm, "net", "info", "klan", "--json"))
        host, (lo, hi), bridge = info["host_address"], info["dhcp_range"], info["bridge"]
        net = ipaddress.ip_network(info["subnet"])
        log("network klan: bridge %s, host %s, subnet %s, DHCP %s-%s"
            % (bridge, host, net, lo, hi))
        lo_i, hi_i = ipaddress.ip_address(lo), ipaddress.ip_address(hi)
        src = next(h for h in net.hosts()
                   if str(h) != host and not lo_i <= h <= hi_i)
        # A bridge whose MAC was never set takes the lowest MAC of its ports, so it may
        # change when the VM's TAP joins: only a pinned MAC (addr_assign_type 3, "set") can
        # go on the command line; else netconsole broadcasts (the IP header is unicast).
        with open("/sys/class/net/%s/addr_assign_type" % bridge) as f:
            pinned = f.read().strip() == "3"
        bridge_mac = ""
        if pinned:
            with open("/sys/class/net/%s/address" % bridge) as f:
                bridge_mac = f.read().strip()
        else:
            log("note: %s's MAC is not pinned (it follows its ports): netconsole sends to "
                "ff:ff:ff:ff:ff:ff" % bridge)
        sink = UdpSink(host)
        try:
            nc = "6665@%s/eth0,%d@%s/%s" % (src, sink.port, host, bridge_mac)
            lines = boot(a, kernel, "network=klan,mac=" + GUEST_MAC, nc)
        finally:
            sink.close()
        ip = check_ipconfig(lines, host,
                            lambda x: lo_i <= ipaddress.ip_address(x) <= hi_i, host)
        log("ok: the lease %s is in the network's DHCP range %s-%s" % (ip, lo, hi))
        leases = json.loads(sh(a.vmm, "net", "info", "klan", "--json"))["leases"]
        if {"ip": ip, "mac": GUEST_MAC} not in leases:
            fail("dnsmasq's leases do not list %s for %s: %s" % (ip, GUEST_MAC, leases))
        log("ok: dnsmasq lists the lease (%s %s)" % (ip, GUEST_MAC))
        check_netconsole(sink, lines, ip)
    finally:
        sh(a.vmm, "net", "delete", "klan", "--force", check=False)


def mode_nat(a, kernel):
    with open("/proc/self/status") as f:
        caps = [l for l in f if l.startswith("CapEff:")]
    if not caps or not (int(caps[0].split()[1], 16) >> 12) & 1:
        skip("no CAP_NET_ADMIN (a managed network needs root)")
    for tool in ("ip", "nft", "dnsmasq"):
        if not shutil.which(tool):
            skip("no '%s' in PATH" % tool)
    if not os.path.exists("/dev/net/tun"):
        skip("no /dev/net/tun")
    ns = "vireo-kn%d" % os.getpid()
    r = subprocess.run(["ip", "netns", "add", ns], stderr=subprocess.PIPE,
                       universal_newlines=True)
    if r.returncode != 0:
        skip("cannot create a network namespace: %s" % r.stderr.strip())
    statedir = tempfile.mkdtemp(prefix="vireo-knet-")
    os.chmod(statedir, 0o755)
    try:
        cmd = ["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__),
               "--inside", os.path.join(statedir, "networks"), a.vmm, "--mode", "nat",
               "--kernel-path", kernel, "--timeout", str(a.timeout), "--log", a.log] + (
            ["-v"] if a.verbose else []) + (["--cmdline", a.cmdline] if a.cmdline else [])
        try:
            # It prints its own verdict.
            return subprocess.run(cmd, timeout=a.timeout + 60).returncode
        except subprocess.TimeoutExpired:
            fail("the namespace stage did not finish within %.0f s" % (a.timeout + 60))
    finally:
        pids = subprocess.run(["ip", "netns", "pids", ns], stdout=subprocess.PIPE,
                              universal_newlines=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
        subprocess.run(["ip", "netns", "del", ns])
        shutil.rmtree(statedir, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("vmm", help="the vireo executable")
    p.add_argument("--mode", choices=["user", "nat"], required=True)
    p.add_argument("--timeout", type=float, default=200.0, help="seconds for the boot")
    p.add_argument("--cmdline", default="", help="extra kernel command line")
    p.add_argument("--log", help="console log (default ./linux-net-<mode>.log)")
    p.add_argument("-v", "--verbose", action="store_true", help="echo the console")
    p.add_argument("--inside", help=argparse.SUPPRESS)       # nat: the namespace stage
    p.add_argument("--kernel-path", help=argparse.SUPPRESS)  # nat: the kit's kernel
    a = p.parse_args()
    a.vmm = os.path.abspath(a.vmm)
    a.log = os.path.abspath(a.log or "linux-net-%s.log" % a.mode)
    try:
        if a.inside:
            nat_inside(a, a.kernel_path, a.inside)
            log("PASS")
            return 0
        why = kvm_problem()
        if why:
            skip(why)
        paths, why = kit_paths(False)
        if why:
            fail(why)
        kernel = paths["KERNEL_MINIMAL_ELF"]
        if a.mode == "nat":
            return mode_nat(a, kernel)
        mode_user(a, kernel)
        log("PASS")
        return 0
    except Verdict as v:
        print(("SKIP: " if v.code == SKIP else "FAIL: ") + v.msg, flush=True)
        return v.code


if __name__ == "__main__":
    sys.exit(main())
