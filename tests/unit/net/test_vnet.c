/* SPDX-License-Identifier: MIT */
/* virtio-net header checks and the receive filter, including hostile MAC tables. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>
#include <cmocka.h>

#include "net/net.h"
#include "net/vnet.h"

#define ALL_HOST (NET_OFFLOAD_CSUM | NET_OFFLOAD_TSO4 | NET_OFFLOAD_TSO6 | NET_OFFLOAD_ECN)

static struct virtio_net_hdr_v1 hdr(uint8_t flags, uint8_t gso, uint16_t gso_size, uint16_t start,
				    uint16_t off)
{
	return (struct virtio_net_hdr_v1){.flags = flags,
					  .gso_type = gso,
					  .gso_size = gso_size,
					  .csum_start = start,
					  .csum_offset = off};
}

static void test_tx_check(void **state)
{
	(void)state;
	struct virtio_net_hdr_v1 h = hdr(0, 0, 0, 0, 0);
	assert_int_equal(vnet_hdr_tx_check(&h, 60, 0), 0);
	assert_int_equal(vnet_hdr_tx_check(&h, 14, 0), 0);
	assert_int_equal(vnet_hdr_tx_check(&h, 13, 0), -EINVAL); /* shorter than Ethernet */
	assert_int_equal(vnet_hdr_tx_check(&h, NET_MAX_FRAME, 0), 0);
	assert_int_equal(vnet_hdr_tx_check(&h, NET_MAX_FRAME + 1, ALL_HOST), -EINVAL);

	/* Checksum offload: only if negotiated, and the field inside the frame. */
	h = hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 34, 16);
	assert_int_equal(vnet_hdr_tx_check(&h, 100, 0), -EINVAL);
	assert_int_equal(vnet_hdr_tx_check(&h, 100, NET_OFFLOAD_CSUM), 0);
	assert_int_equal(vnet_hdr_tx_check(&h, 52, NET_OFFLOAD_CSUM), 0); /* 34+16+2 = 52 */
	assert_int_equal(vnet_hdr_tx_check(&h, 51, NET_OFFLOAD_CSUM), -EINVAL);
	h = hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0xffff, 0xffff); /* no 16-bit wrap */
	assert_int_equal(vnet_hdr_tx_check(&h, 60, NET_OFFLOAD_CSUM), -EINVAL);

	/* Receive-only flags. */
	h = hdr(VIRTIO_NET_HDR_F_DATA_VALID, 0, 0, 0, 0);
	assert_int_equal(vnet_hdr_tx_check(&h, 60, ALL_HOST), -EINVAL);
	h = hdr(VIRTIO_NET_HDR_F_RSC_INFO, 0, 0, 0, 0);
	assert_int_equal(vnet_hdr_tx_check(&h, 60, ALL_HOST), -EINVAL);
	h = hdr(0x80, 0, 0, 0, 0);
	assert_int_equal(vnet_hdr_tx_check(&h, 60, ALL_HOST), -EINVAL);

	/* GSO: negotiated type, NEEDS_CSUM and gso_size required. */
	h = hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 1448, 34, 16);
	assert_int_equal(vnet_hdr_tx_check(&h, 9000, NET_OFFLOAD_CSUM | NET_OFFLOAD_TSO4), 0);
	assert_int_equal(vnet_hdr_tx_check(&h, 9000, NET_OFFLOAD_CSUM | NET_OFFLOAD_TSO6), -EINVAL);
	h = hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV6, 1448, 54, 16);
	assert_int_equal(vnet_hdr_tx_check(&h, 9000, NET_OFFLOAD_CSUM | NET_OFFLOAD_TSO6), 0);
	h = hdr(0, VIRTIO_NET_HDR_GSO_TCPV4, 1448, 34, 16); /* GSO without NEEDS_CSUM */
	assert_int_equal(vnet_hdr_tx_check(&h, 9000, ALL_HOST), -EINVAL);
	h = hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 0, 34, 16); /* size 0 */
	assert_int_equal(vnet_hdr_tx_check(&h, 9000, ALL_HOST), -EINVAL);
	h = hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_UDP, 1448, 34, 6); /* no UFO */
	assert_int_equal(vnet_hdr_tx_check(&h, 9000, ALL_HOST), -EINVAL);
	h = hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, 2, 1448, 34, 16); /* unknown type */
	assert_int_equal(vnet_hdr_tx_check(&h, 9000, ALL_HOST), -EINVAL);
	h = hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN,
		1448, 34, 16);
	assert_int_equal(vnet_hdr_tx_check(&h, 9000, ALL_HOST), 0);
	assert_int_equal(vnet_hdr_tx_check(&h, 9000, ALL_HOST & ~NET_OFFLOAD_ECN), -EINVAL);
	h = hdr(0, VIRTIO_NET_HDR_GSO_ECN, 0, 0, 0); /* ECN alone */
	assert_int_equal(vnet_hdr_tx_check(&h, 60, ALL_HOST), -EINVAL);
}

static void test_rx_fixup(void **state)
{
	(void)state;
	struct virtio_net_hdr_v1 h = hdr(VIRTIO_NET_HDR_F_DATA_VALID, 0, 0, 0, 0);
	assert_int_equal(vnet_hdr_rx_fixup(&h, 0), 0);
	assert_int_equal(h.flags, 0); /* DATA_VALID hidden without GUEST_CSUM */
	h = hdr(VIRTIO_NET_HDR_F_DATA_VALID, 0, 0, 0, 0);
	assert_int_equal(vnet_hdr_rx_fixup(&h, NET_OFFLOAD_CSUM), 0);
	assert_int_equal(h.flags, VIRTIO_NET_HDR_F_DATA_VALID);
	h = hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 34, 16);
	assert_int_equal(vnet_hdr_rx_fixup(&h, 0), -EINVAL);
	assert_int_equal(vnet_hdr_rx_fixup(&h, NET_OFFLOAD_CSUM), 0);
	h = hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 1448, 34, 16);
	assert_int_equal(vnet_hdr_rx_fixup(&h, NET_OFFLOAD_CSUM), -EINVAL);
	assert_int_equal(vnet_hdr_rx_fixup(&h, NET_OFFLOAD_CSUM | NET_OFFLOAD_TSO4), 0);
	h = hdr(VIRTIO_NET_HDR_F_RSC_INFO, 0, 77, 0, 0);
	assert_int_equal(vnet_hdr_rx_fixup(&h, NET_OFFLOAD_CSUM), 0);
	assert_int_equal(h.flags, 0);
	assert_int_equal(h.gso_size, 0);
}

static const uint8_t own[6] = {0x0e, 0x76, 0x72, 1, 2, 3};
static const uint8_t other[6] = {0x0e, 0x76, 0x72, 9, 9, 9};
static const uint8_t mcast[6] = {0x01, 0x00, 0x5e, 0, 0, 1};
static const uint8_t mcast2[6] = {0x33, 0x33, 0, 0, 0, 1};
static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

/* Build a MAC_TABLE_SET payload: n unicast then m multicast addresses. */
static size_t table(uint8_t *buf, uint32_t n, const uint8_t *uni, uint32_t m, const uint8_t *multi)
{
	size_t o = 0;
	memcpy(buf + o, &n, 4);
	o += 4;
	for (uint32_t i = 0; i < n; i++, o += 6)
		memcpy(buf + o, uni ? uni : other, 6);
	memcpy(buf + o, &m, 4);
	o += 4;
	for (uint32_t i = 0; i < m; i++, o += 6)
		memcpy(buf + o, multi ? multi : mcast, 6);
	return o;
}

static void test_filter(void **state)
{
	(void)state;
	struct vnet_rx_filter f;
	uint8_t buf[2048];
	vnet_rx_filter_reset(&f, own);
	assert_true(f.promisc);
	assert_true(vnet_rx_filter_accept(&f, other));
	f.promisc = false;
	assert_true(vnet_rx_filter_accept(&f, own));
	assert_true(vnet_rx_filter_accept(&f, bcast));
	assert_false(vnet_rx_filter_accept(&f, other));
	assert_false(vnet_rx_filter_accept(&f, mcast));
	f.allmulti = true;
	assert_true(vnet_rx_filter_accept(&f, mcast));
	assert_false(vnet_rx_filter_accept(&f, other));
	f.allmulti = false;

	/* A table through a split iovec. */
	size_t len = table(buf + 2, 1, other, 1, mcast);
	struct iovec iov[3] = {{buf, 5}, {buf + 5, 7}, {buf + 12, len + 2 - 12}};
	assert_int_equal(vnet_rx_filter_set_table(&f, iov, 3, 2, len), 0);
	assert_true(vnet_rx_filter_accept(&f, other));
	assert_true(vnet_rx_filter_accept(&f, mcast));
	assert_false(vnet_rx_filter_accept(&f, mcast2));

	/* Overflow: more entries than we keep means "accept that class". */
	len = table(buf, VNET_MAC_TABLE_MAX + 1, other, 0, NULL);
	struct iovec one = {buf, len};
	assert_int_equal(vnet_rx_filter_set_table(&f, &one, 1, 0, len), 0);
	assert_true(f.uni_overflow);
	assert_true(vnet_rx_filter_accept(&f, (const uint8_t[6]){2, 0, 0, 0, 0, 7}));
	assert_false(vnet_rx_filter_accept(&f, mcast)); /* multicast table now empty */
}

static void test_filter_hostile(void **state)
{
	(void)state;
	struct vnet_rx_filter f, before;
	uint8_t buf[256];
	vnet_rx_filter_reset(&f, own);
	size_t len = table(buf, 1, other, 1, mcast);
	struct iovec one = {buf, sizeof(buf)};
	assert_int_equal(vnet_rx_filter_set_table(&f, &one, 1, 0, len), 0);
	before = f;

	/* Counts that run past the payload, including 32-bit wrap attempts. */
	uint32_t huge = 0xffffffffu, wrap = 0x2aaaaaabu; /* wrap * 6 overflows 32 bits */
	memcpy(buf, &huge, 4);
	assert_int_equal(vnet_rx_filter_set_table(&f, &one, 1, 0, len), -EINVAL);
	memcpy(buf, &wrap, 4);
	assert_int_equal(vnet_rx_filter_set_table(&f, &one, 1, 0, len), -EINVAL);
	assert_memory_equal(&f, &before, sizeof(f)); /* unchanged on error */

	len = table(buf, 1, other, 1, mcast);
	assert_int_equal(vnet_rx_filter_set_table(&f, &one, 1, 0, len - 1), -EINVAL); /* short */
	assert_int_equal(vnet_rx_filter_set_table(&f, &one, 1, 0, len + 1), -EINVAL); /* trailing */
	assert_int_equal(vnet_rx_filter_set_table(&f, &one, 1, 0, 3), -EINVAL);
	assert_int_equal(vnet_rx_filter_set_table(&f, &one, 1, 0, 0), -EINVAL);
	assert_int_equal(vnet_rx_filter_set_table(&f, &one, 1, SIZE_MAX - 2, 10), -EINVAL);
	assert_int_equal(vnet_rx_filter_set_table(&f, &one, 1, 200, 100), -EINVAL); /* past iov */
	assert_memory_equal(&f, &before, sizeof(f));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tx_check),
	    cmocka_unit_test(test_rx_fixup),
	    cmocka_unit_test(test_filter),
	    cmocka_unit_test(test_filter_hostile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
