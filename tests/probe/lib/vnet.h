/* SPDX-License-Identifier: MIT */
/*
 * Polled virtio-net driver for the network probe guests (tests/probe/virtio_net*.c) and the
 * network benchmark guest (bench/guest_net/), on top of virtio.h, plus the few IPv4 frames
 * they exchange: Ethernet, ARP, IPv4, ICMP echo, a DHCP client.
 *
 * Contract:
 * - vnet_open() finds the device, negotiates want | VERSION_1 and fails the probe unless
 *   need | VERSION_1 was granted; it reads the MAC and max_virtqueue_pairs. The probe may check
 *   the device further, then vnet_start() sets up `pairs` queue pairs (receive 2p, transmit
 *   2p + 1) and with VNET_CTRL the control queue, sets DRIVER_OK and posts every receive buffer.
 * - No interrupts: everything polls. Every wait is bounded and fails the probe or returns
 *   false/NULL at its deadline. Device misbehaviour (a used id or length out of range,
 *   transmit completions out of order, NEEDS_RESET after a transmit, num_buffers != 1 with
 *   MRG_RXBUF) fails the probe.
 * - Receive: one VNET_BUFSZ buffer per descriptor, all posted; a frame must fit in one.
 *   vnet_rx_poll()/vnet_rx_wait() hand out a frame (past the virtio-net header) and its slot;
 *   the caller gives the slot back with vnet_rx_post() (or vnet_answer() does) once it no longer
 *   reads the frame.
 * - Transmit: a ring of S entries is S/2 slots used in ring order: avail position p always
 *   carries slot p % (S/2), whose descriptors are 2k (the slot's VNET_BUFSZ buffer: virtio-net
 *   header, then the frame or its headers) and 2k+1 (an optional payload). The avail ring is
 *   written once by vnet_start(), so queueing a frame is an index update. vnet_tx_frame() +
 *   vnet_send() send one frame and wait for its completion. The batched path below
 *   (vnet_tx_room/desc/push/flush, vnet_rx_last/last_done: static inline, the benchmark's hot
 *   loops) keeps up to S/2 frames in flight and relies on the device completing them in order,
 *   which the id of the last completion of each batch checks (VIRTIO_F_IN_ORDER is not
 *   negotiated; Vireo and QEMU both complete in order).
 * - Notifications: by default every publish notifies the device. With VNET_QUIET the driver
 *   behaves like a Linux guest in NAPI polling: it asks for no interrupts (used_event kept far
 *   ahead with EVENT_IDX, else VRING_AVAIL_F_NO_INTERRUPT) and kicks only when the device asks
 *   (avail_event with EVENT_IDX, else !VRING_USED_F_NO_NOTIFY).
 * - All state is in struct vnet, owned by the caller; buffers come from probe_alloc() unless the
 *   caller put its own (rx_size and tx_size / 2 VNET_BUFSZ buffers, page aligned) in
 *   rx[p].buf / tx[p].buf between vnet_open() and vnet_start(): probe_alloc() zeroes byte by
 *   byte, slow for the benchmark's 768 KiB where guest code is emulated; .bss is zeroed at
 *   entry. The probe sees the counters and rings there; it changes only ip (and buf).
 * - The frame builders write at f (a frame, not the virtio-net header before it) and return
 *   the frame length or the next header; our addresses are n->mac and n->ip (set by the probe;
 *   0.0.0.0 until then).
 */
#ifndef PROBE_VNET_H
#define PROBE_VNET_H

#include "virtio.h"
#include "netutil.h"

#define VIRTIO_ID_NET_MODERN 0x1041
#define VNET_F_CSUM (1ull << 0)
#define VNET_F_GUEST_CSUM (1ull << 1)
#define VNET_F_GUEST_TSO4 (1ull << 7)
#define VNET_F_MAC (1ull << 5)
#define VNET_F_HOST_TSO4 (1ull << 11)
#define VNET_F_MRG_RXBUF (1ull << 15)
#define VNET_F_STATUS (1ull << 16)
#define VNET_F_CTRL_VQ (1ull << 17)
#define VNET_F_CTRL_RX (1ull << 18)
#define VNET_F_MQ (1ull << 22)

#define VNET_HDR 12	/* struct virtio_net_hdr_v1 */
#define VNET_BUFSZ 2048 /* a receive buffer, a transmit slot's buffer */
#define VNET_MAX_PAIRS 4
#define VNET_CTRL 1u  /* vnet_start: set up the control queue */
#define VNET_QUIET 2u /* vnet_start: no interrupts, kick only when the device asks */

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_ARP 0x0806
#define VNET_ANSWERED_ARP 1
#define VNET_ANSWERED_ECHO 2

struct vnet_q {
	struct vq vq;
	uint8_t *buf;	    /* receive: a buffer per descriptor; transmit: a buffer per slot */
	uint16_t mask;	    /* ring size - 1 (sizes are powers of two) */
	uint16_t nslot;	    /* transmit: ring size / 2 */
	uint16_t published; /* avail idx at the last publish */
	unsigned frames;    /* frames vnet_rx_poll() returned / vnet_send() sent */
};

struct vnet {
	struct vdev dev;
	uint8_t mac[6];
	uint8_t ip[4];	    /* ours, the source of the frames built here */
	uint16_t max_pairs; /* max_virtqueue_pairs with MQ, else 1 */
	unsigned pairs, flags;
	bool event_idx, mrg_rxbuf;
	bool debug; /* "debug" on the command line: print every received frame */
	struct vnet_q rx[VNET_MAX_PAIRS], tx[VNET_MAX_PAIRS];
	struct vq ctrl;
	uint8_t *cbuf;
};

struct vnet_lease {
	uint8_t addr[4];   /* yiaddr */
	uint8_t siaddr[4]; /* the next server's address */
	uint8_t router[4]; /* option 3, or 0.0.0.0 */
	uint8_t server[4]; /* option 54, or siaddr */
	unsigned prefix;   /* from option 1, or 0 without it */
};

extern const uint8_t vnet_bcast[6];

/* ---- device ---------------------------------------------------------------------------- */
void vnet_open(struct vnet *n, uint64_t want, uint64_t need);
void vnet_start(struct vnet *n, unsigned pairs, uint16_t rx_size, uint16_t tx_size, unsigned flags);
/* Control command (class, command, data); returns the device's ack (0 = VIRTIO_NET_OK). */
uint8_t vnet_ctrl(struct vnet *n, uint8_t cls, uint8_t cmd, const void *data, uint32_t len);

/* ---- receive -------------------------------------------------------------------------------- */
/* The next frame on pair's receive queue (NULL if none yet) and its length without the header. */
uint8_t *vnet_rx_poll(struct vnet *n, unsigned pair, uint16_t *slot, uint32_t *flen);
/* The next frame on any receive queue (lowest pair first), or NULL once time_us() > until. */
uint8_t *vnet_rx_wait(struct vnet *n, uint64_t until, unsigned *pair, uint16_t *slot,
		      uint32_t *flen);
void vnet_rx_post(struct vnet *n, unsigned pair, uint16_t slot);

/* ---- transmit ------------------------------------------------------------------------------- */
/* The next slot's frame area (its virtio-net header zeroed), waiting (1 s) for the slot. */
uint8_t *vnet_tx_frame(struct vnet *n, unsigned pair);
/* Send the len-byte frame built at vnet_tx_frame() and wait (1 s) until it is completed. */
void vnet_send(struct vnet *n, unsigned pair, size_t len);
/* Publish what is queued and wait until the device completed everything (until: time_us()). */
void vnet_tx_drain(struct vnet *n, unsigned pair, uint64_t until);

/* ---- frames ---------------------------------------------------------------------------------- */
uint8_t *vnet_eth(const struct vnet *n, uint8_t *f, const uint8_t dst[6], uint16_t type);
/* IPv4 header without options at p (frag: the flags/fragment field, 0x4000 = DF). */
uint8_t *vnet_ip(uint8_t *p, uint8_t proto, const uint8_t src[4], const uint8_t dst[4],
		 size_t payload_len, uint16_t id, uint16_t frag);
/* ARP request (op 1, broadcast) or reply (op 2, to tha) for tpa, padded to 60 bytes. */
size_t vnet_arp(const struct vnet *n, uint8_t *f, uint16_t op, const uint8_t tha[6],
		const uint8_t tpa[4]);
/* ICMP echo request (type 8) or reply (type 0) with dlen data bytes. */
size_t vnet_echo(const struct vnet *n, uint8_t *f, const uint8_t dmac[6], const uint8_t dst[4],
		 uint8_t type, uint16_t id, uint16_t seq, const uint8_t *data, size_t dlen);
/* The sender's MAC if f is an ARP reply from ip, else NULL. */
const uint8_t *vnet_arp_reply(const uint8_t *f, uint32_t len, const uint8_t ip[4]);
/* The ICMP message (and its length) if f is an IPv4 ICMP message of that type to n->ip, else
 * NULL. An IPv4 total length beyond the received frame fails the probe. */
const uint8_t *vnet_icmp(const struct vnet *n, const uint8_t *f, uint32_t len, uint8_t type,
			 size_t *icmp_len);
/* Answer an ARP request for n->ip or an ICMP echo request to n->ip on pair: the slot is given
 * back and VNET_ANSWERED_ARP/ECHO returned; otherwise 0 and the slot is still the caller's. */
int vnet_answer(struct vnet *n, unsigned pair, const uint8_t *f, uint32_t len, uint16_t slot);
/* ARP for ip until a reply (true, its MAC in mac) or until; the request is sent again every
 * retry_us (0: once). Meanwhile requests are answered (vnet_answer), other frames dropped. */
bool vnet_resolve(struct vnet *n, const uint8_t ip[4], uint8_t mac[6], uint64_t until,
		  uint64_t retry_us);

/* ---- DHCP client (from 0.0.0.0, broadcast replies, our MAC as chaddr) ------------------ */
/* DISCOVER (type 1), or REQUEST (3) for req from server. */
void vnet_dhcp_send(struct vnet *n, uint8_t type, const uint8_t req[4], const uint8_t server[4]);
/* Wait for a reply of type (2 OFFER, 5 ACK) to us; other frames are dropped. */
bool vnet_dhcp_wait(struct vnet *n, uint8_t type, uint64_t until, struct vnet_lease *l);
/* DISCOVER every second until an OFFER or until. */
bool vnet_dhcp_offer(struct vnet *n, uint64_t until, struct vnet_lease *l);

/* ---- batched rings (inline: the benchmark's hot loops) ------------------------------------ */
static inline uint16_t vnet_used_idx(const struct vnet_q *q)
{
	return __atomic_load_n(&q->vq.used->idx, __ATOMIC_ACQUIRE);
}

/* Keep the device from interrupting: used_event far ahead (EVENT_IDX only). */
static inline void vnet_quiet(const struct vnet *n, struct vnet_q *q)
{
	if (n->event_idx)
		q->vq.avail->ring[q->vq.size] = (uint16_t)(q->vq.last_used + 0x4000);
}

/* Make the entries added since the last publish visible and notify as the mode says. */
static inline void vnet_publish(const struct vnet *n, struct vnet_q *q)
{
	struct vq *v = &q->vq;
	bool kick = true;
	if (v->avail_idx == q->published)
		return;
	mb();
	v->avail->idx = v->avail_idx;
	mb();
	if (n->flags & VNET_QUIET) {
		/* avail_event sits right after the used ring */
		uint16_t ev = *(volatile uint16_t *)(uintptr_t)&v->used->ring[v->size];
		kick = n->event_idx ? (uint16_t)(v->avail_idx - ev - 1) <
					  (uint16_t)(v->avail_idx - q->published)
				    : !(v->used->flags & 1);
	}
	q->published = v->avail_idx;
	if (kick)
		mmio_write16(v->notify_addr, v->index);
}

/* Free transmit slots; consumes the completions (checking the newest one's id). */
static inline unsigned vnet_tx_room(struct vnet *n, unsigned pair)
{
	struct vnet_q *t = &n->tx[pair];
	uint16_t used = vnet_used_idx(t);
	if (used != t->vq.last_used) {
		uint16_t last = (uint16_t)(used - 1) & t->mask;
		CHECK(t->vq.used->ring[last].id == t->vq.avail->ring[last],
		      "transmit queue %u: used id %u at %u, expected %u (out of order?)", pair,
		      t->vq.used->ring[last].id, (uint16_t)(used - 1), t->vq.avail->ring[last]);
		t->vq.last_used = used;
	}
	return t->nslot - (uint16_t)(t->vq.avail_idx - t->vq.last_used);
}

/* The slot the next queued frame goes to (free if vnet_tx_room() > 0). */
static inline unsigned vnet_tx_next(const struct vnet *n, unsigned pair)
{
	return n->tx[pair].vq.avail_idx & (n->tx[pair].nslot - 1u);
}

static inline uint8_t *vnet_tx_buf(const struct vnet *n, unsigned pair, unsigned k)
{
	return n->tx[pair].buf + (size_t)k * VNET_BUFSZ;
}

/* Slot k carries VNET_HDR + hlen bytes of its buffer, then plen bytes at payload. */
static inline void vnet_tx_desc(struct vnet *n, unsigned pair, unsigned k, size_t hlen,
				const void *payload, size_t plen)
{
	volatile struct vring_desc *d = &n->tx[pair].vq.desc[2 * k];
	d[0].addr = (uint64_t)(uintptr_t)vnet_tx_buf(n, pair, k);
	d[0].len = (uint32_t)(VNET_HDR + hlen);
	d[0].flags = plen ? VRING_DESC_F_NEXT : 0;
	d[0].next = (uint16_t)(2 * k + 1);
	if (plen) {
		d[1].addr = (uint64_t)(uintptr_t)payload;
		d[1].len = (uint32_t)plen;
		d[1].flags = 0;
	}
}

/* Queue the next count slots (their descriptors written); vnet_tx_flush() publishes. */
static inline void vnet_tx_push(struct vnet *n, unsigned pair, unsigned count)
{
	n->tx[pair].vq.avail_idx = (uint16_t)(n->tx[pair].vq.avail_idx + count);
}

static inline void vnet_tx_flush(struct vnet *n, unsigned pair)
{
	vnet_publish(n, &n->tx[pair]);
}

static inline void vnet_tx_quiet(struct vnet *n, unsigned pair)
{
	vnet_quiet(n, &n->tx[pair]);
}

/* Receive in order: the number of frames that arrived since the last vnet_rx_last_done() and
 * the newest of them (only it is checked and returned); 0 if none. */
static inline uint16_t vnet_rx_last(struct vnet *n, unsigned pair, uint8_t **frame, uint32_t *flen)
{
	struct vnet_q *r = &n->rx[pair];
	uint16_t used = vnet_used_idx(r), count = (uint16_t)(used - r->vq.last_used);
	if (!count)
		return 0;
	uint16_t last = (uint16_t)(used - 1) & r->mask;
	uint32_t id = r->vq.used->ring[last].id, len = r->vq.used->ring[last].len;
	CHECK(id == r->vq.avail->ring[last] && len >= VNET_HDR + ETH_HLEN && len <= VNET_BUFSZ,
	      "receive: used id %u length %u at %u", id, len, (uint16_t)(used - 1));
	*frame = r->buf + (size_t)id * VNET_BUFSZ + VNET_HDR;
	*flen = len - VNET_HDR;
	return count;
}

/* Give back the count buffers vnet_rx_last() reported. All buffers stay posted and are used
 * in order, so avail position p + size takes back the buffer used at position p and its ring
 * entry is already right: this is an index update. */
static inline void vnet_rx_last_done(struct vnet *n, unsigned pair, uint16_t count)
{
	struct vnet_q *r = &n->rx[pair];
	r->vq.last_used = (uint16_t)(r->vq.last_used + count);
	r->vq.avail_idx = (uint16_t)(r->vq.avail_idx + count);
	vnet_quiet(n, r);
	vnet_publish(n, r);
}

#endif
