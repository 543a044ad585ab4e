/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the PCI unit tests: a fake platform with a PCI host at the layout's
 * addresses, config accesses through 0xCF8/0xCFC and ECAM, and a recording BAR handler.
 */
#ifndef VIREO_TESTS_UNIT_PCI_TEST_H
#define VIREO_TESTS_UNIT_PCI_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>
#include <cmocka.h>

#include "bus/pci/pci.h"
#include "fake_platform.h"
#include "memory/layout.h"

struct bar_rec {
	uint64_t off;
	unsigned len;
	uint64_t val;
	unsigned reads, writes;
};

static inline void bar_rec_read(void *o, uint64_t off, void *data, unsigned len)
{
	struct bar_rec *r = o;
	r->off = off;
	r->len = len;
	r->reads++;
	memset(data, 0x5a, len);
}

static inline void bar_rec_write(void *o, uint64_t off, const void *data, unsigned len)
{
	struct bar_rec *r = o;
	r->off = off;
	r->len = len;
	r->val = 0;
	memcpy(&r->val, data, len > 8 ? 8 : len);
	r->writes++;
}

static const struct bus_ops bar_rec_ops = {.read = bar_rec_read, .write = bar_rec_write};

static inline uint32_t cf8_addr(unsigned bus, unsigned slot, unsigned fn, uint32_t reg)
{
	return 0x80000000u | bus << 16 | slot << 11 | fn << 8 | (reg & 0xfc);
}

static inline uint32_t cfc_read(struct fake_platform *fp, unsigned slot, unsigned fn, uint32_t reg,
				unsigned len)
{
	uint32_t a = cf8_addr(0, slot, fn, reg), v = 0;
	assert_true(bus_write(&fp->pio, PORT_PCI_CONFIG_ADDR, &a, 4));
	assert_true(bus_read(&fp->pio, PORT_PCI_CONFIG_DATA + (reg & 3), &v, len));
	return v;
}

static inline void cfc_write(struct fake_platform *fp, unsigned slot, unsigned fn, uint32_t reg,
			     unsigned len, uint32_t v)
{
	uint32_t a = cf8_addr(0, slot, fn, reg);
	assert_true(bus_write(&fp->pio, PORT_PCI_CONFIG_ADDR, &a, 4));
	assert_true(bus_write(&fp->pio, PORT_PCI_CONFIG_DATA + (reg & 3), &v, len));
}

static inline uint64_t ecam_addr(unsigned slot, unsigned fn, uint32_t reg)
{
	return LAYOUT_PCI_ECAM_START + ((uint64_t)slot << 15) + ((uint64_t)fn << 12) + reg;
}

static inline uint32_t ecam_read(struct fake_platform *fp, unsigned slot, unsigned fn, uint32_t reg,
				 unsigned len)
{
	uint32_t v = 0;
	assert_true(bus_read(&fp->mmio, ecam_addr(slot, fn, reg), &v, len));
	return v;
}

static inline void ecam_write(struct fake_platform *fp, unsigned slot, unsigned fn, uint32_t reg,
			      unsigned len, uint32_t v)
{
	assert_true(bus_write(&fp->mmio, ecam_addr(slot, fn, reg), &v, len));
}

static inline bool mmio_claimed(struct fake_platform *fp, uint64_t addr)
{
	uint32_t v;
	return bus_read(&fp->mmio, addr, &v, 4);
}

/* Walk the capability list of a slot through ECAM; returns the offset of cap id or 0. */
static inline uint8_t cap_find(struct fake_platform *fp, unsigned slot, uint8_t id)
{
	uint8_t off = (uint8_t)ecam_read(fp, slot, 0, PCI_CFG_CAP_PTR, 1) & 0xfc;
	for (unsigned n = 0; off && n < 48; n++) {
		if (ecam_read(fp, slot, 0, off, 1) == id)
			return off;
		off = (uint8_t)ecam_read(fp, slot, 0, off + 1u, 1) & 0xfc;
	}
	return 0;
}

#endif
