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
#include "virtio.h"
#include "netutil.h"

PROBE("virtio_net_mq");

#define VIRTIO_ID_NET_MODERN 0x1041
#define F_MAC (1ull << 5)
#define F_STATUS (1ull << 16)
#define F_CTRL_VQ (1ull << 17)
#define F_MQ (1ull << 22)
#define NPAIRS 2
#define NRX 16
#define BUFSZ 2048
#define HDR 12

static struct vdev v;
static struct vq rxq[NPAIRS], txq[NPAIRS], cq;
static uint8_t *rxbuf[NPAIRS], *txbuf, *cbuf;
static uint8_t mac[6], myip[4], peerip[4], peermac[6];
static uint64_t deadline;
static unsigned rx_count[NPAIRS], tx_count[NPAIRS];

static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static void wait_used(struct vq *q, uint16_t head, const char *what)
{
	uint32_t id, len;
	uint64_t end = time_us() + 1000000;
	while (!vq_pop_used(q, &id, &len)) {
		CHECK(time_us() < end, "%s: not completed in 1 s (status 0x%x)", what,
		      vdev_status(&v));
		cpu_relax();
	}
	CHECK(id == head, "%s: used id %u, expected %u", what, id, head);
}

static void rx_post(unsigned pair, uint16_t i)
{
	struct vq *q = &rxq[pair];
	q->desc[i].addr = (uint64_t)(uintptr_t)(rxbuf[pair] + (size_t)i * BUFSZ);
	q->desc[i].len = BUFSZ;
	q->desc[i].flags = VRING_DESC_F_WRITE;
	vq_submit(q, i);
}

/* Send the frame built at txbuf + HDR on pair's transmit queue. */
static void tx(unsigned pair, size_t len)
{
	memset(txbuf, 0, HDR);
	txq[pair].desc[0].addr = (uint64_t)(uintptr_t)txbuf;
	txq[pair].desc[0].len = (uint32_t)(HDR + len);
	txq[pair].desc[0].flags = 0;
	vq_submit(&txq[pair], 0);
	wait_used(&txq[pair], 0, "transmit");
	CHECK(!(vdev_status(&v) & VIRTIO_STATUS_NEEDS_RESET), "device needs reset after transmit");
	tx_count[pair]++;
}

static uint8_t ctrl(uint8_t cls, uint8_t cmd, const void *data, uint32_t len)
{
	cbuf[0] = cls;
	cbuf[1] = cmd;
	memcpy(cbuf + 2, data, len);
	cbuf[512] = 0xee;
	cq.desc[0] = (struct vring_desc){(uint64_t)(uintptr_t)cbuf, 2 + len, VRING_DESC_F_NEXT, 1};
	cq.desc[1] =
	    (struct vring_desc){(uint64_t)(uintptr_t)(cbuf + 512), 1, VRING_DESC_F_WRITE, 0};
	vq_submit(&cq, 0);
	wait_used(&cq, 0, "control command");
	return cbuf[512];
}

/* Next frame from either receive queue (without the header), or NULL at the deadline. */
static uint8_t *rx(unsigned *pair, uint16_t *slot, uint32_t *flen)
{
	uint32_t id, len;
	for (;;) {
		for (unsigned p = 0; p < NPAIRS; p++) {
			if (!vq_pop_used(&rxq[p], &id, &len))
				continue;
			CHECK(id < NRX, "receive queue %u: used id %u out of range", p, id);
			CHECK(len >= HDR + 14 && len <= BUFSZ, "receive queue %u: used length %u",
			      p, len);
			rx_count[p]++;
			*pair = p;
			*slot = (uint16_t)id;
			*flen = len - HDR;
			return rxbuf[p] + (size_t)id * BUFSZ + HDR;
		}
		if (time_us() > deadline)
			return NULL;
		cpu_relax();
	}
}

static uint8_t *eth(const uint8_t dst[6], uint16_t type)
{
	uint8_t *f = txbuf + HDR;
	memcpy(f, dst, 6);
	memcpy(f + 6, mac, 6);
	put16(f + 12, type);
	return f + 14;
}

static void dev_up(void)
{
	uint64_t want = VIRTIO_F_VERSION_1 | F_MAC | F_STATUS | F_CTRL_VQ | F_MQ;
	CHECK(vdev_open(&v, VIRTIO_ID_NET_MODERN), "no virtio-net (1af4:1041) on bus 0");
	CHECK(v.device, "virtio-net without device configuration");
	CHECK(vdev_negotiate(&v, want), "feature negotiation");
	CHECK((v.negotiated & want) == want, "features offered 0x%lx lack some of 0x%lx (MQ?)",
	      v.offered, want);
	uint16_t max = mmio_read16(v.device + 8), nq = mmio_read16(v.common + VCC_NUM_QUEUES);
	CHECK(max >= NPAIRS, "max_virtqueue_pairs %u, want at least %u", max, NPAIRS);
	CHECK(nq == 2 * max + 1, "num_queues %u for %u pairs", nq, max);
	CHECK(v.msix_entries >= nq + 1, "%u MSI-X entries for %u queues", v.msix_entries, nq);
	for (unsigned i = 0; i < 6; i++)
		mac[i] = mmio_read8(v.device + i);
	for (unsigned p = 0; p < NPAIRS; p++) {
		CHECK(vq_setup(&v, &rxq[p], (uint16_t)(2 * p), NRX, VIRTIO_MSI_NO_VECTOR),
		      "receive queue %u setup", p);
		CHECK(vq_setup(&v, &txq[p], (uint16_t)(2 * p + 1), 16, VIRTIO_MSI_NO_VECTOR),
		      "transmit queue %u setup", p);
		rxbuf[p] = probe_alloc((size_t)NRX * BUFSZ, 4096);
	}
	CHECK(vq_setup(&v, &cq, (uint16_t)(2 * max), 16, VIRTIO_MSI_NO_VECTOR),
	      "control queue %u setup", 2 * max);
	txbuf = probe_alloc(BUFSZ, 4096);
	cbuf = probe_alloc(1024, 64);
	vdev_driver_ok(&v);
	CHECK(vdev_status(&v) & VIRTIO_STATUS_DRIVER_OK, "DRIVER_OK not accepted (0x%x)",
	      vdev_status(&v));
	for (unsigned p = 0; p < NPAIRS; p++)
		for (uint16_t i = 0; i < NRX; i++)
			rx_post(p, i);

	/* Hostile and valid VQ_PAIRS_SET (class 4, command 0, le16 pairs). */
	uint16_t bad[2] = {0, (uint16_t)(max + 1)}, two = NPAIRS;
	for (unsigned i = 0; i < 2; i++)
		CHECK(ctrl(4, 0, &bad[i], 2) == 1, "VQ_PAIRS_SET %u accepted", bad[i]);
	CHECK(ctrl(4, 0, &two, 1) == 1, "VQ_PAIRS_SET with a 1-byte payload accepted");
	CHECK(!(vdev_status(&v) & VIRTIO_STATUS_NEEDS_RESET), "bad control command reset us");
	CHECK(ctrl(4, 0, &two, 2) == 0, "VQ_PAIRS_SET %u refused", two);
	printf("virtio_net_mq: %u of %u queue pairs in use, features 0x%lx\n", two, max,
	       v.negotiated);
}

static void arp_request(unsigned pair)
{
	uint8_t *a = eth(bcast, 0x0806);
	put16(a, 1);
	put16(a + 2, 0x0800);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, 1);
	memcpy(a + 8, mac, 6);
	memcpy(a + 14, myip, 4);
	memset(a + 18, 0, 6);
	memcpy(a + 24, peerip, 4);
	tx(pair, 14 + 28 + 18);
}

static void arp_resolve(void)
{
	unsigned pair;
	uint16_t slot;
	uint32_t len;
	uint8_t *f;
	arp_request(0);
	while ((f = rx(&pair, &slot, &len))) {
		bool hit = be16(f + 12) == 0x0806 && be16(f + 14 + 6) == 2 &&
			   !memcmp(f + 14 + 14, peerip, 4);
		if (hit)
			memcpy(peermac, f + 14 + 8, 6);
		rx_post(pair, slot);
		if (hit)
			return;
	}
	probe_fail("no ARP reply from the peer");
}

/* Echo request id/seq from pair; true when the reply came (on *got_on). */
static bool ping(unsigned pair, uint16_t id, uint16_t seq, unsigned *got_on)
{
	uint8_t *ip = eth(peermac, 0x0800), *icmp = ip + 20;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	put16(ip + 2, 20 + 8 + 32);
	ip[8] = 64;
	ip[9] = 1;
	memcpy(ip + 12, myip, 4);
	memcpy(ip + 16, peerip, 4);
	put16(ip + 10, csum(ip, 20));
	icmp[0] = 8;
	icmp[1] = 0;
	put16(icmp + 2, 0);
	put16(icmp + 4, id);
	put16(icmp + 6, seq);
	for (unsigned i = 0; i < 32; i++)
		icmp[8 + i] = (uint8_t)(i + seq);
	put16(icmp + 2, csum(icmp, 40));
	tx(pair, 14 + 20 + 40);

	uint64_t end = time_us() + 2000000;
	unsigned p;
	uint16_t slot;
	uint32_t len;
	uint8_t *f;
	while (time_us() < end && (f = rx(&p, &slot, &len))) {
		uint8_t *q = f + 14;
		bool hit = be16(f + 12) == 0x0800 && len >= 14 + 28 && q[9] == 1 &&
			   !memcmp(q + 16, myip, 4) && q[20] == 0 && be16(q + 24) == id &&
			   be16(q + 26) == seq;
		rx_post(p, slot);
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
	CHECK(parse_ip("ip", myip) && parse_ip("peer", peerip), "needs ip= and peer=");
	dev_up();
	arp_resolve();
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
	printf("virtio_net_mq: frames received per pair %u/%u, sent %u/%u\n", rx_count[0],
	       rx_count[1], tx_count[0], tx_count[1]);
	CHECK(replies[0] == want && replies[1] == want, "replies %u/%u of %u", replies[0],
	      replies[1], want);
	CHECK(rx_count[0] > 0 && rx_count[1] > 0 && landed[1] > 0,
	      "frames received per pair %u/%u (replies on pair 1: %u)", rx_count[0], rx_count[1],
	      landed[1]);
	CHECK(vdev_reset(&v), "device reset does not complete");
	probe_pass();
}
