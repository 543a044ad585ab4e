/* SPDX-License-Identifier: MIT */
/*
 * Guest CPUID: what KVM supports, filtered through a named CPU template, with the
 * topology leaves rewritten for this VM's vCPU count and the KVM hypervisor signature.
 *
 * Templates (docs/cpu-templates.md):
 *   host      everything KVM offers on this host
 *   baseline  hides what the nested KVM of our build machines cannot emulate (XSAVE/AVX*,
 *             CX16, POPCNT, BMI1/2 and other VEX extensions, MOVBE, SMEP/SMAP, FSGSBASE,
 *             RDRAND/RDSEED, RDPID, INVPCID, PCID, ...). A fixed, small feature set is also
 *             what keeps snapshots and migration portable between hosts.
 */
#ifndef VIREO_KVM_CPUID_H
#define VIREO_KVM_CPUID_H

#include "common/compiler.h"
#include <linux/kvm.h>

enum cpuid_reg { CPUID_EAX, CPUID_EBX, CPUID_ECX, CPUID_EDX };

struct cpuid_mask {
	uint32_t leaf;
	uint32_t subleaf; /* CPUID_ANY_SUBLEAF: every index */
	enum cpuid_reg reg;
	uint32_t clear; /* bits removed */
};
#define CPUID_ANY_SUBLEAF 0xffffffffu

struct cpu_template {
	const char *name;
	const char *description;
	const struct cpuid_mask *masks;
	size_t nr_masks;
	const uint32_t *drop_leaves; /* leaves removed entirely (e.g. 0xD XSAVE state) */
	size_t nr_drop_leaves;
};

const struct cpu_template *cpu_template_find(const char *name);
/* NULL-terminated list for --help and docs. */
const struct cpu_template *const *cpu_template_list(void);

/*
 * Build the CPUID table of vCPU `apic_id` of a VM with `nr_vcpus` vCPUs (one socket, one
 * thread per core). *out is malloc'ed; free() it.
 */
int cpuid_build(const struct kvm_cpuid2 *supported, const struct cpu_template *t,
		unsigned apic_id, unsigned nr_vcpus, struct kvm_cpuid2 **out) WUR;
/* Find an entry (NULL if absent). */
struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, uint32_t leaf, uint32_t index);

#endif
