/* SPDX-License-Identifier: MIT */
/*
 * The KVM side of the userspace instruction completion (contract in emulate_vcpu.h): fetch
 * the bytes, build the emulator's environment from the vCPU, run it, write back, inject.
 */
#include "kvm/emulate_vcpu.h"
#include "common/log.h"

#include <cpuid.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>

#define GPAGE 4096ULL
#define EFER_LMA (1ULL << 10)
#define MSR_IA32_TSC 0x10u
#define MSR_TSC_AUX 0xc0000103u

struct vctx {
	struct kvm_vcpu *v;
	const struct gmem *m;
	enum emul_mode mode;
	bool xsave_valid;
	struct kvm_xsave xsave; /* read once per instruction, when needed */
};

/* Host pointers for the linear range [gva, gva+len), len <= 16 (at most two pages). */
struct span {
	uint8_t *p[2];
	unsigned n[2];
	unsigned count;
};

static int guest_map(const struct vctx *x, uint64_t gva, unsigned len, struct span *s)
{
	s->count = 0;
	while (len) {
		unsigned n = (unsigned)MIN((uint64_t)len, GPAGE - (gva & (GPAGE - 1)));
		uint64_t gpa;
		if (s->count == ARRAY_SIZE(s->p))
			return -EINVAL;
		int r = kvm_vcpu_translate(x->v, gva, &gpa);
		if (r)
			return r;
		uint8_t *p = gmem_ptr(x->m, gpa, n);
		if (!p)
			return -ENOTSUP; /* MMIO (or no RAM): not handled yet */
		s->p[s->count] = p;
		s->n[s->count++] = n;
		gva += n;
		if (x->mode != EMUL_MODE_64)
			gva = (uint32_t)gva;
		len -= n;
	}
	return 0;
}

/* Naturally aligned 2/4/8-byte accesses are single host accesses, as on hardware (another
 * vCPU may be looking at the same word); anything else is a plain copy. */
static void guest_load(void *dst, const uint8_t *src, unsigned n)
{
	if ((n == 2 || n == 4 || n == 8) && !((uintptr_t)src & (n - 1))) {
		uint64_t v =
		    n == 8 ? __atomic_load_n((const uint64_t *)(const void *)src, __ATOMIC_RELAXED)
		    : n == 4
			? __atomic_load_n((const uint32_t *)(const void *)src, __ATOMIC_RELAXED)
			: __atomic_load_n((const uint16_t *)(const void *)src, __ATOMIC_RELAXED);
		memcpy(dst, &v, n); /* little-endian host */
		return;
	}
	memcpy(dst, src, n);
}

static void guest_store(uint8_t *dst, const void *src, unsigned n)
{
	uint64_t v = 0;
	if ((n == 2 || n == 4 || n == 8) && !((uintptr_t)dst & (n - 1))) {
		memcpy(&v, src, n);
		if (n == 8)
			__atomic_store_n((uint64_t *)(void *)dst, v, __ATOMIC_RELAXED);
		else if (n == 4)
			__atomic_store_n((uint32_t *)(void *)dst, (uint32_t)v, __ATOMIC_RELAXED);
		else
			__atomic_store_n((uint16_t *)(void *)dst, (uint16_t)v, __ATOMIC_RELAXED);
		return;
	}
	memcpy(dst, src, n);
}

static int cb_read(void *ctx, uint64_t gva, void *buf, unsigned len)
{
	struct span s;
	uint8_t *out = buf;
	int r = guest_map(ctx, gva, len, &s);
	for (unsigned i = 0; !r && i < s.count; out += s.n[i], i++)
		guest_load(out, s.p[i], s.n[i]);
	return r;
}

static int cb_write(void *ctx, uint64_t gva, const void *buf, unsigned len)
{
	struct span s;
	const uint8_t *in = buf;
	int r = guest_map(ctx, gva, len, &s); /* both pages mapped before any byte is written */
	for (unsigned i = 0; !r && i < s.count; in += s.n[i], i++)
		guest_store(s.p[i], in, s.n[i]);
	return r;
}

struct u128 {
	uint64_t lo, hi;
};

static int cb_cmpxchg(void *ctx, uint64_t gva, void *expected, const void *desired, unsigned len)
{
	struct span s;
	int r = guest_map(ctx, gva, len, &s);
	if (r)
		return r;
	if (s.count != 1)
		return -ENOTSUP; /* split over two pages: cannot be done atomically */
	if (len == 8) {
		uint64_t e, d;
		memcpy(&e, expected, 8);
		memcpy(&d, desired, 8);
		bool ok = __atomic_compare_exchange_n((uint64_t *)(void *)s.p[0], &e, d, false,
						      __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
		memcpy(expected, &e, 8);
		return ok;
	}
	if (len != 16 || ((uintptr_t)s.p[0] & 15))
		return -ENOTSUP;
	struct u128 e, d;
	bool ok;
	memcpy(&e, expected, 16);
	memcpy(&d, desired, 16);
	__asm__ __volatile__("lock cmpxchg16b %1\n\tsete %0"
			     : "=q"(ok), "+m"(*(struct u128 *)(void *)s.p[0]), "+a"(e.lo),
			       "+d"(e.hi)
			     : "b"(d.lo), "c"(d.hi)
			     : "memory", "cc");
	memcpy(expected, &e, 16);
	return ok;
}

static int get_msr(struct kvm_vcpu *v, uint32_t index, uint64_t *val)
{
	union {
		struct kvm_msrs h;
		uint8_t raw[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
	} u;
	memset(&u, 0, sizeof(u));
	u.h.nmsrs = 1;
	u.h.entries[0].index = index;
	int r = ioctl(v->fd, KVM_GET_MSRS, &u);
	if (r < 0)
		return -errno;
	if (r != 1)
		return -EINVAL;
	*val = u.h.entries[0].data;
	return 0;
}

static int get_xcr0(struct kvm_vcpu *v, uint64_t *val)
{
	struct kvm_xcrs x;
	memset(&x, 0, sizeof(x));
	if (ioctl(v->fd, KVM_GET_XCRS, &x) < 0)
		return -errno;
	for (unsigned i = 0; i < x.nr_xcrs && i < KVM_MAX_XCRS; i++) {
		if (x.xcrs[i].xcr == 0) {
			*val = x.xcrs[i].value;
			return 0;
		}
	}
	return -ENOENT;
}

/*
 * x87/SSE control words through KVM_GET_XSAVE/KVM_SET_XSAVE (the legacy area: FCW at 0, FSW
 * at 2, MXCSR at 24; XSTATE_BV at 512). Not KVM_GET_FPU: it never reports MXCSR, and
 * KVM_SET_FPU leaves XSTATE_BV alone, so a change to an x87 in its init state could be lost.
 * Setting a field also sets its component's XSTATE_BV bit (x87: bit 0, SSE: bit 1) so the
 * kernel takes the legacy fields; the rest of a component in init state reads as init values.
 */
static int fpu_reg(struct vctx *x, enum emul_sysreg reg, bool set, uint64_t *val)
{
	uint8_t *xs = (uint8_t *)x->xsave.region;
	unsigned off = reg == EMUL_SYS_FCW ? 0 : reg == EMUL_SYS_FSW ? 2 : 24;
	unsigned len = reg == EMUL_SYS_MXCSR ? 4 : 2;
	uint64_t bv;
	if (!x->xsave_valid) {
		if (ioctl(x->v->fd, KVM_GET_XSAVE, &x->xsave) < 0)
			return -errno;
		x->xsave_valid = true;
	}
	if (!set) {
		*val = 0;
		memcpy(val, xs + off, len); /* little-endian host */
		return 0;
	}
	memcpy(xs + off, val, len);
	memcpy(&bv, xs + 512, sizeof(bv));
	bv |= reg == EMUL_SYS_MXCSR ? 2 : 1;
	memcpy(xs + 512, &bv, sizeof(bv));
	return ioctl(x->v->fd, KVM_SET_XSAVE, &x->xsave) < 0 ? -errno : 0;
}

static int cb_sysreg(void *ctx, enum emul_sysreg reg, bool set, uint64_t *val)
{
	struct vctx *x = ctx;
	if (set && reg != EMUL_SYS_FCW && reg != EMUL_SYS_FSW && reg != EMUL_SYS_MXCSR)
		return -ENOTSUP;
	switch (reg) {
	case EMUL_SYS_XCR0:
		return get_xcr0(x->v, val);
	case EMUL_SYS_TSC:
		return get_msr(x->v, MSR_IA32_TSC, val);
	case EMUL_SYS_TSC_AUX:
		return get_msr(x->v, MSR_TSC_AUX, val);
	case EMUL_SYS_FCW:
	case EMUL_SYS_FSW:
	case EMUL_SYS_MXCSR:
		return fpu_reg(x, reg, set, val);
	case EMUL_SYS_RDRAND:
	case EMUL_SYS_RDSEED:
		/* The kernel's pool: never blocks; when it has nothing, the guest sees CF=0. */
		return getrandom(val, sizeof(*val), GRND_NONBLOCK) == (ssize_t)sizeof(*val)
			   ? 0
			   : -EAGAIN;
	}
	return -ENOTSUP;
}

uint32_t emul_host_features(void)
{
	/* A property of the host CPU, computed once (CPUID exits when Vireo itself is nested). */
	static uint32_t cached;
	const uint32_t valid = 1u << 31;
	uint32_t f = __atomic_load_n(&cached, __ATOMIC_RELAXED);
	unsigned a, b, c, d;
	if (f)
		return f & ~valid;
	f = valid;
	if (__get_cpuid(1, &a, &b, &c, &d)) {
		f |= (c & (1u << 23) ? EMUL_F_POPCNT : 0) | (c & (1u << 22) ? EMUL_F_MOVBE : 0) |
		     (c & (1u << 20) ? EMUL_F_SSE42 : 0) | (c & (1u << 26) ? EMUL_F_XSAVE : 0) |
		     (c & (1u << 13) ? EMUL_F_CX16 : 0) | (c & (1u << 30) ? EMUL_F_RDRAND : 0) |
		     (d & (1u << 25) ? EMUL_F_SSE : 0);
	}
	if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
		f |= (b & (1u << 3) ? EMUL_F_BMI1 : 0) | (b & (1u << 8) ? EMUL_F_BMI2 : 0) |
		     (b & (1u << 19) ? EMUL_F_ADX : 0) | (b & (1u << 18) ? EMUL_F_RDSEED : 0) |
		     (b & (1u << 24) ? EMUL_F_CLWB : 0) | (b & (1u << 20) ? EMUL_F_SMAP : 0);
	}
	if (__get_cpuid(0x80000001, &a, &b, &c, &d))
		f |= (c & (1u << 5) ? EMUL_F_LZCNT : 0) | (d & (1u << 27) ? EMUL_F_RDTSCP : 0);
	__atomic_store_n(&cached, f, __ATOMIC_RELAXED);
	return f & ~valid;
}

/* The instruction bytes: from the exit when KVM provides them, else from guest memory at
 * CS.base + RIP, page by page, as many as can be read (the decoder rejects a short read). */
static int fetch_insn(const struct vctx *x, const struct kvm_run *run, const struct kvm_sregs *sr,
		      uint64_t rip, uint8_t *buf, unsigned *n)
{
	if (run->emulation_failure.ndata >= 3 &&
	    (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) &&
	    run->emulation_failure.insn_size) {
		*n = MIN((unsigned)run->emulation_failure.insn_size, (unsigned)EMUL_MAX_INSN);
		memcpy(buf, run->emulation_failure.insn_bytes, *n);
		return 0;
	}
	uint64_t lin = x->mode == EMUL_MODE_64 ? rip : (uint32_t)(sr->cs.base + rip);
	*n = 0;
	while (*n < EMUL_MAX_INSN) {
		unsigned chunk =
		    (unsigned)MIN((uint64_t)(EMUL_MAX_INSN - *n), GPAGE - (lin & (GPAGE - 1)));
		uint64_t gpa;
		const uint8_t *p;
		if (kvm_vcpu_translate(x->v, lin, &gpa) || !(p = gmem_ptr(x->m, gpa, chunk)))
			break;
		memcpy(buf + *n, p, chunk);
		*n += chunk;
		lin += chunk;
		if (x->mode != EMUL_MODE_64)
			lin = (uint32_t)lin;
	}
	return *n ? 0 : -EFAULT;
}

static void regs_from_kvm(struct emul_regs *e, const struct kvm_regs *k)
{
	const uint64_t g[16] = {k->rax, k->rcx, k->rdx, k->rbx, k->rsp, k->rbp, k->rsi, k->rdi,
				k->r8,	k->r9,	k->r10, k->r11, k->r12, k->r13, k->r14, k->r15};
	memcpy(e->gpr, g, sizeof(g));
	e->rip = k->rip;
	e->rflags = k->rflags;
}

static void regs_to_kvm(struct kvm_regs *k, const struct emul_regs *e)
{
	k->rax = e->gpr[0], k->rcx = e->gpr[1], k->rdx = e->gpr[2], k->rbx = e->gpr[3];
	k->rsp = e->gpr[4], k->rbp = e->gpr[5], k->rsi = e->gpr[6], k->rdi = e->gpr[7];
	k->r8 = e->gpr[8], k->r9 = e->gpr[9], k->r10 = e->gpr[10], k->r11 = e->gpr[11];
	k->r12 = e->gpr[12], k->r13 = e->gpr[13], k->r14 = e->gpr[14], k->r15 = e->gpr[15];
	k->rip = e->rip;
	k->rflags = e->rflags;
}

/*
 * Exception injection through KVM_SET_VCPU_EVENTS. #BP is a software exception: KVM's API
 * has no instruction length for it. Measured on the nested PVM KVM of our build machines:
 * the frame gets the RIP we set, i.e. the address after the int3, as on hardware. (On
 * VMX/SVM an int3 never reaches KVM's emulator, it has no memory operand.)
 */
static int inject(struct kvm_vcpu *v, enum emul_action a)
{
	static const uint8_t vector[] = {[EMUL_INJECT_BP] = 3,
					 [EMUL_INJECT_UD] = 6,
					 [EMUL_INJECT_NM] = 7,
					 [EMUL_INJECT_GP] = 13};
	struct kvm_vcpu_events ev;
	int r = kvm_vcpu_get_events(v, &ev);
	if (r)
		return r;
	if (ev.exception.injected || ev.exception.pending)
		return -EBUSY;
	ev.exception.injected = 1;
	ev.exception.pending = 0;
	ev.exception.nr = vector[a];
	ev.exception.has_error_code = a == EMUL_INJECT_GP; /* #GP(0) */
	ev.exception.error_code = 0;
	ev.exception_has_payload = 0;
	ev.flags = 0; /* leave NMI-pending, SIPI, shadow and SMM state as they are */
	return kvm_vcpu_set_events(v, &ev);
}

static int inject_cancel(struct kvm_vcpu *v)
{
	struct kvm_vcpu_events ev;
	int r = kvm_vcpu_get_events(v, &ev);
	if (r)
		return r;
	ev.exception.injected = 0;
	ev.flags = 0;
	return kvm_vcpu_set_events(v, &ev);
}

static void log_failure(const struct kvm_vcpu *v, uint64_t rip, const uint8_t *insn, unsigned n,
			int err)
{
	char hex[3 * EMUL_MAX_INSN + 1] = "";
	for (unsigned i = 0; i < n && i < EMUL_MAX_INSN; i++)
		snprintf(hex + 3 * i, sizeof(hex) - 3 * i, "%02x ", insn[i]);
	vlog_rl("vCPU %u: cannot complete the instruction at rip %#llx [%s]: %s", v->id,
		(unsigned long long)rip, hex, err == -ENOTSUP ? "not supported" : strerror(-err));
}

int kvm_vcpu_complete_emulation(struct kvm_vcpu *v, const struct gmem *m, struct emul_stats *st)
{
	struct kvm_run *run = v->run;
	struct kvm_regs kr;
	struct kvm_sregs sr;
	struct emul_regs er;
	struct emul_result res;
	uint8_t insn[EMUL_MAX_INSN];
	unsigned n = 0;
	int r;

	if (run->exit_reason != KVM_EXIT_INTERNAL_ERROR ||
	    run->internal.suberror != KVM_INTERNAL_ERROR_EMULATION)
		return -EINVAL;
	const uint64_t sync_bits = KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS;
	const bool sync = (run->kvm_valid_regs & sync_bits) == sync_bits;
	memset(&kr, 0, sizeof(kr));
	if (sync) { /* KVM already put them in kvm_run: two ioctls saved */
		kr = run->s.regs.regs;
		sr = run->s.regs.sregs;
	} else {
		r = kvm_vcpu_get_regs(v, &kr);
		if (!r)
			r = kvm_vcpu_get_sregs(v, &sr);
		if (r)
			goto fail;
	}
	struct vctx x = {
	    .v = v,
	    .m = m,
	    .mode = emul_mode_from_cpu(sr.cr0 & 1, sr.efer & EFER_LMA, sr.cs.l, sr.cs.db),
	};
	const struct emul_env env = {
	    .mode = x.mode,
	    .features = emul_host_features(),
	    .seg_base = {sr.es.base, sr.cs.base, sr.ss.base, sr.ds.base, sr.fs.base, sr.gs.base},
	    .cr0 = sr.cr0,
	    .cr4 = sr.cr4,
	    .cpl = (sr.cr0 & 1) ? sr.ss.dpl : 0,
	    .ctx = &x,
	    .read = cb_read,
	    .write = cb_write,
	    .cmpxchg = cb_cmpxchg,
	    .sysreg = cb_sysreg,
	};
	r = fetch_insn(&x, run, &sr, kr.rip, insn, &n);
	if (r)
		goto fail;
	regs_from_kvm(&er, &kr);
	r = emul_run(insn, n, &env, &er, &res);
	if (r)
		goto fail;
	if (res.action != EMUL_DONE) {
		r = inject(v, res.action); /* first: nothing to undo when it fails */
		if (r)
			goto fail;
	}
	if (res.action == EMUL_DONE || res.action == EMUL_INJECT_BP) {
		regs_to_kvm(&kr, &er);
		if (sync) { /* written back by the next KVM_RUN */
			run->s.regs.regs = kr;
			run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
		} else {
			r = kvm_vcpu_set_regs(v, &kr);
			if (r)
				goto fail_regs;
		}
	}
	if (res.action == EMUL_DONE || res.action == EMUL_INJECT_BP)
		emul_stats_add(st, res.kind);
	else
		__atomic_fetch_add(&st->injected, 1, __ATOMIC_RELAXED);
	return 0;
fail_regs:
	/* #BP already injected but RIP not advanced: take the exception back. */
	if (res.action == EMUL_INJECT_BP && inject_cancel(v))
		vwarn("vCPU %u: cannot withdraw #BP after a failed register write", v->id);
fail:
	emul_stats_fail(st);
	log_failure(v, kr.rip, insn, n, r);
	return -ENOTSUP;
}

int kvm_vm_enable_emulation_exits(struct kvm_vm *vm)
{
	struct kvm_enable_cap cap = {.cap = KVM_CAP_EXIT_ON_EMULATION_FAILURE, .args = {1}};
	if (kvm_sys_check_ext(vm->sys, KVM_CAP_EXIT_ON_EMULATION_FAILURE) <= 0)
		return -ENOTSUP;
	return ioctl(vm->fd, KVM_ENABLE_CAP, &cap) < 0 ? -errno : 0;
}
