/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk request merging: adjacent reads (or writes) of one notification's batch go to
 * the backend as one request; anything else does not merge and keeps its order; one
 * result completes every member; a reset cancels a merged I/O like any other.
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

static void attach_script(struct vbx *x)
{
	struct blk_info info = {.size = VBX_DISK, .logical_block = 512, .physical_block = 512};
	vbx_attach_script(x, &info, 1);
	vbx_up(x, FEATURES);
}

static void attach_file(struct vbx *x)
{
	struct blk_config cfg;
	blk_config_defaults(&cfg);
	vbx_attach_file(x, &cfg, 1);
	vbx_up(x, FEATURES);
}

/* One request of one data buffer per entry, all published, then one notification. */
struct rq {
	uint32_t type;
	uint64_t sector;
	uint64_t gpa;
	uint32_t len;
};

static void batch(struct vbx *x, const struct rq *rq, unsigned n, uint16_t *heads)
{
	assert_true(n * 3 <= VBX_QSIZE);
	for (unsigned i = 0; i < n; i++) {
		struct tbuf d = {rq[i].gpa, rq[i].len,
				 rq[i].type == VIRTIO_BLK_T_IN || rq[i].type == VIRTIO_BLK_T_GET_ID};
		heads[i] = vbx_req(x, 0, rq[i].type, rq[i].sector, &d, rq[i].len ? 1 : 0);
		tvq_publish(&x->t[0], heads[i]);
	}
	tpci_notify(&x->p, 0);
}

static uint8_t *gptr(struct vbx *x, uint64_t gpa, size_t len)
{
	return tmem(&x->fp.mem, gpa, len);
}

/* Four adjacent 4 KiB reads: one backend request over their four buffers. */
static void test_adjacent_reads_merged(void **state)
{
	struct vbx *x = *state;
	attach_script(x);
	const struct rq rq[4] = {
		{VIRTIO_BLK_T_IN, 64, VBX_DATA, 4096},
		{VIRTIO_BLK_T_IN, 72, VBX_DATA + 0x10000, 4096},
		{VIRTIO_BLK_T_IN, 80, VBX_DATA + 0x3000, 4096},
		{VIRTIO_BLK_T_IN, 88, VBX_DATA + 0x20000, 4096},
	};
	uint16_t h[4];
	batch(x, rq, 4, h);
	assert_int_equal(x->script.nsub, 1);
	struct blk_req *s = x->script.sub[0];
	assert_int_equal(s->op, BLK_OP_READ);
	assert_int_equal(s->offset, 64 * 512);
	assert_int_equal(s->len, 4 * 4096);
	assert_int_equal(s->iovcnt, 4);
	for (int i = 0; i < 4; i++) {
		assert_ptr_equal(s->iov[i].iov_base, gptr(x, rq[i].gpa, 4096));
		assert_int_equal(s->iov[i].iov_len, 4096);
	}
	struct virtio_blk_stats st;
	vbx_stats(x, &st);
	assert_int_equal(st.inflight, 4);
	assert_int_equal(st.merges, 1);
	assert_int_equal(st.merged_reqs, 4);
	vbx_script_finish(x, 0, 0);
	assert_int_equal(blk_poll(x->be, 0), 1);
	assert_int_equal(tvq_used_idx(&x->t[0]), 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(vbx_status(x, 0, h[i]), VIRTIO_BLK_S_OK);
	vbx_stats(x, &st);
	assert_int_equal(st.reads, 4);
	assert_int_equal(st.read_bytes, 4 * 4096);
	assert_int_equal(st.inflight, 0);
	assert_int_equal(st.errors, 0);
}

/* The same through a real file: each guest buffer gets its own part of the disk, and
 * merged writes land where each member said. */
static void test_merged_real_io(void **state)
{
	struct vbx *x = *state;
	attach_file(x);
	const struct rq rd[3] = {
		{VIRTIO_BLK_T_IN, 1000, VBX_DATA + 0x40000, 8192},
		{VIRTIO_BLK_T_IN, 1016, VBX_DATA, 512},
		{VIRTIO_BLK_T_IN, 1017, VBX_DATA + 0x80000, 65536},
	};
	uint16_t h[3];
	batch(x, rd, 3, h);
	vbx_wait_used(x, 0, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(vbx_status(x, 0, h[i]), VIRTIO_BLK_S_OK);
		const uint8_t *p = gptr(x, rd[i].gpa, rd[i].len);
		for (uint32_t k = 0; k < rd[i].len; k++)
			if (p[k] != vbx_pat(rd[i].sector * 512 + k, 0))
				fail_msg("read %d byte %u wrong", i, k);
	}
	struct virtio_blk_stats st;
	vbx_stats(x, &st);
	assert_int_equal(st.merges, 1);
	assert_int_equal(st.merged_reqs, 3);

	const struct rq wr[3] = {
		{VIRTIO_BLK_T_OUT, 2000, VBX_DATA + 0x100000, 4096},
		{VIRTIO_BLK_T_OUT, 2008, VBX_DATA + 0x200000, 1024},
		{VIRTIO_BLK_T_OUT, 2010, VBX_DATA + 0x300000, 4096},
	};
	for (int i = 0; i < 3; i++) {
		uint8_t *p = gptr(x, wr[i].gpa, wr[i].len);
		for (uint32_t k = 0; k < wr[i].len; k++)
			p[k] = vbx_pat(wr[i].sector * 512 + k, 7);
	}
	batch(x, wr, 3, h);
	vbx_wait_used(x, 0, 6);
	uint8_t buf[9216];
	vbx_file_read(x, 2000 * 512, buf, sizeof(buf));
	for (size_t k = 0; k < sizeof(buf); k++)
		if (buf[k] != vbx_pat(2000 * 512 + k, 7))
			fail_msg("disk byte %zu after merged write wrong", k);
	vbx_stats(x, &st);
	assert_int_equal(st.merges, 2);
	assert_int_equal(st.merged_reqs, 6);
	assert_int_equal(st.write_bytes, sizeof(buf));
}

/* Gaps, overlaps, backward neighbours, misaligned buffers and the size cap all split. */
static void test_not_adjacent_not_merged(void **state)
{
	struct vbx *x = *state;
	attach_script(x);
	const struct rq rq[5] = {
		{VIRTIO_BLK_T_IN, 16, VBX_DATA, 4096},		/* 16..24 */
		{VIRTIO_BLK_T_IN, 32, VBX_DATA + 0x1000, 4096},	/* gap */
		{VIRTIO_BLK_T_IN, 24, VBX_DATA + 0x2000, 4096},	/* behind the previous */
		{VIRTIO_BLK_T_IN, 28, VBX_DATA + 0x3000, 4096},	/* overlaps it */
		{VIRTIO_BLK_T_IN, 36, VBX_DATA + 0x4001, 4096}, /* adjacent, misaligned */
	};
	uint16_t h[5];
	batch(x, rq, 5, h);
	assert_int_equal(x->script.nsub, 5);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(x->script.sub[i]->offset, rq[i].sector * 512);
		vbx_script_finish(x, i, 0);
	}
	vbx_wait_used(x, 0, 5);
	struct virtio_blk_stats st;
	vbx_stats(x, &st);
	assert_int_equal(st.merges, 0);

	/* 1 MiB each: the first two fill the 2 MiB cap, the third starts a new I/O. */
	x->script.nsub = 0;
	const struct rq big[3] = {
		{VIRTIO_BLK_T_IN, 0, VBX_DATA, 1u << 20},
		{VIRTIO_BLK_T_IN, 2048, VBX_DATA + 0x100000, 1u << 20},
		{VIRTIO_BLK_T_IN, 4096, VBX_DATA + 0x200000, 1u << 20},
	};
	batch(x, big, 3, h);
	assert_int_equal(x->script.nsub, 2);
	assert_int_equal(x->script.sub[0]->len, 2u << 20);
	assert_int_equal(x->script.sub[1]->offset, 4096 * 512);
	vbx_script_finish(x, 0, 0);
	vbx_script_finish(x, 1, 0);
	vbx_wait_used(x, 0, 8);
	for (int i = 0; i < 3; i++)
		assert_int_equal(vbx_status(x, 0, h[i]), VIRTIO_BLK_S_OK);
}

/* Reads and writes do not merge with each other, and nothing but reads and writes merges. */
static void test_mixed_not_merged(void **state)
{
	struct vbx *x = *state;
	attach_script(x);
	const struct rq rq[5] = {
		{VIRTIO_BLK_T_IN, 0, VBX_DATA, 4096},
		{VIRTIO_BLK_T_OUT, 8, VBX_DATA + 0x1000, 4096},
		{VIRTIO_BLK_T_IN, 16, VBX_DATA + 0x2000, 4096},
		{VIRTIO_BLK_T_GET_ID, 0, VBX_DATA + 0x3000, 20},
		{VIRTIO_BLK_T_IN, 24, VBX_DATA + 0x4000, 4096},
	};
	uint16_t h[5];
	batch(x, rq, 5, h);
	assert_int_equal(x->script.nsub, 4);
	assert_int_equal(x->script.sub[0]->op, BLK_OP_READ);
	assert_int_equal(x->script.sub[1]->op, BLK_OP_WRITE);
	assert_int_equal(x->script.sub[2]->op, BLK_OP_READ);
	assert_int_equal(x->script.sub[3]->op, BLK_OP_READ);
	assert_int_equal(x->script.sub[3]->offset, 24 * 512);
	assert_int_equal(vbx_status(x, 0, h[3]), VIRTIO_BLK_S_OK); /* answered at once */
	for (int i = 0; i < 4; i++)
		vbx_script_finish(x, i, 0);
	vbx_wait_used(x, 0, 5);
	struct virtio_blk_stats st;
	vbx_stats(x, &st);
	assert_int_equal(st.merges, 0);
}

/* A FLUSH in the batch: writes before it merge among themselves and are submitted before
 * it, writes after it after it; never one I/O across the flush. */
static void test_flush_is_a_barrier(void **state)
{
	struct vbx *x = *state;
	attach_script(x);
	const struct rq rq[5] = {
		{VIRTIO_BLK_T_OUT, 0, VBX_DATA, 4096},
		{VIRTIO_BLK_T_OUT, 8, VBX_DATA + 0x1000, 4096},
		{VIRTIO_BLK_T_FLUSH, 0, 0, 0},
		{VIRTIO_BLK_T_OUT, 16, VBX_DATA + 0x2000, 4096},
		{VIRTIO_BLK_T_OUT, 24, VBX_DATA + 0x3000, 4096},
	};
	uint16_t h[5];
	batch(x, rq, 5, h);
	/* The block core parks the FLUSH until every request submitted before it is done. */
	assert_int_equal(x->script.nsub, 2);
	assert_int_equal(x->script.sub[0]->op, BLK_OP_WRITE);
	assert_int_equal(x->script.sub[0]->offset, 0);
	assert_int_equal(x->script.sub[0]->len, 8192);
	assert_int_equal(x->script.sub[1]->op, BLK_OP_WRITE);
	assert_int_equal(x->script.sub[1]->offset, 16 * 512);
	assert_int_equal(x->script.sub[1]->len, 8192);
	/* Finishing the writes before it releases it; the later ones are not waited for. */
	vbx_script_finish(x, 0, 0);
	assert_int_equal(blk_poll(x->be, 0), 1);
	assert_int_equal(x->script.nsub, 3);
	assert_int_equal(x->script.sub[2]->op, BLK_OP_FLUSH);
	vbx_script_finish(x, 2, 0);
	vbx_script_finish(x, 1, 0);
	vbx_wait_used(x, 0, 5);
	for (int i = 0; i < 5; i++)
		assert_int_equal(vbx_status(x, 0, h[i]), VIRTIO_BLK_S_OK);
	struct virtio_blk_stats st;
	vbx_stats(x, &st);
	assert_int_equal(st.writes, 4);
	assert_int_equal(st.flushes, 1);
	assert_int_equal(st.merges, 2);
}

/* The merged I/O fails: every member completes with IOERR, none with OK. */
static void test_failed_merge_fails_all(void **state)
{
	struct vbx *x = *state;
	attach_script(x);
	const struct rq rq[3] = {
		{VIRTIO_BLK_T_OUT, 0, VBX_DATA, 4096},
		{VIRTIO_BLK_T_OUT, 8, VBX_DATA + 0x1000, 512},
		{VIRTIO_BLK_T_OUT, 9, VBX_DATA + 0x2000, 4096},
	};
	uint16_t h[3];
	batch(x, rq, 3, h);
	assert_int_equal(x->script.nsub, 1);
	vbx_script_finish(x, 0, -EIO);
	assert_int_equal(blk_poll(x->be, 0), 1);
	assert_int_equal(tvq_used_idx(&x->t[0]), 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(vbx_status(x, 0, h[i]), VIRTIO_BLK_S_IOERR);
	struct virtio_blk_stats st;
	vbx_stats(x, &st);
	assert_int_equal(st.errors, 3);
	assert_int_equal(st.write_bytes, 0);
	assert_int_equal(st.inflight, 0);
}

/* Reset with a merged I/O in flight: nothing reaches the guest, members are freed, and the
 * device works afterwards (merging again). */
static void test_reset_with_merged_io(void **state)
{
	struct vbx *x = *state;
	attach_script(x);
	const struct rq rq[3] = {
		{VIRTIO_BLK_T_IN, 0, VBX_DATA, 4096},
		{VIRTIO_BLK_T_IN, 8, VBX_DATA + 0x1000, 4096},
		{VIRTIO_BLK_T_IN, 16, VBX_DATA + 0x2000, 4096},
	};
	uint16_t h[3];
	batch(x, rq, 3, h);
	assert_int_equal(x->script.nsub, 1);
	int drains = x->script.drains;
	tpci_set_status(&x->p, 0);
	assert_int_equal(x->script.drains, drains + 1);
	assert_int_equal(blk_poll(x->be, 0), 1);
	assert_int_equal(tvq_used_idx(&x->t[0]), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(vbx_status(x, 0, h[i]), 0xff);
	struct virtio_blk_stats st;
	vbx_stats(x, &st);
	assert_int_equal(st.inflight, 0);
	assert_int_equal(st.reads, 0);
	assert_int_equal(blk_outstanding(x->be), 0);

	vbx_up(x, FEATURES);
	x->script.nsub = 0;
	batch(x, rq, 2, h);
	assert_int_equal(x->script.nsub, 1);
	vbx_script_finish(x, 0, 0);
	vbx_wait_used(x, 0, 2);
	assert_int_equal(vbx_status(x, 0, h[0]), VIRTIO_BLK_S_OK);
	assert_int_equal(vbx_status(x, 0, h[1]), VIRTIO_BLK_S_OK);
	/* Teardown with a merged I/O in flight frees everything (ASan/valgrind). */
	batch(x, rq, 3, h);
	assert_int_equal(x->script.nsub, 2);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, vbx_setup, vbx_teardown)
	const struct CMUnitTest tests[] = {
		T(test_adjacent_reads_merged),
		T(test_merged_real_io),
		T(test_not_adjacent_not_merged),
		T(test_mixed_not_merged),
		T(test_flush_is_a_barrier),
		T(test_failed_merge_fails_all),
		T(test_reset_with_merged_io),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
