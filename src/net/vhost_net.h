/* SPDX-License-Identifier: MIT */
/*
 * Optional in-kernel data path for virtio-net over a TAP (/dev/vhost-net). Vireo's
 * virtio-net device hands the receive and transmit rings to the kernel after DRIVER_OK and
 * takes them back at reset; the control queue stays in userspace.
 *
 * Wiring: the kernel is kicked through one eventfd per ring (the device writes it when the
 * transport reports the guest's notification) and signals used buffers through one
 * eventfd per ring (the device watches it on the I/O loop and raises the queue's
 * interrupt; the kernel already applied EVENT_IDX / NO_INTERRUPT suppression).
 *
 * vhost_net_open() fails with -ENOENT when /dev/vhost-net is absent (callers then use the
 * userspace path). Not thread-safe: the device serialises calls with its lock.
 *
 * Status: the ioctl sequence is not exercised by the unit tests on machines without
 * /dev/vhost-net; only vhost_net_mem_table() and the feature mask are.
 */
#ifndef VIREO_NET_VHOST_NET_H
#define VIREO_NET_VHOST_NET_H

#include "common/compiler.h"

struct gmem;
struct vhost_net;

#define VHOST_NET_RINGS 2 /* 0 receive, 1 transmit */
#define VHOST_NET_MAX_REGIONS 8

struct vhost_net_ring {
	uint16_t size;
	uint16_t base;		   /* first avail index the kernel serves (0 after activation) */
	void *desc, *avail, *used; /* host addresses of the three areas */
};

struct vhost_net_region {
	uint64_t gpa, size, hva;
};

int vhost_net_open(struct vhost_net **out, const char *path) WUR; /* path NULL: /dev/vhost-net */
void vhost_net_close(struct vhost_net *v);
/* Virtio feature bits the kernel serves (VHOST_GET_FEATURES). */
uint64_t vhost_net_features(const struct vhost_net *v);
/* eventfds: the device writes kick(ring) on guest notifications and polls call(ring). */
int vhost_net_kick_fd(const struct vhost_net *v, unsigned ring);
int vhost_net_call_fd(const struct vhost_net *v, unsigned ring);
void vhost_net_kick(struct vhost_net *v, unsigned ring);
/* Start serving rings on tap_fd with the negotiated features (masked to what the kernel
 * serves by the caller). On failure everything is undone and the userspace path may run. */
int vhost_net_start(struct vhost_net *v, const struct gmem *mem, uint64_t features,
		    const struct vhost_net_ring rings[VHOST_NET_RINGS], int tap_fd) WUR;
/* Detach from the TAP and stop using guest memory. Idempotent. */
void vhost_net_stop(struct vhost_net *v);
bool vhost_net_running(const struct vhost_net *v);

/* The memory table the kernel gets: one entry per guest RAM region. Returns the count or
 * -E2BIG. Exposed for unit tests. */
int vhost_net_mem_table(const struct gmem *mem, struct vhost_net_region *out, unsigned max) WUR;

#endif
