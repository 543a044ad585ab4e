/* SPDX-License-Identifier: MIT */
#include "devices/virtio/virtio_rng.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtio_pci.h"
#include "common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define RNG_PCI_CLASS 0xff0000 /* "unassigned class": there is no class for RNGs */

struct virtio_rng {
	struct virtio_dev vdev;
	struct virtio_pci *pci;
	struct virtio_rng_stats stats; /* protected by the device lock */
	struct vq_chain chain;	       /* scratch for the request being served */
};

/* Fill buf with up to len random bytes; returns the number written (short on error). */
static size_t rng_fill(void *buf, size_t len, bool *err)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = getrandom((uint8_t *)buf + done, len - done, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			vlog_rl("virtio-rng: getrandom: %s", strerror(errno));
			*err = true;
			break;
		}
		done += (size_t)n;
	}
	return done;
}

static void rng_queue_notify(struct virtio_dev *d, unsigned q)
{
	struct virtio_rng *rng = d->opaque;
	struct vq_chain *c = &rng->chain;
	int r;

	while ((r = virtio_dev_queue_pop(d, q, c)) > 0) {
		uint64_t budget = VIRTIO_RNG_MAX_REQ;
		uint32_t written = 0;
		bool err = false;

		for (unsigned i = c->num_out; i < c->num_out + c->num_in && budget && !err; i++) {
			size_t want = (size_t)MIN((uint64_t)c->iov[i].iov_len, budget);
			size_t got = rng_fill(c->iov[i].iov_base, want, &err);
			written += (uint32_t)got;
			budget -= got;
		}
		if (c->num_in == 0) {
			vlog_rl("virtio-rng: request without writable buffer");
			err = true;
		}
		if (virtio_dev_queue_push(d, q, c->head, written) < 0)
			break;
		rng->stats.requests++;
		rng->stats.bytes += written;
		if (err)
			rng->stats.errors++;
	}
	virtio_dev_queue_signal(d, q);
}

static const struct virtio_dev_ops rng_ops = {
	.name = "virtio-rng",
	.device_id = VIRTIO_ID_RNG,
	.features = 0,
	.num_queues = 1,
	.max_queue_size = VIRTIO_RNG_QUEUE_SIZE,
	.config_size = 0,
	.queue_notify = rng_queue_notify,
};

int virtio_rng_create(struct virtio_rng **out, const struct platform *plat,
		      struct pci_host *host)
{
	struct virtio_rng *rng;
	int r;

	*out = NULL;
	rng = calloc(1, sizeof(*rng));
	if (!rng)
		return -ENOMEM;
	r = virtio_dev_init(&rng->vdev, &rng_ops, plat->mem, rng);
	if (r < 0)
		goto fail;
	r = virtio_pci_create(&rng->pci, plat, host, &rng->vdev, RNG_PCI_CLASS);
	if (r < 0)
		goto fail_dev;
	*out = rng;
	return 0;
fail_dev:
	virtio_dev_fini(&rng->vdev);
fail:
	free(rng);
	return r;
}

void virtio_rng_destroy(struct virtio_rng *rng)
{
	if (!rng)
		return;
	virtio_pci_destroy(rng->pci);
	virtio_dev_fini(&rng->vdev);
	free(rng);
}

void virtio_rng_get_stats(struct virtio_rng *rng, struct virtio_rng_stats *out)
{
	virtio_dev_lock(&rng->vdev);
	*out = rng->stats;
	virtio_dev_unlock(&rng->vdev);
}

struct virtio_dev *virtio_rng_vdev(struct virtio_rng *rng)
{
	return &rng->vdev;
}
