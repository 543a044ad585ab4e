/* SPDX-License-Identifier: MIT */
/*
 * The narrow set of machine services a device may use. The machine implements it on
 * KVM (irq lines through KVM_IRQ_LINE, MSIs through GSI routes + irqfd, queue
 * notifications through ioeventfd); unit tests implement it with fakes. A device never
 * sees KVM, the vCPUs, or other devices.
 *
 * Any op may be NULL except irq_set_level; devices must cope (e.g. without
 * ioeventfd_add the virtio transport processes notifications from the MMIO write).
 */
#ifndef VIREO_BUS_PLATFORM_H
#define VIREO_BUS_PLATFORM_H

#include "common/compiler.h"

struct gmem;
struct bus;
struct evloop;

struct platform_ops {
	/* Level of a legacy interrupt line (in-kernel PIC/IOAPIC pin). */
	int (*irq_set_level)(void *ctx, unsigned gsi, int level);
	/* MSI: a handle stands for one vector (a GSI route + an irqfd in the KVM machine). */
	int (*msi_alloc)(void *ctx, unsigned *handle);
	int (*msi_update)(void *ctx, unsigned handle, uint64_t addr, uint32_t data);
	int (*msi_fire)(void *ctx, unsigned handle);
	void (*msi_free)(void *ctx, unsigned handle);
	/* Doorbells: a guest write of len bytes at gpa signals efd without a VM exit to userspace. */
	int (*ioeventfd_add)(void *ctx, uint64_t gpa, unsigned len, int efd);
	int (*ioeventfd_del)(void *ctx, uint64_t gpa, unsigned len, int efd);
	/* Device I/O threads (--io-threads): the loop for a device's next queue group (a
	 * virtio-blk request queue, a virtio-net queue pair), handed out round robin over the
	 * machine's device loops. A NULL op or result means: use loop. Devices call it only
	 * at creation (virtio_dev_bind_loops), from the thread building the machine. */
	struct evloop *(*io_loop_next)(void *ctx);
};

struct platform {
	const struct platform_ops *ops;
	void *ctx;
	struct gmem *mem;
	struct evloop *loop; /* main I/O thread; NULL in unit tests (work runs inline) */
	struct bus *mmio;
	struct bus *pio;
};

#endif
