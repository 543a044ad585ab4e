/* SPDX-License-Identifier: MIT */
/*
 * qcow2 driver internals shared by qcow2*.c. Not for use outside src/block.
 *
 * Locking: io_lock is a rwlock. Reads, and writes that land in clusters this image owns
 * exclusively (COPIED), run under the shared side; they touch the metadata caches only
 * with meta_lock held. Everything that changes metadata (allocation, discard, zeroes,
 * flush, snapshots, check, resize) holds io_lock exclusively and then needs no meta_lock.
 *
 * Write ordering (see qcow2_meta_flush): a new cluster's refcount is raised in the
 * refcount cache when it is allocated; its data is written at once; the L2 entry that
 * references it is changed in the L2 cache. A flush (or evicting a dirty L2 table)
 * writes refcount blocks, syncs, writes L2 tables, syncs, writes the L1 table and syncs.
 * Decrements wait in s->pending until the tables that dropped the reference are synced.
 */
#ifndef VIREO_BLOCK_QCOW2_INT_H
#define VIREO_BLOCK_QCOW2_INT_H

#include "block/img_priv.h"
#include "block/qcow2.h"

#include <pthread.h>
#include <zlib.h>
#include <zstd.h>

#define QCOW2_MAGIC 0x514649fbu
#define QCOW2_V2_HDR_LEN 72u
#define QCOW2_V3_HDR_LEN 104u

#define QCOW2_INCOMPAT_DIRTY (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ull << 4)
#define QCOW2_INCOMPAT_KNOWN (QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT | QCOW2_INCOMPAT_COMPRESSION)
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ull << 0)

#define QCOW2_EXT_END 0u
#define QCOW2_EXT_BACKING_FMT 0xe2792acau
#define QCOW2_EXT_FEATURES 0x6803f857u
#define QCOW2_EXT_BITMAPS 0x23852875u
#define QCOW2_EXT_CRYPTO 0x0537be77u
#define QCOW2_EXT_DATA_FILE 0x44415441u

#define QCOW2_OFLAG_COPIED (1ull << 63)
#define QCOW2_OFLAG_COMPRESSED (1ull << 62)
#define QCOW2_OFLAG_ZERO (1ull << 0)
#define QCOW2_OFFSET_MASK 0x00fffffffffffe00ull /* L1 and L2 (standard) entries */
#define QCOW2_L1_RESERVED 0x7f000000000001ffull
#define QCOW2_L2_RESERVED 0x3f000000000001feull
#define QCOW2_REFT_OFFSET_MASK 0xfffffffffffffe00ull

#define QCOW2_MAX_L1_BYTES (32u << 20)
#define QCOW2_MAX_REFTABLE_BYTES (8u << 20)
#define QCOW2_MAX_SNAPSHOTS 65536u
#define QCOW2_MAX_SNAPTABLE_BYTES (64u << 20)
#define QCOW2_MAX_BACKING_NAME 1023u
#define QCOW2_IOV_MAX 256 /* iovecs handled per call (stack arrays); more are split */
#define QCOW2_PENDING_MAX 8192
#define QCOW2_COMPRESSION_ZLIB 0
#define QCOW2_COMPRESSION_ZSTD 1

/* Kind of an L2 entry. */
enum qcow2_ctype { QCOW2_UNALLOC, QCOW2_ZERO, QCOW2_NORMAL, QCOW2_COMPRESSED };

struct qcow2_cache {
	unsigned n;
	size_t size;	  /* bytes per entry: one cluster */
	uint8_t *data;	  /* n * size, aligned for O_DIRECT */
	uint64_t *offset; /* host offset of each entry; 0 = empty */
	uint64_t *lru;
	uint32_t *pins;
	bool *dirty;
	uint64_t tick;
	unsigned last; /* entry of the last hit, tried first */
	bool is_l2;    /* writing back a dirty L2 needs the refcounts on disk first */
};

struct qcow2_snapshot {
	uint64_t l1_offset;
	uint32_t l1_size;
	char *id, *name;
	uint32_t date_sec, date_nsec;
	uint64_t vm_clock_nsec;
	uint32_t vm_state_size;
	uint64_t disk_size; /* from extra data; else the image size at open */
	uint32_t extra_size;
	uint8_t *extra; /* extra data as read, kept when the table is rewritten */
};

struct qcow2_check_ctx {
	uint32_t *refs; /* references found per host cluster */
	uint8_t *kind;	/* what uses each cluster (overlap detection) */
	uint64_t n;	/* clusters covered by refs/kind */
	bool oom;
};

struct qcow2_state {
	struct img *im;
	/* header */
	uint8_t *hdr;	    /* header_length bytes as on disk, patched on update */
	unsigned hdr_len;
	unsigned version, cluster_bits, l2_bits, refcount_order, compression;
	uint64_t cluster_size;
	uint64_t incompat, compat, autoclear;
	char *backing_file, *backing_fmt;
	/* active L1 table */
	uint64_t *l1;
	uint32_t l1_size;
	uint64_t l1_offset;
	bool l1_dirty;
	/* refcounts */
	uint64_t *reftable;
	uint64_t reftable_size; /* entries */
	uint64_t reftable_offset;
	uint64_t *rb_sorted; /* sorted refcount block offsets, for overlap checks */
	uint64_t rb_nsorted;
	uint64_t rb_entries; /* refcounts per block */
	uint64_t free_hint;  /* no free cluster below this index */
	uint64_t inflight_start, inflight_n; /* run being allocated (not yet counted) */
	uint64_t *pending;   /* host offsets (cluster-aligned) waiting for a decrement */
	size_t npending, pending_cap;
	struct qcow2_check_ctx *chk; /* during check: references found (never allocate these) */
	/* caches */
	struct qcow2_cache l2c, rbc;
	/* snapshots */
	struct qcow2_snapshot *snaps;
	unsigned nb_snaps;
	uint64_t snap_offset, snap_bytes;
	/* locks and buffers */
	pthread_rwlock_t io_lock;
	pthread_mutex_t meta_lock;
	pthread_mutex_t comp_lock; /* decompression buffers/contexts */
	uint8_t *cow;		   /* 2 clusters, exclusive-lock users only */
	uint8_t *comp_in, *comp_out;
	z_stream zs;
	bool zs_ready;
	ZSTD_DCtx *zctx;
	uint64_t comp_cached; /* descriptor whose data is in comp_out (0 = none) */
	/* compressed writes (exclusive lock): contexts, buffers, the next free byte */
	z_stream czs;
	bool czs_ready;
	ZSTD_CCtx *zcctx;
	uint8_t *cw_in, *cw_out;
	uint64_t comp_next; /* inside a host cluster compressed data owns; 0 = none */
	bool broken; /* metadata inconsistency seen: no more writes */
};

static inline struct qcow2_state *qcow2_st(struct img *im)
{
	return im->priv;
}

/* qcow2.c */
int qcow2_header_update(struct qcow2_state *s) WUR; /* rewrite the fixed header fields */
bool qcow2_overlaps_meta(const struct qcow2_state *s, uint64_t off, uint64_t len);
void qcow2_set_broken(struct qcow2_state *s, const char *why);
bool qcow2_is_qcow2(const struct img *im);

/* qcow2_cache.c */
int qcow2_cache_init(struct qcow2_cache *c, unsigned n, size_t size, bool is_l2) WUR;
void qcow2_cache_fini(struct qcow2_cache *c);
/* Find or load (load=false: zero-filled new table) the table at host offset off, pinned. */
int qcow2_cache_get(struct qcow2_state *s, struct qcow2_cache *c, uint64_t off, bool load,
		    unsigned *idx) WUR;
static inline void *qcow2_cache_data(struct qcow2_cache *c, unsigned idx)
{
	return c->data + (size_t)idx * c->size;
}
void qcow2_cache_put(struct qcow2_cache *c, unsigned idx);
void qcow2_cache_mark_dirty(struct qcow2_cache *c, unsigned idx);
int qcow2_cache_writeback(struct qcow2_state *s, struct qcow2_cache *c) WUR;
void qcow2_cache_drop(struct qcow2_cache *c, uint64_t off);
void qcow2_cache_drop_all(struct qcow2_cache *c);

/* qcow2_refcount.c */
int qcow2_refcount_init(struct qcow2_state *s, char *err, size_t errlen) WUR;
void qcow2_refcount_fini(struct qcow2_state *s);
uint64_t qcow2_rc_max(const struct qcow2_state *s);
int qcow2_rc_get(struct qcow2_state *s, uint64_t cluster, uint64_t *rc) WUR;
int qcow2_rc_set(struct qcow2_state *s, uint64_t cluster, uint64_t rc) WUR;
int qcow2_rc_add(struct qcow2_state *s, uint64_t cluster, int64_t delta) WUR;
/* Allocate n contiguous clusters (n <= 2^20), refcount 1 each. */
int qcow2_alloc_clusters(struct qcow2_state *s, uint64_t n, uint64_t *host) WUR;
/* Queue a decrement of every cluster in [host, host+len) for after the next L2/L1 sync. */
int qcow2_free_deferred(struct qcow2_state *s, uint64_t host, uint64_t len) WUR;
/* Queue the decrement of whatever an L2 entry references (no-op for unallocated). */
int qcow2_free_l2e_deferred(struct qcow2_state *s, uint64_t l2e) WUR;
/* The ordered flush of all metadata (see the top of this file). */
int qcow2_meta_flush(struct qcow2_state *s) WUR;
/* Write dirty refcount blocks and sync: what must precede writing any L2 table. */
int qcow2_refcount_flush(struct qcow2_state *s) WUR;
bool qcow2_is_refblock(const struct qcow2_state *s, uint64_t off);

/* qcow2_cluster.c */
enum qcow2_ctype qcow2_l2e_type(const struct qcow2_state *s, uint64_t l2e);
/* Host byte range [*off, *off+*len) holding a compressed cluster's data. */
void qcow2_compressed_range(const struct qcow2_state *s, uint64_t l2e, uint64_t *off,
			    uint64_t *len);
int qcow2_l2_validate(struct qcow2_state *s, const uint64_t *l2, uint64_t l2_off,
		      uint64_t fsize) WUR;
int qcow2_l2_entry(struct qcow2_state *s, const uint64_t *l1, uint32_t l1_size, uint64_t gcl,
		   uint64_t *l2e) WUR;
/* Read guest [off, off+len) through an L1 table (active or a snapshot's) into iov. */
int qcow2_read_chain(struct qcow2_state *s, const uint64_t *l1, uint32_t l1_size,
		     const struct iovec *iov, int iovcnt, uint64_t off, size_t len) WUR;
/* Fill buf (one cluster) with the current contents of guest cluster gcl, entry l2e. */
int qcow2_read_cluster_old(struct qcow2_state *s, uint64_t gcl, uint64_t l2e, uint8_t *buf) WUR;
/* Up to n entries of guest clusters gcl.. that share one L2 table (meta_lock or exclusive). */
int qcow2_l2_entries(struct qcow2_state *s, const uint64_t *l1, uint32_t l1_size, uint64_t gcl,
		     uint64_t n, uint64_t *out, uint64_t *got) WUR;
/* qcow2_write.c */
int qcow2_do_preadv(struct img *im, const struct iovec *iov, int iovcnt, uint64_t off) WUR;
int qcow2_do_pwritev(struct img *im, const struct iovec *iov, int iovcnt, uint64_t off) WUR;
int qcow2_do_discard(struct img *im, uint64_t off, uint64_t len) WUR;
int qcow2_do_write_zeroes(struct img *im, uint64_t off, uint64_t len, bool may_unmap) WUR;
int qcow2_do_map(struct img *im, uint64_t off, uint64_t len, struct img_extent *ext) WUR;
/* Exclusive lock held: guest clusters [gcl, gcl+n) become unallocated (entries 0). */
int qcow2_unmap_clusters(struct qcow2_state *s, uint64_t gcl, uint64_t n) WUR;
/* Exclusive lock held: img_write_zeroes semantics (zero clusters where possible). */
int qcow2_write_zeroes_locked(struct qcow2_state *s, uint64_t off, uint64_t len,
			      bool may_unmap) WUR;
/* Exclusive lock held: write real zeroes to guest [off, off+len) through the data path. */
int qcow2_zero_data_locked(struct qcow2_state *s, uint64_t off, uint64_t len) WUR;
/* Exclusive lock held: the L2 table for L1 index l1i, made private (COW) or allocated. */
int qcow2_l2_writable(struct qcow2_state *s, uint64_t l1i, unsigned *idx) WUR;
/* Exclusive lock held: set COPIED exactly where refcount is 1 in the active tables. */
int qcow2_fix_copied(struct qcow2_state *s) WUR;

/* qcow2_compress.c */
int qcow2_decompress_cluster(struct qcow2_state *s, uint64_t l2e, uint8_t **out) WUR;
void qcow2_compress_fini(struct qcow2_state *s);
/* qcow2_compress_write.c */
void qcow2_compress_write_fini(struct qcow2_state *s);

/* qcow2_snapshot.c */
int qcow2_snapshot_load(struct qcow2_state *s, uint64_t file_size, char *err,
			size_t errlen) WUR;
void qcow2_snapshot_free(struct qcow2_state *s);
/* Walk an L1 table adding delta to the refcount of every L2 table and cluster it uses. */
int qcow2_update_l1_refcounts(struct qcow2_state *s, const uint64_t *l1, uint32_t l1_size,
			      int delta) WUR;
int qcow2_read_l1(struct qcow2_state *s, uint64_t off, uint32_t n, uint64_t **out) WUR;

/* qcow2_check.c */
/* A cluster allocated for refcount metadata while a repair runs: count it as used. */
void qcow2_check_note_alloc(struct qcow2_state *s, uint64_t cluster);
int qcow2_check_locked(struct qcow2_state *s, enum qcow2_repair mode,
		       struct qcow2_check_result *res) WUR;

#endif
