/* SPDX-License-Identifier: MIT */
/*
 * Driver-side helper for virtio unit tests: lays out a split virtqueue (descriptor table,
 * avail ring, used ring) in fake guest memory and lets a test write descriptors, publish
 * heads and read back used elements, exactly as a guest driver would. Works on raw guest
 * addresses so tests can also build malformed rings.
 */
#ifndef VIREO_TESTS_VIRTIO_VQ_HELPER_H
#define VIREO_TESTS_VIRTIO_VQ_HELPER_H

#include "memory/gmem.h"

struct virtq;

struct tvq {
	const struct gmem *mem;
	uint16_t size;
	uint64_t desc, avail, used; /* guest addresses of the three areas */
	uint16_t avail_idx;	    /* next avail->idx the driver publishes */
	uint16_t last_used;	    /* used elements consumed by tvq_get_used() */
};

/* One buffer of a chain built by tvq_add_chain(). */
struct tbuf {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

/* Place a queue of size entries at gpa (desc, then avail, then used; 4 KiB each at least). */
void tvq_layout(struct tvq *t, const struct gmem *mem, uint64_t gpa, uint16_t size);
/* Bytes a layout of that size needs. */
uint64_t tvq_footprint(uint16_t size);
/* Copy size and ring addresses into the device's struct virtq and enable it. */
void tvq_configure(const struct tvq *t, struct virtq *vq);

/* Write descriptor i of the table at table_gpa (the queue's own or an indirect one). */
void tdesc_write(const struct gmem *mem, uint64_t table_gpa, uint16_t i, uint64_t addr,
		 uint32_t len, uint16_t flags, uint16_t next);
void tvq_set_desc(struct tvq *t, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		  uint16_t next);
/* Write descriptors first..first+n-1 as a chain of bufs (NEXT links), return its head. */
uint16_t tvq_add_chain(struct tvq *t, uint16_t first, const struct tbuf *bufs, unsigned n);
/* Same, into an indirect table at table_gpa (entries 0..n-1). */
void tvq_write_indirect(struct tvq *t, uint64_t table_gpa, const struct tbuf *bufs, unsigned n);

/* Put head into the avail ring and bump avail->idx (with a barrier in between). */
void tvq_publish(struct tvq *t, uint16_t head);
/* Raw avail ring writes for hostile tests. */
void tvq_set_avail_idx(struct tvq *t, uint16_t idx);
void tvq_set_avail_ring(struct tvq *t, uint16_t slot, uint16_t head);
void tvq_set_avail_flags(struct tvq *t, uint16_t flags);
void tvq_set_used_event(struct tvq *t, uint16_t ev);

uint16_t tvq_used_idx(const struct tvq *t);
uint16_t tvq_avail_event(const struct tvq *t);
/* Used element at ring slot (idx modulo size). */
void tvq_used_elem(const struct tvq *t, uint16_t idx, uint32_t *id, uint32_t *len);
/* Consume the next used element if there is one. */
bool tvq_get_used(struct tvq *t, uint32_t *id, uint32_t *len);

/*
 * Replace fp's fake RAM by size bytes of lazily-mapped anonymous memory at gpa 0, for tests
 * that need huge (but untouched) guest buffers; calloc would touch it all under
 * MALLOC_PERTURB_. Undo with tvq_big_ram_unmap() before fake_platform_fini().
 */
struct fake_platform;
void *tvq_big_ram_map(struct fake_platform *fp, uint64_t size);
void tvq_big_ram_unmap(void *ram, uint64_t size);

/* Host pointer for a guest range; fails the test when outside fake RAM. */
void *tmem(const struct gmem *mem, uint64_t gpa, uint64_t len);

#endif
