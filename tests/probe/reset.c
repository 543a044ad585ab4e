/* SPDX-License-Identifier: MIT */
/*
 * Reset (how=acpi: the FADT reset register; how=i8042: 0xfe to port 0x64). The first boot
 * leaves markers in RAM and CMOS NVRAM and resets; the second boot (same VMM process) finds
 * them, checks the kernel image was loaded afresh, and passes. With --on-reboot exit the VMM
 * must exit after the first boot instead.
 */
#include "probe.h"

PROBE("reset");

#define MARK_ADDR 0x3000000ull /* 48 MiB: RAM the loader never touches */
#define MARK_MAGIC 0x5453524f45524956ull /* "VIREORST" */
#define CMOS_MARK 0x7e

struct mark {
	uint64_t magic;
	uint64_t boots;
	uint64_t tsc;
};

static volatile uint32_t image_canary = 0xc0ffee; /* in .data: reloaded on every boot */

void probe_main(const struct hvm_start_info *si)
{
	volatile struct mark *m = (volatile struct mark *)(uintptr_t)MARK_ADDR;
	bool ram_mark = m->magic == MARK_MAGIC;
	bool cmos_mark = cmos_read(CMOS_MARK) == 0xa5 && cmos_read(CMOS_MARK + 1) == 0x5a;
	char how[16] = "acpi";
	(void)si;

	CHECK(cmdline_u64("mem", 0) >= 64, "needs mem >= 64 (MiB) for the marker at 0x%llx", MARK_ADDR);
	cmdline_str("how", how, sizeof(how));
	if (!ram_mark && !cmos_mark) {
		CHECK(image_canary == 0xc0ffee, "first boot: .data canary 0x%x", image_canary);
		image_canary = 0xdead;
		m->magic = MARK_MAGIC;
		m->boots = 1;
		m->tsc = rdtsc();
		cmos_write(CMOS_MARK, 0xa5);
		cmos_write(CMOS_MARK + 1, 0x5a);
		printf("PROBE reset: first boot, resetting through %s\n", how);
		if (!strncmp(how, "i8042", 6))
			reset_i8042();
		reset_acpi();
	}
	printf("PROBE-INFO reset: second boot: RAM marker %s, CMOS NVRAM marker %s, TSC %s\n",
	       ram_mark ? "kept" : "cleared", cmos_mark ? "kept" : "cleared",
	       ram_mark ? (rdtsc() > m->tsc ? "kept counting" : "went back") : "?");
	CHECK(image_canary == 0xc0ffee, "second boot: .data canary 0x%x: the kernel image was not "
	      "reloaded on reset", image_canary);
	/* QEMU's PVH option ROM does not zero .bss on a reboot; Vireo's loader must. */
	CHECK(!boot_bss_was_dirty || cmdline_has("qemu"), "second boot: the loader did not zero .bss");
	CHECK(ram_mark, "RAM was cleared by the reset (CMOS marker %s)", cmos_mark ? "kept" : "cleared");
	m->magic = 0;
	probe_pass();
}
