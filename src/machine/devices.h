/* SPDX-License-Identifier: MIT */
/*
 * The machine's device set and its attach steps (called by machine_build in order).
 * Legacy devices: COM1 UART, i8042 (reset only), CMOS RTC, port 0x80, ACPI PM registers.
 * PCI: host bridge, virtio-rng (unless --no-rng). Nothing else: every device is attack
 * surface.
 */
#ifndef VIREO_MACHINE_DEVICES_H
#define VIREO_MACHINE_DEVICES_H

#include "common/compiler.h"
#include "bus/pci/pci.h"
#include "devices/legacy/acpi_pm.h"
#include "devices/legacy/cmos_rtc.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/post.h"
#include "devices/legacy/uart8250.h"
#include "devices/virtio/virtio_blk.h"
#include "devices/virtio/virtio_rng.h"
#include "devices/virtio/virtio_net.h"
#include "net/net.h"
#include "machine/console.h"
#include "machine/vm_config.h"

struct machine;

struct machine_devices {
	struct uart8250 uart;
	struct i8042 kbd;
	struct cmos_rtc rtc;
	struct post post;
	struct acpi_pm pm;
	struct pci_host pci;
	struct virtio_rng *rng;
	struct virtio_net *nics[VM_MAX_NICS];
	struct virtio_blk *blk[VM_MAX_DISKS];
	struct console console;
	bool uart_ok, kbd_ok, rtc_ok, post_ok, pm_ok, pci_ok, console_ok;
};

/* What survives a guest reset: the CMOS NVRAM (battery-backed on a PC) and the open disk
 * backends (their image locks stay held while the VM reboots). */
struct machine_persist {
	struct cmos_rtc_state cmos;
	bool cmos_valid;
	/* Network backends live as long as the process: a TAP keeps its name, passt its ports. */
	struct net_backend *net_be[VM_MAX_NICS];
	uint8_t net_mac[VM_MAX_NICS][6];
	struct blk_backend *disk[VM_MAX_DISKS];
};

int machine_persist_init(struct machine *m, char *err, size_t errlen) WUR;
void machine_persist_fini(struct machine *m);
/* Create devices and register them on the buses (before the vCPUs exist). */
int machine_devices_create(struct machine *m, char *err, size_t errlen) WUR;
/* Hook host-side I/O (console) into the I/O loop. */
int machine_devices_attach_io(struct machine *m, char *err, size_t errlen) WUR;
/* Save what persists, then destroy. The I/O loop must be stopped. */
void machine_devices_destroy(struct machine *m);
/* ACPI tables for this machine; *rsdp receives the RSDP address. */
int machine_acpi_build(struct machine *m, uint64_t *rsdp, char *err, size_t errlen) WUR;

#endif
