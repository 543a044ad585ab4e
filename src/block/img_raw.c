/* SPDX-License-Identifier: MIT */
/*
 * Raw images: regular files and block devices, byte for byte.
 * Discard punches holes (files) or issues BLKDISCARD (devices) and is only a hint: when
 * the file system cannot, it is ignored. Write-zeroes prefers fallocate, then
 * BLKZEROOUT, then plain writes of zeroes. Map uses SEEK_DATA/SEEK_HOLE.
 */
#include "block/img_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

static const uint8_t raw_zero_buf[65536] __attribute__((aligned(4096)));

struct raw_state {
	bool blkdev;
};

static int raw_open(struct img *im, char *err, size_t errlen)
{
	struct raw_state *s = calloc(1, sizeof(*s));
	struct stat st;
	int ret;

	if (!s)
		return -ENOMEM;
	if (fstat(im->fd, &st) < 0) {
		ret = -errno;
		goto fail;
	}
	s->blkdev = S_ISBLK(st.st_mode);
	ret = img_file_size(im, &im->size);
	if (ret) {
		img_seterr(im, err, errlen, "cannot get size: %s", strerror(-ret));
		goto fail;
	}
	im->priv = s;
	return 0;
fail:
	free(s);
	return ret;
}

static void raw_close(struct img *im)
{
	free(im->priv);
	im->priv = NULL;
}

static int raw_preadv(struct img *im, const struct iovec *iov, int iovcnt, uint64_t off)
{
	return img_file_preadv(im, iov, iovcnt, off);
}

static int raw_pwritev(struct img *im, const struct iovec *iov, int iovcnt, uint64_t off)
{
	return img_file_pwritev(im, iov, iovcnt, off);
}

static int raw_write_zero_buf(struct img *im, uint64_t off, uint64_t len)
{
	while (len) {
		size_t n = (size_t)MIN(len, sizeof(raw_zero_buf));
		int ret = img_file_pwrite(im, raw_zero_buf, n, off);
		if (ret)
			return ret;
		off += n;
		len -= n;
	}
	return 0;
}

static bool raw_unsupported(int e)
{
	return e == EOPNOTSUPP || e == ENOTSUP || e == ENOSYS || e == EINVAL || e == ENOTTY;
}

static int raw_discard(struct img *im, uint64_t off, uint64_t len)
{
	struct raw_state *s = im->priv;

	if (s->blkdev) {
		uint64_t range[2] = { off, len };
		if (ioctl(im->fd, BLKDISCARD, range) == 0 || raw_unsupported(errno))
			return 0;
		return -errno;
	}
	if (fallocate(im->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
		      (off_t)len) == 0 ||
	    raw_unsupported(errno))
		return 0;
	return -errno;
}

static int raw_write_zeroes(struct img *im, uint64_t off, uint64_t len, bool may_unmap)
{
	struct raw_state *s = im->priv;

	if (s->blkdev) {
		uint64_t range[2] = { off, len };
		if (off % 512 == 0 && len % 512 == 0 && ioctl(im->fd, BLKZEROOUT, range) == 0)
			return 0;
		return raw_write_zero_buf(im, off, len);
	}
	/* A punched hole reads as zeroes; ZERO_RANGE keeps the blocks allocated. */
	if (may_unmap && fallocate(im->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				   (off_t)off, (off_t)len) == 0)
		return 0;
	if (fallocate(im->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off,
		      (off_t)len) == 0)
		return 0;
	if (!raw_unsupported(errno))
		return -errno;
	return raw_write_zero_buf(im, off, len);
}

static int raw_flush(struct img *im)
{
	return img_file_sync(im);
}

static int raw_map(struct img *im, uint64_t off, uint64_t len, struct img_extent *ext)
{
	struct raw_state *s = im->priv;
	uint64_t end = off + len;
	off_t data, hole;

	ext->offset = off;
	ext->depth = 0;
	if (s->blkdev)
		goto all_data;
	data = lseek(im->fd, (off_t)off, SEEK_DATA);
	if (data < 0) {
		if (errno == ENXIO) { /* only a hole until end of file */
			ext->kind = IMG_EXT_ZERO;
			ext->len = len;
			return 0;
		}
		goto all_data;
	}
	if ((uint64_t)data > off) {
		ext->kind = IMG_EXT_ZERO;
		ext->len = MIN((uint64_t)data, end) - off;
		return 0;
	}
	hole = lseek(im->fd, (off_t)off, SEEK_HOLE);
	if (hole < 0 || (uint64_t)hole <= off)
		goto all_data;
	ext->kind = IMG_EXT_DATA;
	ext->len = MIN((uint64_t)hole, end) - off;
	ext->host_offset = off;
	return 0;
all_data:
	ext->kind = IMG_EXT_DATA;
	ext->len = len;
	ext->host_offset = off;
	return 0;
}

const struct img_ops img_raw_ops = {
	.name = "raw",
	.open = raw_open,
	.close = raw_close,
	.preadv = raw_preadv,
	.pwritev = raw_pwritev,
	.discard = raw_discard,
	.write_zeroes = raw_write_zeroes,
	.flush = raw_flush,
	.map = raw_map,
};
