/* SPDX-License-Identifier: MIT */
/*
 * The DSDT of a Vireo VM, built with the AML builder. The ASL each block corresponds to is
 * given in its comment; `iasl -d` on the table shows the same.
 */
#include "boot/acpi_dsdt.h"
#include "memory/layout.h"

#include <stdio.h>

/* PCI Firmware Specification: _OSC UUID for PCI/PCIe host bridges. */
#define PCI_HOST_OSC_UUID "33db4d5b-1ff7-401c-9657-7441c03dd766"
#define OSC_CDW1_UNKNOWN_UUID 0x04
#define OSC_CDW1_UNKNOWN_REVISION 0x08

/* The HW-reduced ACPI registers, reserved as one motherboard resource. */
#define ACPI_PORTS_FIRST PORT_ACPI_SLEEP_CTL
#define ACPI_PORTS_LEN (PORT_ACPI_GED - PORT_ACPI_SLEEP_CTL + 1)
_Static_assert(PORT_ACPI_SLEEP_STS > ACPI_PORTS_FIRST && PORT_ACPI_RESET > ACPI_PORTS_FIRST &&
		   PORT_ACPI_GED >= PORT_ACPI_RESET && ACPI_PORTS_LEN <= 0xff,
	       "ACPI ports must form one small range starting at PORT_ACPI_SLEEP_CTL");

/*
 * Method (_OSC, 4) {
 *     CreateDWordField (Arg3, 0, CDW1)
 *     If (Arg0 == ToUUID (PCI_HOST_OSC_UUID)) {
 *         If (Arg1 != 1) { CDW1 |= OSC_CDW1_UNKNOWN_REVISION }
 *         Return (Arg3)
 *     }
 *     CDW1 |= OSC_CDW1_UNKNOWN_UUID
 *     Return (Arg3)
 * }
 * Returning Arg3 unchanged grants the OS every control it asks for (native PCIe hotplug,
 * PME, AER, ...): there is no firmware that would want to keep any.
 */
static void dsdt_pci_osc(struct aml *a)
{
	aml_method_begin(a, "_OSC", 4, false);
	aml_op(a, AML_OP_CREATE_DWORD_FIELD);
	aml_arg(a, 3);
	aml_int(a, 0);
	aml_namestring(a, "CDW1");

	aml_if_begin(a);
	aml_op(a, AML_OP_LEQUAL);
	aml_arg(a, 0);
	aml_uuid(a, PCI_HOST_OSC_UUID);
	aml_if_begin(a);
	aml_op(a, AML_OP_LNOT);
	aml_op(a, AML_OP_LEQUAL);
	aml_arg(a, 1);
	aml_int(a, 1);
	aml_op(a, AML_OP_OR);
	aml_namestring(a, "CDW1");
	aml_int(a, OSC_CDW1_UNKNOWN_REVISION);
	aml_namestring(a, "CDW1");
	aml_end(a); /* If revision */
	aml_op(a, AML_OP_RETURN);
	aml_arg(a, 3);
	aml_end(a); /* If UUID */

	aml_op(a, AML_OP_OR);
	aml_namestring(a, "CDW1");
	aml_int(a, OSC_CDW1_UNKNOWN_UUID);
	aml_namestring(a, "CDW1");
	aml_op(a, AML_OP_RETURN);
	aml_arg(a, 3);
	aml_end(a); /* Method */
}

/* A window [min, max] with both ends fixed, as resource templates usually list them. */
static struct aml_addr fixed_range(uint64_t min, uint64_t max, uint8_t type_flags)
{
	return (struct aml_addr){
	    .min_fixed = true,
	    .max_fixed = true,
	    .type_flags = type_flags,
	    .min = min,
	    .max = max,
	    .len = max - min + 1,
	};
}

/*
 * Device (PCI0): the host bridge. _CRS: the bus range, the 0xCF8 config ports it consumes,
 * the I/O windows around them, the 32-bit MMIO window and the optional 64-bit one.
 */
static void dsdt_pci0(struct aml *a, const struct acpi_config *cfg)
{
	struct aml_addr r;

	aml_device_begin(a, "PCI0");
	aml_name(a, "_HID");
	aml_eisaid(a, "PNP0A08");
	aml_name(a, "_CID");
	aml_eisaid(a, "PNP0A03");
	aml_name(a, "_SEG");
	aml_int(a, 0);
	aml_name(a, "_BBN");
	aml_int(a, cfg->pci_bus_start);
	aml_name(a, "_UID");
	aml_int(a, 0);

	aml_name(a, "_CRS");
	aml_rt_begin(a);
	r = fixed_range(cfg->pci_bus_start, cfg->pci_bus_end, 0);
	aml_rt_word_bus_number(a, &r);
	aml_rt_io(a, PORT_PCI_CONFIG_ADDR, PORT_PCI_CONFIG_ADDR, 1, 8);
	r = fixed_range(0, PORT_PCI_CONFIG_ADDR - 1, AML_IO_RANGE_ENTIRE);
	aml_rt_word_io(a, &r);
	r = fixed_range(PORT_PCI_CONFIG_ADDR + 8, 0xffff, AML_IO_RANGE_ENTIRE);
	aml_rt_word_io(a, &r);
	r = fixed_range(cfg->pci_mmio_base, cfg->pci_mmio_base + cfg->pci_mmio_size - 1,
			AML_MEM_NON_CACHEABLE | AML_MEM_READ_WRITE);
	aml_rt_dword_memory(a, &r);
	if (cfg->pci_mmio64_size) {
		r = fixed_range(cfg->pci_mmio64_base,
				cfg->pci_mmio64_base + cfg->pci_mmio64_size - 1,
				AML_MEM_PREFETCHABLE | AML_MEM_READ_WRITE);
		aml_rt_qword_memory(a, &r);
	}
	aml_end(a); /* _CRS */

	dsdt_pci_osc(a);
	aml_end(a); /* PCI0 */
}

/*
 * Device (MRES): PNP0C02 "motherboard resources". Linux uses ECAM only if the MCFG window is
 * reserved here (or in the e820 map); the HW-reduced ACPI ports are listed so they show up
 * as taken in the guest's resource tree.
 */
static void dsdt_motherboard(struct aml *a, const struct acpi_config *cfg)
{
	aml_device_begin(a, "MRES");
	aml_name(a, "_HID");
	aml_eisaid(a, "PNP0C02");
	aml_name(a, "_UID");
	aml_int(a, 0);
	aml_name(a, "_CRS");
	aml_rt_begin(a);
	if (cfg->ecam_base + cfg->ecam_size <= (1ULL << 32)) {
		aml_rt_memory32_fixed(a, true, (uint32_t)cfg->ecam_base, (uint32_t)cfg->ecam_size);
	} else {
		struct aml_addr r = fixed_range(cfg->ecam_base, cfg->ecam_base + cfg->ecam_size - 1,
						AML_MEM_NON_CACHEABLE | AML_MEM_READ_WRITE);
		r.consumer = true;
		aml_rt_qword_memory(a, &r);
	}
	aml_rt_io(a, ACPI_PORTS_FIRST, ACPI_PORTS_FIRST, 1, ACPI_PORTS_LEN);
	aml_end(a);
	aml_end(a);
}

/* Device (name) { _HID EisaId(hid), _UID 0, _CRS { IO(port, port, 1, len), IRQNoFlags {irq} } } */
#define DSDT_NO_IRQ (~0u)

static void dsdt_isa_device(struct aml *a, const char *name, const char *hid, uint16_t port,
			    uint8_t len, unsigned irq)
{
	aml_device_begin(a, name);
	aml_name(a, "_HID");
	aml_eisaid(a, hid);
	aml_name(a, "_UID");
	aml_int(a, 0);
	aml_name(a, "_CRS");
	aml_rt_begin(a);
	aml_rt_io(a, port, port, 1, len);
	if (irq != DSDT_NO_IRQ)
		aml_rt_irq_noflags(a, irq);
	aml_end(a);
	aml_end(a);
}

/*
 * Device (PWRB) { _HID EisaId("PNP0C0C") }   the power button, a control-method device
 * Device (GED) {
 *     _HID "ACPI0013", _CRS { Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive) {GSI} }
 *     OperationRegion (GDST, SystemIO, PORT_ACPI_GED, 1)
 *     Field (GDST, ByteAcc, NoLock, WriteAsZeros) { GDAT, 8 }
 *     Method (_EVT, 1, Serialized) {       Arg0 = the GSI; we have only one
 *         Local0 = GDAT                    reading clears the pending events
 *         If (Local0 & ACPI_GED_EVT_POWER_BUTTON) { Notify (\_SB.PWRB, 0x80) }
 *     }
 * }
 */
static void dsdt_power_button(struct aml *a)
{
	aml_device_begin(a, "PWRB");
	aml_name(a, "_HID");
	aml_eisaid(a, "PNP0C0C");
	aml_name(a, "_UID");
	aml_int(a, 0);
	aml_end(a);

	aml_device_begin(a, "GED");
	aml_name(a, "_HID");
	aml_string(a, "ACPI0013");
	aml_name(a, "_UID");
	aml_int(a, 0);
	aml_name(a, "_CRS");
	aml_rt_begin(a);
	aml_rt_interrupt(a, true, false, false, false, GSI_SCI);
	aml_end(a);
	aml_opregion(a, "GDST", AML_SPACE_SYSTEM_IO, PORT_ACPI_GED, 1);
	aml_field_begin(a, "GDST", AML_FIELD_BYTE_ACC | AML_FIELD_WRITE_AS_ZEROS);
	aml_field_unit(a, "GDAT", 8);
	aml_end(a);

	aml_method_begin(a, "_EVT", 1, true);
	aml_op(a, AML_OP_STORE);
	aml_namestring(a, "GDAT");
	aml_local(a, 0);
	aml_if_begin(a);
	aml_op(a, AML_OP_AND);
	aml_local(a, 0);
	aml_int(a, ACPI_GED_EVT_POWER_BUTTON);
	aml_null_target(a);
	aml_op(a, AML_OP_NOTIFY);
	aml_namestring(a, "\\_SB.PWRB");
	aml_int(a, 0x80); /* "power button pressed" */
	aml_end(a);	  /* If */
	aml_end(a);	  /* _EVT */
	aml_end(a);	  /* GED */
}

/* Device (Cnnn) { _HID "ACPI0007", _UID n }: matches the MADT's processor UID n. */
static void dsdt_cpus(struct aml *a, const struct acpi_config *cfg)
{
	for (unsigned i = 0; i < cfg->nr_vcpus; i++) {
		char name[8];
		snprintf(name, sizeof(name), "C%03X", i & 0xfff);
		aml_device_begin(a, name);
		aml_name(a, "_HID");
		aml_string(a, "ACPI0007");
		aml_name(a, "_UID");
		aml_int(a, i);
		aml_end(a);
	}
}

int acpi_dsdt_build(struct aml *a, const struct acpi_config *cfg)
{
	/* Name (\_S5, Package () { SLP_TYPa, SLP_TYPb, 0, 0 }): HW-reduced sleep uses SLP_TYPa. */
	aml_name(a, "\\_S5");
	aml_package_begin(a, 4);
	aml_int(a, ACPI_S5_SLP_TYP);
	aml_int(a, ACPI_S5_SLP_TYP);
	aml_int(a, 0);
	aml_int(a, 0);
	aml_end(a);

	aml_scope_begin(a, "\\_SB");
	dsdt_pci0(a, cfg);
	dsdt_motherboard(a, cfg);
	if (cfg->has_com1)
		dsdt_isa_device(a, "COM1", "PNP0501", PORT_COM1, 8, GSI_COM1);
	if (cfg->has_rtc)
		/* The RTC raises no interrupts: without an IRQ in _CRS, hwclock and Linux's
		 * rtc-cmos poll instead of waiting for an update interrupt that never comes. */
		dsdt_isa_device(a, "RTC", "PNP0B00", PORT_CMOS, 2, DSDT_NO_IRQ);
	dsdt_power_button(a);
	dsdt_cpus(a, cfg);
	aml_end(a); /* \_SB */
	return aml_finish(a);
}
