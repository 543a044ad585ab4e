/* SPDX-License-Identifier: MIT */
/*
 * Config space of one function: the type-0 header, write masks, BAR registers, the
 * capability list. Writes are applied byte by byte through wmask (writable bits) and
 * w1cmask (write-1-to-clear bits), so BAR sizing falls out of the masks: writing
 * all-ones leaves ~(size-1) plus the read-only type bits.
 */
#include "bus/pci/pci_internal.h"
#include "common/log.h"

#include <errno.h>
#include <string.h>

/* Command bits a guest may set: memory space, bus master, parity response, SERR#,
 * INTx disable. I/O space stays 0: there are no I/O BARs. */
#define PCI_CMD_WMASK 0x0546
/* Status bits that are write-1-to-clear: master data parity error (8), signalled/received
 * target abort, received master abort, signalled system error, detected parity error. */
#define PCI_STATUS_W1C 0xf900

uint32_t pci_cfg_get(const uint8_t *cfg, uint32_t off, unsigned len)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < len; i++)
		v |= (uint32_t)cfg[off + i] << (8 * i);
	return v;
}

void pci_cfg_put(uint8_t *cfg, uint32_t off, unsigned len, uint32_t val)
{
	for (unsigned i = 0; i < len; i++)
		cfg[off + i] = (uint8_t)(val >> (8 * i));
}

void pci_dev_init(struct pci_dev *d, uint16_t vendor, uint16_t device, uint32_t class_code,
		  uint8_t revision, uint16_t subsys_vendor, uint16_t subsys_id,
		  const struct pci_dev_ops *ops, void *opaque)
{
	memset(d, 0, sizeof(*d));
	pci_cfg_put(d->cfg, PCI_CFG_VENDOR_ID, 2, vendor);
	pci_cfg_put(d->cfg, PCI_CFG_DEVICE_ID, 2, device);
	d->cfg[PCI_CFG_REVISION] = revision;
	pci_cfg_put(d->cfg, PCI_CFG_CLASS_PROG, 3, class_code & 0xffffff);
	d->cfg[PCI_CFG_HEADER_TYPE] = 0x00; /* type 0, single function */
	pci_cfg_put(d->cfg, PCI_CFG_SUBSYS_VENDOR, 2, subsys_vendor);
	pci_cfg_put(d->cfg, PCI_CFG_SUBSYS_ID, 2, subsys_id);
	d->cfg[PCI_CFG_INT_PIN] = 0; /* no INTx */

	pci_cfg_put(d->wmask, PCI_CFG_COMMAND, 2, PCI_CMD_WMASK);
	pci_cfg_put(d->w1cmask, PCI_CFG_STATUS, 2, PCI_STATUS_W1C);
	d->wmask[0x0c] = 0xff; /* cache line size: scratch for the OS */
	d->wmask[PCI_CFG_INT_LINE] = 0xff;

	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		d->bars[i].owner = d;
		d->bars[i].idx = i;
	}
	d->cap_free = PCI_CFG_CAP_START;
	d->ops = ops;
	d->opaque = opaque;
	pthread_mutex_init(&d->lock, NULL);
}

void pci_dev_fini(struct pci_dev *d)
{
	if (d->host) {
		/* Still attached: the host owns the bus registrations. */
		vwarn("pci: device %02x.0 finalised while attached; call pci_host_fini first",
		      d->slot);
		return;
	}
	pthread_mutex_destroy(&d->lock);
}

int pci_dev_add_cap(struct pci_dev *d, uint8_t cap_id, const void *body, uint8_t body_len,
		    const void *wmask_body, uint8_t *off_out)
{
	unsigned off = ALIGN_UP((unsigned)d->cap_free, 4u);
	unsigned total = 2u + body_len;

	if ((body_len && !body) || d->host)
		return -EINVAL;
	if (off + total > PCI_CFG_LEGACY_SIZE)
		return -ENOSPC;
	pthread_mutex_lock(&d->lock);
	d->cfg[off] = cap_id;
	d->cfg[off + 1] = 0;
	if (body_len)
		memcpy(&d->cfg[off + 2], body, body_len);
	if (wmask_body)
		memcpy(&d->wmask[off + 2], wmask_body, body_len);
	if (d->last_cap)
		d->cfg[d->last_cap + 1] = (uint8_t)off;
	else
		d->cfg[PCI_CFG_CAP_PTR] = (uint8_t)off;
	d->cfg[PCI_CFG_STATUS] |= PCI_CFG_STATUS_CAP_LIST;
	d->last_cap = (uint8_t)off;
	d->cap_free = (uint16_t)(off + total);
	pthread_mutex_unlock(&d->lock);
	if (off_out)
		*off_out = (uint8_t)off;
	return 0;
}

bool pci_dev_bar_unused(const struct pci_dev *d, unsigned idx)
{
	if (idx >= PCI_NUM_BARS || !d->bars[idx].size)
		return true;
	return idx > 0 && d->bars[idx - 1].is64 && d->bars[idx - 1].size;
}

int pci_dev_set_bar(struct pci_dev *d, unsigned idx, uint64_t size, bool is64,
		    const struct bus_ops *ops, void *opaque)
{
	uint64_t mask;

	if (idx >= PCI_NUM_BARS || (is64 && idx + 1 >= PCI_NUM_BARS) || d->host)
		return -EINVAL;
	if (size < 4096 || (size & (size - 1)) || (!is64 && size > (1ULL << 31)) ||
	    size > (1ULL << 62))
		return -EINVAL;
	/* Neither half may already be in use, nor be the upper half of a 64-bit BAR. */
	if (d->bars[idx].size || (is64 && d->bars[idx + 1].size) ||
	    (idx > 0 && d->bars[idx - 1].is64 && d->bars[idx - 1].size))
		return -EBUSY;

	mask = ~(size - 1);
	pthread_mutex_lock(&d->lock);
	d->bars[idx].size = size;
	d->bars[idx].is64 = is64;
	d->bars[idx].ops = ops;
	d->bars[idx].opaque = opaque;
	/* Memory BAR, non-prefetchable; type 00 (32-bit) or 10 (64-bit). */
	pci_cfg_put(d->cfg, PCI_CFG_BAR0 + 4 * idx, 4, is64 ? PCI_CFG_BAR_MEM_64 : 0);
	pci_cfg_put(d->wmask, PCI_CFG_BAR0 + 4 * idx, 4, (uint32_t)mask & 0xfffffff0u);
	if (is64) {
		pci_cfg_put(d->cfg, PCI_CFG_BAR0 + 4 * (idx + 1), 4, 0);
		pci_cfg_put(d->wmask, PCI_CFG_BAR0 + 4 * (idx + 1), 4, (uint32_t)(mask >> 32));
	}
	pthread_mutex_unlock(&d->lock);
	return 0;
}

/* Caller holds d->lock. */
static uint64_t pci_dev_bar_reg(const struct pci_dev *d, unsigned idx, bool *sizing)
{
	uint32_t lo = pci_cfg_get(d->cfg, PCI_CFG_BAR0 + 4 * idx, 4);
	uint32_t wm = pci_cfg_get(d->wmask, PCI_CFG_BAR0 + 4 * idx, 4);
	uint64_t addr = lo & 0xfffffff0u;
	bool ones = wm && (lo & wm) == wm;

	if (d->bars[idx].is64) {
		uint32_t hi = pci_cfg_get(d->cfg, PCI_CFG_BAR0 + 4 * (idx + 1), 4);
		uint32_t hwm = pci_cfg_get(d->wmask, PCI_CFG_BAR0 + 4 * (idx + 1), 4);
		addr |= (uint64_t)hi << 32;
		ones = ones || (hwm && (hi & hwm) == hwm);
	}
	/* Either half still holds the all-ones sizing pattern: not an address to log. */
	if (sizing)
		*sizing = ones;
	return addr;
}

bool pci_dev_bar_decode(struct pci_dev *d, unsigned idx, uint64_t *addr, bool *sizing)
{
	bool on;

	if (pci_dev_bar_unused(d, idx))
		return false;
	pthread_mutex_lock(&d->lock);
	on = pci_cfg_get(d->cfg, PCI_CFG_COMMAND, 2) & PCI_CFG_CMD_MEM;
	*addr = pci_dev_bar_reg(d, idx, sizing);
	pthread_mutex_unlock(&d->lock);
	return on;
}

uint32_t pci_dev_cfg_get(struct pci_dev *d, uint32_t off, unsigned len)
{
	uint32_t v;

	if (len < 1 || len > 4 || off >= PCI_CFG_SPACE_SIZE || len > PCI_CFG_SPACE_SIZE - off)
		return 0xffffffffu >> (32 - 8 * (len >= 1 && len <= 4 ? len : 4));
	pthread_mutex_lock(&d->lock);
	v = pci_cfg_get(d->cfg, off, len);
	pthread_mutex_unlock(&d->lock);
	return v;
}

bool pci_dev_bus_master(struct pci_dev *d)
{
	return pci_dev_cfg_get(d, PCI_CFG_COMMAND, 2) & PCI_CFG_CMD_MASTER;
}

bool pci_dev_mem_enabled(struct pci_dev *d)
{
	return pci_dev_cfg_get(d, PCI_CFG_COMMAND, 2) & PCI_CFG_CMD_MEM;
}

uint32_t pci_dev_cfg_read(struct pci_dev *d, uint32_t off, unsigned len)
{
	uint32_t v;

	if (d->ops && d->ops->cfg_read && d->ops->cfg_read(d, off, len, &v))
		return len == 4 ? v : v & ((1u << (8 * len)) - 1);
	return pci_dev_cfg_get(d, off, len);
}

void pci_dev_cfg_write(struct pci_dev *d, uint32_t off, unsigned len, uint32_t val)
{
	bool cmd, maps, msix;

	pthread_mutex_lock(&d->lock);
	for (unsigned i = 0; i < len; i++) {
		uint32_t o = off + i;
		uint8_t b = (uint8_t)(val >> (8 * i));
		uint8_t n = (uint8_t)((d->cfg[o] & ~d->wmask[o]) | (b & d->wmask[o]));
		d->cfg[o] = (uint8_t)(n & ~(b & d->w1cmask[o]));
	}
	pthread_mutex_unlock(&d->lock);

	cmd = pci_ranges_overlap(off, len, PCI_CFG_COMMAND, 2);
	maps = cmd || pci_ranges_overlap(off, len, PCI_CFG_BAR0, 4 * PCI_NUM_BARS);
	/* Bus mastering gates MSI-X delivery too. */
	msix = d->has_msix && (cmd || pci_ranges_overlap(off, len, d->msix.cap_off + 2u, 2));

	if (maps && d->host)
		pci_host_maps_update(d->host);
	if (msix) {
		pci_msix_sync(d);
		if (d->ops && d->ops->msix_changed)
			d->ops->msix_changed(d);
	}
	if (d->ops && d->ops->cfg_written)
		d->ops->cfg_written(d, off, len);
}
