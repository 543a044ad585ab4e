#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Network integration tests: the virtio-net probe guest on a real backend, inside a network
namespace created for the test and removed afterwards (also on failure or interrupt).

    run_net.py SCENARIO VMM PROBE_ELF RUN_PROBE

  tap         a persistent TAP (ip tuntap) in the namespace, host side 10.0.2.1/24; the guest
              (10.0.2.15) ARPs for the host, then the host pings it (netping.py).
  bridge      --net network=BRIDGE: Vireo creates its own TAP and enslaves it to a bridge that
              has 10.0.3.1/24; same exchange as tap.
  user        --net user (passt) with hostfwd: in a namespace with a veth "uplink" and a
              default route (passt copies its addresses), the guest gets a DHCP offer, ARPs for
              the router, and sees the SYN of a connection to the forwarded host port.
  user-crash  like user, but the VMM is killed with SIGKILL: its passt child must not survive.
  tap-mq      a persistent multi_queue TAP and --net tap=...,queues=2 with the virtio_net_mq
              probe: two queue pairs in use, echo requests sent from each pair's transmit
              queue and the replies (steered back by the TAP's flow table) seen on both
              receive queues.
  bridge-mq   tap-mq through --net network=BRIDGE,queues=2 (Vireo creates the multi_queue TAP
              and enslaves it).
  tap-mq-iothreads
              tap-mq with --io-threads 2 (more pings): while the guest runs, iothreads_check.py
              must see threads io0 and io1 and dispatched events on both loops in the status
              JSON (pair 0 is served by io0, pair 1 by io1).

Only namespace-local addresses are used (10.0.x.y, 127.0.0.1 inside the namespace); nothing
reaches the host's network. Exit status: 0 pass, 1 fail, 77 skip (no /dev/kvm, no
CAP_NET_ADMIN, no /dev/net/tun or no passt, with the reason printed).
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
NETPING = os.path.join(HERE, "netping.py")


def sh(*cmd, check=True):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd), r.stdout.strip()))
    return r


class Netns:
    """A network namespace that is deleted (with every process in it) on exit."""

    def __init__(self):
        self.name = "vireo-t%d" % os.getpid()

    def __enter__(self):
        r = sh("ip", "netns", "add", self.name, check=False)
        if r.returncode != 0:
            raise PermissionError(r.stdout.strip())
        sh("ip", "-n", self.name, "link", "set", "lo", "up")
        return self

    def ip(self, *args):
        return sh("ip", "-n", self.name, *args)

    def exec_cmd(self, *cmd):
        return ["ip", "netns", "exec", self.name] + list(cmd)

    def __exit__(self, *exc):
        r = sh("ip", "netns", "pids", self.name, check=False)
        for pid in r.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        sh("ip", "netns", "del", self.name, check=False)
        return False


def skip_reason(scenario, vmm):
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC))
    except OSError as e:
        return "cannot open /dev/kvm: %s" % os.strerror(e.errno)
    if not shutil.which("ip"):
        return "no 'ip' command (iproute2)"
    if scenario in ("tap", "bridge", "tap-mq", "bridge-mq", "tap-mq-iothreads") and not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun"
    if scenario.startswith("user") and not shutil.which("passt"):
        return "no 'passt' in PATH"
    if not os.access(vmm, os.X_OK):
        return None  # reported as a failure by run_probe.py
    return None


def run_probe(ns, a, cmdline, net, run_after=None, run=None, timeout=40, vmm_args=()):
    cmd = ns.exec_cmd(sys.executable, a.run_probe, a.vmm, a.elf, "--cmdline", cmdline,
                      "--vmm-arg=--net", "--vmm-arg=" + net, "--timeout", str(timeout))
    cmd += ["--vmm-arg=" + x for x in vmm_args]
    if run:
        cmd += (["--run-after", run_after] if run_after else []) + ["--run", run]
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd).returncode


def scenario_tap(ns, a):
    ns.ip("tuntap", "add", "dev", "vtap0", "mode", "tap", "vnet_hdr")
    ns.ip("addr", "add", "10.0.2.1/24", "dev", "vtap0")
    ns.ip("link", "set", "vtap0", "up")
    return run_probe(ns, a, "mode=tap ip=10.0.2.15 peer=10.0.2.1 pings=3 wait=15", "tap=vtap0",
                     "virtio_net: READY", "%s %s 10.0.2.15 3 10" % (sys.executable, NETPING))


def scenario_bridge(ns, a):
    ns.ip("link", "add", "vbr0", "type", "bridge")
    ns.ip("addr", "add", "10.0.3.1/24", "dev", "vbr0")
    ns.ip("link", "set", "vbr0", "up")
    # The guest's TAP must be a bridge port while it runs; checked from the --run command.
    check = ("ip -o link show master vbr0 | grep -q vireo && %s %s 10.0.3.15 3 10"
             % (sys.executable, NETPING))
    return run_probe(ns, a, "mode=tap ip=10.0.3.15 peer=10.0.3.1 pings=3 wait=15", "network=vbr0",
                     "virtio_net: READY", check)


def scenario_tap_mq(ns, a):
    ns.ip("tuntap", "add", "dev", "vtap0", "mode", "tap", "vnet_hdr", "multi_queue")
    ns.ip("addr", "add", "10.0.5.1/24", "dev", "vtap0")
    ns.ip("link", "set", "vtap0", "up")
    return run_probe(ns, a, "ip=10.0.5.15 peer=10.0.5.1 pings=3 wait=20", "tap=vtap0,queues=2",
                     timeout=60)


def scenario_tap_mq_iothreads(ns, a):
    ns.ip("tuntap", "add", "dev", "vtap0", "mode", "tap", "vnet_hdr", "multi_queue")
    ns.ip("addr", "add", "10.0.7.1/24", "dev", "vtap0")
    ns.ip("link", "set", "vtap0", "up")
    sock = "/tmp/vireo-iot-%d.sock" % os.getpid()
    check = "%s %s %s 2 50" % (sys.executable, os.path.join(HERE, "iothreads_check.py"), sock)
    try:
        # The check starts with the VMM (it waits for the socket): the pings take ~1 s here.
        return run_probe(ns, a, "ip=10.0.7.15 peer=10.0.7.1 pings=50 wait=40", "tap=vtap0,queues=2",
                         None, check, timeout=60,
                         vmm_args=("--io-threads", "2", "--api-sock", sock))
    finally:
        if os.path.exists(sock):
            os.unlink(sock)


def scenario_bridge_mq(ns, a):
    ns.ip("link", "add", "vbr0", "type", "bridge")
    ns.ip("addr", "add", "10.0.6.1/24", "dev", "vbr0")
    ns.ip("link", "set", "vbr0", "up")
    return run_probe(ns, a, "ip=10.0.6.15 peer=10.0.6.1 pings=3 wait=20",
                     "network=vbr0,queues=2", timeout=60)


def user_uplink(ns):
    # passt takes the guest's address, route and MAC defaults from the interface that has
    # the default route: give the namespace one (a veth pair whose far end goes nowhere).
    ns.ip("link", "add", "up0", "type", "veth", "peer", "name", "up1")
    ns.ip("addr", "add", "10.0.4.5/24", "dev", "up0")
    ns.ip("link", "set", "up0", "up")
    ns.ip("link", "set", "up1", "up")
    ns.ip("route", "add", "default", "via", "10.0.4.1")
    ns.ip("-6", "addr", "add", "fd00:4::5/64", "dev", "up0", "nodad")
    ns.ip("-6", "route", "add", "default", "via", "fd00:4::1")


def scenario_user(ns, a):
    user_uplink(ns)
    connect = ("%s -c \"import socket,time; s=socket.create_connection(('127.0.0.1',18080),5); "
               "time.sleep(1)\"" % sys.executable)
    return run_probe(ns, a, "mode=user fwdport=80 wait=15", "user,hostfwd=tcp:127.0.0.1:18080-:80",
                     "virtio_net: READY", connect)


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
        fields = st[st.rfind(")") + 2:].split()
        if int(fields[1]) == pid:
            out.append(int(d))
    return out


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rfind(")") + 2:].split()[0] != "Z"


def scenario_user_crash(ns, a):
    user_uplink(ns)
    cmd = ns.exec_cmd(a.vmm, "run", "--kernel", a.elf, "--cmdline", "mode=user fwdport=80 wait=15",
                      "--memory", "64M", "--net", "user")
    print("+", " ".join(cmd), flush=True)
    vm = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
    try:
        # `ip netns exec` execs the VMM in place, so vm.pid is the VMM.
        passt, out = [], b""
        end = time.monotonic() + 20
        while time.monotonic() < end and b"virtio_net: READY" not in out:
            line = vm.stdout.readline()
            if not line:
                break
            out += line
        passt = [p for p in children(vm.pid) if "passt" in open("/proc/%d/comm" % p).read()]
        if b"virtio_net: READY" not in out or not passt:
            print("FAIL: guest did not get its DHCP offer or no passt child (%s):\n%s"
                  % (passt, out.decode(errors="replace")))
            return 1
        os.kill(vm.pid, signal.SIGKILL)
        vm.wait()
        end = time.monotonic() + 5
        while time.monotonic() < end and any(alive(p) for p in passt):
            time.sleep(0.05)
        left = [p for p in passt if alive(p)]
        if left:
            print("FAIL: passt %s survived the VMM's SIGKILL" % left)
            return 1
        print("PASS: passt %s exited with its killed VMM" % passt)
        return 0
    finally:
        if vm.poll() is None:
            vm.kill()
            vm.wait()


SCENARIOS = {"tap": scenario_tap, "bridge": scenario_bridge, "user": scenario_user,
             "user-crash": scenario_user_crash, "tap-mq": scenario_tap_mq,
             "bridge-mq": scenario_bridge_mq, "tap-mq-iothreads": scenario_tap_mq_iothreads}


class Args:
    pass


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in SCENARIOS:
        print("usage: run_net.py {%s} VMM PROBE_ELF RUN_PROBE" % "|".join(SCENARIOS))
        return 2
    a = Args()
    a.scenario, a.vmm, a.elf, a.run_probe = sys.argv[1:]
    a.vmm, a.elf, a.run_probe = (os.path.abspath(p) for p in (a.vmm, a.elf, a.run_probe))
    why = skip_reason(a.scenario, a.vmm)
    if why:
        print("SKIP: %s" % why)
        return SKIP
    try:
        with Netns() as ns:
            return SCENARIOS[a.scenario](ns, a)
    except PermissionError as e:
        print("SKIP: cannot create a network namespace (needs CAP_NET_ADMIN/CAP_SYS_ADMIN): %s"
              % e)
        return SKIP
    except RuntimeError as e:
        if re.search(r"Operation not permitted|Permission denied", str(e)):
            print("SKIP: %s" % e)
            return SKIP
        print("FAIL: setup: %s" % e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
