/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <cmocka.h>

#include "net_helper.h"
#include "memory/layout.h"

static int fb_send(struct net_backend *be, const struct iovec *iov, unsigned n)
{
	struct fake_be *f = container_of(be, struct fake_be, be);
	assert_true(n <= NET_SEND_MAX_IOV);
	if (f->send_ret)
		return f->send_ret;
	assert_true(f->ntx < FB_MAX);
	struct fb_frame *fr = &f->tx[f->ntx++];
	fr->len = net_iov_len(iov, n);
	fr->data = malloc(fr->len ? fr->len : 1);
	assert_non_null(fr->data);
	net_iov_read(iov, n, 0, fr->data, fr->len);
	return 0;
}

static ssize_t fb_recv(struct net_backend *be, const struct iovec *iov, unsigned n)
{
	struct fake_be *f = container_of(be, struct fake_be, be);
	assert_true(n <= NET_RECV_MAX_IOV);
	f->recv_calls++;
	if (f->rx_head == f->rx_tail)
		return -EAGAIN;
	struct fb_frame *fr = &f->rx[f->rx_head++ % FB_MAX];
	net_iov_write(iov, n, 0, fr->data, fr->len);
	free(fr->data);
	fr->data = NULL;
	return (ssize_t)fr->len;
}

static int fb_flush(struct net_backend *be)
{
	struct fake_be *f = container_of(be, struct fake_be, be);
	f->flush_calls++;
	return f->flush_ret;
}

static int fb_set_offload(struct net_backend *be, unsigned offloads)
{
	struct fake_be *f = container_of(be, struct fake_be, be);
	if (offloads & ~be->offload_caps)
		return -EOPNOTSUPP;
	f->offloads = offloads;
	f->offload_calls++;
	return 0;
}

static int fb_queue_attach(struct net_backend *be, bool attach)
{
	struct fake_be *f = container_of(be, struct fake_be, be);
	f->attach_calls++;
	f->attached = attach;
	return 0;
}

static void fb_close(struct net_backend *be)
{
	struct fake_be *f = container_of(be, struct fake_be, be);
	while (f->rx_head != f->rx_tail)
		free(f->rx[f->rx_head++ % FB_MAX].data);
	for (unsigned i = 0; i < f->ntx; i++)
		free(f->tx[i].data);
	close(be->fd);
}

static const struct net_backend_ops fb_ops = {
    .kind = "fake",
    .send = fb_send,
    .recv = fb_recv,
    .flush = fb_flush,
    .set_offload = fb_set_offload,
    .queue_attach = fb_queue_attach,
    .close = fb_close,
};

static void fb_init(struct fake_be *f, bool vnet_hdr, unsigned offload_caps, bool vhost)
{
	f->be.ops = &fb_ops;
	f->be.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(f->be.fd >= 0);
	f->be.vnet_hdr = vnet_hdr;
	f->be.offload_caps = offload_caps;
	f->be.mtu = 1500;
	f->be.vhost_wanted = vhost;
	f->attached = true;
	strcpy(f->be.desc, "fake");
}

static struct nx *nx_create(bool vnet_hdr, unsigned offload_caps, bool vhost, unsigned pairs)
{
	struct nx *x = calloc(1, sizeof(*x));
	assert_non_null(x);
	assert_true(pairs >= 1 && pairs <= NX_MAX_PAIRS);
	fake_platform_init(&x->fp, 0, RAM_SIZE);
	assert_int_equal(evloop_init(&x->loop), 0);
	x->fp.plat.loop = &x->loop;
	assert_int_equal(pci_host_init(&x->host, &x->fp.plat, LAYOUT_PCI_ECAM_START,
				       LAYOUT_PCI_ECAM_SIZE, LAYOUT_PCI_MMIO_START,
				       LAYOUT_PCI_MMIO_SIZE),
			 0);
	fb_init(&x->fb, vnet_hdr, offload_caps, vhost);
	x->pairs = pairs;
	x->qfb[0] = &x->fb;
	x->qbe[0] = &x->fb.be;
	for (unsigned i = 1; i < pairs; i++) {
		x->qfb[i] = calloc(1, sizeof(*x->qfb[i]));
		assert_non_null(x->qfb[i]);
		fb_init(x->qfb[i], vnet_hdr, offload_caps, vhost);
		x->qbe[i] = &x->qfb[i]->be;
	}
	if (pairs > 1) {
		x->fb.be.nr_queues = pairs;
		x->fb.be.queues = x->qbe;
	}
	net_mac_default(x->mac, "unit", 0);
	assert_int_equal(virtio_net_create(&x->net, &x->fp.plat, &x->host, &x->fb.be, x->mac), 0);
	tpci_open(&x->p, &x->fp, &x->host, NET_PCI_ID);
	return x;
}

struct nx *nx_new(bool vnet_hdr, unsigned offload_caps)
{
	return nx_create(vnet_hdr, offload_caps, false, 1);
}

struct nx *nx_new_mq(unsigned pairs, bool vnet_hdr, unsigned offload_caps)
{
	return nx_create(vnet_hdr, offload_caps, false, pairs);
}

struct nx *nx_new_vhost(bool vnet_hdr, unsigned offload_caps)
{
	return nx_create(vnet_hdr, offload_caps, true, 1);
}

void nx_free(struct nx *x)
{
	pci_host_fini(&x->host);
	virtio_net_destroy(x->net);
	fb_close(&x->fb.be);
	for (unsigned i = 1; i < x->pairs; i++) {
		fb_close(&x->qfb[i]->be);
		free(x->qfb[i]);
	}
	evloop_fini(&x->loop);
	fake_platform_fini(&x->fp);
	free(x);
}

void nx_run(struct nx *x)
{
	for (unsigned i = 0; i < 10000; i++) {
		int r = evloop_run_once(&x->loop, 0);
		assert_true(r >= 0);
		if (r == 0)
			return;
	}
	fail_msg("I/O loop does not settle");
}

bool nx_driver_up(struct nx *x, uint64_t want)
{
	for (unsigned e = 0; e < 4; e++)
		tpci_msix_program(&x->p, e);
	tpci_msix_enable(&x->p, true);
	if (!tpci_negotiate(&x->p, VIRTIO_BIT(VIRTIO_F_VERSION_1) | want))
		return false;
	tpci_common_wr(&x->p, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
	uint64_t off = tpci_common_rd(&x->p, VIRTIO_PCI_COMMON_DF, 4);
	tpci_common_wr(&x->p, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	off |= tpci_common_rd(&x->p, VIRTIO_PCI_COMMON_DF, 4) << 32;
	x->features = off & (want | VIRTIO_BIT(VIRTIO_F_VERSION_1));
	tpci_common_wr(&x->p, VIRTIO_PCI_COMMON_MSIX, 2, 0);
	tvq_layout(&x->rx, &x->fp.mem, RXQ_GPA, QSIZE);
	tvq_layout(&x->tx, &x->fp.mem, TXQ_GPA, QSIZE);
	tpci_queue_setup(&x->p, VIRTIO_NET_RXQ, &x->rx, 1);
	tpci_queue_setup(&x->p, VIRTIO_NET_TXQ, &x->tx, 2);
	if (x->features & VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ)) {
		tvq_layout(&x->cq, &x->fp.mem, CQ_GPA, QSIZE);
		tpci_queue_setup(&x->p, VIRTIO_NET_CTRLQ, &x->cq, 3);
	}
	tpci_driver_ok(&x->p);
	assert_false(nx_needs_reset(x));
	nx_run(x);
	return true;
}

void nx_host_send(struct nx *x, const void *frame, size_t len)
{
	nx_host_send_q(x, 0, frame, len);
}

unsigned nx_ctrlq(const struct nx *x)
{
	return x->features & VIRTIO_BIT(VIRTIO_NET_F_MQ) ? 2 * x->pairs : VIRTIO_NET_CTRLQ;
}

bool nx_driver_up_mq(struct nx *x, uint64_t want, unsigned setup)
{
	assert_true(setup >= 1 && setup <= x->pairs);
	for (unsigned e = 0; e < 2 * x->pairs + 2; e++)
		tpci_msix_program(&x->p, e);
	tpci_msix_enable(&x->p, true);
	if (!tpci_negotiate(&x->p, VIRTIO_BIT(VIRTIO_F_VERSION_1) | want))
		return false;
	tpci_common_wr(&x->p, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
	uint64_t off = tpci_common_rd(&x->p, VIRTIO_PCI_COMMON_DF, 4);
	tpci_common_wr(&x->p, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	off |= tpci_common_rd(&x->p, VIRTIO_PCI_COMMON_DF, 4) << 32;
	x->features = off & (want | VIRTIO_BIT(VIRTIO_F_VERSION_1));
	tpci_common_wr(&x->p, VIRTIO_PCI_COMMON_MSIX, 2, 0);
	for (unsigned i = 0; i < setup; i++) {
		struct tvq *rx = i ? &x->qrx[i] : &x->rx, *tx = i ? &x->qtx[i] : &x->tx;
		tvq_layout(rx, &x->fp.mem, i ? MQ_GPA + i * 0x4000 : RXQ_GPA, QSIZE);
		tvq_layout(tx, &x->fp.mem, i ? MQ_GPA + i * 0x4000 + 0x2000 : TXQ_GPA, QSIZE);
		tpci_queue_setup(&x->p, 2 * i, rx, (uint16_t)(1 + 2 * i));
		tpci_queue_setup(&x->p, 2 * i + 1, tx, (uint16_t)(2 + 2 * i));
	}
	if (x->features & VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ)) {
		tvq_layout(&x->cq, &x->fp.mem, CQ_GPA, QSIZE);
		tpci_queue_setup(&x->p, nx_ctrlq(x), &x->cq, (uint16_t)(1 + nx_ctrlq(x)));
	}
	tpci_driver_ok(&x->p);
	nx_run(x);
	return true;
}

void nx_post_rx_q(struct nx *x, unsigned q, uint16_t head, uint64_t gpa, uint32_t len)
{
	struct tbuf b = {gpa, len, true};
	struct tvq *t = q ? &x->qrx[q] : &x->rx;
	memset(tmem(&x->fp.mem, gpa, len), 0xa5, len);
	tvq_publish(t, tvq_add_chain(t, head, &b, 1));
}

void nx_post_tx_q(struct nx *x, unsigned q, uint16_t head, uint64_t gpa,
		  const struct virtio_net_hdr_v1 *h, const void *frame, size_t len)
{
	struct tvq *t = q ? &x->qtx[q] : &x->tx;
	uint8_t *p = tmem(&x->fp.mem, gpa, sizeof(*h) + len);
	memcpy(p, h, sizeof(*h));
	memcpy(p + sizeof(*h), frame, len);
	struct tbuf b = {gpa, (uint32_t)(sizeof(*h) + len), false};
	tvq_publish(t, tvq_add_chain(t, head, &b, 1));
}

void nx_host_send_q(struct nx *x, unsigned q, const void *frame, size_t len)
{
	assert_true(q < x->pairs);
	struct fake_be *f = x->qfb[q];
	uint64_t one = 1;
	assert_true(f->rx_tail - f->rx_head < FB_MAX);
	struct fb_frame *fr = &f->rx[f->rx_tail++ % FB_MAX];
	fr->len = len;
	fr->data = malloc(len ? len : 1);
	assert_non_null(fr->data);
	memcpy(fr->data, frame, len);
	assert_int_equal(write(f->be.fd, &one, sizeof(one)), sizeof(one));
}

size_t nx_frame(uint8_t *buf, size_t len, const uint8_t dst[6], uint8_t seed)
{
	static const uint8_t src[6] = {0x02, 0, 0, 0, 0, 0x99};
	memcpy(buf, dst, 6);
	memcpy(buf + 6, src, 6);
	buf[12] = 0x08;
	buf[13] = 0x00;
	for (size_t i = 14; i < len; i++)
		buf[i] = (uint8_t)(seed + i * 7);
	return len;
}

void nx_post_rx(struct nx *x, uint16_t head, uint64_t gpa, uint32_t len)
{
	struct tbuf b = {gpa, len, true};
	memset(tmem(&x->fp.mem, gpa, len), 0xa5, len);
	tvq_publish(&x->rx, tvq_add_chain(&x->rx, head, &b, 1));
}

void nx_post_tx(struct nx *x, uint16_t head, uint64_t gpa, const struct virtio_net_hdr_v1 *h,
		const void *frame, size_t len, unsigned pieces)
{
	struct tbuf b[64];
	size_t total = sizeof(*h) + len, off = 0;
	uint8_t *p = tmem(&x->fp.mem, gpa, total);
	assert_true(pieces >= 1 && pieces <= 64 && pieces <= total);
	memcpy(p, h, sizeof(*h));
	memcpy(p + sizeof(*h), frame, len);
	for (unsigned i = 0; i < pieces; i++) {
		size_t l = i + 1 < pieces ? total / pieces : total - off;
		b[i] = (struct tbuf){gpa + off, (uint32_t)l, false};
		off += l;
	}
	tvq_publish(&x->tx, tvq_add_chain(&x->tx, head, b, pieces));
}

struct virtio_net_stats nx_stats(struct nx *x)
{
	struct virtio_net_stats s;
	virtio_net_get_stats(x->net, &s);
	return s;
}

bool nx_needs_reset(struct nx *x)
{
	return tpci_status(&x->p) & VIRTIO_STATUS_NEEDS_RESET;
}

uint8_t nx_ctrl(struct nx *x, uint8_t cls, uint8_t cmd, const void *data, size_t len)
{
	const uint64_t cmd_gpa = 0x40000, data_gpa = 0x41000, ack_gpa = 0x48000;
	uint8_t *c = tmem(&x->fp.mem, cmd_gpa, 2), *ack = tmem(&x->fp.mem, ack_gpa, 1);
	struct tbuf b[3];
	unsigned n = 0;
	uint32_t id, l;
	c[0] = cls;
	c[1] = cmd;
	*ack = 0xee;
	b[n++] = (struct tbuf){cmd_gpa, 2, false};
	if (len) {
		memcpy(tmem(&x->fp.mem, data_gpa, len), data, len);
		b[n++] = (struct tbuf){data_gpa, (uint32_t)len, false};
	}
	b[n++] = (struct tbuf){ack_gpa, 1, true};
	tvq_publish(&x->cq, tvq_add_chain(&x->cq, 0, b, n));
	tpci_notify(&x->p, nx_ctrlq(x));
	if (!tvq_get_used(&x->cq, &id, &l))
		return 0xee;
	assert_int_equal(id, 0);
	assert_int_equal(l, 1);
	return *ack;
}
