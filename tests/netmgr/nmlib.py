# SPDX-License-Identifier: MIT
"""Helpers for the managed-network tests (run_netmgr.py). Everything here runs inside the
network namespace the runner created; python3 standard library only."""
import json
import os
import signal
import socket
import subprocess
import threading
import time

PROBE_PASS = "PROBE virtio_net_peer: PASS"


class Fail(Exception):
    pass


def sh(*cmd, check=True, input=None, env=None):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       input=input, env=env)
    if check and r.returncode != 0:
        raise Fail("%s: exit %d: %s" % (" ".join(cmd), r.returncode,
                                        (r.stderr or r.stdout).strip()))
    return r


def expect(cond, what):
    if not cond:
        raise Fail(what)
    print("ok: %s" % what, flush=True)


class Env:
    """The vireo binary, the probe guest and a state directory for `vireo net`."""

    def __init__(self, vmm, probe, statedir):
        self.vmm, self.probe, self.dir = vmm, probe, statedir
        self.env = dict(os.environ, VIREO_NET_DIR=statedir)
        self.vms = []

    def net(self, *args, check=True, rc=None):
        r = sh(self.vmm, "net", *args, check=False, env=self.env)
        print("+ vireo net %s -> %d%s" % (" ".join(args), r.returncode,
                                          (": " + r.stderr.strip()) if r.stderr.strip() else ""),
              flush=True)
        if rc is not None and r.returncode != rc:
            raise Fail("vireo net %s: exit %d, expected %d: %s" % (" ".join(args), r.returncode,
                                                                   rc, r.stderr.strip()))
        if rc is None and check and r.returncode != 0:
            raise Fail("vireo net %s: exit %d: %s" % (" ".join(args), r.returncode,
                                                       r.stderr.strip()))
        return r

    def info(self, name):
        return json.loads(self.net("info", name, "--json").stdout)

    def list(self):
        return json.loads(self.net("list", "--json").stdout)

    def gc(self):
        return json.loads(self.net("gc", "--json").stdout)

    def tap(self, name):
        sh("ip", "tuntap", "add", "dev", name, "mode", "tap", "vnet_hdr")
        return name

    def vm(self, tap, mac, cmdline, net=None):
        v = VM(self, tap, net or "tap=%s,mac=%s" % (tap, mac), cmdline)
        self.vms.append(v)
        return v

    def stop_vms(self):
        for v in self.vms:
            v.kill()
        self.vms = []


class VM:
    """A probe guest with one NIC (--net `net`); its console is collected in a thread."""

    def __init__(self, env, name, net, cmdline):
        cmd = [env.vmm, "run", "--kernel", env.probe, "--memory", "64M", "--cmdline", cmdline,
               "--net", net]
        print("+ %s" % " ".join(cmd), flush=True)
        self.name = name
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env.env)
        self.lines = []
        self.ready = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if "virtio_net_peer: READY" in line:
                self.ready.set()
        self.ready.set()

    def wait_ready(self, timeout=20):
        if not self.ready.wait(timeout) or not any("READY" in l for l in self.lines):
            raise Fail("%s: guest not ready:\n%s" % (self.name, self.output()))

    def wait(self, timeout=40):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self.reader.join(5)
        return self.proc.returncode == 0 and PROBE_PASS in self.lines

    def output(self):
        return "\n".join("  [%s] %s" % (self.name, l) for l in self.lines)

    def lease(self):
        for l in self.lines:
            if l.startswith("virtio_net_peer: lease "):
                return l.split()[2].split("/")[0]
        return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def expect_vm(vm, what, timeout=40):
    ok = vm.wait(timeout)
    if not ok:
        raise Fail("%s: guest failed (exit %s):\n%s" % (what, vm.proc.returncode, vm.output()))
    print("ok: %s" % what, flush=True)


def dnsmasq_pids(statedir):
    """Live dnsmasq processes started for statedir."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
            with open("/proc/%s/cmdline" % d, "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        state = st[st.rfind(")") + 2:].split()[0]
        if "(dnsmasq)" in st and state not in "ZX" and any(
                a.startswith(b"--pid-file=" + statedir.encode() + b"/") for a in args):
            out.append(int(d))
    return out


def leftovers(env):
    """Everything `vireo net` may create that still exists: must be [] after deletes."""
    left = []
    for line in sh("ip", "-o", "link", "show").stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith("vr-"):
            left.append("link " + name)
    for line in sh("nft", "list", "tables").stdout.splitlines():
        if " vireo-" in line:
            left.append(line.strip())
    left += ["dnsmasq pid %d" % p for p in dnsmasq_pids(env.dir)]
    if os.path.isdir(env.dir):
        left += ["file " + f for f in os.listdir(env.dir)]
    return left


def netping(addr, count=3, timeout=10):
    here = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run(["python3", os.path.join(here, "..", "net", "netping.py"), addr,
                        str(count), str(timeout)], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    print(r.stdout.strip(), flush=True)
    return r.returncode == 0


class Sniffer:
    """Counts Ethernet frames of one EtherType seen on an interface, by payload prefix."""

    def __init__(self, ifname, ethertype=0x88b5):
        self.s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
        self.s.bind((ifname, 0))
        self.s.settimeout(0.2)
        self.frames = []
        self.stop = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop:
            try:
                data = self.s.recv(2048)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(data) >= 14:
                self.frames.append((data[6:12], data[14:30].rstrip(b"\0")))

    def close(self):
        self.stop = True
        self.t.join(2)
        self.s.close()

    def count(self, payload, src=None):
        return sum(1 for s, p in self.frames
                   if p.startswith(payload) and (src is None or s == src))


def mac_bytes(mac):
    return bytes(int(x, 16) for x in mac.split(":"))


def kill_pid(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_for(cond, timeout=5.0, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()

