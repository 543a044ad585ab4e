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
};

int platform_kvm_init(struct platform_kvm *p, struct kvm_vm *vm, struct gmem *mem,
		      struct evloop *loop, struct bus *mmio, struct bus *pio) WUR;
void platform_kvm_fini(struct platform_kvm *p);

#endif
