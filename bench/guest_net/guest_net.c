/* SPDX-License-Identifier: MIT */
/*
 * Network benchmark guest (bench/guest_net/run.py): a polled virtio-net driver with just enough
 * IPv4, UDP and TCP to push traffic between the guest and the host, identical under Vireo and
 * QEMU. No interrupts: the driver polls the used rings and asks for none (EVENT_IDX used_event
 * kept far ahead, or VRING_AVAIL_F_NO_INTERRUPT); it kicks only when the device asks for it
 * (EVENT_IDX avail_event, or !VRING_USED_F_NO_NOTIFY), like a Linux guest in NAPI polling.
 *
 *   ip=A.B.C.D [prefix=N] [gw=A.B.C.D] | dhcp     our address (dhcp: from a DHCP OFFER)
 *   dst=A.B.C.D  the host address traffic goes to (ARP for it on-link, else for the gateway)
 *   mode=txrate  [count=N] [size=BYTES]  N UDP frames of BYTES (Ethernet, default 64) to dst:port
 *   mode=udpbulk [count=N] [size=BYTES]  the same with 1514-byte frames by default
 *   mode=rxrate  [count=N]   count UDP frames to our port; a frame to port+1 ends the run
 *                (or N frames, or `idle` seconds without one after the first)
 *   mode=tcp     [bytes=N]   a TCP connection to dst:port sending N bytes: MSS segments, or
 *                TSO super-segments (virtio-net GSO) when the device offers HOST_TSO4;
 *                sliding window from the ACKs, go-back-N after a 200 ms retransmission timeout
 *   mode=spin    [count=N]   an empty loop of N iterations between the markers: how slow guest
 *                code is on this host (on nested PVM hosts, microseconds per iteration)
 *   [notso]      do not negotiate CSUM/HOST_TSO4 (MSS segments, software checksums)
 *   [port=N] (default 5001) [wait=S] (overall deadline, default 60)
 *
 * Guest code can be extremely slow (nested hosts), so the hot loops do almost nothing per frame:
 * transmit and receive rings are used in order with fixed descriptors (the batched inline ring
 * functions of tests/probe/lib/vnet.h: vnet_tx_room/push/flush, vnet_rx_last), payloads are
 * zeroes from .bss, TCP headers come from per-slot templates, and of the ACKs that arrived since
 * the last look only the newest is parsed. ARP requests are answered only outside those loops
 * (the harness installs a permanent neighbour entry for the guest).
 *
 * Console: "BENCH-START <mode>" when traffic starts, "BENCH-END <mode> <frames> <bytes>" when
 * it is done (frames/bytes the guest sent or, for rxrate, received; Ethernet bytes, TCP payload
 * bytes), then "PROBE guest_net: PASS". Timing is the host's job: the guest clock of a nested
 * VM is not trustworthy.
 *
 * Files: this one (device set-up, DHCP/ARP, UDP modes, probe_main), tcp.c (mode=tcp),
 * guest_net.h; the driver and the ARP/DHCP/IPv4 frames are tests/probe/lib/vnet.c.
 */
#include "guest_net.h"

PROBE("guest_net");

struct vnet net;
/* Buffers in .bss (zeroed at entry): probe_alloc() would zero 768 KiB byte by byte. */
static uint8_t rxbuf[QSZ][VNET_BUFSZ] __attribute__((aligned(4096)));
static uint8_t slotbuf[NSLOT][VNET_BUFSZ] __attribute__((aligned(4096)));
uint8_t dmac[6], dst[4];
static uint8_t gw[4];
static unsigned prefix = 24;
uint16_t port;
uint64_t deadline;

static void dev_up(void)
{
	uint64_t want = VIRTIO_F_EVENT_IDX | VNET_F_MAC | VNET_F_STATUS | VNET_F_MRG_RXBUF;
	if (!cmdline_has("notso"))
		want |= VNET_F_CSUM | VNET_F_HOST_TSO4;
	/* What a Linux guest offers on receive: the device must then keep 64 KiB of buffers. */
	if (cmdline_has("rxgso"))
		want |= VNET_F_GUEST_CSUM | VNET_F_GUEST_TSO4;
	vnet_open(&net, want, 0);
	net.rx[0].buf = &rxbuf[0][0];
	net.tx[0].buf = &slotbuf[0][0];
	vnet_start(&net, 1, QSZ, QSZ, VNET_QUIET);
}

/* DHCP DISCOVER until an OFFER arrives: take its address, router and mask. */
static void dhcp(void)
{
	struct vnet_lease l;
	CHECK(vnet_dhcp_offer(&net, time_us() + 10000000, &l), "no DHCP OFFER");
	memcpy(net.ip, l.addr, 4);
	memcpy(gw, be32(l.router) ? l.router : l.siaddr, 4);
	if (l.prefix)
		prefix = l.prefix;
	printf("guest_net: DHCP offer %u.%u.%u.%u/%u router %u.%u.%u.%u\n", net.ip[0], net.ip[1],
	       net.ip[2], net.ip[3], prefix, gw[0], gw[1], gw[2], gw[3]);
}

/* ARP for dst (on-link) or the gateway; retried every 500 ms. */
static void resolve(void)
{
	uint32_t mask = prefix ? ~0u << (32 - prefix) : 0;
	bool onlink = (be32(dst) & mask) == (be32(net.ip) & mask);
	const uint8_t *hop = onlink ? dst : gw;
	CHECK(onlink || be32(gw), "dst is off-link and there is no gateway");
	CHECK(vnet_resolve(&net, hop, dmac, time_us() + 10000000, 500000),
	      "no ARP reply from %u.%u.%u.%u", hop[0], hop[1], hop[2], hop[3]);
	printf("guest_net: next hop %u.%u.%u.%u is %02x:%02x:%02x:%02x:%02x:%02x\n", hop[0], hop[1],
	       hop[2], hop[3], dmac[0], dmac[1], dmac[2], dmac[3], dmac[4], dmac[5]);
}

/* The console line the host times: push it out of the UART at once. */
void marker(const char *what, const char *mode, uint64_t frames, uint64_t bytes)
{
	if (frames || bytes)
		printf("BENCH-%s %s %lu %lu\n", what, mode, frames, bytes);
	else
		printf("BENCH-%s %s\n", what, mode);
	(void)inb(PORT_COM1 + 5);
}

/* ---- UDP: txrate, udpbulk and rxrate -------------------------------------------------------- */

static void udp_out(const char *mode, uint64_t count, size_t size)
{
	uint64_t sent = 0;
	CHECK(size >= 60 && size <= 1514, "size=%lu: 60..1514 expected", size);
	size_t data = size - 14 - 20 - 8;
	/* Every slot carries the same ready frame (zero payload: .bss). */
	for (unsigned k = 0; k < NSLOT; k++) {
		uint8_t *b = vnet_tx_buf(&net, 0, k);
		memset(b, 0, VNET_HDR);
		uint8_t *u = vnet_ip(vnet_eth(&net, b + VNET_HDR, dmac, ETH_P_IP), 17, net.ip, dst,
				     8 + data, 0, 0x4000);
		put16(u, (uint16_t)(port + 40000)); /* not port: passt binds the source port */
		put16(u + 2, port);
		put16(u + 4, (uint16_t)(8 + data));
		put16(u + 6, 0); /* no checksum (IPv4) */
		vnet_tx_desc(&net, 0, k, size, NULL, 0);
	}
	marker("START", mode, 0, 0);
	while (sent < count) {
		uint64_t room = vnet_tx_room(&net, 0);
		if (room > count - sent)
			room = count - sent;
		if (room) {
			vnet_tx_push(&net, 0, (unsigned)room);
			sent += room;
			vnet_tx_quiet(&net, 0);
			vnet_tx_flush(&net, 0);
		} else if (time_us() > deadline) {
			probe_fail("deadline: %lu of %lu frames sent", sent, count);
		}
	}
	vnet_tx_drain(&net, 0, deadline);
	marker("END", mode, sent, sent * size);
}

/* Receive side of the same idea (vnet_rx_last): all QSZ buffers stay posted, one per frame
 * (MRG_RXBUF frames fit one buffer), consumed in order; giving them back is an index update. */
static void udp_in(uint64_t count)
{
	uint64_t got = 0, bytes = 0, idle = cmdline_u64("idle", 3) * 1000000, last = 0;
	uint16_t n;
	uint32_t len;
	uint8_t *f;
	marker("START", "rxrate", 0, 0);
	while (got < count) {
		if (!(n = vnet_rx_last(&net, 0, &f, &len))) {
			uint64_t now = time_us();
			CHECK(now < deadline, "deadline: %lu frames received", got);
			if (last && now - last > idle)
				break;
			continue;
		}
		/* Only the last frame of a batch is looked at: the host sends the end frames
		 * (to port + 1) repeatedly. */
		uint8_t *p = f + 14;
		bool end = be16(f + 12) == 0x0800 && len >= 14 + 28 && p[9] == 17 &&
			   be16(p + 22) == port + 1;
		vnet_rx_last_done(&net, 0, n);
		got += n, bytes += (uint64_t)n * len;
		if (!last || (got & 0x3ff) < n)
			last = time_us();
		if (end)
			break;
	}
	CHECK(got, "no frame received");
	marker("END", "rxrate", got, bytes);
}

void probe_main(const struct hvm_start_info *si)
{
	char mode[16] = "";
	(void)si;
	deadline = time_us() + cmdline_u64("wait", 60) * 1000000;
	port = (uint16_t)cmdline_u64("port", 5001);
	dev_up();
	if (cmdline_has("dhcp"))
		dhcp();
	else
		CHECK(parse_ip("ip", net.ip), "ip=A.B.C.D or dhcp expected");
	if (cmdline_u64("prefix", 0))
		prefix = (unsigned)cmdline_u64("prefix", 24);
	parse_ip("gw", gw);
	CHECK(parse_ip("dst", dst), "dst=A.B.C.D expected");
	resolve();
	cmdline_str("mode", mode, sizeof(mode));
	if (!strncmp(mode, "txrate", 7))
		udp_out("txrate", cmdline_u64("count", 100000), cmdline_u64("size", 64));
	else if (!strncmp(mode, "udpbulk", 8))
		udp_out("udpbulk", cmdline_u64("count", 100000), cmdline_u64("size", 1514));
	else if (!strncmp(mode, "rxrate", 7))
		udp_in(cmdline_u64("count", ~0ull));
	else if (!strncmp(mode, "tcp", 4))
		tcp_out(cmdline_u64("bytes", 100000000));
	else if (!strncmp(mode, "spin", 5)) {
		uint64_t n = cmdline_u64("count", 1000000);
		marker("START", "spin", 0, 0);
		for (uint64_t i = 0; i < n; i++)
			barrier();
		marker("END", "spin", n, 0);
	} else
		probe_fail("mode=txrate|udpbulk|rxrate|tcp|spin expected, got '%s'", mode);
	udelay(300000); /* the host samples the VMM's threads at BENCH-END: keep them alive */
	CHECK(vdev_reset(&net.dev), "device reset does not complete");
	probe_pass();
}
