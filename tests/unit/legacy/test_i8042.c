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
#include "devices/legacy/i8042.h"
#include "memory/layout.h"

struct power_rec {
	unsigned off, reset;
};

static void rec_request(void *ctx, enum power_req req)
{
	struct power_rec *p = ctx;
	if (req == POWER_REQ_OFF)
		p->off++;
	else if (req == POWER_REQ_RESET)
		p->reset++;
}

static const struct power_ops rec_power = {.request = rec_request};

struct t {
	struct fake_platform fp;
	struct i8042 k;
	struct power_rec pw;
};

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	fake_platform_init(&t->fp, 0, 4096);
	assert_int_equal(i8042_init(&t->k, &t->fp.plat, &rec_power, &t->pw), 0);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;
	i8042_fini(&t->k);
	fake_platform_fini(&t->fp);
	free(t);
	return 0;
}

static void out(struct t *t, uint16_t port, uint8_t v)
{
	assert_true(bus_write(&t->fp.pio, port, &v, 1));
}

static uint8_t in(struct t *t, uint16_t port)
{
	uint8_t v = 0;
	assert_true(bus_read(&t->fp.pio, port, &v, 1));
	return v;
}

static void test_status(void **state)
{
	struct t *t = *state;
	uint8_t st = in(t, PORT_I8042_CMD);
	assert_int_equal(st & (I8042_STS_OBF | I8042_STS_IBF), 0);
	assert_true(st & I8042_STS_SYS);
	/* Unknown commands are ignored: nothing to read, no reset. */
	out(t, PORT_I8042_CMD, 0xaa);
	out(t, PORT_I8042_CMD, 0x20);
	out(t, PORT_I8042_DATA, 0x55);
	assert_int_equal(in(t, PORT_I8042_CMD) & (I8042_STS_OBF | I8042_STS_IBF), 0);
	assert_int_equal(t->pw.reset + t->pw.off, 0);
	/* Port 0x61-0x63 are not ours. */
	uint8_t v;
	assert_false(bus_read(&t->fp.pio, 0x61, &v, 1));
}

static void test_reset_command(void **state)
{
	struct t *t = *state;
	out(t, PORT_I8042_CMD, I8042_CMD_RESET);
	assert_int_equal(t->pw.reset, 1);
	out(t, PORT_I8042_CMD, 0xff); /* pulses no line */
	assert_int_equal(t->pw.reset, 1);
	out(t, PORT_I8042_CMD, 0xf0); /* pulses all, including reset */
	assert_int_equal(t->pw.reset, 2);
	assert_int_equal(t->pw.off, 0);
}

static void test_output_port(void **state)
{
	struct t *t = *state;
	out(t, PORT_I8042_CMD, I8042_CMD_READ_OUTPORT);
	assert_true(in(t, PORT_I8042_CMD) & I8042_STS_OBF);
	assert_int_equal(in(t, PORT_I8042_DATA), I8042_OUTPORT_RESET | I8042_OUTPORT_A20);
	assert_int_equal(in(t, PORT_I8042_CMD) & I8042_STS_OBF, 0);

	out(t, PORT_I8042_CMD, I8042_CMD_WRITE_OUTPORT);
	out(t, PORT_I8042_DATA, 0x03); /* reset line stays high */
	assert_int_equal(t->pw.reset, 0);
	out(t, PORT_I8042_DATA, 0x00); /* no 0xD1 pending: ignored */
	assert_int_equal(t->pw.reset, 0);
	out(t, PORT_I8042_CMD, I8042_CMD_WRITE_OUTPORT);
	out(t, PORT_I8042_DATA, 0x02); /* bit 0 low: reset */
	assert_int_equal(t->pw.reset, 1);
	out(t, PORT_I8042_CMD, I8042_CMD_READ_OUTPORT);
	assert_int_equal(in(t, PORT_I8042_DATA), 0x02);
}

static void test_save_load(void **state)
{
	struct t *t = *state;
	struct i8042_state st;
	out(t, PORT_I8042_CMD, I8042_CMD_WRITE_OUTPORT);
	i8042_save(&t->k, &st);
	i8042_reset(&t->k);
	out(t, PORT_I8042_DATA, 0x00);
	assert_int_equal(t->pw.reset, 0);
	assert_int_equal(i8042_load(&t->k, &st), 0);
	out(t, PORT_I8042_DATA, 0x00);
	assert_int_equal(t->pw.reset, 1);
	st.pending_cmd = 0x42;
	assert_int_equal(i8042_load(&t->k, &st), -EINVAL);
	st.pending_cmd = 0;
	st.version = 9;
	assert_int_equal(i8042_load(&t->k, &st), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_status, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reset_command, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_output_port, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
