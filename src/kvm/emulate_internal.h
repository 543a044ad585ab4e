/* SPDX-License-Identifier: MIT */
/*
 * Internal to the instruction emulator (emulate.c: decoder; emulate_insn.c: the opcode table
 * and one function per instruction). Not for use outside src/kvm/emulate*.c.
 */
#ifndef VIREO_KVM_EMULATE_INTERNAL_H
#define VIREO_KVM_EMULATE_INTERNAL_H

#include "kvm/emulate.h"

struct emul_ctx {
	const struct emul_env *env;
	const struct emul_insn *d;
	struct emul_regs r; /* working copy */
};

typedef int (*emul_exec_fn)(struct emul_ctx *c);

/* Mandatory prefix (legacy encodings) or VEX.pp. */
enum { P_NP, P_66, P_F3, P_F2 };

/* Entry flags. */
#define F_NOMODRM 0x01 /* no ModRM byte */
#define F_MEM 0x02     /* memory form only: a register form is another instruction */
#define F_MEMUD 0x04   /* memory form only: a register form is #UD */
#define F_REG 0x08     /* register form only (ModRM.mod == 3) */
#define F_IMM8 0x10
#define F_ANYPFX 0x20  /* legacy prefixes are ignored */
#define F_LOCK 0x40    /* LOCK allowed */
#define F_NO66 0x80    /* a 66 prefix makes this another (unknown) instruction */
#define F_NOVVVV 0x100 /* VEX.vvvv must be 1111b */
#define F_BYTE 0x200   /* r/m operand is 8-bit */

struct emul_op {
	uint8_t vex, map, op, pfx;
	int8_t digit, rm; /* ModRM.reg / ModRM.rm (3 bits) required, -1: any */
	uint16_t flags;
	uint8_t kind;
	uint32_t need;
	emul_exec_fn exec;
};

extern const struct emul_op emul_optab[];
extern const size_t emul_optab_len;

#endif
