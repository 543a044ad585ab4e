/* SPDX-License-Identifier: MIT */
/*
 * qcow2 compressed writes (`vireo img convert -c`).
 *
 * A cluster is compressed whole (the disk's last partial cluster padded with zeroes)
 * as raw deflate with a 4 KiB window (what qcow2 readers inflate with) or as one zstd
 * frame, per the image's compression type. Data that does not come out smaller than a
 * cluster goes through the normal write path instead.
 *
 * Compressed data is packed byte by byte: s->comp_next is where the next compressed
 * cluster starts, inside a host cluster that earlier compressed data owns. Each host
 * cluster a compressed cluster touches gets one reference from it (as the check counts
 * them), so a run that spills into the next host cluster counts both. comp_next is
 * dropped when its host cluster's refcount falls to 0 (qcow2_rc_set), so freed space is
 * never appended to. The stored range ends on a 512-byte boundary, and the bytes up to
 * it are written (zeroes) so the whole range lies inside the file.
 *
 * Ordering is the normal write path's: the data is written at once, the refcounts and
 * the L2 entry change in the caches, and qcow2_meta_flush writes them in order.
 */
#include "block/qcow2_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zstd_errors.h>

#define CW_ZSTD_LEVEL 3

void qcow2_compress_write_fini(struct qcow2_state *s)
{
	if (s->czs_ready)
		deflateEnd(&s->czs);
	s->czs_ready = false;
	ZSTD_freeCCtx(s->zcctx);
	s->zcctx = NULL;
	free(s->cw_in);
	free(s->cw_out);
	s->cw_in = s->cw_out = NULL;
}

/* Compress cs bytes of s->cw_in into s->cw_out; -ENOSPC when not smaller than cap. */
static int cw_compress(struct qcow2_state *s, size_t cap, size_t *olen)
{
	size_t cs = (size_t)s->cluster_size;

	if (s->compression == QCOW2_COMPRESSION_ZSTD) {
		size_t r;
		if (!s->zcctx && !(s->zcctx = ZSTD_createCCtx()))
			return -ENOMEM;
		r = ZSTD_compressCCtx(s->zcctx, s->cw_out, cap, s->cw_in, cs, CW_ZSTD_LEVEL);
		if (ZSTD_isError(r))
			return ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall ? -ENOSPC : -EIO;
		*olen = r;
		return 0;
	}
	if (!s->czs_ready) {
		memset(&s->czs, 0, sizeof(s->czs));
		if (deflateInit2(&s->czs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9,
				 Z_DEFAULT_STRATEGY) != Z_OK)
			return -ENOMEM;
		s->czs_ready = true;
	} else if (deflateReset(&s->czs) != Z_OK) {
		return -EIO;
	}
	s->czs.next_in = s->cw_in;
	s->czs.avail_in = (uInt)cs;
	s->czs.next_out = s->cw_out;
	s->czs.avail_out = (uInt)cap;
	int zr = deflate(&s->czs, Z_FINISH);
	if (zr == Z_STREAM_END) {
		*olen = cap - s->czs.avail_out;
		return 0;
	}
	return zr == Z_OK || zr == Z_BUF_ERROR ? -ENOSPC : -EIO;
}

/*
 * Host bytes for len compressed bytes: *place, and the host clusters [*c0, *c0 + *nc)
 * whose refcount was raised for them (to give back if the write fails).
 */
static int cw_alloc(struct qcow2_state *s, size_t len, uint64_t *place, uint64_t *c0,
		    uint64_t *nc)
{
	uint64_t cs = s->cluster_size, n = s->comp_next, host;
	int ret;

	*nc = 0;
	if (n) {
		uint64_t cur = n >> s->cluster_bits, room = cs - (n & (cs - 1));
		ret = qcow2_rc_add(s, cur, 1);
		if (ret == -ERANGE) { /* refcount width too small to share: start afresh */
			n = 0;
		} else if (ret) {
			return ret;
		} else if (len <= room) {
			*place = n;
			*c0 = cur;
			*nc = 1;
			goto done;
		} else {
			ret = qcow2_alloc_clusters(s, 1, &host);
			if (ret || host != (cur + 1) * cs) { /* not contiguous: do not spill */
				int r2 = qcow2_rc_add(s, cur, -1);
				if (ret)
					return ret;
				if (r2) {
					(void)!qcow2_rc_add(s, host >> s->cluster_bits, -1);
					return r2;
				}
				*place = host;
				*c0 = host >> s->cluster_bits;
				*nc = 1;
				goto done;
			}
			*place = n;
			*c0 = cur;
			*nc = 2;
			goto done;
		}
	}
	ret = qcow2_alloc_clusters(s, 1, &host);
	if (ret)
		return ret;
	*place = host;
	*c0 = host >> s->cluster_bits;
	*nc = 1;
done:
	n = *place + len;
	s->comp_next = n & (cs - 1) ? n : 0;
	return 0;
}

/* Exclusive lock held: store s->cw_out[0..clen) as the compressed cluster gcl. */
static int cw_store(struct qcow2_state *s, uint64_t gcl, size_t clen)
{
	uint64_t per = 1ull << s->l2_bits, place, c0, nc, old, e, nsec;
	unsigned shift = 62 - (s->cluster_bits - 8), idx;
	size_t wlen;
	uint8_t *raw;
	int ret;

	ret = qcow2_l2_writable(s, gcl >> s->l2_bits, &idx);
	if (ret)
		return ret;
	ret = cw_alloc(s, clen, &place, &c0, &nc);
	if (ret)
		goto out;
	wlen = (size_t)(ALIGN_UP(place + clen, 512) - place);
	memset(s->cw_out + clen, 0, wlen - clen);
	ret = img_file_pwrite(s->im, s->cw_out, wlen, place);
	if (ret) { /* nothing references the bytes yet: give the references back */
		for (uint64_t i = 0; i < nc; i++)
			if (qcow2_rc_add(s, c0 + i, -1))
				break;
		s->comp_next = 0;
		goto out;
	}
	nsec = ((place + clen - 1) >> 9) - (place >> 9); /* sectors after the first */
	e = QCOW2_OFLAG_COMPRESSED | nsec << shift | place;
	raw = (uint8_t *)qcow2_cache_data(&s->l2c, idx) + 8 * (gcl & (per - 1));
	old = img_be64(raw);
	img_put_be64(raw, e);
	qcow2_cache_mark_dirty(&s->l2c, idx);
	s->comp_cached = 0; /* the bytes behind an old descriptor may have changed */
	ret = qcow2_free_l2e_deferred(s, old);
	if (!ret && s->npending > QCOW2_PENDING_MAX)
		ret = qcow2_meta_flush(s);
out:
	qcow2_cache_put(&s->l2c, idx);
	return ret;
}

int qcow2_write_compressed(struct img *im, const void *buf, size_t len, uint64_t off)
{
	struct qcow2_state *s;
	uint64_t cs;
	size_t clen = 0;
	int ret;

	if (!qcow2_is_qcow2(im) || !buf)
		return -EINVAL;
	s = im->priv;
	cs = s->cluster_size;
	if (off % cs || off >= im->size || len != MIN(cs, im->size - off))
		return -EINVAL;
	if (im->readonly)
		return -EROFS;
	pthread_rwlock_wrlock(&s->io_lock);
	if (s->broken) {
		ret = -EIO;
		goto out;
	}
	if (!s->cw_in) {
		s->cw_in = malloc(cs);
		s->cw_out = malloc(cs + 512);
		if (!s->cw_in || !s->cw_out) {
			free(s->cw_in);
			s->cw_in = NULL;
			ret = -ENOMEM;
			goto out;
		}
	}
	memcpy(s->cw_in, buf, len);
	memset(s->cw_in + len, 0, (size_t)cs - len);
	ret = cw_compress(s, (size_t)cs - 1, &clen);
	if (!ret)
		ret = cw_store(s, off >> s->cluster_bits, clen);
out:
	pthread_rwlock_unlock(&s->io_lock);
	if (ret == -ENOSPC) /* incompressible: a normal cluster */
		ret = img_pwrite(im, buf, len, off);
	return ret;
}
