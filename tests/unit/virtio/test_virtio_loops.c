/* SPDX-License-Identifier: MIT */
/*
 * Virtio core pieces of the threading model: queue groups bound to I/O loops round robin
 * (virtio_dev_bind_loops), and the unlocked notify path of virtio_dev_kick (no device
 * lock, no liveness check: the device's job) next to the locked one (both).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fake_platform.h"
#include "common/evloop.h"
#include "devices/virtio/virtio.h"

#define NQ 5

struct tdev {
	struct virtio_dev vdev;
	unsigned notified[NQ];
	unsigned with_lock; /* notifications that found the device lock held */
};

static void t_notify(struct virtio_dev *d, unsigned q)
{
	struct tdev *t = d->opaque;
	assert_true(q < NQ);
	t->notified[q]++;
	if (pthread_mutex_trylock(&d->lock) == 0)
		pthread_mutex_unlock(&d->lock);
	else
		t->with_lock++;
}

/* Pairs like virtio-net: (0,1) (2,3), then queue 4 alone. */
static unsigned t_group(const struct virtio_dev *d, unsigned q)
{
	(void)d;
	return q / 2;
}

static unsigned t_bad_group(const struct virtio_dev *d, unsigned q)
{
	(void)d;
	return q + NQ;
}

static const struct virtio_dev_ops grouped_ops = {
	.name = "test-grouped", .num_queues = NQ, .max_queue_size = 16,
	.queue_notify = t_notify, .queue_group = t_group, .notify_unlocked = true,
};
static const struct virtio_dev_ops plain_ops = {
	.name = "test-plain", .num_queues = NQ, .max_queue_size = 16, .queue_notify = t_notify,
};
static const struct virtio_dev_ops bad_ops = {
	.name = "test-bad", .num_queues = NQ, .max_queue_size = 16, .queue_notify = t_notify,
	.queue_group = t_bad_group,
};

struct fix {
	struct fake_platform fp;
	struct evloop main_loop, io[2]; /* never run: only their addresses matter */
	struct evloop *io_ptr[2];
	struct tdev a, b;
};

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	fake_platform_init(&f->fp, 0, 1 << 20);
	f->fp.plat.loop = &f->main_loop;
	f->io_ptr[0] = &f->io[0];
	f->io_ptr[1] = &f->io[1];
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;
	virtio_dev_fini(&f->a.vdev);
	virtio_dev_fini(&f->b.vdev);
	fake_platform_fini(&f->fp);
	free(f);
	return 0;
}

static void test_groups_round_robin(void **state)
{
	struct fix *f = *state;
	f->fp.io_loops = f->io_ptr;
	f->fp.nr_io_loops = 2;
	assert_int_equal(virtio_dev_init(&f->a.vdev, &grouped_ops, &f->fp.mem, &f->a), 0);
	assert_int_equal(virtio_dev_init(&f->b.vdev, &grouped_ops, &f->fp.mem, &f->b), 0);
	assert_int_equal(virtio_dev_bind_loops(&f->a.vdev, &f->fp.plat), 0);
	/* Groups in order of their first queue: 0 -> io0, 1 -> io1, 2 -> io0. */
	assert_ptr_equal(virtio_dev_queue_loop(&f->a.vdev, 0), &f->io[0]);
	assert_ptr_equal(virtio_dev_queue_loop(&f->a.vdev, 1), &f->io[0]);
	assert_ptr_equal(virtio_dev_queue_loop(&f->a.vdev, 2), &f->io[1]);
	assert_ptr_equal(virtio_dev_queue_loop(&f->a.vdev, 3), &f->io[1]);
	assert_ptr_equal(virtio_dev_queue_loop(&f->a.vdev, 4), &f->io[0]);
	assert_null(virtio_dev_queue_loop(&f->a.vdev, NQ));
	/* Idempotent: a second call (the transport after the device) changes nothing. */
	assert_int_equal(virtio_dev_bind_loops(&f->a.vdev, &f->fp.plat), 0);
	assert_ptr_equal(virtio_dev_queue_loop(&f->a.vdev, 2), &f->io[1]);
	/* The next device continues the round: its first group gets io1. */
	assert_int_equal(virtio_dev_bind_loops(&f->b.vdev, &f->fp.plat), 0);
	assert_ptr_equal(virtio_dev_queue_loop(&f->b.vdev, 0), &f->io[1]);
	assert_ptr_equal(virtio_dev_queue_loop(&f->b.vdev, 2), &f->io[0]);
}

static void test_no_groups_or_no_io_loops_use_main(void **state)
{
	struct fix *f = *state;
	/* A device without queue_group stays on the main loop even with I/O loops. */
	f->fp.io_loops = f->io_ptr;
	f->fp.nr_io_loops = 2;
	assert_int_equal(virtio_dev_init(&f->a.vdev, &plain_ops, &f->fp.mem, &f->a), 0);
	assert_int_equal(virtio_dev_bind_loops(&f->a.vdev, &f->fp.plat), 0);
	for (unsigned q = 0; q < NQ; q++)
		assert_ptr_equal(virtio_dev_queue_loop(&f->a.vdev, q), &f->main_loop);
	assert_int_equal(f->fp.io_next, 0);
	/* --io-threads 1: the platform has no I/O loops, grouped devices use the main one. */
	f->fp.nr_io_loops = 0;
	assert_int_equal(virtio_dev_init(&f->b.vdev, &grouped_ops, &f->fp.mem, &f->b), 0);
	assert_int_equal(virtio_dev_bind_loops(&f->b.vdev, &f->fp.plat), 0);
	for (unsigned q = 0; q < NQ; q++)
		assert_ptr_equal(virtio_dev_queue_loop(&f->b.vdev, q), &f->main_loop);
}

static void test_bad_group_rejected(void **state)
{
	struct fix *f = *state;
	f->fp.io_loops = f->io_ptr;
	f->fp.nr_io_loops = 2;
	assert_int_equal(virtio_dev_init(&f->a.vdev, &bad_ops, &f->fp.mem, &f->a), 0);
	assert_int_equal(virtio_dev_bind_loops(&f->a.vdev, &f->fp.plat), -EINVAL);
	assert_int_equal(virtio_dev_init(&f->b.vdev, &plain_ops, &f->fp.mem, &f->b), 0);
}

static void test_kick_paths(void **state)
{
	struct fix *f = *state;
	assert_int_equal(virtio_dev_init(&f->a.vdev, &grouped_ops, &f->fp.mem, &f->a), 0);
	assert_int_equal(virtio_dev_init(&f->b.vdev, &plain_ops, &f->fp.mem, &f->b), 0);
	/* Unlocked: called for any queue in range, even before DRIVER_OK, without the lock. */
	for (unsigned q = 0; q <= NQ; q++)
		virtio_dev_kick(&f->a.vdev, q);
	for (unsigned q = 0; q < NQ; q++)
		assert_int_equal(f->a.notified[q], 1);
	assert_int_equal(f->a.with_lock, 0);
	/* Locked: the core checks DRIVER_OK and liveness, so nothing is called here. */
	for (unsigned q = 0; q <= NQ; q++)
		virtio_dev_kick(&f->b.vdev, q);
	for (unsigned q = 0; q < NQ; q++)
		assert_int_equal(f->b.notified[q], 0);
}

/* NEEDS_RESET set from a queue context while the driver writes status bits: neither
 * update is lost (the status is updated atomically). */
struct racer {
	struct virtio_dev *d;
	int iters;
};

static void *needs_reset_main(void *opaque)
{
	struct racer *r = opaque;
	for (int i = 0; i < r->iters; i++)
		virtio_dev_set_needs_reset(r->d);
	return NULL;
}

static void test_needs_reset_races_status_writes(void **state)
{
	struct fix *f = *state;
	struct virtio_dev *d = &f->a.vdev;
	assert_int_equal(virtio_dev_init(d, &plain_ops, &f->fp.mem, &f->a), 0);
	for (int round = 0; round < 300; round++) {
		pthread_t th;
		struct racer r = {d, 20};
		virtio_dev_lock(d);
		virtio_dev_reset(d);
		virtio_dev_unlock(d);
		assert_int_equal(pthread_create(&th, NULL, needs_reset_main, &r), 0);
		uint8_t s = 0;
		const uint8_t steps[] = {VIRTIO_STATUS_ACKNOWLEDGE, VIRTIO_STATUS_DRIVER,
					 VIRTIO_STATUS_FAILED};
		for (unsigned i = 0; i < ARRAY_SIZE(steps); i++) {
			s |= steps[i];
			virtio_dev_lock(d);
			virtio_dev_set_status(d, s);
			virtio_dev_unlock(d);
		}
		pthread_join(th, NULL);
		assert_int_equal(virtio_dev_status(d), s | VIRTIO_STATUS_NEEDS_RESET);
	}
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_groups_round_robin),
		T(test_no_groups_or_no_io_loops_use_main),
		T(test_bad_group_rejected),
		T(test_kick_paths),
		T(test_needs_reset_races_status_writes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
