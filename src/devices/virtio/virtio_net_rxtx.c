/* SPDX-License-Identifier: MIT */
/* virtio-net data path of one queue pair (see virtio_net.h and virtio_net_priv.h). */
#include "devices/virtio/virtio_net_priv.h"
#include "common/log.h"

#include <errno.h>
#include <string.h>

#define HDR NET_VNET_HDR_LEN

/* A driver error found on the data path: NEEDS_RESET now if we hold the device lock,
 * otherwise through the pair's reschedule eventfd (which takes it). */
static void pair_driver_error(struct net_pair *p)
{
	if (p->dev_locked) {
		virtio_dev_set_needs_reset(&p->n->vdev);
		return;
	}
	__atomic_store_n(&p->n->reset_pending, 1, __ATOMIC_RELEASE);
	net_pair_schedule(p);
}

static void pair_halt(struct net_pair *p, unsigned dir, const char *why)
{
	vlog_rl("virtio-net: queue %u: %s; queue stopped until device reset",
		dir ? net_txq(p->index) : net_rxq(p->index), why);
	p->halted[dir] = true;
	pair_driver_error(p);
}

static struct virtq *pair_vq(struct net_pair *p, unsigned dir)
{
	return virtio_dev_queue(&p->n->vdev, dir ? net_txq(p->index) : net_rxq(p->index));
}

static bool pair_ready(struct net_pair *p, unsigned dir)
{
	struct virtq *vq = pair_vq(p, dir);
	return p->active && !p->halted[dir] && vq && vq->live;
}

/* 1 chain, 0 empty, -EIO broken queue (NEEDS_RESET requested). */
static int pair_pop(struct net_pair *p, unsigned dir)
{
	int r = vq_pop(pair_vq(p, dir), &p->chain);
	if (r < 0)
		pair_driver_error(p);
	return r;
}

/* One interrupt per batch, if the driver wants it. The transport's interrupt op only
 * reads the queue's vector and goes through the MSI-X lock: no device lock needed. */
static void pair_signal(struct net_pair *p, unsigned dir)
{
	struct virtio_dev *d = &p->n->vdev;
	struct virtq *vq = pair_vq(p, dir);
	if (vq_should_notify(vq) && d->tops && d->tops->interrupt)
		d->tops->interrupt(d->transport, vq->index);
}

/* ---- receive ------------------------------------------------------------------------------ */

void net_rx_drop_held(struct net_pair *p)
{
	p->n_held = 0;
	p->pool_used = 0;
	p->held_cap = 0;
}

/* Pop receive chains until a frame of rx_need bytes fits (MRG_RXBUF) or one chain is held.
 * Returns 1 when the queue ran empty, 0 otherwise, -EIO on a driver error. */
static int rx_fill(struct net_pair *p)
{
	const struct virtio_net *n = p->n;
	struct vq_chain *c = &p->chain;
	while (p->n_held < VIRTIO_NET_QUEUE_SIZE && NET_RX_POOL_IOV - p->pool_used >= VQ_MAX_IOV &&
	       (n->mrg_rxbuf ? p->held_cap < n->rx_need : p->n_held == 0)) {
		int r = pair_pop(p, 0);
		if (r <= 0)
			return r == 0 ? 1 : -EIO;
		if (c->num_out || c->in_bytes < HDR) {
			pair_halt(p, 0,
				  c->num_out ? "receive chain with readable buffers"
					     : "receive chain shorter than the header");
			return -EIO;
		}
		struct net_rx_held *h = &p->held[p->n_held++];
		h->head = c->head;
		h->first = p->pool_used;
		h->niov = c->num_in;
		h->cap = c->in_bytes;
		memcpy(&p->pool[p->pool_used], c->iov, c->num_in * sizeof(struct iovec));
		p->pool_used += c->num_in;
		p->held_cap += c->in_bytes;
	}
	return 0;
}

/* The first k held chains were used: forget them and move the rest to the front. */
static void rx_release(struct net_pair *p, unsigned k)
{
	if (k >= p->n_held) {
		net_rx_drop_held(p);
		return;
	}
	uint32_t shift = p->held[k].first;
	for (unsigned i = 0; i < k; i++)
		p->held_cap -= p->held[i].cap;
	memmove(p->held, p->held + k, (p->n_held - k) * sizeof(p->held[0]));
	p->n_held -= k;
	memmove(p->pool, p->pool + shift, (p->pool_used - shift) * sizeof(struct iovec));
	p->pool_used -= shift;
	for (unsigned i = 0; i < p->n_held; i++)
		p->held[i].first -= shift;
}

/* Deliver a frame of total bytes (with header) now sitting in the held chains. */
static int rx_complete(struct net_pair *p, const struct iovec *iov, unsigned niov, size_t total)
{
	const struct virtio_net *n = p->n;
	struct virtq *vq = pair_vq(p, 0);
	struct virtio_net_hdr_v1 h;
	uint8_t dst[6];
	unsigned used = 0;
	size_t left = total;

	if (total < HDR + VNET_ETH_HLEN) {
		p->stats.rx_dropped++;
		return 0;
	}
	if (n->ctrl_rx && (net_iov_read(iov, niov, HDR, dst, 6) != 6 ||
			   !vnet_rx_filter_accept(&n->filter, dst))) {
		p->stats.rx_dropped++;
		return 0;
	}
	memset(&h, 0, sizeof(h));
	if (p->be->vnet_hdr) {
		if (net_iov_read(iov, niov, 0, &h, HDR) != HDR ||
		    vnet_hdr_rx_fixup(&h, n->guest_offloads) < 0) {
			vlog_rl("virtio-net: %s: frame with an offload the guest did not accept; "
				"dropped",
				p->be->desc);
			p->stats.rx_dropped++;
			return 0;
		}
	}
	while (left && used < p->n_held) {
		uint64_t take = MIN((uint64_t)left, p->held[used].cap);
		left -= (size_t)take;
		used++;
	}
	h.num_buffers = (uint16_t)used;
	net_iov_write(iov, niov, 0, &h, HDR);
	left = total;
	for (unsigned i = 0; i < used; i++) {
		uint32_t len = (uint32_t)MIN((uint64_t)left, p->held[i].cap);
		left -= len;
		if (vq_push(vq, p->held[i].head, len) < 0) {
			net_rx_drop_held(p);
			return -EIO;
		}
	}
	rx_release(p, used);
	p->stats.rx_packets++;
	p->stats.rx_bytes += total - HDR;
	return 1;
}

void net_rx_process(struct net_pair *p)
{
	const struct virtio_net *n = p->n;
	unsigned budget = VIRTIO_NET_BUDGET;
	bool pushed = false;

	if (!pair_ready(p, 0))
		return;
	p->rx_wait_bufs = false;
	while (budget) {
		int empty = rx_fill(p);
		if (empty < 0)
			break;
		struct virtq *vq = pair_vq(p, 0);
		if (p->n_held == 0 ||
		    (empty && n->mrg_rxbuf && p->held_cap < n->rx_need && p->n_held < vq->size)) {
			p->rx_wait_bufs = true; /* the driver notifies when it adds buffers */
			break;
		}
		/* The vector the frame lands in: all held chains (MRG_RXBUF) or the first. */
		unsigned npool = n->mrg_rxbuf ? p->pool_used : p->held[0].niov;
		const struct iovec *iov;
		unsigned niov;
		size_t cap;
		npool = MIN(npool, NET_RECV_MAX_IOV);
		if (p->be->vnet_hdr) {
			iov = p->pool;
			niov = npool;
			cap = net_iov_len(iov, niov);
		} else {
			niov = net_iov_tail(p->pool, npool, HDR, p->iov, NET_RECV_MAX_IOV, &cap);
			iov = p->iov;
		}
		ssize_t got = net_backend_recv(p->be, iov, niov);
		if (got == -EAGAIN)
			break; /* the backend reports new frames with an EPOLLIN edge */
		if (got < 0) {
			p->stats.rx_errors++;
			break;
		}
		budget--;
		size_t total = (size_t)got + (p->be->vnet_hdr ? 0 : HDR);
		if ((size_t)got > cap) {
			vlog_rl("virtio-net: %zd-byte frame does not fit the guest's %zu-byte "
				"buffers; dropped",
				got, cap);
			p->stats.rx_dropped++;
			continue;
		}
		int r = rx_complete(p, p->pool, npool, total);
		if (r < 0)
			break;
		pushed |= r > 0;
	}
	if (pushed)
		pair_signal(p, 0);
	if (!budget)
		net_pair_schedule(p);
}

/* ---- transmit ----------------------------------------------------------------------------- */

/* Send the frame of chain c; 0 sent or dropped, -EAGAIN retry later. */
static int tx_one(struct net_pair *p, const struct vq_chain *c)
{
	struct virtio_net_hdr_v1 h;
	size_t frame = (size_t)(c->out_bytes - HDR), got;
	unsigned k = 0;

	net_iov_read(c->iov, c->num_out, 0, &h, HDR); /* one copy: checked and sent as is */
	h.num_buffers = 0;
	if (frame > NET_MAX_FRAME || vnet_hdr_tx_check(&h, frame, p->n->host_offloads) < 0) {
		vlog_rl("virtio-net: invalid transmit frame (%zu bytes, flags %#x, gso %#x); "
			"dropped",
			frame, h.flags, h.gso_type);
		p->stats.tx_dropped++;
		return 0;
	}
	if (p->be->vnet_hdr) {
		p->iov[0].iov_base = &h;
		p->iov[0].iov_len = HDR;
		k = 1;
	}
	unsigned m = net_iov_tail(c->iov, c->num_out, HDR, p->iov + k, NET_SEND_MAX_IOV - k, &got);
	if (got < frame) { /* more pieces than a writev takes: linearise */
		net_iov_read(c->iov, c->num_out, HDR, p->bounce, frame);
		p->iov[k].iov_base = p->bounce;
		p->iov[k].iov_len = frame;
		m = 1;
	}
	int r = net_backend_send(p->be, p->iov, k + m);
	if (r == -EAGAIN)
		return r;
	if (r < 0) {
		vlog_rl("virtio-net: %s: send: %s", p->be->desc, strerror(-r));
		p->stats.tx_errors++;
	} else {
		p->stats.tx_packets++;
		p->stats.tx_bytes += frame;
	}
	return 0;
}

void net_tx_process(struct net_pair *p)
{
	struct vq_chain *c = &p->chain;
	unsigned budget = VIRTIO_NET_BUDGET;
	bool pushed = false;

	if (!pair_ready(p, 1))
		return;
	if (net_backend_flush(p->be) == -EAGAIN) {
		p->tx_blocked = true;
		return;
	}
	p->tx_blocked = false;
	for (; budget; budget--) {
		int r = pair_pop(p, 1);
		if (r <= 0)
			break;
		if (c->num_in || c->out_bytes < HDR) {
			pair_halt(p, 1,
				  c->num_in ? "transmit chain with writable buffers"
					    : "transmit chain without a header");
			break;
		}
		if (tx_one(p, c) == -EAGAIN) {
			vq_unpop(pair_vq(p, 1));
			p->tx_blocked = true; /* resumed by the backend's EPOLLOUT */
			break;
		}
		if (vq_push(pair_vq(p, 1), c->head, 0) < 0)
			break;
		pushed = true;
	}
	if (pushed)
		pair_signal(p, 1);
	if (!budget)
		net_pair_schedule(p);
}
