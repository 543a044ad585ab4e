/* SPDX-License-Identifier: MIT */
/*
 * Guest memory. RAM is one memfd mapped once in the VMM (MAP_SHARED), split into
 * guest-physical regions around the 32-bit MMIO hole. The memfd serves snapshots
 * (the file is the RAM image) and hugepages later.
 *
 * gmem_ptr() is the only way to turn a guest-physical address into a host pointer:
 * it returns NULL unless the whole range [gpa, gpa+len) lies inside one region.
 * All checks are overflow-safe, so any guest-supplied gpa/len may be passed in.
 */
#ifndef VIREO_MEMORY_GMEM_H
#define VIREO_MEMORY_GMEM_H

#include "common/compiler.h"

#define GMEM_MAX_REGIONS 4

struct gmem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *hva;
	uint64_t fd_offset; /* offset of this region in the memfd */
};

struct gmem {
	struct gmem_region regions[GMEM_MAX_REGIONS];
	unsigned nr_regions;
	uint64_t ram_size; /* total RAM bytes */
	int fd;		   /* memfd, or -1 for fake memory */
	void *map;	   /* whole mapping (owned when fd >= 0) */
	size_t map_size;
};

/* Create RAM of ram_size bytes (multiple of 4 KiB, > 0) laid out per memory/layout.h. */
int gmem_create(struct gmem *m, uint64_t ram_size) WUR;
/* Describe caller-owned memory as a single region at gpa (unit tests, fuzzers). */
int gmem_init_fake(struct gmem *m, uint64_t gpa, void *buf, uint64_t size) WUR;
void gmem_destroy(struct gmem *m);

void *gmem_ptr(const struct gmem *m, uint64_t gpa, uint64_t len);
int gmem_read(const struct gmem *m, uint64_t gpa, void *dst, uint64_t len) WUR;
int gmem_write(const struct gmem *m, uint64_t gpa, const void *src, uint64_t len) WUR;
/* Amount of RAM below the MMIO hole / above 4 GiB. */
uint64_t gmem_low_size(const struct gmem *m);
uint64_t gmem_high_size(const struct gmem *m);

#endif
