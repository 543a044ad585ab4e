/* SPDX-License-Identifier: MIT */
/*
 * Instruction emulator: decoding (prefixes, REX, VEX, ModRM/SIB, RIP-relative, segments,
 * lengths), per-instruction semantics and flags, faults and rejections. Truncated input and
 * garbage: test_emulate_fuzz.c; the comparison against the host CPU: test_emulate_host.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "emul_fake.h"

#define CF 0x001ULL
#define PF 0x004ULL
#define AF 0x010ULL
#define ZF 0x040ULL
#define SF 0x080ULL
#define OF 0x800ULL
#define ARITH (CF | PF | AF | ZF | SF | OF)

#define B(...) (const uint8_t[]){__VA_ARGS__}, (unsigned)sizeof((const uint8_t[]){__VA_ARGS__})

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

/* Runs and expects EMUL_DONE with RIP advanced by len. */
static void run_ok(struct tc *t, const uint8_t *b, unsigned n)
{
	uint64_t rip = t->r.rip + n;
	if (t->env.mode == EMUL_MODE_16)
		rip &= 0xffff;
	else if (t->env.mode != EMUL_MODE_64)
		rip &= 0xffffffff;
	assert_int_equal(run(t, b, n), 0);
	assert_int_equal(t->res.action, EMUL_DONE);
	assert_int_equal(t->res.len, n);
	assert_int_equal(t->r.rip, rip);
}

/* Runs and expects a fault with nothing changed. */
static void run_fault(struct tc *t, const uint8_t *b, unsigned n, enum emul_action a)
{
	struct emul_regs before = t->r;
	assert_int_equal(run(t, b, n), 0);
	assert_int_equal(t->res.action, a);
	assert_memory_equal(&before, &t->r, sizeof(before));
}

static void run_enotsup(struct tc *t, const uint8_t *b, unsigned n)
{
	struct emul_regs before = t->r;
	assert_int_equal(run(t, b, n), -ENOTSUP);
	assert_memory_equal(&before, &t->r, sizeof(before));
}

static void test_fwait_int3(void **state)
{
	(void)state;
	struct tc *t = tc_new(EMUL_MODE_64);
	t->r.gpr[EMUL_RAX] = 0x1234;
	run_ok(t, B(0x9b));
	assert_int_equal(t->res.kind, EMUL_K_FWAIT);
	assert_int_equal(t->r.gpr[EMUL_RAX], 0x1234);
	run_ok(t, B(0xf3, 0x9b)); /* prefixes are ignored */
	t->env.cr0 |= 8;	  /* TS with MP: #NM, RIP stays */
	run_fault(t, B(0x9b), EMUL_INJECT_NM);
	t->env.cr0 &= ~2ULL; /* TS without MP: wait does not fault */
	run_ok(t, B(0x9b));
	run_fault(t, B(0xf0, 0x9b), EMUL_INJECT_UD); /* LOCK */
	/* int3 is a trap: RIP after the instruction, #BP to inject. */
	assert_int_equal(run(t, B(0xcc)), 0);
	assert_int_equal(t->res.action, EMUL_INJECT_BP);
	assert_int_equal(t->res.kind, EMUL_K_INT3);
	assert_int_equal(t->r.rip, 0x1005);
	t->env.mode = EMUL_MODE_PROT32;
	t->r.rip = 0xffffffff; /* EIP wraps */
	assert_int_equal(run(t, B(0xcc)), 0);
	assert_int_equal(t->r.rip, 0);
	free(t);
}

static void test_popcnt(void **state)
{
	(void)state;
	struct tc *t = tc_new(EMUL_MODE_64);
	t->r.gpr[EMUL_RAX] = 0xdeadbeefcafef00dULL;
	t->r.gpr[EMUL_RBX] = 0xf0f0f0f00000000fULL;
	t->r.rflags = 0x2 | ARITH;
	run_ok(t, B(0xf3, 0x0f, 0xb8, 0xc3));	 /* popcnt eax, ebx */
	assert_int_equal(t->r.gpr[EMUL_RAX], 4); /* 32-bit result zero-extends */
	assert_int_equal(t->r.rflags, 0x2);	 /* all arithmetic flags cleared */
	assert_int_equal(t->res.kind, EMUL_K_POPCNT);
	run_ok(t, B(0xf3, 0x48, 0x0f, 0xb8, 0xc3)); /* popcnt rax, rbx */
	assert_int_equal(t->r.gpr[EMUL_RAX], 20);
	t->r.gpr[EMUL_RAX] = 0x1111222233334444ULL;
	t->r.gpr[EMUL_RBX] = 0xffffffffffff00ffULL;
	run_ok(t, B(0x66, 0xf3, 0x0f, 0xb8, 0xc3)); /* popcnt ax, bx keeps bits 63:16 */
	assert_int_equal(t->r.gpr[EMUL_RAX], 0x1111222233330008ULL);
	t->r.gpr[EMUL_RBX] = 0;
	t->r.rflags = 0x2 | CF | OF;
	run_ok(t, B(0xf3, 0x0f, 0xb8, 0xc3));
	assert_int_equal(t->r.gpr[EMUL_RAX], 0);
	assert_int_equal(t->r.rflags, 0x2 | ZF);
	/* r10w <- popcnt cx, with REX.R; REX before 66 would be ignored, so it is after. */
	t->r.gpr[10] = 0xaaaaaaaaaaaaaaaaULL;
	t->r.gpr[EMUL_RCX] = 0x7;
	run_ok(t, B(0x66, 0xf3, 0x44, 0x0f, 0xb8, 0xd1));
	assert_int_equal(t->r.gpr[10], 0xaaaaaaaaaaaa0003ULL);
	/* A REX followed by a legacy prefix is ignored: this is popcnt ax, bx again. */
	t->r.gpr[EMUL_RAX] = ~0ULL;
	t->r.gpr[EMUL_RBX] = 0x3;
	run_ok(t, B(0x48, 0x66, 0xf3, 0x0f, 0xb8, 0xc3));
	assert_int_equal(t->r.gpr[EMUL_RAX], 0xffffffffffff0002ULL);
	/* Memory form. */
	memset(t->f.mem, 0x01, 8);
	t->r.gpr[EMUL_RSI] = 0x1100;
	run_ok(t, B(0xf3, 0x48, 0x0f, 0xb8, 0x06));
	assert_int_equal(t->r.gpr[EMUL_RAX], 8);
	assert_int_equal(t->f.last_gva, 0x1100);
	assert_int_equal(t->f.last_len, 8);
	assert_int_equal(t->f.writes, 0);
	/* Without the feature: #UD, nothing changed. */
	t->env.features &= ~EMUL_F_POPCNT;
	run_fault(t, B(0xf3, 0x0f, 0xb8, 0xc3), EMUL_INJECT_UD);
	free(t);
}

static void test_lzcnt_tzcnt(void **state)
{
	(void)state;
	struct tc *t = tc_new(EMUL_MODE_64);
	static const struct {
		uint8_t b[6];
		unsigned n;
		uint64_t src, res;
		uint64_t flags;
	} v[] = {
	    {{0xf3, 0x0f, 0xbd, 0xc3}, 4, 0x1234, 19, 0},		/* lzcnt eax, ebx */
	    {{0xf3, 0x0f, 0xbd, 0xc3}, 4, 0, 32, CF},			/* zero: size, CF */
	    {{0xf3, 0x0f, 0xbd, 0xc3}, 4, 0x80000000, 0, ZF},		/* result 0: ZF */
	    {{0xf3, 0x48, 0x0f, 0xbd, 0xc3}, 5, 0, 64, CF},		/* 64-bit zero */
	    {{0xf3, 0x48, 0x0f, 0xbd, 0xc3}, 5, 1, 63, 0},		/* 64-bit */
	    {{0x66, 0xf3, 0x0f, 0xbd, 0xc3}, 5, 0xffff0000, 16, CF},	/* 16-bit zero */
	    {{0x66, 0xf3, 0x0f, 0xbd, 0xc3}, 5, 0x00ff, 8, 0},		/* 16-bit */
	    {{0xf3, 0x0f, 0xbc, 0xc3}, 4, 0x1000, 12, 0},		/* tzcnt eax, ebx */
	    {{0xf3, 0x0f, 0xbc, 0xc3}, 4, 0x100000000ULL, 32, CF},	/* ebx == 0 */
	    {{0xf3, 0x48, 0x0f, 0xbc, 0xc3}, 5, 0x100000000ULL, 32, 0}, /* rbx != 0 */
	    {{0xf3, 0x48, 0x0f, 0xbc, 0xc3}, 5, 0, 64, CF},
	    {{0xf3, 0x48, 0x0f, 0xbc, 0xc3}, 5, 1, 0, ZF},
	    {{0x66, 0xf3, 0x0f, 0xbc, 0xc3}, 5, 0x10000, 16, CF},
	};
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		t->r.gpr[EMUL_RAX] = 0x5555555555555555ULL;
		t->r.gpr[EMUL_RBX] = v[i].src;
		t->r.rflags = 0x2 | SF | OF | PF | AF | (v[i].flags ? 0 : CF | ZF);
		run_ok(t, v[i].b, v[i].n);
		uint64_t want = v[i].b[0] == 0x66 ? 0x5555555555550000ULL | v[i].res : v[i].res;
		assert_int_equal(t->r.gpr[EMUL_RAX], want);
		assert_int_equal(t->r.rflags & (CF | ZF), v[i].flags);
		assert_int_equal(t->r.rflags & (SF | OF | PF | AF),
				 SF | OF | PF | AF); /* undefined: kept */
	}
	/* Without ABM / BMI1 the F3 prefix is ignored: bsr / bsf. */
	t->env.features &= ~(EMUL_F_LZCNT | EMUL_F_BMI1);
	t->r.gpr[EMUL_RAX] = 77;
	t->r.gpr[EMUL_RBX] = 0x1234;
	run_ok(t, B(0xf3, 0x0f, 0xbd, 0xc3));
	assert_int_equal(t->r.gpr[EMUL_RAX], 12);
	assert_int_equal(t->r.rflags & ZF, 0);
	run_ok(t, B(0xf3, 0x0f, 0xbc, 0xc3));
	assert_int_equal(t->r.gpr[EMUL_RAX], 2);
	t->r.gpr[EMUL_RBX] = 0; /* zero source: ZF, destination unchanged */
	run_ok(t, B(0xf3, 0x0f, 0xbd, 0xc3));
	assert_int_equal(t->r.gpr[EMUL_RAX], 2);
	assert_int_equal(t->r.rflags & ZF, ZF);
	free(t);
}

static void test_bmi(void **state)
{
	(void)state;
	struct tc *t = tc_new(EMUL_MODE_64);
	uint64_t *g = t->r.gpr;
	/* andn eax, ebx, ecx = ~ebx & ecx */
	g[EMUL_RBX] = 0xff00ff00;
	g[EMUL_RCX] = 0xf0f0f0f0;
	t->r.rflags = 0x2 | CF | OF;
	run_ok(t, B(0xc4, 0xe2, 0x60, 0xf2, 0xc1));
	assert_int_equal(g[EMUL_RAX], 0x00f000f0);
	assert_int_equal(t->r.rflags & (CF | OF | ZF | SF), 0);
	assert_int_equal(t->res.kind, EMUL_K_ANDN);
	/* andn r8, r9, r10 (64-bit), sign set */
	g[9] = 0;
	g[10] = 0x8000000000000000ULL;
	run_ok(t, B(0xc4, 0x42, 0xb0, 0xf2, 0xc2));
	assert_int_equal(g[8], 0x8000000000000000ULL);
	assert_int_equal(t->r.rflags & (SF | ZF), SF);
	/* bextr eax, ebx, ecx: start 4, len 8 */
	g[EMUL_RBX] = 0x12345678;
	g[EMUL_RCX] = 0x0804;
	run_ok(t, B(0xc4, 0xe2, 0x70, 0xf7, 0xc3));
	assert_int_equal(g[EMUL_RAX], 0x67);
	g[EMUL_RCX] = 0x0820; /* start beyond the operand: 0, ZF */
	run_ok(t, B(0xc4, 0xe2, 0x70, 0xf7, 0xc3));
	assert_int_equal(g[EMUL_RAX], 0);
	assert_int_equal(t->r.rflags & ZF, ZF);
	g[EMUL_RCX] = 0xff00; /* length 255: everything */
	run_ok(t, B(0xc4, 0xe2, 0x70, 0xf7, 0xc3));
	assert_int_equal(g[EMUL_RAX], 0x12345678);
	/* blsi eax, ebx / blsmsk ecx, edx / blsr esi, edi */
	g[EMUL_RBX] = 0x0c;
	run_ok(t, B(0xc4, 0xe2, 0x78, 0xf3, 0xdb));
	assert_int_equal(g[EMUL_RAX], 0x04);
	assert_int_equal(t->r.rflags & (CF | ZF), CF); /* source != 0 */
	g[EMUL_RDX] = 0;
	run_ok(t, B(0xc4, 0xe2, 0x70, 0xf3, 0xd2));
	assert_int_equal(g[EMUL_RCX], 0xffffffff);
	assert_int_equal(t->r.rflags & (CF | ZF | SF), CF | SF);
	g[EMUL_RDI] = 0x10;
	run_ok(t, B(0xc4, 0xe2, 0x48, 0xf3, 0xcf));
	assert_int_equal(g[EMUL_RSI], 0);
	assert_int_equal(t->r.rflags & (CF | ZF), ZF);
	/* bzhi eax, ebx, ecx */
	g[EMUL_RBX] = 0xffffffff;
	g[EMUL_RCX] = 0x105; /* only bits 7:0 count */
	run_ok(t, B(0xc4, 0xe2, 0x70, 0xf5, 0xc3));
	assert_int_equal(g[EMUL_RAX], 0x1f);
	assert_int_equal(t->r.rflags & CF, 0);
	g[EMUL_RCX] = 40; /* index >= 32: unchanged, CF */
	run_ok(t, B(0xc4, 0xe2, 0x70, 0xf5, 0xc3));
	assert_int_equal(g[EMUL_RAX], 0xffffffff);
	assert_int_equal(t->r.rflags & (CF | SF), CF | SF);
	/* mulx r8, r9, r10 = rdx * r10 -> r8:r9; flags untouched */
	t->r.rflags = 0x2 | ARITH;
	g[EMUL_RDX] = 0xffffffffffffffffULL;
	g[10] = 2;
	run_ok(t, B(0xc4, 0x42, 0xb3, 0xf6, 0xc2));
	assert_int_equal(g[8], 1);
	assert_int_equal(g[9], 0xfffffffffffffffeULL);
	assert_int_equal(t->r.rflags, 0x2 | ARITH);
	g[EMUL_RBX] = 3; /* mulx rax, rax, rbx: same destination, the high half wins */
	run_ok(t, B(0xc4, 0xe2, 0xfb, 0xf6, 0xc3));
	assert_int_equal(g[EMUL_RAX], 2);
	/* pdep / pext */
	g[EMUL_RBX] = 0x5;
	g[EMUL_RCX] = 0xf0;
	run_ok(t, B(0xc4, 0xe2, 0x63, 0xf5, 0xc1)); /* pdep eax, ebx, ecx */
	assert_int_equal(g[EMUL_RAX], 0x50);
	g[EMUL_RBX] = 0xa5;
	run_ok(t, B(0xc4, 0xe2, 0x62, 0xf5, 0xc1)); /* pext eax, ebx, ecx */
	assert_int_equal(g[EMUL_RAX], 0xa);
	/* rorx eax, ebx, 33 masks the count to 1 */
	g[EMUL_RBX] = 0x3;
	run_ok(t, B(0xc4, 0xe3, 0x7b, 0xf0, 0xc3, 0x21));
	assert_int_equal(g[EMUL_RAX], 0x80000001);
	assert_int_equal(t->res.len, 6);
	/* sarx / shlx / shrx eax, ebx, ecx (count masked to 5 bits) */
	g[EMUL_RBX] = 0x80000000;
	g[EMUL_RCX] = 36;
	run_ok(t, B(0xc4, 0xe2, 0x72, 0xf7, 0xc3));
	assert_int_equal(g[EMUL_RAX], 0xf8000000);
	run_ok(t, B(0xc4, 0xe2, 0x73, 0xf7, 0xc3));
	assert_int_equal(g[EMUL_RAX], 0x08000000);
	g[EMUL_RBX] = 0x1;
	run_ok(t, B(0xc4, 0xe2, 0x71, 0xf7, 0xc3));
	assert_int_equal(g[EMUL_RAX], 0x10);
	assert_int_equal(t->r.rflags, 0x2 | ARITH);
	/* Memory operand: andn rax, rbx, [rsi] */
	g[EMUL_RSI] = 0x1100;
	g[EMUL_RBX] = 0xff;
	memset(t->f.mem, 0xff, 8);
	run_ok(t, B(0xc4, 0xe2, 0xe0, 0xf2, 0x06));
	assert_int_equal(g[EMUL_RAX], 0xffffffffffffff00ULL);
	free(t);
}

static void test_vex_rules(void **state)
{
	(void)state;
	struct tc *t = tc_new(EMUL_MODE_64);
	run_fault(t, B(0xc4, 0xe2, 0x64, 0xf2, 0xc1), EMUL_INJECT_UD);	     /* VEX.L=1 */
	run_fault(t, B(0x66, 0xc4, 0xe2, 0x60, 0xf2, 0xc1), EMUL_INJECT_UD); /* 66 before VEX */
	run_fault(t, B(0xf3, 0xc4, 0xe2, 0x60, 0xf2, 0xc1), EMUL_INJECT_UD);
	run_fault(t, B(0x48, 0xc4, 0xe2, 0x60, 0xf2, 0xc1), EMUL_INJECT_UD); /* REX before VEX */
	run_fault(t, B(0xf0, 0xc4, 0xe2, 0x60, 0xf2, 0xc1), EMUL_INJECT_UD); /* LOCK */
	run_fault(t, B(0xc4, 0xe3, 0x73, 0xf0, 0xc3, 0x05), EMUL_INJECT_UD); /* rorx, vvvv used */
	t->env.features &= ~EMUL_F_BMI1;
	run_fault(t, B(0xc4, 0xe2, 0x60, 0xf2, 0xc1), EMUL_INJECT_UD);
	t->env.features &= ~EMUL_F_BMI2;
	run_fault(t, B(0xc4, 0xe2, 0x63, 0xf6, 0xc1), EMUL_INJECT_UD);
	/* VEX encodings we do not know (AVX) are not ours to judge. */
	run_enotsup(t, B(0xc5, 0xf9, 0xef, 0xc0));	 /* vpxor */
	run_enotsup(t, B(0xc4, 0xe2, 0x61, 0xf5, 0xc1)); /* VEX.66.0F38 F5 */
	run_enotsup(t, B(0xc4, 0xe2, 0x78, 0xf3, 0xe3)); /* F3 group, /4 */
	run_enotsup(t, B(0xc4, 0xe4, 0x60, 0xf2, 0xc1)); /* map 4 */
	/* 32-bit mode: W ignored (32-bit operation), high vvvv bit ignored. */
	t->env.mode = EMUL_MODE_PROT32;
	t->env.features = ~0u;
	t->r.gpr[EMUL_RAX] = 0;
	t->r.gpr[EMUL_RBX] = 0xffffffffffffffffULL;
	t->r.gpr[EMUL_RCX] = 40;
	run_ok(t, B(0xc4, 0xe2, 0xf0, 0xf5, 0xc3)); /* bzhi with W=1 */
	assert_int_equal(t->r.gpr[EMUL_RAX], 0xffffffff);
	assert_int_equal(t->r.rflags & CF, CF);
	run_ok(t, B(0xc4, 0xe2, 0x30, 0xf5, 0xc3)); /* vvvv = 1001b -> ecx (bit 3 ignored) */
	assert_int_equal(t->r.gpr[EMUL_RAX], 0xffffffff);
	/* Outside 64-bit mode, C4/C5 with mod != 3 are LES/LDS: not ours. */
	run_enotsup(t, B(0xc4, 0x22, 0x60, 0xf2, 0xc1));
	run_enotsup(t, B(0xc5, 0x06));
	t->env.mode = EMUL_MODE_16;
	run_enotsup(t, B(0xc4, 0xe2, 0x60, 0xf2, 0xc1));
	free(t);
}

static void test_prefix_rejects(void **state)
{
	(void)state;
	struct tc *t = tc_new(EMUL_MODE_64);
	run_fault(t, B(0xf0, 0xf3, 0x0f, 0xb8, 0xc3), EMUL_INJECT_UD); /* LOCK popcnt */
	run_enotsup(t, B(0xf2, 0xf3, 0x0f, 0xb8, 0xc3));	       /* F2 and F3 */
	run_enotsup(t, B(0x0f, 0xb8, 0xc3));			       /* jmpe/no F3 */
	run_enotsup(t, B(0x0f, 0x0b));				       /* ud2: not ours */
	run_enotsup(t, B(0x90));
	run_enotsup(t, B(0x66, 0x0f, 0xae, 0x16));		 /* 66 ldmxcsr: unknown */
	run_fault(t, B(0x0f, 0x38, 0xf0, 0xc3), EMUL_INJECT_UD); /* movbe register form */
	run_fault(t, B(0x48, 0x0f, 0xc7, 0xc8), EMUL_INJECT_UD); /* cmpxchg16b register form */
	run_enotsup(t, B(0x0f, 0xae, 0xd0));			 /* 0F AE /2 mod=3 */
	/* Length: 11 prefixes + 4 bytes = 15 is fine, one more is not. */
	uint8_t b[16];
	memset(b, 0x3e, sizeof(b));
	memcpy(b + 11, (const uint8_t[]){0xf3, 0x0f, 0xb8, 0xc3}, 4);
	run_ok(t, b, 15);
	memset(b, 0x3e, sizeof(b));
	memcpy(b + 12, (const uint8_t[]){0xf3, 0x0f, 0xb8, 0xc3}, 4);
	run_enotsup(t, b, 16);
	/* 32-bit mode: 0x48 is DEC, not REX; 16-bit addressing (67) is not supported. */
	t->env.mode = EMUL_MODE_PROT32;
	run_enotsup(t, B(0xf3, 0x48, 0x0f, 0xb8, 0xc3));
	run_enotsup(t, B(0x67, 0xf3, 0x0f, 0xb8, 0x04));
	t->r.gpr[EMUL_RBX] = 0xff;
	run_ok(t, B(0x67, 0xf3, 0x0f, 0xb8, 0xc3)); /* no memory operand: fine */
	assert_int_equal(t->r.gpr[EMUL_RAX], 8);
	free(t);
}

static void test_addressing(void **state)
{
	(void)state;
	struct tc *t = tc_new(EMUL_MODE_64);
	uint64_t *g = t->r.gpr;
	/* RIP-relative: next RIP (0x1009) + 0x100. */
	memset(t->f.mem + 9, 0xff, 8);
	run_ok(t, B(0xf3, 0x48, 0x0f, 0xb8, 0x05, 0x00, 0x01, 0x00, 0x00));
	assert_int_equal(t->f.last_gva, 0x1109);
	assert_int_equal(g[EMUL_RAX], 64);
	t->r.rip = 0x1210; /* negative displacement: 0x1219 - 0x110 */
	run_ok(t, B(0xf3, 0x48, 0x0f, 0xb8, 0x05, 0xf0, 0xfe, 0xff, 0xff));
	assert_int_equal(t->f.last_gva, 0x1109);
	t->r.rip = 0x100001000ULL; /* 67: EIP-relative, truncated to 32 bits */
	run_ok(t, B(0x67, 0xf3, 0x0f, 0xb8, 0x05, 0x00, 0x01, 0x00, 0x00));
	assert_int_equal(t->f.last_gva, 0x1109);
	/* SIB: [rsi + rcx*8 + 0x10] into r11 */
	g[EMUL_RSI] = 0x1000;
	g[EMUL_RCX] = 0x1e;
	run_ok(t, B(0xf3, 0x4c, 0x0f, 0xb8, 0x5c, 0xce, 0x10));
	assert_int_equal(t->f.last_gva, 0x1100);
	/* SIB without base: [rcx*8 + 0x1000] */
	g[EMUL_RCX] = 0x20;
	run_ok(t, B(0xf3, 0x48, 0x0f, 0xb8, 0x04, 0xcd, 0x00, 0x10, 0x00, 0x00));
	assert_int_equal(t->f.last_gva, 0x1100);
	/* [r13 + 0] needs a displacement; [r12] needs a SIB */
	g[13] = 0x1108;
	run_ok(t, B(0xf3, 0x49, 0x0f, 0xb8, 0x45, 0x00));
	assert_int_equal(t->f.last_gva, 0x1108);
	g[12] = 0x1110;
	run_ok(t, B(0xf3, 0x49, 0x0f, 0xb8, 0x04, 0x24));
	assert_int_equal(t->f.last_gva, 0x1110);
	/* SIB index r12 (REX.X), no index encoding 100 without REX.X */
	g[EMUL_RSI] = 0x1100;
	g[12] = 2;
	run_ok(t, B(0xf3, 0x4a, 0x0f, 0xb8, 0x04, 0xa6)); /* [rsi + r12*4] */
	assert_int_equal(t->f.last_gva, 0x1108);
	run_ok(t, B(0xf3, 0x48, 0x0f, 0xb8, 0x04, 0xa6)); /* [rsi] (index none) */
	assert_int_equal(t->f.last_gva, 0x1100);
	/* 64-bit: FS/GS bases apply, others are flat even when the base is set */
	t->env.seg_base[EMUL_FS] = 0x1000;
	t->env.seg_base[EMUL_DS] = 0x5000;
	t->env.seg_base[EMUL_ES] = 0x5000;
	g[EMUL_RSI] = 0x100;
	run_ok(t, B(0x64, 0xf3, 0x48, 0x0f, 0xb8, 0x06));
	assert_int_equal(t->f.last_gva, 0x1100);
	g[EMUL_RSI] = 0x1100;
	run_ok(t, B(0x26, 0xf3, 0x48, 0x0f, 0xb8, 0x06));
	assert_int_equal(t->f.last_gva, 0x1100);
	g[EMUL_RSI] = 0x1100 - 0x70;
	t->env.seg_base[EMUL_GS] = 0x70;
	run_ok(t, B(0x65, 0xf3, 0x48, 0x0f, 0xb8, 0x06));
	assert_int_equal(t->f.last_gva, 0x1100);
	/* 32-bit: DS base applies, SS for [ebp], addresses wrap at 4 GiB, disp32 absolute */
	t->env.mode = EMUL_MODE_PROT32;
	t->env.seg_base[EMUL_DS] = 0xfffff000;
	t->env.seg_base[EMUL_SS] = 0x1000;
	g[EMUL_RSI] = 0x2100;
	run_ok(t, B(0xf3, 0x0f, 0xb8, 0x06));
	assert_int_equal(t->f.last_gva, 0x1100);
	g[EMUL_RBP] = 0x100;
	run_ok(t, B(0xf3, 0x0f, 0xb8, 0x45, 0x00));
	assert_int_equal(t->f.last_gva, 0x1100);
	assert_int_equal(run(t, B(0x3e, 0xf3, 0x0f, 0xb8, 0x45, 0x00)), -EFAULT); /* DS override */
	assert_int_equal(t->f.last_gva, 0xfffff100);
	t->env.seg_base[EMUL_DS] = 0;
	run_ok(t, B(0xf3, 0x0f, 0xb8, 0x05, 0x08, 0x11, 0x00, 0x00));
	assert_int_equal(t->f.last_gva, 0x1108);
	/* 16-bit code: 16-bit operands, 67 gives 32-bit addressing, 16-bit addressing rejected */
	t->env.mode = EMUL_MODE_16;
	t->env.seg_base[EMUL_DS] = 0x1000;
	g[EMUL_RAX] = 0xffffffff;
	g[EMUL_RBX] = 0x10001;
	run_ok(t, B(0xf3, 0x0f, 0xb8, 0xc3));
	assert_int_equal(g[EMUL_RAX], 0xffff0001);
	run_ok(t, B(0x66, 0xf3, 0x0f, 0xb8, 0xc3));
	assert_int_equal(g[EMUL_RAX], 2);
	g[EMUL_RSI] = 0x100;
	run_ok(t, B(0x67, 0xf3, 0x0f, 0xb8, 0x06));
	assert_int_equal(t->f.last_gva, 0x1100);
	run_enotsup(t, B(0xf3, 0x0f, 0xb8, 0x04));
	t->r.rip = 0xffff;
	run_ok(t, B(0x9b));
	assert_int_equal(t->r.rip, 0);
	/* A failing memory access changes nothing. */
	t->env.mode = EMUL_MODE_64;
	g[EMUL_RSI] = 0x9000;
	struct emul_regs before = t->r;
	assert_int_equal(run(t, B(0xf3, 0x48, 0x0f, 0xb8, 0x06)), -EFAULT);
	assert_memory_equal(&before, &t->r, sizeof(before));
	free(t);
}

static void test_movbe_crc32_adx(void **state)
{
	(void)state;
	struct tc *t = tc_new(EMUL_MODE_64);
	uint64_t *g = t->r.gpr;
	g[EMUL_RSI] = 0x1100;
	memcpy(t->f.mem, (const uint8_t[]){0x11, 0x22, 0x33, 0x44}, 4);
	g[EMUL_RAX] = ~0ULL;
	run_ok(t, B(0x0f, 0x38, 0xf0, 0x06)); /* movbe eax, [rsi] */
	assert_int_equal(g[EMUL_RAX], 0x11223344);
	g[EMUL_RCX] = 0xaaaaaaaaaaaaaaaaULL;
	run_ok(t, B(0x66, 0x0f, 0x38, 0xf0, 0x0e)); /* movbe cx, [rsi] */
	assert_int_equal(g[EMUL_RCX], 0xaaaaaaaaaaaa1122ULL);
	g[EMUL_RAX] = 0x0102030405060708ULL;
	run_ok(t, B(0x48, 0x0f, 0x38, 0xf1, 0x46, 0x08)); /* movbe [rsi+8], rax */
	assert_memory_equal(t->f.mem + 8, ((const uint8_t[]){1, 2, 3, 4, 5, 6, 7, 8}), 8);
	assert_int_equal(t->f.writes, 1);
	t->env.features &= ~EMUL_F_MOVBE;
	run_fault(t, B(0x0f, 0x38, 0xf0, 0x06), EMUL_INJECT_UD);
	/* crc32: the CRC-32C check value of "123456789" is 0xe3069283 */
	memcpy(t->f.mem, "123456789", 9);
	g[EMUL_RAX] = 0xffffffff;
	for (unsigned i = 0; i < 9; i++) {
		g[EMUL_RSI] = 0x1100 + i;
		run_ok(t, B(0xf2, 0x0f, 0x38, 0xf0, 0x06)); /* crc32 eax, byte [rsi] */
	}
	assert_int_equal(~(uint32_t)g[EMUL_RAX], 0xe3069283);
	/* Same data in one 8-byte + one 1-byte step, 64-bit destination */
	g[EMUL_RAX] = 0xffffffff;
	g[EMUL_RSI] = 0x1100;
	run_ok(t, B(0xf2, 0x48, 0x0f, 0x38, 0xf1, 0x06));
	g[EMUL_RSI] = 0x1108;
	run_ok(t, B(0xf2, 0x48, 0x0f, 0x38, 0xf0, 0x06));
	assert_int_equal(~(uint32_t)g[EMUL_RAX], 0xe3069283);
	assert_int_equal(g[EMUL_RAX] >> 32, 0);
	/* crc32 eax, bh uses AH..BH without REX, SIL with REX */
	g[EMUL_RAX] = 0;
	g[EMUL_RBX] = 0x3100;
	g[EMUL_RSI] = 0x31;
	run_ok(t, B(0xf2, 0x0f, 0x38, 0xf0, 0xc7));
	uint64_t via_bh = g[EMUL_RAX];
	g[EMUL_RAX] = 0;
	run_ok(t, B(0xf2, 0x40, 0x0f, 0x38, 0xf0, 0xc6));
	assert_int_equal(g[EMUL_RAX], via_bh);
	assert_int_not_equal(via_bh, 0);
	/* adcx: CF only; adox: OF only */
	g[EMUL_RAX] = 0xffffffff;
	g[EMUL_RBX] = 0;
	t->r.rflags = 0x2 | CF | ZF;
	run_ok(t, B(0x66, 0x0f, 0x38, 0xf6, 0xc3));
	assert_int_equal(g[EMUL_RAX], 0);
	assert_int_equal(t->r.rflags, 0x2 | CF | ZF);
	g[8] = ~0ULL;
	g[9] = 1;
	t->r.rflags = 0x2;
	run_ok(t, B(0xf3, 0x4d, 0x0f, 0x38, 0xf6, 0xc1)); /* adox r8, r9 */
	assert_int_equal(g[8], 0);
	assert_int_equal(t->r.rflags, 0x2 | OF);
	run_ok(t, B(0xf3, 0x4d, 0x0f, 0x38, 0xf6, 0xc1)); /* 0 + 1 + OF */
	assert_int_equal(g[8], 2);
	assert_int_equal(t->r.rflags, 0x2);
	run_enotsup(t, B(0x66, 0xf3, 0x0f, 0x38, 0xf6, 0xc3)); /* adox has no 16-bit form */
	free(t);
}

static void test_system(void **state)
{
	(void)state;
	struct tc *t = tc_new(EMUL_MODE_64);
	uint64_t *g = t->r.gpr;
	t->f.xcr0 = 0x2000000007ULL;
	g[EMUL_RAX] = g[EMUL_RDX] = ~0ULL;
	g[EMUL_RCX] = 0;
	run_ok(t, B(0x0f, 0x01, 0xd0)); /* xgetbv */
	assert_int_equal(g[EMUL_RAX], 7);
	assert_int_equal(g[EMUL_RDX], 0x20);
	g[EMUL_RCX] = 5;
	run_fault(t, B(0x0f, 0x01, 0xd0), EMUL_INJECT_GP);
	g[EMUL_RCX] = 1;
	run_enotsup(t, B(0x0f, 0x01, 0xd0));
	t->env.cr4 &= ~0x40000ULL;
	run_fault(t, B(0x0f, 0x01, 0xd0), EMUL_INJECT_UD);
	/* rdtscp */
	t->f.tsc = 0x123456789abcULL;
	t->f.tsc_aux = 0xfeedface00000003ULL;
	run_ok(t, B(0x0f, 0x01, 0xf9));
	assert_int_equal(g[EMUL_RAX], 0x56789abc);
	assert_int_equal(g[EMUL_RDX], 0x1234);
	assert_int_equal(g[EMUL_RCX], 3);
	t->env.cr4 |= 4; /* TSD: CPL 0 is fine, CPL 3 faults */
	run_ok(t, B(0x0f, 0x01, 0xf9));
	t->env.cpl = 3;
	run_fault(t, B(0x0f, 0x01, 0xf9), EMUL_INJECT_GP);
	t->env.features &= ~EMUL_F_RDTSCP;
	t->env.cpl = 0;
	run_fault(t, B(0x0f, 0x01, 0xf9), EMUL_INJECT_UD);
	/* rdrand / rdseed */
	t->f.rnd = 0x1122334455667788ULL;
	t->r.rflags = 0x2 | ZF | SF;
	run_ok(t, B(0x48, 0x0f, 0xc7, 0xf0)); /* rdrand rax */
	assert_int_equal(g[EMUL_RAX], 0x1122334455667788ULL);
	assert_int_equal(t->r.rflags, 0x2 | CF);
	run_ok(t, B(0x66, 0x0f, 0xc7, 0xf9)); /* rdseed cx */
	assert_int_equal(g[EMUL_RCX] & 0xffff, 0x7788);
	t->f.rnd_err = -EAGAIN;		/* none available: CF=0, destination 0 */
	run_ok(t, B(0x0f, 0xc7, 0xf3)); /* rdrand ebx */
	assert_int_equal(g[EMUL_RBX], 0);
	assert_int_equal(t->r.rflags, 0x2);
	t->f.rnd_err = -EIO;
	struct emul_regs before = t->r;
	assert_int_equal(run(t, B(0x0f, 0xc7, 0xf3)), -EIO);
	assert_memory_equal(&before, &t->r, sizeof(before));
	free(t);
}

static void test_clac_stac(void **state)
{
	(void)state;
	struct tc *t = tc_new(EMUL_MODE_64);
	t->env.features |= EMUL_F_SMAP;
	t->r.rflags = 0x2 | 0x40000 | CF;
	run_ok(t, B(0x0f, 0x01, 0xca)); /* clac */
	assert_int_equal(t->r.rflags, 0x2 | CF);
	run_ok(t, B(0x0f, 0x01, 0xcb)); /* stac */
	assert_int_equal(t->r.rflags, 0x2 | CF | 0x40000);
	t->env.cpl = 3;
	run_fault(t, B(0x0f, 0x01, 0xca), EMUL_INJECT_UD);
	t->env.cpl = 0;
	t->env.features &= ~EMUL_F_SMAP;
	run_fault(t, B(0x0f, 0x01, 0xcb), EMUL_INJECT_UD);
	free(t);
}

static void test_cmpxchg(void **state)
{
	(void)state;
	struct tc *t = tc_new(EMUL_MODE_64);
	uint64_t *g = t->r.gpr;
	uint64_t m[2] = {0x1111, 0x2222};
	memcpy(t->f.mem, m, 16);
	g[EMUL_RSI] = 0x1100;
	g[EMUL_RAX] = 0x1111, g[EMUL_RDX] = 0x2222, g[EMUL_RBX] = 0xaaaa, g[EMUL_RCX] = 0xbbbb;
	run_ok(t, B(0xf0, 0x48, 0x0f, 0xc7, 0x0e)); /* lock cmpxchg16b [rsi]: equal */
	assert_int_equal(t->res.kind, EMUL_K_CMPXCHG16B);
	assert_int_equal(t->r.rflags & ZF, ZF);
	memcpy(m, t->f.mem, 16);
	assert_int_equal(m[0], 0xaaaa);
	assert_int_equal(m[1], 0xbbbb);
	run_ok(t, B(0x48, 0x0f, 0xc7, 0x0e)); /* not equal: loads rdx:rax */
	assert_int_equal(t->r.rflags & ZF, 0);
	assert_int_equal(g[EMUL_RAX], 0xaaaa);
	assert_int_equal(g[EMUL_RDX], 0xbbbb);
	g[EMUL_RSI] = 0x1108; /* misaligned: #GP(0) */
	run_fault(t, B(0x48, 0x0f, 0xc7, 0x0e), EMUL_INJECT_GP);
	t->env.features &= ~EMUL_F_CX16;
	g[EMUL_RSI] = 0x1100;
	run_fault(t, B(0x48, 0x0f, 0xc7, 0x0e), EMUL_INJECT_UD);
	/* cmpxchg8b in 32-bit mode: edx:eax vs m64, misalignment allowed */
	t->env.mode = EMUL_MODE_PROT32;
	uint64_t v = 0x0000000500000004ULL;
	memcpy(t->f.mem + 4, &v, 8);
	g[EMUL_RSI] = 0x1104;
	g[EMUL_RAX] = 4, g[EMUL_RDX] = 6, g[EMUL_RBX] = 1, g[EMUL_RCX] = 2;
	run_ok(t, B(0x0f, 0xc7, 0x0e));
	assert_int_equal(t->res.kind, EMUL_K_CMPXCHG8B);
	assert_int_equal(g[EMUL_RDX], 5);
	run_ok(t, B(0x0f, 0xc7, 0x0e));
	memcpy(&v, t->f.mem + 4, 8);
	assert_int_equal(v, 0x0000000200000001ULL);
	t->env.cmpxchg = NULL;
	run_enotsup(t, B(0x0f, 0xc7, 0x0e));
	free(t);
}

static void test_x87_sse(void **state)
{
	(void)state;
	struct tc *t = tc_new(EMUL_MODE_64);
	uint64_t *g = t->r.gpr;
	g[EMUL_RSI] = 0x1100;
	t->f.fsw = 0x38a5;
	t->f.fcw = 0x037f;
	g[EMUL_RAX] = 0x1234567890abcdefULL;
	run_ok(t, B(0xdf, 0xe0)); /* fnstsw ax */
	assert_int_equal(g[EMUL_RAX], 0x1234567890ab38a5ULL);
	run_ok(t, B(0xdd, 0x3e)); /* fnstsw [rsi] */
	assert_int_equal(t->f.mem[0] | t->f.mem[1] << 8, 0x38a5);
	run_ok(t, B(0xd9, 0x3e)); /* fnstcw [rsi] */
	assert_int_equal(t->f.mem[0] | t->f.mem[1] << 8, 0x037f);
	t->f.mem[0] = 0x72, t->f.mem[1] = 0x02;
	run_ok(t, B(0xd9, 0x2e)); /* fldcw [rsi] */
	assert_int_equal(t->f.fcw, 0x0272);
	run_ok(t, B(0xdb, 0xe2)); /* fnclex */
	assert_int_equal(t->f.fsw, 0x3800);
	t->env.cr0 |= 8; /* TS: #NM for x87 */
	run_fault(t, B(0xdf, 0xe0), EMUL_INJECT_NM);
	run_fault(t, B(0x0f, 0xae, 0x16), EMUL_INJECT_NM);
	t->env.cr0 &= ~8ULL;
	/* ldmxcsr / stmxcsr */
	memcpy(t->f.mem, &(uint32_t){0x1fa0}, 4);
	run_ok(t, B(0x0f, 0xae, 0x16));
	assert_int_equal(t->f.mxcsr, 0x1fa0);
	t->f.mxcsr = 0x1f80;
	run_ok(t, B(0x0f, 0xae, 0x1e));
	assert_int_equal(t->f.mem[0] | t->f.mem[1] << 8, 0x1f80);
	unsigned sets = t->f.sys_sets;
	memcpy(t->f.mem, &(uint32_t){0x10000}, 4);
	run_fault(t, B(0x0f, 0xae, 0x16), EMUL_INJECT_GP); /* reserved bit */
	assert_int_equal(t->f.sys_sets, sets);
	t->env.cr4 &= ~0x200ULL; /* OSFXSR clear */
	run_fault(t, B(0x0f, 0xae, 0x16), EMUL_INJECT_UD);
	/* clwb: nothing to do, no memory access */
	unsigned reads = t->f.reads;
	run_ok(t, B(0x66, 0x0f, 0xae, 0x36));
	assert_int_equal(t->f.reads, reads);
	free(t);
}

static void test_mode_and_names(void **state)
{
	(void)state;
	assert_int_equal(emul_mode_from_cpu(false, false, false, false), EMUL_MODE_16);
	assert_int_equal(emul_mode_from_cpu(true, false, false, true), EMUL_MODE_PROT32);
	assert_int_equal(emul_mode_from_cpu(true, true, false, true), EMUL_MODE_COMPAT32);
	assert_int_equal(emul_mode_from_cpu(true, true, true, false), EMUL_MODE_64);
	assert_int_equal(emul_mode_from_cpu(true, false, false, false), EMUL_MODE_16);
	assert_string_equal(emul_kind_name(EMUL_K_POPCNT), "popcnt");
	assert_string_equal(emul_kind_name(EMUL_K_CLWB), "clwb");
	assert_string_equal(emul_kind_name(EMUL_K_COUNT), "?");
}

static void *stats_thread(void *arg)
{
	for (int i = 0; i < 100000; i++)
		emul_stats_add(arg, EMUL_K_POPCNT);
	return NULL;
}

static void test_stats(void **state)
{
	(void)state;
	struct emul_stats st;
	char buf[256], small[16];
	pthread_t th[4];
	memset(&st, 0, sizeof(st));
	int n = emul_stats_format(&st, buf, sizeof(buf));
	assert_string_equal(buf, "emulated: injected=0 failed=0");
	assert_int_equal(n, (int)strlen(buf));
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, stats_thread, &st), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	emul_stats_add(&st, EMUL_K_FWAIT);
	emul_stats_add(&st, EMUL_K_COUNT); /* ignored */
	emul_stats_fail(&st);
	n = emul_stats_format(&st, buf, sizeof(buf));
	assert_string_equal(buf, "emulated: fwait=1 popcnt=400000 injected=0 failed=1");
	assert_int_equal(n, (int)strlen(buf));
	assert_int_equal(emul_stats_format(&st, small, sizeof(small)), n); /* truncated */
	assert_string_equal(small, "emulated: fwait");
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fwait_int3),
		cmocka_unit_test(test_popcnt),
		cmocka_unit_test(test_lzcnt_tzcnt),
		cmocka_unit_test(test_bmi),
		cmocka_unit_test(test_vex_rules),
		cmocka_unit_test(test_prefix_rejects),
		cmocka_unit_test(test_addressing),
		cmocka_unit_test(test_movbe_crc32_adx),
		cmocka_unit_test(test_system),
		cmocka_unit_test(test_clac_stac),
		cmocka_unit_test(test_cmpxchg),
		cmocka_unit_test(test_x87_sse),
		cmocka_unit_test(test_mode_and_names),
		cmocka_unit_test(test_stats),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
