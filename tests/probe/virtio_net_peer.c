/* SPDX-License-Identifier: MIT */
/*
 * virtio-net peer probe (tests/netmgr): a polled driver with a tiny IPv4 stack that can
 * initiate pings, so two guests can test each other.
 *
 *   ip=A.B.C.D | dhcp      static address, or DHCP DISCOVER/OFFER/REQUEST/ACK (prints
 *                          "virtio_net_peer: lease IP router R server S")
 *   [prefix=N] [gw=A.B.C.D] on-link prefix (default 24) and router for off-link peers
 *                          (with dhcp: from the lease)
 *   [peer=A.B.C.D]         ARP for the peer (or the router), then ping it until `pings`
 *                          replies (default 3); expect=none instead requires that no ARP or
 *                          echo reply (on-link: no ARP reply either) arrives in time
 *   [spoof=MAC]            first send 5 broadcast frames (EtherType 0x88b5, payload
 *                          "VIREO-SPOOF") with that forged source MAC, then 5 ("VIREO-REAL")
 *                          with the device's own MAC
 *   [hold=S] [wait=S]      keep answering ARP and echo requests for S seconds after our own
 *                          pings are done (default 4), overall deadline (default 20)
 *
 * Prints "virtio_net_peer: READY" when the address is set up and the spoof frames are out,
 * "virtio_net_peer: N replies from PEER" or "...: no reply from PEER" at the end of pinging.
 */
#include "virtio.h"
#include "netutil.h"

PROBE("virtio_net_peer");

#define VIRTIO_ID_NET_MODERN 0x1041
#define F_MAC (1ull << 5)
#define F_STATUS (1ull << 16)
#define NRX 32
#define BUFSZ 2048
#define HDR 12

static struct vdev v;
static struct vq rxq, txq;
static uint8_t *rxbuf, *txbuf;
static uint8_t mac[6], myip[4], gw[4], peer[4], target[4], target_mac[6];
static unsigned prefix = 24;
static uint64_t deadline;

static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t zero4[4];

static uint32_t ip32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool parse_hex(const char *s, uint8_t *out, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		unsigned x = 0;
		for (unsigned j = 0; j < 2; j++) {
			char c = *s++;
			unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
				     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
				     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
							    : 16;
			if (d > 15)
				return false;
			x = x << 4 | d;
		}
		out[i] = (uint8_t)x;
		if (i + 1 < n && *s++ != ':')
			return false;
	}
	return *s == 0;
}

/* ---- device ---------------------------------------------------------------------------- */

static void rx_post(uint16_t i)
{
	rxq.desc[i].addr = (uint64_t)(uintptr_t)(rxbuf + (size_t)i * BUFSZ);
	rxq.desc[i].len = BUFSZ;
	rxq.desc[i].flags = VRING_DESC_F_WRITE;
	vq_submit(&rxq, i);
}

static void tx(size_t len)
{
	uint32_t id, ulen;
	uint64_t end = time_us() + 1000000;
	memset(txbuf, 0, HDR);
	txq.desc[0].addr = (uint64_t)(uintptr_t)txbuf;
	txq.desc[0].len = (uint32_t)(HDR + len);
	txq.desc[0].flags = 0;
	vq_submit(&txq, 0);
	while (!vq_pop_used(&txq, &id, &ulen)) {
		CHECK(time_us() < end, "transmit not completed in 1 s");
		cpu_relax();
	}
}

/* The next received frame without waiting (NULL if none); the caller reposts slot. */
static uint8_t *rx_poll(uint16_t *slot, uint32_t *flen)
{
	uint32_t id, len;
	if (!vq_pop_used(&rxq, &id, &len))
		return NULL;
	CHECK(id < NRX && len >= HDR + 14 && len <= BUFSZ, "receive: id %u length %u", id, len);
	*slot = (uint16_t)id;
	*flen = len - HDR;
	return rxbuf + (size_t)id * BUFSZ + HDR;
}

static void dev_up(void)
{
	uint64_t want = VIRTIO_F_VERSION_1 | F_MAC | F_STATUS;
	CHECK(vdev_open(&v, VIRTIO_ID_NET_MODERN), "no virtio-net (1af4:1041) on bus 0");
	CHECK(v.device && vdev_negotiate(&v, want), "feature negotiation");
	for (unsigned i = 0; i < 6; i++)
		mac[i] = mmio_read8(v.device + i);
	CHECK(vq_setup(&v, &rxq, 0, NRX, VIRTIO_MSI_NO_VECTOR), "receive queue setup");
	CHECK(vq_setup(&v, &txq, 1, 16, VIRTIO_MSI_NO_VECTOR), "transmit queue setup");
	rxbuf = probe_alloc((size_t)NRX * BUFSZ, 4096);
	txbuf = probe_alloc(BUFSZ, 4096);
	vdev_driver_ok(&v);
	for (uint16_t i = 0; i < NRX; i++)
		rx_post(i);
	printf("virtio_net_peer: mac %02x:%02x:%02x:%02x:%02x:%02x\n", mac[0], mac[1], mac[2],
	       mac[3], mac[4], mac[5]);
}

/* ---- frames ----------------------------------------------------------------------------- */

static uint8_t *eth(const uint8_t dst[6], const uint8_t src[6], uint16_t type)
{
	uint8_t *f = txbuf + HDR;
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	put16(f + 12, type);
	return f + 14;
}

static void arp_send(uint16_t op, const uint8_t tha[6], const uint8_t tpa[4])
{
	uint8_t *a = eth(op == 1 ? bcast : tha, mac, 0x0806);
	put16(a, 1);
	put16(a + 2, 0x0800);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, mac, 6);
	memcpy(a + 14, myip, 4);
	memcpy(a + 18, op == 1 ? (const uint8_t[6]){0} : tha, 6);
	memcpy(a + 24, tpa, 4);
	tx(14 + 28 + 18);
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
	put16(p + 10, csum(p, 20));
	return p + 20;
}

static void echo_send(const uint8_t dmac[6], const uint8_t dst[4], uint8_t type, uint16_t id,
		      uint16_t seq, const uint8_t *data, size_t dlen)
{
	uint8_t *icmp = ip_hdr(eth(dmac, mac, 0x0800), 1, myip, dst, 8 + dlen);
	icmp[0] = type;
	icmp[1] = 0;
	put16(icmp + 2, 0);
	put16(icmp + 4, id);
	put16(icmp + 6, seq);
	memcpy(icmp + 8, data, dlen);
	put16(icmp + 2, csum(icmp, 8 + dlen));
	tx(14 + 20 + 8 + dlen);
}

static void spoof_send(const uint8_t src[6], const char *text)
{
	for (unsigned i = 0; i < 5; i++) {
		uint8_t *p = eth(bcast, src, 0x88b5);
		memset(p, 0, 46);
		memcpy(p, text, strlen(text));
		tx(14 + 46);
		udelay(20000);
	}
}

/* ---- DHCP client -------------------------------------------------------------------------- */

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

static void dhcp_send(uint8_t type, const uint8_t req[4], const uint8_t server[4])
{
	static const uint8_t all[4] = {255, 255, 255, 255};
	const uint32_t xid = 0x76697270; /* "virp" */
	size_t olen = 3 + (req ? 6 + 6 : 0) + 1;
	uint8_t *udp = ip_hdr(eth(bcast, mac, 0x0800), 17, zero4, all, 8 + 240 + olen);
	uint8_t *b = udp + 8, *o = b + 240;
	memset(b, 0, 240 + olen);
	b[0] = 1, b[1] = 1, b[2] = 6;
	memcpy(b + 4, &xid, 4);
	put16(b + 10, 0x8000); /* broadcast replies: we have no address yet */
	memcpy(b + 28, mac, 6);
	b[236] = 99, b[237] = 130, b[238] = 83, b[239] = 99;
	*o++ = 53, *o++ = 1, *o++ = type;
	if (req) {
		*o++ = 50, *o++ = 4;
		memcpy(o, req, 4), o += 4;
		*o++ = 54, *o++ = 4;
		memcpy(o, server, 4), o += 4;
	}
	*o = 255;
	put16(udp, 68);
	put16(udp + 2, 67);
	put16(udp + 4, (uint16_t)(8 + 240 + olen));
	put16(udp + 6, 0);
	tx(14 + 20 + 8 + 240 + olen);
}

/* Wait for a DHCP reply of `type`; fills yiaddr, router, server and prefix. */
static bool dhcp_wait(uint8_t type, uint8_t yi[4], uint8_t server[4], uint64_t until)
{
	uint16_t slot;
	uint32_t len;
	uint8_t *f, olen;
	while (time_us() < until) {
		if (!(f = rx_poll(&slot, &len))) {
			cpu_relax();
			continue;
		}
		uint8_t *p = f + 14;
		bool hit = false;
		if (be16(f + 12) == 0x0800 && p[9] == 17 && len >= 14 + 28 + 240 &&
		    be16(p + 22) == 68) {
			uint8_t *d = p + 28;
			size_t dl = len - 14 - 28;
			const uint8_t *t = dhcp_opt(d + 240, dl - 240, 53, &olen);
			hit = d[0] == 2 && t && olen == 1 && *t == type && !memcmp(d + 28, mac, 6);
			if (hit) {
				const uint8_t *r = dhcp_opt(d + 240, dl - 240, 3, &olen);
				const uint8_t *s = dhcp_opt(d + 240, dl - 240, 54, &olen);
				const uint8_t *m = dhcp_opt(d + 240, dl - 240, 1, &olen);
				memcpy(yi, d + 16, 4);
				memcpy(gw, r ? r : zero4, 4);
				memcpy(server, s ? s : d + 20, 4);
				if (m)
					for (prefix = 0; prefix < 32 && (ip32(m) << prefix) >> 31;)
						prefix++;
			}
		}
		rx_post(slot);
		if (hit)
			return true;
	}
	return false;
}

static void dhcp(void)
{
	uint8_t offer[4], server[4];
	uint64_t end = time_us() + 8000000;
	bool got = false;
	while (!got && time_us() < end) { /* the bridge port may need a moment */
		dhcp_send(1, NULL, NULL);
		got = dhcp_wait(2, offer, server, time_us() + 1000000);
	}
	CHECK(got, "no DHCP OFFER");
	dhcp_send(3, offer, server);
	CHECK(dhcp_wait(5, myip, server, time_us() + 3000000), "no DHCP ACK");
	CHECK(!memcmp(myip, offer, 4), "ACK for another address than offered");
	printf("virtio_net_peer: lease %u.%u.%u.%u/%u router %u.%u.%u.%u server %u.%u.%u.%u\n",
	       myip[0], myip[1], myip[2], myip[3], prefix, gw[0], gw[1], gw[2], gw[3], server[0],
	       server[1], server[2], server[3]);
}

/* ---- main loop ------------------------------------------------------------------------------ */

void probe_main(const struct hvm_start_info *si)
{
	char spoof[32];
	uint8_t forged[6];
	(void)si;
	deadline = time_us() + cmdline_u64("wait", 20) * 1000000;
	prefix = (unsigned)cmdline_u64("prefix", 24);
	dev_up();
	if (cmdline_has("dhcp"))
		dhcp();
	else
		CHECK(parse_ip("ip", myip), "ip=A.B.C.D or dhcp expected");
	parse_ip("gw", gw);
	bool pinging = parse_ip("peer", peer), expect_none = false, resolved = false, onlink = true;
	char expect[8] = "";
	if (cmdline_str("expect", expect, sizeof(expect)))
		expect_none = !strncmp(expect, "none", 5);
	if (pinging) {
		uint32_t mask = prefix ? ~0u << (32 - prefix) : 0;
		onlink = (ip32(peer) & mask) == (ip32(myip) & mask);
		CHECK(onlink || ip32(gw), "peer is off-link and there is no gw=");
		memcpy(target, onlink ? peer : gw, 4);
	}
	if (cmdline_str("spoof", spoof, sizeof(spoof))) {
		CHECK(parse_hex(spoof, forged, 6), "spoof=aa:bb:cc:dd:ee:ff expected");
		spoof_send(forged, "VIREO-SPOOF");
		spoof_send(mac, "VIREO-REAL");
	}
	printf("virtio_net_peer: READY\n");
	(void)inb(PORT_COM1 + 5); /* push the line out of the UART */

	unsigned want = (unsigned)cmdline_u64("pings", 3), got = 0, answered = 0;
	uint64_t hold = cmdline_u64("hold", 4) * 1000000, next = 0, done_at = 0;
	uint16_t seq = 0, slot;
	uint32_t len;
	bool done = !pinging;
	if (done)
		done_at = time_us();
	while (time_us() < deadline && !(done && time_us() > done_at + hold)) {
		uint64_t now = time_us();
		if (!done && now >= next) {
			if (!resolved)
				arp_send(1, bcast, target);
			else
				echo_send(target_mac, peer, 8, 0x7672, seq++,
					  (const uint8_t *)"vireo", 5);
			next = now + (resolved ? 200000 : 500000);
		}
		uint8_t *f = rx_poll(&slot, &len);
		if (!f) {
			cpu_relax();
			continue;
		}
		uint16_t type = be16(f + 12);
		uint8_t *p = f + 14;
		if (type == 0x0806 && len >= 14 + 28 && be16(p + 6) == 2 && pinging &&
		    !memcmp(p + 14, target, 4) && !resolved) {
			memcpy(target_mac, p + 8, 6);
			resolved = true;
			next = 0;
			printf("virtio_net_peer: %u.%u.%u.%u is at %02x:%02x:%02x:%02x:%02x:%02x\n",
			       target[0], target[1], target[2], target[3], target_mac[0],
			       target_mac[1], target_mac[2], target_mac[3], target_mac[4],
			       target_mac[5]);
		} else if (type == 0x0806 && len >= 14 + 28 && be16(p + 6) == 1 &&
			   !memcmp(p + 24, myip, 4)) {
			uint8_t sha[6], spa[4];
			memcpy(sha, p + 8, 6);
			memcpy(spa, p + 14, 4);
			rx_post(slot);
			arp_send(2, sha, spa);
			continue;
		} else if (type == 0x0800 && len >= 14 + 28 && p[0] == 0x45 && p[9] == 1 &&
			   !memcmp(p + 16, myip, 4)) {
			size_t total = be16(p + 2);
			if (total < 28 || total + 14 > len) {
				rx_post(slot);
				continue;
			}
			uint8_t *icmp = p + 20, src[4], smac[6], data[64];
			size_t dlen = total - 28 < sizeof(data) ? total - 28 : sizeof(data);
			if (icmp[0] == 8) {
				memcpy(src, p + 12, 4);
				memcpy(smac, f + 6, 6);
				memcpy(data, icmp + 8, dlen);
				uint16_t id = be16(icmp + 4), sq = be16(icmp + 6);
				rx_post(slot);
				echo_send(smac, src, 0, id, sq, data, dlen);
				answered++;
				continue;
			}
			if (icmp[0] == 0 && pinging && !memcmp(p + 12, peer, 4) &&
			    be16(icmp + 4) == 0x7672 && !done && ++got >= want) {
				done = true;
				done_at = time_us();
				printf("virtio_net_peer: %u replies from %u.%u.%u.%u\n", got,
				       peer[0], peer[1], peer[2], peer[3]);
			}
		}
		rx_post(slot);
	}
	printf("virtio_net_peer: answered %u echo requests\n", answered);
	if (pinging && expect_none) {
		/* Off-link, the router answering ARP is fine: only echo replies count. */
		CHECK(!(onlink && resolved) && !got,
		      "reached %u.%u.%u.%u (%s, %u replies) but expected not to", peer[0], peer[1],
		      peer[2], peer[3], resolved ? "ARP answered" : "no ARP", got);
		printf("virtio_net_peer: no reply from %u.%u.%u.%u\n", peer[0], peer[1], peer[2],
		       peer[3]);
	} else if (pinging) {
		CHECK(done, "%u of %u replies from %u.%u.%u.%u (%s)", got, want, peer[0], peer[1],
		      peer[2], peer[3], resolved ? "ARP answered" : "no ARP reply");
	}
	CHECK(vdev_reset(&v), "device reset does not complete");
	probe_pass();
}
