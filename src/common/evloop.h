/* SPDX-License-Identifier: MIT */
/*
 * The I/O event loop: one epoll set served by one thread. Devices register file
 * descriptors (ioeventfds, backend fds, timers) with a callback; callbacks run on the
 * loop thread only, so a device's queue processing never runs on a vCPU thread.
 *
 * evloop_add/evloop_del may be called from any thread. A callback may delete its own fd.
 * A machine may run several loops (--io-threads): each is independent (its own epoll set,
 * thread and lock); an fd belongs to exactly one loop.
 *
 * Polling (--io-poll-us): a loop thread with a poll budget does not go to sleep as soon as it
 * runs out of events; it keeps checking its fds (epoll_wait with a zero timeout) until the
 * budget has passed with nothing to do, then blocks. A guest's next doorbell or a backend's
 * next completion that arrives within the budget is then served without a thread wake-up
 * (fewer context switches, lower latency), at the price of the CPU time spent checking.
 */
#ifndef VIREO_COMMON_EVLOOP_H
#define VIREO_COMMON_EVLOOP_H

#include "common/compiler.h"
#include <pthread.h>

typedef void (*evloop_cb)(void *opaque, uint32_t events);

struct evloop_entry;

struct evloop {
	int epfd;
	int wakefd;		/* eventfd used to stop the loop */
	pthread_t thread;
	bool running;
	bool stop;
	pthread_mutex_t lock;
	struct evloop_entry *entries; /* singly linked, owned */
	char name[16];		      /* thread name, "" = keep the creator's */
	uint64_t dispatched;	      /* callbacks run (atomic; statistics and tests) */
	uint64_t poll_ns;	      /* polling budget, 0 = block at once (set before start) */
	bool sweep_pending;	      /* an entry was deleted: free it after the batch */
	int tid;		      /* the loop thread's id once it runs (atomic), else 0 */
};

int evloop_init(struct evloop *el) WUR;
void evloop_fini(struct evloop *el);
/* events: EPOLLIN etc. */
int evloop_add(struct evloop *el, int fd, uint32_t events, evloop_cb cb, void *opaque) WUR;
int evloop_del(struct evloop *el, int fd) WUR;
/* Run one round: wait at most timeout_ms, dispatch ready callbacks. Returns #dispatched or -errno. */
int evloop_run_once(struct evloop *el, int timeout_ms) WUR;
/* Name the loop's thread (at most 15 characters, e.g. "io0"); call before evloop_start. */
void evloop_set_name(struct evloop *el, const char *name);
/* Poll for up to us microseconds before blocking (0: never poll); call before evloop_start. */
void evloop_set_poll_us(struct evloop *el, unsigned us);
/* Callbacks dispatched so far (any thread). */
uint64_t evloop_dispatched(const struct evloop *el);
/* Start/stop the dedicated I/O thread. */
int evloop_start(struct evloop *el) WUR;
void evloop_stop(struct evloop *el);

#endif
