#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A Linux guest (the guest kit's kernel and busybox initramfs) on a virtio-net TAP, inside a
network namespace created for the test:

  - the guest's virtio_net driver binds and negotiates offloads and mergeable buffers,
  - guest -> host ping,
  - 16 MiB guest -> host over TCP (nc; the guest uses TSO and checksum offload) and
  - 16 MiB host -> guest over TCP (wget from a host HTTP server; large GSO frames into
    mergeable receive buffers), both checked with SHA-256.

    linux_net.py [--queues N] VMM [KERNEL INITRD]

With --queues N (N > 1) the TAP is multi_queue, the NIC gets queues=N and the guest N vCPUs;
the guest driver must then use N queue pairs (rx-0.. and tx-0.. in sysfs) and ping and both
transfers must still pass. The interrupt count of every queue is printed.

Without KERNEL/INITRD the guest kit is looked up like `vireo run` does ($VIREO_CACHE or
~/.cache/vireo: default-guest.conf, else the newest kernel-*/bzImage and initrd-*). Exit
status: 0 pass, 1 fail, 77 skip (no guest kit, no /dev/kvm, no CAP_NET_ADMIN).
"""
import glob
import hashlib
import http.server
import os
import select
import socket
import subprocess
import sys
import threading
import time

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from run_net import Netns  # noqa: E402

SIZE = 16 << 20
# Boot to the shell: seconds on bare metal, minutes on a nested-KVM host.
BOOT_TIMEOUT = int(os.environ.get("VIREO_BOOT_TIMEOUT", "300"))


def guest_conf():
    cache = os.environ.get("VIREO_CACHE") or os.path.expanduser("~/.cache/vireo")
    conf = os.path.join(cache, "default-guest.conf")
    if not os.path.exists(conf):
        return {}
    return dict(l.rstrip("\n").split("=", 1) for l in open(conf) if "=" in l)


def find_guest():
    cache = os.environ.get("VIREO_CACHE") or os.path.expanduser("~/.cache/vireo")
    kv = guest_conf()
    if kv.get("kernel") and kv.get("initrd"):
        return kv["kernel"], kv["initrd"]
    k = sorted(glob.glob(os.path.join(cache, "kernel-*/bzImage")), key=os.path.getmtime)
    i = sorted(glob.glob(os.path.join(cache, "initrd-*/initrd.cpio.gz")), key=os.path.getmtime)
    return (k[-1], i[-1]) if k and i else (None, None)


class Console:
    def __init__(self, proc):
        self.proc = proc
        self.buf = b""

    def send(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def wait(self, marker, timeout):
        end = time.monotonic() + timeout
        m = marker.encode()
        while m not in self.buf:
            left = end - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise RuntimeError("no %r within %.0f s" % (marker, timeout))
            r, _, _ = select.select([self.proc.stdout], [], [], min(left, 0.2))
            if r:
                data = os.read(self.proc.stdout.fileno(), 65536)
                if not data:
                    raise RuntimeError("console closed while waiting for %r" % marker)
                self.buf += data
        at = self.buf.index(m)
        line_end = self.buf.find(b"\n", at)
        return self.buf[at:line_end if line_end >= 0 else None].decode(errors="replace").strip()


def sink_server(port, result):
    """Accept one TCP connection in the namespace and hash everything it sends."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("10.0.2.1", port))
    s.listen(1)
    s.settimeout(60)
    c, _ = s.accept()
    h, n = hashlib.sha256(), 0
    while True:
        d = c.recv(1 << 16)
        if not d:
            break
        h.update(d)
        n += len(d)
    result["sha"], result["bytes"] = h.hexdigest(), n


def in_netns_main():
    """Second stage, run inside the namespace: boot the guest and drive it."""
    vmm, kernel, initrd, queues = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    blob = os.urandom(SIZE)
    blob_sha = hashlib.sha256(blob).hexdigest()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(blob)))
            self.end_headers()
            self.wfile.write(blob)

        def log_message(self, *a):
            pass

    httpd = http.server.HTTPServer(("10.0.2.1", 8000), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    sink = {}
    threading.Thread(target=sink_server, args=(5000, sink), daemon=True).start()

    # The guest kit's own command line and CPU template when it has them (a nested-KVM host
    # needs e.g. noxsave and the baseline template there), quieted.
    kv = guest_conf()
    cmd = [vmm, "run", "--kernel", kernel, "--initrd", initrd, "--memory", "256M",
           "--cmdline", kv.get("cmdline", "console=ttyS0") + " quiet"]
    if kv.get("cpu_template"):
        cmd += ["--cpu-template", kv["cpu_template"]]
    cmd += ["--net", "tap=vtap0"]
    if queues > 1:
        cmd[-1] += ",queues=%d" % queues
        cmd += ["--cpus", str(queues)]
    print("+", " ".join(cmd), flush=True)
    vm = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
    con = Console(vm)
    try:
        con.wait("VIREO-INIT: shell", BOOT_TIMEOUT)
        time.sleep(0.5)
        con.send("ip addr add 10.0.2.15/24 dev eth0 && ip link set eth0 up && echo NET-UP")
        con.wait("NET-UP", 10)
        con.send("echo FEAT=$(cat /sys/class/net/eth0/device/features)")
        print(con.wait("FEAT=", 10), flush=True)
        if queues > 1:
            con.send("echo QUEUES=$(ls /sys/class/net/eth0/queues | tr '\\n' ' ')")
            line = con.wait("QUEUES=", 10)
            print(line, flush=True)
            for i in range(queues):
                if "rx-%d" % i not in line or "tx-%d" % i not in line:
                    raise RuntimeError("guest does not use %d queue pairs: %s" % (queues, line))
        con.send("ping -c 3 -W 2 10.0.2.1 >/dev/null && echo PING-OK || echo PING-FAIL")
        line = con.wait("PING-", 20)
        if "PING-OK" not in line:
            raise RuntimeError("guest ping: %s" % line)
        # guest -> host
        con.send("dd if=/dev/urandom of=/tmp/out bs=1M count=%d 2>/dev/null; "
                 "echo OUTSHA=$(sha256sum /tmp/out); nc 10.0.2.1 5000 </tmp/out; echo SENT"
                 % (SIZE >> 20))
        out_sha = con.wait("OUTSHA=", 30).split("=", 1)[1].split()[0]
        con.wait("SENT", 60)
        end = time.monotonic() + 10
        while "sha" not in sink and time.monotonic() < end:
            time.sleep(0.1)
        if sink.get("sha") != out_sha:
            raise RuntimeError("guest->host: received %s bytes, sha %s, guest sent %s"
                               % (sink.get("bytes"), sink.get("sha"), out_sha))
        print("guest->host: %d bytes ok" % sink["bytes"], flush=True)
        # host -> guest
        con.send("wget -q -O /tmp/in http://10.0.2.1:8000/blob; echo INSHA=$(sha256sum /tmp/in)")
        in_sha = con.wait("INSHA=", 60).split("=", 1)[1].split()
        if not in_sha or in_sha[0] != blob_sha:
            raise RuntimeError("host->guest: guest got sha %s, expected %s" % (in_sha, blob_sha))
        print("host->guest: %d bytes ok" % SIZE, flush=True)
        if queues > 1:
            con.send("grep virtio /proc/interrupts | tr -s ' ' | sed 's/^/IRQ: /'; echo IRQ-END")
            con.wait("IRQ-END", 10)
            for l in con.buf.decode(errors="replace").splitlines():
                if l.startswith("IRQ: "):
                    print(l, flush=True)
        con.send("poweroff -f")
        vm.wait(timeout=20)
        print("PASS: linux guest on virtio-net (tap, %d queue pair%s)"
              % (queues, "s" if queues > 1 else ""))
        return 0
    except RuntimeError as e:
        print("FAIL: %s\n  console tail:\n%s" % (e, "\n".join(
            "    | " + l for l in con.buf.decode(errors="replace").splitlines()[-30:])))
        return 1
    finally:
        if vm.poll() is None:
            vm.kill()
            vm.wait()
        httpd.shutdown()


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--in-netns":
        return in_netns_main()
    args, queues = sys.argv[1:], 1
    if args[:1] == ["--queues"] and len(args) >= 2 and args[1].isdigit():
        queues, args = int(args[1]), args[2:]
    if len(args) not in (1, 3) or queues < 1:
        print("usage: linux_net.py [--queues N] VMM [KERNEL INITRD]")
        return 2
    vmm = os.path.abspath(args[0])
    kernel, initrd = (args[1], args[2]) if len(args) == 3 else find_guest()
    if not kernel:
        print("SKIP: no guest kit kernel/initrd (build it with tools/guest-kit/build.sh)")
        return SKIP
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC))
    except OSError as e:
        print("SKIP: cannot open /dev/kvm: %s" % os.strerror(e.errno))
        return SKIP
    try:
        with Netns() as ns:
            ns.ip("tuntap", "add", "dev", "vtap0", "mode", "tap", "vnet_hdr",
                  *(["multi_queue"] if queues > 1 else []))
            ns.ip("addr", "add", "10.0.2.1/24", "dev", "vtap0")
            ns.ip("link", "set", "vtap0", "up")
            return subprocess.run(ns.exec_cmd(sys.executable, os.path.abspath(__file__),
                                              "--in-netns", vmm, kernel, initrd,
                                              str(queues))).returncode
    except PermissionError as e:
        print("SKIP: cannot create a network namespace: %s" % e)
        return SKIP


if __name__ == "__main__":
    sys.exit(main())
