/* SPDX-License-Identifier: MIT */
/*
 * qcow2 consistency check and repair.
 *
 * Pass 1 walks every structure (header, active and snapshot L1/L2 tables, data and
 * compressed clusters, refcount table and blocks, snapshot table) reading straight from
 * the file, and counts the references to each host cluster, noting what kind of
 * structure uses it. Pass 2 compares with the stored refcounts (fixing them with
 * repair). Pass 3 checks the COPIED flags of the active tables against the stored
 * refcounts (fixing them with repair). Nothing here trusts the tables: every offset is
 * checked against the file before it is followed.
 */
#include "block/qcow2_int.h"
#include "common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum ckind { K_NONE, K_HDR, K_L1, K_L2, K_DATA, K_COMP, K_REFT, K_RB, K_SNAPT };

struct walk {
	struct qcow2_state *s;
	struct qcow2_check_ctx ctx;
	struct qcow2_check_result *res;
	uint8_t *buf; /* one cluster */
	uint64_t fsize;
	uint64_t end; /* 1 + the last cluster with a stored refcount or a reference */
};

void qcow2_check_note_alloc(struct qcow2_state *s, uint64_t c)
{
	struct qcow2_check_ctx *x = s->chk;

	if (c >= x->n) {
		uint64_t n = MAX(c + 1, x->n * 2);
		uint32_t *r = realloc(x->refs, n * sizeof(*r));
		uint8_t *k = r ? realloc(x->kind, n) : NULL;
		if (r)
			x->refs = r;
		if (!r || !k) {
			x->oom = true;
			return;
		}
		x->kind = k;
		memset(x->refs + x->n, 0, (n - x->n) * sizeof(*r));
		memset(x->kind + x->n, 0, n - x->n);
		x->n = n;
	}
	if (x->refs[c] < UINT32_MAX)
		x->refs[c]++;
	x->kind[c] = K_RB;
}

static bool shareable(enum ckind a, enum ckind b)
{
	return (a == K_DATA && b == K_DATA) || (a == K_COMP && b == K_COMP) ||
	       (a == K_L2 && b == K_L2);
}

/* Count a reference to [off, off+len). False when the range is outside the file. */
static bool add_ref(struct walk *w, uint64_t off, uint64_t len, enum ckind kind)
{
	uint64_t cs = w->s->cluster_size;

	if (!len)
		return true;
	if (off > w->fsize || len > w->fsize - off + (cs - 1) || off + len > UINT64_MAX - cs) {
		w->res->out_of_range++;
		return false;
	}
	for (uint64_t c = off / cs; c <= (off + len - 1) / cs; c++) {
		if (c >= w->ctx.n) {
			w->res->out_of_range++;
			return false;
		}
		if (w->ctx.kind[c] && !shareable(w->ctx.kind[c], kind))
			w->res->overlaps++;
		w->ctx.kind[c] = (uint8_t)kind;
		if (w->ctx.refs[c] < UINT32_MAX)
			w->ctx.refs[c]++;
	}
	return true;
}

static int walk_l2(struct walk *w, uint64_t l2off, bool active)
{
	struct qcow2_state *s = w->s;
	uint64_t cs = s->cluster_size, off, len;
	int ret = img_file_pread(s->im, w->buf, cs, l2off);

	if (ret)
		return ret;
	for (uint64_t k = 0; k < cs / 8; k++) {
		uint64_t e = img_be64(w->buf + 8 * k);
		if (!e)
			continue;
		if (e & QCOW2_OFLAG_COMPRESSED) {
			qcow2_compressed_range(s, e, &off, &len);
			add_ref(w, off, len, K_COMP);
			w->res->allocated_clusters += active;
			continue;
		}
		if (e & QCOW2_L2_RESERVED || (s->version < 3 && (e & QCOW2_OFLAG_ZERO))) {
			vdebug("qcow2 check: L2 0x%llx entry %llu invalid: 0x%llx",
			       (unsigned long long)l2off, (unsigned long long)k,
			       (unsigned long long)e);
			w->res->corruptions++;
			continue;
		}
		off = e & QCOW2_OFFSET_MASK;
		if (!off)
			continue;
		if (off % cs) {
			w->res->out_of_range++;
			continue;
		}
		add_ref(w, off, cs, K_DATA);
		w->res->allocated_clusters += active && !(e & QCOW2_OFLAG_ZERO);
	}
	return 0;
}

static int walk_l1(struct walk *w, const uint64_t *l1, uint32_t n, bool active)
{
	uint64_t cs = w->s->cluster_size;
	int ret = 0;

	for (uint32_t i = 0; i < n && !ret; i++) {
		uint64_t l2off = l1[i] & QCOW2_OFFSET_MASK;
		if (l1[i] & QCOW2_L1_RESERVED)
			w->res->corruptions++;
		if (!l2off)
			continue;
		if (l2off % cs) {
			w->res->out_of_range++;
			continue;
		}
		if (add_ref(w, l2off, cs, K_L2) && l2off + cs <= w->fsize)
			ret = walk_l2(w, l2off, active);
		else if (l2off + cs > w->fsize)
			w->res->out_of_range++;
	}
	return ret;
}

static int walk_all(struct walk *w)
{
	struct qcow2_state *s = w->s;
	uint64_t cs = s->cluster_size;
	int ret;

	add_ref(w, 0, cs, K_HDR);
	add_ref(w, s->l1_offset, (uint64_t)s->l1_size * 8, K_L1);
	ret = walk_l1(w, s->l1, s->l1_size, true);
	add_ref(w, s->reftable_offset, s->reftable_size * 8, K_REFT);
	for (uint64_t i = 0; i < s->reftable_size; i++)
		if (s->reftable[i])
			add_ref(w, s->reftable[i], cs, K_RB);
	add_ref(w, s->snap_offset, s->snap_bytes, K_SNAPT);
	for (unsigned i = 0; i < s->nb_snaps && !ret; i++) {
		const struct qcow2_snapshot *sn = &s->snaps[i];
		uint64_t *l1 = NULL;
		add_ref(w, sn->l1_offset, (uint64_t)sn->l1_size * 8, K_L1);
		ret = qcow2_read_l1(s, sn->l1_offset, sn->l1_size, &l1);
		if (!ret)
			ret = walk_l1(w, l1, sn->l1_size, false);
		free(l1);
	}
	return ret;
}

/* Stored vs found, for every cluster that has either. */
static int compare_refcounts(struct walk *w, enum qcow2_repair mode)
{
	struct qcow2_state *s = w->s;
	uint64_t rb = s->rb_entries;
	int ret = 0;

	for (uint64_t t = 0; !ret; t++) {
		uint64_t limit = MAX(w->ctx.n, s->reftable_size * rb);
		if (t * rb >= limit)
			break;
		bool has_block = t < s->reftable_size && s->reftable[t];
		if (!has_block && t * rb >= w->ctx.n)
			continue;
		for (uint64_t c = t * rb; c < (t + 1) * rb && !ret; c++) {
			uint64_t stored = 0, found = c < w->ctx.n ? w->ctx.refs[c] : 0;
			if (!has_block && c >= w->ctx.n)
				break;
			if (has_block)
				ret = qcow2_rc_get(s, c, &stored);
			if (!ret && (stored || found))
				w->end = c + 1;
			if (ret || stored == found)
				continue;
			vdebug("qcow2 check: cluster %llu refcount %llu, references %llu",
			       (unsigned long long)c, (unsigned long long)stored,
			       (unsigned long long)found);
			if (stored > found)
				w->res->leaks++;
			else
				w->res->corruptions++;
			if (mode == QCOW2_REPAIR_NONE || (mode == QCOW2_REPAIR_LEAKS && stored < found))
				continue;
			if (found > qcow2_rc_max(s))
				continue; /* cannot be represented: stays a corruption */
			ret = qcow2_rc_set(s, c, found);
			if (!ret && stored > found)
				w->res->leaks_fixed++;
			else if (!ret)
				w->res->corruptions_fixed++;
			has_block = t < s->reftable_size && s->reftable[t];
		}
	}
	return ret;
}

static int check_flag(struct walk *w, uint64_t *e, uint64_t host, bool repair, bool *changed)
{
	uint64_t rc;
	int ret = qcow2_rc_get(w->s, host / w->s->cluster_size, &rc);

	if (ret)
		return ret;
	if ((rc == 1) == !!(*e & QCOW2_OFLAG_COPIED))
		return 0;
	vdebug("qcow2 check: COPIED flag wrong for cluster 0x%llx (refcount %llu, entry 0x%llx)",
	       (unsigned long long)host, (unsigned long long)rc, (unsigned long long)*e);
	w->res->corruptions++;
	if (repair) {
		*e ^= QCOW2_OFLAG_COPIED;
		*changed = true;
		w->res->corruptions_fixed++;
	}
	return 0;
}

static int check_copied(struct walk *w, bool repair)
{
	struct qcow2_state *s = w->s;
	uint64_t cs = s->cluster_size;
	int ret = 0;

	for (uint32_t i = 0; i < s->l1_size && !ret; i++) {
		uint64_t l2off = s->l1[i] & QCOW2_OFFSET_MASK;
		bool changed = false;
		if (!l2off || l2off % cs || l2off + cs > w->fsize)
			continue;
		ret = check_flag(w, &s->l1[i], l2off, repair, &changed);
		s->l1_dirty |= changed;
		changed = false;
		if (!ret)
			ret = img_file_pread(s->im, w->buf, cs, l2off);
		for (uint64_t k = 0; k < cs / 8 && !ret; k++) {
			uint64_t e = img_be64(w->buf + 8 * k), host = e & QCOW2_OFFSET_MASK;
			if (e & QCOW2_OFLAG_COMPRESSED || !host || host % cs)
				continue;
			ret = check_flag(w, &e, host, repair, &changed);
			img_put_be64(w->buf + 8 * k, e);
		}
		if (!ret && changed) {
			qcow2_cache_drop(&s->l2c, l2off);
			ret = img_file_pwrite(s->im, w->buf, cs, l2off);
		}
	}
	return ret;
}

int qcow2_check_locked(struct qcow2_state *s, enum qcow2_repair mode,
		       struct qcow2_check_result *res)
{
	struct walk w = { .s = s, .res = res };
	uint64_t cs = s->cluster_size;
	bool repair = mode != QCOW2_REPAIR_NONE;
	int ret;

	memset(res, 0, sizeof(*res));
	if (mode != QCOW2_REPAIR_NONE && mode != QCOW2_REPAIR_LEAKS && mode != QCOW2_REPAIR_ALL)
		return -EINVAL;
	if (repair && s->im->readonly)
		return -EROFS;
	ret = qcow2_meta_flush(s);
	if (!ret)
		ret = img_file_size(s->im, &w.fsize);
	if (ret)
		return ret;
	w.ctx.n = (w.fsize + cs - 1) / cs;
	w.ctx.refs = calloc(w.ctx.n ? w.ctx.n : 1, sizeof(uint32_t));
	w.ctx.kind = calloc(w.ctx.n ? w.ctx.n : 1, 1);
	if (posix_memalign((void **)&w.buf, 4096, cs))
		w.buf = NULL;
	if (!w.ctx.refs || !w.ctx.kind || !w.buf) {
		ret = -ENOMEM;
		goto out;
	}
	res->total_clusters = (s->im->size + cs - 1) / cs;
	ret = walk_all(&w);
	if (ret)
		goto out;
	if (repair) {
		s->chk = &w.ctx; /* allocations during repair must avoid what is in use */
		qcow2_cache_drop_all(&s->l2c);
	}
	ret = compare_refcounts(&w, mode);
	if (!ret) /* a wrong COPIED flag is a corruption: only -r all touches it */
		ret = check_copied(&w, mode == QCOW2_REPAIR_ALL);
	if (!ret && repair)
		ret = qcow2_meta_flush(s);
	s->chk = NULL;
	/* Consistent now: a dirty or corrupt mark has served its purpose. */
	if (!ret && repair && res->corruptions == res->corruptions_fixed && !res->overlaps &&
	    !res->out_of_range && !w.ctx.oom &&
	    (s->incompat & (QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT))) {
		s->incompat &= ~(QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT);
		ret = qcow2_header_update(s);
	}
	if (!ret && w.ctx.oom)
		ret = -ENOMEM;
	res->image_end_offset = w.end * cs; /* as qemu-img: leaked clusters count too */
out:
	s->chk = NULL;
	free(w.ctx.refs);
	free(w.ctx.kind);
	free(w.buf);
	return ret;
}

int qcow2_check_repair(struct img *im, enum qcow2_repair mode, struct qcow2_check_result *res)
{
	struct qcow2_state *s;
	int ret;

	if (!qcow2_is_qcow2(im) || !res)
		return -EINVAL;
	s = im->priv;
	pthread_rwlock_wrlock(&s->io_lock);
	ret = qcow2_check_locked(s, mode, res);
	pthread_rwlock_unlock(&s->io_lock);
	return ret;
}

int qcow2_check(struct img *im, bool repair, struct qcow2_check_result *res)
{
	return qcow2_check_repair(im, repair ? QCOW2_REPAIR_ALL : QCOW2_REPAIR_NONE, res);
}
