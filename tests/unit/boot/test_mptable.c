/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <cmocka.h>

#include "boot/mptable.h"
#include "memory/layout.h"

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void check_table(unsigned ncpu)
{
	uint8_t *ram = calloc(1, 1 << 20);
	struct gmem m;
	assert_int_equal(gmem_init_fake(&m, 0, ram, 1 << 20), 0);
	assert_int_equal(mptable_build(&m, ncpu), 0);
	/* Linux finds the floating pointer by signature + checksum on a 16-byte boundary. */
	const uint8_t *fp = ram + LAYOUT_MPTABLE_FLOAT;
	assert_memory_equal(fp, "_MP_", 4);
	assert_int_equal(fp[8], 1);
	assert_int_equal(fp[9], 4);
	assert_int_equal(sum(fp, 16), 0);
	uint32_t cfg = le32(fp + 4);
	assert_int_equal(cfg, LAYOUT_MPTABLE_CONFIG);
	const uint8_t *t = ram + cfg;
	assert_memory_equal(t, "PCMP", 4);
	unsigned len = t[4] | t[5] << 8, count = t[34] | t[35] << 8;
	assert_true(len <= LAYOUT_MPTABLE_CONFIG_SIZE);
	assert_int_equal(sum(t, len), 0);
	assert_int_equal(le32(t + 36), LAYOUT_LAPIC);
	/* Walk the entries: ncpu processors (BSP first), a bus, an IOAPIC, IRQ routes. */
	const uint8_t *p = t + 44;
	unsigned procs = 0, ioapics = 0, irq0_pin = 99, irq9_flags = 0;
	for (unsigned i = 0; i < count; i++) {
		assert_true(p < t + len);
		switch (p[0]) {
		case 0:
			assert_int_equal(p[1], procs);
			assert_int_equal(p[3] & 2, procs == 0 ? 2 : 0);
			procs++;
			p += 20;
			break;
		case 2:
			assert_int_equal(le32(p + 4), LAYOUT_IOAPIC);
			ioapics++;
			p += 8;
			break;
		case 3:
			if (p[1] == 0 && p[5] == 0)
				irq0_pin = p[7];
			if (p[1] == 0 && p[5] == 9)
				irq9_flags = p[2];
			p += 8;
			break;
		default:
			assert_true(p[0] == 1 || p[0] == 4);
			p += 8;
		}
	}
	assert_ptr_equal(p, t + len);
	assert_int_equal(procs, ncpu);
	assert_int_equal(ioapics, 1);
	assert_int_equal(irq0_pin, 2);
	assert_int_equal(irq9_flags, 0x0d);
	free(ram);
}

static void test_tables(void **state)
{
	(void)state;
	check_table(1);
	check_table(2);
	check_table(255);
}

static void test_errors(void **state)
{
	(void)state;
	uint8_t *ram = calloc(1, 1 << 20);
	struct gmem m;
	assert_int_equal(gmem_init_fake(&m, 0, ram, 1 << 20), 0);
	assert_int_equal(mptable_build(&m, 0), -EINVAL);
	assert_int_equal(mptable_build(&m, 256), -EINVAL);
	struct gmem small;
	assert_int_equal(gmem_init_fake(&small, 0, ram, 0x9f000), 0);
	assert_int_equal(mptable_build(&small, 1), -EFAULT);
	free(ram);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tables),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
