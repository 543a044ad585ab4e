/* SPDX-License-Identifier: MIT */
/* PCI configuration access through ECAM (bus 0), capability walking and BAR sizing. */
#include "probe.h"

#define CAP_WALK_MAX 48

static uint64_t bar_next = LAYOUT_PCI_MMIO_START + LAYOUT_PCI_MMIO_SIZE / 2;

uint64_t pci_ecam_base(void)
{
	return cmdline_u64("ecam", LAYOUT_PCI_ECAM_START);
}

uint8_t pci_read8(const struct pci_dev *d, unsigned off) { return mmio_read8(d->cfg + off); }
uint16_t pci_read16(const struct pci_dev *d, unsigned off) { return mmio_read16(d->cfg + off); }
uint32_t pci_read32(const struct pci_dev *d, unsigned off) { return mmio_read32(d->cfg + off); }
void pci_write8(const struct pci_dev *d, unsigned off, uint8_t v) { mmio_write8(d->cfg + off, v); }
void pci_write16(const struct pci_dev *d, unsigned off, uint16_t v) { mmio_write16(d->cfg + off, v); }
void pci_write32(const struct pci_dev *d, unsigned off, uint32_t v) { mmio_write32(d->cfg + off, v); }

bool pci_dev_at(unsigned dev, unsigned fn, struct pci_dev *out)
{
	uint32_t id;
	out->dev = (uint8_t)dev;
	out->fn = (uint8_t)fn;
	out->cfg = pci_ecam_base() + ((uint64_t)dev << 15) + ((uint64_t)fn << 12);
	id = mmio_read32(out->cfg);
	out->vendor = (uint16_t)id;
	out->device = (uint16_t)(id >> 16);
	return out->vendor != 0xffff && out->vendor != 0;
}

bool pci_find(uint16_t vendor, uint16_t device, struct pci_dev *out)
{
	for (unsigned dev = 0; dev < 32; dev++) {
		for (unsigned fn = 0; fn < 8; fn++) {
			if (!pci_dev_at(dev, fn, out)) {
				if (fn == 0)
					break;
				continue;
			}
			if (out->vendor == vendor && out->device == device)
				return true;
			if (fn == 0 && !(pci_read8(out, 0x0e) & 0x80))
				break; /* single-function device */
		}
	}
	return false;
}

unsigned pci_find_cap(const struct pci_dev *d, uint8_t id, unsigned after)
{
	unsigned off;
	bool seen_after = after == 0;
	if (!(pci_read16(d, 0x06) & 0x10))
		return 0;
	off = pci_read8(d, 0x34) & 0xfc;
	for (unsigned n = 0; off; n++) {
		if (n >= CAP_WALK_MAX)
			probe_fail("%02x.%x: capability list loops", d->dev, d->fn);
		if (off < 0x40)
			probe_fail("%02x.%x: capability pointer 0x%x points into the header", d->dev,
				   d->fn, off);
		if (seen_after && pci_read8(d, off) == id)
			return off;
		if (off == after)
			seen_after = true;
		off = pci_read8(d, off + 1) & 0xfc;
	}
	return 0;
}

bool pci_bar(const struct pci_dev *d, unsigned bar, uint64_t *addr, uint64_t *size, bool *assigned)
{
	unsigned off = 0x10 + 4 * bar;
	uint32_t lo = pci_read32(d, off), hi = 0, mlo, mhi = 0xffffffff;
	uint16_t cmd = pci_read16(d, 0x04);
	bool is64 = ((lo >> 1) & 3) == 2;
	uint64_t a, mask;

	*assigned = false;
	if (lo & 1)
		return false; /* I/O BAR */
	pci_write16(d, 0x04, cmd & (uint16_t)~(PCI_CMD_MEM | 1));
	pci_write32(d, off, 0xffffffff);
	mlo = pci_read32(d, off);
	pci_write32(d, off, lo);
	if (is64) {
		hi = pci_read32(d, off + 4);
		pci_write32(d, off + 4, 0xffffffff);
		mhi = pci_read32(d, off + 4);
		pci_write32(d, off + 4, hi);
	}
	mask = ((uint64_t)mhi << 32) | (mlo & ~0xfu);
	if (!is64)
		mask |= 0xffffffff00000000ull;
	if (!(mlo & ~0xfu)) {
		pci_write16(d, 0x04, cmd);
		return false; /* not implemented */
	}
	*size = ~mask + 1;
	a = ((uint64_t)hi << 32) | (lo & ~0xfu);
	if (a == 0 || a + *size > LAYOUT_MMIO_HOLE_END) {
		a = (bar_next + *size - 1) & ~(*size - 1);
		bar_next = a + *size;
		pci_write32(d, off, (uint32_t)a | (lo & 0xf));
		if (is64)
			pci_write32(d, off + 4, (uint32_t)(a >> 32));
		*assigned = true;
	}
	*addr = a;
	pci_write16(d, 0x04, cmd | PCI_CMD_MEM);
	return true;
}

uint32_t pci_cf8_read32(unsigned dev, unsigned fn, unsigned off)
{
	outl(PORT_PCI_CONFIG_ADDR, 0x80000000u | (dev << 11) | (fn << 8) | (off & 0xfc));
	return inl(PORT_PCI_CONFIG_DATA);
}
