/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "memory/gmem.h"
#include "memory/layout.h"

static void test_fake_bounds(void **state)
{
	(void)state;
	static uint8_t buf[4096];
	struct gmem m;
	assert_int_equal(gmem_init_fake(&m, 0x10000, buf, sizeof(buf)), 0);
	assert_ptr_equal(gmem_ptr(&m, 0x10000, 4096), buf);
	assert_ptr_equal(gmem_ptr(&m, 0x10ff0, 16), buf + 0xff0);
	assert_null(gmem_ptr(&m, 0x10ff0, 17));
	assert_null(gmem_ptr(&m, 0xffff, 2));
	assert_null(gmem_ptr(&m, 0x11000, 1));
	assert_null(gmem_ptr(&m, 0x10001, UINT64_MAX));
	assert_null(gmem_ptr(&m, UINT64_MAX, 2));
	uint8_t x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, y[8];
	assert_int_equal(gmem_write(&m, 0x10100, x, 8), 0);
	assert_int_equal(gmem_read(&m, 0x10100, y, 8), 0);
	assert_memory_equal(x, y, 8);
	assert_int_equal(gmem_write(&m, 0x10ffc, x, 8), -EFAULT);
}

static void test_create_splits_hole(void **state)
{
	(void)state;
	struct gmem m;
	uint64_t size = LAYOUT_MMIO_HOLE_START + (64ULL << 20);
	assert_int_equal(gmem_create(&m, size, 0), 0);
	assert_int_equal(m.nr_regions, 2);
	assert_int_equal(gmem_low_size(&m), LAYOUT_MMIO_HOLE_START);
	assert_int_equal(gmem_high_size(&m), 64ULL << 20);
	assert_null(gmem_ptr(&m, LAYOUT_MMIO_HOLE_START, 1));
	assert_non_null(gmem_ptr(&m, LAYOUT_HIGH_MEM_START, 4096));
	/* A range crossing the hole is rejected even though both ends are RAM. */
	assert_null(gmem_ptr(&m, LAYOUT_MMIO_HOLE_START - 8, LAYOUT_HIGH_MEM_START));
	gmem_destroy(&m);
	assert_int_equal(gmem_create(&m, 0, 0), -EINVAL);
	assert_int_equal(gmem_create(&m, 4097, 0), -EINVAL);
	assert_int_equal(gmem_create(&m, 4096, 0x80), -EINVAL);
}

/* The smaps entry of the mapping that starts at addr: its path (empty for anonymous
 * memory) and whether VmFlags has "hg" (MADV_HUGEPAGE). */
static void smaps_of(const void *addr, char *path, size_t pathlen, int *hg)
{
	char line[512], want[32];
	int in = 0;
	FILE *f = fopen("/proc/self/smaps", "r");
	assert_non_null(f);
	snprintf(want, sizeof(want), "%lx-", (unsigned long)(uintptr_t)addr);
	path[0] = 0;
	*hg = -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, want, strlen(want))) {
			char *p = line;
			for (int field = 0; field < 5 && p; field++) {
				p = strchr(p, ' ');
				while (p && *p == ' ')
					p++;
			}
			snprintf(path, pathlen, "%s", p ? p : "");
			path[strcspn(path, "\n")] = 0;
			in = 1;
		} else if (in && !strncmp(line, "VmFlags:", 8)) {
			*hg = strstr(line, " hg") != NULL;
			in = 0;
		}
	}
	fclose(f);
}

static void test_backing(void **state)
{
	(void)state;
	struct gmem m;
	char path[256];
	int hg;
	uint32_t v = 0x5a5aa5a5, back = 0;

	/* Default: private anonymous RAM, advised for huge pages, no fd. */
	assert_int_equal(gmem_create(&m, 8 << 20, 0), 0);
	assert_int_equal(m.fd, -1);
	/* The first 2 MiB (boot structures) stay small pages, the rest is advised. */
	smaps_of(m.map, path, sizeof(path), &hg);
	assert_string_equal(path, "");
	assert_int_equal(hg, 0);
	smaps_of((uint8_t *)m.map + (2 << 20), path, sizeof(path), &hg);
	assert_string_equal(path, "");
	assert_int_equal(hg, 1);
	assert_int_equal(gmem_write(&m, 0x1000, &v, 4), 0);
	assert_int_equal(gmem_read(&m, 0x1000, &back, 4), 0);
	assert_int_equal(back, v);
	gmem_destroy(&m);

	/* GMEM_SHARED: a memfd; what the guest writes is in the file. */
	assert_int_equal(gmem_create(&m, 8 << 20, GMEM_SHARED), 0);
	assert_true(m.fd >= 0);
	smaps_of(m.map, path, sizeof(path), &hg);
	assert_non_null(strstr(path, "memfd:vireo-ram"));
	assert_int_equal(gmem_write(&m, 0x2000, &v, 4), 0);
	back = 0;
	assert_int_equal(pread(m.fd, &back, 4, 0x2000), 4);
	assert_int_equal(back, v);
	gmem_destroy(&m);
	assert_int_equal(m.fd, -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fake_bounds),
		cmocka_unit_test(test_create_splits_hole),
		cmocka_unit_test(test_backing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
