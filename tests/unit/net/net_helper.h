/* SPDX-License-Identifier: MIT */
/*
 * Harness for virtio-net device tests: a scripted fake backend (frames to deliver are
 * queued in memory, sent frames are recorded, readiness is an eventfd the test pokes),
 * a virtio-net on the fake platform with a real I/O loop (run by the test, on its own
 * thread), and a guest-side driver built on the virtio test helpers.
 */
#ifndef VIREO_TESTS_NET_HELPER_H
#define VIREO_TESTS_NET_HELPER_H

#include "fake_platform.h"
#include "vq_helper.h"
#include "vpci_helper.h"
#include "bus/pci/pci.h"
#include "common/evloop.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtio_net.h"
#include "net/net.h"
#include "net/vnet.h"

#define FB_MAX 512
#define NET_PCI_ID 0x1041
#define QSIZE 64
#define RXQ_GPA 0x10000ULL
#define TXQ_GPA 0x20000ULL
#define CQ_GPA 0x30000ULL
#define BUF_GPA 0x100000ULL /* guest buffers from here on */
#define RAM_SIZE (16ULL << 20)

struct fb_frame {
	size_t len;
	uint8_t *data;
};

struct fake_be {
	struct net_backend be;
	struct fb_frame rx[FB_MAX]; /* frames the "host" delivers, in order */
	unsigned rx_head, rx_tail;
	struct fb_frame tx[FB_MAX]; /* frames the device sent */
	unsigned ntx;
	int send_ret;	   /* non-zero: send() returns this (e.g. -EAGAIN) */
	unsigned offloads; /* last set_offload() */
	unsigned offload_calls;
	unsigned recv_calls;
	unsigned flush_calls; /* flush(): returns flush_ret */
	int flush_ret;
	bool attached;	       /* multiqueue: queue_attach() state (starts attached) */
	unsigned attach_calls; /* queue_attach() calls */
};

#define NX_MAX_PAIRS 16
#define MQ_GPA 0x50000ULL /* pair i >= 1: rx at MQ_GPA + i * 0x4000, tx 0x2000 above */

struct nx {
	struct fake_platform fp;
	struct pci_host host;
	struct evloop loop;
	struct fake_be fb;
	struct virtio_net *net;
	struct tpci p;
	struct tvq rx, tx, cq;
	uint64_t features;
	uint8_t mac[6];
	/* Multiqueue (nx_new_mq): backend queue i and the rings of pair i (0 = fb, rx, tx). */
	unsigned pairs;
	struct fake_be *qfb[NX_MAX_PAIRS];
	struct net_backend *qbe[NX_MAX_PAIRS];
	struct tvq qrx[NX_MAX_PAIRS], qtx[NX_MAX_PAIRS];
};

/* Fake backend with or without the virtio-net header, offload caps as given. */
struct nx *nx_new(bool vnet_hdr, unsigned offload_caps);
/* Same, with the backend asking for vhost-net. */
struct nx *nx_new_vhost(bool vnet_hdr, unsigned offload_caps);
/* A backend with `pairs` queues (the fake of a multiqueue TAP). */
struct nx *nx_new_mq(unsigned pairs, bool vnet_hdr, unsigned offload_caps);
void nx_free(struct nx *x);
/* Guest: as nx_driver_up, but sets up the rings of the first `setup` pairs (vectors
 * 1 + queue index) and the control queue at 2 * pairs when MQ is negotiated. */
bool nx_driver_up_mq(struct nx *x, uint64_t want, unsigned setup);
/* Backend queue q: queue a frame for the guest and signal readiness. */
void nx_host_send_q(struct nx *x, unsigned q, const void *frame, size_t len);
/* Guest: receive buffer / transmit chain on pair q (as nx_post_rx / nx_post_tx). */
void nx_post_rx_q(struct nx *x, unsigned q, uint16_t head, uint64_t gpa, uint32_t len);
void nx_post_tx_q(struct nx *x, unsigned q, uint16_t head, uint64_t gpa,
		  const struct virtio_net_hdr_v1 *h, const void *frame, size_t len);
/* The control queue's index as the driver sees it. */
unsigned nx_ctrlq(const struct nx *x);
/* Guest: negotiate (VERSION_1 | want, masked by the offer), set up rx/tx (+ctrl if
 * CTRL_VQ) on MSI-X vectors 1/2/3, DRIVER_OK. Returns false if FEATURES_OK was refused. */
bool nx_driver_up(struct nx *x, uint64_t want);
/* Dispatch I/O loop events until none is pending. */
void nx_run(struct nx *x);
/* Backend side: queue a frame for the guest and signal readiness. */
void nx_host_send(struct nx *x, const void *frame, size_t len);
/* Make a frame: dst MAC, src MAC, ethertype, then `len - 14` payload bytes seeded by seed. */
size_t nx_frame(uint8_t *buf, size_t len, const uint8_t dst[6], uint8_t seed);
/* Guest: post a writable receive buffer of len bytes at gpa as descriptor/head `head`. */
void nx_post_rx(struct nx *x, uint16_t head, uint64_t gpa, uint32_t len);
/* Guest: queue a transmit chain of header + frame at gpa, split into `pieces` descriptors. */
void nx_post_tx(struct nx *x, uint16_t head, uint64_t gpa, const struct virtio_net_hdr_v1 *h,
		const void *frame, size_t len, unsigned pieces);
struct virtio_net_stats nx_stats(struct nx *x);
bool nx_needs_reset(struct nx *x);
/* Control command: class, cmd, data; returns the ack byte (0xee if not completed). */
uint8_t nx_ctrl(struct nx *x, uint8_t cls, uint8_t cmd, const void *data, size_t len);

#endif
