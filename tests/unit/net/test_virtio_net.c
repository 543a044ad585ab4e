/* SPDX-License-Identifier: MIT */
/* virtio-net device: identity, negotiation, transmit and control queue, with hostile chains. */
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
#define ALL_CAPS (NET_OFFLOAD_CSUM | NET_OFFLOAD_TSO4 | NET_OFFLOAD_TSO6 | NET_OFFLOAD_ECN)
#define CTRL_ALL (FB(CTRL_VQ) | FB(CTRL_RX) | FB(CTRL_MAC_ADDR))

static uint64_t offered(struct nx *x)
{
	uint64_t f;
	tpci_common_wr(&x->p, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
	f = tpci_common_rd(&x->p, VIRTIO_PCI_COMMON_DF, 4);
	tpci_common_wr(&x->p, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	return f | tpci_common_rd(&x->p, VIRTIO_PCI_COMMON_DF, 4) << 32;
}

static void test_identity(void **state)
{
	(void)state;
	struct nx *x = nx_new(false, 0);
	assert_int_equal(tpci_common_rd(&x->p, VIRTIO_PCI_COMMON_NUMQ, 2), 3);
	assert_int_equal(tpci_cfg_read(&x->p, 0x08, 4) >> 8, 0x020000); /* class: Ethernet */
	assert_true(x->p.device && x->p.device_len >= VIRTIO_NET_CFG_SIZE);
	for (unsigned i = 0; i < 6; i++)
		assert_int_equal(tpci_rd(&x->p, x->p.device + i, 1), x->mac[i]);
	assert_int_equal(tpci_rd(&x->p, x->p.device + VIRTIO_NET_CFG_STATUS, 2),
			 VIRTIO_NET_S_LINK_UP);
	assert_int_equal(tpci_rd(&x->p, x->p.device + VIRTIO_NET_CFG_MAX_VQ_PAIRS, 2), 1);
	assert_int_equal(tpci_rd(&x->p, x->p.device + VIRTIO_NET_CFG_MTU, 2), 1500);
	assert_int_equal(tpci_rd(&x->p, x->p.device + VIRTIO_NET_CFG_SIZE, 2), 0); /* past end */
	uint64_t f = offered(x);
	assert_true(f & FB(MAC) && f & FB(MTU) && f & FB(STATUS) && f & FB(MRG_RXBUF));
	assert_true(f & FB(CTRL_VQ) && f & FB(CTRL_RX) && f & FB(CTRL_MAC_ADDR));
	/* No virtio-net header on this backend: no offloads, no MQ. */
	assert_false(f & (FB(CSUM) | FB(GUEST_CSUM) | FB(HOST_TSO4) | FB(GUEST_TSO4) | FB(MQ)));
	nx_free(x);

	x = nx_new(true, ALL_CAPS);
	f = offered(x);
	assert_true(f & FB(CSUM) && f & FB(GUEST_CSUM) && f & FB(HOST_TSO4) && f & FB(HOST_TSO6));
	assert_true(f & FB(GUEST_TSO4) && f & FB(GUEST_TSO6) && f & FB(HOST_ECN) &&
		    f & FB(GUEST_ECN));
	assert_false(f & (FB(HOST_UFO) | FB(GUEST_UFO)));
	nx_free(x);

	x = nx_new(true, NET_OFFLOAD_CSUM); /* a kernel with checksum offload only */
	f = offered(x);
	assert_true(f & FB(CSUM) && f & FB(GUEST_CSUM));
	assert_false(f & (FB(HOST_TSO4) | FB(GUEST_TSO4) | FB(HOST_ECN)));
	nx_free(x);
}

static void test_feature_dependencies(void **state)
{
	(void)state;
	struct nx *x = nx_new(true, ALL_CAPS);
	assert_false(nx_driver_up(x, FB(GUEST_TSO4)));		/* needs GUEST_CSUM */
	assert_false(nx_driver_up(x, FB(HOST_TSO6)));		/* needs CSUM */
	assert_false(nx_driver_up(x, FB(CSUM) | FB(HOST_ECN))); /* needs HOST_TSO4/6 */
	assert_false(nx_driver_up(x, FB(CTRL_RX)));		/* needs CTRL_VQ */
	assert_true(nx_driver_up(x, FB(GUEST_CSUM) | FB(GUEST_TSO4) | FB(GUEST_ECN)));
	nx_free(x);
}

static void test_offloads_follow_the_guest(void **state)
{
	(void)state;
	struct nx *x = nx_new(true, ALL_CAPS);
	assert_true(nx_driver_up(x, FB(GUEST_CSUM) | FB(GUEST_TSO4) | FB(CSUM) | FB(HOST_TSO6)));
	assert_int_equal(x->fb.offloads, NET_OFFLOAD_CSUM | NET_OFFLOAD_TSO4);
	tpci_set_status(&x->p, 0);
	assert_int_equal(x->fb.offloads, 0); /* a reset guest must not get partial checksums */
	assert_true(nx_driver_up(x, 0));
	assert_int_equal(x->fb.offloads, 0);
	nx_free(x);
}

static void test_tx_plain(void **state)
{
	(void)state;
	struct nx *x = nx_new(false, 0);
	uint8_t frame[60];
	uint32_t id, len;
	struct virtio_net_hdr_v1 h = {.num_buffers = 7};
	assert_true(nx_driver_up(x, 0));
	nx_frame(frame, sizeof(frame), (const uint8_t[6]){0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 1);
	nx_post_tx(x, 5, BUF_GPA, &h, frame, sizeof(frame), 3); /* header split across pieces */
	tpci_notify(&x->p, VIRTIO_NET_TXQ);
	assert_true(tvq_get_used(&x->tx, &id, &len));
	assert_int_equal(id, 5);
	assert_int_equal(len, 0);
	assert_int_equal(x->fb.ntx, 1);
	assert_int_equal(x->fb.tx[0].len, sizeof(frame)); /* no header on this backend */
	assert_memory_equal(x->fb.tx[0].data, frame, sizeof(frame));
	assert_int_equal(tpci_msi_fired(&x->p, 2), 1);
	struct virtio_net_stats s = nx_stats(x);
	assert_int_equal(s.tx_packets, 1);
	assert_int_equal(s.tx_bytes, 60);
	assert_int_equal(s.tx_dropped + s.tx_errors, 0);
	nx_free(x);
}

static void test_tx_vnet_header(void **state)
{
	(void)state;
	struct nx *x = nx_new(true, ALL_CAPS);
	uint8_t frame[200];
	struct virtio_net_hdr_v1 h = {.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
				      .csum_start = 34,
				      .csum_offset = 16,
				      .num_buffers = 0x1234};
	assert_true(nx_driver_up(x, FB(CSUM)));
	nx_frame(frame, sizeof(frame), x->mac, 2);
	nx_post_tx(x, 0, BUF_GPA, &h, frame, sizeof(frame), 1);
	tpci_notify(&x->p, VIRTIO_NET_TXQ);
	assert_int_equal(x->fb.ntx, 1);
	assert_int_equal(x->fb.tx[0].len, 12 + sizeof(frame));
	h.num_buffers = 0; /* transmit headers reach the backend with num_buffers 0 */
	assert_memory_equal(x->fb.tx[0].data, &h, 12);
	assert_memory_equal(x->fb.tx[0].data + 12, frame, sizeof(frame));
	nx_free(x);
}

static void test_tx_invalid_frames_dropped(void **state)
{
	(void)state;
	struct nx *x = nx_new(false, 0);
	static uint8_t big[NET_MAX_FRAME + 1];
	struct virtio_net_hdr_v1 h = {0}, csum = {.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
						  .csum_start = 14,
						  .csum_offset = 6};
	uint32_t id, len;
	assert_true(nx_driver_up(x, 0));
	nx_frame(big, sizeof(big), x->mac, 3);
	nx_post_tx(x, 0, BUF_GPA, &h, big, sizeof(big), 2);		/* 65551 bytes: too big */
	nx_post_tx(x, 2, BUF_GPA + 0x20000, &h, big, 13, 1);		/* shorter than Ethernet */
	nx_post_tx(x, 3, BUF_GPA + 0x21000, &csum, big, 60, 1);		/* CSUM not negotiated */
	nx_post_tx(x, 4, BUF_GPA + 0x22000, &h, big, NET_MAX_FRAME, 4); /* the largest valid */
	tpci_notify(&x->p, VIRTIO_NET_TXQ);
	for (unsigned want = 0; want < 4; want++) {
		assert_true(tvq_get_used(&x->tx, &id, &len));
		assert_int_equal(id, want == 0 ? 0 : want + 1);
	}
	assert_false(nx_needs_reset(x));
	assert_int_equal(x->fb.ntx, 1);
	assert_int_equal(x->fb.tx[0].len, NET_MAX_FRAME);
	struct virtio_net_stats s = nx_stats(x);
	assert_int_equal(s.tx_dropped, 3);
	assert_int_equal(s.tx_packets, 1);
	nx_free(x);
}

static void test_tx_bad_chains_need_reset(void **state)
{
	(void)state;
	uint32_t id, len;
	for (unsigned t = 0; t < 2; t++) {
		struct nx *x = nx_new(false, 0);
		assert_true(nx_driver_up(x, 0));
		if (t == 0) { /* 8 bytes: not even a header */
			struct tbuf b = {BUF_GPA, 8, false};
			tvq_publish(&x->tx, tvq_add_chain(&x->tx, 0, &b, 1));
		} else { /* a writable buffer in a transmit chain */
			struct tbuf b[2] = {{BUF_GPA, 100, false}, {BUF_GPA + 4096, 100, true}};
			tvq_publish(&x->tx, tvq_add_chain(&x->tx, 0, b, 2));
		}
		tpci_notify(&x->p, VIRTIO_NET_TXQ);
		assert_true(nx_needs_reset(x));
		assert_int_equal(tpci_msi_fired(&x->p, 0), 1); /* config change interrupt */
		assert_false(tvq_get_used(&x->tx, &id, &len));
		assert_int_equal(x->fb.ntx, 0);
		/* The queue stays stopped: a valid frame now is not sent. */
		uint8_t frame[60];
		struct virtio_net_hdr_v1 h = {0};
		nx_frame(frame, 60, x->mac, 1);
		nx_post_tx(x, 5, BUF_GPA + 0x10000, &h, frame, 60, 1);
		tpci_notify(&x->p, VIRTIO_NET_TXQ);
		assert_int_equal(x->fb.ntx, 0);
		/* A reset brings the device back. */
		assert_true(nx_driver_up(x, 0));
		assert_false(nx_needs_reset(x));
		nx_post_tx(x, 0, BUF_GPA + 0x10000, &h, frame, 60, 1);
		tpci_notify(&x->p, VIRTIO_NET_TXQ);
		assert_int_equal(x->fb.ntx, 1);
		nx_free(x);
	}
}

/* A header and 1023 one-byte buffers through an indirect table: more than a writev takes. */
static void test_tx_many_pieces(void **state)
{
	(void)state;
	const uint64_t table = 0x60000, data = BUF_GPA;
	static struct tbuf b[VQ_MAX_INDIRECT];
	struct virtio_net_hdr_v1 h = {0};
	uint8_t frame[VQ_MAX_INDIRECT - 1];
	for (unsigned vnet = 0; vnet < 2; vnet++) {
		struct nx *x = nx_new(vnet, 0);
		assert_true(nx_driver_up(x, VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC)));
		nx_frame(frame, sizeof(frame), x->mac, 9);
		uint8_t *p = tmem(&x->fp.mem, data, 12 + sizeof(frame));
		memcpy(p, &h, 12);
		memcpy(p + 12, frame, sizeof(frame));
		b[0] = (struct tbuf){data, 12, false};
		for (unsigned i = 1; i < VQ_MAX_INDIRECT; i++)
			b[i] = (struct tbuf){data + 12 + i - 1, 1, false};
		tvq_write_indirect(&x->tx, table, b, VQ_MAX_INDIRECT);
		tvq_set_desc(&x->tx, 0, table, 16 * VQ_MAX_INDIRECT, VRING_DESC_F_INDIRECT, 0);
		tvq_publish(&x->tx, 0);
		tpci_notify(&x->p, VIRTIO_NET_TXQ);
		assert_false(nx_needs_reset(x));
		assert_int_equal(x->fb.ntx, 1);
		assert_int_equal(x->fb.tx[0].len, (vnet ? 12 : 0) + sizeof(frame));
		assert_memory_equal(x->fb.tx[0].data + (vnet ? 12 : 0), frame, sizeof(frame));
		nx_free(x);
	}
}

static void test_tx_backpressure(void **state)
{
	(void)state;
	struct nx *x = nx_new(false, 0);
	uint8_t frame[80];
	uint64_t one = 1;
	uint32_t id, len;
	struct virtio_net_hdr_v1 h = {0};
	assert_true(nx_driver_up(x, 0));
	nx_frame(frame, sizeof(frame), x->mac, 4);
	x->fb.send_ret = -EAGAIN;
	nx_post_tx(x, 0, BUF_GPA, &h, frame, sizeof(frame), 1);
	nx_post_tx(x, 1, BUF_GPA + 4096, &h, frame, sizeof(frame), 1);
	tpci_notify(&x->p, VIRTIO_NET_TXQ);
	assert_false(tvq_get_used(&x->tx, &id, &len)); /* kept for later, not dropped */
	/* Another notification while blocked does not spin on the backend. */
	tpci_notify(&x->p, VIRTIO_NET_TXQ);
	assert_int_equal(x->fb.ntx, 0);
	x->fb.send_ret = 0;
	assert_int_equal(write(x->fb.be.fd, &one, 8), 8); /* EPOLLOUT edge */
	nx_run(x);
	assert_int_equal(x->fb.ntx, 2);
	assert_true(tvq_get_used(&x->tx, &id, &len));
	assert_int_equal(id, 0);
	assert_true(tvq_get_used(&x->tx, &id, &len));
	assert_int_equal(id, 1);

	/* Data queued inside the backend (a partly written frame) goes out on EPOLLOUT even
	 * when the guest sends nothing more; while it cannot, new frames wait. */
	x->fb.flush_ret = -EAGAIN;
	unsigned calls = x->fb.flush_calls;
	assert_int_equal(write(x->fb.be.fd, &one, 8), 8);
	nx_run(x);
	assert_int_equal(x->fb.flush_calls, calls + 1);
	nx_post_tx(x, 2, BUF_GPA + 8192, &h, frame, sizeof(frame), 1);
	tpci_notify(&x->p, VIRTIO_NET_TXQ);
	assert_int_equal(x->fb.ntx, 2);
	assert_false(tvq_get_used(&x->tx, &id, &len));
	x->fb.flush_ret = 0;
	assert_int_equal(write(x->fb.be.fd, &one, 8), 8);
	nx_run(x);
	assert_int_equal(x->fb.ntx, 3);
	assert_true(tvq_get_used(&x->tx, &id, &len));
	assert_int_equal(id, 2);
	nx_free(x);
}

/* ---- control queue ------------------------------------------------------------------------- */

static void test_ctrl_filter(void **state)
{
	(void)state;
	struct nx *x = nx_new(false, 0);
	static const uint8_t other[6] = {0x02, 1, 2, 3, 4, 5}, newmac[6] = {0x0e, 0, 0, 0, 0, 0x42};
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	uint8_t frame[64], on = 1, off = 0;
	uint32_t id, len;
	assert_true(nx_driver_up(x, CTRL_ALL));
	for (uint16_t i = 0; i < 8; i++)
		nx_post_rx(x, i, BUF_GPA + 0x1000 * i, 2048);
	tpci_notify(&x->p, VIRTIO_NET_RXQ);

	/* Promiscuous after reset: a frame for another address gets through. */
	nx_host_send(x, frame, nx_frame(frame, 64, other, 1));
	nx_run(x);
	assert_true(tvq_get_used(&x->rx, &id, &len));

	assert_int_equal(nx_ctrl(x, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &off, 1),
			 VIRTIO_NET_OK);
	nx_host_send(x, frame, nx_frame(frame, 64, other, 2));
	nx_host_send(x, frame, nx_frame(frame, 64, bcast, 3));
	nx_host_send(x, frame, nx_frame(frame, 64, x->mac, 4));
	nx_run(x);
	assert_true(tvq_get_used(&x->rx, &id, &len));
	assert_true(tvq_get_used(&x->rx, &id, &len));
	assert_false(tvq_get_used(&x->rx, &id, &len));
	assert_int_equal(nx_stats(x).rx_dropped, 1);

	/* A MAC table entry lets `other` in. */
	uint8_t tbl[4 + 6 + 4];
	uint32_t one = 1, zero = 0;
	memcpy(tbl, &one, 4);
	memcpy(tbl + 4, other, 6);
	memcpy(tbl + 10, &zero, 4);
	assert_int_equal(nx_ctrl(x, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, tbl, 14),
			 VIRTIO_NET_OK);
	nx_host_send(x, frame, nx_frame(frame, 64, other, 5));
	nx_run(x);
	assert_true(tvq_get_used(&x->rx, &id, &len));
	/* A malformed table is refused (count larger than the payload). */
	one = 2;
	memcpy(tbl, &one, 4);
	assert_int_equal(nx_ctrl(x, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, tbl, 14),
			 VIRTIO_NET_ERR);

	/* New address: config space shows it, frames for it pass. */
	assert_int_equal(nx_ctrl(x, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, newmac, 6),
			 VIRTIO_NET_OK);
	for (unsigned i = 0; i < 6; i++)
		assert_int_equal(tpci_rd(&x->p, x->p.device + i, 1), newmac[i]);
	nx_host_send(x, frame, nx_frame(frame, 64, newmac, 6));
	nx_run(x);
	assert_true(tvq_get_used(&x->rx, &id, &len));

	/* Bad commands are answered with an error, not a reset. */
	assert_int_equal(nx_ctrl(x, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, bcast, 6),
			 VIRTIO_NET_ERR);
	assert_int_equal(nx_ctrl(x, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, newmac, 5),
			 VIRTIO_NET_ERR);
	assert_int_equal(nx_ctrl(x, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, tbl, 2),
			 VIRTIO_NET_ERR);
	assert_int_equal(
	    nx_ctrl(x, VIRTIO_NET_CTRL_RX, 5 /* NOBCAST: needs CTRL_RX_EXTRA */, &on, 1),
	    VIRTIO_NET_ERR);
	assert_int_equal(nx_ctrl(x, 4 /* MQ */, 0, tbl, 2), VIRTIO_NET_ERR);
	assert_int_equal(nx_ctrl(x, 0xff, 0xff, NULL, 0), VIRTIO_NET_ERR);
	assert_false(nx_needs_reset(x));
	struct virtio_net_stats s = nx_stats(x);
	assert_int_equal(s.ctrl_ok, 3);
	assert_int_equal(s.ctrl_err, 7);

	/* Reset restores the configured address and the promiscuous default. */
	assert_true(nx_driver_up(x, CTRL_ALL));
	for (unsigned i = 0; i < 6; i++)
		assert_int_equal(tpci_rd(&x->p, x->p.device + i, 1), x->mac[i]);
	nx_free(x);
}

static void test_ctrl_bad_chain(void **state)
{
	(void)state;
	struct nx *x = nx_new(false, 0);
	uint32_t id, len;
	assert_true(nx_driver_up(x, CTRL_ALL));
	struct tbuf b = {0x40000, 3, false}; /* no writable ack byte */
	tvq_publish(&x->cq, tvq_add_chain(&x->cq, 0, &b, 1));
	tpci_notify(&x->p, VIRTIO_NET_CTRLQ);
	assert_true(nx_needs_reset(x));
	assert_false(tvq_get_used(&x->cq, &id, &len));
	nx_free(x);
}

static void test_ctrl_rx_not_negotiated(void **state)
{
	(void)state;
	struct nx *x = nx_new(false, 0);
	uint8_t off = 0, frame[64];
	uint32_t id, len;
	static const uint8_t other[6] = {0x02, 1, 2, 3, 4, 5};
	assert_true(nx_driver_up(x, FB(CTRL_VQ)));
	assert_int_equal(nx_ctrl(x, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &off, 1),
			 VIRTIO_NET_ERR);
	nx_post_rx(x, 0, BUF_GPA, 2048);
	tpci_notify(&x->p, VIRTIO_NET_RXQ);
	nx_host_send(x, frame, nx_frame(frame, 64, other, 1));
	nx_run(x);
	assert_true(tvq_get_used(&x->rx, &id, &len)); /* no filtering without CTRL_RX */
	nx_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_identity),
	    cmocka_unit_test(test_feature_dependencies),
	    cmocka_unit_test(test_offloads_follow_the_guest),
	    cmocka_unit_test(test_tx_plain),
	    cmocka_unit_test(test_tx_vnet_header),
	    cmocka_unit_test(test_tx_invalid_frames_dropped),
	    cmocka_unit_test(test_tx_bad_chains_need_reset),
	    cmocka_unit_test(test_tx_many_pieces),
	    cmocka_unit_test(test_tx_backpressure),
	    cmocka_unit_test(test_ctrl_filter),
	    cmocka_unit_test(test_ctrl_bad_chain),
	    cmocka_unit_test(test_ctrl_rx_not_negotiated),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
