/* SPDX-License-Identifier: MIT */
/*
 * Test threads that notify a virtio queue the way a guest vCPU's doorbell write does
 * (virtio_dev_kick), once or in a loop until stopped, counting their notifications; and a
 * monotonic clock in seconds for bounded waits. Used by the unlocked-notify tests of
 * virtio-blk and virtio-net.
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

#endif
