/* SPDX-License-Identifier: MIT */
#include "common/evloop.h"
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

struct evloop_entry {
	struct evloop_entry *next;
	int fd;
	bool dead;
	evloop_cb cb;
	void *opaque;
};

int evloop_init(struct evloop *el)
{
	memset(el, 0, sizeof(*el));
	el->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (el->epfd < 0)
		return -errno;
	el->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (el->wakefd < 0) {
		int r = -errno;
		close(el->epfd);
		return r;
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	if (epoll_ctl(el->epfd, EPOLL_CTL_ADD, el->wakefd, &ev) < 0) {
		int r = -errno;
		close(el->wakefd);
		close(el->epfd);
		return r;
	}
	pthread_mutex_init(&el->lock, NULL);
	return 0;
}

void evloop_fini(struct evloop *el)
{
	evloop_stop(el);
	struct evloop_entry *e = el->entries;
	while (e) {
		struct evloop_entry *n = e->next;
		free(e);
		e = n;
	}
	el->entries = NULL;
	if (el->wakefd >= 0)
		close(el->wakefd);
	if (el->epfd >= 0)
		close(el->epfd);
	el->wakefd = el->epfd = -1;
	pthread_mutex_destroy(&el->lock);
}

int evloop_add(struct evloop *el, int fd, uint32_t events, evloop_cb cb, void *opaque)
{
	struct evloop_entry *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->fd = fd;
	e->cb = cb;
	e->opaque = opaque;
	struct epoll_event ev = {.events = events, .data.ptr = e};
	pthread_mutex_lock(&el->lock);
	if (epoll_ctl(el->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int r = -errno;
		pthread_mutex_unlock(&el->lock);
		free(e);
		return r;
	}
	e->next = el->entries;
	el->entries = e;
	pthread_mutex_unlock(&el->lock);
	return 0;
}

int evloop_del(struct evloop *el, int fd)
{
	int r = -ENOENT;
	pthread_mutex_lock(&el->lock);
	for (struct evloop_entry *e = el->entries; e; e = e->next) {
		if (e->fd == fd && !e->dead) {
			/* Freed by the loop thread after its current batch (evloop_sweep). */
			e->dead = true;
			__atomic_store_n(&el->sweep_pending, true, __ATOMIC_RELEASE);
			epoll_ctl(el->epfd, EPOLL_CTL_DEL, fd, NULL);
			r = 0;
			break;
		}
	}
	pthread_mutex_unlock(&el->lock);
	return r;
}

/*
 * Free deleted entries. Runs on the loop thread between batches: an entry deleted during
 * a batch may still be named by a later event of that batch (it is skipped as dead), but
 * no later epoll_wait can return it, since it left the epoll set when it was deleted.
 */
static void evloop_sweep(struct evloop *el)
{
	if (!__atomic_load_n(&el->sweep_pending, __ATOMIC_ACQUIRE))
		return; /* the common case, and every empty round of a polling loop */
	pthread_mutex_lock(&el->lock);
	el->sweep_pending = false;
	struct evloop_entry **pp = &el->entries;
	while (*pp) {
		struct evloop_entry *e = *pp;
		if (e->dead) {
			*pp = e->next;
			free(e);
		} else {
			pp = &e->next;
		}
	}
	pthread_mutex_unlock(&el->lock);
}

int evloop_run_once(struct evloop *el, int timeout_ms)
{
	struct epoll_event evs[32];
	int n = epoll_wait(el->epfd, evs, (int)ARRAY_SIZE(evs), timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	int done = 0;
	for (int i = 0; i < n; i++) {
		struct evloop_entry *e = evs[i].data.ptr;
		if (!e) {
			uint64_t v;
			if (read(el->wakefd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				vdebug("evloop: wakefd read: %s", strerror(errno));
			continue;
		}
		pthread_mutex_lock(&el->lock);
		bool dead = e->dead;
		pthread_mutex_unlock(&el->lock);
		if (dead)
			continue;
		e->cb(e->opaque, evs[i].events);
		done++;
		__atomic_add_fetch(&el->dispatched, 1, __ATOMIC_RELAXED);
	}
	evloop_sweep(el);
	return done;
}

void evloop_set_name(struct evloop *el, const char *name)
{
	snprintf(el->name, sizeof(el->name), "%s", name);
}

uint64_t evloop_dispatched(const struct evloop *el)
{
	return __atomic_load_n(&el->dispatched, __ATOMIC_RELAXED);
}

void evloop_set_poll_us(struct evloop *el, unsigned us)
{
	el->poll_ns = (uint64_t)us * 1000;
}

static uint64_t evloop_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Without a poll budget every round blocks. With one, a round that found work (or followed
 * a wake-up) opens a polling window: rounds with a zero timeout until poll_ns pass without
 * a callback, then one blocking round.
 */
static void *evloop_thread(void *arg)
{
	struct evloop *el = arg;
	uint64_t idle_since = evloop_now_ns();
	if (el->name[0])
		pthread_setname_np(pthread_self(), el->name);
	__atomic_store_n(&el->tid, (int)gettid(), __ATOMIC_RELEASE);
	while (!__atomic_load_n(&el->stop, __ATOMIC_ACQUIRE)) {
		bool poll = el->poll_ns && evloop_now_ns() - idle_since < el->poll_ns;
		int r = evloop_run_once(el, poll ? 0 : -1);
		if (r < 0) {
			verr("I/O loop: epoll_wait: %s", strerror(-r));
			break;
		}
		if (el->poll_ns && (r > 0 || !poll))
			idle_since = evloop_now_ns();
	}
	return NULL;
}

int evloop_start(struct evloop *el)
{
	el->stop = false;
	int r = pthread_create(&el->thread, NULL, evloop_thread, el);
	if (r)
		return -r;
	el->running = true;
	return 0;
}

void evloop_stop(struct evloop *el)
{
	if (!el->running)
		return;
	__atomic_store_n(&el->stop, true, __ATOMIC_RELEASE);
	uint64_t one = 1;
	if (write(el->wakefd, &one, sizeof(one)) < 0)
		vdebug("evloop: wake: %s", strerror(errno));
	pthread_join(el->thread, NULL);
	el->running = false;
	__atomic_store_n(&el->tid, 0, __ATOMIC_RELEASE);
}
