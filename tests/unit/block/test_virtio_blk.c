/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk end to end on the fake platform: identity and config space, reads and writes
 * landing in a real file (io_uring and thread-pool engines), FLUSH ordering, GET_ID,
 * DISCARD/WRITE_ZEROES, the writeback toggle, multiqueue, statistics and interrupts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "test_virtio_blk_helper.h"
#include "devices/virtio/virtio.h"
#include "block/qcow2.h"

#include <unistd.h>

#define ALL_FEATURES                                                                               \
	(VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) | VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) |                    \
	 VIRTIO_BIT(VIRTIO_BLK_F_TOPOLOGY) | VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) |                      \
	 VIRTIO_BIT(VIRTIO_BLK_F_CONFIG_WCE) | VIRTIO_BIT(VIRTIO_BLK_F_MQ) |                       \
	 VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) | VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES) |                \
	 VIRTIO_BIT(VIRTIO_F_EVENT_IDX) | VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC))

static enum blk_engine engine;

static void attach(struct vbx *x, bool ro, const char *serial, unsigned nq)
{
	struct blk_config cfg;
	blk_config_defaults(&cfg);
	cfg.readonly = ro;
	cfg.engine = engine;
	snprintf(cfg.serial, sizeof(cfg.serial), "%s", serial);
	vbx_attach_file(x, &cfg, nq);
}

static void fill(struct vbx *x, uint64_t gpa, size_t len, uint64_t disk_off, unsigned seed)
{
	uint8_t *p = tmem(&x->fp.mem, gpa, len);
	for (size_t i = 0; i < len; i++)
		p[i] = vbx_pat(disk_off + i, seed);
}

static void check(const uint8_t *p, size_t len, uint64_t disk_off, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != vbx_pat(disk_off + i, seed))
			fail_msg("byte %zu (disk offset %llu): %#x, expected %#x", i,
				 (unsigned long long)(disk_off + i), p[i], vbx_pat(disk_off + i, seed));
}

static void test_identity_and_config(void **state)
{
	struct vbx *x = *state;
	attach(x, false, "", 3);
	assert_int_equal(tpci_cfg_read(&x->p, PCI_CFG_REVISION, 4) >> 8, 0x010000);
	assert_int_equal(tpci_common_rd(&x->p, VIRTIO_PCI_COMMON_NUMQ, 2), 3);
	uint64_t f = vbx_offered(x);
	assert_true(f & VIRTIO_BIT(VIRTIO_F_VERSION_1));
	uint64_t want = ALL_FEATURES & ~(VIRTIO_BIT(VIRTIO_F_EVENT_IDX) |
					 VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC));
	assert_int_equal(f & want, want);
	assert_false(f & VIRTIO_BIT(VIRTIO_BLK_F_RO));
	assert_int_equal(vbx_cfg(x, 0, 8), VBX_DISK / 512);		  /* capacity */
	assert_int_equal(vbx_cfg(x, 0, 4), VBX_DISK / 512);		  /* low half */
	assert_int_equal(vbx_cfg(x, 12, 4), VIRTIO_BLK_SEG_MAX);	  /* seg_max */
	assert_int_equal(vbx_cfg(x, 20, 4), 512);			  /* blk_size */
	assert_true(vbx_cfg(x, 24, 1) <= 3);				  /* physical_block_exp */
	assert_int_equal(vbx_cfg(x, 32, 1), 1);				  /* writeback */
	assert_int_equal(vbx_cfg(x, 34, 2), 3);				  /* num_queues */
	assert_int_equal(vbx_cfg(x, 36, 4), VIRTIO_BLK_MAX_DWZ_SECTORS); /* max_discard_sectors */
	assert_int_equal(vbx_cfg(x, 40, 4), VIRTIO_BLK_MAX_DWZ_SEG);
	assert_int_equal(vbx_cfg(x, 48, 4), VIRTIO_BLK_MAX_DWZ_SECTORS); /* max_write_zeroes */
	assert_int_equal(vbx_cfg(x, 52, 4), VIRTIO_BLK_MAX_DWZ_SEG);
	assert_int_equal(vbx_cfg(x, 56, 1), 1); /* write_zeroes_may_unmap */
	assert_int_equal(vbx_cfg(x, 60, 4), 0); /* past the end reads zero */
	/* Read-only fields stay as they are. */
	tpci_wr(&x->p, x->p.device + 0, 4, 0x1234);
	assert_int_equal(vbx_cfg(x, 0, 8), VBX_DISK / 512);
}

static void test_read_write(void **state)
{
	struct vbx *x = *state;
	attach(x, false, "", 1);
	vbx_up(x, ALL_FEATURES);

	/* A write gathered from three buffers lands on the file. */
	uint64_t sector = 1000;
	fill(x, VBX_DATA, 1024, sector * 512, 5);
	fill(x, VBX_DATA + 0x10000, 2048, sector * 512 + 1024, 5);
	fill(x, VBX_DATA + 0x20000, 1024, sector * 512 + 3072, 5);
	struct tbuf w[3] = {{VBX_DATA, 1024, false}, {VBX_DATA + 0x10000, 2048, false},
			    {VBX_DATA + 0x20000, 1024, false}};
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_OUT, sector, w, 3), VIRTIO_BLK_S_OK);
	uint8_t file[4096 + 512];
	vbx_file_read(x, sector * 512, file, sizeof(file));
	check(file, 4096, sector * 512, 5);
	check(file + 4096, 512, sector * 512 + 4096, 0); /* next sector untouched */

	/* Read it back, scattered, with the last data bytes and the status in one buffer. */
	uint64_t rd = VBX_DATA + 0x100000;
	memset(tmem(&x->fp.mem, rd, 0x30000), 0, 0x30000);
	uint16_t head = x->cursor[0];
	struct virtio_blk_outhdr h = {.type = VIRTIO_BLK_T_IN, .sector = sector};
	memcpy(tmem(&x->fp.mem, VBX_HDR(0, head), 16), &h, 16);
	struct tbuf r[3] = {{VBX_HDR(0, head), 16, false},
			    {rd, 3000, true},
			    {rd + 0x10000, 4096 - 3000 + 1, true}}; /* data tail + status */
	vbx_chain(x, 0, r, 3);
	uint16_t before = tvq_used_idx(&x->t[0]);
	vbx_kick(x, 0, head);
	vbx_wait_used(x, 0, (uint16_t)(before + 1));
	uint32_t id, len;
	assert_true(tvq_get_used(&x->t[0], &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, 4096 + 1);
	check(tmem(&x->fp.mem, rd, 3000), 3000, sector * 512, 5);
	check(tmem(&x->fp.mem, rd + 0x10000, 1096), 1096, sector * 512 + 3000, 5);
	assert_int_equal(*(uint8_t *)tmem(&x->fp.mem, rd + 0x10000 + 1096, 1), VIRTIO_BLK_S_OK);

	/* Header and data in one readable descriptor: no framing is assumed. */
	uint64_t one = VBX_DATA + 0x200000;
	struct virtio_blk_outhdr h2 = {.type = VIRTIO_BLK_T_OUT, .sector = 8};
	memcpy(tmem(&x->fp.mem, one, 16), &h2, 16);
	fill(x, one + 16, 512, 8 * 512, 9);
	struct tbuf c[2] = {{one, 16 + 512, false}, {VBX_STATUS(0, 15), 1, true}};
	head = vbx_chain(x, 0, c, 2);
	before = tvq_used_idx(&x->t[0]);
	vbx_kick(x, 0, head);
	vbx_wait_used(x, 0, (uint16_t)(before + 1));
	assert_true(tvq_get_used(&x->t[0], &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, 1);
	assert_int_equal(*(uint8_t *)tmem(&x->fp.mem, VBX_STATUS(0, 15), 1), VIRTIO_BLK_S_OK);
	vbx_file_read(x, 8 * 512, file, 512);
	check(file, 512, 8 * 512, 9);

	/* Last sector of the disk is reachable. */
	struct tbuf last = {VBX_DATA, 512, true};
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_IN, VBX_DISK / 512 - 1, &last, 1),
			 VIRTIO_BLK_S_OK);
	check(tmem(&x->fp.mem, VBX_DATA, 512), 512, VBX_DISK - 512, 0);

	struct virtio_blk_stats st;
	vbx_stats(x, &st);
	assert_int_equal(st.writes, 2);
	assert_int_equal(st.reads, 2);
	assert_int_equal(st.write_bytes, 4096 + 512);
	assert_int_equal(st.read_bytes, 4096 + 512);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.inflight, 0);
}

static void test_flush_after_writes(void **state)
{
	struct vbx *x = *state;
	attach(x, false, "", 1);
	vbx_up(x, ALL_FEATURES);
	enum { N = 4 }; /* 4 writes x 3 descriptors + 2 for the flush fit a 16-entry ring */
	uint16_t heads[N + 1];
	for (int i = 0; i < N; i++) {
		fill(x, VBX_DATA + 0x100000ULL * i, 65536, 65536ULL * i, 3);
		struct tbuf d = {VBX_DATA + 0x100000ULL * i, 65536, false};
		heads[i] = vbx_req(x, 0, VIRTIO_BLK_T_OUT, 128ULL * i, &d, 1);
		tvq_publish(&x->t[0], heads[i]);
	}
	heads[N] = vbx_req(x, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0);
	vbx_kick(x, 0, heads[N]);
	vbx_wait_used(x, 0, N + 1);
	/* The flush's used element comes after every write's. */
	uint32_t id, len;
	for (int i = 0; i <= N; i++) {
		assert_true(tvq_get_used(&x->t[0], &id, &len));
		if (i == N)
			assert_int_equal(id, heads[N]);
		else
			assert_int_not_equal(id, heads[N]);
		assert_int_equal(vbx_status(x, 0, (uint16_t)id), VIRTIO_BLK_S_OK);
	}
	uint8_t file[512];
	vbx_file_read(x, 3 * 65536, file, 512);
	check(file, 512, 3 * 65536, 3);
	struct virtio_blk_stats st;
	vbx_stats(x, &st);
	assert_int_equal(st.flushes, 1);
}

static void test_get_id(void **state)
{
	struct vbx *x = *state;
	attach(x, false, "VIREO-SERIAL-0000020", 1); /* exactly 20 bytes */
	vbx_up(x, ALL_FEATURES);
	uint8_t *id = tmem(&x->fp.mem, VBX_DATA, 64);
	memset(id, 0xcc, 64);
	struct tbuf b = {VBX_DATA, 20, true};
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_GET_ID, 0, &b, 1), VIRTIO_BLK_S_OK);
	assert_memory_equal(id, "VIREO-SERIAL-0000020", 20);
	assert_int_equal(id[20], 0xcc); /* nothing past the buffer */

	/* A bigger buffer: 20 bytes written, no more. */
	memset(id, 0xcc, 64);
	b.len = 40;
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_GET_ID, 0, &b, 1), VIRTIO_BLK_S_OK);
	assert_memory_equal(id, "VIREO-SERIAL-0000020", 20);
	assert_int_equal(id[20], 0xcc);
	/* A smaller buffer gets what fits. */
	memset(id, 0xcc, 64);
	b.len = 5;
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_GET_ID, 0, &b, 1), VIRTIO_BLK_S_OK);
	assert_memory_equal(id, "VIREO", 5);
	assert_int_equal(id[5], 0xcc);
	struct virtio_blk_stats st;
	vbx_stats(x, &st);
	assert_int_equal(st.get_ids, 3);
}

static void test_get_id_short_serial(void **state)
{
	struct vbx *x = *state;
	attach(x, false, "disk1", 1);
	vbx_up(x, ALL_FEATURES);
	uint8_t *id = tmem(&x->fp.mem, VBX_DATA, 20);
	memset(id, 0xcc, 20);
	struct tbuf b = {VBX_DATA, 20, true};
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_GET_ID, 0, &b, 1), VIRTIO_BLK_S_OK);
	assert_memory_equal(id, "disk1\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 20);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static uint64_t put_segs(struct vbx *x, const struct virtio_blk_dwz_seg *s, unsigned n)
{
	memcpy(tmem(&x->fp.mem, VBX_DATA, n * sizeof(*s)), s, n * sizeof(*s));
	return VBX_DATA;
}

static bool file_zero(struct vbx *x, uint64_t off, size_t len)
{
	uint8_t *b = malloc(len);
	vbx_file_read(x, off, b, len);
	bool z = true;
	for (size_t i = 0; i < len; i++)
		z &= b[i] == 0;
	free(b);
	return z;
}

static void test_discard_write_zeroes(void **state)
{
	struct vbx *x = *state;
	attach(x, false, "", 1);
	vbx_up(x, ALL_FEATURES);
	uint8_t b;

	/* Two write-zeroes segments (one with UNMAP) in one request. */
	struct virtio_blk_dwz_seg s[3] = {{16, 8, 0}, {256, 64, VIRTIO_BLK_WZ_FLAG_UNMAP}};
	struct tbuf p = {put_segs(x, s, 2), 32, false};
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, &p, 1), VIRTIO_BLK_S_OK);
	assert_true(file_zero(x, 16 * 512, 8 * 512));
	assert_true(file_zero(x, 256 * 512, 64 * 512));
	vbx_file_read(x, 24 * 512, &b, 1);
	assert_int_equal(b, vbx_pat(24 * 512, 0));
	vbx_file_read(x, 256 * 512 - 1, &b, 1);
	assert_int_equal(b, vbx_pat(256 * 512 - 1, 0));

	/* Discard of whole 4 KiB blocks: a hole that reads zeroes. */
	s[0] = (struct virtio_blk_dwz_seg){4096, 16, 0};
	p = (struct tbuf){put_segs(x, s, 1), 16, false};
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_DISCARD, 0, &p, 1), VIRTIO_BLK_S_OK);
	assert_true(file_zero(x, 4096 * 512, 16 * 512));

	/* A zero-length segment is fine and does nothing. */
	s[0] = (struct virtio_blk_dwz_seg){100, 0, 0};
	p = (struct tbuf){put_segs(x, s, 1), 16, false};
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, &p, 1), VIRTIO_BLK_S_OK);
	vbx_file_read(x, 100 * 512, &b, 1);
	assert_int_equal(b, vbx_pat(100 * 512, 0));

	struct virtio_blk_stats st;
	vbx_stats(x, &st);
	assert_int_equal(st.write_zeroes, 2);
	assert_int_equal(st.discards, 1);
	assert_int_equal(st.errors, 0);
}

static void test_dwz_validation(void **state)
{
	struct vbx *x = *state;
	attach(x, false, "", 1);
	vbx_up(x, ALL_FEATURES);
	uint64_t cap = VBX_DISK / 512;
	struct virtio_blk_dwz_seg s[VIRTIO_BLK_MAX_DWZ_SEG + 1];
	struct tbuf p;
	memset(s, 0, sizeof(s));

	/* UNMAP on a discard, unknown flags: UNSUPP. */
	s[0] = (struct virtio_blk_dwz_seg){8, 8, VIRTIO_BLK_WZ_FLAG_UNMAP};
	p = (struct tbuf){put_segs(x, s, 1), 16, false};
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_DISCARD, 0, &p, 1), VIRTIO_BLK_S_UNSUPP);
	s[0].flags = 4;
	put_segs(x, s, 1);
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, &p, 1), VIRTIO_BLK_S_UNSUPP);

	/* Out of range (the first, valid segment must not be applied either). */
	s[0] = (struct virtio_blk_dwz_seg){8, 8, 0};
	s[1] = (struct virtio_blk_dwz_seg){cap - 4, 8, 0};
	p = (struct tbuf){put_segs(x, s, 2), 32, false};
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, &p, 1), VIRTIO_BLK_S_IOERR);
	assert_false(file_zero(x, 8 * 512, 512));
	s[1] = (struct virtio_blk_dwz_seg){UINT64_MAX - 2, 8, 0}; /* sector + n wraps */
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_DISCARD, 0, &p, 1), VIRTIO_BLK_S_IOERR);
	s[1] = (struct virtio_blk_dwz_seg){16, VIRTIO_BLK_MAX_DWZ_SECTORS + 1, 0};
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_DISCARD, 0, &p, 1), VIRTIO_BLK_S_IOERR);

	/* Payload: not a multiple of 16, empty, too many segments. */
	p.len = 24;
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_DISCARD, 0, &p, 1), VIRTIO_BLK_S_IOERR);
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, NULL, 0), VIRTIO_BLK_S_IOERR);
	for (unsigned i = 0; i <= VIRTIO_BLK_MAX_DWZ_SEG; i++)
		s[i] = (struct virtio_blk_dwz_seg){8ULL * i, 1, 0};
	p = (struct tbuf){put_segs(x, s, VIRTIO_BLK_MAX_DWZ_SEG + 1),
			  16 * (VIRTIO_BLK_MAX_DWZ_SEG + 1), false};
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, &p, 1), VIRTIO_BLK_S_IOERR);
	p.len = 16 * VIRTIO_BLK_MAX_DWZ_SEG; /* exactly the maximum is fine */
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, &p, 1), VIRTIO_BLK_S_OK);
	assert_true(file_zero(x, 8 * 512 * 31, 512));
	assert_false(tpci_status(&x->p) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_dwz_not_negotiated(void **state)
{
	struct vbx *x = *state;
	attach(x, false, "", 1);
	vbx_up(x, VIRTIO_BIT(VIRTIO_BLK_F_FLUSH));
	struct virtio_blk_dwz_seg s = {8, 8, 0};
	struct tbuf p = {put_segs(x, &s, 1), 16, false};
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_DISCARD, 0, &p, 1), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, &p, 1), VIRTIO_BLK_S_UNSUPP);
	assert_false(file_zero(x, 8 * 512, 512));
}

static void test_readonly_disk(void **state)
{
	struct vbx *x = *state;
	attach(x, true, "", 1);
	uint64_t f = vbx_offered(x);
	assert_true(f & VIRTIO_BIT(VIRTIO_BLK_F_RO));
	assert_false(f & VIRTIO_BIT(VIRTIO_BLK_F_DISCARD));
	assert_false(f & VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES));
	assert_int_equal(vbx_cfg(x, 36, 4), 0);
	vbx_up(x, ALL_FEATURES | VIRTIO_BIT(VIRTIO_BLK_F_RO));

	memset(tmem(&x->fp.mem, VBX_DATA, 4096), 0xa5, 4096);
	struct tbuf d = {VBX_DATA, 4096, false};
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_OUT, 0, &d, 1), VIRTIO_BLK_S_IOERR);
	struct virtio_blk_dwz_seg s = {0, 8, 0};
	memcpy(tmem(&x->fp.mem, VBX_DATA + 0x10000, 16), &s, 16);
	struct tbuf p = {VBX_DATA + 0x10000, 16, false};
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_DISCARD, 0, &p, 1), VIRTIO_BLK_S_IOERR);
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, &p, 1), VIRTIO_BLK_S_IOERR);
	uint8_t file[4096];
	vbx_file_read(x, 0, file, sizeof(file));
	check(file, sizeof(file), 0, 0); /* nothing changed */
	/* Reads and flushes work. */
	d.write = true;
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_IN, 0, &d, 1), VIRTIO_BLK_S_OK);
	check(tmem(&x->fp.mem, VBX_DATA, 4096), 4096, 0, 0);
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0), VIRTIO_BLK_S_OK);
	struct virtio_blk_stats st;
	vbx_stats(x, &st);
	assert_int_equal(st.errors, 3);
}

static void test_multiqueue(void **state)
{
	struct vbx *x = *state;
	attach(x, false, "", 2);
	vbx_up(x, ALL_FEATURES);
	struct tbuf d = {VBX_DATA, 512, true};
	assert_int_equal(vbx_do(x, 1, VIRTIO_BLK_T_IN, 3, &d, 1), VIRTIO_BLK_S_OK);
	check(tmem(&x->fp.mem, VBX_DATA, 512), 512, 3 * 512, 0);
	assert_int_equal(tvq_used_idx(&x->t[0]), 0);
	assert_int_equal(tpci_msi_fired(&x->p, 2), 1); /* queue 1's vector */
	assert_int_equal(tpci_msi_fired(&x->p, 1), 0);
	d.gpa = VBX_DATA + 4096;
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_IN, 4, &d, 1), VIRTIO_BLK_S_OK);
	assert_int_equal(tpci_msi_fired(&x->p, 1), 1);
	assert_int_equal(tpci_msi_fired(&x->p, 2), 1);
}

/* The writeback toggle and FLUSH negotiation decide whether writes are FUA. */
static void test_writeback_toggle(void **state)
{
	struct vbx *x = *state;
	struct blk_info info = {.size = VBX_DISK, .logical_block = 512, .physical_block = 512};
	vbx_attach_script(x, &info, 1);
	struct vbx_script *s = &x->script;
	struct tbuf d = {VBX_DATA, 512, false};

	vbx_up(x, ALL_FEATURES);
	vbx_kick(x, 0, vbx_req(x, 0, VIRTIO_BLK_T_OUT, 0, &d, 1));
	assert_int_equal(s->nsub, 1);
	assert_int_equal(s->sub[0]->flags & BLK_REQ_FUA, 0);
	tpci_wr(&x->p, x->p.device + VIRTIO_BLK_CFG_WRITEBACK, 1, 0);
	assert_int_equal(vbx_cfg(x, VIRTIO_BLK_CFG_WRITEBACK, 1), 0);
	vbx_kick(x, 0, vbx_req(x, 0, VIRTIO_BLK_T_OUT, 8, &d, 1));
	assert_int_equal(s->nsub, 2);
	assert_int_equal(s->sub[1]->flags & BLK_REQ_FUA, BLK_REQ_FUA);
	vbx_script_finish(x, 0, 0);
	vbx_script_finish(x, 1, 0);
	vbx_wait_used(x, 0, 2);

	/* Reset brings writeback back; without CONFIG_WCE the field is read-only. */
	vbx_up(x, VIRTIO_BIT(VIRTIO_BLK_F_FLUSH));
	assert_int_equal(vbx_cfg(x, VIRTIO_BLK_CFG_WRITEBACK, 1), 1);
	tpci_wr(&x->p, x->p.device + VIRTIO_BLK_CFG_WRITEBACK, 1, 0);
	assert_int_equal(vbx_cfg(x, VIRTIO_BLK_CFG_WRITEBACK, 1), 1);
	s->nsub = 0;
	vbx_kick(x, 0, vbx_req(x, 0, VIRTIO_BLK_T_OUT, 0, &d, 1));
	assert_int_equal(s->sub[0]->flags & BLK_REQ_FUA, 0);
	vbx_script_finish(x, 0, 0);
	vbx_wait_used(x, 0, 1);

	/* Without FLUSH the device is writethrough. */
	vbx_up(x, 0);
	s->nsub = 0;
	vbx_kick(x, 0, vbx_req(x, 0, VIRTIO_BLK_T_OUT, 0, &d, 1));
	assert_int_equal(s->sub[0]->flags & BLK_REQ_FUA, BLK_REQ_FUA);
	vbx_script_finish(x, 0, 0);
	vbx_wait_used(x, 0, 1);
}

/* One interrupt per completion batch, and only when the driver wants one. */
static void test_interrupt_batching(void **state)
{
	struct vbx *x = *state;
	struct blk_info info = {.size = VBX_DISK, .logical_block = 512, .physical_block = 512};
	vbx_attach_script(x, &info, 1);
	vbx_up(x, ALL_FEATURES);
	for (int i = 0; i < 5; i++) {
		/* Every other sector: not adjacent, so not merged into one host I/O. */
		struct tbuf d = {VBX_DATA + 4096ULL * i, 512, true};
		tvq_publish(&x->t[0], vbx_req(x, 0, VIRTIO_BLK_T_IN, 2ULL * i, &d, 1));
	}
	tpci_notify(&x->p, 0);
	assert_int_equal(x->script.nsub, 5);
	assert_int_equal(tpci_msi_fired(&x->p, 1), 0); /* nothing completed yet */
	for (int i = 0; i < 5; i++)
		vbx_script_finish(x, i, 0);
	assert_int_equal(tvq_used_idx(&x->t[0]), 0); /* delivered only by the poll */
	assert_int_equal(blk_poll(x->be, 0), 5);
	assert_int_equal(tvq_used_idx(&x->t[0]), 5);
	assert_int_equal(tpci_msi_fired(&x->p, 1), 1);
	/* EVENT_IDX: the driver asks for an interrupt after the 8th used entry only. */
	tvq_set_used_event(&x->t[0], 7);
	for (int i = 0; i < 2; i++) {
		struct tbuf d = {VBX_DATA, 512, true};
		tvq_publish(&x->t[0], vbx_req(x, 0, VIRTIO_BLK_T_IN, 0, &d, 1));
	}
	tpci_notify(&x->p, 0);
	vbx_script_finish(x, 5, 0);
	vbx_script_finish(x, 6, 0);
	assert_int_equal(blk_poll(x->be, 0), 2);
	assert_int_equal(tvq_used_idx(&x->t[0]), 7);
	assert_int_equal(tpci_msi_fired(&x->p, 1), 1);
}

/* A qcow2 disk: the image engine runs the format's calls on worker threads. */
static void test_qcow2_disk(void **state)
{
	struct vbx *x = *state;
	struct qcow2_create_opts o = {.size = VBX_DISK};
	char err[256];
	unlink(x->path);
	if (qcow2_create(x->path, &o, err, sizeof(err)))
		fail_msg("qcow2_create: %s", err);
	struct blk_config cfg;
	blk_config_defaults(&cfg);
	snprintf(cfg.format, sizeof(cfg.format), "qcow2");
	vbx_attach_file(x, &cfg, 1);
	struct blk_info info;
	blk_get_info(x->be, &info);
	assert_string_equal(info.engine, "image");
	assert_int_equal(vbx_cfg(x, 0, 8), VBX_DISK / 512);
	vbx_up(x, ALL_FEATURES);

	/* Unwritten clusters read as zeroes; writes read back, also after a device reset. */
	struct tbuf d = {VBX_DATA, 8192, true};
	memset(tmem(&x->fp.mem, VBX_DATA, 8192), 0x77, 8192);
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_IN, 100, &d, 1), VIRTIO_BLK_S_OK);
	assert_true(all_zero(tmem(&x->fp.mem, VBX_DATA, 8192), 8192));
	fill(x, VBX_DATA, 8192, 100 * 512, 21);
	d.write = false;
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_OUT, 100, &d, 1), VIRTIO_BLK_S_OK);
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0), VIRTIO_BLK_S_OK);
	struct virtio_blk_dwz_seg s = {104, 4, 0};
	struct tbuf p = {put_segs(x, &s, 1), 16, false};
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, &p, 1), VIRTIO_BLK_S_OK);
	vbx_up(x, ALL_FEATURES);
	d = (struct tbuf){VBX_DATA + 0x10000, 8192, true};
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_IN, 100, &d, 1), VIRTIO_BLK_S_OK);
	const uint8_t *r = tmem(&x->fp.mem, VBX_DATA + 0x10000, 8192);
	check(r, 2048, 100 * 512, 21);
	assert_true(all_zero(r + 2048, 2048));
	check(r + 4096, 4096, 108 * 512, 21);
	/* Beyond the virtual size: refused before reaching the format. */
	assert_int_equal(vbx_do(x, 0, VIRTIO_BLK_T_IN, VBX_DISK / 512, &d, 1), VIRTIO_BLK_S_IOERR);
}

static int uring_group(void **state)
{
	(void)state;
	engine = BLK_ENGINE_URING;
	return 0;
}

static int threads_group(void **state)
{
	(void)state;
	engine = BLK_ENGINE_THREADS;
	return 0;
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, vbx_setup, vbx_teardown)
	const struct CMUnitTest tests[] = {
		T(test_identity_and_config), T(test_read_write),	 T(test_flush_after_writes),
		T(test_get_id),		     T(test_get_id_short_serial), T(test_discard_write_zeroes),
		T(test_dwz_validation),	     T(test_dwz_not_negotiated),  T(test_readonly_disk),
		T(test_multiqueue),	     T(test_writeback_toggle),	 T(test_interrupt_batching),
	};
	const struct CMUnitTest image_tests[] = {T(test_qcow2_disk)};
	int fails = cmocka_run_group_tests_name("io_uring", tests, uring_group, NULL);
	fails += cmocka_run_group_tests_name("threads", tests, threads_group, NULL);
	fails += cmocka_run_group_tests_name("image", image_tests, NULL, NULL);
	return fails;
}
