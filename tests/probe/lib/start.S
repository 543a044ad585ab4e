/* SPDX-License-Identifier: MIT */
/*
 * PVH entry of a probe guest: the ELF note that announces the 32-bit entry point, the switch
 * from 32-bit protected mode to long mode on our own GDT and page tables, the 256 interrupt
 * stubs feeding trap_dispatch(), and the AP real-mode trampoline (copied to TRAMP_BASE).
 */
#define TRAMP_BASE 0x10000
#define SEL_CODE64 0x08
#define SEL_DATA 0x10
#define SEL_CODE32 0x18
#define STACK_SIZE 0x4000
#define AP_STACK_SIZE 0x2000
#define MAX_CPUS 32

/* ---- the PVH note: XEN_ELFNOTE_PHYS32_ENTRY (18), name "Xen", desc = 32-bit entry -------- */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4			/* namesz */
	.long 4			/* descsz */
	.long 18		/* type */
	.asciz "Xen"
	.long pvh_start32

/* ---- 32-bit entry -------------------------------------------------------------------------- */
	.section .text.entry, "ax", @progbits
	.code32
	.globl pvh_start32
pvh_start32:
	cli
	movl %ebx, %esi			/* keep start_info across the setup */
	/* Record the entry state for the pvh probe (written to .data, which is not wiped). */
	movl $entry_scratch_top, %esp	/* in .data: the .bss check below must not see it */
	pushfl
	popl boot_entry_state + 8
	cld
	movl %cr0, %eax
	movl %eax, boot_entry_state + 0
	movl %cr4, %eax
	movl %eax, boot_entry_state + 4
	movl $0xc0000080, %ecx
	rdmsr
	movl %eax, boot_entry_state + 12
	movw %cs, boot_entry_state + 16
	movw %ds, boot_entry_state + 18
	movw %ss, boot_entry_state + 20
	lgdt gdt_desc
	ljmp $SEL_CODE32, $1f
1:	movl $SEL_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl %eax, %fs
	movl %eax, %gs

	/* Note whether the loader zeroed .bss (the ELF says memsz > filesz), then zero it. */
	movl $__bss_start, %edi
	movl $__bss_end, %ecx
	subl %edi, %ecx
	xorl %eax, %eax
	repe scasb
	je 2f
	movl $1, boot_bss_was_dirty
2:	movl $__bss_start, %edi
	movl $__bss_end, %ecx
	subl %edi, %ecx
	xorl %eax, %eax
	rep stosb
	movl %esi, boot_start_info	/* .data, written after the bss wipe */
	movl $0, ap_started		/* only the BSP comes through here, on every boot */

	/* PML4[0] -> PDPT; PDPT[0..3] -> PD0..3; PDn[i] = n GiB + i * 2 MiB, 2 MiB pages. */
	movl $pdpt, %eax
	orl $0x3, %eax
	movl %eax, pml4
	xorl %ecx, %ecx
3:	movl %ecx, %eax
	shll $12, %eax
	addl $pd, %eax
	orl $0x3, %eax
	movl %eax, pdpt(,%ecx,8)
	incl %ecx
	cmpl $4, %ecx
	jne 3b
	xorl %ecx, %ecx			/* entry index over the 4 contiguous PDs */
4:	movl %ecx, %eax
	shll $21, %eax
	orl $0x83, %eax			/* present, writable, 2 MiB */
	cmpl $(3 * 512), %ecx
	jb 5f
	orl $0x18, %eax			/* PWT|PCD for the MMIO hole at 3..4 GiB */
5:	movl %eax, pd(,%ecx,8)
	movl $0, pd+4(,%ecx,8)
	incl %ecx
	cmpl $(4 * 512), %ecx
	jne 4b

	.globl enter_long_mode
enter_long_mode:			/* shared with the AP trampoline: 32-bit, flat data */
	movl %cr4, %eax
	orl $0x20, %eax			/* PAE */
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	movl $0xc0000080, %ecx		/* EFER.LME */
	rdmsr
	orl $0x100, %eax
	wrmsr
	movl %cr0, %eax
	orl $0x80010001, %eax		/* PG | WP | PE */
	movl %eax, %cr0
	ljmp $SEL_CODE64, $long_entry

	.code64
long_entry:
	movl $SEL_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl %eax, %fs
	movl %eax, %gs
	lidt idt_desc(%rip)
	cmpl $0, ap_started(%rip)
	jne ap_long_entry
	movl $1, ap_started(%rip)	/* from now on, long_entry is the AP path */
	leaq boot_stack_top(%rip), %rsp
	xorl %ebp, %ebp
	call probe_entry
	cli
9:	hlt
	jmp 9b

ap_long_entry:
	movl $1, %eax
	lock xaddl %eax, ap_next_index(%rip)
	cmpl $(MAX_CPUS - 1), %eax
	jae 9b				/* more APs than stacks: park it */
	movl %eax, %edi
	leal 1(%eax), %eax
	imull $AP_STACK_SIZE, %eax
	leaq ap_stacks(%rip), %rsp
	addq %rax, %rsp
	xorl %ebp, %ebp
	call ap_entry
	cli
8:	hlt
	jmp 8b

/* ---- interrupt stubs: push a zero error code where the CPU pushes none, then the vector --- */
	.section .text
	.align 16
trap_common:
	pushq %rax
	pushq %rbx
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %rbp
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	movq %rsp, %rdi			/* 16-byte aligned: 5 + 2 + 15 quadwords pushed */
	cld
	call trap_dispatch
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rbp
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rbx
	popq %rax
	addq $16, %rsp
	iretq

	.globl trap_stubs
	.align 16
trap_stubs:
	.set vec, 0
	.rept 256
	.align 16
	.if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	nop
	nop
	.else
	pushq $0
	.endif
	pushq $vec
	jmp trap_common
	.set vec, vec + 1
	.endr

/* ---- AP trampoline: copied to TRAMP_BASE, entered by SIPI at CS = TRAMP_BASE >> 4, IP = 0 -- */
#define T(x) (TRAMP_BASE + (x) - tramp_start)
	.section .rodata.tramp, "a", @progbits
	.code16
	.globl tramp_start, tramp_end
tramp_start:
	cli
	cld
	movw %cs, %ax
	movw %ax, %ds
	lgdtl tramp_gdt_desc - tramp_start
	movl %cr0, %eax
	orl $1, %eax
	movl %eax, %cr0
	ljmpl $SEL_CODE32, $T(tramp32)
	.code32
tramp32:
	movl $SEL_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl $enter_long_mode, %eax	/* absolute: a near jmp is relative and this code moved */
	jmp *%eax
	.balign 8
tramp_gdt_desc:
	.word gdt_end - gdt - 1
	.long gdt
tramp_end:
	.code64

/* ---- data ---------------------------------------------------------------------------------- */
	.section .data
	.balign 16
gdt:
	.quad 0
	.quad 0x00af9a000000ffff	/* 0x08: 64-bit code */
	.quad 0x00cf92000000ffff	/* 0x10: flat data */
	.quad 0x00cf9a000000ffff	/* 0x18: 32-bit code */
gdt_end:
	.balign 8
	.word 0, 0, 0
gdt_desc:
	.word gdt_end - gdt - 1
	.quad gdt
	.balign 8
	.globl idt_desc
	.word 0, 0, 0
idt_desc:
	.word 256 * 16 - 1
	.quad idt
	.balign 16
entry_scratch:
	.long 0, 0, 0, 0
entry_scratch_top:
	.globl boot_start_info, boot_bss_was_dirty, boot_entry_state
	.balign 8
boot_entry_state:			/* cr0, cr4, eflags, efer, cs, ds, ss */
	.long 0, 0, 0, 0
	.word 0, 0, 0, 0
boot_start_info:
	.quad 0
boot_bss_was_dirty:
	.long 0
ap_started:
	.long 0
	.globl ap_next_index
ap_next_index:
	.long 0

	.section .bss
	.balign 4096
	.globl pml4, idt
pml4:	.skip 4096
pdpt:	.skip 4096
pd:	.skip 4 * 4096
idt:	.skip 256 * 16
	.balign 16
boot_stack:
	.skip STACK_SIZE
boot_stack_top:
	.globl ap_stacks
	.balign 16
ap_stacks:
	.skip MAX_CPUS * AP_STACK_SIZE

	.section .note.GNU-stack, "", @progbits
