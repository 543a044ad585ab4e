/* SPDX-License-Identifier: MIT */
/*
 * Image dispatcher: format table, open/close, image locks, range-checked wrappers and the
 * file I/O helpers every format uses (see image.h and img_priv.h for the contracts).
 */
#include "block/img_priv.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define BOUNCE_CHUNK (1u << 20)

/* What img_open allocates: the public struct plus the dispatcher's own state. */
struct img_file {
	struct img im;
	size_t dio_align;	  /* 1 without O_DIRECT */
	pthread_mutex_t rmw_lock; /* serialises unaligned O_DIRECT writes */
	dev_t dev;
	ino_t ino;
	unsigned depth;		    /* 0 for the top image */
	struct img_file *parent; /* image whose backing this is (loop detection, errors) */
	pthread_mutex_t err_lock;
	char last_err[320]; /* img_last_error */
};

struct img_format {
	const struct img_ops *ops;
	bool read_only; /* format is import-only: always opened read-only */
};

static const struct img_format img_formats[] = {
	{ &img_raw_ops, false },
	{ &qcow2_ops, false },
	{ &vmdk_ops, true },
	{ &vhd_ops, true },
};

static struct img_file *img_file_of(struct img *im)
{
	return container_of(im, struct img_file, im);
}

static const struct img_file *img_file_cof(const struct img *im)
{
	return (const struct img_file *)(const void *)((const char *)im -
						      offsetof(struct img_file, im));
}

void img_seterr(const struct img *im, char *err, size_t errlen, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "image '%s': %s", im && im->path ? im->path : "?", msg);
}

/* ---- reasons for failed requests ---- */

void img_report_rl(struct img *im, struct vlog_ratelimit *rl, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Kept here and, named, in every image this one backs: the top sees the cause. */
	for (struct img_file *p = img_file_of(im); p; p = p->parent) {
		pthread_mutex_lock(&p->err_lock);
		if (&p->im == im)
			snprintf(p->last_err, sizeof(p->last_err), "%s", msg);
		else
			snprintf(p->last_err, sizeof(p->last_err), "backing file '%s': %s", im->path,
				 msg);
		pthread_mutex_unlock(&p->err_lock);
	}
	if (!(im->flags & IMG_O_QUIET) && vlog_ratelimit_ok(rl))
		vlog(VLOG_WARN, "%s '%s': %s", im->ops ? im->ops->name : "image", im->path, msg);
}

void img_last_error(struct img *im, char *buf, size_t len)
{
	struct img_file *f;

	if (!buf || !len)
		return;
	buf[0] = 0;
	if (!im)
		return;
	f = img_file_of(im);
	pthread_mutex_lock(&f->err_lock);
	snprintf(buf, len, "%s", f->last_err);
	pthread_mutex_unlock(&f->err_lock);
}

/* ---- iovec helpers ---- */

size_t iov_total(const struct iovec *iov, int iovcnt)
{
	size_t t = 0;
	for (int i = 0; i < iovcnt; i++)
		if (add_overflows(t, iov[i].iov_len, &t))
			return SIZE_MAX;
	return t;
}

int iov_slice(struct iovec *dst, int dst_max, const struct iovec *src, int srccnt, size_t off,
	      size_t len, size_t *covered)
{
	int n = 0;
	size_t got = 0;

	for (int i = 0; i < srccnt && got < len && n < dst_max; i++) {
		size_t l = src[i].iov_len;
		if (off >= l) {
			off -= l;
			continue;
		}
		size_t take = MIN(l - off, len - got);
		dst[n].iov_base = (char *)src[i].iov_base + off;
		dst[n].iov_len = take;
		n++;
		got += take;
		off = 0;
	}
	*covered = got;
	return n;
}

void iov_memset(const struct iovec *iov, int iovcnt, size_t off, int c, size_t len)
{
	for (int i = 0; i < iovcnt && len; i++) {
		size_t l = iov[i].iov_len;
		if (off >= l) {
			off -= l;
			continue;
		}
		size_t take = MIN(l - off, len);
		memset((char *)iov[i].iov_base + off, c, take);
		len -= take;
		off = 0;
	}
}

void iov_to_buf(const struct iovec *iov, int iovcnt, size_t off, void *buf, size_t len)
{
	char *b = buf;
	for (int i = 0; i < iovcnt && len; i++) {
		size_t l = iov[i].iov_len;
		if (off >= l) {
			off -= l;
			continue;
		}
		size_t take = MIN(l - off, len);
		memcpy(b, (const char *)iov[i].iov_base + off, take);
		b += take;
		len -= take;
		off = 0;
	}
}

void iov_from_buf(const struct iovec *iov, int iovcnt, size_t off, const void *buf, size_t len)
{
	const char *b = buf;
	for (int i = 0; i < iovcnt && len; i++) {
		size_t l = iov[i].iov_len;
		if (off >= l) {
			off -= l;
			continue;
		}
		size_t take = MIN(l - off, len);
		memcpy((char *)iov[i].iov_base + off, b, take);
		b += take;
		len -= take;
		off = 0;
	}
}

bool buf_is_zero(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len && ((uintptr_t)p & 7)) {
		if (*p++)
			return false;
		len--;
	}
	for (; len >= 8; p += 8, len -= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		if (v)
			return false;
	}
	while (len--)
		if (*p++)
			return false;
	return true;
}

/* ---- file I/O ---- */

/* Plain vectored transfer: loops over short transfers; reads past EOF give zeros. */
static int file_rw_plain(int fd, const struct iovec *iov, int iovcnt, uint64_t off, bool write)
{
	size_t total = iov_total(iov, iovcnt), done = 0;
	struct iovec local[64];
	const struct iovec *cur = iov;
	int curcnt = iovcnt;
	size_t curlen = total;

	if (total == SIZE_MAX || off > (uint64_t)INT64_MAX || total > (uint64_t)INT64_MAX - off)
		return -EINVAL;
	if (iovcnt > IOV_MAX) {
		curcnt = iov_slice(local, 64, iov, iovcnt, 0, total, &curlen);
		cur = local;
	}
	while (done < total) {
		ssize_t r = write ? pwritev(fd, cur, curcnt, (off_t)(off + done))
				  : preadv(fd, cur, curcnt, (off_t)(off + done));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0) {
			if (write)
				return -EIO;
			iov_memset(iov, iovcnt, done, 0, total - done);
			return 0;
		}
		done += (size_t)r;
		if (done < total) {
			curcnt = iov_slice(local, 64, iov, iovcnt, done, total - done, &curlen);
			cur = local;
		}
	}
	return 0;
}

static bool iov_aligned(const struct iovec *iov, int iovcnt, uint64_t off, size_t a)
{
	if (off % a)
		return false;
	for (int i = 0; i < iovcnt; i++)
		if ((uintptr_t)iov[i].iov_base % a || iov[i].iov_len % a)
			return false;
	return true;
}

/* O_DIRECT request that is not aligned: go through an aligned bounce buffer, chunk by chunk. */
static int file_rw_bounce(struct img_file *f, const struct iovec *iov, int iovcnt, uint64_t off,
			  bool write)
{
	size_t a = f->dio_align, total = iov_total(iov, iovcnt), pos = 0;
	void *bounce = NULL;
	int ret = 0;

	if (posix_memalign(&bounce, a, BOUNCE_CHUNK + 2 * a))
		return -ENOMEM;
	if (write)
		pthread_mutex_lock(&f->rmw_lock);
	while (pos < total && !ret) {
		size_t clen = MIN(total - pos, BOUNCE_CHUNK);
		uint64_t start = off + pos, astart = ALIGN_DOWN(start, (uint64_t)a);
		uint64_t aend = ALIGN_UP(start + clen, (uint64_t)a);
		size_t blen = (size_t)(aend - astart), head = (size_t)(start - astart);
		struct iovec biov = { bounce, blen };

		if (!write) {
			ret = file_rw_plain(f->im.fd, &biov, 1, astart, false);
			if (!ret)
				iov_from_buf(iov, iovcnt, pos, (char *)bounce + head, clen);
		} else {
			struct stat st;
			if (fstat(f->im.fd, &st) < 0) {
				ret = -errno;
				break;
			}
			/* Read the partially covered edge blocks, then overlay the caller's data. */
			if (head || clen % a) {
				struct iovec e1 = { bounce, a };
				ret = file_rw_plain(f->im.fd, &e1, 1, astart, false);
				if (!ret && blen > a) {
					struct iovec e2 = { (char *)bounce + blen - a, a };
					ret = file_rw_plain(f->im.fd, &e2, 1, aend - a, false);
				}
			}
			if (!ret) {
				iov_to_buf(iov, iovcnt, pos, (char *)bounce + head, clen);
				ret = file_rw_plain(f->im.fd, &biov, 1, astart, true);
			}
			/* Padding past the old end of file must not grow the file. */
			if (!ret && S_ISREG(st.st_mode) && aend > (uint64_t)st.st_size &&
			    start + clen < aend) {
				uint64_t keep = MAX((uint64_t)st.st_size, start + clen);
				if (ftruncate(f->im.fd, (off_t)keep) < 0)
					ret = -errno;
			}
		}
		pos += clen;
	}
	if (write)
		pthread_mutex_unlock(&f->rmw_lock);
	free(bounce);
	return ret;
}

static int file_rw(struct img *im, const struct iovec *iov, int iovcnt, uint64_t off, bool write)
{
	struct img_file *f = img_file_of(im);
	if (f->dio_align > 1 && !iov_aligned(iov, iovcnt, off, f->dio_align))
		return file_rw_bounce(f, iov, iovcnt, off, write);
	return file_rw_plain(im->fd, iov, iovcnt, off, write);
}

int img_file_preadv(struct img *im, const struct iovec *iov, int iovcnt, uint64_t off)
{
	return file_rw(im, iov, iovcnt, off, false);
}

int img_file_pwritev(struct img *im, const struct iovec *iov, int iovcnt, uint64_t off)
{
	return file_rw(im, iov, iovcnt, off, true);
}

int img_file_pread(struct img *im, void *buf, size_t len, uint64_t off)
{
	struct iovec v = { buf, len };
	return file_rw(im, &v, 1, off, false);
}

int img_file_pwrite(struct img *im, const void *buf, size_t len, uint64_t off)
{
	struct iovec v = { (void *)(uintptr_t)buf, len };
	return file_rw(im, &v, 1, off, true);
}

int img_file_sync(struct img *im)
{
	if ((im->flags & IMG_O_UNSAFE) || im->readonly)
		return 0;
	if (fdatasync(im->fd) < 0)
		return -errno;
	return 0;
}

int img_file_size(struct img *im, uint64_t *size)
{
	struct stat st;
	if (fstat(im->fd, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		uint64_t s;
		if (ioctl(im->fd, BLKGETSIZE64, &s) < 0)
			return -errno;
		*size = s;
	} else {
		*size = (uint64_t)st.st_size;
	}
	return 0;
}

size_t img_file_align(const struct img *im)
{
	return img_file_cof(im)->dio_align;
}

/* ---- open / close ---- */

static const struct img_format *img_format_find(const char *name)
{
	for (size_t i = 0; name && i < ARRAY_SIZE(img_formats); i++)
		if (!strcmp(img_formats[i].ops->name, name))
			return &img_formats[i];
	return NULL;
}

/*
 * Image locks are OFD locks laid out like QEMU's (permission bytes at 100 + n, "deny"
 * bytes at 200 + n; n = 1 is write), so that Vireo and qemu-img/qemu see each other:
 * - a writer holds an exclusive lock on the whole file: nobody else may open it;
 * - a reader holds a shared lock on the deny-write byte (writers are refused) and
 *   refuses to start while anyone holds the write byte; readers share freely.
 */
#define IMG_LOCK_WRITE_PERM 101
#define IMG_LOCK_DENY_WRITE 201

static int img_lock_busy(struct img *im, char *err, size_t errlen)
{
	if (err && errlen)
		snprintf(err, errlen, "image '%s' is in use by another process", im->path);
	return -EBUSY;
}

static int img_lock(struct img *im, char *err, size_t errlen)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	if (im->readonly) {
		fl.l_type = F_RDLCK;
		fl.l_start = IMG_LOCK_DENY_WRITE;
		fl.l_len = 1;
	}
	if (fcntl(im->fd, F_OFD_SETLK, &fl) < 0) {
		if (errno == EAGAIN || errno == EACCES)
			return img_lock_busy(im, err, errlen);
		/* A file system without lock support is not a reason to refuse the image. */
		vwarn("image '%s': cannot lock (%s), continuing without a lock", im->path,
		      strerror(errno));
		return 0;
	}
	if (im->readonly) {
		struct flock probe = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
				       .l_start = IMG_LOCK_WRITE_PERM, .l_len = 1 };
		if (fcntl(im->fd, F_OFD_GETLK, &probe) == 0 && probe.l_type != F_UNLCK)
			return img_lock_busy(im, err, errlen);
	}
	return 0;
}

static void img_set_dio_align(struct img_file *f, const struct stat *st)
{
	f->dio_align = 1;
	if (!(f->im.flags & IMG_O_DIRECT))
		return;
	f->dio_align = 4096; /* safe for every file system block size we meet */
	if (S_ISBLK(st->st_mode)) {
		int lbs = 0;
		if (ioctl(f->im.fd, BLKSSZGET, &lbs) == 0 && lbs >= 512 && (lbs & (lbs - 1)) == 0)
			f->dio_align = (size_t)lbs;
	}
}

static int img_open_internal(struct img **out, const char *path, const char *format,
			     unsigned flags, struct img_file *parent, char *err, size_t errlen)
{
	const struct img_format *fmt = img_format_find(format);
	struct img_file *f;
	struct img *im;
	struct stat st;
	int ret, oflags;

	*out = NULL;
	if (!path || !*path) {
		if (err && errlen)
			snprintf(err, errlen, "image: empty path");
		return -EINVAL;
	}
	if (!fmt) {
		if (err && errlen)
			snprintf(err, errlen, "image '%s': unknown format '%s'", path,
				 format ? format : "(null)");
		return -EINVAL;
	}
	if (parent && parent->depth + 1 > IMG_MAX_CHAIN) {
		if (err && errlen)
			snprintf(err, errlen, "image '%s': backing chain longer than %d", path,
				 IMG_MAX_CHAIN);
		return -ELOOP;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	im = &f->im;
	im->fd = -1;
	im->flags = flags;
	im->block_size = 512;
	im->readonly = (flags & IMG_O_RDONLY) || fmt->read_only;
	f->parent = parent;
	f->depth = parent ? parent->depth + 1 : 0;
	pthread_mutex_init(&f->rmw_lock, NULL);
	pthread_mutex_init(&f->err_lock, NULL);
	im->path = strdup(path);
	if (!im->path) {
		ret = -ENOMEM;
		goto fail;
	}
	oflags = (im->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
	if (flags & IMG_O_DIRECT)
		oflags |= O_DIRECT;
	im->fd = open(path, oflags);
	if (im->fd < 0) {
		ret = -errno;
		img_seterr(im, err, errlen, "cannot open: %s", strerror(-ret));
		goto fail;
	}
	if (fstat(im->fd, &st) < 0) {
		ret = -errno;
		img_seterr(im, err, errlen, "cannot stat: %s", strerror(-ret));
		goto fail;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		ret = -EINVAL;
		img_seterr(im, err, errlen, "not a regular file or block device");
		goto fail;
	}
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	for (const struct img_file *p = parent; p; p = p->parent) {
		if (p->dev == f->dev && p->ino == f->ino) {
			ret = -ELOOP;
			img_seterr(im, err, errlen, "backing file loop (already open as '%s')",
				   p->im.path);
			goto fail;
		}
	}
	if (fcntl(im->fd, F_SETFL, fcntl(im->fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		ret = -errno;
		goto fail;
	}
	img_set_dio_align(f, &st);
	if (!(flags & IMG_O_NOLOCK)) {
		ret = img_lock(im, err, errlen);
		if (ret)
			goto fail;
	}
	im->ops = fmt->ops;
	ret = im->ops->open(im, err, errlen);
	if (ret) {
		im->ops = NULL; /* open cleaned up its own state; img_close drops the backing */
		goto fail;
	}
	*out = im;
	return 0;
fail:
	if (err && errlen && !err[0])
		img_seterr(im, err, errlen, "%s", strerror(-ret));
	img_close(im);
	return ret;
}

int img_open(struct img **out, const char *path, const char *format, unsigned flags, char *err,
	     size_t errlen)
{
	if (err && errlen)
		err[0] = 0;
	if (!out)
		return -EINVAL;
	return img_open_internal(out, path, format, flags, NULL, err, errlen);
}

static int img_open_backing_flags(struct img *parent, const char *path, const char *format,
				  unsigned flags, struct img **out, char *err, size_t errlen)
{
	char *full = NULL;
	int ret;

	if (path[0] != '/') {
		const char *slash = strrchr(parent->path, '/');
		if (slash) {
			size_t dl = (size_t)(slash - parent->path) + 1;
			size_t pl = strlen(path);
			full = malloc(dl + pl + 1);
			if (!full)
				return -ENOMEM;
			memcpy(full, parent->path, dl);
			memcpy(full + dl, path, pl + 1);
		}
	}
	/* The backing file inherits the cache mode, the lock opt-out and quiet errors. */
	flags |= parent->flags & (IMG_O_DIRECT | IMG_O_NOLOCK | IMG_O_QUIET);
	ret = img_open_internal(out, full ? full : path, format, flags, img_file_of(parent), err,
				errlen);
	free(full);
	return ret;
}

int img_open_backing(struct img *parent, const char *path, const char *format, struct img **out,
		     char *err, size_t errlen)
{
	return img_open_backing_flags(parent, path, format, IMG_O_RDONLY, out, err, errlen);
}

int img_open_backing_rw(struct img *parent, const char *path, const char *format,
			struct img **out, char *err, size_t errlen)
{
	return img_open_backing_flags(parent, path, format, 0, out, err, errlen);
}

void img_close(struct img *im)
{
	struct img_file *f;

	if (!im)
		return;
	f = img_file_of(im);
	if (im->ops)
		im->ops->close(im);
	if (im->backing)
		img_close(im->backing);
	if (im->fd >= 0)
		close(im->fd); /* drops the OFD lock with the last reference */
	pthread_mutex_destroy(&f->rmw_lock);
	pthread_mutex_destroy(&f->err_lock);
	free(im->path);
	free(f);
}

const char *img_probe_format(const char *path)
{
	uint8_t buf[512];
	struct stat st;
	const char *fmt = "raw";
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

	if (fd < 0)
		return "raw";
	if (fstat(fd, &st) < 0 || (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)))
		goto out;
	ssize_t n = pread(fd, buf, sizeof(buf), 0);
	if (n >= 4 && !memcmp(buf, "QFI\xfb", 4))
		fmt = "qcow2";
	else if (n >= 4 && !memcmp(buf, "KDMV", 4))
		fmt = "vmdk";
	else if (n >= 21 && !memcmp(buf, "# Disk DescriptorFile", 21))
		fmt = "vmdk";
	else if (n >= 8 && !memcmp(buf, "conectix", 8))
		fmt = "vhd";
	else if (S_ISREG(st.st_mode) && st.st_size >= 512 &&
		 pread(fd, buf, 512, st.st_size - 512) == 512 && !memcmp(buf, "conectix", 8))
		fmt = "vhd";
out:
	close(fd);
	return fmt;
}

/* ---- range-checked wrappers ---- */

static int img_check_range(const struct img *im, uint64_t off, uint64_t len)
{
	uint64_t end;
	if (add_overflows(off, len, &end) || end > im->size)
		return -EINVAL;
	return 0;
}

int img_preadv(struct img *im, const struct iovec *iov, int iovcnt, uint64_t off)
{
	size_t len;
	if (iovcnt < 0 || (iovcnt && !iov))
		return -EINVAL;
	len = iov_total(iov, iovcnt);
	if (len == SIZE_MAX || img_check_range(im, off, len))
		return -EINVAL;
	if (!len)
		return 0;
	return im->ops->preadv(im, iov, iovcnt, off);
}

static int img_after_write(struct img *im, int ret)
{
	if (!ret && (im->flags & IMG_O_WRITETHROUGH))
		ret = im->ops->flush(im);
	return ret;
}

int img_pwritev(struct img *im, const struct iovec *iov, int iovcnt, uint64_t off)
{
	size_t len;
	if (iovcnt < 0 || (iovcnt && !iov))
		return -EINVAL;
	len = iov_total(iov, iovcnt);
	if (len == SIZE_MAX || img_check_range(im, off, len))
		return -EINVAL;
	if (im->readonly)
		return -EROFS;
	if (!len)
		return 0;
	return img_after_write(im, im->ops->pwritev(im, iov, iovcnt, off));
}

int img_pread(struct img *im, void *buf, size_t len, uint64_t off)
{
	struct iovec v = { buf, len };
	return img_preadv(im, &v, 1, off);
}

int img_pwrite(struct img *im, const void *buf, size_t len, uint64_t off)
{
	struct iovec v = { (void *)(uintptr_t)buf, len };
	return img_pwritev(im, &v, 1, off);
}

int img_discard(struct img *im, uint64_t off, uint64_t len)
{
	if (img_check_range(im, off, len))
		return -EINVAL;
	if (im->readonly)
		return -EROFS;
	if (!len)
		return 0;
	return img_after_write(im, im->ops->discard(im, off, len));
}

int img_write_zeroes(struct img *im, uint64_t off, uint64_t len, bool may_unmap)
{
	if (img_check_range(im, off, len))
		return -EINVAL;
	if (im->readonly)
		return -EROFS;
	if (!len)
		return 0;
	return img_after_write(im, im->ops->write_zeroes(im, off, len, may_unmap));
}

int img_flush(struct img *im)
{
	if (im->readonly || (im->flags & IMG_O_UNSAFE))
		return 0;
	return im->ops->flush(im);
}

int img_map(struct img *im, uint64_t off, uint64_t len, struct img_extent *ext)
{
	if (!ext || img_check_range(im, off, len) || !len)
		return -EINVAL;
	memset(ext, 0, sizeof(*ext));
	return im->ops->map(im, off, len, ext);
}
