/* SPDX-License-Identifier: MIT */
/*
 * Driver-side helper for virtio-pci unit tests: finds the function on a struct pci_host,
 * parses its capabilities through config space the way a guest driver does, and drives
 * the common configuration, notifications and MSI-X through the fake MMIO bus.
 */
#ifndef VIREO_TESTS_VIRTIO_VPCI_HELPER_H
#define VIREO_TESTS_VIRTIO_VPCI_HELPER_H

#include "fake_platform.h"
#include "bus/pci/pci.h"

struct tvq;

struct tpci {
	struct fake_platform *fp;
	struct pci_host *host;
	unsigned slot;
	uint64_t bar; /* address of the BAR holding the virtio structures */
	uint64_t common, notify, isr, device;
	uint32_t common_len, notify_len, isr_len, device_len, notify_mult;
	uint8_t cfgwin; /* config offset of the PCI cfg access capability, 0 if none */
	uint8_t msix_cap;
	unsigned msix_n;
	uint64_t msix_table;
};

/* Find vendor 0x1af4 / device_id, enable memory + bus master, parse the capabilities.
 * Fails the test if a required capability is missing or points outside its BAR. */
void tpci_open(struct tpci *p, struct fake_platform *fp, struct pci_host *h, uint16_t device_id);
uint32_t tpci_cfg_read(struct tpci *p, uint32_t off, unsigned len);
void tpci_cfg_write(struct tpci *p, uint32_t off, unsigned len, uint32_t val);

uint64_t tpci_rd(struct tpci *p, uint64_t addr, unsigned len);
void tpci_wr(struct tpci *p, uint64_t addr, unsigned len, uint64_t val);
/* Common configuration register at off, natural width len. */
uint64_t tpci_common_rd(struct tpci *p, uint32_t off, unsigned len);
void tpci_common_wr(struct tpci *p, uint32_t off, unsigned len, uint64_t val);
uint8_t tpci_status(struct tpci *p);
void tpci_set_status(struct tpci *p, uint8_t s);

/* Reset, ACK, DRIVER, features (offered & want), FEATURES_OK; true if accepted. */
bool tpci_negotiate(struct tpci *p, uint64_t want);
/* Select queue q, write size/rings from t, attach msix vector, enable. */
void tpci_queue_setup(struct tpci *p, unsigned q, const struct tvq *t, uint16_t vector);
void tpci_driver_ok(struct tpci *p);
void tpci_notify(struct tpci *p, unsigned q);

/* MSI-X: enable the function (unmasked) / disable; program entry e with data
 * TPCI_MSI_DATA(e); count fires of entry e through the fake platform's recorder. */
#define TPCI_MSI_DATA(e) (0x4100u + (e))
void tpci_msix_enable(struct tpci *p, bool on);
void tpci_msix_program(struct tpci *p, unsigned e);
unsigned tpci_msi_fired(struct tpci *p, unsigned e);

#endif
