/* SPDX-License-Identifier: MIT */
/*
 * ACPI tables: RSDP, XSDT, FADT, MADT, MCFG, DSDT. Offsets and values follow ACPI 6.3
 * chapter 5.2 and the PCI Firmware Specification 3.x (MCFG). Every table is composed in a
 * zeroed host buffer with explicit little-endian stores, then copied to the guest at once.
 */
#include "boot/acpi.h"
#include "boot/acpi_dsdt.h"
#include "boot/aml.h"
#include "memory/layout.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ACPI_OEM_ID "VIREO "	     /* 6 bytes */
#define ACPI_OEM_TABLE_ID "VIREOVM " /* 8 bytes */
#define ACPI_OEM_REVISION 1
#define ACPI_CREATOR_ID "VIRE"
#define ACPI_CREATOR_REVISION 1
#define ACPI_AREA_MAX (16ULL << 20) /* acpi_build_at() refuses larger areas */

/* Common table header (5.2.6). */
#define HDR_LEN 4
#define HDR_REVISION 8
#define HDR_CHECKSUM 9
#define HDR_OEM_ID 10
#define HDR_OEM_TABLE_ID 16
#define HDR_OEM_REVISION 24
#define HDR_CREATOR_ID 28
#define HDR_CREATOR_REVISION 32
#define HDR_SIZE 36

/* RSDP (5.2.5.3). */
#define RSDP_CHECKSUM 8
#define RSDP_OEM_ID 9
#define RSDP_REVISION 15
#define RSDP_LENGTH 20
#define RSDP_XSDT 24
#define RSDP_EXT_CHECKSUM 32
#define RSDP_V1_SIZE 20
#define RSDP_SIZE 36

/* FADT (5.2.9), revision 6, minor 3. */
#define FADT_REVISION 6
#define FADT_MINOR_VERSION 3
#define FADT_SCI_INT 46
#define FADT_CENTURY 108
#define FADT_IAPC_BOOT_ARCH 109
#define FADT_FLAGS 112
#define FADT_RESET_REG 116
#define FADT_RESET_VALUE 128
#define FADT_MINOR 131
#define FADT_X_DSDT 140
#define FADT_SLEEP_CONTROL_REG 244
#define FADT_SLEEP_STATUS_REG 256
#define FADT_HYPERVISOR_ID 268
#define FADT_SIZE 276

#define FADT_F_WBINVD (1u << 0)
#define FADT_F_PWR_BUTTON (1u << 4) /* power button is a control-method device */
#define FADT_F_SLP_BUTTON (1u << 5) /* no fixed-feature sleep button */
#define FADT_F_RESET_REG_SUP (1u << 10)
#define FADT_F_HW_REDUCED_ACPI (1u << 20)

#define BOOT_ARCH_LEGACY_DEVICES (1u << 0)
#define BOOT_ARCH_VGA_NOT_PRESENT (1u << 2)
#define BOOT_ARCH_CMOS_RTC_NOT_PRESENT (1u << 5)

#define GAS_SPACE_SYSTEM_IO 1
#define GAS_ACCESS_BYTE 1

/* MADT (5.2.12), revision 5. */
#define MADT_REVISION 5
#define MADT_LAPIC_ADDR 36
#define MADT_FLAGS 40
#define MADT_ENTRIES 44
#define MADT_PCAT_COMPAT 1u
#define MADT_TYPE_LAPIC 0
#define MADT_LAPIC_LEN 8
#define MADT_TYPE_IOAPIC 1
#define MADT_IOAPIC_LEN 12
#define MADT_TYPE_ISO 2
#define MADT_ISO_LEN 10
#define MADT_TYPE_LAPIC_NMI 4
#define MADT_LAPIC_NMI_LEN 6
#define MADT_LAPIC_ENABLED 1u
/* MPS INTI flags: polarity in bits 0-1, trigger mode in bits 2-3. */
#define MPS_INTI_CONFORMS 0x0
#define MPS_INTI_ACTIVE_HIGH 0x1
#define MPS_INTI_EDGE 0x4
#define MPS_INTI_LEVEL 0xc
#define MADT_ALL_PROCESSORS 0xff

/* MCFG (PCI Firmware Specification 4.1.2), revision 1. */
#define MCFG_ALLOC 44
#define MCFG_SIZE (MCFG_ALLOC + 16)

#define XSDT_ENTRIES 3
#define XSDT_SIZE (HDR_SIZE + 8 * XSDT_ENTRIES)

#define TABLE_ALIGN 16

void acpi_config_default(struct acpi_config *cfg, unsigned nr_vcpus)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->nr_vcpus = nr_vcpus;
	for (unsigned i = 0; i < nr_vcpus && i < ACPI_MAX_VCPUS; i++)
		cfg->apic_ids[i] = i;
	cfg->lapic_addr = LAYOUT_LAPIC;
	cfg->ioapic_id = 0;
	cfg->ioapic_addr = LAYOUT_IOAPIC;
	cfg->ioapic_gsi_base = 0;
	cfg->ecam_base = LAYOUT_PCI_ECAM_START;
	cfg->ecam_size = LAYOUT_PCI_ECAM_SIZE;
	cfg->pci_bus_start = 0;
	cfg->pci_bus_end = 0;
	cfg->pci_mmio_base = LAYOUT_PCI_MMIO_START;
	cfg->pci_mmio_size = LAYOUT_PCI_MMIO_SIZE;
	cfg->has_com1 = true;
	cfg->has_rtc = true;
}

static int acpi_config_check(const struct acpi_config *cfg)
{
	uint8_t seen[256 / 8] = {0};
	uint64_t end;

	if (cfg->nr_vcpus == 0 || cfg->nr_vcpus > ACPI_MAX_VCPUS)
		return -EINVAL;
	for (unsigned i = 0; i < cfg->nr_vcpus; i++) {
		uint32_t id = cfg->apic_ids[i];
		if (id >= 0xff || (seen[id / 8] & (1u << (id % 8))))
			return -EINVAL;
		seen[id / 8] |= (uint8_t)(1u << (id % 8));
	}
	/* The MADT holds 32-bit LAPIC and IOAPIC addresses. */
	if (!cfg->lapic_addr || cfg->lapic_addr > UINT32_MAX || !cfg->ioapic_addr ||
	    cfg->ioapic_addr > UINT32_MAX)
		return -EINVAL;
	/* ECAM: 1 MiB per bus, and the MCFG base (bus 0's address) must not underflow. */
	if (cfg->pci_bus_end < cfg->pci_bus_start || !cfg->ecam_base ||
	    (cfg->ecam_base & 0xfffff) ||
	    cfg->ecam_size != ((uint64_t)cfg->pci_bus_end - cfg->pci_bus_start + 1) << 20 ||
	    cfg->ecam_base < ((uint64_t)cfg->pci_bus_start << 20) ||
	    add_overflows(cfg->ecam_base, cfg->ecam_size, &end))
		return -EINVAL;
	if (!cfg->pci_mmio_size || add_overflows(cfg->pci_mmio_base, cfg->pci_mmio_size, &end) ||
	    end > (1ULL << 32))
		return -EINVAL;
	if (cfg->pci_mmio64_size &&
	    (add_overflows(cfg->pci_mmio64_base, cfg->pci_mmio64_size - 1, &end)))
		return -EINVAL;
	return 0;
}

static void put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* The byte that makes the sum of p[0, len) zero, given p[csum] is currently zero. */
static uint8_t acpi_checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;
	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + p[i]);
	return (uint8_t)-sum;
}

static void table_header(uint8_t *t, const char sig[4], uint32_t len, uint8_t revision)
{
	memcpy(t, sig, 4);
	put_le(t + HDR_LEN, len, 4);
	t[HDR_REVISION] = revision;
	memcpy(t + HDR_OEM_ID, ACPI_OEM_ID, 6);
	memcpy(t + HDR_OEM_TABLE_ID, ACPI_OEM_TABLE_ID, 8);
	put_le(t + HDR_OEM_REVISION, ACPI_OEM_REVISION, 4);
	memcpy(t + HDR_CREATOR_ID, ACPI_CREATOR_ID, 4);
	put_le(t + HDR_CREATOR_REVISION, ACPI_CREATOR_REVISION, 4);
}

static void table_seal(uint8_t *t, uint32_t len)
{
	t[HDR_CHECKSUM] = 0;
	t[HDR_CHECKSUM] = acpi_checksum(t, len);
}

/* Generic Address Structure for a one-byte SystemIO register. */
static void put_gas_io8(uint8_t *p, uint16_t port)
{
	p[0] = GAS_SPACE_SYSTEM_IO;
	p[1] = 8; /* bit width */
	p[2] = 0; /* bit offset */
	p[3] = GAS_ACCESS_BYTE;
	put_le(p + 4, port, 8);
}

static void build_rsdp(uint8_t *t, uint64_t xsdt_gpa)
{
	memcpy(t, "RSD PTR ", 8);
	memcpy(t + RSDP_OEM_ID, ACPI_OEM_ID, 6);
	t[RSDP_REVISION] = 2; /* ACPI 2.0+: XSDT, length and extended checksum are valid */
	/* RsdtAddress stays 0: every 64-bit OS uses the XSDT when the revision is >= 2. */
	put_le(t + RSDP_LENGTH, RSDP_SIZE, 4);
	put_le(t + RSDP_XSDT, xsdt_gpa, 8);
	t[RSDP_CHECKSUM] = acpi_checksum(t, RSDP_V1_SIZE);
	t[RSDP_EXT_CHECKSUM] = acpi_checksum(t, RSDP_SIZE);
}

static void build_xsdt(uint8_t *t, const uint64_t entries[XSDT_ENTRIES])
{
	table_header(t, "XSDT", XSDT_SIZE, 1);
	for (unsigned i = 0; i < XSDT_ENTRIES; i++)
		put_le(t + HDR_SIZE + 8 * i, entries[i], 8);
	table_seal(t, XSDT_SIZE);
}

/*
 * HW-reduced FADT: no PM1/GPE blocks, no PM timer, no SMI; sleep and reset go through the
 * SystemIO registers of memory/layout.h. SCI_INT is ignored by the spec in HW-reduced mode,
 * but Linux compares every MADT interrupt source override with it: left at 0 it would take
 * the IRQ0 -> GSI2 override for the SCI's. Point it at the GED's GSI instead.
 */
static void build_fadt(uint8_t *t, const struct acpi_config *cfg, uint64_t dsdt_gpa)
{
	uint16_t boot_arch = BOOT_ARCH_VGA_NOT_PRESENT;
	/* No 8042 flag: Linux then skips probing a PS/2 keyboard; reboot uses RESET_REG. */
	if (cfg->has_com1 || cfg->has_rtc)
		boot_arch |= BOOT_ARCH_LEGACY_DEVICES;
	if (!cfg->has_rtc)
		boot_arch |= BOOT_ARCH_CMOS_RTC_NOT_PRESENT;

	table_header(t, "FACP", FADT_SIZE, FADT_REVISION);
	put_le(t + FADT_SCI_INT, GSI_SCI, 2);
	put_le(t + FADT_IAPC_BOOT_ARCH, boot_arch, 2);
	if (cfg->has_rtc)
		t[FADT_CENTURY] = 0x32; /* CMOS century register (devices/legacy/cmos_rtc.h) */
	put_le(t + FADT_FLAGS,
	       FADT_F_WBINVD | FADT_F_PWR_BUTTON | FADT_F_SLP_BUTTON | FADT_F_RESET_REG_SUP |
		   FADT_F_HW_REDUCED_ACPI,
	       4);
	put_gas_io8(t + FADT_RESET_REG, PORT_ACPI_RESET);
	t[FADT_RESET_VALUE] = ACPI_RESET_VALUE;
	t[FADT_MINOR] = FADT_MINOR_VERSION;
	put_le(t + FADT_X_DSDT, dsdt_gpa, 8);
	put_gas_io8(t + FADT_SLEEP_CONTROL_REG, PORT_ACPI_SLEEP_CTL);
	put_gas_io8(t + FADT_SLEEP_STATUS_REG, PORT_ACPI_SLEEP_STS);
	memcpy(t + FADT_HYPERVISOR_ID, "VIREO", 5);
	table_seal(t, FADT_SIZE);
}

static size_t madt_size(const struct acpi_config *cfg)
{
	return MADT_ENTRIES + (size_t)cfg->nr_vcpus * MADT_LAPIC_LEN + MADT_IOAPIC_LEN +
	       2 * MADT_ISO_LEN + MADT_LAPIC_NMI_LEN;
}

static uint8_t *madt_iso(uint8_t *p, uint8_t isa_irq, uint32_t gsi, uint16_t flags)
{
	p[0] = MADT_TYPE_ISO;
	p[1] = MADT_ISO_LEN;
	p[2] = 0; /* bus: ISA */
	p[3] = isa_irq;
	put_le(p + 4, gsi, 4);
	put_le(p + 8, flags, 2);
	return p + MADT_ISO_LEN;
}

static void build_madt(uint8_t *t, const struct acpi_config *cfg)
{
	uint32_t len = (uint32_t)madt_size(cfg);
	uint8_t *p = t + MADT_ENTRIES;

	table_header(t, "APIC", len, MADT_REVISION);
	put_le(t + MADT_LAPIC_ADDR, cfg->lapic_addr, 4);
	put_le(t + MADT_FLAGS, MADT_PCAT_COMPAT, 4);
	for (unsigned i = 0; i < cfg->nr_vcpus; i++, p += MADT_LAPIC_LEN) {
		p[0] = MADT_TYPE_LAPIC;
		p[1] = MADT_LAPIC_LEN;
		p[2] = (uint8_t)i; /* ACPI processor UID = \_SB.Cnnn._UID */
		p[3] = (uint8_t)cfg->apic_ids[i];
		put_le(p + 4, MADT_LAPIC_ENABLED, 4);
	}
	p[0] = MADT_TYPE_IOAPIC;
	p[1] = MADT_IOAPIC_LEN;
	p[2] = cfg->ioapic_id;
	put_le(p + 4, cfg->ioapic_addr, 4);
	put_le(p + 8, cfg->ioapic_gsi_base, 4);
	p += MADT_IOAPIC_LEN;
	/* The PIT's IRQ0 is wired to IOAPIC pin 2; IRQ 9 (the SCI/GED line) is level, high. */
	p = madt_iso(p, 0, cfg->ioapic_gsi_base + 2, MPS_INTI_CONFORMS);
	p = madt_iso(p, GSI_SCI, cfg->ioapic_gsi_base + GSI_SCI,
		     MPS_INTI_ACTIVE_HIGH | MPS_INTI_LEVEL);
	/* NMI on LINT1 of every processor, edge-triggered, active high. */
	p[0] = MADT_TYPE_LAPIC_NMI;
	p[1] = MADT_LAPIC_NMI_LEN;
	p[2] = MADT_ALL_PROCESSORS;
	put_le(p + 3, MPS_INTI_ACTIVE_HIGH | MPS_INTI_EDGE, 2);
	p[5] = 1; /* LINT1 */
	table_seal(t, len);
}

static void build_mcfg(uint8_t *t, const struct acpi_config *cfg)
{
	uint8_t *e = t + MCFG_ALLOC;
	table_header(t, "MCFG", MCFG_SIZE, 1);
	/* The allocation's base is where bus 0 would be, even if the first bus is not 0. */
	put_le(e, cfg->ecam_base - ((uint64_t)cfg->pci_bus_start << 20), 8);
	put_le(e + 8, 0, 2); /* PCI segment group */
	e[10] = cfg->pci_bus_start;
	e[11] = cfg->pci_bus_end;
	table_seal(t, MCFG_SIZE);
}

int acpi_build_at(const struct gmem *m, const struct acpi_config *cfg, uint64_t gpa, uint64_t size,
		  uint64_t *rsdp_gpa)
{
	uint64_t end;
	int r = acpi_config_check(cfg);
	if (r < 0)
		return r;
	if ((gpa % TABLE_ALIGN) || size > ACPI_AREA_MAX || add_overflows(gpa, size, &end))
		return -EINVAL;

	/* Layout: RSDP first, then the fixed-size tables, then the DSDT in what is left. */
	size_t off_xsdt = ALIGN_UP((size_t)RSDP_SIZE, TABLE_ALIGN);
	size_t off_fadt = ALIGN_UP(off_xsdt + XSDT_SIZE, TABLE_ALIGN);
	size_t off_madt = ALIGN_UP(off_fadt + FADT_SIZE, TABLE_ALIGN);
	size_t off_mcfg = ALIGN_UP(off_madt + madt_size(cfg), TABLE_ALIGN);
	size_t off_dsdt = ALIGN_UP(off_mcfg + MCFG_SIZE, TABLE_ALIGN);
	if (off_dsdt + HDR_SIZE > size)
		return -ENOSPC;

	uint8_t *area = calloc(1, size);
	if (!area)
		return -ENOMEM;

	struct aml aml;
	aml_init(&aml, area + off_dsdt + HDR_SIZE, size - off_dsdt - HDR_SIZE);
	r = acpi_dsdt_build(&aml, cfg);
	if (r < 0)
		goto out;
	if (aml.len > UINT32_MAX - HDR_SIZE) {
		r = -ENOSPC;
		goto out;
	}
	uint32_t dsdt_len = (uint32_t)(HDR_SIZE + aml.len);
	table_header(area + off_dsdt, "DSDT", dsdt_len, 2);
	table_seal(area + off_dsdt, dsdt_len);

	build_fadt(area + off_fadt, cfg, gpa + off_dsdt);
	build_madt(area + off_madt, cfg);
	build_mcfg(area + off_mcfg, cfg);
	const uint64_t entries[XSDT_ENTRIES] = {gpa + off_fadt, gpa + off_madt, gpa + off_mcfg};
	build_xsdt(area + off_xsdt, entries);
	build_rsdp(area, gpa + off_xsdt);

	r = gmem_write(m, gpa, area, size);
	if (r < 0)
		goto out;
	*rsdp_gpa = gpa;
out:
	free(area);
	return r;
}

int acpi_build(const struct gmem *m, const struct acpi_config *cfg, uint64_t *rsdp_gpa)
{
	return acpi_build_at(m, cfg, LAYOUT_ACPI_START, LAYOUT_ACPI_SIZE, rsdp_gpa);
}
