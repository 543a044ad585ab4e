/* SPDX-License-Identifier: MIT */
/*
 * virtio-net multiqueue probe: a polled driver with two queue pairs on a multiqueue TAP.
 *
 *   ip=A.B.C.D peer=A.B.C.D [pings=N] [wait=SECONDS]
 *
 * Negotiates VIRTIO_NET_F_MQ with the control queue, checks max_virtqueue_pairs >= 2 and
 * the queue count and MSI-X table size, sends VQ_PAIRS_SET 0 / max + 1 / a short payload
 * (each must be answered VIRTIO_NET_ERR without a reset), then sets 2 pairs. It ARPs for the peer
 * (the host side of the TAP) and sends N ICMP echo requests (default 3) from each pair's transmit
 * queue in turn, polling both receive queues for the replies. Linux steers a flow's frames to the
 * TAP queue that last sent that flow (recorded after the sent frame was processed, so a reply
 * follows the queue of the request before it); alternating the pairs therefore brings replies to
 * both receive queues. PASS needs every request answered and replies on receive queue 1 as well as
 * frames on queue 0.
 */
#include "vnet.h"

PROBE("virtio_net_mq");

#define NPAIRS 2
#define NRX 16

static struct vnet net;
static uint8_t peerip[4], peermac[6];
static uint64_t deadline;

static void dev_up(void)
{
	uint64_t want = VNET_F_MAC | VNET_F_STATUS | VNET_F_CTRL_VQ | VNET_F_MQ;
	vnet_open(&net, want, want);
	uint16_t max = net.max_pairs, nq = mmio_read16(net.dev.common + VCC_NUM_QUEUES);
	CHECK(max >= NPAIRS, "max_virtqueue_pairs %u, want at least %u", max, NPAIRS);
	CHECK(nq == 2 * max + 1, "num_queues %u for %u pairs", nq, max);
	CHECK(net.dev.msix_entries >= nq + 1, "%u MSI-X entries for %u queues",
	      net.dev.msix_entries, nq);
	vnet_start(&net, NPAIRS, NRX, 16, VNET_CTRL);

	/* Hostile and valid VQ_PAIRS_SET (class 4, command 0, le16 pairs). */
	uint16_t bad[2] = {0, (uint16_t)(max + 1)}, two = NPAIRS;
	for (unsigned i = 0; i < 2; i++)
		CHECK(vnet_ctrl(&net, 4, 0, &bad[i], 2) == 1, "VQ_PAIRS_SET %u accepted", bad[i]);
	CHECK(vnet_ctrl(&net, 4, 0, &two, 1) == 1, "VQ_PAIRS_SET with a 1-byte payload accepted");
	CHECK(!(vdev_status(&net.dev) & VIRTIO_STATUS_NEEDS_RESET), "bad control command reset us");
	CHECK(vnet_ctrl(&net, 4, 0, &two, 2) == 0, "VQ_PAIRS_SET %u refused", two);
	printf("virtio_net_mq: %u of %u queue pairs in use\n", two, max);
}

/* Echo request id/seq from pair; true when the reply came (on *got_on). */
static bool ping(unsigned pair, uint16_t id, uint16_t seq, unsigned *got_on)
{
	uint8_t data[32], *f = vnet_tx_frame(&net, pair);
	for (unsigned i = 0; i < 32; i++)
		data[i] = (uint8_t)(i + seq);
	vnet_send(&net, pair, vnet_echo(&net, f, peermac, peerip, 8, id, seq, data, 32));

	uint64_t end = time_us() + 2000000;
	const uint8_t *icmp;
	size_t ilen;
	unsigned p;
	uint16_t slot;
	uint32_t len;
	while ((f = vnet_rx_wait(&net, end < deadline ? end : deadline, &p, &slot, &len))) {
		bool hit = (icmp = vnet_icmp(&net, f, len, 0, &ilen)) && be16(icmp + 4) == id &&
			   be16(icmp + 6) == seq;
		vnet_rx_post(&net, p, slot);
		if (hit) {
			*got_on = p;
			return true;
		}
	}
	return false;
}

void probe_main(const struct hvm_start_info *si)
{
	unsigned want = (unsigned)cmdline_u64("pings", 3), on;
	unsigned replies[NPAIRS] = {0}, landed[NPAIRS] = {0};
	(void)si;
	deadline = time_us() + cmdline_u64("wait", 20) * 1000000;
	dev_up();
	CHECK(parse_ip("ip", net.ip) && parse_ip("peer", peerip), "needs ip= and peer=");
	CHECK(vnet_resolve(&net, peerip, peermac, deadline, 0), "no ARP reply from the peer");
	for (unsigned n = 0; n < want; n++) {
		for (unsigned p = 0; p < NPAIRS; p++) {
			uint16_t seq = (uint16_t)(n * NPAIRS + p);
			CHECK(ping(p, 0x7600, seq, &on), "no echo reply to seq %u sent on pair %u",
			      seq, p);
			replies[p]++;
			landed[on]++;
			printf("virtio_net_mq: seq %u sent on pair %u, reply on pair %u\n", seq, p,
			       on);
		}
	}
	unsigned rx0 = net.rx[0].frames, rx1 = net.rx[1].frames;
	printf("virtio_net_mq: frames received per pair %u/%u, sent %u/%u\n", rx0, rx1,
	       net.tx[0].frames, net.tx[1].frames);
	CHECK(replies[0] == want && replies[1] == want, "replies %u/%u of %u", replies[0],
	      replies[1], want);
	CHECK(rx0 > 0 && rx1 > 0 && landed[1] > 0,
	      "frames received per pair %u/%u (replies on pair 1: %u)", rx0, rx1, landed[1]);
	CHECK(vdev_reset(&net.dev), "device reset does not complete");
	probe_pass();
}
