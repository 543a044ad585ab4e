/* SPDX-License-Identifier: MIT */
/*
 * The emulator against the host CPU: each instruction's exact bytes run natively (copied
 * between a register-loading prologue and a register-saving epilogue into an executable
 * page) and in the emulator, from the same random registers and flags (fixed seed), and the
 * results must agree: every GPR but RSP, the flags the SDM defines, and memory. Memory
 * operands point at a host buffer; the emulator's fake memory maps the same addresses to
 * a copy. Instructions the host lacks are skipped (with a message).
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
#include "kvm/emulate_vcpu.h"

#define CF 0x001ULL
#define PF 0x004ULL
#define AF 0x010ULL
#define ZF 0x040ULL
#define SF 0x080ULL
#define OF 0x800ULL
#define ARITH (CF | PF | AF | ZF | SF | OF)

/* void fn(struct emul_regs *r): load r (not RSP), run the instruction, store r back.
 * Offsets: gpr[i] at 8*i, rip 0x80, rflags 0x88. */
__asm__(".pushsection .rodata\n"
	"emul_host_pre:\n"
	"push %rbx\n push %rbp\n push %r12\n push %r13\n push %r14\n push %r15\n"
	"push %rdi\n"
	"mov 0x00(%rdi), %rax\n mov 0x08(%rdi), %rcx\n mov 0x10(%rdi), %rdx\n"
	"mov 0x18(%rdi), %rbx\n mov 0x28(%rdi), %rbp\n mov 0x30(%rdi), %rsi\n"
	"mov 0x40(%rdi), %r8\n mov 0x48(%rdi), %r9\n mov 0x50(%rdi), %r10\n"
	"mov 0x58(%rdi), %r11\n mov 0x60(%rdi), %r12\n mov 0x68(%rdi), %r13\n"
	"mov 0x70(%rdi), %r14\n mov 0x78(%rdi), %r15\n"
	"pushq 0x88(%rdi)\n popfq\n"
	"mov 0x38(%rdi), %rdi\n"
	"emul_host_pre_end:\n"
	"emul_host_post:\n"
	"pushfq\n push %rdi\n mov 0x10(%rsp), %rdi\n"
	"popq 0x38(%rdi)\n popq 0x88(%rdi)\n"
	"mov %rax, 0x00(%rdi)\n mov %rcx, 0x08(%rdi)\n mov %rdx, 0x10(%rdi)\n"
	"mov %rbx, 0x18(%rdi)\n mov %rbp, 0x28(%rdi)\n mov %rsi, 0x30(%rdi)\n"
	"mov %r8, 0x40(%rdi)\n mov %r9, 0x48(%rdi)\n mov %r10, 0x50(%rdi)\n"
	"mov %r11, 0x58(%rdi)\n mov %r12, 0x60(%rdi)\n mov %r13, 0x68(%rdi)\n"
	"mov %r14, 0x70(%rdi)\n mov %r15, 0x78(%rdi)\n"
	"pop %rdi\n pop %r15\n pop %r14\n pop %r13\n pop %r12\n pop %rbp\n pop %rbx\n"
	"cld\n ret\n"
	"emul_host_post_end:\n"
	".popsection\n");
extern const uint8_t emul_host_pre[], emul_host_pre_end[], emul_host_post[], emul_host_post_end[];

_Static_assert(offsetof(struct emul_regs, rflags) == 0x88, "trampoline offsets");

struct vec {
	const char *name;
	uint8_t b[12];
	unsigned n;
	uint32_t need;
	uint64_t flags; /* flags the SDM defines (others are not compared) */
	bool mem;	/* RSI points at the buffer, RCX is a small index */
};

#define V(name, need, flags, mem, ...)                                                             \
	{                                                                                          \
		name, {__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}), need, flags, mem      \
	}
#define BLS (SF | ZF | CF | OF)
static const struct vec vecs[] = {
    V("popcnt eax,ebx", EMUL_F_POPCNT, ARITH, false, 0xf3, 0x0f, 0xb8, 0xc3),
    V("popcnt rax,r9", EMUL_F_POPCNT, ARITH, false, 0xf3, 0x49, 0x0f, 0xb8, 0xc1),
    V("popcnt r10w,cx", EMUL_F_POPCNT, ARITH, false, 0x66, 0xf3, 0x44, 0x0f, 0xb8, 0xd1),
    V("popcnt r11,[rsi+rcx*8+16]", EMUL_F_POPCNT, ARITH, true, 0xf3, 0x4c, 0x0f, 0xb8, 0x5c, 0xce,
      0x10),
    V("lzcnt eax,ebx", EMUL_F_LZCNT, CF | ZF, false, 0xf3, 0x0f, 0xbd, 0xc3),
    V("lzcnt rax,r9", EMUL_F_LZCNT, CF | ZF, false, 0xf3, 0x49, 0x0f, 0xbd, 0xc1),
    V("lzcnt cx,dx", EMUL_F_LZCNT, CF | ZF, false, 0x66, 0xf3, 0x0f, 0xbd, 0xca),
    V("tzcnt eax,ebx", EMUL_F_BMI1, CF | ZF, false, 0xf3, 0x0f, 0xbc, 0xc3),
    V("tzcnt r12,r13", EMUL_F_BMI1, CF | ZF, false, 0xf3, 0x4d, 0x0f, 0xbc, 0xe5),
    V("tzcnt cx,dx", EMUL_F_BMI1, CF | ZF, false, 0x66, 0xf3, 0x0f, 0xbc, 0xca),
    V("andn eax,ebx,ecx", EMUL_F_BMI1, BLS, false, 0xc4, 0xe2, 0x60, 0xf2, 0xc1),
    V("andn r8,r9,r10", EMUL_F_BMI1, BLS, false, 0xc4, 0x42, 0xb0, 0xf2, 0xc2),
    V("andn rax,rbx,[rsi]", EMUL_F_BMI1, BLS, true, 0xc4, 0xe2, 0xe0, 0xf2, 0x06),
    V("bextr eax,ebx,ecx", EMUL_F_BMI1, ZF | CF | OF, false, 0xc4, 0xe2, 0x70, 0xf7, 0xc3),
    V("bextr r8,r9,r10", EMUL_F_BMI1, ZF | CF | OF, false, 0xc4, 0x42, 0xa8, 0xf7, 0xc1),
    V("blsi eax,ebx", EMUL_F_BMI1, BLS, false, 0xc4, 0xe2, 0x78, 0xf3, 0xdb),
    V("blsi r8,r9", EMUL_F_BMI1, BLS, false, 0xc4, 0xc2, 0xb8, 0xf3, 0xd9),
    V("blsmsk ecx,edx", EMUL_F_BMI1, BLS, false, 0xc4, 0xe2, 0x70, 0xf3, 0xd2),
    V("blsmsk r10,r11", EMUL_F_BMI1, BLS, false, 0xc4, 0xc2, 0xa8, 0xf3, 0xd3),
    V("blsr esi,edi", EMUL_F_BMI1, BLS, false, 0xc4, 0xe2, 0x48, 0xf3, 0xcf),
    V("blsr r12,r13", EMUL_F_BMI1, BLS, false, 0xc4, 0xc2, 0x98, 0xf3, 0xcd),
    V("bzhi eax,ebx,ecx", EMUL_F_BMI2, BLS, false, 0xc4, 0xe2, 0x70, 0xf5, 0xc3),
    V("bzhi r8,r9,r10", EMUL_F_BMI2, BLS, false, 0xc4, 0x42, 0xa8, 0xf5, 0xc1),
    V("mulx eax,ebx,ecx", EMUL_F_BMI2, ARITH, false, 0xc4, 0xe2, 0x63, 0xf6, 0xc1),
    V("mulx r8,r9,r10", EMUL_F_BMI2, ARITH, false, 0xc4, 0x42, 0xb3, 0xf6, 0xc2),
    V("mulx rax,rax,rbx", EMUL_F_BMI2, ARITH, false, 0xc4, 0xe2, 0xfb, 0xf6, 0xc3),
    V("pdep eax,ebx,ecx", EMUL_F_BMI2, ARITH, false, 0xc4, 0xe2, 0x63, 0xf5, 0xc1),
    V("pdep r8,r9,r10", EMUL_F_BMI2, ARITH, false, 0xc4, 0x42, 0xb3, 0xf5, 0xc2),
    V("pext eax,ebx,ecx", EMUL_F_BMI2, ARITH, false, 0xc4, 0xe2, 0x62, 0xf5, 0xc1),
    V("pext r8,r9,r10", EMUL_F_BMI2, ARITH, false, 0xc4, 0x42, 0xb2, 0xf5, 0xc2),
    V("rorx eax,ebx,5", EMUL_F_BMI2, ARITH, false, 0xc4, 0xe3, 0x7b, 0xf0, 0xc3, 0x05),
    V("rorx r8,r9,63", EMUL_F_BMI2, ARITH, false, 0xc4, 0x43, 0xfb, 0xf0, 0xc1, 0x3f),
    V("rorx eax,ebx,33", EMUL_F_BMI2, ARITH, false, 0xc4, 0xe3, 0x7b, 0xf0, 0xc3, 0x21),
    V("sarx eax,ebx,ecx", EMUL_F_BMI2, ARITH, false, 0xc4, 0xe2, 0x72, 0xf7, 0xc3),
    V("sarx r8,r9,r10", EMUL_F_BMI2, ARITH, false, 0xc4, 0x42, 0xaa, 0xf7, 0xc1),
    V("shlx eax,ebx,ecx", EMUL_F_BMI2, ARITH, false, 0xc4, 0xe2, 0x71, 0xf7, 0xc3),
    V("shlx r8,r9,r10", EMUL_F_BMI2, ARITH, false, 0xc4, 0x42, 0xa9, 0xf7, 0xc1),
    V("shrx eax,ebx,ecx", EMUL_F_BMI2, ARITH, false, 0xc4, 0xe2, 0x73, 0xf7, 0xc3),
    V("shrx r8,r9,r10", EMUL_F_BMI2, ARITH, false, 0xc4, 0x42, 0xab, 0xf7, 0xc1),
    V("crc32 eax,bl", EMUL_F_SSE42, ARITH, false, 0xf2, 0x0f, 0x38, 0xf0, 0xc3),
    V("crc32 eax,bx", EMUL_F_SSE42, ARITH, false, 0x66, 0xf2, 0x0f, 0x38, 0xf1, 0xc3),
    V("crc32 eax,ebx", EMUL_F_SSE42, ARITH, false, 0xf2, 0x0f, 0x38, 0xf1, 0xc3),
    V("crc32 rax,rbx", EMUL_F_SSE42, ARITH, false, 0xf2, 0x48, 0x0f, 0x38, 0xf1, 0xc3),
    V("crc32 eax,sil", EMUL_F_SSE42, ARITH, false, 0xf2, 0x40, 0x0f, 0x38, 0xf0, 0xc6),
    V("crc32 eax,bh", EMUL_F_SSE42, ARITH, false, 0xf2, 0x0f, 0x38, 0xf0, 0xc7),
    V("crc32 rax,byte [rsi]", EMUL_F_SSE42, ARITH, true, 0xf2, 0x48, 0x0f, 0x38, 0xf0, 0x06),
    V("adcx eax,ebx", EMUL_F_ADX, ARITH, false, 0x66, 0x0f, 0x38, 0xf6, 0xc3),
    V("adcx r8,r9", EMUL_F_ADX, ARITH, false, 0x66, 0x4d, 0x0f, 0x38, 0xf6, 0xc1),
    V("adox eax,ebx", EMUL_F_ADX, ARITH, false, 0xf3, 0x0f, 0x38, 0xf6, 0xc3),
    V("adox r8,r9", EMUL_F_ADX, ARITH, false, 0xf3, 0x4d, 0x0f, 0x38, 0xf6, 0xc1),
    V("movbe eax,[rsi]", EMUL_F_MOVBE, ARITH, true, 0x0f, 0x38, 0xf0, 0x06),
    V("movbe [rsi+8],rax", EMUL_F_MOVBE, ARITH, true, 0x48, 0x0f, 0x38, 0xf1, 0x46, 0x08),
    V("movbe cx,[rsi+2]", EMUL_F_MOVBE, ARITH, true, 0x66, 0x0f, 0x38, 0xf0, 0x4e, 0x02),
    V("movbe r9,[rsi]", EMUL_F_MOVBE, ARITH, true, 0x4c, 0x0f, 0x38, 0xf0, 0x0e),
};

/* Plain bsr/bsf (not emulated: KVM knows them), the reference for the fallback test. */
static const struct vec plain_scan[] = {
    V("bsr rax,r9", 0, ZF, false, 0x49, 0x0f, 0xbd, 0xc1),
    V("bsf eax,ebx", 0, ZF, false, 0x0f, 0xbc, 0xc3),
};

#define BUF 256

struct host {
	uint8_t *page;
	size_t page_size;
	uint8_t hostbuf[BUF] __attribute__((aligned(64)));
	struct fake f;
};

static int host_setup(void **state)
{
	struct host *h = calloc(1, sizeof(*h));
	if (!h)
		return -1;
	h->page_size = (size_t)sysconf(_SC_PAGESIZE);
	h->page =
	    mmap(NULL, h->page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (h->page == MAP_FAILED) {
		free(h);
		return -1;
	}
	*state = h;
	return 0;
}

static int host_teardown(void **state)
{
	struct host *h = *state;
	munmap(h->page, h->page_size);
	free(h);
	return 0;
}

typedef void (*host_fn)(struct emul_regs *r);

/* Build prologue + bytes + epilogue; returns the callable page. */
static host_fn host_build(struct host *h, const uint8_t *b, unsigned n)
{
	size_t pre = (size_t)(emul_host_pre_end - emul_host_pre);
	size_t post = (size_t)(emul_host_post_end - emul_host_post);
	assert_int_equal(mprotect(h->page, h->page_size, PROT_READ | PROT_WRITE), 0);
	memcpy(h->page, emul_host_pre, pre);
	memcpy(h->page + pre, b, n);
	memcpy(h->page + pre + n, emul_host_post, post);
	assert_int_equal(mprotect(h->page, h->page_size, PROT_READ | PROT_EXEC), 0);
	host_fn fn;
	void *p = h->page;
	memcpy(&fn, &p, sizeof(fn));
	return fn;
}

static uint64_t pick(uint64_t *seed)
{
	uint64_t x = xrand(seed);
	switch (x % 8) {
	case 0:
		return 0;
	case 1:
		return ~0ULL;
	case 2:
		return 1ULL << (xrand(seed) % 64);
	case 3:
		return xrand(seed) % 80; /* shift counts, indexes */
	case 4:
		return xrand(seed) & 0x3f3f; /* bextr controls */
	case 5:
		return (uint32_t)xrand(seed); /* upper half zero */
	case 6:
		return xrand(seed) | 0x8000000000000000ULL; /* sign set */
	default:
		return xrand(seed);
	}
}

static unsigned compare_one(struct host *h, const struct vec *v, uint64_t *seed, uint32_t features)
{
	struct emul_regs init, hw, em;
	struct emul_env env;
	struct emul_result res;
	unsigned bad = 0;
	memset(&init, 0, sizeof(init));
	for (int i = 0; i < 16; i++)
		init.gpr[i] = pick(seed);
	init.gpr[EMUL_RSP] = 0;
	init.rflags = 0x202 | (xrand(seed) & ARITH);
	init.rip = 0x400000;
	if (v->mem) {
		init.gpr[EMUL_RSI] = (uint64_t)(uintptr_t)h->hostbuf;
		init.gpr[EMUL_RCX] = xrand(seed) % 8;
	}
	for (unsigned i = 0; i < BUF; i++)
		h->hostbuf[i] = (uint8_t)xrand(seed);
	h->f.base = (uint64_t)(uintptr_t)h->hostbuf;
	memcpy(h->f.mem, h->hostbuf, BUF);

	hw = init;
	host_build(h, v->b, v->n)(&hw);
	em = init;
	fake_env(&env, &h->f, EMUL_MODE_64);
	env.features = features;
	assert_int_equal(emul_run(v->b, v->n, &env, &em, &res), 0);
	assert_int_equal(res.action, EMUL_DONE);
	assert_int_equal(em.rip, init.rip + v->n);
	for (int i = 0; i < 16; i++) {
		if (i != EMUL_RSP && hw.gpr[i] != em.gpr[i]) {
			print_message("%s: gpr%d hw %#llx emul %#llx\n", v->name, i,
				      (unsigned long long)hw.gpr[i], (unsigned long long)em.gpr[i]);
			bad++;
		}
	}
	if ((hw.rflags ^ em.rflags) & v->flags) {
		print_message("%s: flags hw %#llx emul %#llx (in %#llx)\n", v->name,
			      (unsigned long long)hw.rflags, (unsigned long long)em.rflags,
			      (unsigned long long)init.rflags);
		bad++;
	}
	if (memcmp(h->hostbuf, h->f.mem, BUF)) {
		print_message("%s: memory differs\n", v->name);
		bad++;
	}
	return bad;
}

static void test_against_host(void **state)
{
	struct host *h = *state;
	uint32_t host = emul_host_features();
	uint64_t seed = 0x243f6a8885a308d3ULL;
	unsigned run = 0, bad = 0;
	for (size_t i = 0; i < ARRAY_SIZE(vecs); i++) {
		if ((vecs[i].need & host) != vecs[i].need) {
			print_message("skipped (host lacks it): %s\n", vecs[i].name);
			continue;
		}
		for (int k = 0; k < 3000 && bad < 20; k++, run++)
			bad += compare_one(h, &vecs[i], &seed, host);
	}
	print_message("host comparison: %u runs, %u mismatches\n", run, bad);
	assert_int_equal(bad, 0);
	assert_true(run > 0);
}

/* Without ABM/BMI1, F3 0F BD/BC are bsr/bsf: compare with the host's plain bsr/bsf. */
static void test_fallback_vs_host(void **state)
{
	struct host *h = *state;
	uint64_t seed = 0x13198a2e03707344ULL;
	static const uint8_t lz[] = {0xf3, 0x49, 0x0f, 0xbd, 0xc1}, tz[] = {0xf3, 0x0f, 0xbc, 0xc3};
	for (int k = 0; k < 2000; k++) {
		for (int which = 0; which < 2; which++) {
			const struct vec *plain = &plain_scan[which];
			struct emul_regs init, hw, em;
			struct emul_env env;
			struct emul_result res;
			memset(&init, 0, sizeof(init));
			for (int i = 0; i < 16; i++)
				init.gpr[i] = pick(&seed);
			init.gpr[EMUL_RSP] = 0;
			init.rflags = 0x202 | (xrand(&seed) & ARITH);
			hw = em = init;
			host_build(h, plain->b, plain->n)(&hw);
			fake_env(&env, &h->f, EMUL_MODE_64);
			env.features = emul_host_features() & ~(EMUL_F_LZCNT | EMUL_F_BMI1);
			assert_int_equal(emul_run(which ? tz : lz, which ? 4 : 5, &env, &em, &res),
					 0);
			/* bsf/bsr with a zero source: destination unchanged on the CPUs we know. */
			assert_memory_equal(hw.gpr, em.gpr, sizeof(hw.gpr));
			assert_int_equal(hw.rflags & ZF, em.rflags & ZF);
		}
	}
}

static void test_host_features(void **state)
{
	(void)state;
	uint32_t f = emul_host_features();
	__builtin_cpu_init();
	assert_int_equal(!!(f & EMUL_F_POPCNT), !!__builtin_cpu_supports("popcnt"));
	assert_int_equal(!!(f & EMUL_F_BMI1), !!__builtin_cpu_supports("bmi"));
	assert_int_equal(!!(f & EMUL_F_BMI2), !!__builtin_cpu_supports("bmi2"));
	assert_int_equal(!!(f & EMUL_F_SSE42), !!__builtin_cpu_supports("sse4.2"));
	assert_int_equal(f, emul_host_features()); /* cached */
	print_message("host features: %#x\n", f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_host_features),
	    cmocka_unit_test(test_against_host),
	    cmocka_unit_test(test_fallback_vs_host),
	};
	return cmocka_run_group_tests(tests, host_setup, host_teardown);
}
