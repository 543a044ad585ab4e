/* SPDX-License-Identifier: MIT */
/*
 * IOAPIC: identification, redirection entry read-back, and a real device interrupt (the 8250
 * "transmitter empty" interrupt on GSI_COM1) delivered edge- and level-triggered, with the
 * remote IRR set until EOI and no storm once the UART condition is cleared.
 */
#include "probe.h"

PROBE("ioapic");

#define VEC_COM1 0x42
#define REDIR(pin) (0x10 + 2 * (pin))

static volatile uint32_t irqs, remote_irr_seen;
static volatile bool ack_uart = true;

static void on_com1(struct trap_frame *f)
{
	(void)f;
	irqs++;
	if (ioapic_read(REDIR(GSI_COM1)) & (1u << 14))
		remote_irr_seen++;
	if (ack_uart)
		(void)inb(PORT_COM1 + 2); /* IIR read clears THRE-pending */
	lapic_eoi();
}

static unsigned count_for(uint64_t us)
{
	uint64_t end = time_us() + us;
	while (time_us() < end)
		cpu_relax();
	return irqs;
}

void probe_main(const struct hvm_start_info *si)
{
	uint32_t ver = ioapic_read(1), lo, n;
	uint8_t me = (uint8_t)lapic_id();
	(void)si;

	printf("ioapic: id 0x%x version 0x%x, %u pins\n", ioapic_read(0), ver & 0xff, ioapic_pins());
	CHECK((ver & 0xff) == 0x11 || (ver & 0xff) == 0x20, "IOAPIC version 0x%x", ver & 0xff);
	CHECK(ioapic_pins() >= 24, "IOAPIC has %u pins", ioapic_pins());

	ioapic_route(10, 0x99, 0, true, true, true);
	lo = ioapic_read(REDIR(10)) & ~((1u << 12) | (1u << 14)); /* minus the read-only bits */
	CHECK(lo == (0x99 | (1u << 13) | (1u << 15) | (1u << 16)), "redirection entry reads 0x%x", lo);

	irq_set_handler(VEC_COM1, on_com1);
	irq_enable();

	/* edge, active high (how Linux programs ISA IRQs) */
	ioapic_route(GSI_COM1, VEC_COM1, me, false, false, false);
	outb(PORT_COM1 + 1, 0x02); /* IER: THR empty */
	n = count_for(100000);
	outb(PORT_COM1 + 1, 0); /* before printing: output raises THRE again */
	(void)inb(PORT_COM1 + 2);
	udelay(10000);
	printf("ioapic: edge: %u interrupt(s)\n", n);
	CHECK(n >= 1, "no COM1 THRE interrupt through the IOAPIC (edge)");
	CHECK(n <= 3, "%u COM1 interrupts for one THRE event (edge)", n);

	/* level, active high: remote IRR set while in service; cleared condition = no storm */
	irqs = 0;
	remote_irr_seen = 0;
	ioapic_route(GSI_COM1, VEC_COM1, me, true, false, false);
	outb(PORT_COM1 + 1, 0x02);
	n = count_for(100000);
	lo = ioapic_read(REDIR(GSI_COM1));
	outb(PORT_COM1 + 1, 0);
	(void)inb(PORT_COM1 + 2);
	udelay(10000);
	printf("ioapic: level: %u interrupt(s), remote IRR seen %u time(s)\n", n, remote_irr_seen);
	CHECK(n >= 1, "no COM1 THRE interrupt through the IOAPIC (level)");
	CHECK(n <= 3, "%u COM1 interrupts in 100 ms (level): the line stays asserted after IIR read", n);
	CHECK(remote_irr_seen >= 1, "remote IRR never set in the handler of a level interrupt");
	CHECK(!(lo & (1u << 14)), "remote IRR still set after EOI");

	/* masked: nothing arrives */
	irqs = 0;
	ioapic_route(GSI_COM1, VEC_COM1, me, false, false, true);
	outb(PORT_COM1 + 1, 0x02);
	n = count_for(50000);
	CHECK(n == 0, "%u interrupt(s) through a masked IOAPIC pin", n);
	outb(PORT_COM1 + 1, 0);
	(void)inb(PORT_COM1 + 2);
	irq_disable();
	probe_pass();
}
