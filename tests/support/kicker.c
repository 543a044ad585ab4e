/* SPDX-License-Identifier: MIT */
#include "kicker.h"
#include <errno.h>
#include <string.h>
#include <time.h>

static void *kicker_once_main(void *opaque)
{
	struct kicker *k = opaque;
	virtio_dev_kick(k->d, k->q);
	__atomic_add_fetch(&k->kicks, 1, __ATOMIC_RELAXED);
	return NULL;
}

static void *kicker_loop_main(void *opaque)
{
	struct kicker *k = opaque;
	while (!__atomic_load_n(&k->stop, __ATOMIC_ACQUIRE)) {
		virtio_dev_kick(k->d, k->q);
		__atomic_add_fetch(&k->kicks, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

int kicker_start(struct kicker *k, struct virtio_dev *d, unsigned q, bool loop)
{
	k->d = d;
	k->q = q;
	k->stop = false;
	k->kicks = 0;
	return pthread_create(&k->thread, NULL, loop ? kicker_loop_main : kicker_once_main, k);
}

void kicker_stop(struct kicker *k)
{
	__atomic_store_n(&k->stop, true, __ATOMIC_RELEASE);
	pthread_join(k->thread, NULL);
}

unsigned kicker_count(const struct kicker *k)
{
	return __atomic_load_n(&k->kicks, __ATOMIC_RELAXED);
}

double test_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void gate_init(struct test_gate *g, unsigned wait_s)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
	g->wait_s = wait_s;
}

void gate_hold(struct test_gate *g)
{
	pthread_mutex_lock(&g->mu);
	if (!g->held) {
		struct timespec end;
		clock_gettime(CLOCK_REALTIME, &end);
		end.tv_sec += g->wait_s;
		g->held = true;
		pthread_cond_broadcast(&g->cv);
		while (!g->open)
			if (pthread_cond_timedwait(&g->cv, &g->mu, &end) == ETIMEDOUT)
				break;
		g->timed_out = !g->open;
	}
	pthread_mutex_unlock(&g->mu);
}

void gate_wait_held(struct test_gate *g)
{
	pthread_mutex_lock(&g->mu);
	while (!g->held)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
}

bool gate_open(struct test_gate *g)
{
	pthread_mutex_lock(&g->mu);
	bool late = g->timed_out;
	g->open = true;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
	return late;
}
