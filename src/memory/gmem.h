/* SPDX-License-Identifier: MIT */
/*
 * Guest memory. RAM is one mapping in the VMM, split into guest-physical regions around
 * the 32-bit MMIO hole: private anonymous memory with MADV_HUGEPAGE by default (huge
 * pages on common hosts, as QEMU and Firecracker do), or with GMEM_SHARED a memfd mapped
 * MAP_SHARED, for what must share the RAM with another process or keep it as a file
 * (vhost-user back-ends, snapshots, live migration).
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
	uint64_t fd_offset; /* offset of this region in the memfd (GMEM_SHARED) */
};

struct gmem {
	struct gmem_region regions[GMEM_MAX_REGIONS];
	unsigned nr_regions;
	uint64_t ram_size; /* total RAM bytes */
	int fd;		   /* memfd with GMEM_SHARED, else -1 */
	void *map;	   /* whole mapping, owned; NULL for fake memory */
	size_t map_size;
};

#define GMEM_SHARED 1u /* back RAM with a memfd mapped shared (default: private anonymous) */

/* Create RAM of ram_size bytes (multiple of 4 KiB, > 0) laid out per memory/layout.h;
 * flags: 0 or GMEM_SHARED. */
int gmem_create(struct gmem *m, uint64_t ram_size, unsigned flags) WUR;
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
