/* SPDX-License-Identifier: MIT */
/*
 * A small AML (ACPI Machine Language) byte-code builder, enough for a VMM's DSDT.
 *
 * Contract:
 * - The builder writes into a caller-supplied buffer of fixed capacity and never allocates.
 * - Errors are sticky: the first failure (-ENOSPC when the buffer is full, -EINVAL for a bad
 *   name, string, value or nesting) is recorded and every later call does nothing. Callers
 *   emit a whole tree and check once with aml_finish().
 * - Terms are emitted in AML's prefix order: an operator, then its operands. Constructs that
 *   carry a PkgLength (Scope, Device, Method, If, Else, Field, Package, Buffer, resource
 *   templates) are opened with *_begin() and closed with aml_end(); the PkgLength (and a
 *   Buffer's size) is inserted when the construct is closed, using the shortest encoding.
 * - Names are ASL-style strings: NameSegs of 1-4 characters ([A-Z_][A-Z0-9_]*, padded with
 *   '_'), joined by '.', optionally prefixed by '\' (root) or '^' (parent), e.g. "\_SB.PCI0".
 */
#ifndef VIREO_BOOT_AML_H
#define VIREO_BOOT_AML_H

#include "common/compiler.h"

#define AML_MAX_DEPTH 16

struct aml {
	uint8_t *buf;
	size_t len;
	size_t cap;
	int err; /* first error, 0 if none */
	unsigned depth;
	struct {
		size_t start; /* where the PkgLength goes */
		uint8_t kind;
	} open[AML_MAX_DEPTH];
};

/* One-byte opcodes for expressions and statements (ACPI 6.x, section 20.3). */
enum aml_opcode {
	AML_OP_STORE = 0x70,		  /* Store(TermArg, SuperName) */
	AML_OP_AND = 0x7b,		  /* And(Operand, Operand, Target) */
	AML_OP_OR = 0x7d,		  /* Or(Operand, Operand, Target) */
	AML_OP_NOTIFY = 0x86,		  /* Notify(SuperName, TermArg) */
	AML_OP_CREATE_DWORD_FIELD = 0x8a, /* CreateDWordField(Buffer, Index, NameString) */
	AML_OP_LNOT = 0x92,		  /* LNot(Operand) */
	AML_OP_LEQUAL = 0x93,		  /* LEqual(Operand, Operand) */
	AML_OP_RETURN = 0xa4,		  /* Return(ArgObject) */
};

/* OperationRegion spaces. */
#define AML_SPACE_SYSTEM_MEMORY 0x00
#define AML_SPACE_SYSTEM_IO 0x01

/* Field flags: access type | lock rule | update rule. */
#define AML_FIELD_ANY_ACC 0x00
#define AML_FIELD_BYTE_ACC 0x01
#define AML_FIELD_WORD_ACC 0x02
#define AML_FIELD_DWORD_ACC 0x03
#define AML_FIELD_LOCK 0x10
#define AML_FIELD_PRESERVE 0x00
#define AML_FIELD_WRITE_AS_ONES 0x20
#define AML_FIELD_WRITE_AS_ZEROS 0x40

void aml_init(struct aml *a, void *buf, size_t cap);
/* 0 when the whole tree was emitted and every construct closed, else the first error. */
int aml_finish(const struct aml *a) WUR;

/* ---- Encodings, exposed for tests -------------------------------------------------------- */

/*
 * PkgLength for a construct whose content after the PkgLength is body_len bytes: the
 * encoded value includes the PkgLength bytes themselves. Returns the number of bytes
 * written to out (1-4), or 0 if body_len is too large for AML (>= 256 MiB).
 */
size_t aml_pkglen_encode(uint8_t out[4], size_t body_len);
/* Shortest integer encoding: ZeroOp, OneOp, Byte/Word/DWord/QWord prefix. Returns 1-9. */
size_t aml_int_encode(uint8_t out[9], uint64_t v);
/* One NameSeg, padded with '_'. -EINVAL unless 1-4 valid characters. */
int aml_nameseg_encode(uint8_t out[4], const char *seg, size_t seg_len) WUR;

/* ---- Data objects -------------------------------------------------------------------------- */

void aml_int(struct aml *a, uint64_t v);
void aml_string(struct aml *a, const char *s);	/* ASCII 0x01-0x7f */
void aml_eisaid(struct aml *a, const char *id); /* "PNP0A08" -> DWord, like ASL EisaId() */
void aml_uuid(struct aml *a, const char *uuid); /* Buffer(16), like ASL ToUUID() */
void aml_buffer(struct aml *a, const void *data, size_t len);
void aml_namestring(struct aml *a, const char *path); /* a reference to a named object */
void aml_local(struct aml *a, unsigned n);	      /* Local0-Local7 */
void aml_arg(struct aml *a, unsigned n);	      /* Arg0-Arg6 */
void aml_null_target(struct aml *a);		      /* an omitted Target operand */
void aml_op(struct aml *a, enum aml_opcode op);

/* ---- Named objects and blocks ---------------------------------------------------------------- */

/* Name(path, <object>): the next emitted data object is the value. */
void aml_name(struct aml *a, const char *path);
void aml_scope_begin(struct aml *a, const char *path);
void aml_device_begin(struct aml *a, const char *path);
void aml_method_begin(struct aml *a, const char *path, unsigned nargs, bool serialized);
/* Package(nelems) { ... }: the caller emits exactly nelems data objects (nelems <= 255). */
void aml_package_begin(struct aml *a, unsigned nelems);
/* If (<predicate emitted next>) { ... } and Else { ... } */
void aml_if_begin(struct aml *a);
void aml_else_begin(struct aml *a);
void aml_opregion(struct aml *a, const char *path, uint8_t space, uint64_t offset, uint64_t len);
void aml_field_begin(struct aml *a, const char *region, uint8_t flags);
void aml_field_unit(struct aml *a, const char *seg, unsigned bits); /* inside a Field only */
/* Close the innermost open construct. */
void aml_end(struct aml *a);

/* ---- Resource templates (a Buffer of resource descriptors, closed by aml_end()) -------------- */

void aml_rt_begin(struct aml *a);
/* IO(Decode16, min, max, align, len) */
void aml_rt_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len);
/* IRQNoFlags() {irq}: ISA edge-triggered, active high, irq < 16 */
void aml_rt_irq_noflags(struct aml *a, unsigned irq);
void aml_rt_memory32_fixed(struct aml *a, bool writable, uint32_t base, uint32_t len);
/* Interrupt(consumer/producer, edge/level, active low/high, shared/exclusive) {gsi} */
void aml_rt_interrupt(struct aml *a, bool consumer, bool edge, bool active_low, bool shared,
		      uint32_t gsi);

/* Word/DWord/QWord address space descriptors. */
#define AML_MEM_NON_CACHEABLE 0x00
#define AML_MEM_CACHEABLE 0x02
#define AML_MEM_WRITE_COMBINING 0x04
#define AML_MEM_PREFETCHABLE 0x06
#define AML_MEM_READ_WRITE 0x01
#define AML_IO_RANGE_NON_ISA_ONLY 0x01
#define AML_IO_RANGE_ISA_ONLY 0x02
#define AML_IO_RANGE_ENTIRE 0x03

struct aml_addr {
	bool consumer;	    /* ResourceConsumer, else ResourceProducer */
	bool subtractive;   /* SubDecode, else PosDecode */
	bool min_fixed;	    /* MinFixed, else MinNotFixed */
	bool max_fixed;	    /* MaxFixed, else MaxNotFixed */
	uint8_t type_flags; /* AML_MEM_* for memory, AML_IO_RANGE_* for I/O, 0 for buses */
	uint64_t granularity, min, max, translation, len;
};

/* -EINVAL if a value does not fit the descriptor, or min/max are fixed, len != 0 and
 * len != max - min + 1 (the rule iasl enforces). */
void aml_rt_word_bus_number(struct aml *a, const struct aml_addr *r);
void aml_rt_word_io(struct aml *a, const struct aml_addr *r);
void aml_rt_dword_memory(struct aml *a, const struct aml_addr *r);
void aml_rt_qword_memory(struct aml *a, const struct aml_addr *r);

#endif
