/* SPDX-License-Identifier: MIT */
/*
 * SMP: the BSP wakes every AP with INIT-SIPI-SIPI (broadcast), each AP reports its APIC id
 * and CPUID topology and sends the BSP a fixed IPI. The runner passes --cpus N and cpus=N.
 */
#include "probe.h"

PROBE("smp");

#define VEC_IPI 0x50

struct cpu_report {
	uint32_t lapic, cpuid1, x2apic, apicbase_bsp;
	uint32_t pkg_shift, pkg_count; /* leaf 0xB top level: APIC id shift, CPUs per package */
	uint32_t leaf1_count;	       /* leaf 1 EBX[23:16] when HTT is set, else 1 */
	const char *topo_error;	       /* leaf 0xB not well formed */
};

static struct cpu_report reports[MAX_CPUS];
static volatile uint32_t bsp_id, ipis; /* bit i: the IPI of AP index i arrived */
static bool have_leaf_b;

static uint32_t mask(unsigned n)
{
	return n >= 32 ? 0xffffffffu : (1u << n) - 1;
}

static uint32_t pow2_ceil(uint32_t x)
{
	uint32_t p = 1;
	while (p < x)
		p <<= 1;
	return p;
}

static void report_self(struct cpu_report *r)
{
	uint32_t c[4];
	r->lapic = lapic_id();
	cpuid(1, 0, c);
	r->cpuid1 = c[1] >> 24;
	r->leaf1_count = (c[3] & (1u << 28)) ? (c[1] >> 16) & 0xff : 1;
	r->x2apic = 0xffffffff;
	if (have_leaf_b) {
		uint32_t prev_shift = 0;
		cpuid(0xb, 0, c);
		r->x2apic = c[3];
		for (uint32_t sub = 0; sub < 8; sub++) {
			cpuid(0xb, sub, c);
			if (((c[2] >> 8) & 0xff) == 0)
				break;
			if ((c[2] & 0xff) != sub)
				r->topo_error = "ECX[7:0] is not the subleaf";
			else if ((c[0] & 0x1f) < prev_shift)
				r->topo_error = "APIC id shift decreases between levels";
			else if ((c[1] & 0xffff) == 0)
				r->topo_error = "a level with 0 logical processors";
			else if ((c[1] & 0xffff) > (1u << (c[0] & 0x1f)))
				r->topo_error = "more processors than the APIC id shift leaves room for";
			if (c[3] != r->x2apic)
				r->topo_error = "x2APIC id differs between subleaves";
			prev_shift = c[0] & 0x1f;
			r->pkg_shift = prev_shift;
			r->pkg_count = c[1] & 0xffff;
		}
	}
	r->apicbase_bsp = (uint32_t)(rdmsr(0x1b) >> 8) & 1;
}

static void ap_main(unsigned index)
{
	report_self(&reports[index + 1]);
	/* Fixed, physical, edge; one vector per AP, as equal vectors may merge in the IRR. */
	lapic_send_ipi(bsp_id, VEC_IPI + index);
}

static void on_ipi(struct trap_frame *f)
{
	__atomic_or_fetch(&ipis, 1u << (f->vector - VEC_IPI), __ATOMIC_SEQ_CST);
	lapic_eoi();
}

void probe_main(const struct hvm_start_info *si)
{
	unsigned want = (unsigned)cmdline_u64("cpus", 0), got, total;
	uint32_t c[4], seen = 0;
	uint64_t end;
	(void)si;

	CHECK(want >= 1 && want <= MAX_CPUS, "cpus=%u on the command line (1..%u)", want, MAX_CPUS);
	cpuid(0, 0, c);
	if (c[0] >= 0xb) {
		cpuid(0xb, 0, c);
		have_leaf_b = c[1] != 0;
	}
	bsp_id = lapic_id();
	report_self(&reports[0]);
	for (unsigned v = 0; v < MAX_CPUS; v++)
		irq_set_handler(VEC_IPI + v, on_ipi);
	irq_enable();
	got = smp_start_aps(ap_main, want - 1, 2000000);
	end = time_us() + 500000;
	while (__atomic_load_n(&ipis, __ATOMIC_SEQ_CST) != mask(got) && time_us() < end)
		cpu_relax();
	irq_disable();
	total = got + 1;
	printf("smp: %u CPU(s) up (%u asked), IPIs from APs 0x%x, leaf 0xb %s\n", total, want, ipis,
	       have_leaf_b ? "present" : "absent");
	for (unsigned i = 0; i < total && i < MAX_CPUS; i++) {
		struct cpu_report *r = &reports[i];
		printf("smp: cpu %u: LAPIC id %u, CPUID.1 id %u, x2APIC id %d, BSP flag %u\n", i, r->lapic,
		       r->cpuid1, (int)r->x2apic, r->apicbase_bsp);
		CHECK(r->lapic < 32 && !(seen & (1u << r->lapic)), "APIC id %u repeated or too big", r->lapic);
		seen |= 1u << r->lapic;
		CHECK(r->cpuid1 == r->lapic, "cpu %u: CPUID.1 APIC id %u, LAPIC id %u", i, r->cpuid1, r->lapic);
		CHECK(!have_leaf_b || r->x2apic == r->lapic, "cpu %u: CPUID.0xB x2APIC id %u, LAPIC id %u",
		      i, r->x2apic, r->lapic);
		CHECK(r->apicbase_bsp == (i == 0), "cpu %u: IA32_APIC_BASE.BSP = %u", i, r->apicbase_bsp);
		CHECK(!r->topo_error, "cpu %u: CPUID.0xB: %s", i, r->topo_error);
	}
	/* Same package (by the leaf 0xB package shift): no more CPUs than leaf 0xB and leaf 1
	 * announce per package. */
	for (unsigned i = 0; have_leaf_b && i < total && i < MAX_CPUS; i++) {
		unsigned same = 0;
		for (unsigned j = 0; j < total && j < MAX_CPUS; j++)
			same += reports[j].lapic >> reports[i].pkg_shift ==
				reports[i].lapic >> reports[i].pkg_shift;
		if (i == 0)
			printf("smp: leaf 0xb: package shift %u, %u logical CPUs per package; leaf 1: %u; "
			       "%u CPUs in package 0\n", reports[i].pkg_shift, reports[i].pkg_count,
			       reports[i].leaf1_count, same);
		CHECK(same <= reports[i].pkg_count, "cpu %u: %u CPUs share its package, CPUID.0xB says %u",
		      i, same, reports[i].pkg_count);
		CHECK(same <= reports[i].leaf1_count, "cpu %u: %u CPUs share its package, CPUID.1 says %u",
		      i, same, reports[i].leaf1_count);
		/* Both leaves size the package's APIC id space: EBX[23:16] of leaf 1 (with HTT, some
		 * VMMs put the plain count there) and the package-level shift of leaf 0xB. Linux
		 * trusts 0xB; rounded up to a power of two they must agree. */
		CHECK(pow2_ceil(reports[i].leaf1_count) == 1u << reports[i].pkg_shift,
		      "cpu %u: CPUID.1 announces %u logical IDs per package, CPUID.0xB a package shift "
		      "of %u (%u IDs): leaf 0xB lacks the core level?", i, reports[i].leaf1_count,
		      reports[i].pkg_shift, 1u << reports[i].pkg_shift);
	}
	CHECK(total == want, "%u CPUs answered INIT-SIPI-SIPI, %u asked", total, want);
	CHECK(seen == mask(want), "APIC ids 0x%x, want 0..%u", seen,
	      want - 1);
	CHECK(ipis == mask(got), "BSP got IPIs 0x%x from %u APs", ipis, got);
	probe_pass();
}
