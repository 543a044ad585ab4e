/* SPDX-License-Identifier: MIT */
/*
 * Ticker: a guest for the command-line tests that runs until told otherwise, so the tests can
 * watch it make progress (or not) from the host.
 *
 * - Prints "TICK <n>" every period_ms (command line "period=<ms>", default 50), n = 1, 2, ...
 *   Between ticks the CPU halts (LAPIC timer wake-ups every 5 ms), so it does not hog a host CPU.
 * - Echoes serial input line by line as "ECHO: <line>" (COM1 polled on every wake-up).
 * - Polls the ACPI GED: on a power button event it prints "TICKER: power button" and powers off
 *   (what `vireo ctl SOCKET shutdown` asks for).
 * - "ticks=<n>": power off after tick n. "reboots=<n>": the first n boots of one VMM process
 *   reset through the ACPI reset register after "TICKER: boot <b>"; the boot count lives in CMOS
 *   NVRAM (kept across resets, fresh in a new process). Boot n + 1 then ticks as above.
 * Built from the probe framework (tests/probe/lib); prints "PROBE-BOOT ticker" on every boot.
 */
#include "probe.h"

PROBE("ticker");

#define VEC_WAKE 0x61
#define WAKE_NS 5000000u /* LAPIC timer period: 5 ms at KVM's 1 GHz APIC bus */
#define CMOS_BOOTS 0x7d	 /* NVRAM byte: boots counted by "reboots=" */
#define LINE_MAX 200

static volatile uint32_t wakeups;

static void on_wake(struct trap_frame *f)
{
	(void)f;
	wakeups++;
	lapic_eoi();
}

static void poll_input(char *line, unsigned *len)
{
	while (inb(PORT_COM1 + 5) & 0x01) {
		char c = (char)inb(PORT_COM1);
		if (c == '\r')
			continue;
		if (c == '\n' || *len + 1 >= LINE_MAX) {
			line[*len] = 0;
			printf("ECHO: %s\n", line);
			*len = 0;
			if (c == '\n')
				continue;
		}
		line[(*len)++] = c;
	}
}

void probe_main(const struct hvm_start_info *si)
{
	uint64_t period_us = cmdline_u64("period", 50) * 1000, limit = cmdline_u64("ticks", 0);
	uint64_t reboots = cmdline_u64("reboots", 0), next, n = 0;
	char line[LINE_MAX];
	unsigned len = 0;
	(void)si;

	if (reboots) {
		unsigned boot = (unsigned)cmos_read(CMOS_BOOTS) + 1;
		printf("TICKER: boot %u\n", boot);
		if (boot <= reboots) {
			cmos_write(CMOS_BOOTS, (uint8_t)boot);
			reset_acpi();
		}
		cmos_write(CMOS_BOOTS, 0);
	}
	(void)inb(PORT_ACPI_GED); /* drop stale events */
	irq_set_handler(VEC_WAKE, on_wake);
	lapic_write(LAPIC_TIMER_DIV, 0xb);
	lapic_write(LAPIC_LVT_TIMER, LAPIC_TIMER_PERIODIC | VEC_WAKE);
	lapic_write(LAPIC_TIMER_INIT, WAKE_NS);
	printf("TICKER: READY period %lu ms\n", period_us / 1000);
	next = time_us() + period_us;
	for (;;) {
		irq_enable_and_halt();
		irq_disable();
		poll_input(line, &len);
		if (inb(PORT_ACPI_GED) & ACPI_GED_EVT_POWER_BUTTON) {
			printf("TICKER: power button\n");
			poweroff();
		}
		if (time_us() < next)
			continue;
		printf("TICK %lu\n", ++n);
		next = time_us() + period_us;
		if (limit && n >= limit) {
			printf("TICKER: done\n");
			poweroff();
		}
	}
}
