/* SPDX-License-Identifier: MIT */
/* virtio-net receive path: headers, mergeable buffers, flow control, budget, hostile chains. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "net_helper.h"

#define FB(x) VIRTIO_BIT(VIRTIO_NET_F_##x)

static const uint8_t other[6] = {0x02, 1, 2, 3, 4, 5};

static struct virtio_net_hdr_v1 guest_hdr(struct nx *x, uint64_t gpa)
{
	struct virtio_net_hdr_v1 h;
	memcpy(&h, tmem(&x->fp.mem, gpa, 12), 12);
	return h;
}

static void test_rx_plain(void **state)
{
	(void)state;
	struct nx *x = nx_new(false, 0);
	uint8_t frame[60];
	uint32_t id, len;
	assert_true(nx_driver_up(x, 0));
	nx_post_rx(x, 3, BUF_GPA, 2048);
	tpci_notify(&x->p, VIRTIO_NET_RXQ);
	nx_host_send(x, frame, nx_frame(frame, sizeof(frame), x->mac, 1));
	nx_run(x);
	assert_true(tvq_get_used(&x->rx, &id, &len));
	assert_int_equal(id, 3);
	assert_int_equal(len, 12 + sizeof(frame));
	struct virtio_net_hdr_v1 h = guest_hdr(x, BUF_GPA), want = {.num_buffers = 1};
	assert_memory_equal(&h, &want, 12); /* the device made the header */
	assert_memory_equal(tmem(&x->fp.mem, BUF_GPA + 12, sizeof(frame)), frame, sizeof(frame));
	assert_int_equal(*(uint8_t *)tmem(&x->fp.mem, BUF_GPA + 12 + sizeof(frame), 1), 0xa5);
	assert_int_equal(tpci_msi_fired(&x->p, 1), 1);
	struct virtio_net_stats s = nx_stats(x);
	assert_int_equal(s.rx_packets, 1);
	assert_int_equal(s.rx_bytes, sizeof(frame));
	nx_free(x);
}

static void test_rx_vnet_header_fixup(void **state)
{
	(void)state;
	struct nx *x = nx_new(true, NET_OFFLOAD_CSUM);
	uint8_t pkt[12 + 60];
	uint32_t id, len;
	struct virtio_net_hdr_v1 in = {.flags = VIRTIO_NET_HDR_F_DATA_VALID, .num_buffers = 0x5555};
	assert_true(nx_driver_up(x, 0)); /* no GUEST_CSUM */
	nx_post_rx(x, 0, BUF_GPA, 2048);
	nx_post_rx(x, 1, BUF_GPA + 4096, 2048);
	tpci_notify(&x->p, VIRTIO_NET_RXQ);
	memcpy(pkt, &in, 12);
	nx_frame(pkt + 12, 60, x->mac, 2);
	nx_host_send(x, pkt, sizeof(pkt));
	/* A partial checksum the guest cannot complete: dropped. */
	in.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	memcpy(pkt, &in, 12);
	nx_host_send(x, pkt, sizeof(pkt));
	nx_run(x);
	assert_true(tvq_get_used(&x->rx, &id, &len));
	assert_int_equal(len, sizeof(pkt));
	struct virtio_net_hdr_v1 h = guest_hdr(x, BUF_GPA);
	assert_int_equal(h.flags, 0); /* DATA_VALID hidden without GUEST_CSUM */
	assert_int_equal(h.num_buffers, 1);
	assert_false(tvq_get_used(&x->rx, &id, &len));
	assert_int_equal(nx_stats(x).rx_dropped, 1);
	nx_free(x);
}

static void test_rx_mergeable(void **state)
{
	(void)state;
	struct nx *x = nx_new(false, 0);
	static uint8_t frame[3000];
	uint32_t id, len;
	x->fb.be.mtu = 4000; /* frames up to 4018 + header must fit the gathered buffers */
	assert_true(nx_driver_up(x, FB(MRG_RXBUF)));
	for (uint16_t i = 0; i < 5; i++)
		nx_post_rx(x, i, BUF_GPA + 0x1000 * i, 1024);
	tpci_notify(&x->p, VIRTIO_NET_RXQ);
	nx_host_send(x, frame, nx_frame(frame, sizeof(frame), x->mac, 3));
	nx_host_send(x, frame, nx_frame(frame, 100, x->mac, 4));
	nx_run(x);
	/* 12 + 3000 bytes over three 1 KiB buffers. */
	static const uint32_t lens[3] = {1024, 1024, 964};
	for (unsigned i = 0; i < 3; i++) {
		assert_true(tvq_get_used(&x->rx, &id, &len));
		assert_int_equal(id, i);
		assert_int_equal(len, lens[i]);
	}
	assert_int_equal(guest_hdr(x, BUF_GPA).num_buffers, 3);
	nx_frame(frame, sizeof(frame), x->mac, 3);
	assert_memory_equal(tmem(&x->fp.mem, BUF_GPA + 12, 1012), frame, 1012);
	assert_memory_equal(tmem(&x->fp.mem, BUF_GPA + 0x1000, 1024), frame + 1012, 1024);
	assert_memory_equal(tmem(&x->fp.mem, BUF_GPA + 0x2000, 964), frame + 2036, 964);
	/* The second frame waits until the driver adds buffers: 2 KiB held < one frame. */
	assert_false(tvq_get_used(&x->rx, &id, &len));
	for (uint16_t i = 5; i < 8; i++)
		nx_post_rx(x, i, BUF_GPA + 0x1000 * i, 1024);
	tpci_notify(&x->p, VIRTIO_NET_RXQ);
	nx_run(x);
	assert_true(tvq_get_used(&x->rx, &id, &len));
	assert_int_equal(id, 3);
	assert_int_equal(len, 112);
	assert_int_equal(guest_hdr(x, BUF_GPA + 0x3000).num_buffers, 1);
	nx_free(x);
}

/* With every ring entry held the device takes what it has rather than wait forever. */
static void test_rx_mergeable_small_ring(void **state)
{
	(void)state;
	struct nx *x = nx_new(false, 0);
	uint8_t frame[200];
	uint32_t id, len;
	assert_true(nx_driver_up(x, FB(MRG_RXBUF)));
	for (uint16_t i = 0; i < QSIZE; i++)
		nx_post_rx(x, i, BUF_GPA + 0x100 * i, 16); /* 64 x 16 bytes < one MTU frame */
	tpci_notify(&x->p, VIRTIO_NET_RXQ);
	nx_host_send(x, frame, nx_frame(frame, sizeof(frame), x->mac, 5));
	nx_run(x);
	for (unsigned i = 0; i < 13; i++) { /* 212 bytes in 16-byte buffers */
		assert_true(tvq_get_used(&x->rx, &id, &len));
		assert_int_equal(len, i < 13 ? 16 : 4);
	}
	assert_true(tvq_get_used(&x->rx, &id, &len));
	assert_int_equal(len, 4);
	assert_int_equal(guest_hdr(x, BUF_GPA).num_buffers, 14);
	nx_free(x);
}

static void test_rx_waits_for_buffers(void **state)
{
	(void)state;
	struct nx *x = nx_new(false, 0);
	uint8_t frame[60];
	uint32_t id, len;
	assert_true(nx_driver_up(x, 0));
	unsigned calls = x->fb.recv_calls;
	nx_host_send(x, frame, nx_frame(frame, sizeof(frame), x->mac, 1));
	nx_run(x);
	assert_int_equal(x->fb.recv_calls, calls); /* no buffer: the backend is not read */
	assert_false(tvq_get_used(&x->rx, &id, &len));
	nx_post_rx(x, 0, BUF_GPA, 2048);
	tpci_notify(&x->p, VIRTIO_NET_RXQ);
	nx_run(x);
	assert_true(tvq_get_used(&x->rx, &id, &len));
	assert_int_equal(len, 72);
	nx_free(x);
}

static void test_rx_frame_too_big_dropped(void **state)
{
	(void)state;
	struct nx *x = nx_new(false, 0);
	uint8_t frame[200];
	uint32_t id, len;
	assert_true(nx_driver_up(x, 0));
	nx_post_rx(x, 0, BUF_GPA, 100);
	tpci_notify(&x->p, VIRTIO_NET_RXQ);
	nx_host_send(x, frame, nx_frame(frame, sizeof(frame), x->mac, 1));
	nx_host_send(x, frame, nx_frame(frame, 13, x->mac, 1)); /* runt: dropped too */
	nx_host_send(x, frame, nx_frame(frame, 60, x->mac, 2));
	nx_run(x);
	assert_true(tvq_get_used(&x->rx, &id, &len)); /* the buffer went to the small frame */
	assert_int_equal(id, 0);
	assert_int_equal(len, 72);
	assert_false(tvq_get_used(&x->rx, &id, &len));
	assert_int_equal(nx_stats(x).rx_dropped, 2);
	nx_free(x);
}

static void test_rx_bad_chains_need_reset(void **state)
{
	(void)state;
	uint32_t id, len;
	for (unsigned t = 0; t < 3; t++) {
		struct nx *x = nx_new(false, 0);
		uint8_t frame[60];
		assert_true(nx_driver_up(x, t == 2 ? FB(MRG_RXBUF) : 0));
		if (t == 0) { /* device-readable receive buffer */
			struct tbuf b = {BUF_GPA, 2048, false};
			tvq_publish(&x->rx, tvq_add_chain(&x->rx, 0, &b, 1));
		} else { /* no room for the 12-byte header, also in mergeable mode */
			nx_post_rx(x, 0, BUF_GPA, 2048);
			nx_post_rx(x, 1, BUF_GPA + 4096, 11);
		}
		tpci_notify(&x->p, VIRTIO_NET_RXQ);
		nx_host_send(x, frame, nx_frame(frame, sizeof(frame), x->mac, 1));
		nx_run(x);
		assert_true(nx_needs_reset(x));
		if (t == 0)
			assert_false(tvq_get_used(&x->rx, &id, &len));
		/* Nothing more is delivered until reset. */
		nx_post_rx(x, 5, BUF_GPA + 0x10000, 2048);
		tpci_notify(&x->p, VIRTIO_NET_RXQ);
		nx_host_send(x, frame, nx_frame(frame, sizeof(frame), x->mac, 2));
		nx_run(x);
		assert_int_equal(nx_stats(x).rx_packets, t == 0 ? 0 : 1);
		nx_free(x);
	}
}

/* A frame scattered into a chain of 1024 one-byte buffers via an indirect table. */
static void test_rx_many_pieces(void **state)
{
	(void)state;
	struct nx *x = nx_new(false, 0);
	static struct tbuf b[VQ_MAX_INDIRECT];
	uint8_t frame[600];
	uint32_t id, len;
	assert_true(nx_driver_up(x, VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC)));
	for (unsigned i = 0; i < VQ_MAX_INDIRECT; i++)
		b[i] = (struct tbuf){BUF_GPA + 2 * i, 1, true};
	tvq_write_indirect(&x->rx, 0x60000, b, VQ_MAX_INDIRECT);
	tvq_set_desc(&x->rx, 0, 0x60000, 16 * VQ_MAX_INDIRECT, VRING_DESC_F_INDIRECT, 0);
	tvq_publish(&x->rx, 0);
	tpci_notify(&x->p, VIRTIO_NET_RXQ);
	nx_host_send(x, frame, nx_frame(frame, sizeof(frame), x->mac, 7));
	nx_run(x);
	assert_true(tvq_get_used(&x->rx, &id, &len));
	assert_int_equal(len, 612);
	uint8_t *p = tmem(&x->fp.mem, BUF_GPA, 2 * VQ_MAX_INDIRECT);
	assert_int_equal(p[2 * 10], 1); /* num_buffers low byte */
	for (unsigned i = 0; i < sizeof(frame); i++)
		if (p[2 * (12 + i)] != frame[i])
			fail_msg("byte %u: %#x, want %#x", i, p[2 * (12 + i)], frame[i]);
	nx_free(x);
}

/* At most VIRTIO_NET_BUDGET frames per wakeup; the rest comes on the next loop round. */
static void test_rx_budget(void **state)
{
	(void)state;
	struct nx *x = nx_new(false, 0);
	uint8_t frame[60], off = 0;
	const unsigned n = VIRTIO_NET_BUDGET + 44;
	assert_true(nx_driver_up(x, FB(CTRL_VQ) | FB(CTRL_RX)));
	assert_int_equal(nx_ctrl(x, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &off, 1),
			 VIRTIO_NET_OK);
	nx_post_rx(x, 0, BUF_GPA, 2048);
	tpci_notify(&x->p, VIRTIO_NET_RXQ);
	nx_run(x);
	for (unsigned i = 0; i < n; i++) /* all filtered out: the buffer is never used */
		nx_host_send(x, frame, nx_frame(frame, sizeof(frame), other, (uint8_t)i));
	assert_true(evloop_run_once(&x->loop, 0) >= 1);
	assert_int_equal(nx_stats(x).rx_dropped, VIRTIO_NET_BUDGET);
	nx_run(x);
	assert_int_equal(nx_stats(x).rx_dropped, n);
	nx_free(x);
}

static void test_rx_reset_drops_held_buffers(void **state)
{
	(void)state;
	struct nx *x = nx_new(false, 0);
	uint8_t frame[60];
	uint32_t id, len;
	x->fb.be.mtu = 9000;
	assert_true(nx_driver_up(x, FB(MRG_RXBUF)));
	nx_post_rx(x, 0, BUF_GPA, 2048); /* held: not enough for a 9000-byte frame */
	tpci_notify(&x->p, VIRTIO_NET_RXQ);
	nx_run(x);
	assert_true(nx_driver_up(x, 0)); /* reset: the held chain belongs to the old rings */
	nx_post_rx(x, 7, BUF_GPA + 0x8000, 2048);
	tpci_notify(&x->p, VIRTIO_NET_RXQ);
	nx_host_send(x, frame, nx_frame(frame, sizeof(frame), x->mac, 1));
	nx_run(x);
	assert_true(tvq_get_used(&x->rx, &id, &len));
	assert_int_equal(id, 7);
	assert_false(tvq_get_used(&x->rx, &id, &len));
	nx_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rx_plain),
	    cmocka_unit_test(test_rx_vnet_header_fixup),
	    cmocka_unit_test(test_rx_mergeable),
	    cmocka_unit_test(test_rx_mergeable_small_ring),
	    cmocka_unit_test(test_rx_waits_for_buffers),
	    cmocka_unit_test(test_rx_frame_too_big_dropped),
	    cmocka_unit_test(test_rx_bad_chains_need_reset),
	    cmocka_unit_test(test_rx_many_pieces),
	    cmocka_unit_test(test_rx_budget),
	    cmocka_unit_test(test_rx_reset_drops_held_buffers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
