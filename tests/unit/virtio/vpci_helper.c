/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "vpci_helper.h"
#include "vq_helper.h"
#include "devices/virtio/virtio_spec.h"
#include "memory/layout.h"

uint32_t tpci_cfg_read(struct tpci *p, uint32_t off, unsigned len)
{
	return pci_host_cfg_read(p->host, p->slot, 0, off, len);
}

void tpci_cfg_write(struct tpci *p, uint32_t off, unsigned len, uint32_t val)
{
	pci_host_cfg_write(p->host, p->slot, 0, off, len, val);
}

/* Address of BAR idx as the guest sees it (64-bit memory BARs use two registers). */
static uint64_t bar_addr(struct tpci *p, unsigned idx)
{
	uint32_t lo = tpci_cfg_read(p, PCI_CFG_BAR0 + 4 * idx, 4);
	uint64_t a = lo & ~0xfULL;
	if ((lo & 0x6) == PCI_CFG_BAR_MEM_64)
		a |= (uint64_t)tpci_cfg_read(p, PCI_CFG_BAR0 + 4 * (idx + 1), 4) << 32;
	return a;
}

/* Size of a 64-bit memory BAR by the usual all-ones probe. */
static uint64_t bar_size(struct tpci *p, unsigned idx)
{
	uint32_t r = PCI_CFG_BAR0 + 4 * idx;
	uint32_t lo = tpci_cfg_read(p, r, 4), hi = tpci_cfg_read(p, r + 4, 4);
	assert_int_equal(lo & 0x7, PCI_CFG_BAR_MEM_64);
	tpci_cfg_write(p, r, 4, 0xffffffffu);
	tpci_cfg_write(p, r + 4, 4, 0xffffffffu);
	uint64_t mask = (tpci_cfg_read(p, r, 4) & ~0xfULL) | (uint64_t)tpci_cfg_read(p, r + 4, 4) << 32;
	tpci_cfg_write(p, r, 4, lo);
	tpci_cfg_write(p, r + 4, 4, hi);
	return ~mask + 1;
}

static void parse_vndr(struct tpci *p, uint8_t c)
{
	uint8_t type = (uint8_t)tpci_cfg_read(p, c + 3u, 1);
	uint8_t bar = (uint8_t)tpci_cfg_read(p, c + 4u, 1);
	uint32_t off = tpci_cfg_read(p, c + 8u, 4);
	uint32_t len = tpci_cfg_read(p, c + 12u, 4);

	if (type == VIRTIO_PCI_CAP_PCI_CFG) {
		assert_true(tpci_cfg_read(p, c + 2u, 1) >= 20);
		p->cfgwin = c;
		return;
	}
	if (type < VIRTIO_PCI_CAP_COMMON_CFG || type > VIRTIO_PCI_CAP_DEVICE_CFG)
		return;
	assert_true(bar < 6);
	uint64_t base = bar_addr(p, bar);
	assert_true(base != 0);
	assert_true((uint64_t)off + len <= bar_size(p, bar));
	p->bar = base;
	switch (type) {
	case VIRTIO_PCI_CAP_COMMON_CFG:
		p->common = base + off;
		p->common_len = len;
		break;
	case VIRTIO_PCI_CAP_NOTIFY_CFG:
		assert_int_equal(tpci_cfg_read(p, c + 2u, 1), 20);
		p->notify = base + off;
		p->notify_len = len;
		p->notify_mult = tpci_cfg_read(p, c + 16u, 4);
		break;
	case VIRTIO_PCI_CAP_ISR_CFG:
		p->isr = base + off;
		p->isr_len = len;
		break;
	case VIRTIO_PCI_CAP_DEVICE_CFG:
		p->device = base + off;
		p->device_len = len;
		break;
	}
}

void tpci_open(struct tpci *p, struct fake_platform *fp, struct pci_host *h, uint16_t device_id)
{
	memset(p, 0, sizeof(*p));
	p->fp = fp;
	p->host = h;
	bool found = false;
	for (unsigned s = 0; s < PCI_MAX_DEVICES && !found; s++) {
		if (pci_host_cfg_read(h, s, 0, PCI_CFG_VENDOR_ID, 2) == VIRTIO_PCI_VENDOR_ID &&
		    pci_host_cfg_read(h, s, 0, PCI_CFG_DEVICE_ID, 2) == device_id) {
			p->slot = s;
			found = true;
		}
	}
	assert_true(found);
	tpci_cfg_write(p, PCI_CFG_COMMAND, 2,
		       tpci_cfg_read(p, PCI_CFG_COMMAND, 2) | PCI_CFG_CMD_MEM | PCI_CFG_CMD_MASTER);
	assert_true(tpci_cfg_read(p, PCI_CFG_STATUS, 2) & PCI_CFG_STATUS_CAP_LIST);
	uint8_t c = (uint8_t)tpci_cfg_read(p, PCI_CFG_CAP_PTR, 1) & 0xfc;
	for (unsigned n = 0; c && n < 48; n++) {
		uint8_t id = (uint8_t)tpci_cfg_read(p, c, 1);
		if (id == PCI_CAP_ID_VNDR)
			parse_vndr(p, c);
		else if (id == PCI_CAP_ID_MSIX)
			p->msix_cap = c;
		c = (uint8_t)tpci_cfg_read(p, c + 1u, 1) & 0xfc;
	}
	assert_true(p->common && p->notify && p->isr);
	assert_true(p->notify_mult > 0);
	if (p->msix_cap) {
		p->msix_n = (tpci_cfg_read(p, p->msix_cap + 2u, 2) & 0x7ff) + 1;
		uint32_t tbl = tpci_cfg_read(p, p->msix_cap + 4u, 4);
		p->msix_table = bar_addr(p, tbl & 7) + (tbl & ~7u);
	}
}

uint64_t tpci_rd(struct tpci *p, uint64_t addr, unsigned len)
{
	uint64_t v = 0;
	assert_true(bus_read(&p->fp->mmio, addr, &v, len));
	return v;
}

void tpci_wr(struct tpci *p, uint64_t addr, unsigned len, uint64_t val)
{
	assert_true(bus_write(&p->fp->mmio, addr, &val, len));
}

uint64_t tpci_common_rd(struct tpci *p, uint32_t off, unsigned len)
{
	return tpci_rd(p, p->common + off, len);
}

void tpci_common_wr(struct tpci *p, uint32_t off, unsigned len, uint64_t val)
{
	tpci_wr(p, p->common + off, len, val);
}

uint8_t tpci_status(struct tpci *p)
{
	return (uint8_t)tpci_common_rd(p, VIRTIO_PCI_COMMON_STATUS, 1);
}

void tpci_set_status(struct tpci *p, uint8_t s)
{
	tpci_common_wr(p, VIRTIO_PCI_COMMON_STATUS, 1, s);
}

bool tpci_negotiate(struct tpci *p, uint64_t want)
{
	tpci_set_status(p, 0);
	assert_int_equal(tpci_status(p), 0);
	tpci_set_status(p, VIRTIO_STATUS_ACKNOWLEDGE);
	tpci_set_status(p, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	uint64_t offered = 0;
	for (unsigned w = 0; w < 2; w++) {
		tpci_common_wr(p, VIRTIO_PCI_COMMON_DFSELECT, 4, w);
		offered |= tpci_common_rd(p, VIRTIO_PCI_COMMON_DF, 4) << (32 * w);
	}
	uint64_t acc = offered & want;
	for (unsigned w = 0; w < 2; w++) {
		tpci_common_wr(p, VIRTIO_PCI_COMMON_GFSELECT, 4, w);
		tpci_common_wr(p, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)(acc >> (32 * w)));
	}
	tpci_set_status(p, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
				   VIRTIO_STATUS_FEATURES_OK);
	return tpci_status(p) & VIRTIO_STATUS_FEATURES_OK;
}

void tpci_queue_setup(struct tpci *p, unsigned q, const struct tvq *t, uint16_t vector)
{
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
	assert_true(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_SIZE, 2) >= t->size);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_SIZE, 2, t->size);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_MSIX, 2, vector);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_MSIX, 2), vector);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_DESC, 8, t->desc);
	/* The driver area as two 32-bit halves, like some drivers do. */
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_AVAIL, 4, (uint32_t)t->avail);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_AVAIL + 4, 4, (uint32_t)(t->avail >> 32));
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_USED, 8, t->used);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
}

void tpci_driver_ok(struct tpci *p)
{
	tpci_set_status(p, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
				   VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
}

void tpci_notify(struct tpci *p, unsigned q)
{
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
	uint64_t off = tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_NOFF, 2);
	assert_true(off * p->notify_mult + 2 <= p->notify_len);
	tpci_wr(p, p->notify + off * p->notify_mult, 2, q);
}

void tpci_msix_enable(struct tpci *p, bool on)
{
	assert_true(p->msix_cap);
	uint32_t ctl = tpci_cfg_read(p, p->msix_cap + 2u, 2);
	ctl &= ~(uint32_t)(PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_FMASK);
	if (on)
		ctl |= PCI_MSIX_CTRL_ENABLE;
	tpci_cfg_write(p, p->msix_cap + 2u, 2, ctl);
}

void tpci_msix_program(struct tpci *p, unsigned e)
{
	uint64_t a = p->msix_table + 16ULL * e;
	assert_true(e < p->msix_n);
	tpci_wr(p, a + PCI_MSIX_ENTRY_CTRL, 4, PCI_MSIX_ENTRY_MASKED);
	tpci_wr(p, a + PCI_MSIX_ENTRY_ADDR_LO, 4, LAYOUT_LAPIC);
	tpci_wr(p, a + PCI_MSIX_ENTRY_ADDR_HI, 4, 0);
	tpci_wr(p, a + PCI_MSIX_ENTRY_DATA, 4, TPCI_MSI_DATA(e));
	tpci_wr(p, a + PCI_MSIX_ENTRY_CTRL, 4, 0);
}

unsigned tpci_msi_fired(struct tpci *p, unsigned e)
{
	for (unsigned h = 0; h < FAKE_MAX_MSI; h++)
		if (p->fp->msi[h].used && p->fp->msi[h].data == TPCI_MSI_DATA(e))
			return p->fp->msi[h].fired;
	fail_msg("no MSI route with data %#x", TPCI_MSI_DATA(e));
	return 0;
}
