/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk (virtio id 2) over the virtio-pci transport, on an asynchronous block backend
 * (src/block/block.h).
 *
 * Features offered: SEG_MAX, BLK_SIZE, TOPOLOGY, FLUSH, CONFIG_WCE, MQ (num_queues > 1),
 * and RO for a read-only disk or DISCARD + WRITE_ZEROES for a writable one.
 * Requests: IN, OUT, FLUSH, GET_ID (the serial, 20 bytes zero-padded), DISCARD and
 * WRITE_ZEROES (up to VIRTIO_BLK_MAX_DWZ_SEG segments of VIRTIO_BLK_MAX_DWZ_SECTORS each);
 * any other type completes with UNSUPP.
 *
 * Request validation (everything the guest wrote is untrusted):
 * - The status byte is the last device-writable byte of the chain. A chain without any
 *   writable byte cannot be answered: it is returned with used length 0, the device sets
 *   DEVICE_NEEDS_RESET and takes no new request from any queue until the driver resets it
 *   (requests already in flight still complete). This follows the spec's rule that a
 *   device which cannot continue sets NEEDS_RESET, rather than silently dropping the chain.
 * - The header is the first 16 device-readable bytes, gathered across descriptors (no
 *   framing assumed) and copied once. Fewer than 16 readable bytes -> IOERR.
 * - IN data: the writable bytes before the status; OUT data: the readable bytes after the
 *   header. Bytes on the other side are ignored. Data length must be a multiple of the
 *   logical block size (512, or the host's for cache=none on a 4K-sector device), and
 *   sector + length must lie within the capacity (overflow-safe) -> else IOERR.
 * - Read-only disk: OUT, DISCARD and WRITE_ZEROES -> IOERR, nothing reaches the disk.
 * - DISCARD/WRITE_ZEROES: payload a non-zero multiple of 16 bytes with at most the
 *   advertised segments, each within capacity and the per-segment maximum -> else IOERR;
 *   unknown segment flags, or UNMAP on DISCARD -> UNSUPP. All segments are checked before
 *   any is started.
 * - At most queue-size requests per queue are in flight; beyond that the queue is left
 *   alone until completions make room (a driver cannot make us allocate without bound by
 *   republishing descriptors that are still in flight).
 * Host errors (ENOSPC, EIO, ...) complete the request with IOERR.
 *
 * Completion: the status byte, then the used element (used length = the chain's writable
 * bytes, which covers the status byte), then one interrupt decision per queue per
 * completion batch (EVENT_IDX through the core). Writeback caching: the guest may switch it
 * with the writeback config field when CONFIG_WCE is negotiated; writeback 0 (or FLUSH not
 * negotiated) makes every write FUA. Requests run on the thread that processes the queue
 * (one backend submission per notification); completions arrive on the backend's
 * completion thread. Common single-range requests come from a per-queue pool: steady I/O
 * does not allocate. Adjacent reads (or writes) of one batch on one queue are merged into
 * one host I/O, each still completed with its own status (rules in virtio_blk_priv.h and
 * docs/virtio.md); FLUSH, DISCARD, WRITE_ZEROES and GET_ID never merge and keep their order.
 *
 * Locking (multiqueue): each queue has its own lock, covering its ring while the queue
 * runs, its requests in flight and its counters. A completion takes only its queue's lock
 * (the push, the status byte, and the batch's interrupt decision), so queues complete
 * independently of each other and of the device lock. Notifications too take only their
 * queue's lock (the device opts into the core's unlocked notify, virtio.h), so queues
 * are processed in parallel, each on the I/O thread of its queue group (one group per
 * queue). The device lock (virtio core) is taken for configuration, status and reset,
 * and on the rare path that restarts a queue throttled by a driver republishing busy
 * buffers. Lock order: device lock -> queue lock -> backend lock. The transport's
 * interrupt op is therefore called with a queue lock rather than the device lock held
 * (virtio.h allows that).
 *
 * Reset cancels: under each queue lock the queue stops and its requests in flight are
 * marked dead; blk_drain() then waits for the host to release their buffers before the
 * reset returns. Their completions, whenever delivered (even after the driver set the
 * device up again), only free them: no completion touches guest memory or a ring after
 * the reset. Destroy after the I/O loop stopped and the PCI host was finalised; the
 * backend stays the caller's (close it after the device).
 */
#ifndef VIREO_DEVICES_VIRTIO_VIRTIO_BLK_H
#define VIREO_DEVICES_VIRTIO_VIRTIO_BLK_H

#include "common/compiler.h"
#include "bus/platform.h"

struct pci_host;
struct blk_backend;
struct virtio_blk;
struct virtio_dev;

/* Feature bits (virtio 1.x, 5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_GEOMETRY 4
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_TOPOLOGY 10
#define VIRTIO_BLK_F_CONFIG_WCE 11
#define VIRTIO_BLK_F_MQ 12
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types and status values. */
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_GET_LIFETIME 10
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_T_SECURE_ERASE 14
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_WZ_FLAG_UNMAP 1u

#define VIRTIO_BLK_ID_BYTES 20

/* Device configuration layout (little-endian). */
struct virtio_blk_config {
	uint64_t capacity; /* 512-byte sectors */
	uint32_t size_max;
	uint32_t seg_max;
	uint16_t cylinders;
	uint8_t heads;
	uint8_t sectors;
	uint32_t blk_size;
	uint8_t physical_block_exp;
	uint8_t alignment_offset;
	uint16_t min_io_size;
	uint32_t opt_io_size;
	uint8_t writeback;
	uint8_t unused0;
	uint16_t num_queues;
	uint32_t max_discard_sectors;
	uint32_t max_discard_seg;
	uint32_t discard_sector_alignment;
	uint32_t max_write_zeroes_sectors;
	uint32_t max_write_zeroes_seg;
	uint8_t write_zeroes_may_unmap;
	uint8_t unused1[3];
} __attribute__((packed));
_Static_assert(sizeof(struct virtio_blk_config) == 60, "virtio_blk_config layout");
#define VIRTIO_BLK_CFG_WRITEBACK 32 /* offset of the writeback byte */

struct virtio_blk_outhdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};
struct virtio_blk_dwz_seg {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

#define VIRTIO_BLK_QUEUE_SIZE 256
#define VIRTIO_BLK_MAX_QUEUES 63 /* + the config vector = 64 MSI-X vectors */
#define VIRTIO_BLK_SEG_MAX (VIRTIO_BLK_QUEUE_SIZE - 2)
#define VIRTIO_BLK_MAX_DWZ_SEG 32
#define VIRTIO_BLK_MAX_DWZ_SECTORS (1u << 21) /* 1 GiB per segment */

struct virtio_blk_stats {
	uint64_t reads, writes, flushes, discards, write_zeroes, get_ids;
	uint64_t read_bytes, write_bytes;
	uint64_t errors;      /* completed with IOERR (guest or host error) */
	uint64_t unsupported; /* completed with UNSUPP */
	uint64_t inflight;    /* requests submitted to the backend, not completed */
	uint64_t merges;      /* host I/Os that carried several adjacent reads or writes */
	uint64_t merged_reqs; /* requests sent as part of such a merged I/O */
};

/*
 * Create the device on backend be (opened by the caller with blk_open on the I/O loop)
 * with num_queues request queues (clamped to 1..VIRTIO_BLK_MAX_QUEUES; one per vCPU),
 * wrap it in virtio-pci and add it to host.
 */
int virtio_blk_create(struct virtio_blk **out, const struct platform *plat,
		      struct pci_host *host, struct blk_backend *be, unsigned num_queues) WUR;
void virtio_blk_destroy(struct virtio_blk *b);
void virtio_blk_get_stats(struct virtio_blk *b, struct virtio_blk_stats *out);
struct virtio_dev *virtio_blk_vdev(struct virtio_blk *b);

#endif
