/* SPDX-License-Identifier: MIT */
/* Request bookkeeping shared by every engine: see blk_backend.h. */
#include "block/blk_backend.h"
#include "common/evloop.h"
#include "common/log.h"

#include <errno.h>
#include <poll.h>
#include <sys/epoll.h>
#include <string.h>
#include <unistd.h>

/* --- lists --- */

void blk_list_append(struct blk_req_list *l, struct blk_req *r)
{
	r->next = NULL;
	r->prev = l->tail;
	if (l->tail)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
}

void blk_list_prepend(struct blk_req_list *l, struct blk_req *r)
{
	r->prev = NULL;
	r->next = l->head;
	if (l->head)
		l->head->prev = r;
	else
		l->tail = r;
	l->head = r;
}

void blk_list_remove(struct blk_req_list *l, struct blk_req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		l->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		l->tail = r->prev;
	r->next = r->prev = NULL;
}

struct blk_req *blk_list_pop(struct blk_req_list *l)
{
	struct blk_req *r = l->head;
	if (r)
		blk_list_remove(l, r);
	return r;
}

/* The in-flight order list has its own links: a request sits in it and in a queue. */
static void blk_ios_append(struct blk_req_list *l, struct blk_req *r)
{
	r->io_next = NULL;
	r->io_prev = l->tail;
	if (l->tail)
		l->tail->io_next = r;
	else
		l->head = r;
	l->tail = r;
}

static void blk_ios_remove(struct blk_req_list *l, struct blk_req *r)
{
	if (r->io_prev)
		r->io_prev->io_next = r->io_next;
	else
		l->head = r->io_next;
	if (r->io_next)
		r->io_next->io_prev = r->io_prev;
	else
		l->tail = r->io_prev;
	r->io_next = r->io_prev = NULL;
}

/* --- iovecs --- */

void blk_iov_advance(struct iovec **iov, int *cnt, uint64_t n)
{
	while (n && *cnt > 0) {
		struct iovec *v = *iov;
		if (n < v->iov_len) {
			v->iov_base = (uint8_t *)v->iov_base + n;
			v->iov_len -= n;
			return;
		}
		n -= v->iov_len;
		(*iov)++;
		(*cnt)--;
	}
	/* Drop empty leading entries so the next transfer starts on data. */
	while (*cnt > 0 && (*iov)->iov_len == 0) {
		(*iov)++;
		(*cnt)--;
	}
}

void blk_iov_zero(const struct iovec *iov, int cnt)
{
	for (int i = 0; i < cnt; i++)
		memset(iov[i].iov_base, 0, iov[i].iov_len);
}

/* --- completion --- */

static void blk_signal(struct blk_backend *be)
{
	uint64_t one = 1;
	be->efd_signalled = true;
	if (write(be->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		vlog_rl("block '%s': completion eventfd: %s", be->path, strerror(errno));
}

/* be->lock held: a request enters the done list. */
static void blk_core_done(struct blk_backend *be, struct blk_req *req, int res)
{
	req->result = res;
	blk_list_append(&be->done, req);
	/* The completion handler collects the whole list: one wake-up is enough. */
	if (!be->efd_signalled && !be->reaping)
		blk_signal(be);
}

/* Start the FLUSHes that no longer have an older request in flight. */
static void blk_core_release_flushes(struct blk_backend *be)
{
	bool started = false;
	while (be->parked.head && (!be->ios.head || be->ios.head->seq > be->parked.head->seq)) {
		struct blk_req *f = blk_list_pop(&be->parked);
		if (be->draining) {
			blk_core_done(be, f, -ECANCELED);
		} else if (f->seq > be->kicked_seq) {
			blk_list_append(&be->pending, f); /* starts with the caller's next kick */
		} else {
			be->ops->submit(be, f);
			started = true;
		}
	}
	if (started)
		be->ops->kick(be);
}

void blk_core_finish(struct blk_backend *be, struct blk_req *req, int res)
{
	if (res > 0)
		res = 0;
	if (req->op != BLK_OP_FLUSH) {
		blk_ios_remove(&be->ios, req);
		blk_core_done(be, req, res);
		blk_core_release_flushes(be);
	} else {
		blk_core_done(be, req, res);
	}
}

/* be->lock held: collect what the engine finished into the done list. */
static void blk_core_reap(struct blk_backend *be)
{
	if (be->efd_signalled) {
		/* Read under the lock: a signal after this is for a later request. */
		uint64_t v;
		if (read(be->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			vlog_rl("block '%s': completion eventfd: %s", be->path, strerror(errno));
		be->efd_signalled = false;
	}
	if (be->ops->reap) {
		be->reaping = true;
		be->ops->reap(be);
		be->reaping = false;
	}
}

/* Deliver what is on the done list (and what the engine has finished meanwhile). */
static int blk_deliver(struct blk_backend *be)
{
	pthread_mutex_lock(&be->lock);
	blk_core_reap(be);
	struct blk_req *r = be->done.head;
	be->done.head = be->done.tail = NULL;
	void (*batch_fn)(void *) = be->batch_fn;
	void *batch_opaque = be->batch_opaque;
	pthread_mutex_unlock(&be->lock);

	if (!r)
		return 0;
	unsigned n = 0;
	while (r) {
		struct blk_req *next = r->next; /* done() may free r */
		r->next = r->prev = NULL;
		r->done(r, r->result);
		n++;
		r = next;
	}
	/* Before the count drops: blk_quiesce() must not return while the hook runs. */
	if (batch_fn)
		batch_fn(batch_opaque);
	pthread_mutex_lock(&be->lock);
	be->outstanding -= n;
	pthread_cond_broadcast(&be->delivered);
	pthread_mutex_unlock(&be->lock);
	return (int)n;
}

static void blk_efd_cb(void *opaque, uint32_t events)
{
	(void)events;
	(void)blk_deliver(opaque);
}

int blk_attach_loop(struct blk_backend *be, struct evloop *loop)
{
	if (be->loop) {
		if (evloop_del(be->loop, be->efd) < 0)
			vwarn("disk '%s': evloop_del failed", be->path);
		if (be->engine_fd >= 0 && evloop_del(be->loop, be->engine_fd) < 0)
			vwarn("disk '%s': evloop_del failed", be->path);
		be->loop = NULL;
	}
	if (!loop)
		return 0;
	/* Level-triggered: completions that arrived while detached are delivered at once. */
	int r = evloop_add(loop, be->efd, EPOLLIN, blk_efd_cb, be);
	if (r == 0 && be->engine_fd >= 0) {
		r = evloop_add(loop, be->engine_fd, EPOLLIN, blk_efd_cb, be);
		if (r < 0 && evloop_del(loop, be->efd) < 0)
			vwarn("disk '%s': evloop_del failed", be->path);
	}
	if (r == 0) {
		pthread_mutex_lock(&be->lock);
		be->loop = loop;
		/* Anything kicked while there was no loop goes to the host now. */
		be->ops->kick(be);
		pthread_mutex_unlock(&be->lock);
	}
	return r;
}

int blk_poll(struct blk_backend *be, int timeout_ms)
{
	if (be->ops->wait && !be->loop) {
		pthread_mutex_lock(&be->lock);
		int r = -EAGAIN;
		if (!be->done.head) {
			be->reaping = true;
			r = be->ops->wait(be, timeout_ms);
			be->reaping = false;
		}
		pthread_mutex_unlock(&be->lock);
		if (r != -EAGAIN)
			return blk_deliver(be);
	}
	struct pollfd p[2] = {{.fd = be->efd, .events = POLLIN},
			      {.fd = be->engine_fd, .events = POLLIN}};
	int r = poll(p, be->engine_fd >= 0 ? 2 : 1, timeout_ms);
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	/* Deliver even without a wake-up: a racing thread may have taken it. */
	return blk_deliver(be);
}

/* --- submission --- */

static int blk_validate(const struct blk_backend *be, struct blk_req *req)
{
	uint64_t end;

	switch (req->op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		if (req->iovcnt < 0 || req->iovcnt > IOV_MAX || (req->iovcnt && !req->iov))
			return -EINVAL;
		req->len = 0;
		for (int i = 0; i < req->iovcnt; i++)
			if (add_overflows(req->len, (uint64_t)req->iov[i].iov_len, &req->len))
				return -EINVAL;
		break;
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES:
		break;
	case BLK_OP_FLUSH:
		return 0;
	default:
		return -EOPNOTSUPP;
	}
	if (req->op != BLK_OP_READ && be->info.readonly)
		return -EROFS;
	if (add_overflows(req->offset, req->len, &end) || end > be->info.size)
		return -EINVAL;
	return 0;
}

void blk_submit(struct blk_backend *be, struct blk_req *req)
{
	req->next = req->prev = NULL;
	req->progress = 0;
	req->stage = 0;
	req->result = 0;
	int bad = blk_validate(be, req);

	pthread_mutex_lock(&be->lock);
	be->outstanding++;
	req->seq = ++be->seq;
	if (!bad && be->inject_count && be->inject_op == req->op) {
		be->inject_count--;
		bad = -be->inject_err;
	}
	if (bad) {
		blk_core_done(be, req, bad);
	} else if (req->op == BLK_OP_FLUSH && be->ios.head) {
		/* Everything in ios is older than this FLUSH: it waits for them. */
		blk_list_append(&be->parked, req);
	} else {
		if (req->op != BLK_OP_FLUSH)
			blk_ios_append(&be->ios, req);
		blk_list_append(&be->pending, req);
	}
	pthread_mutex_unlock(&be->lock);
}

void blk_kick(struct blk_backend *be)
{
	struct blk_req *r;
	pthread_mutex_lock(&be->lock);
	be->kicked_seq = be->seq; /* parked FLUSHes up to here may start when released */
	while ((r = blk_list_pop(&be->pending)))
		be->ops->submit(be, r);
	be->ops->kick(be);
	pthread_mutex_unlock(&be->lock);
}

void blk_drain(struct blk_backend *be)
{
	pthread_mutex_lock(&be->lock);
	be->draining = true;
	struct blk_req *f;
	while ((f = blk_list_pop(&be->parked)))
		blk_core_done(be, f, -ECANCELED);
	while ((f = blk_list_pop(&be->pending))) /* never started */
		blk_core_finish(be, f, -ECANCELED);
	be->ops->drain(be);
	be->draining = false;
	pthread_mutex_unlock(&be->lock);
}

void blk_quiesce(struct blk_backend *be)
{
	blk_drain(be);
	pthread_mutex_lock(&be->lock);
	while (be->outstanding) {
		if (be->done.head) {
			pthread_mutex_unlock(&be->lock);
			(void)blk_deliver(be);
			pthread_mutex_lock(&be->lock);
		} else {
			/* Another thread is delivering them right now. */
			pthread_cond_wait(&be->delivered, &be->lock);
		}
	}
	pthread_mutex_unlock(&be->lock);
}

unsigned blk_outstanding(struct blk_backend *be)
{
	pthread_mutex_lock(&be->lock);
	unsigned n = be->outstanding;
	pthread_mutex_unlock(&be->lock);
	return n;
}

void blk_get_info(const struct blk_backend *be, struct blk_info *info)
{
	*info = be->info;
}

void blk_set_batch_hook(struct blk_backend *be, void (*fn)(void *opaque), void *opaque)
{
	pthread_mutex_lock(&be->lock);
	be->batch_fn = fn;
	be->batch_opaque = opaque;
	pthread_mutex_unlock(&be->lock);
}

void blk_inject_error(struct blk_backend *be, enum blk_op op, int err, unsigned count)
{
	pthread_mutex_lock(&be->lock);
	be->inject_op = op;
	be->inject_err = err > 0 ? err : EIO;
	be->inject_count = count;
	pthread_mutex_unlock(&be->lock);
}
