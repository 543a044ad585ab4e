/* SPDX-License-Identifier: MIT */
/*
 * Serial input: the runner writes text on the VMM's stdin once it sees READY; the probe takes
 * it through the 8250 receive interrupt (GSI_COM1 via the IOAPIC), echoes each line as
 * "ECHO: <line>" (bytes outside printable ASCII as \xNN), checks a "BULK:" line of the
 * pattern abc...zabc... byte for byte (nothing lost or reordered), and stops at a line
 * holding only ".".
 */
#include "probe.h"

PROBE("serial_in");

#define VEC_COM1 0x41
#define RX_TIMEOUT_US 20000000
#define RING 1024
#define LINE 256

static volatile char ring[RING];
static volatile uint32_t ring_head, ring_tail, irqs;
static volatile bool rx_paused;

/* Take at most one FIFO's worth per interrupt; when the ring is full, mask the RX interrupt
 * and leave the bytes in the UART (the VMM must then hold them back, not drop them). */
static void com1_irq(struct trap_frame *f)
{
	(void)f;
	irqs++;
	for (int i = 0; i < 16 && (inb(PORT_COM1 + 5) & 0x01); i++) {
		if (ring_head - ring_tail >= RING) {
			rx_paused = true;
			outb(PORT_COM1 + 1, 0);
			break;
		}
		ring[ring_head % RING] = (char)inb(PORT_COM1);
		__atomic_store_n(&ring_head, ring_head + 1, __ATOMIC_RELEASE);
	}
	lapic_eoi();
}

static void echo(const char *line, unsigned len)
{
	char out[4 * LINE + 1];
	unsigned n = 0;
	for (unsigned i = 0; i < len; i++) {
		uint8_t c = (uint8_t)line[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			out[n++] = (char)c;
		else
			n += (unsigned)snprintf(out + n, sizeof(out) - n, "\\x%02x", c);
	}
	out[n] = 0;
	printf("ECHO: %s\n", out);
}

void probe_main(const struct hvm_start_info *si)
{
	char line[LINE];
	unsigned len = 0, lines = 0, tail = 0, bulk = 0;
	unsigned pauses = 0;
	bool in_bulk = false;
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
		c = ring[tail++ % RING];
		__atomic_store_n(&ring_tail, tail, __ATOMIC_RELEASE);
		if (rx_paused && ring_head - tail < RING / 2) {
			rx_paused = false;
			pauses++;
			outb(PORT_COM1 + 1, 0x01);
		}
		end = time_us() + RX_TIMEOUT_US;
		if (in_bulk) {
			if (c == '\n') {
				printf("BULK: %u bytes ok\n", bulk);
				in_bulk = false;
				lines++;
				continue;
			}
			CHECK(c == (char)('a' + bulk % 26), "BULK byte %u is 0x%x, want '%c' (input lost or reordered)",
			      bulk, (uint8_t)c, 'a' + bulk % 26);
			bulk++;
			continue;
		}
		if (c == '\r')
			continue;
		if (c == '\n') {
			echo(line, len);
			lines++;
			len = 0;
			continue;
		}
		if (c == '.' && len == 0)
			break;
		CHECK(len + 1 < LINE, "input line longer than %u bytes", LINE - 1);
		line[len++] = c;
		if (len == 5 && !memcmp(line, "BULK:", 5)) {
			in_bulk = true;
			bulk = 0;
			len = 0;
		}
	}
	irq_disable();
	outb(PORT_COM1 + 1, 0);
	CHECK(irqs > 0, "input arrived but no RX interrupt");
	CHECK(lines > 0, "terminator seen before any line");
	printf("serial_in: %u line(s), %u bytes, %u RX interrupts, RX paused %u time(s)\n", lines, tail,
	       irqs, pauses);
	probe_pass();
}
