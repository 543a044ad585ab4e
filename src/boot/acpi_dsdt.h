/* SPDX-License-Identifier: MIT */
/*
 * Internal to the ACPI builder: the DSDT's AML body (everything after the table header)
 * for a validated struct acpi_config. The namespace it describes:
 *
 *   \_S5                 Package { ACPI_S5_SLP_TYP, ACPI_S5_SLP_TYP, 0, 0 }
 *   \_SB.PCI0            PCIe host bridge (PNP0A08/PNP0A03), _SEG, _BBN, _UID, _CRS, _OSC
 *   \_SB.MRES            motherboard resources (PNP0C02): the ECAM window, ACPI ports
 *   \_SB.COM1            8250 UART (PNP0501), if cfg->has_com1
 *   \_SB.RTC             CMOS RTC (PNP0B00), if cfg->has_rtc
 *   \_SB.PWRB            power button (PNP0C0C)
 *   \_SB.GED             Generic Event Device (ACPI0013): _CRS, GDST/GDAT, _EVT
 *   \_SB.Cnnn            one processor device (ACPI0007) per vCPU, _UID = MADT processor UID
 */
#ifndef VIREO_BOOT_ACPI_DSDT_H
#define VIREO_BOOT_ACPI_DSDT_H

#include "boot/acpi.h"
#include "boot/aml.h"

/* Emits into a; returns aml_finish(a). */
int acpi_dsdt_build(struct aml *a, const struct acpi_config *cfg) WUR;

#endif
