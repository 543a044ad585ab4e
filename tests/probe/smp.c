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
};

static struct cpu_report reports[MAX_CPUS];
static volatile uint32_t bsp_id, ipis; /* bit i: the IPI of AP index i arrived */
static bool have_leaf_b;

static uint32_t mask(unsigned n)
{
	return n >= 32 ? 0xffffffffu : (1u << n) - 1;
}

static void report_self(struct cpu_report *r)
{
	uint32_t c[4];
	r->lapic = lapic_id();
	cpuid(1, 0, c);
	r->cpuid1 = c[1] >> 24;
	r->x2apic = 0xffffffff;
	if (have_leaf_b) {
		cpuid(0xb, 0, c);
		r->x2apic = c[3];
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
	}
	CHECK(total == want, "%u CPUs answered INIT-SIPI-SIPI, %u asked", total, want);
	CHECK(seen == mask(want), "APIC ids 0x%x, want 0..%u", seen,
	      want - 1);
	CHECK(ipis == mask(got), "BSP got IPIs 0x%x from %u APs", ipis, got);
	probe_pass();
}
