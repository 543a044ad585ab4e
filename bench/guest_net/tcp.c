/* SPDX-License-Identifier: MIT */
/*
 * The network benchmark guest's TCP sender (mode=tcp, see guest_net.c): one connection to
 * dst:port that sends `total` zero bytes in MSS segments or TSO super-segments, with a sliding
 * window from the ACKs and go-back-N after a 200 ms retransmission timeout, then a FIN.
 * Uses the device set up by guest_net.c and the driver and frame builders of vnet.h;
 * probe_fail()s on a reset, a refused connection or the overall deadline.
 */
#include "guest_net.h"

#define PAYLOAD_MAX 65536

static uint8_t payload[PAYLOAD_MAX] __attribute__((aligned(4096))); /* zeroes (.bss) */
static bool tmpl[NSLOT]; /* slot k holds the data segment template */

struct tcp {
	uint32_t iss, irs; /* our and the peer's initial sequence numbers */
	uint16_t sport;
	unsigned mss, wscale;
	uint64_t una, nxt, total; /* offsets from iss + 1 */
	uint64_t wnd;
	uint64_t timeouts, segs, wblocked, sblocked;
	uint16_t ipid;
	uint32_t ipsum, thsum, pseudo; /* template sums */
};

/* Headers of the frame at f; returns the TCP header.
 * flags: 0x02 SYN, 0x10 ACK, 0x08 PSH, 0x01 FIN. */
static uint8_t *tcp_hdr(struct tcp *t, uint8_t *f, uint32_t seq, uint8_t flags, size_t optlen,
			size_t plen)
{
	size_t thl = 20 + optlen;
	uint8_t *th = vnet_ip(vnet_eth(&net, f, dmac, ETH_P_IP), 6, net.ip, dst, thl + plen,
			      t->ipid++, 0x4000);
	put16(th, t->sport);
	put16(th + 2, port);
	put32(th + 4, seq);
	put32(th + 8, flags & 0x10 ? t->irs + 1 : 0);
	th[12] = (uint8_t)(thl / 4 << 4);
	th[13] = flags;
	put16(th + 14, 65535);
	put16(th + 16, 0);
	put16(th + 18, 0);
	return th;
}

/* Pseudo-header sum for a TCP segment of len bytes. */
static uint32_t tcp_pseudo(size_t len)
{
	uint32_t s = sum16(net.ip, 4, 0);
	s = sum16(dst, 4, s);
	return s + 6 + (uint32_t)len;
}

static void tcp_ctl(struct tcp *t, uint32_t seq, uint8_t flags)
{
	bool syn = flags & 0x02;
	uint8_t *th = tcp_hdr(t, vnet_tx_frame(&net, 0), seq, flags, syn ? 8 : 0, 0);
	if (syn) { /* MSS 1460, NOP, window scale 7 */
		uint8_t o[8] = {2, 4, 0x05, 0xb4, 1, 3, 3, 7};
		memcpy(th + 20, o, 8);
	}
	size_t thl = syn ? 28 : 20;
	put16(th + 16, (uint16_t)~fold(sum16(th, thl, tcp_pseudo(thl))));
	vnet_send(&net, 0, ETH_IP_TCP + (syn ? 8 : 0));
}

/* A data segment. Headers come from a per-slot template; only length, id, sequence number and
 * checksums change (the payload is all zeroes, so it adds nothing to a checksum). */
static void tcp_data(struct tcp *t, unsigned k, uint64_t off, size_t plen, bool offload)
{
	uint8_t *vh = vnet_tx_buf(&net, 0, k), *ip = vh + VNET_HDR + 14, *th = ip + 20;
	uint32_t seq = t->iss + 1 + (uint32_t)off;
	if (!tmpl[k]) {
		memset(vh, 0, VNET_HDR);
		tcp_hdr(t, vh + VNET_HDR, 0, 0x18, 0, 0);
		put16(ip + 2, 0), put16(ip + 4, 0), put16(ip + 10, 0);
		t->ipsum = sum16(ip, 20, 0);
		put32(th + 4, 0);
		t->thsum = sum16(th, 20, 0);
		if (offload) {
			vh[0] = 1;		/* NEEDS_CSUM */
			vh[2] = 54, vh[3] = 0;	/* hdr_len */
			vh[6] = 34, vh[7] = 0;	/* csum_start */
			vh[8] = 16, vh[9] = 0;	/* csum_offset */
		}
		tmpl[k] = true;
	}
	uint16_t id = t->ipid++, len = (uint16_t)(40 + plen);
	put16(ip + 2, len);
	put16(ip + 4, id);
	put16(ip + 10, (uint16_t)~fold(t->ipsum + len + id));
	put32(th + 4, seq);
	uint32_t pseudo = t->pseudo + 20 + (uint32_t)plen;
	if (offload) {
		put16(th + 16, fold(pseudo));
		bool gso = plen > t->mss;
		vh[1] = gso ? 1 : 0; /* GSO_TCPV4 */
		vh[4] = gso ? (uint8_t)t->mss : 0, vh[5] = gso ? (uint8_t)(t->mss >> 8) : 0;
	} else {
		put16(th + 16, 0);
		put16(th + 16, (uint16_t)~fold(t->thsum + (seq >> 16) + (seq & 0xffff) + pseudo));
	}
	vnet_tx_desc(&net, 0, k, ETH_IP_TCP, payload, plen);
	t->segs++;
}

/* The newest received frame carries the newest cumulative ACK: only it is parsed (the guest
 * is slow); loss is repaired by the retransmission timeout alone. */
static void tcp_input(struct tcp *t, uint64_t *progress_at)
{
	uint16_t n;
	uint32_t len;
	uint8_t *f;
	if (!(n = vnet_rx_last(&net, 0, &f, &len)))
		return;
	uint8_t *p = f + 14, *th = p + 20;
	if (be16(f + 12) == 0x0800 && len >= 14 + 40 && p[9] == 6 && be16(th) == port &&
	    be16(th + 2) == t->sport) {
		CHECK(!(th[13] & 0x04), "connection reset by the host at %lu of %lu bytes", t->una,
		      t->total);
		uint32_t d = be32(th + 8) - (t->iss + 1 + (uint32_t)t->una);
		if ((th[13] & 0x10) && d && d <= t->nxt - t->una) {
			t->una += d;
			*progress_at = time_us();
		}
		t->wnd = (uint64_t)be16(th + 14) << t->wscale;
	}
	vnet_rx_last_done(&net, 0, n);
}

void tcp_out(uint64_t total)
{
	struct tcp t = {0};
	uint16_t slot;
	uint32_t len;
	uint8_t *f;
	uint64_t tso = VNET_F_CSUM | VNET_F_HOST_TSO4;
	bool offload = (net.dev.negotiated & tso) == tso;
	t.iss = (uint32_t)rdtsc();
	t.sport = (uint16_t)(40000 + (rdtsc() >> 4) % 20000);
	t.total = total;

	/* Handshake: SYN every 500 ms until a SYN-ACK. */
	uint64_t next = 0;
	bool est = false;
	while (!est) {
		CHECK(time_us() < deadline, "no SYN-ACK from %u.%u.%u.%u:%u", dst[0], dst[1], dst[2],
		      dst[3], port);
		if (time_us() >= next) {
			tcp_ctl(&t, t.iss, 0x02);
			next = time_us() + 500000;
		}
		if (!(f = vnet_rx_poll(&net, 0, &slot, &len))) {
			cpu_relax();
			continue;
		}
		uint8_t *p = f + 14, *th = p + 20;
		if (be16(f + 12) == 0x0800 && len >= 14 + 40 && p[9] == 6 &&
		    be16(th) == port && be16(th + 2) == t.sport) {
			CHECK(!(th[13] & 0x04), "connection refused by %u.%u.%u.%u:%u", dst[0],
			      dst[1], dst[2], dst[3], port);
			if ((th[13] & 0x12) == 0x12 && be32(th + 8) == t.iss + 1) {
				size_t thl = (size_t)(th[12] >> 4) * 4;
				t.irs = be32(th + 4);
				t.mss = 536;
				for (size_t i = 20; i < thl && 20 + i < len - 14;) {
					uint8_t kind = th[i];
					if (kind == 0)
						break;
					if (kind == 1) {
						i++;
						continue;
					}
					uint8_t ol = th[i + 1];
					if (ol < 2)
						break;
					if (kind == 2 && ol == 4)
						t.mss = be16(th + i + 2);
					if (kind == 3 && ol == 3)
						t.wscale = th[i + 2] > 14 ? 14 : th[i + 2];
					i += ol;
				}
				if (t.mss > 1460)
					t.mss = 1460;
				t.wnd = be16(th + 14); /* not scaled in a SYN-ACK */
				est = true;
			}
		}
		if (!vnet_answer(&net, 0, f, len, slot))
			vnet_rx_post(&net, 0, slot);
	}
	tcp_ctl(&t, t.iss + 1, 0x10);
	printf("guest_net: TCP established, mss %u wscale %u window %lu, %s\n", t.mss, t.wscale,
	       t.wnd, offload ? "TSO/checksum offload" : "software checksums, MSS segments");

	size_t seg = offload ? (65000 / t.mss) * t.mss : t.mss;
	t.pseudo = tcp_pseudo(0);
	uint64_t progress_at = time_us();
	memset(tmpl, 0, sizeof(tmpl)); /* the handshake used some slots */
	marker("START", "tcp", 0, 0);
	while (t.una < total) {
		uint64_t now = time_us();
		CHECK(now < deadline, "deadline: %lu of %lu bytes acknowledged", t.una, total);
		unsigned slots = vnet_tx_room(&net, 0);
		tcp_input(&t, &progress_at);
		if (t.nxt > t.una && now > progress_at + 200000) {
			t.nxt = t.una; /* retransmission timeout: go back N */
			t.timeouts++;
			progress_at = time_us();
		}
		bool queued = false;
		while (slots && t.nxt < total && t.nxt < t.una + t.wnd) {
			uint64_t room = t.una + t.wnd - t.nxt, left = total - t.nxt;
			size_t n = seg;
			if (n > left)
				n = (size_t)left;
			if (n > room) {
				if (room < t.mss && n > room)
					break; /* wait for a full segment of window */
				n = (size_t)room / t.mss * t.mss;
				if (!n)
					n = (size_t)room;
			}
			tcp_data(&t, vnet_tx_next(&net, 0), t.nxt, n, offload);
			vnet_tx_push(&net, 0, 1);
			slots--;
			t.nxt += n;
			queued = true;
		}
		if (queued)
			vnet_tx_flush(&net, 0);
		else if (t.nxt >= t.una + t.wnd)
			t.wblocked++;
		else if (!slots)
			t.sblocked++;
	}
	vnet_tx_drain(&net, 0, deadline);
	marker("END", "tcp", t.segs, total);
	printf("guest_net: tcp %lu segments, %lu timeouts; waits: window %lu ring %lu; final "
	       "window %lu\n", t.segs, t.timeouts, t.wblocked, t.sblocked, t.wnd);
	/* FIN, then wait (bounded) for its ACK so that it leaves before we power off. */
	tcp_ctl(&t, t.iss + 1 + (uint32_t)total, 0x11);
	uint64_t end = time_us() + 1000000;
	while (time_us() < end && t.una < total + 1) {
		t.nxt = total + 1;
		tcp_input(&t, &progress_at);
		cpu_relax();
	}
}
