/* SPDX-License-Identifier: MIT */
#include "devices/virtio/virtio_pci.h"
#include "common/evloop.h"
#include "common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#define NOTIFY_ACCESS_LEN 2 /* the driver writes a 16-bit queue index */

/* --- interrupts (virtio_transport_ops) --- */

/* May run without the device lock (see virtio_transport_ops): it only reads the vector
 * (atomically: the driver may be reprogramming it) and the MSI-X code has its own lock. */
static void vpci_interrupt(void *opaque, unsigned q)
{
	struct virtio_pci *t = opaque;
	uint16_t vec;

	if (q == VIRTIO_IRQ_CONFIG) {
		__atomic_fetch_or(&t->isr, VIRTIO_PCI_ISR_CONFIG, __ATOMIC_SEQ_CST);
		vec = __atomic_load_n(&t->config_vector, __ATOMIC_RELAXED);
	} else {
		if (q >= t->vdev->num_queues)
			return;
		/* With MSI-X on, the driver does not look at the queue bit of the ISR. */
		if (!pci_msix_enabled(&t->pci))
			__atomic_fetch_or(&t->isr, VIRTIO_PCI_ISR_QUEUE, __ATOMIC_SEQ_CST);
		vec = __atomic_load_n(&t->queue_vector[q], __ATOMIC_RELAXED);
	}
	if (vec == VIRTIO_MSI_NO_VECTOR)
		return;
	int r = pci_msix_notify(&t->pci, vec);
	if (r < 0 && r != -ENODEV) /* -ENODEV: MSI-X off, the driver polls the ISR */
		vlog_rl("%s: MSI-X vector %u: %s", t->vdev->ops->name, vec, strerror(-r));
}

static const struct virtio_transport_ops vpci_tops = {
    .interrupt = vpci_interrupt,
};

/* --- doorbells --- */

static void vpci_ioev_cb(void *opaque, uint32_t events)
{
	struct virtio_pci_ioev *e = opaque;
	uint64_t cnt;
	(void)events;
	if (read(e->efd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		vlog_rl("virtio-pci: eventfd read: %s", strerror(errno));
	virtio_dev_kick(e->t->vdev, e->q);
}

/*
 * Locked (device lock). Make the registered doorbells match the wanted state: registered
 * at the BAR's current address while the driver is running and the BAR decodes. Callers
 * hold the host's cfg_lock too, so the BAR's address and mapping are stable.
 */
static void vpci_ioev_unregister(struct virtio_pci *t)
{
	const struct platform *p = t->plat;
	if (!t->ioev_registered)
		return;
	for (unsigned q = 0; q < t->vdev->num_queues; q++) {
		int r = p->ops->ioeventfd_del(p->ctx, t->ioev_base + VIRTIO_PCI_NOTIFY_MULT * q,
					      NOTIFY_ACCESS_LEN, t->ioev[q].efd);
		if (r < 0)
			vwarn("%s: ioeventfd_del queue %u: %s", t->vdev->ops->name, q,
			      strerror(-r));
	}
	t->ioev_registered = false;
}

static void vpci_ioev_sync(struct virtio_pci *t)
{
	const struct platform *p = t->plat;
	const struct pci_bar *bar = &t->pci.bars[VIRTIO_PCI_BAR];
	bool want =
	    t->ioev && bar->mapped && (virtio_dev_status(t->vdev) & VIRTIO_STATUS_DRIVER_OK);
	uint64_t base = bar->addr + VIRTIO_PCI_NOTIFY_OFF;
	unsigned nq = t->vdev->num_queues;

	if (t->ioev_registered && (!want || base != t->ioev_base))
		vpci_ioev_unregister(t);
	if (!want || t->ioev_registered)
		return;
	/* Every queue gets a doorbell: cheap, and kicks for dead queues are ignored. */
	for (unsigned q = 0; q < nq; q++) {
		int r = p->ops->ioeventfd_add(p->ctx, base + VIRTIO_PCI_NOTIFY_MULT * q,
					      NOTIFY_ACCESS_LEN, t->ioev[q].efd);
		if (r < 0) {
			vwarn("%s: ioeventfd for queue %u: %s; notifications handled in the vCPU",
			      t->vdev->ops->name, q, strerror(-r));
			while (q-- > 0)
				if (p->ops->ioeventfd_del(p->ctx, base + VIRTIO_PCI_NOTIFY_MULT * q,
							  NOTIFY_ACCESS_LEN, t->ioev[q].efd) < 0)
					vwarn("%s: ioeventfd_del failed", t->vdev->ops->name);
			return;
		}
	}
	t->ioev_registered = true;
	t->ioev_base = base;
}

/* PCI core hook (host cfg_lock held): the guest moved, mapped or unmapped a BAR. */
static void vpci_bar_remapped(struct pci_dev *pd, unsigned idx)
{
	struct virtio_pci *t = pd->opaque;
	if (idx != VIRTIO_PCI_BAR)
		return;
	virtio_dev_lock(t->vdev);
	vpci_ioev_sync(t);
	virtio_dev_unlock(t->vdev);
}

/*
 * A doorbell write that reached us (no ioeventfd, registration failed, or an access the
 * eventfd does not match): process the queue right here on the vCPU thread.
 */
static void vpci_notify_write(struct virtio_pci *t, uint64_t off)
{
	uint64_t rel = off - VIRTIO_PCI_NOTIFY_OFF;
	if (rel % VIRTIO_PCI_NOTIFY_MULT)
		return;
	uint64_t q = rel / VIRTIO_PCI_NOTIFY_MULT;
	if (q < t->vdev->num_queues)
		virtio_dev_kick(t->vdev, (unsigned)q);
}

static void vpci_host_cfg_lock(struct virtio_pci *t)
{
	if (t->pci.host)
		pthread_mutex_lock(&t->pci.host->cfg_lock);
}

static void vpci_host_cfg_unlock(struct virtio_pci *t)
{
	if (t->pci.host)
		pthread_mutex_unlock(&t->pci.host->cfg_lock);
}

/* --- common configuration --- */

/* Width of the register at off (high halves of 64-bit fields count as 4), 0 if none. */
static unsigned common_width(uint32_t off)
{
	switch (off) {
	case VIRTIO_PCI_COMMON_STATUS:
	case VIRTIO_PCI_COMMON_CFGGEN:
		return 1;
	case VIRTIO_PCI_COMMON_MSIX:
	case VIRTIO_PCI_COMMON_NUMQ:
	case VIRTIO_PCI_COMMON_Q_SELECT:
	case VIRTIO_PCI_COMMON_Q_SIZE:
	case VIRTIO_PCI_COMMON_Q_MSIX:
	case VIRTIO_PCI_COMMON_Q_ENABLE:
	case VIRTIO_PCI_COMMON_Q_NOFF:
		return 2;
	case VIRTIO_PCI_COMMON_DFSELECT:
	case VIRTIO_PCI_COMMON_DF:
	case VIRTIO_PCI_COMMON_GFSELECT:
	case VIRTIO_PCI_COMMON_GF:
	case VIRTIO_PCI_COMMON_Q_DESC + 4:
	case VIRTIO_PCI_COMMON_Q_AVAIL + 4:
	case VIRTIO_PCI_COMMON_Q_USED + 4:
		return 4;
	case VIRTIO_PCI_COMMON_Q_DESC:
	case VIRTIO_PCI_COMMON_Q_AVAIL:
	case VIRTIO_PCI_COMMON_Q_USED:
		return 8;
	default:
		return 0;
	}
}

/* Natural-width accesses only; 64-bit fields may also be accessed as two 32-bit halves. */
static bool common_access_ok(uint32_t off, unsigned len)
{
	unsigned w = common_width(off);
	return w && (len == w || (w == 8 && len == 4));
}

static uint64_t queue_area_gpa(const struct virtq *vq, uint32_t field)
{
	switch (field) {
	case VIRTIO_PCI_COMMON_Q_DESC:
		return vq->desc_gpa;
	case VIRTIO_PCI_COMMON_Q_AVAIL:
		return vq->avail_gpa;
	default:
		return vq->used_gpa;
	}
}

/* Locked. Returns the value of the register at off (for a high half: the upper 32 bits). */
static uint64_t common_read(struct virtio_pci *t, uint32_t off)
{
	struct virtio_dev *d = t->vdev;
	struct virtq *vq = virtio_dev_queue(d, t->queue_select);

	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		return t->dfselect;
	case VIRTIO_PCI_COMMON_DF:
		return virtio_dev_device_features(d, t->dfselect);
	case VIRTIO_PCI_COMMON_GFSELECT:
		return t->gfselect;
	case VIRTIO_PCI_COMMON_GF:
		return virtio_dev_driver_features(d, t->gfselect);
	case VIRTIO_PCI_COMMON_MSIX:
		return t->config_vector;
	case VIRTIO_PCI_COMMON_NUMQ:
		return d->num_queues;
	case VIRTIO_PCI_COMMON_STATUS:
		return virtio_dev_status(d);
	case VIRTIO_PCI_COMMON_CFGGEN:
		return virtio_dev_config_generation(d);
	case VIRTIO_PCI_COMMON_Q_SELECT:
		return t->queue_select;
	}
	if (!vq) /* out-of-range queue_select: every queue register reads 0 */
		return 0;
	switch (off) {
	case VIRTIO_PCI_COMMON_Q_SIZE:
		return vq->size;
	case VIRTIO_PCI_COMMON_Q_MSIX:
		return t->queue_vector[t->queue_select];
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		return vq->enabled;
	case VIRTIO_PCI_COMMON_Q_NOFF:
		return t->queue_select; /* times VIRTIO_PCI_NOTIFY_MULT */
	case VIRTIO_PCI_COMMON_Q_DESC:
	case VIRTIO_PCI_COMMON_Q_AVAIL:
	case VIRTIO_PCI_COMMON_Q_USED:
		return queue_area_gpa(vq, off);
	case VIRTIO_PCI_COMMON_Q_DESC + 4:
	case VIRTIO_PCI_COMMON_Q_AVAIL + 4:
	case VIRTIO_PCI_COMMON_Q_USED + 4:
		return queue_area_gpa(vq, off - 4) >> 32;
	}
	return 0;
}

static uint16_t vpci_vector(const struct virtio_pci *t, uint16_t v)
{
	/* A vector we cannot map reads back as NO_VECTOR, which tells the driver so. */
	return v < t->nvec ? v : VIRTIO_MSI_NO_VECTOR;
}

/* Transport-side reset; locked. MSI-X table and pending bits belong to the PCI core. */
static void vpci_reset(struct virtio_pci *t)
{
	t->dfselect = t->gfselect = 0;
	t->queue_select = 0;
	__atomic_store_n(&t->config_vector, VIRTIO_MSI_NO_VECTOR, __ATOMIC_RELAXED);
	for (unsigned q = 0; q < t->vdev->num_queues; q++)
		__atomic_store_n(&t->queue_vector[q], VIRTIO_MSI_NO_VECTOR, __ATOMIC_RELAXED);
	__atomic_store_n(&t->isr, 0, __ATOMIC_SEQ_CST);
}

/* Locked, and the caller holds the host's cfg_lock (BAR stable for vpci_ioev_sync). */
static void vpci_status_write(struct virtio_pci *t, uint8_t val)
{
	virtio_dev_set_status(t->vdev, val);
	if (val == 0)
		vpci_reset(t);
	/* Doorbells on at DRIVER_OK, off at reset. */
	vpci_ioev_sync(t);
}

/* Locked. off is the register (or high half) offset; val its new value. */
static void common_write(struct virtio_pci *t, uint32_t off, unsigned len, uint64_t val)
{
	struct virtio_dev *d = t->vdev;
	unsigned q = t->queue_select;

	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		t->dfselect = (uint32_t)val;
		return;
	case VIRTIO_PCI_COMMON_GFSELECT:
		t->gfselect = (uint32_t)val;
		return;
	case VIRTIO_PCI_COMMON_GF:
		virtio_dev_set_driver_features(d, t->gfselect, (uint32_t)val);
		return;
	case VIRTIO_PCI_COMMON_MSIX:
		__atomic_store_n(&t->config_vector, vpci_vector(t, (uint16_t)val),
				 __ATOMIC_RELAXED);
		return;
	case VIRTIO_PCI_COMMON_STATUS:
		vpci_status_write(t, (uint8_t)val);
		return;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		t->queue_select = (uint16_t)val;
		return;
	case VIRTIO_PCI_COMMON_Q_SIZE:
		virtio_dev_queue_set_size(d, q, (uint16_t)val);
		return;
	case VIRTIO_PCI_COMMON_Q_MSIX:
		/* Not ring layout: the driver may re-target a queue's vector at any time. */
		if (q < d->num_queues)
			__atomic_store_n(&t->queue_vector[q], vpci_vector(t, (uint16_t)val),
					 __ATOMIC_RELAXED);
		return;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		virtio_dev_queue_set_enable(d, q, (uint16_t)val);
		return;
	}

	/* Ring addresses: 64-bit, written whole or as two halves. */
	uint32_t field = off;
	unsigned shift = 0;
	if (common_width(off) == 4 && off >= VIRTIO_PCI_COMMON_Q_DESC) {
		field = off - 4;
		shift = 32;
	}
	enum virtio_queue_area area;
	switch (field) {
	case VIRTIO_PCI_COMMON_Q_DESC:
		area = VIRTIO_AREA_DESC;
		break;
	case VIRTIO_PCI_COMMON_Q_AVAIL:
		area = VIRTIO_AREA_DRIVER;
		break;
	case VIRTIO_PCI_COMMON_Q_USED:
		area = VIRTIO_AREA_DEVICE;
		break;
	default:
		return; /* read-only registers */
	}
	struct virtq *vq = virtio_dev_queue(d, q);
	if (!vq)
		return;
	uint64_t gpa = queue_area_gpa(vq, field);
	uint64_t mask = len == 8 ? ~0ULL : 0xffffffffULL << shift;
	gpa = (gpa & ~mask) | ((val << shift) & mask);
	virtio_dev_queue_set_addr(d, q, area, gpa);
}

/* --- BAR handlers --- */

static void vpci_bar_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct virtio_pci *t = opaque;
	struct virtio_dev *d = t->vdev;
	uint64_t val = 0;

	if (off < VIRTIO_PCI_COMMON_SIZE) {
		if (common_access_ok((uint32_t)off, len)) {
			virtio_dev_lock(d);
			val = common_read(t, (uint32_t)off);
			virtio_dev_unlock(d);
		} else {
			vlog_rl("%s: bad common cfg read at %#x len %u", d->ops->name,
				(unsigned)off, len);
		}
	} else if (off == VIRTIO_PCI_ISR_OFF) {
		val = __atomic_exchange_n(&t->isr, 0, __ATOMIC_SEQ_CST);
	} else if (off >= VIRTIO_PCI_DEVICE_OFF && off < VIRTIO_PCI_NOTIFY_OFF) {
		virtio_dev_lock(d);
		virtio_dev_config_read(d, (uint32_t)(off - VIRTIO_PCI_DEVICE_OFF), data, len);
		virtio_dev_unlock(d);
		return;
	}
	memcpy(data, &val, len);
}

static void vpci_bar_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct virtio_pci *t = opaque;
	struct virtio_dev *d = t->vdev;
	uint64_t val = 0;

	memcpy(&val, data, len);
	if (off < VIRTIO_PCI_COMMON_SIZE) {
		if (!common_access_ok((uint32_t)off, len)) {
			vlog_rl("%s: bad common cfg write at %#x len %u", d->ops->name,
				(unsigned)off, len);
			return;
		}
		/* Status writes may (de)register doorbells at the BAR address: hold the PCI
		 * host's configuration lock (taken before ours, as the PCI hooks do). */
		bool status = off == VIRTIO_PCI_COMMON_STATUS;
		if (status)
			vpci_host_cfg_lock(t);
		virtio_dev_lock(d);
		common_write(t, (uint32_t)off, len, val);
		virtio_dev_unlock(d);
		if (status)
			vpci_host_cfg_unlock(t);
	} else if (off >= VIRTIO_PCI_DEVICE_OFF && off < VIRTIO_PCI_NOTIFY_OFF) {
		virtio_dev_lock(d);
		virtio_dev_config_write(d, (uint32_t)(off - VIRTIO_PCI_DEVICE_OFF), data, len);
		virtio_dev_unlock(d);
	} else if (off >= VIRTIO_PCI_NOTIFY_OFF && off < VIRTIO_PCI_MSIX_TABLE_OFF) {
		vpci_notify_write(t, off);
	}
	/* ISR and holes: writes ignored. */
}

static const struct bus_ops vpci_bar_ops = {
    .read = vpci_bar_read,
    .write = vpci_bar_write,
};

/* --- VIRTIO_PCI_CAP_PCI_CFG: BAR access window in config space --- */

#define CFGWIN_BAR 4 /* capability-relative offsets of the window's fields */
#define CFGWIN_OFFSET 8
#define CFGWIN_LENGTH 12
#define CFGWIN_DATA 16

/* The BAR access the driver set up in the window, if it is a valid one. */
static bool vpci_cfgwin_target(struct virtio_pci *t, uint32_t *boff, unsigned *blen)
{
	struct pci_dev *pd = &t->pci;
	uint32_t cap = t->cfgwin_off;
	uint32_t bar = pci_dev_cfg_get(pd, cap + CFGWIN_BAR, 1);
	uint32_t off = pci_dev_cfg_get(pd, cap + CFGWIN_OFFSET, 4);
	uint32_t len = pci_dev_cfg_get(pd, cap + CFGWIN_LENGTH, 4);

	if (bar != VIRTIO_PCI_BAR || (len != 1 && len != 2 && len != 4) || off % len ||
	    off >= VIRTIO_PCI_BAR_SIZE) {
		vlog_rl("%s: bad PCI cfg window access: bar %u offset %#x length %u",
			t->vdev->ops->name, bar, off, len);
		return false;
	}
	*boff = off;
	*blen = len;
	return true;
}

static void vpci_bar_read(void *opaque, uint64_t off, void *data, unsigned len);
static void vpci_bar_write(void *opaque, uint64_t off, const void *data, unsigned len);

/* PCI core hook: a config read; serve reads of the window's data field. */
static bool vpci_cfg_read(struct pci_dev *pd, uint32_t off, unsigned len, uint32_t *val)
{
	struct virtio_pci *t = pd->opaque;
	uint32_t data = t->cfgwin_off + CFGWIN_DATA;
	uint32_t boff, v = 0;
	unsigned blen;

	/* Config accesses are naturally aligned and data is 4-aligned: inside or disjoint. */
	if (!t->cfgwin_off || off < data || off + len > data + 4)
		return false;
	if (vpci_cfgwin_target(t, &boff, &blen))
		vpci_bar_read(t, boff, &v, blen);
	*val = v >> (8 * (off - data));
	return true;
}

/* PCI core hook (cfg_lock held): a config write was applied; act on the data field. */
static void vpci_cfg_written(struct pci_dev *pd, uint32_t off, unsigned len)
{
	struct virtio_pci *t = pd->opaque;
	uint32_t data = t->cfgwin_off + CFGWIN_DATA;
	uint32_t boff, v;
	unsigned blen;

	if (!t->cfgwin_off || off + len <= data || off >= data + 4)
		return;
	if (!vpci_cfgwin_target(t, &boff, &blen))
		return;
	v = pci_dev_cfg_get(pd, data, 4);
	vpci_bar_write(t, boff, &v, blen);
}

static const struct pci_dev_ops vpci_pci_ops = {
    .cfg_read = vpci_cfg_read,
    .cfg_written = vpci_cfg_written,
    .bar_remapped = vpci_bar_remapped,
};

/* --- construction --- */

/* Append a virtio vendor capability (struct virtio_pci_cap + extra bytes). */
static int vpci_add_cap(struct virtio_pci *t, uint8_t cfg_type, uint8_t bar, uint32_t off,
			uint32_t len, const void *extra, uint8_t extra_len, const void *wmask,
			uint8_t *cap_off)
{
	/* Body = the capability after its 2-byte (id, next) header. */
	uint8_t body[32] = {0};
	uint8_t body_len = (uint8_t)(14 + extra_len);
	uint8_t off_dummy;

	body[0] = (uint8_t)(body_len + 2); /* cap_len counts the header */
	body[1] = cfg_type;
	body[2] = bar;
	body[3] = 0; /* id */
	memcpy(&body[6], &off, 4);
	memcpy(&body[10], &len, 4);
	if (extra_len)
		memcpy(&body[14], extra, extra_len);
	return pci_dev_add_cap(&t->pci, PCI_CAP_ID_VNDR, body, body_len, wmask,
			       cap_off ? cap_off : &off_dummy);
}

static int vpci_add_caps(struct virtio_pci *t)
{
	const uint32_t mult = VIRTIO_PCI_NOTIFY_MULT;
	const uint8_t zero4[4] = {0};
	/* Window: bar, offset, length and data are driver-writable. */
	uint8_t wmask[18] = {0};
	int r;

	r = vpci_add_cap(t, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_BAR, VIRTIO_PCI_COMMON_OFF,
			 VIRTIO_PCI_COMMON_SIZE, NULL, 0, NULL, NULL);
	if (!r)
		r = vpci_add_cap(
		    t, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_BAR, VIRTIO_PCI_NOTIFY_OFF,
		    t->vdev->num_queues * VIRTIO_PCI_NOTIFY_MULT, &mult, 4, NULL, NULL);
	if (!r)
		r = vpci_add_cap(t, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_BAR, VIRTIO_PCI_ISR_OFF, 1,
				 NULL, 0, NULL, NULL);
	if (!r && t->vdev->ops->config_size)
		r = vpci_add_cap(t, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_BAR,
				 VIRTIO_PCI_DEVICE_OFF, t->vdev->ops->config_size, NULL, 0, NULL,
				 NULL);
	if (r)
		return r;
	wmask[CFGWIN_BAR - 2] = 0xff;
	memset(&wmask[CFGWIN_OFFSET - 2], 0xff, 4);
	memset(&wmask[CFGWIN_LENGTH - 2], 0xff, 4);
	memset(&wmask[CFGWIN_DATA - 2], 0xff, 4);
	return vpci_add_cap(t, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, 0, zero4, 4, wmask, &t->cfgwin_off);
}

static int vpci_ioev_setup(struct virtio_pci *t)
{
	const struct platform *p = t->plat;
	unsigned nq = t->vdev->num_queues;
	int r;

	if (!p->loop || !p->ops->ioeventfd_add || !p->ops->ioeventfd_del)
		return 0; /* notifications from the MMIO handler */
	t->ioev = calloc(nq, sizeof(*t->ioev));
	if (!t->ioev)
		return -ENOMEM;
	for (unsigned q = 0; q < nq; q++)
		t->ioev[q] = (struct virtio_pci_ioev){.t = t, .q = q, .efd = -1};
	for (unsigned q = 0; q < nq; q++) {
		t->ioev[q].efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (t->ioev[q].efd < 0) {
			r = -errno;
			goto fail;
		}
		/* Registered once for the device's lifetime, so guest resets allocate nothing;
		 * on the I/O thread of the queue's group (virtio_dev_bind_loops). */
		r = evloop_add(virtio_dev_queue_loop(t->vdev, q), t->ioev[q].efd, EPOLLIN,
			       vpci_ioev_cb, &t->ioev[q]);
		if (r < 0) {
			close(t->ioev[q].efd);
			t->ioev[q].efd = -1;
			goto fail;
		}
	}
	return 0;
fail:
	for (unsigned q = 0; q < nq; q++) {
		if (t->ioev[q].efd >= 0) {
			if (evloop_del(virtio_dev_queue_loop(t->vdev, q), t->ioev[q].efd) < 0)
				vwarn("virtio-pci: evloop_del failed");
			close(t->ioev[q].efd);
		}
	}
	free(t->ioev);
	t->ioev = NULL;
	return r;
}

static void vpci_ioev_teardown(struct virtio_pci *t)
{
	if (!t->ioev)
		return;
	virtio_dev_lock(t->vdev);
	vpci_ioev_unregister(t);
	virtio_dev_unlock(t->vdev);
	for (unsigned q = 0; q < t->vdev->num_queues; q++) {
		if (evloop_del(virtio_dev_queue_loop(t->vdev, q), t->ioev[q].efd) < 0)
			vwarn("virtio-pci: evloop_del failed");
		close(t->ioev[q].efd);
	}
	free(t->ioev);
	t->ioev = NULL;
}

int virtio_pci_create(struct virtio_pci **out, const struct platform *plat, struct pci_host *host,
		      struct virtio_dev *vdev, uint32_t class_code)
{
	const struct virtio_dev_ops *ops = vdev->ops;
	unsigned nq = vdev->num_queues;
	struct virtio_pci *t;
	int r;

	*out = NULL;
	if (ops->config_size > VIRTIO_PCI_NOTIFY_OFF - VIRTIO_PCI_DEVICE_OFF ||
	    nq * VIRTIO_PCI_NOTIFY_MULT > VIRTIO_PCI_MSIX_TABLE_OFF - VIRTIO_PCI_NOTIFY_OFF)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->vdev = vdev;
	t->plat = plat;
	t->nvec = MIN(nq + 1, (unsigned)PCI_MSIX_MAX_VECTORS);
	t->queue_vector = calloc(nq, sizeof(*t->queue_vector));
	if (!t->queue_vector) {
		free(t);
		return -ENOMEM;
	}
	t->config_vector = VIRTIO_MSI_NO_VECTOR;
	for (unsigned q = 0; q < nq; q++)
		t->queue_vector[q] = VIRTIO_MSI_NO_VECTOR;

	pci_dev_init(&t->pci, VIRTIO_PCI_VENDOR_ID, VIRTIO_PCI_DEVICE_ID_BASE + ops->device_id,
		     class_code, VIRTIO_PCI_REVISION, VIRTIO_PCI_VENDOR_ID, VIRTIO_PCI_SUBSYS_ID,
		     &vpci_pci_ops, t);
	r = pci_dev_set_bar(&t->pci, VIRTIO_PCI_BAR, VIRTIO_PCI_BAR_SIZE, true, &vpci_bar_ops, t);
	if (r < 0)
		goto fail;
	r = vpci_add_caps(t);
	if (r < 0)
		goto fail;
	r = virtio_dev_bind_loops(vdev, plat);
	if (r < 0)
		goto fail;
	r = vpci_ioev_setup(t);
	if (r < 0)
		goto fail;
	r = pci_dev_add_msix(&t->pci, t->nvec, VIRTIO_PCI_BAR, VIRTIO_PCI_MSIX_TABLE_OFF,
			     VIRTIO_PCI_MSIX_PBA_OFF);
	if (r < 0)
		goto fail_ioev;
	virtio_dev_set_transport(vdev, &vpci_tops, t);
	r = pci_host_add_dev(host, &t->pci);
	if (r < 0) {
		virtio_dev_set_transport(vdev, NULL, NULL);
		goto fail_ioev;
	}
	*out = t;
	return 0;
fail_ioev:
	vpci_ioev_teardown(t);
fail:
	pci_dev_fini(&t->pci);
	free(t->queue_vector);
	free(t);
	return r;
}

void virtio_pci_destroy(struct virtio_pci *t)
{
	if (!t)
		return;
	vpci_ioev_teardown(t);
	virtio_dev_set_transport(t->vdev, NULL, NULL);
	pci_dev_fini(&t->pci);
	free(t->queue_vector);
	free(t);
}
