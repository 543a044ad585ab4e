/* SPDX-License-Identifier: MIT */
/*
 * PCI: one host bridge, one segment, bus 0, config space reachable through the legacy
 * 0xCF8/0xCFC mechanism and through ECAM (MCFG). Devices are plain structs with a 4 KiB
 * config space plus write masks; the core handles the standard header, BAR sizing and
 * placement, the capability list and MSI-X (table + PBA inside a BAR). A device only
 * supplies its BAR handlers and optional hooks.
 *
 * Firmware role: there is no BIOS, so pci_host_add_dev() assigns BAR addresses from the
 * 32-bit MMIO window at once and enables memory decoding; the guest may move them, and
 * the core re-registers the BAR on the MMIO bus when it does (sizing writes of all-ones
 * are handled without moving anything).
 *
 * Locking: each pci_dev has a mutex that the core holds around config-space accesses and
 * MSI-X table accesses. BAR handlers of the device are called without it.
 * Everything that changes configuration (config writes, MSI-X table writes, BAR moves,
 * pci_host_add_dev) is also serialized by the host's recursive cfg_lock, which is held
 * while the device hooks below run and while platform msi_update is called; the device
 * mutex is never held across a call out of the core except plat->ops->msi_fire.
 * Lock order: host cfg_lock -> pci_dev lock -> host lock (latch, devs[]).
 *
 * Host bridge identity: 1b36:0008 (Red Hat's "PCIe host bridge" id, the one QEMU's
 * generic host uses), class 06.00.00. Linux has no driver or quirk keyed to it beyond the
 * generic host-bridge class handling, so it is treated as a plain host bridge; using a
 * well-known virtual-hardware id avoids squatting on a real chipset's id (8086:xxxx would
 * pull in chipset quirks).
 *
 * What the guest sees: conventional (non-PCIe) type-0 functions, function 0 only, no
 * INTx (interrupt pin 0), no I/O BARs, no expansion ROM, extended config space reads 0.
 * A BAR is decoded only when Memory Space is enabled and its address lies entirely inside
 * the host's MMIO window, outside RAM and ECAM, and does not overlap anything else on the
 * MMIO bus; otherwise it stays unmapped (and a rate-limited warning is logged).
 */
#ifndef VIREO_BUS_PCI_PCI_H
#define VIREO_BUS_PCI_PCI_H

#include "common/compiler.h"
#include "bus/bus.h"
#include "bus/platform.h"
#include <pthread.h>

#define PCI_CFG_SPACE_SIZE 4096
#define PCI_MAX_DEVICES 32 /* bus 0, function 0 only */
#define PCI_NUM_BARS 6
#define PCI_MSIX_MAX_VECTORS 64

#define PCI_VENDOR_ID_REDHAT_QUMRANET 0x1af4
#define PCI_CAP_ID_MSIX 0x11
#define PCI_CAP_ID_VNDR 0x09

#define PCI_VENDOR_ID_REDHAT 0x1b36
#define PCI_DEVICE_ID_REDHAT_HOST_BRIDGE 0x0008
#define PCI_CLASS_HOST_BRIDGE 0x060000

/* Type-0 header offsets and bits used by the core (PCI_CFG_ prefix: no clash with
 * <linux/pci_regs.h>). */
#define PCI_CFG_VENDOR_ID 0x00
#define PCI_CFG_DEVICE_ID 0x02
#define PCI_CFG_COMMAND 0x04
#define PCI_CFG_CMD_MEM 0x0002
#define PCI_CFG_CMD_MASTER 0x0004
#define PCI_CFG_STATUS 0x06
#define PCI_CFG_STATUS_CAP_LIST 0x0010
#define PCI_CFG_REVISION 0x08
#define PCI_CFG_CLASS_PROG 0x09
#define PCI_CFG_HEADER_TYPE 0x0e
#define PCI_CFG_BAR0 0x10
#define PCI_CFG_BAR_MEM_64 0x4
#define PCI_CFG_SUBSYS_VENDOR 0x2c
#define PCI_CFG_SUBSYS_ID 0x2e
#define PCI_CFG_ROM 0x30
#define PCI_CFG_CAP_PTR 0x34
#define PCI_CFG_INT_LINE 0x3c
#define PCI_CFG_INT_PIN 0x3d
#define PCI_CFG_CAP_START 0x40	  /* first capability goes here */
#define PCI_CFG_LEGACY_SIZE 0x100 /* capabilities live below this */

/* MSI-X capability: message control bits, table entry layout. */
#define PCI_MSIX_CTRL_ENABLE 0x8000
#define PCI_MSIX_CTRL_FMASK 0x4000
#define PCI_MSIX_ENTRY_SIZE 16
#define PCI_MSIX_ENTRY_ADDR_LO 0
#define PCI_MSIX_ENTRY_ADDR_HI 4
#define PCI_MSIX_ENTRY_DATA 8
#define PCI_MSIX_ENTRY_CTRL 12
#define PCI_MSIX_ENTRY_MASKED 0x1

struct pci_dev;

struct pci_dev_ops {
	/* Called after the core applied a config write (e.g. to react to command bits). */
	void (*cfg_written)(struct pci_dev *d, uint32_t off, unsigned len);
	/* Called when an MSI-X vector becomes unmasked with its pending bit set, etc. optional */
	void (*msix_changed)(struct pci_dev *d);
	/*
	 * Optional. Called before a config read of [off, off+len) (no device lock held); return
	 * true and set *val to serve the read yourself (e.g. a virtio PCI_CFG window). Use
	 * pci_dev_cfg_get() to look at your own capability bytes.
	 */
	bool (*cfg_read)(struct pci_dev *d, uint32_t off, unsigned len, uint32_t *val);
	/*
	 * Optional. BAR idx was mapped, unmapped or moved (read d->bars[idx].mapped/.addr,
	 * stable during the call): re-register ioeventfds etc. First called from inside
	 * pci_host_add_dev (initial mapping); not called by pci_host_fini.
	 */
	void (*bar_remapped)(struct pci_dev *d, unsigned idx);
};
/*
 * No hook runs with the device mutex held, so hooks may call pci_msix_notify() and the
 * pci_dev_* accessors. cfg_written, msix_changed and bar_remapped also run with the
 * host's (recursive) cfg_lock held, which serializes them with every other configuration
 * change; cfg_read runs with no lock.
 */

struct pci_bar {
	uint64_t size; /* power of two >= 4096, 0 = BAR unused */
	bool is64;
	uint64_t addr;		   /* current guest address (valid when mapped) */
	bool mapped;		   /* registered on the MMIO bus */
	const struct bus_ops *ops; /* device handler, offsets relative to the BAR */
	void *opaque;
	/* core-private */
	struct pci_dev *owner;
	unsigned idx;
	uint64_t refused_addr; /* last address refused for mapping (log once per address) */
};

struct pci_msix_entry {
	uint64_t addr;
	uint32_t data;
	uint32_t ctrl; /* bit 0: masked */
	bool pending;
	bool handle_valid;
	unsigned handle; /* platform MSI handle */
	/* core-private: what the platform route was last set to through msi_update */
	bool route_valid;
	uint64_t route_addr;
	uint32_t route_data;
};

struct pci_msix {
	unsigned nvec;
	unsigned bar;
	uint32_t table_off; /* within the BAR, 8-byte aligned (4 KiB recommended) */
	uint32_t pba_off;   /* within the BAR, 8-byte aligned (4 KiB recommended) */
	uint8_t cap_off;    /* config-space offset of the MSI-X capability */
	struct pci_msix_entry entries[PCI_MSIX_MAX_VECTORS];
};

struct pci_host;

struct pci_dev {
	uint8_t cfg[PCI_CFG_SPACE_SIZE];
	uint8_t wmask[PCI_CFG_SPACE_SIZE];   /* bits the guest may change */
	uint8_t w1cmask[PCI_CFG_SPACE_SIZE]; /* write-1-to-clear bits (status register) */
	struct pci_bar bars[PCI_NUM_BARS];
	struct pci_msix msix;
	bool has_msix;
	uint8_t last_cap;  /* offset of the last capability added, 0 = none */
	uint16_t cap_free; /* config offset where the next capability goes */
	unsigned slot;	   /* device number on bus 0 */
	struct pci_host *host;
	const struct pci_dev_ops *ops;
	void *opaque; /* the device's own state */
	pthread_mutex_t lock;
};

struct pci_host {
	const struct platform *plat;
	struct pci_dev bridge; /* 00.0 host bridge */
	struct pci_dev *devs[PCI_MAX_DEVICES];
	uint32_t config_addr; /* 0xCF8 latch */
	uint64_t ecam_base, ecam_size;
	uint64_t mmio_base, mmio_size, mmio_next; /* BAR allocator */
	pthread_mutex_t lock;			  /* config_addr, devs[] */
	pthread_mutex_t cfg_lock; /* recursive: serializes configuration changes, see top */
};

/*
 * Registers 0xCF8/0xCFC on plat->pio and ECAM on plat->mmio, adds the host bridge at 00.0.
 * ecam_size: a multiple of 1 MiB (bus 0 is the only populated bus). The MMIO window must
 * not overlap ECAM. plat->ops may be NULL (no MSI delivery).
 */
int pci_host_init(struct pci_host *h, const struct platform *plat, uint64_t ecam_base,
		  uint64_t ecam_size, uint64_t mmio_base, uint64_t mmio_size) WUR;
/*
 * Unmaps every BAR, frees the MSI handles, detaches the devices (their structs stay the
 * caller's: call pci_dev_fini on each afterwards) and unregisters CF8/CFC/ECAM. Call it
 * before bus_fini() of plat's buses.
 */
void pci_host_fini(struct pci_host *h);

/* Fill the standard type-0 header; all other config bytes read as zero and are read-only. */
void pci_dev_init(struct pci_dev *d, uint16_t vendor, uint16_t device, uint32_t class_code,
		  uint8_t revision, uint16_t subsys_vendor, uint16_t subsys_id,
		  const struct pci_dev_ops *ops, void *opaque);
/*
 * Device setup order: pci_dev_init, pci_dev_set_bar / pci_dev_add_cap / pci_dev_add_msix,
 * then pci_host_add_dev. The three setup calls return -EINVAL/-EBUSY once the device is
 * attached to a host.
 *
 * Append a capability. body is the capability's bytes after the 2-byte (id, next) header,
 * body_len bytes long. *off_out receives the capability's config-space offset.
 * wmask_body, if not NULL, is body_len bytes of writable-bit masks for the body.
 */
int pci_dev_add_cap(struct pci_dev *d, uint8_t cap_id, const void *body, uint8_t body_len,
		    const void *wmask_body, uint8_t *off_out) WUR;
/*
 * Declare a memory BAR (size power of two >= 4 KiB, at most 2 GiB for a 32-bit BAR),
 * non-prefetchable. 64-bit BARs use idx and idx+1. ops may be NULL (reads all-ones).
 */
int pci_dev_set_bar(struct pci_dev *d, unsigned idx, uint64_t size, bool is64,
		    const struct bus_ops *ops, void *opaque) WUR;
/*
 * Add an MSI-X capability with nvec vectors whose table and PBA live in BAR bar at
 * table_off/pba_off (the BAR must be declared first and be large enough). Accesses to
 * those ranges are served by the core; the rest of the BAR goes to the device's ops.
 * One platform MSI handle per vector is allocated when the device is attached
 * (pci_host_add_dev) and freed by pci_host_fini; routes (msi_update) are kept current.
 * Table accesses: naturally aligned 1/2/4/8 bytes; anything else reads all-ones and
 * writes are dropped. -EINVAL: nvec 0 or > PCI_MSIX_MAX_VECTORS, bad BAR, misaligned or
 * overlapping table/PBA, or not inside the BAR; -EBUSY: MSI-X already added.
 */
int pci_dev_add_msix(struct pci_dev *d, unsigned nvec, unsigned bar, uint32_t table_off,
		     uint32_t pba_off) WUR;
/*
 * Signal MSI-X vector vec: delivered through plat->ops->msi_fire if MSI-X is enabled and
 * neither the function nor the vector is masked; otherwise the pending bit is set and
 * the message is sent when it gets unmasked. Returns -EINVAL for a bad vector, -ENODEV
 * when MSI-X is disabled (the caller may fall back to INTx, which Vireo does not offer)
 * or the device has no MSI-X. With Bus Master off the message is held pending too.
 * Safe from any thread; takes only the device mutex.
 */
int pci_msix_notify(struct pci_dev *d, unsigned vec) WUR;
bool pci_msix_enabled(struct pci_dev *d);

/* Destroy the device mutex (after pci_host_fini, or if the device was never added). */
void pci_dev_fini(struct pci_dev *d);
/* Locked read of the device's own config bytes (little-endian, len 1..4, any alignment;
 * out of range reads all-ones). */
uint32_t pci_dev_cfg_get(struct pci_dev *d, uint32_t off, unsigned len);
/*
 * Access BAR idx at off exactly as a guest access to the mapped BAR would be dispatched
 * (MSI-X table/PBA by the core, the rest by the device's ops), mapped or not: for config
 * windows such as virtio's PCI_CFG capability. off/len are checked against the BAR.
 */
void pci_dev_bar_read(struct pci_dev *d, unsigned idx, uint64_t off, void *data, unsigned len);
void pci_dev_bar_write(struct pci_dev *d, unsigned idx, uint64_t off, const void *data,
		       unsigned len);
/* Command-register bits: may the device DMA (bus master) / does it decode memory. */
bool pci_dev_bus_master(struct pci_dev *d);
bool pci_dev_mem_enabled(struct pci_dev *d);

/*
 * Place the device at the first free slot, assign its BARs (index order, naturally
 * aligned, from the bottom of the window), enable memory decoding, map them, allocate its
 * MSI handles. -ENOSPC: no slot or window space left; -EBUSY: already attached;
 * -EEXIST: a BAR clashes with another MMIO range; or the platform's msi_alloc error.
 */
int pci_host_add_dev(struct pci_host *h, struct pci_dev *d) WUR;

/* Config-space access by (slot, offset) — what 0xCFC and ECAM end up calling. Tests use it. */
uint32_t pci_host_cfg_read(struct pci_host *h, unsigned slot, unsigned func, uint32_t off,
			   unsigned len);
void pci_host_cfg_write(struct pci_host *h, unsigned slot, unsigned func, uint32_t off,
			unsigned len, uint32_t val);

#endif
