/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>
#include <cmocka.h>

#include "bus/bus.h"

struct rec {
	uint64_t off;
	unsigned len;
	uint32_t val;
	int writes;
};

static void rec_read(void *o, uint64_t off, void *data, unsigned len)
{
	struct rec *r = o;
	r->off = off;
	memset(data, 0xab, len);
}

static void rec_write(void *o, uint64_t off, const void *data, unsigned len)
{
	struct rec *r = o;
	r->off = off;
	r->len = len;
	r->val = 0;
	memcpy(&r->val, data, len > 4 ? 4 : len);
	r->writes++;
}

static const struct bus_ops rec_ops = {.read = rec_read, .write = rec_write};

static void test_dispatch(void **state)
{
	(void)state;
	struct bus b;
	struct rec a = {0}, c = {0};
	assert_int_equal(bus_init(&b, "t"), 0);
	assert_int_equal(bus_register(&b, 0x3f8, 8, &rec_ops, &a), 0);
	assert_int_equal(bus_register(&b, 0x70, 2, &rec_ops, &c), 0);
	assert_int_equal(bus_register(&b, 0x3fc, 8, &rec_ops, &c), -EEXIST);
	assert_int_equal(bus_register(&b, 0x3f0, 9, &rec_ops, &c), -EEXIST);
	assert_int_equal(bus_register(&b, 0, 0, &rec_ops, &c), -EINVAL);
	assert_int_equal(bus_register(&b, UINT64_MAX, 2, &rec_ops, &c), -EINVAL);
	uint32_t v = 0x41;
	assert_true(bus_write(&b, 0x3fb, &v, 1));
	assert_int_equal(a.off, 3);
	assert_int_equal(a.val, 0x41);
	assert_true(bus_write(&b, 0x71, &v, 1));
	assert_int_equal(c.off, 1);
	/* Access straddling the end of a range is not claimed. */
	assert_false(bus_write(&b, 0x3fe, &v, 4));
	uint8_t d[4];
	assert_false(bus_read(&b, 0x1000, d, 4));
	assert_int_equal(d[0], 0xff);
	assert_true(bus_read(&b, 0x3f8, d, 1));
	assert_int_equal(d[0], 0xab);
	assert_int_equal(bus_unregister(&b, 0x3f8, &c), -ENOENT);
	assert_int_equal(bus_unregister(&b, 0x3f8, &a), 0);
	assert_false(bus_write(&b, 0x3f8, &v, 1));
	bus_fini(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dispatch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
