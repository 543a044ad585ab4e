/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "test_virtio_blk_helper.h"
#include "memory/layout.h"

uint8_t vbx_pat(uint64_t off, unsigned seed)
{
	return (uint8_t)((off >> 9) * 13 + (off & 511) * 7 + seed);
}

void vbx_init(struct vbx *x)
{
	memset(x, 0, sizeof(*x));
	fake_platform_init(&x->fp, 0, 4096);
	x->ram = tvq_big_ram_map(&x->fp, VBX_RAM);
	assert_int_equal(pci_host_init(&x->host, &x->fp.plat, LAYOUT_PCI_ECAM_START,
				       LAYOUT_PCI_ECAM_SIZE, LAYOUT_PCI_MMIO_START,
				       LAYOUT_PCI_MMIO_SIZE),
			 0);
	snprintf(x->path, sizeof(x->path), "/tmp/vireo-vblk-XXXXXX");
	int fd = mkstemp(x->path);
	assert_true(fd >= 0);
	uint8_t *buf = malloc(VBX_DISK);
	assert_non_null(buf);
	for (uint64_t i = 0; i < VBX_DISK; i++)
		buf[i] = vbx_pat(i, 0);
	assert_int_equal(pwrite(fd, buf, VBX_DISK, 0), VBX_DISK);
	free(buf);
	close(fd);
}

static void vbx_create_dev(struct vbx *x, unsigned nq)
{
	assert_int_equal(virtio_blk_create(&x->blk, &x->fp.plat, &x->host, x->be, nq), 0);
	x->nq = nq;
	tpci_open(&x->p, &x->fp, &x->host, VBX_PCI_ID);
}

void vbx_attach_file(struct vbx *x, struct blk_config *cfg, unsigned nq)
{
	vbx_attach_file_loop(x, cfg, nq, NULL);
}

void vbx_attach_file_loop(struct vbx *x, struct blk_config *cfg, unsigned nq,
			  struct evloop *loop)
{
	char err[256] = "";
	snprintf(cfg->path, sizeof(cfg->path), "%s", x->path);
	int r = blk_open(&x->be, cfg, loop, err, sizeof(err));
	if (r)
		fail_msg("blk_open: %s", err);
	vbx_create_dev(x, nq);
}

static void sc_submit(struct blk_backend *be, struct blk_req *r)
{
	struct vbx_script *s = be->priv;
	assert_true(s->nsub < (int)ARRAY_SIZE(s->sub));
	s->sub[s->nsub++] = r;
}

static void sc_kick(struct blk_backend *be)
{
	(void)be;
}

/* Drain: everything "started" finishes now (successfully), like a host that completes. */
static void sc_drain(struct blk_backend *be)
{
	struct vbx_script *s = be->priv;
	s->drains++;
	for (int i = 0; i < s->nsub; i++) {
		if (s->sub[i])
			blk_core_finish(be, s->sub[i], 0);
		s->sub[i] = NULL;
	}
}

static void sc_close(struct blk_backend *be)
{
	(void)be;
}

static const struct blk_backend_ops script_ops = {
	.name = "script", .submit = sc_submit, .kick = sc_kick, .drain = sc_drain,
	.close = sc_close};

void vbx_attach_script(struct vbx *x, const struct blk_info *info, unsigned nq)
{
	assert_int_equal(blk_backend_new(&x->be, &script_ops, &x->script, info, NULL), 0);
	vbx_create_dev(x, nq);
}

void vbx_attach_ops(struct vbx *x, const struct blk_backend_ops *ops, void *priv,
		    const struct blk_info *info, unsigned nq)
{
	assert_int_equal(blk_backend_new(&x->be, ops, priv, info, NULL), 0);
	vbx_create_dev(x, nq);
}

void vbx_script_finish(struct vbx *x, int i, int res)
{
	assert_true(i < x->script.nsub && x->script.sub[i]);
	pthread_mutex_lock(&x->be->lock);
	blk_core_finish(x->be, x->script.sub[i], res);
	x->script.sub[i] = NULL;
	pthread_mutex_unlock(&x->be->lock);
}

void vbx_fini(struct vbx *x)
{
	pci_host_fini(&x->host);
	virtio_blk_destroy(x->blk);
	blk_close(x->be);
	tvq_big_ram_unmap(x->ram, VBX_RAM);
	fake_platform_fini(&x->fp);
	unlink(x->path);
}

uint64_t vbx_offered(struct vbx *x)
{
	uint64_t f = 0;
	for (unsigned w = 0; w < 2; w++) {
		tpci_common_wr(&x->p, VIRTIO_PCI_COMMON_DFSELECT, 4, w);
		f |= tpci_common_rd(&x->p, VIRTIO_PCI_COMMON_DF, 4) << (32 * w);
	}
	return f;
}

uint64_t vbx_cfg(struct vbx *x, uint32_t off, unsigned len)
{
	assert_true(x->p.device != 0);
	return tpci_rd(&x->p, x->p.device + off, len);
}

void vbx_up(struct vbx *x, uint64_t want)
{
	for (unsigned e = 0; e <= x->nq; e++)
		tpci_msix_program(&x->p, e);
	tpci_msix_enable(&x->p, true);
	assert_true(tpci_negotiate(&x->p, VIRTIO_BIT(VIRTIO_F_VERSION_1) | want));
	tpci_common_wr(&x->p, VIRTIO_PCI_COMMON_MSIX, 2, 0);
	for (unsigned q = 0; q < x->nq; q++) {
		tvq_layout(&x->t[q], &x->fp.mem, VBX_QGPA(q), VBX_QSIZE);
		tpci_queue_setup(&x->p, q, &x->t[q], (uint16_t)(q + 1));
		x->cursor[q] = 0;
	}
	tpci_driver_ok(&x->p);
	assert_false(tpci_status(&x->p) & VIRTIO_STATUS_NEEDS_RESET);
}

uint16_t vbx_chain(struct vbx *x, unsigned q, const struct tbuf *bufs, unsigned n)
{
	if (x->cursor[q] + n > VBX_QSIZE)
		x->cursor[q] = 0;
	uint16_t head = tvq_add_chain(&x->t[q], x->cursor[q], bufs, n);
	x->cursor[q] = (uint16_t)(x->cursor[q] + n);
	return head;
}

uint16_t vbx_req(struct vbx *x, unsigned q, uint32_t type, uint64_t sector,
		 const struct tbuf *data, unsigned ndata)
{
	struct tbuf b[8];
	assert_true(ndata + 2 <= ARRAY_SIZE(b));
	if (x->cursor[q] + ndata + 2 > VBX_QSIZE)
		x->cursor[q] = 0;
	uint16_t head = x->cursor[q];
	struct virtio_blk_outhdr h = {.type = type, .sector = sector};
	memcpy(tmem(&x->fp.mem, VBX_HDR(q, head), 16), &h, 16);
	*(uint8_t *)tmem(&x->fp.mem, VBX_STATUS(q, head), 1) = 0xff;
	b[0] = (struct tbuf){VBX_HDR(q, head), 16, false};
	for (unsigned i = 0; i < ndata; i++)
		b[1 + i] = data[i];
	b[1 + ndata] = (struct tbuf){VBX_STATUS(q, head), 1, true};
	return vbx_chain(x, q, b, ndata + 2);
}

void vbx_kick(struct vbx *x, unsigned q, uint16_t head)
{
	tvq_publish(&x->t[q], head);
	tpci_notify(&x->p, q);
}

void vbx_wait_used(struct vbx *x, unsigned q, uint16_t n)
{
	for (int i = 0; i < 500 && tvq_used_idx(&x->t[q]) != n; i++)
		assert_true(blk_poll(x->be, 10) >= 0);
	assert_int_equal(tvq_used_idx(&x->t[q]), n);
}

uint8_t vbx_status(struct vbx *x, unsigned q, uint16_t head)
{
	return *(uint8_t *)tmem(&x->fp.mem, VBX_STATUS(q, head), 1);
}

uint8_t vbx_do(struct vbx *x, unsigned q, uint32_t type, uint64_t sector,
	       const struct tbuf *data, unsigned ndata)
{
	uint16_t head = vbx_req(x, q, type, sector, data, ndata);
	uint16_t want = (uint16_t)(x->t[q].last_used + 1);
	uint32_t id, len;
	vbx_kick(x, q, head);
	vbx_wait_used(x, q, want);
	assert_true(tvq_get_used(&x->t[q], &id, &len));
	assert_int_equal(id, head);
	return vbx_status(x, q, head);
}

void vbx_file_read(struct vbx *x, uint64_t off, void *buf, size_t len)
{
	int fd = open(x->path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

void vbx_stats(struct vbx *x, struct virtio_blk_stats *st)
{
	virtio_blk_get_stats(x->blk, st);
}

int vbx_setup(void **state)
{
	struct vbx *x = calloc(1, sizeof(*x));
	assert_non_null(x);
	vbx_init(x);
	*state = x;
	return 0;
}

int vbx_teardown(void **state)
{
	struct vbx *x = *state;
	vbx_fini(x);
	free(x);
	return 0;
}
