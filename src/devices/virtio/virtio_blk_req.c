/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk request side: a popped descriptor chain becomes a validated request and its
 * backend request(s); adjacent reads or writes of one batch are merged into one host I/O.
 * The rules are in virtio_blk.h (validation) and virtio_blk_priv.h (merging).
 */
#include "devices/virtio/virtio_blk_priv.h"
#include "common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define HDR_SIZE VBLK_HDR_SIZE
#define SEG_SIZE VBLK_SEG_SIZE

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

/* --- request parsing --- */

/* Everything about the chain being handled. */
struct vblk_ctx {
	struct vblk_queue *vq;
	struct vq_chain *c;
	struct vblk_run *run; /* reads/writes collected so far, not yet submitted */
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

/* Queue locked. r is in flight from now on (a reset cancels it). */
static void vblk_req_track(struct vblk_req *r)
{
	struct vblk_queue *vq = r->vq;
	r->prev = NULL;
	r->next = vq->inflight_list;
	if (vq->inflight_list)
		vq->inflight_list->prev = r;
	vq->inflight_list = r;
	vq->stats.inflight++;
	vq->inflight++;
}

/* Queue locked. Hand r's nsub prepared backend requests over (started by the caller's
 * blk_kick). */
static void vblk_req_submit(struct virtio_blk *b, struct vblk_req *r, unsigned nsub)
{
	for (unsigned i = 0; i < nsub; i++) {
		r->sub[i].done = vblk_sub_done;
		r->sub[i].opaque = r;
		blk_submit(b->be, &r->sub[i]);
	}
}

static void vblk_req_start(struct virtio_blk *b, struct vblk_req *r, unsigned nsub)
{
	vblk_req_track(r);
	vblk_req_submit(b, r, nsub);
}

/* --- merging adjacent reads/writes --- */

/* Queue locked. A merge object from the queue's pool (NULL: out of memory). */
static struct vblk_merge *vblk_merge_get(struct vblk_queue *vq)
{
	struct vblk_merge *m = vq->merge_free;
	if (m) {
		vq->merge_free = m->next;
		vq->merge_free_n--;
	} else {
		m = malloc(sizeof(*m));
	}
	if (m) {
		m->next = NULL;
		m->vq = vq;
	}
	return m;
}

/* Queue locked. Submit the collected run: one backend request for all its members. */
static void vblk_run_flush(struct virtio_blk *b, struct vblk_run *run)
{
	struct vblk_req *first = run->first;
	struct vblk_merge *m;

	if (!run->n)
		return;
	*run = (struct vblk_run){0};
	if (!first->mnext) {
		vblk_req_submit(b, first, 1);
		return;
	}
	m = vblk_merge_get(first->vq);
	if (!m) {
		/* Not worth failing anything for: send them one by one. */
		for (struct vblk_req *r = first, *n; r; r = n) {
			n = r->mnext;
			r->mnext = NULL;
			vblk_req_submit(b, r, 1);
		}
		return;
	}
	unsigned k = 0, members = 0;
	for (const struct vblk_req *r = first; r; r = r->mnext, members++)
		for (int i = 0; i < r->sub[0].iovcnt; i++)
			m->iov[k++] = r->iov[i];
	m->members = first;
	m->io = (struct blk_req){
		.op = first->sub[0].op,
		.flags = first->sub[0].flags,
		.offset = first->sub[0].offset,
		.iov = m->iov,
		.iovcnt = (int)k,
		.done = vblk_merge_done,
		.opaque = m,
	};
	first->vq->stats.merges++;
	first->vq->stats.merged_reqs += members;
	blk_submit(b->be, &m->io);
}

/* r's buffers are whole logical blocks: a merged O_DIRECT I/O cannot fail for one member's
 * misaligned buffer (such a request goes alone and fails alone, as before). */
static bool vblk_req_aligned(const struct virtio_blk *b, const struct vblk_req *r)
{
	for (int i = 0; i < r->sub[0].iovcnt; i++)
		if ((uintptr_t)r->iov[i].iov_base % b->lbs || r->iov[i].iov_len % b->lbs)
			return false;
	return true;
}

/* r (a prepared READ/WRITE) directly continues the run. */
static bool vblk_run_fits(const struct vblk_run *run, const struct vblk_req *r)
{
	const struct blk_req *last = &run->last->sub[0], *s = &r->sub[0];
	return s->op == last->op && s->flags == last->flags &&
	       s->offset == last->offset + run->last->bytes &&
	       run->iovcnt + (unsigned)s->iovcnt <= VBLK_MERGE_MAX_IOV &&
	       run->bytes + r->bytes <= VBLK_MERGE_MAX_BYTES;
}

/* Queue locked. Start r (a prepared READ/WRITE): join the run, or begin a new one. */
static void vblk_run_add(struct virtio_blk *b, struct vblk_run *run, struct vblk_req *r)
{
	vblk_req_track(r);
	r->mnext = NULL;
	if (!vblk_req_aligned(b, r)) {
		vblk_run_flush(b, run);
		vblk_req_submit(b, r, 1);
		return;
	}
	if (run->n && vblk_run_fits(run, r)) {
		run->last->mnext = r;
	} else {
		vblk_run_flush(b, run);
		run->first = r;
	}
	run->last = r;
	run->n++;
	run->iovcnt += (unsigned)r->sub[0].iovcnt;
	run->bytes += r->bytes;
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
	vblk_run_add(b, x->run, r);
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

/* Queue locked and running. Handle one popped chain; true if backend requests were
 * submitted. */
static bool vblk_handle(struct virtio_blk *b, struct vblk_queue *vq, struct vq_chain *c,
			struct vblk_run *run)
{
	struct vblk_ctx x = {.vq = vq, .c = c, .run = run};
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
	/* Only reads and writes join a run; anything else is started after it (a FLUSH
	 * then covers every write before it). */
	if (x.hdr.type != VIRTIO_BLK_T_IN && x.hdr.type != VIRTIO_BLK_T_OUT)
		vblk_run_flush(b, run);

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

bool vblk_process(struct virtio_blk *b, struct vblk_queue *vq)
{
	struct virtq *v = virtio_dev_queue(&b->vdev, vq->index);
	struct vblk_run run = {0};
	bool submitted = false;

	while (!__atomic_load_n(&b->stopped, __ATOMIC_RELAXED)) {
		if (vq->inflight >= v->size) {
			__atomic_fetch_or(&b->throttled, 1ULL << vq->index, __ATOMIC_RELEASE);
			break;
		}
		int r = virtio_dev_queue_pop(&b->vdev, vq->index, &vq->chain);
		if (r <= 0)
			break;
		submitted |= vblk_handle(b, vq, &vq->chain, &run);
	}
	vblk_run_flush(b, &run);
	return submitted;
}
