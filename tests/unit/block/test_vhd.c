/* SPDX-License-Identifier: MIT */
/*
 * VHD import: fixed and dynamic images made by qemu-img read like qemu's raw export
 * (same virtual size rule), writes are refused, and damaged footers, headers and block
 * tables fail cleanly.
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

#include "img_test_util.h"

#define SZ ((5u << 20) + 4096)

struct fx {
	char *dir, *src, *img, *exp;
	uint8_t *data;
	char out[4096], err[512];
};

static bool have_qemu;

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	uint64_t st = 31;
	f->dir = tu_mkdtemp();
	f->src = tu_path(f->dir, "src.raw");
	f->img = tu_path(f->dir, "d.vhd");
	f->exp = tu_path(f->dir, "exp.raw");
	f->data = calloc(1, SZ);
	for (size_t off = 0; off < SZ; off += 3u << 20) /* data, then a hole of > 1 block */
		tu_fill(f->data + off, MIN(700000, SZ - off), &st);
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
	free(f->exp);
	free(f->data);
	free(f);
	return 0;
}

static void convert(struct fx *f, const char *opts)
{
	int st = tu_qemu_img(f->out, sizeof(f->out), "convert", "-O", "vpc", "-o", opts, f->src,
			     f->img, NULL);
	if (st)
		fprintf(stderr, "%s\n", f->out);
	assert_int_equal(st, 0);
}

/* Reads equal qemu's export, and the source where the source has data. */
static void compare_with_qemu(struct fx *f)
{
	struct img *im;
	uint8_t *ref;
	size_t len;

	assert_int_equal(tu_qemu_img(f->out, sizeof(f->out), "convert", "-f", "vpc", "-O", "raw",
				     f->img, f->exp, NULL), 0);
	assert_int_equal(tu_read_file(f->exp, &ref, &len), 0);
	int ret = img_open(&im, f->img, "vhd", 0, f->err, sizeof(f->err));
	if (ret)
		fprintf(stderr, "%s\n", f->err);
	assert_int_equal(ret, 0);
	assert_true(im->readonly);
	assert_true(im->size == len);
	assert_true(len >= SZ);
	assert_true(tu_compare_image(im, ref, len) == -1);
	assert_memory_equal(ref, f->data, SZ);
	assert_int_equal(img_pwrite(im, ref, 512, 0), -EROFS);
	img_close(im);
	free(ref);
}

static void test_fixed_and_dynamic(void **state)
{
	struct fx *f = *state;
	if (!have_qemu)
		skip();
	convert(f, "subformat=fixed");
	compare_with_qemu(f);
	convert(f, "subformat=dynamic");
	compare_with_qemu(f);
	convert(f, "subformat=dynamic,force_size=on"); /* creator "qem2": exact size */
	compare_with_qemu(f);
	struct img *im;
	assert_int_equal(img_open(&im, f->img, "vhd", IMG_O_RDONLY, f->err, sizeof(f->err)), 0);
	assert_true(im->size == SZ);
	struct img_extent e;
	assert_int_equal(img_map(im, 4u << 20, 4096, &e), 0); /* inside the hole */
	assert_int_equal(e.kind, IMG_EXT_ZERO);
	img_close(im);
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static void fix_checksum(uint8_t *p, size_t len, size_t at)
{
	uint32_t sum = 0;
	memset(p + at, 0, 4);
	for (size_t i = 0; i < len; i++)
		sum += p[i];
	put32(p + at, ~sum);
}

static void expect_error(struct fx *f, const uint8_t *img, size_t len, int ret, const char *msg)
{
	struct img *im = (struct img *)1;
	assert_int_equal(tu_write_file(f->img, img, len), 0);
	int r = img_open(&im, f->img, "vhd", IMG_O_RDONLY, f->err, sizeof(f->err));
	if (r != ret || !strstr(f->err, msg))
		fprintf(stderr, "got %d '%s'\n", r, f->err);
	assert_int_equal(r, ret);
	assert_non_null(strstr(f->err, msg));
	assert_null(im);
}

static void test_damaged(void **state)
{
	struct fx *f = *state;
	uint8_t *img, *copy;
	size_t len;

	if (!have_qemu)
		skip();
	convert(f, "subformat=dynamic");
	assert_int_equal(tu_read_file(f->img, &img, &len), 0);
	copy = malloc(len);
	uint8_t *foot = copy + len - 512;
	uint64_t hdr = 0;
	for (int i = 0; i < 8; i++)
		hdr = hdr << 8 | img[len - 512 + 16 + i];

	memcpy(copy, img, len);
	foot[100] ^= 1; /* footer checksum */
	copy[100] ^= 1;	/* and its copy at the start */
	expect_error(f, copy, len, -EINVAL, "checksum");

	memcpy(copy, img, len);
	put32(foot + 60, 4); /* differencing */
	fix_checksum(foot, 512, 64);
	expect_error(f, copy, len, -ENOTSUP, "differencing");

	memcpy(copy, img, len);
	copy[hdr] = 'X'; /* dynamic header cookie */
	expect_error(f, copy, len, -EINVAL, "dynamic disk header");

	memcpy(copy, img, len);
	put32(copy + hdr + 32, 3000); /* block size not a power of two */
	fix_checksum(copy + hdr, 1024, 36);
	expect_error(f, copy, len, -EINVAL, "block size");

	memcpy(copy, img, len);
	put32(copy + hdr + 28, 1); /* BAT too small for the disk */
	fix_checksum(copy + hdr, 1024, 36);
	expect_error(f, copy, len, -EINVAL, "table size");

	/* first BAT entry pointing far beyond the file: that block fails, others read */
	memcpy(copy, img, len);
	uint64_t bat = 0;
	for (int i = 0; i < 8; i++)
		bat = bat << 8 | copy[hdr + 16 + i];
	put32(copy + bat, 0x7ffffff0);
	assert_int_equal(tu_write_file(f->img, copy, len), 0);
	struct img *im;
	uint8_t b[4096];
	assert_int_equal(img_open(&im, f->img, "vhd", IMG_O_RDONLY, f->err, sizeof(f->err)), 0);
	assert_int_equal(img_pread(im, b, sizeof(b), 0), -EIO);
	assert_int_equal(img_pread(im, b, sizeof(b), 3u << 20), 0);
	assert_memory_equal(b, f->data + (3u << 20), sizeof(b));
	img_close(im);

	expect_error(f, img, 100, -EINVAL, "too short");
	uint8_t zero[2048] = { 0 };
	expect_error(f, zero, sizeof(zero), -EINVAL, "no footer");
	free(img);
	free(copy);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fixed_and_dynamic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged, setup, teardown),
	};
	have_qemu = tu_have_qemu();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
