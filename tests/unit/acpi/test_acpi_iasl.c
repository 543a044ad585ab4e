/* SPDX-License-Identifier: MIT */
/*
 * Validate the tables with ACPICA's iasl (Debian: acpica-tools). Each table but the RSDP
 * (checked in test_acpi.c) is dumped to a file and disassembled with `iasl -d`; the output
 * must be free of errors, warnings and remarks, and recompiling the disassembly must give
 * back our bytes, except the checksum and creator ID/revision that iasl stamps itself.
 * Exits 77 (skipped) when iasl is not installed.
 *
 * VIREO_ACPI_KEEP=1 keeps the output directory (its path is printed) to read the .dsl files.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "boot/acpi.h"
#include "memory/gmem.h"
#include "memory/layout.h"

#define RAM_SIZE (1u << 20)

static char g_dir[64];

static uint64_t le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void write_file(const char *name, const void *p, size_t n)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", g_dir, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static size_t read_file(const char *name, uint8_t **out)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", g_dir, name);
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("%s: not produced by iasl", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	long n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	uint8_t *buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = 0;
	fclose(f);
	*out = buf;
	return (size_t)n;
}

/* Run iasl in g_dir with its output captured in log; returns the exit status. */
static int run_iasl(const char *args, const char *log)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "cd '%s' && iasl %s > '%s' 2>&1", g_dir, args, log);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void assert_clean(const char *file)
{
	uint8_t *text;
	read_file(file, &text);
	static const char *const bad[] = {"Error",   "Warning",	  "Remark",
					  "Invalid", "Incorrect", "**** Unknown"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *hit = strstr((const char *)text, bad[i]);
		/* iasl's summary "... 0 Errors, 0 Warnings, 0 Remarks" is fine. */
		while (hit && hit >= (const char *)text + 3 && !memcmp(hit - 3, " 0 ", 3))
			hit = strstr(hit + 1, bad[i]);
		if (hit)
			fail_msg("%s/%s: \"%.120s\"", g_dir, file, hit);
	}
	free(text);
}

/*
 * Disassemble <sig>.dat, check the .dsl, recompile it and compare everything but the
 * checksum and the creator ID/revision, which iasl replaces with its own.
 */
static void check_table(const uint8_t *t, const char *sig)
{
	char dat[16], dsl[16], log[32], args[96], aml[24];
	size_t len = (size_t)le(t + 4, 4);
	snprintf(dat, sizeof(dat), "%s.dat", sig);
	snprintf(dsl, sizeof(dsl), "%s.dsl", sig);
	write_file(dat, t, len);

	snprintf(log, sizeof(log), "%s-d.log", sig);
	snprintf(args, sizeof(args), "-d %s", dat);
	assert_int_equal(run_iasl(args, log), 0);
	assert_clean(log);
	assert_clean(dsl);

	/* Recompile without optimizations so names and integers keep their encoding. */
	snprintf(log, sizeof(log), "%s-c.log", sig);
	snprintf(args, sizeof(args), "-oa -p %s-re %s", sig, dsl);
	if (run_iasl(args, log) != 0) {
		assert_clean(log);
		fail_msg("%s: recompiling %s failed", g_dir, dsl);
	}
	assert_clean(log);
	uint8_t *re;
	snprintf(aml, sizeof(aml), "%s-re.aml", sig);
	size_t relen = read_file(aml, &re);
	assert_int_equal(relen, len);
	assert_memory_equal(re, t, 9);		  /* signature, length, revision */
	assert_memory_equal(re + 10, t + 10, 18); /* OEM ID, table ID, revision */
	assert_memory_equal(re + 36, t + 36, len - 36);
	free(re);
}

static void test_iasl(void **state)
{
	(void)state;
	uint8_t *ram = calloc(1, RAM_SIZE);
	assert_non_null(ram);
	struct gmem m;
	assert_int_equal(gmem_init_fake(&m, 0, ram, RAM_SIZE), 0);
	struct acpi_config cfg;
	acpi_config_default(&cfg, 4);
	cfg.pci_mmio64_base = 0x8000000000ULL;
	cfg.pci_mmio64_size = 0x1000000000ULL;
	uint64_t rsdp;
	assert_int_equal(acpi_build(&m, &cfg, &rsdp), 0);

	const uint8_t *r = gmem_ptr(&m, rsdp, 36);
	const uint8_t *x = gmem_ptr(&m, le(r + 24, 8), 36 + 3 * 8);
	assert_non_null(x);
	/* The RSDP has no table header: iasl 20200925 cannot disassemble one, even its own. */
	check_table(x, "XSDT");
	for (unsigned i = 0; i < 3; i++) {
		uint64_t gpa = le(x + 36 + 8 * i, 8);
		const uint8_t *h = gmem_ptr(&m, gpa, 36);
		assert_non_null(h);
		const uint8_t *t = gmem_ptr(&m, gpa, le(h + 4, 4));
		assert_non_null(t);
		char sig[5] = {0};
		memcpy(sig, t, 4);
		check_table(t, sig);
		if (!strcmp(sig, "FACP")) {
			uint64_t dsdt = le(t + 140, 8);
			const uint8_t *d = gmem_ptr(&m, dsdt, 36);
			assert_non_null(d);
			d = gmem_ptr(&m, dsdt, le(d + 4, 4));
			check_table(d, "DSDT");
		}
	}
	free(ram);
}

int main(void)
{
	if (system("command -v iasl > /dev/null 2>&1") != 0) {
		printf("SKIP: iasl not found (install acpica-tools)\n");
		return 77;
	}
	snprintf(g_dir, sizeof(g_dir), "/tmp/vireo-acpi-XXXXXX");
	if (!mkdtemp(g_dir)) {
		perror("mkdtemp");
		return 1;
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_iasl),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	const char *keep = getenv("VIREO_ACPI_KEEP");
	if (keep && *keep == '1') {
		printf("iasl output kept in %s\n", g_dir);
	} else {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", g_dir);
	}
	return r;
}
