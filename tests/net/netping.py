#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""ICMP echo without the ping binary: netping.py ADDR [COUNT [TIMEOUT]].

Sends COUNT echo requests (raw socket, needs CAP_NET_RAW) to the IPv4 address ADDR, one every
0.2 s, and exits 0 when every one got its reply within TIMEOUT seconds in all, 1 otherwise.
"""
import os
import select
import socket
import struct
import sys
import time


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s & 0xFFFF) + (s >> 16)
    s += s >> 16
    return ~s & 0xFFFF


def main():
    addr = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 10.0
    ident = os.getpid() & 0xFFFF
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    end = time.monotonic() + timeout
    got = set()
    seq = 0
    next_send = 0.0
    while len(got) < count and time.monotonic() < end:
        now = time.monotonic()
        if seq < count and now >= next_send:
            payload = b"vireo-netping-%d" % seq
            hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
            pkt = struct.pack("!BBHHH", 8, 0, checksum(hdr + payload), ident, seq) + payload
            s.sendto(pkt, (addr, 0))
            seq += 1
            next_send = now + 0.2
        r, _, _ = select.select([s], [], [], 0.05)
        if not r:
            continue
        data, src = s.recvfrom(2048)
        ihl = (data[0] & 15) * 4
        icmp = data[ihl:]
        if src[0] != addr or len(icmp) < 8 or checksum(icmp) != 0:
            continue
        typ, _, _, rid, rseq = struct.unpack("!BBHHH", icmp[:8])
        if typ == 0 and rid == ident and icmp[8:] == b"vireo-netping-%d" % rseq:
            got.add(rseq)
            print("reply from %s: seq=%d" % (addr, rseq), flush=True)
    print("%d/%d replies from %s" % (len(got), count, addr))
    return 0 if len(got) == count else 1


if __name__ == "__main__":
    sys.exit(main())
