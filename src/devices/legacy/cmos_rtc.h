/* SPDX-License-Identifier: MIT */
/*
 * MC146818-style CMOS RTC at PORT_CMOS: index port 0x70 (bit 7 = NMI disable, stored
 * but without effect: there is no NMI source), data port 0x71, 128 bytes of CMOS.
 *
 * - The clock registers (0x00 s, 0x02 min, 0x04 h, 0x06 weekday 1=Sunday, 0x07 day,
 *   0x08 month, 0x09 year, 0x32 century) are computed at read time from the host's UTC
 *   clock plus an offset, in the format register B selects: BCD or binary (DM, bit 2),
 *   24 h or 12 h with bit 7 = PM (bit 1).
 * - Setting register B's SET bit freezes the clock registers at their current values;
 *   the guest writes new ones; clearing SET starts the clock from them, read in the
 *   format that was in force while they were written (the offset to host time is
 *   stored, so the clock keeps running with the host's). A time register
 *   written without SET takes effect at once. Invalid dates are ignored (logged).
 * - Register A: divider/rate bits stored; UIP (bit 7) reads as set only during the last
 *   244 us of each host second and never while SET is on, so polling loops end.
 * - Register C reads 0 (no interrupt sources: alarm/periodic/update interrupts are not
 *   emulated, the enable bits in B are stored only); register D reads VRT (valid RAM).
 * - Optional BIOS memory-size fields: cmos_rtc_set_mem_size().
 *
 * The time source is injectable for tests. All state is under one mutex.
 */
#ifndef VIREO_DEVICES_LEGACY_CMOS_RTC_H
#define VIREO_DEVICES_LEGACY_CMOS_RTC_H

#include "common/compiler.h"
#include "bus/platform.h"
#include <pthread.h>
#include <time.h>

#define CMOS_SIZE 128
#define CMOS_NMI_DISABLE 0x80

/* Register indexes. */
#define CMOS_SECONDS 0x00
#define CMOS_SECONDS_ALARM 0x01
#define CMOS_MINUTES 0x02
#define CMOS_MINUTES_ALARM 0x03
#define CMOS_HOURS 0x04
#define CMOS_HOURS_ALARM 0x05
#define CMOS_DAY_OF_WEEK 0x06
#define CMOS_DAY_OF_MONTH 0x07
#define CMOS_MONTH 0x08
#define CMOS_YEAR 0x09
#define CMOS_REG_A 0x0a
#define CMOS_REG_B 0x0b
#define CMOS_REG_C 0x0c
#define CMOS_REG_D 0x0d
#define CMOS_CENTURY 0x32

#define CMOS_A_UIP 0x80
#define CMOS_B_SET 0x80
#define CMOS_B_DM_BINARY 0x04
#define CMOS_B_24H 0x02
#define CMOS_D_VRT 0x80

/* Returns the current UTC time (CLOCK_REALTIME by default). */
typedef void (*cmos_rtc_clock_fn)(void *ctx, struct timespec *now);

struct cmos_rtc {
	const struct platform *plat;
	cmos_rtc_clock_fn clock;
	void *clock_ctx;
	bool registered;
	pthread_mutex_t lock;
	uint8_t index;
	bool nmi_disabled;
	uint8_t ram[CMOS_SIZE]; /* clock registers here are only meaningful while SET */
	int64_t offset;		/* guest RTC seconds minus host UTC seconds */
};

#define CMOS_RTC_STATE_VERSION 1
struct cmos_rtc_state {
	uint32_t version; /* little-endian */
	uint8_t index, nmi_disabled;
	uint8_t reserved[2];
	uint64_t offset; /* little-endian, two's complement */
	uint8_t ram[CMOS_SIZE];
};

/* Registers PORT_CMOS (2 bytes) on plat->pio. clock may be NULL (host CLOCK_REALTIME). */
int cmos_rtc_init(struct cmos_rtc *c, const struct platform *plat, cmos_rtc_clock_fn clock,
		  void *clock_ctx) WUR;
void cmos_rtc_fini(struct cmos_rtc *c);
/* Fill the BIOS memory-size fields (0x15-0x18, 0x30/0x31, 0x34/0x35, 0x5b-0x5d). */
void cmos_rtc_set_mem_size(struct cmos_rtc *c, uint64_t below_4g, uint64_t above_4g);
bool cmos_rtc_nmi_disabled(struct cmos_rtc *c);
void cmos_rtc_save(struct cmos_rtc *c, struct cmos_rtc_state *st);
int cmos_rtc_load(struct cmos_rtc *c, const struct cmos_rtc_state *st) WUR;

#endif
