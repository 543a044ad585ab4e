/* SPDX-License-Identifier: MIT */
/*
 * vCPU threads. A vCPU thread only runs guest code and dispatches exits: port and MMIO
 * accesses to the buses, power events to the machine, instruction completions to
 * src/kvm/emulate. It never does device work that can block (that is the I/O thread's).
 */
#ifndef VIREO_MACHINE_VCPU_H
#define VIREO_MACHINE_VCPU_H

#include "common/compiler.h"
#include "kvm/kvm.h"
#include "boot/boot.h"
#include <pthread.h>

struct machine;

struct vcpu_stats {
	uint64_t exits, io, mmio, intr, emulated, halts;
};

struct vcpu {
	struct kvm_vcpu kvm;
	struct machine *m;
	pthread_t thread;
	bool thread_started;
	struct vcpu_stats stats;
};

/* Registers, sregs, FPU, MSRs, LAPIC LVTs and CPUID of a freshly created vCPU. The BSP
 * (id 0) gets the boot entry state; APs wait for INIT/SIPI in the in-kernel LAPIC. */
int vcpu_setup(struct vcpu *v, const struct kvm_cpuid2 *cpuid, const struct boot_entry *e) WUR;
int vcpu_start(struct vcpu *v) WUR;
/* Make the vCPU leave KVM_RUN (signal + immediate_exit). */
void vcpu_kick(struct vcpu *v);
void vcpu_join(struct vcpu *v);
/* One-line-per-group register dump to stderr. */
void vcpu_dump_regs(struct vcpu *v);
/* Install the (empty) signal handler used to kick vCPUs. Once per process. */
int vcpu_signals_init(void) WUR;

#endif
