/* SPDX-License-Identifier: MIT */
/* Split virtqueue: normal chains, notification suppression, and hostile rings. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fake_platform.h"
#include "vq_helper.h"
#include "devices/virtio/virtio_spec.h"
#include "devices/virtio/virtq.h"

#define RAM_GPA 0x0ULL
#define RAM_SIZE (1ULL << 20)
#define QGPA 0x10000ULL /* rings */
#define BUF 0x40000ULL	/* data buffers */
#define ITABLE 0x80000ULL /* indirect tables */
#define QSIZE 16

struct fx {
	struct fake_platform fp;
	struct tvq t;
	struct virtq vq;
	struct vq_chain c;
};

static void fx_activate(struct fx *f, bool event_idx, bool indirect)
{
	vq_reset(&f->vq);
	tvq_layout(&f->t, &f->fp.mem, QGPA, QSIZE);
	tvq_configure(&f->t, &f->vq);
	assert_int_equal(vq_activate(&f->vq, &f->fp.mem, event_idx, indirect), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	fake_platform_init(&f->fp, RAM_GPA, RAM_SIZE);
	vq_init(&f->vq, "test", 0, 256);
	fx_activate(f, false, true);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	fake_platform_fini(&f->fp);
	free(f);
	return 0;
}

static uint8_t *host(struct fx *f, uint64_t gpa)
{
	return tmem(&f->fp.mem, gpa, 1);
}

/* --- normal path --- */

static void test_single_readable(void **state)
{
	struct fx *f = *state;
	struct tbuf b = {BUF, 100, false};
	tvq_publish(&f->t, tvq_add_chain(&f->t, 3, &b, 1));

	assert_int_equal(vq_pop(&f->vq, &f->c), 1);
	assert_int_equal(f->c.head, 3);
	assert_int_equal(f->c.num_out, 1);
	assert_int_equal(f->c.num_in, 0);
	assert_int_equal(f->c.out_bytes, 100);
	assert_ptr_equal(f->c.iov[0].iov_base, host(f, BUF));
	assert_int_equal(f->c.iov[0].iov_len, 100);
	assert_int_equal(vq_pop(&f->vq, &f->c), 0); /* empty now */

	assert_int_equal(vq_push(&f->vq, 3, 0), 0);
	uint32_t id, len;
	assert_true(tvq_get_used(&f->t, &id, &len));
	assert_int_equal(id, 3);
	assert_int_equal(len, 0);
}

static void test_chains_1_to_n(void **state)
{
	struct fx *f = *state;
	struct tbuf bufs[QSIZE];

	for (unsigned n = 1; n <= QSIZE; n++) {
		unsigned nout = n / 2;
		for (unsigned k = 0; k < n; k++)
			bufs[k] = (struct tbuf){BUF + 0x1000 * k, 10 + k, k >= nout};
		tvq_publish(&f->t, tvq_add_chain(&f->t, 0, bufs, n));
		assert_int_equal(vq_pop(&f->vq, &f->c), 1);
		assert_int_equal(f->c.head, 0);
		assert_int_equal(f->c.num_out, nout);
		assert_int_equal(f->c.num_in, n - nout);
		uint64_t out = 0, in = 0;
		for (unsigned k = 0; k < n; k++) {
			assert_ptr_equal(f->c.iov[k].iov_base, host(f, BUF + 0x1000 * k));
			assert_int_equal(f->c.iov[k].iov_len, 10 + k);
			if (k < nout)
				out += 10 + k;
			else
				in += 10 + k;
		}
		assert_int_equal(f->c.out_bytes, out);
		assert_int_equal(f->c.in_bytes, in);
		assert_int_equal(vq_push(&f->vq, 0, (uint32_t)in), 0);
		uint32_t id, len;
		assert_true(tvq_get_used(&f->t, &id, &len));
		assert_int_equal(id, 0);
		assert_int_equal(len, in);
	}
	assert_int_equal(tvq_used_idx(&f->t), QSIZE);
}

static void test_chain_follows_next_order(void **state)
{
	struct fx *f = *state;
	/* 5 -> 2 -> 9: non-contiguous links are followed, not table order. */
	tvq_set_desc(&f->t, 5, BUF, 1, VRING_DESC_F_NEXT, 2);
	tvq_set_desc(&f->t, 2, BUF + 0x100, 2, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 9);
	tvq_set_desc(&f->t, 9, BUF + 0x200, 3, VRING_DESC_F_WRITE, 0);
	tvq_publish(&f->t, 5);
	assert_int_equal(vq_pop(&f->vq, &f->c), 1);
	assert_int_equal(f->c.num_out, 1);
	assert_int_equal(f->c.num_in, 2);
	assert_ptr_equal(f->c.iov[1].iov_base, host(f, BUF + 0x100));
	assert_ptr_equal(f->c.iov[2].iov_base, host(f, BUF + 0x200));
}

static void test_indirect(void **state)
{
	struct fx *f = *state;
	struct tbuf bufs[4] = {
		{BUF, 16, false}, {BUF + 0x100, 32, false}, {BUF + 0x200, 64, true}, {BUF + 0x300, 8, true}};
	tvq_write_indirect(&f->t, ITABLE, bufs, 4);
	tvq_set_desc(&f->t, 7, ITABLE, 4 * 16, VRING_DESC_F_INDIRECT, 0);
	tvq_publish(&f->t, 7);
	assert_int_equal(vq_pop(&f->vq, &f->c), 1);
	assert_int_equal(f->c.head, 7);
	assert_int_equal(f->c.num_out, 2);
	assert_int_equal(f->c.num_in, 2);
	assert_int_equal(f->c.out_bytes, 48);
	assert_int_equal(f->c.in_bytes, 72);
	assert_ptr_equal(f->c.iov[3].iov_base, host(f, BUF + 0x300));

	/* Direct descriptors followed by a final indirect one (valid per the spec), with the
	 * WRITE flag on the indirect descriptor itself ignored; NEXT inside the table honoured
	 * out of order (0 -> 2 -> 1). */
	tdesc_write(&f->fp.mem, ITABLE + 0x1000, 0, BUF + 0x400, 4, VRING_DESC_F_NEXT, 2);
	tdesc_write(&f->fp.mem, ITABLE + 0x1000, 2, BUF + 0x500, 5, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
	tdesc_write(&f->fp.mem, ITABLE + 0x1000, 1, BUF + 0x600, 6, VRING_DESC_F_WRITE, 0);
	tvq_set_desc(&f->t, 0, BUF + 0x700, 7, VRING_DESC_F_NEXT, 1);
	tvq_set_desc(&f->t, 1, ITABLE + 0x1000, 3 * 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE, 0);
	tvq_publish(&f->t, 0);
	assert_int_equal(vq_pop(&f->vq, &f->c), 1);
	assert_int_equal(f->c.num_out, 2);
	assert_int_equal(f->c.num_in, 2);
	assert_int_equal(f->c.iov[0].iov_len, 7);
	assert_int_equal(f->c.iov[1].iov_len, 4);
	assert_int_equal(f->c.iov[2].iov_len, 5);
	assert_int_equal(f->c.iov[3].iov_len, 6);
}

static void test_indirect_max_entries(void **state)
{
	struct fx *f = *state;
	/* VQ_MAX_INDIRECT entries is accepted (also exactly VQ_MAX_IOV iovecs). */
	for (unsigned k = 0; k < VQ_MAX_INDIRECT; k++)
		tdesc_write(&f->fp.mem, ITABLE, (uint16_t)k, BUF, 1,
			    k + 1 < VQ_MAX_INDIRECT ? VRING_DESC_F_NEXT : 0, (uint16_t)(k + 1));
	tvq_set_desc(&f->t, 0, ITABLE, VQ_MAX_INDIRECT * 16, VRING_DESC_F_INDIRECT, 0);
	tvq_publish(&f->t, 0);
	assert_int_equal(vq_pop(&f->vq, &f->c), 1);
	assert_int_equal(f->c.num_out, VQ_MAX_INDIRECT);

	/* One direct buffer more makes VQ_MAX_IOV + 1 iovecs: refused. */
	tvq_set_desc(&f->t, 1, BUF, 1, VRING_DESC_F_NEXT, 0);
	tvq_publish(&f->t, 1);
	assert_int_equal(vq_pop(&f->vq, &f->c), -EIO);
	assert_non_null(strstr(f->vq.broken_reason, "more than"));
}

static void test_zero_length_skipped(void **state)
{
	struct fx *f = *state;
	/* Zero-length descriptors produce no iovec and their address is not checked. */
	tvq_set_desc(&f->t, 0, 0xdeadbeef000ULL, 0, VRING_DESC_F_NEXT, 1);
	tvq_set_desc(&f->t, 1, BUF, 8, VRING_DESC_F_NEXT, 2);
	tvq_set_desc(&f->t, 2, UINT64_MAX, 0, VRING_DESC_F_WRITE, 0);
	tvq_publish(&f->t, 0);
	assert_int_equal(vq_pop(&f->vq, &f->c), 1);
	assert_int_equal(f->c.num_out, 1);
	assert_int_equal(f->c.num_in, 0);
	assert_int_equal(f->c.iov[0].iov_len, 8);

	/* A chain of only zero-length descriptors is an empty (but valid) request. */
	tvq_set_desc(&f->t, 3, BUF, 0, 0, 0);
	tvq_publish(&f->t, 3);
	assert_int_equal(vq_pop(&f->vq, &f->c), 1);
	assert_int_equal(f->c.num_out + f->c.num_in, 0);
	assert_false(vq_is_broken(&f->vq));
}

static void test_full_queue_and_wrap(void **state)
{
	struct fx *f = *state;
	struct tbuf b = {BUF, 4, true};
	uint32_t id, len;

	/* avail idx exactly queue-size ahead is legal. */
	for (uint16_t i = 0; i < QSIZE; i++)
		tvq_publish(&f->t, tvq_add_chain(&f->t, i, &b, 1));
	for (uint16_t i = 0; i < QSIZE; i++) {
		assert_int_equal(vq_pop(&f->vq, &f->c), 1);
		assert_int_equal(f->c.head, i);
	}
	assert_int_equal(vq_pop(&f->vq, &f->c), 0);
	for (uint16_t i = 0; i < QSIZE; i++)
		assert_int_equal(vq_push(&f->vq, i, i), 0);

	/* Run the free-running indices through 65535 -> 0 a bit more than once. */
	for (uint32_t n = 0; n < 65536 + 40; n++) {
		uint16_t h = (uint16_t)(n % QSIZE);
		tvq_publish(&f->t, h);
		assert_int_equal(vq_pop(&f->vq, &f->c), 1);
		assert_int_equal(f->c.head, h);
		assert_int_equal(vq_push(&f->vq, h, n), 0);
	}
	uint16_t used = (uint16_t)(QSIZE + 65536 + 40);
	assert_int_equal(tvq_used_idx(&f->t), used);
	tvq_used_elem(&f->t, (uint16_t)(used - 1), &id, &len);
	assert_int_equal(id, (65536 + 39) % QSIZE);
	assert_int_equal(len, 65536 + 39);
}

static void test_no_interrupt_flag(void **state)
{
	struct fx *f = *state;
	struct tbuf b = {BUF, 4, true};
	tvq_add_chain(&f->t, 0, &b, 1);

	assert_false(vq_should_notify(&f->vq)); /* nothing pushed yet */
	tvq_publish(&f->t, 0);
	assert_int_equal(vq_pop(&f->vq, &f->c), 1);
	assert_int_equal(vq_push(&f->vq, 0, 4), 0);
	assert_true(vq_should_notify(&f->vq));
	assert_false(vq_should_notify(&f->vq)); /* already decided for that push */

	tvq_set_avail_flags(&f->t, VRING_AVAIL_F_NO_INTERRUPT);
	tvq_publish(&f->t, 0);
	assert_int_equal(vq_pop(&f->vq, &f->c), 1);
	assert_int_equal(vq_push(&f->vq, 0, 4), 0);
	assert_false(vq_should_notify(&f->vq));

	/* Without EVENT_IDX the device never writes avail_event. */
	assert_int_equal(tvq_avail_event(&f->t), 0);
}

static void push_one(struct fx *f)
{
	tvq_publish(&f->t, 0);
	assert_int_equal(vq_pop(&f->vq, &f->c), 1);
	assert_int_equal(vq_push(&f->vq, 0, 1), 0);
}

static void test_event_idx(void **state)
{
	struct fx *f = *state;
	struct tbuf b = {BUF, 4, true};

	fx_activate(f, true, true);
	tvq_add_chain(&f->t, 0, &b, 1);
	/* NO_INTERRUPT is ignored with EVENT_IDX. */
	tvq_set_avail_flags(&f->t, VRING_AVAIL_F_NO_INTERRUPT);

	push_one(f); /* used idx 1; first decision always notifies */
	assert_int_equal(tvq_avail_event(&f->t), 1);
	assert_true(vq_should_notify(&f->vq));

	tvq_set_used_event(&f->t, 2); /* interrupt once used idx passes 2, i.e. reaches 3 */
	push_one(f);		      /* used 2 */
	assert_false(vq_should_notify(&f->vq));
	push_one(f); /* used 3 */
	assert_true(vq_should_notify(&f->vq));
	push_one(f); /* used 4: event 2 already passed and signalled */
	assert_false(vq_should_notify(&f->vq));

	/* Several pushes between decisions: crossing the event inside the batch counts. */
	tvq_set_used_event(&f->t, 5);
	push_one(f); /* 5 */
	push_one(f); /* 6 */
	push_one(f); /* 7 */
	assert_true(vq_should_notify(&f->vq));
	assert_int_equal(tvq_avail_event(&f->t), 7);

	/* Empty pop re-arms avail_event at last_avail. */
	assert_int_equal(vq_pop(&f->vq, &f->c), 0);
	assert_int_equal(tvq_avail_event(&f->t), 7);
}

static void test_event_idx_wrap(void **state)
{
	struct fx *f = *state;
	struct tbuf b = {BUF, 4, true};

	fx_activate(f, true, false);
	tvq_add_chain(&f->t, 0, &b, 1);
	/* Walk used idx to 65534 with the driver asking for no interrupts (event far behind). */
	tvq_set_used_event(&f->t, 0);
	push_one(f);
	assert_true(vq_should_notify(&f->vq)); /* first decision */
	for (uint32_t n = 1; n < 65534; n++)
		push_one(f);
	assert_false(vq_should_notify(&f->vq)); /* event 0 was passed long ago... */
	assert_int_equal(tvq_used_idx(&f->t), 65534);

	tvq_set_used_event(&f->t, 65535); /* interrupt when used idx reaches 0 (after wrap) */
	push_one(f);			  /* 65535 */
	assert_false(vq_should_notify(&f->vq));
	push_one(f); /* 0 */
	assert_int_equal(tvq_used_idx(&f->t), 0);
	assert_true(vq_should_notify(&f->vq));

	tvq_set_used_event(&f->t, 65534); /* already behind: no interrupt for the next one */
	push_one(f);
	assert_false(vq_should_notify(&f->vq));
}

/* --- hostile rings --- */

/* The queue must be broken, stay broken, and work again after reset. */
static void expect_broken_then_recover(struct fx *f, const char *why)
{
	uint16_t used = tvq_used_idx(&f->t);
	assert_int_equal(vq_pop(&f->vq, &f->c), -EIO);
	assert_true(vq_is_broken(&f->vq));
	assert_non_null(f->vq.broken_reason);
	if (!strstr(f->vq.broken_reason, why))
		fail_msg("broken for '%s', expected '%s'", f->vq.broken_reason, why);
	assert_int_equal(vq_pop(&f->vq, &f->c), -EIO);
	assert_int_equal(vq_push(&f->vq, 0, 0), -EIO);
	assert_false(vq_should_notify(&f->vq));
	assert_int_equal(tvq_used_idx(&f->t), used); /* nothing completed */

	fx_activate(f, false, true);
	struct tbuf b = {BUF, 32, true};
	tvq_publish(&f->t, tvq_add_chain(&f->t, 0, &b, 1));
	assert_int_equal(vq_pop(&f->vq, &f->c), 1);
	assert_int_equal(f->c.in_bytes, 32);
	assert_int_equal(vq_push(&f->vq, 0, 32), 0);
	assert_int_equal(tvq_used_idx(&f->t), 1);
}

static void test_loop(void **state)
{
	struct fx *f = *state;
	tvq_set_desc(&f->t, 0, BUF, 8, VRING_DESC_F_NEXT, 1);
	tvq_set_desc(&f->t, 1, BUF, 8, VRING_DESC_F_NEXT, 0);
	tvq_publish(&f->t, 0);
	expect_broken_then_recover(f, "longer than");

	tvq_set_desc(&f->t, 4, BUF, 8, VRING_DESC_F_NEXT, 4); /* self loop */
	tvq_publish(&f->t, 4);
	expect_broken_then_recover(f, "longer than");

	/* Loop made only of zero-length descriptors still ends. */
	tvq_set_desc(&f->t, 2, BUF, 0, VRING_DESC_F_NEXT, 3);
	tvq_set_desc(&f->t, 3, BUF, 0, VRING_DESC_F_NEXT, 2);
	tvq_publish(&f->t, 2);
	expect_broken_then_recover(f, "longer than");
}

static void test_chain_longer_than_queue(void **state)
{
	struct fx *f = *state;
	/* Every descriptor links onward, the last back into the middle: QSIZE+ visits. */
	for (uint16_t i = 0; i < QSIZE; i++)
		tvq_set_desc(&f->t, i, BUF, 1, VRING_DESC_F_NEXT, (uint16_t)(i + 1 < QSIZE ? i + 1 : 8));
	tvq_publish(&f->t, 0);
	expect_broken_then_recover(f, "longer than %s");
}

static void test_index_out_of_range(void **state)
{
	struct fx *f = *state;
	tvq_set_desc(&f->t, 0, BUF, 8, VRING_DESC_F_NEXT, QSIZE); /* next == size */
	tvq_publish(&f->t, 0);
	expect_broken_then_recover(f, "descriptor index");

	tvq_publish(&f->t, QSIZE); /* head == size */
	expect_broken_then_recover(f, "avail ring head");

	tvq_publish(&f->t, 0xffff);
	expect_broken_then_recover(f, "avail ring head");
}

static void test_bad_addresses(void **state)
{
	struct fx *f = *state;
	const uint64_t bad[][2] = {
		{UINT64_MAX - 10, 100},	      /* addr + len overflows */
		{UINT64_MAX, 1},	      /* last byte of the address space */
		{RAM_GPA + RAM_SIZE, 1},      /* just past RAM */
		{RAM_GPA + RAM_SIZE - 8, 16}, /* straddles the end of RAM */
		{BUF, 0xffffffffu},	      /* far longer than RAM */
	};
	for (unsigned k = 0; k < ARRAY_SIZE(bad); k++) {
		tvq_set_desc(&f->t, 0, bad[k][0], (uint32_t)bad[k][1], VRING_DESC_F_WRITE, 0);
		tvq_publish(&f->t, 0);
		expect_broken_then_recover(f, "not in RAM");
	}
	/* The last 16 bytes of RAM are fine. */
	tvq_set_desc(&f->t, 1, RAM_GPA + RAM_SIZE - 16, 16, 0, 0);
	tvq_publish(&f->t, 1);
	assert_int_equal(vq_pop(&f->vq, &f->c), 1);
}

static void test_indirect_hostile(void **state)
{
	struct fx *f = *state;
	struct tbuf b = {BUF, 8, false};

	/* Indirect inside indirect. */
	tdesc_write(&f->fp.mem, ITABLE, 0, ITABLE + 0x100, 16, VRING_DESC_F_INDIRECT, 0);
	tvq_set_desc(&f->t, 0, ITABLE, 16, VRING_DESC_F_INDIRECT, 0);
	tvq_publish(&f->t, 0);
	expect_broken_then_recover(f, "inside indirect");

	/* Table length: not a multiple of 16, zero, too many entries; then outside RAM. */
	const uint64_t tables[][2] = {
		{ITABLE, 24}, {ITABLE, 0}, {ITABLE, 16 * (VQ_MAX_INDIRECT + 1)},
		{ITABLE, 0xfffffff0u}, {RAM_GPA + RAM_SIZE - 16, 32}, {UINT64_MAX - 15, 32}};
	for (unsigned k = 0; k < ARRAY_SIZE(tables); k++) {
		tvq_write_indirect(&f->t, ITABLE, &b, 1);
		tvq_set_desc(&f->t, 0, tables[k][0], (uint32_t)tables[k][1], VRING_DESC_F_INDIRECT, 0);
		tvq_publish(&f->t, 0);
		expect_broken_then_recover(f, k < 4 ? "table length" : "indirect table %#llx");
	}

	/* INDIRECT together with NEXT. */
	tvq_write_indirect(&f->t, ITABLE, &b, 1);
	tvq_set_desc(&f->t, 0, ITABLE, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	tvq_set_desc(&f->t, 1, BUF, 8, 0, 0);
	tvq_publish(&f->t, 0);
	expect_broken_then_recover(f, "INDIRECT together");

	/* Loop inside the table, and next beyond the table. */
	tdesc_write(&f->fp.mem, ITABLE, 0, BUF, 8, VRING_DESC_F_NEXT, 1);
	tdesc_write(&f->fp.mem, ITABLE, 1, BUF, 8, VRING_DESC_F_NEXT, 0);
	tvq_set_desc(&f->t, 0, ITABLE, 32, VRING_DESC_F_INDIRECT, 0);
	tvq_publish(&f->t, 0);
	expect_broken_then_recover(f, "longer than %s");
	tdesc_write(&f->fp.mem, ITABLE, 0, BUF, 8, VRING_DESC_F_NEXT, 2);
	tvq_set_desc(&f->t, 0, ITABLE, 32, VRING_DESC_F_INDIRECT, 0);
	tvq_publish(&f->t, 0);
	expect_broken_then_recover(f, "descriptor index");

	/* Bad buffer inside the table. */
	tdesc_write(&f->fp.mem, ITABLE, 0, RAM_GPA + RAM_SIZE, 8, 0, 0);
	tvq_set_desc(&f->t, 0, ITABLE, 16, VRING_DESC_F_INDIRECT, 0);
	tvq_publish(&f->t, 0);
	expect_broken_then_recover(f, "buffer %#llx");
}

static void test_indirect_not_negotiated(void **state)
{
	struct fx *f = *state;
	struct tbuf b = {BUF, 8, false};
	fx_activate(f, false, false);
	tvq_write_indirect(&f->t, ITABLE, &b, 1);
	tvq_set_desc(&f->t, 0, ITABLE, 16, VRING_DESC_F_INDIRECT, 0);
	tvq_publish(&f->t, 0);
	expect_broken_then_recover(f, "not negotiated");
}

static void test_write_before_read(void **state)
{
	struct fx *f = *state;
	struct tbuf bufs[3] = {{BUF, 8, false}, {BUF + 8, 8, true}, {BUF + 16, 8, false}};
	tvq_publish(&f->t, tvq_add_chain(&f->t, 0, bufs, 3));
	expect_broken_then_recover(f, "readable descriptor after");

	/* The same inside an indirect table, and across direct -> indirect. */
	tvq_write_indirect(&f->t, ITABLE, bufs, 3);
	tvq_set_desc(&f->t, 0, ITABLE, 48, VRING_DESC_F_INDIRECT, 0);
	tvq_publish(&f->t, 0);
	expect_broken_then_recover(f, "readable descriptor after");

	tvq_write_indirect(&f->t, ITABLE, bufs, 1); /* readable */
	tvq_set_desc(&f->t, 0, BUF, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	tvq_set_desc(&f->t, 1, ITABLE, 16, VRING_DESC_F_INDIRECT, 0);
	tvq_publish(&f->t, 0);
	expect_broken_then_recover(f, "readable descriptor after");
}

static void test_avail_idx_jump(void **state)
{
	struct fx *f = *state;
	tvq_set_avail_idx(&f->t, QSIZE + 1);
	expect_broken_then_recover(f, "entries ahead");

	tvq_set_avail_idx(&f->t, 0x8000);
	expect_broken_then_recover(f, "entries ahead");

	/* Moving backwards looks like a huge jump forward. */
	struct tbuf b = {BUF, 8, false};
	tvq_publish(&f->t, tvq_add_chain(&f->t, 0, &b, 1));
	assert_int_equal(vq_pop(&f->vq, &f->c), 1);
	tvq_set_avail_idx(&f->t, 0);
	expect_broken_then_recover(f, "entries ahead");
}

static void test_chain_over_4g(void **state)
{
	(void)state;
	/* Needs buffers that are really in RAM: 1.5 GiB of untouched (lazily mapped) memory. */
	struct fx *g = calloc(1, sizeof(*g));
	assert_non_null(g);
	const uint64_t big = 3ULL << 29;
	fake_platform_init(&g->fp, 0, 4096);
	void *ram = tvq_big_ram_map(&g->fp, big);
	vq_init(&g->vq, "test", 0, 256);
	tvq_layout(&g->t, &g->fp.mem, QGPA, QSIZE);
	tvq_configure(&g->t, &g->vq);
	assert_int_equal(vq_activate(&g->vq, &g->fp.mem, false, false), 0);

	/* 2 x 1.5 GiB = 3 GiB is fine. */
	struct tbuf ok[2] = {{0, (uint32_t)big, true}, {0, (uint32_t)big, true}};
	tvq_publish(&g->t, tvq_add_chain(&g->t, 0, ok, 2));
	assert_int_equal(vq_pop(&g->vq, &g->c), 1);
	assert_int_equal(g->c.in_bytes, 2 * big);

	/* 3 x 1.5 GiB = 4.5 GiB is over the 4 GiB limit. */
	struct tbuf bad[3] = {{0, (uint32_t)big, true}, {0, (uint32_t)big, true}, {0, (uint32_t)big, true}};
	tvq_publish(&g->t, tvq_add_chain(&g->t, 0, bad, 3));
	assert_int_equal(vq_pop(&g->vq, &g->c), -EIO);
	assert_non_null(strstr(g->vq.broken_reason, "4 GiB"));
	tvq_big_ram_unmap(ram, big);
	fake_platform_fini(&g->fp);
	free(g);
}

static void test_span_two_regions(void **state)
{
	(void)state;
	/* Two RAM regions adjacent in guest-physical space but not in the host: a buffer
	 * crossing the boundary has no single host pointer and is rejected. */
	static uint8_t lo[0x40000] __attribute__((aligned(4096)));
	static uint8_t hi[0x10000] __attribute__((aligned(4096)));
	struct gmem m = {0};
	m.regions[0] = (struct gmem_region){.gpa = 0, .size = sizeof(lo), .hva = lo};
	m.regions[1] = (struct gmem_region){.gpa = sizeof(lo), .size = sizeof(hi), .hva = hi};
	m.nr_regions = 2;
	m.fd = -1;

	struct tvq t;
	struct virtq vq;
	struct vq_chain *c = malloc(sizeof(*c));
	assert_non_null(c);
	vq_init(&vq, "test", 0, 16);
	tvq_layout(&t, &m, 0x10000, 16);
	tvq_configure(&t, &vq);
	assert_int_equal(vq_activate(&vq, &m, false, false), 0);

	struct tbuf inside = {sizeof(lo), 0x100, true};
	tvq_publish(&t, tvq_add_chain(&t, 0, &inside, 1));
	assert_int_equal(vq_pop(&vq, c), 1);
	assert_ptr_equal(c->iov[0].iov_base, hi);

	struct tbuf span = {sizeof(lo) - 0x10, 0x20, true};
	tvq_publish(&t, tvq_add_chain(&t, 0, &span, 1));
	assert_int_equal(vq_pop(&vq, c), -EIO);
	assert_non_null(strstr(vq.broken_reason, "not in RAM"));
	free(c);
}

static void test_activate_validation(void **state)
{
	struct fx *f = *state;
	struct {
		uint16_t size;
		uint64_t desc, avail, used;
	} bad[] = {
		{12, QGPA, QGPA + 0x1000, QGPA + 0x2000},	   /* not a power of two */
		{0, QGPA, QGPA + 0x1000, QGPA + 0x2000},	   /* zero */
		{512, QGPA, QGPA + 0x2000, QGPA + 0x3000},	   /* > max (256) */
		{16, QGPA + 8, QGPA + 0x1000, QGPA + 0x2000},	   /* desc misaligned */
		{16, QGPA, QGPA + 0x1001, QGPA + 0x2000},	   /* avail misaligned */
		{16, QGPA, QGPA + 0x1000, QGPA + 0x2002},	   /* used misaligned */
		{16, RAM_SIZE - 0x80, QGPA + 0x1000, QGPA + 0x2000}, /* desc past RAM */
		{16, QGPA, QGPA + 0x1000, RAM_SIZE - 0x40},	   /* used past RAM */
		{16, QGPA, UINT64_MAX - 1, QGPA + 0x2000},	   /* overflow */
	};
	for (unsigned k = 0; k < ARRAY_SIZE(bad); k++) {
		vq_reset(&f->vq);
		f->vq.size = bad[k].size;
		f->vq.desc_gpa = bad[k].desc;
		f->vq.avail_gpa = bad[k].avail;
		f->vq.used_gpa = bad[k].used;
		f->vq.enabled = true;
		assert_int_not_equal(vq_activate(&f->vq, &f->fp.mem, false, false), 0);
		assert_true(vq_is_broken(&f->vq));
		assert_non_null(strstr(f->vq.broken_reason, k < 3 ? "queue size" : "ring areas"));
		assert_int_equal(vq_pop(&f->vq, &f->c), -EIO);
	}
	/* A non-activated queue is simply empty. */
	vq_reset(&f->vq);
	assert_int_equal(vq_pop(&f->vq, &f->c), 0);
	assert_int_equal(vq_push(&f->vq, 0, 0), -EIO);
}

static void test_unpop(void **state)
{
	struct fx *f = *state;
	struct tbuf b = {BUF, 8, true};
	tvq_publish(&f->t, tvq_add_chain(&f->t, 2, &b, 1));
	assert_int_equal(vq_pop(&f->vq, &f->c), 1);
	vq_unpop(&f->vq);
	assert_int_equal(vq_pop(&f->vq, &f->c), 1);
	assert_int_equal(f->c.head, 2);
	assert_int_equal(vq_pop(&f->vq, &f->c), 0);
	assert_int_equal(vq_push(&f->vq, QSIZE, 0), -EINVAL); /* device bug: bad head */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_single_readable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chains_1_to_n, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_follows_next_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_indirect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_indirect_max_entries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zero_length_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_queue_and_wrap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_interrupt_flag, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_idx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_idx_wrap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_longer_than_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_addresses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_indirect_hostile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_indirect_not_negotiated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_before_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_avail_idx_jump, setup, teardown),
		cmocka_unit_test(test_chain_over_4g),
		cmocka_unit_test(test_span_two_regions),
		cmocka_unit_test_setup_teardown(test_activate_validation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unpop, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
