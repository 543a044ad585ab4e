/* SPDX-License-Identifier: MIT */
/*
 * MSI-X: the capability, the vector table and the pending-bit array (both inside one BAR
 * and served here), and delivery through platform MSI handles.
 *
 * A vector is "live" when MSI-X is enabled, the function is not masked, bus mastering is
 * on and the vector itself is unmasked. Its platform route (msi_update) is pushed lazily,
 * only for live vectors whose address/data changed, and outside the device mutex; until
 * the route is current a notification only sets the pending bit, and pci_msix_sync()
 * delivers pending live vectors once their route is in place. So the guest never gets a
 * message built from a stale address/data pair, and a masked vector's message is kept
 * (PBA bit) and sent on unmask.
 */
#include "bus/pci/pci_internal.h"
#include "common/log.h"

#include <errno.h>
#include <string.h>

enum msix_region { MSIX_NONE, MSIX_TABLE, MSIX_PBA, MSIX_BAD };

static unsigned msix_pba_len(const struct pci_dev *d)
{
	return ALIGN_UP(d->msix.nvec, 64u) / 8u;
}

int pci_dev_add_msix(struct pci_dev *d, unsigned nvec, unsigned bar, uint32_t table_off,
		     uint32_t pba_off)
{
	uint8_t body[10] = {0}, wm[10] = {0}, off;
	uint64_t size, tlen, plen;
	int r;

	if (d->has_msix || d->host)
		return -EBUSY;
	if (!nvec || nvec > PCI_MSIX_MAX_VECTORS || pci_dev_bar_unused(d, bar))
		return -EINVAL;
	size = d->bars[bar].size;
	tlen = (uint64_t)nvec * PCI_MSIX_ENTRY_SIZE;
	plen = ALIGN_UP(nvec, 64u) / 8u;
	/* QWORD-aligned offsets (the low 3 bits carry the BIR), both ranges inside the BAR. */
	if ((table_off & 7) || (pba_off & 7) || table_off > size || tlen > size - table_off ||
	    pba_off > size || plen > size - pba_off ||
	    pci_ranges_overlap(table_off, tlen, pba_off, plen))
		return -EINVAL;

	pci_cfg_put(body, 0, 2, nvec - 1); /* message control: table size, disabled */
	pci_cfg_put(body, 2, 4, table_off | bar);
	pci_cfg_put(body, 6, 4, pba_off | bar);
	pci_cfg_put(wm, 0, 2, PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_FMASK);
	r = pci_dev_add_cap(d, PCI_CAP_ID_MSIX, body, sizeof(body), wm, &off);
	if (r)
		return r;

	pthread_mutex_lock(&d->lock);
	memset(&d->msix, 0, sizeof(d->msix));
	d->msix.nvec = nvec;
	d->msix.bar = bar;
	d->msix.table_off = table_off;
	d->msix.pba_off = pba_off;
	d->msix.cap_off = off;
	for (unsigned v = 0; v < nvec; v++)
		d->msix.entries[v].ctrl = PCI_MSIX_ENTRY_MASKED;
	d->has_msix = true;
	pthread_mutex_unlock(&d->lock);
	return 0;
}

int pci_msix_handles_alloc(struct pci_dev *d)
{
	const struct platform_ops *ops = pci_dev_plat_ops(d);
	void *ctx = ops ? pci_dev_plat(d)->ctx : NULL;
	unsigned handles[PCI_MSIX_MAX_VECTORS];
	unsigned n;
	int r = 0;

	if (!d->has_msix || !ops || !ops->msi_alloc)
		return 0;
	for (n = 0; n < d->msix.nvec; n++) {
		r = ops->msi_alloc(ctx, &handles[n]);
		if (r)
			goto fail;
	}
	pthread_mutex_lock(&d->lock);
	for (unsigned v = 0; v < d->msix.nvec; v++) {
		struct pci_msix_entry *e = &d->msix.entries[v];
		e->handle = handles[v];
		e->handle_valid = true;
		e->route_valid = false;
	}
	pthread_mutex_unlock(&d->lock);
	return 0;
fail:
	while (n-- > 0)
		if (ops->msi_free)
			ops->msi_free(ctx, handles[n]);
	return r < 0 ? r : -EIO;
}

void pci_msix_handles_free(struct pci_dev *d)
{
	const struct platform_ops *ops = pci_dev_plat_ops(d);
	void *ctx = ops ? pci_dev_plat(d)->ctx : NULL;
	unsigned handles[PCI_MSIX_MAX_VECTORS];
	unsigned n = 0;

	if (!d->has_msix)
		return;
	pthread_mutex_lock(&d->lock);
	for (unsigned v = 0; v < d->msix.nvec; v++) {
		struct pci_msix_entry *e = &d->msix.entries[v];
		if (e->handle_valid)
			handles[n++] = e->handle;
		e->handle_valid = false;
		e->route_valid = false;
	}
	pthread_mutex_unlock(&d->lock);
	for (unsigned i = 0; i < n; i++)
		if (ops && ops->msi_free)
			ops->msi_free(ctx, handles[i]);
}

/* The helpers below run with d->lock held. */
static uint16_t msix_ctrl(const struct pci_dev *d)
{
	return (uint16_t)pci_cfg_get(d->cfg, d->msix.cap_off + 2u, 2);
}

static bool msix_func_live(const struct pci_dev *d)
{
	uint16_t ctrl = msix_ctrl(d);
	uint16_t cmd = (uint16_t)pci_cfg_get(d->cfg, PCI_CFG_COMMAND, 2);
	return (ctrl & PCI_MSIX_CTRL_ENABLE) && !(ctrl & PCI_MSIX_CTRL_FMASK) &&
	       (cmd & PCI_CFG_CMD_MASTER);
}

static bool msix_route_fresh(const struct pci_dev *d, const struct pci_msix_entry *e)
{
	const struct platform_ops *ops = pci_dev_plat_ops(d);
	if (!ops || !ops->msi_update)
		return true;
	return e->route_valid && e->route_addr == e->addr && e->route_data == e->data;
}

static bool msix_can_send(const struct pci_dev *d, const struct pci_msix_entry *e)
{
	return msix_func_live(d) && !(e->ctrl & PCI_MSIX_ENTRY_MASKED) && e->handle_valid &&
	       msix_route_fresh(d, e);
}

static int msix_fire(const struct pci_dev *d, const struct pci_msix_entry *e)
{
	const struct platform_ops *ops = pci_dev_plat_ops(d);
	if (!ops || !ops->msi_fire)
		return 0;
	return ops->msi_fire(pci_dev_plat(d)->ctx, e->handle);
}

static void msix_deliver_pending(struct pci_dev *d)
{
	for (unsigned v = 0; v < d->msix.nvec; v++) {
		struct pci_msix_entry *e = &d->msix.entries[v];
		if (e->pending && msix_can_send(d, e)) {
			e->pending = false;
			if (msix_fire(d, e))
				vlog_rl("pci %02x.0: MSI-X vector %u: delivery failed", d->slot, v);
		}
	}
}

void pci_msix_sync(struct pci_dev *d)
{
	const struct platform_ops *ops = pci_dev_plat_ops(d);
	struct {
		unsigned vec, handle;
		uint64_t addr;
		uint32_t data;
		int r;
	} upd[PCI_MSIX_MAX_VECTORS];
	unsigned n = 0;

	if (!d->has_msix)
		return;
	pthread_mutex_lock(&d->lock);
	if (ops && ops->msi_update && msix_func_live(d)) {
		for (unsigned v = 0; v < d->msix.nvec; v++) {
			const struct pci_msix_entry *e = &d->msix.entries[v];
			if (!(e->ctrl & PCI_MSIX_ENTRY_MASKED) && e->handle_valid &&
			    !msix_route_fresh(d, e)) {
				upd[n].vec = v;
				upd[n].handle = e->handle;
				upd[n].addr = e->addr;
				upd[n].data = e->data;
				n++;
			}
		}
	}
	pthread_mutex_unlock(&d->lock);

	/* Route changes may block (GSI routing ioctl): no device mutex here. The caller holds
	 * the host's cfg_lock, so address/data cannot change under us. */
	for (unsigned i = 0; i < n; i++) {
		upd[i].r =
		    ops->msi_update(pci_dev_plat(d)->ctx, upd[i].handle, upd[i].addr, upd[i].data);
		if (upd[i].r)
			vlog_rl("pci %02x.0: MSI-X vector %u: route update failed (%d)", d->slot,
				upd[i].vec, upd[i].r);
	}

	pthread_mutex_lock(&d->lock);
	for (unsigned i = 0; i < n; i++) {
		struct pci_msix_entry *e = &d->msix.entries[upd[i].vec];
		e->route_valid = upd[i].r == 0;
		e->route_addr = upd[i].addr;
		e->route_data = upd[i].data;
	}
	msix_deliver_pending(d);
	pthread_mutex_unlock(&d->lock);
}

int pci_msix_notify(struct pci_dev *d, unsigned vec)
{
	struct pci_msix_entry *e;
	int r = 0;

	if (!d->has_msix)
		return -ENODEV;
	if (vec >= d->msix.nvec)
		return -EINVAL;
	e = &d->msix.entries[vec];
	pthread_mutex_lock(&d->lock);
	if (!(msix_ctrl(d) & PCI_MSIX_CTRL_ENABLE))
		r = -ENODEV;
	else if (!msix_can_send(d, e))
		e->pending = true;
	else
		r = msix_fire(d, e);
	pthread_mutex_unlock(&d->lock);
	return r;
}

bool pci_msix_enabled(struct pci_dev *d)
{
	bool on;

	if (!d->has_msix)
		return false;
	pthread_mutex_lock(&d->lock);
	on = msix_ctrl(d) & PCI_MSIX_CTRL_ENABLE;
	pthread_mutex_unlock(&d->lock);
	return on;
}

static enum msix_region msix_region(const struct pci_dev *d, uint64_t off, unsigned len,
				    uint64_t *rel)
{
	uint64_t tlen = (uint64_t)d->msix.nvec * PCI_MSIX_ENTRY_SIZE, plen = msix_pba_len(d);

	if (pci_ranges_overlap(off, len, d->msix.table_off, tlen)) {
		*rel = off - d->msix.table_off;
		return off >= d->msix.table_off && off + len <= d->msix.table_off + tlen
			   ? MSIX_TABLE
			   : MSIX_BAD;
	}
	if (pci_ranges_overlap(off, len, d->msix.pba_off, plen)) {
		*rel = off - d->msix.pba_off;
		return off >= d->msix.pba_off && off + len <= d->msix.pba_off + plen ? MSIX_PBA
										     : MSIX_BAD;
	}
	return MSIX_NONE;
}

/* Naturally aligned 1/2/4/8-byte accesses only: they never straddle an entry. */
static bool msix_len_ok(uint64_t rel, unsigned len)
{
	return (len == 1 || len == 2 || len == 4 || len == 8) && (rel & (len - 1)) == 0;
}

static void msix_entry_image(const struct pci_msix_entry *e, uint8_t img[16])
{
	pci_cfg_put(img, PCI_MSIX_ENTRY_ADDR_LO, 4, (uint32_t)e->addr);
	pci_cfg_put(img, PCI_MSIX_ENTRY_ADDR_HI, 4, (uint32_t)(e->addr >> 32));
	pci_cfg_put(img, PCI_MSIX_ENTRY_DATA, 4, e->data);
	pci_cfg_put(img, PCI_MSIX_ENTRY_CTRL, 4, e->ctrl);
}

bool pci_msix_mmio_read(struct pci_dev *d, uint64_t off, void *data, unsigned len)
{
	enum msix_region reg;
	uint64_t rel = 0;
	uint8_t img[16];

	if (!d->has_msix || len > 8)
		return false;
	reg = msix_region(d, off, len, &rel);
	if (reg == MSIX_NONE)
		return false;
	memset(data, 0xff, len);
	if (reg == MSIX_BAD || !msix_len_ok(rel, len)) {
		vlog_rl("pci %02x.0: bad MSI-X read at 0x%llx len %u", d->slot,
			(unsigned long long)off, len);
		return true;
	}
	pthread_mutex_lock(&d->lock);
	if (reg == MSIX_TABLE) {
		msix_entry_image(&d->msix.entries[rel / PCI_MSIX_ENTRY_SIZE], img);
		memcpy(data, img + rel % PCI_MSIX_ENTRY_SIZE, len);
	} else {
		uint64_t bits = 0;
		for (unsigned v = 0; v < d->msix.nvec; v++)
			if (d->msix.entries[v].pending)
				bits |= 1ULL << v;
		/* PBA is at most one qword (64 vectors): rel + len <= 8. */
		pci_cfg_put(img, 0, 4, (uint32_t)bits);
		pci_cfg_put(img, 4, 4, (uint32_t)(bits >> 32));
		memcpy(data, img + rel, len);
	}
	pthread_mutex_unlock(&d->lock);
	return true;
}

bool pci_msix_mmio_write(struct pci_dev *d, uint64_t off, const void *data, unsigned len)
{
	struct pci_msix_entry *e;
	enum msix_region reg;
	uint64_t rel = 0;
	uint8_t img[16];

	if (!d->has_msix || len > 8)
		return false;
	reg = msix_region(d, off, len, &rel);
	if (reg == MSIX_NONE)
		return false;
	if (reg == MSIX_PBA)
		return true; /* read-only */
	if (reg == MSIX_BAD || !msix_len_ok(rel, len)) {
		vlog_rl("pci %02x.0: bad MSI-X write at 0x%llx len %u", d->slot,
			(unsigned long long)off, len);
		return true;
	}
	if (d->host)
		pthread_mutex_lock(&d->host->cfg_lock);
	e = &d->msix.entries[rel / PCI_MSIX_ENTRY_SIZE];
	pthread_mutex_lock(&d->lock);
	msix_entry_image(e, img);
	memcpy(img + rel % PCI_MSIX_ENTRY_SIZE, data, len);
	e->addr = pci_cfg_get(img, PCI_MSIX_ENTRY_ADDR_LO, 4) |
		  (uint64_t)pci_cfg_get(img, PCI_MSIX_ENTRY_ADDR_HI, 4) << 32;
	e->data = pci_cfg_get(img, PCI_MSIX_ENTRY_DATA, 4);
	e->ctrl = pci_cfg_get(img, PCI_MSIX_ENTRY_CTRL, 4) & PCI_MSIX_ENTRY_MASKED;
	pthread_mutex_unlock(&d->lock);

	pci_msix_sync(d);
	if (d->ops && d->ops->msix_changed)
		d->ops->msix_changed(d);
	if (d->host)
		pthread_mutex_unlock(&d->host->cfg_lock);
	return true;
}
