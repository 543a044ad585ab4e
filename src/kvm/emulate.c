/* SPDX-License-Identifier: MIT */
/*
 * The decoder and the entry points of the instruction emulator (see emulate.h for the
 * contract): prefixes, REX, VEX, ModRM/SIB/displacement, immediate, then a table lookup
 * (emulate_insn.c). An instruction function works on a copy of the registers; emul_run()
 * commits the copy only when the function succeeded, so a failure never changes registers.
 */
#include "kvm/emulate_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* clang-format off */
static const char *const kind_names[] = {
#define EMUL_KIND_NAME(e, s) s,
	EMUL_KINDS(EMUL_KIND_NAME)
#undef EMUL_KIND_NAME
};
/* clang-format on */

const char *emul_kind_name(enum emul_kind k)
{
	return (unsigned)k < ARRAY_SIZE(kind_names) ? kind_names[k] : "?";
}

enum emul_mode emul_mode_from_cpu(bool cr0_pe, bool efer_lma, bool cs_l, bool cs_db)
{
	if (!cr0_pe)
		return EMUL_MODE_16;
	if (efer_lma && cs_l)
		return EMUL_MODE_64;
	if (!cs_db)
		return EMUL_MODE_16;
	return efer_lma ? EMUL_MODE_COMPAT32 : EMUL_MODE_PROT32;
}

/* ---- decoder ---- */

struct dstate {
	const uint8_t *b;
	unsigned n, i;
	enum emul_mode mode;
};

static int next(struct dstate *s, uint8_t *out)
{
	if (s->i >= s->n)	 /* n <= 15 */
		return -ENOTSUP; /* truncated, or longer than the architectural 15 bytes */
	*out = s->b[s->i++];
	return 0;
}

static int next_disp(struct dstate *s, unsigned bytes, int64_t *out)
{
	uint32_t v = 0;
	uint8_t x;
	for (unsigned k = 0; k < bytes; k++) {
		if (next(s, &x))
			return -ENOTSUP;
		v |= (uint32_t)x << (8 * k);
	}
	*out = bytes == 1 ? (int8_t)v : (int32_t)v;
	return 0;
}

/* ModRM, SIB and displacement. rex: the R/X/B bits (bit 2..0) from REX or VEX. */
static int decode_modrm(struct dstate *s, struct emul_insn *d, unsigned rex, uint8_t *modrm)
{
	uint8_t m, sib;
	if (next(s, &m))
		return -ENOTSUP;
	*modrm = m;
	unsigned mod = m >> 6, rm = m & 7;
	d->reg = (uint8_t)(((m >> 3) & 7) | ((rex & 4) << 1));
	d->base = d->index = -1;
	if (mod == 3) {
		d->rm = (uint8_t)(rm | ((rex & 1) << 3));
		return 0;
	}
	d->mem = true;
	if (d->asize == 2)
		return -ENOTSUP; /* 16-bit addressing: not needed by any guest we care about */
	d->seg = EMUL_DS;
	if (rm == 4) {
		if (next(s, &sib))
			return -ENOTSUP;
		unsigned idx = ((sib >> 3) & 7) | ((rex & 2) << 2), base = sib & 7;
		d->scale = sib >> 6;
		if (idx != 4)
			d->index = (int8_t)idx;
		if (base == 5 && mod == 0) {
			if (next_disp(s, 4, &d->disp))
				return -ENOTSUP;
		} else {
			d->base = (int8_t)(base | ((rex & 1) << 3));
		}
	} else if (rm == 5 && mod == 0) {
		d->riprel = s->mode == EMUL_MODE_64; /* else a plain disp32 */
		if (next_disp(s, 4, &d->disp))
			return -ENOTSUP;
	} else {
		d->base = (int8_t)(rm | ((rex & 1) << 3));
	}
	if (d->base == EMUL_RSP || d->base == EMUL_RBP)
		d->seg = EMUL_SS;
	if (mod == 1 || mod == 2) {
		int64_t disp;
		if (next_disp(s, mod == 1 ? 1 : 4, &disp))
			return -ENOTSUP;
		d->disp = disp;
	}
	return 0;
}

static bool pfx_match(const struct emul_op *e, bool vex, unsigned key)
{
	if (e->flags & F_ANYPFX)
		return true;
	if (!vex && e->pfx == P_NP)
		return key == P_NP || (key == P_66 && !(e->flags & F_NO66));
	return e->pfx == key;
}

static const struct emul_op *lookup(bool vex, unsigned map, uint8_t op, unsigned key, uint8_t modrm,
				    bool mem)
{
	for (size_t k = 0; k < emul_optab_len; k++) {
		const struct emul_op *e = &emul_optab[k];
		if (e->vex != vex || e->map != map || e->op != op || !pfx_match(e, vex, key))
			continue;
		if (e->digit >= 0 && e->digit != ((modrm >> 3) & 7))
			continue;
		if (e->rm >= 0 && e->rm != (modrm & 7))
			continue;
		if (((e->flags & F_MEM) && !mem) || ((e->flags & F_REG) && mem))
			continue;
		return e;
	}
	return NULL;
}

static bool has_modrm(bool vex, unsigned map, uint8_t op, bool *known)
{
	*known = false;
	for (size_t k = 0; k < emul_optab_len; k++) {
		if (emul_optab[k].vex == vex && emul_optab[k].map == map &&
		    emul_optab[k].op == op) {
			*known = true;
			return !(emul_optab[k].flags & F_NOMODRM);
		}
	}
	return false;
}

/* VEX prefix (C4/C5 already consumed): fills rex bits, map, pp, vvvv, W, L. */
static int decode_vex(struct dstate *s, uint8_t c4c5, unsigned *rex, unsigned *map, unsigned *pp,
		      unsigned *vvvv, bool *w, bool *l)
{
	uint8_t b1, b2;
	if (next(s, &b1))
		return -ENOTSUP;
	if (c4c5 == 0xc5) {
		*rex = (b1 & 0x80) ? 0 : 4;
		*map = 1;
		*w = false;
		b2 = b1;
	} else {
		if (next(s, &b2))
			return -ENOTSUP;
		*rex = ((~b1 >> 5) & 7);
		*map = b1 & 0x1f;
		*w = b2 & 0x80;
	}
	*vvvv = (~b2 >> 3) & 15;
	*l = b2 & 4;
	*pp = b2 & 3;
	if (s->mode != EMUL_MODE_64) { /* no REX bits, 8 registers, W ignored by BMI */
		*rex = 0;
		*vvvv &= 7;
		*w = false;
	}
	return *map >= 1 && *map <= 3 ? 0 : -ENOTSUP;
}

int emul_decode(const uint8_t *bytes, unsigned len, enum emul_mode mode, struct emul_insn *d)
{
	struct dstate s = {.b = bytes, .n = MIN(len, (unsigned)EMUL_MAX_INSN), .mode = mode};
	const bool m64 = mode == EMUL_MODE_64, m16 = mode == EMUL_MODE_16;
	bool p66 = false, p67 = false, f2 = false, f3 = false, vex = false, w = false, l = false;
	unsigned rex = 0, map = 0, pp = 0, vvvv = 0, rexbits;
	int seg = -1, r;
	uint8_t op, modrm = 0;

	memset(d, 0, sizeof(*d));
	d->base = d->index = -1;
	for (;;) { /* legacy prefixes, then an optional REX right before the opcode */
		if (next(&s, &op))
			return -ENOTSUP;
		if (op == 0x66)
			p66 = true;
		else if (op == 0x67)
			p67 = true;
		else if (op == 0xf0)
			d->lock = true;
		else if (op == 0xf2)
			f2 = true;
		else if (op == 0xf3)
			f3 = true;
		else if (op == 0x26 || op == 0x2e || op == 0x36 || op == 0x3e)
			seg = (op >> 3) & 3;
		else if (op == 0x64 || op == 0x65)
			seg = op == 0x64 ? EMUL_FS : EMUL_GS;
		else if (m64 && (op & 0xf0) == 0x40) {
			rex = op;
			continue;
		} else
			break;
		rex = 0; /* a REX followed by a legacy prefix is ignored */
	}
	rexbits = rex & 7;
	if (op == 0x0f) {
		map = 1;
		if (next(&s, &op))
			return -ENOTSUP;
		if (op == 0x38 || op == 0x3a) {
			map = op == 0x38 ? 2 : 3;
			if (next(&s, &op))
				return -ENOTSUP;
		}
	} else if ((op == 0xc4 || op == 0xc5) && !m16) {
		/* Outside 64-bit mode C4/C5 are LES/LDS unless the next byte looks like mod=3. */
		if (!m64 && (s.i >= s.n || (s.b[s.i] & 0xc0) != 0xc0))
			return -ENOTSUP;
		vex = true;
		r = decode_vex(&s, op, &rexbits, &map, &pp, &vvvv, &w, &l);
		if (r || next(&s, &op))
			return -ENOTSUP;
	}

	bool known;
	bool modrm_present = has_modrm(vex, map, op, &known);
	if (!known)
		return -ENOTSUP;
	d->asize = m64 ? (p67 ? 4 : 8) : (m16 != p67 ? 2 : 4);
	if (modrm_present) {
		r = decode_modrm(&s, d, rexbits, &modrm);
		if (r)
			return r;
	}
	if (!vex && f2 && f3)
		return -ENOTSUP;
	unsigned key = vex ? pp : f3 ? P_F3 : f2 ? P_F2 : p66 ? P_66 : P_NP;
	const struct emul_op *e = lookup(vex, map, op, key, modrm, d->mem);
	if (!e)
		return -ENOTSUP;
	if ((e->flags & F_IMM8) && next(&s, &d->imm))
		return -ENOTSUP;

	d->len = (uint8_t)s.i;
	d->op = op;
	d->map = (uint8_t)map;
	d->vex = vex;
	d->vexl = l;
	d->vreg = (uint8_t)vvvv;
	d->rex = rex != 0;
	d->rexw = (rex & 8) || w;
	if (seg >= 0 && d->mem)
		d->seg = (uint8_t)seg;
	if (d->rexw)
		d->osize = 8;
	else if (p66 && !vex && e->pfx != P_66 && !(e->flags & F_ANYPFX))
		d->osize = m16 ? 4 : 2;
	else
		d->osize = m16 ? 2 : 4;
	d->kind = (enum emul_kind)e->kind;
	d->need = e->need;
	d->entry = e;
	if (d->kind == EMUL_K_CMPXCHG8B && d->rexw) {
		d->kind = EMUL_K_CMPXCHG16B;
		d->need = EMUL_F_CX16;
	}
	/* Encodings that are #UD whatever the state (Intel SDM, per instruction). */
	if (vex && (l || p66 || f2 || f3 || rex || d->lock))
		return EMUL_INJECT_UD;
	if ((e->flags & F_NOVVVV) && vvvv)
		return EMUL_INJECT_UD;
	if ((e->flags & F_MEMUD) && !d->mem)
		return EMUL_INJECT_UD;
	if (d->lock && (!(e->flags & F_LOCK) || !d->mem))
		return EMUL_INJECT_UD;
	return 0;
}

/* ---- entry points ---- */

int emul_run(const uint8_t *bytes, unsigned len, const struct emul_env *env, struct emul_regs *regs,
	     struct emul_result *res)
{
	struct emul_insn d;
	int r = emul_decode(bytes, len, env->mode, &d);
	if (r < 0)
		return r;
	res->kind = d.kind;
	res->len = d.len;
	if (r == 0 && (d.need & ~env->features))
		r = EMUL_INJECT_UD;
	if (r > 0) {
		res->action = (enum emul_action)r;
		return 0;
	}
	struct emul_ctx c = {.env = env, .d = &d, .r = *regs};
	r = ((const struct emul_op *)d.entry)->exec(&c);
	if (r < 0)
		return r;
	res->action = (enum emul_action)r;
	if (r == EMUL_DONE || r == EMUL_INJECT_BP) {
		uint64_t rip = regs->rip + d.len;
		if (env->mode == EMUL_MODE_16)
			rip &= 0xffff;
		else if (env->mode != EMUL_MODE_64)
			rip = (uint32_t)rip;
		c.r.rip = rip;
		*regs = c.r;
	}
	return 0;
}

void emul_stats_add(struct emul_stats *st, enum emul_kind k)
{
	if ((unsigned)k < EMUL_K_COUNT)
		__atomic_fetch_add(&st->done[k], 1, __ATOMIC_RELAXED);
}

void emul_stats_fail(struct emul_stats *st)
{
	__atomic_fetch_add(&st->failed, 1, __ATOMIC_RELAXED);
}

static void PRINTF_FMT(4, 5) append(char *buf, size_t size, size_t *used, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + MIN(*used, size), *used < size ? size - *used : 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		*used += (size_t)n;
}

int emul_stats_format(const struct emul_stats *st, char *buf, size_t size)
{
	size_t used = 0;
	append(buf, size, &used, "emulated:");
	for (unsigned k = 0; k < EMUL_K_COUNT; k++) {
		uint64_t v = __atomic_load_n(&st->done[k], __ATOMIC_RELAXED);
		if (v)
			append(buf, size, &used, " %s=%llu", kind_names[k], (unsigned long long)v);
	}
	append(buf, size, &used, " injected=%llu failed=%llu",
	       (unsigned long long)__atomic_load_n(&st->injected, __ATOMIC_RELAXED),
	       (unsigned long long)__atomic_load_n(&st->failed, __ATOMIC_RELAXED));
	return (int)MIN(used, (size_t)INT32_MAX);
}
