/* SPDX-License-Identifier: MIT */
/*
 * Guest-facing boot data formats, defined here from the published specifications (the x86
 * Linux boot protocol, Documentation/arch/x86/boot.rst and zero-page.rst; the Xen PVH
 * start_info ABI). Only the fields Vireo reads or writes are named; the rest is padding.
 * Every structure is packed little-endian and its layout is pinned by static asserts, so a
 * mistake fails the build instead of confusing a guest.
 */
#ifndef VIREO_BOOT_BOOTPROTO_H
#define VIREO_BOOT_BOOTPROTO_H

#include <stddef.h>
#include <stdint.h>

#define BOOTPROTO_PACKED __attribute__((packed))

/* ---- Linux x86 boot protocol ------------------------------------------------------------ */

#define SETUP_HDR_OFFSET 0x1f1	   /* setup header inside the image and the zero page */
#define SETUP_HDR_MAGIC 0x53726448 /* "HdrS" */
#define SETUP_BOOT_FLAG 0xaa55
#define SETUP_SECT_SIZE 512
#define SETUP_SECTS_DEFAULT 4 /* setup_sects == 0 means 4 */

#define LOADFLAG_LOADED_HIGH 0x01
#define LOADFLAG_KEEP_SEGMENTS 0x40
#define LOADFLAG_CAN_USE_HEAP 0x80

#define XLF_KERNEL_64 0x01
#define XLF_CAN_BE_LOADED_ABOVE_4G 0x02

#define BOOT_LOADER_UNDEFINED 0xff /* type_of_loader for boot loaders without an ID */
#define BOOT_ENTRY64_OFFSET 0x200  /* 64-bit entry = load address + 0x200 */

/* Boot protocol versions that introduced the fields we use. */
#define BOOTPROTO_MIN 0x0206	      /* cmdline_size */
#define BOOTPROTO_PREF_ADDRESS 0x020a /* pref_address, init_size */
#define BOOTPROTO_XLOADFLAGS 0x020c
#define BOOTPROTO_ACPI_RSDP 0x020e /* boot_params.acpi_rsdp_addr honoured */

struct setup_header {
	uint8_t setup_sects;		/* 0x1f1 */
	uint16_t root_flags;		/* 0x1f2 */
	uint32_t syssize;		/* 0x1f4, 16-byte units */
	uint16_t ram_size;		/* 0x1f8 */
	uint16_t vid_mode;		/* 0x1fa */
	uint16_t root_dev;		/* 0x1fc */
	uint16_t boot_flag;		/* 0x1fe */
	uint16_t jump;			/* 0x200: jmp; the header ends at 0x202 + its second byte */
	uint32_t header;		/* 0x202 "HdrS" */
	uint16_t version;		/* 0x206 */
	uint32_t realmode_swtch;	/* 0x208 */
	uint16_t start_sys_seg;		/* 0x20c */
	uint16_t kernel_version;	/* 0x20e */
	uint8_t type_of_loader;		/* 0x210 */
	uint8_t loadflags;		/* 0x211 */
	uint16_t setup_move_size;	/* 0x212 */
	uint32_t code32_start;		/* 0x214 */
	uint32_t ramdisk_image;		/* 0x218 */
	uint32_t ramdisk_size;		/* 0x21c */
	uint32_t bootsect_kludge;	/* 0x220 */
	uint16_t heap_end_ptr;		/* 0x224 */
	uint8_t ext_loader_ver;		/* 0x226 */
	uint8_t ext_loader_type;	/* 0x227 */
	uint32_t cmd_line_ptr;		/* 0x228 */
	uint32_t initrd_addr_max;	/* 0x22c */
	uint32_t kernel_alignment;	/* 0x230 */
	uint8_t relocatable_kernel;	/* 0x234 */
	uint8_t min_alignment;		/* 0x235 */
	uint16_t xloadflags;		/* 0x236 */
	uint32_t cmdline_size;		/* 0x238 */
	uint32_t hardware_subarch;	/* 0x23c */
	uint64_t hardware_subarch_data; /* 0x240 */
	uint32_t payload_offset;	/* 0x248 */
	uint32_t payload_length;	/* 0x24c */
	uint64_t setup_data;		/* 0x250 */
	uint64_t pref_address;		/* 0x258 */
	uint32_t init_size;		/* 0x260 */
	uint32_t handover_offset;	/* 0x264 */
	uint32_t kernel_info_offset;	/* 0x268 */
} BOOTPROTO_PACKED;

#define SETUP_HDR_FIELD(f) (SETUP_HDR_OFFSET + offsetof(struct setup_header, f))
_Static_assert(SETUP_HDR_FIELD(syssize) == 0x1f4, "setup_header.syssize");
_Static_assert(SETUP_HDR_FIELD(boot_flag) == 0x1fe, "setup_header.boot_flag");
_Static_assert(SETUP_HDR_FIELD(header) == 0x202, "setup_header.header");
_Static_assert(SETUP_HDR_FIELD(type_of_loader) == 0x210, "setup_header.type_of_loader");
_Static_assert(SETUP_HDR_FIELD(code32_start) == 0x214, "setup_header.code32_start");
_Static_assert(SETUP_HDR_FIELD(ramdisk_image) == 0x218, "setup_header.ramdisk_image");
_Static_assert(SETUP_HDR_FIELD(heap_end_ptr) == 0x224, "setup_header.heap_end_ptr");
_Static_assert(SETUP_HDR_FIELD(cmd_line_ptr) == 0x228, "setup_header.cmd_line_ptr");
_Static_assert(SETUP_HDR_FIELD(kernel_alignment) == 0x230, "setup_header.kernel_alignment");
_Static_assert(SETUP_HDR_FIELD(xloadflags) == 0x236, "setup_header.xloadflags");
_Static_assert(SETUP_HDR_FIELD(cmdline_size) == 0x238, "setup_header.cmdline_size");
_Static_assert(SETUP_HDR_FIELD(setup_data) == 0x250, "setup_header.setup_data");
_Static_assert(SETUP_HDR_FIELD(pref_address) == 0x258, "setup_header.pref_address");
_Static_assert(SETUP_HDR_FIELD(init_size) == 0x260, "setup_header.init_size");
_Static_assert(SETUP_HDR_OFFSET + sizeof(struct setup_header) == 0x26c, "setup_header size");

/* e820 entry, as in the zero page (20 bytes, packed). */
struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} BOOTPROTO_PACKED;
_Static_assert(sizeof(struct e820_entry) == 20, "e820_entry size");

#define E820_TYPE_RAM 1
#define E820_TYPE_RESERVED 2
#define E820_TYPE_ACPI 3
#define E820_TYPE_NVS 4

#define ZERO_PAGE_E820_MAX 128
#define ZERO_PAGE_SETUP_MAX 0x290 /* the copied setup header may not pass this offset */

/* The zero page ("struct boot_params"), 4 KiB. */
struct boot_params {
	uint8_t screen_info[0x40];	 /* 0x000 */
	uint8_t apm_bios_info[0x14];	 /* 0x040 */
	uint8_t pad_054[4];		 /* 0x054 */
	uint64_t tboot_addr;		 /* 0x058 */
	uint8_t ist_info[0x10];		 /* 0x060 */
	uint64_t acpi_rsdp_addr;	 /* 0x070 */
	uint8_t pad_078[8];		 /* 0x078 */
	uint8_t hd0_info[0x10];		 /* 0x080 */
	uint8_t hd1_info[0x10];		 /* 0x090 */
	uint8_t sys_desc_table[0x10];	 /* 0x0a0 */
	uint8_t olpc_ofw_header[0x10];	 /* 0x0b0 */
	uint32_t ext_ramdisk_image;	 /* 0x0c0 */
	uint32_t ext_ramdisk_size;	 /* 0x0c4 */
	uint32_t ext_cmd_line_ptr;	 /* 0x0c8 */
	uint8_t pad_0cc[0x70];		 /* 0x0cc */
	uint32_t cc_blob_address;	 /* 0x13c */
	uint8_t edid_info[0x80];	 /* 0x140 */
	uint8_t efi_info[0x20];		 /* 0x1c0 */
	uint32_t alt_mem_k;		 /* 0x1e0 */
	uint32_t scratch;		 /* 0x1e4 */
	uint8_t e820_entries;		 /* 0x1e8 */
	uint8_t eddbuf_entries;		 /* 0x1e9 */
	uint8_t edd_mbr_sig_buf_entries; /* 0x1ea */
	uint8_t kbd_status;		 /* 0x1eb */
	uint8_t secure_boot;		 /* 0x1ec */
	uint8_t pad_1ed[2];		 /* 0x1ed */
	uint8_t sentinel;	 /* 0x1ef: must stay 0, or Linux wipes "uninitialised" fields */
	uint8_t pad_1f0[1];	 /* 0x1f0 */
	struct setup_header hdr; /* 0x1f1 */
	uint8_t pad_26c[0x290 - 0x26c];			  /* 0x26c */
	uint32_t edd_mbr_sig_buffer[16];		  /* 0x290 */
	struct e820_entry e820_table[ZERO_PAGE_E820_MAX]; /* 0x2d0 */
	uint8_t pad_cd0[0x30];				  /* 0xcd0 */
	uint8_t eddbuf[0x1ec];				  /* 0xd00 */
	uint8_t pad_eec[0x114];				  /* 0xeec */
} BOOTPROTO_PACKED;

_Static_assert(sizeof(struct boot_params) == 4096, "boot_params size");
_Static_assert(offsetof(struct boot_params, acpi_rsdp_addr) == 0x070, "acpi_rsdp_addr");
_Static_assert(offsetof(struct boot_params, ext_ramdisk_image) == 0x0c0, "ext_ramdisk_image");
_Static_assert(offsetof(struct boot_params, ext_cmd_line_ptr) == 0x0c8, "ext_cmd_line_ptr");
_Static_assert(offsetof(struct boot_params, cc_blob_address) == 0x13c, "cc_blob_address");
_Static_assert(offsetof(struct boot_params, alt_mem_k) == 0x1e0, "alt_mem_k");
_Static_assert(offsetof(struct boot_params, e820_entries) == 0x1e8, "e820_entries");
_Static_assert(offsetof(struct boot_params, sentinel) == 0x1ef, "sentinel");
_Static_assert(offsetof(struct boot_params, hdr) == SETUP_HDR_OFFSET, "hdr");
_Static_assert(offsetof(struct boot_params, edd_mbr_sig_buffer) == 0x290, "edd_mbr_sig_buffer");
_Static_assert(offsetof(struct boot_params, e820_table) == 0x2d0, "e820_table");
_Static_assert(offsetof(struct boot_params, eddbuf) == 0xd00, "eddbuf");

/* ---- ELF64 (only what the PVH loader reads) --------------------------------------------- */

#define ELF_CLASS64 2
#define ELF_DATA2LSB 1
#define ELF_ET_EXEC 2
#define ELF_EM_X86_64 62
#define ELF_PT_LOAD 1
#define ELF_PT_NOTE 4
#define ELF_SHT_NOTE 7
#define ELF_PN_XNUM 0xffff

struct elf64_ehdr {
	uint8_t e_ident[16];
	uint16_t e_type;
	uint16_t e_machine;
	uint32_t e_version;
	uint64_t e_entry;
	uint64_t e_phoff;
	uint64_t e_shoff;
	uint32_t e_flags;
	uint16_t e_ehsize;
	uint16_t e_phentsize;
	uint16_t e_phnum;
	uint16_t e_shentsize;
	uint16_t e_shnum;
	uint16_t e_shstrndx;
} BOOTPROTO_PACKED;
_Static_assert(sizeof(struct elf64_ehdr) == 64, "elf64_ehdr size");

struct elf64_phdr {
	uint32_t p_type;
	uint32_t p_flags;
	uint64_t p_offset;
	uint64_t p_vaddr;
	uint64_t p_paddr;
	uint64_t p_filesz;
	uint64_t p_memsz;
	uint64_t p_align;
} BOOTPROTO_PACKED;
_Static_assert(sizeof(struct elf64_phdr) == 56, "elf64_phdr size");

struct elf64_shdr {
	uint32_t sh_name;
	uint32_t sh_type;
	uint64_t sh_flags;
	uint64_t sh_addr;
	uint64_t sh_offset;
	uint64_t sh_size;
	uint32_t sh_link;
	uint32_t sh_info;
	uint64_t sh_addralign;
	uint64_t sh_entsize;
} BOOTPROTO_PACKED;
_Static_assert(sizeof(struct elf64_shdr) == 64, "elf64_shdr size");

struct elf64_nhdr {
	uint32_t n_namesz;
	uint32_t n_descsz;
	uint32_t n_type;
} BOOTPROTO_PACKED;
_Static_assert(sizeof(struct elf64_nhdr) == 12, "elf64_nhdr size");

#define XEN_ELFNOTE_PHYS32_ENTRY 18

/* ---- Xen PVH start_info (xen/include/public/arch-x86/hvm/start_info.h) ------------------ */

#define HVM_START_MAGIC 0x336ec578
#define HVM_START_VERSION 1 /* version 1 adds the memory map */

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
} BOOTPROTO_PACKED;
_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info size");
_Static_assert(offsetof(struct hvm_start_info, modlist_paddr) == 16, "modlist_paddr");
_Static_assert(offsetof(struct hvm_start_info, cmdline_paddr) == 24, "cmdline_paddr");
_Static_assert(offsetof(struct hvm_start_info, rsdp_paddr) == 32, "rsdp_paddr");
_Static_assert(offsetof(struct hvm_start_info, memmap_paddr) == 40, "memmap_paddr");
_Static_assert(offsetof(struct hvm_start_info, memmap_entries) == 48, "memmap_entries");

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
} BOOTPROTO_PACKED;
_Static_assert(sizeof(struct hvm_modlist_entry) == 32, "hvm_modlist_entry size");

/* Types are the e820 ones (XEN_HVM_MEMMAP_TYPE_RAM == 1, ...). */
struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
} BOOTPROTO_PACKED;
_Static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "hvm_memmap_table_entry size");

#endif
