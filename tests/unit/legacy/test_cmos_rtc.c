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
#include "devices/legacy/cmos_rtc.h"
#include "memory/layout.h"

#define T_2024_02_29_134507 1709214307LL /* a Thursday */
#define T_2024_02_29_003000 1709166600LL
#define T_2024_02_29_120500 1709208300LL

struct t {
	struct fake_platform fp;
	struct cmos_rtc c;
	struct timespec now;
};

static void fake_clock(void *ctx, struct timespec *now)
{
	struct t *t = ctx;
	*now = t->now;
}

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	fake_platform_init(&t->fp, 0, 4096);
	t->now.tv_sec = T_2024_02_29_134507;
	t->now.tv_nsec = 500000000;
	assert_int_equal(cmos_rtc_init(&t->c, &t->fp.plat, fake_clock, t), 0);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;
	cmos_rtc_fini(&t->c);
	fake_platform_fini(&t->fp);
	free(t);
	return 0;
}

static uint8_t rd(struct t *t, uint8_t reg)
{
	uint8_t v = 0;
	assert_true(bus_write(&t->fp.pio, PORT_CMOS, &reg, 1));
	assert_true(bus_read(&t->fp.pio, PORT_CMOS + 1, &v, 1));
	return v;
}

static void wr(struct t *t, uint8_t reg, uint8_t v)
{
	assert_true(bus_write(&t->fp.pio, PORT_CMOS, &reg, 1));
	assert_true(bus_write(&t->fp.pio, PORT_CMOS + 1, &v, 1));
}

static void test_bcd_24h(void **state)
{
	struct t *t = *state;
	assert_int_equal(rd(t, CMOS_REG_B), CMOS_B_24H);
	assert_int_equal(rd(t, CMOS_SECONDS), 0x07);
	assert_int_equal(rd(t, CMOS_MINUTES), 0x45);
	assert_int_equal(rd(t, CMOS_HOURS), 0x13);
	assert_int_equal(rd(t, CMOS_DAY_OF_WEEK), 5);
	assert_int_equal(rd(t, CMOS_DAY_OF_MONTH), 0x29);
	assert_int_equal(rd(t, CMOS_MONTH), 0x02);
	assert_int_equal(rd(t, CMOS_YEAR), 0x24);
	assert_int_equal(rd(t, CMOS_CENTURY), 0x20);
	assert_int_equal(rd(t, CMOS_REG_D), CMOS_D_VRT);
	assert_int_equal(rd(t, CMOS_REG_C), 0);
	/* The clock follows the host. */
	t->now.tv_sec += 60 * 60 * 11;
	assert_int_equal(rd(t, CMOS_HOURS), 0x00);
	assert_int_equal(rd(t, CMOS_DAY_OF_MONTH), 0x01);
	assert_int_equal(rd(t, CMOS_MONTH), 0x03);
	assert_int_equal(rd(t, CMOS_DAY_OF_WEEK), 6);
}

static void test_binary(void **state)
{
	struct t *t = *state;
	wr(t, CMOS_REG_B, CMOS_B_24H | CMOS_B_DM_BINARY);
	assert_int_equal(rd(t, CMOS_SECONDS), 7);
	assert_int_equal(rd(t, CMOS_MINUTES), 45);
	assert_int_equal(rd(t, CMOS_HOURS), 13);
	assert_int_equal(rd(t, CMOS_DAY_OF_MONTH), 29);
	assert_int_equal(rd(t, CMOS_MONTH), 2);
	assert_int_equal(rd(t, CMOS_YEAR), 24);
	assert_int_equal(rd(t, CMOS_CENTURY), 20);
}

static void test_12h(void **state)
{
	struct t *t = *state;
	wr(t, CMOS_REG_B, 0);				  /* BCD, 12 h */
	assert_int_equal(rd(t, CMOS_HOURS), 0x80 | 0x01); /* 1 PM */
	t->now.tv_sec = T_2024_02_29_003000;
	assert_int_equal(rd(t, CMOS_HOURS), 0x12); /* 12 AM */
	t->now.tv_sec = T_2024_02_29_120500;
	assert_int_equal(rd(t, CMOS_HOURS), 0x80 | 0x12); /* 12 PM */
	t->now.tv_sec = T_2024_02_29_134507 - 3 * 3600;	  /* 10:45 */
	assert_int_equal(rd(t, CMOS_HOURS), 0x10);
	wr(t, CMOS_REG_B, CMOS_B_DM_BINARY); /* binary, 12 h */
	assert_int_equal(rd(t, CMOS_HOURS), 10);
	t->now.tv_sec = T_2024_02_29_134507 + 10 * 3600; /* 23:45 */
	assert_int_equal(rd(t, CMOS_HOURS), 0x80 | 11);
}

static void test_uip(void **state)
{
	struct t *t = *state;
	assert_int_equal(rd(t, CMOS_REG_A), 0x26);
	t->now.tv_nsec = 999900000; /* inside the last 244 us of the second */
	assert_int_equal(rd(t, CMOS_REG_A), 0x80 | 0x26);
	/* Polling with time moving on: UIP clears within a few reads. */
	int polls = 0;
	while (rd(t, CMOS_REG_A) & CMOS_A_UIP) {
		assert_true(++polls < 10);
		t->now.tv_nsec += 50000;
		if (t->now.tv_nsec >= 1000000000) {
			t->now.tv_nsec -= 1000000000;
			t->now.tv_sec++;
		}
	}
	assert_true(polls >= 1);
	/* Never while SET is on; the rate bits are kept and UIP cannot be written. */
	t->now.tv_nsec = 999900000;
	wr(t, CMOS_REG_B, CMOS_B_24H | CMOS_B_SET);
	assert_int_equal(rd(t, CMOS_REG_A) & CMOS_A_UIP, 0);
	wr(t, CMOS_REG_A, 0xa3);
	assert_int_equal(rd(t, CMOS_REG_A), 0x23);
}

static void test_nmi_bit(void **state)
{
	struct t *t = *state;
	uint8_t idx = CMOS_NMI_DISABLE | CMOS_MINUTES, v = 0;
	assert_true(bus_write(&t->fp.pio, PORT_CMOS, &idx, 1));
	assert_true(cmos_rtc_nmi_disabled(&t->c));
	assert_true(bus_read(&t->fp.pio, PORT_CMOS + 1, &v, 1));
	assert_int_equal(v, 0x45);
	/* RAM through a masked index. */
	idx = CMOS_NMI_DISABLE | 0x40;
	v = 0x5a;
	assert_true(bus_write(&t->fp.pio, PORT_CMOS, &idx, 1));
	assert_true(bus_write(&t->fp.pio, PORT_CMOS + 1, &v, 1));
	assert_int_equal(rd(t, 0x40), 0x5a);
	assert_false(cmos_rtc_nmi_disabled(&t->c));
	/* The index port is write-only. */
	assert_true(bus_read(&t->fp.pio, PORT_CMOS, &v, 1));
	assert_int_equal(v, 0xff);
}

static void test_set_time(void **state)
{
	struct t *t = *state;
	/* Linux's mc146818_set_time: SET, write the fields, clear SET. */
	wr(t, CMOS_REG_B, CMOS_B_24H | CMOS_B_SET);
	wr(t, CMOS_YEAR, 0x99);
	wr(t, CMOS_MONTH, 0x12);
	wr(t, CMOS_DAY_OF_MONTH, 0x31);
	wr(t, CMOS_HOURS, 0x23);
	wr(t, CMOS_MINUTES, 0x59);
	wr(t, CMOS_SECONDS, 0x58);
	wr(t, CMOS_CENTURY, 0x19);
	/* Frozen while SET is on. */
	t->now.tv_sec += 5;
	assert_int_equal(rd(t, CMOS_SECONDS), 0x58);
	wr(t, CMOS_REG_B, CMOS_B_24H);
	assert_int_equal(rd(t, CMOS_SECONDS), 0x58);
	assert_int_equal(rd(t, CMOS_YEAR), 0x99);
	assert_int_equal(rd(t, CMOS_CENTURY), 0x19);
	assert_int_equal(rd(t, CMOS_DAY_OF_WEEK), 6); /* 1999-12-31: Friday */
	/* And runs with the host from there. */
	t->now.tv_sec += 3;
	assert_int_equal(rd(t, CMOS_SECONDS), 0x01);
	assert_int_equal(rd(t, CMOS_MINUTES), 0x00);
	assert_int_equal(rd(t, CMOS_HOURS), 0x00);
	assert_int_equal(rd(t, CMOS_DAY_OF_MONTH), 0x01);
	assert_int_equal(rd(t, CMOS_MONTH), 0x01);
	assert_int_equal(rd(t, CMOS_YEAR), 0x00);
	assert_int_equal(rd(t, CMOS_CENTURY), 0x20);
	assert_int_equal(rd(t, CMOS_DAY_OF_WEEK), 7);

	/* Invalid date: ignored. */
	wr(t, CMOS_REG_B, CMOS_B_24H | CMOS_B_SET);
	wr(t, CMOS_MONTH, 0x13);
	wr(t, CMOS_REG_B, CMOS_B_24H);
	assert_int_equal(rd(t, CMOS_MONTH), 0x01);
	wr(t, CMOS_REG_B, CMOS_B_24H | CMOS_B_SET);
	wr(t, CMOS_DAY_OF_MONTH, 0x30);
	wr(t, CMOS_MONTH, 0x02); /* 2000-02-30 */
	wr(t, CMOS_REG_B, CMOS_B_24H);
	assert_int_equal(rd(t, CMOS_MONTH), 0x01);
	/* Not BCD. */
	wr(t, CMOS_MINUTES, 0x5a);
	assert_int_equal(rd(t, CMOS_MINUTES), 0x00);

	/* Without SET a write applies at once and leaves the other fields alone. */
	wr(t, CMOS_MINUTES, 0x30);
	assert_int_equal(rd(t, CMOS_MINUTES), 0x30);
	assert_int_equal(rd(t, CMOS_SECONDS), 0x01);
	assert_int_equal(rd(t, CMOS_YEAR), 0x00);

	/* 12 h binary set: 7 PM. */
	wr(t, CMOS_REG_B, CMOS_B_DM_BINARY | CMOS_B_SET);
	wr(t, CMOS_HOURS, 0x80 | 7);
	wr(t, CMOS_REG_B, CMOS_B_DM_BINARY);
	assert_int_equal(rd(t, CMOS_HOURS), 0x80 | 7);
	wr(t, CMOS_REG_B, CMOS_B_DM_BINARY | CMOS_B_24H);
	assert_int_equal(rd(t, CMOS_HOURS), 19);
	/* Clearing SET and changing format in one write: the time was written in the old one. */
	wr(t, CMOS_REG_B, CMOS_B_SET); /* BCD, 12 h */
	wr(t, CMOS_HOURS, 0x80 | 0x11);
	wr(t, CMOS_REG_B, CMOS_B_24H | CMOS_B_DM_BINARY);
	assert_int_equal(rd(t, CMOS_HOURS), 23);
}

static void test_ram_and_mem_size(void **state)
{
	struct t *t = *state;
	for (unsigned i = 0x0e; i < CMOS_SIZE; i++) {
		if (i == CMOS_CENTURY)
			continue;
		wr(t, (uint8_t)i, (uint8_t)(i ^ 0xa5));
	}
	for (unsigned i = 0x0e; i < CMOS_SIZE; i++) {
		if (i != CMOS_CENTURY)
			assert_int_equal(rd(t, (uint8_t)i), i ^ 0xa5);
	}
	/* Alarm registers are plain storage. */
	wr(t, CMOS_SECONDS_ALARM, 0x33);
	assert_int_equal(rd(t, CMOS_SECONDS_ALARM), 0x33);
	/* C and D are read-only. */
	wr(t, CMOS_REG_D, 0);
	assert_int_equal(rd(t, CMOS_REG_D), CMOS_D_VRT);

	cmos_rtc_set_mem_size(&t->c, 0xc0000000ULL, 0x40000000ULL);
	assert_int_equal(rd(t, 0x15) | rd(t, 0x16) << 8, 640);
	assert_int_equal(rd(t, 0x17) | rd(t, 0x18) << 8, 0xffff);
	assert_int_equal(rd(t, 0x34) | rd(t, 0x35) << 8, (0xc0000000 - 0x1000000) >> 16);
	assert_int_equal(rd(t, 0x5b) | rd(t, 0x5c) << 8 | rd(t, 0x5d) << 16, 0x4000);
}

static void test_save_load(void **state)
{
	struct t *t = *state;
	struct cmos_rtc_state st;
	wr(t, CMOS_REG_B, CMOS_B_24H | CMOS_B_SET);
	wr(t, CMOS_YEAR, 0x28); /* 2028-02-29 exists */
	wr(t, CMOS_REG_B, CMOS_B_24H);
	assert_int_equal(rd(t, CMOS_YEAR), 0x28);
	wr(t, 0x50, 0x99);
	cmos_rtc_save(&t->c, &st);

	struct t t2 = {.now = t->now};
	fake_platform_init(&t2.fp, 0, 4096);
	assert_int_equal(cmos_rtc_init(&t2.c, &t2.fp.plat, fake_clock, &t2), 0);
	assert_int_equal(rd(&t2, CMOS_YEAR), 0x24);
	assert_int_equal(cmos_rtc_load(&t2.c, &st), 0);
	assert_int_equal(rd(&t2, CMOS_YEAR), 0x28);
	assert_int_equal(rd(&t2, CMOS_MINUTES), 0x45);
	assert_int_equal(rd(&t2, 0x50), 0x99);
	st.index = 0x80;
	assert_int_equal(cmos_rtc_load(&t2.c, &st), -EINVAL);
	st.index = 0;
	st.offset = 0x7fffffffffffffffULL;
	assert_int_equal(cmos_rtc_load(&t2.c, &st), -EINVAL);
	cmos_rtc_fini(&t2.c);
	fake_platform_fini(&t2.fp);
}

static void test_host_clock(void **state)
{
	(void)state;
	struct fake_platform fp;
	struct cmos_rtc c;
	uint8_t idx = CMOS_CENTURY, v = 0;
	fake_platform_init(&fp, 0, 4096);
	assert_int_equal(cmos_rtc_init(&c, &fp.plat, NULL, NULL), 0);
	assert_true(bus_write(&fp.pio, PORT_CMOS, &idx, 1));
	assert_true(bus_read(&fp.pio, PORT_CMOS + 1, &v, 1));
	assert_int_equal(v, 0x20);
	cmos_rtc_fini(&c);
	fake_platform_fini(&fp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_bcd_24h, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_binary, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_12h, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_uip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_nmi_bit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_set_time, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ram_and_mem_size, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
	    cmocka_unit_test(test_host_clock),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
