/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fake_platform.h"
#include "devices/legacy/post.h"
#include "memory/layout.h"

static void test_post(void **state)
{
	(void)state;
	struct fake_platform fp;
	struct post p, p2;
	struct post_state st;
	uint8_t v = 0x42;

	fake_platform_init(&fp, 0, 4096);
	assert_int_equal(post_init(&p, &fp.plat), 0);
	assert_int_equal(post_last_code(&p), 0);
	assert_true(bus_write(&fp.pio, PORT_POST, &v, 1));
	assert_int_equal(post_last_code(&p), 0x42);
	v = 0;
	assert_true(bus_read(&fp.pio, PORT_POST, &v, 1));
	assert_int_equal(v, 0xff);
	/* Only port 0x80 itself. */
	assert_false(bus_write(&fp.pio, PORT_POST + 1, &v, 1));

	post_save(&p, &st);
	post_fini(&p);
	assert_false(bus_write(&fp.pio, PORT_POST, &v, 1));
	assert_int_equal(post_init(&p2, &fp.plat), 0);
	assert_int_equal(post_load(&p2, &st), 0);
	assert_int_equal(post_last_code(&p2), 0x42);
	st.version = 7;
	assert_int_equal(post_load(&p2, &st), -EINVAL);
	post_fini(&p2);
	fake_platform_fini(&fp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_post),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
