/* SPDX-License-Identifier: MIT */
/*
 * Asynchronous block backends: what a disk device (virtio-blk) submits its requests to.
 *
 * Engines, one const struct blk_backend_ops each (src/block/blk_backend.h):
 *   "io_uring"  raw files and block devices through io_uring (the default for raw);
 *   "threads"   raw files and block devices through a small thread pool (io_uring
 *               unavailable, or asked for: aio=threads or VIREO_BLK_ENGINE=threads);
 *   "image"     any struct img (src/block/image.h: qcow2, ...) run on the thread pool.
 *
 * Contract:
 * - blk_submit() queues a request; nothing is started before the next blk_kick() (submit a
 *   batch, kick once). Both run on whatever thread the device processes a queue on; with
 *   several queues (or --io-threads) different threads call them at the same time, which
 *   is safe: both take the backend lock. Without an evloop (blk_poll), the io_uring engine hands a
 *   kicked batch to the host at the next blk_poll(), submitting and waiting in one system
 *   call as fio does (such a caller must poll to make progress anyway); blk_poll then
 *   holds the backend lock until the first completion or the timeout.
 * - READ/WRITE iovecs point straight into guest memory; the data is never copied. The
 *   backend may rewrite the iovec array (not the memory it points to) while the request is
 *   in flight, to continue after a short transfer.
 * - Every submitted request completes exactly once through req->done(req, result), never
 *   from inside blk_submit/blk_kick/blk_drain: completions are delivered on the thread
 *   that runs the completion handler, i.e. the evloop passed to blk_open() (the I/O
 *   thread), or the caller of blk_poll() when that loop is NULL (unit tests). No backend
 *   lock is held during done(), so it may take the device's lock. result is 0 or -errno
 *   (-ENOSPC, -EIO, ... as the host reported them; -EINVAL out of range; -EROFS write to
 *   a read-only disk; -ECANCELED dropped by blk_drain before it started).
 * - Nothing completes before the backend finished it: a read's data is in its buffers, a
 *   write was handed to the host (on stable storage if FUA or cache=writethrough), and a
 *   FLUSH completes only after every READ/WRITE/DISCARD/WRITE_ZEROES submitted before it
 *   has completed and the host flush (fdatasync) succeeded.
 * - blk_drain() returns once no request touches its buffers any more: requests not yet
 *   started are cancelled (-ECANCELED), started ones are waited for. Their done() calls
 *   are still delivered afterwards, on the completion thread. Use it on device reset, with
 *   the device lock held (lock order: device lock -> backend lock).
 * - Cache modes: writeback (host page cache, flush = fdatasync), writethrough (every write
 *   is durable before it completes), none (O_DIRECT, flush = fdatasync; guest buffers must
 *   meet the host's O_DIRECT alignment, 512 bytes on common hardware, or the request fails
 *   with -EINVAL), unsafe (flush is a no-op: scratch disks only).
 * - Raw disks take an OFD lock on the file (exclusive when writable, shared read-only), so
 *   two VMs cannot open the same writable disk. Image formats lock through img_open().
 *   The format is always named by the user ("raw" by default), never guessed.
 */
#ifndef VIREO_BLOCK_BLOCK_H
#define VIREO_BLOCK_BLOCK_H

#include "common/compiler.h"
#include <limits.h>
#include <sys/uio.h>

struct evloop;
struct blk_backend;

#define BLK_SECTOR_SIZE 512u
#define BLK_SERIAL_MAX 20 /* bytes of a virtio-blk serial (GET_ID) */
#define BLK_FORMAT_MAX 16

enum blk_cache { BLK_CACHE_WRITEBACK, BLK_CACHE_WRITETHROUGH, BLK_CACHE_NONE, BLK_CACHE_UNSAFE };
/* IMAGE runs even a raw disk through image.h on the thread pool (tests). */
enum blk_engine { BLK_ENGINE_AUTO, BLK_ENGINE_URING, BLK_ENGINE_THREADS, BLK_ENGINE_IMAGE };

struct blk_config {
	char path[PATH_MAX];
	char format[BLK_FORMAT_MAX]; /* "raw" (default), "qcow2", "vmdk", "vhd" */
	bool readonly;
	enum blk_cache cache;	      /* default writeback */
	enum blk_engine engine;	      /* raw only; default auto (io_uring, else threads) */
	char serial[BLK_SERIAL_MAX + 1]; /* NUL-terminated; "" = none */
};

/* Defaults: empty path, "raw", writable, writeback, auto engine, no serial. */
void blk_config_defaults(struct blk_config *cfg);
/*
 * Parse a --disk argument: PATH[,format=raw|qcow2|vmdk|vhd][,readonly=on|off]
 * [,cache=writeback|writethrough|none|unsafe][,serial=S][,aio=auto|io_uring|threads].
 * A comma inside PATH is written ",,". cfg is reset to the defaults first. On error, err
 * holds one line ("--disk: unknown option 'foo' (...)") and -EINVAL is returned.
 */
int blk_parse_disk_opt(const char *arg, struct blk_config *cfg, char *err, size_t errlen) WUR;
const char *blk_cache_name(enum blk_cache c);

enum blk_op { BLK_OP_READ, BLK_OP_WRITE, BLK_OP_FLUSH, BLK_OP_DISCARD, BLK_OP_WRITE_ZEROES };

#define BLK_REQ_FUA (1u << 0)	/* WRITE/WRITE_ZEROES: durable before completion */
#define BLK_REQ_UNMAP (1u << 1) /* WRITE_ZEROES: the range may be deallocated */

struct blk_req;
typedef void (*blk_done_fn)(struct blk_req *req, int result);

struct blk_req {
	/* Filled by the submitter. */
	enum blk_op op;
	unsigned flags;	  /* BLK_REQ_* */
	uint64_t offset;  /* bytes; unused for FLUSH */
	uint64_t len;	  /* DISCARD/WRITE_ZEROES bytes; READ/WRITE: set by blk_submit */
	struct iovec *iov; /* READ/WRITE buffers (count <= IOV_MAX) */
	int iovcnt;
	blk_done_fn done;
	void *opaque;

	/* Private to the block layer. */
	struct blk_req *next, *prev;	   /* queue links (pending, engine queues, done) */
	struct blk_req *io_next, *io_prev; /* in-flight order, for FLUSH ordering */
	uint64_t seq;
	uint64_t progress; /* bytes done, for short transfers and zero-writing */
	int result;
	unsigned stage; /* engine-specific step of a multi-step request */
};

/* What the device needs to describe the disk to the guest. */
struct blk_info {
	uint64_t size;		   /* bytes, a multiple of 512 */
	unsigned logical_block;	   /* bytes, >= 512, power of two */
	unsigned physical_block;   /* bytes, >= logical_block */
	bool readonly;
	bool can_discard;	   /* DISCARD does something (else it is accepted and ignored) */
	bool can_unmap;		   /* WRITE_ZEROES with UNMAP may deallocate */
	enum blk_cache cache;
	const char *engine;	   /* "io_uring", "threads", "image" */
	char serial[BLK_SERIAL_MAX + 1];
};

/*
 * Open the disk described by cfg. Completions are delivered on loop (may be NULL: the
 * caller then calls blk_poll()). On failure err holds one line, e.g.
 * "disk 'x.img' is in use by another VM".
 */
int blk_open(struct blk_backend **out, const struct blk_config *cfg, struct evloop *loop,
	     char *err, size_t errlen) WUR;
/* Waits for and delivers every outstanding request first. The evloop must be stopped (or
 * this must run on its thread). */
void blk_close(struct blk_backend *be);
void blk_get_info(const struct blk_backend *be, struct blk_info *info);
/*
 * Move completion delivery to another loop (NULL: none, use blk_poll). For a disk kept
 * open across guest reboots while the machine rebuilds its I/O loop: detach before the
 * old loop is finalised, attach to the new one. Not while requests are in flight.
 */
int blk_attach_loop(struct blk_backend *be, struct evloop *loop) WUR;

void blk_submit(struct blk_backend *be, struct blk_req *req);
void blk_kick(struct blk_backend *be);
void blk_drain(struct blk_backend *be);
/* Drain, then deliver every pending done() in the calling thread (teardown). */
void blk_quiesce(struct blk_backend *be);
/* Wait up to timeout_ms (-1: forever, 0: no wait) for completions and deliver them here.
 * Returns the number of done() calls made, or -errno. */
int blk_poll(struct blk_backend *be, int timeout_ms) WUR;
/* Requests submitted whose done() has not returned yet. */
unsigned blk_outstanding(struct blk_backend *be);

/* Called after each batch of done() calls (e.g. to send one interrupt per batch). */
void blk_set_batch_hook(struct blk_backend *be, void (*fn)(void *opaque), void *opaque);

/* Testing aid: the next `count` requests of type op fail with -err without reaching the
 * host (delivered like any completion). count 0 turns injection off. */
void blk_inject_error(struct blk_backend *be, enum blk_op op, int err, unsigned count);

#endif
