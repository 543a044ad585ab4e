/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk against a hostile or broken driver: out-of-range and misaligned requests,
 * malformed chains, unknown request types, buffers overlapping the rings, host errors,
 * device reset with requests in flight, and republished descriptors.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "test_virtio_blk_helper.h"
#include "devices/virtio/virtio.h"

#define FEATURES                                                                                   \
	(VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) | VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) |                       \
	 VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX))
#define CAP (VBX_DISK / 512)

static void attach_file(struct vbx *x)
{
	struct blk_config cfg;
	blk_config_defaults(&cfg);
	vbx_attach_file(x, &cfg, 1);
	vbx_up(x, FEATURES);
}

static void attach_script(struct vbx *x)
{
	struct blk_info info = {.size = VBX_DISK, .logical_block = 512, .physical_block = 512};
	vbx_attach_script(x, &info, 1);
	vbx_up(x, FEATURES);
}

static void file_unchanged(struct vbx *x, uint64_t off, size_t len)
{
	uint8_t *b = malloc(len);
	vbx_file_read(x, off, b, len);
	for (size_t i = 0; i < len; i++)
		if (b[i] != vbx_pat(off + i, 0))
			fail_msg("disk byte %llu changed", (unsigned long long)(off + i));
	free(b);
}

/* A good request still works and the device did not ask for a reset. */
static void still_healthy(struct vbx *x)
{
	struct tbuf d = {VBX_DATA + 0x100000, 512, true};
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_IN, 1, &d, 1), VIRTIO_BLK_S_OK);
	assert_int_equal(*(uint8_t *)tmem(&x->fp.mem, VBX_DATA + 0x100000, 1), vbx_pat(512, 0));
	assert_false(tpci_status(&x->p) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_out_of_range_and_misaligned(void **state)
{
	struct vbx *x = *state;
	attach_file(x);
	memset(tmem(&x->fp.mem, VBX_DATA, 8192), 0x5a, 8192);
	static const struct {
		uint64_t sector;
		uint32_t len;
	} bad[] = {
		{CAP, 512},		     /* just past the end */
		{CAP - 1, 1024},	     /* straddles the end */
		{UINT64_MAX, 512},	     /* absurd sector */
		{UINT64_MAX / 512 + 1, 512}, /* sector * 512 overflows */
		{UINT64_MAX - 1, 1024},	     /* sector + count overflows */
		{0, 700},		     /* not a multiple of 512 */
		{0, 511},
	};
	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		for (int write = 0; write < 2; write++) {
			struct tbuf d = {VBX_DATA, bad[i].len, !write};
			uint8_t st = vbx_do(x, 0, write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
					    bad[i].sector, &d, 1);
			if (st != VIRTIO_BLK_S_IOERR)
				fail_msg("case %u (%s): status %u", i, write ? "write" : "read", st);
		}
	}
	/* Reads that failed validation never touched the buffer. */
	uint8_t *p = tmem(&x->fp.mem, VBX_DATA, 8192);
	for (unsigned i = 0; i < 8192; i++)
		assert_int_equal(p[i], 0x5a);
	file_unchanged(x, 0, 4096);
	file_unchanged(x, VBX_DISK - 4096, 4096);
	/* A zero-length read inside the disk is fine. */
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_IN, 5, NULL, 0), VIRTIO_BLK_S_OK);
	struct virtio_blk_stats st;
	vbx_stats(x, &st);
	assert_int_equal(st.errors, 2 * ARRAY_SIZE(bad));
	still_healthy(x);
}

static void test_short_and_writable_header(void **state)
{
	struct vbx *x = *state;
	attach_file(x);
	uint32_t id, len;

	/* 8 readable header bytes only. */
	struct virtio_blk_outhdr h = {.type = VIRTIO_BLK_T_IN, .sector = 0};
	memcpy(tmem(&x->fp.mem, VBX_HDR(0, 0), 16), &h, 16);
	*(uint8_t *)tmem(&x->fp.mem, VBX_STATUS(0, 0), 1) = 0xff;
	struct tbuf a[3] = {{VBX_HDR(0, 0), 8, false},
			    {VBX_DATA, 512, true},
			    {VBX_STATUS(0, 0), 1, true}};
	uint16_t head = vbx_chain(x, 0, a, 3);
	vbx_kick(x, 0, head);
	vbx_wait_used(x, 0, 1);
	assert_int_equal(vbx_status(x, 0, 0), VIRTIO_BLK_S_IOERR);
	assert_true(tvq_get_used(&x->t[0], &id, &len));
	assert_int_equal(len, 513);

	/* Header in a device-writable descriptor: no readable bytes at all. */
	uint8_t *wh = tmem(&x->fp.mem, VBX_DATA + 0x1000, 17);
	memcpy(wh, &h, 16);
	wh[16] = 0xff;
	struct tbuf b[1] = {{VBX_DATA + 0x1000, 17, true}};
	head = vbx_chain(x, 0, b, 1);
	vbx_kick(x, 0, head);
	vbx_wait_used(x, 0, 2);
	assert_true(tvq_get_used(&x->t[0], &id, &len));
	assert_int_equal(len, 17);
	assert_int_equal(wh[16], VIRTIO_BLK_S_IOERR);
	assert_memory_equal(wh, &h, 16); /* the "header" was not overwritten */
	still_healthy(x);
}

static void test_unknown_types(void **state)
{
	struct vbx *x = *state;
	attach_file(x);
	static const uint32_t types[] = {2, 3, VIRTIO_BLK_T_GET_LIFETIME,
					 VIRTIO_BLK_T_SECURE_ERASE, 0x80000000u, UINT32_MAX};
	for (unsigned i = 0; i < ARRAY_SIZE(types); i++) {
		struct tbuf d = {VBX_DATA, 512, true};
		assert_int_equal(vbx_do(x, 0, types[i], 0, &d, 1), VIRTIO_BLK_S_UNSUPP);
	}
	struct virtio_blk_stats st;
	vbx_stats(x, &st);
	assert_int_equal(st.unsupported, ARRAY_SIZE(types));
	still_healthy(x);
}

/* No writable byte: nothing to answer in. Returned with len 0, NEEDS_RESET, queue stops. */
static void test_no_status_byte(void **state)
{
	struct vbx *x = *state;
	attach_file(x);
	struct virtio_blk_outhdr h = {.type = VIRTIO_BLK_T_OUT, .sector = 0};
	memcpy(tmem(&x->fp.mem, VBX_HDR(0, 0), 16), &h, 16);
	memset(tmem(&x->fp.mem, VBX_DATA, 512), 0x42, 512);
	struct tbuf a[2] = {{VBX_HDR(0, 0), 16, false}, {VBX_DATA, 512, false}};
	uint16_t head = vbx_chain(x, 0, a, 2);
	vbx_kick(x, 0, head);
	vbx_wait_used(x, 0, 1);
	uint32_t id, len;
	assert_true(tvq_get_used(&x->t[0], &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, 0);
	assert_true(tpci_status(&x->p) & VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(tpci_msi_fired(&x->p, 0), 1); /* config interrupt */
	file_unchanged(x, 0, 512);

	/* Until reset, further requests are left alone. */
	struct tbuf d = {VBX_DATA, 512, true};
	vbx_kick(x, 0, vbx_req(x, 0, VIRTIO_BLK_T_IN, 0, &d, 1));
	assert_int_equal(blk_poll(x->be, 50), 0);
	assert_int_equal(tvq_used_idx(&x->t[0]), 1);

	vbx_up(x, FEATURES);
	still_healthy(x);
}

/* Buffers that overlap the rings corrupt only the guest's own view. */
static void test_buffers_over_the_rings(void **state)
{
	struct vbx *x = *state;
	attach_file(x);
	/* Read disk data over the descriptor table (including this chain's descriptors). */
	struct tbuf d = {VBX_QGPA(0), 4096, true};
	uint16_t head = vbx_req(x, 0, VIRTIO_BLK_T_IN, 0, &d, 1);
	vbx_kick(x, 0, head);
	vbx_wait_used(x, 0, 1);
	assert_int_equal(vbx_status(x, 0, head), VIRTIO_BLK_S_OK);

	/* The status byte inside the used ring's element area, data over the avail ring. */
	vbx_up(x, FEATURES);
	struct virtio_blk_outhdr h = {.type = VIRTIO_BLK_T_IN, .sector = 0};
	memcpy(tmem(&x->fp.mem, VBX_HDR(0, 0), 16), &h, 16);
	struct tbuf a[3] = {{VBX_HDR(0, 0), 16, false},
			    {x->t[0].avail, 512, true},
			    {x->t[0].used + 8, 1, true}};
	head = vbx_chain(x, 0, a, 3);
	vbx_kick(x, 0, head);
	for (int i = 0; i < 100 && tvq_used_idx(&x->t[0]) == 0; i++)
		assert_true(blk_poll(x->be, 10) >= 0);
	/* Whatever the guest did to itself, a reset brings back a working device. */
	vbx_up(x, FEATURES);
	still_healthy(x);
	/* Writes from a buffer that is the ring itself. */
	struct tbuf w = {x->t[0].desc, 512, false};
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_OUT, 100, &w, 1), VIRTIO_BLK_S_OK);
	still_healthy(x);
}

static void test_host_errors(void **state)
{
	struct vbx *x = *state;
	attach_file(x);
	struct tbuf d = {VBX_DATA, 4096, false};
	memset(tmem(&x->fp.mem, VBX_DATA, 4096), 0x66, 4096);
	blk_inject_error(x->be, BLK_OP_WRITE, ENOSPC, 1);
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_OUT, 0, &d, 1), VIRTIO_BLK_S_IOERR);
	file_unchanged(x, 0, 4096);
	blk_inject_error(x->be, BLK_OP_READ, EIO, 1);
	d.write = true;
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_IN, 0, &d, 1), VIRTIO_BLK_S_IOERR);
	blk_inject_error(x->be, BLK_OP_FLUSH, EIO, 1);
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0), VIRTIO_BLK_S_IOERR);
	/* A multi-segment write-zeroes with one failing segment fails as a whole. */
	blk_inject_error(x->be, BLK_OP_WRITE_ZEROES, ENOSPC, 1);
	struct virtio_blk_dwz_seg s[2] = {{64, 8, 0}, {128, 8, 0}};
	memcpy(tmem(&x->fp.mem, VBX_DATA + 0x10000, 32), s, 32);
	struct tbuf p = {VBX_DATA + 0x10000, 32, false};
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, &p, 1), VIRTIO_BLK_S_IOERR);
	struct virtio_blk_stats st;
	vbx_stats(x, &st);
	assert_int_equal(st.errors, 4);
	assert_int_equal(st.write_bytes, 0);
	assert_int_equal(st.inflight, 0);
	still_healthy(x);
}

/* Reset while the host still works on requests: nothing reaches the guest afterwards. */
static void test_reset_with_requests_in_flight(void **state)
{
	struct vbx *x = *state;
	attach_script(x);
	uint16_t heads[3];
	for (int i = 0; i < 3; i++) {
		struct tbuf d = {VBX_DATA + 4096ULL * i, 512, true};
		/* Not adjacent: three host I/Os (test_virtio_blk_merge.c covers merged ones). */
		heads[i] = vbx_req(x, 0, VIRTIO_BLK_T_IN, 2ULL * i, &d, 1);
		tvq_publish(&x->t[0], heads[i]);
	}
	tpci_notify(&x->p, 0);
	assert_int_equal(x->script.nsub, 3);
	vbx_script_finish(x, 1, 0); /* finished by the host, not yet delivered */
	struct virtio_blk_stats st;
	vbx_stats(x, &st);
	assert_int_equal(st.inflight, 3);

	int drains = x->script.drains;
	tpci_set_status(&x->p, 0);
	assert_int_equal(x->script.drains, drains + 1); /* reset waited for the host */
	assert_int_equal(blk_poll(x->be, 0), 3);
	assert_int_equal(tvq_used_idx(&x->t[0]), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(vbx_status(x, 0, heads[i]), 0xff);
	vbx_stats(x, &st);
	assert_int_equal(st.inflight, 0);
	assert_int_equal(st.reads, 0);
	assert_int_equal(blk_outstanding(x->be), 0);

	vbx_up(x, FEATURES);
	x->script.nsub = 0;
	struct tbuf d = {VBX_DATA, 512, true};
	uint16_t head = vbx_req(x, 0, VIRTIO_BLK_T_IN, 0, &d, 1);
	vbx_kick(x, 0, head);
	vbx_script_finish(x, 0, 0);
	vbx_wait_used(x, 0, 1);
	assert_int_equal(vbx_status(x, 0, head), VIRTIO_BLK_S_OK);
}

static void test_reset_real_io(void **state)
{
	struct vbx *x = *state;
	attach_file(x);
	uint16_t heads[5];
	for (int i = 0; i < 5; i++) {
		struct tbuf d = {VBX_DATA + 0x100000ULL * i, 0x100000, true};
		heads[i] = vbx_req(x, 0, VIRTIO_BLK_T_IN, 2048ULL * i, &d, 1);
		tvq_publish(&x->t[0], heads[i]);
	}
	tpci_notify(&x->p, 0);
	tpci_set_status(&x->p, 0);
	/* Whatever the host finished, nothing is pushed or answered after the reset. */
	for (int i = 0; i < 10; i++)
		assert_true(blk_poll(x->be, 5) >= 0);
	assert_int_equal(blk_outstanding(x->be), 0);
	assert_int_equal(tvq_used_idx(&x->t[0]), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(vbx_status(x, 0, heads[i]), 0xff);
	vbx_up(x, FEATURES);
	still_healthy(x);
}

/* A driver republishing in-flight heads cannot make the device hold more than the queue. */
static void test_republished_heads_are_throttled(void **state)
{
	struct vbx *x = *state;
	attach_script(x);
	struct tbuf d = {VBX_DATA, 512, true};
	uint16_t head = vbx_req(x, 0, VIRTIO_BLK_T_IN, 0, &d, 1);
	for (int i = 0; i < VBX_QSIZE; i++)
		tvq_publish(&x->t[0], head);
	tpci_notify(&x->p, 0);
	assert_int_equal(x->script.nsub, VBX_QSIZE);
	for (int i = 0; i < 4; i++)
		tvq_publish(&x->t[0], head);
	tpci_notify(&x->p, 0);
	assert_int_equal(x->script.nsub, VBX_QSIZE); /* nothing more taken */
	vbx_script_finish(x, 0, 0);
	assert_int_equal(blk_poll(x->be, 0), 1);
	assert_int_equal(x->script.nsub, VBX_QSIZE + 1); /* room for exactly one more */
	assert_int_equal(tvq_used_idx(&x->t[0]), 1);
	assert_false(tpci_status(&x->p) & VIRTIO_STATUS_NEEDS_RESET);
	/* Teardown with requests still in flight must not leak or touch freed memory. */
}

static void test_queue_count_clamped(void **state)
{
	struct vbx *x = *state;
	struct blk_info info = {.size = VBX_DISK, .logical_block = 512, .physical_block = 512};
	vbx_attach_script(x, &info, 500);
	assert_int_equal(tpci_common_rd(&x->p, VIRTIO_PCI_COMMON_NUMQ, 2), VIRTIO_BLK_MAX_QUEUES);
	assert_int_equal(vbx_cfg(x, 34, 2), VIRTIO_BLK_MAX_QUEUES);
}

/* A 4 KiB-sector disk: 512-byte aligned but not 4 KiB aligned requests are refused. */
static void test_large_logical_block(void **state)
{
	struct vbx *x = *state;
	struct blk_info info = {.size = VBX_DISK, .logical_block = 4096, .physical_block = 4096};
	vbx_attach_script(x, &info, 1);
	vbx_up(x, FEATURES | VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE));
	assert_int_equal(vbx_cfg(x, 20, 4), 4096);
	struct tbuf d = {VBX_DATA, 512, true};
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_IN, 8, &d, 1), VIRTIO_BLK_S_IOERR);
	d.len = 4096;
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_IN, 1, &d, 1), VIRTIO_BLK_S_IOERR);
	assert_int_equal(x->script.nsub, 0);
	uint16_t head = vbx_req(x, 0, VIRTIO_BLK_T_IN, 8, &d, 1);
	vbx_kick(x, 0, head);
	assert_int_equal(x->script.nsub, 1);
	assert_int_equal(x->script.sub[0]->offset, 4096);
	vbx_script_finish(x, 0, 0);
	vbx_wait_used(x, 0, 3);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, vbx_setup, vbx_teardown)
	const struct CMUnitTest tests[] = {
		T(test_out_of_range_and_misaligned),
		T(test_short_and_writable_header),
		T(test_unknown_types),
		T(test_no_status_byte),
		T(test_buffers_over_the_rings),
		T(test_host_errors),
		T(test_reset_with_requests_in_flight),
		T(test_reset_real_io),
		T(test_republished_heads_are_throttled),
		T(test_queue_count_clamped),
		T(test_large_logical_block),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
