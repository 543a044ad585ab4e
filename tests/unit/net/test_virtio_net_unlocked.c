/* SPDX-License-Identifier: MIT */
/*
 * virtio-net with the core's unlocked notify (virtio.h): queue pairs are processed at the
 * same time (a pair whose backend send is stuck does not hold up another pair), and
 * transmit notifications racing device resets never touch a ring after the reset (nothing
 * is sent or completed from a reset ring, even with new frames published in it).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "net_helper.h"
#include "kicker.h"

#define FB(x) VIRTIO_BIT(VIRTIO_NET_F_##x)
#define MQ_FEATURES (FB(CTRL_VQ) | FB(MQ))
#define GATE_WAIT_S 3
#define FRAME_GPA(p, i) (BUF_GPA + 0x10000ULL * (p) + 0x800ULL * (i))

static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static struct tvq *txq(struct nx *x, unsigned p)
{
	return p ? &x->qtx[p] : &x->tx;
}

static void up2(struct nx *x)
{
	uint16_t k = 2;
	assert_true(nx_driver_up_mq(x, MQ_FEATURES, 2));
	assert_int_equal(nx_ctrl(x, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &k, 2),
			 VIRTIO_NET_OK);
	assert_int_equal(virtio_net_pairs(x->net, NULL), 2);
}

static void post_frame(struct nx *x, unsigned p, uint16_t head, uint8_t seed)
{
	uint8_t f[64];
	struct virtio_net_hdr_v1 h = {0};
	nx_frame(f, sizeof(f), bcast, seed);
	nx_post_tx_q(x, p, head, FRAME_GPA(p, head), &h, f, sizeof(f));
}

/* ---- a pair stuck in its backend ------------------------------------------------------------ */

/* Backend queue 0's first send waits until the gate opens (at most GATE_WAIT_S). */
struct gate {
	struct test_gate g;
	const struct net_backend_ops *inner;
	struct net_backend_ops ops;
};

static struct gate the_gate; /* the backend's ops point into it (tests run one at a time) */

static int stuck_send(struct net_backend *be, const struct iovec *iov, unsigned n)
{
	gate_hold(&the_gate.g);
	return the_gate.inner->send(be, iov, n);
}

/*
 * Pair 0's transmit notification is stuck in the backend's send (pair 0's lock held);
 * pair 1 is notified meanwhile and sends. With the device lock around every notification
 * pair 1 would wait for pair 0: the send's wait would time out and the test fail.
 */
static void test_stuck_pair_does_not_block_another(void **state)
{
	(void)state;
	struct nx *x = nx_new_mq(2, true, 0);
	struct gate *g = &the_gate;
	up2(x);
	assert_true(virtio_net_vdev(x->net)->ops->notify_unlocked);
	memset(g, 0, sizeof(*g));
	gate_init(&g->g, GATE_WAIT_S);
	g->inner = x->qfb[0]->be.ops;
	g->ops = *g->inner;
	g->ops.send = stuck_send;
	x->qfb[0]->be.ops = &g->ops;

	post_frame(x, 0, 0, 1);
	struct kicker k0; /* pair 0's transmit queue */
	assert_int_equal(kicker_start(&k0, virtio_net_vdev(x->net), 1, false), 0);
	gate_wait_held(&g->g); /* bounded: k0 gets there at once */

	post_frame(x, 1, 0, 2);
	virtio_dev_kick(virtio_net_vdev(x->net), 3); /* pair 1's transmit queue */
	assert_int_equal(x->qfb[1]->ntx, 1);
	assert_int_equal(tvq_used_idx(txq(x, 1)), 1);

	bool late = gate_open(&g->g);
	kicker_stop(&k0);
	assert_false(late);
	assert_false(g->g.timed_out);
	assert_int_equal(x->qfb[0]->ntx, 1);
	assert_int_equal(tvq_used_idx(txq(x, 0)), 1);
	x->qfb[0]->be.ops = g->inner;
	nx_free(x);
}

/* ---- resets racing notifications ------------------------------------------------------------ */

#define ROUNDS 30
#define PER_ROUND 4
#define USED_BYTES (6 + 8 * QSIZE)

/*
 * One thread per transmit queue notifies without pause while the driver (this thread)
 * publishes frames, waits until they are sent, resets the device, and publishes more
 * frames into the reset rings. After the reset nothing may be sent and the used rings
 * may not change, although notifications keep coming.
 */
static void test_reset_races_tx_notifications(void **state)
{
	(void)state;
	struct nx *x = nx_new_mq(2, true, 0);
	struct kicker k[2];
	up2(x);
	for (unsigned p = 0; p < 2; p++) {
		assert_int_equal(kicker_start(&k[p], virtio_net_vdev(x->net), 2 * p + 1, true), 0);
	}
	for (unsigned round = 0; round < ROUNDS; round++) {
		for (unsigned p = 0; p < 2; p++)
			for (uint16_t i = 0; i < PER_ROUND; i++)
				post_frame(x, p, i, (uint8_t)(round * 8 + i));
		for (unsigned p = 0; p < 2; p++) {
			double end = test_now_s() + 5;
			while (tvq_used_idx(txq(x, p)) != PER_ROUND && test_now_s() < end)
				usleep(10);
			assert_int_equal(tvq_used_idx(txq(x, p)), PER_ROUND);
		}
		tpci_set_status(&x->p, 0);

		unsigned sent[2];
		for (unsigned p = 0; p < 2; p++) {
			sent[p] = __atomic_load_n(&x->qfb[p]->ntx, __ATOMIC_ACQUIRE);
			assert_int_equal(sent[p], (round + 1) * PER_ROUND);
			memset(tmem(&x->fp.mem, txq(x, p)->used, USED_BYTES), 0xa5, USED_BYTES);
			for (uint16_t i = PER_ROUND; i < 2 * PER_ROUND; i++)
				post_frame(x, p, i, 0x55);
		}
		for (unsigned p = 0; p < 2; p++) {
			unsigned before = kicker_count(&k[p]);
			double end = test_now_s() + 5;
			while (kicker_count(&k[p]) < before + 50 &&
			       test_now_s() < end)
				usleep(50);
		}
		for (unsigned p = 0; p < 2; p++) {
			const uint8_t *u = tmem(&x->fp.mem, txq(x, p)->used, USED_BYTES);
			for (unsigned i = 0; i < USED_BYTES; i++)
				if (u[i] != 0xa5)
					fail_msg("round %u: pair %u used ring byte %u written after the "
						 "reset", round, p, i);
			assert_int_equal(__atomic_load_n(&x->qfb[p]->ntx, __ATOMIC_ACQUIRE),
					 sent[p]);
		}
		assert_false(nx_needs_reset(x));
		up2(x); /* fresh rings (zeroed), notifications still coming */
	}
	for (unsigned p = 0; p < 2; p++) {
		kicker_stop(&k[p]);
	}
	struct virtio_net_stats st = nx_stats(x);
	assert_int_equal(st.tx_packets, 2 * ROUNDS * PER_ROUND);
	assert_int_equal(st.tx_dropped, 0);
	nx_free(x);
}

/* A driver error on a pair's transmit queue, found by an unlocked notify (pair lock only),
 * still sets NEEDS_RESET without an I/O loop running; the reset clears it. */
static void test_needs_reset_from_unlocked_notify(void **state)
{
	(void)state;
	struct nx *x = nx_new_mq(2, true, 0);
	up2(x);
	struct tbuf b = {FRAME_GPA(1, 0), 64, true}; /* writable: not a transmit chain */
	tvq_publish(txq(x, 1), tvq_add_chain(txq(x, 1), 0, &b, 1));
	virtio_dev_kick(virtio_net_vdev(x->net), 3);
	assert_true(nx_needs_reset(x));
	tpci_set_status(&x->p, 0);
	assert_false(nx_needs_reset(x));
	up2(x);
	post_frame(x, 1, 0, 9);
	virtio_dev_kick(virtio_net_vdev(x->net), 3);
	assert_int_equal(x->qfb[1]->ntx, 1);
	assert_false(nx_needs_reset(x));
	nx_free(x);
}

/* The control queue (2N with MQ, 2 without) is still served, under the device lock. */
static void test_ctrl_queue_both_layouts(void **state)
{
	(void)state;
	struct nx *x = nx_new_mq(2, true, 0);
	up2(x); /* VQ_PAIRS_SET went through queue 4 */
	tpci_set_status(&x->p, 0);
	assert_true(nx_driver_up_mq(x, FB(CTRL_VQ) | FB(CTRL_RX), 1));
	assert_int_equal(nx_ctrlq(x), 2); /* no MQ: queue 2, which is pair 1's receive queue */
	uint8_t on = 1;
	assert_int_equal(nx_ctrl(x, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &on, 1),
			 VIRTIO_NET_OK);
	nx_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stuck_pair_does_not_block_another),
		cmocka_unit_test(test_reset_races_tx_notifications),
		cmocka_unit_test(test_needs_reset_from_unlocked_notify),
		cmocka_unit_test(test_ctrl_queue_both_layouts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
