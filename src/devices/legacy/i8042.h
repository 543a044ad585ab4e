/* SPDX-License-Identifier: MIT */
/*
 * The sliver of an i8042 keyboard controller a guest needs to reboot: no keyboard, no
 * mouse, no interrupts.
 *
 * - Status (read PORT_I8042_CMD): SYS flag and "not inhibited", input buffer always empty
 *   (so Linux's kb_wait() returns at once); OBF only while a 0xD0 answer is waiting.
 * - Commands: 0xF0-0xFE with bit 0 clear pulse the CPU reset line (0xFE is the usual one)
 *   -> power_ops->request(POWER_REQ_RESET). 0xD0 queues the output port value for the
 *   data port; 0xD1 makes the next data-port write the new output port value, and a value
 *   with bit 0 (reset line, active low) clear requests a reset. Everything else, and data
 *   written without a pending 0xD1, is ignored.
 * - Data port reads return the last output-buffer byte and clear OBF.
 *
 * The power request is made on the vCPU thread after the device lock is dropped.
 */
#ifndef VIREO_DEVICES_LEGACY_I8042_H
#define VIREO_DEVICES_LEGACY_I8042_H

#include "common/compiler.h"
#include "bus/platform.h"
#include "devices/legacy/power.h"
#include <pthread.h>

#define I8042_STS_OBF 0x01
#define I8042_STS_IBF 0x02
#define I8042_STS_SYS 0x04
#define I8042_STS_CMD 0x08 /* last write went to the command port */
#define I8042_STS_UNLOCKED 0x10

#define I8042_CMD_READ_OUTPORT 0xd0
#define I8042_CMD_WRITE_OUTPORT 0xd1
#define I8042_CMD_RESET 0xfe
#define I8042_OUTPORT_RESET 0x01 /* 0 = assert CPU reset */
#define I8042_OUTPORT_A20 0x02

struct i8042 {
	const struct platform *plat;
	const struct power_ops *power;
	void *power_ctx;
	bool registered_data, registered_cmd;
	pthread_mutex_t lock;
	uint8_t status; /* OBF and CMD bits; the rest is constant */
	uint8_t outbuf;
	uint8_t outport;
	uint8_t pending_cmd; /* 0 or I8042_CMD_WRITE_OUTPORT */
};

#define I8042_STATE_VERSION 1
struct i8042_state {
	uint32_t version; /* little-endian */
	uint8_t status, outbuf, outport, pending_cmd;
};

/* Registers PORT_I8042_DATA and PORT_I8042_CMD (1 byte each) on plat->pio. */
int i8042_init(struct i8042 *k, const struct platform *plat, const struct power_ops *power,
	       void *power_ctx) WUR;
void i8042_fini(struct i8042 *k);
void i8042_reset(struct i8042 *k);
void i8042_save(struct i8042 *k, struct i8042_state *st);
int i8042_load(struct i8042 *k, const struct i8042_state *st) WUR;

#endif
