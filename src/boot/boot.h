/* SPDX-License-Identifier: MIT */
/*
 * Linux x86 boot: loads a kernel (bzImage via the 64-bit boot protocol, or any ELF64 with a
 * PVH entry note), its initrd and command line into guest memory, builds the e820 map, the
 * GDT and the identity page tables, and describes the vCPU entry state.
 *
 * Contract:
 * - boot_image_parse() is pure: it reads only buf[0, len), never allocates, and either fills
 *   *out (return 0) or writes a one-line reason into err (return -ENOEXEC). Safe on any input.
 * - boot_load_image() places an already-read kernel (and optional initrd) into guest memory;
 *   boot_load() reads the files named in boot_params_in (bounded, regular files only) and
 *   calls the same core. On failure err names the file and the reason, e.g.
 *   "kernel '/x': is a directory"; guest memory may then be partly written (do not boot).
 * - Everything written to the guest goes through gmem_ptr()/gmem_write(); any address or size
 *   taken from an image is checked for overflow and against guest RAM.
 * - The machine turns struct boot_entry into KVM regs/sregs; it needs no other knowledge of
 *   the boot protocols: segments, control registers and selectors are all in boot_entry.
 * - Guest memory used (memory/layout.h): LAYOUT_GDT, LAYOUT_ZERO_PAGE or LAYOUT_PVH_*,
 *   LAYOUT_PML4/PDPT/PD (bzImage only), LAYOUT_CMDLINE, the kernel, and the initrd at the
 *   highest page-aligned address below min(4 GiB, end of low RAM, kernel's initrd_addr_max).
 */
#ifndef VIREO_BOOT_BOOT_H
#define VIREO_BOOT_BOOT_H

#include "common/compiler.h"
#include "memory/gmem.h"
#include "boot/bootproto.h"

#define BOOT_KERNEL_MAX_SIZE (512ULL << 20) /* refuse kernel files above this */
#define KERNEL_IMAGE_MAX_SEGMENTS 16	    /* PT_LOAD segments of a PVH ELF */

enum kernel_kind { KERNEL_BZIMAGE = 1, KERNEL_PVH_ELF = 2 };

struct kernel_segment {
	uint64_t paddr;	 /* guest-physical load address */
	uint64_t offset; /* file offset of the first byte */
	uint64_t filesz; /* bytes copied from the file */
	uint64_t memsz;	 /* bytes occupied in memory; [filesz, memsz) is zeroed */
};

/* The result of parsing; offsets refer to the parsed buffer, all validated against its len. */
struct kernel_image {
	enum kernel_kind kind;
	union {
		struct {
			uint16_t version; /* boot protocol, e.g. 0x020f */
			uint8_t loadflags;
			uint16_t xloadflags;
			unsigned setup_sects; /* effective (0 in the header means 4) */
			uint32_t syssize;     /* 16-byte paragraphs */
			bool relocatable;
			uint32_t kernel_alignment; /* power of two when relocatable */
			uint64_t pref_address;	   /* 0x100000 before protocol 2.10 */
			uint32_t init_size;	   /* 0 before protocol 2.10 */
			uint32_t cmdline_size;	   /* max command line length, without the NUL */
			uint32_t initrd_addr_max;  /* highest address the initrd may end at */
			uint64_t setup_hdr_len;	   /* bytes of setup header at 0x1f1 to copy */
			uint64_t pm_offset;	   /* protected-mode kernel in the file */
			uint64_t pm_size;
		} bz;
		struct {
			uint32_t entry; /* XEN_ELFNOTE_PHYS32_ENTRY */
			unsigned nr_segments;
			struct kernel_segment seg[KERNEL_IMAGE_MAX_SEGMENTS]; /* sorted by paddr */
		} elf;
	};
};

int boot_image_parse(const uint8_t *buf, size_t len, struct kernel_image *out, char *err,
		     size_t errlen) WUR;

/* ---- vCPU entry state --------------------------------------------------------------------- */

enum boot_mode {
	BOOT_MODE_LONG64 = 1, /* bzImage: 64-bit mode, identity paging of 4 GiB, RSI = zero page */
	BOOT_MODE_PROT32 = 2, /* PVH: 32-bit protected mode, flat, paging off, EBX = start_info */
};

/* One segment as KVM's struct kvm_segment wants it: limit is in bytes (0xffffffff = flat 4G). */
struct boot_segment {
	uint16_t selector;
	uint64_t base;
	uint32_t limit;
	uint8_t
	    type; /* 0xb = code exec/read accessed, 0x3 = data r/w accessed, 0xb (s=0) = busy TSS */
	uint8_t s; /* 1 = code/data, 0 = system */
	uint8_t dpl;
	uint8_t present;
	uint8_t db;
	uint8_t l;
	uint8_t g;
};

/* GDT at LAYOUT_GDT: null, code32, code64, data. The Linux 64-bit protocol wants
 * __BOOT_CS = 0x10 and __BOOT_DS = 0x18. The table ends where LAYOUT_IDT begins. */
#define BOOT_SEL_CODE32 0x08
#define BOOT_SEL_CODE64 0x10
#define BOOT_SEL_DATA 0x18
#define BOOT_GDT_ENTRIES 4
#define BOOT_GDT_LIMIT (BOOT_GDT_ENTRIES * 8 - 1)

extern const struct boot_segment boot_seg_code32;
extern const struct boot_segment boot_seg_code64;
extern const struct boot_segment boot_seg_data;
/* TR: a busy 32-bit (or, in long mode, 64-bit) TSS at base 0, limit 0x67. It has no GDT slot
 * (selector 0): the guest replaces it before using it, and VM entry only needs it valid. */
extern const struct boot_segment boot_seg_tss;

#define BOOT_CR0_PE 0x00000001ULL
#define BOOT_CR0_ET 0x00000010ULL
#define BOOT_CR0_PG 0x80000000ULL
#define BOOT_CR4_PAE 0x00000020ULL
#define BOOT_EFER_LME 0x00000100ULL
#define BOOT_EFER_LMA 0x00000400ULL
#define BOOT_RFLAGS_DEFAULT 0x2ULL /* reserved bit 1; IF clear */

/* Page-table entry bits used by the identity map. */
#define BOOT_PTE_PRESENT 0x1ULL
#define BOOT_PTE_RW 0x2ULL
#define BOOT_PTE_PS 0x80ULL

struct boot_entry {
	enum boot_mode mode;
	uint64_t rip, rsp, rsi, rbx, rflags;
	uint64_t cr0, cr3, cr4, efer;
	uint64_t gdt_base;
	uint16_t gdt_limit;
	/* cs for CS; ds for DS, ES, FS, GS and SS; tr for TR. LDT: unusable. */
	struct boot_segment cs, ds, tr;
};

/* Encode a segment as an 8-byte GDT descriptor. */
uint64_t boot_segment_to_desc(const struct boot_segment *s);
/* Write the GDT at LAYOUT_GDT. */
int boot_gdt_write(const struct gmem *m) WUR;
/* Write PML4/PDPT/PD at LAYOUT_PML4..: 2 MiB pages identity-mapping [0, 4 GiB). */
int boot_pagetables_write(const struct gmem *m) WUR;
/* Fill segments, control registers and GDT fields of e for mode (rip etc. untouched). */
void boot_entry_init_cpu(struct boot_entry *e, enum boot_mode mode);

/* ---- e820 ---------------------------------------------------------------------------------- */

/*
 * The guest memory map, sorted by address, non-overlapping:
 *   RAM [0, LAYOUT_EBDA_START), reserved [LAYOUT_EBDA_START, 1 MiB) (EBDA, VGA hole, BIOS area
 *   and the ACPI tables at LAYOUT_ACPI_START: Linux reserves that whole range anyway and finds
 *   the RSDP through boot_params/start_info or the BIOS scan), RAM from 1 MiB to the end of each
 *   gmem region, and the PCI ECAM window reserved (Linux only trusts MCFG if it is).
 * -ENOSPC if more than max entries would be needed, -EINVAL if gmem overlaps the ECAM window.
 */
int boot_e820_build(const struct gmem *m, struct e820_entry *tab, unsigned max, unsigned *n) WUR;

/* ---- loading ------------------------------------------------------------------------------- */

struct boot_params_in {
	const char *kernel_path; /* used in messages only by boot_load_image (NULL: "kernel") */
	const char *initrd_path; /* NULL: no initrd */
	const char *cmdline;	 /* NULL: empty */
	uint64_t rsdp_gpa;	 /* from the ACPI builder; 0: none */
};

int boot_load(const struct gmem *m, const struct boot_params_in *in, struct boot_entry *out,
	      char *err, size_t errlen) WUR;

/* In-memory core of boot_load (used by it, the fuzzer and tests); initrd may be NULL. */
int boot_load_image(const struct gmem *m, const uint8_t *kernel, size_t kernel_len,
		    const uint8_t *initrd, size_t initrd_len, const struct boot_params_in *in,
		    struct boot_entry *out, char *err, size_t errlen) WUR;

#endif
