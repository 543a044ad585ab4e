/* SPDX-License-Identifier: MIT */
/*
 * Synthetic kernel images for the boot unit tests: a bzImage with a crafted setup header and
 * an ELF64 with PT_LOAD segments and a PVH note, both built in memory. Tests build a valid
 * image, then patch single fields (synth_put*) to produce each corruption.
 */
#ifndef VIREO_TESTS_BOOT_SYNTH_H
#define VIREO_TESTS_BOOT_SYNTH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct synth_bz {
	uint16_t version;	   /* default 0x020f */
	uint8_t setup_sects;	   /* default 4; 0 is kept as 0 */
	uint32_t pm_size;	   /* protected-mode bytes, default 64 KiB */
	uint8_t relocatable;	   /* default 1 */
	uint32_t kernel_alignment; /* default 2 MiB */
	uint64_t pref_address;	   /* default 16 MiB */
	uint32_t init_size;	   /* default 1 MiB */
	uint32_t cmdline_size;	   /* default 2047 */
	uint32_t initrd_addr_max;  /* default 0x7fffffff */
	uint16_t xloadflags;	   /* default XLF_KERNEL_64 */
	uint8_t loadflags;	   /* default LOADED_HIGH */
};

/* Default options (valid image). */
struct synth_bz synth_bz_defaults(void);
/* Build into buf (cap bytes); returns the image length or 0 if cap is too small. */
size_t synth_bzimage(uint8_t *buf, size_t cap, const struct synth_bz *o);
/* Byte the protected-mode part has at offset i (what the loader must copy). */
uint8_t synth_pm_byte(size_t i);

#define SYNTH_MAX_SEGS 20
enum synth_note_where { SYNTH_NOTE_PHDR, SYNTH_NOTE_SHDR, SYNTH_NOTE_NONE };

struct synth_seg {
	uint64_t paddr, filesz, memsz;
};

struct synth_elf {
	unsigned nseg;
	struct synth_seg seg[SYNTH_MAX_SEGS];
	uint64_t entry;
	enum synth_note_where note;
	unsigned descsz; /* 4 or 8 */
};

/* Valid default: two segments at 1 MiB (code) and 2 MiB (data + bss), entry 0x100040. */
struct synth_elf synth_elf_defaults(void);
size_t synth_elf(uint8_t *buf, size_t cap, const struct synth_elf *o);
/* File offset of segment i's data. Phdrs: SYNTH_ELF_PHOFF, PT_LOADs first, then the note
 * (SYNTH_NOTE_PHDR), then a PT_GNU_STACK. */
uint64_t synth_elf_seg_offset(const struct synth_elf *o, unsigned i);
#define SYNTH_ELF_PHOFF 64
#define SYNTH_ELF_NOTE_OFF 0x600
#define SYNTH_ELF_SHOFF 0x700
#define SYNTH_ELF_DATA_OFF 0x1000
uint8_t synth_seg_byte(unsigned seg, size_t i);

static inline void synth_put16(uint8_t *b, size_t off, uint16_t v)
{
	memcpy(b + off, &v, 2);
}
static inline void synth_put32(uint8_t *b, size_t off, uint32_t v)
{
	memcpy(b + off, &v, 4);
}
static inline void synth_put64(uint8_t *b, size_t off, uint64_t v)
{
	memcpy(b + off, &v, 8);
}
static inline uint16_t synth_get16(const uint8_t *b, size_t off)
{
	uint16_t v;
	memcpy(&v, b + off, 2);
	return v;
}
static inline uint32_t synth_get32(const uint8_t *b, size_t off)
{
	uint32_t v;
	memcpy(&v, b + off, 4);
	return v;
}
static inline uint64_t synth_get64(const uint8_t *b, size_t off)
{
	uint64_t v;
	memcpy(&v, b + off, 8);
	return v;
}

#endif
