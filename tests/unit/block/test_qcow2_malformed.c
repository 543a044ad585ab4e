/* SPDX-License-Identifier: MIT */
/*
 * Malformed qcow2 images, one corruption per test: each must fail with a clear error
 * (checked by errno and message), never crash, and never let a write clobber metadata.
 *
 * The base image is made by qcow2_create (v3, 64 KiB clusters, 1 MiB, 16-bit refcounts):
 * header 0x0, refcount table 0x10000, refcount block 0x20000, L1 0x30000; after the
 * first write at guest 0: L2 table 0x40000, data 0x50000.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/qcow2.h"
#include "img_test_util.h"

#define REFT 0x10000u
#define RB 0x20000u
#define L1 0x30000u
#define L2 0x40000u
#define DATA 0x50000u

struct fx {
	char *dir, *path;
	char err[512];
};

static void put_be(const char *path, uint64_t off, uint64_t v, int bytes)
{
	uint8_t b[8];
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	for (int i = 0; i < bytes; i++)
		b[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
	assert_int_equal(pwrite(fd, b, (size_t)bytes, (off_t)off), bytes);
	close(fd);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct qcow2_create_opts o = { .size = 1u << 20 };
	struct img *im;
	uint8_t buf[4096];

	f->dir = tu_mkdtemp();
	f->path = tu_path(f->dir, "m.qcow2");
	if (qcow2_create(f->path, &o, f->err, sizeof(f->err)))
		return -1;
	if (img_open(&im, f->path, "qcow2", 0, f->err, sizeof(f->err)))
		return -1;
	memset(buf, 0xab, sizeof(buf));
	if (img_pwrite(im, buf, sizeof(buf), 0))
		return -1;
	img_close(im);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	tu_rmtree(f->dir);
	free(f->dir);
	free(f->path);
	free(f);
	return 0;
}

/* Open must fail with ret and a message containing msg, read-only and writable. */
static void expect_open_error(struct fx *f, int ret, const char *msg)
{
	struct img *im = (struct img *)1;
	for (int rw = 0; rw < 2; rw++) {
		f->err[0] = 0;
		int r = img_open(&im, f->path, "qcow2", rw ? 0 : IMG_O_RDONLY, f->err, sizeof(f->err));
		if (r != ret || !strstr(f->err, msg))
			fprintf(stderr, "got %d '%s', want %d '%s'\n", r, f->err, ret, msg);
		assert_int_equal(r, ret);
		assert_non_null(strstr(f->err, msg));
		assert_non_null(strstr(f->err, f->path)); /* names the image */
		assert_null(im);
	}
}

static void test_bad_magic(void **state)
{
	struct fx *f = *state;
	put_be(f->path, 0, 0x51464900, 4);
	expect_open_error(f, -EINVAL, "bad magic");
}

static void test_truncated(void **state)
{
	struct fx *f = *state;
	assert_int_equal(truncate(f->path, 40), 0);
	expect_open_error(f, -EINVAL, "bad magic");
}

static void test_version(void **state)
{
	struct fx *f = *state;
	put_be(f->path, 4, 4, 4);
	expect_open_error(f, -ENOTSUP, "version 4");
}

static void test_cluster_bits(void **state)
{
	struct fx *f = *state;
	put_be(f->path, 20, 8, 4);
	expect_open_error(f, -EINVAL, "cluster_bits 8 out of range");
	put_be(f->path, 20, 22, 4);
	expect_open_error(f, -EINVAL, "cluster_bits 22 out of range");
	put_be(f->path, 20, 0xffffffff, 4);
	expect_open_error(f, -EINVAL, "out of range");
}

static void test_header_length(void **state)
{
	struct fx *f = *state;
	put_be(f->path, 100, 100, 4);
	expect_open_error(f, -EINVAL, "header length");
	put_be(f->path, 100, 0x20000, 4);
	expect_open_error(f, -EINVAL, "header length");
}

static void test_l1_beyond_file(void **state)
{
	struct fx *f = *state;
	put_be(f->path, 40, 0x100000000ull, 8);
	expect_open_error(f, -EINVAL, "L1 table offset");
	put_be(f->path, 40, L1 + 8, 8); /* unaligned */
	expect_open_error(f, -EINVAL, "L1 table offset");
}

static void test_reftable_offset_zero(void **state)
{
	struct fx *f = *state;
	put_be(f->path, 48, 0, 8);
	expect_open_error(f, -EINVAL, "refcount table offset is 0");
}

static void test_reftable_beyond_file(void **state)
{
	struct fx *f = *state;
	put_be(f->path, 48, 0x7fff0000, 8);
	expect_open_error(f, -EINVAL, "refcount table");
	put_be(f->path, 48, REFT, 8);
	put_be(f->path, 56, 0x100000, 4); /* clusters: far beyond the file and the limit */
	expect_open_error(f, -EINVAL, "refcount table");
}

static void test_overlapping_metadata(void **state)
{
	struct fx *f = *state;
	put_be(f->path, 40, REFT, 8); /* L1 on top of the refcount table */
	expect_open_error(f, -EINVAL, "overlapping metadata");
	put_be(f->path, 40, L1, 8);
	put_be(f->path, REFT, L1, 8); /* refcount block on top of the L1 table */
	expect_open_error(f, -EINVAL, "overlapping metadata");
	put_be(f->path, REFT, RB, 8);
	put_be(f->path, L1, 0x8000000000000000ull | REFT, 8); /* L2 table = refcount table */
	expect_open_error(f, -EINVAL, "overlaps other metadata");
}

static void test_huge_sizes(void **state)
{
	struct fx *f = *state;
	put_be(f->path, 24, 1ull << 63, 8);
	expect_open_error(f, -EFBIG, "virtual size");
	put_be(f->path, 24, 1ull << 50, 8); /* 1 PiB with an L1 of one entry */
	expect_open_error(f, -EINVAL, "L1 table too small");
	put_be(f->path, 36, 0xffffffff, 4); /* and an absurd L1 */
	expect_open_error(f, -EFBIG, "L1 table too large");
	put_be(f->path, 24, 1u << 20, 8);
	put_be(f->path, 36, 0x100000, 4); /* L1 larger than the file */
	expect_open_error(f, -EINVAL, "beyond end of file");
}

static void test_refcount_order(void **state)
{
	struct fx *f = *state;
	put_be(f->path, 96, 7, 4);
	expect_open_error(f, -EINVAL, "refcount_order 7");
}

static void test_incompatible_features(void **state)
{
	struct fx *f = *state;
	put_be(f->path, 72, 1u << 5, 8);
	expect_open_error(f, -ENOTSUP, "unsupported incompatible feature bit 5");
	put_be(f->path, 72, 1u << 2, 8);
	expect_open_error(f, -ENOTSUP, "external data file");
	put_be(f->path, 72, 1u << 3, 8);
	put_be(f->path, 104, 0x02000000, 4); /* compression type 2 */
	expect_open_error(f, -ENOTSUP, "compression type 2");
	put_be(f->path, 72, 0, 8);
	put_be(f->path, 104, 0x01000000, 4); /* zstd without the feature bit */
	expect_open_error(f, -ENOTSUP, "compression type 1");
}

static void test_encrypted(void **state)
{
	struct fx *f = *state;
	put_be(f->path, 32, 1, 4);
	expect_open_error(f, -ENOTSUP, "encrypted");
}

static void test_corrupt_bit(void **state)
{
	struct fx *f = *state;
	struct img *im;
	uint8_t b[16];
	struct qcow2_info info;

	put_be(f->path, 72, 1u << 1, 8);
	assert_int_equal(img_open(&im, f->path, "qcow2", IMG_O_RDONLY, f->err, sizeof(f->err)), 0);
	assert_int_equal(img_pread(im, b, sizeof(b), 0), 0);
	assert_int_equal(b[0], 0xab);
	img_close(im);
	assert_int_equal(img_open(&im, f->path, "qcow2", 0, f->err, sizeof(f->err)), -EUCLEAN);
	assert_non_null(strstr(f->err, "marked corrupt"));
	/* `img check -r` may open it; a clean repair drops the bit */
	assert_int_equal(img_open(&im, f->path, "qcow2", IMG_O_REPAIR, f->err, sizeof(f->err)), 0);
	assert_int_equal(qcow2_get_info(im, &info), 0);
	assert_true(info.corrupt);
	struct qcow2_check_result r;
	assert_int_equal(qcow2_check(im, false, &r), 0);
	assert_int_equal(qcow2_get_info(im, &info), 0);
	assert_true(info.corrupt); /* a check without repair changes nothing */
	assert_int_equal(qcow2_check(im, true, &r), 0);
	assert_int_equal(qcow2_get_info(im, &info), 0);
	assert_false(info.corrupt);
	img_close(im);
	assert_int_equal(img_open(&im, f->path, "qcow2", 0, f->err, sizeof(f->err)), 0);
	img_close(im);
}

static void make_backed(struct fx *f, const char *name, const char *backing)
{
	char *p = tu_path(f->dir, name);
	struct qcow2_create_opts o = { .size = 1u << 20, .backing_file = backing,
				       .backing_fmt = "qcow2" };
	assert_int_equal(qcow2_create(p, &o, f->err, sizeof(f->err)), 0);
	free(p);
}

static void test_backing_loop(void **state)
{
	struct fx *f = *state;
	struct img *im;
	char *a = tu_path(f->dir, "a.qcow2");

	make_backed(f, "b.qcow2", "m.qcow2");
	make_backed(f, "a.qcow2", "b.qcow2");
	/* close the loop: m (the base) now names a as its backing file */
	make_backed(f, "m.qcow2", "a.qcow2");
	assert_int_equal(img_open(&im, a, "qcow2", IMG_O_RDONLY, f->err, sizeof(f->err)), -ELOOP);
	assert_non_null(strstr(f->err, "loop"));
	make_backed(f, "self.qcow2", "self.qcow2");
	free(a);
	a = tu_path(f->dir, "self.qcow2");
	assert_int_equal(img_open(&im, a, "qcow2", IMG_O_RDONLY, f->err, sizeof(f->err)), -ELOOP);
	free(a);
}

static void test_backing_chain_too_long(void **state)
{
	struct fx *f = *state;
	char name[32], prev[32] = "m.qcow2", *p;
	struct img *im;

	for (int i = 0; i <= IMG_MAX_CHAIN; i++) {
		snprintf(name, sizeof(name), "c%d.qcow2", i);
		make_backed(f, name, prev);
		memcpy(prev, name, sizeof(prev));
	}
	p = tu_path(f->dir, name);
	assert_int_equal(img_open(&im, p, "qcow2", IMG_O_RDONLY, f->err, sizeof(f->err)), -ELOOP);
	assert_non_null(strstr(f->err, "backing chain longer than"));
	free(p);
	snprintf(name, sizeof(name), "c%d.qcow2", IMG_MAX_CHAIN - 1); /* exactly the limit */
	p = tu_path(f->dir, name);
	assert_int_equal(img_open(&im, p, "qcow2", IMG_O_RDONLY, f->err, sizeof(f->err)), 0);
	img_close(im);
	free(p);
}

static void test_backing_name_out_of_header(void **state)
{
	struct fx *f = *state;
	put_be(f->path, 8, 0xfff0, 8);
	put_be(f->path, 16, 100, 4);
	expect_open_error(f, -EINVAL, "backing file name");
	put_be(f->path, 8, 0x200, 8);
	put_be(f->path, 16, 5000, 4);
	expect_open_error(f, -EINVAL, "backing file name");
}

static void test_missing_backing(void **state)
{
	struct fx *f = *state;
	make_backed(f, "m.qcow2", "nothere.qcow2");
	expect_open_error(f, -ENOENT, "nothere.qcow2");
}

/* L2 entries that point into metadata: reads fail, writes never touch the file. */
static void test_l2_entry_into_metadata(void **state)
{
	struct fx *f = *state;
	static const uint64_t bad[] = {
		0x8000000000000000ull | L1,     /* the L1 table */
		0x8000000000000000ull | REFT,   /* the refcount table */
		0x8000000000000000ull | RB,     /* a refcount block */
		0x8000000000000000ull | L2,     /* the L2 table itself */
		0x8000000000000000ull | (DATA + 512), /* unaligned */
		0x8000000000000000ull | (DATA | 0x100), /* reserved bits */
		0x8000000000000000ull | 0x7fff0000ull, /* beyond the end of the file */
	};
	uint8_t b[4096], *before, *after;
	size_t lb, la;
	struct img *im;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		put_be(f->path, L2, bad[i], 8);
		assert_int_equal(tu_read_file(f->path, &before, &lb), 0);
		assert_int_equal(img_open(&im, f->path, "qcow2", 0, f->err, sizeof(f->err)), 0);
		assert_int_equal(img_pread(im, b, sizeof(b), 0), -EIO);
		assert_int_equal(img_pwrite(im, b, sizeof(b), 0), -EIO);
		assert_int_equal(img_pwrite(im, b, sizeof(b), 512 << 10), -EIO); /* image now fenced */
		struct qcow2_check_result r;
		assert_int_equal(qcow2_check(im, false, &r), 0);
		assert_true(r.corruptions + r.overlaps + r.out_of_range > 0);
		img_close(im);
		assert_int_equal(tu_read_file(f->path, &after, &la), 0);
		assert_true(la == lb);
		/* only change: the corrupt bit, so writable opens now need a check first */
		assert_int_equal(after[79], before[79] | 2);
		after[79] = before[79];
		assert_memory_equal(before, after, la);
		assert_int_equal(img_open(&im, f->path, "qcow2", 0, f->err, sizeof(f->err)), -EUCLEAN);
		assert_int_equal(img_open(&im, f->path, "qcow2", IMG_O_REPAIR, f->err, sizeof(f->err)), 0);
		assert_int_equal(qcow2_check(im, true, &r), 0);
		struct qcow2_info info;
		assert_int_equal(qcow2_get_info(im, &info), 0);
		assert_true(info.corrupt); /* overlaps / bad entries are not repairable */
		img_close(im);
		put_be(f->path, 72, 0, 8);
		free(before);
		free(after);
	}
}

static void test_l2_table_beyond_file(void **state)
{
	struct fx *f = *state;
	struct img *im;
	uint8_t b[512];

	put_be(f->path, L1, 0x8000000000000000ull | 0x40000000, 8);
	assert_int_equal(img_open(&im, f->path, "qcow2", IMG_O_RDONLY, f->err, sizeof(f->err)), 0);
	assert_int_equal(img_pread(im, b, sizeof(b), 0), -EIO);
	struct qcow2_check_result r;
	assert_int_equal(qcow2_check(im, false, &r), 0);
	assert_true(r.out_of_range > 0);
	img_close(im);
}

static void test_compressed_descriptor_out_of_range(void **state)
{
	struct fx *f = *state;
	struct img *im;
	uint8_t b[512];
	/* 64 KiB clusters: offset in bits 0..53, sector count above */
	static const uint64_t bad[] = {
		0x4000000000000000ull | 0x3ffff0000000ull,	/* beyond the file */
		0x4000000000000000ull | (0xffull << 54) | DATA, /* too long: runs past the file */
		0x4000000000000000ull | 0x100,			/* inside the header */
		0x4000000000000000ull | DATA,			/* garbage that does not inflate */
		0xc000000000000000ull | DATA,			/* COPIED on a compressed cluster */
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		put_be(f->path, L2, bad[i], 8);
		assert_int_equal(img_open(&im, f->path, "qcow2", IMG_O_RDONLY, f->err, sizeof(f->err)), 0);
		assert_int_equal(img_pread(im, b, sizeof(b), 0), -EIO);
		struct qcow2_check_result r;
		assert_int_equal(qcow2_check(im, false, &r), 0);
		img_close(im);
	}
}

static void test_refblock_beyond_file(void **state)
{
	struct fx *f = *state;
	put_be(f->path, REFT, 0x7fff0000, 8);
	expect_open_error(f, -EINVAL, "refcount block");
	put_be(f->path, REFT, RB + 8, 8);
	expect_open_error(f, -EINVAL, "refcount block");
}

static void test_snapshot_table(void **state)
{
	struct fx *f = *state;
	put_be(f->path, 60, 100000, 4);
	put_be(f->path, 64, 0x60000, 8);
	expect_open_error(f, -EINVAL, "snapshot table");
	put_be(f->path, 60, 1, 4);
	put_be(f->path, 64, 0x7fff0000, 8);
	expect_open_error(f, -EINVAL, "snapshot table");
	/* one entry at 0x60000 whose L1 table lies beyond the file */
	put_be(f->path, 64, 0x60000, 8);
	put_be(f->path, 0x60000, 0x7fff0000, 8);
	put_be(f->path, 0x60008, 1, 4);
	put_be(f->path, 0x6000c, 0x00010001, 4); /* id and name 1 byte each */
	put_be(f->path, 0x60024, 16, 4);	   /* extra data */
	put_be(f->path, 0x60030, 1u << 20, 8);	   /* disk size */
	put_be(f->path, 0x60038, 0x31410000, 4);   /* "1" "A" */
	expect_open_error(f, -EINVAL, "L1 table invalid");
	put_be(f->path, 0x60000, L1, 8); /* the snapshot's L1 is the active L1 table */
	expect_open_error(f, -EINVAL, "overlapping metadata");
	put_be(f->path, 0x60024, 2000, 4); /* extra data too large */
	expect_open_error(f, -EINVAL, "extra data");
}

static void test_check_repairs_refcounts(void **state)
{
	struct fx *f = *state;
	struct qcow2_check_result r;
	struct img *im;

	put_be(f->path, RB + 2 * (DATA >> 16), 0, 2);	/* data cluster: refcount 0 */
	put_be(f->path, RB + 2 * 12, 1, 2);		/* cluster 12 leaked */
	put_be(f->path, RB + 2 * (L2 >> 16), 3, 2);	/* L2 table: refcount too high */
	assert_int_equal(img_open(&im, f->path, "qcow2", IMG_O_RDONLY, f->err, sizeof(f->err)), 0);
	assert_int_equal(qcow2_check(im, false, &r), 0);
	assert_true(r.corruptions >= 1 && r.leaks == 2);
	assert_int_equal(qcow2_check(im, true, &r), -EROFS);
	img_close(im);
	assert_int_equal(img_open(&im, f->path, "qcow2", IMG_O_REPAIR, f->err, sizeof(f->err)), 0);
	assert_int_equal(qcow2_check(im, true, &r), 0);
	assert_true(r.leaks_fixed == 2 && r.corruptions_fixed == r.corruptions);
	assert_int_equal(qcow2_check(im, false, &r), 0);
	assert_true(r.leaks == 0 && r.corruptions == 0);
	/* the data cluster is counted again: a new write does not reuse it */
	uint8_t b[4096], c[4096];
	memset(b, 0xcd, sizeof(b));
	assert_int_equal(img_pwrite(im, b, sizeof(b), 65536), 0);
	assert_int_equal(img_pread(im, c, sizeof(c), 0), 0);
	assert_int_equal(c[0], 0xab);
	img_close(im);
}

int main(void)
{
#define T(x) cmocka_unit_test_setup_teardown(x, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_bad_magic), T(test_truncated), T(test_version), T(test_cluster_bits),
		T(test_header_length), T(test_l1_beyond_file), T(test_reftable_offset_zero),
		T(test_reftable_beyond_file), T(test_overlapping_metadata), T(test_huge_sizes),
		T(test_refcount_order), T(test_incompatible_features), T(test_encrypted),
		T(test_corrupt_bit), T(test_backing_loop), T(test_backing_chain_too_long),
		T(test_backing_name_out_of_header), T(test_missing_backing),
		T(test_l2_entry_into_metadata), T(test_l2_table_beyond_file),
		T(test_compressed_descriptor_out_of_range), T(test_refblock_beyond_file),
		T(test_snapshot_table), T(test_check_repairs_refcounts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
