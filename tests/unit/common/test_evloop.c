/* SPDX-License-Identifier: MIT */
/*
 * The I/O event loop on its own thread: callbacks run for ready fds, a callback may delete
 * its own fd, evloop_stop returns promptly, and the polling budget (--io-poll-us) really
 * keeps the thread from sleeping between events that arrive within it. "Sleeping" is
 * measured by the loop thread's voluntary context switches (/proc/self/task/TID/status):
 * a thread blocked in epoll_wait switches out voluntarily once per wait; a polling thread
 * that is preempted does so involuntarily, which is not counted.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <cmocka.h>

#include "common/evloop.h"
#include "kicker.h" /* test_now_s */

#define EVENTS 100
#define GAP_US 2000 /* between events: far longer than a wake-up, far shorter than the budget */

struct counter {
	int fd;
	unsigned hits; /* atomic */
	unsigned bad;  /* atomic: callback-side failures (no cmocka asserts off the main thread) */
	struct evloop *del_from; /* delete own fd on the first event */
};

static void on_event(void *opaque, uint32_t events)
{
	struct counter *c = opaque;
	uint64_t v;
	if (!(events & EPOLLIN) || read(c->fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
		__atomic_add_fetch(&c->bad, 1, __ATOMIC_RELAXED);
	if (c->del_from) {
		if (evloop_del(c->del_from, c->fd) != 0)
			__atomic_add_fetch(&c->bad, 1, __ATOMIC_RELAXED);
		c->del_from = NULL;
	}
	__atomic_add_fetch(&c->hits, 1, __ATOMIC_RELEASE);
}

static void wait_hits(struct counter *c, unsigned n)
{
	double end = test_now_s() + 10;
	while (__atomic_load_n(&c->hits, __ATOMIC_ACQUIRE) < n && test_now_s() < end)
		usleep(100);
	assert_int_equal(__atomic_load_n(&c->hits, __ATOMIC_ACQUIRE), n);
}

static int loop_tid(struct evloop *el)
{
	double end = test_now_s() + 10;
	int tid;
	while (!(tid = __atomic_load_n(&el->tid, __ATOMIC_ACQUIRE)) && test_now_s() < end)
		usleep(100);
	assert_true(tid > 0);
	return tid;
}

static long voluntary_switches(int tid)
{
	char path[64], line[128];
	long v = -1;
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", tid);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1)
			break;
	fclose(f);
	assert_true(v >= 0);
	return v;
}

static void poke(int fd)
{
	uint64_t one = 1;
	assert_int_equal(write(fd, &one, sizeof(one)), (ssize_t)sizeof(one));
}

/* EVENTS events GAP_US apart on a started loop; returns the loop thread's voluntary
 * context switches over them. */
static long switches_over_events(unsigned poll_us)
{
	struct evloop el;
	struct counter c = {.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
	assert_true(c.fd >= 0);
	assert_int_equal(evloop_init(&el), 0);
	evloop_set_poll_us(&el, poll_us);
	assert_int_equal(evloop_add(&el, c.fd, EPOLLIN, on_event, &c), 0);
	assert_int_equal(evloop_start(&el), 0);
	int tid = loop_tid(&el);
	poke(c.fd); /* the first event wakes the thread and opens the polling window */
	wait_hits(&c, 1);
	long v0 = voluntary_switches(tid);
	for (unsigned i = 2; i <= EVENTS; i++) {
		usleep(GAP_US);
		poke(c.fd);
		wait_hits(&c, i);
	}
	long v1 = voluntary_switches(tid);
	double t0 = test_now_s();
	evloop_fini(&el); /* stops the thread, polling or not */
	assert_true(test_now_s() - t0 < 1.0);
	assert_int_equal(c.bad, 0);
	close(c.fd);
	return v1 - v0;
}

/* Without a budget the thread sleeps in epoll_wait between events: one voluntary switch
 * each (the usleep gaps are far longer than a wake-up). */
static void test_blocking_loop_sleeps_between_events(void **state)
{
	(void)state;
	long v = switches_over_events(0);
	assert_true(v >= EVENTS / 4); /* ~EVENTS; a loaded machine may preempt it past a gap */
}

/* With a budget of a second, the thread polls through the 2 ms gaps and never sleeps. */
static void test_polling_loop_does_not_sleep_within_budget(void **state)
{
	(void)state;
	long v = switches_over_events(1000 * 1000);
	assert_true(v < EVENTS / 10);
}

/* A budget shorter than the gaps: the thread polls, runs out, sleeps, and still serves
 * every event (nothing is lost at the polling/blocking boundary). */
static void test_short_budget_serves_every_event(void **state)
{
	(void)state;
	long v = switches_over_events(GAP_US / 4);
	assert_true(v >= EVENTS / 4);
}

/* A callback may delete its own fd; later writes to it are not dispatched, and the entry
 * is freed after the batch (ASan would see a use after free or a leak). */
static void test_callback_deletes_own_fd(void **state)
{
	(void)state;
	struct evloop el;
	struct counter a = {.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
	struct counter b = {.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
	assert_int_equal(evloop_init(&el), 0);
	evloop_set_poll_us(&el, 200);
	a.del_from = &el;
	assert_int_equal(evloop_add(&el, a.fd, EPOLLIN, on_event, &a), 0);
	assert_int_equal(evloop_add(&el, b.fd, EPOLLIN, on_event, &b), 0);
	assert_int_equal(evloop_start(&el), 0);
	poke(a.fd);
	wait_hits(&a, 1);
	poke(a.fd);
	poke(b.fd);
	wait_hits(&b, 1);
	usleep(20000);
	assert_int_equal(__atomic_load_n(&a.hits, __ATOMIC_ACQUIRE), 1);
	assert_int_equal(evloop_del(&el, a.fd), -ENOENT);
	assert_true(evloop_dispatched(&el) == 2);
	evloop_fini(&el);
	assert_int_equal(a.bad + b.bad, 0);
	close(a.fd);
	close(b.fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_blocking_loop_sleeps_between_events),
	    cmocka_unit_test(test_polling_loop_does_not_sleep_within_budget),
	    cmocka_unit_test(test_short_budget_serves_every_event),
	    cmocka_unit_test(test_callback_deletes_own_fd),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
