/* SPDX-License-Identifier: MIT */
#include "kvm/cpuid.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Bit positions, per the Intel SDM / AMD APM. */
#define B(n) (1u << (n))

static const struct cpuid_mask baseline_masks[] = {
	/* Leaf 1 ECX: PCLMULQDQ, FMA, CX16, PCID, SSE4.1/4.2?, MOVBE, POPCNT, AES, XSAVE,
	 * OSXSAVE, AVX, F16C, RDRAND. SSE4.x stay: they are legacy-encoded and emulated. */
	{1, 0, CPUID_ECX,
	 B(1) | B(12) | B(13) | B(17) | B(22) | B(23) | B(25) | B(26) | B(27) | B(28) | B(29) | B(30)},
	/* Leaf 7.0 EBX: FSGSBASE, BMI1, HLE, AVX2, SMEP, BMI2, INVPCID, RTM, MPX, AVX512F/DQ,
	 * RDSEED, ADX, SMAP, AVX512_IFMA, CLFLUSHOPT, CLWB, PT, AVX512PF/ER/CD, SHA, AVX512BW/VL */
	{7, 0, CPUID_EBX,
	 B(0) | B(3) | B(4) | B(5) | B(7) | B(8) | B(10) | B(11) | B(14) | B(16) | B(17) | B(18) |
		 B(19) | B(20) | B(21) | B(23) | B(24) | B(25) | B(26) | B(27) | B(28) | B(29) |
		 B(30) | B(31)},
	/* Leaf 7.0 ECX: AVX512_VBMI, UMIP, PKU, OSPKE, WAITPKG, AVX512_VBMI2, CET_SS, GFNI, VAES,
	 * VPCLMULQDQ, AVX512_VNNI, AVX512_BITALG, AVX512_VPOPCNTDQ, LA57, RDPID, KL, MOVDIRI,
	 * MOVDIR64B, ENQCMD */
	{7, 0, CPUID_ECX,
	 B(1) | B(2) | B(3) | B(4) | B(5) | B(6) | B(7) | B(8) | B(9) | B(10) | B(11) | B(12) |
		 B(14) | B(16) | B(22) | B(23) | B(27) | B(28) | B(29)},
	/* Leaf 7.0 EDX: AVX512_4VNNIW/4FMAPS, FSRM, AVX512_VP2INTERSECT, SERIALIZE, TSXLDTRK,
	 * AMX-BF16, AVX512_FP16, AMX-TILE, AMX-INT8 */
	{7, 0, CPUID_EDX, B(2) | B(3) | B(4) | B(8) | B(14) | B(16) | B(22) | B(23) | B(24) | B(25)},
	/* Leaf 7.1 EAX: AVX-VNNI, AVX512_BF16, fast zero-length MOVSB etc. */
	{7, 1, CPUID_EAX, 0xffffffffu},
	/* Extended leaf 0x80000001 ECX: ABM/LZCNT, SSE4A, MisalignSSE, XOP, FMA4, TBM;
	 * EDX: RDTSCP. */
	{0x80000001, 0, CPUID_ECX, B(5) | B(6) | B(7) | B(11) | B(16) | B(21)},
	{0x80000001, 0, CPUID_EDX, B(27)},
};

/* XSAVE state enumeration, Processor Trace, SGX, AMX tiles: gone with their features. */
static const uint32_t baseline_drop[] = {0xd, 0x12, 0x14, 0x19, 0x1d, 0x1e};

static const struct cpu_template tmpl_host = {
	.name = "host",
	.description = "everything KVM supports on this host",
};

static const struct cpu_template tmpl_baseline = {
	.name = "baseline",
	.description = "portable x86-64 set without XSAVE/AVX, VEX (BMI), POPCNT, CX16, MOVBE, "
		       "SMEP/SMAP, FSGSBASE, RDRAND/RDSEED, RDPID, INVPCID, PCID",
	.masks = baseline_masks,
	.nr_masks = ARRAY_SIZE(baseline_masks),
	.drop_leaves = baseline_drop,
	.nr_drop_leaves = ARRAY_SIZE(baseline_drop),
};

static const struct cpu_template *const templates[] = {&tmpl_host, &tmpl_baseline, NULL};

const struct cpu_template *const *cpu_template_list(void)
{
	return templates;
}

const struct cpu_template *cpu_template_find(const char *name)
{
	for (size_t i = 0; templates[i]; i++)
		if (strcmp(templates[i]->name, name) == 0)
			return templates[i];
	return NULL;
}

struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, uint32_t leaf, uint32_t index)
{
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		if (e->function != leaf)
			continue;
		if (!(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e->index == index)
			return e;
	}
	return NULL;
}

static uint32_t *reg_of(struct kvm_cpuid_entry2 *e, enum cpuid_reg r)
{
	switch (r) {
	case CPUID_EAX:
		return &e->eax;
	case CPUID_EBX:
		return &e->ebx;
	case CPUID_ECX:
		return &e->ecx;
	default:
		return &e->edx;
	}
}

static bool leaf_dropped(const struct cpu_template *t, uint32_t leaf)
{
	for (size_t i = 0; i < t->nr_drop_leaves; i++)
		if (t->drop_leaves[i] == leaf)
			return true;
	return false;
}

/* Smallest n with (1 << n) >= x. */
static unsigned order_base_2(unsigned x)
{
	unsigned n = 0;
	while ((1u << n) < x)
		n++;
	return n;
}

/*
 * Leaves 0xB/0x1F describe the topology level by level (subleaf 0 = SMT, 1 = core, 2 =
 * the invalid level that ends the list). Some hosts' KVM lists only subleaf 0; without the
 * core level a guest would see each vCPU as its own package, contradicting leaves 1 and 4.
 * The caller reserved room for 3 extra entries per leaf.
 */
static void cpuid_add_topology_leaves(struct kvm_cpuid2 *c, uint32_t leaf)
{
	bool present = false;
	for (uint32_t i = 0; i < c->nent; i++)
		present |= c->entries[i].function == leaf;
	if (!present)
		return;
	for (uint32_t sub = 0; sub < 3; sub++) {
		if (cpuid_find(c, leaf, sub) && (cpuid_find(c, leaf, sub)->flags &
						 KVM_CPUID_FLAG_SIGNIFCANT_INDEX))
			continue;
		c->entries[c->nent++] = (struct kvm_cpuid_entry2){
			.function = leaf,
			.index = sub,
			.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
		};
	}
}

static void cpuid_set_topology(struct kvm_cpuid2 *c, unsigned apic_id, unsigned nr_vcpus)
{
	unsigned core_bits = order_base_2(nr_vcpus);
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		switch (e->function) {
		case 1:
			/* APIC ID, logical processors per package (HTT meaning), CLFLUSH size. */
			e->ebx = (apic_id << 24) | ((nr_vcpus > 1 ? (1u << core_bits) : 1) << 16) |
				 (e->ebx & 0xffff);
			if (nr_vcpus > 1)
				e->edx |= B(28);
			else
				e->edx &= ~B(28);
			e->ecx |= B(31); /* running under a hypervisor */
			break;
		case 4:
			/* Deterministic cache params: cores per package - 1 in EAX[31:26];
			 * threads sharing this cache - 1 in EAX[25:14] (one thread per core). */
			if ((e->eax & 0x1f) != 0) {
				unsigned cores = 1u << core_bits;
				unsigned level = (e->eax >> 5) & 7;
				unsigned sharing = level >= 3 ? cores : 1;
				e->eax = (e->eax & 0x3fff) | ((sharing - 1) << 14) | ((cores - 1) << 26);
			}
			break;
		case 0xb:
		case 0x1f:
			/* Extended topology: level 0 = SMT (1 thread), level 1 = core. */
			e->edx = apic_id;
			if (e->index == 0) {
				e->eax = 0;
				e->ebx = 1;
				e->ecx = (1u << 8) | 0;
			} else if (e->index == 1) {
				e->eax = core_bits;
				e->ebx = nr_vcpus;
				e->ecx = (2u << 8) | 1;
			} else {
				e->eax = 0;
				e->ebx = 0;
				e->ecx = e->index;
			}
			break;
		case 0x80000008:
			/* AMD: number of cores - 1 and APIC ID size. */
			e->ecx = (e->ecx & ~0xf0ffu) | ((nr_vcpus - 1) & 0xff) | (core_bits << 12);
			break;
		default:
			break;
		}
	}
}

int cpuid_build(const struct kvm_cpuid2 *supported, const struct cpu_template *t,
		unsigned apic_id, unsigned nr_vcpus, struct kvm_cpuid2 **out)
{
	if (!supported || !t || nr_vcpus == 0 || apic_id >= nr_vcpus)
		return -EINVAL;
	/* Room for the topology subleaves KVM may not list (see cpuid_add_topology_leaves). */
	size_t sz = sizeof(*supported) + (supported->nent + 6) * sizeof(supported->entries[0]);
	struct kvm_cpuid2 *c = calloc(1, sz);
	if (!c)
		return -ENOMEM;
	c->nent = 0;
	for (uint32_t i = 0; i < supported->nent; i++) {
		if (leaf_dropped(t, supported->entries[i].function))
			continue;
		c->entries[c->nent++] = supported->entries[i];
	}
	for (size_t m = 0; m < t->nr_masks; m++) {
		const struct cpuid_mask *k = &t->masks[m];
		for (uint32_t i = 0; i < c->nent; i++) {
			struct kvm_cpuid_entry2 *e = &c->entries[i];
			if (e->function != k->leaf)
				continue;
			if (k->subleaf != CPUID_ANY_SUBLEAF && e->index != k->subleaf)
				continue;
			*reg_of(e, k->reg) &= ~k->clear;
		}
	}
	cpuid_add_topology_leaves(c, 0xb);
	cpuid_add_topology_leaves(c, 0x1f);
	cpuid_set_topology(c, apic_id, nr_vcpus);
	/* Make sure the KVM signature leaf is present and well-formed. */
	struct kvm_cpuid_entry2 *sig = cpuid_find(c, 0x40000000, 0);
	if (sig) {
		memcpy(&sig->ebx, "KVMK", 4);
		memcpy(&sig->ecx, "VMKV", 4);
		memcpy(&sig->edx, "M\0\0\0", 4);
		if (sig->eax < 0x40000001)
			sig->eax = 0x40000001;
	}
	*out = c;
	return 0;
}
