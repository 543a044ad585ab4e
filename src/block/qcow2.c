/* SPDX-License-Identifier: MIT */
/*
 * qcow2: header parsing and validation, open/close, the img_ops table.
 * Every offset and size read from the file is checked before use: tables must be
 * aligned, inside the file, and must not overlap each other; anything unknown that
 * changes the meaning of the data (incompatible features) is refused.
 */
#include "block/qcow2_int.h"
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QCOW2_L2_CACHE_BYTES (8u << 20)
#define QCOW2_RB_CACHE_BYTES (1u << 20)

bool qcow2_is_qcow2(const struct img *im)
{
	return im && im->ops == &qcow2_ops && im->priv;
}

void qcow2_set_broken(struct qcow2_state *s, const char *why)
{
	uint8_t be[8];

	if (s->broken)
		return;
	s->broken = true;
	if (!(s->im->flags & IMG_O_QUIET))
		verr("qcow2 '%s': %s; no further writes to this image", s->im->path, why);
	if (s->im->readonly || s->version < 3)
		return;
	/* Like other tools: mark it, so the next writable open asks for a check first. */
	s->incompat |= QCOW2_INCOMPAT_CORRUPT;
	img_put_be64(s->hdr + 72, s->incompat);
	img_put_be64(be, s->incompat);
	if (img_file_pwrite(s->im, be, 8, 72) || img_file_sync(s->im))
		verr("qcow2 '%s': could not mark the image corrupt", s->im->path);
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return alen && blen && a < b + blen && b < a + alen;
}

bool qcow2_overlaps_meta(const struct qcow2_state *s, uint64_t off, uint64_t len)
{
	uint64_t cs = s->cluster_size;

	if (ranges_overlap(off, len, 0, cs))
		return true;
	if (ranges_overlap(off, len, s->l1_offset, ALIGN_UP((uint64_t)s->l1_size * 8, cs)))
		return true;
	if (ranges_overlap(off, len, s->reftable_offset, ALIGN_UP(s->reftable_size * 8, cs)))
		return true;
	if (ranges_overlap(off, len, s->snap_offset, ALIGN_UP(s->snap_bytes, cs)))
		return true;
	for (unsigned i = 0; i < s->nb_snaps; i++)
		if (ranges_overlap(off, len, s->snaps[i].l1_offset,
				   ALIGN_UP((uint64_t)s->snaps[i].l1_size * 8, cs)))
			return true;
	for (uint64_t c = ALIGN_DOWN(off, cs); c < off + len; c += cs)
		if (qcow2_is_refblock(s, c))
			return true;
	return false;
}

int qcow2_header_update(struct qcow2_state *s)
{
	uint8_t *h = s->hdr;
	int ret;

	img_put_be64(h + 24, s->im->size);
	img_put_be32(h + 36, s->l1_size);
	img_put_be64(h + 40, s->l1_offset);
	img_put_be64(h + 48, s->reftable_offset);
	img_put_be32(h + 56, (uint32_t)(s->reftable_size * 8 / s->cluster_size));
	img_put_be32(h + 60, s->nb_snaps);
	img_put_be64(h + 64, s->snap_offset);
	if (s->version >= 3) {
		img_put_be64(h + 72, s->incompat);
		img_put_be64(h + 80, s->compat);
		img_put_be64(h + 88, s->autoclear);
	}
	ret = img_file_sync(s->im); /* everything the new header points to is durable first */
	if (!ret)
		ret = img_file_pwrite(s->im, h, s->hdr_len, 0);
	if (!ret)
		ret = img_file_sync(s->im);
	return ret;
}

/* "bit N" or the name from the image's feature table. */
static void qcow2_feature_name(const uint8_t *table, uint32_t tlen, unsigned type, unsigned bit,
			       char *out, size_t outlen)
{
	for (uint32_t i = 0; table && i + 48 <= tlen; i += 48) {
		if (table[i] == type && table[i + 1] == bit) {
			char name[47];
			memcpy(name, table + i + 2, 46);
			name[46] = 0;
			for (char *p = name; *p; p++)
				if (*p < 0x20 || *p > 0x7e)
					*p = '?';
			snprintf(out, outlen, "'%s' (bit %u)", name, bit);
			return;
		}
	}
	snprintf(out, outlen, "bit %u", bit);
}

static int qcow2_dup_string(const uint8_t *p, size_t len, char **out)
{
	if (memchr(p, 0, len))
		return -EINVAL;
	*out = malloc(len + 1);
	if (!*out)
		return -ENOMEM;
	memcpy(*out, p, len);
	(*out)[len] = 0;
	return 0;
}

/* Header extensions live between the fixed header and the backing file name. */
static int qcow2_parse_extensions(struct qcow2_state *s, const uint8_t *c0, uint64_t c0len,
				  uint64_t backing_off, const uint8_t **ftable, uint32_t *ftlen,
				  char *err, size_t errlen)
{
	uint64_t pos = s->version >= 3 ? s->hdr_len : QCOW2_V2_HDR_LEN;
	uint64_t end = (backing_off && backing_off > pos) ? MIN(backing_off, c0len) : c0len;
	struct img *im = s->im;

	while (pos + 8 <= end) {
		uint32_t type = img_be32(c0 + pos), len = img_be32(c0 + pos + 4);
		pos += 8;
		if (type == QCOW2_EXT_END)
			return 0;
		if (len > end - pos) {
			img_seterr(im, err, errlen, "header extension 0x%x overruns its area", type);
			return -EINVAL;
		}
		if (type == QCOW2_EXT_BACKING_FMT) {
			free(s->backing_fmt);
			s->backing_fmt = NULL;
			if (len == 0 || len > 64 || qcow2_dup_string(c0 + pos, len, &s->backing_fmt)) {
				img_seterr(im, err, errlen, "invalid backing format extension");
				return -EINVAL;
			}
		} else if (type == QCOW2_EXT_FEATURES) {
			*ftable = c0 + pos;
			*ftlen = len;
		}
		/* Others (bitmaps, crypto header, data file name) are not used and left alone. */
		pos += ALIGN_UP((uint64_t)len, 8);
	}
	return 0;
}

static int qcow2_check_features(struct qcow2_state *s, const uint8_t *ft, uint32_t ftlen,
				char *err, size_t errlen)
{
	uint64_t unknown = s->incompat & ~QCOW2_INCOMPAT_KNOWN;
	char name[80];

	if (unknown) {
		unsigned bit = (unsigned)__builtin_ctzll(unknown);
		if (bit == 2)
			snprintf(name, sizeof(name), "external data file");
		else if (bit == 4)
			snprintf(name, sizeof(name), "extended L2 entries (subclusters)");
		else
			qcow2_feature_name(ft, ftlen, 0, bit, name, sizeof(name));
		img_seterr(s->im, err, errlen, "unsupported incompatible feature %s", name);
		return -ENOTSUP;
	}
	return 0;
}

static int qcow2_parse_header(struct qcow2_state *s, const uint8_t *h, uint64_t c0len,
			      uint64_t fsize, char *err, size_t errlen)
{
	struct img *im = s->im;
	uint64_t cs, l2e, needed, rt_clusters, backing_off, size;
	uint32_t backing_len;

	if (c0len < QCOW2_V2_HDR_LEN || img_be32(h) != QCOW2_MAGIC) {
		img_seterr(im, err, errlen, "not a qcow2 image (bad magic)");
		return -EINVAL;
	}
	s->version = img_be32(h + 4);
	if (s->version != 2 && s->version != 3) {
		img_seterr(im, err, errlen, "unsupported qcow2 version %u", s->version);
		return -ENOTSUP;
	}
	s->cluster_bits = img_be32(h + 20);
	if (s->cluster_bits < 9 || s->cluster_bits > 21) {
		img_seterr(im, err, errlen, "cluster_bits %u out of range 9..21", s->cluster_bits);
		return -EINVAL;
	}
	cs = s->cluster_size = 1ull << s->cluster_bits;
	s->l2_bits = s->cluster_bits - 3;
	if (s->version == 2) {
		s->hdr_len = QCOW2_V2_HDR_LEN;
		s->refcount_order = 4;
	} else {
		if (c0len < QCOW2_V3_HDR_LEN) {
			img_seterr(im, err, errlen, "file too short for a v3 header");
			return -EINVAL;
		}
		s->hdr_len = img_be32(h + 100);
		s->refcount_order = img_be32(h + 96);
		s->incompat = img_be64(h + 72);
		s->compat = img_be64(h + 80);
		s->autoclear = img_be64(h + 88);
		if (s->hdr_len < QCOW2_V3_HDR_LEN || s->hdr_len % 8 || s->hdr_len > cs ||
		    s->hdr_len > c0len) {
			img_seterr(im, err, errlen, "invalid header length %u", s->hdr_len);
			return -EINVAL;
		}
		if (s->refcount_order > 6) {
			img_seterr(im, err, errlen, "refcount_order %u out of range 0..6",
				   s->refcount_order);
			return -EINVAL;
		}
		if (s->hdr_len > 104)
			s->compression = h[104];
		if (s->compression > QCOW2_COMPRESSION_ZSTD ||
		    (s->compression && !(s->incompat & QCOW2_INCOMPAT_COMPRESSION))) {
			img_seterr(im, err, errlen, "unknown or undeclared compression type %u",
				   s->compression);
			return -ENOTSUP;
		}
	}
	if (img_be32(h + 32) != 0) {
		img_seterr(im, err, errlen, "encrypted images are not supported");
		return -ENOTSUP;
	}
	size = img_be64(h + 24);
	if (size > (1ull << 62)) {
		img_seterr(im, err, errlen, "virtual size %llu too large",
			   (unsigned long long)size);
		return -EFBIG;
	}
	s->l1_size = img_be32(h + 36);
	s->l1_offset = img_be64(h + 40);
	l2e = cs / 8;
	needed = size / (cs * l2e) + (size % (cs * l2e) != 0);
	if ((uint64_t)s->l1_size * 8 > QCOW2_MAX_L1_BYTES || needed > QCOW2_MAX_L1_BYTES / 8) {
		img_seterr(im, err, errlen, "L1 table too large (%u entries, %llu needed)",
			   s->l1_size, (unsigned long long)needed);
		return -EFBIG;
	}
	if (s->l1_size < needed) {
		img_seterr(im, err, errlen, "L1 table too small for the virtual size");
		return -EINVAL;
	}
	if (s->l1_size && (s->l1_offset % cs || s->l1_offset == 0 ||
			   s->l1_offset > fsize || (uint64_t)s->l1_size * 8 > fsize - s->l1_offset)) {
		img_seterr(im, err, errlen, "L1 table offset 0x%llx invalid or beyond end of file",
			   (unsigned long long)s->l1_offset);
		return -EINVAL;
	}
	s->reftable_offset = img_be64(h + 48);
	rt_clusters = img_be32(h + 56);
	if (s->reftable_offset == 0) {
		img_seterr(im, err, errlen, "refcount table offset is 0");
		return -EINVAL;
	}
	if (rt_clusters == 0 || rt_clusters * cs > QCOW2_MAX_REFTABLE_BYTES ||
	    s->reftable_offset % cs || s->reftable_offset > fsize ||
	    rt_clusters * cs > fsize - s->reftable_offset) {
		img_seterr(im, err, errlen,
			   "refcount table (0x%llx, %llu clusters) invalid or beyond end of file",
			   (unsigned long long)s->reftable_offset,
			   (unsigned long long)rt_clusters);
		return -EINVAL;
	}
	s->reftable_size = rt_clusters * cs / 8;
	s->nb_snaps = img_be32(h + 60);
	s->snap_offset = img_be64(h + 64);
	if (s->nb_snaps > QCOW2_MAX_SNAPSHOTS ||
	    (s->nb_snaps && (s->snap_offset % cs || s->snap_offset == 0 || s->snap_offset >= fsize))) {
		img_seterr(im, err, errlen, "snapshot table (%u at 0x%llx) invalid", s->nb_snaps,
			   (unsigned long long)s->snap_offset);
		return -EINVAL;
	}
	if (!s->nb_snaps)
		s->snap_offset = 0;
	backing_off = img_be64(h + 8);
	backing_len = img_be32(h + 16);
	if (backing_off) {
		if (backing_len == 0 || backing_len > QCOW2_MAX_BACKING_NAME ||
		    backing_off > c0len || backing_len > c0len - backing_off ||
		    backing_off < (s->version >= 3 ? s->hdr_len : QCOW2_V2_HDR_LEN)) {
			img_seterr(im, err, errlen, "backing file name out of the header cluster");
			return -EINVAL;
		}
		if (qcow2_dup_string(h + backing_off, backing_len, &s->backing_file)) {
			img_seterr(im, err, errlen, "invalid backing file name");
			return -EINVAL;
		}
	}
	im->size = ALIGN_DOWN(size, 512); /* whole sectors, as every other reader sees it */
	return 0;
}

/* Pairwise overlap of the fixed tables. */
static int qcow2_check_layout(struct qcow2_state *s, char *err, size_t errlen)
{
	uint64_t cs = s->cluster_size;
	struct {
		const char *name;
		uint64_t off, len;
	} t[] = {
		{ "header", 0, cs },
		{ "L1 table", s->l1_offset, ALIGN_UP((uint64_t)s->l1_size * 8, cs) },
		{ "refcount table", s->reftable_offset, s->reftable_size * 8 },
		{ "snapshot table", s->snap_offset, ALIGN_UP(s->snap_bytes, cs) },
	};
	for (size_t i = 0; i < ARRAY_SIZE(t); i++)
		for (size_t j = i + 1; j < ARRAY_SIZE(t); j++)
			if (ranges_overlap(t[i].off, t[i].len, t[j].off, t[j].len)) {
				img_seterr(s->im, err, errlen, "overlapping metadata: %s overlaps %s",
					   t[j].name, t[i].name);
				return -EINVAL;
			}
	for (unsigned k = 0; k < s->nb_snaps; k++) {
		const struct qcow2_snapshot *sn = &s->snaps[k];
		uint64_t len = ALIGN_UP((uint64_t)sn->l1_size * 8, cs);
		for (size_t i = 0; i < ARRAY_SIZE(t); i++)
			if (ranges_overlap(sn->l1_offset, len, t[i].off, t[i].len)) {
				img_seterr(s->im, err, errlen,
					   "overlapping metadata: L1 table of snapshot '%s' overlaps %s",
					   sn->id, t[i].name);
				return -EINVAL;
			}
	}
	return 0;
}

static int qcow2_load_l1(struct qcow2_state *s, char *err, size_t errlen)
{
	int ret;

	if (!s->l1_size)
		return 0;
	ret = qcow2_read_l1(s, s->l1_offset, s->l1_size, &s->l1);
	if (ret) {
		img_seterr(s->im, err, errlen, "cannot read L1 table: %s", strerror(-ret));
		return ret;
	}
	for (uint32_t i = 0; i < s->l1_size; i++) {
		uint64_t off = s->l1[i] & QCOW2_OFFSET_MASK;
		if ((s->l1[i] & QCOW2_L1_RESERVED) || off % s->cluster_size) {
			img_seterr(s->im, err, errlen, "L1 entry %u (0x%llx) is invalid", i,
				   (unsigned long long)s->l1[i]);
			return -EINVAL;
		}
		if (off && qcow2_overlaps_meta(s, off, s->cluster_size)) {
			img_seterr(s->im, err, errlen, "L2 table 0x%llx overlaps other metadata",
				   (unsigned long long)off);
			return -EINVAL;
		}
	}
	return 0;
}

static int qcow2_open_backing(struct qcow2_state *s, char *err, size_t errlen)
{
	struct img *im = s->im;
	const char *fmt = s->backing_fmt ? s->backing_fmt : "raw";
	char sub[512] = "";
	int ret;

	if (!s->backing_file)
		return 0;
	if (im->flags & IMG_O_NO_BACKING) { /* header facts only (img info) */
		if (im->readonly)
			return 0;
		img_seterr(im, err, errlen, "opening without the backing file needs read-only");
		return -EINVAL;
	}
	ret = img_open_backing(im, s->backing_file, fmt, &im->backing, sub, sizeof(sub));
	/* Name the image whose backing file failed once, not every image above it. */
	if (ret && strstr(sub, ": backing file '") && err && errlen)
		snprintf(err, errlen, "%s", sub);
	else if (ret)
		img_seterr(im, err, errlen, "backing file '%s': %s", s->backing_file, sub);
	return ret;
}

static unsigned clampu(uint64_t v, unsigned lo, unsigned hi)
{
	return v < lo ? lo : v > hi ? hi : (unsigned)v;
}

/* Writable open of an image with the dirty or corrupt bit. */
static int qcow2_open_repair(struct qcow2_state *s, char *err, size_t errlen)
{
	struct qcow2_check_result r;
	int ret;

	if (s->im->flags & IMG_O_REPAIR)
		return 0; /* the caller runs qcow2_check(repair), which clears the bits */
	if (s->incompat & QCOW2_INCOMPAT_CORRUPT) {
		img_seterr(s->im, err, errlen,
			   "image is marked corrupt; open read-only or run 'vireo img check -r'");
		return -EUCLEAN;
	}
	vinfo("qcow2 '%s': image was not closed cleanly, checking refcounts", s->im->path);
	ret = qcow2_check_locked(s, QCOW2_REPAIR_ALL, &r);
	if (!ret && (s->incompat & QCOW2_INCOMPAT_DIRTY))
		ret = -EUCLEAN; /* the repair could not make it consistent */
	if (ret)
		img_seterr(s->im, err, errlen,
			   "repair of the dirty image failed (%s); open it read-only",
			   strerror(-ret));
	return ret;
}

static void qcow2_free_state(struct qcow2_state *s)
{
	qcow2_snapshot_free(s);
	qcow2_refcount_fini(s);
	qcow2_cache_fini(&s->l2c);
	qcow2_cache_fini(&s->rbc);
	qcow2_compress_fini(s);
	pthread_rwlock_destroy(&s->io_lock);
	pthread_mutex_destroy(&s->meta_lock);
	pthread_mutex_destroy(&s->comp_lock);
	free(s->cow);
	free(s->l1);
	free(s->hdr);
	free(s->backing_file);
	free(s->backing_fmt);
	free(s);
}

static int qcow2_open(struct img *im, char *err, size_t errlen)
{
	struct qcow2_state *s = calloc(1, sizeof(*s));
	const uint8_t *ftable = NULL;
	uint8_t *c0 = NULL, first[QCOW2_V3_HDR_LEN + 8];
	uint64_t fsize, c0len;
	uint32_t ftlen = 0;
	int ret;

	if (!s)
		return -ENOMEM;
	s->im = im;
	im->priv = s;
	{ /* allocating writes must not starve behind a steady stream of reads */
		pthread_rwlockattr_t a;
		pthread_rwlockattr_init(&a);
		pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&s->io_lock, &a);
		pthread_rwlockattr_destroy(&a);
	}
	pthread_mutex_init(&s->meta_lock, NULL);
	pthread_mutex_init(&s->comp_lock, NULL);
	ret = img_file_size(im, &fsize);
	if (ret)
		goto fail;
	ret = img_file_pread(im, first, sizeof(first), 0);
	if (ret)
		goto fail;
	if (fsize < QCOW2_V2_HDR_LEN || img_be32(first) != QCOW2_MAGIC) {
		img_seterr(im, err, errlen, "not a qcow2 image (bad magic)");
		ret = -EINVAL;
		goto fail;
	}
	{
		uint32_t cb = img_be32(first + 20);
		if (cb < 9 || cb > 21) {
			img_seterr(im, err, errlen, "cluster_bits %u out of range 9..21", cb);
			ret = -EINVAL;
			goto fail;
		}
		c0len = MIN(fsize, 1ull << cb);
	}
	if (posix_memalign((void **)&c0, 4096, 1u << 21)) {
		ret = -ENOMEM;
		goto fail;
	}
	memset(c0, 0, c0len);
	ret = img_file_pread(im, c0, c0len, 0);
	if (ret)
		goto fail;
	ret = qcow2_parse_header(s, c0, c0len, fsize, err, errlen);
	if (ret)
		goto fail;
	s->hdr = malloc(s->hdr_len);
	if (!s->hdr) {
		ret = -ENOMEM;
		goto fail;
	}
	memcpy(s->hdr, c0, s->hdr_len);
	ret = qcow2_parse_extensions(s, c0, c0len, img_be64(c0 + 8), &ftable, &ftlen, err,
				     errlen);
	if (!ret)
		ret = qcow2_check_features(s, ftable, ftlen, err, errlen);
	if (ret)
		goto fail;
	ret = qcow2_snapshot_load(s, fsize, err, errlen);
	if (!ret)
		ret = qcow2_check_layout(s, err, errlen);
	if (!ret)
		ret = qcow2_refcount_init(s, err, errlen);
	if (!ret)
		ret = qcow2_load_l1(s, err, errlen);
	if (ret)
		goto fail;
	ret = qcow2_cache_init(&s->l2c,
			       clampu(MIN(QCOW2_L2_CACHE_BYTES / s->cluster_size,
					  (uint64_t)s->l1_size + 4),
				      8, 256),
			       s->cluster_size, true);
	if (!ret)
		ret = qcow2_cache_init(&s->rbc, clampu(QCOW2_RB_CACHE_BYTES / s->cluster_size, 4, 64),
				       s->cluster_size, false);
	if (!ret && posix_memalign((void **)&s->cow, 4096, 2 * s->cluster_size))
		ret = -ENOMEM;
	if (ret)
		goto fail;
	ret = qcow2_open_backing(s, err, errlen);
	if (ret)
		goto fail;
	if (!im->readonly) {
		if (s->incompat & (QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT)) {
			ret = qcow2_open_repair(s, err, errlen);
			if (ret)
				goto fail;
		}
		if (s->autoclear) { /* e.g. bitmaps we do not keep up to date */
			s->autoclear = 0;
			ret = qcow2_header_update(s);
			if (ret)
				goto fail;
		}
	} else if (s->incompat & (QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT)) {
		vwarn("qcow2 '%s': image is marked %s; reading it anyway (read-only)", im->path,
		      (s->incompat & QCOW2_INCOMPAT_CORRUPT) ? "corrupt" : "dirty");
	}
	free(c0);
	return 0;
fail:
	if (err && errlen && !err[0])
		img_seterr(im, err, errlen, "%s", strerror(-ret));
	free(c0);
	im->priv = NULL;
	qcow2_free_state(s);
	return ret;
}

static void qcow2_close(struct img *im)
{
	struct qcow2_state *s = im->priv;

	if (!s)
		return;
	if (!im->readonly && !s->broken) {
		int ret = qcow2_meta_flush(s);
		if (ret)
			verr("qcow2 '%s': writing metadata on close failed: %s", im->path,
			     strerror(-ret));
	}
	qcow2_free_state(s);
	im->priv = NULL;
}

static int qcow2_flush(struct img *im)
{
	struct qcow2_state *s = im->priv;
	int ret;

	pthread_rwlock_wrlock(&s->io_lock);
	ret = s->broken ? -EIO : qcow2_meta_flush(s);
	pthread_rwlock_unlock(&s->io_lock);
	return ret;
}

int qcow2_get_info(struct img *im, struct qcow2_info *info)
{
	struct qcow2_state *s;

	if (!qcow2_is_qcow2(im) || !info)
		return -EINVAL;
	s = im->priv;
	memset(info, 0, sizeof(*info));
	info->version = s->version;
	info->cluster_size = (unsigned)s->cluster_size;
	info->refcount_bits = 1u << s->refcount_order;
	info->compression = s->compression == QCOW2_COMPRESSION_ZSTD ? "zstd" : "zlib";
	info->backing_file = s->backing_file;
	info->backing_fmt = s->backing_fmt;
	info->nb_snapshots = s->nb_snaps;
	info->dirty = s->incompat & QCOW2_INCOMPAT_DIRTY;
	info->corrupt = s->incompat & QCOW2_INCOMPAT_CORRUPT;
	info->lazy_refcounts = s->compat & QCOW2_COMPAT_LAZY_REFCOUNTS;
	return 0;
}

const struct img_ops qcow2_ops = {
	.name = "qcow2",
	.open = qcow2_open,
	.close = qcow2_close,
	.preadv = qcow2_do_preadv,
	.pwritev = qcow2_do_pwritev,
	.discard = qcow2_do_discard,
	.write_zeroes = qcow2_do_write_zeroes,
	.flush = qcow2_flush,
	.map = qcow2_do_map,
};
