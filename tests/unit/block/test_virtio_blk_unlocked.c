/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk with the core's unlocked notify (virtio.h): notifications of different
 * queues are processed at the same time (one queue stuck in its processing does not hold
 * up another), and notifications racing device resets never touch a ring after the reset
 * (nothing is answered into a reset ring, even with new requests published in it).
 *
 * "Stuck in processing" is a backend whose submission does not return until the test says
 * so, or GATE_WAIT_S passed (so the test cannot hang).
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
#include "kicker.h"
#include "devices/virtio/virtio.h"

#define FEATURES VIRTIO_BIT(VIRTIO_BLK_F_MQ) /* no EVENT_IDX: every answer interrupts */
#define GATE_WAIT_S 3
#define ID_GPA(q, i) (VBX_DATA + 0x1000ULL * (q) + 0x40ULL * (i))

/*
 * A backend whose submission gets stuck: the first kick with a request waits (at most
 * GATE_WAIT_S) until the test opens the gate. Drain finishes whatever it was handed.
 */
struct stuck_be {
	struct test_gate gate;
	struct blk_req *sub[64];
	int nsub;
};

static void sb_submit(struct blk_backend *be, struct blk_req *r)
{
	struct stuck_be *s = be->priv;
	assert_true(s->nsub < (int)ARRAY_SIZE(s->sub));
	s->sub[s->nsub++] = r;
}

static void sb_kick(struct blk_backend *be)
{
	struct stuck_be *s = be->priv;
	if (s->nsub) /* submit and kick run on the same thread */
		gate_hold(&s->gate);
}

static void sb_drain(struct blk_backend *be)
{
	struct stuck_be *s = be->priv;
	for (int i = 0; i < s->nsub; i++)
		if (s->sub[i])
			blk_core_finish(be, s->sub[i], 0);
	s->nsub = 0;
}

static void sb_close(struct blk_backend *be)
{
	(void)be;
}

static const struct blk_backend_ops stuck_ops = {
	.name = "stuck", .submit = sb_submit, .kick = sb_kick, .drain = sb_drain,
	.close = sb_close};

static uint16_t get_id(struct vbx *x, unsigned q, unsigned i)
{
	struct tbuf d = {ID_GPA(q, i), VIRTIO_BLK_ID_BYTES, true};
	uint16_t head = vbx_req(x, q, VIRTIO_BLK_T_GET_ID, 0, &d, 1);
	tvq_publish(&x->t[q], head);
	return head;
}

static void attach(struct vbx *x, unsigned nq)
{
	struct blk_info info = {.size = VBX_DISK, .logical_block = 512, .physical_block = 512};
	vbx_attach_script(x, &info, nq);
	vbx_up(x, FEATURES);
}

/*
 * Queue 0's notification is stuck in the backend (its request's submission does not
 * return); queue 1 is notified meanwhile and answers. A notify path that serialises the
 * queues (the device lock around queue_notify, which covers the submission) would make
 * queue 1 wait for queue 0: the backend's wait then times out and the test fails.
 */
static void test_stuck_queue_does_not_block_another(void **state)
{
	struct vbx *x = *state;
	struct blk_info info = {.size = VBX_DISK, .logical_block = 512, .physical_block = 512};
	static struct stuck_be sb; /* the backend outlives this function (teardown drains it) */
	memset(&sb, 0, sizeof(sb));
	gate_init(&sb.gate, GATE_WAIT_S);
	vbx_attach_ops(x, &stuck_ops, &sb, &info, 2);
	vbx_up(x, FEATURES);
	assert_true(virtio_blk_vdev(x->blk)->ops->notify_unlocked);

	struct tbuf d = {VBX_DATA + 0x8000, 512, true};
	uint16_t h0 = vbx_req(x, 0, VIRTIO_BLK_T_IN, 0, &d, 1);
	tvq_publish(&x->t[0], h0);
	struct kicker k0;
	assert_int_equal(kicker_start(&k0, virtio_blk_vdev(x->blk), 0, false), 0);
	gate_wait_held(&sb.gate); /* bounded: k0 gets there at once */

	uint16_t h1 = get_id(x, 1, 0);
	virtio_dev_kick(virtio_blk_vdev(x->blk), 1);
	assert_int_equal(tvq_used_idx(&x->t[1]), 1);
	assert_int_equal(vbx_status(x, 1, h1), VIRTIO_BLK_S_OK);
	assert_true(tpci_msi_fired(&x->p, 2) > 0);

	bool late = gate_open(&sb.gate);
	kicker_stop(&k0);
	assert_false(late);
	assert_false(sb.gate.timed_out);
	/* Queue 0's request is still with the "host"; complete it. */
	assert_int_equal(sb.nsub, 1);
	pthread_mutex_lock(&x->be->lock);
	blk_core_finish(x->be, sb.sub[0], 0);
	sb.sub[0] = NULL;
	sb.nsub = 0;
	pthread_mutex_unlock(&x->be->lock);
	assert_int_equal(blk_poll(x->be, 0), 1);
	assert_int_equal(tvq_used_idx(&x->t[0]), 1);
	assert_int_equal(vbx_status(x, 0, h0), VIRTIO_BLK_S_OK);
}

#define NQ 3
#define PER_ROUND 4 /* GET_ID chains are 3 descriptors: 5 fit a 16-entry ring */
#define USED_BYTES (6 + 8 * VBX_QSIZE)

/*
 * One thread per queue notifies without pause while the driver (this thread) publishes
 * requests, waits for their answers, resets the device, and publishes more requests into
 * the reset rings. After the reset nothing may be written: not the used rings, not a
 * status byte, not a GET_ID buffer, although notifications keep coming.
 */
static void test_reset_races_notifications(void **state)
{
	struct vbx *x = *state;
	struct kicker k[NQ];
	attach(x, NQ);
	for (unsigned q = 0; q < NQ; q++) {
		assert_int_equal(kicker_start(&k[q], virtio_blk_vdev(x->blk), q, true), 0);
	}
	for (int round = 0; round < 40; round++) {
		uint16_t heads[NQ][PER_ROUND];
		for (unsigned q = 0; q < NQ; q++)
			for (unsigned i = 0; i < PER_ROUND; i++)
				heads[q][i] = get_id(x, q, i);
		for (unsigned q = 0; q < NQ; q++) {
			double end = test_now_s() + 5;
			while (tvq_used_idx(&x->t[q]) != PER_ROUND && test_now_s() < end)
				usleep(10);
			assert_int_equal(tvq_used_idx(&x->t[q]), PER_ROUND);
			for (unsigned i = 0; i < PER_ROUND; i++)
				assert_int_equal(vbx_status(x, q, heads[q][i]), VIRTIO_BLK_S_OK);
		}
		if (round & 1) /* the next requests are already published when the reset comes */
			for (unsigned q = 0; q < NQ; q++)
				get_id(x, q, 0);
		tpci_set_status(&x->p, 0);

		/* The driver owns everything again: poison it, publish more, let kicks run. */
		for (unsigned q = 0; q < NQ; q++) {
			memset(tmem(&x->fp.mem, x->t[q].used, USED_BYTES), 0xa5, USED_BYTES);
			memset(tmem(&x->fp.mem, ID_GPA(q, 0), 0x1000), 0xa5, 0x1000);
			for (unsigned i = 0; i < PER_ROUND; i++) {
				struct tbuf d = {ID_GPA(q, i), VIRTIO_BLK_ID_BYTES, true};
				uint16_t h = vbx_req(x, q, VIRTIO_BLK_T_GET_ID, 0, &d, 1);
				*(uint8_t *)tmem(&x->fp.mem, VBX_STATUS(q, h), 1) = 0xa5;
				tvq_publish(&x->t[q], h);
			}
		}
		unsigned before = kicker_count(&k[0]);
		double end = test_now_s() + 5;
		while (kicker_count(&k[0]) < before + 50 && test_now_s() < end)
			usleep(50);
		for (unsigned q = 0; q < NQ; q++) {
			const uint8_t *u = tmem(&x->fp.mem, x->t[q].used, USED_BYTES);
			const uint8_t *b = tmem(&x->fp.mem, ID_GPA(q, 0), 0x1000);
			for (unsigned i = 0; i < USED_BYTES; i++)
				if (u[i] != 0xa5)
					fail_msg("round %d: queue %u used ring byte %u written after "
						 "the reset", round, q, i);
			for (unsigned i = 0; i < 0x1000; i++)
				if (b[i] != 0xa5)
					fail_msg("round %d: queue %u buffer byte %u written after the "
						 "reset", round, q, i);
			for (unsigned i = 0; i < VBX_QSIZE; i++) {
				uint8_t st = *(uint8_t *)tmem(&x->fp.mem, VBX_STATUS(q, i), 1);
				if (st != 0xa5 && st != 0xff && st != VIRTIO_BLK_S_OK)
					fail_msg("round %d: queue %u status %u = %u", round, q, i, st);
			}
		}
		assert_false(tpci_status(&x->p) & VIRTIO_STATUS_NEEDS_RESET);
		vbx_up(x, FEATURES); /* fresh rings (zeroed), kicks still coming */
	}
	for (unsigned q = 0; q < NQ; q++) {
		kicker_stop(&k[q]);
		assert_true(kicker_count(&k[q]) > 0);
	}
	struct virtio_blk_stats st;
	vbx_stats(x, &st);
	/* Every request published before a reset was answered; requests published after it
	 * never were (the odd rounds' extra one may have gone either way before the reset). */
	assert_in_range(st.get_ids, 40 * NQ * PER_ROUND, 40 * NQ * PER_ROUND + 20 * NQ);
	assert_int_equal(st.errors, 0);
}

/* A driver error found by an unlocked notify sets NEEDS_RESET (and a reset clears it). */
static void test_needs_reset_from_unlocked_notify(void **state)
{
	struct vbx *x = *state;
	attach(x, 2);
	struct tbuf b = {VBX_HDR(1, 0), 16, false}; /* no writable status byte */
	uint16_t head = vbx_chain(x, 1, &b, 1);
	tvq_publish(&x->t[1], head);
	virtio_dev_kick(virtio_blk_vdev(x->blk), 1);
	assert_true(tpci_status(&x->p) & VIRTIO_STATUS_NEEDS_RESET);
	assert_true(tpci_status(&x->p) & VIRTIO_STATUS_DRIVER_OK);
	assert_true(tpci_msi_fired(&x->p, 0) > 0); /* the config interrupt */
	tpci_set_status(&x->p, 0);
	assert_int_equal(tpci_status(&x->p), 0);
	vbx_up(x, FEATURES);
	assert_int_equal(vbx_status(x, 0, get_id(x, 0, 0)), 0xff);
	virtio_dev_kick(virtio_blk_vdev(x->blk), 0);
	assert_int_equal(tvq_used_idx(&x->t[0]), 1);
	/* Notifications of queues that do not exist, or before DRIVER_OK, do nothing. */
	virtio_dev_kick(virtio_blk_vdev(x->blk), 7);
	tpci_set_status(&x->p, 0);
	get_id(x, 0, 1);
	virtio_dev_kick(virtio_blk_vdev(x->blk), 0);
	assert_int_equal(tpci_status(&x->p), 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, vbx_setup, vbx_teardown)
	const struct CMUnitTest tests[] = {
		T(test_stuck_queue_does_not_block_another),
		T(test_reset_races_notifications),
		T(test_needs_reset_from_unlocked_notify),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
