/* SPDX-License-Identifier: MIT */
/* virtio-net control queue (see virtio_net.h). Runs with the device lock held. */
#include "devices/virtio/virtio_net_priv.h"
#include "common/log.h"

#include <string.h>

/* Every live queue of pairs [0, k): the driver must have set them up before using them. */
static bool ctrl_pairs_live(struct virtio_net *n, unsigned k)
{
	for (unsigned i = 0; i < k; i++) {
		struct virtq *rx = virtio_dev_queue(&n->vdev, net_rxq(i));
		struct virtq *tx = virtio_dev_queue(&n->vdev, net_txq(i));
		if (!rx || !tx || !rx->live || !tx->live)
			return false;
	}
	return true;
}

/* VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET: le16 pairs, 1..max_virtqueue_pairs. */
static uint8_t ctrl_mq(struct virtio_net *n, uint8_t cmd, const struct iovec *iov, unsigned niov,
		       size_t len)
{
	uint16_t k;
	if (!n->mq || cmd != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET || len != 2 ||
	    net_iov_read(iov, niov, 2, &k, 2) != 2)
		return VIRTIO_NET_ERR;
	if (k < 1 || k > n->max_pairs || !ctrl_pairs_live(n, k)) {
		vlog_rl("virtio-net: driver asked for %u queue pairs (1..%u, set up)", k,
			n->max_pairs);
		return VIRTIO_NET_ERR;
	}
	vdebug("virtio-net: %s: %u of %u queue pairs in use", n->be->desc, k, n->max_pairs);
	net_pairs_set_active(n, k);
	return VIRTIO_NET_OK;
}

/* Called with every pair lock held (the filter and settings are read by the pairs). */
static uint8_t ctrl_command(struct virtio_net *n, uint8_t cls, uint8_t cmd, const struct iovec *iov,
			    unsigned niov, size_t len)
{
	uint8_t b[6];
	switch (cls) {
	case VIRTIO_NET_CTRL_RX:
		if (!n->ctrl_rx || len != 1 || net_iov_read(iov, niov, 2, b, 1) != 1)
			return VIRTIO_NET_ERR;
		if (cmd == VIRTIO_NET_CTRL_RX_PROMISC)
			n->filter.promisc = b[0] != 0;
		else if (cmd == VIRTIO_NET_CTRL_RX_ALLMULTI)
			n->filter.allmulti = b[0] != 0;
		else
			return VIRTIO_NET_ERR;
		return VIRTIO_NET_OK;
	case VIRTIO_NET_CTRL_MAC:
		if (cmd == VIRTIO_NET_CTRL_MAC_TABLE_SET && n->ctrl_rx)
			return vnet_rx_filter_set_table(&n->filter, iov, niov, 2, len)
				   ? VIRTIO_NET_ERR
				   : VIRTIO_NET_OK;
		if (cmd == VIRTIO_NET_CTRL_MAC_ADDR_SET &&
		    virtio_dev_has_feature(&n->vdev, VIRTIO_NET_F_CTRL_MAC_ADDR) && len == 6 &&
		    net_iov_read(iov, niov, 2, b, 6) == 6 && net_mac_valid(b)) {
			memcpy(n->filter.mac, b, 6);
			return VIRTIO_NET_OK;
		}
		return VIRTIO_NET_ERR;
	case VIRTIO_NET_CTRL_MQ:
		return ctrl_mq(n, cmd, iov, niov, len);
	default:
		return VIRTIO_NET_ERR;
	}
}

void net_ctrl_process(struct virtio_net *n)
{
	struct vq_chain *c = n->ctrl_chain;
	unsigned q = net_ctrlq(n);
	struct virtq *vq = virtio_dev_queue(&n->vdev, q);
	bool pushed = false;
	uint8_t hdr[2];

	if (!n->running || n->ctrl_halted || !vq || !vq->live)
		return;
	for (unsigned budget = VIRTIO_NET_BUDGET; budget; budget--) {
		int r = virtio_dev_queue_pop(&n->vdev, q, c);
		if (r <= 0)
			break;
		if (c->out_bytes < 2 || c->num_in == 0) {
			vlog_rl("virtio-net: queue %u: control command without header or ack byte; "
				"queue stopped until device reset",
				q);
			n->ctrl_halted = true;
			virtio_dev_set_needs_reset(&n->vdev);
			break;
		}
		net_iov_read(c->iov, c->num_out, 0, hdr, 2);
		net_pairs_lock(n);
		uint8_t ack =
		    ctrl_command(n, hdr[0], hdr[1], c->iov, c->num_out, (size_t)(c->out_bytes - 2));
		net_pairs_unlock(n);
		if (ack == VIRTIO_NET_OK)
			n->ctrl_ok++;
		else
			n->ctrl_err++;
		net_iov_write(c->iov + c->num_out, c->num_in, 0, &ack, 1);
		if (virtio_dev_queue_push(&n->vdev, q, c->head, 1) < 0)
			break;
		pushed = true;
	}
	if (pushed)
		virtio_dev_queue_signal(&n->vdev, q);
}
