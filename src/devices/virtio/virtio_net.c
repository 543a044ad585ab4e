/* SPDX-License-Identifier: MIT */
/* virtio-net device (see virtio_net.h). */
#include "devices/virtio/virtio_net.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtio_pci.h"
#include "common/evloop.h"
#include "common/log.h"
#include "net/net.h"
#include "net/vhost_net.h"
#include "net/vnet.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define NET_PCI_CLASS 0x020000 /* network controller, Ethernet */
#define RX_POOL_IOV (2 * VQ_MAX_IOV)
#define HDR NET_VNET_HDR_LEN
#define VLAN_HLEN 4u

#define F(b) VIRTIO_BIT(VIRTIO_NET_F_##b)
#define NET_BASE_FEATURES                                                                          \
	(F(MAC) | F(MTU) | F(STATUS) | F(MRG_RXBUF) | F(CTRL_VQ) | F(CTRL_RX) | F(CTRL_MAC_ADDR))
/* Offered only as far as the backend supports them (virtio_net_create masks the rest). */
#define NET_OFFLOAD_FEATURES                                                                       \
	(F(CSUM) | F(GUEST_CSUM) | F(HOST_TSO4) | F(HOST_TSO6) | F(HOST_ECN) | F(GUEST_TSO4) |     \
	 F(GUEST_TSO6) | F(GUEST_ECN))

/* A receive chain popped and kept until a frame fills it; its iovecs live in the pool. */
struct rx_held {
	uint16_t head;
	uint32_t first, niov; /* pool[first .. first + niov) */
	uint64_t cap;	      /* writable bytes */
};

struct virtio_net {
	struct virtio_dev vdev;
	struct virtio_pci *pci;
	const struct platform *plat;
	struct net_backend *be;
	uint8_t cfg_mac[6]; /* as created; the driver may change the live one */
	int kickfd;	    /* eventfd: rescheduled work on the I/O loop */
	bool kick_registered, be_registered;

	/* Protected by the device lock. */
	bool active;
	bool halted[3];	   /* a driver error stopped this queue until reset */
	bool tx_blocked;   /* the backend would block: retry on EPOLLOUT */
	bool rx_wait_bufs; /* no receive buffers: retry on the receive notification */
	bool mrg_rxbuf, ctrl_rx;
	unsigned guest_offloads, host_offloads;
	size_t rx_need; /* bytes (with header) the largest expected frame needs */
	struct vnet_rx_filter filter;
	struct virtio_net_stats stats;

	unsigned n_held, pool_used;
	uint64_t held_cap;
	struct rx_held held[VIRTIO_NET_QUEUE_SIZE];
	struct iovec pool[RX_POOL_IOV];
	struct iovec iov[VQ_MAX_IOV + 1]; /* scratch for building recv/send vectors */
	uint8_t *bounce;		  /* linearised frame when a chain has too many iovecs */
	struct vq_chain chain;

	/* vhost-net, when asked for and available. */
	struct vhost_net *vhost;
	bool vhost_on;
	bool call_registered[VHOST_NET_RINGS];
};

static void net_schedule(struct virtio_net *n)
{
	uint64_t one = 1;
	if (n->kickfd >= 0 && write(n->kickfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		vlog_rl("virtio-net: eventfd write: %s", strerror(errno));
}

/* A driver error the core cannot see (e.g. a receive chain without room for a header). */
static void net_halt(struct virtio_net *n, unsigned q, const char *why)
{
	vlog_rl("virtio-net: queue %u: %s; queue stopped until device reset", q, why);
	n->halted[q] = true;
	virtio_dev_set_needs_reset(&n->vdev);
}

static bool net_queue_ready(struct virtio_net *n, unsigned q)
{
	struct virtq *vq = virtio_dev_queue(&n->vdev, q);
	return n->active && !n->halted[q] && vq && vq->live;
}

/* ---- receive ------------------------------------------------------------------------------ */

static void rx_drop_held(struct virtio_net *n)
{
	n->n_held = 0;
	n->pool_used = 0;
	n->held_cap = 0;
}

/* Pop receive chains until a frame of rx_need bytes fits (MRG_RXBUF) or one chain is held.
 * Returns 1 when the queue ran empty, 0 otherwise, -EIO on a driver error. */
static int rx_fill(struct virtio_net *n)
{
	struct vq_chain *c = &n->chain;
	while (n->n_held < VIRTIO_NET_QUEUE_SIZE && RX_POOL_IOV - n->pool_used >= VQ_MAX_IOV &&
	       (n->mrg_rxbuf ? n->held_cap < n->rx_need : n->n_held == 0)) {
		int r = virtio_dev_queue_pop(&n->vdev, VIRTIO_NET_RXQ, c);
		if (r <= 0)
			return r == 0 ? 1 : -EIO;
		if (c->num_out || c->in_bytes < HDR) {
			net_halt(n, VIRTIO_NET_RXQ,
				 c->num_out ? "receive chain with readable buffers"
					    : "receive chain shorter than the header");
			return -EIO;
		}
		struct rx_held *h = &n->held[n->n_held++];
		h->head = c->head;
		h->first = n->pool_used;
		h->niov = c->num_in;
		h->cap = c->in_bytes;
		memcpy(&n->pool[n->pool_used], c->iov, c->num_in * sizeof(struct iovec));
		n->pool_used += c->num_in;
		n->held_cap += c->in_bytes;
	}
	return 0;
}

/* The first k held chains were used: forget them and move the rest to the front. */
static void rx_release(struct virtio_net *n, unsigned k)
{
	if (k >= n->n_held) {
		rx_drop_held(n);
		return;
	}
	uint32_t shift = n->held[k].first;
	for (unsigned i = 0; i < k; i++)
		n->held_cap -= n->held[i].cap;
	memmove(n->held, n->held + k, (n->n_held - k) * sizeof(n->held[0]));
	n->n_held -= k;
	memmove(n->pool, n->pool + shift, (n->pool_used - shift) * sizeof(struct iovec));
	n->pool_used -= shift;
	for (unsigned i = 0; i < n->n_held; i++)
		n->held[i].first -= shift;
}

/* Deliver a frame of total bytes (with header) now sitting in the held chains. */
static int rx_complete(struct virtio_net *n, const struct iovec *iov, unsigned niov, size_t total)
{
	struct virtio_net_hdr_v1 h;
	uint8_t dst[6];
	unsigned used = 0;
	size_t left = total;

	if (total < HDR + VNET_ETH_HLEN) {
		n->stats.rx_dropped++;
		return 0;
	}
	if (n->ctrl_rx && (net_iov_read(iov, niov, HDR, dst, 6) != 6 ||
			   !vnet_rx_filter_accept(&n->filter, dst))) {
		n->stats.rx_dropped++;
		return 0;
	}
	memset(&h, 0, sizeof(h));
	if (n->be->vnet_hdr) {
		if (net_iov_read(iov, niov, 0, &h, HDR) != HDR ||
		    vnet_hdr_rx_fixup(&h, n->guest_offloads) < 0) {
			vlog_rl("virtio-net: %s: frame with an offload the guest did not accept; "
				"dropped",
				n->be->desc);
			n->stats.rx_dropped++;
			return 0;
		}
	}
	while (left && used < n->n_held) {
		uint64_t take = MIN((uint64_t)left, n->held[used].cap);
		left -= (size_t)take;
		used++;
	}
	h.num_buffers = (uint16_t)used;
	net_iov_write(iov, niov, 0, &h, HDR);
	left = total;
	for (unsigned i = 0; i < used; i++) {
		uint32_t len = (uint32_t)MIN((uint64_t)left, n->held[i].cap);
		left -= len;
		if (virtio_dev_queue_push(&n->vdev, VIRTIO_NET_RXQ, n->held[i].head, len) < 0) {
			rx_drop_held(n);
			return -EIO;
		}
	}
	rx_release(n, used);
	n->stats.rx_packets++;
	n->stats.rx_bytes += total - HDR;
	return 1;
}

static void rx_process(struct virtio_net *n)
{
	unsigned budget = VIRTIO_NET_BUDGET;
	bool pushed = false;

	if (!net_queue_ready(n, VIRTIO_NET_RXQ) || n->vhost_on)
		return;
	n->rx_wait_bufs = false;
	while (budget) {
		int empty = rx_fill(n);
		if (empty < 0)
			break;
		struct virtq *vq = virtio_dev_queue(&n->vdev, VIRTIO_NET_RXQ);
		if (n->n_held == 0 ||
		    (empty && n->mrg_rxbuf && n->held_cap < n->rx_need && n->n_held < vq->size)) {
			n->rx_wait_bufs = true; /* the driver notifies when it adds buffers */
			break;
		}
		/* The vector the frame lands in: all held chains (MRG_RXBUF) or the first. */
		unsigned npool = n->mrg_rxbuf ? n->pool_used : n->held[0].niov;
		const struct iovec *iov;
		unsigned niov;
		size_t cap;
		npool = MIN(npool, NET_RECV_MAX_IOV);
		if (n->be->vnet_hdr) {
			iov = n->pool;
			niov = npool;
			cap = net_iov_len(iov, niov);
		} else {
			niov = net_iov_tail(n->pool, npool, HDR, n->iov, NET_RECV_MAX_IOV, &cap);
			iov = n->iov;
		}
		ssize_t got = net_backend_recv(n->be, iov, niov);
		if (got == -EAGAIN)
			break; /* the backend reports new frames with an EPOLLIN edge */
		if (got < 0) {
			n->stats.rx_errors++;
			break;
		}
		budget--;
		size_t total = (size_t)got + (n->be->vnet_hdr ? 0 : HDR);
		if ((size_t)got > cap) {
			vlog_rl("virtio-net: %zd-byte frame does not fit the guest's %zu-byte "
				"buffers; dropped",
				got, cap);
			n->stats.rx_dropped++;
			continue;
		}
		int r = rx_complete(n, n->pool, npool, total);
		if (r < 0)
			break;
		pushed |= r > 0;
	}
	if (pushed)
		virtio_dev_queue_signal(&n->vdev, VIRTIO_NET_RXQ);
	if (!budget)
		net_schedule(n);
}

/* ---- transmit ----------------------------------------------------------------------------- */

/* Send the frame of chain c; 0 sent or dropped, -EAGAIN retry later. */
static int tx_one(struct virtio_net *n, const struct vq_chain *c)
{
	struct virtio_net_hdr_v1 h;
	size_t frame = (size_t)(c->out_bytes - HDR), got;
	unsigned k = 0;

	net_iov_read(c->iov, c->num_out, 0, &h, HDR); /* one copy: checked and sent as is */
	h.num_buffers = 0;
	if (frame > NET_MAX_FRAME || vnet_hdr_tx_check(&h, frame, n->host_offloads) < 0) {
		vlog_rl("virtio-net: invalid transmit frame (%zu bytes, flags %#x, gso %#x); "
			"dropped",
			frame, h.flags, h.gso_type);
		n->stats.tx_dropped++;
		return 0;
	}
	if (n->be->vnet_hdr) {
		n->iov[0].iov_base = &h;
		n->iov[0].iov_len = HDR;
		k = 1;
	}
	unsigned m = net_iov_tail(c->iov, c->num_out, HDR, n->iov + k, NET_SEND_MAX_IOV - k, &got);
	if (got < frame) { /* more pieces than a writev takes: linearise */
		net_iov_read(c->iov, c->num_out, HDR, n->bounce, frame);
		n->iov[k].iov_base = n->bounce;
		n->iov[k].iov_len = frame;
		m = 1;
	}
	int r = net_backend_send(n->be, n->iov, k + m);
	if (r == -EAGAIN)
		return r;
	if (r < 0) {
		vlog_rl("virtio-net: %s: send: %s", n->be->desc, strerror(-r));
		n->stats.tx_errors++;
	} else {
		n->stats.tx_packets++;
		n->stats.tx_bytes += frame;
	}
	return 0;
}

static void tx_process(struct virtio_net *n)
{
	struct vq_chain *c = &n->chain;
	unsigned budget = VIRTIO_NET_BUDGET;
	bool pushed = false;

	if (!net_queue_ready(n, VIRTIO_NET_TXQ) || n->vhost_on)
		return;
	if (net_backend_flush(n->be) == -EAGAIN) {
		n->tx_blocked = true;
		return;
	}
	n->tx_blocked = false;
	for (; budget; budget--) {
		int r = virtio_dev_queue_pop(&n->vdev, VIRTIO_NET_TXQ, c);
		if (r <= 0)
			break;
		if (c->num_in || c->out_bytes < HDR) {
			net_halt(n, VIRTIO_NET_TXQ,
				 c->num_in ? "transmit chain with writable buffers"
					   : "transmit chain without a header");
			break;
		}
		if (tx_one(n, c) == -EAGAIN) {
			vq_unpop(virtio_dev_queue(&n->vdev, VIRTIO_NET_TXQ));
			n->tx_blocked = true; /* resumed by the backend's EPOLLOUT */
			break;
		}
		if (virtio_dev_queue_push(&n->vdev, VIRTIO_NET_TXQ, c->head, 0) < 0)
			break;
		pushed = true;
	}
	if (pushed)
		virtio_dev_queue_signal(&n->vdev, VIRTIO_NET_TXQ);
	if (!budget)
		net_schedule(n);
}

/* ---- control queue -------------------------------------------------------------------------- */

static uint8_t ctrl_command(struct virtio_net *n, uint8_t cls, uint8_t cmd, const struct iovec *iov,
			    unsigned niov, size_t len)
{
	uint8_t b[6];
	switch (cls) {
	case VIRTIO_NET_CTRL_RX:
		if (!n->ctrl_rx || len != 1 || net_iov_read(iov, niov, 2, b, 1) != 1)
			return VIRTIO_NET_ERR;
		if (cmd == VIRTIO_NET_CTRL_RX_PROMISC)
			n->filter.promisc = b[0] != 0;
		else if (cmd == VIRTIO_NET_CTRL_RX_ALLMULTI)
			n->filter.allmulti = b[0] != 0;
		else
			return VIRTIO_NET_ERR;
		return VIRTIO_NET_OK;
	case VIRTIO_NET_CTRL_MAC:
		if (cmd == VIRTIO_NET_CTRL_MAC_TABLE_SET && n->ctrl_rx)
			return vnet_rx_filter_set_table(&n->filter, iov, niov, 2, len)
				   ? VIRTIO_NET_ERR
				   : VIRTIO_NET_OK;
		if (cmd == VIRTIO_NET_CTRL_MAC_ADDR_SET &&
		    virtio_dev_has_feature(&n->vdev, VIRTIO_NET_F_CTRL_MAC_ADDR) && len == 6 &&
		    net_iov_read(iov, niov, 2, b, 6) == 6 && net_mac_valid(b)) {
			memcpy(n->filter.mac, b, 6);
			return VIRTIO_NET_OK;
		}
		return VIRTIO_NET_ERR;
	default:
		return VIRTIO_NET_ERR;
	}
}

static void ctrl_process(struct virtio_net *n)
{
	struct vq_chain *c = &n->chain;
	bool pushed = false;
	uint8_t hdr[2];

	if (!net_queue_ready(n, VIRTIO_NET_CTRLQ))
		return;
	for (unsigned budget = VIRTIO_NET_BUDGET; budget; budget--) {
		int r = virtio_dev_queue_pop(&n->vdev, VIRTIO_NET_CTRLQ, c);
		if (r <= 0)
			break;
		if (c->out_bytes < 2 || c->num_in == 0) {
			net_halt(n, VIRTIO_NET_CTRLQ, "control command without header or ack byte");
			break;
		}
		net_iov_read(c->iov, c->num_out, 0, hdr, 2);
		uint8_t ack =
		    ctrl_command(n, hdr[0], hdr[1], c->iov, c->num_out, (size_t)(c->out_bytes - 2));
		if (ack == VIRTIO_NET_OK)
			n->stats.ctrl_ok++;
		else
			n->stats.ctrl_err++;
		net_iov_write(c->iov + c->num_out, c->num_in, 0, &ack, 1);
		if (virtio_dev_queue_push(&n->vdev, VIRTIO_NET_CTRLQ, c->head, 1) < 0)
			break;
		pushed = true;
	}
	if (pushed)
		virtio_dev_queue_signal(&n->vdev, VIRTIO_NET_CTRLQ);
}

/* ---- vhost-net ------------------------------------------------------------------------------ */

#define VHOST_RING_FEATURES                                                                        \
	(VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX) |                         \
	 VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) | F(MRG_RXBUF))

/* Hand the data rings to the kernel; false: stay in userspace. */
static bool net_vhost_start(struct virtio_net *n)
{
	struct vhost_net_ring rings[VHOST_NET_RINGS];
	uint64_t need = n->vdev.negotiated & VHOST_RING_FEATURES;

	if (!n->vhost || (need & ~vhost_net_features(n->vhost)))
		return false;
	for (unsigned i = 0; i < VHOST_NET_RINGS; i++) {
		struct virtq *vq = virtio_dev_queue(&n->vdev, i);
		if (!vq->live)
			return false;
		rings[i] = (struct vhost_net_ring){vq->size, vq->last_avail, vq->desc, vq->avail,
						   vq->used};
	}
	int r = vhost_net_start(n->vhost, n->vdev.mem, need, rings, n->be->fd);
	if (r) {
		vlog_rl("virtio-net: vhost-net start: %s; using the userspace path", strerror(-r));
		return false;
	}
	return true;
}

static void net_vhost_call_cb(void *opaque, uint32_t events)
{
	struct virtio_net *n = opaque;
	(void)events;
	for (unsigned q = 0; q < VHOST_NET_RINGS; q++) {
		uint64_t v;
		if (read(vhost_net_call_fd(n->vhost, q), &v, sizeof(v)) != sizeof(v))
			continue;
		virtio_dev_lock(&n->vdev);
		/* The kernel already decided the driver wants this interrupt. */
		if (n->vhost_on && n->vdev.tops && n->vdev.tops->interrupt)
			n->vdev.tops->interrupt(n->vdev.transport, q);
		virtio_dev_unlock(&n->vdev);
	}
}

/* ---- device ops ----------------------------------------------------------------------------- */

static unsigned net_offloads(uint64_t f, bool guest)
{
	unsigned o = 0;
	if (f & (guest ? F(GUEST_CSUM) : F(CSUM)))
		o |= NET_OFFLOAD_CSUM;
	if (f & (guest ? F(GUEST_TSO4) : F(HOST_TSO4)))
		o |= NET_OFFLOAD_TSO4;
	if (f & (guest ? F(GUEST_TSO6) : F(HOST_TSO6)))
		o |= NET_OFFLOAD_TSO6;
	if (f & (guest ? F(GUEST_ECN) : F(HOST_ECN)))
		o |= NET_OFFLOAD_ECN;
	if (f & (guest ? F(GUEST_UFO) : F(HOST_UFO)))
		o |= NET_OFFLOAD_UFO;
	return o;
}

static bool net_features_ok(struct virtio_dev *d, uint64_t f)
{
	static const struct {
		uint64_t feature, needs;
	} deps[] = {
	    {F(GUEST_TSO4) | F(GUEST_TSO6) | F(GUEST_UFO), F(GUEST_CSUM)},
	    {F(GUEST_ECN), F(GUEST_TSO4) | F(GUEST_TSO6)},
	    {F(HOST_TSO4) | F(HOST_TSO6) | F(HOST_UFO), F(CSUM)},
	    {F(HOST_ECN), F(HOST_TSO4) | F(HOST_TSO6)},
	    {F(CTRL_RX) | F(CTRL_MAC_ADDR) | F(CTRL_VLAN) | F(MQ) | F(GUEST_ANNOUNCE), F(CTRL_VQ)},
	};
	for (unsigned i = 0; i < ARRAY_SIZE(deps); i++) {
		if ((f & deps[i].feature) && !(f & deps[i].needs)) {
			vlog_rl("%s: features %#llx without their dependency %#llx", d->ops->name,
				(unsigned long long)(f & deps[i].feature),
				(unsigned long long)deps[i].needs);
			return false;
		}
	}
	return true;
}

static int net_activate(struct virtio_dev *d)
{
	struct virtio_net *n = d->opaque;
	uint64_t f = d->negotiated;

	n->mrg_rxbuf = f & F(MRG_RXBUF);
	n->ctrl_rx = f & F(CTRL_RX);
	n->guest_offloads = net_offloads(f, true);
	n->host_offloads = net_offloads(f, false);
	n->rx_need =
	    HDR + (n->guest_offloads & (NET_OFFLOAD_TSO4 | NET_OFFLOAD_TSO6 | NET_OFFLOAD_UFO)
		       ? NET_MAX_FRAME
		       : (size_t)n->be->mtu + VNET_ETH_HLEN + VLAN_HLEN);
	if (n->be->offload_caps) {
		int r = net_backend_set_offload(n->be, n->guest_offloads);
		if (r) {
			vlog_rl("virtio-net: %s: cannot set offloads %#x: %s", n->be->desc,
				n->guest_offloads, strerror(-r));
			return r;
		}
	}
	n->active = true;
	n->vhost_on = net_vhost_start(n);
	net_schedule(n); /* frames may have queued up before DRIVER_OK */
	return 0;
}

static void net_queue_notify(struct virtio_dev *d, unsigned q)
{
	struct virtio_net *n = d->opaque;
	if (n->vhost_on && q < VHOST_NET_RINGS) {
		vhost_net_kick(n->vhost, q);
		return;
	}
	switch (q) {
	case VIRTIO_NET_RXQ:
		if (n->rx_wait_bufs)
			rx_process(n);
		break;
	case VIRTIO_NET_TXQ:
		tx_process(n);
		break;
	case VIRTIO_NET_CTRLQ:
		ctrl_process(n);
		break;
	default:
		break;
	}
}

static void net_reset(struct virtio_dev *d)
{
	struct virtio_net *n = d->opaque;
	if (n->vhost_on)
		vhost_net_stop(n->vhost);
	n->vhost_on = false;
	n->active = false;
	memset(n->halted, 0, sizeof(n->halted));
	n->tx_blocked = n->rx_wait_bufs = false;
	n->mrg_rxbuf = n->ctrl_rx = false;
	n->guest_offloads = n->host_offloads = 0;
	rx_drop_held(n);
	vnet_rx_filter_reset(&n->filter, n->cfg_mac);
	if (n->be->offload_caps && net_backend_set_offload(n->be, 0) < 0)
		vlog_rl("virtio-net: %s: cannot clear offloads", n->be->desc);
}

static void net_config_read(struct virtio_dev *d, uint32_t off, void *data, unsigned len)
{
	struct virtio_net *n = d->opaque;
	uint8_t cfg[VIRTIO_NET_CFG_SIZE];
	uint16_t status = VIRTIO_NET_S_LINK_UP, pairs = 1, mtu = n->be->mtu;

	memcpy(cfg + VIRTIO_NET_CFG_MAC, n->filter.mac, 6);
	memcpy(cfg + VIRTIO_NET_CFG_STATUS, &status, 2);
	memcpy(cfg + VIRTIO_NET_CFG_MAX_VQ_PAIRS, &pairs, 2);
	memcpy(cfg + VIRTIO_NET_CFG_MTU, &mtu, 2);
	memcpy(data, cfg + off, len); /* the core checked off + len <= config_size */
}

/* ---- I/O loop callbacks --------------------------------------------------------------------- */

static void net_backend_cb(void *opaque, uint32_t events)
{
	struct virtio_net *n = opaque;
	virtio_dev_lock(&n->vdev);
	if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
		if (n->tx_blocked)
			tx_process(n);
		else /* the tail of a partly written frame (passt); -EAGAIN: next EPOLLOUT */
			(void)net_backend_flush(n->be);
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		rx_process(n);
	virtio_dev_unlock(&n->vdev);
}

static void net_kick_cb(void *opaque, uint32_t events)
{
	struct virtio_net *n = opaque;
	uint64_t v;
	(void)events;
	if (read(n->kickfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		vlog_rl("virtio-net: eventfd read: %s", strerror(errno));
	virtio_net_poll(n);
}

void virtio_net_poll(struct virtio_net *n)
{
	virtio_dev_lock(&n->vdev);
	rx_process(n);
	tx_process(n);
	virtio_dev_unlock(&n->vdev);
}

static const struct virtio_dev_ops net_ops = {
    .name = "virtio-net",
    .device_id = VIRTIO_ID_NET,
    .features = NET_BASE_FEATURES | NET_OFFLOAD_FEATURES,
    .num_queues = 3,
    .max_queue_size = VIRTIO_NET_QUEUE_SIZE,
    .config_size = VIRTIO_NET_CFG_SIZE,
    .config_read = net_config_read,
    .features_ok = net_features_ok,
    .activate = net_activate,
    .queue_notify = net_queue_notify,
    .reset = net_reset,
};

/* Offload features this backend cannot provide (taken out of the offer). */
static uint64_t net_offload_features(const struct net_backend *be)
{
	unsigned caps = be->vnet_hdr ? be->offload_caps : 0;
	uint64_t ok = 0;
	if (caps & NET_OFFLOAD_CSUM)
		ok |= F(CSUM) | F(GUEST_CSUM);
	if ((caps & NET_OFFLOAD_CSUM) && (caps & NET_OFFLOAD_TSO4))
		ok |= F(HOST_TSO4) | F(GUEST_TSO4);
	if ((caps & NET_OFFLOAD_CSUM) && (caps & NET_OFFLOAD_TSO6))
		ok |= F(HOST_TSO6) | F(GUEST_TSO6);
	if ((caps & NET_OFFLOAD_ECN) && (ok & (F(HOST_TSO4) | F(HOST_TSO6))))
		ok |= F(HOST_ECN) | F(GUEST_ECN);
	return NET_OFFLOAD_FEATURES & ~ok;
}

/* ---- lifetime ------------------------------------------------------------------------------- */

static int net_loop_attach(struct virtio_net *n)
{
	struct evloop *loop = n->plat->loop;
	int r;
	if (!loop)
		return 0;
	n->kickfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (n->kickfd < 0)
		return -errno;
	r = evloop_add(loop, n->kickfd, EPOLLIN, net_kick_cb, n);
	if (r)
		return r;
	n->kick_registered = true;
	r = evloop_add(loop, n->be->fd, EPOLLIN | EPOLLOUT | EPOLLET, net_backend_cb, n);
	if (r)
		return r;
	n->be_registered = true;
	for (unsigned q = 0; n->vhost && q < VHOST_NET_RINGS; q++) {
		r = evloop_add(loop, vhost_net_call_fd(n->vhost, q), EPOLLIN, net_vhost_call_cb, n);
		if (r)
			return r;
		n->call_registered[q] = true;
	}
	return 0;
}

static void net_loop_detach(struct virtio_net *n)
{
	struct evloop *loop = n->plat->loop;
	if (n->kick_registered && evloop_del(loop, n->kickfd) < 0)
		vwarn("virtio-net: evloop_del failed");
	if (n->be_registered && evloop_del(loop, n->be->fd) < 0)
		vwarn("virtio-net: evloop_del failed");
	for (unsigned q = 0; q < VHOST_NET_RINGS; q++)
		if (n->call_registered[q] && evloop_del(loop, vhost_net_call_fd(n->vhost, q)) < 0)
			vwarn("virtio-net: evloop_del failed");
	n->kick_registered = n->be_registered = false;
	memset(n->call_registered, 0, sizeof(n->call_registered));
}

static void net_free(struct virtio_net *n)
{
	net_loop_detach(n);
	if (n->kickfd >= 0)
		close(n->kickfd);
	vhost_net_close(n->vhost);
	free(n->bounce);
	free(n);
}

int virtio_net_create(struct virtio_net **out, const struct platform *plat, struct pci_host *host,
		      struct net_backend *be, const uint8_t mac[6])
{
	struct virtio_net *n;
	int r;

	*out = NULL;
	if (!be || !net_mac_valid(mac))
		return -EINVAL;
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->kickfd = -1;
	n->plat = plat;
	n->be = be;
	memcpy(n->cfg_mac, mac, 6);
	vnet_rx_filter_reset(&n->filter, mac);
	n->bounce = malloc(NET_MAX_FRAME);
	if (!n->bounce) {
		r = -ENOMEM;
		goto fail;
	}
	if (be->vhost_wanted && be->vnet_hdr) {
		r = vhost_net_open(&n->vhost, NULL);
		if (r)
			vwarn(
			    "virtio-net: %s: vhost-net unavailable (%s); using the userspace path",
			    be->desc, strerror(-r));
	}
	/* The backend may come from an earlier boot whose guest had offloads on. */
	if (be->offload_caps && net_backend_set_offload(be, 0) < 0)
		vwarn("virtio-net: %s: cannot clear offloads", be->desc);
	r = virtio_dev_init(&n->vdev, &net_ops, plat->mem, n);
	if (r)
		goto fail;
	n->vdev.offered &= ~net_offload_features(be); /* before any driver can look */
	r = net_loop_attach(n);
	if (r)
		goto fail_dev;
	r = virtio_pci_create(&n->pci, plat, host, &n->vdev, NET_PCI_CLASS);
	if (r)
		goto fail_dev;
	*out = n;
	return 0;
fail_dev:
	virtio_dev_fini(&n->vdev);
fail:
	net_free(n);
	return r;
}

void virtio_net_destroy(struct virtio_net *n)
{
	if (!n)
		return;
	virtio_pci_destroy(n->pci);
	if (n->vhost_on)
		vhost_net_stop(n->vhost);
	virtio_dev_fini(&n->vdev);
	net_free(n);
}

void virtio_net_get_stats(struct virtio_net *n, struct virtio_net_stats *out)
{
	virtio_dev_lock(&n->vdev);
	*out = n->stats;
	virtio_dev_unlock(&n->vdev);
}

struct virtio_dev *virtio_net_vdev(struct virtio_net *n)
{
	return &n->vdev;
}

bool virtio_net_vhost_active(struct virtio_net *n)
{
	virtio_dev_lock(&n->vdev);
	bool on = n->vhost_on;
	virtio_dev_unlock(&n->vdev);
	return on;
}
