/* SPDX-License-Identifier: MIT */
/*
 * The io_uring engine for raw files and block devices. One ring per disk; the ring
 * signals be->efd (io_uring_register_eventfd) and the core's completion handler reaps it.
 * At most cq_entries requests are in the kernel at once (so the completion queue cannot
 * overflow); the rest wait in a backlog. Short reads/writes are continued, a read at the
 * end of the file is zero-filled, and WRITE_ZEROES falls back to writing zeroes when the
 * host cannot fallocate() the range. Every access to the ring happens under be->lock.
 */
#include "block/blk_backend.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/falloc.h>

#define URING_ENTRIES 256
#define URING_REAP_BATCH 64

/* blk_req.stage for WRITE_ZEROES. */
enum { WZ_FALLOCATE, WZ_WRITE, WZ_SYNC };

struct uring {
	struct io_uring ring;
	unsigned depth;	    /* max requests in the kernel */
	unsigned in_kernel; /* prepared SQEs whose CQE was not reaped */
	struct blk_req_list backlog;
};

static void uring_prep(struct blk_backend *be, struct io_uring_sqe *sqe, struct blk_req *r)
{
	uint64_t off = r->offset + r->progress;
	int rwf = blk_core_fua(be, r) ? RWF_DSYNC : 0;

	switch (r->op) {
	case BLK_OP_READ:
		io_uring_prep_readv(sqe, be->fd, r->iov, (unsigned)r->iovcnt, off);
		break;
	case BLK_OP_WRITE:
		io_uring_prep_writev2(sqe, be->fd, r->iov, (unsigned)r->iovcnt, off, rwf);
		break;
	case BLK_OP_FLUSH:
		if (be->info.cache == BLK_CACHE_UNSAFE)
			io_uring_prep_nop(sqe);
		else
			io_uring_prep_fsync(sqe, be->fd, IORING_FSYNC_DATASYNC);
		break;
	case BLK_OP_DISCARD:
		io_uring_prep_fallocate(sqe, be->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					(off_t)r->offset, (off_t)r->len);
		break;
	case BLK_OP_WRITE_ZEROES:
		if (r->stage == WZ_FALLOCATE) {
			int mode = (r->flags & BLK_REQ_UNMAP) ? FALLOC_FL_PUNCH_HOLE
							       : FALLOC_FL_ZERO_RANGE;
			io_uring_prep_fallocate(sqe, be->fd, mode | FALLOC_FL_KEEP_SIZE,
						(off_t)r->offset, (off_t)r->len);
		} else if (r->stage == WZ_WRITE) {
			uint64_t n = MIN(r->len - r->progress, (uint64_t)BLK_ZERO_BUF_SIZE);
			io_uring_prep_write(sqe, be->fd, be->zero_buf, (unsigned)n, off);
			sqe->rw_flags = rwf;
		} else {
			io_uring_prep_fsync(sqe, be->fd, IORING_FSYNC_DATASYNC);
		}
		break;
	}
	io_uring_sqe_set_data(sqe, r);
}

static void uring_submit(struct blk_backend *be, struct blk_req *r)
{
	struct uring *u = be->priv;
	blk_list_append(&u->backlog, r);
}

/* Hand prepared SQEs to the kernel; what it does not take stays in the SQ for next time. */
static void uring_flush_sq(struct blk_backend *be)
{
	struct uring *u = be->priv;
	for (unsigned tries = 0; io_uring_sq_ready(&u->ring) && tries < 100; tries++) {
		int n = io_uring_submit(&u->ring);
		if (n >= 0)
			continue;
		if (n != -EINTR && n != -EAGAIN && n != -EBUSY) {
			vlog_rl("disk '%s': io_uring_submit: %s", be->path, strerror(-n));
			return;
		}
		sched_yield();
	}
}

static void uring_kick(struct blk_backend *be)
{
	struct uring *u = be->priv;
	struct blk_req *r;

	if (be->draining) {
		while ((r = blk_list_pop(&u->backlog)))
			blk_core_finish(be, r, -ECANCELED);
		return;
	}
	while (u->backlog.head && u->in_kernel < u->depth) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
		if (!sqe) {
			uring_flush_sq(be);
			sqe = io_uring_get_sqe(&u->ring);
			if (!sqe)
				break;
		}
		r = blk_list_pop(&u->backlog);
		uring_prep(be, sqe, r);
		u->in_kernel++;
	}
	uring_flush_sq(be);
}

/* Continue r later (short transfer, next step), unless we are draining. */
static void uring_requeue(struct blk_backend *be, struct blk_req *r)
{
	struct uring *u = be->priv;
	if (be->draining)
		blk_core_finish(be, r, -ECANCELED);
	else
		blk_list_prepend(&u->backlog, r);
}

static void uring_rw_done(struct blk_backend *be, struct blk_req *r, int res)
{
	if (res < 0) {
		blk_core_finish(be, r, res);
		return;
	}
	r->progress += (uint64_t)res;
	if (r->progress >= r->len) {
		blk_core_finish(be, r, 0);
	} else if (res == 0) {
		/* End of file: a read sees zeroes (the file shrank under us); a write failed. */
		if (r->op == BLK_OP_READ) {
			blk_iov_advance(&r->iov, &r->iovcnt, 0);
			blk_iov_zero(r->iov, r->iovcnt);
			blk_core_finish(be, r, 0);
		} else {
			blk_core_finish(be, r, -EIO);
		}
	} else {
		blk_iov_advance(&r->iov, &r->iovcnt, (uint64_t)res);
		uring_requeue(be, r);
	}
}

static void uring_wz_done(struct blk_backend *be, struct blk_req *r, int res)
{
	switch (r->stage) {
	case WZ_FALLOCATE:
		if (res == -EOPNOTSUPP || res == -EINVAL) {
			/* No fallocate mode for this file: write the zeroes. */
			r->stage = WZ_WRITE;
			r->progress = 0;
			uring_requeue(be, r);
		} else if (res < 0) {
			blk_core_finish(be, r, res);
		} else if (blk_core_fua(be, r)) {
			r->stage = WZ_SYNC;
			uring_requeue(be, r);
		} else {
			blk_core_finish(be, r, 0);
		}
		break;
	case WZ_WRITE:
		if (res <= 0) {
			blk_core_finish(be, r, res < 0 ? res : -EIO);
			break;
		}
		r->progress += (uint64_t)res;
		if (r->progress < r->len)
			uring_requeue(be, r);
		else
			blk_core_finish(be, r, 0);
		break;
	default:
		blk_core_finish(be, r, res);
		break;
	}
}

static void uring_complete(struct blk_backend *be, struct blk_req *r, int res)
{
	if (res == -EINTR || res == -EAGAIN) {
		uring_requeue(be, r);
		return;
	}
	switch (r->op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		uring_rw_done(be, r, res);
		break;
	case BLK_OP_DISCARD:
		/* Discarding is a hint: a host that cannot do it has done nothing wrong. */
		blk_core_finish(be, r, res == -EOPNOTSUPP ? 0 : res);
		break;
	case BLK_OP_WRITE_ZEROES:
		uring_wz_done(be, r, res);
		break;
	default:
		blk_core_finish(be, r, res);
		break;
	}
}

static void uring_reap(struct blk_backend *be)
{
	struct uring *u = be->priv;
	struct io_uring_cqe *cqes[URING_REAP_BATCH];
	struct blk_req *reqs[URING_REAP_BATCH];
	int res[URING_REAP_BATCH];
	unsigned n;

	while ((n = io_uring_peek_batch_cqe(&u->ring, cqes, URING_REAP_BATCH)) > 0) {
		/* Copy out and release the CQEs before acting: completing may submit. */
		for (unsigned i = 0; i < n; i++) {
			reqs[i] = io_uring_cqe_get_data(cqes[i]);
			res[i] = cqes[i]->res;
		}
		io_uring_cq_advance(&u->ring, n);
		u->in_kernel -= n;
		for (unsigned i = 0; i < n; i++)
			uring_complete(be, reqs[i], res[i]);
	}
	uring_kick(be);
}

static void uring_drain(struct blk_backend *be)
{
	struct uring *u = be->priv;
	struct blk_req *r;

	while ((r = blk_list_pop(&u->backlog)))
		blk_core_finish(be, r, -ECANCELED);
	uring_flush_sq(be);
	while (u->in_kernel) {
		struct io_uring_cqe *cqe;
		int e = io_uring_wait_cqe(&u->ring, &cqe);
		if (e < 0 && e != -EINTR && e != -EAGAIN) {
			/* The kernel still owns buffers: we cannot give up, only retry. */
			vlog_rl("disk '%s': io_uring_wait_cqe: %s", be->path, strerror(-e));
			usleep(1000);
			uring_flush_sq(be);
		}
		uring_reap(be);
	}
}

static void uring_close(struct blk_backend *be)
{
	struct uring *u = be->priv;
	io_uring_queue_exit(&u->ring);
	free(u);
	be->priv = NULL;
}

static const struct blk_backend_ops uring_ops = {
	.name = "io_uring",
	.submit = uring_submit,
	.kick = uring_kick,
	.reap = uring_reap,
	.drain = uring_drain,
	.close = uring_close,
};

int blk_uring_init(struct blk_backend *be)
{
	struct uring *u = calloc(1, sizeof(*u));
	int r;

	if (!u)
		return -ENOMEM;
	r = io_uring_queue_init(URING_ENTRIES, &u->ring, 0);
	if (r < 0) {
		free(u);
		return r;
	}
	r = io_uring_register_eventfd(&u->ring, be->efd);
	if (r < 0) {
		io_uring_queue_exit(&u->ring);
		free(u);
		return r;
	}
	u->depth = u->ring.cq.ring_entries;
	be->priv = u;
	be->ops = &uring_ops;
	return 0;
}
