/* SPDX-License-Identifier: MIT */
/*
 * The guest memory map (e820), built from the gmem regions and memory/layout.h. The same table
 * is written into the zero page (bzImage) and converted into the PVH memmap.
 */
#include "boot/boot.h"
#include "memory/layout.h"

#include <errno.h>

static int e820_add(struct e820_entry *tab, unsigned max, unsigned *n, uint64_t start, uint64_t end,
		    uint32_t type)
{
	if (end <= start)
		return 0;
	if (*n >= max)
		return -ENOSPC;
	tab[*n] = (struct e820_entry){.addr = start, .size = end - start, .type = type};
	(*n)++;
	return 0;
}

static bool ranges_overlap(uint64_t a, uint64_t a_end, uint64_t b, uint64_t b_end)
{
	return a < b_end && b < a_end;
}

int boot_e820_build(const struct gmem *m, struct e820_entry *tab, unsigned max, unsigned *n)
{
	const uint64_t ecam_end = LAYOUT_PCI_ECAM_START + LAYOUT_PCI_ECAM_SIZE;
	int r;
	*n = 0;
	for (unsigned i = 0; i < m->nr_regions; i++) {
		const struct gmem_region *g = &m->regions[i];
		uint64_t start = g->gpa, end;
		if (g->size == 0)
			continue;
		if (add_overflows(g->gpa, g->size, &end))
			return -EINVAL;
		if (ranges_overlap(start, end, LAYOUT_PCI_ECAM_START, ecam_end))
			return -EINVAL;
		/* RAM below the EBDA, then RAM from 1 MiB; [EBDA, 1 MiB) is reserved below. */
		r = e820_add(tab, max, n, start, MIN(end, LAYOUT_EBDA_START), E820_TYPE_RAM);
		if (r)
			return r;
		r = e820_add(tab, max, n, MAX(start, LAYOUT_HIGH_RAM_START), end, E820_TYPE_RAM);
		if (r)
			return r;
	}
	r = e820_add(tab, max, n, LAYOUT_EBDA_START, LAYOUT_HIGH_RAM_START, E820_TYPE_RESERVED);
	if (r)
		return r;
	r = e820_add(tab, max, n, LAYOUT_PCI_ECAM_START, ecam_end, E820_TYPE_RESERVED);
	if (r)
		return r;

	/* Insertion sort by address (a handful of entries), then reject overlaps. */
	for (unsigned i = 1; i < *n; i++) {
		struct e820_entry t = tab[i];
		unsigned j = i;
		for (; j > 0 && tab[j - 1].addr > t.addr; j--)
			tab[j] = tab[j - 1];
		tab[j] = t;
	}
	for (unsigned i = 0; i + 1 < *n; i++)
		if (tab[i].addr + tab[i].size > tab[i + 1].addr)
			return -EINVAL;
	return 0;
}
