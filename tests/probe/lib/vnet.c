/* SPDX-License-Identifier: MIT */
/* Polled virtio-net driver and IPv4 frames for the probe guests (see vnet.h). */
#include "vnet.h"

#define WAIT_US 1000000	    /* a transmit, a control command */
#define DHCP_XID 0x766e6574 /* "vnet" */

const uint8_t vnet_bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t zero4[4];

/* ---- device ---------------------------------------------------------------------------- */

void vnet_open(struct vnet *n, uint64_t want, uint64_t need)
{
	want |= VIRTIO_F_VERSION_1;
	need |= VIRTIO_F_VERSION_1;
	memset(n, 0, sizeof(*n));
	CHECK(vdev_open(&n->dev, VIRTIO_ID_NET_MODERN), "no virtio-net (1af4:1041) on bus 0");
	CHECK(n->dev.device, "virtio-net without device configuration");
	CHECK(vdev_negotiate(&n->dev, want), "feature negotiation");
	CHECK((n->dev.negotiated & need) == need, "features offered 0x%lx lack some of 0x%lx",
	      n->dev.offered, need);
	for (unsigned i = 0; i < 6; i++)
		n->mac[i] = mmio_read8(n->dev.device + i);
	n->max_pairs = n->dev.negotiated & VNET_F_MQ ? mmio_read16(n->dev.device + 8) : 1;
	n->event_idx = n->dev.negotiated & VIRTIO_F_EVENT_IDX;
	n->mrg_rxbuf = n->dev.negotiated & VNET_F_MRG_RXBUF;
	n->debug = cmdline_has("debug");
}

static void q_setup(struct vnet *n, struct vnet_q *q, uint16_t index, uint16_t size,
		    const char *what, unsigned pair)
{
	CHECK(size >= 2 && size <= 256 && !(size & (size - 1)), "vnet: ring size %u", size);
	CHECK(vq_setup(&n->dev, &q->vq, index, size, VIRTIO_MSI_NO_VECTOR), "%s queue %u setup",
	      what, pair);
	CHECK(q->vq.size == size, "%s queue %u: size %u, want %u", what, pair, q->vq.size, size);
	q->mask = (uint16_t)(size - 1);
	q->published = 0;
	q->frames = 0;
	if ((n->flags & VNET_QUIET) && !n->event_idx)
		q->vq.avail->flags = 1; /* VRING_AVAIL_F_NO_INTERRUPT */
}

void vnet_start(struct vnet *n, unsigned pairs, uint16_t rx_size, uint16_t tx_size, unsigned flags)
{
	CHECK(pairs >= 1 && pairs <= VNET_MAX_PAIRS && pairs <= n->max_pairs,
	      "%u queue pairs wanted, the device has %u", pairs, n->max_pairs);
	n->pairs = pairs;
	n->flags = flags;
	for (unsigned p = 0; p < pairs; p++) {
		q_setup(n, &n->rx[p], (uint16_t)(2 * p), rx_size, "receive", p);
		q_setup(n, &n->tx[p], (uint16_t)(2 * p + 1), tx_size, "transmit", p);
	}
	if (flags & VNET_CTRL) {
		CHECK(vq_setup(&n->dev, &n->ctrl, (uint16_t)(2 * n->max_pairs), 16,
			       VIRTIO_MSI_NO_VECTOR),
		      "control queue %u setup", 2 * n->max_pairs);
		n->cbuf = probe_alloc(1024, 64);
	}
	for (unsigned p = 0; p < pairs; p++) {
		struct vnet_q *r = &n->rx[p], *t = &n->tx[p];
		if (!r->buf)
			r->buf = probe_alloc((size_t)rx_size * VNET_BUFSZ, 4096);
		for (uint16_t i = 0; i < rx_size; i++) {
			r->vq.desc[i].addr = (uint64_t)(uintptr_t)(r->buf + (size_t)i * VNET_BUFSZ);
			r->vq.desc[i].len = VNET_BUFSZ;
			r->vq.desc[i].flags = VRING_DESC_F_WRITE;
		}
		t->nslot = (uint16_t)(tx_size / 2);
		if (!t->buf)
			t->buf = probe_alloc((size_t)t->nslot * VNET_BUFSZ, 4096);
		for (uint16_t i = 0; i < tx_size; i++)
			t->vq.avail->ring[i] = (uint16_t)(2 * (i & (t->nslot - 1)));
	}
	vdev_driver_ok(&n->dev);
	CHECK(vdev_status(&n->dev) & VIRTIO_STATUS_DRIVER_OK, "DRIVER_OK not accepted (0x%x)",
	      vdev_status(&n->dev));
	for (unsigned p = 0; p < pairs; p++) {
		struct vnet_q *r = &n->rx[p];
		for (uint16_t i = 0; i < rx_size; i++)
			r->vq.avail->ring[i] = i;
		r->vq.avail_idx = rx_size;
		vnet_quiet(n, r);
		vnet_publish(n, r);
	}
	printf("%s: mac %02x:%02x:%02x:%02x:%02x:%02x, features 0x%lx, %u queue pair(s)\n",
	       probe_name, n->mac[0], n->mac[1], n->mac[2], n->mac[3], n->mac[4], n->mac[5],
	       n->dev.negotiated, pairs);
}

uint8_t vnet_ctrl(struct vnet *n, uint8_t cls, uint8_t cmd, const void *data, uint32_t len)
{
	uint64_t end = time_us() + WAIT_US;
	uint32_t id, ulen;
	CHECK(n->cbuf && len <= 500, "vnet_ctrl: no control queue or %u bytes", len);
	n->cbuf[0] = cls;
	n->cbuf[1] = cmd;
	memcpy(n->cbuf + 2, data, len);
	n->cbuf[512] = 0xee;
	n->ctrl.desc[0] =
	    (struct vring_desc){(uint64_t)(uintptr_t)n->cbuf, 2 + len, VRING_DESC_F_NEXT, 1};
	n->ctrl.desc[1] =
	    (struct vring_desc){(uint64_t)(uintptr_t)(n->cbuf + 512), 1, VRING_DESC_F_WRITE, 0};
	vq_submit(&n->ctrl, 0);
	while (!vq_pop_used(&n->ctrl, &id, &ulen)) {
		CHECK(time_us() < end, "control command: not completed in 1 s (status 0x%x)",
		      vdev_status(&n->dev));
		cpu_relax();
	}
	CHECK(id == 0, "control command: used id %u, expected 0", id);
	return n->cbuf[512];
}

/* ---- receive -------------------------------------------------------------------------------- */

uint8_t *vnet_rx_poll(struct vnet *n, unsigned pair, uint16_t *slot, uint32_t *flen)
{
	struct vnet_q *r = &n->rx[pair];
	uint32_t id, len;
	uint8_t *b;
	if (!vq_pop_used(&r->vq, &id, &len))
		return NULL;
	CHECK(id <= r->mask, "receive queue %u: used id %u out of range", pair, id);
	CHECK(len >= VNET_HDR + ETH_HLEN && len <= VNET_BUFSZ, "receive queue %u: used length %u",
	      pair, len);
	b = r->buf + (size_t)id * VNET_BUFSZ;
	if (n->mrg_rxbuf) {
		uint16_t nbuf = (uint16_t)(b[10] | b[11] << 8);
		CHECK(nbuf == 1, "receive: num_buffers %u for a %u-byte frame", nbuf, len);
	}
	r->frames++;
	if (n->debug)
		printf("%s: rx %u bytes on %u, type %04x from %02x:%02x\n", probe_name,
		       len - VNET_HDR, pair, be16(b + VNET_HDR + 12), b[VNET_HDR + 10],
		       b[VNET_HDR + 11]);
	*slot = (uint16_t)id;
	*flen = len - VNET_HDR;
	return b + VNET_HDR;
}

uint8_t *vnet_rx_wait(struct vnet *n, uint64_t until, unsigned *pair, uint16_t *slot,
		      uint32_t *flen)
{
	for (;;) {
		for (unsigned p = 0; p < n->pairs; p++) {
			uint8_t *f = vnet_rx_poll(n, p, slot, flen);
			if (f) {
				if (pair)
					*pair = p;
				return f;
			}
		}
		if (time_us() > until)
			return NULL;
		cpu_relax();
	}
}

void vnet_rx_post(struct vnet *n, unsigned pair, uint16_t slot)
{
	struct vnet_q *r = &n->rx[pair];
	r->vq.avail->ring[r->vq.avail_idx & r->mask] = slot;
	r->vq.avail_idx++;
	vnet_quiet(n, r);
	vnet_publish(n, r);
}

/* ---- transmit ------------------------------------------------------------------------------- */

uint8_t *vnet_tx_frame(struct vnet *n, unsigned pair)
{
	uint64_t end = time_us() + WAIT_US;
	uint8_t *b;
	while (!vnet_tx_room(n, pair)) {
		CHECK(time_us() < end, "transmit queue %u full for 1 s (status 0x%x)", pair,
		      vdev_status(&n->dev));
		cpu_relax();
	}
	b = vnet_tx_buf(n, pair, vnet_tx_next(n, pair));
	memset(b, 0, VNET_HDR);
	return b + VNET_HDR;
}

static void tx_wait(struct vnet *n, unsigned pair, uint64_t until, const char *what)
{
	struct vnet_q *t = &n->tx[pair];
	while (vnet_used_idx(t) != t->vq.avail_idx) {
		CHECK(time_us() < until, "transmit queue %u: %s (status 0x%x)", pair, what,
		      vdev_status(&n->dev));
	}
	(void)vnet_tx_room(n, pair); /* checks the newest completion */
	vnet_quiet(n, t);
}

void vnet_send(struct vnet *n, unsigned pair, size_t len)
{
	CHECK(len >= ETH_HLEN && len <= VNET_BUFSZ - VNET_HDR, "vnet_send: %lu bytes", len);
	vnet_tx_desc(n, pair, vnet_tx_next(n, pair), len, NULL, 0);
	vnet_tx_push(n, pair, 1);
	vnet_tx_flush(n, pair);
	tx_wait(n, pair, time_us() + WAIT_US, "transmit not completed in 1 s");
	CHECK(!(vdev_status(&n->dev) & VIRTIO_STATUS_NEEDS_RESET),
	      "device needs reset after transmit");
	n->tx[pair].frames++;
}

void vnet_tx_drain(struct vnet *n, unsigned pair, uint64_t until)
{
	vnet_tx_flush(n, pair);
	tx_wait(n, pair, until, "deadline: transmit ring not drained");
}

/* ---- frames ---------------------------------------------------------------------------------- */

uint8_t *vnet_eth(const struct vnet *n, uint8_t *f, const uint8_t dst[6], uint16_t type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, n->mac, 6);
	put16(f + 12, type);
	return f + ETH_HLEN;
}

uint8_t *vnet_ip(uint8_t *p, uint8_t proto, const uint8_t src[4], const uint8_t dst[4],
		 size_t payload_len, uint16_t id, uint16_t frag)
{
	memset(p, 0, 20);
	p[0] = 0x45;
	put16(p + 2, (uint16_t)(20 + payload_len));
	put16(p + 4, id);
	put16(p + 6, frag);
	p[8] = 64;
	p[9] = proto;
	memcpy(p + 12, src, 4);
	memcpy(p + 16, dst, 4);
	put16(p + 10, csum(p, 20));
	return p + 20;
}

size_t vnet_arp(const struct vnet *n, uint8_t *f, uint16_t op, const uint8_t tha[6],
		const uint8_t tpa[4])
{
	static const uint8_t none[6];
	uint8_t *a = vnet_eth(n, f, op == 1 ? vnet_bcast : tha, ETH_P_ARP);
	put16(a, 1);
	put16(a + 2, ETH_P_IP);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, n->mac, 6);
	memcpy(a + 14, n->ip, 4);
	memcpy(a + 18, op == 1 ? none : tha, 6);
	memcpy(a + 24, tpa, 4);
	memset(a + 28, 0, 18);
	return ETH_HLEN + 28 + 18; /* padded to the 60-byte minimum */
}

size_t vnet_echo(const struct vnet *n, uint8_t *f, const uint8_t dmac[6], const uint8_t dst[4],
		 uint8_t type, uint16_t id, uint16_t seq, const uint8_t *data, size_t dlen)
{
	CHECK(dlen <= VNET_BUFSZ - VNET_HDR - ETH_HLEN - 28, "vnet_echo: %lu bytes", dlen);
	uint8_t *icmp = vnet_ip(vnet_eth(n, f, dmac, ETH_P_IP), 1, n->ip, dst, 8 + dlen, 0, 0);
	icmp[0] = type;
	icmp[1] = 0;
	put16(icmp + 2, 0);
	put16(icmp + 4, id);
	put16(icmp + 6, seq);
	memcpy(icmp + 8, data, dlen);
	put16(icmp + 2, csum(icmp, 8 + dlen));
	return ETH_HLEN + 20 + 8 + dlen;
}

const uint8_t *vnet_arp_reply(const uint8_t *f, uint32_t len, const uint8_t ip[4])
{
	const uint8_t *a = f + ETH_HLEN;
	if (be16(f + 12) != ETH_P_ARP || len < ETH_HLEN + 28 || be16(a + 6) != 2 ||
	    memcmp(a + 14, ip, 4))
		return NULL;
	return a + 8;
}

const uint8_t *vnet_icmp(const struct vnet *n, const uint8_t *f, uint32_t len, uint8_t type,
			 size_t *icmp_len)
{
	const uint8_t *p = f + ETH_HLEN;
	size_t ihl = (size_t)(p[0] & 15) * 4, total;
	if (be16(f + 12) != ETH_P_IP || len < ETH_HLEN + 20 || p[0] >> 4 != 4 || ihl < 20 ||
	    p[9] != 1 || memcmp(p + 16, n->ip, 4) || len < ETH_HLEN + ihl + 8 || p[ihl] != type)
		return NULL;
	total = be16(p + 2);
	CHECK(total >= ihl + 8 && total + ETH_HLEN <= len, "bad IPv4 length %lu in a %u-byte frame",
	      total, len);
	*icmp_len = total - ihl;
	return p + ihl;
}

int vnet_answer(struct vnet *n, unsigned pair, const uint8_t *f, uint32_t len, uint16_t slot)
{
	const uint8_t *a = f + ETH_HLEN, *icmp;
	size_t flen, ilen;
	uint8_t *r;
	if (be16(f + 12) == ETH_P_ARP && len >= ETH_HLEN + 28 && be16(a + 6) == 1 &&
	    !memcmp(a + 24, n->ip, 4)) {
		r = vnet_tx_frame(n, pair);
		flen = vnet_arp(n, r, 2, a + 8, a + 14);
		vnet_rx_post(n, pair, slot); /* after the last read of f */
		vnet_send(n, pair, flen);
		return VNET_ANSWERED_ARP;
	}
	if (!(icmp = vnet_icmp(n, f, len, 8, &ilen)))
		return 0;
	r = vnet_tx_frame(n, pair);
	flen =
	    vnet_echo(n, r, f + 6, a + 12, 0, be16(icmp + 4), be16(icmp + 6), icmp + 8, ilen - 8);
	vnet_rx_post(n, pair, slot);
	vnet_send(n, pair, flen);
	return VNET_ANSWERED_ECHO;
}

bool vnet_resolve(struct vnet *n, const uint8_t ip[4], uint8_t mac[6], uint64_t until,
		  uint64_t retry_us)
{
	uint64_t next = 0;
	bool sent = false;
	const uint8_t *sha;
	unsigned pair;
	uint16_t slot;
	uint32_t len;
	uint8_t *f;
	for (;;) {
		if (!sent || (retry_us && time_us() >= next)) {
			vnet_send(n, 0, vnet_arp(n, vnet_tx_frame(n, 0), 1, vnet_bcast, ip));
			next = time_us() + retry_us;
			sent = true;
		}
		f = vnet_rx_wait(n, retry_us && next < until ? next : until, &pair, &slot, &len);
		if (!f) {
			if (time_us() > until)
				return false;
			continue;
		}
		if ((sha = vnet_arp_reply(f, len, ip))) {
			memcpy(mac, sha, 6);
			vnet_rx_post(n, pair, slot);
			return true;
		}
		if (!vnet_answer(n, pair, f, len, slot))
			vnet_rx_post(n, pair, slot);
	}
}

/* ---- DHCP ------------------------------------------------------------------------------------ */

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

void vnet_dhcp_send(struct vnet *n, uint8_t type, const uint8_t req[4], const uint8_t server[4])
{
	static const uint8_t all[4] = {255, 255, 255, 255};
	size_t olen = 3 + (req ? 6 + 6 : 0) + 1;
	uint8_t *f = vnet_tx_frame(n, 0);
	uint8_t *udp =
	    vnet_ip(vnet_eth(n, f, vnet_bcast, ETH_P_IP), 17, zero4, all, 8 + 240 + olen, 0, 0);
	uint8_t *b = udp + 8, *o = b + 240;
	memset(b, 0, 240 + olen);
	b[0] = 1, b[1] = 1, b[2] = 6; /* BOOTREQUEST, Ethernet */
	put32(b + 4, DHCP_XID);
	put16(b + 10, 0x8000); /* broadcast replies: we have no address yet */
	memcpy(b + 28, n->mac, 6);
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
	put16(udp + 6, 0); /* no UDP checksum (allowed over IPv4) */
	vnet_send(n, 0, ETH_HLEN + 20 + 8 + 240 + olen);
}

static bool dhcp_parse(const struct vnet *n, const uint8_t *f, uint32_t len, uint8_t type,
		       struct vnet_lease *l)
{
	const uint8_t *p = f + ETH_HLEN, *d, *t, *r, *s, *m;
	size_t ihl = (size_t)(p[0] & 15) * 4, on;
	uint8_t olen = 0, rlen = 0, slen = 0, mlen = 0;
	if (be16(f + 12) != ETH_P_IP || len < ETH_HLEN + 20 || ihl < 20 || p[9] != 17 ||
	    len < ETH_HLEN + ihl + 8 + 240 || be16(p + ihl + 2) != 68)
		return false;
	d = p + ihl + 8;
	on = len - ETH_HLEN - ihl - 8 - 240;
	t = dhcp_opt(d + 240, on, 53, &olen);
	if (d[0] != 2 || be32(d + 4) != DHCP_XID || memcmp(d + 28, n->mac, 6) || !t || olen != 1 ||
	    *t != type)
		return false;
	r = dhcp_opt(d + 240, on, 3, &rlen);
	s = dhcp_opt(d + 240, on, 54, &slen);
	m = dhcp_opt(d + 240, on, 1, &mlen);
	memcpy(l->addr, d + 16, 4);
	memcpy(l->siaddr, d + 20, 4);
	memcpy(l->router, r && rlen >= 4 ? r : zero4, 4);
	memcpy(l->server, s && slen >= 4 ? s : d + 20, 4);
	l->prefix = 0;
	if (m && mlen >= 4)
		while (l->prefix < 32 && (be32(m) << l->prefix) >> 31)
			l->prefix++;
	return true;
}

bool vnet_dhcp_wait(struct vnet *n, uint8_t type, uint64_t until, struct vnet_lease *l)
{
	unsigned pair;
	uint16_t slot;
	uint32_t len;
	uint8_t *f;
	while ((f = vnet_rx_wait(n, until, &pair, &slot, &len))) {
		bool hit = dhcp_parse(n, f, len, type, l);
		vnet_rx_post(n, pair, slot);
		if (hit)
			return true;
	}
	return false;
}

bool vnet_dhcp_offer(struct vnet *n, uint64_t until, struct vnet_lease *l)
{
	while (time_us() < until) {
		uint64_t next = time_us() + 1000000;
		vnet_dhcp_send(n, 1, NULL, NULL);
		if (vnet_dhcp_wait(n, 2, next < until ? next : until, l))
			return true;
	}
	return false;
}
