/* SPDX-License-Identifier: MIT */
/*
 * Inside the block layer: the engine interface (struct blk_backend_ops) and the shared
 * request bookkeeping in blk_core.c. Not for devices; they use block.h.
 *
 * Division of work:
 * - blk_core.c owns struct blk_backend: request validation, the list of requests in
 *   flight (in submission order), FLUSH ordering (a FLUSH is held back until every
 *   non-FLUSH request submitted before it has finished), the done list, the completion
 *   eventfd and its evloop handler, drain and delivery.
 * - An engine only moves requests to the host and back: ops->submit hands it a request
 *   that may start now (the core keeps submitted requests until blk_kick(), and FLUSHes
 *   until they may go), ops->kick tells it to start what it was handed, and when the host
 *   finished a request the engine calls blk_core_finish().
 *
 * Locking: be->lock protects everything below and is held around every ops call (an
 * engine's drain may drop it while waiting, e.g. pthread_cond_wait). Engines call
 * blk_core_finish() with it held. Nothing calls req->done() with it held.
 *
 * Wake-ups: finished requests reach the done list either from the engine's own pollable
 * fd (engine_fd, reaped by ops->reap on the completion thread: no extra eventfd round
 * trip) or through efd (thread-pool engines, and requests the core finishes itself). An
 * engine with ops->wait lets blk_poll() submit and wait in one step, as fio does.
 */
#ifndef VIREO_BLOCK_BLK_BACKEND_H
#define VIREO_BLOCK_BLK_BACKEND_H

#include "block/block.h"
#include <pthread.h>

struct img;

struct blk_backend_ops {
	const char *name;
	/* req may start; the engine may hold it until the kick that follows. */
	void (*submit)(struct blk_backend *be, struct blk_req *req);
	/* Start everything submitted. */
	void (*kick)(struct blk_backend *be);
	/* Collect what the host finished (blk_core_finish each). Optional. */
	void (*reap)(struct blk_backend *be);
	/* No I/O loop (blk_poll): hand what was kicked to the host and wait up to timeout_ms
	 * (-1: forever) for at least one completion, then reap (blk_core_finish each). One
	 * system call where the engine can (submit and wait together). -EAGAIN: the engine
	 * has nothing in flight to wait for (the caller polls the fds instead). Optional. */
	int (*wait)(struct blk_backend *be, int timeout_ms);
	/* Cancel queued requests (blk_core_finish(-ECANCELED)) and wait until every started
	 * one finished. */
	void (*drain)(struct blk_backend *be);
	/* Release the engine (nothing in flight any more). Called without be->lock. */
	void (*close)(struct blk_backend *be);
};

struct blk_req_list {
	struct blk_req *head, *tail;
};

struct blk_backend {
	const struct blk_backend_ops *ops;
	void *priv; /* the engine's state */

	/* The disk. */
	char *path;
	int fd;		 /* raw engines: the open file or block device; -1 otherwise */
	struct img *img; /* image engine */
	struct blk_info info;
	bool is_blkdev;
	void *zero_buf;

	/* Completion delivery. */
	struct evloop *loop;
	int efd;	/* eventfd: "the done list is not empty" */
	int engine_fd;	/* readable when the engine has completions to reap (the io_uring
			 * ring itself); -1: the engine signals through efd */
	bool efd_signalled; /* efd was written and not read yet (saves a read per batch) */
	pthread_mutex_t lock;
	pthread_cond_t delivered; /* broadcast after each batch of done() calls */
	struct blk_req_list pending; /* submitted, waiting for blk_kick() */
	struct blk_req_list ios;     /* non-FLUSH requests not finished, submission order
				      * (linked through io_next/io_prev) */
	struct blk_req_list parked;  /* FLUSHes waiting for older requests */
	struct blk_req_list done;   /* finished, done() not called yet */
	uint64_t seq;
	uint64_t kicked_seq; /* requests with seq <= this were covered by a blk_kick() */
	unsigned outstanding; /* submitted, done() not returned */
	bool draining;
	bool reaping; /* in the completion handler: no need to signal efd */
	void (*batch_fn)(void *opaque);
	void *batch_opaque;

	/* Error injection (tests). */
	enum blk_op inject_op;
	int inject_err;
	unsigned inject_count;
};

/*
 * A backend around a custom engine (tests, future engines): info describes the disk, ops
 * and priv the engine (ops->close releases priv). No file is opened or locked.
 */
int blk_backend_new(struct blk_backend **out, const struct blk_backend_ops *ops, void *priv,
		    const struct blk_info *info, struct evloop *loop) WUR;

/* Called by engines (be->lock held) when the host finished req with res (0 or -errno). */
void blk_core_finish(struct blk_backend *be, struct blk_req *req, int res);

/* Must this write be durable before it completes? (FUA, or cache=writethrough; never
 * with cache=unsafe.) */
static inline bool blk_core_fua(const struct blk_backend *be, const struct blk_req *r)
{
	if (be->info.cache == BLK_CACHE_UNSAFE)
		return false;
	return (r->flags & BLK_REQ_FUA) || be->info.cache == BLK_CACHE_WRITETHROUGH;
}

/* List helpers (be->lock held). */
void blk_list_append(struct blk_req_list *l, struct blk_req *r);
void blk_list_prepend(struct blk_req_list *l, struct blk_req *r);
void blk_list_remove(struct blk_req_list *l, struct blk_req *r);
struct blk_req *blk_list_pop(struct blk_req_list *l);

/* Skip n bytes of an iovec array in place (advances *iov, shortens its first entry). */
void blk_iov_advance(struct iovec **iov, int *cnt, uint64_t n);
/* Zero what the iovecs describe. */
void blk_iov_zero(const struct iovec *iov, int cnt);

/* Engines. Each fills be->ops/be->priv; be->fd/img/info are set before. */
int blk_uring_init(struct blk_backend *be) WUR;
int blk_pool_init_raw(struct blk_backend *be) WUR;
int blk_pool_init_image(struct blk_backend *be) WUR;

/* be->zero_buf: BLK_ZERO_BUF_SIZE bytes of read-only zeroes (an anonymous PROT_READ
 * mapping: costs no memory), the source when writing zeroes without fallocate. */
#define BLK_ZERO_BUF_SIZE (1u << 20)

#endif
