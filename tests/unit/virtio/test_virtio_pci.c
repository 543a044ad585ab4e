/* SPDX-License-Identifier: MIT */
/* virtio-pci modern transport, driven the way a guest driver drives it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "fake_platform.h"
#include "vq_helper.h"
#include "vpci_helper.h"
#include "common/evloop.h"
#include "devices/virtio/virtio_pci.h"
#include "memory/layout.h"

#define RAM_SIZE (16ULL << 20)
#define Q0GPA 0x10000ULL
#define Q1GPA 0x20000ULL
#define BUF 0x100000ULL
#define TDEV_ID 42
#define TDEV_PCI_ID (0x1040 + TDEV_ID)
#define ALLST                                                                                      \
	(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |            \
	 VIRTIO_STATUS_DRIVER_OK)
#define V1 VIRTIO_BIT(VIRTIO_F_VERSION_1)

struct px {
	struct fake_platform fp; /* first: the fake platform ops cast ctx to it */
	struct platform_ops ops;
	struct platform plat;
	struct evloop loop;
	bool have_loop;
	struct pci_host host;
	struct virtio_dev vdev;
	struct virtio_pci *vp;
	struct tpci p;
	struct tvq t[2];
	struct vq_chain c;
	unsigned completed[2];
	uint32_t cfg[2];
	struct ioev_rec {
		uint64_t gpa;
		unsigned len;
		int efd;
		bool live;
	} ioev[16]; /* ioeventfd recorder */
	unsigned n_ioev, ioev_adds, ioev_dels;
	int ioev_fail; /* error returned by ioeventfd_add, 0 = succeed */
};

static void tdev_config_read(struct virtio_dev *d, uint32_t off, void *data, unsigned len)
{
	struct px *x = d->opaque;
	memcpy(data, (uint8_t *)x->cfg + off, len);
}

static void tdev_queue_notify(struct virtio_dev *d, unsigned q)
{
	struct px *x = d->opaque;
	while (virtio_dev_queue_pop(d, q, &x->c) > 0)
		if (virtio_dev_queue_push(d, q, x->c.head, (uint32_t)x->c.in_bytes) == 0)
			x->completed[q]++;
	virtio_dev_queue_signal(d, q);
}

static const struct virtio_dev_ops tdev_ops = {
	.name = "test-dev",
	.device_id = TDEV_ID,
	.features = VIRTIO_BIT(3),
	.num_queues = 2,
	.max_queue_size = 64,
	.config_size = 8,
	.config_read = tdev_config_read,
	.queue_notify = tdev_queue_notify,
};

static int rec_ioev_add(void *ctx, uint64_t gpa, unsigned len, int efd)
{
	struct px *x = ctx;
	if (x->ioev_fail)
		return x->ioev_fail;
	for (unsigned i = 0; i < x->n_ioev; i++)
		if (x->ioev[i].live && x->ioev[i].gpa == gpa)
			return -EEXIST;
	assert_true(x->n_ioev < ARRAY_SIZE(x->ioev));
	x->ioev[x->n_ioev++] = (struct ioev_rec){gpa, len, efd, true};
	x->ioev_adds++;
	return 0;
}

static int rec_ioev_del(void *ctx, uint64_t gpa, unsigned len, int efd)
{
	struct px *x = ctx;
	for (unsigned i = 0; i < x->n_ioev; i++) {
		if (x->ioev[i].live && x->ioev[i].gpa == gpa && x->ioev[i].len == len &&
		    x->ioev[i].efd == efd) {
			x->ioev[i].live = false;
			x->ioev_dels++;
			return 0;
		}
	}
	fail_msg("ioeventfd_del of unknown %#llx", (unsigned long long)gpa);
	return -ENOENT;
}

/* Live ioeventfd registered at gpa, or NULL. */
static int ioev_at(struct px *x, uint64_t gpa)
{
	for (unsigned i = 0; i < x->n_ioev; i++)
		if (x->ioev[i].live && x->ioev[i].gpa == gpa)
			return x->ioev[i].efd;
	return -1;
}

static unsigned ioev_live(struct px *x)
{
	unsigned n = 0;
	for (unsigned i = 0; i < x->n_ioev; i++)
		n += x->ioev[i].live;
	return n;
}

static struct px *px_new(bool with_ioev)
{
	struct px *x = calloc(1, sizeof(*x));
	assert_non_null(x);
	fake_platform_init(&x->fp, 0, RAM_SIZE);
	x->ops = *x->fp.plat.ops;
	x->plat = x->fp.plat;
	x->plat.ops = &x->ops;
	x->plat.ctx = x;
	if (with_ioev) {
		x->ops.ioeventfd_add = rec_ioev_add;
		x->ops.ioeventfd_del = rec_ioev_del;
		assert_int_equal(evloop_init(&x->loop), 0);
		x->have_loop = true;
		x->plat.loop = &x->loop;
	}
	assert_int_equal(pci_host_init(&x->host, &x->plat, LAYOUT_PCI_ECAM_START,
				       LAYOUT_PCI_ECAM_SIZE, LAYOUT_PCI_MMIO_START,
				       LAYOUT_PCI_MMIO_SIZE),
			 0);
	assert_int_equal(virtio_dev_init(&x->vdev, &tdev_ops, &x->fp.mem, x), 0);
	assert_int_equal(virtio_pci_create(&x->vp, &x->plat, &x->host, &x->vdev, 0xff0000), 0);
	x->cfg[0] = 0x11223344;
	x->cfg[1] = 0x55667788;
	tpci_open(&x->p, &x->fp, &x->host, TDEV_PCI_ID);
	return x;
}

static int setup(void **state)
{
	*state = px_new(false);
	return 0;
}

static int setup_ioev(void **state)
{
	*state = px_new(true);
	return 0;
}

static int teardown(void **state)
{
	struct px *x = *state;
	pci_host_fini(&x->host);
	virtio_pci_destroy(x->vp);
	virtio_dev_fini(&x->vdev);
	if (x->have_loop)
		evloop_fini(&x->loop);
	fake_platform_fini(&x->fp);
	free(x);
	return 0;
}

/* Negotiate, set up both queues with vectors v0/v1 (config vector cv), DRIVER_OK. */
static void bring_up(struct px *x, uint16_t cv, uint16_t v0, uint16_t v1)
{
	assert_true(tpci_negotiate(&x->p, V1 | VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC)));
	tpci_common_wr(&x->p, VIRTIO_PCI_COMMON_MSIX, 2, cv);
	assert_int_equal(tpci_common_rd(&x->p, VIRTIO_PCI_COMMON_MSIX, 2), cv);
	tvq_layout(&x->t[0], &x->fp.mem, Q0GPA, 16);
	tvq_layout(&x->t[1], &x->fp.mem, Q1GPA, 32);
	tpci_queue_setup(&x->p, 0, &x->t[0], v0);
	tpci_queue_setup(&x->p, 1, &x->t[1], v1);
	tpci_driver_ok(&x->p);
	assert_int_equal(tpci_status(&x->p), ALLST);
}

static void post(struct px *x, unsigned q, uint32_t wlen)
{
	struct tbuf b = {BUF + 0x10000 * q, wlen, true};
	tvq_publish(&x->t[q], tvq_add_chain(&x->t[q], 0, &b, 1));
}

static void test_identity_and_caps(void **state)
{
	struct px *x = *state;
	struct tpci *p = &x->p;

	assert_int_equal(tpci_cfg_read(p, PCI_CFG_REVISION, 1), 1);
	assert_int_equal(tpci_cfg_read(p, PCI_CFG_SUBSYS_VENDOR, 2), 0x1af4);
	assert_true(tpci_cfg_read(p, PCI_CFG_SUBSYS_ID, 2) >= 0x40);
	assert_int_equal(tpci_cfg_read(p, PCI_CFG_CLASS_PROG, 1) |
				 tpci_cfg_read(p, PCI_CFG_CLASS_PROG + 1, 2) << 8,
			 0xff0000);
	/* Everything in one 64-bit BAR 4. */
	assert_int_equal(tpci_cfg_read(p, PCI_CFG_BAR0 + 16, 4) & 0x7, PCI_CFG_BAR_MEM_64);
	assert_int_equal(p->bar, x->vp->pci.bars[VIRTIO_PCI_BAR].addr);
	assert_int_equal(p->common, p->bar + VIRTIO_PCI_COMMON_OFF);
	assert_int_equal(p->common_len, VIRTIO_PCI_COMMON_SIZE);
	assert_int_equal(p->notify_mult, 4);
	assert_int_equal(p->notify_len, 2 * 4);
	assert_int_equal(p->isr_len, 1);
	assert_int_equal(p->device_len, 8);
	assert_true(p->cfgwin != 0);
	/* MSI-X: config + one per queue, table in the same BAR. */
	assert_int_equal(p->msix_n, 3);
	assert_int_equal(p->msix_table, p->bar + VIRTIO_PCI_MSIX_TABLE_OFF);
	/* The regions do not overlap the MSI-X table. */
	assert_true(p->notify + p->notify_len <= p->msix_table);
}

static void test_common_cfg(void **state)
{
	struct px *x = *state;
	struct tpci *p = &x->p;
	uint64_t offered = VIRTIO_BIT(3) | VIRTIO_CORE_FEATURES;

	for (unsigned w = 0; w < 3; w++) {
		tpci_common_wr(p, VIRTIO_PCI_COMMON_DFSELECT, 4, w);
		assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_DFSELECT, 4), w);
		assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_DF, 4),
				 w < 2 ? (uint32_t)(offered >> (32 * w)) : 0);
	}
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_NUMQ, 2), 2);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);

	/* Per-queue registers follow queue_select. */
	for (unsigned q = 0; q < 2; q++) {
		tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
		assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_SIZE, 2), 64);
		assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_NOFF, 2), q);
		assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
		assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	}
	/* 64-bit fields: whole, or as halves. */
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_DESC, 8, 0x123456789abcdef0ULL);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_DESC, 8), 0x123456789abcdef0ULL);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_USED + 4, 4, 0xaabbccdd);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_USED, 4, 0x11111000);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_USED, 4), 0x11111000);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_USED + 4, 4), 0xaabbccdd);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_DESC + 4, 4, 0);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_DESC, 8), 0x9abcdef0ULL);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_DESC, 8), 0);

	/* Out-of-range queue_select: queue registers read 0 and ignore writes. */
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_SELECT, 2, 2);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_SELECT, 2), 2);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_SIZE, 2, 16);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_DESC, 8, 0x5000);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_MSIX, 2, 0);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_DESC, 8), 0);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_MSIX, 2), 0);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_NOFF, 2), 0);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0xffff);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);

	/* Wrong widths are ignored (reads 0). */
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_SIZE, 1, 8);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_SIZE, 4, 8);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_SIZE, 2), 64);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_SIZE + 1, 1), 0);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_STATUS, 4), 0);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_NUMQ, 4), 0);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_STATUS, 2, VIRTIO_STATUS_ACKNOWLEDGE);
	assert_int_equal(tpci_status(p), 0);
	/* Read-only registers ignore writes. */
	tpci_common_wr(p, VIRTIO_PCI_COMMON_NUMQ, 2, 9);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_NOFF, 2, 9);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_DF, 4, 0);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_NUMQ, 2), 2);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_NOFF, 2), 0);
	/* Holes in the BAR read 0. */
	assert_int_equal(tpci_rd(p, p->bar + 0x400, 4), 0);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_CFGGEN, 1),
			 virtio_dev_config_generation(&x->vdev));
}

static void test_features_via_pci(void **state)
{
	struct px *x = *state;
	assert_false(tpci_negotiate(&x->p, VIRTIO_BIT(3))); /* no VERSION_1 */
	assert_true(tpci_negotiate(&x->p, V1 | VIRTIO_BIT(3) | VIRTIO_BIT(9)));
	tpci_common_wr(&x->p, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	assert_int_equal(tpci_common_rd(&x->p, VIRTIO_PCI_COMMON_GF, 4), VIRTIO_BIT(3));
	/* Unknown bit written directly: FEATURES_OK refused. */
	tpci_set_status(&x->p, 0);
	tpci_set_status(&x->p, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	tpci_common_wr(&x->p, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	tpci_common_wr(&x->p, VIRTIO_PCI_COMMON_GF, 4, 1 | 2);
	tpci_set_status(&x->p, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
				       VIRTIO_STATUS_FEATURES_OK);
	assert_false(tpci_status(&x->p) & VIRTIO_STATUS_FEATURES_OK);
}

static void test_msix_vectors(void **state)
{
	struct px *x = *state;
	struct tpci *p = &x->p;

	tpci_common_wr(p, VIRTIO_PCI_COMMON_MSIX, 2, 2);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_MSIX, 2), 2);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_MSIX, 2, 3); /* only 3 vectors */
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_MSIX, 2, 0); /* sharing a vector is fine */
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_MSIX, 2), 0);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_MSIX, 2, 0x7fff);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_MSIX, 2, 1);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_MSIX, 2, 0);
	/* A device reset forgets the assignments. */
	tpci_set_status(p, 0);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_SELECT, 2), 0);
}

static void test_notify_and_msix_delivery(void **state)
{
	struct px *x = *state;
	struct tpci *p = &x->p;
	uint32_t id, len;

	for (unsigned e = 0; e < 3; e++)
		tpci_msix_program(p, e);
	tpci_msix_enable(p, true);
	bring_up(x, 0, 1, 2);

	post(x, 0, 512);
	tpci_notify(p, 0);
	assert_int_equal(x->completed[0], 1);
	assert_true(tvq_get_used(&x->t[0], &id, &len));
	assert_int_equal(id, 0);
	assert_int_equal(len, 512);
	assert_int_equal(tpci_msi_fired(p, 1), 1);
	assert_int_equal(tpci_msi_fired(p, 0), 0);
	assert_int_equal(tpci_msi_fired(p, 2), 0);
	/* With MSI-X on the queue bit of the ISR is not used. */
	assert_int_equal(tpci_rd(p, p->isr, 1), 0);

	post(x, 1, 64);
	tpci_notify(p, 1);
	assert_int_equal(x->completed[1], 1);
	assert_int_equal(tpci_msi_fired(p, 2), 1);

	/* Masked vector: the message is held pending and sent at unmask. */
	tpci_wr(p, p->msix_table + 16 * 1 + PCI_MSIX_ENTRY_CTRL, 4, PCI_MSIX_ENTRY_MASKED);
	post(x, 0, 8);
	tpci_notify(p, 0);
	assert_int_equal(x->completed[0], 2);
	assert_int_equal(tpci_msi_fired(p, 1), 1);
	tpci_wr(p, p->msix_table + 16 * 1 + PCI_MSIX_ENTRY_CTRL, 4, 0);
	assert_int_equal(tpci_msi_fired(p, 1), 2);

	/* Notify writes at odd offsets or past the last queue do nothing. */
	post(x, 0, 8);
	tpci_wr(p, p->notify + 2, 2, 0);
	tpci_wr(p, p->notify + 8, 2, 0);
	assert_int_equal(x->completed[0], 2);
	tpci_notify(p, 0);
	assert_int_equal(x->completed[0], 3);
}

static void test_no_vector(void **state)
{
	struct px *x = *state;
	struct tpci *p = &x->p;

	for (unsigned e = 0; e < 3; e++)
		tpci_msix_program(p, e);
	tpci_msix_enable(p, true);
	bring_up(x, 0, VIRTIO_MSI_NO_VECTOR, 2);
	post(x, 0, 16);
	tpci_notify(p, 0);
	assert_int_equal(x->completed[0], 1);
	for (unsigned e = 0; e < 3; e++)
		assert_int_equal(tpci_msi_fired(p, e), 0);
}

static void test_isr_without_msix(void **state)
{
	struct px *x = *state;
	struct tpci *p = &x->p;

	bring_up(x, 0, 1, 2);
	post(x, 0, 16);
	tpci_notify(p, 0);
	assert_int_equal(x->completed[0], 1);
	assert_int_equal(tpci_rd(p, p->isr, 1), VIRTIO_PCI_ISR_QUEUE);
	assert_int_equal(tpci_rd(p, p->isr, 1), 0); /* read clears */
	/* Config change: bit 1. */
	virtio_dev_lock(&x->vdev);
	virtio_dev_config_changed(&x->vdev);
	virtio_dev_unlock(&x->vdev);
	assert_int_equal(tpci_rd(p, p->isr, 1), VIRTIO_PCI_ISR_CONFIG);
	assert_int_equal(tpci_rd(p, p->isr, 1), 0);
	tpci_wr(p, p->isr, 1, 0xff); /* writes ignored */
	assert_int_equal(tpci_rd(p, p->isr, 1), 0);
}

static void test_needs_reset_and_recovery(void **state)
{
	struct px *x = *state;
	struct tpci *p = &x->p;

	for (unsigned e = 0; e < 3; e++)
		tpci_msix_program(p, e);
	tpci_msix_enable(p, true);
	bring_up(x, 0, 1, 2);
	/* Head out of range. */
	tvq_publish(&x->t[0], 16);
	tpci_notify(p, 0);
	assert_int_equal(tpci_status(p), ALLST | VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(tpci_msi_fired(p, 0), 1);
	assert_int_equal(tpci_rd(p, p->isr, 1), VIRTIO_PCI_ISR_CONFIG);
	assert_int_equal(tpci_msi_fired(p, 1), 0);

	/* Reset and bring up again: works, vectors reassigned. */
	tpci_set_status(p, 0);
	assert_int_equal(tpci_status(p), 0);
	assert_true(tpci_msi_fired(p, 0) == 1);
	bring_up(x, 0, 1, 2);
	post(x, 0, 32);
	tpci_notify(p, 0);
	assert_int_equal(x->completed[0], 1);
	assert_int_equal(tpci_msi_fired(p, 1), 1);
	assert_int_equal(tpci_status(p), ALLST);
	/* MSI-X state in the PCI function survived the device reset. */
	assert_true(pci_msix_enabled(&x->vp->pci));
}

static void test_queue_frozen_via_pci(void **state)
{
	struct px *x = *state;
	struct tpci *p = &x->p;

	bring_up(x, 0, 1, 2);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_SIZE, 2, 8);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_DESC, 8, 0x80000);
	tpci_common_wr(p, VIRTIO_PCI_COMMON_Q_USED, 4, 0x90000);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_SIZE, 2), 16);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_DESC, 8), Q0GPA);
	assert_int_equal(tpci_common_rd(p, VIRTIO_PCI_COMMON_Q_USED, 8), x->t[0].used);
	/* The queue keeps working with the original layout. */
	post(x, 0, 4);
	tpci_notify(p, 0);
	assert_int_equal(x->completed[0], 1);
	assert_int_equal(tvq_used_idx(&x->t[0]), 1);
	/* Status writes cannot drop bits. */
	tpci_set_status(p, VIRTIO_STATUS_ACKNOWLEDGE);
	assert_int_equal(tpci_status(p), ALLST);
}

static void test_device_cfg(void **state)
{
	struct px *x = *state;
	struct tpci *p = &x->p;
	assert_int_equal(tpci_rd(p, p->device, 4), 0x11223344);
	assert_int_equal(tpci_rd(p, p->device + 4, 2), 0x7788);
	assert_int_equal(tpci_rd(p, p->device, 8), 0x5566778811223344ULL);
	assert_int_equal(tpci_rd(p, p->device + 6, 4), 0); /* crosses the end */
	assert_int_equal(tpci_rd(p, p->device + 0x100, 4), 0);
	tpci_wr(p, p->device, 4, 0); /* no config_write op: ignored */
	assert_int_equal(tpci_rd(p, p->device, 4), 0x11223344);
}

static void test_pci_cfg_window(void **state)
{
	struct px *x = *state;
	struct tpci *p = &x->p;
	uint32_t c = p->cfgwin;

	/* Read num_queues (2 bytes at common + 0x12) through the window. */
	tpci_cfg_write(p, c + 4, 1, VIRTIO_PCI_BAR);
	tpci_cfg_write(p, c + 8, 4, VIRTIO_PCI_COMMON_OFF + VIRTIO_PCI_COMMON_NUMQ);
	tpci_cfg_write(p, c + 12, 4, 2);
	assert_int_equal(tpci_cfg_read(p, c + 16, 4), 2);
	assert_int_equal(tpci_cfg_read(p, c + 16, 2), 2);
	/* Write the status through it. */
	tpci_cfg_write(p, c + 8, 4, VIRTIO_PCI_COMMON_STATUS);
	tpci_cfg_write(p, c + 12, 4, 1);
	tpci_cfg_write(p, c + 16, 4, VIRTIO_STATUS_ACKNOWLEDGE);
	assert_int_equal(tpci_status(p), VIRTIO_STATUS_ACKNOWLEDGE);
	assert_int_equal(tpci_cfg_read(p, c + 16, 1), VIRTIO_STATUS_ACKNOWLEDGE);
	/* Invalid set-ups do nothing: bad length, misaligned offset, other BAR. */
	tpci_cfg_write(p, c + 12, 4, 3);
	tpci_cfg_write(p, c + 16, 4, 0);
	assert_int_equal(tpci_status(p), VIRTIO_STATUS_ACKNOWLEDGE);
	assert_int_equal(tpci_cfg_read(p, c + 16, 4), 0);
	tpci_cfg_write(p, c + 8, 4, VIRTIO_PCI_COMMON_NUMQ + 1);
	tpci_cfg_write(p, c + 12, 4, 2);
	assert_int_equal(tpci_cfg_read(p, c + 16, 4), 0);
	tpci_cfg_write(p, c + 4, 1, 0);
	tpci_cfg_write(p, c + 8, 4, VIRTIO_PCI_COMMON_NUMQ);
	assert_int_equal(tpci_cfg_read(p, c + 16, 4), 0);
	tpci_cfg_write(p, c + 4, 1, VIRTIO_PCI_BAR);
	tpci_cfg_write(p, c + 8, 4, 0xfffffffc);
	tpci_cfg_write(p, c + 12, 4, 4);
	assert_int_equal(tpci_cfg_read(p, c + 16, 4), 0);
	/* The capability header itself stays read-only. */
	tpci_cfg_write(p, c + 3, 1, 1);
	assert_int_equal(tpci_cfg_read(p, c + 3, 1), VIRTIO_PCI_CAP_PCI_CFG);
}

/* --- ioeventfd path --- */

static void kick_efd(int efd)
{
	uint64_t one = 1;
	assert_int_equal(write(efd, &one, sizeof(one)), sizeof(one));
}

static void test_ioeventfd(void **state)
{
	struct px *x = *state;
	struct tpci *p = &x->p;

	assert_int_equal(ioev_live(x), 0);
	bring_up(x, 0, 1, 2);
	assert_int_equal(ioev_live(x), 2);
	int efd0 = ioev_at(x, p->notify);
	int efd1 = ioev_at(x, p->notify + p->notify_mult);
	assert_true(efd0 >= 0 && efd1 >= 0 && efd0 != efd1);
	assert_int_equal(x->ioev[0].len, 2);

	/* The doorbell is served on the I/O loop. */
	post(x, 1, 100);
	kick_efd(efd1);
	assert_int_equal(x->completed[1], 0);
	assert_true(evloop_run_once(&x->loop, 1000) >= 1);
	assert_int_equal(x->completed[1], 1);
	assert_int_equal(tvq_used_idx(&x->t[1]), 1);
	/* An MMIO doorbell (e.g. a 4-byte write the eventfd does not match) still works. */
	post(x, 0, 10);
	tpci_wr(p, p->notify, 4, 0);
	assert_int_equal(x->completed[0], 1);

	/* The guest moves the BAR: doorbells follow. */
	uint64_t nbar = p->bar + 0x100000;
	tpci_cfg_write(p, PCI_CFG_BAR0 + 16, 4, (uint32_t)nbar | PCI_CFG_BAR_MEM_64);
	tpci_cfg_write(p, PCI_CFG_BAR0 + 20, 4, (uint32_t)(nbar >> 32));
	assert_int_equal(x->vp->pci.bars[VIRTIO_PCI_BAR].addr, nbar);
	assert_int_equal(ioev_live(x), 2);
	assert_int_equal(ioev_at(x, nbar + VIRTIO_PCI_NOTIFY_OFF), efd0);
	assert_int_equal(ioev_at(x, p->notify), -1);
	/* Memory decoding off: none; on again: back. */
	uint32_t cmd = tpci_cfg_read(p, PCI_CFG_COMMAND, 2);
	tpci_cfg_write(p, PCI_CFG_COMMAND, 2, cmd & ~PCI_CFG_CMD_MEM);
	assert_int_equal(ioev_live(x), 0);
	tpci_cfg_write(p, PCI_CFG_COMMAND, 2, cmd);
	assert_int_equal(ioev_live(x), 2);

	/* Reset drops them; a kick arriving late is ignored. */
	tpci_open(p, &x->fp, &x->host, TDEV_PCI_ID);
	tpci_set_status(p, 0);
	assert_int_equal(ioev_live(x), 0);
	kick_efd(efd0);
	assert_true(evloop_run_once(&x->loop, 1000) >= 1);
	assert_int_equal(x->completed[0], 1);
	/* And they come back at the next DRIVER_OK. */
	bring_up(x, 0, 1, 2);
	assert_int_equal(ioev_live(x), 2);
	post(x, 0, 10);
	kick_efd(efd0);
	assert_true(evloop_run_once(&x->loop, 1000) >= 1);
	assert_int_equal(x->completed[0], 2);
}

static void test_ioeventfd_failure_falls_back(void **state)
{
	struct px *x = *state;
	x->ioev_fail = -ENOSPC;
	bring_up(x, 0, 1, 2);
	assert_int_equal(ioev_live(x), 0);
	post(x, 0, 10);
	tpci_notify(&x->p, 0);
	assert_int_equal(x->completed[0], 1);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
#define TI(f) cmocka_unit_test_setup_teardown(f, setup_ioev, teardown)
	const struct CMUnitTest tests[] = {
		T(test_identity_and_caps),
		T(test_common_cfg),
		T(test_features_via_pci),
		T(test_msix_vectors),
		T(test_notify_and_msix_delivery),
		T(test_no_vector),
		T(test_isr_without_msix),
		T(test_needs_reset_and_recovery),
		T(test_queue_frozen_via_pci),
		T(test_device_cfg),
		T(test_pci_cfg_window),
		TI(test_ioeventfd),
		TI(test_ioeventfd_failure_falls_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
