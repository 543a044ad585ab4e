/* SPDX-License-Identifier: MIT */
/*
 * VMDK import: images qemu-img makes (monolithicSparse, monolithicFlat, twoGbMaxExtent*)
 * read like the raw source; writes are refused; a hand-written descriptor with ZERO and
 * offset FLAT extents; malformed headers and descriptors fail with clear errors.
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

#include "img_test_util.h"

#define SZ ((3u << 20) + 1536)

struct fx {
	char *dir, *src, *img;
	uint8_t *data;
	char out[4096], err[512];
};

static bool have_qemu;

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	uint64_t st = 77;
	f->dir = tu_mkdtemp();
	f->src = tu_path(f->dir, "src.raw");
	f->img = tu_path(f->dir, "d.vmdk");
	f->data = calloc(1, SZ);
	for (size_t off = 0; off < SZ; off += 131072) /* every other 64 KiB holds data */
		tu_fill(f->data + off, MIN(65536, SZ - off), &st);
	if (tu_write_file(f->src, f->data, SZ))
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
	free(f->img);
	free(f->data);
	free(f);
	return 0;
}

static void convert(struct fx *f, const char *subformat)
{
	char opt[64];
	snprintf(opt, sizeof(opt), "subformat=%s", subformat);
	int st = tu_qemu_img(f->out, sizeof(f->out), "convert", "-O", "vmdk", "-o", opt, f->src,
			     f->img, NULL);
	if (st)
		fprintf(stderr, "%s\n", f->out);
	assert_int_equal(st, 0);
}

static void test_qemu_subformats(void **state)
{
	struct fx *f = *state;
	static const char *const sub[] = { "monolithicSparse", "monolithicFlat",
					   "twoGbMaxExtentSparse", "twoGbMaxExtentFlat" };
	struct img *im;

	if (!have_qemu)
		skip();
	for (size_t i = 0; i < ARRAY_SIZE(sub); i++) {
		convert(f, sub[i]);
		int ret = img_open(&im, f->img, "vmdk", 0, f->err, sizeof(f->err));
		if (ret)
			fprintf(stderr, "%s: %s\n", sub[i], f->err);
		assert_int_equal(ret, 0);
		assert_true(im->readonly);
		assert_true(im->size == SZ);
		assert_true(tu_compare_image(im, f->data, SZ) == -1);
		/* unaligned vectored read across a hole boundary */
		uint8_t a[100], b[70000];
		struct iovec iov[2] = { { a, sizeof(a) }, { b, sizeof(b) } };
		assert_int_equal(img_preadv(im, iov, 2, 65536 - 50), 0);
		assert_memory_equal(a, f->data + 65486, sizeof(a));
		assert_memory_equal(b, f->data + 65586, sizeof(b));
		assert_int_equal(img_pwrite(im, a, 1, 0), -EROFS);
		assert_int_equal(img_discard(im, 0, 512), -EROFS);
		assert_int_equal(img_write_zeroes(im, 0, 512, true), -EROFS);
		assert_int_equal(img_flush(im), 0);
		img_close(im);
	}
}

static void test_stream_optimized_refused(void **state)
{
	struct fx *f = *state;
	struct img *im;

	if (!have_qemu)
		skip();
	convert(f, "streamOptimized");
	assert_int_equal(img_open(&im, f->img, "vmdk", IMG_O_RDONLY, f->err, sizeof(f->err)), -ENOTSUP);
	assert_non_null(strstr(f->err, "streamOptimized"));
}

static void test_descriptor_extents(void **state)
{
	struct fx *f = *state;
	char *desc;
	struct img *im;
	uint8_t *expect = calloc(1, 3 * 4096);

	/* 4 KiB of zero extent, then 8 KiB of src.raw starting at its sector 16 */
	assert_true(asprintf(&desc, "# Disk DescriptorFile\nversion=1\nCID=12345678\n"
				    "parentCID=ffffffff\ncreateType=\"monolithicFlat\"\n"
				    "RW 8 ZERO\nRDONLY 16 FLAT \"src.raw\" 16\n") > 0);
	assert_int_equal(tu_write_file(f->img, desc, strlen(desc)), 0);
	memcpy(expect + 4096, f->data + 8192, 8192);
	assert_int_equal(img_open(&im, f->img, "vmdk", IMG_O_RDONLY, f->err, sizeof(f->err)), 0);
	assert_true(im->size == 3 * 4096);
	assert_true(tu_compare_image(im, expect, 3 * 4096) == -1);
	img_close(im);
	free(desc);
	free(expect);
}

static void expect_error(struct fx *f, const char *content, size_t len, int ret, const char *msg)
{
	struct img *im = (struct img *)1;
	assert_int_equal(tu_write_file(f->img, content, len), 0);
	int r = img_open(&im, f->img, "vmdk", IMG_O_RDONLY, f->err, sizeof(f->err));
	if (r != ret || !strstr(f->err, msg))
		fprintf(stderr, "got %d '%s'\n", r, f->err);
	assert_int_equal(r, ret);
	assert_non_null(strstr(f->err, msg));
	assert_null(im);
}

static void test_bad_descriptors(void **state)
{
	struct fx *f = *state;
	static const char parent[] = "# Disk DescriptorFile\nparentCID=12345678\n"
				     "RW 8 SPARSE \"x.vmdk\"\n";
	static const char missing[] = "# Disk DescriptorFile\nRW 8 FLAT \"nope.raw\" 0\n";
	static const char none[] = "# Disk DescriptorFile\nversion=1\n";
	static const char noacc[] = "# Disk DescriptorFile\nNOACCESS 8 FLAT \"src.raw\" 0\n";
	static const char vmfs[] = "# Disk DescriptorFile\nRW 8 VMFSSPARSE \"src.raw\"\n";
	static const char junk[] = "RW 8 FLAT\n";

	expect_error(f, parent, sizeof(parent) - 1, -ENOTSUP, "delta links");
	expect_error(f, missing, sizeof(missing) - 1, -ENOENT, "nope.raw");
	expect_error(f, none, sizeof(none) - 1, -EINVAL, "no extents");
	expect_error(f, noacc, sizeof(noacc) - 1, -ENOTSUP, "NOACCESS");
	expect_error(f, vmfs, sizeof(vmfs) - 1, -ENOTSUP, "VMFSSPARSE");
	expect_error(f, junk, sizeof(junk) - 1, -EINVAL, "bad magic");
	uint8_t *big = calloc(1, 100000);
	expect_error(f, (char *)big, 100000, -EINVAL, "not a vmdk");
	free(big);
}

static void test_bad_sparse_header(void **state)
{
	struct fx *f = *state;
	uint8_t *img;
	size_t len;

	if (!have_qemu)
		skip();
	convert(f, "monolithicSparse");
	assert_int_equal(tu_read_file(f->img, &img, &len), 0);
	uint8_t orig[512];
	memcpy(orig, img, 512);

	img[56] = 0xff, img[57] = 0xff, img[58] = 0xff, img[59] = 0x7f; /* gd beyond the file */
	expect_error(f, (char *)img, len, -EINVAL, "grain directory");
	memcpy(img, orig, 512);
	memset(img + 20, 0, 8); /* grain size 0 */
	expect_error(f, (char *)img, len, -EINVAL, "grain size");
	memcpy(img, orig, 512);
	img[4] = 9; /* version */
	expect_error(f, (char *)img, len, -ENOTSUP, "version 9");
	memcpy(img, orig, 512);
	img[10] = 1; /* compressed grains flag */
	expect_error(f, (char *)img, len, -ENOTSUP, "compressed");
	expect_error(f, (char *)orig, 300, -EINVAL, "grain directory"); /* truncated file */

	/* a grain table entry beyond the file: that read fails, the rest still works */
	memcpy(img, orig, 512);
	uint64_t gd = 0;
	for (int i = 0; i < 8; i++)
		gd |= (uint64_t)img[56 + i] << (8 * i);
	uint32_t gt = (uint32_t)(img[gd * 512] | img[gd * 512 + 1] << 8 | img[gd * 512 + 2] << 16 |
				 (uint32_t)img[gd * 512 + 3] << 24);
	img[gt * 512 + 0] = 0xff, img[gt * 512 + 1] = 0xff, img[gt * 512 + 2] = 0xff;
	assert_int_equal(tu_write_file(f->img, img, len), 0);
	struct img *im;
	uint8_t b[512];
	assert_int_equal(img_open(&im, f->img, "vmdk", IMG_O_RDONLY, f->err, sizeof(f->err)), 0);
	assert_int_equal(img_pread(im, b, sizeof(b), 0), -EIO);
	assert_int_equal(img_pread(im, b, sizeof(b), 131072), 0);
	assert_memory_equal(b, f->data + 131072, sizeof(b));
	img_close(im);
	free(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_qemu_subformats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_optimized_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_descriptor_extents, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_descriptors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_sparse_header, setup, teardown),
	};
	have_qemu = tu_have_qemu();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
