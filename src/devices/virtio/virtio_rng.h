/* SPDX-License-Identifier: MIT */
/*
 * virtio-rng (entropy device, virtio id 4): one request queue; each request's writable
 * buffers are filled from the host's getrandom() and completed with the number of bytes
 * written. At most VIRTIO_RNG_MAX_REQ bytes are produced per request, whatever size the
 * guest offers. Readable buffers in a request are ignored.
 *
 * virtio_rng_create() builds the device, wraps it in the virtio-pci transport and adds it
 * to the PCI host. Destroy it only after the I/O loop stopped and the PCI host was
 * finalised (see virtio_pci.h). Statistics may be read from any thread.
 */
#ifndef VIREO_DEVICES_VIRTIO_VIRTIO_RNG_H
#define VIREO_DEVICES_VIRTIO_VIRTIO_RNG_H

#include "common/compiler.h"
#include "bus/platform.h"

struct pci_host;
struct virtio_rng;
struct virtio_dev;

#define VIRTIO_RNG_MAX_REQ (64u * 1024) /* bytes per request */
#define VIRTIO_RNG_QUEUE_SIZE 256

struct virtio_rng_stats {
	uint64_t requests; /* completed requests */
	uint64_t bytes;	   /* random bytes handed to the guest */
	uint64_t errors;   /* requests without writable space, or getrandom failures */
};

int virtio_rng_create(struct virtio_rng **out, const struct platform *plat,
		      struct pci_host *host) WUR;
void virtio_rng_destroy(struct virtio_rng *r);
void virtio_rng_get_stats(struct virtio_rng *r, struct virtio_rng_stats *out);
/* The generic virtio device inside (for tests and the machine's status reporting). */
struct virtio_dev *virtio_rng_vdev(struct virtio_rng *r);

#endif
