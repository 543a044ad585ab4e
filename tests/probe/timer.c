/* SPDX-License-Identifier: MIT */
/*
 * Timers: the LAPIC timer in periodic mode counted over one RTC second (~250 ticks at
 * 250 Hz), one-shot mode firing exactly once, the TSC against the RTC, and the TSC-deadline
 * mode when CPUID advertises it.
 */
#include "probe.h"

PROBE("timer");

#define VEC_TIMER 0x60
#define MSR_TSC_DEADLINE 0x6e0

static volatile uint32_t ticks;
static volatile uint64_t fired_tsc;

static void on_timer(struct trap_frame *f)
{
	(void)f;
	if (!fired_tsc)
		fired_tsc = rdtsc();
	ticks++;
	lapic_eoi();
}

void probe_main(const struct hvm_start_info *si)
{
	uint32_t r[4], n;
	unsigned s0;
	uint64_t t0, t1, us;
	(void)si;

	irq_set_handler(VEC_TIMER, on_timer);
	irq_enable();

	/* Periodic at 250 Hz (KVM's APIC bus is 1 GHz) over one RTC second. The CPU halts between
	 * ticks and reads the RTC once per tick: a busy loop of port reads would make a nested
	 * host coalesce ticks. */
	lapic_write(LAPIC_TIMER_DIV, 0xb);
	lapic_write(LAPIC_LVT_TIMER, LAPIC_TIMER_PERIODIC | VEC_TIMER);
	lapic_write(LAPIC_TIMER_INIT, 4000000);
	CHECK(rtc_wait_tick(2500000), "RTC seconds do not advance");
	ticks = 0;
	t0 = time_us();
	s0 = rtc_seconds();
	while (rtc_seconds() == s0 && time_us() - t0 < 2500000)
		irq_enable_and_halt();
	n = ticks;
	t1 = time_us();
	lapic_write(LAPIC_LVT_TIMER, LAPIC_LVT_MASKED);
	lapic_write(LAPIC_TIMER_INIT, 0);
	us = t1 - t0;
	printf("timer: periodic 250 Hz: %u ticks in one RTC second; TSC says %lu us (%lu MHz)\n", n,
	       us, tsc_per_us);
	CHECK(n >= 200 && n <= 300, "%u LAPIC timer ticks in one RTC second, want ~250", n);
	CHECK(us >= 900000 && us <= 1100000, "TSC measured %lu us for one RTC second", us);

	/* one-shot, 5 ms: exactly one interrupt */
	ticks = 0;
	lapic_write(LAPIC_LVT_TIMER, VEC_TIMER);
	lapic_write(LAPIC_TIMER_INIT, 5000000);
	udelay(50000);
	CHECK(ticks == 1, "one-shot timer fired %u times", ticks);
	CHECK(lapic_read(LAPIC_TIMER_CUR) == 0, "one-shot current count %u after expiry",
	      lapic_read(LAPIC_TIMER_CUR));

	cpuid(1, 0, r);
	if (r[2] & (1u << 24)) {
		uint64_t deadline;
		ticks = 0;
		fired_tsc = 0;
		lapic_write(LAPIC_LVT_TIMER, (2u << 17) | VEC_TIMER);
		deadline = rdtsc() + 2000 * tsc_per_us;
		wrmsr(MSR_TSC_DEADLINE, deadline);
		udelay(50000);
		printf("timer: TSC deadline: %u interrupt(s), %ld us after the deadline\n", ticks,
		       (int64_t)(fired_tsc - deadline) / (int64_t)tsc_per_us);
		CHECK(ticks == 1, "TSC-deadline timer fired %u times", ticks);
		CHECK(fired_tsc >= deadline, "TSC-deadline timer fired before the deadline");
		CHECK(rdmsr(MSR_TSC_DEADLINE) == 0, "IA32_TSC_DEADLINE not cleared after firing");
		lapic_write(LAPIC_LVT_TIMER, LAPIC_LVT_MASKED);
	} else {
		printf("timer: no TSC-deadline mode in CPUID\n");
	}
	irq_disable();
	probe_pass();
}
