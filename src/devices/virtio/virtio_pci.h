/* SPDX-License-Identifier: MIT */
/*
 * virtio-pci modern (virtio 1.x) transport. Wraps any struct virtio_dev in a PCI function
 * (vendor 0x1AF4, device 0x1040 + virtio id, revision 1) with one 64-bit memory BAR:
 *
 *   BAR 4 (16 KiB)  0x0000 common cfg (0x38 bytes)    0x0800 ISR (1 byte, read-to-clear)
 *                   0x0C00 device cfg (<= 1 KiB)       0x1000 notify (4 bytes per queue)
 *                   0x2000 MSI-X table                 0x3000 MSI-X PBA
 *
 * with vendor capabilities for cfg_type 1..4 and the PCI-cfg access window (type 5): a
 * config read/write of its data field performs the BAR access the driver set up in the
 * window (BAR 4 only, length 1/2/4, offset aligned; the MSI-X table is not reachable
 * through it). MSI-X: vectors for config and queues as the driver assigns them; no INTx,
 * so with MSI-X disabled the driver must poll the ISR (read-to-clear) register.
 *
 * Notifications: with plat->loop and plat->ops->ioeventfd_add, one eventfd per queue is
 * registered on its notify address at DRIVER_OK (deregistered at reset) and the queue is
 * processed on the I/O thread of its queue group (virtio_dev_bind_loops: the main loop,
 * or one of the machine's device I/O threads with --io-threads > 1). Otherwise, or if registration fails, the MMIO write is
 * handled directly on the vCPU thread. When the guest moves or unmaps the BAR, the PCI
 * core's bar_remapped hook re-registers the eventfds at the new address.
 *
 * Locking: register accesses take the virtio_dev lock; status writes (which may touch
 * doorbells) take the PCI host's cfg_lock first, like the PCI core's hooks do. Order:
 * host cfg_lock -> virtio_dev lock -> pci_dev lock (pci_msix_notify).
 *
 * Lifetime: the PCI host and the buses keep pointers into this object, and the I/O loop
 * keeps the eventfd callbacks: destroy only after the I/O loop is stopped and the PCI
 * host is finalised (or if pci_host_add_dev was never reached).
 */
#ifndef VIREO_DEVICES_VIRTIO_VIRTIO_PCI_H
#define VIREO_DEVICES_VIRTIO_VIRTIO_PCI_H

#include "common/compiler.h"
#include "bus/pci/pci.h"
#include "devices/virtio/virtio.h"

#define VIRTIO_PCI_BAR 4
#define VIRTIO_PCI_BAR_SIZE 0x4000
#define VIRTIO_PCI_COMMON_OFF 0x0000
#define VIRTIO_PCI_ISR_OFF 0x0800
#define VIRTIO_PCI_DEVICE_OFF 0x0c00
#define VIRTIO_PCI_NOTIFY_OFF 0x1000
#define VIRTIO_PCI_NOTIFY_MULT 4
#define VIRTIO_PCI_MSIX_TABLE_OFF 0x2000
#define VIRTIO_PCI_MSIX_PBA_OFF 0x3000

struct virtio_pci;

struct virtio_pci_ioev {
	struct virtio_pci *t;
	unsigned q;
	int efd; /* -1 when unused */
};

struct virtio_pci {
	struct pci_dev pci;
	struct virtio_dev *vdev;
	const struct platform *plat;

	/* Transport registers, protected by the virtio_dev lock. */
	uint32_t dfselect, gfselect;
	uint16_t queue_select;
	uint16_t config_vector;
	uint16_t *queue_vector; /* [num_queues] */
	unsigned nvec;
	uint8_t isr; /* atomic: set under the lock, read-and-cleared without it */
	uint8_t cfgwin_off; /* config offset of the VIRTIO_PCI_CAP_PCI_CFG capability */

	/* Doorbells. */
	struct virtio_pci_ioev *ioev; /* [num_queues], NULL when not using ioeventfd */
	bool ioev_registered;
	uint64_t ioev_base; /* guest address of the notify region when registered */
};

/*
 * Create the transport for vdev (already virtio_dev_init'ed) and add it to host.
 * class_code is the PCI class for this device type (e.g. 0xff0000 "other").
 */
int virtio_pci_create(struct virtio_pci **out, const struct platform *plat,
		      struct pci_host *host, struct virtio_dev *vdev, uint32_t class_code) WUR;
void virtio_pci_destroy(struct virtio_pci *t);

#endif
