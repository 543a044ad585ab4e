/* SPDX-License-Identifier: MIT */
/* virtio-net device: ops, queue pairs, I/O loop wiring, lifetime (see virtio_net.h). */
#include "devices/virtio/virtio_net_priv.h"
#include "devices/virtio/virtio_pci.h"
#include "common/evloop.h"
#include "common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define NET_PCI_CLASS 0x020000 /* network controller, Ethernet */
#define HDR NET_VNET_HDR_LEN
#define VLAN_HLEN 4u

#define F(b) VIRTIO_BIT(VIRTIO_NET_F_##b)
#define NET_BASE_FEATURES                                                                          \
	(F(MAC) | F(MTU) | F(STATUS) | F(MRG_RXBUF) | F(CTRL_VQ) | F(CTRL_RX) | F(CTRL_MAC_ADDR))
/* Offered only as far as the backend supports them (virtio_net_create masks the rest). */
#define NET_OFFLOAD_FEATURES                                                                       \
	(F(CSUM) | F(GUEST_CSUM) | F(HOST_TSO4) | F(HOST_TSO6) | F(HOST_ECN) | F(GUEST_TSO4) |     \
	 F(GUEST_TSO6) | F(GUEST_ECN))

_Static_assert(2 * VIRTIO_NET_MAX_PAIRS + 1 <= VIRTIO_MAX_QUEUES, "virtio-net queue count");
_Static_assert(NET_MAX_QUEUES <= VIRTIO_NET_MAX_PAIRS, "a backend's queues fit the device");

/* ---- queue pairs ---------------------------------------------------------------------------- */

void net_pairs_lock(struct virtio_net *n)
{
	for (unsigned i = 0; i < n->max_pairs; i++)
		pthread_mutex_lock(&n->pairs[i].lock);
}

void net_pairs_unlock(struct virtio_net *n)
{
	for (unsigned i = n->max_pairs; i-- > 0;)
		pthread_mutex_unlock(&n->pairs[i].lock);
}

void net_pair_schedule(struct net_pair *p)
{
	uint64_t one = 1;
	if (p->kickfd >= 0 && write(p->kickfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		vlog_rl("virtio-net: eventfd write: %s", strerror(errno));
}

/* Attach exactly the backend queues in use, so the kernel does not steer flows to a
 * queue nobody reads (a detached TAP queue gets no frames). Device lock held. */
static void net_pair_attach(struct net_pair *p, bool on)
{
	if (p->n->max_pairs == 1 || p->attached == on)
		return;
	int r = net_backend_queue_attach(p->be, on);
	if (r)
		vlog_rl("virtio-net: %s: cannot %s queue %u: %s", p->be->desc,
			on ? "attach" : "detach", p->index, strerror(-r));
	else
		p->attached = on;
}

void net_pairs_set_active(struct virtio_net *n, unsigned k)
{
	n->curr_pairs = k;
	for (unsigned i = 0; i < n->max_pairs; i++) {
		struct net_pair *p = &n->pairs[i];
		bool on = n->running && !n->vhost_on && i < k;
		net_pair_attach(p, i < k);
		if (on && !p->active)
			net_pair_schedule(p); /* frames may have queued up meanwhile */
		p->active = on;
	}
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
	unsigned guest = net_offloads(f, true);

	if (n->be->offload_caps) {
		int r = net_backend_set_offload(n->be, guest);
		if (r) {
			vlog_rl("virtio-net: %s: cannot set offloads %#x: %s", n->be->desc, guest,
				strerror(-r));
			return r;
		}
	}
	net_pairs_lock(n);
	n->mrg_rxbuf = f & F(MRG_RXBUF);
	n->ctrl_rx = f & F(CTRL_RX);
	n->mq = f & F(MQ);
	n->guest_offloads = guest;
	n->host_offloads = net_offloads(f, false);
	n->rx_need = HDR + (guest & (NET_OFFLOAD_TSO4 | NET_OFFLOAD_TSO6 | NET_OFFLOAD_UFO)
				? NET_MAX_FRAME
				: (size_t)n->be->mtu + VNET_ETH_HLEN + VLAN_HLEN);
	n->running = true;
	n->vhost_on = net_vhost_start(n);
	/* Spec 5.1.6.5.5: one pair until the driver sets more with VQ_PAIRS_SET. */
	net_pairs_set_active(n, 1);
	net_pairs_unlock(n);
	return 0;
}

/* A driver error found without the device lock (pair_driver_error) left reset_pending:
 * apply it now, under the device lock. A reset meanwhile cleared it (under every pair
 * lock), so an error of an earlier activation never marks the reset device. */
static void net_apply_reset_pending(struct virtio_net *n)
{
	if (!__atomic_load_n(&n->reset_pending, __ATOMIC_ACQUIRE))
		return;
	virtio_dev_lock(&n->vdev);
	if (__atomic_exchange_n(&n->reset_pending, 0, __ATOMIC_ACQ_REL))
		virtio_dev_set_needs_reset(&n->vdev);
	virtio_dev_unlock(&n->vdev);
}

/* Pair lock held: the data queue q of pair p was notified. */
static void net_pair_notify(struct net_pair *p, unsigned q)
{
	struct virtio_net *n = p->n;
	if (n->vhost_on && q < VHOST_NET_RINGS) {
		vhost_net_kick(n->vhost, q);
	} else if (q % 2 == 0) {
		if (p->rx_wait_bufs)
			net_rx_process(p);
	} else {
		net_tx_process(p);
	}
}

/* Device lock held, DRIVER_OK and q live: the control queue, or a data queue reached on
 * the slow path of net_queue_notify. */
static void net_queue_notify_locked(struct virtio_net *n, unsigned q)
{
	if (q == net_ctrlq(n)) {
		net_ctrl_process(n);
		return;
	}
	if (q / 2 >= n->max_pairs)
		return; /* a queue of no pair (e.g. 3..2N without MQ): never served */
	struct net_pair *p = &n->pairs[q / 2];
	pthread_mutex_lock(&p->lock);
	p->dev_locked = true;
	net_pair_notify(p, q);
	p->dev_locked = false;
	pthread_mutex_unlock(&p->lock);
}

/*
 * The driver notified queue q: called WITHOUT the device lock (notify_unlocked), for any
 * q, on the I/O thread of q's pair (or a vCPU), concurrently with other pairs, backend
 * events, status writes and resets. Why that is safe:
 * - A data queue is served under its pair's lock only. p->active, vhost_on and mq are
 *   written only with every pair lock held (net_activate, net_pairs_set_active from the
 *   control queue, net_reset). active is set after the core activated the rings
 *   (vq_activate runs before ops->activate) and cleared by net_reset before the core
 *   resets them (vq_reset runs after ops->reset): while we hold the pair lock and see
 *   active (checked again by pair_ready in the data path), the ring addresses are the
 *   current activation's and cannot change; a reset waits for the lock, and a notify that
 *   gets it after a reset sees active clear and touches no ring.
 * - Whether q is the control queue depends on mq (2 without it, 2N with it): read under
 *   the pair lock, where it is stable. The control queue needs device state, so it takes
 *   the device lock (before any pair lock) and checks DRIVER_OK and liveness as the
 *   core's locked path does; so does a queue of no pair.
 * - A driver error on the data path cannot set NEEDS_RESET under the pair lock alone
 *   (pair_driver_error without dev_locked): it leaves reset_pending, applied after the
 *   pair lock is dropped (net_apply_reset_pending).
 */
static void net_queue_notify(struct virtio_dev *d, unsigned q)
{
	struct virtio_net *n = d->opaque;

	if (q / 2 < n->max_pairs) {
		struct net_pair *p = &n->pairs[q / 2];
		pthread_mutex_lock(&p->lock);
		bool data = q != net_ctrlq(n);
		if (data)
			net_pair_notify(p, q);
		pthread_mutex_unlock(&p->lock);
		if (data) {
			net_apply_reset_pending(n);
			return;
		}
	}
	virtio_dev_lock(d);
	if (virtio_dev_queue_ready(d, q))
		net_queue_notify_locked(n, q);
	virtio_dev_unlock(d);
}

/* Pair i's queues (2i, 2i + 1) share its I/O thread with its backend fd; the control queue
 * (2N with MQ) goes with pair 0. Without MQ the control queue is 2, i.e. pair 1's group
 * when there are several pairs; it takes the device lock wherever it runs. */
static unsigned net_queue_group(const struct virtio_dev *d, unsigned q)
{
	unsigned pairs = (d->num_queues - 1) / 2;
	return q / 2 < pairs ? q / 2 : 0;
}

static void net_reset(struct virtio_dev *d)
{
	struct virtio_net *n = d->opaque;
	if (n->vhost_on)
		vhost_net_stop(n->vhost);
	net_pairs_lock(n);
	n->vhost_on = false;
	n->running = false;
	n->mq = false;
	n->ctrl_halted = false;
	n->mrg_rxbuf = n->ctrl_rx = false;
	n->guest_offloads = n->host_offloads = 0;
	vnet_rx_filter_reset(&n->filter, n->cfg_mac);
	for (unsigned i = 0; i < n->max_pairs; i++) {
		struct net_pair *p = &n->pairs[i];
		memset(p->halted, 0, sizeof(p->halted));
		p->tx_blocked = p->rx_wait_bufs = false;
		net_rx_drop_held(p);
	}
	net_pairs_set_active(n, 1); /* nothing active: not running */
	__atomic_store_n(&n->reset_pending, 0, __ATOMIC_RELEASE);
	net_pairs_unlock(n);
	if (n->be->offload_caps && net_backend_set_offload(n->be, 0) < 0)
		vlog_rl("virtio-net: %s: cannot clear offloads", n->be->desc);
}

static void net_config_read(struct virtio_dev *d, uint32_t off, void *data, unsigned len)
{
	struct virtio_net *n = d->opaque;
	uint8_t cfg[VIRTIO_NET_CFG_SIZE];
	uint16_t status = VIRTIO_NET_S_LINK_UP, pairs = (uint16_t)n->max_pairs, mtu = n->be->mtu;

	memcpy(cfg + VIRTIO_NET_CFG_MAC, n->filter.mac, 6);
	memcpy(cfg + VIRTIO_NET_CFG_STATUS, &status, 2);
	memcpy(cfg + VIRTIO_NET_CFG_MAX_VQ_PAIRS, &pairs, 2);
	memcpy(cfg + VIRTIO_NET_CFG_MTU, &mtu, 2);
	memcpy(data, cfg + off, len); /* the core checked off + len <= config_size */
}

static const struct virtio_dev_ops net_ops = {
    .name = "virtio-net",
    .device_id = VIRTIO_ID_NET,
    .features = NET_BASE_FEATURES | NET_OFFLOAD_FEATURES,
    .num_queues = 3, /* virtio_net_create: 2 * pairs + 1 */
    .max_queue_size = VIRTIO_NET_QUEUE_SIZE,
    .config_size = VIRTIO_NET_CFG_SIZE,
    .config_read = net_config_read,
    .features_ok = net_features_ok,
    .activate = net_activate,
    .queue_notify = net_queue_notify,
    .reset = net_reset,
    .queue_group = net_queue_group,
    .notify_unlocked = true,
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

/* ---- I/O loop callbacks --------------------------------------------------------------------- */

/* Backend readiness of one pair: the pair lock only. */
static void net_backend_cb(void *opaque, uint32_t events)
{
	struct net_pair *p = opaque;
	pthread_mutex_lock(&p->lock);
	if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
		if (p->tx_blocked)
			net_tx_process(p);
		else /* the tail of a partly written frame (passt); -EAGAIN: next EPOLLOUT */
			(void)net_backend_flush(p->be);
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		net_rx_process(p);
	pthread_mutex_unlock(&p->lock);
}

static void net_kick_cb(void *opaque, uint32_t events)
{
	struct net_pair *p = opaque;
	struct virtio_net *n = p->n;
	uint64_t v;
	(void)events;
	if (read(p->kickfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		vlog_rl("virtio-net: eventfd read: %s", strerror(errno));
	net_apply_reset_pending(n);
	pthread_mutex_lock(&p->lock);
	net_rx_process(p);
	net_tx_process(p);
	pthread_mutex_unlock(&p->lock);
}

void virtio_net_poll(struct virtio_net *n)
{
	virtio_dev_lock(&n->vdev);
	for (unsigned i = 0; i < n->max_pairs; i++) {
		struct net_pair *p = &n->pairs[i];
		pthread_mutex_lock(&p->lock);
		p->dev_locked = true;
		net_rx_process(p);
		net_tx_process(p);
		p->dev_locked = false;
		pthread_mutex_unlock(&p->lock);
	}
	virtio_dev_unlock(&n->vdev);
}

/* ---- lifetime ------------------------------------------------------------------------------- */

/* Pair i's fds go on the loop of its queues (virtio_dev_bind_loops), so its notifications,
 * backend readiness and rescheduled work run on one thread. vhost calls: the main loop. */
static struct evloop *net_pair_loop(struct virtio_net *n, unsigned i)
{
	return virtio_dev_queue_loop(&n->vdev, net_rxq(i));
}

static int net_loop_attach(struct virtio_net *n)
{
	struct evloop *loop = n->plat->loop;
	int r;
	if (!loop)
		return 0;
	r = virtio_dev_bind_loops(&n->vdev, n->plat);
	if (r)
		return r;
	for (unsigned i = 0; i < n->max_pairs; i++) {
		struct net_pair *p = &n->pairs[i];
		struct evloop *pl = net_pair_loop(n, i);
		p->kickfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (p->kickfd < 0)
			return -errno;
		r = evloop_add(pl, p->kickfd, EPOLLIN, net_kick_cb, p);
		if (r)
			return r;
		p->kick_registered = true;
		r = evloop_add(pl, p->be->fd, EPOLLIN | EPOLLOUT | EPOLLET, net_backend_cb, p);
		if (r)
			return r;
		p->be_registered = true;
	}
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
	for (unsigned i = 0; n->pairs && i < n->max_pairs; i++) {
		struct net_pair *p = &n->pairs[i];
		struct evloop *pl = net_pair_loop(n, i);
		if (p->kick_registered && evloop_del(pl, p->kickfd) < 0)
			vwarn("virtio-net: evloop_del failed");
		if (p->be_registered && evloop_del(pl, p->be->fd) < 0)
			vwarn("virtio-net: evloop_del failed");
		p->kick_registered = p->be_registered = false;
	}
	for (unsigned q = 0; q < VHOST_NET_RINGS; q++)
		if (n->call_registered[q] && evloop_del(loop, vhost_net_call_fd(n->vhost, q)) < 0)
			vwarn("virtio-net: evloop_del failed");
	memset(n->call_registered, 0, sizeof(n->call_registered));
}

static void net_free(struct virtio_net *n)
{
	net_loop_detach(n);
	for (unsigned i = 0; n->pairs && i < n->max_pairs; i++) {
		struct net_pair *p = &n->pairs[i];
		if (p->kickfd >= 0)
			close(p->kickfd);
		free(p->bounce);
		pthread_mutex_destroy(&p->lock);
	}
	free(n->pairs);
	vhost_net_close(n->vhost);
	free(n->ctrl_chain);
	free(n);
}

static int net_pairs_init(struct virtio_net *n)
{
	n->pairs = calloc(n->max_pairs, sizeof(*n->pairs));
	if (!n->pairs)
		return -ENOMEM;
	for (unsigned i = 0; i < n->max_pairs; i++) {
		struct net_pair *p = &n->pairs[i];
		p->kickfd = -1;
		p->n = n;
		p->index = i;
		p->be = net_backend_queue(n->be, i);
		p->attached = true; /* a backend opens with all its queues attached */
		pthread_mutex_init(&p->lock, NULL);
		p->bounce = malloc(NET_MAX_FRAME);
		if (!p->bounce)
			return -ENOMEM;
	}
	return 0;
}

int virtio_net_create(struct virtio_net **out, const struct platform *plat, struct pci_host *host,
		      struct net_backend *be, const uint8_t mac[6])
{
	struct virtio_net *n;
	int r;

	*out = NULL;
	if (!be || !net_mac_valid(mac))
		return -EINVAL;
	if (net_backend_nr_queues(be) > VIRTIO_NET_MAX_PAIRS) {
		verr("virtio-net: %s: %u queue pairs, at most %u", be->desc,
		     net_backend_nr_queues(be), VIRTIO_NET_MAX_PAIRS);
		return -EINVAL;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->plat = plat;
	n->be = be;
	n->max_pairs = net_backend_nr_queues(be);
	memcpy(n->cfg_mac, mac, 6);
	vnet_rx_filter_reset(&n->filter, mac);
	n->ctrl_chain = malloc(sizeof(*n->ctrl_chain));
	r = n->ctrl_chain ? net_pairs_init(n) : -ENOMEM;
	if (r)
		goto fail;
	n->ops = net_ops;
	n->ops.num_queues = 2 * n->max_pairs + 1;
	if (n->max_pairs > 1)
		n->ops.features |= F(MQ);
	if (be->vhost_wanted && be->vnet_hdr && n->max_pairs > 1) {
		vwarn("virtio-net: %s: vhost-net serves one queue pair; using the userspace path",
		      be->desc);
	} else if (be->vhost_wanted && be->vnet_hdr) {
		r = vhost_net_open(&n->vhost, NULL);
		if (r)
			vwarn(
			    "virtio-net: %s: vhost-net unavailable (%s); using the userspace path",
			    be->desc, strerror(-r));
	}
	/* The backend may come from an earlier boot whose guest had offloads on. */
	if (be->offload_caps && net_backend_set_offload(be, 0) < 0)
		vwarn("virtio-net: %s: cannot clear offloads", be->desc);
	r = virtio_dev_init(&n->vdev, &n->ops, plat->mem, n);
	if (r)
		goto fail;
	n->vdev.offered &= ~net_offload_features(be); /* before any driver can look */
	/* Until the driver asks for more pairs, frames go to queue 0. */
	for (unsigned i = 1; i < n->max_pairs; i++)
		net_pair_attach(&n->pairs[i], false);
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

static void stats_add(struct virtio_net_stats *s, const struct virtio_net_stats *a)
{
	s->rx_packets += a->rx_packets;
	s->rx_bytes += a->rx_bytes;
	s->rx_dropped += a->rx_dropped;
	s->rx_errors += a->rx_errors;
	s->tx_packets += a->tx_packets;
	s->tx_bytes += a->tx_bytes;
	s->tx_dropped += a->tx_dropped;
	s->tx_errors += a->tx_errors;
}

void virtio_net_get_stats(struct virtio_net *n, struct virtio_net_stats *out)
{
	memset(out, 0, sizeof(*out));
	virtio_dev_lock(&n->vdev);
	out->ctrl_ok = n->ctrl_ok;
	out->ctrl_err = n->ctrl_err;
	for (unsigned i = 0; i < n->max_pairs; i++) {
		pthread_mutex_lock(&n->pairs[i].lock);
		stats_add(out, &n->pairs[i].stats);
		pthread_mutex_unlock(&n->pairs[i].lock);
	}
	virtio_dev_unlock(&n->vdev);
}

int virtio_net_get_pair_stats(struct virtio_net *n, unsigned pair, struct virtio_net_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (pair >= n->max_pairs)
		return -EINVAL;
	pthread_mutex_lock(&n->pairs[pair].lock);
	*out = n->pairs[pair].stats;
	pthread_mutex_unlock(&n->pairs[pair].lock);
	return 0;
}

unsigned virtio_net_pairs(struct virtio_net *n, unsigned *max_pairs)
{
	virtio_dev_lock(&n->vdev);
	unsigned k = n->running ? n->curr_pairs : 0;
	virtio_dev_unlock(&n->vdev);
	if (max_pairs)
		*max_pairs = n->max_pairs;
	return k;
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
