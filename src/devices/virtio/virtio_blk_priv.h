/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk internals shared by its two halves (not for other modules):
 *   virtio_blk.c      device side: completions, notifications, configuration, reset,
 *                     create/destroy, statistics;
 *   virtio_blk_req.c  request side: descriptor chain -> validated request -> backend
 *                     request(s), and the merging of adjacent reads or writes of one batch.
 * Locking is the one described in virtio_blk.h: every function here that touches a queue
 * runs with that queue's lock held, and only while the queue runs (vblk_queue_notify says
 * why that makes the device lock unnecessary).
 *
 * Merging (virtio_blk_req.c): within one vblk_process() run on one queue, consecutive
 * READs (or consecutive WRITEs with the same FUA flag) whose byte ranges follow each
 * other, whose buffers are logical-block aligned, are sent to the backend as ONE request
 * over their concatenated iovecs (at most VBLK_MERGE_MAX_IOV iovecs and
 * VBLK_MERGE_MAX_BYTES bytes). Any other request ends the run first, so submission order
 * is the guest's order (a FLUSH is submitted after every write before it). Each member
 * stays a request of its own (in flight, counted, cancelled on reset); the merged I/O's
 * one result completes them all (an error fails every member with IOERR).
 */
#ifndef VIREO_DEVICES_VIRTIO_VIRTIO_BLK_PRIV_H
#define VIREO_DEVICES_VIRTIO_VIRTIO_BLK_PRIV_H

#include "devices/virtio/virtio_blk.h"
#include "devices/virtio/virtio.h"
#include "block/block.h"

#include <limits.h>
#include <pthread.h>

#define VBLK_HDR_SIZE sizeof(struct virtio_blk_outhdr)
#define VBLK_SEG_SIZE sizeof(struct virtio_blk_dwz_seg)

/* Backend iovecs kept inside a pooled request; longer chains get their own allocation. */
#define VBLK_INLINE_IOV 16
/* Merged host I/O limits: the backend takes at most IOV_MAX iovecs; the size cap keeps
 * one merged I/O from pinning much guest memory or delaying its first member for long. */
#define VBLK_MERGE_MAX_IOV (IOV_MAX < 1024 ? IOV_MAX : 1024)
#define VBLK_MERGE_MAX_BYTES (2u << 20)
#define VBLK_MERGE_POOL 8

struct vblk_queue;
struct vblk_merge;

/* One guest request in flight: up to VIRTIO_BLK_MAX_DWZ_SEG backend requests. */
struct vblk_req {
	struct vblk_req *next, *prev; /* the queue's in-flight list, or its free list */
	struct vblk_queue *vq;
	uint16_t head;
	bool pooled;	/* from the queue's free list (one sub, VBLK_INLINE_IOV iovecs) */
	bool cancelled; /* the device was reset: touch nothing of the guest's */
	uint32_t type;
	uint8_t *status;
	uint32_t used_len;
	uint64_t bytes;
	unsigned pending; /* backend requests not completed */
	int err;	  /* first backend error */
	uint64_t sector;  /* for log messages */
	struct blk_req *sub;
	struct iovec *iov;
	struct vblk_req *mnext; /* next member of the same merge run / merged I/O */
};

/* A pooled request: the common single-range read or write without an allocation. */
struct vblk_req_pooled {
	struct vblk_req r;
	struct blk_req sub;
	struct iovec iov[VBLK_INLINE_IOV];
};

/* Several guest requests sent as one backend request (pooled per queue). */
struct vblk_merge {
	struct vblk_merge *next; /* the queue's free list */
	struct vblk_queue *vq;
	struct vblk_req *members; /* linked through mnext, in guest order */
	struct blk_req io;
	struct iovec iov[VBLK_MERGE_MAX_IOV];
};

/* The read/write run being collected by one vblk_process() call (not yet submitted). */
struct vblk_run {
	struct vblk_req *first, *last;
	unsigned n;
	unsigned iovcnt;
	uint64_t bytes;
};

/*
 * One request queue. Its lock covers the virtqueue's ring state while the queue runs, its
 * requests and counters: completions take only this lock, so queues complete
 * independently. Lock order: device lock -> queue lock -> backend lock.
 */
struct vblk_queue {
	pthread_mutex_t lock;
	struct virtio_blk *blk;
	unsigned index;
	bool running;	/* activated and not reset: the ring may be touched */
	bool throttled; /* left alone because too many requests are in flight */
	unsigned inflight;
	struct vblk_req *inflight_list;
	struct vblk_req *free_list;
	struct vblk_merge *merge_free;
	unsigned merge_free_n; /* kept at most VBLK_MERGE_POOL (16 KiB each) */
	struct virtio_blk_stats stats;
	struct vq_chain chain; /* scratch for the chain being parsed */
};

struct virtio_blk {
	struct virtio_dev vdev;
	struct virtio_dev_ops ops; /* per device: queue count and features depend on the disk */
	struct virtio_pci *pci;
	struct blk_backend *be;
	struct blk_info info;
	uint64_t capacity; /* sectors */
	unsigned lbs;	   /* logical block bytes */
	unsigned nq;
	struct vblk_queue *qs; /* [nq] */

	/* Protected by the device lock (cfg.writeback is also read atomically by queues). */
	struct virtio_blk_config cfg; /* what the guest reads; writeback is guest-writable */
	uint8_t initial_wce;
	/* Atomics, shared by every queue. */
	bool stopped;	      /* malformed chain: no new requests until reset */
	bool dying;	      /* being destroyed: completions only free their requests */
	uint64_t signal_mask; /* queues with pushes since the last interrupt decision */
	uint64_t throttled;   /* queues waiting for completions to make room */
};

/* --- virtio_blk.c (completion side) --- */

/* Queue locked. Write the status, return the chain; the interrupt comes with the batch. */
void vblk_answer(struct virtio_blk *b, struct vblk_queue *vq, uint16_t head, uint8_t *status,
		 uint32_t used_len, uint32_t type, uint64_t bytes, uint8_t st);
void vblk_mark_signal(struct virtio_blk *b, unsigned q);
bool vblk_writeback(const struct virtio_blk *b);
/* Backend completion of one request's own backend request(s). */
void vblk_sub_done(struct blk_req *br, int res);
/* Backend completion of a merged I/O: completes every member with res. */
void vblk_merge_done(struct blk_req *br, int res);

/* --- virtio_blk_req.c (request side) --- */

/* Queue locked and running (the device lock may be held too). Take requests from the
 * queue until it is empty, broken or full; true if the caller must blk_kick() (after
 * dropping the queue lock). */
bool vblk_process(struct virtio_blk *b, struct vblk_queue *vq);

#endif
