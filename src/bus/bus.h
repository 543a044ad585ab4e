/* SPDX-License-Identifier: MIT */
/*
 * Address-range dispatch for port I/O and MMIO exits. A device registers [base, base+len)
 * with a const ops table; accesses are delivered with the offset inside the range.
 *
 * Locking: the range table is protected by a rwlock, but callbacks run with no bus lock
 * held (the entry is copied out first), so a callback may (un)register ranges — the PCI
 * core moves BARs from inside a config-space write. Devices do their own locking.
 * Registered opaque pointers must stay valid until bus_fini().
 */
#ifndef VIREO_BUS_BUS_H
#define VIREO_BUS_BUS_H

#include "common/compiler.h"
#include <pthread.h>

struct bus_ops {
	/* len is 1, 2, 4 or 8; data is little-endian. Unimplemented reads should return 0xff.. */
	void (*read)(void *opaque, uint64_t off, void *data, unsigned len);
	void (*write)(void *opaque, uint64_t off, const void *data, unsigned len);
};

struct bus_range {
	uint64_t base;
	uint64_t len;
	const struct bus_ops *ops;
	void *opaque;
};

struct bus {
	struct bus_range *ranges; /* sorted by base, non-overlapping */
	size_t nr, cap;
	pthread_rwlock_t lock;
	const char *name;
};

int bus_init(struct bus *b, const char *name) WUR;
void bus_fini(struct bus *b);
/* -EEXIST if the range overlaps an existing one, -EINVAL for len 0 or overflow. */
int bus_register(struct bus *b, uint64_t base, uint64_t len, const struct bus_ops *ops,
		 void *opaque) WUR;
/* Remove the range that starts at base and belongs to opaque. */
int bus_unregister(struct bus *b, uint64_t base, void *opaque) WUR;
/* Dispatch. Return false when no range covers the whole access (reads then yield all-ones). */
bool bus_read(struct bus *b, uint64_t addr, void *data, unsigned len);
bool bus_write(struct bus *b, uint64_t addr, const void *data, unsigned len);

#endif
