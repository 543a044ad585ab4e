/* SPDX-License-Identifier: MIT */
/*
 * Fakes for the instruction emulator's unit tests: one window of fake guest memory at a
 * chosen linear address (accesses outside it fail with -EFAULT and are counted), fixed
 * system registers, and access recorders.
 */
#ifndef VIREO_TESTS_EMUL_FAKE_H
#define VIREO_TESTS_EMUL_FAKE_H

#include "kvm/emulate.h"

#include <errno.h>
#include <string.h>

#define FAKE_MEM 4096u

struct fake {
	uint64_t base; /* linear address of mem[0] */
	uint8_t mem[FAKE_MEM];
	unsigned reads, writes, cmpxchgs, faults; /* reads: attempts; writes, cmpxchgs: done */
	uint64_t last_gva;
	unsigned last_len;
	uint64_t xcr0, tsc, tsc_aux, fcw, fsw, mxcsr, rnd;
	int rnd_err;
	unsigned sys_gets, sys_sets;
};

static inline uint8_t *fake_at(struct fake *f, uint64_t gva, unsigned len)
{
	f->last_gva = gva;
	f->last_len = len;
	if (gva < f->base || gva - f->base > FAKE_MEM - len) {
		f->faults++;
		return NULL;
	}
	return f->mem + (gva - f->base);
}

static inline int fake_read(void *ctx, uint64_t gva, void *buf, unsigned len)
{
	struct fake *f = ctx;
	f->reads++;
	uint8_t *p = fake_at(f, gva, len);
	if (!p)
		return -EFAULT;
	memcpy(buf, p, len);
	return 0;
}

static inline int fake_write(void *ctx, uint64_t gva, const void *buf, unsigned len)
{
	struct fake *f = ctx;
	uint8_t *p = fake_at(f, gva, len);
	if (!p)
		return -EFAULT;
	f->writes++; /* successful writes only */
	memcpy(p, buf, len);
	return 0;
}

static inline int fake_cmpxchg(void *ctx, uint64_t gva, void *expected, const void *desired,
			       unsigned len)
{
	struct fake *f = ctx;
	uint8_t *p = fake_at(f, gva, len);
	if (!p)
		return -EFAULT;
	f->cmpxchgs++; /* successful ones only */
	if (memcmp(p, expected, len) == 0) {
		memcpy(p, desired, len);
		return 1;
	}
	memcpy(expected, p, len);
	return 0;
}

static inline int fake_sysreg(void *ctx, enum emul_sysreg reg, bool set, uint64_t *v)
{
	struct fake *f = ctx;
	uint64_t *slot = NULL;
	switch (reg) {
	case EMUL_SYS_XCR0:
		slot = &f->xcr0;
		break;
	case EMUL_SYS_TSC:
		slot = &f->tsc;
		break;
	case EMUL_SYS_TSC_AUX:
		slot = &f->tsc_aux;
		break;
	case EMUL_SYS_FCW:
		slot = &f->fcw;
		break;
	case EMUL_SYS_FSW:
		slot = &f->fsw;
		break;
	case EMUL_SYS_MXCSR:
		slot = &f->mxcsr;
		break;
	case EMUL_SYS_RDRAND:
	case EMUL_SYS_RDSEED:
		f->sys_gets++;
		*v = f->rnd;
		return f->rnd_err;
	}
	if (set) {
		f->sys_sets++;
		*slot = *v;
	} else {
		f->sys_gets++;
		*v = *slot;
	}
	return 0;
}

#define CR0_TEST 0x80000033ULL /* PG NE ET MP PE */
#define CR4_TEST 0x40220ULL    /* OSXSAVE OSFXSR PAE */

static inline void fake_env(struct emul_env *e, struct fake *f, enum emul_mode mode)
{
	memset(e, 0, sizeof(*e));
	e->mode = mode;
	e->features = ~0u;
	e->cr0 = CR0_TEST;
	e->cr4 = CR4_TEST;
	e->ctx = f;
	e->read = fake_read;
	e->write = fake_write;
	e->cmpxchg = fake_cmpxchg;
	e->sysreg = fake_sysreg;
}

/* xorshift64: a fixed-seed generator for the randomized tests. */
static inline uint64_t xrand(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

#endif
