/* SPDX-License-Identifier: MIT */
/*
 * Virtio device core: feature negotiation, the device status state machine, queue
 * configuration and the glue between a device type and a transport. The core knows
 * neither the device type (it calls the device's const ops) nor the transport (it calls
 * the transport's const ops to raise interrupts).
 *
 * Locking: every struct virtio_dev has one mutex. The transport takes it around each
 * register access and calls the functions marked "locked" below with it held.
 * virtio_dev_kick() takes it itself. Device ops are always called with it held, so a
 * device's queue_notify never races a reset or a status change, except with
 * ops->notify_unlocked (below). A device completing requests from another context (e.g.
 * a backend completion on the I/O thread) takes virtio_dev_lock() around
 * virtio_dev_queue_push()/virtio_dev_queue_signal(), or its own per-queue lock under the
 * same rules as an unlocked notify.
 * Lock order: (PCI host cfg_lock, taken by the PCI transport for status writes and held
 * in PCI hooks) -> virtio_dev lock -> the device's per-queue locks -> the transport's
 * inner locks (pci_dev/MSI-X).
 *
 * Unlocked notify contract (ops->notify_unlocked; virtio-blk and virtio-net): the core
 * calls queue_notify(d, q) for any q < num_queues WITHOUT the device lock and without
 * checking DRIVER_OK or the queue's liveness, possibly on several threads at once (one
 * per I/O thread, plus vCPUs when a doorbell is not an ioeventfd). The device must:
 * - keep, per queue (or queue group), a "running" flag under a per-queue lock, set in
 *   ops->activate (the core has activated the rings before it calls activate) and cleared
 *   in ops->reset (the core resets the rings only after reset returned); touch the ring
 *   only with that lock held and the flag seen set. Then no notify can use a ring being
 *   torn down or a stale ring address: a reset waits for the queue lock, and a notify
 *   that takes the lock after the reset sees the flag clear;
 * - read only device state that is stable while its queue runs (negotiated features) or
 *   that is written under its queue locks;
 * - take the device lock itself (before any queue lock) for anything else, e.g. a
 *   control queue, and then check virtio_dev_queue_ready();
 * - report driver errors with virtio_dev_set_needs_reset(), which is safe without the
 *   device lock while the caller holds the lock of a running queue (see there).
 *
 * I/O threads: ops->queue_group puts queues into groups; virtio_dev_bind_loops() gives
 * each group one I/O loop from the platform (round robin over the machine's device I/O
 * threads), and the transport and the device register a queue's doorbell and the fds
 * serving it (e.g. a virtio-net pair's backend) on virtio_dev_queue_loop().
 *
 * Status machine (docs/virtio.md): 0 -> ACKNOWLEDGE -> DRIVER -> FEATURES_OK (only kept if
 * the driver's features are a subset of ours and include VERSION_1) -> DRIVER_OK (queues
 * validated and started; their configuration is frozen). Writing 0 resets. The driver
 * may set FAILED at any time. NEEDS_RESET is device-owned: set on any driver error,
 * announced with a configuration-change interrupt, and cleared only by a reset.
 */
#ifndef VIREO_DEVICES_VIRTIO_VIRTIO_H
#define VIREO_DEVICES_VIRTIO_VIRTIO_H

#include "common/compiler.h"
#include "devices/virtio/virtio_spec.h"
#include "devices/virtio/virtq.h"
#include <pthread.h>

struct gmem;
struct evloop;
struct platform;
struct virtio_dev;

#define VIRTIO_MAX_QUEUES 64
#define VIRTIO_MAX_CONFIG_SIZE 1024
/* Feature bits every device gets from the core. */
#define VIRTIO_CORE_FEATURES                                                                       \
	(VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX) |                          \
	 VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC))
/* Passed to the transport's interrupt op for a configuration-change interrupt. */
#define VIRTIO_IRQ_CONFIG 0xffffu

/* One per device type; all callbacks run with the device lock held (but queue_notify with
 * notify_unlocked, and queue_group, which runs at creation and must not depend on state). */
struct virtio_dev_ops {
	const char *name;	 /* for log messages, e.g. "virtio-rng" */
	uint16_t device_id;	 /* VIRTIO_ID_* */
	uint64_t features;	 /* device-type feature bits (the core adds its own) */
	unsigned num_queues;	 /* 1..VIRTIO_MAX_QUEUES */
	uint16_t max_queue_size; /* power of two, <= VQ_MAX_SIZE */
	uint32_t config_size;	 /* bytes of device config space, <= VIRTIO_MAX_CONFIG_SIZE */
	/* Device config access; off + len <= config_size is checked by the core. Optional. */
	void (*config_read)(struct virtio_dev *d, uint32_t off, void *data, unsigned len);
	void (*config_write)(struct virtio_dev *d, uint32_t off, const void *data, unsigned len);
	/* Extra check at FEATURES_OK (e.g. feature dependencies). Optional. */
	bool (*features_ok)(struct virtio_dev *d, uint64_t features);
	/* DRIVER_OK was set and the enabled queues are live. Non-zero -> NEEDS_RESET. Optional. */
	int (*activate)(struct virtio_dev *d);
	/* The driver notified queue q (which is live). Required. */
	void (*queue_notify)(struct virtio_dev *d, unsigned q);
	/* Device reset: drop in-flight requests. Optional. */
	void (*reset)(struct virtio_dev *d);
	/* The group (< num_queues) of queue q: queues of one group share an I/O thread. A
	 * pure function of q. Optional: without it every queue runs on the main I/O loop. */
	unsigned (*queue_group)(const struct virtio_dev *d, unsigned q);
	/* queue_notify is called without the device lock (the contract above). */
	bool notify_unlocked;
};

/* Implemented by the transport (e.g. virtio-pci). interrupt() is thread-safe by itself: it
 * may be called with or without the device lock (virtio-net's queue pairs signal under their
 * own pair lock only), so a transport must not rely on the device lock in it. */
struct virtio_transport_ops {
	/* Raise the interrupt for queue q, or for a config change when q == VIRTIO_IRQ_CONFIG. */
	void (*interrupt)(void *transport, unsigned q);
};

struct virtio_dev {
	const struct virtio_dev_ops *ops;
	void *opaque; /* the device type's state */
	const struct gmem *mem;
	pthread_mutex_t lock;

	uint64_t offered;	  /* device features offered to the driver */
	uint64_t driver_features; /* as written by the driver */
	uint64_t negotiated;	  /* valid once FEATURES_OK is set */
	bool bad_feature_write;	  /* driver wrote feature bits in a word we do not have */
	uint8_t status;
	uint8_t config_generation;

	unsigned num_queues;
	struct virtq *vqs;

	const struct virtio_transport_ops *tops;
	void *transport;

	/* Set once by virtio_dev_bind_loops(), before the device is reachable by a driver. */
	bool loops_bound;
	struct evloop *queue_loop[VIRTIO_MAX_QUEUES];
};

/* Set up a device of type ops; offered = ops->features | VIRTIO_CORE_FEATURES. */
int virtio_dev_init(struct virtio_dev *d, const struct virtio_dev_ops *ops,
		    const struct gmem *mem, void *opaque) WUR;
void virtio_dev_fini(struct virtio_dev *d);
void virtio_dev_set_transport(struct virtio_dev *d, const struct virtio_transport_ops *tops,
			      void *transport);

/* Choose the I/O loop of every queue: one loop per queue group from plat (ops->queue_group
 * and plat->ops->io_loop_next), else plat->loop. Idempotent: the transport calls it at
 * creation; a device that registers its own fds per group calls it first. -EINVAL if a
 * group is out of range. */
int virtio_dev_bind_loops(struct virtio_dev *d, const struct platform *plat) WUR;
/* The loop serving queue q (NULL: none, or q out of range). */
struct evloop *virtio_dev_queue_loop(const struct virtio_dev *d, unsigned q);

void virtio_dev_lock(struct virtio_dev *d);
void virtio_dev_unlock(struct virtio_dev *d);

/* --- Transport side (locked) --- */
uint32_t virtio_dev_device_features(const struct virtio_dev *d, uint32_t sel);
uint32_t virtio_dev_driver_features(const struct virtio_dev *d, uint32_t sel);
/* Ignored once FEATURES_OK is set. */
void virtio_dev_set_driver_features(struct virtio_dev *d, uint32_t sel, uint32_t val);
uint8_t virtio_dev_status(const struct virtio_dev *d);
/* Apply a driver status write per the state machine above (0 = reset). */
void virtio_dev_set_status(struct virtio_dev *d, uint8_t val);
void virtio_dev_reset(struct virtio_dev *d);
uint8_t virtio_dev_config_generation(const struct virtio_dev *d);
/* Out-of-range accesses read zeros / are ignored. */
void virtio_dev_config_read(struct virtio_dev *d, uint32_t off, void *data, unsigned len);
void virtio_dev_config_write(struct virtio_dev *d, uint32_t off, const void *data, unsigned len);

/* Queue configuration. Return false (nothing changed) if q is out of range or frozen
 * (DRIVER_OK set or the queue already enabled). Size is validated at DRIVER_OK. */
enum virtio_queue_area { VIRTIO_AREA_DESC, VIRTIO_AREA_DRIVER, VIRTIO_AREA_DEVICE };
bool virtio_dev_queue_set_size(struct virtio_dev *d, unsigned q, uint16_t size);
bool virtio_dev_queue_set_addr(struct virtio_dev *d, unsigned q, enum virtio_queue_area area,
			       uint64_t gpa);
bool virtio_dev_queue_set_enable(struct virtio_dev *d, unsigned q, uint16_t val);
/* NULL if q is out of range. */
struct virtq *virtio_dev_queue(struct virtio_dev *d, unsigned q);

/* Locked: DRIVER_OK is set and queue q is live. */
bool virtio_dev_queue_ready(struct virtio_dev *d, unsigned q);

/* The driver notified queue q. Takes the lock; ignored unless DRIVER_OK and q is live.
 * With ops->notify_unlocked: calls queue_notify for any q < num_queues, no lock taken. */
void virtio_dev_kick(struct virtio_dev *d, unsigned q);

/* --- Device side (locked) --- */
static inline bool virtio_dev_has_feature(const struct virtio_dev *d, unsigned bit)
{
	return bit < 64 && (d->negotiated & VIRTIO_BIT(bit));
}
/* vq_pop on queue q; a driver error (-EIO) also sets NEEDS_RESET. 1 chain, 0 empty, <0 error. */
int virtio_dev_queue_pop(struct virtio_dev *d, unsigned q, struct vq_chain *c) WUR;
/* vq_push on queue q. -EIO when the queue was reset or broken meanwhile (drop the request). */
int virtio_dev_queue_push(struct virtio_dev *d, unsigned q, uint16_t head, uint32_t len) WUR;
/* After a batch of pushes: interrupt the driver if it asked for one. */
void virtio_dev_queue_signal(struct virtio_dev *d, unsigned q);
/* Device config changed: bump the generation and send a config interrupt (if DRIVER_OK). */
void virtio_dev_config_changed(struct virtio_dev *d);
/* The device hit an unrecoverable (driver-caused) error. Idempotent until reset. Callable
 * with the device lock, or without it while holding the per-queue lock of a queue the
 * device sees running (so no reset can complete meanwhile): the status is updated
 * atomically and a reset clears it only after ops->reset stopped every queue. */
void virtio_dev_set_needs_reset(struct virtio_dev *d);

#endif
