/* SPDX-License-Identifier: MIT */
/*
 * virtio-net internals shared by virtio_net.c (device ops, lifetime, I/O loop),
 * virtio_net_rxtx.c (the per-queue-pair data path) and virtio_net_ctrl.c (control queue).
 * Not for use outside these three files.
 *
 * Locks: the virtio_dev lock (device-wide) and one lock per queue pair. Order: device lock
 * -> pair locks in index order -> the transport's inner locks. The data path of a pair runs
 * under its pair lock only (dev_locked false) when it starts from the pair's own fds
 * (backend readiness, the pair's reschedule eventfd) or from a queue notification (the
 * core calls queue_notify without the device lock: see net_queue_notify); only
 * virtio_net_poll and the slow path for a queue that may be the control queue hold the
 * device lock too (dev_locked true). Settings every pair reads (offloads, receive
 * filter, mrg_rxbuf, ...) are written with the device lock and every pair lock held, so a
 * pair may read them with its own lock alone.
 */
#ifndef VIREO_DEVICES_VIRTIO_VIRTIO_NET_PRIV_H
#define VIREO_DEVICES_VIRTIO_VIRTIO_NET_PRIV_H

#include "devices/virtio/virtio.h"
#include "devices/virtio/virtio_net.h"
#include "net/net.h"
#include "net/vhost_net.h"
#include "net/vnet.h"

#include <pthread.h>

#define NET_RX_POOL_IOV (2 * VQ_MAX_IOV)

/* A receive chain popped and kept until a frame fills it; its iovecs live in the pool. */
struct net_rx_held {
	uint16_t head;
	uint32_t first, niov; /* pool[first .. first + niov) */
	uint64_t cap;	      /* writable bytes */
};

/* Queue pair i: receive queue 2i, transmit queue 2i + 1, backend queue i. */
struct net_pair {
	struct virtio_net *n;
	unsigned index;
	struct net_backend *be; /* net_backend_queue(n->be, index) */
	pthread_mutex_t lock;
	int kickfd; /* eventfd: rescheduled work of this pair on the I/O loop */
	bool kick_registered, be_registered;
	bool attached; /* backend queue attached (device lock) */

	/* Protected by the pair lock. */
	bool active;	   /* DRIVER_OK, not served by vhost, and index < the pairs in use */
	bool dev_locked;   /* the current caller also holds the device lock */
	bool halted[2];	   /* [0] receive, [1] transmit: a driver error stopped it until reset */
	bool tx_blocked;   /* the backend would block: retry on EPOLLOUT */
	bool rx_wait_bufs; /* no receive buffers: retry on the receive notification */
	struct virtio_net_stats stats;
	unsigned n_held, pool_used;
	uint64_t held_cap;
	struct net_rx_held held[VIRTIO_NET_QUEUE_SIZE];
	struct iovec pool[NET_RX_POOL_IOV];
	struct iovec iov[VQ_MAX_IOV + 1]; /* scratch for building recv/send vectors */
	uint8_t *bounce;		  /* linearised frame when a chain has too many iovecs */
	struct vq_chain chain;
};

struct virtio_net {
	struct virtio_dev vdev;
	struct virtio_dev_ops ops; /* net_ops with this device's queue count and MQ bit */
	struct virtio_pci *pci;
	const struct platform *plat;
	struct net_backend *be; /* queue 0; the others through net_backend_queue() */
	uint8_t cfg_mac[6];	/* as created; the driver may change the live one */
	unsigned max_pairs;	/* 1..VIRTIO_NET_MAX_PAIRS, fixed */
	int reset_pending;	/* atomic: a pair found a driver error without the device lock */

	/* Device lock. */
	bool running;	     /* activated (DRIVER_OK) until reset */
	bool mq;	     /* VIRTIO_NET_F_MQ negotiated */
	unsigned curr_pairs; /* pairs in use (VQ_PAIRS_SET), 1 until the driver asks */
	bool ctrl_halted;
	uint64_t ctrl_ok, ctrl_err;
	struct vq_chain *ctrl_chain;

	/* Device lock and every pair lock to write; either to read. */
	bool mrg_rxbuf, ctrl_rx;
	unsigned guest_offloads, host_offloads;
	size_t rx_need; /* bytes (with header) the largest expected frame needs */
	struct vnet_rx_filter filter;

	/* vhost-net (one queue pair only). */
	struct vhost_net *vhost;
	bool vhost_on;
	bool call_registered[VHOST_NET_RINGS];

	struct net_pair *pairs; /* [max_pairs] */
};

static inline unsigned net_rxq(unsigned pair)
{
	return 2 * pair;
}
static inline unsigned net_txq(unsigned pair)
{
	return 2 * pair + 1;
}
/* The control queue follows the last pair with MQ negotiated, else it is queue 2. */
static inline unsigned net_ctrlq(const struct virtio_net *n)
{
	return n->mq ? 2 * n->max_pairs : VIRTIO_NET_CTRLQ;
}

void net_pairs_lock(struct virtio_net *n);
void net_pairs_unlock(struct virtio_net *n);
/* Device lock and all pair locks held: pairs [0, k) active (if running), the rest idle;
 * backend queues attached to match. */
void net_pairs_set_active(struct virtio_net *n, unsigned k);
/* Queue the pair's work on the I/O loop. */
void net_pair_schedule(struct net_pair *p);

/* Data path (virtio_net_rxtx.c); pair lock held. */
void net_rx_process(struct net_pair *p);
void net_tx_process(struct net_pair *p);
void net_rx_drop_held(struct net_pair *p);

/* Control queue (virtio_net_ctrl.c); device lock held. */
void net_ctrl_process(struct virtio_net *n);

#endif
