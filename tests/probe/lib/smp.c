/* SPDX-License-Identifier: MIT */
/* AP start-up: the real-mode trampoline from start.S is copied to TRAMP_BASE, the BSP
 * broadcasts INIT-SIPI-SIPI, and each AP reaches ap_entry() in long mode on its own stack. */
#include "probe.h"

#define TRAMP_BASE 0x10000u
#define ICR_ALL_BUT_SELF (3u << 18)
#define ICR_ASSERT (1u << 14)
#define ICR_INIT (5u << 8)
#define ICR_STARTUP (6u << 8)

extern const uint8_t tramp_start[], tramp_end[];
void ap_entry(unsigned index);

static ap_fn_t ap_fn;
static volatile uint32_t ap_done;

void ap_entry(unsigned index)
{
	lapic_enable();
	if (ap_fn)
		ap_fn(index);
	__atomic_add_fetch(&ap_done, 1, __ATOMIC_SEQ_CST);
}

unsigned smp_start_aps(ap_fn_t fn, unsigned expected, uint64_t timeout_us)
{
	uint64_t end;
	unsigned n;

	memcpy((void *)(uintptr_t)TRAMP_BASE, tramp_start, (size_t)(tramp_end - tramp_start));
	ap_fn = fn;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);

	if (!lapic_send_ipi(0, ICR_ALL_BUT_SELF | ICR_ASSERT | ICR_INIT))
		probe_fail("INIT IPI stays pending in the ICR");
	udelay(10000);
	for (int i = 0; i < 2; i++) {
		if (!lapic_send_ipi(0, ICR_ALL_BUT_SELF | ICR_ASSERT | ICR_STARTUP | (TRAMP_BASE >> 12)))
			probe_fail("SIPI stays pending in the ICR");
		udelay(200);
	}

	end = time_us() + timeout_us;
	while (__atomic_load_n(&ap_done, __ATOMIC_SEQ_CST) < expected && time_us() < end)
		cpu_relax();
	/* Give extra (unexpected) APs a moment to show up too. */
	udelay(100000);
	n = __atomic_load_n(&ap_done, __ATOMIC_SEQ_CST);
	return n;
}
