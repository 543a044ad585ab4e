/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk device side: completions, notifications, configuration, reset and lifetime.
 * The request side (chain parsing, validation, merging) is virtio_blk_req.c.
 */
#include "devices/virtio/virtio_blk_priv.h"
#include "devices/virtio/virtio_pci.h"
#include "common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BLK_PCI_CLASS 0x010000 /* mass storage controller, SCSI */

_Static_assert(sizeof(struct virtio_blk_outhdr) == 16, "virtio_blk_outhdr layout");
_Static_assert(sizeof(struct virtio_blk_dwz_seg) == 16, "discard segment layout");
_Static_assert(VIRTIO_BLK_MAX_QUEUES <= 64, "signal/throttle masks are 64-bit");

/* --- completion --- */

bool vblk_writeback(const struct virtio_blk *b)
{
	if (!virtio_dev_has_feature(&b->vdev, VIRTIO_BLK_F_FLUSH))
		return false;
	if (virtio_dev_has_feature(&b->vdev, VIRTIO_BLK_F_CONFIG_WCE))
		return __atomic_load_n(&b->cfg.writeback, __ATOMIC_RELAXED) != 0;
	return true;
}

static void vblk_count(struct vblk_queue *vq, uint32_t type, uint64_t bytes, uint8_t status)
{
	struct virtio_blk_stats *s = &vq->stats;
	if (status == VIRTIO_BLK_S_IOERR)
		s->errors++;
	else if (status == VIRTIO_BLK_S_UNSUPP)
		s->unsupported++;
	switch (type) {
	case VIRTIO_BLK_T_IN:
		s->reads++;
		if (status == VIRTIO_BLK_S_OK)
			s->read_bytes += bytes;
		break;
	case VIRTIO_BLK_T_OUT:
		s->writes++;
		if (status == VIRTIO_BLK_S_OK)
			s->write_bytes += bytes;
		break;
	case VIRTIO_BLK_T_FLUSH:
		s->flushes++;
		break;
	case VIRTIO_BLK_T_GET_ID:
		s->get_ids++;
		break;
	case VIRTIO_BLK_T_DISCARD:
		s->discards++;
		break;
	case VIRTIO_BLK_T_WRITE_ZEROES:
		s->write_zeroes++;
		break;
	}
}

void vblk_mark_signal(struct virtio_blk *b, unsigned q)
{
	__atomic_fetch_or(&b->signal_mask, 1ULL << q, __ATOMIC_RELEASE);
}

void vblk_answer(struct virtio_blk *b, struct vblk_queue *vq, uint16_t head, uint8_t *status,
		 uint32_t used_len, uint32_t type, uint64_t bytes, uint8_t st)
{
	__atomic_store_n(status, st, __ATOMIC_RELAXED);
	if (virtio_dev_queue_push(&b->vdev, vq->index, head, used_len) == 0)
		vblk_mark_signal(b, vq->index);
	vblk_count(vq, type, bytes, st);
}

/* Queue locked. Give r back to the queue's pool (or the heap). */
static void vblk_req_release(struct vblk_queue *vq, struct vblk_req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		vq->inflight_list = r->next;
	if (r->next)
		r->next->prev = r->prev;
	vq->stats.inflight--;
	if (r->pooled) {
		r->next = vq->free_list;
		vq->free_list = r;
	} else {
		free(r);
	}
}

/* Queue locked. One of r's backend requests finished with res. */
static void vblk_req_finish(struct vblk_queue *vq, struct vblk_req *r, int res)
{
	if (res < 0 && !r->err)
		r->err = res;
	if (--r->pending)
		return;
	/* A reset marked it cancelled (under this lock) before the ring went away, and zeroed
	 * the queue's in-flight count. */
	if (!r->cancelled) {
		if (r->err)
			vlog_rl("virtio-blk: request type %u at sector %llu failed: %s", r->type,
				(unsigned long long)r->sector, strerror(-r->err));
		vblk_answer(vq->blk, vq, r->head, r->status, r->used_len, r->type, r->bytes,
			    r->err ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
		vq->inflight--;
	}
	vblk_req_release(vq, r);
}

void vblk_sub_done(struct blk_req *br, int res)
{
	struct vblk_req *r = br->opaque;
	struct vblk_queue *vq = r->vq;

	pthread_mutex_lock(&vq->lock);
	vblk_req_finish(vq, r, res);
	pthread_mutex_unlock(&vq->lock);
}

/* The backend reports a whole transfer or an error (it continues short transfers itself),
 * so res is every member's result: no member reports success for data not moved. */
void vblk_merge_done(struct blk_req *br, int res)
{
	struct vblk_merge *m = br->opaque;
	struct vblk_queue *vq = m->vq;

	pthread_mutex_lock(&vq->lock);
	for (struct vblk_req *r = m->members, *n; r; r = n) {
		n = r->mnext;
		r->mnext = NULL;
		vblk_req_finish(vq, r, res);
	}
	m->members = NULL;
	if (vq->merge_free_n < VBLK_MERGE_POOL) {
		m->next = vq->merge_free;
		vq->merge_free = m;
		vq->merge_free_n++;
	} else {
		free(m);
	}
	pthread_mutex_unlock(&vq->lock);
}

/*
 * After each batch of completions (completion thread): restart throttled queues, then one
 * interrupt decision per queue that got answers.
 */
static void vblk_batch_end(void *opaque)
{
	struct virtio_blk *b = opaque;
	if (__atomic_load_n(&b->dying, __ATOMIC_ACQUIRE))
		return;
	uint64_t t = __atomic_exchange_n(&b->throttled, 0, __ATOMIC_ACQ_REL);
	if (t) {
		/* Only a driver republishing busy buffers gets here. Popping may set
		 * NEEDS_RESET, a device state: this path takes the device lock. */
		bool kick = false;
		virtio_dev_lock(&b->vdev);
		while (t && !__atomic_load_n(&b->dying, __ATOMIC_ACQUIRE)) {
			struct vblk_queue *vq = &b->qs[__builtin_ctzll(t)];
			t &= t - 1;
			pthread_mutex_lock(&vq->lock);
			if (vq->running && (virtio_dev_status(&b->vdev) & VIRTIO_STATUS_DRIVER_OK))
				kick |= vblk_process(b, vq);
			pthread_mutex_unlock(&vq->lock);
		}
		if (kick)
			blk_kick(b->be);
		virtio_dev_unlock(&b->vdev);
	}
	uint64_t m = __atomic_exchange_n(&b->signal_mask, 0, __ATOMIC_ACQ_REL);
	while (m) {
		struct vblk_queue *vq = &b->qs[__builtin_ctzll(m)];
		m &= m - 1;
		pthread_mutex_lock(&vq->lock);
		if (vq->running)
			virtio_dev_queue_signal(&b->vdev, vq->index);
		pthread_mutex_unlock(&vq->lock);
	}
}


/*
 * The driver notified queue q: called WITHOUT the device lock (notify_unlocked), for any
 * q < nq, on the queue's I/O thread (or a vCPU), concurrently with other queues'
 * notifications, completions, status writes and resets. Why that is safe:
 * - Everything below runs under q's lock and only if vq->running. running is set by
 *   vblk_activate under this lock after the core activated the rings (vq_activate runs
 *   before ops->activate), and cleared by vblk_stop_queues under this lock from
 *   ops->reset, before the core resets the rings (vq_reset runs after ops->reset) and
 *   clears the status. So while we hold the lock and see running, the ring addresses are
 *   the current activation's and stay valid; a reset waits for us, and a notify that gets
 *   the lock after a reset sees running clear and touches nothing (a new activation sets
 *   it again only after the new ring addresses are in place).
 * - State read without the device lock is stable while a queue runs (negotiated features,
 *   queue size, the config limits) or atomic (stopped, writeback, signal_mask, throttled).
 * - A driver error sets NEEDS_RESET through virtio_dev_set_needs_reset(), which is atomic
 *   and allowed here because we hold the lock of a running queue (virtio.h).
 * - blk_submit/blk_kick take the backend lock, so queues on different threads may submit
 *   at once (lock order: queue lock -> backend lock; the kick runs with no lock held).
 */
static void vblk_queue_notify(struct virtio_dev *d, unsigned q)
{
	struct virtio_blk *b = d->opaque;
	struct vblk_queue *vq;
	bool kick = false;

	if (q >= b->nq)
		return;
	vq = &b->qs[q];
	pthread_mutex_lock(&vq->lock);
	if (vq->running) {
		kick = vblk_process(b, vq);
		/* Answers given right away (errors, GET_ID) and completions so far: decide now.
		 * A completion pushing after this sets the bit again. */
		__atomic_fetch_and(&b->signal_mask, ~(1ULL << q), __ATOMIC_ACQ_REL);
		virtio_dev_queue_signal(d, q);
	}
	pthread_mutex_unlock(&vq->lock);
	/* One submission per notification, outside the queue lock: completions of this
	 * queue need not wait for the system call. */
	if (kick)
		blk_kick(b->be);
}

/* --- configuration space, reset --- */

static void vblk_config_read(struct virtio_dev *d, uint32_t off, void *data, unsigned len)
{
	struct virtio_blk *b = d->opaque;
	memcpy(data, (const uint8_t *)&b->cfg + off, len);
}

static void vblk_config_write(struct virtio_dev *d, uint32_t off, const void *data,
			      unsigned len)
{
	struct virtio_blk *b = d->opaque;
	if (off == VIRTIO_BLK_CFG_WRITEBACK && len == 1 &&
	    virtio_dev_has_feature(d, VIRTIO_BLK_F_CONFIG_WCE)) {
		__atomic_store_n(&b->cfg.writeback, *(const uint8_t *)data ? 1 : 0,
				 __ATOMIC_RELAXED);
		return;
	}
	vlog_rl("virtio-blk: config write of %u bytes at %u ignored", len, off);
}

/* DRIVER_OK (device locked): the enabled queues start taking requests. */
static int vblk_activate(struct virtio_dev *d)
{
	struct virtio_blk *b = d->opaque;
	for (unsigned q = 0; q < b->nq; q++) {
		struct vblk_queue *vq = &b->qs[q];
		pthread_mutex_lock(&vq->lock);
		vq->running = virtio_dev_queue(d, q)->live;
		pthread_mutex_unlock(&vq->lock);
	}
	return 0;
}

/* Device locked. Stop every queue and disown its requests in flight: their completions,
 * whenever they come, only free them. */
static void vblk_stop_queues(struct virtio_blk *b)
{
	for (unsigned q = 0; q < b->nq; q++) {
		struct vblk_queue *vq = &b->qs[q];
		pthread_mutex_lock(&vq->lock);
		vq->running = false;
		for (struct vblk_req *r = vq->inflight_list; r; r = r->next)
			r->cancelled = true;
		vq->inflight = 0;
		pthread_mutex_unlock(&vq->lock);
	}
}

static void vblk_reset(struct virtio_dev *d)
{
	struct virtio_blk *b = d->opaque;
	vblk_stop_queues(b);
	/* Buffers of started requests are released when this returns. */
	blk_drain(b->be);
	__atomic_store_n(&b->stopped, false, __ATOMIC_RELAXED);
	__atomic_store_n(&b->signal_mask, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&b->throttled, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&b->cfg.writeback, b->initial_wce, __ATOMIC_RELAXED);
}

/* Every request queue is a group of its own: each may get its own I/O thread. */
static unsigned vblk_queue_group(const struct virtio_dev *d, unsigned q)
{
	(void)d;
	return q;
}

static const struct virtio_dev_ops vblk_ops_template = {
	.name = "virtio-blk",
	.device_id = VIRTIO_ID_BLOCK,
	.max_queue_size = VIRTIO_BLK_QUEUE_SIZE,
	.config_size = sizeof(struct virtio_blk_config),
	.config_read = vblk_config_read,
	.config_write = vblk_config_write,
	.activate = vblk_activate,
	.queue_notify = vblk_queue_notify,
	.reset = vblk_reset,
	.queue_group = vblk_queue_group,
	.notify_unlocked = true,
};

static unsigned log2u(unsigned x)
{
	unsigned n = 0;
	while (x > 1) {
		x >>= 1;
		n++;
	}
	return n;
}

static void vblk_config_init(struct virtio_blk *b, unsigned nq)
{
	struct virtio_blk_config *c = &b->cfg;
	const struct blk_info *i = &b->info;

	memset(c, 0, sizeof(*c));
	c->capacity = b->capacity;
	c->seg_max = VIRTIO_BLK_SEG_MAX;
	c->blk_size = i->logical_block;
	c->physical_block_exp = (uint8_t)log2u(i->physical_block / i->logical_block);
	c->min_io_size = (uint16_t)(i->physical_block / i->logical_block);
	c->num_queues = (uint16_t)nq;
	b->initial_wce = i->cache == BLK_CACHE_WRITETHROUGH ? 0 : 1;
	c->writeback = b->initial_wce;
	if (!i->readonly) {
		c->max_discard_sectors = VIRTIO_BLK_MAX_DWZ_SECTORS;
		c->max_discard_seg = VIRTIO_BLK_MAX_DWZ_SEG;
		c->discard_sector_alignment = i->physical_block / BLK_SECTOR_SIZE;
		c->max_write_zeroes_sectors = VIRTIO_BLK_MAX_DWZ_SECTORS;
		c->max_write_zeroes_seg = VIRTIO_BLK_MAX_DWZ_SEG;
		c->write_zeroes_may_unmap = i->can_unmap;
	}
}

static void vblk_queues_free(struct virtio_blk *b, unsigned n)
{
	for (unsigned q = 0; q < n; q++) {
		struct vblk_queue *vq = &b->qs[q];
		struct vblk_req *r;
		while ((r = vq->free_list)) {
			vq->free_list = r->next;
			free(container_of(r, struct vblk_req_pooled, r));
		}
		struct vblk_merge *m;
		while ((m = vq->merge_free)) {
			vq->merge_free = m->next;
			free(m);
		}
		pthread_mutex_destroy(&vq->lock);
	}
	free(b->qs);
	b->qs = NULL;
}

static int vblk_queues_init(struct virtio_blk *b, unsigned nq)
{
	b->qs = calloc(nq, sizeof(*b->qs));
	if (!b->qs)
		return -ENOMEM;
	for (unsigned q = 0; q < nq; q++) {
		int r = pthread_mutex_init(&b->qs[q].lock, NULL);
		if (r) {
			vblk_queues_free(b, q);
			return -r;
		}
		b->qs[q].blk = b;
		b->qs[q].index = q;
	}
	b->nq = nq;
	return 0;
}

int virtio_blk_create(struct virtio_blk **out, const struct platform *plat,
		      struct pci_host *host, struct blk_backend *be, unsigned num_queues)
{
	struct virtio_blk *b;
	int r;

	*out = NULL;
	if (!be)
		return -EINVAL;
	unsigned nq = MIN(MAX(num_queues, 1u), (unsigned)VIRTIO_BLK_MAX_QUEUES);
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	r = vblk_queues_init(b, nq);
	if (r < 0) {
		free(b);
		return r;
	}
	b->be = be;
	blk_get_info(be, &b->info);
	b->lbs = b->info.logical_block;
	b->capacity = b->info.size / BLK_SECTOR_SIZE;
	vblk_config_init(b, nq);

	b->ops = vblk_ops_template;
	b->ops.num_queues = nq;
	b->ops.features = VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) | VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) |
			  VIRTIO_BIT(VIRTIO_BLK_F_TOPOLOGY) | VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) |
			  VIRTIO_BIT(VIRTIO_BLK_F_CONFIG_WCE);
	if (b->info.readonly)
		b->ops.features |= VIRTIO_BIT(VIRTIO_BLK_F_RO);
	else
		b->ops.features |= VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) |
				   VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
	if (nq > 1)
		b->ops.features |= VIRTIO_BIT(VIRTIO_BLK_F_MQ);

	r = virtio_dev_init(&b->vdev, &b->ops, plat->mem, b);
	if (r < 0)
		goto fail;
	blk_set_batch_hook(be, vblk_batch_end, b);
	r = virtio_pci_create(&b->pci, plat, host, &b->vdev, BLK_PCI_CLASS);
	if (r < 0)
		goto fail_dev;
	*out = b;
	return 0;
fail_dev:
	blk_set_batch_hook(be, NULL, NULL);
	virtio_dev_fini(&b->vdev);
fail:
	vblk_queues_free(b, nq);
	free(b);
	return r;
}

void virtio_blk_destroy(struct virtio_blk *b)
{
	if (!b)
		return;
	virtio_dev_lock(&b->vdev);
	/* Completions must not start requests or interrupt now. */
	__atomic_store_n(&b->dying, true, __ATOMIC_RELEASE);
	__atomic_store_n(&b->stopped, true, __ATOMIC_RELAXED);
	vblk_stop_queues(b);
	virtio_dev_unlock(&b->vdev);
	/* Every completion runs (and frees its request) before this returns. */
	blk_quiesce(b->be);
	blk_set_batch_hook(b->be, NULL, NULL);
	virtio_pci_destroy(b->pci);
	virtio_dev_fini(&b->vdev);
	vblk_queues_free(b, b->nq);
	free(b);
}

_Static_assert(sizeof(struct virtio_blk_stats) % sizeof(uint64_t) == 0, "stats: all uint64_t");

void virtio_blk_get_stats(struct virtio_blk *b, struct virtio_blk_stats *out)
{
	uint64_t *sum = (uint64_t *)(void *)out;
	memset(out, 0, sizeof(*out));
	for (unsigned q = 0; q < b->nq; q++) {
		struct vblk_queue *vq = &b->qs[q];
		pthread_mutex_lock(&vq->lock);
		const uint64_t *s = (const uint64_t *)(const void *)&vq->stats;
		for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
			sum[i] += s[i];
		pthread_mutex_unlock(&vq->lock);
	}
}

struct virtio_dev *virtio_blk_vdev(struct virtio_blk *b)
{
	return &b->vdev;
}
