/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the kernel image parser and, for images it accepts, the in-memory loader into a small
 * fake guest memory. The input doubles as the initrd on odd sizes, so placement is exercised.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "boot/boot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MEM_SIZE (40u << 20) /* above the 16 MiB bzImage load address */

/* Fuzzer-only scratch memory (allocating 40 MiB per input would dominate the run time). */
static uint8_t fuzz_mem[FUZZ_MEM_SIZE];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kernel_image k;
	char err[256];
	if (boot_image_parse(data, size, &k, err, sizeof(err)) != 0) {
		/* Every rejection must come with a terminated, single-line message. */
		if (!memchr(err, '\0', sizeof(err)) || strchr(err, '\n') || err[0] == '\0')
			__builtin_trap();
		return 0;
	}

	struct gmem m;
	if (gmem_init_fake(&m, 0, fuzz_mem, sizeof(fuzz_mem)) != 0)
		return 0;
	struct boot_params_in in = {
	    .kernel_path = "fuzz",
	    .initrd_path = "fuzz-initrd",
	    .cmdline = "console=ttyS0",
	    .rsdp_gpa = 0xe0000,
	};
	struct boot_entry e;
	const uint8_t *initrd = (size & 1) ? data : NULL;
	int r = boot_load_image(&m, data, size, initrd, size, &in, &e, err, sizeof(err));
	if (r == 0) {
		/* A successful load must describe a sane entry point inside guest RAM. */
		if (e.mode != BOOT_MODE_LONG64 && e.mode != BOOT_MODE_PROT32)
			__builtin_trap();
		if (e.rip >= FUZZ_MEM_SIZE || e.gdt_base != 0x500)
			__builtin_trap();
	} else if (err[0] == '\0') {
		__builtin_trap();
	}
	return 0;
}
