/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <cmocka.h>

#include "memory/gmem.h"
#include "memory/layout.h"

static void test_fake_bounds(void **state)
{
	(void)state;
	static uint8_t buf[4096];
	struct gmem m;
	assert_int_equal(gmem_init_fake(&m, 0x10000, buf, sizeof(buf)), 0);
	assert_ptr_equal(gmem_ptr(&m, 0x10000, 4096), buf);
	assert_ptr_equal(gmem_ptr(&m, 0x10ff0, 16), buf + 0xff0);
	assert_null(gmem_ptr(&m, 0x10ff0, 17));
	assert_null(gmem_ptr(&m, 0xffff, 2));
	assert_null(gmem_ptr(&m, 0x11000, 1));
	assert_null(gmem_ptr(&m, 0x10001, UINT64_MAX));
	assert_null(gmem_ptr(&m, UINT64_MAX, 2));
	uint8_t x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, y[8];
	assert_int_equal(gmem_write(&m, 0x10100, x, 8), 0);
	assert_int_equal(gmem_read(&m, 0x10100, y, 8), 0);
	assert_memory_equal(x, y, 8);
	assert_int_equal(gmem_write(&m, 0x10ffc, x, 8), -EFAULT);
}

static void test_create_splits_hole(void **state)
{
	(void)state;
	struct gmem m;
	uint64_t size = LAYOUT_MMIO_HOLE_START + (64ULL << 20);
	assert_int_equal(gmem_create(&m, size), 0);
	assert_int_equal(m.nr_regions, 2);
	assert_int_equal(gmem_low_size(&m), LAYOUT_MMIO_HOLE_START);
	assert_int_equal(gmem_high_size(&m), 64ULL << 20);
	assert_null(gmem_ptr(&m, LAYOUT_MMIO_HOLE_START, 1));
	assert_non_null(gmem_ptr(&m, LAYOUT_HIGH_MEM_START, 4096));
	/* A range crossing the hole is rejected even though both ends are RAM. */
	assert_null(gmem_ptr(&m, LAYOUT_MMIO_HOLE_START - 8, LAYOUT_HIGH_MEM_START));
	gmem_destroy(&m);
	assert_int_equal(gmem_create(&m, 0), -EINVAL);
	assert_int_equal(gmem_create(&m, 4097), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fake_bounds),
		cmocka_unit_test(test_create_splits_hole),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
