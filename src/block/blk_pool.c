/* SPDX-License-Identifier: MIT */
/*
 * The thread-pool engines: a few worker threads run blocking calls. "threads" does raw
 * preadv/pwritev2/fdatasync/fallocate on the disk's fd (used when io_uring is
 * unavailable or not wanted); "image" runs the struct img calls of src/block/image.h
 * (qcow2, ...), which are thread-safe. The work queue and counters are protected by
 * be->lock (the condition variables wait on it).
 */
#include "block/blk_backend.h"
#include "block/image.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/falloc.h>

#define POOL_THREADS 4

struct pool {
	struct blk_backend *be;
	pthread_t threads[POOL_THREADS];
	unsigned nthreads;
	pthread_cond_t work_cv; /* work queued or stop */
	pthread_cond_t idle_cv; /* running dropped to 0 */
	struct blk_req_list queue; /* handed over, not started */
	unsigned running;
	bool stop;
	int (*exec)(struct blk_backend *be, struct blk_req *r); /* without be->lock */
};

/* --- raw fd --- */

static int raw_rw(struct blk_backend *be, struct blk_req *r)
{
	int rwf = blk_core_fua(be, r) ? RWF_DSYNC : 0;
	while (r->progress < r->len) {
		uint64_t off = r->offset + r->progress;
		ssize_t n;
		if (r->op == BLK_OP_READ)
			n = preadv(be->fd, r->iov, r->iovcnt, (off_t)off);
		else
			n = pwritev2(be->fd, r->iov, r->iovcnt, (off_t)off, rwf);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (n == 0) {
			if (r->op != BLK_OP_READ)
				return -EIO;
			/* The file shrank under us: the rest reads as zeroes. */
			blk_iov_zero(r->iov, r->iovcnt);
			return 0;
		}
		r->progress += (uint64_t)n;
		blk_iov_advance(&r->iov, &r->iovcnt, (uint64_t)n);
	}
	return 0;
}

static int raw_sync(struct blk_backend *be)
{
	if (be->info.cache == BLK_CACHE_UNSAFE)
		return 0;
	while (fdatasync(be->fd) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

static int raw_write_zeroes(struct blk_backend *be, struct blk_req *r)
{
	int mode = (r->flags & BLK_REQ_UNMAP) ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE;
	if (fallocate(be->fd, mode | FALLOC_FL_KEEP_SIZE, (off_t)r->offset, (off_t)r->len) == 0)
		return blk_core_fua(be, r) ? raw_sync(be) : 0;
	if (errno != EOPNOTSUPP && errno != EINVAL)
		return -errno;
	while (r->progress < r->len) {
		size_t n = (size_t)MIN(r->len - r->progress, (uint64_t)BLK_ZERO_BUF_SIZE);
		ssize_t w = pwrite(be->fd, be->zero_buf, n, (off_t)(r->offset + r->progress));
		if (w < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		r->progress += (uint64_t)w;
	}
	return blk_core_fua(be, r) ? raw_sync(be) : 0;
}

static int raw_exec(struct blk_backend *be, struct blk_req *r)
{
	switch (r->op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		return raw_rw(be, r);
	case BLK_OP_FLUSH:
		return raw_sync(be);
	case BLK_OP_DISCARD:
		if (fallocate(be->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)r->offset,
			      (off_t)r->len) < 0 && errno != EOPNOTSUPP)
			return -errno;
		return 0;
	case BLK_OP_WRITE_ZEROES:
		return raw_write_zeroes(be, r);
	}
	return -EOPNOTSUPP;
}

/* --- struct img --- */

static int image_exec(struct blk_backend *be, struct blk_req *r)
{
	struct img *im = be->img;
	bool fua = (r->flags & BLK_REQ_FUA) && be->info.cache != BLK_CACHE_UNSAFE;
	int e;

	switch (r->op) {
	case BLK_OP_READ:
		return img_preadv(im, r->iov, r->iovcnt, r->offset);
	case BLK_OP_WRITE:
		/* cache=writethrough is the image's own IMG_O_WRITETHROUGH; FUA is ours. */
		e = img_pwritev(im, r->iov, r->iovcnt, r->offset);
		return e < 0 || !fua ? e : img_flush(im);
	case BLK_OP_FLUSH:
		return img_flush(im);
	case BLK_OP_DISCARD:
		e = img_discard(im, r->offset, r->len);
		return e == -EOPNOTSUPP ? 0 : e;
	case BLK_OP_WRITE_ZEROES:
		e = img_write_zeroes(im, r->offset, r->len, r->flags & BLK_REQ_UNMAP);
		return e < 0 || !fua ? e : img_flush(im);
	}
	return -EOPNOTSUPP;
}

/* --- the pool --- */

static void *pool_worker(void *arg)
{
	struct pool *p = arg;
	struct blk_backend *be = p->be;

	pthread_mutex_lock(&be->lock);
	for (;;) {
		while (!p->queue.head && !p->stop)
			pthread_cond_wait(&p->work_cv, &be->lock);
		if (p->stop)
			break;
		struct blk_req *r = blk_list_pop(&p->queue);
		p->running++;
		pthread_mutex_unlock(&be->lock);
		int res = p->exec(be, r);
		pthread_mutex_lock(&be->lock);
		p->running--;
		blk_core_finish(be, r, res);
		if (!p->running)
			pthread_cond_broadcast(&p->idle_cv);
	}
	pthread_mutex_unlock(&be->lock);
	return NULL;
}

static void pool_submit(struct blk_backend *be, struct blk_req *r)
{
	struct pool *p = be->priv;
	blk_list_append(&p->queue, r);
}

static void pool_kick(struct blk_backend *be)
{
	struct pool *p = be->priv;
	if (p->queue.head)
		pthread_cond_broadcast(&p->work_cv);
}

static void pool_drain(struct blk_backend *be)
{
	struct pool *p = be->priv;
	struct blk_req *r;

	while ((r = blk_list_pop(&p->queue)))
		blk_core_finish(be, r, -ECANCELED);
	while (p->running)
		pthread_cond_wait(&p->idle_cv, &be->lock);
}

static void pool_stop(struct blk_backend *be, struct pool *p)
{
	pthread_mutex_lock(&be->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->work_cv);
	pthread_mutex_unlock(&be->lock);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->work_cv);
	pthread_cond_destroy(&p->idle_cv);
	free(p);
}

static void pool_close(struct blk_backend *be)
{
	pool_stop(be, be->priv);
	be->priv = NULL;
}

static const struct blk_backend_ops pool_raw_ops = {
	.name = "threads",
	.submit = pool_submit,
	.kick = pool_kick,
	.drain = pool_drain,
	.close = pool_close,
};

static const struct blk_backend_ops pool_image_ops = {
	.name = "image",
	.submit = pool_submit,
	.kick = pool_kick,
	.drain = pool_drain,
	.close = pool_close,
};

static int pool_init(struct blk_backend *be, const struct blk_backend_ops *ops,
		     int (*exec)(struct blk_backend *, struct blk_req *))
{
	struct pool *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->be = be;
	p->exec = exec;
	pthread_cond_init(&p->work_cv, NULL);
	pthread_cond_init(&p->idle_cv, NULL);
	be->priv = p;
	for (unsigned i = 0; i < POOL_THREADS; i++) {
		int r = pthread_create(&p->threads[i], NULL, pool_worker, p);
		if (r) {
			be->priv = NULL;
			pool_stop(be, p);
			return -r;
		}
		p->nthreads++;
	}
	be->ops = ops;
	return 0;
}

int blk_pool_init_raw(struct blk_backend *be)
{
	return pool_init(be, &pool_raw_ops, raw_exec);
}

int blk_pool_init_image(struct blk_backend *be)
{
	return pool_init(be, &pool_image_ops, image_exec);
}
