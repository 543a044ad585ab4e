/* SPDX-License-Identifier: MIT */
/*
 * Unmapped I/O: ports and MMIO addresses no device claims (the hole, above RAM, past ECAM,
 * absent PCI functions) read as all-ones at every width, writes are dropped, accesses that
 * straddle a device's edge do no harm, and the machine keeps working afterwards.
 */
#include "probe.h"

PROBE("unmapped");

static const uint16_t ports[] = { 0x100, 0x200, 0x2f8, 0x3e8, 0x2e8, 0x290, 0x8000, 0x9000 };

static void check_port(uint16_t p)
{
	CHECK(inb(p) == 0xff, "port 0x%x reads 0x%x (8-bit)", p, inb(p));
	CHECK(inw(p) == 0xffff, "port 0x%x reads 0x%x (16-bit)", p, inw(p));
	CHECK(inl(p) == 0xffffffff, "port 0x%x reads 0x%x (32-bit)", p, inl(p));
	outb(p, 0);
	outw(p, 0x1234);
	outl(p, 0xdeadbeef);
	CHECK(inl(p) == 0xffffffff, "port 0x%x reads 0x%x after writes", p, inl(p));
}

static bool qemu;

static void check_mmio(uint64_t a)
{
	if (qemu) { /* QEMU's unassigned memory reads 0: only make the accesses */
		(void)mmio_read8(a);
		(void)mmio_read64(a);
		mmio_write64(a, 0x0123456789abcdefull);
		return;
	}
	CHECK(mmio_read8(a) == 0xff, "MMIO 0x%lx reads 0x%x (8-bit)", a, mmio_read8(a));
	CHECK(mmio_read16(a) == 0xffff, "MMIO 0x%lx reads 0x%x (16-bit)", a, mmio_read16(a));
	CHECK(mmio_read32(a) == 0xffffffff, "MMIO 0x%lx reads 0x%x (32-bit)", a, mmio_read32(a));
	CHECK(mmio_read64(a) == ~0ull, "MMIO 0x%lx reads 0x%lx (64-bit)", a, mmio_read64(a));
	mmio_write8(a, 0);
	mmio_write32(a, 0);
	mmio_write64(a, 0x0123456789abcdefull);
	CHECK(mmio_read64(a) == ~0ull, "MMIO 0x%lx reads 0x%lx after writes", a, mmio_read64(a));
}

void probe_main(const struct hvm_start_info *si)
{
	uint64_t ram_end = cmdline_u64("mem", 64) << 20;
	uint64_t ecam = pci_ecam_base();
	uint32_t bridge = mmio_read32(ecam);
	struct pci_dev d;
	(void)si;

	qemu = cmdline_has("qemu");
	for (unsigned i = 0; i < sizeof(ports) / sizeof(ports[0]); i++)
		check_port(ports[i]);
	printf("unmapped: %u ports read all-ones\n", (unsigned)(sizeof(ports) / sizeof(ports[0])));

	check_mmio(ram_end + (16 << 20)); /* above RAM */
	check_mmio(LAYOUT_MMIO_HOLE_START - 0x1000);
	check_mmio(LAYOUT_PCI_MMIO_START + LAYOUT_PCI_MMIO_SIZE - 0x1000);
	check_mmio(0xf0000000);
	if (!qemu) {
		check_mmio(LAYOUT_PCI_ECAM_START + LAYOUT_PCI_ECAM_SIZE); /* bus 1 */
		check_mmio(0xfed00000); /* where an HPET would be */
	}
	printf("unmapped: MMIO hole, above RAM and past ECAM read all-ones\n");

	/* absent PCI function: all-ones, writes dropped */
	CHECK(!pci_dev_at(31, 7, &d), "a device at 1f.7?");
	pci_write32(&d, 0x04, 0x7);
	pci_write32(&d, 0x10, 0);
	CHECK(pci_read32(&d, 0x00) == 0xffffffff && pci_read32(&d, 0x04) == 0xffffffff &&
		      pci_read32(&d, 0x10) == 0xffffffff,
	      "absent function 1f.7 does not read all-ones after writes");
	if (!qemu)
		CHECK(pci_cf8_read32(31, 7, 0) == 0xffffffff, "0xcf8: absent 1f.7 reads 0x%x",
		      pci_cf8_read32(31, 7, 0));

	/* odd accesses: 64-bit and straddling reads/writes at device edges (values unspecified) */
	(void)mmio_read64(ecam);
	(void)mmio_read32(ecam + LAYOUT_PCI_ECAM_SIZE - 2);
	(void)mmio_read64(ecam + LAYOUT_PCI_ECAM_SIZE - 4);
	(void)inl(PORT_COM1 + 6); /* 0x3fe..0x401: past the UART */
	outl(PORT_COM1 + 6, 0);
	(void)inl(PORT_CMOS + 1);
	(void)inw(PORT_ACPI_SLEEP_CTL + 1);
	(void)inl(PORT_PCI_CONFIG_DATA + 2);

	/* the machine still works */
	CHECK(mmio_read32(ecam) == bridge, "host bridge ID changed to 0x%x", mmio_read32(ecam));
	CHECK(cmos_read(0x0d) & 0x80, "CMOS register D reads 0x%x", cmos_read(0x0d));
	outb(PORT_COM1 + 7, 0x3c);
	CHECK(inb(PORT_COM1 + 7) == 0x3c, "UART scratch register broken");
	probe_pass();
}
