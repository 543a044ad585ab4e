/* SPDX-License-Identifier: MIT */
/*
 * The only code in Vireo that issues KVM ioctls. Three objects:
 *   kvm_sys  — /dev/kvm: API version, capabilities, supported CPUID, limits
 *   kvm_vm   — a VM fd: memory slots, in-kernel irqchip + PIT, irq lines, GSI routing for
 *              MSIs, irqfds and ioeventfds
 *   kvm_vcpu — a vCPU fd and its mmap'ed kvm_run: registers, CPUID, MSRs, FPU, run
 * Every function returns 0 or -errno. Error strings are the caller's job.
 */
#ifndef VIREO_KVM_KVM_H
#define VIREO_KVM_KVM_H

#include "common/compiler.h"
#include <linux/kvm.h>
#include <pthread.h>

struct kvm_sys {
	int fd;
	int vcpu_mmap_size;
	unsigned max_vcpus;	    /* KVM_CAP_MAX_VCPUS */
	unsigned recommended_vcpus; /* KVM_CAP_NR_VCPUS */
	struct kvm_cpuid2 *supported_cpuid; /* KVM_GET_SUPPORTED_CPUID, owned */
};

/* Opens path (normally "/dev/kvm"), checks the API version and the capabilities Vireo
 * needs. On -ENOTSUP, *missing names the missing capability; -ENODEV: path is not a KVM
 * device. */
int kvm_sys_open(struct kvm_sys *s, const char *path, const char **missing) WUR;
void kvm_sys_close(struct kvm_sys *s);
int kvm_sys_check_ext(const struct kvm_sys *s, long cap);

#define KVM_MAX_GSI_ROUTES 1024

struct kvm_vm {
	int fd;
	struct kvm_sys *sys;
	pthread_mutex_t route_lock;
	struct kvm_irq_routing *routing; /* current table: IOAPIC/PIC defaults + MSI routes */
	uint32_t next_msi_gsi;
	uint8_t msi_used[KVM_MAX_GSI_ROUTES];
};

int kvm_vm_create(struct kvm_vm *vm, struct kvm_sys *s) WUR;
void kvm_vm_destroy(struct kvm_vm *vm);
int kvm_vm_set_memory(struct kvm_vm *vm, uint32_t slot, uint64_t gpa, uint64_t size,
		      void *hva) WUR;
/* TSS + identity map addresses, in-kernel IOAPIC/PIC/LAPIC, PIT with speaker dummy off. */
int kvm_vm_create_irqchip(struct kvm_vm *vm) WUR;
int kvm_vm_irq_line(struct kvm_vm *vm, unsigned gsi, int level) WUR;
/* ioeventfd on an MMIO (pio=false) or port (pio=true) address, without datamatch. */
int kvm_vm_ioeventfd(struct kvm_vm *vm, bool pio, uint64_t addr, unsigned len, int efd,
		     bool assign) WUR;
int kvm_vm_irqfd(struct kvm_vm *vm, int efd, unsigned gsi, bool assign) WUR;
/* Allocate a GSI for an MSI route (initially address 0, i.e. not deliverable). */
int kvm_vm_msi_alloc(struct kvm_vm *vm, unsigned *gsi) WUR;
int kvm_vm_msi_set(struct kvm_vm *vm, unsigned gsi, uint64_t addr, uint32_t data) WUR;
void kvm_vm_msi_free(struct kvm_vm *vm, unsigned gsi);
int kvm_vm_get_clock(struct kvm_vm *vm, struct kvm_clock_data *c) WUR;

struct kvm_vcpu {
	int fd;
	unsigned id;
	struct kvm_run *run;
	size_t run_size;
	struct kvm_vm *vm;
};

int kvm_vcpu_create(struct kvm_vcpu *v, struct kvm_vm *vm, unsigned id) WUR;
void kvm_vcpu_destroy(struct kvm_vcpu *v);
/* KVM_RUN. Returns 0 (look at run->exit_reason) or -errno (-EINTR when kicked). */
int kvm_vcpu_run(struct kvm_vcpu *v) WUR;
int kvm_vcpu_get_regs(struct kvm_vcpu *v, struct kvm_regs *r) WUR;
int kvm_vcpu_set_regs(struct kvm_vcpu *v, const struct kvm_regs *r) WUR;
int kvm_vcpu_get_sregs(struct kvm_vcpu *v, struct kvm_sregs *r) WUR;
int kvm_vcpu_set_sregs(struct kvm_vcpu *v, const struct kvm_sregs *r) WUR;
int kvm_vcpu_set_fpu(struct kvm_vcpu *v, const struct kvm_fpu *f) WUR;
int kvm_vcpu_set_cpuid(struct kvm_vcpu *v, const struct kvm_cpuid2 *c) WUR;
int kvm_vcpu_set_msrs(struct kvm_vcpu *v, const struct kvm_msrs *m) WUR;
int kvm_vcpu_get_lapic(struct kvm_vcpu *v, struct kvm_lapic_state *l) WUR;
int kvm_vcpu_set_lapic(struct kvm_vcpu *v, const struct kvm_lapic_state *l) WUR;
int kvm_vcpu_set_mp_state(struct kvm_vcpu *v, uint32_t state) WUR;
int kvm_vcpu_translate(struct kvm_vcpu *v, uint64_t gva, uint64_t *gpa) WUR;
int kvm_vcpu_get_events(struct kvm_vcpu *v, struct kvm_vcpu_events *e) WUR;
int kvm_vcpu_set_events(struct kvm_vcpu *v, const struct kvm_vcpu_events *e) WUR;
/* Ask a running vCPU to return from KVM_RUN soon (sets immediate_exit). */
void kvm_vcpu_kick_flag(struct kvm_vcpu *v, bool on);

#endif
