/* SPDX-License-Identifier: MIT */
/*
 * Real-KVM check of kvm_vcpu_complete_emulation(): a tiny 64-bit guest and a tiny 32-bit
 * guest run instructions KVM's emulator lacks (on the nested PVM KVM of our build machines
 * everything right after a trap runs in that emulator), store their results in a table and
 * halt. KVM_EXIT_INTERNAL_ERROR/EMULATION exits are completed by the code under test; the
 * results must be what the instructions compute, whether they ran natively or emulated.
 * Every completed exit is printed (bytes + kind). Skips (exit 77) without a usable /dev/kvm.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "kvm/emulate_vcpu.h"
#include "kvm/kvm.h"
#include "memory/gmem.h"

#define MEM_SIZE (2ULL << 20)
#define CODE 0x10000ULL
#define RES 0x3000ULL /* result slots, 8 bytes each */
#define GDT 0x500ULL
#define IDT 0x600ULL
#define PML4 0x4000ULL /* + PDPT at 0x5000, PD at 0x6000 */

/* clang-format off */
__asm__(".pushsection .rodata\n"
	".intel_syntax noprefix\n"
	".balign 64\n"
	".code64\n"
	"g64:\n"
	"  mov dx, 0x80\n  out dx, al\n"			/* a trap: what follows is emulated on PVM */
	"  mov ebx, 0x0f0f\n  popcnt eax, ebx\n  mov [0x3000], rax\n"
	"  fwait\n"
	"  mov ecx, 0x00ff00ff\n  andn esi, ebx, ecx\n  mov [0x3008], rsi\n"
	"  mov r8d, 8\n  bzhi edi, ecx, r8d\n  mov [0x3010], rdi\n"
	"  mov rdx, 0x8000000000000000\n  mov r9, 3\n  mulx r10, r11, r9\n"
	"  mov [0x3018], r10\n  mov [0x3020], r11\n"
	"  mov r12d, 0xf0\n  pdep eax, ebx, r12d\n  mov [0x3028], rax\n"
	"  rorx r13, rdx, 63\n  mov [0x3030], r13\n"
	"  mov eax, 0xffffffff\n  crc32 rax, qword ptr [rip + g64_str]\n"
	"  crc32 eax, byte ptr [rip + g64_str + 8]\n  not eax\n  mov [0x3038], rax\n"
	"  popcnt r14, qword ptr [rip + g64_ones]\n  mov [0x3040], r14\n"
	"  mov ebx, 0x1234\n  lzcnt eax, ebx\n  mov [0x3048], rax\n" /* KVM's own: recorded */
	"  int3\n"
	"g64_after_int3:\n"
	"  mov dx, 0x80\n  out dx, al\n"
	"  .byte 0xc4, 0xe2, 0x64, 0xf2, 0xc1\n"		/* andn with VEX.L=1: #UD, skipped */
	"  lea rsi, [rip + g64_cx16]\n  mov rax, 1\n  mov rdx, 2\n  mov rbx, 0x33\n  mov rcx, 0x44\n"
	"  lock cmpxchg16b [rsi]\n  setz al\n  movzx eax, al\n  mov [0x3068], rax\n"
	"  rdtscp\n  mov [0x3070], rcx\n"
	"  fninit\n  fldcw word ptr [rip + g64_fcw]\n  fnstcw word ptr [0x3078]\n"
	"  fnstsw ax\n  mov [0x3080], ax\n"
	"  ldmxcsr dword ptr [rip + g64_mxcsr]\n  stmxcsr dword ptr [0x3088]\n  fnclex\n"
	"  fxsave [0x8000]\n  mov eax, [0x8018]\n  mov [0x30b8], rax\n" /* MXCSR, read by KVM */
	"  rdrand rax\n  setc al\n  movzx eax, al\n  mov [0x3090], rax\n"
	"  mov eax, 0xffffffff\n  stc\n  adcx eax, dword ptr [rip + g64_zero]\n  setc bl\n"
	"  movzx ebx, bl\n  shl rbx, 32\n  or rax, rbx\n  mov [0x3098], rax\n"
	"  mov ecx, 36\n  mov ebx, 0x80000000\n  sarx eax, ebx, ecx\n  mov [0x30a0], rax\n"
	"  mov ebx, 0x1c\n  blsr eax, ebx\n  mov [0x30a8], rax\n"
	"  mov ecx, 0x0804\n  mov ebx, 0x12345678\n  bextr eax, ebx, ecx\n  mov [0x30b0], rax\n"
	"  hlt\n"
	".balign 16\n"
	"g64_cx16: .quad 1, 2\n"
	"g64_str: .ascii \"123456789\"\n"
	".balign 8\n"
	"g64_ones: .quad 0xffff\n"
	"g64_fcw: .word 0x027f\n"
	".balign 4\n"
	"g64_mxcsr: .long 0x1fc0\n"
	"g64_zero: .long 0\n"
	/* #BP: slot 10 = the pushed RIP, slot 11 += 1. #UD: skip 5 bytes, slot 12 += 1. */
	".balign 16\n"
	"g64_bp:\n  push rax\n  mov rax, [rsp + 8]\n  mov [0x3050], rax\n"
	"  inc qword ptr [0x3058]\n  pop rax\n  iretq\n"
	".balign 16\n"
	"g64_ud:\n  add qword ptr [rsp], 5\n  inc qword ptr [0x3060]\n  iretq\n"
	".balign 16\n"
	"g64_other:\n  mov qword ptr [0x30f8], 0xdead\n  hlt\n"
	"g64_end:\n"
	".balign 64\n"
	".code32\n"
	"g32:\n"
	"  mov dx, 0x80\n  out dx, al\n"
	"  mov ebx, 0x0f0f\n  popcnt eax, ebx\n  mov [0x3000], eax\n"
	"  fwait\n"
	"  mov ecx, 0x00ff00ff\n  andn esi, ebx, ecx\n  mov [0x3008], esi\n"
	"  rdrand eax\n  setc al\n  movzx eax, al\n  mov [0x3010], eax\n"
	"  mov eax, 0xffffffff\n  crc32 eax, dword ptr [0x10000 + g32_str - g32]\n"
	"  crc32 eax, dword ptr [0x10000 + g32_str - g32 + 4]\n"
	"  crc32 eax, byte ptr [0x10000 + g32_str - g32 + 8]\n  not eax\n  mov [0x3018], eax\n"
	"  popcnt eax, dword ptr [0x10000 + g32_ones - g32]\n  mov [0x3020], eax\n"
	"  mov edx, 0x80000000\n  mov ebx, 4\n  mulx ecx, esi, ebx\n  mov [0x3028], ecx\n  mov [0x302c], esi\n"
	"  hlt\n"
	".balign 4\n"
	"g32_str: .ascii \"123456789\"\n"
	".balign 4\n"
	"g32_ones: .long 0x00ff00ff\n"
	"g32_end:\n"
	".code64\n"
	".att_syntax prefix\n"
	".popsection\n");
/* clang-format on */
extern const uint8_t g64[], g64_end[], g64_after_int3[], g64_bp[], g64_ud[], g64_other[];
extern const uint8_t g64_cx16[];
extern const uint8_t g32[], g32_end[];

struct vm {
	struct kvm_sys sys;
	struct kvm_vm vm;
	struct kvm_vcpu cpu;
	struct gmem mem;
	uint8_t *ram;
	struct emul_stats st;
	unsigned emul_exits;
	enum emul_mode mode;
};

static void seg(struct kvm_segment *s, uint16_t sel, bool code, bool l, bool db)
{
	memset(s, 0, sizeof(*s));
	s->limit = 0xffffffff;
	s->selector = sel;
	s->present = 1;
	s->s = 1;
	s->type = code ? 0xb : 0x3;
	s->l = l;
	s->db = db;
	s->g = 1;
}

static uint64_t guest_addr(const uint8_t *start, const uint8_t *label)
{
	return CODE + (uint64_t)(label - start);
}

static void idt_gate(uint8_t *ram, unsigned vec, uint64_t handler)
{
	uint64_t *g = (uint64_t *)(void *)(ram + IDT + 16 * vec);
	g[0] = (handler & 0xffff) | (0x08ULL << 16) | (0x8eULL << 40) |
	       ((handler >> 16) & 0xffff) << 48;
	g[1] = handler >> 32;
}

static void vm_create(struct vm *t, bool long_mode)
{
	const char *missing;
	struct kvm_sregs s;
	memset(t, 0, sizeof(*t));
	t->mode = long_mode ? EMUL_MODE_64 : EMUL_MODE_PROT32;
	assert_int_equal(kvm_sys_open(&t->sys, "/dev/kvm", &missing), 0);
	assert_int_equal(kvm_vm_create(&t->vm, &t->sys), 0);
	int r = kvm_vm_enable_emulation_exits(&t->vm);
	print_message("KVM_CAP_EXIT_ON_EMULATION_FAILURE: %s\n", r ? strerror(-r) : "enabled");
	t->ram = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(t->ram != MAP_FAILED);
	assert_int_equal(gmem_init_fake(&t->mem, 0, t->ram, MEM_SIZE), 0);
	assert_int_equal(kvm_vm_set_memory(&t->vm, 0, 0, MEM_SIZE, t->ram), 0);
	assert_int_equal(kvm_vcpu_create(&t->cpu, &t->vm, 0), 0);
	assert_int_equal(kvm_vcpu_set_cpuid(&t->cpu, t->sys.supported_cpuid), 0);

	uint64_t *gdt = (uint64_t *)(void *)(t->ram + GDT);
	gdt[1] = 0x00af9b000000ffffULL; /* 0x08 code64 */
	gdt[2] = 0x00cf93000000ffffULL; /* 0x10 data */
	gdt[3] = 0x00cf9b000000ffffULL; /* 0x18 code32 */
	uint64_t *pml4 = (uint64_t *)(void *)(t->ram + PML4);
	uint64_t *pdpt = (uint64_t *)(void *)(t->ram + PML4 + 0x1000);
	uint64_t *pd = (uint64_t *)(void *)(t->ram + PML4 + 0x2000);
	pml4[0] = (PML4 + 0x1000) | 3;
	pdpt[0] = (PML4 + 0x2000) | 3;
	pd[0] = 0x83; /* one 2 MiB identity page */
	memset(t->ram + RES, 0xff, 0x100);

	assert_int_equal(kvm_vcpu_get_sregs(&t->cpu, &s), 0);
	s.gdt.base = GDT;
	s.gdt.limit = 4 * 8 - 1;
	s.idt.base = IDT;
	s.idt.limit = 32 * 16 - 1;
	s.cr4 = 0x600; /* OSFXSR, OSXMMEXCPT */
	if (long_mode) {
		s.cr3 = PML4;
		s.cr4 |= 0x20; /* PAE */
		s.cr0 = 0x80000033;
		s.efer = 0x500; /* LME, LMA */
		seg(&s.cs, 0x08, true, true, false);
	} else {
		s.cr0 = 0x33;
		s.efer = 0;
		seg(&s.cs, 0x18, true, false, true);
	}
	seg(&s.ds, 0x10, false, false, true);
	s.es = s.ss = s.fs = s.gs = s.ds;
	assert_int_equal(kvm_vcpu_set_sregs(&t->cpu, &s), 0);
}

static void vm_destroy(struct vm *t)
{
	kvm_vcpu_destroy(&t->cpu);
	kvm_vm_destroy(&t->vm);
	kvm_sys_close(&t->sys);
	munmap(t->ram, MEM_SIZE);
}

static void vm_run(struct vm *t, const uint8_t *start, const uint8_t *end)
{
	struct kvm_regs r;
	memcpy(t->ram + CODE, start, (size_t)(end - start));
	memset(&r, 0, sizeof(r));
	r.rip = CODE;
	r.rsp = 0x80000;
	r.rflags = 2;
	assert_int_equal(kvm_vcpu_set_regs(&t->cpu, &r), 0);
	for (int i = 0; i < 10000; i++) {
		int e = kvm_vcpu_run(&t->cpu);
		if (e == -EINTR)
			continue;
		assert_int_equal(e, 0);
		struct kvm_run *run = t->cpu.run;
		if (run->exit_reason == KVM_EXIT_IO)
			continue;
		if (run->exit_reason == KVM_EXIT_HLT)
			return;
		if (run->exit_reason == KVM_EXIT_INTERNAL_ERROR &&
		    run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION) {
			char hex[64] = "";
			unsigned n = MIN(run->emulation_failure.insn_size, (unsigned)EMUL_MAX_INSN);
			struct emul_insn d;
			int dr = emul_decode(run->emulation_failure.insn_bytes, n, t->mode, &d);
			for (unsigned k = 0; k < 6 && k < n; k++)
				snprintf(hex + 3 * k, sizeof(hex) - 3 * k, "%02x ",
					 run->emulation_failure.insn_bytes[k]);
			assert_int_equal(kvm_vcpu_get_regs(&t->cpu, &r), 0);
			print_message("  internal error at %#llx: %s-> %s\n",
				      (unsigned long long)r.rip, hex,
				      dr >= 0 ? emul_kind_name(d.kind) : "unknown");
			t->emul_exits++;
			uint64_t injected = t->st.injected;
			assert_int_equal(kvm_vcpu_complete_emulation(&t->cpu, &t->mem, &t->st), 0);
			/* Registers went back through kvm_run (a fault injection writes none). */
			if (run->kvm_valid_regs && t->st.injected == injected)
				assert_true(run->kvm_dirty_regs & KVM_SYNC_X86_REGS);
			continue;
		}
		assert_int_equal(kvm_vcpu_get_regs(&t->cpu, &r), 0);
		print_message("unexpected exit %u at rip %#llx\n", run->exit_reason,
			      (unsigned long long)r.rip);
		fail();
	}
	fail_msg("guest did not halt");
}

static uint64_t slot(const struct vm *t, unsigned i)
{
	uint64_t v;
	memcpy(&v, t->ram + RES + 8 * i, 8);
	return v;
}

static void report(struct vm *t)
{
	char buf[512];
	emul_stats_format(&t->st, buf, sizeof(buf));
	print_message("%u emulation exits completed; %s injected=%llu\n", t->emul_exits, buf,
		      (unsigned long long)t->st.injected);
}

/* *state: use KVM_CAP_SYNC_REGS (registers in kvm_run) instead of register ioctls. */
static void test_long_mode(void **state)
{
	const bool sync = *state != NULL;
	struct vm *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	vm_create(t, true);
	if (sync) {
		if (kvm_sys_check_ext(&t->sys, KVM_CAP_SYNC_REGS) <= 0)
			skip();
		t->cpu.run->kvm_valid_regs = KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS;
	}
	for (unsigned v = 0; v < 32; v++)
		idt_gate(t->ram, v, guest_addr(g64, g64_other));
	idt_gate(t->ram, 3, guest_addr(g64, g64_bp));
	idt_gate(t->ram, 6, guest_addr(g64, g64_ud));
	union {
		struct kvm_msrs h;
		uint8_t raw[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
	} msr;
	memset(&msr, 0, sizeof(msr));
	msr.h.nmsrs = 1;
	msr.h.entries[0].index = 0xc0000103; /* TSC_AUX, read back by rdtscp */
	msr.h.entries[0].data = 0x42;
	int r = kvm_vcpu_set_msrs(&t->cpu, &msr.h);
	print_message("set TSC_AUX: %s\n", r ? strerror(-r) : "ok");
	vm_run(t, g64, g64_end);
	report(t);
	assert_int_equal(slot(t, 31), 0xffffffffffffffffULL); /* no unexpected exception */
	assert_int_equal(slot(t, 0), 8);		      /* popcnt */
	assert_int_equal(slot(t, 1), 0x00ff00f0);	      /* andn */
	assert_int_equal(slot(t, 2), 0xff);		      /* bzhi */
	assert_int_equal(slot(t, 3), 1);		      /* mulx high */
	assert_int_equal(slot(t, 4), 0x8000000000000000ULL);  /* mulx low */
	assert_int_equal(slot(t, 5), 0xf0);		      /* pdep */
	assert_int_equal(slot(t, 6), 1);		      /* rorx */
	assert_int_equal(slot(t, 7), 0xe3069283);	      /* crc32c("123456789") */
	assert_int_equal(slot(t, 8), 16);		      /* popcnt [rip+x] */
	print_message("lzcnt(0x1234) in the guest: %llu (19 = lzcnt, 12 = bsr)\n",
		      (unsigned long long)slot(t, 9));
	assert_int_equal(slot(t, 10), guest_addr(g64, g64_after_int3)); /* #BP frame RIP */
	assert_int_equal(slot(t, 11), 0);				/* 0xffff...ff + 1 */
	assert_int_equal(slot(t, 12), 0);				/* one #UD */
	assert_int_equal(slot(t, 13), 1);				/* cmpxchg16b succeeded */
	uint64_t cx[2];
	memcpy(cx, t->ram + guest_addr(g64, g64_cx16), 16);
	assert_int_equal(cx[0], 0x33);
	assert_int_equal(cx[1], 0x44);
	if (r == 0)
		assert_int_equal(slot(t, 14), 0x42);	    /* rdtscp: TSC_AUX */
	assert_int_equal(slot(t, 15) & 0xffff, 0x027f);	    /* fldcw + fnstcw */
	assert_int_equal(slot(t, 16) & 0xffff, 0);	    /* fnstsw after fninit */
	assert_int_equal(slot(t, 17) & 0xffffffff, 0x1fc0); /* ldmxcsr + stmxcsr */
	assert_int_equal(slot(t, 23) & 0xffffffff, 0x1fc0); /* ... as fxsave sees it */
	assert_true(slot(t, 18) <= 1);			    /* rdrand: CF */
	assert_int_equal(slot(t, 19), 0x100000000ULL);	    /* adcx: 0, CF=1 */
	assert_int_equal(slot(t, 20), 0xf8000000);	    /* sarx */
	assert_int_equal(slot(t, 21), 0x18);		    /* blsr */
	assert_int_equal(slot(t, 22), 0x67);		    /* bextr */
	vm_destroy(t);
	free(t);
}

static void test_protected_mode(void **state)
{
	(void)state;
	struct vm *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	vm_create(t, false);
	vm_run(t, g32, g32_end);
	report(t);
	assert_int_equal(slot(t, 0) & 0xffffffff, 8);
	assert_int_equal(slot(t, 1) & 0xffffffff, 0x00ff00f0);
	assert_true((slot(t, 2) & 0xffffffff) <= 1);
	assert_int_equal(slot(t, 3) & 0xffffffff, 0xe3069283);
	assert_int_equal(slot(t, 4) & 0xffffffff, 16);
	assert_int_equal(slot(t, 5), 0x0000000000000002ULL); /* mulx: ecx = 2, esi = 0 */
	vm_destroy(t);
	free(t);
}

int main(void)
{
	static int sync_regs = 1;
	struct kvm_sys s;
	const char *missing = NULL;
	int r = kvm_sys_open(&s, "/dev/kvm", &missing);
	if (r) {
		printf("SKIP: /dev/kvm not usable: %s%s%s\n", strerror(-r),
		       missing ? ", missing " : "", missing ? missing : "");
		return 77;
	}
	kvm_sys_close(&s);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_prestate(test_long_mode, NULL),
	    cmocka_unit_test_prestate(test_long_mode, (void *)&sync_regs),
	    cmocka_unit_test(test_protected_mode),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
