/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the qcow2 driver (src/block/qcow2*.c).
 *
 * The input is an image file. It is put in a memfd and opened as qcow2 read-only:
 * a few ranges are read (start, middle, end, and one chosen by the input), the
 * allocation map is walked, snapshots are listed and read, and the consistency check
 * runs. Then a copy is opened writable and written to, discarded, zeroed and checked
 * again, so the allocator and the write path meet corrupt metadata too. Everything must
 * fail cleanly: ASan/UBSan catch the rest.
 */
#include "block/qcow2.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd_with(const uint8_t *data, size_t size, char *path, size_t pathlen)
{
	int fd = memfd_create("fuzz-qcow2", MFD_CLOEXEC);
	size_t done = 0;

	if (fd < 0)
		return -1;
	while (done < size) {
		ssize_t r = write(fd, data + done, size - done);
		if (r <= 0) {
			close(fd);
			return -1;
		}
		done += (size_t)r;
	}
	snprintf(path, pathlen, "/proc/self/fd/%d", fd);
	return fd;
}

static uint64_t pick(const uint8_t *data, size_t size, uint64_t limit)
{
	uint64_t v = 0;
	for (size_t i = 0; i < 8 && i < size; i++)
		v = v << 8 | data[size - 1 - i];
	return limit ? v % limit : 0;
}

static void exercise_read(struct img *im, uint8_t *buf, size_t buflen, uint64_t extra)
{
	uint64_t offs[4] = { 0, im->size / 2, im->size > buflen ? im->size - buflen : 0, extra };
	struct img_extent e;
	struct qcow2_snapshot_info *snaps = NULL;
	struct qcow2_check_result res;
	unsigned n = 0;

	for (size_t i = 0; i < 4; i++) {
		uint64_t len = im->size - offs[i] < buflen ? im->size - offs[i] : buflen;
		if (offs[i] < im->size && len)
			(void)!img_pread(im, buf, (size_t)len, offs[i]);
	}
	for (uint64_t off = 0, steps = 0; off < im->size && steps < 64; steps++) {
		if (img_map(im, off, im->size - off, &e) || !e.len)
			break;
		off += e.len;
	}
	if (!qcow2_snapshot_list(im, &snaps, &n) && n) {
		uint64_t len = snaps[0].disk_size < buflen ? snaps[0].disk_size : buflen;
		(void)!qcow2_snapshot_pread(im, snaps[0].id, buf, (size_t)len, 0);
	}
	free(snaps);
	(void)!qcow2_check(im, false, &res);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[65536];
	char path[64], err[256];
	struct img *im;
	int fd;

	vlog_set_level(VLOG_ERR);
	fd = memfd_with(data, size, path, sizeof(path));
	if (fd < 0)
		return 0;
	if (!img_open(&im, path, "qcow2", IMG_O_RDONLY | IMG_O_NOLOCK, err, sizeof(err))) {
		exercise_read(im, buf, sizeof(buf), pick(data, size, im->size));
		img_close(im);
	}
	close(fd);

	/* writable pass on a fresh copy */
	fd = memfd_with(data, size, path, sizeof(path));
	if (fd < 0)
		return 0;
	if (!img_open(&im, path, "qcow2", IMG_O_NOLOCK | IMG_O_UNSAFE, err, sizeof(err))) {
		uint64_t off = pick(data, size, im->size), len = 1 + (size % 70000);
		struct qcow2_check_result res;
		if (len > im->size - off)
			len = im->size - off;
		memset(buf, 0x5a, sizeof(buf));
		if (len && len <= sizeof(buf))
			(void)!img_pwrite(im, buf, (size_t)len, off);
		(void)!img_discard(im, 0, im->size / 2);
		(void)!img_write_zeroes(im, im->size / 4, im->size / 4, size & 1);
		(void)!img_pread(im, buf, im->size < sizeof(buf) ? (size_t)im->size : sizeof(buf), 0);
		if (size & 2)
			(void)!qcow2_snapshot_create(im, "f");
		(void)!img_flush(im);
		(void)!qcow2_check(im, size & 4, &res);
		img_close(im);
	}
	close(fd);
	return 0;
}
