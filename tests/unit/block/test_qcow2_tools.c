/* SPDX-License-Identifier: MIT */
/*
 * qcow2 features `vireo img` relies on (issue 3): empty images without a leaked L1
 * cluster, an L2 entry with only the COPIED flag (unallocated, as qemu reads it), leaks-only
 * repair, compressed writes (zlib/zstd, packing, fallback, overwrite by the normal write
 * path, discard), commit that empties the top image, the per-image last error and opening
 * without the backing chain. qemu-img steps are skipped when it is not installed.
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
#include <sys/stat.h>
#include <unistd.h>

#include "block/qcow2.h"
#include "img_test_util.h"

struct fx {
	char *dir;
	char err[512];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->dir = tu_mkdtemp();
	*state = f;
	return f->dir ? 0 : -1;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	tu_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static uint64_t get_be(const char *path, uint64_t off)
{
	uint8_t b[8];
	uint64_t v = 0;
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, b, 8, (off_t)off), 8);
	close(fd);
	for (int i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

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

/* Host offset of the first L2 table (L1 entry 0). */
static uint64_t first_l2(const char *path)
{
	return get_be(path, get_be(path, 40)) & 0x00fffffffffffe00ull;
}

static char *make(struct fx *f, const char *name, const struct qcow2_create_opts *o)
{
	char *p = tu_path(f->dir, name);
	if (qcow2_create(p, o, f->err, sizeof(f->err)))
		fprintf(stderr, "create: %s\n", f->err);
	assert_string_equal(f->err, "");
	return p;
}

static struct img *open_img(struct fx *f, const char *path, unsigned flags)
{
	struct img *im;
	int ret = img_open(&im, path, "qcow2", flags, f->err, sizeof(f->err));
	if (ret)
		fprintf(stderr, "open: %s\n", f->err);
	assert_int_equal(ret, 0);
	return im;
}

static void expect_clean(struct img *im)
{
	struct qcow2_check_result r;
	assert_int_equal(qcow2_check(im, false, &r), 0);
	if (r.corruptions || r.leaks || r.out_of_range || r.overlaps)
		fprintf(stderr, "check: corruptions %llu leaks %llu oor %llu overlaps %llu\n",
			(unsigned long long)r.corruptions, (unsigned long long)r.leaks,
			(unsigned long long)r.out_of_range, (unsigned long long)r.overlaps);
	assert_true(r.corruptions == 0 && r.leaks == 0 && r.out_of_range == 0 &&
		    r.overlaps == 0);
}

static void qemu_check_clean(const char *path)
{
	char out[4096];
	int st;
	if (!tu_have_qemu())
		return;
	st = tu_qemu_img(out, sizeof(out), "check", "-f", "qcow2", path, NULL);
	if (st != 0)
		fprintf(stderr, "qemu-img check %s: %d\n%s\n", path, st, out);
	assert_int_equal(st, 0);
}

/* Data that deflates well, varying with seed. */
static void fill_compressible(uint8_t *b, size_t len, uint64_t seed)
{
	uint64_t st = seed;
	tu_fill(b, 64, &st);
	for (size_t i = 64; i < len; i++)
		b[i] = b[i % 64];
}

static void test_create_empty(void **state)
{
	struct fx *f = *state;
	for (unsigned v = 2; v <= 3; v++) {
		struct qcow2_create_opts o = { .size = 0, .version = v };
		char name[32];
		snprintf(name, sizeof(name), "empty%u.qcow2", v);
		char *p = make(f, name, &o);
		struct stat st;
		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(st.st_size, 3 * 65536); /* header, refcount table and block */
		assert_true(get_be(p, 40) == 0);	   /* no L1 table */
		struct img *im = open_img(f, p, 0);
		assert_true(im->size == 0);
		expect_clean(im);
		assert_int_equal(qcow2_resize(im, 1u << 20), 0);
		assert_int_equal(img_pwrite(im, "data", 4, 4096), 0);
		expect_clean(im);
		img_close(im);
		qemu_check_clean(p);
		free(p);
	}
	/* snapshots of an empty disk (an L1 table of 0 entries) */
	struct qcow2_create_opts o = { .size = 0 };
	char *p = make(f, "empty-snap.qcow2", &o);
	struct img *im = open_img(f, p, 0);
	assert_int_equal(qcow2_snapshot_create(im, "s1"), 0);
	assert_int_equal(qcow2_snapshot_apply(im, "s1"), 0);
	expect_clean(im);
	assert_int_equal(qcow2_snapshot_delete(im, "s1"), 0);
	expect_clean(im);
	img_close(im);
	qemu_check_clean(p);
	free(p);
}

static void test_copied_without_offset(void **state)
{
	struct fx *f = *state;
	struct qcow2_create_opts o = { .size = 1u << 20 };
	char *p = make(f, "cp.qcow2", &o);
	uint8_t b[4096], z[4096] = { 0 };
	struct qcow2_check_result r;
	struct qcow2_info qi;
	struct img *im = open_img(f, p, 0);

	memset(b, 0xab, sizeof(b));
	assert_int_equal(img_pwrite(im, b, sizeof(b), 0), 0);
	img_close(im);
	put_be(p, first_l2(p) + 8, 1ull << 63, 8); /* cluster 1: COPIED, no offset */
	im = open_img(f, p, 0);
	/* read: unallocated (zeroes), the image is not fenced; check: nothing to report */
	assert_int_equal(img_pread(im, b, sizeof(b), 65536), 0);
	assert_memory_equal(b, z, sizeof(b));
	assert_int_equal(qcow2_check(im, false, &r), 0);
	assert_true(r.corruptions == 0 && r.leaks == 0 && r.out_of_range == 0);
	/* a write allocates a fresh cluster, never the offset 0 the entry names */
	memset(b, 0x5c, sizeof(b));
	assert_int_equal(img_pwrite(im, b, sizeof(b), 65536 + 4096), 0);
	assert_int_equal(img_pread(im, z, sizeof(z), 65536 + 4096), 0);
	assert_memory_equal(b, z, sizeof(b));
	assert_int_equal(img_pread(im, b, 4, 0), 0);
	assert_int_equal(b[0], 0xab);
	assert_int_equal(qcow2_get_info(im, &qi), 0);
	assert_false(qi.corrupt);
	expect_clean(im);
	img_close(im);
	assert_true(get_be(p, 0) >> 32 == 0x514649fb); /* header untouched */
	qemu_check_clean(p);
	free(p);
}

static void test_repair_leaks_only(void **state)
{
	struct fx *f = *state;
	struct qcow2_create_opts o = { .size = 1u << 20 };
	char *p = make(f, "rl.qcow2", &o);
	struct qcow2_check_result r;
	struct img *im = open_img(f, p, 0);
	uint64_t rt, rb, l2;

	assert_int_equal(img_pwrite(im, "x", 1, 0), 0);
	img_close(im);
	rt = get_be(p, 48);
	rb = get_be(p, rt);
	l2 = first_l2(p);
	put_be(p, rb + 2 * (l2 >> 16), 0, 2); /* the L2 table: refcount 0 (corruption) */
	put_be(p, rb + 2 * 12, 1, 2);	      /* cluster 12: leaked */
	put_be(p, rb + 2 * 13, 1, 2);	      /* cluster 13: leaked */
	im = open_img(f, p, IMG_O_RDONLY);
	assert_int_equal(qcow2_check_repair(im, QCOW2_REPAIR_LEAKS, &r), -EROFS);
	img_close(im);
	im = open_img(f, p, IMG_O_REPAIR);
	assert_int_equal(qcow2_check_repair(im, (enum qcow2_repair)7, &r), -EINVAL);
	assert_int_equal(qcow2_check_repair(im, QCOW2_REPAIR_LEAKS, &r), 0);
	assert_true(r.leaks == 2 && r.leaks_fixed == 2);
	assert_true(r.corruptions >= 1 && r.corruptions_fixed == 0);
	assert_int_equal(qcow2_check(im, false, &r), 0);
	assert_true(r.leaks == 0 && r.corruptions >= 1); /* left alone, still reported */
	assert_int_equal(qcow2_check_repair(im, QCOW2_REPAIR_ALL, &r), 0);
	assert_true(r.corruptions_fixed == r.corruptions && r.corruptions >= 1);
	expect_clean(im);
	img_close(im);
	qemu_check_clean(p);
	free(p);
}

#define CSIZE ((4u << 20) + 1024) /* the last cluster is 1 KiB */

static void compressed_image(struct fx *f, const char *name, const char *comp, unsigned cs,
			     unsigned rbits)
{
	struct qcow2_create_opts o = { .size = CSIZE, .cluster_size = cs, .compression = comp,
				       .refcount_bits = rbits };
	char *p = make(f, name, &o);
	uint8_t *model = calloc(1, CSIZE);
	uint64_t ncl = (CSIZE + cs - 1) / cs, rng = 99;
	struct img_extent ext;
	struct img *im = open_img(f, p, 0);
	struct stat st;

	assert_non_null(model);
	/* argument checks */
	assert_int_equal(qcow2_write_compressed(im, model, cs, cs / 2), -EINVAL);
	assert_int_equal(qcow2_write_compressed(im, model, cs - 1, 0), -EINVAL);
	assert_int_equal(qcow2_write_compressed(im, model, cs, (uint64_t)ncl * cs), -EINVAL);
	/* every cluster: most compress (packed together), every 5th is random (plain) */
	for (uint64_t i = 0; i < ncl; i++) {
		size_t len = (size_t)MIN((uint64_t)cs, CSIZE - i * cs);
		if (i % 5 == 4)
			tu_fill(model + i * cs, len, &rng);
		else
			fill_compressible(model + i * cs, len, i + 1);
		assert_int_equal(qcow2_write_compressed(im, model + i * cs, len, i * cs), 0);
	}
	assert_int_equal(img_map(im, 0, cs, &ext), 0);
	assert_true(ext.kind == IMG_EXT_DATA && ext.host_offset == 0); /* compressed */
	assert_int_equal(img_map(im, 4ull * cs, cs, &ext), 0);
	assert_true(ext.kind == IMG_EXT_DATA && ext.host_offset != 0); /* stored plain */
	assert_true(tu_compare_image(im, model, CSIZE) == -1);
	expect_clean(im);
	assert_int_equal(img_flush(im), 0);
	assert_int_equal(stat(p, &st), 0);
	if (!rbits || rbits > 1) /* compressed clusters share host clusters */
		assert_true((uint64_t)st.st_size < (uint64_t)CSIZE / 2);
	/* the normal write path over compressed clusters: copy-on-write of the old data */
	tu_fill(model + 1000, 300, &rng);
	assert_int_equal(img_pwrite(im, model + 1000, 300, 1000), 0);
	tu_fill(model + 2ull * cs - 100, 200, &rng); /* across two compressed clusters */
	assert_int_equal(img_pwrite(im, model + 2ull * cs - 100, 200, 2ull * cs - 100), 0);
	/* replace a compressed cluster with another compressed one; discard one */
	fill_compressible(model + 3ull * cs, cs, 777);
	assert_int_equal(qcow2_write_compressed(im, model + 3ull * cs, cs, 3ull * cs), 0);
	assert_int_equal(img_discard(im, 5ull * cs, cs), 0);
	memset(model + 5ull * cs, 0, cs);
	assert_true(tu_compare_image(im, model, CSIZE) == -1);
	assert_int_equal(img_flush(im), 0);
	expect_clean(im);
	img_close(im);
	im = open_img(f, p, IMG_O_RDONLY);
	assert_true(tu_compare_image(im, model, CSIZE) == -1);
	assert_int_equal(qcow2_write_compressed(im, model, cs, 0), -EROFS);
	img_close(im);
	qemu_check_clean(p);
	if (tu_have_qemu()) {
		char *raw = tu_path(f->dir, "model.raw"), out[4096];
		assert_int_equal(tu_write_file(raw, model, CSIZE), 0);
		int st2 = tu_qemu_img(out, sizeof(out), "compare", "-f", "qcow2", "-F", "raw", p,
				      raw, NULL);
		if (st2)
			fprintf(stderr, "qemu-img compare: %s\n", out);
		assert_int_equal(st2, 0);
		free(raw);
	}
	free(model);
	free(p);
}

static void test_compressed_zlib(void **state)
{
	compressed_image(*state, "cz.qcow2", NULL, 65536, 0);
}

static void test_compressed_zstd_small(void **state)
{
	compressed_image(*state, "cs.qcow2", "zstd", 4096, 0);
}

static void test_compressed_rc1_512(void **state)
{
	/* 1-bit refcounts: no host cluster can be shared, each gets its own */
	compressed_image(*state, "c1.qcow2", "zlib", 512, 1);
}

static void progress_cb(void *opaque, uint64_t done, uint64_t total)
{
	uint64_t *last = opaque;
	assert_true(done <= total && done >= *last);
	*last = done;
}

static void test_commit_empties(void **state)
{
	struct fx *f = *state;
	uint8_t *model = malloc(2u << 20), *got;
	char *base = tu_path(f->dir, "cb.raw");
	size_t glen;
	uint64_t rng = 5, last = 0;
	struct img_extent ext;

	tu_fill(model, 2u << 20, &rng);
	assert_int_equal(tu_write_file(base, model, 2u << 20), 0);
	for (int keep = 0; keep < 2; keep++) {
		struct qcow2_create_opts o = { .size = 2u << 20, .backing_file = "cb.raw",
					       .cluster_size = 4096 };
		char *top = make(f, keep ? "ck.qcow2" : "ce.qcow2", &o);
		struct qcow2_commit_opts co = { .keep = keep, .progress = progress_cb,
						.opaque = &last };
		struct img *im = open_img(f, top, 0);
		tu_fill(model + 10000, 50000, &rng);
		assert_int_equal(img_pwrite(im, model + 10000, 50000, 10000), 0);
		memset(model + (1u << 20), 0, 8192);
		assert_int_equal(img_write_zeroes(im, 1u << 20, 8192, true), 0);
		last = 0;
		assert_int_equal(qcow2_commit(im, &co, f->err, sizeof(f->err)), 0);
		assert_true(last == 2u << 20);
		assert_true(tu_compare_image(im, model, 2u << 20) == -1);
		assert_int_equal(img_map(im, 12288, 4096, &ext), 0);
		assert_int_equal(ext.depth, keep ? 0 : 1); /* emptied: reads from the base */
		assert_int_equal(img_map(im, 1u << 20, 4096, &ext), 0);
		assert_int_equal(ext.depth, keep ? 0 : 1);
		expect_clean(im);
		img_close(im);
		im = open_img(f, top, IMG_O_RDONLY);
		assert_true(tu_compare_image(im, model, 2u << 20) == -1);
		img_close(im);
		assert_int_equal(tu_read_file(base, &got, &glen), 0);
		assert_true(glen == 2u << 20);
		assert_memory_equal(got, model, 2u << 20); /* the base holds what the top showed */
		free(got);
		qemu_check_clean(top);
		free(top);
	}
	free(model);
	free(base);
}

static void test_last_error(void **state)
{
	struct fx *f = *state;
	struct qcow2_create_opts o = { .size = 1u << 20 };
	char *p = make(f, "le.qcow2", &o), why[320];
	struct qcow2_create_opts ot = { .size = 1u << 20, .backing_file = "le.qcow2",
					.backing_fmt = "qcow2" };
	char *top = make(f, "le-top.qcow2", &ot);
	uint8_t b[512];
	struct img *im = open_img(f, p, 0);

	assert_int_equal(img_pwrite(im, "x", 1, 0), 0);
	img_last_error(im, why, sizeof(why));
	assert_string_equal(why, "");
	img_close(im);
	put_be(p, first_l2(p), (1ull << 63) | 0x7fff0000ull, 8);
	im = open_img(f, p, IMG_O_RDONLY | IMG_O_QUIET);
	assert_int_equal(img_pread(im, b, sizeof(b), 0), -EIO);
	img_last_error(im, why, sizeof(why));
	assert_non_null(strstr(why, "entry 0 (0x800000007fff0000): cluster offset beyond end of file"));
	img_close(im);
	im = open_img(f, top, IMG_O_RDONLY | IMG_O_QUIET);
	assert_int_equal(img_pread(im, b, sizeof(b), 0), -EIO);
	img_last_error(im, why, sizeof(why));
	assert_true(strncmp(why, "backing file '", 14) == 0);
	assert_non_null(strstr(why, "le.qcow2': L2 table"));
	assert_non_null(strstr(why, "beyond end of file"));
	img_close(im);
	free(p);
	free(top);
}

static void test_no_backing(void **state)
{
	struct fx *f = *state;
	char *base = tu_path(f->dir, "gone.raw");
	struct qcow2_create_opts o = { .size = 1u << 20, .backing_file = "gone.raw" };
	uint8_t b[4096], c[4096];
	struct qcow2_info qi;
	struct img *im;
	char why[320];

	memset(b, 0, sizeof(b));
	assert_int_equal(tu_write_file(base, b, 0), 0);
	assert_int_equal(truncate(base, 1u << 20), 0);
	char *top = make(f, "nb.qcow2", &o);
	im = open_img(f, top, 0);
	memset(b, 0x42, sizeof(b));
	assert_int_equal(img_pwrite(im, b, sizeof(b), 0), 0);
	img_close(im);
	assert_int_equal(unlink(base), 0);
	assert_int_not_equal(img_open(&im, top, "qcow2", IMG_O_RDONLY, f->err, sizeof(f->err)), 0);
	assert_non_null(strstr(f->err, "gone.raw"));
	assert_int_equal(img_open(&im, top, "qcow2", IMG_O_NO_BACKING, f->err, sizeof(f->err)),
			 -EINVAL); /* writable without the backing file: refused */
	im = open_img(f, top, IMG_O_RDONLY | IMG_O_NO_BACKING | IMG_O_QUIET);
	assert_null(im->backing);
	assert_int_equal(qcow2_get_info(im, &qi), 0);
	assert_string_equal(qi.backing_file, "gone.raw");
	assert_string_equal(qi.backing_fmt, "raw");
	assert_int_equal(img_pread(im, c, sizeof(c), 0), 0); /* its own cluster */
	assert_memory_equal(b, c, sizeof(c));
	assert_int_equal(img_pread(im, c, sizeof(c), 65536), -ENOLINK);
	img_last_error(im, why, sizeof(why));
	assert_non_null(strstr(why, "gone.raw"));
	img_close(im);
	free(top);
	free(base);
}

int main(void)
{
#define T(x) cmocka_unit_test_setup_teardown(x, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_create_empty),	  T(test_copied_without_offset), T(test_repair_leaks_only),
		T(test_compressed_zlib),  T(test_compressed_zstd_small), T(test_compressed_rc1_512),
		T(test_commit_empties),	  T(test_last_error),		 T(test_no_backing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
