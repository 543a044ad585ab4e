/* SPDX-License-Identifier: MIT */
/*
 * qcow2 image creation (with optional preallocation), resize and commit.
 *
 * A new image is laid out as: header cluster, refcount table, refcount blocks, L1 table
 * (all counted with refcount 1). The target file is locked before it is truncated, so a
 * file a VM has open is never clobbered.
 */
#include "block/qcow2_int.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CREATE_HDR_LEN 112u

static int seterr(char *err, size_t errlen, const char *path, const char *msg, int ret)
{
	if (err && errlen)
		snprintf(err, errlen, "image '%s': %s", path, msg);
	return ret;
}

static bool known_format(const char *f)
{
	return !strcmp(f, "raw") || !strcmp(f, "qcow2") || !strcmp(f, "vmdk") || !strcmp(f, "vhd");
}

/* Virtual size of the backing file named relative to the new image. */
static int backing_size(const char *path, const char *backing, const char *fmt, uint64_t *size,
			char *err, size_t errlen)
{
	const char *slash = strrchr(path, '/');
	char *full = NULL, sub[512] = "";
	struct img *b;
	int ret;

	if (backing[0] != '/' && slash) {
		size_t dl = (size_t)(slash - path) + 1;
		full = malloc(dl + strlen(backing) + 1);
		if (!full)
			return -ENOMEM;
		memcpy(full, path, dl);
		strcpy(full + dl, backing);
	}
	ret = img_open(&b, full ? full : backing, fmt, IMG_O_RDONLY, sub, sizeof(sub));
	free(full);
	if (ret) {
		if (err && errlen)
			snprintf(err, errlen, "image '%s': backing file: %s", path, sub);
		return ret;
	}
	*size = b->size;
	img_close(b);
	return 0;
}

static int write_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;
	while (len) {
		ssize_t r = pwrite(fd, p, len, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		p += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* Build the header cluster into h (cs bytes, zeroed). */
static int build_header(uint8_t *h, const struct qcow2_create_opts *o, uint64_t cs,
			unsigned cbits, unsigned rorder, uint32_t l1_size, uint64_t rt_off,
			uint64_t rt_clusters, uint64_t l1_off)
{
	unsigned v = o->version, hl = v == 2 ? QCOW2_V2_HDR_LEN : CREATE_HDR_LEN;
	uint64_t pos = hl;

	img_put_be32(h, QCOW2_MAGIC);
	img_put_be32(h + 4, v);
	img_put_be32(h + 20, cbits);
	img_put_be64(h + 24, o->size);
	img_put_be32(h + 36, l1_size);
	img_put_be64(h + 40, l1_off);
	img_put_be64(h + 48, rt_off);
	img_put_be32(h + 56, (uint32_t)rt_clusters);
	if (v >= 3) {
		img_put_be32(h + 96, rorder);
		img_put_be32(h + 100, hl);
		if (o->compression && !strcmp(o->compression, "zstd")) {
			img_put_be64(h + 72, QCOW2_INCOMPAT_COMPRESSION);
			h[104] = QCOW2_COMPRESSION_ZSTD;
		}
	}
	if (o->backing_file) {
		size_t fl = strlen(o->backing_fmt), bl = strlen(o->backing_file);
		img_put_be32(h + pos, QCOW2_EXT_BACKING_FMT);
		img_put_be32(h + pos + 4, (uint32_t)fl);
		memcpy(h + pos + 8, o->backing_fmt, fl);
		pos += 8 + ALIGN_UP(fl, 8);
		pos += 8; /* end of extensions (zeroes) */
		if (pos + bl > cs)
			return -ENAMETOOLONG;
		memcpy(h + pos, o->backing_file, bl);
		img_put_be64(h + 8, pos);
		img_put_be32(h + 16, (uint32_t)bl);
	}
	return 0;
}

static int create_file(const char *path, const struct qcow2_create_opts *o, char *err,
		       size_t errlen)
{
	uint64_t cs = o->cluster_size, l2cover = cs * (cs / 8), T = 1, B = 1, L, total;
	unsigned cbits = (unsigned)__builtin_ctzll(cs);
	unsigned rorder = (unsigned)__builtin_ctz(o->refcount_bits);
	uint64_t rb = (cs * 8) >> rorder;
	uint64_t l1_size = o->size / l2cover + (o->size % l2cover != 0);
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	uint8_t *buf = NULL;
	int fd, ret;

	if (l1_size * 8 > QCOW2_MAX_L1_BYTES)
		return seterr(err, errlen, path, "virtual size too large for this cluster size",
			      -EFBIG);
	/* An empty disk has no L1 table at all (offset 0): a reserved one would leak. */
	L = ALIGN_UP(l1_size * 8, cs) / cs;
	for (int i = 0; i < 32; i++) {
		total = 1 + T + B + L;
		uint64_t nb = (total + rb - 1) / rb, nt = ALIGN_UP(nb * 8, cs) / cs;
		if (nb == B && nt == T)
			break;
		B = nb;
		T = nt;
	}
	total = 1 + T + B + L;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
	if (fd < 0)
		return seterr(err, errlen, path, strerror(errno), -errno);
	if (fcntl(fd, F_OFD_SETLK, &fl) < 0 && (errno == EAGAIN || errno == EACCES)) {
		close(fd);
		if (err && errlen)
			snprintf(err, errlen, "image '%s' is in use by another process", path);
		return -EBUSY;
	}
	buf = calloc(total, cs);
	if (!buf || ftruncate(fd, 0) < 0) {
		ret = buf ? -errno : -ENOMEM;
		goto out;
	}
	ret = build_header(buf, o, cs, cbits, rorder, (uint32_t)l1_size, cs, T,
			   L ? (1 + T + B) * cs : 0);
	if (ret) {
		seterr(err, errlen, path, "backing file name too long", ret);
		goto out;
	}
	for (uint64_t k = 0; k < B; k++)
		img_put_be64(buf + cs + 8 * k, (1 + T + k) * cs);
	for (uint64_t c = 0; c < total; c++) {
		uint8_t *blk = buf + (1 + T + c / rb) * cs;
		uint64_t i = c % rb;
		switch (rorder) { /* refcount 1 in the entry's width */
		case 0: blk[i / 8] |= (uint8_t)(1u << (i % 8)); break;
		case 1: blk[i / 4] |= (uint8_t)(1u << (2 * (i % 4))); break;
		case 2: blk[i / 2] |= (uint8_t)(1u << (4 * (i % 2))); break;
		case 3: blk[i] = 1; break;
		case 4: img_put_be16(blk + 2 * i, 1); break;
		case 5: img_put_be32(blk + 4 * i, 1); break;
		default: img_put_be64(blk + 8 * i, 1); break;
		}
	}
	ret = write_all(fd, buf, total * cs, 0);
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	if (ret)
		seterr(err, errlen, path, strerror(-ret), ret);
out:
	free(buf);
	close(fd);
	return ret;
}

/* Allocate every cluster of a freshly created image. */
static int preallocate(struct img *im, enum qcow2_prealloc mode)
{
	struct qcow2_state *s = im->priv;
	uint64_t cs = s->cluster_size, per = cs / 8, ncl = (im->size + cs - 1) / cs;
	int ret = 0;

	pthread_rwlock_wrlock(&s->io_lock);
	for (uint64_t gcl = 0; gcl < ncl && !ret; gcl += per) {
		uint64_t n = MIN(per, ncl - gcl), host;
		unsigned idx;
		ret = qcow2_l2_writable(s, gcl / per, &idx);
		if (ret)
			break;
		ret = qcow2_alloc_clusters(s, n, &host);
		if (!ret) { /* the file covers the clusters before any entry names them */
			uint64_t fsize;
			ret = img_file_size(im, &fsize);
			if (!ret && fsize < host + n * cs && ftruncate(im->fd, (off_t)(host + n * cs)))
				ret = -errno;
		}
		if (!ret) {
			uint8_t *raw = qcow2_cache_data(&s->l2c, idx);
			for (uint64_t i = 0; i < n; i++)
				img_put_be64(raw + 8 * i, (host + i * cs) | QCOW2_OFLAG_COPIED);
			qcow2_cache_mark_dirty(&s->l2c, idx);
			if (mode == QCOW2_PREALLOC_FULL &&
			    posix_fallocate(im->fd, (off_t)host, (off_t)(n * cs)))
				ret = -EIO;
		}
		qcow2_cache_put(&s->l2c, idx);
	}
	if (!ret)
		ret = qcow2_meta_flush(s);
	pthread_rwlock_unlock(&s->io_lock);
	return ret;
}

int qcow2_create(const char *path, const struct qcow2_create_opts *opts, char *err,
		 size_t errlen)
{
	struct qcow2_create_opts o;
	int ret;

	if (err && errlen)
		err[0] = 0;
	if (!path || !opts)
		return -EINVAL;
	o = *opts;
	o.cluster_size = o.cluster_size ? o.cluster_size : 65536;
	o.version = o.version ? o.version : 3;
	o.refcount_bits = o.refcount_bits ? o.refcount_bits : 16;
	if (o.cluster_size < 512 || o.cluster_size > (2u << 20) ||
	    (o.cluster_size & (o.cluster_size - 1)))
		return seterr(err, errlen, path, "cluster size must be a power of two 512..2M",
			      -EINVAL);
	if (o.version != 2 && o.version != 3)
		return seterr(err, errlen, path, "version must be 2 or 3", -EINVAL);
	if (o.refcount_bits > 64 || (o.refcount_bits & (o.refcount_bits - 1)) ||
	    (o.version == 2 && o.refcount_bits != 16))
		return seterr(err, errlen, path, "refcount bits must be a power of two 1..64 "
						 "(16 for version 2)", -EINVAL);
	if (o.compression && strcmp(o.compression, "zlib") &&
	    (strcmp(o.compression, "zstd") || o.version != 3))
		return seterr(err, errlen, path, "compression type must be zlib, or zstd (version 3)",
			      -EINVAL);
	if (o.backing_file) {
		o.backing_fmt = o.backing_fmt ? o.backing_fmt : "raw";
		if (!known_format(o.backing_fmt))
			return seterr(err, errlen, path, "unknown backing format", -EINVAL);
		if (!*o.backing_file || strlen(o.backing_file) > QCOW2_MAX_BACKING_NAME)
			return seterr(err, errlen, path, "invalid backing file name", -EINVAL);
		if (!o.size) {
			ret = backing_size(path, o.backing_file, o.backing_fmt, &o.size, err,
					   errlen);
			if (ret)
				return ret;
		}
	}
	if (o.size > (1ull << 62))
		return seterr(err, errlen, path, "virtual size too large", -EFBIG);
	o.size = ALIGN_UP(o.size, 512);
	ret = create_file(path, &o, err, errlen);
	if (ret || o.prealloc == QCOW2_PREALLOC_OFF)
		return ret;
	{
		struct img *im;
		char sub[512] = "";
		ret = img_open(&im, path, "qcow2", 0, sub, sizeof(sub));
		if (ret)
			return seterr(err, errlen, path, sub, ret);
		ret = preallocate(im, o.prealloc);
		img_close(im);
		if (ret)
			seterr(err, errlen, path, "preallocation failed", ret);
	}
	return ret;
}

static int resize_locked(struct qcow2_state *s, uint64_t new_size)
{
	struct img *im = s->im;
	uint64_t cs = s->cluster_size, cover = cs << s->l2_bits, old = im->size;
	uint64_t need = new_size / cover + (new_size % cover != 0);
	int ret = 0;

	if (need * 8 > QCOW2_MAX_L1_BYTES)
		return -EFBIG;
	if (new_size < old) {
		uint64_t first = ALIGN_UP(new_size, cs) / cs, last = ALIGN_UP(old, cs) / cs;
		ret = qcow2_unmap_clusters(s, first, last - first);
		if (!ret && new_size % cs) /* never let old bytes reappear on a later grow */
			ret = qcow2_zero_data_locked(s, new_size, ALIGN_UP(new_size, cs) - new_size);
		if (!ret)
			ret = qcow2_meta_flush(s);
	} else if (old % cs) {
		ret = qcow2_zero_data_locked(s, old, MIN(ALIGN_UP(old, cs), new_size) - old);
	}
	if (ret)
		return ret;
	if (need > s->l1_size) {
		uint64_t bytes = ALIGN_UP(need * 8, cs), off, old_off = s->l1_offset;
		uint64_t old_bytes = ALIGN_UP((uint64_t)s->l1_size * 8, cs);
		uint64_t *l1 = calloc(need, sizeof(*l1));
		uint8_t *raw = calloc(1, bytes);
		if (!l1 || !raw) {
			free(l1);
			free(raw);
			return -ENOMEM;
		}
		if (s->l1_size) /* an empty disk has no table at all */
			memcpy(l1, s->l1, (size_t)s->l1_size * 8);
		for (uint64_t i = 0; i < need; i++)
			img_put_be64(raw + 8 * i, l1[i]);
		ret = qcow2_meta_flush(s);
		if (!ret)
			ret = qcow2_alloc_clusters(s, bytes / cs, &off);
		if (!ret)
			ret = img_file_pwrite(im, raw, bytes, off);
		if (!ret)
			ret = qcow2_refcount_flush(s);
		free(raw);
		if (ret) {
			free(l1);
			return ret;
		}
		free(s->l1);
		s->l1 = l1;
		s->l1_size = (uint32_t)need;
		s->l1_offset = off;
		im->size = new_size;
		ret = qcow2_header_update(s);
		if (!ret && old_bytes)
			ret = qcow2_free_deferred(s, old_off, old_bytes);
	} else {
		im->size = new_size;
		ret = qcow2_header_update(s);
	}
	/* A longer backing file must not show through the new area. */
	if (!ret && new_size > old && im->backing && im->backing->size > old)
		ret = qcow2_write_zeroes_locked(s, old, MIN(new_size, im->backing->size) - old, true);
	if (!ret)
		ret = qcow2_meta_flush(s);
	return ret;
}

int qcow2_resize(struct img *im, uint64_t new_size)
{
	struct qcow2_state *s;
	int ret;

	if (!qcow2_is_qcow2(im) || new_size > (1ull << 62))
		return -EINVAL;
	new_size = ALIGN_UP(new_size, 512);
	if (im->readonly)
		return -EROFS;
	s = im->priv;
	pthread_rwlock_wrlock(&s->io_lock);
	if (s->broken)
		ret = -EIO;
	else if (s->nb_snaps)
		ret = -ENOTSUP;
	else
		ret = new_size == im->size ? 0 : resize_locked(s, new_size);
	pthread_rwlock_unlock(&s->io_lock);
	return ret;
}

/* Copy this image's own clusters into b (writable backing). Exclusive lock held. */
static int commit_into(struct qcow2_state *s, struct img *b, uint8_t *buf, size_t bufsz,
		       const struct qcow2_commit_opts *o)
{
	uint64_t cs = s->cluster_size, ncl = (s->im->size + cs - 1) / cs, e[64], got;
	struct iovec v = { buf, 0 };
	int ret = 0;

	for (uint64_t gcl = 0; gcl < ncl && !ret;) {
		ret = qcow2_l2_entries(s, s->l1, s->l1_size, gcl, MIN(ncl - gcl, 64), e, &got);
		for (uint64_t i = 0; i < got && !ret;) {
			enum qcow2_ctype t = qcow2_l2e_type(s, e[i]);
			uint64_t j = i + 1;
			bool data = t == QCOW2_NORMAL || t == QCOW2_COMPRESSED;
			while (j < got && (j - i) * cs < bufsz &&
			       (qcow2_l2e_type(s, e[j]) == t ||
				(data && (qcow2_l2e_type(s, e[j]) == QCOW2_NORMAL ||
					  qcow2_l2e_type(s, e[j]) == QCOW2_COMPRESSED))))
				j++;
			uint64_t off = (gcl + i) * cs;
			uint64_t len = MIN((gcl + j) * cs, s->im->size) - off;
			if (data) {
				v.iov_len = (size_t)len;
				ret = qcow2_read_chain(s, s->l1, s->l1_size, &v, 1, off, (size_t)len);
				if (!ret)
					ret = img_pwrite(b, buf, (size_t)len, off);
			} else if (t == QCOW2_ZERO) {
				ret = img_write_zeroes(b, off, len, true);
			}
			i = j;
		}
		gcl += got;
		if (o->progress && !ret)
			o->progress(o->opaque, MIN(gcl * cs, s->im->size), s->im->size);
	}
	if (!ret)
		ret = img_flush(b);
	return ret;
}

int qcow2_commit(struct img *im, const struct qcow2_commit_opts *opts, char *err,
		 size_t errlen)
{
	static const struct qcow2_commit_opts defaults;
	const struct qcow2_commit_opts *o = opts ? opts : &defaults;
	struct qcow2_state *s;
	const char *fmt;
	struct img *b = NULL;
	uint8_t *buf = NULL;
	char sub[512] = "";
	int ret, ret2;

	if (err && errlen)
		err[0] = 0;
	if (!qcow2_is_qcow2(im))
		return -EINVAL;
	s = im->priv;
	if (im->readonly || !s->backing_file || !im->backing)
		return seterr(err, errlen, im->path, "commit needs a writable image with a backing file",
			      -EINVAL);
	fmt = s->backing_fmt ? s->backing_fmt : "raw";
	buf = malloc(1u << 20);
	if (!buf)
		return -ENOMEM;
	pthread_rwlock_wrlock(&s->io_lock);
	img_close(im->backing);
	im->backing = NULL;
	ret = img_open_backing_rw(im, s->backing_file, fmt, &b, sub, sizeof(sub));
	if (ret) {
		seterr(err, errlen, im->path, sub, ret);
		goto reopen;
	}
	if (b->readonly) {
		ret = seterr(err, errlen, im->path, "backing file format is read-only", -EROFS);
		goto reopen;
	}
	if (b->size < im->size) {
		if (!strcmp(fmt, "qcow2"))
			ret = qcow2_resize(b, im->size);
		else if (!strcmp(fmt, "raw"))
			ret = ftruncate(b->fd, (off_t)im->size) < 0 ? -errno : 0;
		else
			ret = -ENOTSUP;
		if (!ret)
			b->size = im->size;
		if (ret) {
			seterr(err, errlen, im->path, "cannot grow the backing file", ret);
			goto reopen;
		}
	}
	ret = commit_into(s, b, buf, 1u << 20, o);
	if (ret) {
		char why[320], msg[400];
		img_last_error(b, why, sizeof(why));
		if (!why[0])
			img_last_error(im, why, sizeof(why));
		snprintf(msg, sizeof(msg), "commit failed: %s", why[0] ? why : strerror(-ret));
		seterr(err, errlen, im->path, msg, ret);
	}
reopen:
	img_close(b);
	ret2 = img_open_backing(im, s->backing_file, fmt, &im->backing, sub, sizeof(sub));
	if (ret2) {
		qcow2_set_broken(s, "backing file could not be reopened after commit");
		if (!ret)
			ret = seterr(err, errlen, im->path, sub, ret2);
	} else if (!ret && !o->keep) {
		/* The backing file holds (and flushed) everything: drop this image's copy. */
		uint64_t cs = s->cluster_size;
		ret = qcow2_unmap_clusters(s, 0, ALIGN_UP(im->size, cs) / cs);
		if (!ret)
			ret = qcow2_meta_flush(s);
		if (ret)
			seterr(err, errlen, im->path,
			       "committed, but emptying the image afterwards failed", ret);
	}
	pthread_rwlock_unlock(&s->io_lock);
	free(buf);
	return ret;
}
