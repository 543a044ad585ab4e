/* SPDX-License-Identifier: MIT */
/*
 * Constants and layouts from the virtio 1.x specification that the queue, the device
 * core and the PCI transport share. Values only, no logic. Everything the guest sees is
 * little-endian; Vireo runs on x86-64 hosts only, so no byte swapping is done.
 */
#ifndef VIREO_DEVICES_VIRTIO_SPEC_H
#define VIREO_DEVICES_VIRTIO_SPEC_H

#include <stdint.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "virtio code assumes a little-endian host"
#endif

/* Device status bits (virtio 1.x, 2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define VIRTIO_STATUS_DRIVER 0x02
#define VIRTIO_STATUS_DRIVER_OK 0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

/* Transport/ring feature bits offered by the core to every device. */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

#define VIRTIO_BIT(b) (1ULL << (b))

/* Split ring descriptor flags. */
#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4

#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY 1

/* Descriptor as laid out in guest memory (16 bytes, little-endian). */
struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};
_Static_assert(sizeof(struct vring_desc) == 16, "vring_desc layout");

/*
 * Ring geometry for queue size n: byte offsets inside each area.
 *   avail: flags(2) idx(2) ring[n](2 each) used_event(2)      -> 6 + 2n bytes, align 2
 *   used:  flags(2) idx(2) ring[n]{id(4),len(4)} avail_event(2) -> 6 + 8n bytes, align 4
 */
#define VRING_AVAIL_FLAGS 0
#define VRING_AVAIL_IDX 2
#define VRING_AVAIL_RING(i) (4 + 2 * (uint64_t)(i))
#define VRING_AVAIL_USED_EVENT(n) VRING_AVAIL_RING(n)
#define VRING_AVAIL_SIZE(n) (6 + 2 * (uint64_t)(n))
#define VRING_USED_FLAGS 0
#define VRING_USED_IDX 2
#define VRING_USED_RING(i) (4 + 8 * (uint64_t)(i))
#define VRING_USED_AVAIL_EVENT(n) VRING_USED_RING(n)
#define VRING_USED_SIZE(n) (6 + 8 * (uint64_t)(n))
#define VRING_DESC_SIZE(n) (16 * (uint64_t)(n))
#define VRING_DESC_ALIGN 16
#define VRING_AVAIL_ALIGN 2
#define VRING_USED_ALIGN 4

/*
 * EVENT_IDX test: has the used index moved past event since old? All arithmetic is
 * modulo 2^16, so it stays correct when the indices wrap at 65535.
 */
static inline int vring_need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

/* virtio-pci modern: vendor capability cfg_type values. */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG 5

/* Common configuration structure: byte offsets and the size we expose. */
#define VIRTIO_PCI_COMMON_DFSELECT 0x00 /* le32 device_feature_select */
#define VIRTIO_PCI_COMMON_DF 0x04	/* le32 device_feature (RO) */
#define VIRTIO_PCI_COMMON_GFSELECT 0x08 /* le32 driver_feature_select */
#define VIRTIO_PCI_COMMON_GF 0x0c	/* le32 driver_feature */
#define VIRTIO_PCI_COMMON_MSIX 0x10	/* le16 config_msix_vector */
#define VIRTIO_PCI_COMMON_NUMQ 0x12	/* le16 num_queues (RO) */
#define VIRTIO_PCI_COMMON_STATUS 0x14	/* u8 device_status */
#define VIRTIO_PCI_COMMON_CFGGEN 0x15	/* u8 config_generation (RO) */
#define VIRTIO_PCI_COMMON_Q_SELECT 0x16 /* le16 queue_select */
#define VIRTIO_PCI_COMMON_Q_SIZE 0x18	/* le16 queue_size */
#define VIRTIO_PCI_COMMON_Q_MSIX 0x1a	/* le16 queue_msix_vector */
#define VIRTIO_PCI_COMMON_Q_ENABLE 0x1c /* le16 queue_enable */
#define VIRTIO_PCI_COMMON_Q_NOFF 0x1e	/* le16 queue_notify_off (RO) */
#define VIRTIO_PCI_COMMON_Q_DESC 0x20	/* le64 queue_desc */
#define VIRTIO_PCI_COMMON_Q_AVAIL 0x28	/* le64 queue_driver */
#define VIRTIO_PCI_COMMON_Q_USED 0x30	/* le64 queue_device */
#define VIRTIO_PCI_COMMON_SIZE 0x38

#define VIRTIO_MSI_NO_VECTOR 0xffff

#define VIRTIO_PCI_ISR_QUEUE 0x1
#define VIRTIO_PCI_ISR_CONFIG 0x2

#define VIRTIO_PCI_VENDOR_ID 0x1af4
#define VIRTIO_PCI_DEVICE_ID_BASE 0x1040 /* + virtio device id, modern only */
#define VIRTIO_PCI_REVISION 1
#define VIRTIO_PCI_SUBSYS_ID 0x0040 /* spec: >= 0x40 for non-transitional devices */

/* Virtio device ids used in Vireo. */
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG 4
#define VIRTIO_ID_VSOCK 19

#endif
