/* SPDX-License-Identifier: MIT */
/*
 * VMDK, read-only (import): a hosted sparse extent file ("KDMV" header, as in
 * monolithicSparse), or a text descriptor naming FLAT / ZERO / SPARSE extents
 * (monolithicFlat, twoGbMaxExtent*). Extent files are resolved against the descriptor's
 * directory. Refused with a clear error: delta links (parentCID), compressed or
 * streamOptimized extents, VMFS sparse extents, NOACCESS extents.
 * Unallocated grains read as zeroes, and map reports them as zero (allocated grains as
 * data, with their offset when in the descriptor's own file). Writes never reach here
 * (format is read-only).
 */
#include "block/img_priv.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define VMDK_MAGIC "KDMV"
#define VMDK_GD_AT_END 0xffffffffffffffffull
#define VMDK_FLAG_ZERO_GRAIN (1u << 2)
#define VMDK_FLAG_COMPRESSED (1u << 16)
#define VMDK_MAX_DESC (64u << 10)
#define VMDK_MAX_EXTENTS 1024u
#define VMDK_MAX_GD_BYTES (64u << 20)

enum vmdk_type { VX_FLAT, VX_ZERO, VX_SPARSE };

struct vmdk_extent {
	enum vmdk_type type;
	uint64_t start, len; /* guest bytes */
	int fd;		     /* -1 for ZERO; im->fd when own_fd is false */
	bool own_fd;
	uint64_t file_off;   /* FLAT: where the extent starts in its file */
	uint64_t file_size;
	/* SPARSE */
	uint64_t grain;	     /* bytes */
	uint32_t gt_n;	     /* entries per grain table */
	uint32_t *gd;
	uint64_t gd_n;
	bool zero_gte;
	uint32_t *gt; /* one cached grain table */
	uint64_t gt_sector;
	pthread_mutex_t lock;
};

struct vmdk_state {
	struct vmdk_extent *ext;
	unsigned n;
};

static int ext_pread(struct img *im, const struct vmdk_extent *x, void *buf, size_t len,
		     uint64_t off)
{
	char *p = buf;

	if (x->fd == im->fd)
		return img_file_pread(im, buf, len, off);
	while (len) {
		ssize_t r = pread(x->fd, p, len, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0) {
			memset(p, 0, len);
			return 0;
		}
		p += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* Parse a KDMV header at the start of x->fd; fills the sparse fields. */
static int sparse_open(struct img *im, struct vmdk_extent *x, uint64_t *capacity, char *err,
		       size_t errlen)
{
	uint8_t h[512];
	uint64_t grain_sec, gd_sec, cap, cover;
	uint32_t flags, version;
	int ret = ext_pread(im, x, h, sizeof(h), 0);

	if (ret)
		return ret;
	if (memcmp(h, VMDK_MAGIC, 4)) {
		img_seterr(im, err, errlen, "vmdk: sparse extent without KDMV header");
		return -EINVAL;
	}
	version = img_le32(h + 4);
	flags = img_le32(h + 8);
	cap = img_le64(h + 12);
	grain_sec = img_le64(h + 20);
	x->gt_n = img_le32(h + 44);
	gd_sec = img_le64(h + 56);
	if (version < 1 || version > 3) {
		img_seterr(im, err, errlen, "vmdk: unsupported version %u", version);
		return -ENOTSUP;
	}
	if ((flags & VMDK_FLAG_COMPRESSED) || gd_sec == VMDK_GD_AT_END) {
		img_seterr(im, err, errlen, "vmdk: compressed/streamOptimized extents not supported");
		return -ENOTSUP;
	}
	if (grain_sec == 0 || grain_sec > 65536 || x->gt_n == 0 || x->gt_n > 65536 ||
	    cap > (1ull << 53)) {
		img_seterr(im, err, errlen, "vmdk: invalid grain size or capacity");
		return -EINVAL;
	}
	x->grain = grain_sec * 512;
	x->zero_gte = flags & VMDK_FLAG_ZERO_GRAIN;
	cover = grain_sec * x->gt_n;
	x->gd_n = cap / cover + (cap % cover != 0);
	if (x->gd_n * 4 > VMDK_MAX_GD_BYTES || gd_sec > x->file_size / 512 ||
	    x->gd_n * 4 > x->file_size - gd_sec * 512) {
		img_seterr(im, err, errlen, "vmdk: grain directory invalid or beyond end of file");
		return -EINVAL;
	}
	x->gd = malloc(x->gd_n ? x->gd_n * 4 : 4);
	x->gt = malloc((size_t)x->gt_n * 4);
	if (!x->gd || !x->gt)
		return -ENOMEM;
	ret = ext_pread(im, x, x->gd, x->gd_n * 4, gd_sec * 512);
	if (ret)
		return ret;
	for (uint64_t i = 0; i < x->gd_n; i++)
		x->gd[i] = img_le32(&x->gd[i]);
	x->gt_sector = 0;
	*capacity = cap * 512;
	/* The embedded descriptor may name a parent: refuse rather than read wrong data. */
	uint64_t doff = img_le64(h + 28), dsz = img_le64(h + 36);
	if (doff && dsz && dsz <= VMDK_MAX_DESC / 512 && doff < x->file_size / 512) {
		char *d = calloc(1, dsz * 512 + 1);
		if (!d)
			return -ENOMEM;
		ret = ext_pread(im, x, d, dsz * 512, doff * 512);
		const char *p = ret ? NULL : strstr(d, "parentCID=");
		if (p && strncmp(p + 10, "ffffffff", 8)) {
			img_seterr(im, err, errlen, "vmdk: delta links (parent images) not supported");
			ret = -ENOTSUP;
		}
		free(d);
	}
	return ret;
}

/* Grain table entry of grain g (0: unallocated, or a zero grain: *zero), x->lock held. */
static int sparse_gte(struct img *im, struct vmdk_extent *x, uint64_t g, uint64_t *gte,
		      bool *zero)
{
	uint64_t gdi = g / x->gt_n;
	int ret;

	*gte = 0;
	*zero = false;
	if (gdi >= x->gd_n || !x->gd[gdi])
		return 0;
	uint64_t gts = x->gd[gdi];
	if (gts != x->gt_sector) {
		if (gts > x->file_size / 512 || (uint64_t)x->gt_n * 4 > x->file_size - gts * 512) {
			img_report(im, "grain table beyond end of file");
			return -EIO;
		}
		x->gt_sector = 0;
		ret = ext_pread(im, x, x->gt, (size_t)x->gt_n * 4, gts * 512);
		if (ret)
			return ret;
		x->gt_sector = gts;
	}
	*gte = img_le32(&x->gt[g % x->gt_n]);
	if (*gte == 1 && x->zero_gte) {
		*gte = 0;
		*zero = true;
	}
	if (*gte > x->file_size / 512) {
		img_report(im, "grain beyond end of file");
		return -EIO;
	}
	return 0;
}

static int sparse_read(struct img *im, struct vmdk_extent *x, uint8_t *buf, uint64_t off,
		       size_t len)
{
	int ret = 0;

	pthread_mutex_lock(&x->lock);
	while (len && !ret) {
		uint64_t g = off / x->grain, in = off % x->grain, gte;
		size_t n = (size_t)MIN((uint64_t)len, x->grain - in);
		bool zero;

		ret = sparse_gte(im, x, g, &gte, &zero);
		if (ret)
			break;
		if (gte == 0)
			memset(buf, 0, n);
		else
			ret = ext_pread(im, x, buf, n, gte * 512 + in);
		buf += n;
		off += n;
		len -= n;
	}
	pthread_mutex_unlock(&x->lock);
	return ret;
}

/* A run of grains from extent offset `in` (at most len bytes) of one kind: unallocated,
 * zero grains, or allocated and contiguous in the file. Its kind, length, first host byte. */
static int sparse_map(struct img *im, struct vmdk_extent *x, uint64_t in, uint64_t len,
		      struct img_extent *ext)
{
	uint64_t g = in / x->grain, end = in + len, gte, first, n = 0;
	bool zero0, zero;
	int ret;

	pthread_mutex_lock(&x->lock);
	ret = sparse_gte(im, x, g, &first, &zero0);
	while (!ret && (g + n + 1) * x->grain < end && n < 4096) {
		ret = sparse_gte(im, x, g + n + 1, &gte, &zero);
		if (ret || zero != zero0 ||
		    (first ? gte != first + (n + 1) * (x->grain / 512) : gte != 0))
			break;
		n++;
	}
	pthread_mutex_unlock(&x->lock);
	if (ret)
		return ret;
	ext->len = MIN(end, (g + n + 1) * x->grain) - in;
	/* An unallocated grain reads as zeroes: nothing below a vmdk without parents. */
	ext->kind = first ? IMG_EXT_DATA : zero0 ? IMG_EXT_ZERO : IMG_EXT_UNALLOCATED;
	ext->host_offset = first && x->fd == im->fd ? first * 512 + in % x->grain : 0;
	return 0;
}

static int add_extent(struct vmdk_state *s, struct vmdk_extent **out)
{
	struct vmdk_extent *v;

	if (s->n >= VMDK_MAX_EXTENTS)
		return -E2BIG;
	v = realloc(s->ext, (s->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	s->ext = v;
	*out = &v[s->n++];
	memset(*out, 0, sizeof(**out));
	(*out)->fd = -1;
	pthread_mutex_init(&(*out)->lock, NULL);
	return 0;
}

static int open_extent_file(struct img *im, struct vmdk_extent *x, const char *name, char *err,
			    size_t errlen)
{
	const char *slash = strrchr(im->path, '/');
	char path[4096];
	struct stat st;

	if (name[0] != '/' && slash)
		snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - im->path), im->path, name);
	else
		snprintf(path, sizeof(path), "%s", name);
	x->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (x->fd < 0) {
		img_seterr(im, err, errlen, "vmdk extent '%s': %s", path, strerror(errno));
		return -errno;
	}
	x->own_fd = true;
	if (fstat(x->fd, &st) < 0 || (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))) {
		img_seterr(im, err, errlen, "vmdk extent '%s': not a regular file", path);
		return -EINVAL;
	}
	x->file_size = (uint64_t)st.st_size;
	return 0;
}

/* One "RW 2048 FLAT \"file\" 0" line. */
static int parse_extent_line(struct img *im, struct vmdk_state *s, const char *line,
			     uint64_t *pos, char *err, size_t errlen)
{
	char access[16], type[16], name[1024] = "";
	unsigned long long sectors, offset = 0;
	struct vmdk_extent *x;
	uint64_t cap = 0;
	int ret;

	int n = sscanf(line, "%15s %llu %15s \"%1023[^\"]\" %llu", access, &sectors, type, name,
		       &offset);
	if (n < 3 || sectors > (1ull << 53)) {
		img_seterr(im, err, errlen, "vmdk: bad extent line");
		return -EINVAL;
	}
	if (!strcmp(access, "NOACCESS")) {
		img_seterr(im, err, errlen, "vmdk: NOACCESS extents not supported");
		return -ENOTSUP;
	}
	ret = add_extent(s, &x);
	if (ret)
		return ret;
	x->start = *pos;
	x->len = sectors * 512;
	if (!strcmp(type, "ZERO")) {
		x->type = VX_ZERO;
	} else if (!strcmp(type, "FLAT") || !strcmp(type, "VMFS")) {
		if (n < 4)
			return -EINVAL;
		x->type = VX_FLAT;
		if (offset > (1ull << 53))
			return -EINVAL;
		x->file_off = offset * 512;
		ret = open_extent_file(im, x, name, err, errlen);
	} else if (!strcmp(type, "SPARSE")) {
		if (n < 4)
			return -EINVAL;
		x->type = VX_SPARSE;
		ret = open_extent_file(im, x, name, err, errlen);
		if (!ret)
			ret = sparse_open(im, x, &cap, err, errlen);
	} else {
		img_seterr(im, err, errlen, "vmdk: extent type %s not supported", type);
		return -ENOTSUP;
	}
	*pos += x->len;
	return ret;
}

static int parse_descriptor(struct img *im, struct vmdk_state *s, char *d, char *err,
			    size_t errlen)
{
	uint64_t pos = 0;
	char *save = NULL;
	int ret = 0;

	for (char *line = strtok_r(d, "\n", &save); line && !ret; line = strtok_r(NULL, "\n", &save)) {
		while (*line == ' ' || *line == '\t')
			line++;
		if (!strncmp(line, "parentCID=", 10) && strncmp(line + 10, "ffffffff", 8)) {
			img_seterr(im, err, errlen, "vmdk: delta links (parent images) not supported");
			return -ENOTSUP;
		}
		if (!strncmp(line, "RW ", 3) || !strncmp(line, "RDONLY ", 7) ||
		    !strncmp(line, "NOACCESS ", 9))
			ret = parse_extent_line(im, s, line, &pos, err, errlen);
	}
	if (!ret && !s->n) {
		img_seterr(im, err, errlen, "vmdk: descriptor names no extents");
		ret = -EINVAL;
	}
	im->size = pos;
	return ret;
}

static void vmdk_close(struct img *im)
{
	struct vmdk_state *s = im->priv;

	if (!s)
		return;
	for (unsigned i = 0; i < s->n; i++) {
		if (s->ext[i].own_fd && s->ext[i].fd >= 0)
			close(s->ext[i].fd);
		free(s->ext[i].gd);
		free(s->ext[i].gt);
		pthread_mutex_destroy(&s->ext[i].lock);
	}
	free(s->ext);
	free(s);
	im->priv = NULL;
}

static int vmdk_open(struct img *im, char *err, size_t errlen)
{
	struct vmdk_state *s = calloc(1, sizeof(*s));
	uint64_t fsize;
	char magic[4];
	int ret;

	if (!s)
		return -ENOMEM;
	im->priv = s;
	ret = img_file_size(im, &fsize);
	if (!ret)
		ret = img_file_pread(im, magic, 4, 0);
	if (ret)
		goto fail;
	if (!memcmp(magic, VMDK_MAGIC, 4)) {
		struct vmdk_extent *x;
		ret = add_extent(s, &x);
		if (ret)
			goto fail;
		x->type = VX_SPARSE;
		x->fd = im->fd;
		x->file_size = fsize;
		ret = sparse_open(im, x, &x->len, err, errlen);
		im->size = x->len;
	} else {
		char *d;
		if (fsize > VMDK_MAX_DESC) {
			img_seterr(im, err, errlen, "not a vmdk image (no KDMV header, too big for a descriptor)");
			ret = -EINVAL;
			goto fail;
		}
		d = calloc(1, fsize + 1);
		if (!d) {
			ret = -ENOMEM;
			goto fail;
		}
		ret = img_file_pread(im, d, fsize, 0);
		if (!ret && !strstr(d, "# Disk DescriptorFile") && !strstr(d, "createType=")) {
			img_seterr(im, err, errlen, "not a vmdk image (bad magic)");
			ret = -EINVAL;
		}
		if (!ret)
			ret = parse_descriptor(im, s, d, err, errlen);
		free(d);
	}
	if (ret)
		goto fail;
	return 0;
fail:
	vmdk_close(im);
	return ret;
}

static int vmdk_preadv(struct img *im, const struct iovec *iov, int iovcnt, uint64_t off)
{
	struct vmdk_state *s = im->priv;
	size_t len = iov_total(iov, iovcnt), pos = 0;
	uint8_t tmp[16384];
	int ret = 0;

	for (unsigned i = 0; i < s->n && pos < len && !ret; i++) {
		struct vmdk_extent *x = &s->ext[i];
		while (!ret && pos < len && off + pos >= x->start && off + pos < x->start + x->len) {
			uint64_t in = off + pos - x->start;
			size_t n = (size_t)MIN(MIN((uint64_t)(len - pos), x->len - in), sizeof(tmp));
			if (x->type == VX_ZERO)
				memset(tmp, 0, n);
			else if (x->type == VX_FLAT)
				ret = ext_pread(im, x, tmp, n, x->file_off + in);
			else
				ret = sparse_read(im, x, tmp, in, n);
			if (!ret)
				iov_from_buf(iov, iovcnt, pos, tmp, n);
			pos += n;
		}
	}
	if (!ret && pos < len)
		iov_memset(iov, iovcnt, pos, 0, len - pos);
	return ret;
}

static int vmdk_rofs(struct img *im, const struct iovec *iov, int iovcnt, uint64_t off)
{
	(void)im, (void)iov, (void)iovcnt, (void)off;
	return -EROFS;
}

static int vmdk_discard(struct img *im, uint64_t off, uint64_t len)
{
	(void)im, (void)off, (void)len;
	return -EROFS;
}

static int vmdk_zeroes(struct img *im, uint64_t off, uint64_t len, bool unmap)
{
	(void)im, (void)off, (void)len, (void)unmap;
	return -EROFS;
}

static int vmdk_flush(struct img *im)
{
	(void)im;
	return 0;
}

static int vmdk_map(struct img *im, uint64_t off, uint64_t len, struct img_extent *ext)
{
	struct vmdk_state *s = im->priv;

	ext->offset = off;
	ext->len = len;
	ext->kind = IMG_EXT_ZERO; /* past every extent: reads as zeroes */
	ext->depth = 0;
	ext->host_offset = 0;
	for (unsigned i = 0; i < s->n; i++) {
		struct vmdk_extent *x = &s->ext[i];
		if (off < x->start || off - x->start >= x->len)
			continue;
		uint64_t in = off - x->start, n = MIN(len, x->len - in);
		ext->len = n;
		if (x->type == VX_ZERO)
			return 0;
		if (x->type == VX_SPARSE)
			return sparse_map(im, x, in, n, ext);
		ext->kind = IMG_EXT_DATA;
		ext->host_offset = x->fd == im->fd ? x->file_off + in : 0;
		return 0;
	}
	return 0;
}

const struct img_ops vmdk_ops = {
	.name = "vmdk",
	.open = vmdk_open,
	.close = vmdk_close,
	.preadv = vmdk_preadv,
	.pwritev = vmdk_rofs,
	.discard = vmdk_discard,
	.write_zeroes = vmdk_zeroes,
	.flush = vmdk_flush,
	.map = vmdk_map,
};
