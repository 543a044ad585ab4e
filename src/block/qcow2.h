/* SPDX-License-Identifier: MIT */
/*
 * qcow2 images: the operations beyond struct img_ops that `vireo img` needs
 * (create, check, resize, snapshots, commit). Reading and writing go through image.h
 * (img_open(..., "qcow2", ...)).
 *
 * What the driver does (see docs in each file for details):
 * - versions 2 and 3, read-write; cluster sizes 512 B..2 MiB; refcount widths 1..64 bits;
 *   compressed clusters (deflate, zstd) read and written (qcow2_write_compressed);
 *   internal snapshots; backing chains.
 * - Metadata updates follow one order so a crash can leak clusters but never make two
 *   owners of one cluster or expose stale data: data, then refcounts, then L2, then L1
 *   and header (fdatasync between each step). Refcount decrements are applied only after
 *   the tables that stopped referencing the cluster are on disk.
 * - Refused: encryption, external data files, extended L2 (subclusters), unknown
 *   incompatible features. Writable opens refuse the corrupt bit (unless IMG_O_REPAIR)
 *   and repair a dirty image (leaks / refcounts rebuilt) before use. Metadata found
 *   inconsistent while running stops all writes and sets the corrupt bit (v3).
 * - The virtual size is a whole number of 512-byte sectors (rounded down at open).
 * - Discard drops whole clusters only (partial ones keep their data); afterwards they
 *   read as zeroes, except in a v2 image with a backing file (backing data shows).
 * - Locking and cache modes come from image.c (IMG_O_*).
 *
 * Every function here takes a struct img opened as "qcow2" (else -EINVAL), is safe to
 * call while other threads do I/O on the image (it takes the image's exclusive lock),
 * and returns 0 or -errno; where an `err` buffer is taken it receives a one-line reason.
 */
#ifndef VIREO_BLOCK_QCOW2_H
#define VIREO_BLOCK_QCOW2_H

#include "block/image.h"

enum qcow2_prealloc {
	QCOW2_PREALLOC_OFF = 0,
	QCOW2_PREALLOC_METADATA, /* L2 tables and data clusters allocated, file sparse */
	QCOW2_PREALLOC_FULL,	 /* as metadata, and the data clusters fallocated */
};

struct qcow2_create_opts {
	uint64_t size;		  /* virtual size in bytes, rounded up to 512; 0 = backing's size */
	unsigned cluster_size;	  /* power of two 512..2 MiB; 0 = 64 KiB */
	const char *backing_file; /* NULL = none; stored as given (relative = to the image's dir) */
	const char *backing_fmt;  /* format of backing_file ("raw", "qcow2"...); NULL = "raw" */
	unsigned version;	  /* 2 or 3; 0 = 3 */
	unsigned refcount_bits;	  /* 1, 2, 4, ..., 64; 0 = 16 */
	enum qcow2_prealloc prealloc;
	const char *compression;  /* "zlib" or "zstd" (version 3 only); NULL = "zlib" */
};

/* Create (or truncate) `path` as a new qcow2 image. */
int qcow2_create(const char *path, const struct qcow2_create_opts *opts, char *err,
		 size_t errlen) WUR;

struct qcow2_check_result {
	uint64_t corruptions;	    /* refcount lower than references, bad COPIED flags, ... */
	uint64_t leaks;		    /* refcount higher than references */
	uint64_t corruptions_fixed; /* with repair */
	uint64_t leaks_fixed;	    /* with repair */
	uint64_t out_of_range;	    /* table entries / offsets beyond the file or unaligned */
	uint64_t overlaps;	    /* one cluster used as two kinds of metadata, or metadata+data */
	uint64_t allocated_clusters; /* guest clusters allocated in the active table */
	uint64_t total_clusters;    /* guest clusters of the virtual disk */
	uint64_t image_end_offset;  /* end of the last cluster referenced or refcounted */
};

/*
 * Walk every table (active, snapshots, refcounts) and compare the stored refcounts with
 * the references found. repair = true (image must be writable) fixes leaks, refcounts
 * that are too low and wrong COPIED flags; out-of-range entries and overlaps are counted
 * but left alone. A repair that leaves nothing unfixed clears the image's dirty and
 * corrupt marks (open with IMG_O_REPAIR to reach a corrupt image writable). Returns 0
 * when the walk completed (look at the counters), -errno when it could not.
 */
int qcow2_check(struct img *im, bool repair, struct qcow2_check_result *res) WUR;

/* What a repair may change (qemu-img check -r leaks / -r all). */
enum qcow2_repair {
	QCOW2_REPAIR_NONE = 0,
	QCOW2_REPAIR_LEAKS, /* lower refcounts that are too high; leave every corruption alone */
	QCOW2_REPAIR_ALL,   /* also raise refcounts that are too low and fix COPIED flags */
};
/* qcow2_check with a repair mode (qcow2_check(im, true, r) is QCOW2_REPAIR_ALL). */
int qcow2_check_repair(struct img *im, enum qcow2_repair mode,
		       struct qcow2_check_result *res) WUR;

/*
 * Change the virtual size (rounded up to 512 bytes). Growing extends the L1 table when needed. Shrinking discards
 * everything beyond the new size. Refused (-ENOTSUP) while internal snapshots exist.
 * Updates im->size on success.
 */
int qcow2_resize(struct img *im, uint64_t new_size) WUR;

struct qcow2_snapshot_info {
	char id[32];	/* unique id string ("1", "2", ...) */
	char name[256]; /* user name (may be empty) */
	uint64_t disk_size;
	uint64_t vm_state_size;
	uint32_t date_sec, date_nsec;
	uint64_t vm_clock_nsec;
};

/* List the internal snapshots: *out (free() it) gets *count entries (NULL when 0). */
int qcow2_snapshot_list(struct img *im, struct qcow2_snapshot_info **out, unsigned *count) WUR;
/* Create a snapshot of the current disk state (no VM state). -EEXIST if the name is taken. */
int qcow2_snapshot_create(struct img *im, const char *name) WUR;
/* Delete by id or name (id tried first). -ENOENT if none. */
int qcow2_snapshot_delete(struct img *im, const char *id_or_name) WUR;
/* Revert the disk to a snapshot (the snapshot stays). May change im->size. */
int qcow2_snapshot_apply(struct img *im, const char *id_or_name) WUR;
/* Read from a snapshot's disk state (backing file shows through unallocated clusters). */
int qcow2_snapshot_pread(struct img *im, const char *id_or_name, void *buf, size_t len,
			 uint64_t off) WUR;

struct qcow2_commit_opts {
	bool keep;	 /* leave `im`'s clusters in place (qemu-img commit -d) */
	/* Called from the committing thread as clusters are copied; may be NULL. */
	void (*progress)(void *opaque, uint64_t done, uint64_t total);
	void *opaque;
};

/*
 * Write every cluster allocated in `im` (data and zeroes) into its backing file, which
 * is reopened writable for the duration (fails with -EBUSY when another process has it
 * open). A backing file smaller than `im` is grown (raw and qcow2). Then, as qemu-img
 * commit does, `im` is emptied (every cluster of the active table unallocated, so it
 * reads through to the backing file), unless opts->keep. opts NULL = defaults.
 * Requires a writable `im` with a backing file.
 */
int qcow2_commit(struct img *im, const struct qcow2_commit_opts *opts, char *err,
		 size_t errlen) WUR;

/*
 * Write guest [off, off+len) as one compressed cluster (`vireo img convert -c`): off is
 * cluster-aligned and len is the cluster size, or what is left of the disk for its last
 * cluster (the rest reads as zeroes). Data that does not compress smaller than a cluster
 * is written as a normal cluster. Compressed clusters share host clusters (byte-packed).
 * A later normal write to the cluster decompresses it (copy-on-write).
 */
int qcow2_write_compressed(struct img *im, const void *buf, size_t len, uint64_t off) WUR;

/* Facts for `vireo img info`. Strings point into the image's state (valid until close). */
struct qcow2_info {
	unsigned version;
	unsigned cluster_size;
	unsigned refcount_bits;
	const char *compression; /* "zlib" or "zstd" */
	const char *backing_file; /* NULL if none */
	const char *backing_fmt;  /* NULL if none recorded */
	unsigned nb_snapshots;
	bool dirty, corrupt, lazy_refcounts;
};
int qcow2_get_info(struct img *im, struct qcow2_info *info) WUR;

#endif
