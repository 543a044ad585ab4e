/* SPDX-License-Identifier: MIT */
/*
 * A fake struct platform for device unit tests: fake guest memory (a calloc'd buffer at a
 * chosen gpa), buses, and recorders for irq levels and MSI fires. No KVM involved.
 */
#ifndef VIREO_TESTS_FAKE_PLATFORM_H
#define VIREO_TESTS_FAKE_PLATFORM_H

#include "bus/bus.h"
#include "bus/platform.h"
#include "memory/gmem.h"

#define FAKE_MAX_GSI 64
#define FAKE_MAX_MSI 256

struct fake_platform {
	struct platform plat;
	struct gmem mem;
	struct bus mmio, pio;
	void *ram;
	uint64_t ram_gpa, ram_size;
	int irq_level[FAKE_MAX_GSI];
	unsigned irq_raises[FAKE_MAX_GSI]; /* count of 0->1 transitions */
	unsigned msi_allocated;
	struct {
		bool used;
		uint64_t addr;
		uint32_t data;
		unsigned fired; /* atomic: devices may fire from several threads */
	} msi[FAKE_MAX_MSI];
	/* Optional: device I/O loops offered through io_loop_next (round robin). */
	struct evloop **io_loops;
	unsigned nr_io_loops, io_next;
};

/* ram_size bytes of zeroed fake RAM at guest-physical ram_gpa. Aborts on allocation failure. */
void fake_platform_init(struct fake_platform *fp, uint64_t ram_gpa, uint64_t ram_size);
void fake_platform_fini(struct fake_platform *fp);

#endif
