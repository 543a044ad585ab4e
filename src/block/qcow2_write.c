/* SPDX-License-Identifier: MIT */
/*
 * qcow2 write path, discard and write-zeroes.
 *
 * A write to clusters this image owns alone (L2 entry with COPIED) goes straight to the
 * host cluster under the shared lock. Anything else takes the exclusive lock: the L2
 * table is made private (allocated, or copied when a snapshot shares it), a run of new
 * contiguous clusters is allocated, and the run is written in one vectored write made
 * of the old contents around the request (copy-on-write from the old cluster, a
 * compressed cluster, or the backing file) and the caller's data. Only then is the L2
 * entry switched; the old cluster's reference is dropped after the next metadata flush.
 */
#include "block/qcow2_int.h"

#include <errno.h>
#include <string.h>

#define ZBUF_SIZE 65536u
static const uint8_t qcow2_zero_buf[ZBUF_SIZE] __attribute__((aligned(4096)));

enum zmode { Z_DISCARD, Z_UNMAP, Z_KEEP, Z_FREE };

static bool inplace(const struct qcow2_state *s, uint64_t e)
{
	return qcow2_l2e_type(s, e) == QCOW2_NORMAL && (e & QCOW2_OFLAG_COPIED);
}

int qcow2_l2_writable(struct qcow2_state *s, uint64_t l1i, unsigned *idx)
{
	uint64_t l1e = s->l1[l1i], old = l1e & QCOW2_OFFSET_MASK, nw;
	unsigned oidx;
	int ret;

	if (old && (l1e & QCOW2_OFLAG_COPIED))
		return qcow2_cache_get(s, &s->l2c, old, true, idx);
	if (old) { /* load the shared table before allocating can evict anything */
		ret = qcow2_cache_get(s, &s->l2c, old, true, &oidx);
		if (ret)
			return ret;
	}
	ret = qcow2_alloc_clusters(s, 1, &nw);
	if (!ret)
		ret = qcow2_cache_get(s, &s->l2c, nw, false, idx);
	if (old) {
		if (!ret) {
			/* Everything a shared table references is shared: no COPIED in the copy. */
			uint8_t *dst = qcow2_cache_data(&s->l2c, *idx);
			memcpy(dst, qcow2_cache_data(&s->l2c, oidx), s->cluster_size);
			for (uint64_t k = 0; k < s->cluster_size / 8; k++)
				img_put_be64(dst + 8 * k, img_be64(dst + 8 * k) & ~QCOW2_OFLAG_COPIED);
		}
		qcow2_cache_put(&s->l2c, oidx);
		if (!ret)
			ret = qcow2_free_deferred(s, old, s->cluster_size);
	}
	if (ret)
		return ret;
	qcow2_cache_mark_dirty(&s->l2c, *idx);
	s->l1[l1i] = nw | QCOW2_OFLAG_COPIED;
	s->l1_dirty = true;
	return 0;
}

/* k new clusters for guest clusters gcl0.. (entries at raw), data [cur, cur+rlen). */
static int write_alloc_run(struct qcow2_state *s, uint8_t *raw, uint64_t gcl0, uint64_t k,
			   const struct iovec *iov, int iovcnt, size_t pos, uint64_t cur,
			   size_t rlen)
{
	uint64_t cs = s->cluster_size, host, head = cur & (cs - 1);
	uint64_t rend = cur + rlen, tail = (rend & (cs - 1)) ? cs - (rend & (cs - 1)) : 0;
	struct iovec v[QCOW2_IOV_MAX + 2];
	size_t cov;
	int n = 0, ret;

	ret = qcow2_alloc_clusters(s, k, &host);
	if (ret)
		return ret;
	if (head) {
		ret = qcow2_read_cluster_old(s, gcl0, img_be64(raw), s->cow);
		v[n].iov_base = s->cow;
		v[n++].iov_len = head;
	}
	n += iov_slice(v + n, QCOW2_IOV_MAX, iov, iovcnt, pos, rlen, &cov);
	if (!ret && tail) {
		uint8_t *tb = s->cow;
		if (!(k == 1 && head)) {
			tb = s->cow + cs;
			ret = qcow2_read_cluster_old(s, gcl0 + k - 1, img_be64(raw + 8 * (k - 1)), tb);
		}
		v[n].iov_base = tb + cs - tail;
		v[n++].iov_len = tail;
	}
	if (!ret)
		ret = img_file_pwritev(s->im, v, n, host);
	if (ret) { /* nothing references the new clusters yet: give them back now */
		for (uint64_t i = 0; i < k; i++)
			if (qcow2_rc_add(s, (host >> s->cluster_bits) + i, -1))
				break;
		return ret;
	}
	for (uint64_t i = 0; i < k && !ret; i++) {
		uint64_t old = img_be64(raw + 8 * i);
		img_put_be64(raw + 8 * i, (host + i * cs) | QCOW2_OFLAG_COPIED);
		ret = qcow2_free_l2e_deferred(s, old);
	}
	return ret;
}

/* Exclusive lock held. iov describes exactly len bytes for guest [off, off+len). */
static int write_locked(struct qcow2_state *s, const struct iovec *iov, int iovcnt, uint64_t off,
			size_t len)
{
	uint64_t cs = s->cluster_size, per = 1ull << s->l2_bits;
	uint64_t maxrun = MAX(MIN(s->rb_entries / 2, 1024), 1); /* clusters per allocation */
	struct iovec sl[QCOW2_IOV_MAX];
	size_t pos = 0, cov;
	int ret = 0;

	while (pos < len && !ret) {
		uint64_t cur = off + pos, gcl = cur >> s->cluster_bits, l1i = gcl >> s->l2_bits;
		uint64_t chunk_end = MIN(off + len, (l1i + 1) << (s->l2_bits + s->cluster_bits));
		uint64_t ncl = ((chunk_end - 1) >> s->cluster_bits) - gcl + 1, i = 0;
		unsigned idx;
		uint8_t *raw;

		ret = qcow2_l2_writable(s, l1i, &idx);
		if (ret)
			break;
		raw = (uint8_t *)qcow2_cache_data(&s->l2c, idx) + 8 * (gcl & (per - 1));
		while (i < ncl && !ret) {
			uint64_t e = img_be64(raw + 8 * i), j = i + 1, host = e & QCOW2_OFFSET_MASK;
			bool ip = inplace(s, e);
			uint64_t end;
			size_t rlen;

			if (ip)
				while (j < ncl && inplace(s, img_be64(raw + 8 * j)) &&
				       (img_be64(raw + 8 * j) & QCOW2_OFFSET_MASK) == host + (j - i) * cs)
					j++;
			else
				while (j < ncl && !inplace(s, img_be64(raw + 8 * j)) && j - i < maxrun)
					j++;
			end = MIN(chunk_end, (gcl + j) << s->cluster_bits);
			rlen = (size_t)(end - cur);
			if (ip) {
				int n = iov_slice(sl, QCOW2_IOV_MAX, iov, iovcnt, pos, rlen, &cov);
				ret = img_file_pwritev(s->im, sl, n, host + (cur & (cs - 1)));
			} else {
				ret = write_alloc_run(s, raw + 8 * i, gcl + i, j - i, iov, iovcnt, pos,
						      cur, rlen);
				qcow2_cache_mark_dirty(&s->l2c, idx);
			}
			pos += rlen;
			cur = end;
			i = j;
		}
		qcow2_cache_put(&s->l2c, idx);
	}
	if (!ret && s->npending > QCOW2_PENDING_MAX)
		ret = qcow2_meta_flush(s);
	return ret;
}

/*
 * Shared lock held: write the leading part of the request that lands in clusters this
 * image owns. *done gets the bytes written; the rest needs the exclusive path.
 */
static int write_inplace(struct qcow2_state *s, const struct iovec *iov, int iovcnt,
			 uint64_t off, size_t len, size_t *done)
{
	uint64_t cs = s->cluster_size, e[64], got;
	struct iovec sl[QCOW2_IOV_MAX];
	size_t pos = 0, cov;
	int ret = 0;

	while (pos < len) {
		uint64_t cur = off + pos, gcl = cur >> s->cluster_bits;
		uint64_t last = (off + len - 1) >> s->cluster_bits, j = 0, host;

		pthread_mutex_lock(&s->meta_lock);
		ret = qcow2_l2_entries(s, s->l1, s->l1_size, gcl, MIN(last - gcl + 1, 64), e, &got);
		pthread_mutex_unlock(&s->meta_lock);
		if (ret || !inplace(s, e[0]))
			break;
		host = e[0] & QCOW2_OFFSET_MASK;
		while (j < got && inplace(s, e[j]) && (e[j] & QCOW2_OFFSET_MASK) == host + j * cs)
			j++;
		uint64_t end = MIN(off + len, (gcl + j) << s->cluster_bits);
		int n = iov_slice(sl, QCOW2_IOV_MAX, iov, iovcnt, pos, (size_t)(end - cur), &cov);
		ret = img_file_pwritev(s->im, sl, n, host + (cur & (cs - 1)));
		if (ret)
			break;
		pos += (size_t)(end - cur);
	}
	*done = pos;
	return ret;
}

static int write_one(struct qcow2_state *s, const struct iovec *iov, int iovcnt, uint64_t off,
		     size_t len)
{
	struct iovec rest[QCOW2_IOV_MAX];
	size_t done = 0, cov;
	int ret, n;

	pthread_rwlock_rdlock(&s->io_lock);
	ret = s->broken ? -EIO : write_inplace(s, iov, iovcnt, off, len, &done);
	pthread_rwlock_unlock(&s->io_lock);
	if (ret || done == len)
		return ret;
	n = iov_slice(rest, QCOW2_IOV_MAX, iov, iovcnt, done, len - done, &cov);
	pthread_rwlock_wrlock(&s->io_lock);
	ret = s->broken ? -EIO : write_locked(s, rest, n, off + done, len - done);
	pthread_rwlock_unlock(&s->io_lock);
	return ret;
}

int qcow2_do_pwritev(struct img *im, const struct iovec *iov, int iovcnt, uint64_t off)
{
	struct qcow2_state *s = im->priv;
	int ret = 0;

	while (iovcnt > 0 && !ret) {
		int cnt = MIN(iovcnt, QCOW2_IOV_MAX);
		size_t len = iov_total(iov, cnt);
		if (len)
			ret = write_one(s, iov, cnt, off, len);
		iov += cnt;
		iovcnt -= cnt;
		off += len;
	}
	return ret;
}

/* Exclusive lock held: write real zeroes through the data path. */
int qcow2_zero_data_locked(struct qcow2_state *s, uint64_t off, uint64_t len)
{
	struct iovec v[16];
	int ret = 0;

	while (len && !ret) {
		size_t chunk = (size_t)MIN(len, (uint64_t)ARRAY_SIZE(v) * ZBUF_SIZE), left = chunk;
		int n = 0;
		while (left) {
			v[n].iov_base = (void *)(uintptr_t)qcow2_zero_buf;
			v[n].iov_len = MIN(left, ZBUF_SIZE);
			left -= v[n++].iov_len;
		}
		ret = write_locked(s, v, n, off, chunk);
		off += chunk;
		len -= chunk;
	}
	return ret;
}

/* The entry a fully covered cluster gets; e is its current entry. */
static uint64_t zero_entry(const struct qcow2_state *s, uint64_t e, enum zmode m)
{
	bool v3 = s->version >= 3, backing = s->im->backing != NULL;

	if (m == Z_FREE)
		return 0;
	if (m == Z_KEEP && v3 && !(e & QCOW2_OFLAG_COMPRESSED) && (e & QCOW2_OFFSET_MASK) &&
	    (e & QCOW2_OFLAG_COPIED))
		return (e & (QCOW2_OFFSET_MASK | QCOW2_OFLAG_COPIED)) | QCOW2_OFLAG_ZERO;
	return (backing && v3) ? QCOW2_OFLAG_ZERO : 0;
}

static int zero_clusters(struct qcow2_state *s, uint64_t gcl, uint64_t n, enum zmode m)
{
	uint64_t per = 1ull << s->l2_bits, e[64], got;
	int ret = 0;

	while (n && !ret) {
		uint64_t l1i = gcl >> s->l2_bits, in = gcl & (per - 1), cnt;
		bool need = false;
		unsigned idx;

		ret = qcow2_l2_entries(s, s->l1, s->l1_size, gcl, MIN(n, 64), e, &got);
		if (ret)
			break;
		cnt = got;
		for (uint64_t k = 0; k < cnt; k++)
			need |= zero_entry(s, e[k], m) != e[k];
		if (need) {
			ret = qcow2_l2_writable(s, l1i, &idx);
			if (ret)
				break;
			uint8_t *raw = (uint8_t *)qcow2_cache_data(&s->l2c, idx) + 8 * in;
			for (uint64_t k = 0; k < cnt && !ret; k++) {
				uint64_t old = img_be64(raw + 8 * k), nw = zero_entry(s, old, m);
				if (nw == old)
					continue;
				img_put_be64(raw + 8 * k, nw);
				if (!(nw & QCOW2_OFFSET_MASK))
					ret = qcow2_free_l2e_deferred(s, old);
			}
			qcow2_cache_mark_dirty(&s->l2c, idx);
			qcow2_cache_put(&s->l2c, idx);
		}
		gcl += cnt;
		n -= cnt;
	}
	if (!ret && s->npending > QCOW2_PENDING_MAX)
		ret = qcow2_meta_flush(s);
	return ret;
}

int qcow2_unmap_clusters(struct qcow2_state *s, uint64_t gcl, uint64_t n)
{
	return zero_clusters(s, gcl, n, Z_FREE);
}

/* Whole clusters inside [off, off+len); the disk's last partial cluster counts as whole. */
static void full_clusters(const struct qcow2_state *s, uint64_t off, uint64_t len,
			  uint64_t *start, uint64_t *end)
{
	uint64_t cs = s->cluster_size, e = off + len;
	*start = ALIGN_UP(off, cs);
	*end = e == s->im->size ? ALIGN_UP(e, cs) : ALIGN_DOWN(e, cs);
	if (*end < *start)
		*end = *start;
}

int qcow2_do_discard(struct img *im, uint64_t off, uint64_t len)
{
	struct qcow2_state *s = im->priv;
	uint64_t fs, fe;
	int ret;

	full_clusters(s, off, len, &fs, &fe);
	if (fs == fe)
		return 0; /* discard is a hint: partial clusters keep their data */
	pthread_rwlock_wrlock(&s->io_lock);
	ret = s->broken ? -EIO
			: zero_clusters(s, fs >> s->cluster_bits, (fe - fs) >> s->cluster_bits,
					Z_DISCARD);
	pthread_rwlock_unlock(&s->io_lock);
	return ret;
}

int qcow2_write_zeroes_locked(struct qcow2_state *s, uint64_t off, uint64_t len, bool may_unmap)
{
	uint64_t fs, fe, end = off + len;
	bool data = s->version < 3 && (s->im->backing || !may_unmap);
	int ret = 0;

	full_clusters(s, off, len, &fs, &fe);
	if (fs == fe || data)
		return qcow2_zero_data_locked(s, off, len);
	if (off < fs)
		ret = qcow2_zero_data_locked(s, off, fs - off);
	if (!ret)
		ret = zero_clusters(s, fs >> s->cluster_bits, (fe - fs) >> s->cluster_bits,
				    may_unmap ? Z_UNMAP : Z_KEEP);
	if (!ret && fe < end)
		ret = qcow2_zero_data_locked(s, fe, end - fe);
	return ret;
}

int qcow2_do_write_zeroes(struct img *im, uint64_t off, uint64_t len, bool may_unmap)
{
	struct qcow2_state *s = im->priv;
	int ret;

	pthread_rwlock_wrlock(&s->io_lock);
	ret = s->broken ? -EIO : qcow2_write_zeroes_locked(s, off, len, may_unmap);
	pthread_rwlock_unlock(&s->io_lock);
	return ret;
}
