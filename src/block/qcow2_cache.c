/* SPDX-License-Identifier: MIT */
/*
 * qcow2 metadata cache: a small set of cluster-sized tables (L2 tables or refcount
 * blocks) keyed by host offset, least-recently-used eviction, write-back.
 * Entries in use are pinned (get ... put) so a nested lookup cannot evict them.
 * Writing back a dirty L2 table first makes the refcount blocks durable (ordering).
 */
#include "block/qcow2_int.h"
#include "common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int qcow2_cache_init(struct qcow2_cache *c, unsigned n, size_t size, bool is_l2)
{
	memset(c, 0, sizeof(*c));
	c->n = n;
	c->size = size;
	c->is_l2 = is_l2;
	if (posix_memalign((void **)&c->data, 4096, (size_t)n * size))
		return -ENOMEM;
	c->offset = calloc(n, sizeof(*c->offset));
	c->lru = calloc(n, sizeof(*c->lru));
	c->pins = calloc(n, sizeof(*c->pins));
	c->dirty = calloc(n, sizeof(*c->dirty));
	if (!c->offset || !c->lru || !c->pins || !c->dirty)
		return -ENOMEM;
	return 0;
}

void qcow2_cache_fini(struct qcow2_cache *c)
{
	free(c->data);
	free(c->offset);
	free(c->lru);
	free(c->pins);
	free(c->dirty);
	memset(c, 0, sizeof(*c));
}

static int cache_write_entry(struct qcow2_state *s, struct qcow2_cache *c, unsigned i)
{
	int ret;

	if (s->im->readonly)
		return -EROFS;
	if (c->is_l2) {
		ret = qcow2_refcount_flush(s);
		if (ret)
			return ret;
	}
	ret = img_file_pwrite(s->im, qcow2_cache_data(c, i), c->size, c->offset[i]);
	if (!ret)
		c->dirty[i] = false;
	return ret;
}

int qcow2_cache_get(struct qcow2_state *s, struct qcow2_cache *c, uint64_t off, bool load,
		    unsigned *idx)
{
	unsigned victim = c->n, last = c->last;
	int ret;

	if (last < c->n && c->offset[last] == off) { /* sequential I/O stays in one table */
		c->lru[last] = ++c->tick;
		c->pins[last]++;
		*idx = last;
		return 0;
	}
	for (unsigned i = 0; i < c->n; i++) {
		if (c->offset[i] == off) {
			c->lru[i] = ++c->tick;
			c->pins[i]++;
			*idx = c->last = i;
			return 0;
		}
		if (c->pins[i])
			continue;
		if (victim == c->n || !c->offset[i] ||
		    (c->offset[victim] && c->lru[i] < c->lru[victim]))
			victim = i;
	}
	if (victim == c->n)
		return -EBUSY; /* every entry pinned: a bug, not a guest error */
	if (c->offset[victim] && c->dirty[victim]) {
		ret = cache_write_entry(s, c, victim);
		if (ret)
			return ret;
	}
	c->offset[victim] = 0;
	c->dirty[victim] = false;
	uint64_t fsize = 0;
	if (load && c->is_l2) {
		ret = img_file_size(s->im, &fsize);
		if (ret)
			return ret;
		if (off % c->size || off > fsize || c->size > fsize - off ||
		    qcow2_overlaps_meta(s, off, c->size)) {
			img_report(s->im, "L2 table offset 0x%llx unaligned, beyond end of file "
				   "or overlapping metadata", (unsigned long long)off);
			return -EIO;
		}
	}
	if (load) {
		ret = img_file_pread(s->im, qcow2_cache_data(c, victim), c->size, off);
		if (ret)
			return ret;
		if (c->is_l2) {
			ret = qcow2_l2_validate(s, qcow2_cache_data(c, victim), off, fsize);
			if (ret)
				return ret;
		}
	} else {
		memset(qcow2_cache_data(c, victim), 0, c->size);
	}
	c->offset[victim] = off;
	c->lru[victim] = ++c->tick;
	c->pins[victim] = 1;
	*idx = c->last = victim;
	return 0;
}

void qcow2_cache_put(struct qcow2_cache *c, unsigned idx)
{
	if (c->pins[idx])
		c->pins[idx]--;
}

void qcow2_cache_mark_dirty(struct qcow2_cache *c, unsigned idx)
{
	c->dirty[idx] = true;
}

int qcow2_cache_writeback(struct qcow2_state *s, struct qcow2_cache *c)
{
	for (unsigned i = 0; i < c->n; i++) {
		if (c->offset[i] && c->dirty[i]) {
			int ret = img_file_pwrite(s->im, qcow2_cache_data(c, i), c->size,
						  c->offset[i]);
			if (ret)
				return ret;
			c->dirty[i] = false;
		}
	}
	return 0;
}

void qcow2_cache_drop(struct qcow2_cache *c, uint64_t off)
{
	for (unsigned i = 0; i < c->n; i++) {
		if (c->offset[i] == off && !c->pins[i]) {
			c->offset[i] = 0;
			c->dirty[i] = false;
		}
	}
}

void qcow2_cache_drop_all(struct qcow2_cache *c)
{
	for (unsigned i = 0; i < c->n; i++) {
		if (!c->pins[i]) {
			c->offset[i] = 0;
			c->dirty[i] = false;
		}
	}
}
