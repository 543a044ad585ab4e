/* SPDX-License-Identifier: MIT */
/*
 * Boot-time CPU state: the flat GDT, the 4 GiB identity page tables and the register values
 * for each entry mode. The segment descriptions here are the single source the machine uses
 * to program KVM, and the same ones are encoded into the guest's GDT.
 */
#include "boot/boot.h"
#include "memory/layout.h"

#include <errno.h>
#include <string.h>

#define FLAT_LIMIT 0xffffffffU

const struct boot_segment boot_seg_code32 = {
    .selector = BOOT_SEL_CODE32,
    .base = 0,
    .limit = FLAT_LIMIT,
    .type = 0xb,
    .s = 1,
    .dpl = 0,
    .present = 1,
    .db = 1,
    .l = 0,
    .g = 1,
};

const struct boot_segment boot_seg_code64 = {
    .selector = BOOT_SEL_CODE64,
    .base = 0,
    .limit = FLAT_LIMIT,
    .type = 0xb,
    .s = 1,
    .dpl = 0,
    .present = 1,
    .db = 0,
    .l = 1,
    .g = 1,
};

const struct boot_segment boot_seg_data = {
    .selector = BOOT_SEL_DATA,
    .base = 0,
    .limit = FLAT_LIMIT,
    .type = 0x3,
    .s = 1,
    .dpl = 0,
    .present = 1,
    .db = 1,
    .l = 0,
    .g = 1,
};

const struct boot_segment boot_seg_tss = {
    .selector = 0,
    .base = 0,
    .limit = 0x67,
    .type = 0xb,
    .s = 0,
    .dpl = 0,
    .present = 1,
    .db = 0,
    .l = 0,
    .g = 0,
};

_Static_assert(LAYOUT_GDT + BOOT_GDT_ENTRIES * 8 <= LAYOUT_IDT, "GDT runs into the IDT");

uint64_t boot_segment_to_desc(const struct boot_segment *s)
{
	uint64_t limit = s->g ? (uint64_t)s->limit >> 12 : s->limit;
	uint64_t base = s->base & 0xffffffffULL;
	uint64_t d = 0;
	d |= limit & 0xffff;
	d |= (base & 0xffffff) << 16;
	d |= (uint64_t)(s->type & 0xf) << 40;
	d |= (uint64_t)(s->s & 1) << 44;
	d |= (uint64_t)(s->dpl & 3) << 45;
	d |= (uint64_t)(s->present & 1) << 47;
	d |= ((limit >> 16) & 0xf) << 48;
	d |= (uint64_t)(s->l & 1) << 53;
	d |= (uint64_t)(s->db & 1) << 54;
	d |= (uint64_t)(s->g & 1) << 55;
	d |= (base >> 24) << 56;
	return d;
}

int boot_gdt_write(const struct gmem *m)
{
	uint64_t gdt[BOOT_GDT_ENTRIES] = {0};
	gdt[BOOT_SEL_CODE32 / 8] = boot_segment_to_desc(&boot_seg_code32);
	gdt[BOOT_SEL_CODE64 / 8] = boot_segment_to_desc(&boot_seg_code64);
	gdt[BOOT_SEL_DATA / 8] = boot_segment_to_desc(&boot_seg_data);
	return gmem_write(m, LAYOUT_GDT, gdt, sizeof(gdt));
}

_Static_assert(LAYOUT_PML4 + 0x1000 <= LAYOUT_PDPT && LAYOUT_PDPT + 0x1000 <= LAYOUT_PD,
	       "page tables overlap");

int boot_pagetables_write(const struct gmem *m)
{
	uint64_t *pml4 = gmem_ptr(m, LAYOUT_PML4, 0x1000);
	uint64_t *pdpt = gmem_ptr(m, LAYOUT_PDPT, 0x1000);
	uint64_t *pd = gmem_ptr(m, LAYOUT_PD, 4 * 0x1000);
	if (!pml4 || !pdpt || !pd)
		return -EFAULT;
	memset(pml4, 0, 0x1000);
	memset(pdpt, 0, 0x1000);
	pml4[0] = LAYOUT_PDPT | BOOT_PTE_PRESENT | BOOT_PTE_RW;
	for (uint64_t i = 0; i < 4; i++)
		pdpt[i] = (LAYOUT_PD + i * 0x1000) | BOOT_PTE_PRESENT | BOOT_PTE_RW;
	for (uint64_t i = 0; i < 4 * 512; i++)
		pd[i] = (i << 21) | BOOT_PTE_PRESENT | BOOT_PTE_RW | BOOT_PTE_PS;
	return 0;
}

void boot_entry_init_cpu(struct boot_entry *e, enum boot_mode mode)
{
	e->mode = mode;
	e->rflags = BOOT_RFLAGS_DEFAULT;
	e->gdt_base = LAYOUT_GDT;
	e->gdt_limit = BOOT_GDT_LIMIT;
	e->ds = boot_seg_data;
	e->tr = boot_seg_tss;
	if (mode == BOOT_MODE_LONG64) {
		e->cs = boot_seg_code64;
		e->cr0 = BOOT_CR0_PE | BOOT_CR0_ET | BOOT_CR0_PG;
		e->cr3 = LAYOUT_PML4;
		e->cr4 = BOOT_CR4_PAE;
		e->efer = BOOT_EFER_LME | BOOT_EFER_LMA;
	} else {
		e->cs = boot_seg_code32;
		e->cr0 = BOOT_CR0_PE | BOOT_CR0_ET;
		e->cr3 = 0;
		e->cr4 = 0;
		e->efer = 0;
	}
}
