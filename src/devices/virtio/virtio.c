/* SPDX-License-Identifier: MIT */
#include "devices/virtio/virtio.h"
#include "bus/platform.h"
#include "common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static bool is_pow2(uint32_t x)
{
	return x && !(x & (x - 1));
}

/*
 * d->status is written under the device lock, except by virtio_dev_set_needs_reset() from a
 * device's queue context without it (virtio.h): every access is atomic, status writes
 * only add bits (fetch_or), and only a reset clears them.
 */
static uint8_t status_get(const struct virtio_dev *d)
{
	return __atomic_load_n(&d->status, __ATOMIC_ACQUIRE);
}

int virtio_dev_init(struct virtio_dev *d, const struct virtio_dev_ops *ops,
		    const struct gmem *mem, void *opaque)
{
	memset(d, 0, sizeof(*d));
	if (!ops || !mem || !ops->queue_notify || ops->num_queues == 0 ||
	    ops->num_queues > VIRTIO_MAX_QUEUES || !is_pow2(ops->max_queue_size) ||
	    ops->max_queue_size > VQ_MAX_SIZE || ops->config_size > VIRTIO_MAX_CONFIG_SIZE)
		return -EINVAL;
	d->vqs = calloc(ops->num_queues, sizeof(*d->vqs));
	if (!d->vqs)
		return -ENOMEM;
	int r = pthread_mutex_init(&d->lock, NULL);
	if (r) {
		free(d->vqs);
		d->vqs = NULL;
		return -r;
	}
	d->ops = ops;
	d->opaque = opaque;
	d->mem = mem;
	d->num_queues = ops->num_queues;
	d->offered = ops->features | VIRTIO_CORE_FEATURES;
	for (unsigned i = 0; i < d->num_queues; i++)
		vq_init(&d->vqs[i], ops->name, i, ops->max_queue_size);
	return 0;
}

void virtio_dev_fini(struct virtio_dev *d)
{
	if (!d->vqs)
		return;
	free(d->vqs);
	d->vqs = NULL;
	pthread_mutex_destroy(&d->lock);
}

void virtio_dev_set_transport(struct virtio_dev *d, const struct virtio_transport_ops *tops,
			      void *transport)
{
	d->tops = tops;
	d->transport = transport;
}

int virtio_dev_bind_loops(struct virtio_dev *d, const struct platform *plat)
{
	struct evloop *group_loop[VIRTIO_MAX_QUEUES] = {0};
	bool spread = d->ops->queue_group && plat->loop && plat->ops->io_loop_next;

	if (d->loops_bound)
		return 0;
	for (unsigned q = 0; q < d->num_queues; q++) {
		if (!spread) {
			d->queue_loop[q] = plat->loop;
			continue;
		}
		unsigned g = d->ops->queue_group(d, q);
		if (g >= d->num_queues)
			return -EINVAL;
		/* Groups get loops in the order their first queue appears. */
		if (!group_loop[g]) {
			group_loop[g] = plat->ops->io_loop_next(plat->ctx);
			if (!group_loop[g])
				group_loop[g] = plat->loop;
		}
		d->queue_loop[q] = group_loop[g];
	}
	d->loops_bound = true;
	return 0;
}

struct evloop *virtio_dev_queue_loop(const struct virtio_dev *d, unsigned q)
{
	return q < d->num_queues ? d->queue_loop[q] : NULL;
}

void virtio_dev_lock(struct virtio_dev *d)
{
	pthread_mutex_lock(&d->lock);
}

void virtio_dev_unlock(struct virtio_dev *d)
{
	pthread_mutex_unlock(&d->lock);
}

static void virtio_dev_interrupt(struct virtio_dev *d, unsigned q)
{
	if (d->tops && d->tops->interrupt)
		d->tops->interrupt(d->transport, q);
}

uint32_t virtio_dev_device_features(const struct virtio_dev *d, uint32_t sel)
{
	return sel < 2 ? (uint32_t)(d->offered >> (32 * sel)) : 0;
}

uint32_t virtio_dev_driver_features(const struct virtio_dev *d, uint32_t sel)
{
	return sel < 2 ? (uint32_t)(d->driver_features >> (32 * sel)) : 0;
}

void virtio_dev_set_driver_features(struct virtio_dev *d, uint32_t sel, uint32_t val)
{
	if (status_get(d) & VIRTIO_STATUS_FEATURES_OK) {
		vlog_rl("%s: driver features written after FEATURES_OK; ignored", d->ops->name);
		return;
	}
	if (sel >= 2) {
		/* We offer nothing there: any set bit makes FEATURES_OK fail. */
		if (val)
			d->bad_feature_write = true;
		return;
	}
	unsigned shift = 32 * sel;
	d->driver_features &= ~(0xffffffffULL << shift);
	d->driver_features |= (uint64_t)val << shift;
}

uint8_t virtio_dev_status(const struct virtio_dev *d)
{
	return status_get(d);
}

uint8_t virtio_dev_config_generation(const struct virtio_dev *d)
{
	return d->config_generation;
}

static bool virtio_dev_features_valid(struct virtio_dev *d)
{
	uint64_t f = d->driver_features;
	if (d->bad_feature_write || (f & ~d->offered)) {
		vlog_rl("%s: driver accepted features %#llx not offered (offered %#llx)",
			d->ops->name, (unsigned long long)(f & ~d->offered),
			(unsigned long long)d->offered);
		return false;
	}
	if (!(f & VIRTIO_BIT(VIRTIO_F_VERSION_1))) {
		vlog_rl("%s: driver did not accept VIRTIO_F_VERSION_1 (legacy drivers unsupported)",
			d->ops->name);
		return false;
	}
	if (d->ops->features_ok && !d->ops->features_ok(d, f))
		return false;
	return true;
}

void virtio_dev_set_needs_reset(struct virtio_dev *d)
{
	uint8_t old = __atomic_fetch_or(&d->status, VIRTIO_STATUS_NEEDS_RESET, __ATOMIC_ACQ_REL);
	if (old & VIRTIO_STATUS_NEEDS_RESET)
		return;
	/* The driver only listens for config interrupts once it set DRIVER_OK. The
	 * transport's interrupt op is thread-safe by itself. */
	if (old & VIRTIO_STATUS_DRIVER_OK)
		virtio_dev_interrupt(d, VIRTIO_IRQ_CONFIG);
}

/* DRIVER_OK: validate and start every enabled queue, then tell the device. */
static void virtio_dev_activate(struct virtio_dev *d)
{
	bool ev = d->negotiated & VIRTIO_BIT(VIRTIO_F_EVENT_IDX);
	bool ind = d->negotiated & VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC);
	bool bad = false;

	for (unsigned i = 0; i < d->num_queues; i++) {
		struct virtq *vq = &d->vqs[i];
		if (vq->enabled && vq_activate(vq, d->mem, ev, ind) < 0)
			bad = true;
	}
	if (!bad && d->ops->activate && d->ops->activate(d) < 0) {
		vlog_rl("%s: device activation failed", d->ops->name);
		bad = true;
	}
	if (bad)
		virtio_dev_set_needs_reset(d);
}

void virtio_dev_set_status(struct virtio_dev *d, uint8_t val)
{
	const uint8_t owned = VIRTIO_STATUS_NEEDS_RESET; /* device-owned bits */
	uint8_t cur = status_get(d);

	if (val == 0) {
		virtio_dev_reset(d);
		return;
	}
	if (cur & ~val & ~owned) {
		vlog_rl("%s: driver cleared status bits %#x without reset; ignored", d->ops->name,
			cur & ~val & ~owned);
		return;
	}
	uint8_t add = val & ~cur & ~owned;
	uint8_t next = cur;

	if (add & VIRTIO_STATUS_FAILED)
		next |= VIRTIO_STATUS_FAILED;
	if (add & VIRTIO_STATUS_ACKNOWLEDGE)
		next |= VIRTIO_STATUS_ACKNOWLEDGE;
	if (add & VIRTIO_STATUS_DRIVER) {
		if (next & VIRTIO_STATUS_ACKNOWLEDGE)
			next |= VIRTIO_STATUS_DRIVER;
		else
			vlog_rl("%s: DRIVER set before ACKNOWLEDGE; ignored", d->ops->name);
	}
	if (add & VIRTIO_STATUS_FEATURES_OK) {
		if (!(next & VIRTIO_STATUS_DRIVER))
			vlog_rl("%s: FEATURES_OK set before DRIVER; ignored", d->ops->name);
		else if (virtio_dev_features_valid(d)) {
			next |= VIRTIO_STATUS_FEATURES_OK;
			d->negotiated = d->driver_features;
		}
		/* else: left clear, the driver sees that when it re-reads the status. */
	}
	bool start = false;
	if (add & VIRTIO_STATUS_DRIVER_OK) {
		if (next & VIRTIO_STATUS_FEATURES_OK) {
			next |= VIRTIO_STATUS_DRIVER_OK;
			start = true;
		} else {
			vlog_rl("%s: DRIVER_OK set without FEATURES_OK; ignored", d->ops->name);
		}
	}
	/* next only adds to cur: OR it in, keeping a NEEDS_RESET set meanwhile by a queue. */
	__atomic_fetch_or(&d->status, next, __ATOMIC_ACQ_REL);
	if (start)
		virtio_dev_activate(d);
}

void virtio_dev_reset(struct virtio_dev *d)
{
	/* ops->reset first: it stops the queues (under their locks, for unlocked-notify
	 * devices), so nothing running can see the rings or the status reset under it. */
	if (d->ops->reset)
		d->ops->reset(d);
	__atomic_store_n(&d->status, 0, __ATOMIC_RELEASE);
	d->driver_features = 0;
	d->negotiated = 0;
	d->bad_feature_write = false;
	for (unsigned i = 0; i < d->num_queues; i++)
		vq_reset(&d->vqs[i]);
}

static bool config_range_ok(const struct virtio_dev *d, uint32_t off, unsigned len)
{
	uint32_t end;
	return len && !add_overflows(off, (uint32_t)len, &end) && end <= d->ops->config_size;
}

void virtio_dev_config_read(struct virtio_dev *d, uint32_t off, void *data, unsigned len)
{
	memset(data, 0, len);
	if (!config_range_ok(d, off, len) || !d->ops->config_read)
		return;
	d->ops->config_read(d, off, data, len);
}

void virtio_dev_config_write(struct virtio_dev *d, uint32_t off, const void *data, unsigned len)
{
	if (!config_range_ok(d, off, len) || !d->ops->config_write)
		return;
	d->ops->config_write(d, off, data, len);
}

struct virtq *virtio_dev_queue(struct virtio_dev *d, unsigned q)
{
	return q < d->num_queues ? &d->vqs[q] : NULL;
}

/* The queue's configuration may change only before DRIVER_OK and while it is disabled. */
static struct virtq *virtio_dev_queue_writable(struct virtio_dev *d, unsigned q)
{
	struct virtq *vq = virtio_dev_queue(d, q);
	if (!vq)
		return NULL;
	if ((status_get(d) & VIRTIO_STATUS_DRIVER_OK) || vq->enabled) {
		vlog_rl("%s: queue %u configuration written while %s; ignored", d->ops->name, q,
			vq->enabled ? "enabled" : "running");
		return NULL;
	}
	return vq;
}

bool virtio_dev_queue_set_size(struct virtio_dev *d, unsigned q, uint16_t size)
{
	struct virtq *vq = virtio_dev_queue_writable(d, q);
	if (!vq)
		return false;
	vq->size = size;
	return true;
}

bool virtio_dev_queue_set_addr(struct virtio_dev *d, unsigned q, enum virtio_queue_area area,
			       uint64_t gpa)
{
	struct virtq *vq = virtio_dev_queue_writable(d, q);
	if (!vq)
		return false;
	switch (area) {
	case VIRTIO_AREA_DESC:
		vq->desc_gpa = gpa;
		break;
	case VIRTIO_AREA_DRIVER:
		vq->avail_gpa = gpa;
		break;
	case VIRTIO_AREA_DEVICE:
		vq->used_gpa = gpa;
		break;
	default:
		return false;
	}
	return true;
}

bool virtio_dev_queue_set_enable(struct virtio_dev *d, unsigned q, uint16_t val)
{
	/* The spec forbids writing 0; only a device reset disables a queue. */
	if (val != 1)
		return false;
	struct virtq *vq = virtio_dev_queue_writable(d, q);
	if (!vq)
		return false;
	vq->enabled = true;
	return true;
}

bool virtio_dev_queue_ready(struct virtio_dev *d, unsigned q)
{
	struct virtq *vq = virtio_dev_queue(d, q);
	return vq && vq->live && (status_get(d) & VIRTIO_STATUS_DRIVER_OK);
}

void virtio_dev_kick(struct virtio_dev *d, unsigned q)
{
	if (q >= d->num_queues)
		return;
	if (d->ops->notify_unlocked) {
		/* The device checks liveness under its own queue lock (virtio.h). */
		d->ops->queue_notify(d, q);
		return;
	}
	virtio_dev_lock(d);
	if (virtio_dev_queue_ready(d, q))
		d->ops->queue_notify(d, q);
	virtio_dev_unlock(d);
}

int virtio_dev_queue_pop(struct virtio_dev *d, unsigned q, struct vq_chain *c)
{
	struct virtq *vq = virtio_dev_queue(d, q);
	if (!vq)
		return -EINVAL;
	int r = vq_pop(vq, c);
	if (r < 0)
		virtio_dev_set_needs_reset(d);
	return r;
}

int virtio_dev_queue_push(struct virtio_dev *d, unsigned q, uint16_t head, uint32_t len)
{
	struct virtq *vq = virtio_dev_queue(d, q);
	if (!vq)
		return -EINVAL;
	return vq_push(vq, head, len);
}

void virtio_dev_queue_signal(struct virtio_dev *d, unsigned q)
{
	struct virtq *vq = virtio_dev_queue(d, q);
	if (vq && vq_should_notify(vq))
		virtio_dev_interrupt(d, q);
}

void virtio_dev_config_changed(struct virtio_dev *d)
{
	d->config_generation++;
	if (status_get(d) & VIRTIO_STATUS_DRIVER_OK)
		virtio_dev_interrupt(d, VIRTIO_IRQ_CONFIG);
}
