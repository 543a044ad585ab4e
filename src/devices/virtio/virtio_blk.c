/* SPDX-License-Identifier: MIT */
#include "devices/virtio/virtio_blk.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtio_pci.h"
#include "block/block.h"
#include "common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BLK_PCI_CLASS 0x010000 /* mass storage controller, SCSI */
#define HDR_SIZE sizeof(struct virtio_blk_outhdr)
#define SEG_SIZE sizeof(struct virtio_blk_dwz_seg)

_Static_assert(sizeof(struct virtio_blk_outhdr) == 16, "virtio_blk_outhdr layout");
_Static_assert(sizeof(struct virtio_blk_dwz_seg) == 16, "discard segment layout");
_Static_assert(VIRTIO_BLK_MAX_QUEUES <= 64, "signal/throttle masks are 64-bit");

/* Backend iovecs kept inside a pooled request; longer chains get their own allocation. */
#define VBLK_INLINE_IOV 16

/* One guest request in flight: up to VIRTIO_BLK_MAX_DWZ_SEG backend requests. */
struct vblk_req {
	struct vblk_req *next, *prev; /* the queue's in-flight list, or its free list */
	struct vblk_queue *vq;
	uint16_t head;
	bool pooled;	/* from the queue's free list (one sub, VBLK_INLINE_IOV iovecs) */
	bool cancelled; /* the device was reset: touch nothing of the guest's */
	uint32_t type;
	uint8_t *status;
	uint32_t used_len;
	uint64_t bytes;
	unsigned pending; /* backend requests not completed */
	int err;	  /* first backend error */
	uint64_t sector;  /* for log messages */
	struct blk_req *sub;
	struct iovec *iov;
};

/* A pooled request: the common single-range read or write without an allocation. */
struct vblk_req_pooled {
	struct vblk_req r;
	struct blk_req sub;
	struct iovec iov[VBLK_INLINE_IOV];
};

/*
 * One request queue. Its lock covers the virtqueue's ring state while the queue runs, its
 * requests and counters: completions take only this lock, so queues complete
 * independently. Lock order: device lock -> queue lock -> backend lock.
 */
struct vblk_queue {
	pthread_mutex_t lock;
	struct virtio_blk *blk;
	unsigned index;
	bool running;	/* activated and not reset: the ring may be touched */
	bool throttled; /* left alone because too many requests are in flight */
	unsigned inflight;
	struct vblk_req *inflight_list;
	struct vblk_req *free_list;
	struct virtio_blk_stats stats;
	struct vq_chain chain; /* scratch for the chain being parsed */
};

struct virtio_blk {
	struct virtio_dev vdev;
	struct virtio_dev_ops ops; /* per device: queue count and features depend on the disk */
	struct virtio_pci *pci;
	struct blk_backend *be;
	struct blk_info info;
	uint64_t capacity; /* sectors */
	unsigned lbs;	   /* logical block bytes */
	unsigned nq;
	struct vblk_queue *qs; /* [nq] */

	/* Protected by the device lock (cfg.writeback is also read atomically by queues). */
	struct virtio_blk_config cfg; /* what the guest reads; writeback is guest-writable */
	uint8_t initial_wce;
	/* Atomics, shared by every queue. */
	bool stopped;	      /* malformed chain: no new requests until reset */
	bool dying;	      /* being destroyed: completions only free their requests */
	uint64_t signal_mask; /* queues with pushes since the last interrupt decision */
	uint64_t throttled;   /* queues waiting for completions to make room */
};

/* --- iovec helpers (guest buffers; lengths already validated by vq_pop) --- */

/* Copy len bytes that start skip bytes into iov[0..cnt) to buf (the caller checked sizes). */
static void iov_gather(const struct iovec *iov, unsigned cnt, uint64_t skip, void *buf,
		       size_t len)
{
	uint8_t *d = buf;
	for (unsigned i = 0; i < cnt && len; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		size_t n = (size_t)MIN((uint64_t)iov[i].iov_len - skip, (uint64_t)len);
		memcpy(d, (const uint8_t *)iov[i].iov_base + skip, n);
		d += n;
		len -= n;
		skip = 0;
	}
}

static void iov_scatter(const struct iovec *iov, unsigned cnt, const void *buf, size_t len)
{
	const uint8_t *s = buf;
	for (unsigned i = 0; i < cnt && len; i++) {
		size_t n = MIN(iov[i].iov_len, len);
		memcpy(iov[i].iov_base, s, n);
		s += n;
		len -= n;
	}
}

/* Describe [skip, skip + len) of iov as iovecs in dst (NULL: only count them). */
static unsigned iov_slice(const struct iovec *iov, unsigned cnt, uint64_t skip, uint64_t len,
			  struct iovec *dst)
{
	unsigned n = 0;
	for (unsigned i = 0; i < cnt && len; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		uint64_t take = MIN((uint64_t)iov[i].iov_len - skip, len);
		if (dst)
			dst[n] = (struct iovec){(uint8_t *)iov[i].iov_base + skip, (size_t)take};
		n++;
		len -= take;
		skip = 0;
	}
	return n;
}

/* --- completion --- */

static bool vblk_writeback(const struct virtio_blk *b)
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

static void vblk_mark_signal(struct virtio_blk *b, unsigned q)
{
	__atomic_fetch_or(&b->signal_mask, 1ULL << q, __ATOMIC_RELEASE);
}

/* Queue locked. Write the status, return the chain; the interrupt comes with the batch. */
static void vblk_answer(struct virtio_blk *b, struct vblk_queue *vq, uint16_t head,
			uint8_t *status, uint32_t used_len, uint32_t type, uint64_t bytes,
			uint8_t st)
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

static void vblk_sub_done(struct blk_req *br, int res)
{
	struct vblk_req *r = br->opaque;
	struct vblk_queue *vq = r->vq;

	pthread_mutex_lock(&vq->lock);
	if (res < 0 && !r->err)
		r->err = res;
	if (--r->pending) {
		pthread_mutex_unlock(&vq->lock);
		return;
	}
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
	pthread_mutex_unlock(&vq->lock);
}

static bool vblk_process(struct virtio_blk *b, struct vblk_queue *vq);

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

/* --- request parsing --- */

/* Everything about the chain being handled. */
struct vblk_ctx {
	struct vblk_queue *vq;
	struct vq_chain *c;
	uint8_t *status;
	uint32_t used_len;
	struct virtio_blk_outhdr hdr;
};

static void vblk_reply(struct virtio_blk *b, const struct vblk_ctx *x, uint8_t st)
{
	vblk_answer(b, x->vq, x->c->head, x->status, x->used_len, x->hdr.type, 0, st);
}

/* sector + n sectors inside the disk, block-aligned (overflow-safe). */
static bool vblk_range_ok(const struct virtio_blk *b, uint64_t sector, uint64_t n)
{
	uint64_t spb = b->lbs / BLK_SECTOR_SIZE;
	if (sector > b->capacity || n > b->capacity - sector)
		return false;
	return sector % spb == 0 && n % spb == 0;
}

/* Queue locked. A request for nsub backend requests and niov iovecs; pooled when it is
 * the common shape (a read or write of few segments), so steady I/O allocates nothing. */
static struct vblk_req *vblk_req_new(const struct vblk_ctx *x, unsigned nsub, unsigned niov)
{
	struct vblk_queue *vq = x->vq;
	struct vblk_req *r;

	if (nsub == 1 && niov <= VBLK_INLINE_IOV) {
		r = vq->free_list;
		if (r) {
			vq->free_list = r->next;
		} else {
			struct vblk_req_pooled *p = malloc(sizeof(*p));
			if (!p)
				return NULL;
			r = &p->r;
		}
		struct vblk_req_pooled *p = container_of(r, struct vblk_req_pooled, r);
		memset(r, 0, sizeof(*r));
		r->pooled = true;
		r->sub = &p->sub;
		r->iov = p->iov;
	} else {
		size_t sz = sizeof(struct vblk_req) + nsub * sizeof(struct blk_req) +
			    niov * sizeof(struct iovec);
		r = calloc(1, sz);
		if (!r)
			return NULL;
		r->sub = (struct blk_req *)(r + 1);
		r->iov = (struct iovec *)(r->sub + nsub);
	}
	r->vq = vq;
	r->head = x->c->head;
	r->type = x->hdr.type;
	r->status = x->status;
	r->used_len = x->used_len;
	r->sector = x->hdr.sector;
	r->pending = nsub;
	return r;
}

/* Queue locked. Hand r's nsub prepared backend requests over (started by the caller's
 * blk_kick). */
static void vblk_req_start(struct virtio_blk *b, struct vblk_req *r, unsigned nsub)
{
	struct vblk_queue *vq = r->vq;
	r->prev = NULL;
	r->next = vq->inflight_list;
	if (vq->inflight_list)
		vq->inflight_list->prev = r;
	vq->inflight_list = r;
	vq->stats.inflight++;
	vq->inflight++;
	for (unsigned i = 0; i < nsub; i++) {
		r->sub[i].done = vblk_sub_done;
		r->sub[i].opaque = r;
		blk_submit(b->be, &r->sub[i]);
	}
}

/* IN / OUT. Returns true if something was submitted. */
static bool vblk_rw(struct virtio_blk *b, const struct vblk_ctx *x, bool write)
{
	const struct vq_chain *c = x->c;
	uint64_t len = write ? c->out_bytes - HDR_SIZE : c->in_bytes - 1;

	if (write && b->info.readonly) {
		vlog_rl("virtio-blk: write to a read-only disk");
		vblk_reply(b, x, VIRTIO_BLK_S_IOERR);
		return false;
	}
	if (len % b->lbs || !vblk_range_ok(b, x->hdr.sector, len / BLK_SECTOR_SIZE)) {
		vlog_rl("virtio-blk: %s of %llu bytes at sector %llu: outside the disk or unaligned",
			write ? "write" : "read", (unsigned long long)len,
			(unsigned long long)x->hdr.sector);
		vblk_reply(b, x, VIRTIO_BLK_S_IOERR);
		return false;
	}
	if (len == 0) {
		vblk_reply(b, x, VIRTIO_BLK_S_OK);
		return false;
	}
	const struct iovec *src = write ? c->iov : c->iov + c->num_out;
	unsigned cnt = write ? c->num_out : c->num_in;
	uint64_t skip = write ? HDR_SIZE : 0;
	unsigned niov = iov_slice(src, cnt, skip, len, NULL);
	struct vblk_req *r = vblk_req_new(x, 1, niov);
	if (!r) {
		vblk_reply(b, x, VIRTIO_BLK_S_IOERR);
		return false;
	}
	iov_slice(src, cnt, skip, len, r->iov);
	r->bytes = len;
	r->sub[0] = (struct blk_req){
		.op = write ? BLK_OP_WRITE : BLK_OP_READ,
		.flags = write && !vblk_writeback(b) ? BLK_REQ_FUA : 0,
		.offset = x->hdr.sector * BLK_SECTOR_SIZE,
		.iov = r->iov,
		.iovcnt = (int)niov,
	};
	vblk_req_start(b, r, 1);
	return true;
}

static void vblk_get_id(struct virtio_blk *b, const struct vblk_ctx *x)
{
	const struct vq_chain *c = x->c;
	uint64_t len = c->in_bytes - 1;
	char id[VIRTIO_BLK_ID_BYTES] = {0};

	if (len == 0) {
		vblk_reply(b, x, VIRTIO_BLK_S_IOERR);
		return;
	}
	/* The serial fills 20 bytes, NUL-padded (no terminator when it is 20 long). */
	memcpy(id, b->info.serial, strnlen(b->info.serial, sizeof(id)));
	iov_scatter(c->iov + c->num_out, c->num_in, id, (size_t)MIN(len, (uint64_t)sizeof(id)));
	vblk_reply(b, x, VIRTIO_BLK_S_OK);
}

static bool vblk_flush(struct virtio_blk *b, const struct vblk_ctx *x)
{
	struct vblk_req *r = vblk_req_new(x, 1, 0);
	if (!r) {
		vblk_reply(b, x, VIRTIO_BLK_S_IOERR);
		return false;
	}
	r->sub[0] = (struct blk_req){.op = BLK_OP_FLUSH};
	vblk_req_start(b, r, 1);
	return true;
}

/* DISCARD / WRITE_ZEROES. */
static bool vblk_dwz(struct virtio_blk *b, const struct vblk_ctx *x)
{
	const struct vq_chain *c = x->c;
	bool discard = x->hdr.type == VIRTIO_BLK_T_DISCARD;
	unsigned feat = discard ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES;
	uint32_t max_sectors = discard ? b->cfg.max_discard_sectors
				       : b->cfg.max_write_zeroes_sectors;
	struct virtio_blk_dwz_seg seg[VIRTIO_BLK_MAX_DWZ_SEG];
	uint64_t plen = c->out_bytes - HDR_SIZE;
	unsigned nseg, nsub = 0;

	if (b->info.readonly) {
		vlog_rl("virtio-blk: %s on a read-only disk", discard ? "discard" : "write-zeroes");
		vblk_reply(b, x, VIRTIO_BLK_S_IOERR);
		return false;
	}
	if (!virtio_dev_has_feature(&b->vdev, feat)) {
		vblk_reply(b, x, VIRTIO_BLK_S_UNSUPP);
		return false;
	}
	if (plen == 0 || plen % SEG_SIZE || plen / SEG_SIZE > VIRTIO_BLK_MAX_DWZ_SEG) {
		vlog_rl("virtio-blk: %s payload of %llu bytes", discard ? "discard" : "write-zeroes",
			(unsigned long long)plen);
		vblk_reply(b, x, VIRTIO_BLK_S_IOERR);
		return false;
	}
	nseg = (unsigned)(plen / SEG_SIZE);
	iov_gather(c->iov, c->num_out, HDR_SIZE, seg, nseg * SEG_SIZE);
	for (unsigned i = 0; i < nseg; i++) {
		uint32_t known = discard ? 0 : VIRTIO_BLK_WZ_FLAG_UNMAP;
		if (seg[i].flags & ~known) {
			vblk_reply(b, x, VIRTIO_BLK_S_UNSUPP);
			return false;
		}
		if (seg[i].num_sectors > max_sectors ||
		    !vblk_range_ok(b, seg[i].sector, seg[i].num_sectors)) {
			vlog_rl("virtio-blk: %s segment of %u sectors at %llu: outside the disk, "
				"unaligned or too long", discard ? "discard" : "write-zeroes",
				seg[i].num_sectors, (unsigned long long)seg[i].sector);
			vblk_reply(b, x, VIRTIO_BLK_S_IOERR);
			return false;
		}
		nsub += seg[i].num_sectors != 0;
	}
	if (!nsub) {
		vblk_reply(b, x, VIRTIO_BLK_S_OK);
		return false;
	}
	struct vblk_req *r = vblk_req_new(x, nsub, 0);
	if (!r) {
		vblk_reply(b, x, VIRTIO_BLK_S_IOERR);
		return false;
	}
	unsigned k = 0;
	for (unsigned i = 0; i < nseg; i++) {
		if (!seg[i].num_sectors)
			continue;
		unsigned flags = 0;
		if (!discard && (seg[i].flags & VIRTIO_BLK_WZ_FLAG_UNMAP))
			flags |= BLK_REQ_UNMAP;
		if (!discard && !vblk_writeback(b))
			flags |= BLK_REQ_FUA;
		r->sub[k++] = (struct blk_req){
			.op = discard ? BLK_OP_DISCARD : BLK_OP_WRITE_ZEROES,
			.flags = flags,
			.offset = seg[i].sector * BLK_SECTOR_SIZE,
			.len = (uint64_t)seg[i].num_sectors * BLK_SECTOR_SIZE,
		};
		r->bytes += (uint64_t)seg[i].num_sectors * BLK_SECTOR_SIZE;
	}
	vblk_req_start(b, r, nsub);
	return true;
}

/* Device and queue locked. Handle one popped chain; true if backend requests were
 * submitted. */
static bool vblk_handle(struct virtio_blk *b, struct vblk_queue *vq, struct vq_chain *c)
{
	struct vblk_ctx x = {.vq = vq, .c = c};
	unsigned q = vq->index;

	if (c->num_in == 0) {
		vlog_rl("virtio-blk: queue %u: request without a writable status byte; device "
			"needs reset", q);
		if (virtio_dev_queue_push(&b->vdev, q, c->head, 0) == 0)
			vblk_mark_signal(b, q);
		vq->stats.errors++;
		__atomic_store_n(&b->stopped, true, __ATOMIC_RELAXED);
		virtio_dev_set_needs_reset(&b->vdev);
		return false;
	}
	const struct iovec *last = &c->iov[c->num_out + c->num_in - 1];
	x.status = (uint8_t *)last->iov_base + last->iov_len - 1;
	x.used_len = (uint32_t)MIN(c->in_bytes, (uint64_t)UINT32_MAX);
	if (c->out_bytes < HDR_SIZE) {
		vlog_rl("virtio-blk: queue %u: request header of %llu bytes", q,
			(unsigned long long)c->out_bytes);
		x.hdr.type = UINT32_MAX; /* counted as an error of no type */
		vblk_reply(b, &x, VIRTIO_BLK_S_IOERR);
		return false;
	}
	iov_gather(c->iov, c->num_out, 0, &x.hdr, HDR_SIZE);

	switch (x.hdr.type) {
	case VIRTIO_BLK_T_IN:
		return vblk_rw(b, &x, false);
	case VIRTIO_BLK_T_OUT:
		return vblk_rw(b, &x, true);
	case VIRTIO_BLK_T_FLUSH:
		return vblk_flush(b, &x);
	case VIRTIO_BLK_T_GET_ID:
		vblk_get_id(b, &x);
		return false;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return vblk_dwz(b, &x);
	default:
		vblk_reply(b, &x, VIRTIO_BLK_S_UNSUPP);
		return false;
	}
}

/* Device and queue locked. Take requests from the queue until it is empty, broken or
 * full; true if the caller must blk_kick() (after dropping the queue lock). */
static bool vblk_process(struct virtio_blk *b, struct vblk_queue *vq)
{
	struct virtq *v = virtio_dev_queue(&b->vdev, vq->index);
	bool submitted = false;

	while (!__atomic_load_n(&b->stopped, __ATOMIC_RELAXED)) {
		if (vq->inflight >= v->size) {
			__atomic_fetch_or(&b->throttled, 1ULL << vq->index, __ATOMIC_RELEASE);
			break;
		}
		int r = virtio_dev_queue_pop(&b->vdev, vq->index, &vq->chain);
		if (r <= 0)
			break;
		submitted |= vblk_handle(b, vq, &vq->chain);
	}
	return submitted;
}

static void vblk_queue_notify(struct virtio_dev *d, unsigned q)
{
	struct virtio_blk *b = d->opaque;
	struct vblk_queue *vq = &b->qs[q];
	bool kick = false;

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
