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
 * The driver and the frames are lib/vnet.c.
 */
#include "vnet.h"

PROBE("virtio_net_peer");

#define NRX 32

static struct vnet net;
static uint8_t gw[4], peer[4], target[4], target_mac[6];
static unsigned prefix = 24;
static uint64_t deadline;

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

/* Five broadcast frames of EtherType 0x88b5 with source MAC src and text as payload. */
static void spoof_send(const uint8_t src[6], const char *text)
{
	for (unsigned i = 0; i < 5; i++) {
		uint8_t *f = vnet_tx_frame(&net, 0), *p = vnet_eth(&net, f, vnet_bcast, 0x88b5);
		memcpy(f + 6, src, 6);
		memset(p, 0, 46);
		memcpy(p, text, strlen(text));
		vnet_send(&net, 0, ETH_HLEN + 46);
		udelay(20000);
	}
}

/* DISCOVER/OFFER/REQUEST/ACK: our address, the router and the prefix from the lease. */
static void dhcp(void)
{
	struct vnet_lease offer, ack;
	/* the bridge port may need a moment: DISCOVER every second for 8 s */
	CHECK(vnet_dhcp_offer(&net, time_us() + 8000000, &offer), "no DHCP OFFER");
	vnet_dhcp_send(&net, 3, offer.addr, offer.server);
	CHECK(vnet_dhcp_wait(&net, 5, time_us() + 3000000, &ack), "no DHCP ACK");
	CHECK(!memcmp(ack.addr, offer.addr, 4), "ACK for another address than offered");
	memcpy(net.ip, ack.addr, 4);
	memcpy(gw, ack.router, 4);
	if (ack.prefix)
		prefix = ack.prefix;
	printf("virtio_net_peer: lease %u.%u.%u.%u/%u router %u.%u.%u.%u server %u.%u.%u.%u\n",
	       net.ip[0], net.ip[1], net.ip[2], net.ip[3], prefix, gw[0], gw[1], gw[2], gw[3],
	       ack.server[0], ack.server[1], ack.server[2], ack.server[3]);
}

/* ---- main loop ------------------------------------------------------------------------------ */

void probe_main(const struct hvm_start_info *si)
{
	char spoof[32];
	uint8_t forged[6];
	(void)si;
	deadline = time_us() + cmdline_u64("wait", 20) * 1000000;
	prefix = (unsigned)cmdline_u64("prefix", 24);
	vnet_open(&net, VNET_F_MAC | VNET_F_STATUS, 0);
	vnet_start(&net, 1, NRX, 16, 0);
	if (cmdline_has("dhcp"))
		dhcp();
	else
		CHECK(parse_ip("ip", net.ip), "ip=A.B.C.D or dhcp expected");
	parse_ip("gw", gw);
	bool pinging = parse_ip("peer", peer), expect_none = false, resolved = false, onlink = true;
	char expect[8] = "";
	if (cmdline_str("expect", expect, sizeof(expect)))
		expect_none = !strncmp(expect, "none", 5);
	if (pinging) {
		uint32_t mask = prefix ? ~0u << (32 - prefix) : 0;
		onlink = (be32(peer) & mask) == (be32(net.ip) & mask);
		CHECK(onlink || be32(gw), "peer is off-link and there is no gw=");
		memcpy(target, onlink ? peer : gw, 4);
	}
	if (cmdline_str("spoof", spoof, sizeof(spoof))) {
		CHECK(parse_hex(spoof, forged, 6), "spoof=aa:bb:cc:dd:ee:ff expected");
		spoof_send(forged, "VIREO-SPOOF");
		spoof_send(net.mac, "VIREO-REAL");
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
			uint8_t *f = vnet_tx_frame(&net, 0);
			if (!resolved)
				vnet_send(&net, 0, vnet_arp(&net, f, 1, vnet_bcast, target));
			else
				vnet_send(&net, 0,
					  vnet_echo(&net, f, target_mac, peer, 8, 0x7672, seq++,
						    (const uint8_t *)"vireo", 5));
			next = now + (resolved ? 200000 : 500000);
		}
		uint8_t *f = vnet_rx_poll(&net, 0, &slot, &len);
		if (!f) {
			cpu_relax();
			continue;
		}
		const uint8_t *sha = pinging && !resolved ? vnet_arp_reply(f, len, target) : NULL;
		const uint8_t *icmp;
		size_t ilen;
		int a;
		if (sha) {
			memcpy(target_mac, sha, 6);
			resolved = true;
			next = 0;
			printf("virtio_net_peer: %u.%u.%u.%u is at %02x:%02x:%02x:%02x:%02x:%02x\n",
			       target[0], target[1], target[2], target[3], target_mac[0],
			       target_mac[1], target_mac[2], target_mac[3], target_mac[4],
			       target_mac[5]);
		} else if ((a = vnet_answer(&net, 0, f, len, slot))) {
			answered += a == VNET_ANSWERED_ECHO;
			continue;
		} else if ((icmp = vnet_icmp(&net, f, len, 0, &ilen)) && pinging &&
			   !memcmp(f + ETH_HLEN + 12, peer, 4) && be16(icmp + 4) == 0x7672 &&
			   !done && ++got >= want) {
			done = true;
			done_at = time_us();
			printf("virtio_net_peer: %u replies from %u.%u.%u.%u\n", got, peer[0],
			       peer[1], peer[2], peer[3]);
		}
		vnet_rx_post(&net, 0, slot);
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
	CHECK(vdev_reset(&net.dev), "device reset does not complete");
	probe_pass();
}
