/* SPDX-License-Identifier: MIT */
/*
 * qcow2 guest-to-host mapping: L2 entries (validated when a table is loaded), the read
 * path (coalescing contiguous host clusters into one vectored read), map, and the
 * COPIED-flag fixup used after snapshot changes.
 */
#include "block/qcow2_int.h"
#include "common/log.h"

#include <errno.h>
#include <string.h>

enum qcow2_ctype qcow2_l2e_type(const struct qcow2_state *s, uint64_t l2e)
{
	if (l2e & QCOW2_OFLAG_COMPRESSED)
		return QCOW2_COMPRESSED;
	if (s->version >= 3 && (l2e & QCOW2_OFLAG_ZERO))
		return QCOW2_ZERO;
	if (l2e & QCOW2_OFFSET_MASK)
		return QCOW2_NORMAL;
	return QCOW2_UNALLOC;
}

void qcow2_compressed_range(const struct qcow2_state *s, uint64_t l2e, uint64_t *off,
			    uint64_t *len)
{
	unsigned shift = 62 - (s->cluster_bits - 8);
	uint64_t nsec = ((l2e >> shift) & ((1ull << (s->cluster_bits - 8)) - 1)) + 1;

	*off = l2e & ((1ull << shift) - 1);
	*len = nsec * 512 - (*off & 511);
}

static const char *l2e_problem(struct qcow2_state *s, uint64_t e, uint64_t l2_off,
			       uint64_t fsize)
{
	uint64_t cs = s->cluster_size, off, len;

	if (e & QCOW2_OFLAG_COMPRESSED) {
		if (e & QCOW2_OFLAG_COPIED)
			return "compressed cluster with COPIED flag";
		qcow2_compressed_range(s, e, &off, &len);
		if (off >= fsize)
			return "compressed data beyond end of file";
		if (off < cs || qcow2_overlaps_meta(s, off, len) ||
		    (off < l2_off + cs && l2_off < off + len))
			return "compressed data overlaps metadata";
		return NULL;
	}
	if (e & QCOW2_L2_RESERVED || (s->version < 3 && (e & QCOW2_OFLAG_ZERO)))
		return "reserved bits set";
	off = e & QCOW2_OFFSET_MASK;
	if (!off) /* a stray COPIED flag without an offset is harmless: unallocated (as qemu) */
		return NULL;
	if (off % cs)
		return "unaligned cluster offset";
	if (off >= fsize)
		return "cluster offset beyond end of file";
	if (off == l2_off || qcow2_overlaps_meta(s, off, cs))
		return "cluster offset points into metadata";
	return NULL;
}

int qcow2_l2_validate(struct qcow2_state *s, const uint64_t *l2, uint64_t l2_off, uint64_t fsize)
{
	const uint8_t *raw = (const uint8_t *)l2;
	uint64_t n = s->cluster_size / 8;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t e = img_be64(raw + 8 * i);
		const char *why;
		if (!e)
			continue;
		why = l2e_problem(s, e, l2_off, fsize);
		if (why) {
			img_report(s->im, "L2 table 0x%llx entry %llu (0x%llx): %s",
				   (unsigned long long)l2_off, (unsigned long long)i,
				   (unsigned long long)e, why);
			if (!s->im->readonly)
				qcow2_set_broken(s, "corrupt L2 table");
			return -EIO;
		}
	}
	return 0;
}

int qcow2_l2_entries(struct qcow2_state *s, const uint64_t *l1, uint32_t l1_size, uint64_t gcl,
		     uint64_t n, uint64_t *out, uint64_t *got)
{
	uint64_t per = 1ull << s->l2_bits, l1i = gcl >> s->l2_bits, in = gcl & (per - 1);
	uint64_t l2off;
	unsigned idx;
	int ret;

	n = MIN(n, per - in);
	*got = n;
	l2off = l1i < l1_size ? l1[l1i] & QCOW2_OFFSET_MASK : 0;
	if (!l2off) {
		memset(out, 0, n * sizeof(*out));
		return 0;
	}
	ret = qcow2_cache_get(s, &s->l2c, l2off, true, &idx);
	if (ret)
		return ret;
	const uint8_t *raw = qcow2_cache_data(&s->l2c, idx);
	for (uint64_t i = 0; i < n; i++)
		out[i] = img_be64(raw + 8 * (in + i));
	qcow2_cache_put(&s->l2c, idx);
	return 0;
}

/* Read [off, off+len) of the backing file into iov at iov_off; zeroes past its end. */
static int read_backing(struct qcow2_state *s, const struct iovec *iov, int iovcnt,
			size_t iov_off, uint64_t off, size_t len)
{
	struct img *b = s->im->backing;
	struct iovec sl[QCOW2_IOV_MAX];
	size_t blen = 0, got;
	int n, ret;

	if (!b && s->backing_file) { /* opened with IMG_O_NO_BACKING */
		img_report(s->im, "backing file '%s' not opened", s->backing_file);
		return -ENOLINK;
	}
	if (b && off < b->size)
		blen = (size_t)MIN((uint64_t)len, b->size - off);
	if (blen) {
		n = iov_slice(sl, QCOW2_IOV_MAX, iov, iovcnt, iov_off, blen, &got);
		ret = img_preadv(b, sl, n, off);
		if (ret)
			return ret;
	}
	iov_memset(iov, iovcnt, iov_off + blen, 0, len - blen);
	return 0;
}

static int read_compressed(struct qcow2_state *s, uint64_t l2e, const struct iovec *iov,
			   int iovcnt, size_t iov_off, size_t in_cluster, size_t len)
{
	uint8_t *data;
	int ret;

	pthread_mutex_lock(&s->comp_lock);
	ret = qcow2_decompress_cluster(s, l2e, &data);
	if (!ret)
		iov_from_buf(iov, iovcnt, iov_off, data + in_cluster, len);
	pthread_mutex_unlock(&s->comp_lock);
	return ret;
}

int qcow2_read_cluster_old(struct qcow2_state *s, uint64_t gcl, uint64_t l2e, uint8_t *buf)
{
	uint64_t cs = s->cluster_size;
	struct iovec v = { buf, cs };

	switch (qcow2_l2e_type(s, l2e)) {
	case QCOW2_NORMAL:
		return img_file_pread(s->im, buf, cs, l2e & QCOW2_OFFSET_MASK);
	case QCOW2_COMPRESSED:
		return read_compressed(s, l2e, &v, 1, 0, 0, cs);
	case QCOW2_ZERO:
		memset(buf, 0, cs);
		return 0;
	default:
		return read_backing(s, &v, 1, 0, gcl * cs, cs);
	}
}

int qcow2_read_chain(struct qcow2_state *s, const uint64_t *l1, uint32_t l1_size,
		     const struct iovec *iov, int iovcnt, uint64_t off, size_t len)
{
	uint64_t cs = s->cluster_size, e[64];
	struct iovec sl[QCOW2_IOV_MAX];
	size_t pos = 0;
	int ret = 0;

	while (pos < len && !ret) {
		uint64_t cur = off + pos, gcl = cur >> s->cluster_bits, n, got;
		uint64_t last = (off + len - 1) >> s->cluster_bits;

		n = MIN(last - gcl + 1, (uint64_t)ARRAY_SIZE(e));
		pthread_mutex_lock(&s->meta_lock);
		ret = qcow2_l2_entries(s, l1, l1_size, gcl, n, e, &got);
		pthread_mutex_unlock(&s->meta_lock);
		if (ret)
			break;
		for (uint64_t i = 0; i < got && pos < len && !ret;) {
			enum qcow2_ctype t = qcow2_l2e_type(s, e[i]);
			uint64_t j = i + 1, end, host = e[i] & QCOW2_OFFSET_MASK;
			size_t rlen, cov;
			int cnt;

			if (t != QCOW2_COMPRESSED)
				while (j < got && qcow2_l2e_type(s, e[j]) == t &&
				       (t != QCOW2_NORMAL ||
					(e[j] & QCOW2_OFFSET_MASK) == host + (j - i) * cs))
					j++;
			end = MIN(off + len, (gcl + j) << s->cluster_bits);
			rlen = (size_t)(end - cur);
			switch (t) {
			case QCOW2_NORMAL:
				cnt = iov_slice(sl, QCOW2_IOV_MAX, iov, iovcnt, pos, rlen, &cov);
				ret = img_file_preadv(s->im, sl, cnt, host + (cur & (cs - 1)));
				break;
			case QCOW2_COMPRESSED:
				ret = read_compressed(s, e[i], iov, iovcnt, pos,
						      (size_t)(cur & (cs - 1)), rlen);
				break;
			case QCOW2_ZERO:
				iov_memset(iov, iovcnt, pos, 0, rlen);
				break;
			default:
				ret = read_backing(s, iov, iovcnt, pos, cur, rlen);
				break;
			}
			pos += rlen;
			cur = end;
			i = j;
		}
	}
	return ret;
}

int qcow2_do_preadv(struct img *im, const struct iovec *iov, int iovcnt, uint64_t off)
{
	struct qcow2_state *s = im->priv;
	int ret = 0;

	while (iovcnt > 0 && !ret) {
		int cnt = MIN(iovcnt, QCOW2_IOV_MAX);
		size_t len = iov_total(iov, cnt);

		pthread_rwlock_rdlock(&s->io_lock);
		ret = qcow2_read_chain(s, s->l1, s->l1_size, iov, cnt, off, len);
		pthread_rwlock_unlock(&s->io_lock);
		iov += cnt;
		iovcnt -= cnt;
		off += len;
	}
	return ret;
}

int qcow2_do_map(struct img *im, uint64_t off, uint64_t len, struct img_extent *ext)
{
	struct qcow2_state *s = im->priv;
	uint64_t cs = s->cluster_size, gcl = off >> s->cluster_bits, e[64], got, j = 1, host;
	uint64_t last = (off + len - 1) >> s->cluster_bits;
	enum qcow2_ctype t;
	int ret;

	pthread_rwlock_rdlock(&s->io_lock);
	pthread_mutex_lock(&s->meta_lock);
	ret = qcow2_l2_entries(s, s->l1, s->l1_size, gcl, MIN(last - gcl + 1, 64), e, &got);
	pthread_mutex_unlock(&s->meta_lock);
	if (ret)
		goto out;
	t = qcow2_l2e_type(s, e[0]);
	host = e[0] & QCOW2_OFFSET_MASK;
	if (t != QCOW2_COMPRESSED)
		while (j < got && qcow2_l2e_type(s, e[j]) == t &&
		       (t != QCOW2_NORMAL || (e[j] & QCOW2_OFFSET_MASK) == host + j * cs))
			j++;
	ext->offset = off;
	ext->len = MIN(off + len, (gcl + j) << s->cluster_bits) - off;
	ext->depth = 0;
	switch (t) {
	case QCOW2_NORMAL:
		ext->kind = IMG_EXT_DATA;
		ext->host_offset = host + (off & (cs - 1));
		break;
	case QCOW2_COMPRESSED:
		ext->kind = IMG_EXT_DATA;
		break;
	case QCOW2_ZERO:
		ext->kind = IMG_EXT_ZERO;
		break;
	default:
		if (im->backing && off < im->backing->size) {
			uint64_t l = MIN(ext->len, im->backing->size - off);
			ret = img_map(im->backing, off, l, ext);
			ext->depth++;
		} else {
			ext->kind = IMG_EXT_UNALLOCATED; /* nothing in the chain: reads as zeroes */
		}
		break;
	}
out:
	pthread_rwlock_unlock(&s->io_lock);
	return ret;
}

static void set_flag(uint64_t *e, bool on, bool *changed)
{
	uint64_t n = on ? (*e | QCOW2_OFLAG_COPIED) : (*e & ~QCOW2_OFLAG_COPIED);
	if (n != *e) {
		*e = n;
		*changed = true;
	}
}

int qcow2_fix_copied(struct qcow2_state *s)
{
	uint64_t rc, per = s->cluster_size / 8;
	int ret;

	for (uint32_t i = 0; i < s->l1_size; i++) {
		uint64_t l2off = s->l1[i] & QCOW2_OFFSET_MASK;
		bool changed = false;
		unsigned idx;
		uint8_t *raw;

		if (!l2off)
			continue;
		ret = qcow2_rc_get(s, l2off >> s->cluster_bits, &rc);
		if (ret)
			return ret;
		bool shared = rc != 1;
		set_flag(&s->l1[i], !shared, &changed);
		s->l1_dirty |= changed;
		ret = qcow2_cache_get(s, &s->l2c, l2off, true, &idx);
		if (ret)
			return ret;
		raw = qcow2_cache_data(&s->l2c, idx);
		changed = false;
		/* A shared table only ever loses flags (everything in it is shared too). */
		for (uint64_t k = 0; k < per && !ret; k++) {
			uint64_t e = img_be64(raw + 8 * k), host = e & QCOW2_OFFSET_MASK;
			if (!e)
				continue;
			if (e & QCOW2_OFLAG_COMPRESSED || !host || shared) {
				set_flag(&e, false, &changed);
			} else {
				ret = qcow2_rc_get(s, host >> s->cluster_bits, &rc);
				set_flag(&e, rc == 1, &changed);
			}
			img_put_be64(raw + 8 * k, e);
		}
		if (changed)
			qcow2_cache_mark_dirty(&s->l2c, idx);
		qcow2_cache_put(&s->l2c, idx);
		if (ret)
			return ret;
	}
	return 0;
}
