/* SPDX-License-Identifier: MIT */
/*
 * ACPI tables for a Vireo VM: RSDP (rev 2) -> XSDT -> FADT (rev 6.3, HW-reduced), MADT, MCFG,
 * and the DSDT (through FADT.X_DSDT), written into guest memory.
 *
 * Contract:
 * - acpi_build() writes the whole area [LAYOUT_ACPI_START, +LAYOUT_ACPI_SIZE) (unused bytes
 *   are zeroed) with the RSDP at LAYOUT_ACPI_START, inside the BIOS search area, so Linux finds
 *   it by scanning; *rsdp_gpa is also returned for boot_params.acpi_rsdp_addr / PVH rsdp_paddr.
 * - Tables are composed in a host buffer and copied with one gmem_write(): on any error guest
 *   memory is untouched. -EINVAL: bad config (0 or more than ACPI_MAX_VCPUS vCPUs, an APIC ID
 *   >= 0xff or used twice, windows that overflow or do not fit their fields); -ENOSPC: the
 *   tables do not fit the area; -EFAULT: the area is not guest RAM; -ENOMEM.
 * - Every table has a valid checksum; the RSDP has both (20-byte and extended) checksums.
 *
 * What the VMM must implement for these tables to be true (ports/GSIs from memory/layout.h,
 * every register one byte wide, SystemIO):
 * - PORT_ACPI_SLEEP_CTL (FADT SLEEP_CONTROL_REG): a write with SLP_EN (bit 5) set and
 *   SLP_TYP (bits 2-4) == ACPI_S5_SLP_TYP means "power off" (the guest's \_S5).
 * - PORT_ACPI_SLEEP_STS (FADT SLEEP_STATUS_REG): reads 0; the guest writes WAK_STS (bit 7)
 *   to clear it before sleeping. Must exist: Linux only offers S5 if both registers do.
 * - PORT_ACPI_RESET (FADT RESET_REG): writing ACPI_RESET_VALUE resets the VM. Linux tries
 *   this first on reboot, then the i8042 0xFE pulse.
 * - PORT_ACPI_GED: the Generic Event Device's event register, read-to-clear, bit
 *   ACPI_GED_EVT_POWER_BUTTON. GSI_SCI is its level-triggered, active-high line: the VMM
 *   sets the bit and raises the line for a graceful shutdown request; the guest's _EVT
 *   reads the register (which clears it: the VMM then lowers the line) and does
 *   Notify(\_SB.PWRB, 0x80), which Linux's button driver turns into KEY_POWER.
 * - PORT_COM1/GSI_COM1 (if has_com1), PORT_CMOS/GSI_RTC (if has_rtc), 0xCF8-0xCFF and the ECAM.
 */
#ifndef VIREO_BOOT_ACPI_H
#define VIREO_BOOT_ACPI_H

#include "common/compiler.h"
#include "memory/gmem.h"

/* Processor Local APIC entries carry 8-bit APIC IDs; 0xff is the broadcast ID. */
#define ACPI_MAX_VCPUS 255

struct acpi_config {
	unsigned nr_vcpus;
	uint32_t apic_ids[ACPI_MAX_VCPUS]; /* vCPU i: APIC ID, ACPI processor UID is i */
	uint64_t lapic_addr;		   /* LAYOUT_LAPIC */
	uint8_t ioapic_id;
	uint64_t ioapic_addr;	  /* LAYOUT_IOAPIC */
	uint32_t ioapic_gsi_base; /* 0 */
	/* PCI: one segment; ecam_base is the config space of bus pci_bus_start. */
	uint64_t ecam_base, ecam_size; /* size must be (buses) * 1 MiB */
	uint8_t pci_bus_start, pci_bus_end;
	uint64_t pci_mmio_base, pci_mmio_size;	   /* 32-bit BAR window, below 4 GiB */
	uint64_t pci_mmio64_base, pci_mmio64_size; /* optional 64-bit window, size 0 = none */
	bool has_com1;				   /* 8250 at PORT_COM1, GSI_COM1 */
	bool has_rtc;				   /* CMOS RTC at PORT_CMOS, GSI_RTC */
};

/* Fill cfg with the memory/layout.h machine: nr_vcpus vCPUs with APIC IDs 0..n-1, COM1, RTC. */
void acpi_config_default(struct acpi_config *cfg, unsigned nr_vcpus);

int acpi_build(const struct gmem *m, const struct acpi_config *cfg, uint64_t *rsdp_gpa) WUR;
/* The same into any 16-byte aligned area (tests). The RSDP is at gpa. */
int acpi_build_at(const struct gmem *m, const struct acpi_config *cfg, uint64_t gpa, uint64_t size,
		  uint64_t *rsdp_gpa) WUR;

#endif
