/* SPDX-License-Identifier: MIT */
/* PVH boot contract: entry registers, struct hvm_start_info, the command line and the memory
 * map (the runner passes --memory 64M and "mem=64 hello=probe"). */
#include "probe.h"

PROBE("pvh");

#define E820_RAM 1
#define E820_RESERVED 2

static bool inside(uint64_t a, uint64_t len, uint64_t b, uint64_t blen)
{
	return a >= b && a - b <= blen && len <= blen - (a - b);
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

void probe_main(const struct hvm_start_info *si)
{
	const struct boot_entry_state *st = &boot_entry_state;
	const struct hvm_memmap_entry *mm;
	uint64_t img = (uint64_t)(uintptr_t)__image_start;
	uint64_t img_len = (uint64_t)(__image_end - __image_start);
	uint64_t ram = 0, mem_mib = cmdline_u64("mem", 0), prev_end = 0;
	bool img_in_ram = false, ecam_reserved = false;
	bool qemu = cmdline_has("qemu");
	uint32_t n;

	printf("pvh: entry cr0=0x%x cr4=0x%x eflags=0x%x efer=0x%x cs=0x%x ds=0x%x ss=0x%x\n", st->cr0,
	       st->cr4, st->eflags, st->efer, st->cs, st->ds, st->ss);
	CHECK((st->cr0 & 0x80000001) == 0x1, "entry CR0 0x%x: want PE set, PG clear", st->cr0);
	CHECK(!(st->cr0 & 0x60000000), "entry CR0 0x%x: caches disabled (CD/NW)", st->cr0);
	CHECK(st->cr4 == 0, "entry CR4 0x%x, PVH wants 0", st->cr4);
	CHECK(!(st->eflags & 0x200), "entry EFLAGS 0x%x: IF set", st->eflags);
	CHECK(!(st->efer & 0x500), "entry EFER 0x%x: long mode already on", st->efer);

	printf("pvh: start_info at %p version %u flags 0x%x cmdline 0x%lx rsdp 0x%lx memmap 0x%lx x%u\n",
	       (const void *)si, si->version, si->flags, si->cmdline_paddr, si->rsdp_paddr,
	       si->memmap_paddr, si->memmap_entries);
	CHECK(!overlaps((uint64_t)(uintptr_t)si, sizeof(*si), img, img_len),
	      "start_info overlaps the kernel image");
	CHECK(si->version >= 1, "start_info version %u: no memory map", si->version);
	printf("pvh: cmdline \"%s\"\n", cmdline());
	CHECK(cmdline_has("hello") && cmdline_u64("mem", 0) == mem_mib,
	      "command line \"%s\" lacks what the runner passed", cmdline());
	CHECK(!overlaps(si->cmdline_paddr, strlen(cmdline()) + 1, img, img_len),
	      "command line overlaps the kernel image");

	n = si->memmap_entries;
	CHECK(n > 0 && n <= 128, "memmap has %u entries", n);
	CHECK(si->memmap_paddr && si->memmap_paddr < LAYOUT_MMIO_HOLE_START, "memmap at 0x%lx",
	      si->memmap_paddr);
	CHECK(!overlaps(si->memmap_paddr, n * sizeof(*mm), img, img_len),
	      "memmap overlaps the kernel image");
	mm = (const struct hvm_memmap_entry *)(uintptr_t)si->memmap_paddr;
	for (uint32_t i = 0; i < n; i++) {
		const struct hvm_memmap_entry *e = &mm[i];
		printf("pvh: memmap[%u] 0x%09lx-0x%09lx type %u\n", i, e->addr, e->addr + e->size - 1,
		       e->type);
		CHECK(e->size && e->addr + e->size > e->addr, "memmap[%u]: empty or wrapping", i);
		CHECK(e->addr >= prev_end, "memmap[%u] at 0x%lx: unsorted or overlapping", i, e->addr);
		prev_end = e->addr + e->size;
		if (e->type == E820_RAM) {
			ram += e->size;
			CHECK(!overlaps(e->addr, e->size, LAYOUT_MMIO_HOLE_START,
					LAYOUT_MMIO_HOLE_END - LAYOUT_MMIO_HOLE_START) || qemu,
			      "memmap[%u]: RAM inside the MMIO hole", i);
			if (inside(img, img_len, e->addr, e->size))
				img_in_ram = true;
		}
		if (e->type == E820_RESERVED &&
		    inside(LAYOUT_PCI_ECAM_START, LAYOUT_PCI_ECAM_SIZE, e->addr, e->size))
			ecam_reserved = true;
	}
	printf("pvh: %lu KiB RAM in the map, %lu MiB asked\n", ram >> 10, mem_mib);
	CHECK(img_in_ram, "kernel image [0x%lx, +0x%lx) is not inside one RAM entry", img, img_len);
	if (mem_mib) {
		CHECK(ram <= (mem_mib << 20), "memmap has %lu KiB RAM, more than the %lu MiB asked",
		      ram >> 10, mem_mib);
		CHECK(ram >= (mem_mib << 20) - (1 << 20), "memmap has %lu KiB RAM, %lu MiB asked",
		      ram >> 10, mem_mib);
	}
	CHECK(ecam_reserved || qemu, "the PCI ECAM window 0x%llx is not marked reserved",
	      LAYOUT_PCI_ECAM_START);
	probe_pass();
}
