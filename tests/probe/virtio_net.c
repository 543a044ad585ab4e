/* SPDX-License-Identifier: MIT */
/*
 * virtio-net probe: a polled driver (no interrupts) with a tiny static IPv4 stack.
 *
 *   mode=tap  ip=A.B.C.D peer=A.B.C.D [pings=N] [wait=SECONDS]
 *       ARP for the peer (the host side of the TAP or bridge) and expect its reply; print
 *       "virtio_net: READY"; then answer ARP requests and ICMP echo requests for our address
 *       until N echo requests (default 3) were answered.
 *   mode=user [fwdport=N] [wait=SECONDS]
 *       DHCP DISCOVER through passt, expect an OFFER; ARP for the offered router and expect
 *       the reply; with fwdport, print "virtio_net: READY" and wait for a TCP SYN to that port
 *       (the host connected to the forwarded port and passt opened the guest side).
 *
 * Also checked on the way: the device config MAC, FEATURES_OK with MRG_RXBUF and the control
 * queue, the promiscuous-off / MAC table commands, num_buffers, and used lengths.
 */
#include "virtio.h"
#include "netutil.h"

PROBE("virtio_net");

#define VIRTIO_ID_NET_MODERN 0x1041
#define F_MAC (1ull << 5)
#define F_MRG_RXBUF (1ull << 15)
#define F_STATUS (1ull << 16)
#define F_CTRL_VQ (1ull << 17)
#define F_CTRL_RX (1ull << 18)
#define NRX 32
#define BUFSZ 2048
#define HDR 12

static struct vdev v;
static struct vq rxq, txq, cq;
static uint8_t *rxbuf, *txbuf, *cbuf;
static uint8_t mac[6];
static uint8_t myip[4], peerip[4];
static uint64_t deadline;
static unsigned rx_frames;

static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

/* ---- device ---------------------------------------------------------------------------- */

/* The runner reacts to this line. Vireo's UART holds the last byte written until the next
 * UART access, so look at the line status register once to push the newline out. */
static void say_ready(void)
{
	printf("virtio_net: READY\n");
	(void)inb(PORT_COM1 + 5);
}

static void rx_post(uint16_t i)
{
	rxq.desc[i].addr = (uint64_t)(uintptr_t)(rxbuf + (size_t)i * BUFSZ);
	rxq.desc[i].len = BUFSZ;
	rxq.desc[i].flags = VRING_DESC_F_WRITE;
	vq_submit(&rxq, i);
}

static void wait_used(struct vq *q, uint16_t head, uint32_t *len, const char *what)
{
	uint32_t id;
	uint64_t end = time_us() + 1000000;
	while (!vq_pop_used(q, &id, len)) {
		CHECK(time_us() < end, "%s: not completed in 1 s (status 0x%x)", what,
		      vdev_status(&v));
		cpu_relax();
	}
	CHECK(id == head, "%s: used id %u, expected %u", what, id, head);
}

/* Send one Ethernet frame (built in txbuf + HDR by the caller). */
static void tx(size_t len)
{
	uint32_t ulen;
	memset(txbuf, 0, HDR);
	txq.desc[0].addr = (uint64_t)(uintptr_t)txbuf;
	txq.desc[0].len = (uint32_t)(HDR + len);
	txq.desc[0].flags = 0;
	vq_submit(&txq, 0);
	wait_used(&txq, 0, &ulen, "transmit");
	CHECK(!(vdev_status(&v) & VIRTIO_STATUS_NEEDS_RESET), "device needs reset after transmit");
}

static uint8_t ctrl(uint8_t cls, uint8_t cmd, const void *data, uint32_t len)
{
	uint32_t ulen;
	cbuf[0] = cls;
	cbuf[1] = cmd;
	memcpy(cbuf + 2, data, len);
	cbuf[512] = 0xee;
	cq.desc[0] = (struct vring_desc){(uint64_t)(uintptr_t)cbuf, 2 + len, VRING_DESC_F_NEXT, 1};
	cq.desc[1] =
	    (struct vring_desc){(uint64_t)(uintptr_t)(cbuf + 512), 1, VRING_DESC_F_WRITE, 0};
	vq_submit(&cq, 0);
	wait_used(&cq, 0, &ulen, "control command");
	return cbuf[512];
}

/* Next received frame (pointer and length without the header), or NULL at the deadline. */
static uint8_t *rx(uint16_t *slot, uint32_t *flen)
{
	uint32_t id, len;
	while (!vq_pop_used(&rxq, &id, &len)) {
		if (time_us() > deadline)
			return NULL;
		cpu_relax();
	}
	CHECK(id < NRX, "receive: used id %u out of range", id);
	CHECK(len >= HDR + 14 && len <= BUFSZ, "receive: used length %u", len);
	uint8_t *b = rxbuf + (size_t)id * BUFSZ;
	uint16_t nbuf = (uint16_t)(b[10] | b[11] << 8);
	CHECK(nbuf == 1, "receive: num_buffers %u for a %u-byte frame", nbuf, len);
	rx_frames++;
	if (cmdline_has("debug"))
		printf("virtio_net: rx %u bytes type %04x from %02x:%02x\n", len - HDR,
		       be16(b + HDR + 12), b[HDR + 10], b[HDR + 11]);
	*slot = (uint16_t)id;
	*flen = len - HDR;
	return b + HDR;
}

static void dev_up(void)
{
	uint64_t want = VIRTIO_F_VERSION_1 | F_MAC | F_STATUS | F_MRG_RXBUF | F_CTRL_VQ | F_CTRL_RX;
	CHECK(vdev_open(&v, VIRTIO_ID_NET_MODERN), "no virtio-net (1af4:1041) on bus 0");
	CHECK(v.device, "virtio-net without device configuration");
	CHECK(vdev_negotiate(&v, want), "feature negotiation");
	CHECK((v.negotiated & want) == want, "features offered 0x%lx lack some of 0x%lx", v.offered,
	      want);
	for (unsigned i = 0; i < 6; i++)
		mac[i] = mmio_read8(v.device + i);
	CHECK(!(mac[0] & 1) && (mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]),
	      "config MAC is not a unicast address");
	CHECK(mmio_read16(v.device + 6) & 1, "link is down (status 0x%x)",
	      mmio_read16(v.device + 6));
	CHECK(vq_setup(&v, &rxq, 0, NRX, VIRTIO_MSI_NO_VECTOR), "receive queue setup");
	CHECK(vq_setup(&v, &txq, 1, 16, VIRTIO_MSI_NO_VECTOR), "transmit queue setup");
	CHECK(vq_setup(&v, &cq, 2, 16, VIRTIO_MSI_NO_VECTOR), "control queue setup");
	rxbuf = probe_alloc((size_t)NRX * BUFSZ, 4096);
	txbuf = probe_alloc(BUFSZ, 4096);
	cbuf = probe_alloc(1024, 64);
	vdev_driver_ok(&v);
	CHECK(vdev_status(&v) & VIRTIO_STATUS_DRIVER_OK, "DRIVER_OK not accepted (0x%x)",
	      vdev_status(&v));
	for (uint16_t i = 0; i < NRX; i++)
		rx_post(i);
	/* Filter on: our address and broadcast only (ARP replies are unicast to us). */
	uint8_t off = 0, table[8] = {0};
	CHECK(ctrl(0, 0, &off, 1) == 0, "CTRL_RX_PROMISC off refused");
	CHECK(ctrl(1, 0, table, 8) == 0, "CTRL_MAC_TABLE_SET (empty) refused");
	printf("virtio_net: mac %02x:%02x:%02x:%02x:%02x:%02x, features 0x%lx\n", mac[0], mac[1],
	       mac[2], mac[3], mac[4], mac[5], v.negotiated);
}

/* ---- tiny IPv4 stack ------------------------------------------------------------------ */

static uint8_t *eth(const uint8_t dst[6], uint16_t type)
{
	uint8_t *f = txbuf + HDR;
	memcpy(f, dst, 6);
	memcpy(f + 6, mac, 6);
	put16(f + 12, type);
	return f + 14;
}

static void arp_send(uint16_t op, const uint8_t tha[6], const uint8_t tpa[4], const uint8_t spa[4])
{
	uint8_t *a = eth(op == 1 ? bcast : tha, 0x0806);
	put16(a, 1);
	put16(a + 2, 0x0800);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, mac, 6);
	memcpy(a + 14, spa, 4);
	memcpy(a + 18, op == 1 ? (const uint8_t[6]){0} : tha, 6);
	memcpy(a + 24, tpa, 4);
	tx(14 + 28 + 18); /* padded to the 60-byte minimum */
}

static uint8_t *ip_hdr(uint8_t *p, uint8_t proto, const uint8_t src[4], const uint8_t dst[4],
		       size_t payload)
{
	memset(p, 0, 20);
	p[0] = 0x45;
	put16(p + 2, (uint16_t)(20 + payload));
	p[8] = 64;
	p[9] = proto;
	memcpy(p + 12, src, 4);
	memcpy(p + 16, dst, 4);
	put16(p + 10, csum_from(p, 20, 0));
	return p + 20;
}

/* Wait for an ARP reply from ip; copies the sender's MAC. */
static void arp_resolve(const uint8_t ip[4], const uint8_t src_ip[4], uint8_t out[6])
{
	uint16_t slot;
	uint32_t len;
	uint8_t *f;
	arp_send(1, bcast, ip, src_ip);
	while ((f = rx(&slot, &len))) {
		bool hit =
		    be16(f + 12) == 0x0806 && be16(f + 14 + 6) == 2 && !memcmp(f + 14 + 14, ip, 4);
		if (hit)
			memcpy(out, f + 14 + 8, 6);
		rx_post(slot);
		if (hit)
			return;
	}
	probe_fail("no ARP reply from %u.%u.%u.%u (%u frames received)", ip[0], ip[1], ip[2], ip[3],
		   rx_frames);
}

static void tap_mode(void)
{
	unsigned want = (unsigned)cmdline_u64("pings", 3), answered = 0;
	uint8_t peermac[6];
	uint16_t slot;
	uint32_t len;
	uint8_t *f;

	CHECK(parse_ip("ip", myip) && parse_ip("peer", peerip), "mode=tap needs ip= and peer=");
	arp_resolve(peerip, myip, peermac);
	printf("virtio_net: peer %u.%u.%u.%u is at %02x:%02x:%02x:%02x:%02x:%02x\n", peerip[0],
	       peerip[1], peerip[2], peerip[3], peermac[0], peermac[1], peermac[2], peermac[3],
	       peermac[4], peermac[5]);
	say_ready();
	while (answered < want && (f = rx(&slot, &len))) {
		uint16_t type = be16(f + 12);
		uint8_t *p = f + 14;
		if (type == 0x0806 && be16(p + 6) == 1 && !memcmp(p + 24, myip, 4)) {
			uint8_t sha[6], spa[4];
			memcpy(sha, p + 8, 6);
			memcpy(spa, p + 14, 4);
			arp_send(2, sha, spa, myip);
		} else if (type == 0x0800 && (p[0] >> 4) == 4 && (p[0] & 15) >= 5 && p[9] == 1 &&
			   !memcmp(p + 16, myip, 4) && p[(p[0] & 15) * 4] == 8) {
			size_t ihl = (size_t)(p[0] & 15) * 4, total = be16(p + 2);
			CHECK(total >= ihl + 8 && total + 14 <= len, "bad IPv4 length %lu", total);
			size_t icmp_len = total - ihl;
			uint8_t src[4], dmac[6];
			memcpy(src, p + 12, 4);
			memcpy(dmac, f + 6, 6);
			uint8_t *r = ip_hdr(eth(dmac, 0x0800), 1, myip, src, icmp_len);
			memcpy(r, p + ihl, icmp_len);
			r[0] = 0; /* echo reply */
			put16(r + 2, 0);
			put16(r + 2, csum_from(r, icmp_len, 0));
			rx_post(slot); /* before tx: p points into the buffer we give back */
			tx(14 + 20 + icmp_len);
			answered++;
			printf("virtio_net: echo reply %u to %u.%u.%u.%u\n", answered, src[0],
			       src[1], src[2], src[3]);
			continue;
		}
		rx_post(slot);
	}
	CHECK(answered >= want, "answered %u of %u echo requests before the deadline", answered,
	      want);
}

/* ---- user mode: DHCP through passt ------------------------------------------------------- */

static const uint8_t *dhcp_opt(const uint8_t *o, size_t n, uint8_t code, uint8_t *olen)
{
	for (size_t i = 0; i < n && o[i] != 255;) {
		if (o[i] == 0) {
			i++;
			continue;
		}
		if (i + 2 > n || i + 2 + o[i + 1] > n)
			return NULL;
		if (o[i] == code) {
			*olen = o[i + 1];
			return o + i + 2;
		}
		i += 2u + o[i + 1];
	}
	return NULL;
}

static void user_mode(void)
{
	static const uint8_t zero[4] = {0}, all[4] = {255, 255, 255, 255};
	const uint32_t xid = 0x76697265; /* "vire" */
	uint8_t router[4], gwmac[6], olen;
	uint16_t slot;
	uint32_t len;
	uint8_t *f;
	bool offered = false;

	/* DISCOVER: BOOTP request, broadcast flag, magic cookie, option 53 = 1. */
	uint8_t *udp = ip_hdr(eth(bcast, 0x0800), 17, zero, all, 8 + 240 + 4);
	uint8_t *b = udp + 8;
	memset(b, 0, 244);
	b[0] = 1;
	b[1] = 1;
	b[2] = 6;
	memcpy(b + 4, &xid, 4);
	put16(b + 10, 0x8000);
	memcpy(b + 28, mac, 6);
	b[236] = 99, b[237] = 130, b[238] = 83, b[239] = 99;
	b[240] = 53, b[241] = 1, b[242] = 1, b[243] = 255;
	put16(udp, 68);
	put16(udp + 2, 67);
	put16(udp + 4, 8 + 244);
	put16(udp + 6, 0); /* no UDP checksum (allowed over IPv4) */
	tx(14 + 20 + 8 + 244);

	while (!offered && (f = rx(&slot, &len))) {
		uint8_t *p = f + 14;
		if (be16(f + 12) == 0x0800 && p[9] == 17 && len >= 14 + 20 + 8 + 240 &&
		    be16(p + 20 + 2) == 68) {
			uint8_t *d = p + 28;
			size_t dl = len - 14 - 28;
			const uint8_t *t = dhcp_opt(d + 240, dl - 240, 53, &olen);
			if (d[0] == 2 && !memcmp(d + 4, &xid, 4) && t && olen == 1 && *t == 2) {
				const uint8_t *r = dhcp_opt(d + 240, dl - 240, 3, &olen);
				memcpy(myip, d + 16, 4);
				if (r && olen >= 4)
					memcpy(router, r, 4);
				else
					memcpy(router, d + 20, 4); /* siaddr */
				offered = true;
			}
		}
		rx_post(slot);
	}
	CHECK(offered, "no DHCP OFFER (%u frames received)", rx_frames);
	printf("virtio_net: DHCP offer %u.%u.%u.%u, router %u.%u.%u.%u\n", myip[0], myip[1],
	       myip[2], myip[3], router[0], router[1], router[2], router[3]);
	CHECK(myip[0] | myip[1] | myip[2] | myip[3], "offer without an address");
	arp_resolve(router, myip, gwmac);
	printf("virtio_net: router at %02x:%02x:%02x:%02x:%02x:%02x\n", gwmac[0], gwmac[1],
	       gwmac[2], gwmac[3], gwmac[4], gwmac[5]);

	uint64_t port = cmdline_u64("fwdport", 0);
	if (!port)
		return;
	say_ready();
	while ((f = rx(&slot, &len))) {
		uint8_t *p = f + 14;
		if (be16(f + 12) == 0x0806 && be16(p + 6) == 1 && !memcmp(p + 24, myip, 4)) {
			uint8_t sha[6], spa[4];
			memcpy(sha, p + 8, 6);
			memcpy(spa, p + 14, 4);
			rx_post(slot);
			arp_send(2, sha, spa, myip);
			continue;
		}
		bool syn = be16(f + 12) == 0x0800 && p[9] == 6 && !memcmp(p + 16, myip, 4) &&
			   be16(p + 20 + 2) == port && (p[20 + 13] & 0x02);
		rx_post(slot);
		if (syn) {
			printf("virtio_net: TCP SYN for forwarded port %lu\n", port);
			return;
		}
	}
	probe_fail("no TCP SYN for forwarded port %lu", port);
}

void probe_main(const struct hvm_start_info *si)
{
	char mode[8] = "";
	(void)si;
	deadline = time_us() + cmdline_u64("wait", 20) * 1000000;
	dev_up();
	cmdline_str("mode", mode, sizeof(mode));
	if (!strncmp(mode, "tap", 4))
		tap_mode();
	else if (!strncmp(mode, "user", 5))
		user_mode();
	else
		probe_fail("mode=tap or mode=user expected, got '%s'", mode);
	printf("virtio_net: %u frames received\n", rx_frames);
	CHECK(vdev_reset(&v), "device reset does not complete");
	probe_pass();
}
