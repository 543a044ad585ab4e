/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk multiqueue: queues driven from several threads at once while completions
 * arrive on an I/O loop thread (per-queue locking), and device reset racing requests in
 * flight on every queue (nothing touches guest memory or a ring after the reset returned,
 * also when stale completions are delivered after the driver set the device up again).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "test_virtio_blk_helper.h"
#include "devices/virtio/virtio.h"

#define FEATURES                                                                                   \
	(VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) | VIRTIO_BIT(VIRTIO_BLK_F_MQ) |                            \
	 VIRTIO_BIT(VIRTIO_F_EVENT_IDX))
#define NQ 4
#define ROUNDS 150
#define BS 4096u
/* flags, idx, the ring, avail_event */
#define USED_BYTES (6 + 8 * VBX_QSIZE)
/* Per queue: where its write source and read destination live in guest RAM. */
#define SRC(q) (VBX_DATA + 0x20000ULL * (q))
#define DST(q) (VBX_DATA + 0x20000ULL * (q) + 0x10000)
/* Per queue: its own region of the disk. */
#define SECTOR(q, i) ((uint64_t)(q) * 2048 + (uint64_t)((i) % 64) * (BS / 512))

struct mq {
	struct vbx x;
	struct evloop loop;
	bool loop_up;
};

static int setup(void **state)
{
	struct mq *m = calloc(1, sizeof(*m));
	vbx_init(&m->x);
	assert_int_equal(evloop_init(&m->loop), 0);
	*state = m;
	return 0;
}

static int teardown(void **state)
{
	struct mq *m = *state;
	if (m->loop_up)
		evloop_stop(&m->loop);
	vbx_fini(&m->x);
	evloop_fini(&m->loop);
	free(m);
	return 0;
}

/* A raw file on engine, completions on the running loop thread, NQ queues up. */
static void attach_loop(struct mq *m, enum blk_engine engine)
{
	struct blk_config cfg;
	blk_config_defaults(&cfg);
	cfg.engine = engine;
	vbx_attach_file_loop(&m->x, &cfg, NQ, &m->loop);
	assert_int_equal(evloop_start(&m->loop), 0);
	m->loop_up = true;
	vbx_up(&m->x, FEATURES);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wait (without cmocka: may run off the main thread) until queue q's used index is n. */
static bool wait_used(struct vbx *x, unsigned q, uint16_t n)
{
	double end = now_s() + 10;
	while (tvq_used_idx(&x->t[q]) != n) {
		if (now_s() > end)
			return false;
		usleep(20);
	}
	return true;
}

struct worker {
	struct mq *m;
	unsigned q;
	pthread_t thread;
	char failure[128]; /* empty: every round checked out */
};

/* One request as a guest driver on its own vCPU would send it: publish, notify, wait. */
static bool worker_do(struct worker *w, uint32_t type, uint64_t sector, uint64_t gpa,
		      uint16_t *used)
{
	struct vbx *x = &w->m->x;
	struct tbuf d = {gpa, BS, type == VIRTIO_BLK_T_IN};
	uint16_t head = vbx_req(x, w->q, type, sector, &d, 1);
	tvq_publish(&x->t[w->q], head);
	virtio_dev_kick(virtio_blk_vdev(x->blk), w->q); /* what the doorbell's eventfd does */
	if (!wait_used(x, w->q, ++*used)) {
		snprintf(w->failure, sizeof(w->failure), "queue %u: request %u never completed",
			 w->q, *used);
		return false;
	}
	if (vbx_status(x, w->q, head) != VIRTIO_BLK_S_OK) {
		snprintf(w->failure, sizeof(w->failure), "queue %u: status %u", w->q,
			 vbx_status(x, w->q, head));
		return false;
	}
	return true;
}

static void *worker_main(void *opaque)
{
	struct worker *w = opaque;
	struct vbx *x = &w->m->x;
	uint8_t *src = tmem(&x->fp.mem, SRC(w->q), BS);
	uint8_t *dst = tmem(&x->fp.mem, DST(w->q), BS);
	uint16_t used = 0;

	for (unsigned i = 0; i < ROUNDS; i++) {
		uint8_t seed = (uint8_t)(w->q * 37 + i);
		for (unsigned k = 0; k < BS; k++)
			src[k] = (uint8_t)(seed + k * 3);
		memset(dst, 0, BS);
		if (!worker_do(w, VIRTIO_BLK_T_OUT, SECTOR(w->q, i), SRC(w->q), &used) ||
		    !worker_do(w, VIRTIO_BLK_T_IN, SECTOR(w->q, i), DST(w->q), &used))
			return NULL;
		if (memcmp(src, dst, BS) != 0) {
			snprintf(w->failure, sizeof(w->failure), "queue %u round %u: read back "
				 "other data", w->q, i);
			return NULL;
		}
	}
	return NULL;
}

static void run_parallel(struct mq *m)
{
	struct worker w[NQ];
	for (unsigned q = 0; q < NQ; q++) {
		w[q] = (struct worker){.m = m, .q = q};
		assert_int_equal(pthread_create(&w[q].thread, NULL, worker_main, &w[q]), 0);
	}
	for (unsigned q = 0; q < NQ; q++)
		pthread_join(w[q].thread, NULL);
	for (unsigned q = 0; q < NQ; q++)
		if (w[q].failure[0])
			fail_msg("%s", w[q].failure);

	struct virtio_blk_stats st;
	vbx_stats(&m->x, &st);
	assert_int_equal(st.reads, NQ * ROUNDS);
	assert_int_equal(st.writes, NQ * ROUNDS);
	assert_int_equal(st.read_bytes, (uint64_t)NQ * ROUNDS * BS);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.inflight, 0);
	assert_false(tpci_status(&m->x.p) & VIRTIO_STATUS_NEEDS_RESET);
	/* Every queue's answers went to its own vector. */
	for (unsigned q = 0; q < NQ; q++)
		assert_true(tpci_msi_fired(&m->x.p, q + 1) > 0);
}

static void test_parallel_queues_uring(void **state)
{
	struct mq *m = *state;
	attach_loop(m, BLK_ENGINE_URING);
	run_parallel(m);
}

static void test_parallel_queues_threads(void **state)
{
	struct mq *m = *state;
	attach_loop(m, BLK_ENGINE_THREADS);
	run_parallel(m);
}

/*
 * Reset while every queue has large reads in flight and completions land on the loop
 * thread. Once the reset returned, the driver may reuse its memory: whatever the host or
 * the completion thread still does, no data buffer, status byte or used ring changes.
 */
static void test_reset_races_completions(void **state)
{
	struct mq *m = *state;
	struct vbx *x = &m->x;
	const unsigned per_q = 3;
	const uint32_t len = 0x40000;
	const uint64_t data = VBX_DATA + 0x400000;
	uint16_t heads[NQ][3];

	attach_loop(m, BLK_ENGINE_URING);
	for (int round = 0; round < 5; round++) {
		for (unsigned q = 0; q < NQ; q++) {
			for (unsigned i = 0; i < per_q; i++) {
				struct tbuf d = {data + (uint64_t)(q * per_q + i) * len, len, true};
				heads[q][i] = vbx_req(x, q, VIRTIO_BLK_T_IN, (q * per_q + i) * 64ULL,
						      &d, 1);
				tvq_publish(&x->t[q], heads[q][i]);
			}
		}
		for (unsigned q = 0; q < NQ; q++)
			virtio_dev_kick(virtio_blk_vdev(x->blk), q);
		if (round & 1)
			usleep(200); /* let some finish first */
		tpci_set_status(&x->p, 0);

		/* The driver reuses everything now. */
		uint8_t *buf = tmem(&x->fp.mem, data, (uint64_t)NQ * per_q * len);
		memset(buf, 0xa5, (size_t)NQ * per_q * len);
		for (unsigned q = 0; q < NQ; q++) {
			for (unsigned i = 0; i < per_q; i++)
				*(uint8_t *)tmem(&x->fp.mem, VBX_STATUS(q, heads[q][i]), 1) = 0xa5;
			memset(tmem(&x->fp.mem, x->t[q].used, USED_BYTES), 0xa5,
			       USED_BYTES);
		}
		double end = now_s() + 10;
		while (blk_outstanding(x->be) && now_s() < end)
			usleep(100);
		assert_int_equal(blk_outstanding(x->be), 0);
		usleep(1000); /* a batch hook still running would show now */

		for (size_t k = 0; k < (size_t)NQ * per_q * len; k++)
			if (buf[k] != 0xa5)
				fail_msg("round %d: data byte %zu written after the reset", round, k);
		for (unsigned q = 0; q < NQ; q++) {
			for (unsigned i = 0; i < per_q; i++)
				assert_int_equal(vbx_status(x, q, heads[q][i]), 0xa5);
			const uint8_t *u = tmem(&x->fp.mem, x->t[q].used, USED_BYTES);
			for (unsigned k = 0; k < USED_BYTES; k++)
				if (u[k] != 0xa5)
					fail_msg("round %d: queue %u used ring byte %u written after "
						 "the reset", round, q, k);
		}
		struct virtio_blk_stats st;
		vbx_stats(x, &st);
		assert_int_equal(st.inflight, 0);

		/* Set up again: every queue works. */
		memset(tmem(&x->fp.mem, VBX_QGPA(0), 0x10000ULL * NQ), 0, 0x10000ULL * NQ);
		vbx_up(x, FEATURES);
		for (unsigned q = 0; q < NQ; q++) {
			struct tbuf d = {VBX_DATA, 512, true};
			uint16_t head = vbx_req(x, q, VIRTIO_BLK_T_IN, 5, &d, 1);
			tvq_publish(&x->t[q], head);
			virtio_dev_kick(virtio_blk_vdev(x->blk), q);
			assert_true(wait_used(x, q, 1));
			assert_int_equal(vbx_status(x, q, head), VIRTIO_BLK_S_OK);
			assert_int_equal(*(uint8_t *)tmem(&x->fp.mem, VBX_DATA, 1),
					 vbx_pat(5 * 512, 0));
		}
		memset(tmem(&x->fp.mem, VBX_QGPA(0), 0x10000ULL * NQ), 0, 0x10000ULL * NQ);
		tpci_set_status(&x->p, 0);
		vbx_up(x, FEATURES);
	}
}

/*
 * Completions of the old generation delivered only after the driver reset the device and
 * set it up again: they must not be answered into the new rings, while a new request on
 * another queue completes normally.
 */
static void test_stale_completions_after_reactivation(void **state)
{
	struct mq *m = *state;
	struct vbx *x = &m->x;
	struct blk_info info = {.size = VBX_DISK, .logical_block = 512, .physical_block = 512};
	vbx_attach_script(x, &info, 2);
	vbx_up(x, FEATURES);

	uint16_t old[2];
	for (unsigned q = 0; q < 2; q++) {
		struct tbuf d = {VBX_DATA + 0x1000ULL * q, 512, true};
		old[q] = vbx_req(x, q, VIRTIO_BLK_T_IN, q, &d, 1);
		tvq_publish(&x->t[q], old[q]);
		virtio_dev_kick(virtio_blk_vdev(x->blk), q);
	}
	assert_int_equal(x->script.nsub, 2);
	tpci_set_status(&x->p, 0); /* the host "finishes" both in the drain: not delivered */
	assert_int_equal(blk_outstanding(x->be), 2);

	vbx_up(x, FEATURES);
	x->script.nsub = 0;
	struct tbuf d = {VBX_DATA + 0x8000, 512, true};
	uint16_t head = vbx_req(x, 1, VIRTIO_BLK_T_IN, 9, &d, 1);
	tvq_publish(&x->t[1], head);
	virtio_dev_kick(virtio_blk_vdev(x->blk), 1);
	assert_int_equal(x->script.nsub, 1);

	assert_int_equal(blk_poll(x->be, 0), 2); /* the stale ones */
	for (unsigned q = 0; q < 2; q++) {
		assert_int_equal(tvq_used_idx(&x->t[q]), 0);
		assert_int_equal(vbx_status(x, q, old[q]), 0xff);
	}
	struct virtio_blk_stats st;
	vbx_stats(x, &st);
	assert_int_equal(st.inflight, 1);
	assert_int_equal(st.reads, 0);

	vbx_script_finish(x, 0, 0);
	assert_int_equal(blk_poll(x->be, 0), 1);
	assert_int_equal(tvq_used_idx(&x->t[1]), 1);
	assert_int_equal(tvq_used_idx(&x->t[0]), 0);
	assert_int_equal(vbx_status(x, 1, head), VIRTIO_BLK_S_OK);
	vbx_stats(x, &st);
	assert_int_equal(st.inflight, 0);
	assert_int_equal(st.reads, 1);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_parallel_queues_uring),
		T(test_parallel_queues_threads),
		T(test_reset_races_completions),
		T(test_stale_completions_after_reactivation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
