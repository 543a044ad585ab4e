/* SPDX-License-Identifier: MIT */
/* boot_load(): file handling (missing, directory, empty, too large, truncated, not a kernel). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "boot/boot.h"
#include "memory/layout.h"
#include "synth.h"

#define MEM_SIZE (64ULL << 20)

struct fixture {
	char dir[64];
	char path[8][128];
	uint8_t *mem;
	struct gmem m;
	int fds_before;
};

enum { P_KERNEL, P_ELF, P_INITRD, P_EMPTY, P_TEXT, P_TRUNC, P_HUGE, P_MISSING };

static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/vireo-boot-test-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	static const char *names[] = {"bzImage", "pvh.elf", "initrd", "empty",
				      "text",	 "trunc",   "huge",   "missing"};
	char dir[sizeof(f->dir)];
	memcpy(dir, f->dir, sizeof(dir));
	for (int i = 0; i < 8; i++)
		snprintf(f->path[i], sizeof(f->path[i]), "%s/%s", dir, names[i]);

	uint8_t *buf = malloc(1 << 20);
	assert_non_null(buf);
	struct synth_bz bo = synth_bz_defaults();
	size_t len = synth_bzimage(buf, 1 << 20, &bo);
	write_file(f->path[P_KERNEL], buf, len);
	write_file(f->path[P_TRUNC], buf, len / 2);
	struct synth_elf eo = synth_elf_defaults();
	len = synth_elf(buf, 1 << 20, &eo);
	write_file(f->path[P_ELF], buf, len);
	for (int i = 0; i < 100000; i++)
		buf[i] = (uint8_t)(i * 11);
	write_file(f->path[P_INITRD], buf, 100000);
	write_file(f->path[P_EMPTY], buf, 0);
	write_file(f->path[P_TEXT], "hello, I am not a kernel\n", 25);
	/* Sparse file just over the 512 MiB limit. */
	int fd = open(f->path[P_HUGE], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)(BOOT_KERNEL_MAX_SIZE + 1)), 0);
	close(fd);
	free(buf);

	f->mem = calloc(1, MEM_SIZE);
	assert_non_null(f->mem);
	assert_int_equal(gmem_init_fake(&f->m, 0, f->mem, MEM_SIZE), 0);
	f->fds_before = count_fds();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	for (int i = 0; i < 8; i++)
		unlink(f->path[i]);
	rmdir(f->dir);
	free(f->mem);
	free(f);
	return 0;
}

static void expect_fail(struct fixture *f, const char *kernel, const char *initrd, int code,
			const char *what, const char *path, const char *msg)
{
	struct boot_params_in in = {.kernel_path = kernel, .initrd_path = initrd};
	struct boot_entry e;
	char err[512], want[512];
	snprintf(want, sizeof(want), "%s '%s': %s", what, path, msg);
	int r = boot_load(&f->m, &in, &e, err, sizeof(err));
	if (r != code || !strstr(err, want))
		fail_msg("got %d '%s', want %d '%s'", r, err, code, want);
	/* No fd leaks on any path. */
	assert_int_equal(count_fds(), f->fds_before);
}

static void test_load_files(void **state)
{
	struct fixture *f = *state;
	struct boot_params_in in = {.kernel_path = f->path[P_KERNEL],
				    .initrd_path = f->path[P_INITRD],
				    .cmdline = "quiet",
				    .rsdp_gpa = 0xe0000};
	struct boot_entry e;
	char err[256];
	assert_int_equal(boot_load(&f->m, &in, &e, err, sizeof(err)), 0);
	assert_int_equal(e.mode, BOOT_MODE_LONG64);
	const struct boot_params *bp = (const void *)(f->mem + LAYOUT_ZERO_PAGE);
	assert_int_equal(bp->hdr.ramdisk_size, 100000);
	uint64_t rd = bp->hdr.ramdisk_image;
	assert_int_equal(rd, (MEM_SIZE - 100000) & ~0xfffULL);
	for (int i = 0; i < 100000; i++)
		if (f->mem[rd + i] != (uint8_t)(i * 11))
			fail_msg("initrd byte %d", i);
	assert_string_equal((const char *)f->mem + LAYOUT_CMDLINE, "quiet");
	assert_int_equal(count_fds(), f->fds_before);

	in.kernel_path = f->path[P_ELF];
	assert_int_equal(boot_load(&f->m, &in, &e, err, sizeof(err)), 0);
	assert_int_equal(e.mode, BOOT_MODE_PROT32);
	struct hvm_modlist_entry mod;
	memcpy(&mod, f->mem + LAYOUT_PVH_MODLIST, sizeof(mod));
	assert_int_equal(mod.size, 100000);
	assert_int_equal(f->mem[mod.paddr + 99999], (uint8_t)(99999 * 11));
	assert_int_equal(count_fds(), f->fds_before);
}

static void test_kernel_errors(void **state)
{
	struct fixture *f = *state;
	const char *k = f->path[P_KERNEL];
	expect_fail(f, f->path[P_MISSING], NULL, -ENOENT, "kernel", f->path[P_MISSING],
		    "no such file");
	expect_fail(f, f->dir, NULL, -EISDIR, "kernel", f->dir, "is a directory");
	expect_fail(f, f->path[P_EMPTY], NULL, -ENOEXEC, "kernel", f->path[P_EMPTY], "is empty");
	expect_fail(f, f->path[P_HUGE], NULL, -EFBIG, "kernel", f->path[P_HUGE],
		    "is too large (513 MiB, limit 512 MiB)");
	expect_fail(f, f->path[P_TRUNC], NULL, -ENOEXEC, "kernel", f->path[P_TRUNC],
		    "truncated bzImage");
	expect_fail(f, f->path[P_TEXT], NULL, -ENOEXEC, "kernel", f->path[P_TEXT],
		    "not a bzImage or ELF kernel");
	expect_fail(f, "/dev/null", NULL, -EINVAL, "kernel", "/dev/null", "not a regular file");
	/* The kernel is checked before the initrd. */
	expect_fail(f, f->path[P_MISSING], f->path[P_MISSING], -ENOENT, "kernel",
		    f->path[P_MISSING], "no such file");
	if (geteuid() != 0) {
		assert_int_equal(chmod(k, 0), 0);
		expect_fail(f, k, NULL, -EACCES, "kernel", k, "cannot open: Permission denied");
		assert_int_equal(chmod(k, 0644), 0);
	}
	struct boot_params_in in = {0};
	struct boot_entry e;
	char err[64];
	assert_int_equal(boot_load(&f->m, &in, &e, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "no kernel given");
}

static void test_initrd_errors(void **state)
{
	struct fixture *f = *state;
	const char *k = f->path[P_KERNEL];
	const char *rd;
	rd = f->path[P_MISSING];
	expect_fail(f, k, rd, -ENOENT, "initrd", rd, "no such file");
	rd = f->dir;
	expect_fail(f, k, rd, -EISDIR, "initrd", rd, "is a directory");
	rd = f->path[P_EMPTY];
	expect_fail(f, k, rd, -ENOEXEC, "initrd", rd, "is empty");
	rd = "/dev/zero";
	expect_fail(f, k, rd, -EINVAL, "initrd", rd, "not a regular file");
	/* 512 MiB + 1 sparse file in 64 MiB of guest RAM. */
	rd = f->path[P_HUGE];
	struct boot_params_in in = {.kernel_path = k, .initrd_path = rd};
	struct boot_entry e;
	char err[512], want[512];
	snprintf(want, sizeof(want), "initrd '%s' (513 MiB) does not fit in guest memory", rd);
	assert_int_equal(boot_load(&f->m, &in, &e, err, sizeof(err)), -ENOSPC);
	assert_string_equal(err, want);
	assert_int_equal(count_fds(), f->fds_before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_load_files, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_kernel_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_initrd_errors, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
