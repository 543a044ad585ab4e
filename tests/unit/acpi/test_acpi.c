/* SPDX-License-Identifier: MIT */
/*
 * ACPI tables: build into fake guest memory, then find and parse them back the way an OS
 * does (RSDP -> XSDT -> tables), with offsets taken from the ACPI 6.3 spec independently of
 * the implementation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "boot/acpi.h"
#include "memory/gmem.h"
#include "memory/layout.h"

#define RAM_SIZE (2u << 20)

struct ctx {
	uint8_t *ram;
	struct gmem m;
	struct acpi_config cfg;
};

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	c->ram = malloc(RAM_SIZE);
	assert_non_null(c->ram);
	memset(c->ram, 0xaa, RAM_SIZE); /* the builder must overwrite the whole area */
	assert_int_equal(gmem_init_fake(&c->m, 0, c->ram, RAM_SIZE), 0);
	acpi_config_default(&c->cfg, 4);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;
	free(c->ram);
	free(c);
	return 0;
}

static uint64_t le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint8_t sum8(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	for (size_t i = 0; i < n; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

/* A table with a valid header, entirely inside the ACPI area; returns its bytes. */
static const uint8_t *table(const struct ctx *c, uint64_t gpa, const char *sig)
{
	const uint8_t *h = gmem_ptr(&c->m, gpa, 36);
	assert_non_null(h);
	assert_memory_equal(h, sig, 4);
	uint32_t len = (uint32_t)le(h + 4, 4);
	assert_true(len >= 36);
	assert_true(gpa >= LAYOUT_ACPI_START);
	assert_true(gpa + len <= LAYOUT_ACPI_START + LAYOUT_ACPI_SIZE);
	const uint8_t *t = gmem_ptr(&c->m, gpa, len);
	assert_non_null(t);
	assert_int_equal(sum8(t, len), 0);
	assert_memory_equal(t + 10, "VIREO ", 6);
	return t;
}

static uint64_t build(struct ctx *c)
{
	uint64_t rsdp = 0;
	assert_int_equal(acpi_build(&c->m, &c->cfg, &rsdp), 0);
	return rsdp;
}

/* Look a table up through RSDP and XSDT. */
static const uint8_t *find(const struct ctx *c, uint64_t rsdp, const char *sig)
{
	const uint8_t *r = gmem_ptr(&c->m, rsdp, 36);
	const uint8_t *x = table(c, le(r + 24, 8), "XSDT");
	uint32_t n = ((uint32_t)le(x + 4, 4) - 36) / 8;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t gpa = le(x + 36 + 8 * i, 8);
		const uint8_t *h = gmem_ptr(&c->m, gpa, 4);
		if (h && !memcmp(h, sig, 4))
			return table(c, gpa, sig);
	}
	return NULL;
}

static void test_rsdp_xsdt(void **state)
{
	struct ctx *c = *state;
	uint64_t rsdp = build(c);
	assert_int_equal(rsdp, LAYOUT_ACPI_START);
	/* Where Linux scans for it without being told: 16-byte aligned in 0xE0000-0xFFFFF. */
	assert_int_equal(rsdp % 16, 0);
	assert_true(rsdp >= 0xe0000 && rsdp + 36 <= 0x100000);
	const uint8_t *r = gmem_ptr(&c->m, rsdp, 36);
	assert_memory_equal(r, "RSD PTR ", 8);
	assert_int_equal(sum8(r, 20), 0);
	assert_int_equal(sum8(r, 36), 0);
	assert_int_equal(r[15], 2);
	assert_int_equal(le(r + 20, 4), 36);
	assert_memory_equal(r + 9, "VIREO ", 6);

	const uint8_t *x = table(c, le(r + 24, 8), "XSDT");
	assert_int_equal(le(x + 4, 4), 36 + 3 * 8);
	assert_int_equal(x[8], 1);
	static const char *const sigs[] = {"FACP", "APIC", "MCFG"};
	for (unsigned i = 0; i < 3; i++) {
		uint64_t gpa = le(x + 36 + 8 * i, 8);
		table(c, gpa, sigs[i]);
		assert_int_equal(gpa % 8, 0);
	}
	/* Bytes after the last table are zeroed, not left as they were. */
	const uint8_t *end = gmem_ptr(&c->m, LAYOUT_ACPI_START + LAYOUT_ACPI_SIZE - 16, 16);
	for (int i = 0; i < 16; i++)
		assert_int_equal(end[i], 0);
}

static void assert_gas_io8(const uint8_t *g, uint64_t port)
{
	assert_int_equal(g[0], 1); /* SystemIO */
	assert_int_equal(g[1], 8); /* bit width */
	assert_int_equal(g[2], 0); /* bit offset */
	assert_int_equal(g[3], 1); /* byte access */
	assert_int_equal(le(g + 4, 8), port);
}

static void test_fadt(void **state)
{
	struct ctx *c = *state;
	uint64_t rsdp = build(c);
	const uint8_t *f = find(c, rsdp, "FACP");
	assert_non_null(f);
	assert_int_equal(le(f + 4, 4), 276);
	assert_int_equal(f[8], 6);   /* revision */
	assert_int_equal(f[131], 3); /* minor version */
	uint32_t flags = (uint32_t)le(f + 112, 4);
	assert_true(flags & (1u << 20));  /* HW_REDUCED_ACPI */
	assert_true(flags & (1u << 10));  /* RESET_REG_SUP */
	assert_true(flags & (1u << 4));	  /* PWR_BUTTON: a control-method power button */
	assert_false(flags & (1u << 15)); /* no platform clock claims */
	uint16_t boot = (uint16_t)le(f + 109, 2);
	assert_false(boot & (1u << 1)); /* no 8042 */
	assert_true(boot & (1u << 2));	/* VGA not present */
	assert_false(boot & (1u << 3)); /* MSI supported */
	assert_false(boot & (1u << 5)); /* CMOS RTC present */
	assert_int_equal(f[108], 0x32); /* CMOS century register */
	assert_int_equal(le(f + 46, 2), GSI_SCI);
	assert_gas_io8(f + 116, PORT_ACPI_RESET);
	assert_int_equal(f[128], ACPI_RESET_VALUE);
	assert_gas_io8(f + 244, PORT_ACPI_SLEEP_CTL);
	assert_gas_io8(f + 256, PORT_ACPI_SLEEP_STS);
	assert_memory_equal(f + 268, "VIREO\0\0\0", 8);
	/* No fixed hardware: every PM/GPE block, 32-bit or extended, is empty. */
	for (unsigned off = 56; off < 88; off++)
		assert_int_equal(f[off], 0);
	for (unsigned off = 148; off < 244; off++)
		assert_int_equal(f[off], 0);
	assert_int_equal(le(f + 36, 4), 0); /* no FACS */
	assert_int_equal(le(f + 40, 4), 0); /* DSDT only through X_DSDT */
	const uint8_t *d = table(c, le(f + 140, 8), "DSDT");
	assert_int_equal(d[8], 2);
}

static void test_fadt_without_legacy(void **state)
{
	struct ctx *c = *state;
	c->cfg.has_rtc = false;
	c->cfg.has_com1 = false;
	uint64_t rsdp = build(c);
	const uint8_t *f = find(c, rsdp, "FACP");
	uint16_t boot = (uint16_t)le(f + 109, 2);
	assert_true(boot & (1u << 5));	/* CMOS RTC not present */
	assert_false(boot & (1u << 0)); /* no legacy devices */
	assert_int_equal(f[108], 0); /* no century register without an RTC */
}

static void test_madt(void **state)
{
	struct ctx *c = *state;
	static const uint32_t ids[] = {0, 2, 5, 7, 254};
	c->cfg.nr_vcpus = 5;
	memcpy(c->cfg.apic_ids, ids, sizeof(ids));
	c->cfg.ioapic_id = 9;
	uint64_t rsdp = build(c);
	const uint8_t *t = find(c, rsdp, "APIC");
	assert_non_null(t);
	uint32_t len = (uint32_t)le(t + 4, 4);
	assert_int_equal(t[8], 5);
	assert_int_equal(le(t + 36, 4), LAYOUT_LAPIC);
	assert_int_equal(le(t + 40, 4), 1); /* PCAT_COMPAT */

	unsigned n = 0, lapics = 0, ioapics = 0, isos = 0, nmis = 0;
	bool irq0 = false, irq9 = false;
	uint32_t off = 44;
	while (off < len) {
		const uint8_t *e = t + off;
		assert_true(e[1] >= 2 && off + e[1] <= len);
		switch (e[0]) {
		case 0:
			assert_int_equal(e[1], 8);
			assert_int_equal(e[2], lapics); /* processor UID */
			assert_int_equal(e[3], ids[lapics]);
			assert_int_equal(le(e + 4, 4), 1); /* enabled */
			lapics++;
			break;
		case 1:
			assert_int_equal(e[1], 12);
			assert_int_equal(e[2], 9);
			assert_int_equal(le(e + 4, 4), LAYOUT_IOAPIC);
			assert_int_equal(le(e + 8, 4), 0);
			ioapics++;
			break;
		case 2:
			assert_int_equal(e[1], 10);
			assert_int_equal(e[2], 0); /* ISA */
			if (e[3] == 0) {
				assert_int_equal(le(e + 4, 4), 2);
				assert_int_equal(le(e + 8, 2), 0); /* conforms to the bus */
				irq0 = true;
			} else {
				assert_int_equal(e[3], 9);
				assert_int_equal(le(e + 4, 4), 9);
				assert_int_equal(le(e + 8, 2), 0xd); /* level, active high */
				irq9 = true;
			}
			isos++;
			break;
		case 4:
			assert_int_equal(e[1], 6);
			assert_int_equal(e[2], 0xff); /* all processors */
			assert_int_equal(e[5], 1);    /* LINT1 */
			nmis++;
			break;
		default:
			fail_msg("unexpected MADT entry type %u", e[0]);
		}
		off += e[1];
		n++;
	}
	assert_int_equal(off, len);
	assert_int_equal(lapics, 5);
	assert_int_equal(ioapics, 1);
	assert_int_equal(isos, 2);
	assert_true(irq0 && irq9);
	assert_int_equal(nmis, 1);
	assert_int_equal(n, c->cfg.nr_vcpus + 4);
}

static void test_mcfg(void **state)
{
	struct ctx *c = *state;
	uint64_t rsdp = build(c);
	const uint8_t *t = find(c, rsdp, "MCFG");
	assert_non_null(t);
	assert_int_equal(le(t + 4, 4), 60);
	assert_int_equal(t[8], 1);
	assert_int_equal(le(t + 44, 8), LAYOUT_PCI_ECAM_START);
	assert_int_equal(le(t + 52, 2), 0); /* segment */
	assert_int_equal(t[54], 0);	    /* start bus */
	assert_int_equal(t[55], 0);	    /* end bus */
}

static size_t count(const uint8_t *hay, size_t n, const void *needle, size_t m)
{
	size_t k = 0;
	for (size_t i = 0; i + m <= n; i++)
		k += !memcmp(hay + i, needle, m);
	return k;
}

#define HAS(d, len, ...)                                                                           \
	do {                                                                                       \
		const uint8_t n__[] = {__VA_ARGS__};                                               \
		assert_int_equal(count(d, len, n__, sizeof(n__)), 1);                              \
	} while (0)

static const uint8_t *dsdt(struct ctx *c, uint32_t *len)
{
	uint64_t rsdp = build(c);
	const uint8_t *f = find(c, rsdp, "FACP");
	const uint8_t *d = table(c, le(f + 140, 8), "DSDT");
	*len = (uint32_t)le(d + 4, 4);
	return d;
}

static void test_dsdt(void **state)
{
	struct ctx *c = *state;
	uint32_t len;
	const uint8_t *d = dsdt(c, &len);

	/* Name (\_S5, Package (4) { 5, 5, 0, 0 }) */
	HAS(d, len, 0x08, 0x5c, '_', 'S', '5', '_', 0x12, 0x08, 0x04, 0x0a, ACPI_S5_SLP_TYP, 0x0a,
	    ACPI_S5_SLP_TYP, 0x00, 0x00);
	/* The \_SB scope runs exactly to the end of the table. */
	const uint8_t *s = d + 36 + 15;
	assert_int_equal(s[0], 0x10);
	size_t nb = (s[1] >> 6) + 1, v = s[1] & 0x0f;
	assert_true(nb >= 2);
	for (size_t i = 1; i < nb; i++)
		v |= (size_t)s[1 + i] << (4 + 8 * (i - 1));
	assert_int_equal(36 + 15 + 1 + v, len);

	/* PCI0: _HID PNP0A08, _CID PNP0A03 */
	HAS(d, len, 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x08);
	HAS(d, len, 0x08, '_', 'C', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03);
	/* its _CRS: config ports, 32-bit window */
	HAS(d, len, 0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08);
	HAS(d, len, 0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0, 0, 0, 0, 0x00, 0x00, 0x00, 0xc0, 0xff,
	    0xff, 0xff, 0xdf, 0, 0, 0, 0, 0x00, 0x00, 0x00, 0x20);
	/* MRES reserves the ECAM */
	HAS(d, len, 0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xe0, 0x00, 0x00, 0x10, 0x00);
	/* COM1: IO 0x3F8/8 and IRQ 4; RTC: IO 0x70/2 and no IRQ (it raises none), then EndTag */
	HAS(d, len, 0x0c, 0x41, 0xd0, 0x05, 0x01);
	HAS(d, len, 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, 0x22, 0x10, 0x00);
	HAS(d, len, 0x47, 0x01, 0x70, 0x00, 0x70, 0x00, 0x01, 0x02, 0x79);
	/* GED: _HID "ACPI0013", Interrupt (Consumer, Level, ActiveHigh, Exclusive) {9},
	 * OperationRegion (GDST, SystemIO, 0x608, 1), Notify (\_SB.PWRB, 0x80) */
	HAS(d, len, 0x0d, 'A', 'C', 'P', 'I', '0', '0', '1', '3', 0x00);
	HAS(d, len, 0x89, 0x06, 0x00, 0x01, 0x01, GSI_SCI, 0x00, 0x00, 0x00);
	HAS(d, len, 0x5b, 0x80, 'G', 'D', 'S', 'T', 0x01, 0x0b, PORT_ACPI_GED & 0xff,
	    PORT_ACPI_GED >> 8, 0x01);
	HAS(d, len, 0x7b, 0x60, ACPI_GED_EVT_POWER_BUTTON, 0x00, 0x86, 0x5c, 0x2e, '_', 'S', 'B',
	    '_', 'P', 'W', 'R', 'B', 0x0a, 0x80);
	HAS(d, len, 0x0c, 0x41, 0xd0, 0x0c, 0x0c); /* PNP0C0C */
	/* One processor device per vCPU. */
	const char cpu[] = "ACPI0007";
	assert_int_equal(count(d, len, cpu, sizeof(cpu)), c->cfg.nr_vcpus);
	HAS(d, len, 0x5b, 0x82, 0x1b, 'C', '0', '0', '3'); /* _UID BytePrefix 3 */
}

static void test_dsdt_options(void **state)
{
	struct ctx *c = *state;
	c->cfg.has_com1 = false;
	c->cfg.has_rtc = false;
	c->cfg.pci_mmio64_base = 0x8000000000ULL;
	c->cfg.pci_mmio64_size = 0x1000000000ULL;
	uint32_t len;
	const uint8_t *d = dsdt(c, &len);
	const uint8_t com[] = {0x0c, 0x41, 0xd0, 0x05, 0x01},
		      rtc[] = {0x0c, 0x41, 0xd0, 0x0b, 0x00};
	assert_int_equal(count(d, len, com, sizeof(com)), 0);
	assert_int_equal(count(d, len, rtc, sizeof(rtc)), 0);
	HAS(d, len, 0x8a, 0x2b, 0x00, 0x00, 0x0c, 0x07);
	HAS(d, len, 0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x8f);
}

static void test_max_vcpus(void **state)
{
	struct ctx *c = *state;
	acpi_config_default(&c->cfg, ACPI_MAX_VCPUS);
	uint64_t rsdp = build(c);
	const uint8_t *t = find(c, rsdp, "APIC");
	assert_int_equal(le(t + 4, 4), 44 + 8 * ACPI_MAX_VCPUS + 12 + 20 + 6);
	assert_int_equal(t[44 + 8 * 254 + 3], 254);
	uint32_t len;
	const uint8_t *d = dsdt(c, &len);
	const char cpu[] = "ACPI0007";
	assert_int_equal(count(d, len, cpu, sizeof(cpu)), ACPI_MAX_VCPUS);
}

static void test_bad_config(void **state)
{
	struct ctx *c = *state;
	uint64_t rsdp = 0x1234;
	struct acpi_config cfg;

	acpi_config_default(&cfg, 0);
	assert_int_equal(acpi_build(&c->m, &cfg, &rsdp), -EINVAL);
	acpi_config_default(&cfg, ACPI_MAX_VCPUS);
	cfg.nr_vcpus = ACPI_MAX_VCPUS + 1;
	assert_int_equal(acpi_build(&c->m, &cfg, &rsdp), -EINVAL);
	acpi_config_default(&cfg, 3);
	cfg.apic_ids[2] = 0; /* duplicate */
	assert_int_equal(acpi_build(&c->m, &cfg, &rsdp), -EINVAL);
	acpi_config_default(&cfg, 3);
	cfg.apic_ids[1] = 0xff; /* broadcast */
	assert_int_equal(acpi_build(&c->m, &cfg, &rsdp), -EINVAL);
	acpi_config_default(&cfg, 3);
	cfg.apic_ids[1] = 0x1000;
	assert_int_equal(acpi_build(&c->m, &cfg, &rsdp), -EINVAL);
	acpi_config_default(&cfg, 1);
	cfg.ecam_size = 2 << 20; /* two buses' worth for bus 0 only */
	assert_int_equal(acpi_build(&c->m, &cfg, &rsdp), -EINVAL);
	acpi_config_default(&cfg, 1);
	cfg.pci_bus_start = 1; /* bus range 1-0 */
	assert_int_equal(acpi_build(&c->m, &cfg, &rsdp), -EINVAL);
	acpi_config_default(&cfg, 1);
	cfg.pci_mmio_base = 0xf0000000;
	cfg.pci_mmio_size = 0x20000000; /* crosses 4 GiB */
	assert_int_equal(acpi_build(&c->m, &cfg, &rsdp), -EINVAL);
	acpi_config_default(&cfg, 1);
	cfg.pci_mmio64_base = UINT64_MAX - 0xfff;
	cfg.pci_mmio64_size = 0x2000;
	assert_int_equal(acpi_build(&c->m, &cfg, &rsdp), -EINVAL);
	acpi_config_default(&cfg, 1);
	cfg.lapic_addr = 0x100000000ULL;
	assert_int_equal(acpi_build(&c->m, &cfg, &rsdp), -EINVAL);
	assert_int_equal(rsdp, 0x1234);
	/* Nothing was written. */
	const uint8_t *a = gmem_ptr(&c->m, LAYOUT_ACPI_START, 64);
	for (int i = 0; i < 64; i++)
		assert_int_equal(a[i], 0xaa);
}

static void test_area_errors(void **state)
{
	struct ctx *c = *state;
	uint64_t rsdp = 0;
	/* Too small for the fixed tables, then too small for the DSDT. */
	assert_int_equal(acpi_build_at(&c->m, &c->cfg, 0x10000, 256, &rsdp), -ENOSPC);
	assert_int_equal(acpi_build_at(&c->m, &c->cfg, 0x10000, 1024, &rsdp), -ENOSPC);
	const uint8_t *a = gmem_ptr(&c->m, 0x10000, 1024);
	for (int i = 0; i < 1024; i++)
		assert_int_equal(a[i], 0xaa);
	/* Misaligned, outside guest RAM, wrapping around. */
	assert_int_equal(acpi_build_at(&c->m, &c->cfg, 0x10008, 0x4000, &rsdp), -EINVAL);
	assert_int_equal(acpi_build_at(&c->m, &c->cfg, RAM_SIZE - 0x1000, 0x4000, &rsdp), -EFAULT);
	assert_int_equal(acpi_build_at(&c->m, &c->cfg, UINT64_MAX - 0xf, 0x4000, &rsdp), -EINVAL);
	assert_int_equal(rsdp, 0);
	/* A 4 KiB area is enough for a small VM. */
	assert_int_equal(acpi_build_at(&c->m, &c->cfg, 0x10000, 0x1000, &rsdp), 0);
	assert_int_equal(rsdp, 0x10000);
	assert_memory_equal(gmem_ptr(&c->m, 0x10000, 8), "RSD PTR ", 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_rsdp_xsdt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fadt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fadt_without_legacy, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_madt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mcfg, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dsdt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dsdt_options, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_max_vcpus, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_area_errors, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
