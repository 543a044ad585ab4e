/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <cmocka.h>

#include "common/parse.h"

static void test_size_suffixes(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(parse_size("512", true, &v), 0);
	assert_int_equal(v, 512ULL << 20);
	assert_int_equal(parse_size("512", false, &v), 0);
	assert_int_equal(v, 512);
	assert_int_equal(parse_size("4G", true, &v), 0);
	assert_int_equal(v, 4ULL << 30);
	assert_int_equal(parse_size("256MiB", true, &v), 0);
	assert_int_equal(v, 256ULL << 20);
	assert_int_equal(parse_size("1k", false, &v), 0);
	assert_int_equal(v, 1024);
	assert_int_equal(parse_size("2T", false, &v), 0);
	assert_int_equal(v, 2ULL << 40);
}

static void test_size_rejects(void **state)
{
	(void)state;
	uint64_t v = 77;
	assert_int_equal(parse_size("", true, &v), -EINVAL);
	assert_int_equal(parse_size("-1", true, &v), -EINVAL);
	assert_int_equal(parse_size("+1", true, &v), -EINVAL);
	assert_int_equal(parse_size("12X", true, &v), -EINVAL);
	assert_int_equal(parse_size("1.5G", true, &v), -EINVAL);
	assert_int_equal(parse_size(" 1G", true, &v), -EINVAL);
	assert_int_equal(parse_size("99999999999999999999", true, &v), -ERANGE);
	assert_int_equal(parse_size("17179869184T", false, &v), -ERANGE);
	assert_int_equal(parse_size(NULL, false, &v), -EINVAL);
	assert_int_equal(v, 77);
}

static void test_u64(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(parse_u64("4", 1, 8, &v), 0);
	assert_int_equal(v, 4);
	assert_int_equal(parse_u64("0", 1, 8, &v), -ERANGE);
	assert_int_equal(parse_u64("9", 1, 8, &v), -ERANGE);
	assert_int_equal(parse_u64("-2", 1, 8, &v), -EINVAL);
	assert_int_equal(parse_u64("2a", 1, 8, &v), -EINVAL);
	assert_int_equal(parse_u64("18446744073709551616", 0, UINT64_MAX, &v), -ERANGE);
	assert_int_equal(parse_u64("18446744073709551615", 0, UINT64_MAX, &v), 0);
	assert_true(v == UINT64_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size_suffixes),
		cmocka_unit_test(test_size_rejects),
		cmocka_unit_test(test_u64),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
