/* SPDX-License-Identifier: MIT */
/* Serial output: the 8250 registers Linux's driver relies on, then known text for the runner. */
#include "probe.h"

PROBE("serial");

#define COM(r) (PORT_COM1 + (r))

void probe_main(const struct hvm_start_info *si)
{
	uint8_t msr, lsr;
	(void)si;

	CHECK(!boot_bss_was_dirty, "the loader left non-zero bytes in .bss (memsz beyond filesz)");

	outb(COM(7), 0xa5);
	CHECK(inb(COM(7)) == 0xa5, "scratch register does not hold 0xa5 (reads 0x%x)", inb(COM(7)));
	outb(COM(7), 0x5a);
	CHECK(inb(COM(7)) == 0x5a, "scratch register does not hold 0x5a");

	CHECK(inb(COM(3)) == 0x03, "LCR reads 0x%x, wrote 0x03", inb(COM(3)));
	outb(COM(3), 0x83); /* DLAB: divisor latch readback */
	outb(COM(0), 0x0c);
	outb(COM(1), 0x00);
	CHECK(inb(COM(0)) == 0x0c && inb(COM(1)) == 0x00, "divisor latch reads 0x%x%02x, wrote 0x000c",
	      inb(COM(1)), inb(COM(0)));
	outb(COM(0), 0x01);
	outb(COM(3), 0x03);

	lsr = inb(COM(5));
	CHECK(lsr & 0x20, "LSR 0x%x: THRE clear on an idle transmitter", lsr);
	CHECK(inb(COM(1)) == 0, "IER reads 0x%x after writing 0", inb(COM(1)));
	CHECK(inb(COM(2)) & 0x01, "IIR 0x%x: interrupt pending with IER=0", inb(COM(2)));

	/* Linux's 8250 autoconfig loopback test: MCR = LOOP|OUT2|RTS must read MSR[7:4] = 0x9. */
	outb(COM(4), 0x1a);
	msr = inb(COM(6)) & 0xf0;
	outb(COM(4), 0x0b);
	CHECK(msr == 0x90, "loopback MSR[7:4] = 0x%x, want 0x90 (Linux would reject the port)", msr);

	printf("serial: the quick brown fox jumps over the lazy dog 0123456789\n");
	printf("serial: fmt %d %u 0x%x %s %c %05d|%-3s|\n", -42, 42u, 0xbeefu, "str", 'c', 7, "ab");
	for (int i = 0; i < 4; i++)
		printf("serial: line %d of 4 ................................................................\n", i);
	probe_pass();
}
