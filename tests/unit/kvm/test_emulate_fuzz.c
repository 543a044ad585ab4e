/* SPDX-License-Identifier: MIT */
/*
 * Instruction emulator on bad input: every proper prefix of valid instructions (placed at the
 * end of a page followed by an inaccessible one, so any over-read crashes), and a fixed-seed
 * garbage loop: never a crash, registers and memory change only on success.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "emul_fake.h"

#define ARITH 0x8d5ULL

struct tc {
	struct fake f;
	struct emul_env env;
	struct emul_regs r;
	struct emul_result res;
};

static struct tc *tc_new(enum emul_mode mode)
{
	struct tc *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	t->f.base = 0x1100;
	fake_env(&t->env, &t->f, mode);
	t->r.rip = 0x1000;
	t->r.rflags = 0x2;
	return t;
}

static int run(struct tc *t, const uint8_t *b, unsigned n)
{
	return emul_run(b, n, &t->env, &t->r, &t->res);
}

/* Every proper prefix of a valid instruction is rejected without reading past it: the
 * bytes sit at the very end of a page followed by an inaccessible one. */
static void test_truncated(void **state)
{
	(void)state;
	static const struct {
		uint8_t b[15];
		unsigned n;
	} v[] = {
	    {{0xf3, 0x4c, 0x0f, 0xb8, 0x5c, 0xce, 0x10}, 7},
	    {{0xf3, 0x48, 0x0f, 0xb8, 0x04, 0xcd, 0x00, 0x10, 0x00, 0x00}, 10},
	    {{0xf3, 0x48, 0x0f, 0xb8, 0x05, 0x00, 0x01, 0x00, 0x00}, 9},
	    {{0x66, 0xf3, 0x0f, 0xbd, 0x8c, 0x24, 0x00, 0x01, 0x00, 0x00}, 10},
	    {{0xc4, 0xe3, 0x7b, 0xf0, 0x84, 0x24, 0x00, 0x01, 0x00, 0x00, 0x05}, 11},
	    {{0xc5, 0xf8, 0x77}, 0}, /* vzeroupper: never valid here, skipped below */
	    {{0xf2, 0x0f, 0x38, 0xf1, 0x46, 0x08}, 6},
	    {{0xf0, 0x48, 0x0f, 0xc7, 0x0e}, 5},
	    {{0x0f, 0x01, 0xf9}, 3},
	    {{0xdf, 0xe0}, 2},
	};
	long pg = sysconf(_SC_PAGESIZE);
	uint8_t *map =
	    mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(map != MAP_FAILED);
	assert_int_equal(mprotect(map + pg, (size_t)pg, PROT_NONE), 0);
	struct tc *t = tc_new(EMUL_MODE_64);
	t->r.gpr[EMUL_RSI] = 0x1100;
	t->r.gpr[EMUL_RSP] = 0x1000;
	t->r.gpr[EMUL_RCX] = 0x20;
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		if (!v[i].n)
			continue;
		uint8_t *end = map + pg;
		memcpy(end - v[i].n, v[i].b, v[i].n);
		struct tc full = *t;
		full.env.ctx = &full.f;
		assert_int_equal(run(&full, end - v[i].n, v[i].n), 0); /* the whole thing decodes */
		assert_int_equal(full.res.len, v[i].n);
		for (unsigned k = 0; k < v[i].n; k++) {
			memcpy(end - k, v[i].b, k);
			struct emul_regs before = t->r;
			assert_int_equal(run(t, end - k, k), -ENOTSUP);
			assert_memory_equal(&before, &t->r, sizeof(before));
			assert_int_equal(t->f.reads + t->f.writes + t->f.cmpxchgs, 0);
		}
	}
	munmap(map, (size_t)pg * 2);
	free(t);
}

/* Garbage in: never a crash, and registers change only on success. */
static void test_fuzz(void **state)
{
	(void)state;
	static const uint8_t interesting[] = {0x66, 0x67, 0xf0, 0xf2, 0xf3, 0x2e, 0x64, 0x65, 0x40,
					      0x48, 0x4f, 0x0f, 0x38, 0x3a, 0xc4, 0xc5, 0xb8, 0xbc,
					      0xbd, 0xf0, 0xf1, 0xf5, 0xf6, 0xf7, 0xc7, 0xae, 0x01,
					      0x9b, 0xcc, 0xd9, 0xdb, 0xdd, 0xdf, 0x04, 0x05, 0x24};
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	unsigned ok = 0, faults = 0, errors = 0;
	struct tc *t = tc_new(EMUL_MODE_64);
	for (int iter = 0; iter < 300000; iter++) {
		uint8_t b[EMUL_MAX_INSN];
		unsigned n = 1 + (unsigned)(xrand(&seed) % EMUL_MAX_INSN);
		for (unsigned i = 0; i < n; i++) {
			uint64_t x = xrand(&seed);
			b[i] = (x & 3) ? interesting[(x >> 8) % sizeof(interesting)]
				       : (uint8_t)(x >> 16);
		}
		t->env.mode = (enum emul_mode)(xrand(&seed) % 4);
		t->env.features = (xrand(&seed) & 1) ? ~0u : (uint32_t)xrand(&seed);
		t->env.cr0 = CR0_TEST | (xrand(&seed) & 0xc);
		for (int i = 0; i < 16; i++)
			t->r.gpr[i] =
			    (xrand(&seed) & 1) ? 0x1100 + (xrand(&seed) & 0xfff) : xrand(&seed);
		t->r.rip = xrand(&seed);
		t->r.rflags = 0x2 | (xrand(&seed) & ARITH);
		t->f.reads = t->f.writes = t->f.cmpxchgs = t->f.sys_sets = 0;
		struct emul_regs before = t->r;
		int r = run(t, b, n);
		if (r < 0) {
			errors++;
			assert_memory_equal(&before, &t->r, sizeof(before));
			assert_int_equal(t->f.writes + t->f.cmpxchgs + t->f.sys_sets, 0);
			continue;
		}
		assert_int_equal(r, 0);
		assert_true(t->res.len >= 1 && t->res.len <= n);
		assert_true((unsigned)t->res.kind < EMUL_K_COUNT);
		if (t->res.action == EMUL_DONE || t->res.action == EMUL_INJECT_BP) {
			ok++;
			assert_true(t->r.rip != before.rip || t->env.mode != EMUL_MODE_64);
		} else {
			faults++;
			assert_memory_equal(&before, &t->r, sizeof(before));
		}
	}
	printf("fuzz: %u completed, %u faults injected, %u rejected\n", ok, faults, errors);
	assert_true(ok > 1000 && faults > 100 && errors > 1000); /* the loop reaches every path */
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_fuzz),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
