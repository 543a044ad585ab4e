/* SPDX-License-Identifier: MIT */
/*
 * A small x86 decoder + executor for the few instructions KVM's in-kernel emulator cannot
 * complete (KVM_EXIT_INTERNAL_ERROR with KVM_INTERNAL_ERROR_EMULATION). Pure code: no KVM, no
 * guest memory of its own, no globals. The caller passes the instruction bytes, the CPU mode,
 * a register file and callbacks for memory operands and the little system state a few
 * instructions need (XCR0, TSC, x87 control words...).
 *
 * Contract of emul_run():
 *   - returns 0 and fills *res: res->action says what the caller must do
 *       EMUL_DONE       registers updated, RIP past the instruction
 *       EMUL_INJECT_BP  int3: RIP past the int3 (#BP is a trap), inject vector 3
 *       EMUL_INJECT_UD / _NM / _GP   a fault: registers untouched (RIP still at the
 *                       instruction), inject the vector (#GP with error code 0)
 *   - returns -ENOTSUP for anything it does not know, cannot finish (too few bytes, 16-bit
 *     addressing, ...) and -EFAULT (or the callback's error) when a memory or system-state
 *     callback fails; in every error case *regs is untouched and nothing was written.
 *   - reads at most len (<= 15) bytes of the instruction; never reads beyond them.
 * Memory operands are linear addresses: segment base + effective address. In 64-bit mode only
 * FS/GS bases apply; in the 32-bit modes every segment base applies and addresses wrap at
 * 4 GiB. Segment limits and access rights are not checked (KVM already did the fetch).
 *
 * Flags: every instruction sets the flags the Intel SDM defines. Flags the SDM leaves
 * "undefined" are left unchanged (documented choice; tests mask them). bsf/bsr (lzcnt/tzcnt
 * without the feature) with a zero source leave the destination unchanged, as CPUs do.
 *
 * Instructions (all operand sizes, register and memory forms unless noted; the table is in
 * emulate_insn.c):
 *   fwait (#NM if CR0.MP&TS), int3 (#BP)
 *   popcnt, lzcnt, tzcnt (bsr/bsf without ABM/BMI1)
 *   BMI1: andn bextr blsi blsmsk blsr; BMI2: bzhi mulx pdep pext rorx sarx shlx shrx
 *     (VEX.L=1, a legacy prefix or REX before VEX, LOCK, rorx with vvvv != 1111b: #UD)
 *   movbe (memory only), crc32 (8/16/32/64-bit sources), adcx, adox
 *   xgetbv (XCR0), rdtscp, rdrand/rdseed (register only), cmpxchg8b/cmpxchg16b (atomic)
 *   fnstsw ax/m16, fnstcw, fldcw, fnclex, ldmxcsr, stmxcsr, clwb (no-op)
 * A missing EMUL_F_* feature gives #UD. 16-bit addressing (67 in 32-bit code, or 16-bit
 * code without 67) and VEX in 16-bit code are -ENOTSUP.
 */
#ifndef VIREO_KVM_EMULATE_H
#define VIREO_KVM_EMULATE_H

#include "common/compiler.h"

#define EMUL_MAX_INSN 15

/* CPU mode of the code segment, see emul_mode_from_cpu(). */
enum emul_mode {
	EMUL_MODE_16,	    /* real mode or a 16-bit code segment */
	EMUL_MODE_PROT32,   /* protected mode, CS.D = 1 */
	EMUL_MODE_COMPAT32, /* long mode, CS.L = 0, CS.D = 1 */
	EMUL_MODE_64,	    /* long mode, CS.L = 1 */
};

enum emul_mode emul_mode_from_cpu(bool cr0_pe, bool efer_lma, bool cs_l, bool cs_db);

/* GPR numbers in x86 encoding order (not struct kvm_regs order). */
enum { EMUL_RAX, EMUL_RCX, EMUL_RDX, EMUL_RBX, EMUL_RSP, EMUL_RBP, EMUL_RSI, EMUL_RDI };

struct emul_regs {
	uint64_t gpr[16];
	uint64_t rip;
	uint64_t rflags;
};

/* Segment registers, in encoding order (index of emul_env.seg_base). */
enum { EMUL_ES, EMUL_CS, EMUL_SS, EMUL_DS, EMUL_FS, EMUL_GS, EMUL_NR_SEGS };

/* CPU features an instruction may need. Without the feature: #UD, except lzcnt/tzcnt, which
 * then run as bsr/bsf (their F3 prefix is ignored on such CPUs). */
enum {
	EMUL_F_POPCNT = 1u << 0,
	EMUL_F_LZCNT = 1u << 1, /* ABM */
	EMUL_F_BMI1 = 1u << 2,
	EMUL_F_BMI2 = 1u << 3,
	EMUL_F_MOVBE = 1u << 4,
	EMUL_F_SSE42 = 1u << 5, /* crc32 */
	EMUL_F_ADX = 1u << 6,
	EMUL_F_XSAVE = 1u << 7, /* xgetbv */
	EMUL_F_RDTSCP = 1u << 8,
	EMUL_F_RDRAND = 1u << 9,
	EMUL_F_RDSEED = 1u << 10,
	EMUL_F_CX16 = 1u << 11,
	EMUL_F_CLWB = 1u << 12,
	EMUL_F_SSE = 1u << 13, /* ldmxcsr/stmxcsr */
	EMUL_F_SMAP = 1u << 14, /* clac/stac */
};

/* System state read or written through emul_env.sysreg. */
enum emul_sysreg {
	EMUL_SYS_XCR0,
	EMUL_SYS_TSC,
	EMUL_SYS_TSC_AUX,
	EMUL_SYS_FCW, /* x87 control word (set: value to store) */
	EMUL_SYS_FSW, /* x87 status word */
	EMUL_SYS_MXCSR,
	EMUL_SYS_RDRAND, /* a random value; -EAGAIN means "none now" (CF=0) */
	EMUL_SYS_RDSEED,
};

struct emul_env {
	enum emul_mode mode;
	uint32_t features; /* EMUL_F_* the virtual CPU implements */
	uint64_t seg_base[EMUL_NR_SEGS];
	uint64_t cr0, cr4;
	unsigned cpl;
	void *ctx;
	/* Memory operands (linear addresses). Return 0 or -errno. */
	int (*read)(void *ctx, uint64_t gva, void *buf, unsigned len);
	int (*write)(void *ctx, uint64_t gva, const void *buf, unsigned len);
	/* Atomic compare-exchange of len (8 or 16) bytes: returns 1 when *expected matched and
	 * desired was stored, 0 when not (then *expected holds the current value), or -errno. */
	int (*cmpxchg)(void *ctx, uint64_t gva, void *expected, const void *desired, unsigned len);
	/* get (set=false: *val filled) or set (set=true: *val stored) a system register. */
	int (*sysreg)(void *ctx, enum emul_sysreg reg, bool set, uint64_t *val);
};

/* Instruction kinds, for statistics. X(enum suffix, printed name). */
/* clang-format off */
#define EMUL_KINDS(X)                                                                              \
	X(FWAIT, "fwait") X(INT3, "int3") X(POPCNT, "popcnt") X(LZCNT, "lzcnt")                    \
	X(TZCNT, "tzcnt") X(ANDN, "andn") X(BEXTR, "bextr") X(BLSI, "blsi")                        \
	X(BLSMSK, "blsmsk") X(BLSR, "blsr") X(BZHI, "bzhi") X(MULX, "mulx") X(PDEP, "pdep")        \
	X(PEXT, "pext") X(RORX, "rorx") X(SARX, "sarx") X(SHLX, "shlx") X(SHRX, "shrx")            \
	X(MOVBE, "movbe") X(CRC32, "crc32") X(ADCX, "adcx") X(ADOX, "adox")                        \
	X(XGETBV, "xgetbv") X(RDTSCP, "rdtscp") X(RDRAND, "rdrand") X(RDSEED, "rdseed")            \
	X(CMPXCHG8B, "cmpxchg8b") X(CMPXCHG16B, "cmpxchg16b") X(FNSTSW, "fnstsw")                  \
	X(FNSTCW, "fnstcw") X(FLDCW, "fldcw") X(FNCLEX, "fnclex") X(LDMXCSR, "ldmxcsr")            \
	X(STMXCSR, "stmxcsr") X(CLWB, "clwb") X(CLAC, "clac") X(STAC, "stac")
/* clang-format on */

#define EMUL_KIND_ENUM(e, s) EMUL_K_##e,
enum emul_kind { EMUL_KINDS(EMUL_KIND_ENUM) EMUL_K_COUNT };
#undef EMUL_KIND_ENUM

const char *emul_kind_name(enum emul_kind k);

enum emul_action { EMUL_DONE, EMUL_INJECT_BP, EMUL_INJECT_UD, EMUL_INJECT_NM, EMUL_INJECT_GP };

/* A decoded instruction (decoding reads no registers and no memory). */
struct emul_insn {
	enum emul_kind kind;
	uint8_t len;   /* bytes, prefixes included */
	uint8_t osize; /* operand size in bytes: 2, 4 or 8 */
	uint8_t asize; /* address size in bytes: 4 or 8 (16-bit addressing is rejected) */
	uint8_t reg;   /* ModRM.reg with REX.R/VEX.R */
	uint8_t vreg;  /* VEX.vvvv */
	uint8_t rm;    /* ModRM.rm register (when !mem) */
	uint8_t seg;   /* EMUL_ES.. for the memory operand */
	uint8_t scale; /* shift 0..3 */
	uint8_t imm;
	int8_t base, index; /* -1: none */
	bool mem, riprel, rex, rexw, vex, vexl, lock;
	uint8_t op, map; /* opcode byte and map (0: one-byte, 1: 0F, 2: 0F38, 3: 0F3A) */
	int64_t disp;
	uint32_t need;	   /* EMUL_F_* required */
	const void *entry; /* internal: the table entry */
};

/* Decode only. Returns 0, -ENOTSUP, or a positive enum emul_action when the encoding is
 * invalid regardless of registers (EMUL_INJECT_UD). */
int emul_decode(const uint8_t *bytes, unsigned len, enum emul_mode mode, struct emul_insn *d) WUR;

struct emul_result {
	enum emul_action action;
	enum emul_kind kind;
	uint8_t len;
};

int emul_run(const uint8_t *bytes, unsigned len, const struct emul_env *env, struct emul_regs *regs,
	     struct emul_result *res) WUR;

/* Completion counters, shared by all vCPUs of a VM (updated with atomics). */
struct emul_stats {
	uint64_t done[EMUL_K_COUNT];
	uint64_t injected; /* exceptions injected instead of (or after) completing */
	uint64_t failed;   /* exits we could not complete */
};

void emul_stats_add(struct emul_stats *st, enum emul_kind k);
void emul_stats_fail(struct emul_stats *st);
/* "emulated: popcnt=12 fwait=3 injected=0 failed=0" (non-zero kinds only). Returns the
 * length the whole text needs, like snprintf; the text is truncated to size - 1. */
int emul_stats_format(const struct emul_stats *st, char *buf, size_t size);

/* KVM side, implemented in emulate_vcpu.c (see emulate_vcpu.h for the exit handler). Enables
 * KVM_CAP_EXIT_ON_EMULATION_FAILURE: instruction bytes in the exit, and an exit instead of a
 * silent #UD for every emulation failure. -ENOTSUP when KVM lacks it. */
struct kvm_vm;
int kvm_vm_enable_emulation_exits(struct kvm_vm *vm) WUR;

#endif
