/* SPDX-License-Identifier: MIT */
/*
 * Private glue between the image dispatcher (image.c) and the format drivers
 * (img_raw.c, qcow2*.c, vmdk.c, vhd.c). Nothing outside src/block includes this.
 *
 * Contract:
 * - img_open() allocates a struct img_file around every struct img; drivers reach the
 *   file I/O helpers below through the struct img they were given.
 * - img_file_* read/write the image's own file at host offsets. They loop over short
 *   transfers, read past end-of-file as zeros, and honour the cache mode: with
 *   IMG_O_DIRECT they bounce through an aligned buffer only when the request is not
 *   aligned (read-modify-write for unaligned writes, serialised per image).
 * - img_file_sync() is the ordering barrier formats use (fdatasync); it is a no-op
 *   under IMG_O_UNSAFE, where crash consistency is explicitly not wanted.
 * - img_open_backing() opens a backing file read-only with the chain bookkeeping
 *   (depth <= IMG_MAX_CHAIN, loops by device/inode) of the image being opened.
 * - The iov helpers never allocate.
 */
#ifndef VIREO_BLOCK_IMG_PRIV_H
#define VIREO_BLOCK_IMG_PRIV_H

#include "block/image.h"
#include "common/log.h"
#include <stdarg.h>

extern const struct img_ops img_raw_ops;
extern const struct img_ops qcow2_ops;
extern const struct img_ops vmdk_ops;
extern const struct img_ops vhd_ops;

/* Error string helper: "image '<path>': <fmt>" into err (may be NULL). */
void img_seterr(const struct img *im, char *err, size_t errlen, const char *fmt, ...)
	PRINTF_FMT(4, 5);

/*
 * A problem found in the image's contents that fails a request (corrupt table entry, data
 * that does not decompress...): "L2 table 0x50000 entry 3 (0x...): offset beyond end of
 * file". Kept for img_last_error (in this image and, prefixed "backing file 'x': ", in
 * every image it backs) and logged rate-limited per call site unless IMG_O_QUIET.
 */
#define img_report(im, ...)                                                                        \
	do {                                                                                       \
		static struct vlog_ratelimit rl__;                                                 \
		img_report_rl((im), &rl__, __VA_ARGS__);                                           \
	} while (0)
void img_report_rl(struct img *im, struct vlog_ratelimit *rl, const char *fmt, ...)
	PRINTF_FMT(3, 4);

int img_file_preadv(struct img *im, const struct iovec *iov, int iovcnt, uint64_t off) WUR;
int img_file_pwritev(struct img *im, const struct iovec *iov, int iovcnt, uint64_t off) WUR;
int img_file_pread(struct img *im, void *buf, size_t len, uint64_t off) WUR;
int img_file_pwrite(struct img *im, const void *buf, size_t len, uint64_t off) WUR;
int img_file_sync(struct img *im) WUR;
/* Current size of the image's file in bytes (fstat, or BLKGETSIZE64 for a device). */
int img_file_size(struct img *im, uint64_t *size) WUR;
/* Alignment (bytes) a buffer needs for O_DIRECT on this image (1 when not O_DIRECT). */
size_t img_file_align(const struct img *im);

/*
 * Open `path` (resolved against the directory of `parent->path` when relative) as
 * `format`, read-only, as a backing file of `parent`. Fails with -ELOOP on a loop or a
 * chain deeper than IMG_MAX_CHAIN.
 */
int img_open_backing(struct img *parent, const char *path, const char *format, struct img **out,
		     char *err, size_t errlen) WUR;
/* Same, writable (for qcow2_commit); the caller closes the read-only one first. */
int img_open_backing_rw(struct img *parent, const char *path, const char *format,
			struct img **out, char *err, size_t errlen) WUR;

/* iovec helpers. */
size_t iov_total(const struct iovec *iov, int iovcnt);
/* Describe [off, off+len) of src in dst (at most dst_max entries). Returns the entry count;
 * *covered gets the bytes described (< len when dst_max was too small). */
int iov_slice(struct iovec *dst, int dst_max, const struct iovec *src, int srccnt, size_t off,
	      size_t len, size_t *covered);
void iov_memset(const struct iovec *iov, int iovcnt, size_t off, int c, size_t len);
void iov_to_buf(const struct iovec *iov, int iovcnt, size_t off, void *buf, size_t len);
void iov_from_buf(const struct iovec *iov, int iovcnt, size_t off, const void *buf, size_t len);
bool buf_is_zero(const void *buf, size_t len);

/* Big/little-endian field access for on-disk structures. */
static inline uint16_t img_be16(const void *p)
{
	const uint8_t *b = p;
	return (uint16_t)(b[0] << 8 | b[1]);
}
static inline uint32_t img_be32(const void *p)
{
	const uint8_t *b = p;
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}
static inline uint64_t img_be64(const void *p)
{
	const uint8_t *b = p;
	return (uint64_t)img_be32(b) << 32 | img_be32(b + 4);
}
static inline void img_put_be16(void *p, uint16_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)(v >> 8);
	b[1] = (uint8_t)v;
}
static inline void img_put_be32(void *p, uint32_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)(v >> 24);
	b[1] = (uint8_t)(v >> 16);
	b[2] = (uint8_t)(v >> 8);
	b[3] = (uint8_t)v;
}
static inline void img_put_be64(void *p, uint64_t v)
{
	img_put_be32(p, (uint32_t)(v >> 32));
	img_put_be32((uint8_t *)p + 4, (uint32_t)v);
}
static inline uint16_t img_le16(const void *p)
{
	const uint8_t *b = p;
	return (uint16_t)(b[1] << 8 | b[0]);
}
static inline uint32_t img_le32(const void *p)
{
	const uint8_t *b = p;
	return (uint32_t)b[3] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[1] << 8 | b[0];
}
static inline uint64_t img_le64(const void *p)
{
	const uint8_t *b = p;
	return (uint64_t)img_le32(b + 4) << 32 | img_le32(b);
}

#endif
