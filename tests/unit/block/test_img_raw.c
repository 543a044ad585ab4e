/* SPDX-License-Identifier: MIT */
/*
 * Image dispatcher and raw driver: range checks, read-only, locking (two writers
 * refused, readers share), discard / write-zeroes / map, O_DIRECT with misaligned
 * buffers and offsets, format probing, refusing odd files.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "block/qcow2.h"
#include "img_test_util.h"

#define SZ (1u << 20)

struct fx {
	char *dir, *path;
	uint8_t *data;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	uint64_t st = 42;
	f->dir = tu_mkdtemp();
	f->path = tu_path(f->dir, "disk.raw");
	f->data = malloc(SZ);
	tu_fill(f->data, SZ, &st);
	if (tu_write_file(f->path, f->data, SZ))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	tu_rmtree(f->dir);
	free(f->dir);
	free(f->path);
	free(f->data);
	free(f);
	return 0;
}

static void test_read_write_ranges(void **state)
{
	struct fx *f = *state;
	struct img *im;
	char err[256];
	uint8_t buf[4096];

	assert_int_equal(img_open(&im, f->path, "raw", 0, err, sizeof(err)), 0);
	assert_true(im->size == SZ);
	assert_int_equal(img_pread(im, buf, sizeof(buf), 1000), 0);
	assert_memory_equal(buf, f->data + 1000, sizeof(buf));
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(img_pwrite(im, buf, 100, SZ - 100), 0);
	assert_int_equal(img_pwrite(im, buf, 101, SZ - 100), -EINVAL);
	assert_int_equal(img_pread(im, buf, 1, SZ), -EINVAL);
	assert_int_equal(img_pread(im, buf, 16, UINT64_MAX - 8), -EINVAL); /* wraps */
	assert_int_equal(img_discard(im, 1, UINT64_MAX), -EINVAL);
	assert_int_equal(img_write_zeroes(im, SZ, 1, true), -EINVAL);
	struct iovec big[2] = { { buf, SIZE_MAX / 2 + 1 }, { buf, SIZE_MAX / 2 + 1 } };
	assert_int_equal(img_preadv(im, big, 2, 0), -EINVAL); /* iovec total overflows */
	assert_int_equal(img_pread(im, buf, 0, SZ), 0);	      /* empty at the end is fine */
	/* vectored read across a write */
	uint8_t a[10], b[90];
	struct iovec iov[2] = { { a, sizeof(a) }, { b, sizeof(b) } };
	assert_int_equal(img_preadv(im, iov, 2, SZ - 100), 0);
	assert_memory_equal(a, buf, sizeof(a));
	assert_memory_equal(b, buf, sizeof(b));
	assert_int_equal(img_flush(im), 0);
	img_close(im);

	assert_int_equal(img_open(&im, f->path, "raw", IMG_O_RDONLY, err, sizeof(err)), 0);
	assert_true(im->readonly);
	assert_int_equal(img_pwrite(im, buf, 1, 0), -EROFS);
	assert_int_equal(img_discard(im, 0, 512), -EROFS);
	assert_int_equal(img_write_zeroes(im, 0, 512, false), -EROFS);
	img_close(im);
}

static void test_locking(void **state)
{
	struct fx *f = *state;
	struct img *a, *b;
	char err[256] = "";

	assert_int_equal(img_open(&a, f->path, "raw", 0, err, sizeof(err)), 0);
	assert_int_equal(img_open(&b, f->path, "raw", 0, err, sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, "is in use by another process"));
	assert_int_equal(img_open(&b, f->path, "raw", IMG_O_RDONLY, err, sizeof(err)), -EBUSY);
	/* tools that only read metadata may opt out */
	assert_int_equal(img_open(&b, f->path, "raw", IMG_O_RDONLY | IMG_O_NOLOCK, err, sizeof(err)), 0);
	img_close(b);
	img_close(a);
	/* readers share; a writer is then refused */
	assert_int_equal(img_open(&a, f->path, "raw", IMG_O_RDONLY, err, sizeof(err)), 0);
	assert_int_equal(img_open(&b, f->path, "raw", IMG_O_RDONLY, err, sizeof(err)), 0);
	struct img *c;
	assert_int_equal(img_open(&c, f->path, "raw", 0, err, sizeof(err)), -EBUSY);
	img_close(a);
	img_close(b);
	/* released on close */
	assert_int_equal(img_open(&c, f->path, "raw", 0, err, sizeof(err)), 0);
	img_close(c);
}

/* The lock layout is QEMU's: each side sees the other. */
static void test_locking_with_qemu(void **state)
{
	struct fx *f = *state;
	struct img *a;
	char err[256], out[2048];

	if (!tu_have_qemu())
		skip();
	/* Vireo writes: qemu may not even read */
	assert_int_equal(img_open(&a, f->path, "raw", 0, err, sizeof(err)), 0);
	assert_true(tu_qemu_io(out, sizeof(out), "-r", "-f", "raw", "-c", "read 0 512", f->path, NULL) != 0);
	assert_non_null(strstr(out, "lock"));
	img_close(a);
	/* Vireo reads: qemu may read, not write */
	assert_int_equal(img_open(&a, f->path, "raw", IMG_O_RDONLY, err, sizeof(err)), 0);
	assert_int_equal(tu_qemu_io(out, sizeof(out), "-r", "-f", "raw", "-c", "read 0 512", f->path, NULL), 0);
	assert_true(tu_qemu_io(out, sizeof(out), "-f", "raw", "-c", "write 0 512", f->path, NULL) != 0);
	img_close(a);
	/* qemu writes: Vireo may neither read nor write */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execlp("qemu-io", "qemu-io", "-f", "raw", "-c", "sleep 3000", f->path, (char *)NULL);
		_exit(127);
	}
	int fd = open(f->path, O_RDONLY);
	for (int i = 0; i < 500; i++) { /* wait for qemu-io to take its locks */
		struct flock p = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 101, .l_len = 1 };
		if (fcntl(fd, F_OFD_GETLK, &p) == 0 && p.l_type != F_UNLCK)
			break;
		usleep(10000);
	}
	close(fd);
	assert_int_equal(img_open(&a, f->path, "raw", IMG_O_RDONLY, err, sizeof(err)), -EBUSY);
	assert_int_equal(img_open(&a, f->path, "raw", 0, err, sizeof(err)), -EBUSY);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	assert_int_equal(img_open(&a, f->path, "raw", 0, err, sizeof(err)), 0);
	img_close(a);
}

static void test_qcow2_backing_lock(void **state)
{
	struct fx *f = *state;
	struct qcow2_create_opts o = { .backing_file = "disk.raw", .backing_fmt = "raw" };
	char *top = tu_path(f->dir, "top.qcow2"), err[256];
	struct img *im, *w;

	assert_int_equal(qcow2_create(top, &o, err, sizeof(err)), 0);
	assert_int_equal(img_open(&im, top, "qcow2", 0, err, sizeof(err)), 0);
	assert_true(im->size == SZ);
	/* the backing file is held shared: a second writer of it is refused */
	assert_int_equal(img_open(&w, f->path, "raw", 0, err, sizeof(err)), -EBUSY);
	/* the same overlay cannot be opened twice, nor recreated under the VM */
	assert_int_equal(img_open(&w, top, "qcow2", IMG_O_RDONLY, err, sizeof(err)), -EBUSY);
	struct qcow2_create_opts o2 = { .size = 4096 };
	assert_int_equal(qcow2_create(top, &o2, err, sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, "in use"));
	uint8_t b[64];
	assert_int_equal(img_pread(im, b, sizeof(b), 4096), 0);
	assert_memory_equal(b, f->data + 4096, sizeof(b));
	img_close(im);
	free(top);
}

static void test_discard_zeroes_map(void **state)
{
	struct fx *f = *state;
	struct img *im;
	struct img_extent e;
	char err[256];
	uint8_t *buf = malloc(SZ);

	assert_int_equal(img_open(&im, f->path, "raw", 0, err, sizeof(err)), 0);
	assert_int_equal(img_map(im, 0, SZ, &e), 0);
	assert_int_equal(e.kind, IMG_EXT_DATA);
	assert_int_equal(img_write_zeroes(im, 4096, 8192, false), 0);
	assert_int_equal(img_write_zeroes(im, 100, 50, true), 0); /* unaligned */
	assert_int_equal(img_discard(im, 65536, 65536), 0);
	assert_int_equal(img_pread(im, buf, SZ, 0), 0);
	for (size_t i = 0; i < SZ; i++) {
		bool zero = (i >= 4096 && i < 12288) || (i >= 100 && i < 150) ||
			    (i >= 65536 && i < 131072);
		if (buf[i] != (zero ? 0 : f->data[i])) {
			fprintf(stderr, "byte %zu\n", i);
			fail();
		}
	}
	/* the punched range maps as zero (when the file system supports holes) */
	assert_int_equal(img_map(im, 65536, 65536, &e), 0);
	assert_true(e.offset == 65536 && e.len > 0 && e.len <= 65536);
	if (e.kind == IMG_EXT_ZERO)
		assert_true(e.len == 65536);
	assert_int_equal(img_map(im, 0, 4096, &e), 0);
	assert_int_equal(e.kind, IMG_EXT_DATA);
	assert_true(e.len == 4096 && e.host_offset == 0);
	img_close(im);
	free(buf);
}

static void test_direct_io(void **state)
{
	struct fx *f = *state;
	struct img *im;
	char err[256];
	uint8_t *raw = malloc(3 * 8192 + 64), *chk = NULL;
	uint8_t *mis = raw + 3; /* deliberately misaligned buffer */
	uint64_t st = 7;
	char *odd = tu_path(f->dir, "odd.raw");
	size_t len;

	int ret = img_open(&im, f->path, "raw", IMG_O_DIRECT, err, sizeof(err));
	if (ret == -EINVAL) {
		fprintf(stderr, "SKIP: O_DIRECT not supported here\n");
		free(raw);
		free(odd);
		return;
	}
	assert_int_equal(ret, 0);
	tu_fill(mis, 10000, &st);
	assert_int_equal(img_pwrite(im, mis, 10000, 12345), 0);
	assert_int_equal(img_pwrite(im, mis, 4096, 8192), 0); /* aligned offset, odd buffer */
	memset(mis, 0, 10000);
	assert_int_equal(img_pread(im, mis, 10000, 12345), 0);
	assert_int_equal(img_write_zeroes(im, 777, 333, false), 0);
	img_close(im);
	assert_int_equal(tu_read_file(f->path, &chk, &len), 0);
	assert_true(len == SZ);
	assert_memory_equal(chk + 12345, mis, 10000);
	for (int i = 777; i < 1110; i++)
		assert_int_equal(chk[i], 0);
	free(chk);

	/* a file whose size is not a block multiple must not grow */
	assert_int_equal(tu_write_file(odd, f->data, 5000), 0);
	assert_int_equal(img_open(&im, odd, "raw", IMG_O_DIRECT, err, sizeof(err)), 0);
	assert_true(im->size == 5000);
	assert_int_equal(img_pwrite(im, "abc", 3, 4997), 0);
	img_close(im);
	assert_int_equal(tu_read_file(odd, &chk, &len), 0);
	assert_true(len == 5000);
	assert_memory_equal(chk + 4997, "abc", 3);
	assert_memory_equal(chk, f->data, 4997);
	free(chk);
	free(odd);
	free(raw);
}

static void test_cache_modes(void **state)
{
	struct fx *f = *state;
	struct img *im;
	char err[256];
	uint8_t b[512] = { 1, 2, 3 }, c[512];

	assert_int_equal(img_open(&im, f->path, "raw", IMG_O_WRITETHROUGH, err, sizeof(err)), 0);
	assert_int_equal(img_pwrite(im, b, sizeof(b), 512), 0);
	img_close(im);
	assert_int_equal(img_open(&im, f->path, "raw", IMG_O_UNSAFE, err, sizeof(err)), 0);
	assert_int_equal(img_pread(im, c, sizeof(c), 512), 0);
	assert_memory_equal(b, c, sizeof(b));
	assert_int_equal(img_flush(im), 0);
	img_close(im);
}

static void test_refuse_odd_files(void **state)
{
	struct fx *f = *state;
	struct img *im = (struct img *)1;
	char err[256] = "";
	char *fifo = tu_path(f->dir, "fifo");

	assert_int_equal(img_open(&im, f->path, "qed", 0, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown format"));
	assert_null(im);
	assert_int_equal(img_open(&im, "/nonexistent/x", "raw", 0, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/x"));
	assert_int_equal(img_open(&im, f->dir, "raw", IMG_O_RDONLY, err, sizeof(err)), -EINVAL);
	assert_int_equal(img_open(&im, f->dir, "raw", 0, err, sizeof(err)), -EISDIR);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	/* must not block waiting for a writer */
	assert_int_equal(img_open(&im, fifo, "raw", IMG_O_RDONLY, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
	assert_int_equal(img_open(&im, "/dev/null", "raw", IMG_O_RDONLY, err, sizeof(err)), -EINVAL);
	free(fifo);
}

static void test_probe(void **state)
{
	struct fx *f = *state;
	struct qcow2_create_opts o = { .size = SZ };
	char *q = tu_path(f->dir, "p.qcow2"), err[256];

	assert_string_equal(img_probe_format(f->path), "raw");
	assert_int_equal(qcow2_create(q, &o, err, sizeof(err)), 0);
	assert_string_equal(img_probe_format(q), "qcow2");
	assert_int_equal(tu_write_file(q, "KDMV\1\0\0\0", 8), 0);
	assert_string_equal(img_probe_format(q), "vmdk");
	assert_int_equal(tu_write_file(q, "# Disk DescriptorFile\nversion=1\n", 32), 0);
	assert_string_equal(img_probe_format(q), "vmdk");
	uint8_t vhd[1024] = { 0 };
	memcpy(vhd + 512, "conectix", 8);
	assert_int_equal(tu_write_file(q, vhd, sizeof(vhd)), 0);
	assert_string_equal(img_probe_format(q), "vhd");
	assert_string_equal(img_probe_format("/nonexistent"), "raw");
	free(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read_write_ranges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_locking, setup, teardown),
		cmocka_unit_test_setup_teardown(test_locking_with_qemu, setup, teardown),
		cmocka_unit_test_setup_teardown(test_qcow2_backing_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discard_zeroes_map, setup, teardown),
		cmocka_unit_test_setup_teardown(test_direct_io, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuse_odd_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_probe, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
