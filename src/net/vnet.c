/* SPDX-License-Identifier: MIT */
/* virtio-net header checks and the receive filter (see vnet.h). */
#include "net/vnet.h"
#include "net/net.h"

#include <errno.h>
#include <string.h>

/* Does gso_type use only offloads in `offloads`? */
static bool vnet_gso_allowed(uint8_t gso_type, unsigned offloads)
{
	uint8_t base = gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;
	bool ecn = gso_type & VIRTIO_NET_HDR_GSO_ECN;

	if (ecn && (base == VIRTIO_NET_HDR_GSO_NONE || !(offloads & NET_OFFLOAD_ECN)))
		return false;
	switch (base) {
	case VIRTIO_NET_HDR_GSO_NONE:
		return true;
	case VIRTIO_NET_HDR_GSO_TCPV4:
		return offloads & NET_OFFLOAD_TSO4;
	case VIRTIO_NET_HDR_GSO_TCPV6:
		return offloads & NET_OFFLOAD_TSO6;
	case VIRTIO_NET_HDR_GSO_UDP:
		return offloads & NET_OFFLOAD_UFO;
	default:
		return false;
	}
}

int vnet_hdr_tx_check(const struct virtio_net_hdr_v1 *h, size_t frame_len, unsigned host_offloads)
{
	if (frame_len < VNET_ETH_HLEN || frame_len > NET_MAX_FRAME)
		return -EINVAL;
	if (h->flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM)
		return -EINVAL; /* DATA_VALID and RSC_INFO are for received frames only */
	if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
		if (!(host_offloads & NET_OFFLOAD_CSUM))
			return -EINVAL;
		/* The 16-bit checksum field must lie inside the frame. */
		if ((uint64_t)h->csum_start + h->csum_offset + 2 > frame_len)
			return -EINVAL;
	}
	if (!vnet_gso_allowed(h->gso_type, host_offloads))
		return -EINVAL;
	if (h->gso_type != VIRTIO_NET_HDR_GSO_NONE &&
	    (!(h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || h->gso_size == 0))
		return -EINVAL;
	return 0;
}

int vnet_hdr_rx_fixup(struct virtio_net_hdr_v1 *h, unsigned guest_offloads)
{
	bool csum = guest_offloads & NET_OFFLOAD_CSUM;

	if ((h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !csum)
		return -EINVAL; /* the guest cannot finish the checksum */
	if (!vnet_gso_allowed(h->gso_type, guest_offloads))
		return -EINVAL;
	/* Keep only what the driver may see: NEEDS_CSUM, and DATA_VALID with GUEST_CSUM. */
	h->flags &= csum ? (VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID) : 0;
	if (h->gso_type == VIRTIO_NET_HDR_GSO_NONE)
		h->gso_size = 0;
	return 0;
}

void vnet_rx_filter_reset(struct vnet_rx_filter *f, const uint8_t mac[6])
{
	memset(f, 0, sizeof(*f));
	f->promisc = true;
	memcpy(f->mac, mac, 6);
}

static bool vnet_table_has(const uint8_t (*t)[6], unsigned n, const uint8_t dst[6])
{
	for (unsigned i = 0; i < n; i++)
		if (!memcmp(t[i], dst, 6))
			return true;
	return false;
}

bool vnet_rx_filter_accept(const struct vnet_rx_filter *f, const uint8_t dst[6])
{
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	if (f->promisc || !memcmp(dst, bcast, 6) || !memcmp(dst, f->mac, 6))
		return true;
	if (dst[0] & 1)
		return f->allmulti || f->multi_overflow ||
		       vnet_table_has(f->multi, f->n_multi, dst);
	return f->uni_overflow || vnet_table_has(f->uni, f->n_uni, dst);
}

/* One table: le32 count then count addresses, starting at *off; advances *off. */
static int vnet_table_parse(const struct iovec *iov, unsigned n, size_t *off, size_t end,
			    uint8_t (*table)[6], unsigned *count, bool *overflow)
{
	uint32_t entries;
	if (end - *off < 4 || net_iov_read(iov, n, *off, &entries, 4) != 4)
		return -EINVAL;
	*off += 4;
	if ((uint64_t)entries * 6 > end - *off)
		return -EINVAL;
	*overflow = entries > VNET_MAC_TABLE_MAX;
	*count = *overflow ? 0 : entries;
	if (*count && net_iov_read(iov, n, *off, table, (size_t)*count * 6) != (size_t)*count * 6)
		return -EINVAL;
	*off += (size_t)entries * 6;
	return 0;
}

int vnet_rx_filter_set_table(struct vnet_rx_filter *f, const struct iovec *iov, unsigned n,
			     size_t off, size_t len)
{
	struct {
		uint8_t uni[VNET_MAC_TABLE_MAX][6], multi[VNET_MAC_TABLE_MAX][6];
	} t;
	unsigned nu, nm;
	bool ou, om;
	size_t end;

	if (add_overflows(off, len, &end) || end > net_iov_len(iov, n))
		return -EINVAL;
	memset(&t, 0, sizeof(t));
	if (vnet_table_parse(iov, n, &off, end, t.uni, &nu, &ou) ||
	    vnet_table_parse(iov, n, &off, end, t.multi, &nm, &om) || off != end)
		return -EINVAL;
	memcpy(f->uni, t.uni, sizeof(t.uni));
	memcpy(f->multi, t.multi, sizeof(t.multi));
	f->n_uni = nu;
	f->n_multi = nm;
	f->uni_overflow = ou;
	f->multi_overflow = om;
	return 0;
}
