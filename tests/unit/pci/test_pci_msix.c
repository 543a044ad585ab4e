/* SPDX-License-Identifier: MIT */
/* MSI-X: capability, table and PBA in a BAR, routes pushed to the platform, delivery. */
#include "pci_test.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>

#define NVEC 4
#define TBL 0x1000
#define PBA 0x2000

struct fx {
	struct fake_platform fp;
	struct platform plat; /* copy of fp.plat, ops possibly NULL */
	struct pci_host h;
	struct pci_dev d;
	struct bar_rec rec;
	uint64_t bar; /* guest address of the MSI-X BAR */
	uint8_t cap;
	unsigned changed;
};

static void fx_msix_changed(struct pci_dev *d)
{
	struct fx *f = d->opaque;
	f->changed++;
}

static const struct pci_dev_ops fx_ops = {.msix_changed = fx_msix_changed};

static int fx_setup_ops(void **state, bool null_ops)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	fake_platform_init(&f->fp, 0, 1 << 20);
	f->plat = f->fp.plat;
	if (null_ops)
		f->plat.ops = NULL;
	assert_int_equal(pci_host_init(&f->h, &f->plat, LAYOUT_PCI_ECAM_START, LAYOUT_PCI_ECAM_SIZE,
				       LAYOUT_PCI_MMIO_START, LAYOUT_PCI_MMIO_SIZE),
			 0);
	pci_dev_init(&f->d, PCI_VENDOR_ID_REDHAT_QUMRANET, 0x1041, 0x020000, 1,
		     PCI_VENDOR_ID_REDHAT_QUMRANET, 0x1100, &fx_ops, f);
	assert_int_equal(pci_dev_set_bar(&f->d, 0, 0x1000, false, &bar_rec_ops, &f->rec), 0);
	assert_int_equal(pci_dev_set_bar(&f->d, 2, 0x4000, true, &bar_rec_ops, &f->rec), 0);
	assert_int_equal(pci_dev_add_msix(&f->d, NVEC, 2, TBL, PBA), 0);
	assert_int_equal(pci_dev_add_msix(&f->d, NVEC, 2, TBL, PBA), -EBUSY);
	assert_int_equal(f->fp.msi_allocated, 0); /* handles come with the host */
	assert_int_equal(pci_host_add_dev(&f->h, &f->d), 0);
	assert_int_equal(f->fp.msi_allocated, null_ops ? 0 : NVEC);
	f->bar = f->d.bars[2].addr;
	assert_true(f->d.bars[2].mapped);
	f->cap = cap_find(&f->fp, 1, PCI_CAP_ID_MSIX);
	assert_true(f->cap >= PCI_CFG_CAP_START);
	*state = f;
	return 0;
}

static int fx_setup(void **state)
{
	return fx_setup_ops(state, false);
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	pci_host_fini(&f->h);
	assert_int_equal(f->fp.msi_allocated, 0);
	pci_dev_fini(&f->d);
	fake_platform_fini(&f->fp);
	free(f);
	return 0;
}

static void ctrl_write(struct fx *f, uint16_t v)
{
	ecam_write(&f->fp, 1, 0, f->cap + 2u, 2, v);
}

static void tbl_write32(struct fx *f, unsigned vec, unsigned field, uint32_t v)
{
	assert_true(bus_write(&f->fp.mmio, f->bar + TBL + 16 * vec + field, &v, 4));
}

static uint32_t tbl_read32(struct fx *f, unsigned vec, unsigned field)
{
	uint32_t v = 0;
	assert_true(bus_read(&f->fp.mmio, f->bar + TBL + 16 * vec + field, &v, 4));
	return v;
}

static uint64_t pba_read(struct fx *f)
{
	uint64_t v = 0;
	assert_true(bus_read(&f->fp.mmio, f->bar + PBA, &v, 8));
	return v;
}

static unsigned fired(struct fx *f, unsigned vec)
{
	return f->fp.msi[f->d.msix.entries[vec].handle].fired;
}

/* Linux's order: bus master, then ENABLE|MASKALL, program, clear MASKALL. */
static void enable_all(struct fx *f)
{
	ecam_write(&f->fp, 1, 0, PCI_CFG_COMMAND, 2, PCI_CFG_CMD_MEM | PCI_CFG_CMD_MASTER);
	ctrl_write(f, PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_FMASK);
	for (unsigned v = 0; v < NVEC; v++) {
		tbl_write32(f, v, PCI_MSIX_ENTRY_ADDR_LO, 0xfee00000 | v << 12);
		tbl_write32(f, v, PCI_MSIX_ENTRY_ADDR_HI, 0);
		tbl_write32(f, v, PCI_MSIX_ENTRY_DATA, 0x4030 + v);
		tbl_write32(f, v, PCI_MSIX_ENTRY_CTRL, 0);
	}
	ctrl_write(f, PCI_MSIX_CTRL_ENABLE);
}

static void test_capability(void **state)
{
	struct fx *f = *state;
	struct fake_platform *fp = &f->fp;

	assert_int_equal(ecam_read(fp, 1, 0, f->cap + 2u, 2), NVEC - 1);
	assert_int_equal(ecam_read(fp, 1, 0, f->cap + 4u, 4), TBL | 2);
	assert_int_equal(ecam_read(fp, 1, 0, f->cap + 8u, 4), PBA | 2);
	/* Only enable and function mask are writable. */
	ctrl_write(f, 0xffff);
	assert_int_equal(ecam_read(fp, 1, 0, f->cap + 2u, 2), 0xc000 | (NVEC - 1));
	assert_true(pci_msix_enabled(&f->d));
	ecam_write(fp, 1, 0, f->cap + 4u, 4, 0);
	ecam_write(fp, 1, 0, f->cap + 8u, 4, 0);
	assert_int_equal(cfc_read(fp, 1, 0, f->cap + 4u, 4), TBL | 2);
	assert_int_equal(cfc_read(fp, 1, 0, f->cap + 8u, 4), PBA | 2);
	cfc_write(fp, 1, 0, f->cap + 3u, 1, 0); /* byte write to the upper half of control */
	assert_false(pci_msix_enabled(&f->d));
	assert_true(f->changed >= 2);
	/* Reset state of the table: all masked, zero. PBA empty. */
	for (unsigned v = 0; v < NVEC; v++) {
		assert_int_equal(tbl_read32(f, v, PCI_MSIX_ENTRY_ADDR_LO), 0);
		assert_int_equal(tbl_read32(f, v, PCI_MSIX_ENTRY_CTRL), 1);
	}
	assert_true(pba_read(f) == 0);
}

static void test_table_programming(void **state)
{
	struct fx *f = *state;
	unsigned h1 = f->d.msix.entries[1].handle, h2 = f->d.msix.entries[2].handle;
	uint64_t q;

	enable_all(f);
	for (unsigned v = 0; v < NVEC; v++) {
		unsigned h = f->d.msix.entries[v].handle;
		assert_true(f->fp.msi[h].used);
		assert_true(f->fp.msi[h].addr == (0xfee00000u | v << 12));
		assert_int_equal(f->fp.msi[h].data, 0x4030 + v);
	}
	/* Distinct handles per vector. */
	assert_int_not_equal(h1, h2);
	/* Re-program vector 1 under its mask, the route follows on unmask. */
	tbl_write32(f, 1, PCI_MSIX_ENTRY_CTRL, 1);
	tbl_write32(f, 1, PCI_MSIX_ENTRY_DATA, 0x4099);
	tbl_write32(f, 1, PCI_MSIX_ENTRY_ADDR_HI, 0);
	tbl_write32(f, 1, PCI_MSIX_ENTRY_ADDR_LO, 0xfee03000);
	tbl_write32(f, 1, PCI_MSIX_ENTRY_CTRL, 0);
	assert_int_equal(f->fp.msi[h1].data, 0x4099);
	assert_true(f->fp.msi[h1].addr == 0xfee03000);
	/* 8-byte accesses: address as one qword, data + control as another. */
	q = 0x00000001fee05000ULL;
	assert_true(bus_write(&f->fp.mmio, f->bar + TBL + 32, &q, 8));
	q = 0x0000000000004077ULL; /* data 0x4077, control 0: unmasked */
	assert_true(bus_write(&f->fp.mmio, f->bar + TBL + 40, &q, 8));
	assert_true(f->fp.msi[h2].addr == 0x1fee05000ULL);
	assert_int_equal(f->fp.msi[h2].data, 0x4077);
	q = 0;
	assert_true(bus_read(&f->fp.mmio, f->bar + TBL + 32, &q, 8));
	assert_true(q == 0x00000001fee05000ULL);
	assert_int_equal(tbl_read32(f, 2, PCI_MSIX_ENTRY_ADDR_HI), 1);
	assert_int_equal(tbl_read32(f, 2, PCI_MSIX_ENTRY_DATA), 0x4077);
	/* Reserved vector-control bits read 0. */
	tbl_write32(f, 3, PCI_MSIX_ENTRY_CTRL, 0xfffffffe);
	assert_int_equal(tbl_read32(f, 3, PCI_MSIX_ENTRY_CTRL), 0);
	tbl_write32(f, 3, PCI_MSIX_ENTRY_CTRL, 0xffffffff);
	assert_int_equal(tbl_read32(f, 3, PCI_MSIX_ENTRY_CTRL), 1);
	/* Changing a live entry's data updates the route too. */
	tbl_write32(f, 0, PCI_MSIX_ENTRY_DATA, 0x4055);
	assert_int_equal(f->fp.msi[f->d.msix.entries[0].handle].data, 0x4055);
}

static void test_notify(void **state)
{
	struct fx *f = *state;

	/* MSI-X disabled: -ENODEV, nothing latched. */
	assert_int_equal(pci_msix_notify(&f->d, 0), -ENODEV);
	assert_true(pba_read(f) == 0);
	assert_int_equal(pci_msix_notify(&f->d, NVEC), -EINVAL);
	assert_int_equal(pci_msix_notify(&f->d, UINT_MAX), -EINVAL);

	enable_all(f);
	assert_int_equal(pci_msix_notify(&f->d, 0), 0);
	assert_int_equal(pci_msix_notify(&f->d, 3), 0);
	assert_int_equal(fired(f, 0), 1);
	assert_int_equal(fired(f, 3), 1);
	assert_int_equal(fired(f, 1), 0);
	assert_int_equal(pci_msix_notify(&f->d, NVEC), -EINVAL);

	/* Masked vector: pending bit, delivered (once) on unmask. */
	tbl_write32(f, 1, PCI_MSIX_ENTRY_CTRL, 1);
	assert_int_equal(pci_msix_notify(&f->d, 1), 0);
	assert_int_equal(pci_msix_notify(&f->d, 1), 0);
	assert_int_equal(fired(f, 1), 0);
	assert_true(pba_read(f) == 0x2);
	uint32_t w = 0;
	assert_true(bus_read(&f->fp.mmio, f->bar + PBA, &w, 4));
	assert_int_equal(w, 0x2);
	w = 0;
	assert_true(bus_write(&f->fp.mmio, f->bar + PBA, &w, 4)); /* PBA is read-only */
	assert_true(pba_read(f) == 0x2);
	tbl_write32(f, 1, PCI_MSIX_ENTRY_CTRL, 0);
	assert_int_equal(fired(f, 1), 1);
	assert_true(pba_read(f) == 0);

	/* Function mask. */
	ctrl_write(f, PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_FMASK);
	assert_int_equal(pci_msix_notify(&f->d, 2), 0);
	assert_int_equal(pci_msix_notify(&f->d, 3), 0);
	assert_int_equal(fired(f, 2), 0);
	assert_true(pba_read(f) == 0xc);
	ctrl_write(f, PCI_MSIX_CTRL_ENABLE);
	assert_int_equal(fired(f, 2), 1);
	assert_int_equal(fired(f, 3), 2);
	assert_true(pba_read(f) == 0);

	/* Pending kept across disable; setting ENABLE delivers it. */
	ctrl_write(f, PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_FMASK);
	assert_int_equal(pci_msix_notify(&f->d, 0), 0);
	ctrl_write(f, PCI_MSIX_CTRL_FMASK);
	assert_int_equal(pci_msix_notify(&f->d, 0), -ENODEV);
	assert_int_equal(fired(f, 0), 1);
	ctrl_write(f, PCI_MSIX_CTRL_ENABLE);
	assert_int_equal(fired(f, 0), 2);
	assert_true(pba_read(f) == 0);

	/* No bus mastering, no messages: latched, sent when bus master comes back. */
	ecam_write(&f->fp, 1, 0, PCI_CFG_COMMAND, 2, PCI_CFG_CMD_MEM);
	assert_int_equal(pci_msix_notify(&f->d, 2), 0);
	assert_int_equal(fired(f, 2), 1);
	ecam_write(&f->fp, 1, 0, PCI_CFG_COMMAND, 2, PCI_CFG_CMD_MEM | PCI_CFG_CMD_MASTER);
	assert_int_equal(fired(f, 2), 2);
}

static void test_bar_dispatch(void **state)
{
	struct fx *f = *state;
	uint32_t v = 0x77;
	uint64_t q = 0;

	/* Outside table/PBA: the device's handler, BAR-relative offsets. */
	assert_true(bus_write(&f->fp.mmio, f->bar + 0x10, &v, 4));
	assert_int_equal(f->rec.off, 0x10);
	assert_int_equal(f->rec.writes, 1);
	assert_true(bus_write(&f->fp.mmio, f->bar + TBL + 16 * NVEC, &v, 4)); /* after table */
	assert_int_equal(f->rec.off, TBL + 16 * NVEC);
	assert_true(bus_read(&f->fp.mmio, f->bar + PBA + 8, &v, 4)); /* after PBA */
	assert_int_equal(f->rec.off, PBA + 8);
	assert_int_equal(v, 0x5a5a5a5a);
	unsigned writes = f->rec.writes, reads = f->rec.reads;
	/* Inside: never forwarded. Misaligned or straddling accesses are dropped. */
	tbl_write32(f, 0, PCI_MSIX_ENTRY_DATA, 0x1234);
	v = 0xdead;
	assert_true(bus_write(&f->fp.mmio, f->bar + TBL + 6, &v, 4));
	assert_int_equal(tbl_read32(f, 0, PCI_MSIX_ENTRY_ADDR_LO), 0);
	assert_true(bus_read(&f->fp.mmio, f->bar + TBL + 4, &q, 8));
	assert_true(q == UINT64_MAX);
	assert_true(bus_read(&f->fp.mmio, f->bar + TBL - 4, &q, 8)); /* straddles start */
	assert_true(q == UINT64_MAX);
	assert_true(bus_write(&f->fp.mmio, f->bar + TBL + 16 * NVEC - 4, &q, 8));
	assert_int_equal(tbl_read32(f, NVEC - 1, PCI_MSIX_ENTRY_CTRL), 1);
	/* Byte and word reads of a table entry are served. */
	v = 0;
	assert_true(bus_read(&f->fp.mmio, f->bar + TBL + PCI_MSIX_ENTRY_DATA + 1, &v, 1));
	assert_int_equal(v, 0x12);
	assert_int_equal(f->rec.writes, writes);
	assert_int_equal(f->rec.reads, reads);
	/* The other BAR (no MSI-X) goes straight to the device. */
	assert_true(bus_read(&f->fp.mmio, f->d.bars[0].addr + TBL % 0x1000, &v, 4));
	assert_int_equal(f->rec.reads, reads + 1);
	/* The same dispatch without going through the MMIO bus (config windows). */
	v = 0;
	pci_dev_bar_read(&f->d, 2, TBL + PCI_MSIX_ENTRY_DATA, &v, 4);
	assert_int_equal(v, 0x1234);
	v = 0x4321;
	pci_dev_bar_write(&f->d, 2, TBL + PCI_MSIX_ENTRY_DATA, &v, 4);
	assert_int_equal(tbl_read32(f, 0, PCI_MSIX_ENTRY_DATA), 0x4321);
	pci_dev_bar_write(&f->d, 2, 0x20, &v, 2);
	assert_int_equal(f->rec.off, 0x20);
	assert_int_equal(f->rec.len, 2);
	pci_dev_bar_read(&f->d, 2, 0x3ffe, &v, 4); /* past the end */
	assert_int_equal(v, 0xffffffff);
	pci_dev_bar_read(&f->d, 3, 0, &v, 4); /* upper half of the 64-bit BAR */
	assert_int_equal(v, 0xffffffff);
	v = 0x1234;
	pci_dev_bar_write(&f->d, 2, TBL + PCI_MSIX_ENTRY_DATA, &v, 4);
	/* Moving the BAR moves the table. */
	uint64_t na = LAYOUT_PCI_MMIO_START + 0x1000000;
	ecam_write(&f->fp, 1, 0, PCI_CFG_BAR0 + 8, 4, (uint32_t)na | PCI_CFG_BAR_MEM_64);
	assert_false(mmio_claimed(&f->fp, f->bar + TBL));
	assert_true(bus_read(&f->fp.mmio, na + TBL + PCI_MSIX_ENTRY_DATA, &v, 4));
	assert_int_equal(v, 0x1234);
}

static void test_null_ops(void **state)
{
	struct fx *f;

	assert_int_equal(fx_setup_ops(state, true), 0);
	f = *state;
	enable_all(f);
	/* Nowhere to send it: stays pending, nothing crashes. */
	assert_int_equal(pci_msix_notify(&f->d, 1), 0);
	assert_true(pba_read(f) == 0x2);
	assert_int_equal(pci_msix_notify(&f->d, NVEC), -EINVAL);
	assert_int_equal(fx_teardown(state), 0);
}

static void test_unattached(void **state)
{
	struct pci_dev d;
	(void)state;

	pci_dev_init(&d, 1, 2, 0, 0, 0, 0, NULL, NULL);
	assert_int_equal(pci_msix_notify(&d, 0), -ENODEV); /* no MSI-X at all */
	assert_false(pci_msix_enabled(&d));
	assert_int_equal(pci_dev_set_bar(&d, 0, 0x1000, false, NULL, NULL), 0);
	assert_int_equal(pci_dev_add_msix(&d, 2, 0, 0x800, 0xc00), 0);
	assert_int_equal(pci_msix_notify(&d, 0), -ENODEV);
	assert_int_equal(pci_msix_notify(&d, 2), -EINVAL);
	pci_dev_fini(&d);
}

/*
 * Threads: a device thread notifying, a vCPU reprogramming/masking vectors through the
 * table and toggling the function mask, another vCPU reading config space. A wrapped
 * platform checks that every fired message uses the route the guest programmed last.
 */
struct race {
	struct fx *f;
	const struct platform_ops *inner;
	unsigned stale, fires;
	bool stop;
};

static struct race *race_of(void *ctx)
{
	return ctx;
}

static int race_alloc(void *ctx, unsigned *h)
{
	return race_of(ctx)->inner->msi_alloc(&race_of(ctx)->f->fp, h);
}

static int race_update(void *ctx, unsigned h, uint64_t addr, uint32_t data)
{
	return race_of(ctx)->inner->msi_update(&race_of(ctx)->f->fp, h, addr, data);
}

static void race_free(void *ctx, unsigned h)
{
	race_of(ctx)->inner->msi_free(&race_of(ctx)->f->fp, h);
}

/* Runs under the device mutex: the entry cannot change meanwhile. */
static int race_fire(void *ctx, unsigned h)
{
	struct race *r = race_of(ctx);
	struct fx *f = r->f;
	for (unsigned v = 0; v < NVEC; v++) {
		const struct pci_msix_entry *e = &f->d.msix.entries[v];
		if (e->handle == h &&
		    (f->fp.msi[h].addr != e->addr || f->fp.msi[h].data != e->data ||
		     (e->ctrl & PCI_MSIX_ENTRY_MASKED)))
			r->stale++;
	}
	r->fires++;
	return r->inner->msi_fire(&f->fp, h);
}

static const struct platform_ops race_ops = {.msi_alloc = race_alloc,
					     .msi_update = race_update,
					     .msi_fire = race_fire,
					     .msi_free = race_free};

static void *race_notifier(void *arg)
{
	struct race *r = arg;
	for (unsigned i = 0; !__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE); i++) {
		int rc = pci_msix_notify(&r->f->d, i % NVEC);
		if (rc && rc != -ENODEV)
			abort();
	}
	return NULL;
}

static void *race_reader(void *arg)
{
	struct race *r = arg;
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE))
		if (pci_host_cfg_read(&r->f->h, 1, 0, 0, 4) != 0x10411af4)
			abort();
	return NULL;
}

static void test_concurrency(void **state)
{
	struct race r = {0};
	struct fx *f = calloc(1, sizeof(*f));
	pthread_t t1, t2;
	unsigned fires;

	(void)state;
	assert_non_null(f);
	fake_platform_init(&f->fp, 0, 1 << 20);
	r.f = f;
	r.inner = f->fp.plat.ops;
	f->plat = f->fp.plat;
	f->plat.ops = &race_ops;
	f->plat.ctx = &r;
	assert_int_equal(pci_host_init(&f->h, &f->plat, LAYOUT_PCI_ECAM_START, LAYOUT_PCI_ECAM_SIZE,
				       LAYOUT_PCI_MMIO_START, LAYOUT_PCI_MMIO_SIZE),
			 0);
	pci_dev_init(&f->d, PCI_VENDOR_ID_REDHAT_QUMRANET, 0x1041, 0x020000, 1,
		     PCI_VENDOR_ID_REDHAT_QUMRANET, 0x1100, NULL, f);
	assert_int_equal(pci_dev_set_bar(&f->d, 2, 0x4000, true, &bar_rec_ops, &f->rec), 0);
	assert_int_equal(pci_dev_add_msix(&f->d, NVEC, 2, TBL, PBA), 0);
	assert_int_equal(pci_host_add_dev(&f->h, &f->d), 0);
	f->bar = f->d.bars[2].addr;
	f->cap = cap_find(&f->fp, 1, PCI_CAP_ID_MSIX);
	enable_all(f);

	assert_int_equal(pthread_create(&t1, NULL, race_notifier, &r), 0);
	assert_int_equal(pthread_create(&t2, NULL, race_reader, &r), 0);
	for (unsigned i = 0; i < 20000; i++) {
		unsigned v = i % NVEC;
		tbl_write32(f, v, PCI_MSIX_ENTRY_CTRL, 1);
		tbl_write32(f, v, PCI_MSIX_ENTRY_DATA, 0x4000 + (i & 0xff));
		tbl_write32(f, v, PCI_MSIX_ENTRY_CTRL, 0);
		if (i % 7 == 0) /* sloppy guest: reprogram an unmasked vector */
			tbl_write32(f, v, PCI_MSIX_ENTRY_ADDR_LO, 0xfee00000 | (i & 0xf) << 12);
		if (i % 5 == 0) {
			ctrl_write(f, PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_FMASK);
			ctrl_write(f, i % 10 ? PCI_MSIX_CTRL_ENABLE : 0);
			ctrl_write(f, PCI_MSIX_CTRL_ENABLE);
		}
	}
	__atomic_store_n(&r.stop, true, __ATOMIC_RELEASE);
	assert_int_equal(pthread_join(t1, NULL), 0);
	assert_int_equal(pthread_join(t2, NULL), 0);
	/* Everything unmasked and enabled now: nothing may stay pending. */
	for (unsigned v = 0; v < NVEC; v++)
		tbl_write32(f, v, PCI_MSIX_ENTRY_CTRL, 0);
	assert_true(pba_read(f) == 0);
	assert_int_equal(r.stale, 0);
	/* And the routes the platform holds are the ones the guest wrote last. */
	fires = r.fires;
	for (unsigned v = 0; v < NVEC; v++) {
		const struct pci_msix_entry *e = &f->d.msix.entries[v];
		assert_true(f->fp.msi[e->handle].addr == e->addr);
		assert_int_equal(f->fp.msi[e->handle].data, e->data);
		assert_int_equal(pci_msix_notify(&f->d, v), 0);
	}
	assert_int_equal(r.fires, fires + NVEC);
	assert_int_equal(r.stale, 0);
	pci_host_fini(&f->h);
	assert_int_equal(f->fp.msi_allocated, 0);
	pci_dev_fini(&f->d);
	fake_platform_fini(&f->fp);
	free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_capability, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_table_programming, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_notify, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_bar_dispatch, fx_setup, fx_teardown),
	    cmocka_unit_test(test_null_ops),
	    cmocka_unit_test(test_unattached),
	    cmocka_unit_test(test_concurrency),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
