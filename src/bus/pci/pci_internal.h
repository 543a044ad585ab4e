/* SPDX-License-Identifier: MIT */
/*
 * Internal glue between the PCI core files (pci_cfg.c, pci_msix.c, pci_host.c). Devices
 * use pci.h only.
 */
#ifndef VIREO_BUS_PCI_PCI_INTERNAL_H
#define VIREO_BUS_PCI_PCI_INTERNAL_H

#include "bus/pci/pci.h"

/* Do [a, a+alen) and [b, b+blen) intersect? Overflow-safe; empty ranges never do. */
static inline bool pci_ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a >= b ? a - b < blen : b - a < alen;
}

static inline const struct platform *pci_dev_plat(const struct pci_dev *d)
{
	return d->host ? d->host->plat : NULL;
}

static inline const struct platform_ops *pci_dev_plat_ops(const struct pci_dev *d)
{
	const struct platform *p = pci_dev_plat(d);
	return p ? p->ops : NULL;
}

/* Little-endian helpers on config bytes. */
uint32_t pci_cfg_get(const uint8_t *cfg, uint32_t off, unsigned len);
void pci_cfg_put(uint8_t *cfg, uint32_t off, unsigned len, uint32_t val);

/* pci_cfg.c: the full config access paths (hooks included). off/len validated by caller. */
uint32_t pci_dev_cfg_read(struct pci_dev *d, uint32_t off, unsigned len);
/* Caller holds the host's cfg_lock when the device is attached. */
void pci_dev_cfg_write(struct pci_dev *d, uint32_t off, unsigned len, uint32_t val);
/* Decoded address of BAR idx; returns false if the BAR is unused or decoding is off. */
bool pci_dev_bar_decode(struct pci_dev *d, unsigned idx, uint64_t *addr, bool *sizing);
/* True for the upper half of a 64-bit BAR or an unused BAR. */
bool pci_dev_bar_unused(const struct pci_dev *d, unsigned idx);

/* pci_msix.c */
int pci_msix_handles_alloc(struct pci_dev *d) WUR;
void pci_msix_handles_free(struct pci_dev *d);
/* Push routes of live vectors with changed address/data, deliver pending ones. */
void pci_msix_sync(struct pci_dev *d);
/* BAR accesses touching the table or PBA: served (or rejected) here, return true. */
bool pci_msix_mmio_read(struct pci_dev *d, uint64_t off, void *data, unsigned len);
bool pci_msix_mmio_write(struct pci_dev *d, uint64_t off, const void *data, unsigned len);

/* pci_host.c: re-evaluate every BAR of every device (caller holds cfg_lock). */
void pci_host_maps_update(struct pci_host *h);

#endif
