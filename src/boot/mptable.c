/* SPDX-License-Identifier: MIT */
#include "boot/mptable.h"
#include "memory/layout.h"

#include <errno.h>
#include <string.h>

/* Entry types and sizes, MP spec 1.4 chapter 4. */
enum { MP_PROC = 0, MP_BUS = 1, MP_IOAPIC = 2, MP_IOINT = 3, MP_LINT = 4 };
enum { MP_INT = 0, MP_NMI = 1, MP_EXTINT = 3 };
#define MP_FLOAT_SIZE 16
#define MP_HDR_SIZE 44
#define MP_PROC_SIZE 20
#define MP_SMALL_SIZE 8
#define MP_SPEC_REV 4
#define MP_LAPIC_VERSION 0x14
#define MP_IOAPIC_VERSION 0x11
#define MP_IOAPIC_ID 0 /* as in the MADT */
#define MP_IRQ_LEVEL_HIGH 0x0d /* polarity active high (01), trigger level (11) */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static uint8_t checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;
	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + p[i]);
	return (uint8_t)(0 - sum);
}

static uint8_t *small_entry(uint8_t *p, uint8_t type, uint8_t a, uint16_t flags, uint8_t bus,
			    uint8_t irq, uint8_t dst, uint8_t pin)
{
	p[0] = type;
	p[1] = a;
	put16(p + 2, flags);
	p[4] = bus;
	p[5] = irq;
	p[6] = dst;
	p[7] = pin;
	return p + MP_SMALL_SIZE;
}

int mptable_build(const struct gmem *m, unsigned nr_vcpus)
{
	if (nr_vcpus == 0 || nr_vcpus > MPTABLE_MAX_CPUS)
		return -EINVAL;
	uint8_t *fp = gmem_ptr(m, LAYOUT_MPTABLE_FLOAT, MP_FLOAT_SIZE);
	uint8_t *t = gmem_ptr(m, LAYOUT_MPTABLE_CONFIG, LAYOUT_MPTABLE_CONFIG_SIZE);
	if (!fp || !t)
		return -EFAULT;
	memset(t, 0, LAYOUT_MPTABLE_CONFIG_SIZE);
	uint8_t *p = t + MP_HDR_SIZE;
	uint16_t count = 0;

	for (unsigned i = 0; i < nr_vcpus; i++, count++) {
		p[0] = MP_PROC;
		p[1] = (uint8_t)i; /* local APIC ID */
		p[2] = MP_LAPIC_VERSION;
		p[3] = (uint8_t)(0x1 | (i == 0 ? 0x2 : 0)); /* enabled, bootstrap processor */
		put32(p + 4, 0x600);			  /* family 6 signature */
		put32(p + 8, 0x201);			  /* FPU, APIC */
		p += MP_PROC_SIZE;
	}
	p[0] = MP_BUS;
	memcpy(p + 2, "ISA   ", 6);
	p += MP_SMALL_SIZE;
	count++;
	p[0] = MP_IOAPIC;
	p[1] = MP_IOAPIC_ID;
	p[2] = MP_IOAPIC_VERSION;
	p[3] = 0x1; /* enabled */
	put32(p + 4, (uint32_t)LAYOUT_IOAPIC);
	p += MP_SMALL_SIZE;
	count++;
	/* ISA IRQs: pin 0 carries the 8259's ExtINT, IRQ 0 (the PIT) arrives on pin 2. */
	p = small_entry(p, MP_IOINT, MP_EXTINT, 0, 0, 0, MP_IOAPIC_ID, 0);
	count++;
	for (uint8_t irq = 0; irq < 16; irq++) {
		if (irq == 2)
			continue; /* the cascade */
		uint16_t flags = irq == GSI_SCI ? MP_IRQ_LEVEL_HIGH : 0;
		p = small_entry(p, MP_IOINT, MP_INT, flags, 0, irq, MP_IOAPIC_ID, irq == 0 ? 2 : irq);
		count++;
	}
	p = small_entry(p, MP_LINT, MP_EXTINT, 0, 0, 0, 0xff, 0);
	p = small_entry(p, MP_LINT, MP_NMI, 0, 0, 0, 0xff, 1);
	count += 2;

	size_t len = (size_t)(p - t);
	memcpy(t, "PCMP", 4);
	put16(t + 4, (uint16_t)len);
	t[6] = MP_SPEC_REV;
	memcpy(t + 8, "VIREO   ", 8);
	memcpy(t + 16, "VM          ", 12);
	put16(t + 34, count);
	put32(t + 36, (uint32_t)LAYOUT_LAPIC);
	t[7] = checksum(t, len);

	memset(fp, 0, MP_FLOAT_SIZE);
	memcpy(fp, "_MP_", 4);
	put32(fp + 4, (uint32_t)LAYOUT_MPTABLE_CONFIG);
	fp[8] = 1; /* length in 16-byte units */
	fp[9] = MP_SPEC_REV;
	fp[10] = checksum(fp, MP_FLOAT_SIZE);
	return 0;
}
