/* SPDX-License-Identifier: MIT */
/*
 * Minimal virtio 1.x PCI (modern) driver for probes: capability discovery, reset and feature
 * negotiation, split virtqueues in probe memory, MSI-X vectors, notification. It exposes the
 * raw rings so that a probe can also write malformed ones on purpose.
 */
#ifndef PROBE_VIRTIO_H
#define PROBE_VIRTIO_H

#include "probe.h"

#define VIRTIO_VENDOR 0x1af4
#define VIRTIO_ID_RNG_MODERN 0x1044

#define VIRTIO_STATUS_ACK 0x01
#define VIRTIO_STATUS_DRIVER 0x02
#define VIRTIO_STATUS_DRIVER_OK 0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

#define VIRTIO_F_INDIRECT_DESC (1ull << 28)
#define VIRTIO_F_EVENT_IDX (1ull << 29)
#define VIRTIO_F_VERSION_1 (1ull << 32)

#define VIRTIO_PCI_CAP_COMMON 1
#define VIRTIO_PCI_CAP_NOTIFY 2
#define VIRTIO_PCI_CAP_ISR 3
#define VIRTIO_PCI_CAP_DEVICE 4
#define VIRTIO_PCI_CAP_PCI_CFG 5

/* common configuration structure */
#define VCC_DFSELECT 0x00
#define VCC_DF 0x04
#define VCC_GFSELECT 0x08
#define VCC_GF 0x0c
#define VCC_MSIX_CONFIG 0x10
#define VCC_NUM_QUEUES 0x12
#define VCC_STATUS 0x14
#define VCC_CFG_GENERATION 0x15
#define VCC_Q_SELECT 0x16
#define VCC_Q_SIZE 0x18
#define VCC_Q_MSIX 0x1a
#define VCC_Q_ENABLE 0x1c
#define VCC_Q_NOTIFY_OFF 0x1e
#define VCC_Q_DESC 0x20
#define VCC_Q_AVAIL 0x28
#define VCC_Q_USED 0x30
#define VIRTIO_MSI_NO_VECTOR 0xffff

#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};
struct vring_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[];
};
struct vring_used_elem {
	uint32_t id;
	uint32_t len;
};
struct vring_used {
	uint16_t flags;
	uint16_t idx;
	struct vring_used_elem ring[];
};

struct vq {
	uint16_t index, size;
	volatile struct vring_desc *desc;
	volatile struct vring_avail *avail;
	volatile struct vring_used *used;
	uint16_t avail_idx; /* next avail idx the driver publishes */
	uint16_t last_used; /* used idx consumed so far */
	uint64_t notify_addr;
};

struct vdev {
	struct pci_dev pci;
	uint64_t common, notify, isr, device; /* MMIO addresses; device is 0 if absent */
	uint32_t notify_mult;
	unsigned msix_cap;
	uint64_t msix_table;
	uint16_t msix_entries;
	uint64_t offered;    /* device features */
	uint64_t negotiated; /* accepted by FEATURES_OK */
};

/* Find the device with that PCI device id on bus 0 and map its virtio capabilities and MSI-X
 * table; fails the probe if a required capability is missing. Returns false if absent. */
bool vdev_open(struct vdev *v, uint16_t device_id);
uint8_t vdev_status(const struct vdev *v);
void vdev_set_status(const struct vdev *v, uint8_t s);
/* Write 0 and wait (bounded) until the status reads back 0; false if it never does. */
bool vdev_reset(const struct vdev *v);
/* Reset, ACK, DRIVER, features = offered & want, FEATURES_OK; false if the device refuses. */
bool vdev_negotiate(struct vdev *v, uint64_t want);
/* MSI-X: enable the function and program entry -> fixed vector on the given APIC. */
void vdev_msix_enable(const struct vdev *v);
void vdev_msix_set(const struct vdev *v, unsigned entry, uint8_t vector, uint8_t apic);
/* Select queue index, size it (0: the device maximum), place rings (allocated once per vq),
 * attach msix_entry (VIRTIO_MSI_NO_VECTOR for none) and enable it. False (with a message on
 * the console) if the device rejects something. */
bool vq_setup(struct vdev *v, struct vq *q, uint16_t index, uint16_t size, uint16_t msix_entry);
void vdev_driver_ok(const struct vdev *v);
/* Publish head in the avail ring (avail idx += 1) and notify. */
void vq_submit(struct vq *q, uint16_t head);
void vq_notify(const struct vq *q);
/* Consume one used element if the device has produced one. */
bool vq_pop_used(struct vq *q, uint32_t *id, uint32_t *len);
uint16_t vq_used_idx(const struct vq *q);

#endif
