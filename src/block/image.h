/* SPDX-License-Identifier: MIT */
/*
 * Disk images: one synchronous API over every on-disk format Vireo reads or writes
 * (raw, qcow2; vmdk and vhd read-only). Used by `vireo img` directly, and by the
 * virtio-blk backends (src/block/block.h), which run these calls on worker threads.
 *
 * Contract:
 * - The format is always named by the caller (img_open's `format`); it is never guessed
 *   from the file's content for a VM disk — a guest can write any header into a raw disk.
 *   img_probe_format() exists only for `vireo img info` without --format, and its answer is
 *   never used to follow a backing file.
 * - Offsets and lengths are bytes in the guest-visible disk; every request is checked
 *   against the virtual size (overflow-safe) and fails with -EINVAL beyond it.
 * - All calls on one struct img are thread-safe (formats serialise metadata internally).
 * - Errors: 0 or -errno; open failures also write a one-line reason to err
 *   ("image 'x.qcow2': L1 table offset 0x... beyond end of file"); a request that fails
 *   because of the image's contents leaves its reason for img_last_error().
 * - Durability: after img_flush() returns 0, every write that completed before the call
 *   is on stable storage (data and the metadata that makes it reachable).
 * - Backing files: opened read-only by the format, with the backing format recorded in the
 *   image (qcow2 header extension) or raw; chains are bounded (IMG_MAX_CHAIN) and loops
 *   detected.
 */
#ifndef VIREO_BLOCK_IMAGE_H
#define VIREO_BLOCK_IMAGE_H

#include "common/compiler.h"
#include <sys/uio.h>

#define IMG_MAX_CHAIN 16

enum img_open_flags {
	IMG_O_RDONLY = 1u << 0,
	IMG_O_DIRECT = 1u << 1,	      /* O_DIRECT for data (cache=none) */
	IMG_O_WRITETHROUGH = 1u << 2, /* fdatasync after every write (cache=writethrough) */
	IMG_O_UNSAFE = 1u << 3,	      /* flush is a no-op (cache=unsafe) */
	IMG_O_NOLOCK = 1u << 4,	      /* skip the image lock (tools that only read metadata) */
	IMG_O_REPAIR = 1u << 5,	      /* opened for `img check -r`: tolerate dirty/leaks */
	/* qcow2: leave the backing chain closed (im->backing NULL), for reading the header
	 * (`img info`) of an image whose backing file is missing. Read-only opens only;
	 * reads that would reach the backing file fail with -ENOLINK. */
	IMG_O_NO_BACKING = 1u << 6,
	/* Problems found in the image's contents are not logged, only kept for
	 * img_last_error (tools that print the reason themselves). Inherited by backing files. */
	IMG_O_QUIET = 1u << 7,
};

/* Allocation status of a range, for `vireo img map` and convert. */
enum img_extent_kind { IMG_EXT_DATA, IMG_EXT_ZERO, IMG_EXT_UNALLOCATED /* read from backing */ };
struct img_extent {
	uint64_t offset, len;
	enum img_extent_kind kind;
	unsigned depth;	     /* 0 = this image, 1 = its backing file, ... */
	uint64_t host_offset; /* in the file at that depth, when DATA and not compressed; else 0 */
};

struct img;

struct img_ops {
	const char *name; /* "raw", "qcow2", "vmdk", "vhd" */
	int (*open)(struct img *im, char *err, size_t errlen) WUR;
	void (*close)(struct img *im);
	int (*preadv)(struct img *im, const struct iovec *iov, int iovcnt, uint64_t off) WUR;
	int (*pwritev)(struct img *im, const struct iovec *iov, int iovcnt, uint64_t off) WUR;
	int (*discard)(struct img *im, uint64_t off, uint64_t len) WUR;
	int (*write_zeroes)(struct img *im, uint64_t off, uint64_t len, bool may_unmap) WUR;
	int (*flush)(struct img *im) WUR;
	/* Describe [off, off+len) starting at off: fills one extent (may be shorter than len). */
	int (*map)(struct img *im, uint64_t off, uint64_t len, struct img_extent *ext) WUR;
};

struct img {
	const struct img_ops *ops;
	char *path;
	int fd;
	unsigned flags;
	uint64_t size;	      /* virtual disk size in bytes */
	unsigned block_size;  /* logical block size the guest should see (512) */
	bool readonly;
	struct img *backing; /* owned; NULL if none */
	void *priv;	      /* the format's state */
};

/* Open path as format ("raw", "qcow2", "vmdk", "vhd"). */
int img_open(struct img **out, const char *path, const char *format, unsigned flags, char *err,
	     size_t errlen) WUR;
void img_close(struct img *im);
/* Best-effort guess for `vireo img info` only (see contract). Returns a static name. */
const char *img_probe_format(const char *path);

int img_preadv(struct img *im, const struct iovec *iov, int iovcnt, uint64_t off) WUR;
int img_pwritev(struct img *im, const struct iovec *iov, int iovcnt, uint64_t off) WUR;
int img_pread(struct img *im, void *buf, size_t len, uint64_t off) WUR;
int img_pwrite(struct img *im, const void *buf, size_t len, uint64_t off) WUR;
int img_discard(struct img *im, uint64_t off, uint64_t len) WUR;
int img_write_zeroes(struct img *im, uint64_t off, uint64_t len, bool may_unmap) WUR;
int img_flush(struct img *im) WUR;
int img_map(struct img *im, uint64_t off, uint64_t len, struct img_extent *ext) WUR;

/*
 * Why a request on im failed because of what the image (or a file of its backing chain)
 * contains: the reason recorded most recently, e.g. "L2 table 0x50000 entry 3 (0x...):
 * cluster offset beyond end of file" or "backing file 'b.qcow2': ...". Copied into buf
 * ("" when nothing was recorded). Requests still return a bare -errno; this adds the why.
 */
void img_last_error(struct img *im, char *buf, size_t len);

#endif
