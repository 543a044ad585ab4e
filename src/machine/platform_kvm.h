/* SPDX-License-Identifier: MIT */
/*
 * struct platform (bus/platform.h) implemented on a KVM VM: legacy irq lines through
 * KVM_IRQ_LINE, MSI handles as (GSI route, eventfd, irqfd) triples — firing one is an
 * eventfd write, so any thread can inject without a VM exit — and ioeventfd doorbells.
 */
#ifndef VIREO_MACHINE_PLATFORM_KVM_H
#define VIREO_MACHINE_PLATFORM_KVM_H

#include "bus/platform.h"
#include "kvm/kvm.h"

#define PLATFORM_KVM_MAX_MSI 256

struct platform_kvm {
	struct platform plat;
	struct kvm_vm *vm;
	pthread_mutex_t lock;
	struct {
		bool used;
		unsigned gsi;
		int efd;
	} msi[PLATFORM_KVM_MAX_MSI];
	uint64_t msi_fired; /* statistics */
	/* Device I/O loops handed out round robin by io_loop_next (none: plat.loop only). */
	struct evloop *io_loops;
	unsigned nr_io_loops, io_next;
};

int platform_kvm_init(struct platform_kvm *p, struct kvm_vm *vm, struct gmem *mem,
		      struct evloop *loop, struct bus *mmio, struct bus *pio) WUR;
/* Offer n device I/O loops (loops[0..n)) to devices, round robin by queue group. */
void platform_kvm_set_io_loops(struct platform_kvm *p, struct evloop *loops, unsigned n);
void platform_kvm_fini(struct platform_kvm *p);

#endif
