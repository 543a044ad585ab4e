/* SPDX-License-Identifier: MIT */
/* boot_e820_build(): the guest memory map from gmem regions and layout.h. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "boot/boot.h"
#include "memory/layout.h"

#define MIB (1ULL << 20)

static void expect_entry(const struct e820_entry *e, uint64_t addr, uint64_t end, uint32_t type)
{
	assert_int_equal(e->addr, addr);
	assert_int_equal(e->addr + e->size, end);
	assert_int_equal(e->type, type);
}

static void test_fake_64m(void **state)
{
	(void)state;
	static uint8_t dummy[16];
	struct gmem m;
	struct e820_entry t[16];
	unsigned n = 99;
	/* gmem_init_fake does not touch the buffer; only the region description matters. */
	assert_int_equal(gmem_init_fake(&m, 0, dummy, 64 * MIB), 0);
	assert_int_equal(boot_e820_build(&m, t, 16, &n), 0);
	assert_int_equal(n, 4);
	expect_entry(&t[0], 0, LAYOUT_EBDA_START, E820_TYPE_RAM);
	expect_entry(&t[1], LAYOUT_EBDA_START, 0x100000, E820_TYPE_RESERVED);
	expect_entry(&t[2], 0x100000, 64 * MIB, E820_TYPE_RAM);
	expect_entry(&t[3], LAYOUT_PCI_ECAM_START, LAYOUT_PCI_ECAM_START + LAYOUT_PCI_ECAM_SIZE,
		     E820_TYPE_RESERVED);
	/* The ACPI tables and the RSDP lie inside a reserved entry. */
	assert_true(LAYOUT_ACPI_START >= t[1].addr);
	assert_true(LAYOUT_ACPI_START + LAYOUT_ACPI_SIZE <= t[1].addr + t[1].size);

	/* Exactly enough room, then one too few. */
	assert_int_equal(boot_e820_build(&m, t, 4, &n), 0);
	assert_int_equal(boot_e820_build(&m, t, 3, &n), -ENOSPC);
	assert_int_equal(boot_e820_build(&m, t, 0, &n), -ENOSPC);
}

static void test_split_around_hole(void **state)
{
	(void)state;
	struct gmem m;
	struct e820_entry t[16];
	unsigned n;
	/* memfd-backed and sparse: costs nothing until touched. */
	assert_int_equal(gmem_create(&m, LAYOUT_MMIO_HOLE_START + 512 * MIB, 0), 0);
	assert_int_equal(boot_e820_build(&m, t, 16, &n), 0);
	assert_int_equal(n, 5);
	expect_entry(&t[0], 0, LAYOUT_EBDA_START, E820_TYPE_RAM);
	expect_entry(&t[1], LAYOUT_EBDA_START, 0x100000, E820_TYPE_RESERVED);
	expect_entry(&t[2], 0x100000, LAYOUT_MMIO_HOLE_START, E820_TYPE_RAM);
	expect_entry(&t[3], LAYOUT_PCI_ECAM_START, LAYOUT_PCI_ECAM_START + LAYOUT_PCI_ECAM_SIZE,
		     E820_TYPE_RESERVED);
	expect_entry(&t[4], LAYOUT_HIGH_MEM_START, LAYOUT_HIGH_MEM_START + 512 * MIB,
		     E820_TYPE_RAM);
	gmem_destroy(&m);
}

static void test_odd_regions(void **state)
{
	(void)state;
	static uint8_t dummy[16];
	struct gmem m;
	struct e820_entry t[16];
	unsigned n;

	/* RAM only above 1 MiB: no low RAM entry. */
	assert_int_equal(gmem_init_fake(&m, 0x100000, dummy, 16 * MIB), 0);
	assert_int_equal(boot_e820_build(&m, t, 16, &n), 0);
	assert_int_equal(n, 3);
	expect_entry(&t[0], LAYOUT_EBDA_START, 0x100000, E820_TYPE_RESERVED);
	expect_entry(&t[1], 0x100000, 17 * MIB, E820_TYPE_RAM);

	/* Small RAM ending inside the EBDA area. */
	assert_int_equal(gmem_init_fake(&m, 0, dummy, 0xa0000), 0);
	assert_int_equal(boot_e820_build(&m, t, 16, &n), 0);
	assert_int_equal(n, 3);
	expect_entry(&t[0], 0, LAYOUT_EBDA_START, E820_TYPE_RAM);
	expect_entry(&t[1], LAYOUT_EBDA_START, 0x100000, E820_TYPE_RESERVED);

	/* RAM over the ECAM window is a configuration error. */
	assert_int_equal(gmem_init_fake(&m, LAYOUT_PCI_ECAM_START - 0x1000, dummy, 0x2000), 0);
	assert_int_equal(boot_e820_build(&m, t, 16, &n), -EINVAL);

	/* Overlapping regions (hand-built) are rejected. */
	assert_int_equal(gmem_init_fake(&m, 0, dummy, 32 * MIB), 0);
	m.regions[1] = m.regions[0];
	m.regions[1].gpa = 16 * MIB;
	m.nr_regions = 2;
	assert_int_equal(boot_e820_build(&m, t, 16, &n), -EINVAL);
	/* A region whose end overflows. */
	m.regions[1].gpa = UINT64_MAX - 0x1000;
	assert_int_equal(boot_e820_build(&m, t, 16, &n), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fake_64m),
	    cmocka_unit_test(test_split_around_hole),
	    cmocka_unit_test(test_odd_regions),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
