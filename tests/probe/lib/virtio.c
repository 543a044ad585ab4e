/* SPDX-License-Identifier: MIT */
/* Minimal virtio 1.x PCI driver (see virtio.h). */
#include "virtio.h"

#define RESET_TIMEOUT_US 1000000

static uint64_t cap_addr(const struct vdev *v, unsigned cap, uint64_t *len)
{
	uint8_t bar = pci_read8(&v->pci, cap + 4);
	uint32_t off = pci_read32(&v->pci, cap + 8);
	uint64_t base, size;
	bool assigned;
	*len = pci_read32(&v->pci, cap + 12);
	if (bar > 5 || !pci_bar(&v->pci, bar, &base, &size, &assigned))
		probe_fail("virtio %02x.%x: capability at 0x%x names bad BAR %u", v->pci.dev, v->pci.fn,
			   cap, bar);
	if (assigned)
		printf("PROBE-INFO %s: virtio %02x.%x BAR%u was unassigned; probe put it at 0x%lx\n",
		       probe_name, v->pci.dev, v->pci.fn, bar, base);
	if (off > size || *len > size - off)
		probe_fail("virtio %02x.%x: capability at 0x%x: [0x%x, +0x%lx) outside BAR%u (size 0x%lx)",
			   v->pci.dev, v->pci.fn, cap, off, *len, bar, size);
	return base + off;
}

bool vdev_open(struct vdev *v, uint16_t device_id)
{
	uint64_t len, base, size;
	bool assigned;
	uint32_t tbl;

	memset(v, 0, sizeof(*v));
	if (!pci_find(VIRTIO_VENDOR, device_id, &v->pci))
		return false;
	pci_write16(&v->pci, 0x04,
		    pci_read16(&v->pci, 0x04) | PCI_CMD_MEM | PCI_CMD_MASTER | PCI_CMD_INTX_DISABLE);
	for (unsigned c = pci_find_cap(&v->pci, PCI_CAP_VENDOR, 0); c;
	     c = pci_find_cap(&v->pci, PCI_CAP_VENDOR, c)) {
		uint8_t type = pci_read8(&v->pci, c + 3);
		if (type == VIRTIO_PCI_CAP_COMMON && !v->common)
			v->common = cap_addr(v, c, &len);
		else if (type == VIRTIO_PCI_CAP_NOTIFY && !v->notify) {
			v->notify = cap_addr(v, c, &len);
			v->notify_mult = pci_read32(&v->pci, c + 16);
		} else if (type == VIRTIO_PCI_CAP_ISR && !v->isr)
			v->isr = cap_addr(v, c, &len);
		else if (type == VIRTIO_PCI_CAP_DEVICE && !v->device)
			v->device = cap_addr(v, c, &len);
	}
	CHECK(v->common && v->notify && v->isr, "virtio %02x.%x: missing common/notify/isr capability",
	      v->pci.dev, v->pci.fn);
	v->msix_cap = pci_find_cap(&v->pci, PCI_CAP_MSIX, 0);
	if (v->msix_cap) {
		v->msix_entries = (uint16_t)((pci_read16(&v->pci, v->msix_cap + 2) & 0x7ff) + 1);
		tbl = pci_read32(&v->pci, v->msix_cap + 4);
		if (!pci_bar(&v->pci, tbl & 7, &base, &size, &assigned))
			probe_fail("virtio %02x.%x: MSI-X table in bad BAR %u", v->pci.dev, v->pci.fn,
				   tbl & 7);
		CHECK((tbl & ~7u) + 16ull * v->msix_entries <= size,
		      "virtio: MSI-X table (%u entries at 0x%x) outside its BAR", v->msix_entries,
		      tbl & ~7u);
		v->msix_table = base + (tbl & ~7u);
	}
	return true;
}

uint8_t vdev_status(const struct vdev *v)
{
	return mmio_read8(v->common + VCC_STATUS);
}

void vdev_set_status(const struct vdev *v, uint8_t s)
{
	mmio_write8(v->common + VCC_STATUS, s);
}

bool vdev_reset(const struct vdev *v)
{
	uint64_t end = time_us() + RESET_TIMEOUT_US;
	vdev_set_status(v, 0);
	while (vdev_status(v) != 0) {
		if (time_us() > end)
			return false;
		cpu_relax();
	}
	return true;
}

bool vdev_negotiate(struct vdev *v, uint64_t want)
{
	uint64_t acc;
	if (!vdev_reset(v)) {
		printf("PROBE-INFO %s: virtio reset does not complete\n", probe_name);
		return false;
	}
	vdev_set_status(v, VIRTIO_STATUS_ACK);
	vdev_set_status(v, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER);
	mmio_write32(v->common + VCC_DFSELECT, 0);
	v->offered = mmio_read32(v->common + VCC_DF);
	mmio_write32(v->common + VCC_DFSELECT, 1);
	v->offered |= (uint64_t)mmio_read32(v->common + VCC_DF) << 32;
	acc = v->offered & want;
	mmio_write32(v->common + VCC_GFSELECT, 0);
	mmio_write32(v->common + VCC_GF, (uint32_t)acc);
	mmio_write32(v->common + VCC_GFSELECT, 1);
	mmio_write32(v->common + VCC_GF, (uint32_t)(acc >> 32));
	vdev_set_status(v, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	if (!(vdev_status(v) & VIRTIO_STATUS_FEATURES_OK)) {
		printf("PROBE-INFO %s: virtio refused features 0x%lx\n", probe_name, acc);
		return false;
	}
	v->negotiated = acc;
	return true;
}

void vdev_msix_enable(const struct vdev *v)
{
	uint16_t ctl = pci_read16(&v->pci, v->msix_cap + 2);
	ctl = (uint16_t)((ctl | 0x8000) & ~0x4000);
	pci_write16(&v->pci, v->msix_cap + 2, ctl);
}

void vdev_msix_set(const struct vdev *v, unsigned entry, uint8_t vector, uint8_t apic)
{
	uint64_t e = v->msix_table + 16ull * entry;
	mmio_write32(e + 12, 1); /* mask while changing */
	mmio_write32(e + 0, (uint32_t)LAYOUT_LAPIC | ((uint32_t)apic << 12));
	mmio_write32(e + 4, 0);
	mmio_write32(e + 8, vector); /* fixed, edge */
	mmio_write32(e + 12, 0);
}

bool vq_setup(struct vdev *v, struct vq *q, uint16_t index, uint16_t size, uint16_t msix_entry)
{
	uint16_t max, got;
	mmio_write16(v->common + VCC_Q_SELECT, index);
	max = mmio_read16(v->common + VCC_Q_SIZE);
	if (!max) {
		printf("PROBE-INFO %s: virtio queue %u has size 0\n", probe_name, index);
		return false;
	}
	if (!size || size > max)
		size = max;
	if (size > 256)
		size = 256;
	if (!q->desc) {
		q->desc = probe_alloc(16 * 256, 4096);
		q->avail = probe_alloc(6 + 2 * 256, 4096);
		q->used = probe_alloc(6 + 8 * 256, 4096);
	}
	memset((void *)(uintptr_t)q->desc, 0, 16 * 256);
	memset((void *)(uintptr_t)q->avail, 0, 6 + 2 * 256);
	memset((void *)(uintptr_t)q->used, 0, 6 + 8 * 256);
	q->index = index;
	q->size = size;
	q->avail_idx = 0;
	q->last_used = 0;
	mmio_write16(v->common + VCC_Q_SIZE, size);
	mmio_write16(v->common + VCC_Q_MSIX, msix_entry);
	got = mmio_read16(v->common + VCC_Q_MSIX);
	if (got != msix_entry) {
		printf("PROBE-INFO %s: queue %u MSI-X vector reads 0x%x after writing 0x%x\n",
		       probe_name, index, got, msix_entry);
		return false;
	}
	mmio_write64(v->common + VCC_Q_DESC, (uint64_t)(uintptr_t)q->desc);
	mmio_write64(v->common + VCC_Q_AVAIL, (uint64_t)(uintptr_t)q->avail);
	mmio_write64(v->common + VCC_Q_USED, (uint64_t)(uintptr_t)q->used);
	q->notify_addr = v->notify + (uint64_t)mmio_read16(v->common + VCC_Q_NOTIFY_OFF) * v->notify_mult;
	mmio_write16(v->common + VCC_Q_ENABLE, 1);
	if (mmio_read16(v->common + VCC_Q_ENABLE) != 1) {
		printf("PROBE-INFO %s: queue %u does not stay enabled\n", probe_name, index);
		return false;
	}
	return true;
}

void vdev_driver_ok(const struct vdev *v)
{
	vdev_set_status(v, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
				   VIRTIO_STATUS_DRIVER_OK);
}

void vq_notify(const struct vq *q)
{
	mb();
	mmio_write16(q->notify_addr, q->index);
}

void vq_submit(struct vq *q, uint16_t head)
{
	q->avail->ring[q->avail_idx % q->size] = head;
	mb(); /* ring entry before idx */
	q->avail_idx++;
	q->avail->idx = q->avail_idx;
	vq_notify(q);
}

uint16_t vq_used_idx(const struct vq *q)
{
	return __atomic_load_n(&q->used->idx, __ATOMIC_ACQUIRE);
}

bool vq_pop_used(struct vq *q, uint32_t *id, uint32_t *len)
{
	volatile struct vring_used_elem *e;
	if (vq_used_idx(q) == q->last_used)
		return false;
	mb(); /* idx before element */
	e = &q->used->ring[q->last_used % q->size];
	*id = e->id;
	*len = e->len;
	q->last_used++;
	return true;
}
