/* SPDX-License-Identifier: MIT */
/*
 * AML builder. Encodings follow the ACPI 6.x specification, chapter 20 (AML grammar) and
 * section 6.4 (resource descriptors).
 */
#include "boot/aml.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

/* Opcodes and prefixes only the builder itself needs. */
#define AML_ZERO_OP 0x00
#define AML_ONE_OP 0x01
#define AML_NAME_OP 0x08
#define AML_BYTE_PREFIX 0x0a
#define AML_WORD_PREFIX 0x0b
#define AML_DWORD_PREFIX 0x0c
#define AML_STRING_PREFIX 0x0d
#define AML_QWORD_PREFIX 0x0e
#define AML_SCOPE_OP 0x10
#define AML_BUFFER_OP 0x11
#define AML_PACKAGE_OP 0x12
#define AML_METHOD_OP 0x14
#define AML_DUAL_NAME_PREFIX 0x2e
#define AML_MULTI_NAME_PREFIX 0x2f
#define AML_EXT_OP_PREFIX 0x5b
#define AML_ROOT_CHAR 0x5c
#define AML_PARENT_PREFIX_CHAR 0x5e
#define AML_LOCAL0_OP 0x60
#define AML_ARG0_OP 0x68
#define AML_IF_OP 0xa0
#define AML_ELSE_OP 0xa1
#define AML_EXT_OPREGION_OP 0x80
#define AML_EXT_FIELD_OP 0x81
#define AML_EXT_DEVICE_OP 0x82

/* Resource descriptor tags. */
#define RES_IRQ_NOFLAGS 0x22 /* small, 2 data bytes */
#define RES_IO 0x47	     /* small, 7 data bytes */
#define RES_END_TAG 0x79     /* small, 1 data byte (checksum) */
#define RES_MEMORY32_FIXED 0x86
#define RES_DWORD_ADDRESS 0x87
#define RES_WORD_ADDRESS 0x88
#define RES_EXT_INTERRUPT 0x89
#define RES_QWORD_ADDRESS 0x8a
#define RES_TYPE_MEMORY 0
#define RES_TYPE_IO 1
#define RES_TYPE_BUS 2

/* What aml_end() has to insert for an open construct. */
enum { KIND_PKG = 1, KIND_BUFFER, KIND_RT, KIND_FIELD };

#define AML_PKGLEN_MAX 0x0fffffffu

void aml_init(struct aml *a, void *buf, size_t cap)
{
	memset(a, 0, sizeof(*a));
	a->buf = buf;
	a->cap = buf ? cap : 0;
}

int aml_finish(const struct aml *a)
{
	if (a->err)
		return a->err;
	return a->depth ? -EINVAL : 0;
}

static void aml_fail(struct aml *a, int err)
{
	if (!a->err)
		a->err = err;
}

static void aml_put(struct aml *a, const void *p, size_t n)
{
	if (a->err || n == 0)
		return;
	if (n > a->cap - a->len) {
		aml_fail(a, -ENOSPC);
		return;
	}
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

static void aml_put8(struct aml *a, uint8_t v)
{
	aml_put(a, &v, 1);
}

static void aml_put_le(struct aml *a, uint64_t v, unsigned bytes)
{
	uint8_t b[8];
	for (unsigned i = 0; i < bytes; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	aml_put(a, b, bytes);
}

/* The PkgLength byte layout for a raw value v with the minimal number of bytes. */
static size_t pkglen_raw(uint8_t out[4], uint32_t v)
{
	size_t n;
	if (v < 0x40) {
		out[0] = (uint8_t)v;
		return 1;
	}
	if (v < 0x1000)
		n = 2;
	else if (v < 0x100000)
		n = 3;
	else if (v <= AML_PKGLEN_MAX)
		n = 4;
	else
		return 0;
	/* Lead byte: bits 7-6 = count of following bytes, bits 3-0 = low nibble. */
	out[0] = (uint8_t)(((n - 1) << 6) | (v & 0x0f));
	for (size_t i = 1; i < n; i++)
		out[i] = (uint8_t)(v >> (4 + 8 * (i - 1)));
	return n;
}

size_t aml_pkglen_encode(uint8_t out[4], size_t body_len)
{
	for (size_t n = 1; n <= 4; n++) {
		if (body_len > AML_PKGLEN_MAX - n)
			return 0;
		uint32_t v = (uint32_t)(body_len + n);
		uint8_t tmp[4];
		if (pkglen_raw(tmp, v) == n) {
			memcpy(out, tmp, n);
			return n;
		}
	}
	return 0;
}

size_t aml_int_encode(uint8_t out[9], uint64_t v)
{
	unsigned bytes;
	if (v == 0 || v == 1) {
		out[0] = v ? AML_ONE_OP : AML_ZERO_OP;
		return 1;
	}
	if (v <= 0xff) {
		out[0] = AML_BYTE_PREFIX;
		bytes = 1;
	} else if (v <= 0xffff) {
		out[0] = AML_WORD_PREFIX;
		bytes = 2;
	} else if (v <= 0xffffffffu) {
		out[0] = AML_DWORD_PREFIX;
		bytes = 4;
	} else {
		out[0] = AML_QWORD_PREFIX;
		bytes = 8;
	}
	for (unsigned i = 0; i < bytes; i++)
		out[1 + i] = (uint8_t)(v >> (8 * i));
	return 1 + bytes;
}

static bool name_lead_ok(char c)
{
	return (c >= 'A' && c <= 'Z') || c == '_';
}

static bool name_char_ok(char c)
{
	return name_lead_ok(c) || (c >= '0' && c <= '9');
}

int aml_nameseg_encode(uint8_t out[4], const char *seg, size_t seg_len)
{
	if (seg_len < 1 || seg_len > 4 || !name_lead_ok(seg[0]))
		return -EINVAL;
	for (size_t i = 0; i < 4; i++) {
		if (i >= seg_len) {
			out[i] = '_';
			continue;
		}
		if (!name_char_ok(seg[i]))
			return -EINVAL;
		out[i] = (uint8_t)seg[i];
	}
	return 0;
}

void aml_int(struct aml *a, uint64_t v)
{
	uint8_t b[9];
	aml_put(a, b, aml_int_encode(b, v));
}

void aml_string(struct aml *a, const char *s)
{
	for (const char *p = s; *p; p++) {
		if ((unsigned char)*p > 0x7f) {
			aml_fail(a, -EINVAL);
			return;
		}
	}
	aml_put8(a, AML_STRING_PREFIX);
	aml_put(a, s, strlen(s) + 1);
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

void aml_eisaid(struct aml *a, const char *id)
{
	if (strlen(id) != 7) {
		aml_fail(a, -EINVAL);
		return;
	}
	uint32_t letters = 0;
	for (int i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z') {
			aml_fail(a, -EINVAL);
			return;
		}
		letters = (letters << 5) | (uint32_t)(id[i] - 0x40);
	}
	uint8_t b[4];
	/* Three 5-bit letters big-endian in the first two bytes, then four hex digits. */
	b[0] = (uint8_t)(letters >> 8);
	b[1] = (uint8_t)letters;
	for (int i = 0; i < 2; i++) {
		/* Upper-case hex only, as the PNP ID format requires. */
		int hi = hex_digit(id[3 + 2 * i]), lo = hex_digit(id[4 + 2 * i]);
		if (hi < 0 || lo < 0 || islower((unsigned char)id[3 + 2 * i]) ||
		    islower((unsigned char)id[4 + 2 * i])) {
			aml_fail(a, -EINVAL);
			return;
		}
		b[2 + i] = (uint8_t)(hi << 4 | lo);
	}
	/* Always a DWord, whatever the value, as ASL's EisaId() produces. */
	aml_put8(a, AML_DWORD_PREFIX);
	aml_put(a, b, 4);
}

void aml_uuid(struct aml *a, const char *uuid)
{
	/* Text order of the 16 bytes: fields 1-3 are little-endian, fields 4-5 big-endian. */
	static const uint8_t pos[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
	uint8_t b[16];
	unsigned n = 0;
	if (strlen(uuid) != 36) {
		aml_fail(a, -EINVAL);
		return;
	}
	for (unsigned i = 0; i < 36;) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (uuid[i] != '-') {
				aml_fail(a, -EINVAL);
				return;
			}
			i++;
			continue;
		}
		int hi = hex_digit(uuid[i]), lo = hex_digit(uuid[i + 1]);
		if (hi < 0 || lo < 0) {
			aml_fail(a, -EINVAL);
			return;
		}
		b[pos[n++]] = (uint8_t)(hi << 4 | lo);
		i += 2;
	}
	aml_buffer(a, b, sizeof(b));
}

void aml_namestring(struct aml *a, const char *path)
{
	const char *p = path;
	if (*p == '\\') {
		aml_put8(a, AML_ROOT_CHAR);
		p++;
	} else {
		while (*p == '^') {
			aml_put8(a, AML_PARENT_PREFIX_CHAR);
			p++;
		}
	}
	if (!*p) {
		aml_put8(a, 0x00); /* NullName */
		return;
	}
	size_t nseg = 1;
	for (const char *q = p; *q; q++)
		nseg += *q == '.';
	if (nseg > 255) {
		aml_fail(a, -EINVAL);
		return;
	}
	if (nseg == 2) {
		aml_put8(a, AML_DUAL_NAME_PREFIX);
	} else if (nseg > 2) {
		aml_put8(a, AML_MULTI_NAME_PREFIX);
		aml_put8(a, (uint8_t)nseg);
	}
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		uint8_t seg[4];
		if (aml_nameseg_encode(seg, p, n) < 0 || (dot && !dot[1])) {
			aml_fail(a, -EINVAL);
			return;
		}
		aml_put(a, seg, 4);
		p += n + (dot ? 1 : 0);
	}
}

void aml_local(struct aml *a, unsigned n)
{
	if (n > 7)
		aml_fail(a, -EINVAL);
	else
		aml_put8(a, (uint8_t)(AML_LOCAL0_OP + n));
}

void aml_arg(struct aml *a, unsigned n)
{
	if (n > 6)
		aml_fail(a, -EINVAL);
	else
		aml_put8(a, (uint8_t)(AML_ARG0_OP + n));
}

void aml_null_target(struct aml *a)
{
	aml_put8(a, 0x00);
}

void aml_op(struct aml *a, enum aml_opcode op)
{
	aml_put8(a, (uint8_t)op);
}

/* Record an open construct; its PkgLength goes at the current position. */
static void aml_open(struct aml *a, uint8_t kind)
{
	if (a->err)
		return;
	if (a->depth >= AML_MAX_DEPTH) {
		aml_fail(a, -EINVAL);
		return;
	}
	a->open[a->depth].start = a->len;
	a->open[a->depth].kind = kind;
	a->depth++;
}

static bool aml_inside(const struct aml *a, uint8_t kind)
{
	return a->depth && a->open[a->depth - 1].kind == kind;
}

void aml_end(struct aml *a)
{
	if (a->err)
		return;
	if (!a->depth) {
		aml_fail(a, -EINVAL);
		return;
	}
	uint8_t kind = a->open[a->depth - 1].kind;
	if (kind == KIND_RT) {
		uint8_t end[2] = {RES_END_TAG, 0}; /* checksum 0: "treat as correct" */
		aml_put(a, end, sizeof(end));
		if (a->err)
			return;
	}
	size_t start = a->open[--a->depth].start;
	size_t body = a->len - start;
	uint8_t hdr[4 + 9];
	uint8_t size_enc[9];
	size_t size_len = 0;
	if (kind == KIND_BUFFER || kind == KIND_RT)
		size_len = aml_int_encode(size_enc, body); /* BufferSize */
	size_t pl = aml_pkglen_encode(hdr, size_len + body);
	if (!pl) {
		aml_fail(a, -ENOSPC);
		return;
	}
	memcpy(hdr + pl, size_enc, size_len);
	size_t hlen = pl + size_len;
	if (hlen > a->cap - a->len) {
		aml_fail(a, -ENOSPC);
		return;
	}
	memmove(a->buf + start + hlen, a->buf + start, body);
	memcpy(a->buf + start, hdr, hlen);
	a->len += hlen;
}

void aml_buffer(struct aml *a, const void *data, size_t len)
{
	aml_put8(a, AML_BUFFER_OP);
	aml_open(a, KIND_BUFFER);
	aml_put(a, data, len);
	aml_end(a);
}

void aml_name(struct aml *a, const char *path)
{
	aml_put8(a, AML_NAME_OP);
	aml_namestring(a, path);
}

void aml_scope_begin(struct aml *a, const char *path)
{
	aml_put8(a, AML_SCOPE_OP);
	aml_open(a, KIND_PKG);
	aml_namestring(a, path);
}

void aml_device_begin(struct aml *a, const char *path)
{
	uint8_t op[2] = {AML_EXT_OP_PREFIX, AML_EXT_DEVICE_OP};
	aml_put(a, op, 2);
	aml_open(a, KIND_PKG);
	aml_namestring(a, path);
}

void aml_method_begin(struct aml *a, const char *path, unsigned nargs, bool serialized)
{
	if (nargs > 7) {
		aml_fail(a, -EINVAL);
		return;
	}
	aml_put8(a, AML_METHOD_OP);
	aml_open(a, KIND_PKG);
	aml_namestring(a, path);
	/* MethodFlags: ArgCount in bits 0-2, SerializeFlag in bit 3, SyncLevel 0. */
	aml_put8(a, (uint8_t)(nargs | (serialized ? 0x08 : 0)));
}

void aml_package_begin(struct aml *a, unsigned nelems)
{
	if (nelems > 255) {
		aml_fail(a, -EINVAL);
		return;
	}
	aml_put8(a, AML_PACKAGE_OP);
	aml_open(a, KIND_PKG);
	aml_put8(a, (uint8_t)nelems);
}

void aml_if_begin(struct aml *a)
{
	aml_put8(a, AML_IF_OP);
	aml_open(a, KIND_PKG);
}

void aml_else_begin(struct aml *a)
{
	aml_put8(a, AML_ELSE_OP);
	aml_open(a, KIND_PKG);
}

void aml_opregion(struct aml *a, const char *path, uint8_t space, uint64_t offset, uint64_t len)
{
	uint8_t op[2] = {AML_EXT_OP_PREFIX, AML_EXT_OPREGION_OP};
	aml_put(a, op, 2);
	aml_namestring(a, path);
	aml_put8(a, space);
	aml_int(a, offset);
	aml_int(a, len);
}

void aml_field_begin(struct aml *a, const char *region, uint8_t flags)
{
	uint8_t op[2] = {AML_EXT_OP_PREFIX, AML_EXT_FIELD_OP};
	if (flags & 0x80) { /* bit 7 is reserved */
		aml_fail(a, -EINVAL);
		return;
	}
	aml_put(a, op, 2);
	aml_open(a, KIND_FIELD);
	aml_namestring(a, region);
	aml_put8(a, flags);
}

void aml_field_unit(struct aml *a, const char *seg, unsigned bits)
{
	uint8_t name[4], len[4];
	size_t n;
	if (a->err)
		return;
	/* NamedField := NameSeg PkgLength, where the PkgLength value is the width in bits. */
	if (!aml_inside(a, KIND_FIELD) || aml_nameseg_encode(name, seg, strlen(seg)) < 0 ||
	    bits == 0 || !(n = pkglen_raw(len, bits))) {
		aml_fail(a, -EINVAL);
		return;
	}
	aml_put(a, name, 4);
	aml_put(a, len, n);
}

/* ---- Resource templates ------------------------------------------------------------------ */

void aml_rt_begin(struct aml *a)
{
	aml_put8(a, AML_BUFFER_OP);
	aml_open(a, KIND_RT);
}

static bool aml_rt_check(struct aml *a)
{
	if (a->err)
		return false;
	if (!aml_inside(a, KIND_RT)) {
		aml_fail(a, -EINVAL);
		return false;
	}
	return true;
}

void aml_rt_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
	if (!aml_rt_check(a))
		return;
	aml_put8(a, RES_IO);
	aml_put8(a, 0x01); /* Decode16 */
	aml_put_le(a, min, 2);
	aml_put_le(a, max, 2);
	aml_put8(a, align);
	aml_put8(a, len);
}

void aml_rt_irq_noflags(struct aml *a, unsigned irq)
{
	if (!aml_rt_check(a))
		return;
	if (irq > 15) {
		aml_fail(a, -EINVAL);
		return;
	}
	aml_put8(a, RES_IRQ_NOFLAGS);
	aml_put_le(a, 1u << irq, 2);
}

void aml_rt_memory32_fixed(struct aml *a, bool writable, uint32_t base, uint32_t len)
{
	if (!aml_rt_check(a))
		return;
	aml_put8(a, RES_MEMORY32_FIXED);
	aml_put_le(a, 9, 2); /* length of the data that follows */
	aml_put8(a, writable ? 0x01 : 0x00);
	aml_put_le(a, base, 4);
	aml_put_le(a, len, 4);
}

void aml_rt_interrupt(struct aml *a, bool consumer, bool edge, bool active_low, bool shared,
		      uint32_t gsi)
{
	if (!aml_rt_check(a))
		return;
	aml_put8(a, RES_EXT_INTERRUPT);
	aml_put_le(a, 6, 2); /* flags, count, one DWord */
	aml_put8(a, (uint8_t)((consumer ? 0x01 : 0) | (edge ? 0x02 : 0) | (active_low ? 0x04 : 0) |
			      (shared ? 0x08 : 0)));
	aml_put8(a, 1);
	aml_put_le(a, gsi, 4);
}

/* Word (2), DWord (4) and QWord (8) address space descriptors share one layout. */
static void aml_rt_addr(struct aml *a, uint8_t tag, uint8_t type, unsigned w,
			const struct aml_addr *r)
{
	uint64_t limit = w == 8 ? UINT64_MAX : (1ULL << (8 * w)) - 1;
	if (!aml_rt_check(a))
		return;
	if (r->granularity > limit || r->min > limit || r->max > limit || r->translation > limit ||
	    r->len > limit || r->min > r->max) {
		aml_fail(a, -EINVAL);
		return;
	}
	/* With both ends fixed, the length must describe exactly [min, max]. */
	if (r->min_fixed && r->max_fixed && r->len && r->len - 1 != r->max - r->min) {
		aml_fail(a, -EINVAL);
		return;
	}
	aml_put8(a, tag);
	aml_put_le(a, 3 + 5 * w, 2);
	aml_put8(a, type);
	aml_put8(a, (uint8_t)((r->consumer ? 0x01 : 0) | (r->subtractive ? 0x02 : 0) |
			      (r->min_fixed ? 0x04 : 0) | (r->max_fixed ? 0x08 : 0)));
	aml_put8(a, r->type_flags);
	aml_put_le(a, r->granularity, w);
	aml_put_le(a, r->min, w);
	aml_put_le(a, r->max, w);
	aml_put_le(a, r->translation, w);
	aml_put_le(a, r->len, w);
}

void aml_rt_word_bus_number(struct aml *a, const struct aml_addr *r)
{
	aml_rt_addr(a, RES_WORD_ADDRESS, RES_TYPE_BUS, 2, r);
}

void aml_rt_word_io(struct aml *a, const struct aml_addr *r)
{
	aml_rt_addr(a, RES_WORD_ADDRESS, RES_TYPE_IO, 2, r);
}

void aml_rt_dword_memory(struct aml *a, const struct aml_addr *r)
{
	aml_rt_addr(a, RES_DWORD_ADDRESS, RES_TYPE_MEMORY, 4, r);
}

void aml_rt_qword_memory(struct aml *a, const struct aml_addr *r)
{
	aml_rt_addr(a, RES_QWORD_ADDRESS, RES_TYPE_MEMORY, 8, r);
}
