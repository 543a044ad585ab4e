/* SPDX-License-Identifier: MIT */
/* CPUID as a KVM guest sees it: the KVM signature at 0x40000000 and the basics a 64-bit
 * kernel needs. */
#include "probe.h"

PROBE("cpuid");

void probe_main(const struct hvm_start_info *si)
{
	uint32_t r[4], max_basic, max_ext;
	char sig[13], vendor[13];
	(void)si;

	cpuid(0, 0, r);
	max_basic = r[0];
	memcpy(vendor, &r[1], 4);
	memcpy(vendor + 4, &r[3], 4);
	memcpy(vendor + 8, &r[2], 4);
	vendor[12] = 0;
	cpuid(0x40000000, 0, r);
	memcpy(sig, &r[1], 12);
	sig[12] = 0;
	printf("cpuid: vendor \"%s\" max leaf 0x%x; hypervisor \"%s\" max leaf 0x%x\n", vendor,
	       max_basic, sig, r[0]);
	CHECK(max_basic >= 1, "max basic leaf %u", max_basic);
	CHECK(!memcmp(sig, "KVMKVMKVM\0\0\0", 12), "leaf 0x40000000 signature \"%s\", want KVMKVMKVM", sig);
	CHECK(r[0] >= 0x40000001, "leaf 0x40000000 EAX 0x%x: no KVM feature leaf", r[0]);
	cpuid(0x40000001, 0, r);
	printf("cpuid: KVM features eax=0x%x edx=0x%x\n", r[0], r[3]);

	cpuid(1, 0, r);
	printf("cpuid: leaf 1 eax=0x%x ebx=0x%x ecx=0x%x edx=0x%x\n", r[0], r[1], r[2], r[3]);
	CHECK(r[2] & (1u << 31), "leaf 1 ECX bit 31 (hypervisor present) clear");
	CHECK(r[3] & (1u << 9), "leaf 1 EDX: no APIC");
	CHECK(r[3] & (1u << 5), "leaf 1 EDX: no MSR");
	CHECK(r[3] & (1u << 4), "leaf 1 EDX: no TSC");
	CHECK(r[1] >> 24 == lapic_id(), "leaf 1 initial APIC id %u, LAPIC says %u", r[1] >> 24, lapic_id());

	cpuid(0x80000000, 0, r);
	max_ext = r[0];
	CHECK(max_ext >= 0x80000001, "max extended leaf 0x%x", max_ext);
	cpuid(0x80000001, 0, r);
	CHECK(r[3] & (1u << 29), "leaf 0x80000001 EDX: no long mode");
	if (max_ext >= 0x80000008) {
		cpuid(0x80000008, 0, r);
		printf("cpuid: %u physical / %u virtual address bits\n", r[0] & 0xff, (r[0] >> 8) & 0xff);
		CHECK((r[0] & 0xff) >= 32 && (r[0] & 0xff) <= 52, "leaf 0x80000008: %u physical bits",
		      r[0] & 0xff);
	}
	probe_pass();
}
