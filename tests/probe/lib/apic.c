/* SPDX-License-Identifier: MIT */
/* LAPIC (xAPIC MMIO), IOAPIC, CMOS access, spinlocks and the TSC clock. */
#include "probe.h"

#define IOAPIC_REGSEL 0x00
#define IOAPIC_WIN 0x10
#define ICR_PENDING (1u << 12)
/* KVM's local APIC timer counts at 1 GHz before the divider (1 ns bus cycle). */
#define LAPIC_BUS_HZ 1000000000ull
#define CALIBRATE_COUNTS 10000000u /* 10 ms */

uint64_t tsc_per_us = 2000; /* until time_init() calibrates it */

void spin_lock(volatile uint32_t *l)
{
	while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
		while (*l)
			cpu_relax();
}

void spin_unlock(volatile uint32_t *l)
{
	__atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

uint32_t lapic_read(unsigned reg)
{
	return mmio_read32(LAYOUT_LAPIC + reg);
}

void lapic_write(unsigned reg, uint32_t v)
{
	mmio_write32(LAYOUT_LAPIC + reg, v);
}

uint32_t lapic_id(void)
{
	return lapic_read(LAPIC_ID) >> 24;
}

void lapic_eoi(void)
{
	lapic_write(LAPIC_EOI, 0);
}

void lapic_enable(void)
{
	lapic_write(LAPIC_TPR, 0);
	lapic_write(LAPIC_SVR, 0x100 | VEC_SPURIOUS);
	lapic_write(LAPIC_LVT_TIMER, LAPIC_LVT_MASKED);
	lapic_write(LAPIC_LVT_LINT0, LAPIC_LVT_MASKED);
	lapic_write(LAPIC_LVT_LINT1, LAPIC_LVT_MASKED);
	lapic_write(LAPIC_LVT_ERROR, LAPIC_LVT_MASKED);
}

bool lapic_send_ipi(uint32_t dest, uint32_t icr_lo)
{
	lapic_write(LAPIC_ICR_HI, dest << 24);
	lapic_write(LAPIC_ICR_LO, icr_lo);
	for (unsigned i = 0; i < 1000000; i++) {
		if (!(lapic_read(LAPIC_ICR_LO) & ICR_PENDING))
			return true;
		cpu_relax();
	}
	return false;
}

uint32_t ioapic_read(unsigned reg)
{
	mmio_write32(LAYOUT_IOAPIC + IOAPIC_REGSEL, reg);
	return mmio_read32(LAYOUT_IOAPIC + IOAPIC_WIN);
}

void ioapic_write(unsigned reg, uint32_t v)
{
	mmio_write32(LAYOUT_IOAPIC + IOAPIC_REGSEL, reg);
	mmio_write32(LAYOUT_IOAPIC + IOAPIC_WIN, v);
}

unsigned ioapic_pins(void)
{
	return ((ioapic_read(1) >> 16) & 0xff) + 1;
}

void ioapic_route(unsigned pin, uint8_t vector, uint8_t dest, bool level, bool active_low, bool mask)
{
	uint32_t lo = vector | (active_low ? 1u << 13 : 0) | (level ? 1u << 15 : 0) |
		      (mask ? 1u << 16 : 0);
	ioapic_write(0x10 + 2 * pin, 1u << 16); /* mask while changing */
	ioapic_write(0x11 + 2 * pin, (uint32_t)dest << 24);
	ioapic_write(0x10 + 2 * pin, lo);
}

uint8_t cmos_read(uint8_t reg)
{
	outb(PORT_CMOS, reg & 0x7f); /* bit 7 clear: NMI stays enabled */
	return inb(PORT_CMOS + 1);
}

void cmos_write(uint8_t reg, uint8_t v)
{
	outb(PORT_CMOS, reg & 0x7f);
	outb(PORT_CMOS + 1, v);
}

static unsigned bcd(uint8_t v)
{
	return (v >> 4) * 10 + (v & 0xf);
}

unsigned rtc_seconds(void)
{
	uint64_t end = time_us() + 10000;
	while ((cmos_read(0x0a) & 0x80) && time_us() < end)
		cpu_relax();
	return (cmos_read(0x0b) & 0x04) ? cmos_read(0) : bcd(cmos_read(0));
}

bool rtc_wait_tick(uint64_t timeout_us)
{
	unsigned s = rtc_seconds();
	uint64_t end = time_us() + timeout_us;
	while (rtc_seconds() == s)
		if (time_us() > end)
			return false;
	return true;
}

/* ---- time ----------------------------------------------------------------------------------- */
void time_init(void)
{
	uint32_t c0, c1;
	uint64_t t0, t1;
	unsigned spins = 0;

	lapic_write(LAPIC_TIMER_DIV, 0xb); /* divide by 1 */
	lapic_write(LAPIC_LVT_TIMER, LAPIC_LVT_MASKED);
	lapic_write(LAPIC_TIMER_INIT, 0xffffffff);
	c0 = lapic_read(LAPIC_TIMER_CUR);
	t0 = rdtsc();
	do {
		c1 = lapic_read(LAPIC_TIMER_CUR);
		t1 = rdtsc();
		if (++spins > 50000000) {
			printf("PROBE-WARN %s: LAPIC timer does not count; TSC assumed at %lu MHz\n",
			       probe_name, tsc_per_us);
			lapic_write(LAPIC_TIMER_INIT, 0);
			return;
		}
	} while (c0 - c1 < CALIBRATE_COUNTS);
	lapic_write(LAPIC_TIMER_INIT, 0);
	/* (tsc ticks) / (elapsed ns) * 1000 = ticks per us */
	tsc_per_us = (t1 - t0) * (LAPIC_BUS_HZ / 1000000) / (c0 - c1);
	if (!tsc_per_us)
		tsc_per_us = 1;
}

uint64_t time_us(void)
{
	return rdtsc() / tsc_per_us;
}

void udelay(uint64_t us)
{
	uint64_t end = rdtsc() + us * tsc_per_us;
	while (rdtsc() < end)
		cpu_relax();
}
