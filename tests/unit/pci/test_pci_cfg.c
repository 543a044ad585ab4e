/* SPDX-License-Identifier: MIT */
/* PCI config space: enumeration through CF8/CFC and ECAM, header semantics, BARs, caps. */
#include "pci_test.h"

#include <stdlib.h>

#define RAM_SIZE (16ULL << 20)
#define WIN LAYOUT_PCI_MMIO_START

struct fx {
	struct fake_platform fp;
	struct pci_host h;
	struct pci_dev d1, d2;
	struct bar_rec r0, r2, r20;
	unsigned remaps[PCI_NUM_BARS];
	unsigned cfg_writes;
	uint32_t last_cfg_off;
};

static void fx_bar_remapped(struct pci_dev *d, unsigned idx)
{
	struct fx *f = d->opaque;
	if (idx < PCI_NUM_BARS)
		f->remaps[idx]++;
}

static void fx_cfg_written(struct pci_dev *d, uint32_t off, unsigned len)
{
	struct fx *f = d->opaque;
	(void)len;
	f->cfg_writes++;
	f->last_cfg_off = off;
}

static const struct pci_dev_ops fx_ops = {.bar_remapped = fx_bar_remapped,
					  .cfg_written = fx_cfg_written};

static int fx_setup_at(void **state, uint64_t ram_gpa, uint64_t ram_size)
{
	struct fx *f = calloc(1, sizeof(*f));
	uint8_t vbody[6] = {16, 1, 2, 3, 4, 5}, vmask[6] = {0, 0, 0xff, 0, 0, 0}, off;

	assert_non_null(f);
	fake_platform_init(&f->fp, ram_gpa, ram_size);
	assert_int_equal(pci_host_init(&f->h, &f->fp.plat, LAYOUT_PCI_ECAM_START,
				       LAYOUT_PCI_ECAM_SIZE, LAYOUT_PCI_MMIO_START,
				       LAYOUT_PCI_MMIO_SIZE),
			 0);
	pci_dev_init(&f->d1, PCI_VENDOR_ID_REDHAT_QUMRANET, 0x1041, 0x020000, 1,
		     PCI_VENDOR_ID_REDHAT_QUMRANET, 0x1100, &fx_ops, f);
	assert_int_equal(pci_dev_set_bar(&f->d1, 0, 0x4000, false, &bar_rec_ops, &f->r0), 0);
	assert_int_equal(pci_dev_set_bar(&f->d1, 2, 0x100000, true, &bar_rec_ops, &f->r2), 0);
	assert_int_equal(
	    pci_dev_add_cap(&f->d1, PCI_CAP_ID_VNDR, vbody, sizeof(vbody), vmask, &off), 0);
	assert_int_equal(off, PCI_CFG_CAP_START);
	assert_int_equal(pci_dev_add_msix(&f->d1, 2, 0, 0x2000, 0x3000), 0);
	assert_int_equal(pci_host_add_dev(&f->h, &f->d1), 0);

	pci_dev_init(&f->d2, PCI_VENDOR_ID_REDHAT_QUMRANET, 0x1042, 0x010000, 1,
		     PCI_VENDOR_ID_REDHAT_QUMRANET, 0x1100, NULL, NULL);
	assert_int_equal(pci_dev_set_bar(&f->d2, 0, 0x1000, false, &bar_rec_ops, &f->r20), 0);
	assert_int_equal(pci_host_add_dev(&f->h, &f->d2), 0);
	*state = f;
	return 0;
}

static int fx_setup(void **state)
{
	return fx_setup_at(state, 0, RAM_SIZE);
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	pci_host_fini(&f->h);
	assert_int_equal(f->fp.msi_allocated, 0);
	pci_dev_fini(&f->d1);
	pci_dev_fini(&f->d2);
	fake_platform_fini(&f->fp);
	free(f);
	return 0;
}

static void test_enumerate(void **state)
{
	struct fx *f = *state;
	struct fake_platform *fp = &f->fp;

	/* Host bridge 00.0. */
	assert_int_equal(cfc_read(fp, 0, 0, 0, 4), 0x00081b36);
	assert_int_equal(cfc_read(fp, 0, 0, 0x08, 4) >> 8, PCI_CLASS_HOST_BRIDGE);
	assert_int_equal(ecam_read(fp, 0, 0, 0, 4), 0x00081b36);
	assert_int_equal(ecam_read(fp, 0, 0, PCI_CFG_HEADER_TYPE, 1), 0);
	/* Devices at 01.0 and 02.0, same values through every width and both mechanisms. */
	assert_int_equal(cfc_read(fp, 1, 0, 0, 4), 0x10411af4);
	assert_int_equal(cfc_read(fp, 1, 0, 0, 2), 0x1af4);
	assert_int_equal(cfc_read(fp, 1, 0, 2, 2), 0x1041);
	assert_int_equal(cfc_read(fp, 1, 0, 1, 1), 0x1a);
	assert_int_equal(cfc_read(fp, 1, 0, 3, 1), 0x10);
	assert_int_equal(cfc_read(fp, 1, 0, 0x0b, 1), 0x02); /* class */
	assert_int_equal(cfc_read(fp, 1, 0, 0x08, 1), 1);    /* revision */
	assert_int_equal(cfc_read(fp, 1, 0, PCI_CFG_SUBSYS_ID, 2), 0x1100);
	assert_int_equal(ecam_read(fp, 1, 0, 2, 2), 0x1041);
	assert_int_equal(ecam_read(fp, 1, 0, 3, 1), 0x10);
	assert_int_equal(ecam_read(fp, 2, 0, 0, 4), 0x10421af4);
	/* Absent slots and functions other than 0. */
	for (unsigned s = 3; s < 32; s++) {
		assert_int_equal(cfc_read(fp, s, 0, 0, 4), 0xffffffff);
		assert_int_equal(ecam_read(fp, s, 0, 0, 2), 0xffff);
	}
	for (unsigned fn = 1; fn < 8; fn++) {
		assert_int_equal(cfc_read(fp, 1, fn, 0, 4), 0xffffffff);
		assert_int_equal(ecam_read(fp, 1, fn, 0, 1), 0xff);
		cfc_write(fp, 1, fn, PCI_CFG_COMMAND, 2, 0);
		ecam_write(fp, 1, fn, PCI_CFG_COMMAND, 2, 0);
	}
	assert_true(pci_dev_mem_enabled(&f->d1)); /* writes to fn 1..7 did not alias fn 0 */
	/* Extended config space exists through ECAM and reads 0 (no extended caps). */
	assert_int_equal(ecam_read(fp, 1, 0, 0x100, 4), 0);
	assert_int_equal(ecam_read(fp, 1, 0, 0xffc, 4), 0);
	ecam_write(fp, 1, 0, 0x100, 4, 0xffffffff);
	assert_int_equal(ecam_read(fp, 1, 0, 0x100, 4), 0);
	/* Host-side API, same answers. */
	assert_int_equal(pci_host_cfg_read(&f->h, 1, 0, 0, 4), 0x10411af4);
	assert_int_equal(pci_host_cfg_read(&f->h, 1, 1, 0, 2), 0xffff);
	assert_int_equal(pci_host_cfg_read(&f->h, 32, 0, 0, 4), 0xffffffff);
	assert_int_equal(pci_host_cfg_read(&f->h, 1, 0, 4094, 4), 0xffffffff);
	assert_int_equal(pci_host_cfg_read(&f->h, 1, 0, 4096, 1), 0xff);
	assert_int_equal(pci_host_cfg_read(&f->h, 1, 0, 0, 3), 0xffffffff);
}

static void test_cf8_protocol(void **state)
{
	struct fx *f = *state;
	struct fake_platform *fp = &f->fp;
	uint32_t a, v;
	uint8_t b;

	/* The latch reads back what was written (Linux's type-1 probe relies on it). */
	a = 0x80000000;
	assert_true(bus_write(&fp->pio, PORT_PCI_CONFIG_ADDR, &a, 4));
	assert_true(bus_read(&fp->pio, PORT_PCI_CONFIG_ADDR, &v, 4));
	assert_int_equal(v, 0x80000000);
	/* Byte writes to 0xCF8-0xCFB do not touch the latch. */
	b = 0x01;
	assert_true(bus_write(&fp->pio, PORT_PCI_CONFIG_ADDR + 3, &b, 1));
	assert_true(bus_read(&fp->pio, PORT_PCI_CONFIG_ADDR, &v, 4));
	assert_int_equal(v, 0x80000000);
	/* Enable bit clear: no config cycle. */
	a = cf8_addr(0, 1, 0, 0) & ~0x80000000u;
	assert_true(bus_write(&fp->pio, PORT_PCI_CONFIG_ADDR, &a, 4));
	v = 0;
	assert_true(bus_read(&fp->pio, PORT_PCI_CONFIG_DATA, &v, 4));
	assert_int_equal(v, 0xffffffff);
	/* Bus 1 does not exist. */
	a = cf8_addr(1, 1, 0, 0);
	assert_true(bus_write(&fp->pio, PORT_PCI_CONFIG_ADDR, &a, 4));
	assert_true(bus_read(&fp->pio, PORT_PCI_CONFIG_DATA, &v, 4));
	assert_int_equal(v, 0xffffffff);
	/* Extended register bits 27:24 (AMD style) reach 0x100.., which reads 0 like ECAM. */
	a = cf8_addr(0, 1, 0, 0) | 0x01000000;
	assert_true(bus_write(&fp->pio, PORT_PCI_CONFIG_ADDR, &a, 4));
	v = 0x1234;
	assert_true(bus_read(&fp->pio, PORT_PCI_CONFIG_DATA, &v, 4));
	assert_int_equal(v, 0);
	/* Byte lanes of the data port: 0xCFC+n reaches register (reg & ~3) + n. */
	a = cf8_addr(0, 1, 0, 0);
	assert_true(bus_write(&fp->pio, PORT_PCI_CONFIG_ADDR, &a, 4));
	for (unsigned n = 0; n < 4; n++) {
		v = 0;
		assert_true(bus_read(&fp->pio, PORT_PCI_CONFIG_DATA + n, &v, 1));
		assert_int_equal(v, (0x10411af4u >> (8 * n)) & 0xff);
	}
	v = 0;
	assert_true(bus_read(&fp->pio, PORT_PCI_CONFIG_DATA + 2, &v, 2));
	assert_int_equal(v, 0x1041);
	/* Misaligned word at 0xCFD and 0xCFF are rejected (all-ones, writes ignored). */
	v = 0;
	assert_true(bus_read(&fp->pio, PORT_PCI_CONFIG_DATA + 1, &v, 2));
	assert_int_equal(v, 0xffff);
	a = cf8_addr(0, 1, 0, PCI_CFG_INT_LINE);
	assert_true(bus_write(&fp->pio, PORT_PCI_CONFIG_ADDR, &a, 4));
	v = 0x0b0b;
	assert_true(bus_write(&fp->pio, PORT_PCI_CONFIG_DATA + 1, &v, 2));
	assert_int_equal(cfc_read(fp, 1, 0, PCI_CFG_INT_LINE, 1), 0);
	/* Byte write through lane 0 of the dword at 0x3c. */
	cfc_write(fp, 1, 0, PCI_CFG_INT_LINE, 1, 0x0b);
	assert_int_equal(ecam_read(fp, 1, 0, PCI_CFG_INT_LINE, 1), 0x0b);
	/* Unaligned and oversized ECAM accesses. */
	v = 0;
	assert_true(bus_read(&fp->mmio, ecam_addr(1, 0, 1), &v, 2));
	assert_int_equal(v, 0xffff);
	v = 0;
	assert_true(bus_read(&fp->mmio, ecam_addr(1, 0, 0xffe), &v, 4));
	assert_int_equal(v, 0xffffffff);
	uint64_t q = 0;
	assert_true(bus_read(&fp->mmio, ecam_addr(1, 0, 0), &q, 8));
	assert_true(q == UINT64_MAX);
	v = 0x4242;
	assert_true(bus_write(&fp->mmio, ecam_addr(1, 0, PCI_CFG_INT_LINE - 1), &v, 2));
	assert_int_equal(ecam_read(fp, 1, 0, PCI_CFG_INT_LINE, 1), 0x0b);
}

static void test_header_semantics(void **state)
{
	struct fx *f = *state;
	struct fake_platform *fp = &f->fp;

	/* Read-only identity and layout fields. */
	ecam_write(fp, 1, 0, 0, 4, 0x12345678);
	cfc_write(fp, 1, 0, 0x08, 4, 0xffffffff);
	ecam_write(fp, 1, 0, PCI_CFG_HEADER_TYPE, 1, 0x80);
	ecam_write(fp, 1, 0, PCI_CFG_SUBSYS_VENDOR, 4, 0);
	ecam_write(fp, 1, 0, PCI_CFG_CAP_PTR, 1, 0x80);
	ecam_write(fp, 1, 0, PCI_CFG_INT_PIN, 1, 1);
	assert_int_equal(ecam_read(fp, 1, 0, 0, 4), 0x10411af4);
	assert_int_equal(ecam_read(fp, 1, 0, 0x08, 4), 0x02000001);
	assert_int_equal(ecam_read(fp, 1, 0, PCI_CFG_HEADER_TYPE, 1), 0);
	assert_int_equal(ecam_read(fp, 1, 0, PCI_CFG_SUBSYS_VENDOR, 4), 0x11001af4);
	assert_int_equal(ecam_read(fp, 1, 0, PCI_CFG_CAP_PTR, 1), PCI_CFG_CAP_START);
	assert_int_equal(ecam_read(fp, 1, 0, PCI_CFG_INT_PIN, 1), 0);
	assert_int_equal(ecam_read(fp, 1, 0, PCI_CFG_ROM, 4), 0);
	ecam_write(fp, 1, 0, PCI_CFG_ROM, 4, 0xffffffff); /* no expansion ROM */
	assert_int_equal(ecam_read(fp, 1, 0, PCI_CFG_ROM, 4), 0);
	/* Interrupt line is scratch. */
	ecam_write(fp, 1, 0, PCI_CFG_INT_LINE, 1, 0x0a);
	assert_int_equal(cfc_read(fp, 1, 0, PCI_CFG_INT_LINE, 1), 0x0a);

	/* Command: memory/bus master writable, I/O space hardwired 0 (no I/O BARs). */
	ecam_write(fp, 1, 0, PCI_CFG_COMMAND, 2, 0xffff);
	assert_int_equal(ecam_read(fp, 1, 0, PCI_CFG_COMMAND, 2), 0x0546);
	assert_true(pci_dev_bus_master(&f->d1));
	assert_int_equal(f->last_cfg_off, PCI_CFG_COMMAND);
	ecam_write(fp, 1, 0, PCI_CFG_COMMAND, 2, PCI_CFG_CMD_MEM);
	assert_false(pci_dev_bus_master(&f->d1));
	assert_true(pci_dev_mem_enabled(&f->d1));

	/* Status: capability bit read-only, error bits write-1-to-clear. */
	assert_int_equal(ecam_read(fp, 1, 0, PCI_CFG_STATUS, 2) & PCI_CFG_STATUS_CAP_LIST,
			 PCI_CFG_STATUS_CAP_LIST);
	assert_int_equal(ecam_read(fp, 2, 0, PCI_CFG_STATUS, 2) & PCI_CFG_STATUS_CAP_LIST, 0);
	f->d1.cfg[PCI_CFG_STATUS + 1] |= 0xa0; /* latched: received master abort, parity error */
	ecam_write(fp, 1, 0, PCI_CFG_STATUS, 2, 0); /* writing 0 changes nothing */
	assert_int_equal(ecam_read(fp, 1, 0, PCI_CFG_STATUS, 2), 0xa010);
	ecam_write(fp, 1, 0, PCI_CFG_STATUS, 2, 0x2000); /* clear master abort only */
	assert_int_equal(ecam_read(fp, 1, 0, PCI_CFG_STATUS, 2), 0x8010);
	cfc_write(fp, 1, 0, PCI_CFG_STATUS + 1, 1, 0xff); /* byte lane 3 via CFC+2/+3 */
	assert_int_equal(ecam_read(fp, 1, 0, PCI_CFG_STATUS, 2), 0x0010);
	/* A dword write to 0x04 writes command and status together. */
	f->d1.cfg[PCI_CFG_STATUS + 1] |= 0x80;
	ecam_write(fp, 1, 0, PCI_CFG_COMMAND, 4, 0x80000006);
	assert_int_equal(ecam_read(fp, 1, 0, PCI_CFG_COMMAND, 4), 0x00100006);
}

static void test_bar_sizing(void **state)
{
	struct fx *f = *state;
	struct fake_platform *fp = &f->fp;
	uint32_t b0 = PCI_CFG_BAR0, b2 = PCI_CFG_BAR0 + 8;

	/* Assigned by the host ("firmware"), memory decoding on. */
	assert_int_equal(ecam_read(fp, 1, 0, b0, 4), WIN);
	assert_int_equal(ecam_read(fp, 1, 0, b2, 4), (WIN + 0x100000) | PCI_CFG_BAR_MEM_64);
	assert_int_equal(ecam_read(fp, 1, 0, b2 + 4, 4), 0);
	assert_int_equal(ecam_read(fp, 2, 0, b0, 4), WIN + 0x200000);
	assert_true(f->d1.bars[0].mapped && f->d1.bars[2].mapped && f->d2.bars[0].mapped);
	assert_int_equal(f->remaps[0], 1);
	assert_int_equal(f->remaps[2], 1);

	/* Sizing with decoding off, as Linux does. */
	ecam_write(fp, 1, 0, PCI_CFG_COMMAND, 2, 0);
	assert_false(f->d1.bars[0].mapped);
	assert_false(mmio_claimed(fp, WIN));
	ecam_write(fp, 1, 0, b0, 4, 0xffffffff);
	assert_int_equal(ecam_read(fp, 1, 0, b0, 4), 0xffffc000);
	ecam_write(fp, 1, 0, b0, 4, (uint32_t)WIN);
	ecam_write(fp, 1, 0, b2, 4, 0xffffffff);
	assert_int_equal(ecam_read(fp, 1, 0, b2, 4), 0xfff00004);
	ecam_write(fp, 1, 0, b2 + 4, 4, 0xffffffff);
	assert_int_equal(ecam_read(fp, 1, 0, b2 + 4, 4), 0xffffffff);
	ecam_write(fp, 1, 0, b2, 4, (uint32_t)(WIN + 0x100000));
	ecam_write(fp, 1, 0, b2 + 4, 4, 0);
	/* Unused BARs size to 0. */
	for (uint32_t r = PCI_CFG_BAR0 + 4; r < PCI_CFG_BAR0 + 24; r += 4) {
		if (r == b2 || r == b2 + 4)
			continue;
		ecam_write(fp, 1, 0, r, 4, 0xffffffff);
		assert_int_equal(ecam_read(fp, 1, 0, r, 4), 0);
	}
	ecam_write(fp, 1, 0, PCI_CFG_COMMAND, 2, PCI_CFG_CMD_MEM);
	assert_true(f->d1.bars[0].mapped && f->d1.bars[2].mapped);
	assert_true(f->d1.bars[0].addr == WIN && f->d1.bars[2].addr == WIN + 0x100000);
	assert_true(mmio_claimed(fp, WIN) && mmio_claimed(fp, WIN + 0x100000));

	/* Sizing with decoding left on: unmapped while all-ones, never mapped at the mask. */
	ecam_write(fp, 1, 0, b0, 4, 0xffffffff);
	assert_false(f->d1.bars[0].mapped);
	assert_false(mmio_claimed(fp, 0xffffc000));
	assert_false(mmio_claimed(fp, WIN));
	ecam_write(fp, 1, 0, b2 + 4, 4, 0xffffffff);
	ecam_write(fp, 1, 0, b2, 4, 0xffffffff);
	assert_false(f->d1.bars[2].mapped);
	ecam_write(fp, 1, 0, b0, 4, (uint32_t)WIN);
	ecam_write(fp, 1, 0, b2, 4, (uint32_t)(WIN + 0x100000));
	assert_false(f->d1.bars[2].mapped); /* high half still all-ones */
	ecam_write(fp, 1, 0, b2 + 4, 4, 0);
	assert_true(f->d1.bars[0].mapped && f->d1.bars[2].mapped);
	assert_true(mmio_claimed(fp, WIN + 0x100000));
	/* Word/byte writes to a BAR work too: move BAR0 by writing only its upper word. */
	cfc_write(fp, 1, 0, b0 + 2, 2, (uint32_t)((WIN + 0x400000) >> 16));
	assert_int_equal(f->d1.bars[0].addr, WIN + 0x400000);
}

static void test_bar_move(void **state)
{
	struct fx *f = *state;
	struct fake_platform *fp = &f->fp;
	uint64_t na = WIN + 0x10000000, na2 = WIN + 0x8000000;
	uint32_t v = 0x1234;
	unsigned before = f->remaps[0];

	assert_true(mmio_claimed(fp, WIN));
	ecam_write(fp, 1, 0, PCI_CFG_BAR0, 4, (uint32_t)na);
	assert_int_equal(f->remaps[0], before + 1);
	assert_true(f->d1.bars[0].mapped);
	assert_int_equal(f->d1.bars[0].addr, na);
	assert_false(mmio_claimed(fp, WIN));
	/* The device's handler sees offsets relative to the BAR. */
	assert_true(bus_write(&fp->mmio, na + 0x10, &v, 4));
	assert_int_equal(f->r0.off, 0x10);
	assert_int_equal(f->r0.val, 0x1234);
	assert_true(bus_read(&fp->mmio, na + 0x3ffc, &v, 4));
	assert_int_equal(f->r0.off, 0x3ffc);
	assert_int_equal(v, 0x5a5a5a5a);
	assert_false(bus_read(&fp->mmio, na + 0x3ffe, &v, 4)); /* straddles the end */

	/* 64-bit BAR, moved low dword first. */
	ecam_write(fp, 1, 0, PCI_CFG_BAR0 + 8, 4, (uint32_t)na2);
	ecam_write(fp, 1, 0, PCI_CFG_BAR0 + 12, 4, 0);
	assert_int_equal(f->d1.bars[2].addr, na2);
	assert_false(mmio_claimed(fp, WIN + 0x100000));
	assert_true(bus_write(&fp->mmio, na2 + 0xff000, &v, 4));
	assert_int_equal(f->r2.off, 0xff000);
	/* Above 4 GiB: outside the window, so not decoded. */
	ecam_write(fp, 1, 0, PCI_CFG_BAR0 + 12, 4, 1);
	assert_false(f->d1.bars[2].mapped);
	assert_false(mmio_claimed(fp, na2));
	assert_false(mmio_claimed(fp, na2 + (1ULL << 32)));
	ecam_write(fp, 1, 0, PCI_CFG_BAR0 + 12, 4, 0);
	assert_true(f->d1.bars[2].mapped);
}

static void test_bar_refused(void **state)
{
	struct fx *f = *state;
	struct fake_platform *fp = &f->fp;
	uint64_t d2a = f->d2.bars[0].addr;
	uint32_t b0 = PCI_CFG_BAR0;

	/* Into RAM, onto ECAM, onto the LAPIC, below the window: all refused. */
	const uint64_t bad[] = {0x100000, LAYOUT_PCI_ECAM_START, LAYOUT_LAPIC, WIN - 0x4000,
				0xfffe0000};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ecam_write(fp, 1, 0, b0, 4, (uint32_t)bad[i]);
		assert_false(f->d1.bars[0].mapped);
		assert_int_equal(ecam_read(fp, 0, 0, 0, 4), 0x00081b36); /* ECAM intact */
	}
	/* Onto another device's BAR: refused; mapped once that device moves away. */
	ecam_write(fp, 1, 0, b0, 4, (uint32_t)(d2a & ~0x3fffULL));
	assert_false(f->d1.bars[0].mapped);
	assert_true(f->d2.bars[0].mapped && f->d2.bars[0].addr == d2a);
	ecam_write(fp, 2, 0, b0, 4, (uint32_t)(WIN + 0x1000000));
	assert_true(f->d2.bars[0].mapped);
	assert_true(f->d1.bars[0].mapped);
	assert_int_equal(f->d1.bars[0].addr, d2a & ~0x3fffULL);
	/* Two BARs of one device onto each other: the later one stays off. */
	ecam_write(fp, 1, 0, PCI_CFG_BAR0 + 8, 4, (uint32_t)(d2a & ~0xfffffULL));
	assert_true(f->d1.bars[0].mapped);
	assert_false(f->d1.bars[2].mapped);
}

static void test_ram_in_window(void **state)
{
	struct fx *f;
	uint64_t ram = WIN + 0x10000000;

	/* Fake RAM placed inside the window: BARs must never decode over it. */
	assert_int_equal(fx_setup_at(state, ram, 0x100000), 0);
	f = *state;
	ecam_write(&f->fp, 1, 0, PCI_CFG_BAR0, 4, (uint32_t)(ram + 0x8000));
	assert_false(f->d1.bars[0].mapped);
	ecam_write(&f->fp, 1, 0, PCI_CFG_BAR0, 4, (uint32_t)(ram + 0x100000));
	assert_true(f->d1.bars[0].mapped);
	assert_int_equal(fx_teardown(state), 0);
}

static void test_caps(void **state)
{
	struct fx *f = *state;
	struct fake_platform *fp = &f->fp;
	uint8_t v, m;

	v = cap_find(fp, 1, PCI_CAP_ID_VNDR);
	m = cap_find(fp, 1, PCI_CAP_ID_MSIX);
	assert_int_equal(v, 0x40);
	assert_true(m > v && (m & 3) == 0);
	assert_int_equal(ecam_read(fp, 1, 0, v + 1u, 1), m);
	assert_int_equal(ecam_read(fp, 1, 0, m + 1u, 1), 0); /* end of list */
	assert_int_equal(ecam_read(fp, 1, 0, v + 2u, 2), 0x0110);
	assert_int_equal(ecam_read(fp, 1, 0, v + 4u, 4), 0x05040302);
	assert_int_equal(ecam_read(fp, 1, 0, v + 2u, 4), 0xffffffff); /* misaligned */
	/* Body write mask honoured: only byte 2 of the body (cap offset 4) is writable. */
	ecam_write(fp, 1, 0, v, 4, 0xffffffff);
	ecam_write(fp, 1, 0, v + 4u, 4, 0xffffffff);
	assert_int_equal(ecam_read(fp, 1, 0, v, 4), (0x0110u << 16) | (uint32_t)(m << 8) | 0x09);
	assert_int_equal(ecam_read(fp, 1, 0, v + 4u, 4), 0x050403ff);
	assert_int_equal(cap_find(fp, 2, PCI_CAP_ID_MSIX), 0);
	assert_int_equal(ecam_read(fp, 2, 0, PCI_CFG_CAP_PTR, 1), 0);
	/* Capability API errors. */
	struct pci_dev d;
	uint8_t big[250] = {0};
	pci_dev_init(&d, 1, 2, 0, 0, 0, 0, NULL, NULL);
	assert_int_equal(pci_dev_add_cap(&d, 9, NULL, 4, NULL, NULL), -EINVAL);
	assert_int_equal(pci_dev_add_cap(&d, 9, big, 200, NULL, NULL), -ENOSPC);
	assert_int_equal(pci_dev_add_cap(&d, 9, big, 100, NULL, NULL), 0);
	assert_int_equal(pci_dev_add_cap(&d, 9, big, 100, NULL, NULL), -ENOSPC);
	assert_int_equal(pci_dev_set_bar(&d, 0, 0x1000, true, NULL, NULL), 0);
	assert_int_equal(pci_dev_set_bar(&d, 1, 0x1000, false, NULL, NULL), -EBUSY);
	assert_int_equal(pci_dev_set_bar(&d, 5, 0x1000, true, NULL, NULL), -EINVAL);
	assert_int_equal(pci_dev_set_bar(&d, 2, 0x1800, false, NULL, NULL), -EINVAL);
	assert_int_equal(pci_dev_set_bar(&d, 2, 0x800, false, NULL, NULL), -EINVAL);
	assert_int_equal(pci_dev_set_bar(&d, 6, 0x1000, false, NULL, NULL), -EINVAL);
	assert_int_equal(pci_dev_add_msix(&d, 4, 1, 0, 0x800), -EINVAL);  /* upper half */
	assert_int_equal(pci_dev_add_msix(&d, 4, 0, 0, 0x20), -EINVAL);	  /* overlap */
	assert_int_equal(pci_dev_add_msix(&d, 65, 0, 0, 0x800), -EINVAL); /* too many */
	assert_int_equal(pci_dev_add_msix(&d, 4, 0, 0xff8, 0), -EINVAL);  /* past end */
	pci_dev_fini(&d);
	/* Adding the same device twice is refused. */
	assert_int_equal(pci_host_add_dev(&f->h, &f->d1), -EBUSY);
}

static void test_window_full(void **state)
{
	struct fx *f = *state;
	struct pci_dev big;

	pci_dev_init(&big, 1, 2, 0, 0, 0, 0, NULL, NULL);
	assert_int_equal(pci_dev_set_bar(&big, 0, 1ULL << 31, false, NULL, NULL), 0);
	assert_int_equal(pci_host_add_dev(&f->h, &big), -ENOSPC);
	assert_null(big.host);
	assert_int_equal(ecam_read(&f->fp, 3, 0, 0, 4), 0xffffffff);
	pci_dev_fini(&big);
}

static void test_add_clash(void **state)
{
	struct fx *f = *state;
	struct pci_dev d;
	struct bar_rec dummy = {0};
	uint64_t next = f->h.mmio_next;

	/* Something else already sits where BAR1 of the new device will go. */
	assert_int_equal(bus_register(&f->fp.mmio, next + 0x1000, 0x1000, &bar_rec_ops, &dummy), 0);
	pci_dev_init(&d, 0x1af4, 0x1050, 0, 0, 0, 0, &fx_ops, f);
	assert_int_equal(pci_dev_set_bar(&d, 0, 0x1000, false, &bar_rec_ops, &f->r0), 0);
	assert_int_equal(pci_dev_set_bar(&d, 1, 0x1000, false, &bar_rec_ops, &f->r0), 0);
	assert_int_equal(pci_dev_add_msix(&d, 3, 0, 0x800, 0xc00), 0);
	memset(f->remaps, 0, sizeof(f->remaps));
	assert_int_equal(pci_host_add_dev(&f->h, &d), -EEXIST);
	/* Rolled back: BAR0 was mapped then unmapped (hook both times), no slot, no MSIs. */
	assert_null(d.host);
	assert_false(d.bars[0].mapped || d.bars[1].mapped);
	assert_int_equal(f->remaps[0], 2);
	assert_false(mmio_claimed(&f->fp, next));
	assert_true(mmio_claimed(&f->fp, next + 0x1000));
	assert_int_equal(f->fp.msi_allocated, 2);
	assert_int_equal(ecam_read(&f->fp, 3, 0, 0, 4), 0xffffffff);
	/* Once the obstacle is gone the device can be added. */
	assert_int_equal(bus_unregister(&f->fp.mmio, next + 0x1000, &dummy), 0);
	assert_int_equal(pci_host_add_dev(&f->h, &d), 0);
	assert_int_equal(ecam_read(&f->fp, 3, 0, 0, 4), 0x10501af4);
	assert_int_equal(f->fp.msi_allocated, 5);
	pci_host_fini(&f->h);
	pci_dev_fini(&d);
}

static bool hook_cfg_read(struct pci_dev *d, uint32_t off, unsigned len, uint32_t *val)
{
	(void)len;
	if (off != 0x48)
		return false;
	*val = 0xabcd1234 ^ pci_dev_cfg_get(d, 0x44, 4); /* device may peek at its cap */
	return true;
}

static const struct pci_dev_ops hook_ops = {.cfg_read = hook_cfg_read};

static void test_cfg_read_hook(void **state)
{
	struct fx *f = *state;
	struct pci_dev d;
	uint8_t body[10] = {0}, wm[10] = {0, 0, 0xff, 0xff, 0xff, 0xff};

	pci_dev_init(&d, 0x1af4, 0x1050, 0, 0, 0, 0, &hook_ops, NULL);
	assert_int_equal(pci_dev_add_cap(&d, PCI_CAP_ID_VNDR, body, sizeof(body), wm, NULL), 0);
	assert_int_equal(pci_host_add_dev(&f->h, &d), 0);
	assert_int_equal(d.slot, 3);
	assert_int_equal(ecam_read(&f->fp, 3, 0, 0x48, 4), 0xabcd1234);
	assert_int_equal(ecam_read(&f->fp, 3, 0, 0x48, 2), 0x1234); /* narrowed to len */
	ecam_write(&f->fp, 3, 0, 0x44, 4, 0x0000ffff);
	assert_int_equal(cfc_read(&f->fp, 3, 0, 0x48, 4), 0xabcd1234 ^ 0xffff);
	assert_int_equal(cfc_read(&f->fp, 3, 0, 0x44, 4), 0x0000ffff); /* not hooked */
	pci_host_fini(&f->h); /* detaches d before it goes out of scope */
	assert_null(d.host);
	pci_dev_fini(&d);
	assert_false(mmio_claimed(&f->fp, WIN));
	assert_false(bus_read(&f->fp.mmio, LAYOUT_PCI_ECAM_START, &body, 4));
	/* The fixture's teardown calls pci_host_fini again: harmless. */
}

/* Hostile guest: random config writes (fixed seed) never crash and never decode a BAR
 * over RAM, ECAM or outside the window. */
static void check_mmio_map(struct fx *f)
{
	const struct bus *b = &f->fp.mmio;
	const struct pci_dev *devs[] = {&f->d1, &f->d2};
	size_t mapped = 0;

	for (size_t i = 0; i < b->nr; i++) {
		const struct bus_range *r = &b->ranges[i];
		if (r->base == LAYOUT_PCI_ECAM_START) {
			assert_int_equal(r->len, LAYOUT_PCI_ECAM_SIZE);
			continue;
		}
		assert_true(r->base >= WIN && r->base + r->len <= WIN + LAYOUT_PCI_MMIO_SIZE);
		assert_true(r->base >= f->fp.ram_gpa + f->fp.ram_size);
	}
	/* Every mapped BAR is exactly one bus range, and nothing else is there. */
	for (unsigned d = 0; d < 2; d++) {
		for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
			const struct pci_bar *bar = &devs[d]->bars[i];
			bool found = false;
			if (!bar->mapped)
				continue;
			mapped++;
			for (size_t k = 0; k < b->nr; k++)
				found |= b->ranges[k].base == bar->addr &&
					 b->ranges[k].len == bar->size &&
					 b->ranges[k].opaque == bar;
			assert_true(found);
		}
	}
	assert_int_equal(b->nr, mapped + 1);
}

static uint32_t fuzz_value(unsigned *seed)
{
	uint32_t r = (uint32_t)rand_r(seed);
	switch (r % 8) {
	case 0:
		return 0xffffffff;
	case 1:
		return 0;
	case 2:
		return (uint32_t)LAYOUT_PCI_ECAM_START + (r & 0xff000);
	case 3:
		return 0x100000 + (r & 0xfff000); /* RAM */
	case 4:
		return (uint32_t)rand_r(seed);
	case 5:
		return PCI_CFG_CMD_MEM | PCI_CFG_CMD_MASTER | (r & 0x100);
	case 6:
		return PCI_MSIX_CTRL_ENABLE | (r & PCI_MSIX_CTRL_FMASK);
	default:
		return (uint32_t)WIN + (r & 0x3ff000); /* somewhere in the window */
	}
}

static uint32_t fuzz_offset(struct fx *f, unsigned *seed)
{
	uint32_t r = (uint32_t)rand_r(seed);
	switch (r % 6) {
	case 0:
		return PCI_CFG_COMMAND + (r >> 8) % 4;
	case 1:
	case 2:
		return PCI_CFG_BAR0 + (r >> 8) % 24;
	case 3:
		return f->d1.msix.cap_off + (r >> 8) % 12;
	case 4:
		return (r >> 8) % 0x100;
	default:
		return (r >> 8) % 4200; /* includes past-the-end offsets */
	}
}

static void test_fuzz(void **state)
{
	struct fx *f = *state;
	struct fake_platform *fp = &f->fp;
	unsigned seed = 0x5eed, remaps = 0;
	uint64_t q;

	for (unsigned it = 0; it < 100000; it++) {
		uint32_t rnd = (uint32_t)rand_r(&seed), val = fuzz_value(&seed);
		uint32_t off = fuzz_offset(f, &seed), a;
		unsigned len = 1u << (rnd % 3), slot = (rnd >> 2) % 4;

		if ((rnd >> 4) % 4 != 0) /* mostly aligned, sometimes not */
			off &= ~(len - 1);
		switch ((rnd >> 8) % 4) {
		case 0: /* ECAM */
			bus_write(&fp->mmio, ecam_addr(slot, 0, off & 0xfff), &val, len);
			break;
		case 1: /* CF8/CFC, the latch sometimes garbage */
			a = (rnd >> 12) % 8 ? cf8_addr(0, slot, (rnd >> 16) % 8 == 0, off)
					    : (uint32_t)rand_r(&seed);
			bus_write(&fp->pio, PORT_PCI_CONFIG_ADDR, &a, 4);
			bus_write(&fp->pio, PORT_PCI_CONFIG_DATA + (off & 3), &val, len);
			break;
		case 2:
			pci_host_cfg_write(&f->h, slot, (rnd >> 13) % 8 == 0, off, len, val);
			break;
		default: { /* poke what the BARs decode: device registers and MSI-X table */
			const struct pci_bar *bar = &f->d1.bars[(rnd >> 12) % 2 ? 0 : 2];
			uint64_t at = bar->addr + (rand_r(&seed) % (bar->size + 64)) - 32;
			if ((rnd >> 18) % 2) /* aim at the MSI-X table (BAR0 + 0x2000) */
				at = f->d1.bars[0].addr + 0x2000 + rand_r(&seed) % 40;
			unsigned blen = 1u << ((rnd >> 14) % 4);
			q = (uint64_t)fuzz_value(&seed) << ((rnd >> 16) % 2 ? 32 : 0);
			bus_write(&fp->mmio, at, &q, blen);
			bus_read(&fp->mmio, at, &q, blen);
			if (pci_msix_notify(&f->d1, rnd % 3) == -EINVAL)
				assert_int_equal(rnd % 3, 2);
			break;
		}
		}
		if (it % 16 == 0)
			check_mmio_map(f);
	}
	check_mmio_map(f);
	for (unsigned i = 0; i < PCI_NUM_BARS; i++)
		remaps += f->remaps[i];
	/* The loop really moved BARs around and delivered messages. */
	assert_true(remaps > 30);
	assert_true(fp->msi[f->d1.msix.entries[0].handle].fired +
			fp->msi[f->d1.msix.entries[1].handle].fired >
		    0);
	/* Identity survived. */
	assert_int_equal(ecam_read(fp, 1, 0, 0, 4), 0x10411af4);
	assert_int_equal(ecam_read(fp, 0, 0, 0, 4), 0x00081b36);
	assert_int_equal(f->fp.msi_allocated, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_enumerate, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_cf8_protocol, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_header_semantics, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_bar_sizing, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_bar_move, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_bar_refused, fx_setup, fx_teardown),
	    cmocka_unit_test(test_ram_in_window),
	    cmocka_unit_test_setup_teardown(test_caps, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_window_full, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_add_clash, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_cfg_read_hook, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_fuzz, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
