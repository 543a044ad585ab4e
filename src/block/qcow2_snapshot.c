/* SPDX-License-Identifier: MIT */
/*
 * qcow2 internal snapshots: the snapshot table (parsed and validated at open, rewritten
 * whole to new clusters on change, then the header switched), create / delete / apply
 * (disk state only, no VM state), list and read.
 *
 * Refcount rule: a cluster's refcount is the number of L1 tables (active + snapshots)
 * through which it is reachable; an L2 table's is the number of L1 tables naming it.
 * COPIED is set in the active tables exactly where that count is 1.
 */
#include "block/qcow2_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SN_FIXED 40u
#define SN_MAX_EXTRA 1024u
#define SN_EXTRA_NEW 24u

void qcow2_snapshot_free(struct qcow2_state *s)
{
	for (unsigned i = 0; i < s->nb_snaps && s->snaps; i++) {
		free(s->snaps[i].id);
		free(s->snaps[i].name);
		free(s->snaps[i].extra);
	}
	free(s->snaps);
	s->snaps = NULL;
}

static int dup_field(const uint8_t *p, size_t len, char **out)
{
	*out = malloc(len + 1);
	if (!*out)
		return -ENOMEM;
	memcpy(*out, p, len);
	(*out)[len] = 0;
	return memchr(p, 0, len) ? -EINVAL : 0;
}

int qcow2_snapshot_load(struct qcow2_state *s, uint64_t fsize, char *err, size_t errlen)
{
	uint64_t pos = s->snap_offset, cs = s->cluster_size;
	uint8_t fixed[SN_FIXED], *var = NULL;
	int ret = 0;

	s->snap_bytes = 0;
	if (!s->nb_snaps)
		return 0;
	s->snaps = calloc(s->nb_snaps, sizeof(*s->snaps));
	var = malloc(SN_MAX_EXTRA + 2 * 65536);
	if (!s->snaps || !var) {
		free(var);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < s->nb_snaps; i++) {
		struct qcow2_snapshot *sn = &s->snaps[i];
		uint32_t idl, nl, vlen;

		if (pos - s->snap_offset + SN_FIXED > QCOW2_MAX_SNAPTABLE_BYTES ||
		    pos + SN_FIXED > fsize) {
			img_seterr(s->im, err, errlen, "snapshot table beyond end of file");
			ret = -EINVAL;
			goto out;
		}
		ret = img_file_pread(s->im, fixed, SN_FIXED, pos);
		if (ret)
			goto out;
		sn->l1_offset = img_be64(fixed);
		sn->l1_size = img_be32(fixed + 8);
		idl = img_be16(fixed + 12);
		nl = img_be16(fixed + 14);
		sn->date_sec = img_be32(fixed + 16);
		sn->date_nsec = img_be32(fixed + 20);
		sn->vm_clock_nsec = img_be64(fixed + 24);
		sn->vm_state_size = img_be32(fixed + 32);
		sn->extra_size = img_be32(fixed + 36);
		if (sn->extra_size > SN_MAX_EXTRA) {
			img_seterr(s->im, err, errlen, "snapshot %u: extra data too large", i);
			ret = -EINVAL;
			goto out;
		}
		vlen = sn->extra_size + idl + nl;
		if (pos + SN_FIXED + vlen > fsize) {
			img_seterr(s->im, err, errlen, "snapshot table beyond end of file");
			ret = -EINVAL;
			goto out;
		}
		ret = img_file_pread(s->im, var, vlen, pos + SN_FIXED);
		if (ret)
			goto out;
		sn->extra = malloc(sn->extra_size ? sn->extra_size : 1);
		if (!sn->extra) {
			ret = -ENOMEM;
			goto out;
		}
		memcpy(sn->extra, var, sn->extra_size);
		sn->disk_size = sn->extra_size >= 16 ? img_be64(var + 8) : s->im->size;
		ret = dup_field(var + sn->extra_size, idl, &sn->id);
		if (!ret)
			ret = dup_field(var + sn->extra_size + idl, nl, &sn->name);
		if (ret) {
			img_seterr(s->im, err, errlen, "snapshot %u: invalid id or name", i);
			goto out;
		}
		if ((uint64_t)sn->l1_size * 8 > QCOW2_MAX_L1_BYTES || sn->l1_offset % cs ||
		    (sn->l1_size && (sn->l1_offset < cs || sn->l1_offset > fsize ||
				     (uint64_t)sn->l1_size * 8 > fsize - sn->l1_offset)) ||
		    sn->disk_size > (1ull << 62) ||
		    sn->disk_size > (uint64_t)sn->l1_size << (2 * s->cluster_bits - 3)) {
			img_seterr(s->im, err, errlen, "snapshot '%s': L1 table invalid", sn->id);
			ret = -EINVAL;
			goto out;
		}
		pos += ALIGN_UP(SN_FIXED + (uint64_t)vlen, 8);
	}
	s->snap_bytes = pos - s->snap_offset;
out:
	free(var);
	return ret;
}

int qcow2_read_l1(struct qcow2_state *s, uint64_t off, uint32_t n, uint64_t **out)
{
	uint8_t *raw = malloc(n ? (size_t)n * 8 : 8);
	uint64_t *l1 = calloc(n ? n : 1, sizeof(*l1));
	int ret;

	if (!raw || !l1) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = n ? img_file_pread(s->im, raw, (size_t)n * 8, off) : 0;
	if (ret)
		goto fail;
	for (uint32_t i = 0; i < n; i++)
		l1[i] = img_be64(raw + 8 * i);
	free(raw);
	*out = l1;
	return 0;
fail:
	free(raw);
	free(l1);
	return ret;
}

int qcow2_update_l1_refcounts(struct qcow2_state *s, const uint64_t *l1, uint32_t l1_size,
			      int delta)
{
	uint64_t per = s->cluster_size / 8, cs = s->cluster_size;
	int ret = 0;

	for (uint32_t i = 0; i < l1_size && !ret; i++) {
		uint64_t l2off = l1[i] & QCOW2_OFFSET_MASK, off, len;
		unsigned idx;

		if (!l2off)
			continue;
		ret = qcow2_cache_get(s, &s->l2c, l2off, true, &idx);
		if (ret)
			break;
		const uint8_t *raw = qcow2_cache_data(&s->l2c, idx);
		for (uint64_t k = 0; k < per && !ret; k++) {
			uint64_t e = img_be64(raw + 8 * k);
			switch (qcow2_l2e_type(s, e)) {
			case QCOW2_COMPRESSED:
				qcow2_compressed_range(s, e, &off, &len);
				for (uint64_t c = off / cs; c <= (off + len - 1) / cs && !ret; c++)
					ret = qcow2_rc_add(s, c, delta);
				break;
			case QCOW2_NORMAL:
			case QCOW2_ZERO:
				if (e & QCOW2_OFFSET_MASK)
					ret = qcow2_rc_add(s, (e & QCOW2_OFFSET_MASK) / cs, delta);
				break;
			default:
				break;
			}
		}
		qcow2_cache_put(&s->l2c, idx);
		if (!ret)
			ret = qcow2_rc_add(s, l2off / cs, delta);
	}
	return ret;
}

static size_t sn_entry_size(const struct qcow2_snapshot *sn)
{
	return ALIGN_UP(SN_FIXED + sn->extra_size + strlen(sn->id) + strlen(sn->name), 8);
}

/* Write snaps[0..n) as the new table, switch the header to it, free the old one. */
static int write_table(struct qcow2_state *s, struct qcow2_snapshot *snaps, unsigned n)
{
	uint64_t bytes = 0, off = 0, old_off = s->snap_offset, old_bytes = s->snap_bytes;
	uint8_t *buf = NULL, *p;
	int ret = 0;

	for (unsigned i = 0; i < n; i++)
		bytes += sn_entry_size(&snaps[i]);
	if (bytes > QCOW2_MAX_SNAPTABLE_BYTES)
		return -EFBIG;
	if (bytes) {
		buf = calloc(1, ALIGN_UP(bytes, s->cluster_size));
		if (!buf)
			return -ENOMEM;
		p = buf;
		for (unsigned i = 0; i < n; i++) {
			const struct qcow2_snapshot *sn = &snaps[i];
			size_t idl = strlen(sn->id), nl = strlen(sn->name);
			img_put_be64(p, sn->l1_offset);
			img_put_be32(p + 8, sn->l1_size);
			img_put_be16(p + 12, (uint16_t)idl);
			img_put_be16(p + 14, (uint16_t)nl);
			img_put_be32(p + 16, sn->date_sec);
			img_put_be32(p + 20, sn->date_nsec);
			img_put_be64(p + 24, sn->vm_clock_nsec);
			img_put_be32(p + 32, sn->vm_state_size);
			img_put_be32(p + 36, sn->extra_size);
			memcpy(p + SN_FIXED, sn->extra, sn->extra_size);
			memcpy(p + SN_FIXED + sn->extra_size, sn->id, idl);
			memcpy(p + SN_FIXED + sn->extra_size + idl, sn->name, nl);
			p += sn_entry_size(sn);
		}
		ret = qcow2_alloc_clusters(s, ALIGN_UP(bytes, s->cluster_size) / s->cluster_size,
					   &off);
		if (!ret)
			ret = img_file_pwrite(s->im, buf, ALIGN_UP(bytes, s->cluster_size), off);
		if (!ret)
			ret = qcow2_refcount_flush(s);
		free(buf);
		if (ret)
			return ret;
	}
	s->snaps = snaps;
	s->nb_snaps = n;
	s->snap_offset = off;
	s->snap_bytes = bytes;
	ret = qcow2_header_update(s);
	if (!ret && old_bytes)
		ret = qcow2_free_deferred(s, old_off, ALIGN_UP(old_bytes, s->cluster_size));
	return ret;
}

static int find_snapshot(const struct qcow2_state *s, const char *id_or_name)
{
	for (unsigned i = 0; i < s->nb_snaps; i++)
		if (!strcmp(s->snaps[i].id, id_or_name))
			return (int)i;
	for (unsigned i = 0; i < s->nb_snaps; i++)
		if (!strcmp(s->snaps[i].name, id_or_name))
			return (int)i;
	return -1;
}

/* Common entry: exclusive lock, writable and sane image, metadata flushed. */
static int sn_begin(struct img *im, bool write)
{
	struct qcow2_state *s;
	int ret;

	if (!qcow2_is_qcow2(im))
		return -EINVAL;
	if (write && im->readonly)
		return -EROFS;
	s = im->priv;
	pthread_rwlock_wrlock(&s->io_lock);
	ret = s->broken ? -EIO : (write ? qcow2_meta_flush(s) : 0);
	if (ret)
		pthread_rwlock_unlock(&s->io_lock);
	return ret;
}

static int sn_end(struct qcow2_state *s, int ret)
{
	if (!ret)
		ret = qcow2_fix_copied(s);
	if (!ret)
		ret = qcow2_meta_flush(s);
	pthread_rwlock_unlock(&s->io_lock);
	return ret;
}

/* Allocate clusters for an L1 table of n entries and write l1 (without COPIED flags). */
static int write_l1_copy(struct qcow2_state *s, const uint64_t *l1, uint32_t have, uint32_t n,
			 uint64_t *off)
{
	uint64_t bytes = ALIGN_UP((uint64_t)n * 8, s->cluster_size);
	uint8_t *raw;
	int ret;

	*off = 0;
	if (!n)
		return 0;
	raw = calloc(1, bytes);
	if (!raw)
		return -ENOMEM;
	for (uint32_t i = 0; i < have && i < n; i++)
		img_put_be64(raw + 8 * i, l1[i] & ~QCOW2_OFLAG_COPIED);
	ret = qcow2_alloc_clusters(s, bytes / s->cluster_size, off);
	if (!ret)
		ret = img_file_pwrite(s->im, raw, bytes, *off);
	free(raw);
	return ret;
}

int qcow2_snapshot_create(struct img *im, const char *name)
{
	struct qcow2_snapshot *snaps, *sn;
	struct qcow2_state *s;
	unsigned long maxid = 0;
	struct timespec ts;
	char id[32];
	int ret;

	if (!name || strlen(name) > 255)
		return -EINVAL;
	ret = sn_begin(im, true);
	if (ret)
		return ret;
	s = im->priv;
	if (qcow2_rc_max(s) < 2) { /* a snapshot needs every cluster counted twice */
		pthread_rwlock_unlock(&s->io_lock);
		return -ENOTSUP;
	}
	if (*name && find_snapshot(s, name) >= 0) {
		pthread_rwlock_unlock(&s->io_lock);
		return -EEXIST;
	}
	if (s->nb_snaps >= QCOW2_MAX_SNAPSHOTS) {
		pthread_rwlock_unlock(&s->io_lock);
		return -ENOSPC;
	}
	for (unsigned i = 0; i < s->nb_snaps; i++) {
		unsigned long v = strtoul(s->snaps[i].id, NULL, 10);
		maxid = MAX(maxid, v);
	}
	snprintf(id, sizeof(id), "%lu", maxid + 1);
	snaps = calloc(s->nb_snaps + 1, sizeof(*snaps));
	if (!snaps) {
		pthread_rwlock_unlock(&s->io_lock);
		return -ENOMEM;
	}
	if (s->nb_snaps)
		memcpy(snaps, s->snaps, s->nb_snaps * sizeof(*snaps));
	sn = &snaps[s->nb_snaps];
	sn->id = strdup(id);
	sn->name = strdup(name);
	sn->extra = calloc(1, SN_EXTRA_NEW);
	if (!sn->id || !sn->name || !sn->extra) {
		ret = -ENOMEM;
		goto fail;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	sn->date_sec = (uint32_t)ts.tv_sec;
	sn->date_nsec = (uint32_t)ts.tv_nsec;
	sn->l1_size = s->l1_size;
	sn->disk_size = im->size;
	sn->extra_size = SN_EXTRA_NEW;
	img_put_be64(sn->extra + 8, im->size);
	img_put_be64(sn->extra + 16, UINT64_MAX); /* no instruction count recorded */
	/* Count the new references first: a crash from here on only leaks. */
	ret = qcow2_update_l1_refcounts(s, s->l1, s->l1_size, 1);
	if (!ret)
		ret = write_l1_copy(s, s->l1, s->l1_size, s->l1_size, &sn->l1_offset);
	if (!ret)
		ret = qcow2_fix_copied(s); /* nothing active is exclusively owned any more */
	if (!ret)
		ret = qcow2_meta_flush(s);
	if (!ret) {
		struct qcow2_snapshot *old = s->snaps;
		ret = write_table(s, snaps, s->nb_snaps + 1);
		if (!ret || s->snaps == snaps)
			free(old);
		if (!ret)
			return sn_end(s, 0);
	}
fail:
	free(sn->id);
	free(sn->name);
	free(sn->extra);
	if (s->snaps == snaps) { /* table written but header not: forget the new entry */
		s->nb_snaps--;
		return sn_end(s, ret);
	}
	free(snaps);
	return sn_end(s, ret);
}

int qcow2_snapshot_delete(struct img *im, const char *id_or_name)
{
	struct qcow2_state *s;
	struct qcow2_snapshot victim, *snaps;
	uint64_t *l1 = NULL;
	int i, ret;

	if (!id_or_name)
		return -EINVAL;
	ret = sn_begin(im, true);
	if (ret)
		return ret;
	s = im->priv;
	i = find_snapshot(s, id_or_name);
	if (i < 0) {
		pthread_rwlock_unlock(&s->io_lock);
		return -ENOENT;
	}
	victim = s->snaps[i];
	ret = qcow2_read_l1(s, victim.l1_offset, victim.l1_size, &l1);
	if (ret)
		return sn_end(s, ret);
	snaps = calloc(s->nb_snaps, sizeof(*snaps));
	if (!snaps) {
		free(l1);
		return sn_end(s, -ENOMEM);
	}
	for (unsigned k = 0, o = 0; k < s->nb_snaps; k++)
		if (k != (unsigned)i)
			snaps[o++] = s->snaps[k];
	{
		struct qcow2_snapshot *old = s->snaps;
		unsigned oldn = s->nb_snaps;
		ret = write_table(s, snaps, oldn - 1);
		if (ret) {
			s->snaps = old;
			s->nb_snaps = oldn;
			free(snaps);
			free(l1);
			return sn_end(s, ret);
		}
		free(old);
	}
	/* The header no longer names the snapshot: drop its references. */
	ret = qcow2_update_l1_refcounts(s, l1, victim.l1_size, -1);
	if (!ret && victim.l1_size)
		ret = qcow2_free_deferred(s, victim.l1_offset,
					  ALIGN_UP((uint64_t)victim.l1_size * 8, s->cluster_size));
	free(l1);
	free(victim.id);
	free(victim.name);
	free(victim.extra);
	return sn_end(s, ret);
}

int qcow2_snapshot_apply(struct img *im, const char *id_or_name)
{
	struct qcow2_state *s;
	const struct qcow2_snapshot *sn;
	uint64_t *snl1 = NULL, *old_l1, old_off, newoff, cs, need;
	uint32_t old_size, nsize;
	int i, ret;

	if (!id_or_name)
		return -EINVAL;
	ret = sn_begin(im, true);
	if (ret)
		return ret;
	s = im->priv;
	cs = s->cluster_size;
	i = find_snapshot(s, id_or_name);
	if (i < 0) {
		pthread_rwlock_unlock(&s->io_lock);
		return -ENOENT;
	}
	sn = &s->snaps[i];
	need = (sn->disk_size + (cs << s->l2_bits) - 1) / (cs << s->l2_bits);
	nsize = (uint32_t)MAX((uint64_t)sn->l1_size, need);
	ret = qcow2_read_l1(s, sn->l1_offset, sn->l1_size, &snl1);
	if (!ret && nsize > sn->l1_size) {
		uint64_t *g = realloc(snl1, (size_t)nsize * 8);
		if (!g)
			ret = -ENOMEM;
		else {
			memset(g + sn->l1_size, 0, (size_t)(nsize - sn->l1_size) * 8);
			snl1 = g;
		}
	}
	if (!ret)
		ret = qcow2_update_l1_refcounts(s, snl1, sn->l1_size, 1);
	if (!ret)
		ret = write_l1_copy(s, snl1, nsize, nsize, &newoff);
	if (!ret)
		ret = qcow2_refcount_flush(s);
	if (ret) {
		free(snl1);
		return sn_end(s, ret);
	}
	for (uint32_t k = 0; k < nsize; k++)
		snl1[k] &= ~QCOW2_OFLAG_COPIED;
	old_l1 = s->l1;
	old_size = s->l1_size;
	old_off = s->l1_offset;
	s->l1 = snl1;
	s->l1_size = nsize;
	s->l1_offset = newoff;
	s->l1_dirty = false;
	im->size = sn->disk_size;
	ret = qcow2_header_update(s);
	if (!ret)
		ret = qcow2_update_l1_refcounts(s, old_l1, old_size, -1);
	if (!ret && old_size)
		ret = qcow2_free_deferred(s, old_off, ALIGN_UP((uint64_t)old_size * 8, cs));
	free(old_l1);
	return sn_end(s, ret);
}

int qcow2_snapshot_list(struct img *im, struct qcow2_snapshot_info **out, unsigned *count)
{
	struct qcow2_state *s;
	struct qcow2_snapshot_info *v = NULL;

	if (!qcow2_is_qcow2(im) || !out || !count)
		return -EINVAL;
	s = im->priv;
	pthread_rwlock_rdlock(&s->io_lock);
	if (s->nb_snaps) {
		v = calloc(s->nb_snaps, sizeof(*v));
		if (!v) {
			pthread_rwlock_unlock(&s->io_lock);
			return -ENOMEM;
		}
	}
	for (unsigned i = 0; i < s->nb_snaps; i++) {
		const struct qcow2_snapshot *sn = &s->snaps[i];
		snprintf(v[i].id, sizeof(v[i].id), "%s", sn->id);
		snprintf(v[i].name, sizeof(v[i].name), "%s", sn->name);
		v[i].disk_size = sn->disk_size;
		v[i].vm_state_size = sn->extra_size >= 8 ? img_be64(sn->extra) : sn->vm_state_size;
		if (!v[i].vm_state_size)
			v[i].vm_state_size = sn->vm_state_size;
		v[i].date_sec = sn->date_sec;
		v[i].date_nsec = sn->date_nsec;
		v[i].vm_clock_nsec = sn->vm_clock_nsec;
	}
	*count = s->nb_snaps;
	*out = v;
	pthread_rwlock_unlock(&s->io_lock);
	return 0;
}

int qcow2_snapshot_pread(struct img *im, const char *id_or_name, void *buf, size_t len,
			 uint64_t off)
{
	struct qcow2_state *s;
	struct iovec v = { buf, len };
	uint64_t *l1 = NULL, end;
	int i, ret;

	if (!qcow2_is_qcow2(im) || !id_or_name || (len && !buf))
		return -EINVAL;
	s = im->priv;
	pthread_rwlock_rdlock(&s->io_lock);
	i = find_snapshot(s, id_or_name);
	if (i < 0) {
		ret = -ENOENT;
	} else if (add_overflows(off, (uint64_t)len, &end) || end > s->snaps[i].disk_size) {
		ret = -EINVAL;
	} else {
		ret = qcow2_read_l1(s, s->snaps[i].l1_offset, s->snaps[i].l1_size, &l1);
		if (!ret && len)
			ret = qcow2_read_chain(s, l1, s->snaps[i].l1_size, &v, 1, off, len);
	}
	pthread_rwlock_unlock(&s->io_lock);
	free(l1);
	return ret;
}
