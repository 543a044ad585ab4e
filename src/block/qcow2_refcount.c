/* SPDX-License-Identifier: MIT */
/*
 * qcow2 refcounts: the refcount table (kept in memory), refcount blocks (cached),
 * cluster allocation, deferred frees and the ordered metadata flush.
 *
 * Placement rules that keep refcount metadata self-describing without recursion:
 * - a new refcount block for range t is put inside range t (nothing there is in use:
 *   the range had no block, so every refcount in it was 0); the allocator creates it
 *   when its scan enters the range, before it picks a run of at most rb_entries/2;
 * - a longer run goes past the last range that has a block, followed by new blocks
 *   that count the run and themselves;
 * - a grown refcount table and the blocks that count it are put in ranges past
 *   everything allocated, counted by blocks written before the table that names them.
 */
#include "block/qcow2_int.h"
#include "common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

uint64_t qcow2_rc_max(const struct qcow2_state *s)
{
	return s->refcount_order == 6 ? UINT64_MAX : (1ull << (1u << s->refcount_order)) - 1;
}

static uint64_t rb_get(const uint8_t *b, unsigned order, uint64_t i)
{
	switch (order) {
	case 0: return (b[i / 8] >> (i % 8)) & 1;
	case 1: return (b[i / 4] >> (2 * (i % 4))) & 3;
	case 2: return (b[i / 2] >> (4 * (i % 2))) & 15;
	case 3: return b[i];
	case 4: return img_be16(b + 2 * i);
	case 5: return img_be32(b + 4 * i);
	default: return img_be64(b + 8 * i);
	}
}

static void rb_set(uint8_t *b, unsigned order, uint64_t i, uint64_t v)
{
	unsigned sh;
	switch (order) {
	case 0:
		sh = (unsigned)(i % 8);
		b[i / 8] = (uint8_t)((b[i / 8] & ~(1u << sh)) | (v << sh));
		break;
	case 1:
		sh = (unsigned)(2 * (i % 4));
		b[i / 4] = (uint8_t)((b[i / 4] & ~(3u << sh)) | (v << sh));
		break;
	case 2:
		sh = (unsigned)(4 * (i % 2));
		b[i / 2] = (uint8_t)((b[i / 2] & ~(15u << sh)) | (v << sh));
		break;
	case 3: b[i] = (uint8_t)v; break;
	case 4: img_put_be16(b + 2 * i, (uint16_t)v); break;
	case 5: img_put_be32(b + 4 * i, (uint32_t)v); break;
	default: img_put_be64(b + 8 * i, v); break;
	}
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

bool qcow2_is_refblock(const struct qcow2_state *s, uint64_t off)
{
	uint64_t lo = 0, hi = s->rb_nsorted;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (s->rb_sorted[mid] == off)
			return true;
		if (s->rb_sorted[mid] < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static int rb_sorted_rebuild(struct qcow2_state *s)
{
	uint64_t *v = calloc(s->reftable_size ? s->reftable_size : 1, sizeof(*v)), n = 0;
	if (!v)
		return -ENOMEM;
	for (uint64_t i = 0; i < s->reftable_size; i++)
		if (s->reftable[i])
			v[n++] = s->reftable[i];
	qsort(v, n, sizeof(*v), u64_cmp);
	free(s->rb_sorted);
	s->rb_sorted = v;
	s->rb_nsorted = n;
	return 0;
}

int qcow2_refcount_init(struct qcow2_state *s, char *err, size_t errlen)
{
	uint64_t cs = s->cluster_size, fsize;
	uint8_t *raw;
	int ret;

	s->rb_entries = (cs * 8) >> s->refcount_order;
	ret = img_file_size(s->im, &fsize);
	if (ret)
		return ret;
	raw = malloc(s->reftable_size * 8);
	s->reftable = calloc(s->reftable_size, sizeof(uint64_t));
	if (!raw || !s->reftable) {
		free(raw);
		return -ENOMEM;
	}
	ret = img_file_pread(s->im, raw, s->reftable_size * 8, s->reftable_offset);
	if (ret) {
		img_seterr(s->im, err, errlen, "cannot read refcount table: %s", strerror(-ret));
		goto out;
	}
	for (uint64_t i = 0; i < s->reftable_size; i++) {
		uint64_t e = img_be64(raw + 8 * i);
		if (!e)
			continue;
		if (e & ~QCOW2_REFT_OFFSET_MASK || e % cs || e >= fsize) {
			img_seterr(s->im, err, errlen,
				   "refcount block %llu at 0x%llx unaligned or beyond end of file",
				   (unsigned long long)i, (unsigned long long)e);
			ret = -EINVAL;
			goto out;
		}
		s->reftable[i] = e;
	}
	ret = rb_sorted_rebuild(s);
	if (ret)
		goto out;
	for (uint64_t i = 0; i < s->rb_nsorted; i++) {
		uint64_t b = s->rb_sorted[i];
		if ((i && s->rb_sorted[i - 1] == b) || b < cs ||
		    (b >= s->reftable_offset && b < s->reftable_offset + s->reftable_size * 8) ||
		    (s->l1_size && b >= s->l1_offset &&
		     b < s->l1_offset + ALIGN_UP((uint64_t)s->l1_size * 8, cs))) {
			img_seterr(s->im, err, errlen,
				   "overlapping metadata: refcount block at 0x%llx",
				   (unsigned long long)b);
			ret = -EINVAL;
			goto out;
		}
	}
out:
	free(raw);
	return ret;
}

void qcow2_refcount_fini(struct qcow2_state *s)
{
	free(s->reftable);
	free(s->rb_sorted);
	free(s->pending);
	s->reftable = s->rb_sorted = s->pending = NULL;
}

int qcow2_rc_get(struct qcow2_state *s, uint64_t cluster, uint64_t *rc)
{
	uint64_t t = cluster / s->rb_entries;
	unsigned idx;
	int ret;

	*rc = 0;
	if (t >= s->reftable_size || !s->reftable[t])
		return 0;
	ret = qcow2_cache_get(s, &s->rbc, s->reftable[t], true, &idx);
	if (ret)
		return ret;
	*rc = rb_get(qcow2_cache_data(&s->rbc, idx), s->refcount_order, cluster % s->rb_entries);
	qcow2_cache_put(&s->rbc, idx);
	return 0;
}

static bool cluster_reserved(const struct qcow2_state *s, uint64_t c)
{
	if (c >= s->inflight_start && c < s->inflight_start + s->inflight_n)
		return true;
	return s->chk && c < s->chk->n && s->chk->refs[c];
}

/* Range t has no block: put one inside it, counting itself. */
static int alloc_refblock(struct qcow2_state *s, uint64_t t)
{
	uint64_t base = t * s->rb_entries, c = base, cs = s->cluster_size;
	uint8_t be[8];
	unsigned idx;
	int ret;

	while (c < base + s->rb_entries && cluster_reserved(s, c))
		c++;
	if (c == base + s->rb_entries || c == 0 || c * cs > QCOW2_OFFSET_MASK)
		return -ENOSPC;
	qcow2_cache_drop(&s->l2c, c * cs);
	ret = qcow2_cache_get(s, &s->rbc, c * cs, false, &idx);
	if (ret)
		return ret;
	rb_set(qcow2_cache_data(&s->rbc, idx), s->refcount_order, c - base, 1);
	if (s->chk)
		qcow2_check_note_alloc(s, c);
	ret = img_file_pwrite(s->im, qcow2_cache_data(&s->rbc, idx), cs, c * cs);
	qcow2_cache_put(&s->rbc, idx);
	if (!ret)
		ret = img_file_sync(s->im); /* the block before the table entry naming it */
	if (ret) {
		qcow2_cache_drop(&s->rbc, c * cs);
		return ret;
	}
	img_put_be64(be, c * cs);
	ret = img_file_pwrite(s->im, be, 8, s->reftable_offset + t * 8);
	if (ret)
		return ret;
	s->reftable[t] = c * cs;
	return rb_sorted_rebuild(s);
}

/* The table has no slot t: write a bigger one past everything in use. */
static int grow_reftable(struct qcow2_state *s, uint64_t t)
{
	uint64_t cs = s->cluster_size, rb = s->rb_entries, per = cs / 8;
	uint64_t R = MAX(t + 1, s->reftable_size), m = 1, entries, S, P;
	uint64_t old_off = s->reftable_offset, old_bytes = s->reftable_size * 8;
	uint64_t *newtab = NULL;
	uint8_t *blocks = NULL, *rawtab = NULL;
	int ret;

	if (t >= QCOW2_MAX_REFTABLE_BYTES / 8)
		return -EFBIG;

	if (s->chk) /* repair: clusters in use may lie beyond the old table */
		R = MAX(R, (s->chk->n + rb - 1) / rb);
	entries = ALIGN_UP(MAX(R + 1, s->reftable_size * 2), per);
	for (int iter = 0; iter < 64; iter++) {
		S = entries / per;
		m = (S + rb - 2) / (rb - 1); /* blocks counting the table and themselves */
		if (entries >= R + m)
			break;
		entries = ALIGN_UP(R + m, per);
	}
	if (entries < R + m || entries * 8 > QCOW2_MAX_REFTABLE_BYTES)
		return -EFBIG;
	S = entries / per;
	P = R * rb;
	vdebug("qcow2 '%s': refcount table grows to %llu entries at cluster %llu", s->im->path,
	       (unsigned long long)entries, (unsigned long long)P);
	if ((P + S + m) * cs > QCOW2_OFFSET_MASK)
		return -ENOSPC;
	newtab = calloc(entries, sizeof(*newtab));
	blocks = calloc(m, cs);
	rawtab = calloc(S, cs);
	if (!newtab || !blocks || !rawtab) {
		ret = -ENOMEM;
		goto out;
	}
	memcpy(newtab, s->reftable, s->reftable_size * 8);
	for (uint64_t k = 0; k < m; k++)
		newtab[R + k] = (P + S + k) * cs;
	for (uint64_t x = P; x < P + S + m; x++) {
		rb_set(blocks + (x / rb - R) * cs, s->refcount_order, x % rb, 1);
		if (s->chk)
			qcow2_check_note_alloc(s, x);
	}
	for (uint64_t i = 0; i < entries; i++)
		img_put_be64(rawtab + 8 * i, newtab[i]);
	ret = img_file_pwrite(s->im, blocks, m * cs, (P + S) * cs);
	if (!ret)
		ret = img_file_pwrite(s->im, rawtab, S * cs, P * cs);
	if (ret)
		goto out;
	free(s->reftable);
	s->reftable = newtab;
	newtab = NULL;
	s->reftable_size = entries;
	s->reftable_offset = P * cs;
	ret = qcow2_header_update(s); /* syncs the new table and blocks first */
	if (!ret)
		ret = rb_sorted_rebuild(s);
	if (!ret)
		ret = qcow2_free_deferred(s, old_off, ALIGN_UP(old_bytes, cs));
out:
	free(newtab);
	free(blocks);
	free(rawtab);
	return ret;
}

int qcow2_rc_set(struct qcow2_state *s, uint64_t cluster, uint64_t rc)
{
	uint64_t t = cluster / s->rb_entries;
	unsigned idx;
	int ret;

	if (s->im->readonly)
		return -EROFS;
	if (t >= s->reftable_size) {
		if (!rc)
			return 0;
		ret = grow_reftable(s, t);
		if (ret)
			return ret;
	}
	if (!s->reftable[t]) {
		if (!rc)
			return 0;
		ret = alloc_refblock(s, t);
		if (ret)
			return ret;
	}
	ret = qcow2_cache_get(s, &s->rbc, s->reftable[t], true, &idx);
	if (ret)
		return ret;
	rb_set(qcow2_cache_data(&s->rbc, idx), s->refcount_order, cluster % s->rb_entries, rc);
	qcow2_cache_mark_dirty(&s->rbc, idx);
	qcow2_cache_put(&s->rbc, idx);
	if (!rc) {
		if (s->comp_next && s->comp_next >> s->cluster_bits == cluster)
			s->comp_next = 0; /* freed: compressed writes must not append there */
		if (cluster < s->free_hint)
			s->free_hint = cluster;
		qcow2_cache_drop(&s->l2c, cluster * s->cluster_size);
	}
	return 0;
}

int qcow2_rc_add(struct qcow2_state *s, uint64_t cluster, int64_t delta)
{
	uint64_t rc;
	int ret = qcow2_rc_get(s, cluster, &rc);

	if (ret)
		return ret;
	if (delta < 0 && rc < (uint64_t)-delta) {
		qcow2_set_broken(s, "refcount would drop below zero");
		return -EIO;
	}
	if (delta > 0 && qcow2_rc_max(s) - rc < (uint64_t)delta)
		return -ERANGE;
	return qcow2_rc_set(s, cluster, rc + (uint64_t)delta);
}

/*
 * A run longer than half a refcount range: put it in ranges that have no block yet
 * (past the last one), followed by the blocks that count it and themselves.
 */
static int alloc_big(struct qcow2_state *s, uint64_t n, uint64_t *host)
{
	uint64_t rb = s->rb_entries, cs = s->cluster_size, R0 = 0, m = 1, P;
	uint8_t *blocks = NULL, *tab = NULL;
	int ret;

	for (uint64_t t = s->reftable_size; t > 0; t--)
		if (s->reftable[t - 1]) {
			R0 = t;
			break;
		}
	if (s->chk)
		R0 = MAX(R0, (s->chk->n + rb - 1) / rb);
	m = (n + rb - 2) / (rb - 1);
	P = R0 * rb;
	if ((P + n + m) * cs > QCOW2_OFFSET_MASK)
		return -ENOSPC;
	if (R0 + m > s->reftable_size) {
		ret = grow_reftable(s, R0 + m - 1);
		if (ret)
			return ret;
	}
	blocks = calloc(m, cs);
	tab = malloc(m * 8);
	if (!blocks || !tab) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint64_t x = P; x < P + n + m; x++) {
		rb_set(blocks + (x / rb - R0) * cs, s->refcount_order, x % rb, 1);
		if (s->chk)
			qcow2_check_note_alloc(s, x);
	}
	for (uint64_t k = 0; k < m; k++)
		img_put_be64(tab + 8 * k, (P + n + k) * cs);
	ret = img_file_pwrite(s->im, blocks, m * cs, (P + n) * cs);
	if (!ret)
		ret = img_file_sync(s->im); /* blocks before the table entries naming them */
	if (!ret)
		ret = img_file_pwrite(s->im, tab, m * 8, s->reftable_offset + R0 * 8);
	if (ret)
		goto out;
	for (uint64_t k = 0; k < m; k++)
		s->reftable[R0 + k] = (P + n + k) * cs;
	ret = rb_sorted_rebuild(s);
	for (uint64_t i = 0; i < n + m; i++)
		qcow2_cache_drop(&s->l2c, (P + i) * cs);
	*host = P * cs;
out:
	free(blocks);
	free(tab);
	return ret;
}

int qcow2_alloc_clusters(struct qcow2_state *s, uint64_t n, uint64_t *host)
{
	uint64_t rb = s->rb_entries, c = MAX(s->free_hint, 1), run = 0, run_start = 0;
	uint64_t first_free = UINT64_MAX;
	int ret = 0;

	if (s->broken)
		return -EIO;
	if (!n || n > (1u << 20))
		return -EINVAL;
	if (n > rb / 2)
		return alloc_big(s, n, host);
	while (run < n) {
		uint64_t t = c / rb, end = (t + 1) * rb;
		const uint8_t *blk;
		unsigned idx = 0;

		/* Give every range the scan enters a block first, so that counting the run
		 * afterwards never has to place a block inside it. */
		if (t >= s->reftable_size)
			ret = grow_reftable(s, t);
		if (!ret && !s->reftable[t])
			ret = alloc_refblock(s, t);
		if (!ret)
			ret = qcow2_cache_get(s, &s->rbc, s->reftable[t], true, &idx);
		if (ret)
			return ret;
		blk = qcow2_cache_data(&s->rbc, idx);
		for (; c < end && run < n; c++) {
			if (rb_get(blk, s->refcount_order, c % rb) || cluster_reserved(s, c)) {
				run = 0;
				continue;
			}
			if (first_free == UINT64_MAX)
				first_free = c;
			if (!run)
				run_start = c;
			run++;
		}
		qcow2_cache_put(&s->rbc, idx);
	}
	if ((run_start + n) * s->cluster_size > QCOW2_OFFSET_MASK)
		return -ENOSPC;
	s->free_hint = first_free == run_start ? run_start + n : first_free;
	s->inflight_start = run_start;
	s->inflight_n = n;
	for (uint64_t i = 0; i < n && !ret; i++) {
		ret = qcow2_rc_set(s, run_start + i, 1);
		if (s->chk)
			qcow2_check_note_alloc(s, run_start + i);
	}
	s->inflight_n = 0;
	if (ret)
		return ret;
	for (uint64_t i = 0; i < n; i++)
		qcow2_cache_drop(&s->l2c, (run_start + i) * s->cluster_size);
	*host = run_start * s->cluster_size;
	return 0;
}

int qcow2_free_deferred(struct qcow2_state *s, uint64_t host, uint64_t len)
{
	uint64_t cs = s->cluster_size;

	if (!len)
		return 0;
	for (uint64_t c = ALIGN_DOWN(host, cs); c < host + len; c += cs) {
		if (s->npending == s->pending_cap) {
			size_t cap = s->pending_cap ? s->pending_cap * 2 : 256;
			uint64_t *p = realloc(s->pending, cap * sizeof(*p));
			if (!p)
				return -ENOMEM;
			s->pending = p;
			s->pending_cap = cap;
		}
		s->pending[s->npending++] = c;
	}
	return 0;
}

int qcow2_free_l2e_deferred(struct qcow2_state *s, uint64_t l2e)
{
	uint64_t off, len;

	switch (qcow2_l2e_type(s, l2e)) {
	case QCOW2_COMPRESSED:
		qcow2_compressed_range(s, l2e, &off, &len);
		return qcow2_free_deferred(s, off, len);
	case QCOW2_NORMAL:
	case QCOW2_ZERO:
		off = l2e & QCOW2_OFFSET_MASK;
		return off ? qcow2_free_deferred(s, off, s->cluster_size) : 0;
	default:
		return 0;
	}
}

int qcow2_refcount_flush(struct qcow2_state *s)
{
	int ret = qcow2_cache_writeback(s, &s->rbc);
	return ret ? ret : img_file_sync(s->im);
}

static int write_l1(struct qcow2_state *s)
{
	uint8_t *raw;
	int ret;

	if (!s->l1_size) {
		s->l1_dirty = false;
		return 0;
	}
	raw = malloc((size_t)s->l1_size * 8);
	if (!raw)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->l1_size; i++)
		img_put_be64(raw + 8 * i, s->l1[i]);
	ret = img_file_pwrite(s->im, raw, (size_t)s->l1_size * 8, s->l1_offset);
	free(raw);
	if (!ret)
		s->l1_dirty = false;
	return ret;
}

int qcow2_meta_flush(struct qcow2_state *s)
{
	bool l2_dirty = false, l1_dirty = s->l1_dirty;
	int ret;

	if (s->im->readonly)
		return 0;
	for (unsigned i = 0; i < s->l2c.n; i++)
		l2_dirty |= s->l2c.offset[i] && s->l2c.dirty[i];
	/* 1. data and refcounts */
	ret = qcow2_refcount_flush(s);
	/* 2. L2 tables that reference the new clusters */
	if (!ret && l2_dirty)
		ret = qcow2_cache_writeback(s, &s->l2c);
	if (!ret && l2_dirty && s->l1_dirty)
		ret = img_file_sync(s->im);
	/* 3. the L1 entries that reference new L2 tables */
	if (!ret && s->l1_dirty)
		ret = write_l1(s);
	if (!ret && (l2_dirty || l1_dirty))
		ret = img_file_sync(s->im);
	if (ret)
		return ret;
	/* 4. nothing on disk references the queued clusters any more: drop them */
	if (s->npending) {
		size_t n = s->npending;
		s->npending = 0;
		s->comp_cached = 0; /* a freed compressed cluster may be reused */
		for (size_t i = 0; i < n && !ret; i++)
			ret = qcow2_rc_add(s, s->pending[i] / s->cluster_size, -1);
		if (!ret)
			ret = qcow2_refcount_flush(s);
	}
	return ret;
}
