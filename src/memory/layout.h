/* SPDX-License-Identifier: MIT */
/*
 * The guest-physical memory map of a Vireo x86-64 VM. Everything that places data in
 * guest memory (boot, ACPI, PCI) takes its addresses from here.
 *
 *   0x0000_0000 .. 0x0009_FBFF   RAM (boot data structures live in the first 1 MiB)
 *   0x0009_FC00 .. 0x000F_FFFF   reserved (EBDA/VGA/BIOS area; ACPI tables at 0xE0000)
 *   0x0010_0000 .. min(RAM,3G)   RAM
 *   0xC000_0000 .. 0xDFFF_FFFF   32-bit PCI MMIO window (BARs)
 *   0xE000_0000 .. 0xE00F_FFFF   PCI ECAM, bus 0 only
 *   0xFEC0_0000                  IOAPIC,  0xFEE0_0000 LAPIC
 *   0x1_0000_0000 ..             RAM above 3 GiB, relocated above the hole
 */
#ifndef VIREO_MEMORY_LAYOUT_H
#define VIREO_MEMORY_LAYOUT_H

#define LAYOUT_EBDA_START 0x9fc00ULL
#define LAYOUT_HIGH_RAM_START 0x100000ULL /* 1 MiB */

/* Boot data, all below 1 MiB. */
#define LAYOUT_GDT 0x500ULL
#define LAYOUT_IDT 0x520ULL
#define LAYOUT_PVH_INFO 0x6000ULL	 /* struct hvm_start_info */
#define LAYOUT_PVH_MEMMAP 0x6100ULL	 /* hvm_memmap_table_entry[] */
#define LAYOUT_PVH_MODLIST 0x6f00ULL /* hvm_modlist_entry[] */
#define LAYOUT_ZERO_PAGE 0x7000ULL	 /* struct boot_params */
#define LAYOUT_PML4 0x9000ULL
#define LAYOUT_PDPT 0xa000ULL
#define LAYOUT_PD 0xb000ULL /* 4 pages: identity map of 4 GiB with 2 MiB pages */
#define LAYOUT_BOOT_STACK 0x8ff0ULL
#define LAYOUT_CMDLINE 0x20000ULL
#define LAYOUT_CMDLINE_MAX 0x10000ULL /* 64 KiB hard cap; the kernel's own limit is checked too */
#define LAYOUT_ACPI_START 0xe0000ULL  /* RSDP is at this address (BIOS search area) */
#define LAYOUT_ACPI_SIZE 0x1c000ULL
/* MP table (Intel MP spec 1.4): floating pointer at the start of the EBDA, where Linux's
 * early scan looks second (it stops at the first hit), configuration table after ACPI. */
#define LAYOUT_MPTABLE_FLOAT 0x9fc00ULL
#define LAYOUT_MPTABLE_CONFIG 0xfc000ULL
#define LAYOUT_MPTABLE_CONFIG_SIZE 0x4000ULL

#define LAYOUT_KERNEL_DEFAULT 0x1000000ULL /* 16 MiB, where a bzImage is loaded */

#define LAYOUT_MMIO_HOLE_START 0xc0000000ULL
#define LAYOUT_MMIO_HOLE_END 0x100000000ULL
#define LAYOUT_PCI_MMIO_START 0xc0000000ULL
#define LAYOUT_PCI_MMIO_SIZE 0x20000000ULL
#define LAYOUT_PCI_ECAM_START 0xe0000000ULL
#define LAYOUT_PCI_ECAM_SIZE 0x100000ULL /* bus 0 */
#define LAYOUT_IOAPIC 0xfec00000ULL
#define LAYOUT_LAPIC 0xfee00000ULL
#define LAYOUT_HIGH_MEM_START 0x100000000ULL

/* Port I/O map. Only these legacy devices exist: every device is attack surface. */
#define PORT_POST 0x80		 /* port 0x80 sink */
#define PORT_I8042_DATA 0x60	 /* i8042: enough for the 0xFE reset command on 0x64 */
#define PORT_I8042_CMD 0x64
#define PORT_CMOS 0x70		 /* CMOS RTC index/data: 0x70-0x71 */
#define PORT_COM1 0x3f8		 /* 8250 UART: 0x3f8-0x3ff */
#define PORT_PCI_CONFIG_ADDR 0xcf8 /* 0xcf8-0xcfb */
#define PORT_PCI_CONFIG_DATA 0xcfc /* 0xcfc-0xcff */
/* HW-reduced ACPI registers (FADT points at them), all 1 byte wide: */
#define PORT_ACPI_SLEEP_CTL 0x600 /* write SLP_EN(bit 5)|SLP_TYP(bits 2-4)=5 -> power off */
#define PORT_ACPI_SLEEP_STS 0x601 /* WAK_STS (bit 7) */
#define PORT_ACPI_RESET 0x604	  /* write ACPI_RESET_VALUE -> reset */
#define ACPI_RESET_VALUE 0x01
#define ACPI_S5_SLP_TYP 5
#define PORT_ACPI_GED 0x608 /* Generic Event Device: read = pending event bits (cleared on read) */
#define ACPI_GED_EVT_POWER_BUTTON 0x01

/* Legacy GSIs (in-kernel IOAPIC pins). */
#define GSI_COM1 4
#define GSI_RTC 8
#define GSI_SCI 9 /* also the GED interrupt: level, active high */
/* First GSI handed out for MSI routes (above the 24 IOAPIC pins). */
#define GSI_MSI_BASE 24

#endif
