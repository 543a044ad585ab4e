/* SPDX-License-Identifier: MIT */
/*
 * The io_uring engine for raw files and block devices. One ring per disk. The ring's own
 * fd is the completion wake-up (be->engine_fd: the I/O loop polls it, the core reaps the
 * CQEs directly; no eventfd write and read per batch). Without a loop, blk_poll() calls
 * uring_wait(): what blk_kick() prepared is submitted and the first completion awaited
 * in one io_uring_enter, the way fio drives a ring.
 *
 * At most cq_entries requests are in the kernel at once (so the completion queue cannot
 * overflow); the rest wait in a backlog. Short reads/writes are continued, a read at the
 * end of the file is zero-filled, and WRITE_ZEROES falls back to writing zeroes when the
 * host cannot fallocate() the range. Every access to the ring happens under be->lock.
 *
 * The disk is registered as fixed file 0 when the kernel allows it (no file lookup per
 * request). Not used: COOP_TASKRUN (a submitting vCPU thread running guest code would
 * see its completions only at its next exit: requests may be submitted from a vCPU when
 * a doorbell has no ioeventfd), SINGLE_ISSUER/DEFER_TASKRUN (reset drains the ring from
 * a vCPU thread, not the I/O thread that submits).
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
	int fd;		    /* what SQEs name: 0 (fixed file) or be->fd */
	unsigned sqe_flags; /* IOSQE_FIXED_FILE or 0 */
	bool ext_arg;	    /* the kernel takes a timeout with io_uring_enter (5.11+) */
};

static void uring_prep(struct blk_backend *be, struct io_uring_sqe *sqe, struct blk_req *r)
{
	struct uring *u = be->priv;
	uint64_t off = r->offset + r->progress;
	int rwf = blk_core_fua(be, r) ? RWF_DSYNC : 0;
	int fd = u->fd;

	switch (r->op) {
	case BLK_OP_READ:
		/* One buffer (the common case): no iovec array for the kernel to copy in. */
		if (r->iovcnt == 1)
			io_uring_prep_read(sqe, fd, r->iov[0].iov_base, (unsigned)r->iov[0].iov_len,
					   off);
		else
			io_uring_prep_readv(sqe, fd, r->iov, (unsigned)r->iovcnt, off);
		break;
	case BLK_OP_WRITE:
		if (r->iovcnt == 1) {
			io_uring_prep_write(sqe, fd, r->iov[0].iov_base,
					    (unsigned)r->iov[0].iov_len, off);
			sqe->rw_flags = rwf;
		} else {
			io_uring_prep_writev2(sqe, fd, r->iov, (unsigned)r->iovcnt, off, rwf);
		}
		break;
	case BLK_OP_FLUSH:
		if (be->info.cache == BLK_CACHE_UNSAFE)
			io_uring_prep_nop(sqe);
		else
			io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		break;
	case BLK_OP_DISCARD:
		io_uring_prep_fallocate(sqe, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					(off_t)r->offset, (off_t)r->len);
		break;
	case BLK_OP_WRITE_ZEROES:
		if (r->stage == WZ_FALLOCATE) {
			int mode = (r->flags & BLK_REQ_UNMAP) ? FALLOC_FL_PUNCH_HOLE
							       : FALLOC_FL_ZERO_RANGE;
			io_uring_prep_fallocate(sqe, fd, mode | FALLOC_FL_KEEP_SIZE,
						(off_t)r->offset, (off_t)r->len);
		} else if (r->stage == WZ_WRITE) {
			uint64_t n = MIN(r->len - r->progress, (uint64_t)BLK_ZERO_BUF_SIZE);
			io_uring_prep_write(sqe, fd, be->zero_buf, (unsigned)n, off);
			sqe->rw_flags = rwf;
		} else {
			io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		}
		break;
	}
	if (r->op != BLK_OP_FLUSH || be->info.cache != BLK_CACHE_UNSAFE)
		sqe->flags |= (uint8_t)u->sqe_flags;
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
	/* Without a loop the next blk_poll() submits and waits in one go (uring_wait). */
	if (be->loop || !u->ext_arg)
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

static int uring_wait(struct blk_backend *be, int timeout_ms)
{
	struct uring *u = be->priv;
	struct io_uring_cqe *cqe;
	int r = 0;

	if (!u->in_kernel)
		return -EAGAIN;
	if (!u->ext_arg) {
		uring_flush_sq(be);
		return -EAGAIN; /* the caller polls the ring fd */
	}
	if (io_uring_cq_ready(&u->ring)) {
		uring_flush_sq(be);
	} else if (timeout_ms < 0) {
		r = io_uring_submit_and_wait(&u->ring, 1);
	} else {
		struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000,
					       .tv_nsec = (timeout_ms % 1000) * 1000000LL};
		r = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
	}
	if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY)
		vlog_rl("disk '%s': io_uring_enter: %s", be->path, strerror(-r));
	uring_flush_sq(be); /* what the kernel did not take (it normally takes all) */
	uring_reap(be);
	return 0;
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
	/* The ring is torn down asynchronously: release the file first, or its OFD lock
	 * would outlive blk_close(). */
	if (u->sqe_flags & IOSQE_FIXED_FILE)
		(void)io_uring_unregister_files(&u->ring);
	io_uring_queue_exit(&u->ring);
	free(u);
	be->priv = NULL;
}

static const struct blk_backend_ops uring_ops = {
	.name = "io_uring",
	.submit = uring_submit,
	.kick = uring_kick,
	.reap = uring_reap,
	.wait = uring_wait,
	.drain = uring_drain,
	.close = uring_close,
};

int blk_uring_init(struct blk_backend *be)
{
	struct uring *u = calloc(1, sizeof(*u));
	int r;

	if (!u)
		return -ENOMEM;
	struct io_uring_params p = {0};
	r = io_uring_queue_init_params(URING_ENTRIES, &u->ring, &p);
	if (r < 0) {
		free(u);
		return r;
	}
	u->ext_arg = p.features & IORING_FEAT_EXT_ARG;
	u->fd = be->fd;
	if (io_uring_register_files(&u->ring, &be->fd, 1) == 0) {
		u->fd = 0;
		u->sqe_flags = IOSQE_FIXED_FILE;
	}
	u->depth = u->ring.cq.ring_entries;
	be->priv = u;
	be->ops = &uring_ops;
	be->engine_fd = u->ring.ring_fd;
	return 0;
}
