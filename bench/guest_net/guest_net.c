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
 * transmit and receive rings are used in order with fixed descriptors (see tx_inorder_begin and
 * rx_last), payloads are zeroes from .bss, TCP headers come from per-slot templates, and of the
 * ACKs that arrived since the last look only the newest is parsed. ARP requests are answered
 * only outside those loops (the harness installs a permanent neighbour entry for the guest).
 *
 * Console: "BENCH-START <mode>" when traffic starts, "BENCH-END <mode> <frames> <bytes>" when
 * it is done (frames/bytes the guest sent or, for rxrate, received; Ethernet bytes, TCP payload
 * bytes), then "PROBE guest_net: PASS". Timing is the host's job: the guest clock of a nested
 * VM is not trustworthy.
 *
 * Files: this one (driver, ARP/DHCP, UDP modes, probe_main), tcp.c (mode=tcp), guest_net.h.
 */
#include "guest_net.h"

PROBE("guest_net");

struct vdev v;
struct vq txq;
static struct vq rxq;
static bool event_idx;
static uint8_t rxbuf[QSZ][BUFSZ] __attribute__((aligned(4096)));
uint8_t slotbuf[NSLOT][BUFSZ] __attribute__((aligned(4096)));
static uint8_t payload[PAYLOAD_MAX] __attribute__((aligned(4096)));
static uint16_t tx_free[NSLOT];
bool tmpl[NSLOT];
static unsigned n_free;
static uint16_t tx_pub_old, rx_pub_old;
uint8_t dmac[6], myip[4], dst[4];
static uint8_t mac[6], gw[4];
static unsigned prefix = 24;
uint16_t port;
uint64_t deadline;
static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

/* ---- rings ---------------------------------------------------------------------------------- */

static bool need_event(uint16_t ev, uint16_t now, uint16_t old)
{
	return (uint16_t)(now - ev - 1) < (uint16_t)(now - old);
}

/* Make everything added since the last publish visible; kick if the device asked for it. */
static void vq_publish(struct vq *q, uint16_t *old)
{
	if (q->avail_idx == *old)
		return;
	mb();
	q->avail->idx = q->avail_idx;
	mb();
	/* avail_event sits right after the used ring */
	uint16_t ev = *(volatile uint16_t *)(uintptr_t)&q->used->ring[q->size];
	bool kick = event_idx ? need_event(ev, q->avail_idx, *old) : !(q->used->flags & 1);
	*old = q->avail_idx;
	if (kick)
		mmio_write16(q->notify_addr, q->index);
}

static void vq_add(struct vq *q, uint16_t head)
{
	q->avail->ring[q->avail_idx % q->size] = head;
	q->avail_idx++;
}

/* Polling: keep the device from interrupting (there is no vector anyway). */
static void vq_quiet(struct vq *q)
{
	if (event_idx)
		q->avail->ring[q->size] = (uint16_t)(q->last_used + 0x4000);
}

static void rx_post(uint16_t i)
{
	rxq.desc[i].addr = (uint64_t)(uintptr_t)rxbuf[i];
	rxq.desc[i].len = BUFSZ;
	rxq.desc[i].flags = VRING_DESC_F_WRITE;
	vq_add(&rxq, i);
}

void tx_reclaim(void)
{
	uint32_t id, len;
	while (vq_pop_used(&txq, &id, &len)) {
		CHECK(id < QSZ && !(id & 1) && n_free < NSLOT, "transmit: used id %u", id);
		tx_free[n_free++] = (uint16_t)(id / 2);
	}
	vq_quiet(&txq);
}

/* A free transmit slot (its header buffer), reclaiming and waiting (bounded) if needed. */
unsigned tx_slot(void)
{
	uint64_t end = time_us() + 1000000;
	while (!n_free) {
		tx_reclaim();
		if (n_free)
			break;
		CHECK(time_us() < end, "transmit ring full for 1 s (status 0x%x)", vdev_status(&v));
		cpu_relax();
	}
	return tx_free[--n_free];
}

/* Descriptors of slot k: its buffer holds the virtio-net header and hlen bytes; plus plen
 * payload bytes in a second descriptor. */
void tx_flush(void)
{
	vq_publish(&txq, &tx_pub_old);
}

void tx_desc(unsigned k, size_t hlen, size_t plen)
{
	volatile struct vring_desc *d = &txq.desc[2 * k];
	d[0].addr = (uint64_t)(uintptr_t)slotbuf[k];
	d[0].len = (uint32_t)(HDR + hlen);
	d[0].flags = plen ? VRING_DESC_F_NEXT : 0;
	d[0].next = (uint16_t)(2 * k + 1);
	if (plen) {
		d[1].addr = (uint64_t)(uintptr_t)payload;
		d[1].len = (uint32_t)plen;
		d[1].flags = 0;
	}
}

void tx_queue(unsigned k, size_t hlen, size_t plen)
{
	tx_desc(k, hlen, plen);
	vq_add(&txq, (uint16_t)(2 * k));
}

/* In-order transmit (txrate, udpbulk, the TCP data phase). Packet rates measure the device, so
 * the guest does next to nothing per frame (guest code is very slow on nested hosts): avail
 * position p always carries head 2 * (p % NSLOT), set once, and a batch is only an index
 * update. That relies on the device completing transmit buffers in order, which both VMMs do
 * (the last used element of each batch is checked); VIRTIO_F_IN_ORDER is not negotiated. */
void tx_inorder_begin(void)
{
	while (n_free < NSLOT) {
		CHECK(time_us() < deadline, "transmit ring not drained");
		tx_reclaim();
	}
	for (unsigned i = 0; i < QSZ; i++) {
		uint16_t pos = (uint16_t)(txq.avail_idx + i);
		txq.avail->ring[pos % QSZ] = (uint16_t)(2 * (pos % NSLOT));
	}
}

/* Free in-order slots; the next one is txq.avail_idx % NSLOT. */
unsigned tx_inorder_room(void)
{
	uint16_t used = vq_used_idx(&txq);
	if (used != txq.last_used) {
		uint16_t last = (uint16_t)(used - 1);
		CHECK(txq.used->ring[last % QSZ].id == txq.avail->ring[last % QSZ],
		      "transmit completed out of order");
		txq.last_used = used;
	}
	return NSLOT - (uint16_t)(txq.avail_idx - txq.last_used);
}

void tx_inorder_end(void)
{
	tx_flush();
	while (vq_used_idx(&txq) != txq.avail_idx)
		CHECK(time_us() < deadline, "deadline: transmit ring not drained");
	txq.last_used = txq.avail_idx;
	vq_quiet(&txq);
}

/* The next received frame (without the header) or NULL; the caller gives the slot back. */
uint8_t *rx_poll(uint16_t *slot, uint32_t *flen)
{
	uint32_t id, len;
	if (!vq_pop_used(&rxq, &id, &len))
		return NULL;
	CHECK(id < QSZ && len >= HDR + 14 && len <= BUFSZ, "receive: id %u length %u", id, len);
	*slot = (uint16_t)id;
	*flen = len - HDR;
	return rxbuf[id] + HDR;
}

void rx_done(uint16_t slot)
{
	rx_post(slot);
}

void rx_flush(void)
{
	vq_quiet(&rxq);
	vq_publish(&rxq, &rx_pub_old);
}

static void dev_up(void)
{
	uint64_t want = VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX | F_MAC | F_STATUS | F_MRG_RXBUF;
	if (!cmdline_has("notso"))
		want |= F_CSUM | F_HOST_TSO4;
	CHECK(vdev_open(&v, VIRTIO_ID_NET_MODERN), "no virtio-net (1af4:1041) on bus 0");
	CHECK(v.device && vdev_negotiate(&v, want), "feature negotiation");
	event_idx = v.negotiated & VIRTIO_F_EVENT_IDX;
	for (unsigned i = 0; i < 6; i++)
		mac[i] = mmio_read8(v.device + i);
	CHECK(vq_setup(&v, &rxq, 0, QSZ, VIRTIO_MSI_NO_VECTOR), "receive queue setup");
	CHECK(vq_setup(&v, &txq, 1, QSZ, VIRTIO_MSI_NO_VECTOR), "transmit queue setup");
	CHECK(rxq.size == QSZ && txq.size == QSZ, "queue sizes %u/%u, want %u", rxq.size, txq.size,
	      QSZ);
	if (!event_idx) {
		rxq.avail->flags = 1; /* VRING_AVAIL_F_NO_INTERRUPT */
		txq.avail->flags = 1;
	}
	vdev_driver_ok(&v);
	for (uint16_t i = 0; i < QSZ; i++)
		rx_post(i);
	rx_flush();
	for (unsigned k = 0; k < NSLOT; k++)
		tx_free[n_free++] = (uint16_t)(NSLOT - 1 - k);
	printf("guest_net: mac %02x:%02x:%02x:%02x:%02x:%02x features 0x%lx\n", mac[0], mac[1],
	       mac[2], mac[3], mac[4], mac[5], v.negotiated);
}

/* ---- frames ------------------------------------------------------------------------------ */

uint8_t *eth(uint8_t *buf, const uint8_t to[6], uint16_t type)
{
	uint8_t *f = buf + HDR;
	uintptr_t ub = (uintptr_t)buf, us = (uintptr_t)slotbuf;
	if (ub >= us && ub < us + sizeof(slotbuf))
		tmpl[(ub - us) / BUFSZ] = false;
	memset(buf, 0, HDR);
	memcpy(f, to, 6);
	memcpy(f + 6, mac, 6);
	put16(f + 12, type);
	return f + 14;
}

uint8_t *ip_hdr(uint8_t *p, uint8_t proto, const uint8_t to[4], size_t payload_len, uint16_t id)
{
	memset(p, 0, 20);
	p[0] = 0x45;
	put16(p + 2, (uint16_t)(20 + payload_len));
	put16(p + 4, id);
	p[6] = 0x40; /* DF */
	p[8] = 64;
	p[9] = proto;
	memcpy(p + 12, myip, 4);
	memcpy(p + 16, to, 4);
	put16(p + 10, (uint16_t)~fold(sum16(p, 20, 0)));
	return p + 20;
}

static void arp_send(uint16_t op, const uint8_t tha[6], const uint8_t tpa[4])
{
	unsigned k = tx_slot();
	uint8_t *a = eth(slotbuf[k], op == 1 ? bcast : tha, 0x0806);
	put16(a, 1);
	put16(a + 2, 0x0800);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, mac, 6);
	memcpy(a + 14, myip, 4);
	memcpy(a + 18, op == 1 ? (const uint8_t[6]){0} : tha, 6);
	memcpy(a + 24, tpa, 4);
	memset(a + 28, 0, 18);
	tx_queue(k, 14 + 28 + 18, 0);
	tx_flush();
}

/* Answer an ARP request for our address; true if the frame was one (slot given back). */
bool arp_answer(uint8_t *f, uint32_t len, uint16_t slot)
{
	uint8_t *p = f + 14, sha[6], spa[4];
	if (be16(f + 12) != 0x0806 || len < 14 + 28 || be16(p + 6) != 1 || memcmp(p + 24, myip, 4))
		return false;
	memcpy(sha, p + 8, 6);
	memcpy(spa, p + 14, 4);
	rx_done(slot);
	arp_send(2, sha, spa);
	return true;
}

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

/* DHCP DISCOVER until an OFFER arrives: take its address, router and mask. */
static void dhcp(void)
{
	static const uint8_t all[4] = {255, 255, 255, 255};
	const uint32_t xid = 0x76626e74; /* "vbnt" */
	uint64_t end = time_us() + 10000000, next = 0;
	uint16_t slot;
	uint32_t len;
	uint8_t olen, *f;
	while (time_us() < end) {
		if (time_us() >= next) {
			unsigned k = tx_slot();
			uint8_t *udp = ip_hdr(eth(slotbuf[k], bcast, 0x0800), 17, all, 8 + 244, 0);
			uint8_t *b = udp + 8;
			memset(b, 0, 244);
			b[0] = 1, b[1] = 1, b[2] = 6;
			memcpy(b + 4, &xid, 4);
			put16(b + 10, 0x8000);
			memcpy(b + 28, mac, 6);
			b[236] = 99, b[237] = 130, b[238] = 83, b[239] = 99;
			b[240] = 53, b[241] = 1, b[242] = 1, b[243] = 255;
			put16(udp, 68);
			put16(udp + 2, 67);
			put16(udp + 4, 8 + 244);
			put16(udp + 6, 0);
			tx_queue(k, 14 + 20 + 8 + 244, 0);
			tx_flush();
			next = time_us() + 1000000;
		}
		tx_reclaim();
		if (!(f = rx_poll(&slot, &len))) {
			cpu_relax();
			continue;
		}
		uint8_t *p = f + 14;
		if (be16(f + 12) == 0x0800 && p[9] == 17 && len >= 14 + 28 + 240 &&
		    be16(p + 22) == 68) {
			uint8_t *d = p + 28;
			size_t dl = len - 14 - 28;
			const uint8_t *t = dhcp_opt(d + 240, dl - 240, 53, &olen);
			if (d[0] == 2 && !memcmp(d + 4, &xid, 4) && t && olen == 1 && *t == 2) {
				const uint8_t *r = dhcp_opt(d + 240, dl - 240, 3, &olen);
				const uint8_t *m = dhcp_opt(d + 240, dl - 240, 1, &olen);
				memcpy(myip, d + 16, 4);
				memcpy(gw, r ? r : d + 20, 4);
				if (m)
					for (prefix = 0; prefix < 32 && (ip32(m) << prefix) >> 31;)
						prefix++;
				rx_done(slot);
				rx_flush();
				printf("guest_net: DHCP offer %u.%u.%u.%u/%u router %u.%u.%u.%u\n",
				       myip[0], myip[1], myip[2], myip[3], prefix, gw[0], gw[1],
				       gw[2], gw[3]);
				return;
			}
		}
		rx_done(slot);
		rx_flush();
	}
	probe_fail("no DHCP OFFER");
}

/* ARP for dst (on-link) or the gateway; retried every 500 ms. */
static void resolve(void)
{
	uint32_t mask = prefix ? ~0u << (32 - prefix) : 0;
	bool onlink = (ip32(dst) & mask) == (ip32(myip) & mask);
	const uint8_t *hop = onlink ? dst : gw;
	uint64_t end = time_us() + 10000000, next = 0;
	uint16_t slot;
	uint32_t len;
	uint8_t *f;
	CHECK(onlink || ip32(gw), "dst is off-link and there is no gateway");
	while (time_us() < end) {
		if (time_us() >= next) {
			arp_send(1, bcast, hop);
			next = time_us() + 500000;
		}
		tx_reclaim();
		if (!(f = rx_poll(&slot, &len))) {
			cpu_relax();
			continue;
		}
		uint8_t *p = f + 14;
		bool hit = be16(f + 12) == 0x0806 && len >= 14 + 28 && be16(p + 6) == 2 &&
			   !memcmp(p + 14, hop, 4);
		if (hit)
			memcpy(dmac, p + 8, 6);
		if (!arp_answer(f, len, slot))
			rx_done(slot);
		rx_flush();
		if (hit) {
			printf("guest_net: next hop %u.%u.%u.%u is %02x:%02x:%02x:%02x:%02x:%02x\n",
			       hop[0], hop[1], hop[2], hop[3], dmac[0], dmac[1], dmac[2], dmac[3],
			       dmac[4], dmac[5]);
			return;
		}
	}
	probe_fail("no ARP reply from %u.%u.%u.%u", hop[0], hop[1], hop[2], hop[3]);
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
	tx_inorder_begin();
	/* Every slot carries the same ready frame (zero payload: .bss). */
	for (unsigned k = 0; k < NSLOT; k++) {
		uint8_t *u = ip_hdr(eth(slotbuf[k], dmac, 0x0800), 17, dst, 8 + data, 0);
		put16(u, (uint16_t)(port + 40000)); /* not port: passt binds the source port */
		put16(u + 2, port);
		put16(u + 4, (uint16_t)(8 + data));
		put16(u + 6, 0); /* no checksum (IPv4) */
		tx_desc(k, size, 0);
	}
	marker("START", mode, 0, 0);
	while (sent < count) {
		uint64_t room = tx_inorder_room();
		if (room > count - sent)
			room = count - sent;
		if (room) {
			txq.avail_idx = (uint16_t)(txq.avail_idx + room);
			sent += room;
			vq_quiet(&txq);
			tx_flush();
		} else if (time_us() > deadline) {
			probe_fail("deadline: %lu of %lu frames sent", sent, count);
		}
	}
	tx_inorder_end();
	marker("END", mode, sent, sent * size);
}

/* Receive side of the same idea: all QSZ buffers stay posted, one per frame (MRG_RXBUF frames
 * fit one buffer), consumed in order, so avail position p + QSZ takes back the buffer used at
 * position p and its ring entry is already right: giving buffers back is an index update. */
bool rx_last(uint16_t *n, uint8_t **frame, uint32_t *flen)
{
	uint16_t used = vq_used_idx(&rxq);
	*n = (uint16_t)(used - rxq.last_used);
	if (!*n)
		return false;
	volatile struct vring_used_elem *e = &rxq.used->ring[(uint16_t)(used - 1) % QSZ];
	uint32_t id = e->id, len = e->len;
	CHECK(id == rxq.avail->ring[(uint16_t)(used - 1) % QSZ] && len >= HDR + 14 &&
		      len <= BUFSZ,
	      "receive: used id %u length %u at %u", id, len, used);
	*frame = rxbuf[id] + HDR;
	*flen = len - HDR;
	return true;
}

void rx_last_done(uint16_t n)
{
	rxq.last_used = (uint16_t)(rxq.last_used + n);
	rxq.avail_idx = (uint16_t)(rxq.avail_idx + n);
	rx_flush();
}

static void udp_in(uint64_t count)
{
	uint64_t got = 0, bytes = 0, idle = cmdline_u64("idle", 3) * 1000000, last = 0;
	uint16_t n;
	uint32_t len;
	uint8_t *f;
	marker("START", "rxrate", 0, 0);
	while (got < count) {
		if (!rx_last(&n, &f, &len)) {
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
		rx_last_done(n);
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
		CHECK(parse_ip("ip", myip), "ip=A.B.C.D or dhcp expected");
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
	CHECK(vdev_reset(&v), "device reset does not complete");
	probe_pass();
}
