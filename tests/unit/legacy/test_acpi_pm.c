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
#include "devices/legacy/acpi_pm.h"
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
	struct acpi_pm pm;
	struct power_rec pw;
};

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	fake_platform_init(&t->fp, 0, 4096);
	assert_int_equal(acpi_pm_init(&t->pm, &t->fp.plat, &rec_power, &t->pw), 0);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;
	acpi_pm_fini(&t->pm);
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

static void test_s5(void **state)
{
	struct t *t = *state;
	/* What Linux writes: WAK_STS clear, then SLP_TYP|SLP_EN. */
	out(t, PORT_ACPI_SLEEP_STS, ACPI_WAK_STS);
	assert_int_equal(in(t, PORT_ACPI_SLEEP_STS), 0);
	out(t, PORT_ACPI_SLEEP_CTL, (ACPI_S5_SLP_TYP << ACPI_SLP_TYP_SHIFT) | ACPI_SLP_EN);
	assert_int_equal(t->pw.off, 1);
	assert_int_equal(t->pw.reset, 0);
}

static void test_other_sleep_types(void **state)
{
	struct t *t = *state;
	/* S5 type without SLP_EN is only a setup write. */
	out(t, PORT_ACPI_SLEEP_CTL, ACPI_S5_SLP_TYP << ACPI_SLP_TYP_SHIFT);
	for (unsigned typ = 0; typ < 8; typ++) {
		if (typ == ACPI_S5_SLP_TYP)
			continue;
		out(t, PORT_ACPI_SLEEP_CTL, (uint8_t)((typ << ACPI_SLP_TYP_SHIFT) | ACPI_SLP_EN));
	}
	assert_int_equal(t->pw.off, 0);
	assert_int_equal(t->pw.reset, 0);
	assert_int_equal(in(t, PORT_ACPI_SLEEP_CTL), 0);
}

static void test_reset_register(void **state)
{
	struct t *t = *state;
	out(t, PORT_ACPI_RESET, 0x02);
	out(t, PORT_ACPI_RESET, 0x00);
	assert_int_equal(t->pw.reset, 0);
	out(t, PORT_ACPI_RESET, ACPI_RESET_VALUE);
	assert_int_equal(t->pw.reset, 1);
	assert_int_equal(t->pw.off, 0);
}

static void test_ged(void **state)
{
	struct t *t = *state;
	assert_int_equal(in(t, PORT_ACPI_GED), 0);
	assert_int_equal(t->fp.irq_level[GSI_SCI], 0);
	acpi_pm_press_power_button(&t->pm);
	assert_int_equal(t->fp.irq_level[GSI_SCI], 1);
	acpi_pm_press_power_button(&t->pm); /* still one pending event, line stays up */
	assert_int_equal(t->fp.irq_raises[GSI_SCI], 1);
	out(t, PORT_ACPI_GED, 0xff); /* writes do not clear */
	assert_int_equal(t->fp.irq_level[GSI_SCI], 1);
	assert_int_equal(in(t, PORT_ACPI_GED), ACPI_GED_EVT_POWER_BUTTON);
	assert_int_equal(t->fp.irq_level[GSI_SCI], 0);
	assert_int_equal(in(t, PORT_ACPI_GED), 0);
	acpi_pm_press_power_button(&t->pm);
	assert_int_equal(t->fp.irq_raises[GSI_SCI], 2);
	acpi_pm_reset(&t->pm);
	assert_int_equal(t->fp.irq_level[GSI_SCI], 0);
	assert_int_equal(in(t, PORT_ACPI_GED), 0);
	assert_int_equal(t->pw.off + t->pw.reset, 0);
}

static void test_wide_access(void **state)
{
	struct t *t = *state;
	uint16_t v = (ACPI_S5_SLP_TYP << ACPI_SLP_TYP_SHIFT) | ACPI_SLP_EN;
	/* Each register is one byte: a 2-byte access is not claimed. */
	assert_false(bus_write(&t->fp.pio, PORT_ACPI_SLEEP_CTL, &v, 2));
	assert_int_equal(t->pw.off, 0);
	acpi_pm_press_power_button(&t->pm);
	v = 0;
	assert_false(bus_read(&t->fp.pio, PORT_ACPI_GED, &v, 2));
	assert_int_equal(v, 0xffff);
	assert_int_equal(t->fp.irq_level[GSI_SCI], 1);
}

static void test_save_load(void **state)
{
	struct t *t = *state;
	struct acpi_pm_state st;
	acpi_pm_press_power_button(&t->pm);
	acpi_pm_save(&t->pm, &st);
	acpi_pm_reset(&t->pm);
	assert_int_equal(t->fp.irq_level[GSI_SCI], 0);
	assert_int_equal(acpi_pm_load(&t->pm, &st), 0);
	assert_int_equal(t->fp.irq_level[GSI_SCI], 1);
	assert_int_equal(in(t, PORT_ACPI_GED), ACPI_GED_EVT_POWER_BUTTON);
	st.ged_pending = 0x80;
	assert_int_equal(acpi_pm_load(&t->pm, &st), -EINVAL);
	st.ged_pending = 0;
	st.version = 0;
	assert_int_equal(acpi_pm_load(&t->pm, &st), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_s5, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_other_sleep_types, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reset_register, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ged, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wide_access, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
