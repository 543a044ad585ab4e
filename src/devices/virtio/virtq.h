/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueue (virtio 1.x), device side.
 *
 * Contract:
 * - The driver's configuration (size, three ring addresses, enable) is stored here by the
 *   device core; vq_activate() validates it once (size a power of two <= max, alignment,
 *   every ring area inside one guest RAM region) and caches host pointers to the rings.
 * - vq_pop() returns the next available descriptor chain as host iovecs into guest memory
 *   (obtained through gmem_ptr() only): readable ("out") iovecs first, then writable
 *   ("in") ones. Everything the driver wrote is validated; any violation marks the queue
 *   broken: vq_pop/vq_push then fail with -EIO until vq_reset(). The caller (device core)
 *   turns that into DEVICE_NEEDS_RESET. Nothing the guest writes can crash or hang us.
 * - vq_push() publishes a used element (element first, write barrier, then used->idx).
 *   vq_should_notify() says whether the driver wants an interrupt now (EVENT_IDX or
 *   VRING_AVAIL_F_NO_INTERRUPT); call it once after a batch of pushes.
 * - Not thread-safe: the owner serialises calls (the device core's lock).
 *
 * Validation rules (see docs/virtio.md): head and next indices < table size; at most
 * table-size descriptors are followed per table (loops end there); at most VQ_MAX_IOV
 * iovecs and 4 GiB per chain (overflow-safe); each addr+len must lie in one RAM region
 * (a buffer spanning two regions necessarily covers the MMIO hole: an error);
 * INDIRECT only if negotiated, never with NEXT, never inside an indirect table, table
 * length a non-zero multiple of 16 and <= VQ_MAX_INDIRECT entries; a readable descriptor
 * after a writable one is an error; zero-length descriptors are skipped (counted for loop
 * detection, produce no iovec, address unchecked); avail->idx may run at most the queue
 * size ahead of the device.
 */
#ifndef VIREO_DEVICES_VIRTIO_VIRTQ_H
#define VIREO_DEVICES_VIRTIO_VIRTQ_H

#include "common/compiler.h"
#include <sys/uio.h>

struct gmem;

#define VQ_MAX_SIZE 1024      /* largest queue size a device may offer */
#define VQ_MAX_IOV 1024	      /* iovecs in one chain */
#define VQ_MAX_INDIRECT 1024  /* entries in one indirect table */
#define VQ_MAX_CHAIN_BYTES (1ULL << 32)

/* One popped chain: iov[0..num_out) device-readable, iov[num_out..num_out+num_in) writable. */
struct vq_chain {
	uint16_t head;
	unsigned num_out, num_in;
	uint64_t out_bytes, in_bytes;
	struct iovec iov[VQ_MAX_IOV];
};

struct virtq {
	/* Driver-written configuration (through the transport, via the device core). */
	uint16_t size;
	bool enabled;
	uint64_t desc_gpa, avail_gpa, used_gpa;

	/* Fixed at init. */
	uint16_t max_size;
	unsigned index;
	const char *name; /* device name, for log messages */

	/* Runtime state, valid while live. */
	bool live;   /* activated and not broken */
	bool broken; /* a driver error was found; cleared by vq_reset() */
	const char *broken_reason; /* printf format of the first error (static string) */
	bool event_idx, indirect;
	const struct gmem *mem;
	uint8_t *desc, *avail, *used; /* host pointers, validated by vq_activate() */
	uint16_t last_avail;	      /* next avail ring slot to consume */
	uint16_t used_idx;	      /* our copy of used->idx */
	uint16_t signalled_used;      /* used_idx at the last notification decision */
	bool signalled_valid;
	bool need_signal; /* something was pushed since the last decision */
};

/* Initialise to the post-reset state; size starts at max_size (power of two <= VQ_MAX_SIZE). */
void vq_init(struct virtq *vq, const char *name, unsigned index, uint16_t max_size);
/* Back to the post-reset state: not live, not broken, not enabled, size = max, addrs 0. */
void vq_reset(struct virtq *vq);
/* Validate the configuration and go live. -EINVAL (queue marked broken) on bad config. */
int vq_activate(struct virtq *vq, const struct gmem *mem, bool event_idx, bool indirect) WUR;

/* 1: a chain is in *c; 0: the queue is empty (or not live); -EIO: the queue is broken. */
int vq_pop(struct virtq *vq, struct vq_chain *c) WUR;
/* Give back the chain of the last successful vq_pop() (the device cannot use it yet). */
void vq_unpop(struct virtq *vq);
/* Return chain head to the driver with len bytes written. -EIO if not live, -EINVAL bad head. */
int vq_push(struct virtq *vq, uint16_t head, uint32_t len) WUR;
/* After pushes: does the driver want a used-buffer notification now? */
bool vq_should_notify(struct virtq *vq);

static inline bool vq_is_broken(const struct virtq *vq)
{
	return vq->broken;
}

#endif
