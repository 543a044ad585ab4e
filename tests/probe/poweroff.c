/* SPDX-License-Identifier: MIT */
/* Power off through the ACPI sleep control register: SLP_TYP without SLP_EN must not stop
 * the VM, SLP_EN | SLP_TYP(S5) must make the VMM exit with status 0 (checked by the runner). */
#include "probe.h"

PROBE("poweroff");

void probe_main(const struct hvm_start_info *si)
{
	uint8_t sts = inb(PORT_ACPI_SLEEP_STS), ged = inb(PORT_ACPI_GED);
	(void)si;
	printf("poweroff: SLEEP_STS 0x%x, GED 0x%x\n", sts, ged);
	if (!cmdline_has("qemu"))
		CHECK(ged == 0, "GED reports events 0x%x at boot", ged);
	outb(PORT_ACPI_SLEEP_CTL, ACPI_S5_SLP_TYP << 2); /* no SLP_EN: nothing happens */
	udelay(50000);
	printf("poweroff: still running after SLP_TYP without SLP_EN\n");
	probe_pass(); /* prints PASS, then writes SLP_EN | SLP_TYP(5) */
}
