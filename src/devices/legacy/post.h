/* SPDX-License-Identifier: MIT */
/*
 * Port 0x80, the POST-code / I/O-delay port. Linux writes it for "slow" port I/O
 * (io_delay), so it must exist and be cheap: writes are accepted and only the last
 * value is remembered (post_last_code, for debugging); reads return 0xff, like an
 * undriven ISA bus. No lock: the single byte is accessed atomically.
 */
#ifndef VIREO_DEVICES_LEGACY_POST_H
#define VIREO_DEVICES_LEGACY_POST_H

#include "common/compiler.h"
#include "bus/platform.h"

struct post {
	const struct platform *plat;
	bool registered;
	uint8_t last; /* atomic */
};

#define POST_STATE_VERSION 1
struct post_state {
	uint32_t version; /* little-endian */
	uint8_t last;
	uint8_t reserved[3];
};

/* Registers PORT_POST (1 byte) on plat->pio. */
int post_init(struct post *p, const struct platform *plat) WUR;
void post_fini(struct post *p);
uint8_t post_last_code(const struct post *p);
void post_save(const struct post *p, struct post_state *st);
int post_load(struct post *p, const struct post_state *st) WUR;

#endif
