/* SPDX-License-Identifier: MIT */
/*
 * HW-reduced ACPI power-management registers (the FADT/DSDT point at these ports; each
 * register is 1 byte and only 1-byte accesses are claimed):
 *
 * - PORT_ACPI_SLEEP_CTL (sleep control): a write with SLP_EN (bit 5) set and
 *   SLP_TYP (bits 4:2) == ACPI_S5_SLP_TYP requests POWER_REQ_OFF. Other sleep types are
 *   not supported and are ignored (rate-limited log). Reads 0.
 * - PORT_ACPI_SLEEP_STS (sleep status): WAK_STS never becomes set (the machine never
 *   sleeps), so it reads 0; writes (write-1-to-clear) are accepted and ignored.
 * - PORT_ACPI_RESET: writing ACPI_RESET_VALUE requests POWER_REQ_RESET. Reads 0.
 * - PORT_ACPI_GED (Generic Event Device): acpi_pm_press_power_button() sets
 *   ACPI_GED_EVT_POWER_BUTTON and asserts GSI_SCI (level). A read returns the pending
 *   event bits, clears them and deasserts the line. Writes are ignored.
 *
 * Power requests are made on the vCPU thread after the device lock is dropped.
 * acpi_pm_press_power_button() may be called from any thread.
 */
#ifndef VIREO_DEVICES_LEGACY_ACPI_PM_H
#define VIREO_DEVICES_LEGACY_ACPI_PM_H

#include "common/compiler.h"
#include "bus/platform.h"
#include "devices/legacy/power.h"
#include <pthread.h>

#define ACPI_SLP_EN 0x20
#define ACPI_SLP_TYP_SHIFT 2
#define ACPI_SLP_TYP_MASK 0x1c
#define ACPI_WAK_STS 0x80

enum acpi_pm_reg {
	ACPI_REG_SLEEP_CTL,
	ACPI_REG_SLEEP_STS,
	ACPI_REG_RESET,
	ACPI_REG_GED,
	ACPI_NR_REGS
};

struct acpi_pm;
/* The bus opaque of one register. */
struct acpi_pm_port {
	struct acpi_pm *pm;
	enum acpi_pm_reg reg;
};

struct acpi_pm {
	const struct platform *plat;
	struct acpi_pm_port ports[ACPI_NR_REGS];
	const struct power_ops *power;
	void *power_ctx;
	unsigned registered; /* bit per register, for fini */
	pthread_mutex_t lock;
	uint8_t ged_pending;
	int sci_level;
};

#define ACPI_PM_STATE_VERSION 1
struct acpi_pm_state {
	uint32_t version; /* little-endian */
	uint8_t ged_pending;
	uint8_t reserved[3];
};

int acpi_pm_init(struct acpi_pm *pm, const struct platform *plat, const struct power_ops *power,
		 void *power_ctx) WUR;
void acpi_pm_fini(struct acpi_pm *pm);
/* Clears pending events and lowers the SCI line. */
void acpi_pm_reset(struct acpi_pm *pm);
/* The host asks the guest to shut down (ACPI power button). */
void acpi_pm_press_power_button(struct acpi_pm *pm);
void acpi_pm_save(struct acpi_pm *pm, struct acpi_pm_state *st);
int acpi_pm_load(struct acpi_pm *pm, const struct acpi_pm_state *st) WUR;

#endif
