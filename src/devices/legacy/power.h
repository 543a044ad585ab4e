/* SPDX-License-Identifier: MIT */
/*
 * Power requests from the guest: the devices that can turn the machine off or reset it
 * (i8042 reset line, ACPI sleep-control/reset registers) report through struct power_ops
 * and never act on the machine themselves.
 *
 * Contract for implementers: request() is called on a vCPU thread, with no device lock
 * held, possibly several times for one shutdown (a guest may write the register twice).
 * It must not block waiting for that vCPU to stop: record the request and return.
 */
#ifndef VIREO_DEVICES_LEGACY_POWER_H
#define VIREO_DEVICES_LEGACY_POWER_H

enum power_req {
	POWER_REQ_OFF,	 /* ACPI S5 */
	POWER_REQ_RESET, /* i8042 reset pulse or ACPI reset register */
};

struct power_ops {
	void (*request)(void *ctx, enum power_req req);
};

#endif
