/* SPDX-License-Identifier: MIT */
/* CPUID templates and topology on a synthetic "supported" table (no KVM needed). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <cmocka.h>

#include "kvm/cpuid.h"

static struct kvm_cpuid2 *make_supported(void)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 16 * sizeof(struct kvm_cpuid_entry2));
	struct kvm_cpuid_entry2 *e = c->entries;
	/* leaf 1: everything set */
	e[0] = (struct kvm_cpuid_entry2){.function = 1, .eax = 0x906ea, .ebx = 0x0800,
					 .ecx = 0xffffffff & ~(1u << 31), .edx = 0xffffffff};
	e[1] = (struct kvm_cpuid_entry2){.function = 7, .index = 0,
					 .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
					 .ebx = 0xffffffff, .ecx = 0xffffffff, .edx = 0xffffffff};
	e[2] = (struct kvm_cpuid_entry2){.function = 0xd, .index = 0,
					 .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 7};
	e[3] = (struct kvm_cpuid_entry2){.function = 0xb, .index = 0,
					 .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX};
	e[4] = (struct kvm_cpuid_entry2){.function = 0xb, .index = 1,
					 .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX};
	e[5] = (struct kvm_cpuid_entry2){.function = 0x40000000, .eax = 0x40000001};
	e[6] = (struct kvm_cpuid_entry2){.function = 0x80000001, .ecx = 0xffffffff,
					 .edx = 0xffffffff};
	e[7] = (struct kvm_cpuid_entry2){.function = 4, .index = 0,
					 .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
					 .eax = 0x121 /* L1 data */};
	c->nent = 8;
	return c;
}

static void test_templates_known(void **state)
{
	(void)state;
	assert_non_null(cpu_template_find("host"));
	assert_non_null(cpu_template_find("baseline"));
	assert_null(cpu_template_find("skylake"));
	assert_null(cpu_template_find(""));
}

static void test_baseline_masks(void **state)
{
	(void)state;
	struct kvm_cpuid2 *sup = make_supported(), *c = NULL;
	assert_int_equal(cpuid_build(sup, cpu_template_find("baseline"), 0, 1, &c), 0);
	struct kvm_cpuid_entry2 *l1 = cpuid_find(c, 1, 0);
	assert_non_null(l1);
	assert_false(l1->ecx & (1u << 26)); /* xsave */
	assert_false(l1->ecx & (1u << 23)); /* popcnt */
	assert_false(l1->ecx & (1u << 13)); /* cx16 */
	assert_false(l1->ecx & (1u << 30)); /* rdrand */
	assert_true(l1->ecx & (1u << 0));   /* sse3 stays */
	assert_true(l1->ecx & (1u << 31));  /* hypervisor */
	struct kvm_cpuid_entry2 *l7 = cpuid_find(c, 7, 0);
	assert_false(l7->ebx & ((1u << 0) | (1u << 3) | (1u << 7) | (1u << 8) | (1u << 20)));
	assert_false(l7->ecx & (1u << 22)); /* rdpid */
	assert_null(cpuid_find(c, 0xd, 0)); /* XSAVE leaf dropped */
	struct kvm_cpuid_entry2 *x1 = cpuid_find(c, 0x80000001, 0);
	assert_false(x1->ecx & (1u << 5)); /* lzcnt */
	free(c);
	/* host keeps them */
	assert_int_equal(cpuid_build(sup, cpu_template_find("host"), 0, 1, &c), 0);
	assert_true(cpuid_find(c, 1, 0)->ecx & (1u << 26));
	assert_non_null(cpuid_find(c, 0xd, 0));
	free(c);
	free(sup);
}

static void test_topology(void **state)
{
	(void)state;
	struct kvm_cpuid2 *sup = make_supported(), *c = NULL;
	assert_int_equal(cpuid_build(sup, cpu_template_find("host"), 2, 3, &c), 0);
	struct kvm_cpuid_entry2 *l1 = cpuid_find(c, 1, 0);
	assert_int_equal(l1->ebx >> 24, 2);	    /* APIC ID */
	assert_int_equal((l1->ebx >> 16) & 0xff, 4); /* 3 cores round up to 2 bits */
	assert_true(l1->edx & (1u << 28));
	struct kvm_cpuid_entry2 *b0 = cpuid_find(c, 0xb, 0), *b1 = cpuid_find(c, 0xb, 1);
	assert_int_equal(b0->edx, 2);
	assert_int_equal(b0->ebx, 1);
	assert_int_equal((b0->ecx >> 8) & 0xff, 1); /* SMT level */
	assert_int_equal(b1->ebx, 3);
	assert_int_equal(b1->eax, 2);
	assert_int_equal((b1->ecx >> 8) & 0xff, 2); /* core level */
	struct kvm_cpuid_entry2 *l4 = cpuid_find(c, 4, 0);
	assert_int_equal(l4->eax >> 26, 3); /* 4 cores per package - 1 */
	struct kvm_cpuid_entry2 *sig = cpuid_find(c, 0x40000000, 0);
	char s[13] = {0};
	memcpy(s, &sig->ebx, 4);
	memcpy(s + 4, &sig->ecx, 4);
	memcpy(s + 8, &sig->edx, 4);
	assert_string_equal(s, "KVMKVMKVM");
	free(c);
	/* single vCPU: no HTT */
	assert_int_equal(cpuid_build(sup, cpu_template_find("host"), 0, 1, &c), 0);
	assert_false(cpuid_find(c, 1, 0)->edx & (1u << 28));
	free(c);
	/* bad arguments */
	assert_int_equal(cpuid_build(sup, cpu_template_find("host"), 3, 3, &c), -EINVAL);
	assert_int_equal(cpuid_build(sup, cpu_template_find("host"), 0, 0, &c), -EINVAL);
	assert_int_equal(cpuid_build(sup, NULL, 0, 1, &c), -EINVAL);
	free(sup);
}

static void test_topology_adds_core_level(void **state)
{
	(void)state;
	struct kvm_cpuid2 *sup = make_supported(), *c = NULL;
	/* Drop 0xB subleaf 1, as some hosts' KVM_GET_SUPPORTED_CPUID does. */
	sup->entries[4] = sup->entries[--sup->nent];
	assert_null(cpuid_find(sup, 0xb, 1));
	assert_int_equal(cpuid_build(sup, cpu_template_find("host"), 1, 2, &c), 0);
	struct kvm_cpuid_entry2 *b1 = cpuid_find(c, 0xb, 1), *b2 = cpuid_find(c, 0xb, 2);
	assert_non_null(b1);
	assert_non_null(b2);
	assert_int_equal(b1->eax, 1); /* package shift */
	assert_int_equal(b1->ebx, 2);
	assert_int_equal((b1->ecx >> 8) & 0xff, 2);
	assert_int_equal(b1->edx, 1);
	assert_int_equal((b2->ecx >> 8) & 0xff, 0); /* invalid level ends the list */
	assert_int_equal(b2->ecx & 0xff, 2);
	free(c);
	free(sup);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_templates_known),
		cmocka_unit_test(test_baseline_masks),
		cmocka_unit_test(test_topology),
		cmocka_unit_test(test_topology_adds_core_level),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
