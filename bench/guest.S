/* SPDX-License-Identifier: MIT */
/*
 * bench-guest: the smallest PVH guest that proves a VMM ran it, for bench/run.sh.
 *
 * Entered in 32-bit flat protected mode through the PVH note (XEN_ELFNOTE_PHYS32_ENTRY), it
 * writes BENCH_LINE to COM1 (0x3F8, waiting for THRE in the LSR with a bounded loop), then
 * asks for a reset in two ways so that the same ELF stops on every VMM we compare:
 *   1. i8042 command 0xFE to port 0x64 (Vireo; also PC machines);
 *   2. a byte 0x42 to 0xFEA00202, the ACPI GED reset register of QEMU's microvm machine, which
 *      has no i8042.
 * Nothing else: no stack, no paging, no interrupts. If neither reset works it halts forever
 * (the runner's timeout catches that).
 * Built with -DBENCH_TOUCH (bench-guest-touch), it first writes one word to every 4 KiB page
 * from TOUCH_START to TOUCH_END (236 MiB, within a 256 MiB guest): the cost of populating guest
 * RAM, which depends on how the VMM backs it.
 */
#define COM1 0x3f8
#define COM1_LSR (COM1 + 5)
#define LSR_THRE 0x20
#define I8042_CMD 0x64
#define I8042_RESET 0xfe
#define MICROVM_GED_RESET 0xfea00202
#define MICROVM_GED_RESET_VALUE 0x42
#define TOUCH_START 0x00400000
#define TOUCH_END 0x0f000000

	.section .note.Xen, "a", @note
	.balign 4
	.long 4			/* namesz */
	.long 4			/* descsz */
	.long 18		/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.long bench_start32

	.text
	.code32
	.globl bench_start32
bench_start32:
	cli
#ifdef BENCH_TOUCH
	movl $TOUCH_START, %edi
0:	movl %edi, (%edi)
	addl $4096, %edi
	cmpl $TOUCH_END, %edi
	jb 0b
#endif
	movl $bench_line, %esi
1:	movb (%esi), %bl
	testb %bl, %bl
	jz 3f
	movw $COM1_LSR, %dx
	movl $100000, %ecx
2:	inb %dx, %al
	testb $LSR_THRE, %al
	jnz 4f
	loop 2b
4:	movw $COM1, %dx
	movb %bl, %al
	outb %al, %dx
	incl %esi
	jmp 1b
3:	movb $I8042_RESET, %al
	outb %al, $I8042_CMD
	movb $MICROVM_GED_RESET_VALUE, MICROVM_GED_RESET
5:	hlt
	jmp 5b

	.section .rodata
bench_line:
	.asciz "VIREO-BENCH: guest ran\r\n"
