/* SPDX-License-Identifier: MIT */
/* The --disk option syntax (blk_parse_disk_opt). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>
#include <cmocka.h>

#include "block/block.h"

static struct blk_config cfg;
static char err[256];

static int parse(const char *arg)
{
	err[0] = '\0';
	return blk_parse_disk_opt(arg, &cfg, err, sizeof(err));
}

/* Fails with -EINVAL and an error line containing want. */
static void bad(const char *arg, const char *want)
{
	assert_int_equal(parse(arg), -EINVAL);
	if (!strstr(err, want))
		fail_msg("'%s': error '%s' does not mention '%s'", arg, err, want);
	assert_non_null(strstr(err, "--disk"));
}

static void test_defaults(void **state)
{
	(void)state;
	assert_int_equal(parse("/var/lib/disk.img"), 0);
	assert_string_equal(cfg.path, "/var/lib/disk.img");
	assert_string_equal(cfg.format, "raw");
	assert_false(cfg.readonly);
	assert_int_equal(cfg.cache, BLK_CACHE_WRITEBACK);
	assert_int_equal(cfg.engine, BLK_ENGINE_AUTO);
	assert_string_equal(cfg.serial, "");
}

static void test_all_keys(void **state)
{
	(void)state;
	assert_int_equal(parse("d.qcow2,format=qcow2,readonly=on,cache=none,serial=ABC-123,aio=threads"),
			 0);
	assert_string_equal(cfg.path, "d.qcow2");
	assert_string_equal(cfg.format, "qcow2");
	assert_true(cfg.readonly);
	assert_int_equal(cfg.cache, BLK_CACHE_NONE);
	assert_string_equal(cfg.serial, "ABC-123");
	assert_int_equal(cfg.engine, BLK_ENGINE_THREADS);

	assert_int_equal(parse("x,readonly=off,cache=writethrough"), 0);
	assert_false(cfg.readonly);
	assert_int_equal(cfg.cache, BLK_CACHE_WRITETHROUGH);
	assert_int_equal(parse("x,cache=unsafe,aio=io_uring"), 0);
	assert_int_equal(cfg.cache, BLK_CACHE_UNSAFE);
	assert_int_equal(cfg.engine, BLK_ENGINE_URING);
	assert_int_equal(parse("x,cache=writeback,format=raw"), 0);
	assert_int_equal(cfg.cache, BLK_CACHE_WRITEBACK);
}

static void test_serial_limits(void **state)
{
	(void)state;
	assert_int_equal(parse("x,serial=12345678901234567890"), 0); /* exactly 20 */
	assert_string_equal(cfg.serial, "12345678901234567890");
	bad("x,serial=123456789012345678901", "at most 20");
	bad("x,serial=a\tb", "printable");
	assert_int_equal(parse("x,serial="), 0); /* empty serial = none */
	assert_string_equal(cfg.serial, "");
}

static void test_errors(void **state)
{
	(void)state;
	bad("", "empty path");
	bad(",format=raw", "empty path");
	bad("x,bogus=1", "unknown option 'bogus'");
	bad("x,format=vdi", "format='vdi'");
	bad("x,readonly=yes", "expected on|off");
	bad("x,cache=directsync", "cache='directsync'");
	bad("x,aio=native", "aio='native'");
	bad("x,readonly", "expected key=value");
	bad("x,", "expected key=value");
	bad("x,cache=", "empty value");
	bad("x,cache=none,cache=unsafe", "given twice");
	assert_int_equal(blk_parse_disk_opt(NULL, &cfg, err, sizeof(err)), -EINVAL);
}

static void test_comma_in_path(void **state)
{
	(void)state;
	assert_int_equal(parse("/tmp/a,,b.img,readonly=on"), 0);
	assert_string_equal(cfg.path, "/tmp/a,b.img");
	assert_true(cfg.readonly);
}

static void test_long_path(void **state)
{
	(void)state;
	static char big[PATH_MAX + 16];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	bad(big, "path too long");
	/* A rejected argument leaves defaults behind, not half a configuration. */
	assert_int_equal(parse("y"), 0);
	assert_string_equal(cfg.path, "y");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),     cmocka_unit_test(test_all_keys),
		cmocka_unit_test(test_serial_limits), cmocka_unit_test(test_errors),
		cmocka_unit_test(test_comma_in_path), cmocka_unit_test(test_long_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
