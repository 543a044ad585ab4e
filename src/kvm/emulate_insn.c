/* SPDX-License-Identifier: MIT */
/*
 * The emulator's opcode table and one small function per instruction (see emulate.h).
 * Every function returns an enum emul_action or -errno and only touches the register copy
 * in struct emul_ctx until it returns; memory and system state are written last.
 */
#include "kvm/emulate_internal.h"

#include <errno.h>

#define FL_CF 0x001ULL
#define FL_PF 0x004ULL
#define FL_AF 0x010ULL
#define FL_ZF 0x040ULL
#define FL_SF 0x080ULL
#define FL_OF 0x800ULL
#define FL_AC 0x40000ULL
#define FL_ARITH (FL_CF | FL_PF | FL_AF | FL_ZF | FL_SF | FL_OF)

#define CR0_MP (1ULL << 1)
#define CR0_EM (1ULL << 2)
#define CR0_TS (1ULL << 3)
#define CR4_TSD (1ULL << 2)
#define CR4_OSFXSR (1ULL << 9)
#define CR4_OSXSAVE (1ULL << 18)

/* ---- the opcode table (instruction functions are defined below) ---- */
/* clang-format off */
#define EXEC(name) static int x_##name(struct emul_ctx *c)
EXEC(fwait); EXEC(int3); EXEC(popcnt); EXEC(lzcnt); EXEC(tzcnt); EXEC(andn); EXEC(bextr);
EXEC(blsi); EXEC(blsmsk); EXEC(blsr); EXEC(bzhi); EXEC(mulx); EXEC(pdep); EXEC(pext);
EXEC(rorx); EXEC(sarx); EXEC(shlx); EXEC(shrx); EXEC(movbe); EXEC(crc32); EXEC(adcx);
EXEC(adox); EXEC(xgetbv); EXEC(rdtscp); EXEC(rdrand); EXEC(rdseed); EXEC(cmpxchg8b);
EXEC(fnstsw); EXEC(fnstcw); EXEC(fldcw); EXEC(fnclex); EXEC(ldmxcsr); EXEC(stmxcsr);
EXEC(clwb); EXEC(clac); EXEC(stac);

#define K(x) EMUL_K_##x
const struct emul_op emul_optab[] = {
	/* vex map op   pfx   digit rm  flags               kind          need */
	{0, 0, 0x9b, P_NP, -1, -1, F_NOMODRM | F_ANYPFX, K(FWAIT), 0, x_fwait},
	{0, 0, 0xcc, P_NP, -1, -1, F_NOMODRM | F_ANYPFX, K(INT3), 0, x_int3},
	{0, 0, 0xd9, P_NP, 7, -1, F_MEM, K(FNSTCW), 0, x_fnstcw},
	{0, 0, 0xd9, P_NP, 5, -1, F_MEM, K(FLDCW), 0, x_fldcw},
	{0, 0, 0xdb, P_NP, 4, 2, F_REG, K(FNCLEX), 0, x_fnclex},
	{0, 0, 0xdd, P_NP, 7, -1, F_MEM, K(FNSTSW), 0, x_fnstsw},
	{0, 0, 0xdf, P_NP, 4, 0, F_REG, K(FNSTSW), 0, x_fnstsw},
	{0, 1, 0x01, P_NP, 2, 0, F_REG | F_NO66, K(XGETBV), EMUL_F_XSAVE, x_xgetbv},
	{0, 1, 0x01, P_NP, 7, 1, F_REG | F_NO66, K(RDTSCP), EMUL_F_RDTSCP, x_rdtscp},
	{0, 1, 0x01, P_NP, 1, 2, F_REG | F_NO66, K(CLAC), EMUL_F_SMAP, x_clac},
	{0, 1, 0x01, P_NP, 1, 3, F_REG | F_NO66, K(STAC), EMUL_F_SMAP, x_stac},
	{0, 1, 0xae, P_NP, 2, -1, F_MEM | F_NO66, K(LDMXCSR), EMUL_F_SSE, x_ldmxcsr},
	{0, 1, 0xae, P_NP, 3, -1, F_MEM | F_NO66, K(STMXCSR), EMUL_F_SSE, x_stmxcsr},
	{0, 1, 0xae, P_66, 6, -1, F_MEM, K(CLWB), EMUL_F_CLWB, x_clwb},
	{0, 1, 0xb8, P_F3, -1, -1, 0, K(POPCNT), EMUL_F_POPCNT, x_popcnt},
	{0, 1, 0xbc, P_F3, -1, -1, 0, K(TZCNT), 0, x_tzcnt}, /* bsf without BMI1 */
	{0, 1, 0xbd, P_F3, -1, -1, 0, K(LZCNT), 0, x_lzcnt}, /* bsr without ABM */
	{0, 1, 0xc7, P_NP, 1, -1, F_MEMUD | F_LOCK, K(CMPXCHG8B), 0, x_cmpxchg8b},
	{0, 1, 0xc7, P_NP, 6, -1, F_REG, K(RDRAND), EMUL_F_RDRAND, x_rdrand},
	{0, 1, 0xc7, P_NP, 7, -1, F_REG, K(RDSEED), EMUL_F_RDSEED, x_rdseed},
	{0, 2, 0xf0, P_NP, -1, -1, F_MEMUD, K(MOVBE), EMUL_F_MOVBE, x_movbe},
	{0, 2, 0xf1, P_NP, -1, -1, F_MEMUD, K(MOVBE), EMUL_F_MOVBE, x_movbe},
	{0, 2, 0xf0, P_F2, -1, -1, F_BYTE, K(CRC32), EMUL_F_SSE42, x_crc32},
	{0, 2, 0xf1, P_F2, -1, -1, 0, K(CRC32), EMUL_F_SSE42, x_crc32},
	{0, 2, 0xf6, P_66, -1, -1, 0, K(ADCX), EMUL_F_ADX, x_adcx},
	{0, 2, 0xf6, P_F3, -1, -1, 0, K(ADOX), EMUL_F_ADX, x_adox},
	{1, 2, 0xf2, P_NP, -1, -1, 0, K(ANDN), EMUL_F_BMI1, x_andn},
	{1, 2, 0xf3, P_NP, 1, -1, 0, K(BLSR), EMUL_F_BMI1, x_blsr},
	{1, 2, 0xf3, P_NP, 2, -1, 0, K(BLSMSK), EMUL_F_BMI1, x_blsmsk},
	{1, 2, 0xf3, P_NP, 3, -1, 0, K(BLSI), EMUL_F_BMI1, x_blsi},
	{1, 2, 0xf5, P_NP, -1, -1, 0, K(BZHI), EMUL_F_BMI2, x_bzhi},
	{1, 2, 0xf5, P_F2, -1, -1, 0, K(PDEP), EMUL_F_BMI2, x_pdep},
	{1, 2, 0xf5, P_F3, -1, -1, 0, K(PEXT), EMUL_F_BMI2, x_pext},
	{1, 2, 0xf6, P_F2, -1, -1, 0, K(MULX), EMUL_F_BMI2, x_mulx},
	{1, 2, 0xf7, P_NP, -1, -1, 0, K(BEXTR), EMUL_F_BMI1, x_bextr},
	{1, 2, 0xf7, P_66, -1, -1, 0, K(SHLX), EMUL_F_BMI2, x_shlx},
	{1, 2, 0xf7, P_F3, -1, -1, 0, K(SARX), EMUL_F_BMI2, x_sarx},
	{1, 2, 0xf7, P_F2, -1, -1, 0, K(SHRX), EMUL_F_BMI2, x_shrx},
	{1, 3, 0xf0, P_F2, -1, -1, F_IMM8 | F_NOVVVV, K(RORX), EMUL_F_BMI2, x_rorx},
};
#undef K
/* clang-format on */

const size_t emul_optab_len = ARRAY_SIZE(emul_optab);

/* ---- operand helpers ---- */

static uint64_t szmask(unsigned size)
{
	return size >= 8 ? ~0ULL : (1ULL << (size * 8)) - 1;
}

static uint64_t reg_get(const struct emul_ctx *c, unsigned reg, unsigned size)
{
	if (size == 1 && !c->d->rex && reg >= 4 && reg < 8) /* AH, CH, DH, BH */
		return (c->r.gpr[reg - 4] >> 8) & 0xff;
	return c->r.gpr[reg & 15] & szmask(size);
}

/* 32-bit writes zero-extend; 16-bit writes keep the upper bits (x86 rules). */
static void reg_set(struct emul_ctx *c, unsigned reg, unsigned size, uint64_t v)
{
	uint64_t *p = &c->r.gpr[reg & 15];
	if (size == 8)
		*p = v;
	else if (size == 4)
		*p = (uint32_t)v;
	else
		*p = (*p & ~szmask(size)) | (v & szmask(size));
}

static void flags_set(struct emul_ctx *c, uint64_t mask, uint64_t val)
{
	c->r.rflags = (c->r.rflags & ~mask) | (val & mask);
}

/* ZF and SF of a result of size bytes. */
static uint64_t fl_zs(uint64_t v, unsigned size)
{
	return (v ? 0 : FL_ZF) | (((v >> (size * 8 - 1)) & 1) ? FL_SF : 0);
}

/* Linear address of the memory operand. */
static uint64_t linear(const struct emul_ctx *c)
{
	const struct emul_insn *d = c->d;
	uint64_t a = (uint64_t)d->disp;
	if (d->base >= 0)
		a += c->r.gpr[d->base];
	if (d->index >= 0)
		a += c->r.gpr[d->index] << d->scale;
	if (d->riprel)
		a += c->r.rip + d->len; /* relative to the next instruction */
	if (d->asize == 4)
		a = (uint32_t)a;
	if (c->env->mode == EMUL_MODE_64)
		return d->seg == EMUL_FS || d->seg == EMUL_GS ? a + c->env->seg_base[d->seg] : a;
	return (uint32_t)(a + c->env->seg_base[d->seg]);
}

static uint64_t le_get(const uint8_t *p, unsigned len)
{
	uint64_t v = 0;
	for (unsigned k = 0; k < len; k++)
		v |= (uint64_t)p[k] << (8 * k);
	return v;
}

static void le_put(uint8_t *p, uint64_t v, unsigned len)
{
	for (unsigned k = 0; k < len; k++)
		p[k] = (uint8_t)(v >> (8 * k));
}

static int mem_read(struct emul_ctx *c, void *buf, unsigned len)
{
	if (!c->env->read)
		return -ENOTSUP;
	int r = c->env->read(c->env->ctx, linear(c), buf, len);
	return r > 0 ? -EFAULT : r;
}

static int mem_write(struct emul_ctx *c, const void *buf, unsigned len)
{
	if (!c->env->write)
		return -ENOTSUP;
	int r = c->env->write(c->env->ctx, linear(c), buf, len);
	return r > 0 ? -EFAULT : r;
}

/* Little-endian memory operand of len <= 8 bytes. */
static int mem_load(struct emul_ctx *c, unsigned len, uint64_t *v)
{
	uint8_t buf[8];
	int r = mem_read(c, buf, len);
	if (!r)
		*v = le_get(buf, len);
	return r;
}

static int mem_store(struct emul_ctx *c, unsigned len, uint64_t v)
{
	uint8_t buf[8];
	le_put(buf, v, len);
	int r = mem_write(c, buf, len);
	return r ? r : EMUL_DONE;
}

/* The r/m operand: register or memory. */
static int rm_read(struct emul_ctx *c, unsigned size, uint64_t *v)
{
	if (!c->d->mem) {
		*v = reg_get(c, c->d->rm, size);
		return 0;
	}
	return mem_load(c, size, v);
}

static int sys(struct emul_ctx *c, enum emul_sysreg reg, bool set, uint64_t *v)
{
	if (!c->env->sysreg)
		return -ENOTSUP;
	int r = c->env->sysreg(c->env->ctx, reg, set, v);
	return r > 0 ? -EFAULT : r;
}

/* ---- instructions: each returns an enum emul_action or -errno ---- */

EXEC(fwait)
{
	/* #NM when CR0.MP and CR0.TS; pending x87 exceptions (#MF) are not modelled. */
	return (c->env->cr0 & CR0_MP) && (c->env->cr0 & CR0_TS) ? EMUL_INJECT_NM : EMUL_DONE;
}

EXEC(int3)
{
	(void)c;
	return EMUL_INJECT_BP;
}

EXEC(popcnt)
{
	uint64_t v;
	int r = rm_read(c, c->d->osize, &v);
	if (r)
		return r;
	reg_set(c, c->d->reg, c->d->osize, (uint64_t)__builtin_popcountll(v));
	flags_set(c, FL_ARITH, v ? 0 : FL_ZF);
	return EMUL_DONE;
}

/* bsf/bsr: a zero source sets ZF and leaves the destination unchanged (what Intel and AMD
 * CPUs do; the SDM says "undefined"). CF, OF, SF, AF, PF are left unchanged. */
static int bit_scan(struct emul_ctx *c, uint64_t v, bool reverse)
{
	if (v)
		reg_set(c, c->d->reg, c->d->osize,
			reverse ? 63 - (uint64_t)__builtin_clzll(v) : (uint64_t)__builtin_ctzll(v));
	flags_set(c, FL_ZF, v ? 0 : FL_ZF);
	return EMUL_DONE;
}

/* lzcnt/tzcnt: CF = source was zero, ZF = result is zero; OF, SF, AF, PF unchanged. */
static int count_zeros(struct emul_ctx *c, bool leading, uint32_t feature)
{
	unsigned bits = c->d->osize * 8u;
	uint64_t v, n;
	int r = rm_read(c, c->d->osize, &v);
	if (r)
		return r;
	if (!(c->env->features & feature))
		return bit_scan(c, v, leading);
	if (!v)
		n = bits;
	else
		n = leading ? (uint64_t)__builtin_clzll(v) - (64 - bits)
			    : (uint64_t)__builtin_ctzll(v);
	reg_set(c, c->d->reg, c->d->osize, n);
	flags_set(c, FL_CF | FL_ZF, (v ? 0 : FL_CF) | (n ? 0 : FL_ZF));
	return EMUL_DONE;
}

EXEC(lzcnt)
{
	return count_zeros(c, true, EMUL_F_LZCNT);
}

EXEC(tzcnt)
{
	return count_zeros(c, false, EMUL_F_BMI1);
}

/* ---- BMI1/BMI2 (VEX): reg = ModRM.reg, vreg = VEX.vvvv, r/m = ModRM.rm ---- */

#define VREG(c) reg_get((c), (c)->d->vreg, (c)->d->osize)

EXEC(andn) /* reg = ~vreg & r/m; SF, ZF; CF = OF = 0; AF, PF unchanged */
{
	unsigned sz = c->d->osize;
	uint64_t v, res;
	int r = rm_read(c, sz, &v);
	if (r)
		return r;
	res = ~VREG(c) & v & szmask(sz);
	reg_set(c, c->d->reg, sz, res);
	flags_set(c, FL_SF | FL_ZF | FL_CF | FL_OF, fl_zs(res, sz));
	return EMUL_DONE;
}

EXEC(bextr) /* reg = bits [start, start+len) of r/m, control in vreg; ZF; CF = OF = 0 */
{
	unsigned sz = c->d->osize;
	uint64_t v, ctl = VREG(c), start = ctl & 0xff, len = (ctl >> 8) & 0xff, res;
	int r = rm_read(c, sz, &v);
	if (r)
		return r;
	res = start < sz * 8u ? v >> start : 0;
	if (len < 64)
		res &= (1ULL << len) - 1;
	reg_set(c, c->d->reg, sz, res);
	flags_set(c, FL_ZF | FL_CF | FL_OF, res ? 0 : FL_ZF);
	return EMUL_DONE;
}

/* blsi/blsmsk/blsr: vreg = f(r/m). CF: blsi "source != 0", the others "source == 0". */
static int bls(struct emul_ctx *c, uint64_t (*f)(uint64_t), bool cf_if_nonzero, bool zf_cleared)
{
	unsigned sz = c->d->osize;
	uint64_t v, res, fl;
	int r = rm_read(c, sz, &v);
	if (r)
		return r;
	res = f(v) & szmask(sz);
	fl = fl_zs(res, sz) & (zf_cleared ? FL_SF : FL_SF | FL_ZF);
	if ((v != 0) == cf_if_nonzero)
		fl |= FL_CF;
	reg_set(c, c->d->vreg, sz, res);
	flags_set(c, FL_SF | FL_ZF | FL_CF | FL_OF, fl);
	return EMUL_DONE;
}

static uint64_t f_blsi(uint64_t v)
{
	return (0 - v) & v;
}

static uint64_t f_blsmsk(uint64_t v)
{
	return (v - 1) ^ v;
}

static uint64_t f_blsr(uint64_t v)
{
	return (v - 1) & v;
}

EXEC(blsi)
{
	return bls(c, f_blsi, true, false);
}

EXEC(blsmsk)
{
	return bls(c, f_blsmsk, false, true);
}

EXEC(blsr)
{
	return bls(c, f_blsr, false, false);
}

EXEC(bzhi) /* reg = r/m with bits >= vreg[7:0] cleared; CF = index out of range; SF, ZF */
{
	unsigned sz = c->d->osize;
	uint64_t v, n = VREG(c) & 0xff, res, cf = 0;
	int r = rm_read(c, sz, &v);
	if (r)
		return r;
	if (n < sz * 8u) {
		res = v & ((1ULL << n) - 1);
	} else {
		res = v;
		cf = FL_CF;
	}
	reg_set(c, c->d->reg, sz, res);
	flags_set(c, FL_SF | FL_ZF | FL_CF | FL_OF, fl_zs(res, sz) | cf);
	return EMUL_DONE;
}

EXEC(mulx) /* reg:vreg = rDX * r/m (unsigned); flags untouched */
{
	unsigned sz = c->d->osize;
	uint64_t v, a = reg_get(c, EMUL_RDX, sz), lo, hi;
	int r = rm_read(c, sz, &v);
	if (r)
		return r;
	if (sz == 8) {
		unsigned __int128 p = (unsigned __int128)a * v;
		lo = (uint64_t)p;
		hi = (uint64_t)(p >> 64);
	} else {
		lo = (uint32_t)(a * v);
		hi = (a * v) >> 32;
	}
	reg_set(c, c->d->vreg, sz, lo);
	reg_set(c, c->d->reg, sz, hi); /* same register for both: the high half wins */
	return EMUL_DONE;
}

/* pdep/pext: reg = deposit/extract vreg under the mask r/m; flags untouched. */
static int bitfield(struct emul_ctx *c, bool deposit)
{
	unsigned sz = c->d->osize, k = 0;
	uint64_t mask, src = VREG(c), res = 0;
	int r = rm_read(c, sz, &mask);
	if (r)
		return r;
	for (unsigned i = 0; i < sz * 8u; i++) {
		if (!((mask >> i) & 1))
			continue;
		if (deposit && ((src >> k) & 1))
			res |= 1ULL << i;
		if (!deposit && ((src >> i) & 1))
			res |= 1ULL << k;
		k++;
	}
	reg_set(c, c->d->reg, sz, res);
	return EMUL_DONE;
}

EXEC(pdep)
{
	return bitfield(c, true);
}

EXEC(pext)
{
	return bitfield(c, false);
}

enum shift_kind { SH_SAR, SH_SHL, SH_SHR, SH_ROR };

/* rorx (count = imm8), sarx/shlx/shrx (count = vreg); count masked to 5/6 bits; no flags. */
static int shift(struct emul_ctx *c, enum shift_kind k)
{
	unsigned sz = c->d->osize, bits = sz * 8u;
	uint64_t v, res, n = (k == SH_ROR ? c->d->imm : VREG(c)) & (bits - 1);
	int r = rm_read(c, sz, &v);
	if (r)
		return r;
	if (k == SH_SAR)
		res = (uint64_t)((int64_t)(v << (64 - bits)) >> (64 - bits + n));
	else if (k == SH_SHL)
		res = v << n;
	else if (k == SH_SHR)
		res = v >> n;
	else
		res = n ? (v >> n) | (v << (bits - n)) : v;
	reg_set(c, c->d->reg, sz, res & szmask(sz));
	return EMUL_DONE;
}

EXEC(rorx)
{
	return shift(c, SH_ROR);
}

EXEC(sarx)
{
	return shift(c, SH_SAR);
}

EXEC(shlx)
{
	return shift(c, SH_SHL);
}

EXEC(shrx)
{
	return shift(c, SH_SHR);
}

/* ---- other legacy-encoded instructions ---- */

EXEC(movbe) /* 0F 38 F0: reg = swap(mem); F1: mem = swap(reg); flags untouched */
{
	unsigned sz = c->d->osize;
	uint8_t buf[8];
	uint64_t v = 0;
	int r;
	if (c->d->op == 0xf0) {
		r = mem_read(c, buf, sz);
		if (r)
			return r;
		for (unsigned k = 0; k < sz; k++)
			v = (v << 8) | buf[k];
		reg_set(c, c->d->reg, sz, v);
		return EMUL_DONE;
	}
	v = reg_get(c, c->d->reg, sz);
	for (unsigned k = 0; k < sz; k++)
		buf[sz - 1 - k] = (uint8_t)(v >> (8 * k));
	r = mem_write(c, buf, sz);
	return r ? r : EMUL_DONE;
}

EXEC(crc32) /* CRC-32C (Castagnoli, reflected) of r/m into the low 32 bits of reg */
{
	unsigned sz = c->d->op == 0xf0 ? 1 : c->d->osize;
	uint64_t v;
	uint32_t crc = (uint32_t)c->r.gpr[c->d->reg];
	int r = rm_read(c, sz, &v);
	if (r)
		return r;
	for (unsigned k = 0; k < sz * 8u; k++) {
		crc ^= (uint32_t)(v >> k) & 1;
		crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
	}
	reg_set(c, c->d->reg, 4, crc); /* the 64-bit form zero-extends */
	return EMUL_DONE;
}

/* adcx/adox: reg += r/m + carry, where the carry in and out is CF or OF only. */
static int add_carry(struct emul_ctx *c, uint64_t flag)
{
	unsigned sz = c->d->osize;
	uint64_t v, a = reg_get(c, c->d->reg, sz), cin = (c->r.rflags & flag) ? 1 : 0, res;
	bool cout;
	int r;
	if (sz == 2)
		return -ENOTSUP; /* no 16-bit form (66 F3 0F 38 F6, or 16-bit code) */
	r = rm_read(c, sz, &v);
	if (r)
		return r;
	if (sz == 8) {
		uint64_t t = a + v;
		res = t + cin;
		cout = t < a || res < t;
	} else {
		res = a + v + cin;
		cout = res >> 32;
	}
	reg_set(c, c->d->reg, sz, res);
	flags_set(c, flag, cout ? flag : 0);
	return EMUL_DONE;
}

EXEC(adcx)
{
	return add_carry(c, FL_CF);
}

EXEC(adox)
{
	return add_carry(c, FL_OF);
}

EXEC(xgetbv)
{
	uint64_t v;
	uint32_t ecx = (uint32_t)c->r.gpr[EMUL_RCX];
	if (!(c->env->cr4 & CR4_OSXSAVE))
		return EMUL_INJECT_UD;
	if (ecx == 1)
		return -ENOTSUP; /* XINUSE: would need the guest's XSAVE state */
	if (ecx != 0)
		return EMUL_INJECT_GP;
	int r = sys(c, EMUL_SYS_XCR0, false, &v);
	if (r)
		return r;
	reg_set(c, EMUL_RAX, 4, v);
	reg_set(c, EMUL_RDX, 4, v >> 32);
	return EMUL_DONE;
}

/* clac/stac: SMAP's AC-flag toggles; privileged (#UD above CPL 0, per the SDM). */
EXEC(clac)
{
	if (c->env->cpl)
		return EMUL_INJECT_UD;
	flags_set(c, FL_AC, 0);
	return EMUL_DONE;
}

EXEC(stac)
{
	if (c->env->cpl)
		return EMUL_INJECT_UD;
	flags_set(c, FL_AC, FL_AC);
	return EMUL_DONE;
}

EXEC(rdtscp)
{
	uint64_t tsc, aux;
	int r;
	if ((c->env->cr4 & CR4_TSD) && c->env->cpl)
		return EMUL_INJECT_GP;
	r = sys(c, EMUL_SYS_TSC_AUX, false, &aux);
	if (!r)
		r = sys(c, EMUL_SYS_TSC, false, &tsc);
	if (r)
		return r;
	reg_set(c, EMUL_RAX, 4, tsc);
	reg_set(c, EMUL_RDX, 4, tsc >> 32);
	reg_set(c, EMUL_RCX, 4, aux);
	return EMUL_DONE;
}

/* rdrand/rdseed: CF=1 and a value, or CF=0 and 0 when none is available; OF..PF = 0. */
static int random_insn(struct emul_ctx *c, enum emul_sysreg which)
{
	uint64_t v = 0;
	int r = sys(c, which, false, &v);
	if (r == -EAGAIN)
		v = 0;
	else if (r)
		return r;
	reg_set(c, c->d->rm, c->d->osize, v);
	flags_set(c, FL_ARITH, r ? 0 : FL_CF);
	return EMUL_DONE;
}

EXEC(rdrand)
{
	return random_insn(c, EMUL_SYS_RDRAND);
}

EXEC(rdseed)
{
	return random_insn(c, EMUL_SYS_RDSEED);
}

/* cmpxchg8b/16b: compare rDX:rAX with m64/m128, store rCX:rBX if equal (ZF=1), else load
 * it into rDX:rAX (ZF=0). Always atomic (the callback is a locked operation). */
EXEC(cmpxchg8b)
{
	unsigned half = c->d->kind == EMUL_K_CMPXCHG16B ? 8 : 4;
	uint8_t expected[16], desired[16];
	uint64_t gva = linear(c);
	if (half == 8 && (gva & 15))
		return EMUL_INJECT_GP;
	if (!c->env->cmpxchg)
		return -ENOTSUP;
	le_put(expected, c->r.gpr[EMUL_RAX], half);
	le_put(expected + half, c->r.gpr[EMUL_RDX], half);
	le_put(desired, c->r.gpr[EMUL_RBX], half);
	le_put(desired + half, c->r.gpr[EMUL_RCX], half);
	int r = c->env->cmpxchg(c->env->ctx, gva, expected, desired, 2 * half);
	if (r < 0)
		return r;
	if (r == 0) {
		reg_set(c, EMUL_RAX, half, le_get(expected, half));
		reg_set(c, EMUL_RDX, half, le_get(expected + half, half));
	}
	flags_set(c, FL_ZF, r ? FL_ZF : 0);
	return EMUL_DONE;
}

/* ---- x87 / SSE control state (through the sysreg callback) ---- */

static bool x87_unavailable(const struct emul_ctx *c)
{
	return c->env->cr0 & (CR0_EM | CR0_TS);
}

EXEC(fnstsw) /* DF E0: AX = FSW; DD /7: m16 = FSW */
{
	uint64_t fsw;
	if (x87_unavailable(c))
		return EMUL_INJECT_NM;
	int r = sys(c, EMUL_SYS_FSW, false, &fsw);
	if (r)
		return r;
	if (c->d->mem)
		return mem_store(c, 2, fsw);
	reg_set(c, EMUL_RAX, 2, fsw);
	return EMUL_DONE;
}

EXEC(fnstcw)
{
	uint64_t fcw;
	if (x87_unavailable(c))
		return EMUL_INJECT_NM;
	int r = sys(c, EMUL_SYS_FCW, false, &fcw);
	return r ? r : mem_store(c, 2, fcw);
}

EXEC(fldcw)
{
	uint64_t fcw;
	if (x87_unavailable(c))
		return EMUL_INJECT_NM;
	int r = mem_load(c, 2, &fcw);
	if (!r)
		r = sys(c, EMUL_SYS_FCW, true, &fcw);
	return r ? r : EMUL_DONE;
}

EXEC(fnclex) /* clear the exception flags, ES and B in FSW */
{
	uint64_t fsw;
	if (x87_unavailable(c))
		return EMUL_INJECT_NM;
	int r = sys(c, EMUL_SYS_FSW, false, &fsw);
	if (r)
		return r;
	fsw &= ~0x80ffULL;
	r = sys(c, EMUL_SYS_FSW, true, &fsw);
	return r ? r : EMUL_DONE;
}

static int sse_check(const struct emul_ctx *c)
{
	if ((c->env->cr0 & CR0_EM) || !(c->env->cr4 & CR4_OSFXSR))
		return EMUL_INJECT_UD;
	return (c->env->cr0 & CR0_TS) ? EMUL_INJECT_NM : EMUL_DONE;
}

EXEC(ldmxcsr)
{
	uint64_t v;
	int r = sse_check(c);
	if (r)
		return r;
	r = mem_load(c, 4, &v);
	if (r)
		return r;
	if (v & 0xffff0000u) /* reserved bits: #GP(0) */
		return EMUL_INJECT_GP;
	r = sys(c, EMUL_SYS_MXCSR, true, &v);
	return r ? r : EMUL_DONE;
}

EXEC(stmxcsr)
{
	uint64_t v;
	int r = sse_check(c);
	if (r)
		return r;
	r = sys(c, EMUL_SYS_MXCSR, false, &v);
	return r ? r : mem_store(c, 4, v);
}

EXEC(clwb)
{
	(void)c; /* guest RAM is ordinary host memory: nothing to write back */
	return EMUL_DONE;
}
