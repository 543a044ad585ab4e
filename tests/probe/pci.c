/* SPDX-License-Identifier: MIT */
/*
 * PCI enumeration over ECAM (bus 0): a host bridge at 00.0, every function's header sane,
 * the virtio-rng device (1af4:1044) with its virtio capabilities and MSI-X, BARs assigned in
 * the PCI window and sized consistently, and 0xcf8/0xcfc agreeing with ECAM.
 */
#include "probe.h"
#include "virtio.h"

PROBE("pci");

static bool qemu;

static void check_bars(const struct pci_dev *d)
{
	for (unsigned b = 0; b < 6; b++) {
		uint32_t raw = pci_read32(d, 0x10 + 4 * b);
		uint64_t addr, size;
		bool assigned, is64 = !(raw & 1) && ((raw >> 1) & 3) == 2;
		if (!pci_bar(d, b, &addr, &size, &assigned)) {
			if (is64)
				b++;
			continue;
		}
		printf("pci: %02x.%x BAR%u: 0x%lx size 0x%lx%s%s\n", d->dev, d->fn, b, addr, size,
		       is64 ? " 64-bit" : "", (raw & 8) ? " prefetchable" : "");
		CHECK(!assigned, "%02x.%x BAR%u left unassigned (no firmware runs before the guest)",
		      d->dev, d->fn, b);
		CHECK(size && !(size & (size - 1)), "%02x.%x BAR%u size 0x%lx not a power of two",
		      d->dev, d->fn, b, size);
		CHECK(!(addr & (size - 1)), "%02x.%x BAR%u at 0x%lx not aligned to its size", d->dev,
		      d->fn, b, addr);
		if (!qemu)
			CHECK(addr >= LAYOUT_PCI_MMIO_START &&
				      addr + size <= LAYOUT_PCI_MMIO_START + LAYOUT_PCI_MMIO_SIZE,
			      "%02x.%x BAR%u at 0x%lx outside the PCI window", d->dev, d->fn, b, addr);
		if (is64)
			b++;
	}
}

static void check_virtio_rng(const struct pci_dev *d)
{
	unsigned types = 0, msix;
	struct vdev v;
	uint16_t ctl;

	CHECK(pci_read8(d, 0x08) >= 1, "virtio-rng revision %u: modern devices need >= 1",
	      pci_read8(d, 0x08));
	CHECK(pci_read16(d, 0x2c) == VIRTIO_VENDOR, "subsystem vendor 0x%x", pci_read16(d, 0x2c));
	for (unsigned c = pci_find_cap(d, PCI_CAP_VENDOR, 0); c; c = pci_find_cap(d, PCI_CAP_VENDOR, c)) {
		uint8_t type = pci_read8(d, c + 3), len = pci_read8(d, c + 2);
		uint32_t off = pci_read32(d, c + 8), length = pci_read32(d, c + 12);
		printf("pci: virtio cap at 0x%x: type %u bar %u offset 0x%x length 0x%x (cap len %u)\n", c,
		       type, pci_read8(d, c + 4), off, length, len);
		CHECK(len >= 16, "virtio cap at 0x%x: cap_len %u", c, len);
		if (type == VIRTIO_PCI_CAP_COMMON)
			CHECK(length >= 0x38, "common config length 0x%x < 0x38", length);
		if (type == VIRTIO_PCI_CAP_NOTIFY) {
			CHECK(len >= 20, "notify cap length %u", len);
			printf("pci: notify_off_multiplier %u\n", pci_read32(d, c + 16));
		}
		if (type < 32)
			types |= 1u << type;
	}
	CHECK((types & 0x0e) == 0x0e, "virtio caps present 0x%x: need common, notify and isr", types);
	msix = pci_find_cap(d, PCI_CAP_MSIX, 0);
	CHECK(msix, "virtio-rng has no MSI-X capability");
	ctl = pci_read16(d, msix + 2);
	printf("pci: MSI-X: %u entries, table 0x%x, PBA 0x%x\n", (ctl & 0x7ff) + 1,
	       pci_read32(d, msix + 4), pci_read32(d, msix + 8));
	CHECK((ctl & 0x7ff) + 1 >= 2, "MSI-X table has %u entries (config + one queue need 2)",
	      (ctl & 0x7ff) + 1);
	CHECK(!(ctl & 0x8000), "MSI-X enabled at boot");
	check_bars(d);
	CHECK(vdev_open(&v, d->device), "vdev_open failed");
	CHECK(mmio_read16(v.common + VCC_NUM_QUEUES) >= 1, "num_queues %u",
	      mmio_read16(v.common + VCC_NUM_QUEUES));
}

void probe_main(const struct hvm_start_info *si)
{
	struct pci_dev d, rng;
	bool have_rng = false;
	unsigned nfn = 0;
	uint32_t cls;
	(void)si;

	qemu = cmdline_has("qemu");
	printf("pci: ECAM at 0x%lx\n", pci_ecam_base());
	CHECK(pci_dev_at(0, 0, &d), "no device at 00.0 (vendor 0x%x)", d.vendor);
	cls = pci_read32(&d, 0x08) >> 8;
	CHECK((cls >> 8) == 0x0600, "00.0 class 0x%06x is not a host bridge", cls);

	for (unsigned dev = 0; dev < 32; dev++) {
		for (unsigned fn = 0; fn < 8; fn++) {
			if (!pci_dev_at(dev, fn, &d)) {
				CHECK(pci_read32(&d, 0) == 0xffffffff,
				      "absent %02x.%x reads 0x%x, want all-ones", dev, fn, pci_read32(&d, 0));
				if (fn == 0)
					break;
				continue;
			}
			nfn++;
			cls = pci_read32(&d, 0x08) >> 8;
			printf("pci: %02x.%x %04x:%04x class %06x header %02x\n", dev, fn, d.vendor,
			       d.device, cls, pci_read8(&d, 0x0e));
			/* read-only identity: writes must not stick */
			pci_write32(&d, 0x00, 0x12345678);
			CHECK(pci_read16(&d, 0) == d.vendor && pci_read16(&d, 2) == d.device,
			      "%02x.%x: vendor/device ID writable", dev, fn);
			if (!qemu || dev == 0)
				CHECK(pci_cf8_read32(dev, fn, 0) == pci_read32(&d, 0) &&
					      pci_cf8_read32(dev, fn, 8) == pci_read32(&d, 8),
				      "%02x.%x: 0xcf8/0xcfc reads 0x%x, ECAM 0x%x", dev, fn,
				      pci_cf8_read32(dev, fn, 0), pci_read32(&d, 0));
			if (d.vendor == VIRTIO_VENDOR && d.device == VIRTIO_ID_RNG_MODERN) {
				rng = d;
				have_rng = true;
			}
			if (fn == 0 && !(pci_read8(&d, 0x0e) & 0x80))
				break;
		}
	}
	CHECK(have_rng, "no virtio-rng (1af4:1044) on bus 0 (%u functions)", nfn);
	check_virtio_rng(&rng);
	probe_pass();
}
