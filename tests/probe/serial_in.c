/* SPDX-License-Identifier: MIT */
/*
 * Serial input: the runner writes text on the VMM's stdin once it sees READY; the probe takes
 * it through the 8250 receive interrupt (GSI_COM1 via the IOAPIC), echoes each line as
 * "ECHO: <line>" and stops at a line holding only ".".
 */
#include "probe.h"

PROBE("serial_in");

#define VEC_COM1 0x41
#define RX_TIMEOUT_US 20000000
#define BUF 256

static volatile char ring[BUF];
static volatile uint32_t ring_head, irqs;

static void com1_irq(struct trap_frame *f)
{
	(void)f;
	irqs++;
	while (inb(PORT_COM1 + 5) & 0x01) {
		char c = (char)inb(PORT_COM1);
		ring[ring_head % BUF] = c;
		ring_head++;
	}
	lapic_eoi();
}

void probe_main(const struct hvm_start_info *si)
{
	char line[BUF];
	unsigned len = 0, lines = 0, tail = 0;
	uint64_t end;
	(void)si;

	irq_set_handler(VEC_COM1, com1_irq);
	ioapic_route(GSI_COM1, VEC_COM1, (uint8_t)lapic_id(), false, false, false);
	while (inb(PORT_COM1 + 5) & 0x01) /* drop anything stale */
		(void)inb(PORT_COM1);
	outb(PORT_COM1 + 1, 0x01); /* IER: received data available */
	irq_enable();
	printf("PROBE serial_in: READY\n");

	end = time_us() + RX_TIMEOUT_US;
	for (;;) {
		char c;
		if (tail == __atomic_load_n(&ring_head, __ATOMIC_ACQUIRE)) {
			if (time_us() > end) {
				irq_disable();
				probe_fail("no input for %u s (got %u lines, %u bytes; %u RX interrupts; LSR 0x%x)",
					   RX_TIMEOUT_US / 1000000, lines, tail, irqs, inb(PORT_COM1 + 5));
			}
			cpu_relax();
			continue;
		}
		CHECK(ring_head - tail < BUF, "receive ring overflow");
		c = ring[tail++ % BUF];
		end = time_us() + RX_TIMEOUT_US;
		if (c == '\r')
			continue;
		if (c == '\n') {
			line[len] = 0;
			printf("ECHO: %s\n", line);
			lines++;
			len = 0;
			continue;
		}
		if (c == '.' && len == 0)
			break;
		CHECK(len + 1 < BUF, "input line longer than %u bytes", BUF - 1);
		line[len++] = c;
	}
	irq_disable();
	outb(PORT_COM1 + 1, 0);
	CHECK(irqs > 0, "input arrived but no RX interrupt");
	CHECK(lines > 0, "terminator seen before any line");
	printf("serial_in: %u line(s), %u bytes, %u RX interrupts\n", lines, tail, irqs);
	probe_pass();
}
