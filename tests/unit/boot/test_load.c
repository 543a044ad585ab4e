/* SPDX-License-Identifier: MIT */
/* boot_load_image(): bzImage and PVH loading into 64 MiB of fake guest memory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "boot/boot.h"
#include "memory/layout.h"
#include "synth.h"

#define MEM_SIZE (64ULL << 20)
#define MIB (1ULL << 20)

struct fixture {
	uint8_t *mem;
	struct gmem m;
	uint8_t *img;
	size_t img_cap;
	uint8_t *initrd;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->mem = malloc(MEM_SIZE);
	f->img_cap = 1u << 20;
	f->img = malloc(f->img_cap);
	f->initrd = malloc(MEM_SIZE);
	assert_non_null(f->mem);
	assert_non_null(f->img);
	assert_non_null(f->initrd);
	/* Guest memory starts dirty, so the tests see what the loader really writes. */
	memset(f->mem, 0xaa, MEM_SIZE);
	for (size_t i = 0; i < MEM_SIZE; i++)
		f->initrd[i] = (uint8_t)(i ^ (i >> 8));
	assert_int_equal(gmem_init_fake(&f->m, 0, f->mem, MEM_SIZE), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	free(f->mem);
	free(f->img);
	free(f->initrd);
	free(f);
	return 0;
}

static const struct boot_params *zero_page(struct fixture *f)
{
	return (const struct boot_params *)(f->mem + LAYOUT_ZERO_PAGE);
}

static void expect_fail(struct fixture *f, size_t len, size_t initrd_len,
			const struct boot_params_in *in, int code, const char *want)
{
	struct boot_entry e;
	char err[256];
	int r = boot_load_image(&f->m, f->img, len, initrd_len ? f->initrd : NULL, initrd_len, in,
				&e, err, sizeof(err));
	if (r != code || !strstr(err, want))
		fail_msg("got %d '%s', want %d '%s'", r, err, code, want);
}

static void check_e820(const struct e820_entry *t, unsigned n)
{
	assert_int_equal(n, 4);
	assert_int_equal(t[0].addr, 0);
	assert_int_equal(t[0].size, LAYOUT_EBDA_START);
	assert_int_equal(t[0].type, E820_TYPE_RAM);
	assert_int_equal(t[1].addr, LAYOUT_EBDA_START);
	assert_int_equal(t[1].addr + t[1].size, 0x100000);
	assert_int_equal(t[1].type, E820_TYPE_RESERVED);
	assert_int_equal(t[2].addr, 0x100000);
	assert_int_equal(t[2].addr + t[2].size, MEM_SIZE);
	assert_int_equal(t[2].type, E820_TYPE_RAM);
	assert_int_equal(t[3].addr, LAYOUT_PCI_ECAM_START);
	assert_int_equal(t[3].size, LAYOUT_PCI_ECAM_SIZE);
	assert_int_equal(t[3].type, E820_TYPE_RESERVED);
}

static void check_gdt(struct fixture *f, const struct boot_entry *e)
{
	uint64_t gdt[4];
	memcpy(gdt, f->mem + LAYOUT_GDT, sizeof(gdt));
	assert_int_equal(e->gdt_base, LAYOUT_GDT);
	assert_int_equal(e->gdt_limit, 31);
	assert_int_equal(gdt[0], 0);
	assert_int_equal(gdt[1], 0x00cf9b000000ffffULL); /* code32 */
	assert_int_equal(gdt[2], 0x00af9b000000ffffULL); /* code64 */
	assert_int_equal(gdt[3], 0x00cf93000000ffffULL); /* data */
	assert_int_equal(gdt[e->cs.selector / 8], boot_segment_to_desc(&e->cs));
	assert_int_equal(gdt[e->ds.selector / 8], boot_segment_to_desc(&e->ds));
}

static void test_bz_load(void **state)
{
	struct fixture *f = *state;
	struct synth_bz o = synth_bz_defaults();
	size_t len = synth_bzimage(f->img, f->img_cap, &o);
	const char *cmd = "console=ttyS0 root=/dev/vda";
	struct boot_params_in in = {.kernel_path = "bz",
				    .initrd_path = "rd",
				    .cmdline = cmd,
				    .rsdp_gpa = LAYOUT_ACPI_START};
	struct boot_entry e;
	char err[256] = "stale";
	size_t rd_len = 3 * MIB + 123;
	assert_int_equal(
	    boot_load_image(&f->m, f->img, len, f->initrd, rd_len, &in, &e, err, sizeof(err)), 0);
	assert_string_equal(err, "");

	/* Kernel at 16 MiB (relocatable, 2 MiB aligned). */
	const uint64_t load = 16 * MIB;
	for (size_t i = 0; i < o.pm_size; i++)
		if (f->mem[load + i] != synth_pm_byte(i))
			fail_msg("kernel byte %zu", i);

	/* Zero page. */
	const struct boot_params *bp = zero_page(f);
	const uint8_t *zp = (const uint8_t *)bp;
	for (size_t i = 0; i < 0x1f1; i++)
		if (zp[i] != 0 && !(i >= 0x70 && i < 0x78) && i != 0x1e8)
			fail_msg("zero page byte 0x%zx = 0x%x", i, zp[i]);
	assert_int_equal(bp->sentinel, 0);
	assert_int_equal(bp->hdr.setup_sects, 4);
	assert_int_equal(bp->hdr.header, SETUP_HDR_MAGIC);
	assert_int_equal(bp->hdr.version, 0x020f);
	assert_int_equal(bp->hdr.boot_flag, 0xaa55);
	assert_int_equal(bp->hdr.vid_mode, 0xffff);
	assert_int_equal(bp->hdr.handover_offset, 0x190);
	assert_int_equal(bp->hdr.init_size, 1 * MIB);
	assert_int_equal(bp->hdr.type_of_loader, 0xff);
	assert_int_equal(bp->hdr.code32_start, load);
	assert_int_equal(bp->hdr.cmd_line_ptr, LAYOUT_CMDLINE);
	assert_int_equal(bp->ext_cmd_line_ptr, 0);
	assert_int_equal(bp->acpi_rsdp_addr, LAYOUT_ACPI_START);
	/* Nothing past the declared header (the synthetic setup code is 0x90s). */
	for (size_t i = 0x26c; i < 0x290; i++)
		assert_int_equal(zp[i], 0);

	/* Initrd: highest page-aligned spot under the end of RAM. */
	uint64_t rd = (MEM_SIZE - rd_len) & ~0xfffULL;
	assert_int_equal(bp->hdr.ramdisk_image, rd);
	assert_int_equal(bp->hdr.ramdisk_size, rd_len);
	assert_int_equal(bp->ext_ramdisk_image, 0);
	assert_int_equal(bp->ext_ramdisk_size, 0);
	assert_memory_equal(f->mem + rd, f->initrd, rd_len);

	/* Command line. */
	assert_string_equal((const char *)f->mem + LAYOUT_CMDLINE, cmd);

	/* e820 (copy out of the packed zero page). */
	struct e820_entry t[4];
	assert_int_equal(bp->e820_entries, 4);
	memcpy(t, zp + 0x2d0, sizeof(t));
	check_e820(t, bp->e820_entries);

	/* Entry state. */
	assert_int_equal(e.mode, BOOT_MODE_LONG64);
	assert_int_equal(e.rip, load + 0x200);
	assert_int_equal(e.rsi, LAYOUT_ZERO_PAGE);
	assert_int_equal(e.rsp, LAYOUT_BOOT_STACK);
	assert_int_equal(e.rflags, 2);
	assert_int_equal(e.cr0, 0x80000011ULL);
	assert_int_equal(e.cr3, LAYOUT_PML4);
	assert_int_equal(e.cr4, 0x20);
	assert_int_equal(e.efer, 0x500);
	assert_int_equal(e.cs.selector, 0x10);
	assert_int_equal(e.cs.l, 1);
	assert_int_equal(e.cs.db, 0);
	assert_int_equal(e.ds.selector, 0x18);
	assert_int_equal(e.tr.type, 0xb);
	assert_int_equal(e.tr.s, 0);
	check_gdt(f, &e);

	/* Identity page tables: 4 GiB in 2 MiB pages. */
	uint64_t pml4[512], pdpt[512], pd[2048];
	memcpy(pml4, f->mem + LAYOUT_PML4, sizeof(pml4));
	memcpy(pdpt, f->mem + LAYOUT_PDPT, sizeof(pdpt));
	memcpy(pd, f->mem + LAYOUT_PD, sizeof(pd));
	assert_int_equal(pml4[0], LAYOUT_PDPT | 3);
	for (int i = 1; i < 512; i++)
		assert_int_equal(pml4[i], 0);
	for (uint64_t i = 0; i < 4; i++)
		assert_int_equal(pdpt[i], (LAYOUT_PD + i * 0x1000) | 3);
	for (int i = 4; i < 512; i++)
		assert_int_equal(pdpt[i], 0);
	for (uint64_t i = 0; i < 2048; i++)
		assert_int_equal(pd[i], (i << 21) | 0x83);
	/* The kernel, zero page and command line are all mapped (they are below 4 GiB). */
	assert_int_equal(pd[load >> 21] & ~0xfffULL, load);
}

static void test_bz_variants(void **state)
{
	struct fixture *f = *state;
	struct synth_bz o = synth_bz_defaults();
	struct boot_params_in in = {.kernel_path = "bz", .rsdp_gpa = 0xe0000};
	struct boot_entry e;
	char err[256];
	size_t len;

	/* Protocol 2.13: acpi_rsdp_addr is not part of its zero page; no initrd. */
	o.version = 0x020d;
	len = synth_bzimage(f->img, f->img_cap, &o);
	assert_int_equal(boot_load_image(&f->m, f->img, len, NULL, 0, &in, &e, err, sizeof(err)),
			 0);
	assert_int_equal(zero_page(f)->acpi_rsdp_addr, 0);
	assert_int_equal(zero_page(f)->hdr.ramdisk_image, 0);
	assert_int_equal(zero_page(f)->hdr.ramdisk_size, 0);
	assert_string_equal((const char *)f->mem + LAYOUT_CMDLINE, "");

	/* Non-relocatable: loaded at pref_address. */
	o = synth_bz_defaults();
	o.relocatable = 0;
	o.pref_address = 0x200000;
	len = synth_bzimage(f->img, f->img_cap, &o);
	assert_int_equal(boot_load_image(&f->m, f->img, len, NULL, 0, &in, &e, err, sizeof(err)),
			 0);
	assert_int_equal(e.rip, 0x200200);
	assert_int_equal(f->mem[0x200000 + 5], synth_pm_byte(5));

	/* Large alignment moves a relocatable kernel up. */
	o = synth_bz_defaults();
	o.kernel_alignment = 32 * MIB;
	len = synth_bzimage(f->img, f->img_cap, &o);
	assert_int_equal(boot_load_image(&f->m, f->img, len, NULL, 0, &in, &e, err, sizeof(err)),
			 0);
	assert_int_equal(e.rip, 32 * MIB + 0x200);

	/* initrd_addr_max below the end of RAM caps the initrd. */
	o = synth_bz_defaults();
	o.initrd_addr_max = 48 * MIB - 1;
	len = synth_bzimage(f->img, f->img_cap, &o);
	in.initrd_path = "rd";
	assert_int_equal(
	    boot_load_image(&f->m, f->img, len, f->initrd, 5000, &in, &e, err, sizeof(err)), 0);
	assert_int_equal(zero_page(f)->hdr.ramdisk_image, 48 * MIB - 0x2000);
	assert_int_equal(zero_page(f)->hdr.ramdisk_size, 5000);

	/* Command line exactly at the kernel's limit is fine, one more byte is not. */
	o = synth_bz_defaults();
	o.cmdline_size = 255;
	len = synth_bzimage(f->img, f->img_cap, &o);
	char cmd[300];
	memset(cmd, 'x', sizeof(cmd));
	cmd[255] = '\0';
	in.cmdline = cmd;
	assert_int_equal(boot_load_image(&f->m, f->img, len, NULL, 0, &in, &e, err, sizeof(err)),
			 0);
	assert_int_equal(strlen((const char *)f->mem + LAYOUT_CMDLINE), 255);
	cmd[255] = 'x';
	cmd[256] = '\0';
	expect_fail(f, len, 0, &in, -E2BIG,
		    "command line is too long (256 bytes, the kernel accepts 255)");
}

static void test_bz_rejects(void **state)
{
	struct fixture *f = *state;
	struct synth_bz o = synth_bz_defaults();
	struct boot_params_in in = {.kernel_path = "/k", .initrd_path = "/i"};
	size_t len = synth_bzimage(f->img, f->img_cap, &o);

	/* Initrd too large for what is left above the kernel. */
	expect_fail(f, len, 60 * MIB, &in, -ENOSPC,
		    "initrd '/i' (60 MiB) does not fit in guest memory");
	expect_fail(f, len, 47 * MIB + 1, &in, -ENOSPC, "initrd '/i' (48 MiB) does not fit");
	/* Just fits: kernel ends at 17 MiB (init_size), 47 MiB above. */
	struct boot_entry e;
	char err[256];
	assert_int_equal(boot_load_image(&f->m, f->img, len, f->initrd, 47 * MIB - 4096, &in, &e,
					 err, sizeof(err)),
			 0);
	assert_int_equal(zero_page(f)->hdr.ramdisk_image, 17 * MIB + 4096);

	/* Kernel does not fit (init_size), non-relocatable address outside RAM / below 1 MiB. */
	o.init_size = 0x7fffffff;
	len = synth_bzimage(f->img, f->img_cap, &o);
	expect_fail(
	    f, len, 0, &in, -ENOSPC,
	    "kernel '/k': needs 2048 MiB at 0x1000000, beyond guest RAM (64 MiB below 4 GiB)");
	o = synth_bz_defaults();
	o.relocatable = 0;
	o.pref_address = 0x7ffff000;
	len = synth_bzimage(f->img, f->img_cap, &o);
	expect_fail(f, len, 0, &in, -ENOSPC, "beyond guest RAM");
	o.pref_address = UINT64_MAX - 0x1000;
	len = synth_bzimage(f->img, f->img_cap, &o);
	expect_fail(f, len, 0, &in, -ENOSPC, "beyond guest RAM");
	o.pref_address = 0x10000;
	len = synth_bzimage(f->img, f->img_cap, &o);
	expect_fail(f, len, 0, &in, -EINVAL, "load address 0x10000 is below 1 MiB");

	/* Parse errors are prefixed with the kernel's name. */
	len = synth_bzimage(f->img, f->img_cap, &o);
	f->img[0x211] = 0;
	expect_fail(f, len, 0, &in, -ENOEXEC, "kernel '/k': zImage");

	/* Command line over the global cap, whatever the kernel says. */
	o = synth_bz_defaults();
	o.cmdline_size = 0xffffffff;
	len = synth_bzimage(f->img, f->img_cap, &o);
	char *big = malloc(LAYOUT_CMDLINE_MAX + 1);
	assert_non_null(big);
	memset(big, 'y', LAYOUT_CMDLINE_MAX);
	big[LAYOUT_CMDLINE_MAX] = '\0';
	in.cmdline = big;
	expect_fail(f, len, 0, &in, -E2BIG, "command line is too long (65536 bytes, limit 65535)");
	big[LAYOUT_CMDLINE_MAX - 1] = '\0';
	assert_int_equal(boot_load_image(&f->m, f->img, len, NULL, 0, &in, &e, err, sizeof(err)),
			 0);
	free(big);
}

static void test_pvh_load(void **state)
{
	struct fixture *f = *state;
	struct synth_elf o = synth_elf_defaults();
	size_t len = synth_elf(f->img, f->img_cap, &o);
	struct boot_params_in in = {.kernel_path = "elf",
				    .initrd_path = "rd",
				    .cmdline = "console=hvc0",
				    .rsdp_gpa = 0xe0000};
	struct boot_entry e;
	char err[256];
	size_t rd_len = 777777;
	assert_int_equal(
	    boot_load_image(&f->m, f->img, len, f->initrd, rd_len, &in, &e, err, sizeof(err)), 0);

	/* Segments copied, bss zeroed, bytes after memsz untouched. */
	for (unsigned s = 0; s < o.nseg; s++) {
		const uint8_t *p = f->mem + o.seg[s].paddr;
		for (size_t i = 0; i < o.seg[s].filesz; i++)
			if (p[i] != synth_seg_byte(s, i))
				fail_msg("segment %u byte %zu", s, i);
		for (size_t i = o.seg[s].filesz; i < o.seg[s].memsz; i++)
			assert_int_equal(p[i], 0);
		assert_int_equal(p[o.seg[s].memsz], 0xaa);
	}

	struct hvm_start_info si;
	memcpy(&si, f->mem + LAYOUT_PVH_INFO, sizeof(si));
	assert_int_equal(si.magic, 0x336ec578);
	assert_int_equal(si.version, 1);
	assert_int_equal(si.flags, 0);
	assert_int_equal(si.cmdline_paddr, LAYOUT_CMDLINE);
	assert_string_equal((const char *)f->mem + LAYOUT_CMDLINE, "console=hvc0");
	assert_int_equal(si.rsdp_paddr, 0xe0000);
	assert_int_equal(si.nr_modules, 1);
	assert_int_equal(si.modlist_paddr, LAYOUT_PVH_MODLIST);
	assert_int_equal(si.memmap_paddr, LAYOUT_PVH_MEMMAP);
	assert_int_equal(si.memmap_entries, 4);
	assert_int_equal(si.reserved, 0);

	struct hvm_modlist_entry mod;
	memcpy(&mod, f->mem + LAYOUT_PVH_MODLIST, sizeof(mod));
	assert_int_equal(mod.paddr, (MEM_SIZE - rd_len) & ~0xfffULL);
	assert_int_equal(mod.size, rd_len);
	assert_int_equal(mod.cmdline_paddr, 0);
	assert_int_equal(mod.reserved, 0);
	assert_memory_equal(f->mem + mod.paddr, f->initrd, rd_len);

	struct hvm_memmap_table_entry mm[4];
	memcpy(mm, f->mem + LAYOUT_PVH_MEMMAP, sizeof(mm));
	struct e820_entry t[4];
	for (int i = 0; i < 4; i++) {
		t[i] =
		    (struct e820_entry){.addr = mm[i].addr, .size = mm[i].size, .type = mm[i].type};
		assert_int_equal(mm[i].reserved, 0);
	}
	check_e820(t, 4);

	assert_int_equal(e.mode, BOOT_MODE_PROT32);
	assert_int_equal(e.rip, 0x100040);
	assert_int_equal(e.rbx, LAYOUT_PVH_INFO);
	assert_int_equal(e.cr0, 0x11);
	assert_int_equal(e.cr3, 0);
	assert_int_equal(e.cr4, 0);
	assert_int_equal(e.efer, 0);
	assert_int_equal(e.cs.selector, 0x08);
	assert_int_equal(e.cs.db, 1);
	assert_int_equal(e.cs.l, 0);
	assert_int_equal(e.cs.limit, 0xffffffff);
	assert_int_equal(e.ds.selector, 0x18);
	assert_int_equal(e.tr.limit, 0x67);
	check_gdt(f, &e);

	/* Without an initrd: no modules. */
	in.initrd_path = NULL;
	assert_int_equal(boot_load_image(&f->m, f->img, len, NULL, 0, &in, &e, err, sizeof(err)),
			 0);
	memcpy(&si, f->mem + LAYOUT_PVH_INFO, sizeof(si));
	assert_int_equal(si.nr_modules, 0);
	assert_int_equal(si.modlist_paddr, 0);
	assert_int_equal(si.rsdp_paddr, 0xe0000);
}

static void test_pvh_rejects(void **state)
{
	struct fixture *f = *state;
	struct synth_elf o = synth_elf_defaults();
	struct boot_params_in in = {.kernel_path = "/p", .initrd_path = "/r"};
	size_t len;

	o.seg[0].paddr = 0x8000;
	o.entry = 0x8010;
	len = synth_elf(f->img, f->img_cap, &o);
	expect_fail(f, len, 0, &in, -EINVAL,
		    "kernel '/p': segment at 0x8000 overlaps the boot data below 1 MiB");

	o = synth_elf_defaults();
	o.seg[1].paddr = MEM_SIZE - 0x1000;
	len = synth_elf(f->img, f->img_cap, &o);
	expect_fail(
	    f, len, 0, &in, -ENOSPC,
	    "kernel '/p': segment 0x3fff000-0x4003fff is beyond guest RAM (64 MiB below 4 GiB)");
	o.seg[1].paddr = 0x200000000ULL;
	len = synth_elf(f->img, f->img_cap, &o);
	expect_fail(f, len, 0, &in, -ENOSPC, "is beyond guest RAM");
	o.seg[1].paddr = 0x100000;
	o.seg[0].paddr = 0xfffff000ULL;
	o.seg[0].memsz = 0x2000;
	o.seg[0].filesz = 0x2000;
	o.entry = 0x100000;
	len = synth_elf(f->img, f->img_cap, &o);
	expect_fail(f, len, 0, &in, -ENOSPC, "is beyond guest RAM");

	/* A huge bss reaches past the end of RAM. */
	o = synth_elf_defaults();
	o.seg[1].memsz = 0xffffffff00000000ULL;
	len = synth_elf(f->img, f->img_cap, &o);
	expect_fail(f, len, 0, &in, -ENOSPC, "is beyond guest RAM");

	/* The initrd must go above the highest segment. */
	o = synth_elf_defaults();
	o.seg[1].memsz = 40 * MIB;
	len = synth_elf(f->img, f->img_cap, &o);
	expect_fail(f, len, 23 * MIB, &in, -ENOSPC,
		    "initrd '/r' (23 MiB) does not fit in guest memory");
	struct boot_entry e;
	char err[256];
	assert_int_equal(
	    boot_load_image(&f->m, f->img, len, f->initrd, 22 * MIB, &in, &e, err, sizeof(err)), 0);

	/* Not a kernel at all. */
	memset(f->img, 0, 4096);
	expect_fail(f, 4096, 0, &in, -ENOEXEC, "kernel '/p': not a bzImage or ELF kernel");
}

/* Guest memory that lacks the boot area: errors, never a crash. */
static void test_odd_memory(void **state)
{
	struct fixture *f = *state;
	struct synth_bz o = synth_bz_defaults();
	size_t len = synth_bzimage(f->img, f->img_cap, &o);
	struct boot_params_in in = {.kernel_path = "k"};
	struct boot_entry e;
	char err[256];
	struct gmem m;

	/* RAM only from 1 MiB: no room for the zero page. */
	assert_int_equal(gmem_init_fake(&m, 0x100000, f->mem, MEM_SIZE - 0x100000), 0);
	assert_int_equal(boot_load_image(&m, f->img, len, NULL, 0, &in, &e, err, sizeof(err)),
			 -EFAULT);
	assert_non_null(strstr(err, "no guest RAM for the zero page"));
	struct synth_elf eo = synth_elf_defaults();
	len = synth_elf(f->img, f->img_cap, &eo);
	assert_int_equal(boot_load_image(&m, f->img, len, NULL, 0, &in, &e, err, sizeof(err)),
			 -EFAULT);
	assert_non_null(strstr(err, "no guest RAM for the PVH"));

	/* 1 MiB of RAM: nothing above 1 MiB. */
	assert_int_equal(gmem_init_fake(&m, 0, f->mem, 0x100000), 0);
	assert_int_equal(boot_load_image(&m, f->img, len, NULL, 0, &in, &e, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "guest memory has no RAM at 1 MiB");

	/* 8 MiB: the bzImage wants 16 MiB. */
	assert_int_equal(gmem_init_fake(&m, 0, f->mem, 8 * MIB), 0);
	len = synth_bzimage(f->img, f->img_cap, &o);
	assert_int_equal(boot_load_image(&m, f->img, len, NULL, 0, &in, &e, err, sizeof(err)),
			 -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_bz_load, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bz_variants, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bz_rejects, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pvh_load, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pvh_rejects, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_odd_memory, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
