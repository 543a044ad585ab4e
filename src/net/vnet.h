/* SPDX-License-Identifier: MIT */
/*
 * virtio-net protocol pieces that do not depend on queues or transports: the 12-byte
 * per-frame header (struct virtio_net_hdr_v1, virtio 1.x, little-endian) with its checks,
 * and the receive filter the driver programs through the control queue (VIRTIO_NET_CTRL_RX
 * and VIRTIO_NET_CTRL_MAC).
 *
 * Header checks: vnet_hdr_tx_check() accepts a header from the driver only if it uses
 * offloads the driver negotiated (NET_OFFLOAD_* for the host side: CSUM, TSO4, TSO6, ECN,
 * UFO) and is self-consistent (checksum range inside the frame, GSO with NEEDS_CSUM and a
 * non-zero gso_size, no receive-only flags). vnet_hdr_rx_fixup() makes a header received
 * from the host acceptable for a driver that negotiated the given guest offloads (clears
 * DATA_VALID without GUEST_CSUM) or refuses the frame (-EINVAL) when it cannot be.
 *
 * Filter (spec 5.1.6.5.1/2): broadcast and the NIC's own address always pass; with
 * promiscuous mode everything passes; multicast passes with all-multicast, a table match or
 * a table overflow (more entries than VNET_MAC_TABLE_MAX); other unicast only on a table
 * match or overflow. After a reset the filter is promiscuous, so a driver that never
 * programs it still receives everything.
 */
#ifndef VIREO_NET_VNET_H
#define VIREO_NET_VNET_H

#include "common/compiler.h"
#include <sys/uio.h>

struct virtio_net_hdr_v1 {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers;
};
_Static_assert(sizeof(struct virtio_net_hdr_v1) == 12, "virtio_net_hdr_v1 layout");

#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_F_RSC_INFO 4
#define VIRTIO_NET_HDR_GSO_NONE 0
#define VIRTIO_NET_HDR_GSO_TCPV4 1
#define VIRTIO_NET_HDR_GSO_UDP 3
#define VIRTIO_NET_HDR_GSO_TCPV6 4
#define VIRTIO_NET_HDR_GSO_ECN 0x80

#define VNET_ETH_HLEN 14u
#define VNET_MAC_TABLE_MAX 64

/* 0: the frame may be sent; -EINVAL: drop it. frame_len excludes the header. */
int vnet_hdr_tx_check(const struct virtio_net_hdr_v1 *h, size_t frame_len,
		      unsigned host_offloads) WUR;
/* 0: deliver (h possibly adjusted); -EINVAL: drop. */
int vnet_hdr_rx_fixup(struct virtio_net_hdr_v1 *h, unsigned guest_offloads) WUR;

struct vnet_rx_filter {
	bool promisc, allmulti;
	bool uni_overflow, multi_overflow;
	unsigned n_uni, n_multi;
	uint8_t mac[6]; /* the NIC's current address */
	uint8_t uni[VNET_MAC_TABLE_MAX][6];
	uint8_t multi[VNET_MAC_TABLE_MAX][6];
};

/* Post-reset state: promiscuous, empty tables, address mac. */
void vnet_rx_filter_reset(struct vnet_rx_filter *f, const uint8_t mac[6]);
bool vnet_rx_filter_accept(const struct vnet_rx_filter *f, const uint8_t dst[6]);
/*
 * VIRTIO_NET_CTRL_MAC_TABLE_SET payload: le32 n, n MACs (unicast), le32 m, m MACs
 * (multicast), exactly len bytes starting at byte off of iov. On a malformed payload the
 * filter is unchanged and -EINVAL is returned.
 */
int vnet_rx_filter_set_table(struct vnet_rx_filter *f, const struct iovec *iov, unsigned n,
			     size_t off, size_t len) WUR;

#endif
