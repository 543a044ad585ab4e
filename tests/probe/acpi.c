/* SPDX-License-Identifier: MIT */
/* ACPI tables as a PVH guest finds them: RSDP (from start_info), XSDT, checksums, and the
 * FADT/MADT/MCFG/DSDT facts Linux relies on (ports, LAPIC count, IOAPIC, ECAM, \_S5). */
#include "probe.h"

PROBE("acpi");

struct sdt {
	char sig[4];
	uint32_t len;
	uint8_t rev, csum;
	char oem[6], oem_table[8];
	uint32_t oem_rev, creator, creator_rev;
} __attribute__((packed));

static bool qemu;

static uint8_t sum(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint8_t s = 0;
	while (n--)
		s = (uint8_t)(s + *b++);
	return s;
}

static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

static const struct sdt *table_at(uint64_t a, const char *want)
{
	const struct sdt *t;
	CHECK(a && a < LAYOUT_MMIO_HOLE_START, "%s table address 0x%lx", want ? want : "ACPI", a);
	t = (const struct sdt *)(uintptr_t)a;
	if (want)
		CHECK(!memcmp(t->sig, want, 4), "table at 0x%lx is %c%c%c%c, want %s", a, t->sig[0],
		      t->sig[1], t->sig[2], t->sig[3], want);
	CHECK(t->len >= sizeof(*t) && t->len < (1u << 20), "table %c%c%c%c: length %u", t->sig[0],
	      t->sig[1], t->sig[2], t->sig[3], t->len);
	CHECK(sum(t, t->len) == 0, "table %c%c%c%c: bad checksum", t->sig[0], t->sig[1], t->sig[2],
	      t->sig[3]);
	return t;
}

/* Generic address structure: space id 1 = system I/O, 8-bit access at port. */
static void check_gas(const uint8_t *f, unsigned off, const char *what, uint16_t port)
{
	uint64_t addr = rd64(f + off + 4);
	CHECK(f[off] == 1 && addr == port, "FADT %s: space %u address 0x%lx, want I/O port 0x%x", what,
	      f[off], addr, port);
}

static void check_fadt(const struct sdt *t)
{
	const uint8_t *f = (const uint8_t *)t;
	uint32_t flags = rd32(f + 112);
	uint64_t dsdt = t->len >= 148 ? rd64(f + 140) : 0;
	const struct sdt *d;
	const uint8_t *aml;
	bool s5 = false;

	if (!dsdt)
		dsdt = rd32(f + 40);
	d = table_at(dsdt, "DSDT");
	aml = (const uint8_t *)d;
	for (uint32_t i = sizeof(*d); i + 4 <= d->len; i++)
		if (!memcmp(aml + i, "_S5_", 4))
			s5 = true;
	printf("acpi: FADT rev %u len %u flags 0x%x, DSDT %u bytes, _S5_ %s\n", t->rev, t->len, flags,
	       d->len, s5 ? "yes" : "no");
	CHECK(s5, "DSDT has no \\_S5 object: Linux cannot power off");
	if (qemu)
		return;
	CHECK(t->len >= 268, "FADT length %u: too short for the sleep registers", t->len);
	CHECK(flags & (1u << 20), "FADT flags 0x%x: HW_REDUCED_ACPI not set", flags);
	CHECK(flags & (1u << 10), "FADT flags 0x%x: RESET_REG_SUP not set", flags);
	check_gas(f, 116, "RESET_REG", PORT_ACPI_RESET);
	CHECK(f[128] == ACPI_RESET_VALUE, "FADT RESET_VALUE 0x%x", f[128]);
	check_gas(f, 244, "SLEEP_CONTROL_REG", PORT_ACPI_SLEEP_CTL);
	check_gas(f, 256, "SLEEP_STATUS_REG", PORT_ACPI_SLEEP_STS);
}

static void check_madt(const struct sdt *t, unsigned cpus)
{
	const uint8_t *m = (const uint8_t *)t;
	uint32_t lapic = rd32(m + 36), seen = 0, nlapic = 0, nioapic = 0;
	printf("acpi: MADT LAPIC at 0x%x flags 0x%x\n", lapic, rd32(m + 40));
	CHECK(lapic == LAYOUT_LAPIC, "MADT local APIC address 0x%x", lapic);
	for (uint32_t off = 44; off < t->len;) {
		uint8_t type = m[off], len = m[off + 1];
		CHECK(len >= 2 && off + len <= t->len, "MADT entry at %u: length %u", off, len);
		if (type == 0) {
			uint8_t id = m[off + 3];
			uint32_t fl = rd32(m + off + 4);
			printf("acpi: MADT LAPIC uid %u id %u flags 0x%x\n", m[off + 2], id, fl);
			if (fl & 1) {
				CHECK(id < 32 && !(seen & (1u << id)), "MADT: APIC id %u twice or too big", id);
				seen |= 1u << id;
				nlapic++;
			}
		} else if (type == 1) {
			uint32_t a = rd32(m + off + 4), gsi = rd32(m + off + 8);
			printf("acpi: MADT IOAPIC id %u at 0x%x gsi base %u\n", m[off + 2], a, gsi);
			CHECK(a == LAYOUT_IOAPIC && gsi == 0, "MADT IOAPIC at 0x%x gsi base %u", a, gsi);
			nioapic++;
		} else if (type == 2) {
			printf("acpi: MADT override irq %u -> gsi %u flags 0x%x\n", m[off + 3],
			       rd32(m + off + 4), m[off + 8] | (m[off + 9] << 8));
		}
		off += len;
	}
	CHECK(nlapic == cpus, "MADT lists %u enabled LAPICs, %u CPUs asked", nlapic, cpus);
	CHECK(seen == (cpus >= 32 ? 0xffffffffu : (1u << cpus) - 1), "MADT APIC ids 0x%x, want 0..%u",
	      seen, cpus - 1);
	CHECK(nioapic == 1, "MADT lists %u IOAPICs", nioapic);
}

static void check_mcfg(const struct sdt *t)
{
	const uint8_t *m = (const uint8_t *)t;
	CHECK(t->len >= 44 + 16, "MCFG has no allocation");
	printf("acpi: MCFG base 0x%lx segment %u buses %u-%u\n", rd64(m + 44), m[52] | (m[53] << 8),
	       m[54], m[55]);
	CHECK(rd64(m + 44) == pci_ecam_base() && m[54] == 0, "MCFG base 0x%lx, want 0x%lx",
	      rd64(m + 44), pci_ecam_base());
}

void probe_main(const struct hvm_start_info *si)
{
	const uint8_t *rsdp;
	const struct sdt *xsdt;
	bool fadt = false, madt = false, mcfg = false;
	unsigned esz;
	unsigned cpus = (unsigned)cmdline_u64("cpus", 1);

	qemu = cmdline_has("qemu");
	CHECK(si->rsdp_paddr, "start_info.rsdp_paddr is 0");
	rsdp = (const uint8_t *)(uintptr_t)si->rsdp_paddr;
	CHECK(!memcmp(rsdp, "RSD PTR ", 8), "no RSDP signature at 0x%lx", si->rsdp_paddr);
	CHECK(sum(rsdp, 20) == 0, "RSDP checksum");
	if (rsdp[15] >= 2) {
		CHECK(rd32(rsdp + 20) >= 36 && sum(rsdp, rd32(rsdp + 20)) == 0, "RSDP extended checksum");
		xsdt = table_at(rd64(rsdp + 24), "XSDT");
		esz = 8;
	} else {
		xsdt = table_at(rd32(rsdp + 16), "RSDT"); /* ACPI 1.0 style: 32-bit entries */
		esz = 4;
	}
	printf("acpi: RSDP rev %u, %c%c%c%c with %u entries\n", rsdp[15], xsdt->sig[0], xsdt->sig[1],
	       xsdt->sig[2], xsdt->sig[3], (unsigned)((xsdt->len - sizeof(*xsdt)) / esz));
	for (uint32_t off = sizeof(*xsdt); off + esz <= xsdt->len; off += esz) {
		const uint8_t *ent = (const uint8_t *)xsdt + off;
		const struct sdt *t = table_at(esz == 8 ? rd64(ent) : rd32(ent), NULL);
		printf("acpi: %c%c%c%c at %p len %u rev %u\n", t->sig[0], t->sig[1], t->sig[2], t->sig[3],
		       (const void *)t, t->len, t->rev);
		if (!memcmp(t->sig, "FACP", 4)) {
			check_fadt(t);
			fadt = true;
		} else if (!memcmp(t->sig, "APIC", 4)) {
			check_madt(t, cpus);
			madt = true;
		} else if (!memcmp(t->sig, "MCFG", 4)) {
			check_mcfg(t);
			mcfg = true;
		}
	}
	CHECK(fadt && madt, "no %s table", fadt ? "MADT" : "FADT");
	CHECK(mcfg, "no MCFG table: Linux will not use the ECAM window");
	probe_pass();
}
