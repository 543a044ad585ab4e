/* SPDX-License-Identifier: MIT */
/*
 * Test threads that notify a virtio queue the way a guest vCPU's doorbell write does
 * (virtio_dev_kick), once or in a loop until stopped, counting their notifications; and a
 * monotonic clock in seconds for bounded waits; and a gate, on which a fake backend holds
 * the thread that calls it until the test opens the gate (bounded, so no test can hang).
 * Used by the unlocked-notify tests of virtio-blk and virtio-net.
 */
#ifndef VIREO_TESTS_KICKER_H
#define VIREO_TESTS_KICKER_H

#include "devices/virtio/virtio.h"
#include <pthread.h>
#include <stdbool.h>

struct kicker {
	struct virtio_dev *d;
	unsigned q;
	pthread_t thread;
	bool stop;	/* atomic */
	unsigned kicks; /* atomic: notifications made so far */
};

/* Start a thread that kicks queue q of d once (loop false) or until kicker_stop. */
int kicker_start(struct kicker *k, struct virtio_dev *d, unsigned q, bool loop);
/* Stop (a looping kicker) and join. */
void kicker_stop(struct kicker *k);
unsigned kicker_count(const struct kicker *k);
/* CLOCK_MONOTONIC in seconds. */
double test_now_s(void);

struct test_gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned wait_s; /* the longest a held thread waits */
	bool held;	 /* a thread reached gate_hold */
	bool open;	 /* the test opened the gate */
	bool timed_out;	 /* the held thread gave up waiting */
};

void gate_init(struct test_gate *g, unsigned wait_s);
/* The first call waits until the gate opens or wait_s pass; later calls return at once. */
void gate_hold(struct test_gate *g);
/* Wait until a thread is held (unbounded: call it only when one gets there at once). */
void gate_wait_held(struct test_gate *g);
/* Open the gate; returns whether the held thread had already given up (the test's
 * "too late" condition). */
bool gate_open(struct test_gate *g);

#endif
