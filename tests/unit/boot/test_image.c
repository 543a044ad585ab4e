/* SPDX-License-Identifier: MIT */
/* boot_image_parse(): valid bzImage/PVH ELF images, and every rejection reason. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "boot/boot.h"
#include "synth.h"

#define BUF_CAP (1u << 20)
static uint8_t img[BUF_CAP];

/* Parse and expect failure with a message containing want. */
static void expect_reject(const uint8_t *buf, size_t len, const char *want)
{
	struct kernel_image k;
	char err[256];
	int r = boot_image_parse(buf, len, &k, err, sizeof(err));
	if (r != -ENOEXEC || !strstr(err, want))
		fail_msg("len %zu: got %d '%s', want '%s'", len, r, err, want);
	assert_null(strchr(err, '\n'));
}

static void test_bz_valid(void **state)
{
	(void)state;
	struct synth_bz o = synth_bz_defaults();
	size_t len = synth_bzimage(img, sizeof(img), &o);
	struct kernel_image k;
	char err[256];
	assert_int_equal(boot_image_parse(img, len, &k, err, sizeof(err)), 0);
	assert_int_equal(k.kind, KERNEL_BZIMAGE);
	assert_int_equal(k.bz.version, 0x020f);
	assert_int_equal(k.bz.setup_sects, 4);
	assert_int_equal(k.bz.pm_offset, 5 * 512);
	assert_int_equal(k.bz.pm_size, 64 * 1024);
	assert_int_equal(k.bz.syssize, 64 * 1024 / 16);
	assert_true(k.bz.relocatable);
	assert_int_equal(k.bz.kernel_alignment, 2 << 20);
	assert_int_equal(k.bz.pref_address, 16 << 20);
	assert_int_equal(k.bz.init_size, 1 << 20);
	assert_int_equal(k.bz.cmdline_size, 2047);
	assert_int_equal(k.bz.initrd_addr_max, 0x7fffffff);
	assert_int_equal(k.bz.xloadflags, XLF_KERNEL_64);
	assert_int_equal(k.bz.setup_hdr_len, 0x26c - 0x1f1);

	/* setup_sects == 0 means 4. */
	o.setup_sects = 0;
	len = synth_bzimage(img, sizeof(img), &o);
	assert_int_equal(boot_image_parse(img, len, &k, err, sizeof(err)), 0);
	assert_int_equal(k.bz.setup_sects, 4);
	assert_int_equal(k.bz.pm_offset, 5 * 512);

	/* Protocol 2.09 predates xloadflags: no 64-bit entry. */
	o = synth_bz_defaults();
	o.version = 0x0209;
	len = synth_bzimage(img, sizeof(img), &o);
	expect_reject(img, len, "has no 64-bit entry (need 2.12");

	/* A last paragraph missing from the file is fine (syssize is rounded up). */
	o = synth_bz_defaults();
	o.pm_size = 1000;
	len = synth_bzimage(img, sizeof(img), &o);
	assert_int_equal(boot_image_parse(img, len, &k, err, sizeof(err)), 0);
	assert_int_equal(k.bz.pm_size, 1000);
	assert_int_equal(k.bz.syssize, 63);
}

static void test_bz_rejects(void **state)
{
	(void)state;
	struct synth_bz o = synth_bz_defaults();
	size_t len;

	o.version = 0x0205;
	len = synth_bzimage(img, sizeof(img), &o);
	expect_reject(img, len, "boot protocol 2.05 is too old (need 2.06 or later)");

	o = synth_bz_defaults();
	o.xloadflags = 0;
	len = synth_bzimage(img, sizeof(img), &o);
	expect_reject(img, len, "no 64-bit entry point (XLF_KERNEL_64 not set)");

	o = synth_bz_defaults();
	o.version = 0x020b;
	len = synth_bzimage(img, sizeof(img), &o);
	expect_reject(img, len, "boot protocol 2.11 has no 64-bit entry");

	o = synth_bz_defaults();
	o.loadflags = 0;
	len = synth_bzimage(img, sizeof(img), &o);
	expect_reject(img, len, "zImage");

	o = synth_bz_defaults();
	o.kernel_alignment = 0x300000;
	len = synth_bzimage(img, sizeof(img), &o);
	expect_reject(img, len, "kernel_alignment 0x300000 is not a power of two");
	o.kernel_alignment = 0;
	len = synth_bzimage(img, sizeof(img), &o);
	expect_reject(img, len, "kernel_alignment 0x0");
	/* ...but a non-relocatable kernel does not care. */
	o.relocatable = 0;
	len = synth_bzimage(img, sizeof(img), &o);
	struct kernel_image k;
	assert_int_equal(boot_image_parse(img, len, &k, NULL, 0), 0);

	o = synth_bz_defaults();
	len = synth_bzimage(img, sizeof(img), &o);
	synth_put16(img, 0x1fe, 0x1234);
	expect_reject(img, len, "boot sector signature is 0x1234");

	len = synth_bzimage(img, sizeof(img), &o);
	synth_put32(img, 0x1f4, 0);
	expect_reject(img, len, "syssize 0");
	synth_put32(img, 0x1f4, 0xffffffff);
	expect_reject(img, len, "truncated bzImage: kernel needs 68719476720 bytes");

	/* Header shorter than protocol 2.10+ needs (jump displacement too small). */
	len = synth_bzimage(img, sizeof(img), &o);
	img[0x201] = 0x30;
	expect_reject(img, len, "setup header too short");

	/* Setup sectors pointing past the end of the file. */
	len = synth_bzimage(img, sizeof(img), &o);
	img[0x1f1] = 255;
	expect_reject(img, len, "truncated bzImage: setup code ends at 0x20000");

	/* Bad magic, short files. */
	len = synth_bzimage(img, sizeof(img), &o);
	synth_put32(img, 0x202, 0x53726449);
	expect_reject(img, len, "not a bzImage or ELF kernel (no ELF magic");
	expect_reject(img, 100, "not a bzImage or ELF kernel (only 100 bytes)");
	expect_reject(img, 0, "empty file");
	expect_reject(NULL, 0, "empty file");
}

static void test_bz_truncated_everywhere(void **state)
{
	(void)state;
	struct synth_bz o = synth_bz_defaults();
	o.pm_size = 4096;
	size_t len = synth_bzimage(img, sizeof(img), &o);
	struct kernel_image k;
	char err[256];
	for (size_t l = 0; l < len; l++) {
		int r = boot_image_parse(img, l, &k, err, sizeof(err));
		if (l > len - 16) {
			/* Only the rounded-up last paragraph is missing: acceptable. */
			assert_int_equal(r, 0);
			continue;
		}
		assert_int_equal(r, -ENOEXEC);
		assert_true(strlen(err) > 10);
		if (l >= 0x206)
			assert_non_null(strstr(err, "truncated bzImage"));
	}
	assert_int_equal(boot_image_parse(img, len, &k, err, sizeof(err)), 0);
}

static void test_elf_valid(void **state)
{
	(void)state;
	struct synth_elf o = synth_elf_defaults();
	/* Segments out of order in the file: the parser sorts them by address. */
	o.seg[0] = (struct synth_seg){.paddr = 0x300000, .filesz = 0x100, .memsz = 0x2000};
	o.seg[1] = (struct synth_seg){.paddr = 0x100000, .filesz = 0x1000, .memsz = 0x1000};
	o.entry = 0x100ffc;
	size_t len = synth_elf(img, sizeof(img), &o);
	struct kernel_image k;
	char err[256];
	assert_int_equal(boot_image_parse(img, len, &k, err, sizeof(err)), 0);
	assert_int_equal(k.kind, KERNEL_PVH_ELF);
	assert_int_equal(k.elf.entry, 0x100ffc);
	assert_int_equal(k.elf.nr_segments, 2);
	assert_int_equal(k.elf.seg[0].paddr, 0x100000);
	assert_int_equal(k.elf.seg[0].filesz, 0x1000);
	assert_int_equal(k.elf.seg[0].offset, synth_elf_seg_offset(&o, 1));
	assert_int_equal(k.elf.seg[1].paddr, 0x300000);
	assert_int_equal(k.elf.seg[1].filesz, 0x100);
	assert_int_equal(k.elf.seg[1].memsz, 0x2000);
	assert_int_equal(k.elf.seg[1].offset, synth_elf_seg_offset(&o, 0));

	/* Note found through SHT_NOTE only. */
	o = synth_elf_defaults();
	o.note = SYNTH_NOTE_SHDR;
	len = synth_elf(img, sizeof(img), &o);
	assert_int_equal(boot_image_parse(img, len, &k, err, sizeof(err)), 0);
	assert_int_equal(k.elf.entry, 0x100040);

	/* Linux's 8-byte note value. */
	o = synth_elf_defaults();
	o.descsz = 8;
	o.entry = 0x201000;
	o.seg[1].filesz = 0x1800;
	len = synth_elf(img, sizeof(img), &o);
	assert_int_equal(boot_image_parse(img, len, &k, err, sizeof(err)), 0);
	assert_int_equal(k.elf.entry, 0x201000);

	/* memsz == 0 PT_LOADs are ignored; 16 segments is the maximum. */
	o = synth_elf_defaults();
	o.nseg = 17;
	for (unsigned i = 0; i < o.nseg; i++)
		o.seg[i] = (struct synth_seg){
		    .paddr = 0x100000 + i * 0x1000, .filesz = 0x10, .memsz = i == 5 ? 0 : 0x1000};
	o.entry = 0x100008;
	len = synth_elf(img, sizeof(img), &o);
	assert_int_equal(boot_image_parse(img, len, &k, err, sizeof(err)), 0);
	assert_int_equal(k.elf.nr_segments, 16);
}

static void test_elf_rejects(void **state)
{
	(void)state;
	struct synth_elf o = synth_elf_defaults();
	size_t len = synth_elf(img, sizeof(img), &o);
	const size_t ph0 = SYNTH_ELF_PHOFF, ph1 = SYNTH_ELF_PHOFF + 56;

	o.note = SYNTH_NOTE_NONE;
	len = synth_elf(img, sizeof(img), &o);
	expect_reject(img, len, "ELF kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)");
	/* A note with another name or type is not the PVH note. */
	o = synth_elf_defaults();
	len = synth_elf(img, sizeof(img), &o);
	memcpy(img + SYNTH_ELF_NOTE_OFF + 12, "Xex", 4);
	expect_reject(img, len, "no PVH entry note");
	len = synth_elf(img, sizeof(img), &o);
	synth_put32(img, SYNTH_ELF_NOTE_OFF + 8, 17);
	expect_reject(img, len, "no PVH entry note");

	len = synth_elf(img, sizeof(img), &o);
	img[4] = 1;
	expect_reject(img, len, "ELF kernel is not 64-bit (class 1)");
	len = synth_elf(img, sizeof(img), &o);
	img[5] = 2;
	expect_reject(img, len, "not little-endian");
	len = synth_elf(img, sizeof(img), &o);
	synth_put16(img, 18, 3);
	expect_reject(img, len, "ELF kernel is not x86-64 (e_machine 3)");
	len = synth_elf(img, sizeof(img), &o);
	synth_put16(img, 16, 3);
	expect_reject(img, len, "ELF kernel is not an executable (e_type 3)");
	len = synth_elf(img, sizeof(img), &o);
	synth_put16(img, 56, 0);
	expect_reject(img, len, "no program headers");
	synth_put16(img, 56, 0xffff);
	expect_reject(img, len, "extended program header numbering");
	synth_put16(img, 56, 0xfffe);
	expect_reject(img, len, "program headers at 0x40 are beyond the end");
	len = synth_elf(img, sizeof(img), &o);
	synth_put64(img, 32, UINT64_MAX - 8);
	expect_reject(img, len, "beyond the end of the file");
	len = synth_elf(img, sizeof(img), &o);
	synth_put16(img, 54, 64);
	expect_reject(img, len, "program header size is 64");

	/* filesz > memsz */
	len = synth_elf(img, sizeof(img), &o);
	synth_put64(img, ph1 + 32, 0x5001);
	expect_reject(img, len, "ELF segment 1: filesz 0x5001 is larger than memsz 0x5000");
	/* Segment data beyond the file, and an offset that overflows. */
	len = synth_elf(img, sizeof(img), &o);
	synth_put64(img, ph1 + 8, len - 0x7ff);
	expect_reject(img, len, "ELF segment 1: file range");
	synth_put64(img, ph1 + 8, UINT64_MAX - 0x10);
	expect_reject(img, len, "ELF segment 1: file range 0xffffffffffffffef+0x800 is beyond");
	/* Address overflow. */
	len = synth_elf(img, sizeof(img), &o);
	synth_put64(img, ph1 + 24, UINT64_MAX - 0x100);
	expect_reject(img, len,
		      "ELF segment 1: address 0xfffffffffffffeff + size 0x5000 overflows");
	/* Overlap (segment 0 grows into segment 1). */
	len = synth_elf(img, sizeof(img), &o);
	synth_put64(img, ph0 + 40, 0x100001);
	expect_reject(img, len, "ELF segments overlap: 0x100000-0x200000 and 0x200000-0x204fff");
	/* Entry outside loaded file contents (in bss). */
	o.entry = 0x201000;
	len = synth_elf(img, sizeof(img), &o);
	expect_reject(img, len, "PVH entry 0x201000 is not inside");
	o = synth_elf_defaults();

	/* Note problems. */
	len = synth_elf(img, sizeof(img), &o);
	synth_put32(img, SYNTH_ELF_NOTE_OFF + 4, 6);
	expect_reject(img, len, "malformed ELF note");
	synth_put32(img, SYNTH_ELF_NOTE_OFF + 4, 2);
	expect_reject(img, len, "PVH entry note has a 2-byte value");
	len = synth_elf(img, sizeof(img), &o);
	synth_put32(img, SYNTH_ELF_NOTE_OFF, 0xffffffff);
	expect_reject(img, len, "malformed ELF note");
	o.descsz = 8;
	o.entry = 0x100000100040ULL;
	len = synth_elf(img, sizeof(img), &o);
	expect_reject(img, len, "PVH entry note value 0x100000100040 does not fit in 32 bits");
	o = synth_elf_defaults();
	len = synth_elf(img, sizeof(img), &o);
	const size_t note_ph = SYNTH_ELF_PHOFF + 2 * 56;
	synth_put64(img, note_ph + 8, UINT64_MAX - 3);
	expect_reject(img, len, "note area 0xfffffffffffffffc+0x14 is beyond the end");
	/* Broken section headers when they are needed. */
	o.note = SYNTH_NOTE_SHDR;
	len = synth_elf(img, sizeof(img), &o);
	synth_put64(img, 40, len - 64);
	expect_reject(img, len, "section headers at");
	len = synth_elf(img, sizeof(img), &o);
	synth_put16(img, 58, 40);
	expect_reject(img, len, "section header size is 40");
	o = synth_elf_defaults();

	/* No PT_LOAD; too many PT_LOADs. */
	len = synth_elf(img, sizeof(img), &o);
	synth_put32(img, ph0, 0);
	synth_put32(img, ph1, 0);
	expect_reject(img, len, "no loadable segments");
	o.nseg = 17;
	for (unsigned i = 0; i < o.nseg; i++)
		o.seg[i] = (struct synth_seg){
		    .paddr = 0x100000 + i * 0x1000, .filesz = 0x100, .memsz = 0x1000};
	len = synth_elf(img, sizeof(img), &o);
	expect_reject(img, len, "more than 16 loadable segments");

	/* Huge sizes. */
	o = synth_elf_defaults();
	len = synth_elf(img, sizeof(img), &o);
	synth_put64(img, ph1 + 32, UINT64_MAX);
	synth_put64(img, ph1 + 40, UINT64_MAX);
	expect_reject(img, len, "ELF segment 1: file range");
}

static void test_elf_truncated_everywhere(void **state)
{
	(void)state;
	struct synth_elf o = synth_elf_defaults();
	size_t len = synth_elf(img, sizeof(img), &o);
	struct kernel_image k;
	char err[256];
	for (size_t l = 0; l < len; l++) {
		assert_int_equal(boot_image_parse(img, l, &k, err, sizeof(err)), -ENOEXEC);
		assert_true(strlen(err) > 10);
	}
	expect_reject(img, 63, "truncated ELF: 63 bytes");
}

/* Deterministic mutation: the parser must never crash, and what it accepts must be sane. */
static void check_invariants(const struct kernel_image *k, size_t len)
{
	if (k->kind == KERNEL_BZIMAGE) {
		assert_true(k->bz.pm_offset + k->bz.pm_size == len);
		assert_true(k->bz.setup_hdr_len <= 0x290 - 0x1f1);
		assert_true(k->bz.xloadflags & XLF_KERNEL_64);
		return;
	}
	assert_int_equal(k->kind, KERNEL_PVH_ELF);
	assert_true(k->elf.nr_segments >= 1 && k->elf.nr_segments <= KERNEL_IMAGE_MAX_SEGMENTS);
	for (unsigned i = 0; i < k->elf.nr_segments; i++) {
		const struct kernel_segment *s = &k->elf.seg[i];
		assert_true(s->filesz <= s->memsz);
		assert_true(s->offset <= len && s->filesz <= len - s->offset);
		assert_true(s->paddr + s->memsz >= s->paddr);
		if (i)
			assert_true(k->elf.seg[i - 1].paddr + k->elf.seg[i - 1].memsz <= s->paddr);
	}
}

static void test_mutations(void **state)
{
	(void)state;
	static uint8_t orig[BUF_CAP];
	uint32_t seed = 12345;
	struct synth_bz bo = synth_bz_defaults();
	bo.pm_size = 2048;
	struct synth_elf eo = synth_elf_defaults();
	for (int kind = 0; kind < 2; kind++) {
		size_t len = kind ? synth_elf(orig, sizeof(orig), &eo)
				  : synth_bzimage(orig, sizeof(orig), &bo);
		unsigned accepted = 0;
		for (int iter = 0; iter < 20000; iter++) {
			memcpy(img, orig, len);
			int flips = 1 + iter % 8;
			for (int f = 0; f < flips; f++) {
				seed = seed * 1103515245u + 12345u;
				/* Mostly hit the headers, where the parser looks. */
				size_t pos = (seed >> 8) % (iter & 1 ? len : 0x800);
				seed = seed * 1103515245u + 12345u;
				img[pos] = (uint8_t)(seed >> 16);
			}
			size_t l = len;
			if (iter % 5 == 0)
				l = (seed >> 4) % (len + 1);
			struct kernel_image k;
			char err[64];
			if (boot_image_parse(img, l, &k, err, sizeof(err)) == 0) {
				check_invariants(&k, l);
				accepted++;
			} else {
				assert_true(err[0] != '\0');
			}
		}
		/* Some mutations miss anything that matters. */
		assert_true(accepted > 100);
	}
}

static void test_err_buffer(void **state)
{
	(void)state;
	struct kernel_image k;
	char err[8];
	memset(img, 0x41, 4096);
	assert_int_equal(boot_image_parse(img, 4096, &k, err, sizeof(err)), -ENOEXEC);
	assert_int_equal(strlen(err), 7);
	assert_int_equal(boot_image_parse(img, 4096, &k, NULL, 0), -ENOEXEC);
	assert_int_equal(boot_image_parse(img, 4096, &k, err, 0), -ENOEXEC);
}

/* A real distribution kernel, when the host has one (or VIREO_TEST_VMLINUZ names some, as a
 * glob pattern): it must parse as a 64-bit bzImage. */
static void test_real_vmlinuz(void **state)
{
	(void)state;
	glob_t g;
	const char *pattern = getenv("VIREO_TEST_VMLINUZ");
	if (glob(pattern ? pattern : "/boot/vmlinuz-*", 0, NULL, &g) != 0) {
		skip();
		return;
	}
	unsigned parsed = 0;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		FILE *f = fopen(g.gl_pathv[i], "rb");
		if (!f)
			continue; /* not readable by this user */
		uint8_t *buf = malloc(64u << 20);
		assert_non_null(buf);
		size_t len = fread(buf, 1, 64u << 20, f);
		fclose(f);
		struct kernel_image k;
		char err[256];
		int r = boot_image_parse(buf, len, &k, err, sizeof(err));
		if (r)
			fail_msg("%s: %s", g.gl_pathv[i], err);
		assert_int_equal(k.kind, KERNEL_BZIMAGE);
		assert_true(k.bz.version >= 0x020c);
		assert_true(k.bz.cmdline_size >= 255);
		assert_true(k.bz.init_size >= k.bz.pm_size);
		free(buf);
		parsed++;
	}
	globfree(&g);
	if (!parsed)
		skip();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bz_valid),
	    cmocka_unit_test(test_bz_rejects),
	    cmocka_unit_test(test_bz_truncated_everywhere),
	    cmocka_unit_test(test_elf_valid),
	    cmocka_unit_test(test_elf_rejects),
	    cmocka_unit_test(test_elf_truncated_everywhere),
	    cmocka_unit_test(test_mutations),
	    cmocka_unit_test(test_err_buffer),
	    cmocka_unit_test(test_real_vmlinuz),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
