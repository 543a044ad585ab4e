/* SPDX-License-Identifier: MIT */
/*
 * VHD (Virtual PC "vpc"), read-only (import): fixed and dynamic disks. Differencing
 * disks are refused. Footer and dynamic header checksums are verified; every BAT entry
 * is checked against the file before use. In a dynamic disk, sectors whose bit is clear
 * in the block bitmap, and unallocated blocks, read as zeroes.
 *
 * Virtual size: like other tools, the CHS geometry decides the size unless the creator
 * is known to store the exact size in current_size (Hyper-V "win ", "qem2", "d2v ",
 * "CTXS", "tap"), or the geometry is the maximum 65535/16/255.
 */
#include "block/img_priv.h"
#include "common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define VHD_FIXED 2u
#define VHD_DYNAMIC 3u
#define VHD_DIFF 4u
#define VHD_UNALLOC 0xffffffffu
#define VHD_MAX_BAT (1u << 24)

struct vhd_state {
	bool dynamic;
	uint64_t data_end; /* fixed: bytes of data before the footer */
	uint32_t *bat;
	uint32_t bat_n;
	uint64_t block;	       /* bytes per block */
	uint32_t bitmap_bytes; /* sector-aligned bitmap in front of each block */
	uint64_t fsize;
};

static uint32_t vhd_checksum(const uint8_t *p, size_t len, size_t skip)
{
	uint32_t sum = 0;
	for (size_t i = 0; i < len; i++)
		if (i < skip || i >= skip + 4)
			sum += p[i];
	return ~sum;
}

static uint64_t vhd_size(const uint8_t *f)
{
	static const char *const exact[] = { "win ", "qem2", "d2v ", "CTXS" };
	uint16_t cyl = img_be16(f + 56);
	uint8_t heads = f[58], secs = f[59];

	for (size_t i = 0; i < ARRAY_SIZE(exact); i++)
		if (!memcmp(f + 28, exact[i], 4))
			return img_be64(f + 48);
	if (!memcmp(f + 28, "tap", 4) || (cyl == 65535 && heads == 16 && secs == 255))
		return img_be64(f + 48);
	return (uint64_t)cyl * heads * secs * 512;
}

static int vhd_open_dynamic(struct img *im, struct vhd_state *s, uint64_t hdr_off, uint64_t size,
			    char *err, size_t errlen)
{
	uint8_t h[1024], *raw;
	uint64_t bat_off;
	int ret;

	if (hdr_off > s->fsize || s->fsize - hdr_off < sizeof(h)) {
		img_seterr(im, err, errlen, "vhd: dynamic header beyond end of file");
		return -EINVAL;
	}
	ret = img_file_pread(im, h, sizeof(h), hdr_off);
	if (ret)
		return ret;
	if (memcmp(h, "cxsparse", 8) || vhd_checksum(h, sizeof(h), 36) != img_be32(h + 36)) {
		img_seterr(im, err, errlen, "vhd: bad dynamic disk header (cookie or checksum)");
		return -EINVAL;
	}
	bat_off = img_be64(h + 16);
	s->bat_n = img_be32(h + 28);
	s->block = img_be32(h + 32);
	if (s->block < 512 || s->block > (256u << 20) || (s->block & (s->block - 1)) ||
	    s->bat_n > VHD_MAX_BAT || (uint64_t)s->bat_n * s->block < size) {
		img_seterr(im, err, errlen, "vhd: invalid block size or table size");
		return -EINVAL;
	}
	if (bat_off > s->fsize || (uint64_t)s->bat_n * 4 > s->fsize - bat_off) {
		img_seterr(im, err, errlen, "vhd: block allocation table beyond end of file");
		return -EINVAL;
	}
	s->bitmap_bytes = (uint32_t)ALIGN_UP(s->block / 512 / 8, 512);
	s->bat = malloc(s->bat_n ? (size_t)s->bat_n * 4 : 4);
	raw = malloc(s->bat_n ? (size_t)s->bat_n * 4 : 4);
	if (!s->bat || !raw) {
		free(raw);
		return -ENOMEM;
	}
	ret = img_file_pread(im, raw, (size_t)s->bat_n * 4, bat_off);
	for (uint32_t i = 0; !ret && i < s->bat_n; i++)
		s->bat[i] = img_be32(raw + 4 * i);
	free(raw);
	return ret;
}

static void vhd_close(struct img *im)
{
	struct vhd_state *s = im->priv;
	if (s)
		free(s->bat);
	free(s);
	im->priv = NULL;
}

static int vhd_open(struct img *im, char *err, size_t errlen)
{
	struct vhd_state *s = calloc(1, sizeof(*s));
	uint8_t f[512];
	uint32_t type;
	int ret;

	if (!s)
		return -ENOMEM;
	im->priv = s;
	ret = img_file_size(im, &s->fsize);
	if (ret)
		goto fail;
	if (s->fsize < 512) {
		img_seterr(im, err, errlen, "not a vhd image (too short)");
		ret = -EINVAL;
		goto fail;
	}
	ret = img_file_pread(im, f, 512, s->fsize - 512);
	if (!ret && memcmp(f, "conectix", 8)) /* dynamic disks keep a copy at the start */
		ret = img_file_pread(im, f, 512, 0);
	if (ret)
		goto fail;
	if (memcmp(f, "conectix", 8)) {
		img_seterr(im, err, errlen, "not a vhd image (no footer)");
		ret = -EINVAL;
		goto fail;
	}
	if (vhd_checksum(f, 512, 64) != img_be32(f + 64)) {
		img_seterr(im, err, errlen, "vhd: footer checksum mismatch");
		ret = -EINVAL;
		goto fail;
	}
	type = img_be32(f + 60);
	im->size = vhd_size(f);
	if (im->size > (1ull << 50)) {
		img_seterr(im, err, errlen, "vhd: virtual size too large");
		ret = -EFBIG;
		goto fail;
	}
	if (type == VHD_FIXED) {
		s->data_end = s->fsize - 512;
		if (im->size > s->data_end) {
			img_seterr(im, err, errlen, "vhd: fixed disk larger than its file");
			ret = -EINVAL;
			goto fail;
		}
	} else if (type == VHD_DYNAMIC) {
		s->dynamic = true;
		ret = vhd_open_dynamic(im, s, img_be64(f + 16), im->size, err, errlen);
		if (ret)
			goto fail;
	} else {
		img_seterr(im, err, errlen, "vhd: disk type %u not supported%s", type,
			   type == VHD_DIFF ? " (differencing)" : "");
		ret = -ENOTSUP;
		goto fail;
	}
	return 0;
fail:
	vhd_close(im);
	return ret;
}

/* One block's part of a read (len <= 16 KiB): the bitmap decides, per sector, data or zero. */
static int vhd_read_block(struct img *im, struct vhd_state *s, uint8_t *buf, uint64_t off,
			  size_t len)
{
	uint64_t bi = off / s->block, in = off % s->block, base;
	uint64_t first = in / 512, last = (in + len - 1) / 512;
	uint8_t bitmap[8];
	uint32_t e = bi < s->bat_n ? s->bat[bi] : VHD_UNALLOC;
	int ret;

	if (e == VHD_UNALLOC) {
		memset(buf, 0, len);
		return 0;
	}
	base = (uint64_t)e * 512;
	if (base >= s->fsize || last / 8 - first / 8 + 1 > sizeof(bitmap)) {
		img_report(im, "block %llu beyond end of file", (unsigned long long)bi);
		return -EIO;
	}
	ret = img_file_pread(im, bitmap, last / 8 - first / 8 + 1, base + first / 8);
	while (len && !ret) {
		uint64_t sec = in / 512, bit = sec - first / 8 * 8;
		size_t n = (size_t)MIN((uint64_t)len, 512 - in % 512);
		if (bitmap[bit / 8] & (0x80 >> (bit % 8)))
			ret = img_file_pread(im, buf, n, base + s->bitmap_bytes + in);
		else
			memset(buf, 0, n);
		buf += n;
		in += n;
		len -= n;
	}
	return ret;
}

static int vhd_preadv(struct img *im, const struct iovec *iov, int iovcnt, uint64_t off)
{
	struct vhd_state *s = im->priv;
	size_t len = iov_total(iov, iovcnt), pos = 0;
	uint8_t tmp[16384];
	int ret = 0;

	if (!s->dynamic) {
		uint64_t avail = off < s->data_end ? s->data_end - off : 0;
		size_t n = (size_t)MIN((uint64_t)len, avail);
		struct iovec sl[64];
		size_t cov;
		while (pos < n && !ret) {
			int cnt = iov_slice(sl, 64, iov, iovcnt, pos, n - pos, &cov);
			ret = img_file_preadv(im, sl, cnt, off + pos);
			pos += cov;
		}
		if (!ret && n < len)
			iov_memset(iov, iovcnt, n, 0, len - n);
		return ret;
	}
	while (pos < len && !ret) {
		uint64_t cur = off + pos, in = cur % s->block;
		size_t n = (size_t)MIN(MIN((uint64_t)(len - pos), s->block - in), sizeof(tmp));
		ret = vhd_read_block(im, s, tmp, cur, n);
		if (!ret)
			iov_from_buf(iov, iovcnt, pos, tmp, n);
		pos += n;
	}
	return ret;
}

static int vhd_rofs(struct img *im, const struct iovec *iov, int iovcnt, uint64_t off)
{
	(void)im, (void)iov, (void)iovcnt, (void)off;
	return -EROFS;
}

static int vhd_discard(struct img *im, uint64_t off, uint64_t len)
{
	(void)im, (void)off, (void)len;
	return -EROFS;
}

static int vhd_zeroes(struct img *im, uint64_t off, uint64_t len, bool unmap)
{
	(void)im, (void)off, (void)len, (void)unmap;
	return -EROFS;
}

static int vhd_flush(struct img *im)
{
	(void)im;
	return 0;
}

static int vhd_map(struct img *im, uint64_t off, uint64_t len, struct img_extent *ext)
{
	struct vhd_state *s = im->priv;
	ext->offset = off;
	ext->len = len;
	ext->kind = IMG_EXT_DATA;
	if (s->dynamic) {
		uint64_t bi = off / s->block;
		ext->len = MIN(len, (bi + 1) * s->block - off);
		if (bi >= s->bat_n || s->bat[bi] == VHD_UNALLOC)
			ext->kind = IMG_EXT_ZERO;
		else /* the block's data follows its sector bitmap (absent sectors read 0) */
			ext->host_offset = (uint64_t)s->bat[bi] * 512 + s->bitmap_bytes +
					   off % s->block;
	} else {
		ext->host_offset = off;
	}
	return 0;
}

const struct img_ops vhd_ops = {
	.name = "vhd",
	.open = vhd_open,
	.close = vhd_close,
	.preadv = vhd_preadv,
	.pwritev = vhd_rofs,
	.discard = vhd_discard,
	.write_zeroes = vhd_zeroes,
	.flush = vhd_flush,
	.map = vhd_map,
};
