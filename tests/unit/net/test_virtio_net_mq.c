/* SPDX-License-Identifier: MIT */
/* virtio-net multiqueue: MQ offer and negotiation, VQ_PAIRS_SET (valid, invalid, hostile),
 * per-pair traffic reaching its own backend queue, and the per-pair error paths. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "net_helper.h"

#define FB(x) VIRTIO_BIT(VIRTIO_NET_F_##x)
#define MQ_FEATURES (FB(CTRL_VQ) | FB(MQ) | FB(CTRL_RX))

static uint64_t offered(struct nx *x)
{
	uint64_t f;
	tpci_common_wr(&x->p, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
	f = tpci_common_rd(&x->p, VIRTIO_PCI_COMMON_DF, 4);
	tpci_common_wr(&x->p, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	return f | tpci_common_rd(&x->p, VIRTIO_PCI_COMMON_DF, 4) << 32;
}

static uint8_t pairs_set(struct nx *x, uint16_t k)
{
	return nx_ctrl(x, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &k, 2);
}

static unsigned pairs_now(struct nx *x)
{
	return virtio_net_pairs(x->net, NULL);
}

static struct virtio_net_stats pair_stats(struct nx *x, unsigned q)
{
	struct virtio_net_stats s;
	assert_int_equal(virtio_net_get_pair_stats(x->net, q, &s), 0);
	return s;
}

static void test_mq_offer(void **state)
{
	(void)state;
	struct nx *x = nx_new_mq(4, true, 0);
	unsigned max = 0;
	assert_int_equal(tpci_common_rd(&x->p, VIRTIO_PCI_COMMON_NUMQ, 2), 9);
	assert_true(offered(x) & FB(MQ));
	assert_int_equal(tpci_rd(&x->p, x->p.device + VIRTIO_NET_CFG_MAX_VQ_PAIRS, 2), 4);
	assert_true(x->p.msix_n >= 10); /* a vector per queue plus config */
	assert_int_equal(virtio_net_pairs(x->net, &max), 0);
	assert_int_equal(max, 4);
	/* Until a driver asks for them, only backend queue 0 takes frames. */
	assert_true(x->qfb[0]->attached);
	for (unsigned i = 1; i < 4; i++)
		assert_false(x->qfb[i]->attached);
	struct virtio_net_stats s;
	assert_int_equal(virtio_net_get_pair_stats(x->net, 4, &s), -EINVAL);
	/* MQ depends on the control queue. */
	assert_false(nx_driver_up_mq(x, FB(MQ), 4));
	assert_true(nx_driver_up_mq(x, MQ_FEATURES, 4));
	assert_int_equal(pairs_now(x), 1);
	nx_free(x);
}

/* Without MQ negotiated the control queue is queue 2 and the pairs stay at one. */
static void test_mq_not_negotiated(void **state)
{
	(void)state;
	struct nx *x = nx_new_mq(4, false, 0);
	uint8_t on = 0;
	assert_true(nx_driver_up_mq(x, FB(CTRL_VQ) | FB(CTRL_RX), 1));
	assert_int_equal(nx_ctrlq(x), 2);
	assert_int_equal(nx_ctrl(x, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &on, 1),
			 VIRTIO_NET_OK);
	assert_int_equal(pairs_set(x, 2), VIRTIO_NET_ERR);
	assert_int_equal(pairs_now(x), 1);
	assert_false(x->qfb[1]->attached);
	assert_false(nx_needs_reset(x));
	nx_free(x);
}

static void test_traffic_on_pair_2(void **state)
{
	(void)state;
	struct nx *x = nx_new_mq(4, false, 0);
	struct virtio_net_hdr_v1 h = {0};
	uint8_t f[80], g[64];
	uint32_t id, len;

	assert_true(nx_driver_up_mq(x, MQ_FEATURES, 4));
	nx_post_rx_q(x, 2, 3, BUF_GPA, 2048);
	nx_frame(f, sizeof(f), x->mac, 9);
	/* Pair 2 is not in use yet: its queue is detached and nothing is read from it. */
	assert_false(x->qfb[2]->attached);
	nx_post_tx_q(x, 2, 0, BUF_GPA + 0x10000, &h, g, nx_frame(g, sizeof(g), x->mac, 4));
	tpci_notify(&x->p, 5);
	nx_run(x);
	assert_int_equal(x->qfb[2]->ntx, 0);

	assert_int_equal(pairs_set(x, 3), VIRTIO_NET_OK);
	assert_int_equal(pairs_now(x), 3);
	assert_true(x->qfb[1]->attached && x->qfb[2]->attached);
	assert_false(x->qfb[3]->attached);
	nx_run(x); /* enabling a pair runs its pending work: the parked frame goes out */
	assert_int_equal(x->qfb[2]->ntx, 1);
	assert_memory_equal(x->qfb[2]->tx[0].data, g, sizeof(g));
	assert_true(tvq_get_used(&x->qtx[2], &id, &len));
	assert_int_equal(tpci_msi_fired(&x->p, 6), 1); /* transmit queue 5: vector 6 */

	/* A frame on backend queue 2 lands in pair 2's receive queue, nowhere else. */
	nx_post_rx(x, 0, BUF_GPA + 0x20000, 2048);
	nx_host_send_q(x, 2, f, sizeof(f));
	nx_run(x);
	assert_true(tvq_get_used(&x->qrx[2], &id, &len));
	assert_int_equal(id, 3);
	assert_int_equal(len, 12 + sizeof(f));
	assert_memory_equal(tmem(&x->fp.mem, BUF_GPA + 12, sizeof(f)), f, sizeof(f));
	assert_false(tvq_get_used(&x->rx, &id, &len));
	assert_int_equal(tpci_msi_fired(&x->p, 5), 1); /* receive queue 4: vector 5 */
	assert_int_equal(tpci_msi_fired(&x->p, 1), 0);

	struct virtio_net_stats s2 = pair_stats(x, 2), s0 = pair_stats(x, 0), all = nx_stats(x);
	assert_int_equal(s2.rx_packets, 1);
	assert_int_equal(s2.tx_packets, 1);
	assert_int_equal(s0.rx_packets + s0.tx_packets, 0);
	assert_int_equal(all.rx_packets, 1);
	assert_int_equal(all.ctrl_ok, 1);
	assert_int_equal(x->qfb[0]->ntx + x->qfb[1]->ntx + x->qfb[3]->ntx, 0);

	/* Back to one pair: queue 2 detached, its frames no longer read. */
	assert_int_equal(pairs_set(x, 1), VIRTIO_NET_OK);
	assert_false(x->qfb[2]->attached);
	nx_post_rx_q(x, 2, 4, BUF_GPA + 0x30000, 2048);
	unsigned calls = x->qfb[2]->recv_calls;
	nx_host_send_q(x, 2, f, sizeof(f));
	nx_run(x);
	assert_int_equal(x->qfb[2]->recv_calls, calls);
	assert_false(tvq_get_used(&x->qrx[2], &id, &len));
	nx_free(x);
}

static void test_pairs_set_invalid(void **state)
{
	(void)state;
	struct nx *x = nx_new_mq(4, false, 0);
	const uint8_t three[3] = {2, 0, 0};
	uint16_t two = 2;

	assert_true(nx_driver_up_mq(x, MQ_FEATURES, 2)); /* rings for pairs 0 and 1 only */
	assert_int_equal(pairs_set(x, 0), VIRTIO_NET_ERR);
	assert_int_equal(pairs_set(x, 5), VIRTIO_NET_ERR);
	assert_int_equal(pairs_set(x, 0xffff), VIRTIO_NET_ERR);
	assert_int_equal(pairs_set(x, 0x8000), VIRTIO_NET_ERR);
	assert_int_equal(pairs_set(x, 3), VIRTIO_NET_ERR); /* pair 2 has no rings */
	assert_int_equal(nx_ctrl(x, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &two, 1),
			 VIRTIO_NET_ERR);
	assert_int_equal(nx_ctrl(x, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, three, 3),
			 VIRTIO_NET_ERR);
	assert_int_equal(nx_ctrl(x, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, NULL, 0),
			 VIRTIO_NET_ERR);
	assert_int_equal(nx_ctrl(x, VIRTIO_NET_CTRL_MQ, 1, &two, 2), VIRTIO_NET_ERR); /* RSS */
	assert_int_equal(nx_ctrl(x, VIRTIO_NET_CTRL_MQ, 0xff, &two, 2), VIRTIO_NET_ERR);
	assert_int_equal(pairs_now(x), 1);
	for (unsigned i = 1; i < 4; i++)
		assert_false(x->qfb[i]->attached);
	assert_false(nx_needs_reset(x)); /* a bad command is an error answer, not a reset */
	assert_int_equal(nx_stats(x).ctrl_err, 10);
	assert_int_equal(pairs_set(x, 2), VIRTIO_NET_OK);
	assert_int_equal(pairs_now(x), 2);
	assert_int_equal(pairs_set(x, 2), VIRTIO_NET_OK); /* idempotent */
	assert_int_equal(x->qfb[1]->attach_calls, 2);	  /* detached at create, attached once */
	nx_free(x);
}

static void test_reset_back_to_one_pair(void **state)
{
	(void)state;
	struct nx *x = nx_new_mq(3, false, 0);
	assert_true(nx_driver_up_mq(x, MQ_FEATURES, 3));
	assert_int_equal(pairs_set(x, 3), VIRTIO_NET_OK);
	assert_true(x->qfb[2]->attached);
	tpci_set_status(&x->p, 0);
	assert_int_equal(pairs_now(x), 0);
	assert_false(x->qfb[1]->attached || x->qfb[2]->attached);
	assert_true(x->qfb[0]->attached);
	assert_true(nx_driver_up_mq(x, MQ_FEATURES, 3));
	assert_int_equal(pairs_now(x), 1);
	nx_free(x);
}

/* A bad chain on one pair: NEEDS_RESET, that queue stops, the others keep working until the
 * driver resets. The receive error is found on the backend's readiness (pair lock only). */
static void test_hostile_chains_per_pair(void **state)
{
	(void)state;
	uint32_t id, len;
	uint8_t f[60];
	for (unsigned t = 0; t < 2; t++) {
		struct nx *x = nx_new_mq(3, false, 0);
		assert_true(nx_driver_up_mq(x, MQ_FEATURES, 3));
		assert_int_equal(pairs_set(x, 3), VIRTIO_NET_OK);
		if (t == 0) { /* transmit chain with a writable buffer on pair 1 */
			struct tbuf b[2] = {{BUF_GPA, 100, false}, {BUF_GPA + 4096, 100, true}};
			tvq_publish(&x->qtx[1], tvq_add_chain(&x->qtx[1], 0, b, 2));
			tpci_notify(&x->p, 3);
		} else { /* receive chain with a readable buffer on pair 2 */
			struct tbuf b = {BUF_GPA, 2048, false};
			tvq_publish(&x->qrx[2], tvq_add_chain(&x->qrx[2], 0, &b, 1));
			nx_host_send_q(x, 2, f, nx_frame(f, sizeof(f), x->mac, 1));
		}
		nx_run(x);
		assert_true(nx_needs_reset(x));
		assert_int_equal(tpci_msi_fired(&x->p, 0), 1); /* config change */
		assert_false(tvq_get_used(t ? &x->qrx[2] : &x->qtx[1], &id, &len));
		/* Pair 0 still moves frames until the driver resets the device. */
		struct virtio_net_hdr_v1 h = {0};
		nx_post_tx_q(x, 0, 0, BUF_GPA + 0x10000, &h, f, nx_frame(f, sizeof(f), x->mac, 2));
		tpci_notify(&x->p, VIRTIO_NET_TXQ);
		assert_int_equal(x->qfb[0]->ntx, 1);
		assert_true(nx_driver_up_mq(x, MQ_FEATURES, 3));
		assert_false(nx_needs_reset(x));
		nx_free(x);
	}
}

/* Without MQ, queue 3 (pair 1's transmit queue with MQ) belongs to nobody: a driver that
 * sets it up and kicks it gets nothing sent; kicks of queues past the last do nothing. */
static void test_hostile_notifies(void **state)
{
	(void)state;
	struct nx *x = nx_new_mq(2, false, 0);
	struct virtio_net_hdr_v1 h = {0};
	uint8_t f[60];
	for (unsigned e = 0; e < 6; e++)
		tpci_msix_program(&x->p, e);
	tpci_msix_enable(&x->p, true);
	assert_true(tpci_negotiate(&x->p, VIRTIO_BIT(VIRTIO_F_VERSION_1) | FB(CTRL_VQ)));
	tvq_layout(&x->rx, &x->fp.mem, RXQ_GPA, QSIZE);
	tvq_layout(&x->tx, &x->fp.mem, TXQ_GPA, QSIZE);
	tvq_layout(&x->cq, &x->fp.mem, CQ_GPA, QSIZE);
	tvq_layout(&x->qtx[1], &x->fp.mem, MQ_GPA + 0x6000, QSIZE);
	tpci_queue_setup(&x->p, 0, &x->rx, 1);
	tpci_queue_setup(&x->p, 1, &x->tx, 2);
	tpci_queue_setup(&x->p, 2, &x->cq, 3);
	tpci_queue_setup(&x->p, 3, &x->qtx[1], 4);
	tpci_driver_ok(&x->p);
	assert_false(nx_needs_reset(x));
	nx_post_tx_q(x, 1, 0, BUF_GPA, &h, f, nx_frame(f, sizeof(f), x->mac, 3));
	for (unsigned q = 0; q < 5; q++)
		tpci_notify(&x->p, q);
	tpci_notify(&x->p, 0xffff);
	nx_run(x);
	assert_false(nx_needs_reset(x));
	assert_int_equal(x->qfb[1]->ntx + x->qfb[0]->ntx, 0);
	assert_int_equal(pairs_now(x), 1);
	nx_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mq_offer),
	    cmocka_unit_test(test_mq_not_negotiated),
	    cmocka_unit_test(test_traffic_on_pair_2),
	    cmocka_unit_test(test_pairs_set_invalid),
	    cmocka_unit_test(test_reset_back_to_one_pair),
	    cmocka_unit_test(test_hostile_chains_per_pair),
	    cmocka_unit_test(test_hostile_notifies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
