/* SPDX-License-Identifier: MIT */
/* AML builder: encodings checked byte for byte against the ACPI 6.x grammar. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>
#include <cmocka.h>

#include "boot/aml.h"

static uint8_t g_buf[1 << 16];

#define EXPECT_BYTES(a, ...)                                                                       \
	do {                                                                                       \
		const uint8_t exp__[] = {__VA_ARGS__};                                             \
		assert_int_equal(aml_finish(a), 0);                                                \
		assert_int_equal((a)->len, sizeof(exp__));                                         \
		assert_memory_equal((a)->buf, exp__, sizeof(exp__));                               \
	} while (0)

static void test_pkglen_encode(void **state)
{
	(void)state;
	static const struct {
		size_t body;
		size_t n;
		uint8_t b[4];
	} cases[] = {
	    {0, 1, {0x01}},
	    {62, 1, {0x3f}},	   /* 63: the largest one-byte value */
	    {63, 2, {0x41, 0x04}}, /* 64 does not fit one byte: 2 bytes, value 65 */
	    {64, 2, {0x42, 0x04}},
	    {4093, 2, {0x4f, 0xff}},	   /* 4095: the largest two-byte value */
	    {4094, 3, {0x81, 0x00, 0x01}}, /* 4096 does not fit two bytes: value 4097 */
	    {4095, 3, {0x82, 0x00, 0x01}},
	    {0xffffc, 3, {0x8f, 0xff, 0xff}},
	    {0xffffd, 4, {0xc1, 0x00, 0x00, 0x01}},
	    {0x0ffffffb, 4, {0xcf, 0xff, 0xff, 0xff}},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t out[4] = {0};
		assert_int_equal(aml_pkglen_encode(out, cases[i].body), cases[i].n);
		assert_memory_equal(out, cases[i].b, cases[i].n);
	}
	uint8_t out[4];
	assert_int_equal(aml_pkglen_encode(out, 0x0ffffffc), 0);
	assert_int_equal(aml_pkglen_encode(out, SIZE_MAX), 0);
}

/* Decode a PkgLength the way an AML interpreter does. */
static size_t pkglen_decode(const uint8_t *p, size_t *value)
{
	size_t n = (p[0] >> 6) + 1;
	if (n == 1) {
		*value = p[0] & 0x3f;
		return 1;
	}
	size_t v = p[0] & 0x0f;
	for (size_t i = 1; i < n; i++)
		v |= (size_t)p[i] << (4 + 8 * (i - 1));
	*value = v;
	return n;
}

/* A Scope whose content after the PkgLength is exactly `body` bytes, built by the builder. */
static void test_pkglen_in_scope(void **state)
{
	(void)state;
	static const struct {
		size_t body, n;
	} cases[] = {{62, 1}, {63, 2}, {64, 2}, {4093, 2}, {4094, 3}, {4095, 3}, {4096, 3}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct aml a;
		aml_init(&a, g_buf, sizeof(g_buf));
		aml_scope_begin(&a, "\\"); /* RootChar + NullName: 2 bytes of the body */
		size_t fill = cases[i].body - 2;
		for (size_t k = 0; k < fill / 2; k++)
			aml_int(&a, 0x2a); /* BytePrefix 0x2a: two bytes */
		if (fill % 2)
			aml_int(&a, 0);
		aml_end(&a);
		assert_int_equal(aml_finish(&a), 0);
		assert_int_equal(a.len, 1 + cases[i].n + cases[i].body);
		assert_int_equal(g_buf[0], 0x10);
		size_t v;
		assert_int_equal(pkglen_decode(g_buf + 1, &v), cases[i].n);
		assert_int_equal(v, cases[i].body + cases[i].n);
		/* The body was moved intact behind the PkgLength. */
		const uint8_t *body = g_buf + 1 + cases[i].n;
		assert_int_equal(body[0], 0x5c);
		assert_int_equal(body[1], 0x00);
		for (size_t k = 0; k < fill / 2; k++) {
			assert_int_equal(body[2 + 2 * k], 0x0a);
			assert_int_equal(body[3 + 2 * k], 0x2a);
		}
	}
}

static void test_int_encodings(void **state)
{
	(void)state;
	static const struct {
		uint64_t v;
		size_t n;
		uint8_t b[9];
	} cases[] = {
	    {0, 1, {0x00}},
	    {1, 1, {0x01}},
	    {2, 2, {0x0a, 0x02}},
	    {0xff, 2, {0x0a, 0xff}},
	    {0x100, 3, {0x0b, 0x00, 0x01}},
	    {0xffff, 3, {0x0b, 0xff, 0xff}},
	    {0x10000, 5, {0x0c, 0x00, 0x00, 0x01, 0x00}},
	    {0xfee00000, 5, {0x0c, 0x00, 0x00, 0xe0, 0xfe}},
	    {0xffffffff, 5, {0x0c, 0xff, 0xff, 0xff, 0xff}},
	    {0x100000000ULL, 9, {0x0e, 0, 0, 0, 0, 1, 0, 0, 0}},
	    {UINT64_MAX, 9, {0x0e, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t out[9];
		assert_int_equal(aml_int_encode(out, cases[i].v), cases[i].n);
		assert_memory_equal(out, cases[i].b, cases[i].n);
		struct aml a;
		aml_init(&a, g_buf, sizeof(g_buf));
		aml_int(&a, cases[i].v);
		assert_int_equal(a.len, cases[i].n);
		assert_memory_equal(g_buf, cases[i].b, cases[i].n);
	}
}

static void test_nameseg(void **state)
{
	(void)state;
	uint8_t s[4];
	assert_int_equal(aml_nameseg_encode(s, "_SB", 3), 0);
	assert_memory_equal(s, "_SB_", 4);
	assert_int_equal(aml_nameseg_encode(s, "A", 1), 0);
	assert_memory_equal(s, "A___", 4);
	assert_int_equal(aml_nameseg_encode(s, "PCI0", 4), 0);
	assert_memory_equal(s, "PCI0", 4);
	assert_int_equal(aml_nameseg_encode(s, "C0FE", 4), 0);
	assert_int_equal(aml_nameseg_encode(s, "", 0), -EINVAL);
	assert_int_equal(aml_nameseg_encode(s, "ABCDE", 5), -EINVAL);
	assert_int_equal(aml_nameseg_encode(s, "1ABC", 4), -EINVAL);
	assert_int_equal(aml_nameseg_encode(s, "pci0", 4), -EINVAL);
	assert_int_equal(aml_nameseg_encode(s, "A-B", 3), -EINVAL);
}

static void test_namestring(void **state)
{
	(void)state;
	struct aml a;
	aml_init(&a, g_buf, sizeof(g_buf));
	aml_namestring(&a, "\\_SB.PCI0");
	EXPECT_BYTES(&a, 0x5c, 0x2e, '_', 'S', 'B', '_', 'P', 'C', 'I', '0');

	aml_init(&a, g_buf, sizeof(g_buf));
	aml_namestring(&a, "\\_SB.PCI0.COM");
	EXPECT_BYTES(&a, 0x5c, 0x2f, 3, '_', 'S', 'B', '_', 'P', 'C', 'I', '0', 'C', 'O', 'M', '_');

	aml_init(&a, g_buf, sizeof(g_buf));
	aml_namestring(&a, "^^PWRB");
	EXPECT_BYTES(&a, 0x5e, 0x5e, 'P', 'W', 'R', 'B');

	aml_init(&a, g_buf, sizeof(g_buf));
	aml_namestring(&a, "GED");
	EXPECT_BYTES(&a, 'G', 'E', 'D', '_');

	aml_init(&a, g_buf, sizeof(g_buf));
	aml_namestring(&a, "\\");
	EXPECT_BYTES(&a, 0x5c, 0x00);

	static const char *const bad[] = {"A..B", "A.", ".A", "\\a", "\\_SB.TOOLONG", "^^1AB"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		aml_init(&a, g_buf, sizeof(g_buf));
		aml_namestring(&a, bad[i]);
		assert_int_equal(aml_finish(&a), -EINVAL);
	}
}

static void test_strings_and_ids(void **state)
{
	(void)state;
	struct aml a;
	aml_init(&a, g_buf, sizeof(g_buf));
	aml_string(&a, "ACPI0013");
	EXPECT_BYTES(&a, 0x0d, 'A', 'C', 'P', 'I', '0', '0', '1', '3', 0x00);

	aml_init(&a, g_buf, sizeof(g_buf));
	aml_eisaid(&a, "PNP0A08");
	aml_eisaid(&a, "PNP0C0C");
	aml_eisaid(&a, "PNP0000"); /* still a DWord, as iasl emits it */
	EXPECT_BYTES(&a, 0x0c, 0x41, 0xd0, 0x0a, 0x08, 0x0c, 0x41, 0xd0, 0x0c, 0x0c, 0x0c, 0x41,
		     0xd0, 0x00, 0x00);

	static const char *const bad_ids[] = {"pnp0a08", "PNP0a08", "PNP0A0", "PNP0A080",
					      "P1P0A08"};
	for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
		aml_init(&a, g_buf, sizeof(g_buf));
		aml_eisaid(&a, bad_ids[i]);
		assert_int_equal(aml_finish(&a), -EINVAL);
	}

	aml_init(&a, g_buf, sizeof(g_buf));
	aml_uuid(&a, "33db4d5b-1ff7-401c-9657-7441c03dd766");
	EXPECT_BYTES(&a, 0x11, 0x13, 0x0a, 0x10, 0x5b, 0x4d, 0xdb, 0x33, 0xf7, 0x1f, 0x1c, 0x40,
		     0x96, 0x57, 0x74, 0x41, 0xc0, 0x3d, 0xd7, 0x66);
	aml_init(&a, g_buf, sizeof(g_buf));
	aml_uuid(&a, "33db4d5b-1ff7-401c-9657_7441c03dd766");
	assert_int_equal(aml_finish(&a), -EINVAL);

	aml_init(&a, g_buf, sizeof(g_buf));
	aml_string(&a, "caf\xc3\xa9");
	assert_int_equal(aml_finish(&a), -EINVAL);
}

static void test_buffer_size_crossing(void **state)
{
	(void)state;
	uint8_t data[64];
	memset(data, 0x5a, sizeof(data));
	struct aml a;
	aml_init(&a, g_buf, sizeof(g_buf));
	aml_buffer(&a, data, 3);
	EXPECT_BYTES(&a, 0x11, 0x06, 0x0a, 0x03, 0x5a, 0x5a, 0x5a);

	/* BufferSize (2 bytes) + 64 data bytes: the PkgLength needs two bytes. */
	aml_init(&a, g_buf, sizeof(g_buf));
	aml_buffer(&a, data, 64);
	assert_int_equal(aml_finish(&a), 0);
	assert_int_equal(a.len, 1 + 2 + 2 + 64);
	const uint8_t hdr[] = {0x11, 0x44, 0x04, 0x0a, 0x40};
	assert_memory_equal(g_buf, hdr, sizeof(hdr));
	assert_memory_equal(g_buf + 5, data, 64);
}

static void test_named_objects(void **state)
{
	(void)state;
	struct aml a;
	aml_init(&a, g_buf, sizeof(g_buf));
	aml_device_begin(&a, "PWRB");
	aml_name(&a, "_UID");
	aml_int(&a, 0);
	aml_end(&a);
	EXPECT_BYTES(&a, 0x5b, 0x82, 0x0b, 'P', 'W', 'R', 'B', 0x08, '_', 'U', 'I', 'D', 0x00);

	aml_init(&a, g_buf, sizeof(g_buf));
	aml_method_begin(&a, "_EVT", 1, true);
	aml_op(&a, AML_OP_RETURN);
	aml_arg(&a, 0);
	aml_end(&a);
	EXPECT_BYTES(&a, 0x14, 0x08, '_', 'E', 'V', 'T', 0x09, 0xa4, 0x68);

	aml_init(&a, g_buf, sizeof(g_buf));
	aml_package_begin(&a, 2);
	aml_int(&a, 5);
	aml_int(&a, 0);
	aml_end(&a);
	EXPECT_BYTES(&a, 0x12, 0x05, 0x02, 0x0a, 0x05, 0x00);

	aml_init(&a, g_buf, sizeof(g_buf));
	aml_opregion(&a, "GDST", AML_SPACE_SYSTEM_IO, 0x608, 1);
	aml_field_begin(&a, "GDST", AML_FIELD_BYTE_ACC | AML_FIELD_WRITE_AS_ZEROS);
	aml_field_unit(&a, "GDAT", 8);
	aml_field_unit(&a, "WIDE", 64); /* a bit width >= 64 takes two bytes */
	aml_end(&a);
	EXPECT_BYTES(&a, 0x5b, 0x80, 'G', 'D', 'S', 'T', 0x01, 0x0b, 0x08, 0x06, 0x01, /* region */
		     0x5b, 0x81, 0x11, 'G', 'D', 'S', 'T', 0x41, 'G', 'D', 'A', 'T', 0x08, 'W', 'I',
		     'D', 'E', 0x40, 0x04);

	/* If (Local0 & 1) { Notify (\_SB.PWRB, 0x80) } Else { } */
	aml_init(&a, g_buf, sizeof(g_buf));
	aml_if_begin(&a);
	aml_op(&a, AML_OP_AND);
	aml_local(&a, 0);
	aml_int(&a, 1);
	aml_null_target(&a);
	aml_op(&a, AML_OP_NOTIFY);
	aml_namestring(&a, "\\_SB.PWRB");
	aml_int(&a, 0x80);
	aml_end(&a);
	aml_else_begin(&a);
	aml_end(&a);
	EXPECT_BYTES(&a, 0xa0, 0x12, 0x7b, 0x60, 0x01, 0x00, 0x86, 0x5c, 0x2e, '_', 'S', 'B', '_',
		     'P', 'W', 'R', 'B', 0x0a, 0x80, 0xa1, 0x01);
}

static void test_resource_template(void **state)
{
	(void)state;
	struct aml a;
	aml_init(&a, g_buf, sizeof(g_buf));
	aml_rt_begin(&a);
	aml_rt_io(&a, 0x3f8, 0x3f8, 1, 8);
	aml_end(&a);
	EXPECT_BYTES(&a, 0x11, 0x0d, 0x0a, 0x0a, 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08,
		     0x79, 0x00);

	aml_init(&a, g_buf, sizeof(g_buf));
	aml_rt_begin(&a);
	aml_rt_irq_noflags(&a, 4);
	aml_rt_memory32_fixed(&a, true, 0xe0000000, 0x100000);
	aml_rt_interrupt(&a, true, false, false, false, 9);
	aml_rt_word_bus_number(
	    &a,
	    &(struct aml_addr){.min_fixed = true, .max_fixed = true, .min = 0, .max = 0, .len = 1});
	aml_rt_word_io(&a, &(struct aml_addr){.min_fixed = true,
					      .max_fixed = true,
					      .type_flags = AML_IO_RANGE_ENTIRE,
					      .min = 0,
					      .max = 0xcf7,
					      .len = 0xcf8});
	aml_rt_dword_memory(
	    &a, &(struct aml_addr){.min_fixed = true,
				   .max_fixed = true,
				   .type_flags = AML_MEM_NON_CACHEABLE | AML_MEM_READ_WRITE,
				   .min = 0xc0000000,
				   .max = 0xdfffffff,
				   .len = 0x20000000});
	aml_rt_qword_memory(
	    &a, &(struct aml_addr){.min_fixed = true,
				   .max_fixed = true,
				   .type_flags = AML_MEM_PREFETCHABLE | AML_MEM_READ_WRITE,
				   .min = 0x8000000000ULL,
				   .max = 0x8fffffffffULL,
				   .len = 0x1000000000ULL});
	aml_end(&a);
	assert_int_equal(aml_finish(&a), 0);
	const uint8_t exp[] = {
	    0x22, 0x10, 0x00, /* IRQNoFlags {4} */
	    0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xe0, 0x00, 0x00, 0x10, 0x00, /* M32F */
	    0x89, 0x06, 0x00, 0x01, 0x01, 0x09, 0x00, 0x00, 0x00, /* Interrupt {9} */
	    0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	    0x00, 0x00, 0x01, 0x00, /* WordBusNumber 0-0 */
	    0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x00, 0xf7, 0x0c,
	    0x00, 0x00, 0xf8, 0x0c, /* WordIO 0-0xcf7 */
	    0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0,    0,    0,	  0,	0x00, 0x00,
	    0x00, 0xc0, 0xff, 0xff, 0xff, 0xdf, 0,    0,    0,	  0,	0x00, 0x00,
	    0x00, 0x20, /* DWordMemory */
	    0x8a, 0x2b, 0x00, 0x00, 0x0c, 0x07, 0,    0,    0,	  0,	0,    0,
	    0,	  0, /* QWordMemory */
	    0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
	    0x8f, 0x00, 0x00, 0x00, 0,	  0,	0,    0,    0,	  0,	0,    0,
	    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x79, 0x00, /* EndTag */
	};
	/* 130 bytes of descriptors: BufferOp, a 2-byte PkgLength, BufferSize as BytePrefix. */
	assert_int_equal(sizeof(exp), 130);
	const size_t start = 5;
	assert_int_equal(a.len, start + sizeof(exp));
	size_t v;
	assert_int_equal(g_buf[0], 0x11);
	assert_int_equal(pkglen_decode(g_buf + 1, &v), 2);
	assert_int_equal(v, 2 + 2 + sizeof(exp));
	assert_int_equal(g_buf[3], 0x0a);
	assert_int_equal(g_buf[4], sizeof(exp));
	assert_memory_equal(g_buf + start, exp, sizeof(exp));
}

static void test_errors(void **state)
{
	(void)state;
	struct aml a;
	uint8_t small[8];

	/* Out of space is sticky: nothing more is written. */
	aml_init(&a, small, sizeof(small));
	aml_string(&a, "ABCDEFGHIJ");
	assert_int_equal(aml_finish(&a), -ENOSPC);
	size_t len_at_error = a.len;
	aml_int(&a, 0);
	aml_scope_begin(&a, "\\");
	assert_int_equal(a.len, len_at_error);
	assert_int_equal(a.depth, 0);
	assert_int_equal(aml_finish(&a), -ENOSPC);

	/* The body fits but the PkgLength inserted on close does not. */
	aml_init(&a, small, sizeof(small));
	aml_package_begin(&a, 6);
	for (int i = 0; i < 6; i++)
		aml_int(&a, 0);
	assert_int_equal(a.len, 8);
	aml_end(&a);
	assert_int_equal(aml_finish(&a), -ENOSPC);

	aml_init(&a, g_buf, sizeof(g_buf));
	aml_end(&a);
	assert_int_equal(aml_finish(&a), -EINVAL);

	aml_init(&a, g_buf, sizeof(g_buf));
	aml_device_begin(&a, "DEV0");
	assert_int_equal(aml_finish(&a), -EINVAL);

	aml_init(&a, g_buf, sizeof(g_buf));
	for (int i = 0; i <= AML_MAX_DEPTH; i++)
		aml_scope_begin(&a, "\\");
	assert_int_equal(aml_finish(&a), -EINVAL);

	/* Resource descriptors only inside a resource template. */
	aml_init(&a, g_buf, sizeof(g_buf));
	aml_rt_io(&a, 0x70, 0x70, 1, 2);
	assert_int_equal(aml_finish(&a), -EINVAL);

	aml_init(&a, g_buf, sizeof(g_buf));
	aml_rt_begin(&a);
	aml_rt_irq_noflags(&a, 16);
	assert_int_equal(aml_finish(&a), -EINVAL);

	const struct aml_addr bad[] = {
	    {.min = 0, .max = 0x10000, .len = 0},				  /* > 16 bits */
	    {.min_fixed = true, .max_fixed = true, .min = 0, .max = 9, .len = 9}, /* len */
	    {.min = 5, .max = 4},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		aml_init(&a, g_buf, sizeof(g_buf));
		aml_rt_begin(&a);
		aml_rt_word_io(&a, &bad[i]);
		assert_int_equal(aml_finish(&a), -EINVAL);
	}
	aml_init(&a, g_buf, sizeof(g_buf));
	aml_rt_begin(&a);
	aml_rt_dword_memory(&a, &(struct aml_addr){.min = 0, .max = 0x100000000ULL});
	assert_int_equal(aml_finish(&a), -EINVAL);

	aml_init(&a, g_buf, sizeof(g_buf));
	aml_local(&a, 8);
	assert_int_equal(aml_finish(&a), -EINVAL);
	aml_init(&a, g_buf, sizeof(g_buf));
	aml_arg(&a, 7);
	assert_int_equal(aml_finish(&a), -EINVAL);
	aml_init(&a, g_buf, sizeof(g_buf));
	aml_field_unit(&a, "GDAT", 8); /* outside a Field */
	assert_int_equal(aml_finish(&a), -EINVAL);
	aml_init(&a, g_buf, sizeof(g_buf));
	aml_method_begin(&a, "_OSC", 8, false);
	assert_int_equal(aml_finish(&a), -EINVAL);
	aml_init(&a, g_buf, sizeof(g_buf));
	aml_package_begin(&a, 256);
	assert_int_equal(aml_finish(&a), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pkglen_encode),	 cmocka_unit_test(test_pkglen_in_scope),
	    cmocka_unit_test(test_int_encodings),	 cmocka_unit_test(test_nameseg),
	    cmocka_unit_test(test_namestring),		 cmocka_unit_test(test_strings_and_ids),
	    cmocka_unit_test(test_buffer_size_crossing), cmocka_unit_test(test_named_objects),
	    cmocka_unit_test(test_resource_template),	 cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
