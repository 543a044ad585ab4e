/* SPDX-License-Identifier: MIT */
/*
 * The host bridge: config-space access mechanisms (0xCF8/0xCFC and ECAM), the device
 * table of bus 0, the firmware-style BAR allocator and the BAR map on the MMIO bus.
 */
#include "bus/pci/pci_internal.h"
#include "common/log.h"
#include "memory/gmem.h"
#include "memory/layout.h"

#include <errno.h>
#include <string.h>

#define PCI_CF8_ENABLE 0x80000000u
#define PCI_CF8_EXT_REG 0x0f000000u /* AMD-style extended register bits 11:8 */
#define PCI_ECAM_BUS_SHIFT 20
#define PCI_ECAM_MAX_SIZE (256ULL << 20)

static uint32_t pci_ones(unsigned len)
{
	return len == 1 ? 0xffu : len == 2 ? 0xffffu : 0xffffffffu;
}

static bool pci_host_access_ok(uint32_t off, unsigned len)
{
	return (len == 1 || len == 2 || len == 4) && off < PCI_CFG_SPACE_SIZE &&
	       len <= PCI_CFG_SPACE_SIZE - off && (off & (len - 1)) == 0;
}

static struct pci_dev *pci_host_dev(struct pci_host *h, unsigned slot, unsigned func)
{
	struct pci_dev *d;

	if (slot >= PCI_MAX_DEVICES || func != 0)
		return NULL;
	pthread_mutex_lock(&h->lock);
	d = h->devs[slot];
	pthread_mutex_unlock(&h->lock);
	return d;
}

uint32_t pci_host_cfg_read(struct pci_host *h, unsigned slot, unsigned func, uint32_t off,
			   unsigned len)
{
	struct pci_dev *d;

	if (!pci_host_access_ok(off, len))
		return pci_ones(len);
	d = pci_host_dev(h, slot, func);
	if (!d)
		return pci_ones(len); /* absent: master abort */
	return pci_dev_cfg_read(d, off, len);
}

void pci_host_cfg_write(struct pci_host *h, unsigned slot, unsigned func, uint32_t off,
			unsigned len, uint32_t val)
{
	struct pci_dev *d;

	if (!pci_host_access_ok(off, len))
		return;
	d = pci_host_dev(h, slot, func);
	if (!d)
		return;
	pthread_mutex_lock(&h->cfg_lock);
	pci_dev_cfg_write(d, off, len, val);
	pthread_mutex_unlock(&h->cfg_lock);
}

/* 0xCF8: the address latch, dword accesses only (byte ports 0xCF9.. are not ours). */
static void pci_cf8_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct pci_host *h = opaque;
	uint32_t v = 0xffffffffu;

	if (off == 0 && len == 4) {
		pthread_mutex_lock(&h->lock);
		v = h->config_addr;
		pthread_mutex_unlock(&h->lock);
	}
	memset(data, 0xff, len);
	pci_cfg_put(data, 0, len > 4 ? 4 : len, v);
}

static void pci_cf8_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct pci_host *h = opaque;

	if (off != 0 || len != 4)
		return;
	pthread_mutex_lock(&h->lock);
	h->config_addr = pci_cfg_get(data, 0, 4) & ~3u;
	pthread_mutex_unlock(&h->lock);
}

/* 0xCFC-0xCFF: the data window; byte lane off selects the byte within the dword. */
static bool pci_cfc_target(struct pci_host *h, uint64_t off, unsigned len, unsigned *slot,
			   unsigned *func, uint32_t *reg)
{
	uint32_t a;

	if ((len != 1 && len != 2 && len != 4) || off >= 4 || (off & (len - 1)))
		return false;
	pthread_mutex_lock(&h->lock);
	a = h->config_addr;
	pthread_mutex_unlock(&h->lock);
	if (!(a & PCI_CF8_ENABLE) || ((a >> 16) & 0xff) != 0)
		return false;
	*slot = (a >> 11) & 0x1f;
	*func = (a >> 8) & 0x7;
	*reg = ((a & PCI_CF8_EXT_REG) >> 16) | (a & 0xfc) | (uint32_t)off;
	return true;
}

static void pci_cfc_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct pci_host *h = opaque;
	unsigned slot, func;
	uint32_t reg, v = 0xffffffffu;

	if (len <= 4 && pci_cfc_target(h, off, len, &slot, &func, &reg))
		v = pci_host_cfg_read(h, slot, func, reg, len);
	if (len > 4)
		memset(data, 0xff, len);
	else
		pci_cfg_put(data, 0, len, v);
}

static void pci_cfc_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct pci_host *h = opaque;
	unsigned slot, func;
	uint32_t reg;

	if (len <= 4 && pci_cfc_target(h, off, len, &slot, &func, &reg))
		pci_host_cfg_write(h, slot, func, reg, len, pci_cfg_get(data, 0, len));
}

/* ECAM: bus 0 only; offset = dev << 15 | fn << 12 | reg. */
static bool pci_ecam_target(uint64_t off, unsigned len, unsigned *slot, unsigned *func,
			    uint32_t *reg)
{
	if ((len != 1 && len != 2 && len != 4) || (off & (len - 1)) ||
	    (off >> PCI_ECAM_BUS_SHIFT) != 0)
		return false;
	*slot = (off >> 15) & 0x1f;
	*func = (off >> 12) & 0x7;
	*reg = off & 0xfff;
	return true;
}

static void pci_ecam_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	unsigned slot, func;
	uint32_t reg;

	if (!pci_ecam_target(off, len, &slot, &func, &reg)) {
		memset(data, 0xff, len);
		return;
	}
	pci_cfg_put(data, 0, len, pci_host_cfg_read(opaque, slot, func, reg, len));
}

static void pci_ecam_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	unsigned slot, func;
	uint32_t reg;

	if (pci_ecam_target(off, len, &slot, &func, &reg))
		pci_host_cfg_write(opaque, slot, func, reg, len, pci_cfg_get(data, 0, len));
}

static const struct bus_ops pci_cf8_ops = {.read = pci_cf8_read, .write = pci_cf8_write};
static const struct bus_ops pci_cfc_ops = {.read = pci_cfc_read, .write = pci_cfc_write};
static const struct bus_ops pci_ecam_ops = {.read = pci_ecam_read, .write = pci_ecam_write};

/* Every BAR goes through here: the MSI-X table/PBA are served by the core, the rest is
 * forwarded to the device with the offset relative to the BAR. */
static void pci_bar_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct pci_bar *bar = opaque;
	struct pci_dev *d = bar->owner;

	if (d->has_msix && d->msix.bar == bar->idx && pci_msix_mmio_read(d, off, data, len))
		return;
	if (bar->ops && bar->ops->read)
		bar->ops->read(bar->opaque, off, data, len);
	else
		memset(data, 0xff, len);
}

static void pci_bar_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct pci_bar *bar = opaque;
	struct pci_dev *d = bar->owner;

	if (d->has_msix && d->msix.bar == bar->idx && pci_msix_mmio_write(d, off, data, len))
		return;
	if (bar->ops && bar->ops->write)
		bar->ops->write(bar->opaque, off, data, len);
}

static const struct bus_ops pci_bar_ops = {.read = pci_bar_read, .write = pci_bar_write};

static bool pci_dev_bar_access_ok(const struct pci_dev *d, unsigned idx, uint64_t off, unsigned len)
{
	return !pci_dev_bar_unused(d, idx) && len >= 1 && len <= 8 && off < d->bars[idx].size &&
	       len <= d->bars[idx].size - off;
}

void pci_dev_bar_read(struct pci_dev *d, unsigned idx, uint64_t off, void *data, unsigned len)
{
	if (!pci_dev_bar_access_ok(d, idx, off, len)) {
		memset(data, 0xff, len);
		return;
	}
	pci_bar_read(&d->bars[idx], off, data, len);
}

void pci_dev_bar_write(struct pci_dev *d, unsigned idx, uint64_t off, const void *data,
		       unsigned len)
{
	if (pci_dev_bar_access_ok(d, idx, off, len))
		pci_bar_write(&d->bars[idx], off, data, len);
}

/* May a BAR of this size decode at addr? Inside the window, clear of ECAM and RAM. */
static bool pci_host_addr_ok(const struct pci_host *h, uint64_t addr, uint64_t size)
{
	const struct gmem *m = h->plat->mem;
	uint64_t end;

	if (!addr || !size || add_overflows(addr, size, &end))
		return false;
	if (addr < h->mmio_base || end > h->mmio_base + h->mmio_size)
		return false;
	if (pci_ranges_overlap(addr, size, h->ecam_base, h->ecam_size))
		return false;
	for (unsigned i = 0; m && i < m->nr_regions && i < GMEM_MAX_REGIONS; i++)
		if (pci_ranges_overlap(addr, size, m->regions[i].gpa, m->regions[i].size))
			return false;
	return true;
}

static void pci_host_bar_unmap(struct pci_host *h, struct pci_bar *bar)
{
	if (bus_unregister(h->plat->mmio, bar->addr, bar))
		vwarn("pci %02x.0: BAR%u at 0x%llx was not registered", bar->owner->slot, bar->idx,
		      (unsigned long long)bar->addr);
	bar->mapped = false;
}

void pci_host_maps_update(struct pci_host *h)
{
	bool changed[PCI_MAX_DEVICES][PCI_NUM_BARS] = {{false}};
	struct pci_dev *devs[PCI_MAX_DEVICES];
	uint64_t addr;
	bool sizing;

	pthread_mutex_lock(&h->lock);
	memcpy(devs, h->devs, sizeof(devs));
	pthread_mutex_unlock(&h->lock);

	/* Unmap first, so that a BAR may take an address another BAR just left. */
	for (unsigned s = 0; s < PCI_MAX_DEVICES; s++) {
		for (unsigned i = 0; devs[s] && i < PCI_NUM_BARS; i++) {
			struct pci_bar *bar = &devs[s]->bars[i];
			if (!bar->mapped)
				continue;
			if (pci_dev_bar_decode(devs[s], i, &addr, NULL) && addr == bar->addr)
				continue;
			pci_host_bar_unmap(h, bar);
			changed[s][i] = true;
		}
	}
	/* Then map whatever should decode and does not, including BARs that conflicted
	 * earlier with a BAR that has moved away since. */
	for (unsigned s = 0; s < PCI_MAX_DEVICES; s++) {
		for (unsigned i = 0; devs[s] && i < PCI_NUM_BARS; i++) {
			struct pci_bar *bar = &devs[s]->bars[i];
			if (bar->mapped || pci_dev_bar_unused(devs[s], i))
				continue;
			if (!pci_dev_bar_decode(devs[s], i, &addr, &sizing) || !addr) {
				bar->refused_addr = 0;
				continue;
			}
			if (pci_host_addr_ok(h, addr, bar->size) &&
			    bus_register(h->plat->mmio, addr, bar->size, &pci_bar_ops, bar) == 0) {
				bar->addr = addr;
				bar->mapped = true;
				bar->refused_addr = 0;
				changed[s][i] = true;
				continue;
			}
			if (addr != bar->refused_addr && !sizing)
				vlog_rl("pci %02x.0: BAR%u at 0x%llx (size 0x%llx) not decoded: "
					"outside the MMIO window or overlapping",
					s, i, (unsigned long long)addr,
					(unsigned long long)bar->size);
			bar->refused_addr = addr;
		}
	}
	for (unsigned s = 0; s < PCI_MAX_DEVICES; s++) {
		const struct pci_dev_ops *ops = devs[s] ? devs[s]->ops : NULL;
		for (unsigned i = 0; ops && ops->bar_remapped && i < PCI_NUM_BARS; i++)
			if (changed[s][i])
				ops->bar_remapped(devs[s], i);
	}
}

/* Caller holds cfg_lock. Unmaps the BARs (bar_remapped hooks only if notify), frees the
 * MSI handles, empties the slot. */
static void pci_host_detach(struct pci_host *h, struct pci_dev *d, bool notify)
{
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		if (!d->bars[i].mapped)
			continue;
		pci_host_bar_unmap(h, &d->bars[i]);
		if (notify && d->ops && d->ops->bar_remapped)
			d->ops->bar_remapped(d, i);
	}
	pci_msix_handles_free(d);
	pthread_mutex_lock(&h->lock);
	if (h->devs[d->slot] == d)
		h->devs[d->slot] = NULL;
	pthread_mutex_unlock(&h->lock);
	d->host = NULL;
}

int pci_host_add_dev(struct pci_host *h, struct pci_dev *d)
{
	uint64_t next, addrs[PCI_NUM_BARS] = {0};
	unsigned slot;
	int r = 0;

	pthread_mutex_lock(&h->cfg_lock);
	if (d->host || d == &h->bridge) {
		r = -EBUSY;
		goto out;
	}
	pthread_mutex_lock(&h->lock);
	for (slot = 1; slot < PCI_MAX_DEVICES && h->devs[slot]; slot++)
		;
	pthread_mutex_unlock(&h->lock);
	if (slot >= PCI_MAX_DEVICES) {
		r = -ENOSPC;
		goto out;
	}

	/* Firmware's job: place each BAR naturally aligned in the window, in index order. */
	next = h->mmio_next;
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		uint64_t size = d->bars[i].size, a;
		if (pci_dev_bar_unused(d, i))
			continue;
		if (add_overflows(next, size - 1, &a)) {
			r = -ENOSPC;
			goto out;
		}
		a &= ~(size - 1);
		if (!pci_host_addr_ok(h, a, size)) {
			r = -ENOSPC;
			goto out;
		}
		addrs[i] = a;
		next = a + size;
	}

	d->host = h;
	d->slot = slot;
	r = pci_msix_handles_alloc(d);
	if (r) {
		d->host = NULL;
		goto out;
	}
	pthread_mutex_lock(&d->lock);
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		uint32_t reg = PCI_CFG_BAR0 + 4 * i;
		if (pci_dev_bar_unused(d, i))
			continue;
		pci_cfg_put(d->cfg, reg, 4,
			    (pci_cfg_get(d->cfg, reg, 4) & 0xf) | ((uint32_t)addrs[i] & ~0xfu));
		if (d->bars[i].is64)
			pci_cfg_put(d->cfg, reg + 4, 4, (uint32_t)(addrs[i] >> 32));
	}
	pci_cfg_put(d->cfg, PCI_CFG_COMMAND, 2,
		    pci_cfg_get(d->cfg, PCI_CFG_COMMAND, 2) | PCI_CFG_CMD_MEM);
	pthread_mutex_unlock(&d->lock);

	pthread_mutex_lock(&h->lock);
	h->devs[slot] = d;
	pthread_mutex_unlock(&h->lock);
	h->mmio_next = next;
	pci_host_maps_update(h);

	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		if (!pci_dev_bar_unused(d, i) && !d->bars[i].mapped) {
			verr("pci %02x.0: BAR%u at 0x%llx clashes with another MMIO range", slot, i,
			     (unsigned long long)addrs[i]);
			pci_host_detach(h, d, true);
			r = -EEXIST;
			goto out;
		}
	}
out:
	pthread_mutex_unlock(&h->cfg_lock);
	return r;
}

int pci_host_init(struct pci_host *h, const struct platform *plat, uint64_t ecam_base,
		  uint64_t ecam_size, uint64_t mmio_base, uint64_t mmio_size)
{
	pthread_mutexattr_t attr;
	uint64_t end;
	int r;

	memset(h, 0, sizeof(*h));
	if (!plat || !plat->mmio || !plat->pio)
		return -EINVAL;
	if (!ecam_size || (ecam_size & ((1ULL << PCI_ECAM_BUS_SHIFT) - 1)) ||
	    ecam_size > PCI_ECAM_MAX_SIZE || (ecam_base & 0xfff) ||
	    add_overflows(ecam_base, ecam_size, &end))
		return -EINVAL;
	if (!mmio_base || !mmio_size || (mmio_base & 0xfff) ||
	    add_overflows(mmio_base, mmio_size, &end) ||
	    pci_ranges_overlap(mmio_base, mmio_size, ecam_base, ecam_size))
		return -EINVAL;

	h->plat = plat;
	h->ecam_base = ecam_base;
	h->ecam_size = ecam_size;
	h->mmio_base = h->mmio_next = mmio_base;
	h->mmio_size = mmio_size;
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&h->cfg_lock, &attr);
	pthread_mutexattr_destroy(&attr);

	pci_dev_init(&h->bridge, PCI_VENDOR_ID_REDHAT, PCI_DEVICE_ID_REDHAT_HOST_BRIDGE,
		     PCI_CLASS_HOST_BRIDGE, 0, PCI_VENDOR_ID_REDHAT,
		     PCI_DEVICE_ID_REDHAT_HOST_BRIDGE, NULL, NULL);
	h->bridge.host = h;
	h->bridge.slot = 0;
	h->devs[0] = &h->bridge;

	r = bus_register(plat->pio, PORT_PCI_CONFIG_ADDR, 4, &pci_cf8_ops, h);
	if (r)
		goto err;
	r = bus_register(plat->pio, PORT_PCI_CONFIG_DATA, 4, &pci_cfc_ops, h);
	if (r)
		goto err_cf8;
	r = bus_register(plat->mmio, ecam_base, ecam_size, &pci_ecam_ops, h);
	if (r)
		goto err_cfc;
	return 0;

err_cfc:
	if (bus_unregister(plat->pio, PORT_PCI_CONFIG_DATA, h))
		vwarn("pci: 0xcfc vanished");
err_cf8:
	if (bus_unregister(plat->pio, PORT_PCI_CONFIG_ADDR, h))
		vwarn("pci: 0xcf8 vanished");
err:
	verr("pci: cannot register config-space access ranges: %s", strerror(-r));
	h->bridge.host = NULL;
	pci_dev_fini(&h->bridge);
	pthread_mutex_destroy(&h->cfg_lock);
	pthread_mutex_destroy(&h->lock);
	memset(h, 0, sizeof(*h));
	return r;
}

void pci_host_fini(struct pci_host *h)
{
	const struct platform *plat = h->plat;

	if (!plat)
		return;
	pthread_mutex_lock(&h->cfg_lock);
	for (unsigned s = 1; s < PCI_MAX_DEVICES; s++)
		if (h->devs[s])
			pci_host_detach(h, h->devs[s], false);
	pthread_mutex_unlock(&h->cfg_lock);
	if (bus_unregister(plat->mmio, h->ecam_base, h))
		vwarn("pci: ECAM range vanished from the MMIO bus");
	if (bus_unregister(plat->pio, PORT_PCI_CONFIG_DATA, h))
		vwarn("pci: 0xcfc vanished from the PIO bus");
	if (bus_unregister(plat->pio, PORT_PCI_CONFIG_ADDR, h))
		vwarn("pci: 0xcf8 vanished from the PIO bus");
	h->devs[0] = NULL;
	h->bridge.host = NULL;
	pci_dev_fini(&h->bridge);
	pthread_mutex_destroy(&h->cfg_lock);
	pthread_mutex_destroy(&h->lock);
	h->plat = NULL;
}
