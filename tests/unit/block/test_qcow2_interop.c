/* SPDX-License-Identifier: MIT */
/*
 * qcow2 interoperability with qemu-img / qemu-io (skipped without them):
 * - images qemu makes (cluster sizes, v2, refcount widths, zlib and zstd compression,
 *   preallocation, backing chains, internal snapshots, zero clusters, a dirty image
 *   left by a killed writer) read byte for byte like `qemu-img convert -O raw`;
 * - images Vireo writes into (COW from compressed clusters and snapshots, commit,
 *   resize, preallocated creation) pass `qemu-img check` and `qemu-img compare`.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block/qcow2.h"
#include "img_test_util.h"

#define SRC_SIZE ((4u << 20) + 1536)

struct fx {
	char *dir;
	char *src; /* raw source image */
	uint8_t *data;
	char out[8192];
};

static bool have_qemu;

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	uint64_t st = 1234;

	f->dir = tu_mkdtemp();
	f->src = tu_path(f->dir, "src.raw");
	f->data = calloc(1, SRC_SIZE);
	/* random data with zero runs and untouched gaps, not aligned to anything */
	for (size_t off = 0; off < SRC_SIZE;) {
		size_t len = 1 + tu_rand(&st) % 50000;
		if (len > SRC_SIZE - off)
			len = SRC_SIZE - off;
		if (tu_rand(&st) % 3)
			tu_fill(f->data + off, len, &st);
		off += len;
	}
	if (tu_write_file(f->src, f->data, SRC_SIZE))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	tu_rmtree(f->dir);
	free(f->dir);
	free(f->src);
	free(f->data);
	free(f);
	return 0;
}

#define QIMG(f, ...)                                                                               \
	do {                                                                                       \
		int st_ = tu_qemu_img((f)->out, sizeof((f)->out), __VA_ARGS__, NULL);              \
		if (st_)                                                                           \
			fprintf(stderr, "qemu-img failed (%d): %s\n", st_, (f)->out);              \
		assert_int_equal(st_, 0);                                                          \
	} while (0)
#define QIO(f, ...)                                                                                \
	do {                                                                                       \
		int st_ = tu_qemu_io((f)->out, sizeof((f)->out), __VA_ARGS__, NULL);               \
		if (st_)                                                                           \
			fprintf(stderr, "qemu-io failed (%d): %s\n", st_, (f)->out);               \
		assert_int_equal(st_, 0);                                                          \
	} while (0)

/* qemu's raw export of img (optionally of a snapshot) into memory. */
static uint8_t *export_raw(struct fx *f, const char *img, const char *snap, size_t *len)
{
	char *raw = tu_path(f->dir, "export.raw"), opt[80];
	uint8_t *buf;
	if (snap) {
		snprintf(opt, sizeof(opt), "snapshot.name=%s", snap);
		QIMG(f, "convert", "-f", "qcow2", "-l", opt, "-O", "raw", img, raw);
	} else {
		QIMG(f, "convert", "-O", "raw", img, raw);
	}
	assert_int_equal(tu_read_file(raw, &buf, len), 0);
	free(raw);
	return buf;
}

static struct img *open_img(const char *path, unsigned flags)
{
	struct img *im = NULL;
	char err[512] = "";
	int ret = img_open(&im, path, "qcow2", flags, err, sizeof(err));
	if (ret)
		fprintf(stderr, "open %s: %s\n", path, err);
	assert_int_equal(ret, 0);
	return im;
}

static void assert_check_clean(struct img *im)
{
	struct qcow2_check_result r;
	assert_int_equal(qcow2_check(im, false, &r), 0);
	if (r.corruptions || r.leaks || r.overlaps || r.out_of_range)
		fprintf(stderr, "check: corruptions %llu leaks %llu overlaps %llu oor %llu\n",
			(unsigned long long)r.corruptions, (unsigned long long)r.leaks,
			(unsigned long long)r.overlaps, (unsigned long long)r.out_of_range);
	assert_true(!r.corruptions && !r.leaks && !r.overlaps && !r.out_of_range);
}

static void qemu_check(struct fx *f, const char *img)
{
	int st = tu_qemu_img(f->out, sizeof(f->out), "check", img, NULL);
	if (st)
		fprintf(stderr, "qemu-img check %s: %d\n%s\n", img, st, f->out);
	assert_int_equal(st, 0);
}

/* Vireo's reading of img equals qemu's export, and equals expect when given. */
static void assert_reads_like_qemu(struct fx *f, const char *img, const uint8_t *expect)
{
	size_t len;
	uint8_t *ref = export_raw(f, img, NULL, &len);
	struct img *im = open_img(img, IMG_O_RDONLY);
	int64_t bad = tu_compare_image(im, ref, len);
	if (bad >= 0)
		fprintf(stderr, "%s: differs from qemu's export at %lld\n", img, (long long)bad);
	assert_true(bad == -1);
	if (expect)
		assert_memory_equal(ref, expect, len);
	assert_check_clean(im);
	img_close(im);
	free(ref);
}

static void test_convert_variants(void **state)
{
	struct fx *f = *state;
	static const char *const variants[][4] = {
		{ NULL },
		{ "-o", "cluster_size=512" },
		{ "-o", "cluster_size=2M" },
		{ "-o", "compat=0.10" },
		{ "-o", "refcount_bits=1" },
		{ "-o", "refcount_bits=64,cluster_size=4096" },
		{ "-c" },
		{ "-c", "-o", "compression_type=zstd" },
		{ "-c", "-o", "cluster_size=4096" },
		{ "-o", "preallocation=metadata" },
		{ "-o", "preallocation=full,cluster_size=16384" },
		{ "-o", "lazy_refcounts=on" },
	};
	char *img = tu_path(f->dir, "v.qcow2");

	if (!have_qemu)
		skip();
	for (size_t i = 0; i < ARRAY_SIZE(variants); i++) {
		char *argv[16];
		int n = 0;
		argv[n++] = "qemu-img";
		argv[n++] = "convert";
		argv[n++] = "-O";
		argv[n++] = "qcow2";
		for (int k = 0; k < 4 && variants[i][k]; k++)
			argv[n++] = (char *)(uintptr_t)variants[i][k];
		argv[n++] = f->src;
		argv[n++] = img;
		argv[n] = NULL;
		int st = tu_run(argv, f->out, sizeof(f->out));
		if (st)
			fprintf(stderr, "variant %zu: %s\n", i, f->out);
		assert_int_equal(st, 0);
		assert_reads_like_qemu(f, img, f->data);
	}
	free(img);
}

static void test_refused_features(void **state)
{
	struct fx *f = *state;
	char *img = tu_path(f->dir, "x.qcow2"), err[512] = "";
	struct img *im;

	if (!have_qemu)
		skip();
	QIMG(f, "create", "-f", "qcow2", "-o", "extended_l2=on", img, "1M");
	assert_int_equal(img_open(&im, img, "qcow2", IMG_O_RDONLY, err, sizeof(err)), -ENOTSUP);
	assert_non_null(strstr(err, "extended L2"));
	QIMG(f, "create", "-f", "qcow2", "--object", "secret,id=s0,data=pw", "-o",
	     "encrypt.format=luks,encrypt.key-secret=s0", img, "1M");
	assert_int_equal(img_open(&im, img, "qcow2", IMG_O_RDONLY, err, sizeof(err)), -ENOTSUP);
	assert_non_null(strstr(err, "encrypted"));
	free(img);
}

static void test_backing_chain(void **state)
{
	struct fx *f = *state;
	char *base = tu_path(f->dir, "base.raw"), *mid = tu_path(f->dir, "mid.qcow2");
	char *top = tu_path(f->dir, "top.qcow2");
	uint8_t *b = malloc(SRC_SIZE);
	uint64_t st = 99;
	struct img_extent e;

	if (!have_qemu)
		skip();
	/* base: a shorter raw file; mid: qcow2 over it; top: qcow2 over mid (relative names) */
	tu_fill(b, SRC_SIZE, &st);
	assert_int_equal(tu_write_file(base, b, 3u << 20), 0);
	QIMG(f, "create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", mid, "4M");
	QIO(f, "-c", "write -P 0x11 65536 200000", "-c", "write -z 1048576 65536", mid);
	QIMG(f, "create", "-f", "qcow2", "-o", "cluster_size=4096", "-b", "mid.qcow2", "-F", "qcow2",
	     top);
	QIO(f, "-c", "write -P 0x22 100000 5000", "-c", "write -z 3145000 70000", "-c",
	    "discard 2097152 131072", top);
	assert_reads_like_qemu(f, top, NULL);

	/* map: the chain depth shows */
	struct img *im = open_img(top, IMG_O_RDONLY);
	assert_int_equal(img_map(im, 98304, 4096, &e), 0);
	assert_int_equal(e.kind, IMG_EXT_DATA);
	assert_int_equal(e.depth, 0);
	assert_int_equal(img_map(im, 65536, 4096, &e), 0);
	assert_int_equal(e.kind, IMG_EXT_DATA);
	assert_int_equal(e.depth, 1);
	assert_int_equal(img_map(im, 3u << 20, 4096, &e), 0); /* zeroed in the top */
	assert_int_equal(e.kind, IMG_EXT_ZERO);
	assert_int_equal(e.depth, 0);
	assert_int_equal(img_map(im, 3670016, 4096, &e), 0); /* past the raw base */
	assert_int_equal(e.kind, IMG_EXT_UNALLOCATED);
	img_close(im);

	/* qemu-img convert -B: only differing clusters land in the top */
	QIMG(f, "convert", "-O", "qcow2", "-B", "base.raw", "-F", "raw", f->src, top);
	assert_reads_like_qemu(f, top, f->data);
	free(b);
	free(base);
	free(mid);
	free(top);
}

static void test_snapshots_from_qemu(void **state)
{
	struct fx *f = *state;
	char *img = tu_path(f->dir, "s.qcow2");
	struct qcow2_snapshot_info *list;
	unsigned n;
	size_t len, len2;

	if (!have_qemu)
		skip();
	QIMG(f, "convert", "-O", "qcow2", f->src, img);
	QIMG(f, "snapshot", "-c", "first", img);
	QIO(f, "-c", "write -P 0x33 0 300000", "-c", "write -z 1048576 65536", "-c",
	    "discard 2097152 262144", img);
	QIMG(f, "snapshot", "-c", "second", img);
	QIO(f, "-c", "write -P 0x44 4096 70000", img);

	uint8_t *s1 = export_raw(f, img, "first", &len), *got = malloc(SRC_SIZE);
	uint8_t *s2 = export_raw(f, img, "second", &len2);
	struct img *im = open_img(img, 0);
	assert_int_equal(qcow2_snapshot_list(im, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].name, "first");
	assert_string_equal(list[1].name, "second");
	assert_true(list[0].disk_size == SRC_SIZE);
	free(list);
	assert_memory_equal(s1, f->data, SRC_SIZE);
	assert_int_equal(qcow2_snapshot_pread(im, "first", got, SRC_SIZE, 0), 0);
	assert_memory_equal(got, s1, SRC_SIZE);
	assert_int_equal(qcow2_snapshot_pread(im, "2", got, SRC_SIZE, 0), 0); /* by id */
	assert_memory_equal(got, s2, SRC_SIZE);

	/* Vireo writes over clusters the snapshots share, then reverts and deletes */
	memcpy(got, s2, SRC_SIZE);
	assert_int_equal(img_pread(im, got, SRC_SIZE, 0), 0);
	memset(got + 1000, 0x55, 200000);
	assert_int_equal(img_pwrite(im, got + 1000, 200000, 1000), 0);
	img_close(im);
	qemu_check(f, img);
	uint8_t *act = export_raw(f, img, NULL, &len);
	assert_memory_equal(act, got, SRC_SIZE);
	free(act);
	im = open_img(img, 0);
	assert_int_equal(qcow2_snapshot_apply(im, "first"), 0);
	assert_int_equal(qcow2_snapshot_delete(im, "second"), 0);
	assert_int_equal(qcow2_snapshot_create(im, "third"), 0);
	assert_check_clean(im);
	img_close(im);
	qemu_check(f, img);
	act = export_raw(f, img, NULL, &len);
	assert_memory_equal(act, f->data, SRC_SIZE);
	free(act);
	act = export_raw(f, img, "third", &len);
	assert_memory_equal(act, f->data, SRC_SIZE);
	QIMG(f, "snapshot", "-l", img);
	assert_non_null(strstr(f->out, "third"));
	assert_null(strstr(f->out, "second"));
	free(act);
	free(s1);
	free(s2);
	free(got);
	free(img);
}

/* Partial overwrites of compressed clusters (COW through decompression). */
static void test_write_into_compressed(void **state)
{
	struct fx *f = *state;
	static const char *const types[] = { "compression_type=zlib", "compression_type=zstd" };
	char *img = tu_path(f->dir, "c.qcow2"), *raw = tu_path(f->dir, "model.raw");
	uint8_t *model = malloc(SRC_SIZE);
	uint64_t st = 5;

	if (!have_qemu)
		skip();
	for (size_t t = 0; t < ARRAY_SIZE(types); t++) {
		QIMG(f, "convert", "-c", "-O", "qcow2", "-o", types[t], f->src, img);
		memcpy(model, f->data, SRC_SIZE);
		struct img *im = open_img(img, 0);
		for (int i = 0; i < 200; i++) {
			uint64_t off = tu_rand(&st) % SRC_SIZE, len = 1 + tu_rand(&st) % 9000;
			if (len > SRC_SIZE - off)
				len = SRC_SIZE - off;
			tu_fill(model + off, len, &st);
			assert_int_equal(img_pwrite(im, model + off, len, off), 0);
		}
		assert_true(tu_compare_image(im, model, SRC_SIZE) == -1);
		assert_check_clean(im);
		img_close(im);
		qemu_check(f, img);
		assert_int_equal(tu_write_file(raw, model, SRC_SIZE), 0);
		QIMG(f, "compare", "-f", "qcow2", "-F", "raw", img, raw);
	}
	free(model);
	free(img);
	free(raw);
}

static void test_dirty_image_repaired(void **state)
{
	struct fx *f = *state;
	char *img = tu_path(f->dir, "d.qcow2");
	struct qcow2_info info;
	uint8_t *ref;
	size_t len;

	if (!have_qemu)
		skip();
	QIMG(f, "create", "-f", "qcow2", "-o", "lazy_refcounts=on", img, "4M");
	/* a writer killed with lazy refcounts on leaves the dirty bit set */
	tu_qemu_io(f->out, sizeof(f->out), "-c", "write -P 0x66 0 300000", "-c", "sigraise 9",
		   img, NULL);
	ref = export_raw(f, img, NULL, &len);
	struct img *im = open_img(img, IMG_O_RDONLY);
	assert_int_equal(qcow2_get_info(im, &info), 0);
	assert_true(info.dirty);
	assert_true(tu_compare_image(im, ref, len) == -1);
	img_close(im);
	im = open_img(img, 0); /* writable: repaired on open */
	assert_int_equal(qcow2_get_info(im, &info), 0);
	assert_false(info.dirty);
	assert_check_clean(im);
	assert_true(tu_compare_image(im, ref, len) == -1);
	assert_int_equal(img_pwrite(im, "x", 1, 5), 0);
	img_close(im);
	qemu_check(f, img);
	free(ref);
	free(img);
}

static void test_commit_resize_prealloc(void **state)
{
	struct fx *f = *state;
	char *base = tu_path(f->dir, "cb.qcow2"), *top = tu_path(f->dir, "ct.qcow2");
	char *raw = tu_path(f->dir, "m.raw"), err[512] = "";
	uint8_t *model = calloc(1, 6u << 20);
	struct img *im;

	if (!have_qemu)
		skip();
	/* commit into a smaller qcow2 base, which grows */
	QIMG(f, "convert", "-O", "qcow2", f->src, base);
	struct qcow2_create_opts o = { .size = 6u << 20, .backing_file = "cb.qcow2",
				       .backing_fmt = "qcow2", .cluster_size = 4096 };
	assert_int_equal(qcow2_create(top, &o, err, sizeof(err)), 0);
	memcpy(model, f->data, SRC_SIZE);
	im = open_img(top, 0);
	memset(model + 5000, 0x77, 100000);
	assert_int_equal(img_pwrite(im, model + 5000, 100000, 5000), 0);
	memset(model + (5u << 20), 0x78, 4096);
	assert_int_equal(img_pwrite(im, model + (5u << 20), 4096, 5u << 20), 0);
	memset(model + 2000000, 0, 300000);
	assert_int_equal(img_write_zeroes(im, 2000000, 300000, true), 0);
	struct qcow2_commit_opts keep = { .keep = true };
	assert_int_equal(qcow2_commit(im, &keep, err, sizeof(err)), 0);
	assert_true(tu_compare_image(im, model, 6u << 20) == -1);
	img_close(im);
	qemu_check(f, base);
	assert_int_equal(tu_write_file(raw, model, 6u << 20), 0);
	QIMG(f, "compare", "-f", "qcow2", "-F", "raw", base, raw);

	/* resize: grow then shrink, with data around the edges */
	im = open_img(base, 0);
	assert_int_equal(qcow2_resize(im, 3000u << 20), 0); /* needs a bigger L1 */
	assert_true(im->size == 3000u << 20);
	assert_int_equal(img_pwrite(im, "end", 3, (3000u << 20) - 3), 0);
	assert_int_equal(qcow2_resize(im, (1u << 20) + 512), 0);
	assert_int_equal(qcow2_resize(im, 2u << 20), 0); /* the cut tail reads as zeroes */
	memset(model + (1u << 20) + 512, 0, (1u << 20) - 512);
	assert_true(tu_compare_image(im, model, 2u << 20) == -1);
	assert_check_clean(im);
	assert_int_equal(qcow2_snapshot_create(im, "s"), 0);
	assert_int_equal(qcow2_resize(im, 4u << 20), -ENOTSUP);
	img_close(im);
	qemu_check(f, base);
	QIMG(f, "info", base);
	assert_non_null(strstr(f->out, "virtual size: 2 MiB"));

	/* preallocated creation */
	for (int mode = QCOW2_PREALLOC_METADATA; mode <= QCOW2_PREALLOC_FULL; mode++) {
		struct qcow2_create_opts p = { .size = 3u << 20, .prealloc = (enum qcow2_prealloc)mode,
					       .cluster_size = 65536 };
		struct img_extent e;
		assert_int_equal(qcow2_create(top, &p, err, sizeof(err)), 0);
		qemu_check(f, top);
		im = open_img(top, 0);
		assert_int_equal(img_map(im, 1u << 20, 65536, &e), 0);
		assert_int_equal(e.kind, IMG_EXT_DATA);
		assert_true(e.host_offset != 0);
		memset(model, 0, 3u << 20);
		assert_true(tu_compare_image(im, model, 3u << 20) == -1);
		assert_int_equal(img_pwrite(im, "abc", 3, 70000), 0);
		assert_check_clean(im);
		img_close(im);
		qemu_check(f, top);
	}
	free(model);
	free(base);
	free(top);
	free(raw);
}

/* Growing an overlay over a longer backing file: the new area reads as zeroes. */
static void test_resize_over_longer_backing(void **state)
{
	struct fx *f = *state;
	char *top = tu_path(f->dir, "g.qcow2"), err[512];
	struct img *im;

	for (unsigned v = 2; v <= 3; v++) {
		struct qcow2_create_opts o = { .size = 1u << 20, .backing_file = "src.raw",
					       .version = v, .cluster_size = 4096 };
		uint8_t *model = calloc(1, 3u << 20);
		assert_int_equal(qcow2_create(top, &o, err, sizeof(err)), 0);
		im = open_img(top, 0);
		assert_int_equal(img_pwrite(im, "xyz", 3, 1000), 0);
		assert_int_equal(qcow2_resize(im, (3u << 20) - 512), 0);
		memcpy(model, f->data, 1u << 20);
		memcpy(model + 1000, "xyz", 3);
		assert_true(tu_compare_image(im, model, (3u << 20) - 512) == -1);
		assert_check_clean(im);
		img_close(im);
		free(model);
	}
	/* 1-bit refcounts cannot count a snapshot */
	struct qcow2_create_opts o1 = { .size = 1u << 20, .refcount_bits = 1 };
	assert_int_equal(qcow2_create(top, &o1, err, sizeof(err)), 0);
	im = open_img(top, 0);
	assert_int_equal(img_pwrite(im, "a", 1, 0), 0);
	assert_int_equal(qcow2_snapshot_create(im, "s"), -ENOTSUP);
	assert_check_clean(im);
	img_close(im);
	free(top);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_convert_variants, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_features, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backing_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshots_from_qemu, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_into_compressed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dirty_image_repaired, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_resize_prealloc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resize_over_longer_backing, setup, teardown),
	};
	have_qemu = tu_have_qemu();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
