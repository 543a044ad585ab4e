/* SPDX-License-Identifier: MIT */
/* Boot CPU state: descriptor encoding, GDT and page tables in guest memory, entry registers. */
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

static void test_descriptors(void **state)
{
	(void)state;
	assert_int_equal(boot_segment_to_desc(&boot_seg_code32), 0x00cf9b000000ffffULL);
	assert_int_equal(boot_segment_to_desc(&boot_seg_code64), 0x00af9b000000ffffULL);
	assert_int_equal(boot_segment_to_desc(&boot_seg_data), 0x00cf93000000ffffULL);
	/* Byte-granular TSS at 0: limit 0x67, type 0xb, present. */
	assert_int_equal(boot_segment_to_desc(&boot_seg_tss), 0x00008b0000000067ULL);
	/* Base bits are scattered over the descriptor. */
	struct boot_segment s = boot_seg_data;
	s.base = 0x12345678;
	s.limit = 0xfffff;
	s.g = 0;
	assert_int_equal(boot_segment_to_desc(&s), 0x124f93345678ffffULL);
	assert_int_equal(boot_seg_code32.selector, BOOT_SEL_CODE32);
	assert_int_equal(boot_seg_code64.selector, 0x10); /* __BOOT_CS */
	assert_int_equal(boot_seg_data.selector, 0x18);	  /* __BOOT_DS */
}

static void test_tables_in_memory(void **state)
{
	(void)state;
	uint8_t *mem = calloc(1, 0x100000);
	assert_non_null(mem);
	memset(mem, 0xee, 0x100000);
	struct gmem m;
	assert_int_equal(gmem_init_fake(&m, 0, mem, 0x100000), 0);
	assert_int_equal(boot_gdt_write(&m), 0);
	uint64_t gdt[5];
	memcpy(gdt, mem + LAYOUT_GDT, sizeof(gdt));
	assert_int_equal(gdt[0], 0);
	assert_int_equal(gdt[BOOT_SEL_CODE32 / 8], boot_segment_to_desc(&boot_seg_code32));
	assert_int_equal(gdt[BOOT_SEL_CODE64 / 8], boot_segment_to_desc(&boot_seg_code64));
	assert_int_equal(gdt[BOOT_SEL_DATA / 8], boot_segment_to_desc(&boot_seg_data));
	assert_int_equal(gdt[4], 0xeeeeeeeeeeeeeeeeULL); /* the IDT slot is not touched */

	assert_int_equal(boot_pagetables_write(&m), 0);
	uint64_t e;
	memcpy(&e, mem + LAYOUT_PML4, 8);
	assert_int_equal(e, LAYOUT_PDPT | BOOT_PTE_PRESENT | BOOT_PTE_RW);
	memcpy(&e, mem + LAYOUT_PDPT + 3 * 8, 8);
	assert_int_equal(e, (LAYOUT_PD + 0x3000) | 3);
	/* Last 2 MiB page below 4 GiB. */
	memcpy(&e, mem + LAYOUT_PD + 4 * 0x1000 - 8, 8);
	assert_int_equal(e, 0xffe00000ULL | 0x83);
	/* Nothing written past the last PD page. */
	assert_int_equal(mem[LAYOUT_PD + 4 * 0x1000], 0xee);
	free(mem);

	/* Memory without the low area. */
	static uint8_t small[4096];
	assert_int_equal(gmem_init_fake(&m, 0x200000, small, sizeof(small)), 0);
	assert_int_equal(boot_gdt_write(&m), -EFAULT);
	assert_int_equal(boot_pagetables_write(&m), -EFAULT);
}

static void test_entry_modes(void **state)
{
	(void)state;
	struct boot_entry e;
	memset(&e, 0x5a, sizeof(e));
	boot_entry_init_cpu(&e, BOOT_MODE_LONG64);
	assert_int_equal(e.mode, BOOT_MODE_LONG64);
	assert_int_equal(e.cr0 & (BOOT_CR0_PE | BOOT_CR0_PG), BOOT_CR0_PE | BOOT_CR0_PG);
	assert_int_equal(e.cr4 & BOOT_CR4_PAE, BOOT_CR4_PAE);
	assert_int_equal(e.efer, BOOT_EFER_LME | BOOT_EFER_LMA);
	assert_int_equal(e.cr3, LAYOUT_PML4);
	assert_int_equal(e.cs.l, 1);
	assert_int_equal(e.rflags, 2);
	boot_entry_init_cpu(&e, BOOT_MODE_PROT32);
	assert_int_equal(e.cr0 & BOOT_CR0_PG, 0);
	assert_int_equal(e.efer, 0);
	assert_int_equal(e.cs.selector, BOOT_SEL_CODE32);
	assert_int_equal(e.cs.db, 1);
	assert_int_equal(e.ds.selector, BOOT_SEL_DATA);
	assert_int_equal(e.gdt_limit, BOOT_GDT_LIMIT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_descriptors),
	    cmocka_unit_test(test_tables_in_memory),
	    cmocka_unit_test(test_entry_modes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
