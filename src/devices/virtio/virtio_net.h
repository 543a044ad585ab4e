/* SPDX-License-Identifier: MIT */
/*
 * virtio-net (virtio id 1). Frames go to and come from a struct net_backend (net/net.h),
 * which the device borrows: the backend outlives guest reboots, the device does not.
 *
 * Queues: N = net_backend_nr_queues(be) queue pairs (1..VIRTIO_NET_MAX_PAIRS); pair i has
 * receive queue 2i and transmit queue 2i + 1 and is served by backend queue i (its own
 * fd); the control queue is 2N (2 when the driver did not negotiate MQ). The device has
 * 2N + 1 queues and the transport gives each its own MSI-X vector if the driver wants.
 * With N > 1 it offers VIRTIO_NET_F_MQ and max_virtqueue_pairs = N. After DRIVER_OK only
 * pair 0 is used until the driver sends VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET k: k must be
 * 1..N with every queue of pairs [0, k) set up, else the command fails (VIRTIO_NET_ERR)
 * and nothing changes. Backend queues of unused pairs are detached (TUNSETQUEUE), so the
 * host steers no flow to them; a reset goes back to one pair.
 *
 * Features offered: MAC, MTU, STATUS (link always up), MRG_RXBUF, CTRL_VQ, CTRL_RX
 * (promiscuous / all-multicast / MAC table), CTRL_MAC_ADDR; and, only when the backend
 * carries the virtio-net header and the kernel accepts them (TAP): CSUM, GUEST_CSUM,
 * HOST_TSO4/6, HOST_ECN, GUEST_TSO4/6, GUEST_ECN. The guest's receive offloads are applied
 * to the backend at DRIVER_OK (TUNSETOFFLOAD) and cleared at reset.
 *
 * Data path, per queue pair, on the pair's I/O thread (one thread for everything by
 * default; with --io-threads each pair's notifications, backend fd and rescheduled work
 * are on one of the machine's device I/O threads, round robin), or a vCPU thread when a
 * notification is not an ioeventfd. Locking (virtio_net_priv.h): each pair has its own
 * lock; queue notifications (the core's unlocked notify, virtio.h), backend readiness and
 * rescheduled work take only that lock, so pairs share no lock on the hot path; only the
 * control queue takes the device lock. Interrupts are raised once per batch, from a pair's own context
 * through the transport's interrupt op without the device lock (virtio-pci's only needs
 * its pci_dev lock; a transport that needs more must say so).
 * - RX: on backend readiness, pop receive chains and read frames straight into them (TAP:
 *   readv into the guest's buffers). With MRG_RXBUF several chains are gathered for one
 *   frame and num_buffers is set; without it each frame takes one chain. When the driver
 *   has no buffers the device stops reading and resumes on the receive queue's
 *   notification. With MRG_RXBUF it also waits until the buffers it holds can take a
 *   largest frame (MTU + 18 bytes, or 65550 with guest TSO), unless the whole ring is
 *   held. A frame that does not fit, that the receive filter rejects, or whose header the
 *   guest could not handle is dropped (rx_dropped).
 * - TX: on notification, pop chains and write each frame to the backend; a backend that
 *   would block is retried when its fd becomes writable.
 * - At most VIRTIO_NET_BUDGET frames per queue per wakeup; the rest is rescheduled through
 *   the pair's eventfd on the I/O loop, so one busy queue cannot starve other devices.
 *
 * Validation: a receive chain with device-readable buffers or less than 12 writable bytes,
 * a transmit chain with writable buffers or less than 12 readable bytes (no header), a
 * control chain without a 2-byte command or a writable ack byte: the queue stops and the
 * device sets NEEDS_RESET. A transmit frame over 65550 bytes (without header), under 14
 * bytes, or with a header using offloads that were not negotiated (vnet.h) is dropped and
 * completed (tx_dropped).
 *
 * Control commands: CTRL_RX (promiscuous, all-multicast), CTRL_MAC (table, address),
 * CTRL_MQ (VQ_PAIRS_SET). Anything else, a wrong payload length, or a class whose feature
 * was not negotiated is answered with VIRTIO_NET_ERR.
 *
 * vhost-net (net config vhost=on, one queue pair only): if /dev/vhost-net exists and
 * accepts the setup, the kernel serves the RX/TX rings of a TAP backend and the device
 * keeps only the control queue (the receive filter is then not applied). Otherwise the
 * userspace path is used.
 *
 * Lifetime: as virtio_rng.h. The backend must stay open until virtio_net_destroy().
 */
#ifndef VIREO_DEVICES_VIRTIO_VIRTIO_NET_H
#define VIREO_DEVICES_VIRTIO_VIRTIO_NET_H

#include "common/compiler.h"
#include "bus/platform.h"

struct pci_host;
struct virtio_net;
struct virtio_dev;
struct net_backend;

#define VIRTIO_NET_QUEUE_SIZE 256
#define VIRTIO_NET_BUDGET 256 /* frames per queue per wakeup */
#define VIRTIO_NET_RXQ 0
#define VIRTIO_NET_TXQ 1
#define VIRTIO_NET_CTRLQ 2 /* without MQ */
#define VIRTIO_NET_MAX_PAIRS 16u

/* Feature bits (virtio 1.x, 5.1.3). */
#define VIRTIO_NET_F_CSUM 0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MTU 3
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_GUEST_ECN 9
#define VIRTIO_NET_F_GUEST_UFO 10
#define VIRTIO_NET_F_HOST_TSO4 11
#define VIRTIO_NET_F_HOST_TSO6 12
#define VIRTIO_NET_F_HOST_ECN 13
#define VIRTIO_NET_F_HOST_UFO 14
#define VIRTIO_NET_F_MRG_RXBUF 15
#define VIRTIO_NET_F_STATUS 16
#define VIRTIO_NET_F_CTRL_VQ 17
#define VIRTIO_NET_F_CTRL_RX 18
#define VIRTIO_NET_F_CTRL_VLAN 19
#define VIRTIO_NET_F_GUEST_ANNOUNCE 21
#define VIRTIO_NET_F_MQ 22
#define VIRTIO_NET_F_CTRL_MAC_ADDR 23

/* Device configuration layout (the first 12 bytes of struct virtio_net_config). */
#define VIRTIO_NET_CFG_MAC 0
#define VIRTIO_NET_CFG_STATUS 6
#define VIRTIO_NET_CFG_MAX_VQ_PAIRS 8
#define VIRTIO_NET_CFG_MTU 10
#define VIRTIO_NET_CFG_SIZE 12
#define VIRTIO_NET_S_LINK_UP 1

/* Control queue. */
#define VIRTIO_NET_OK 0
#define VIRTIO_NET_ERR 1
#define VIRTIO_NET_CTRL_RX 0
#define VIRTIO_NET_CTRL_RX_PROMISC 0
#define VIRTIO_NET_CTRL_RX_ALLMULTI 1
#define VIRTIO_NET_CTRL_MAC 1
#define VIRTIO_NET_CTRL_MAC_TABLE_SET 0
#define VIRTIO_NET_CTRL_MAC_ADDR_SET 1
#define VIRTIO_NET_CTRL_MQ 4
#define VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET 0

struct virtio_net_stats {
	uint64_t rx_packets, rx_bytes; /* delivered to the guest (bytes without header) */
	uint64_t rx_dropped;	       /* did not fit, filtered, or unusable header */
	uint64_t rx_errors;	       /* backend receive errors */
	uint64_t tx_packets, tx_bytes; /* taken by the backend */
	uint64_t tx_dropped;	       /* invalid frames from the guest */
	uint64_t tx_errors;	       /* the backend refused a frame */
	uint64_t ctrl_ok, ctrl_err;    /* control commands */
};

/* mac: the NIC's address (e.g. from net_mac_default). be: borrowed, must outlive the device. */
int virtio_net_create(struct virtio_net **out, const struct platform *plat, struct pci_host *host,
		      struct net_backend *be, const uint8_t mac[6]) WUR;
void virtio_net_destroy(struct virtio_net *n);
/* Totals over all queue pairs. */
void virtio_net_get_stats(struct virtio_net *n, struct virtio_net_stats *out);
/* One pair's data counters (ctrl_* are 0); -EINVAL if pair >= the device's pairs. */
int virtio_net_get_pair_stats(struct virtio_net *n, unsigned pair,
			      struct virtio_net_stats *out) WUR;
/* Queue pairs in use (0 before DRIVER_OK); *max_pairs (if not NULL) gets the device's. */
unsigned virtio_net_pairs(struct virtio_net *n, unsigned *max_pairs);
/* The generic virtio device inside (tests, status reporting). */
struct virtio_dev *virtio_net_vdev(struct virtio_net *n);
/* Run receive and transmit work now. Only needed where plat->loop is NULL (unit tests). */
void virtio_net_poll(struct virtio_net *n);
/* True while vhost-net serves the data queues (tests, status reporting). */
bool virtio_net_vhost_active(struct virtio_net *n);

#endif
