/* SPDX-License-Identifier: MIT */
#include "devices/legacy/cmos_rtc.h"
#include "bus/bus.h"
#include "common/log.h"
#include "memory/layout.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#define CMOS_UIP_NS 244000L	/* UIP is set this long before each update */
#define CMOS_REG_A_DEFAULT 0x26 /* 32.768 kHz time base, 1024 Hz periodic rate */
#define CMOS_REG_B_DEFAULT CMOS_B_24H
#define CMOS_OFFSET_MAX (1LL << 40) /* ~35000 years: far beyond what a guest can set */

static const uint8_t cmos_clock_regs[] = {CMOS_SECONDS,	    CMOS_MINUTES,      CMOS_HOURS,
					  CMOS_DAY_OF_WEEK, CMOS_DAY_OF_MONTH, CMOS_MONTH,
					  CMOS_YEAR,	    CMOS_CENTURY};

static void cmos_host_clock(void *ctx, struct timespec *now)
{
	(void)ctx;
	clock_gettime(CLOCK_REALTIME, now);
}

static bool cmos_is_clock_reg(unsigned reg)
{
	for (size_t i = 0; i < ARRAY_SIZE(cmos_clock_regs); i++)
		if (cmos_clock_regs[i] == reg)
			return true;
	return false;
}

static bool cmos_binary(const struct cmos_rtc *c)
{
	return c->ram[CMOS_REG_B] & CMOS_B_DM_BINARY;
}

static uint8_t cmos_encode(const struct cmos_rtc *c, unsigned v)
{
	if (cmos_binary(c))
		return (uint8_t)v;
	v %= 100;
	return (uint8_t)(((v / 10) << 4) | (v % 10));
}

/* -1 for a BCD byte with a digit above 9. */
static int cmos_decode(const struct cmos_rtc *c, uint8_t v)
{
	if (cmos_binary(c))
		return v;
	if ((v & 0x0f) > 9 || (v >> 4) > 9)
		return -1;
	return (v >> 4) * 10 + (v & 0x0f);
}

static uint8_t cmos_encode_hour(const struct cmos_rtc *c, unsigned hour)
{
	if (c->ram[CMOS_REG_B] & CMOS_B_24H)
		return cmos_encode(c, hour);
	unsigned h12 = hour % 12 ? hour % 12 : 12;
	return cmos_encode(c, h12) | (hour >= 12 ? 0x80 : 0);
}

static int cmos_decode_hour(const struct cmos_rtc *c, uint8_t v)
{
	if (c->ram[CMOS_REG_B] & CMOS_B_24H)
		return cmos_decode(c, v);
	int h = cmos_decode(c, v & 0x7f);
	if (h < 1 || h > 12)
		return -1;
	return h % 12 + ((v & 0x80) ? 12 : 0);
}

static bool cmos_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int cmos_month_days(int64_t y, int m)
{
	static const uint8_t days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && cmos_leap(y) ? 29 : days[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (y >= 0, 1 <= m <= 12). */
static int64_t cmos_days_since_epoch(int64_t y, int m, int d)
{
	/* Count years from March so that the leap day is the last day of a year. */
	if (m <= 2)
		y--;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t year_of_era = y - era * 400;
	int64_t day_of_year = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
	return era * 146097 + day_of_era - 719468;
}

static void cmos_guest_tm(const struct cmos_rtc *c, const struct timespec *now, struct tm *tm)
{
	int64_t secs;
	time_t t;

	memset(tm, 0, sizeof(*tm));
	if (add_overflows((int64_t)now->tv_sec, c->offset, &secs))
		secs = 0;
	t = (time_t)secs;
	if (!gmtime_r(&t, tm) || tm->tm_year < -1900) {
		memset(tm, 0, sizeof(*tm));
		tm->tm_mday = 1;
		tm->tm_year = 70;
	}
}

static uint8_t cmos_clock_value(const struct cmos_rtc *c, unsigned reg, const struct tm *tm)
{
	unsigned year = (unsigned)(tm->tm_year + 1900);

	switch (reg) {
	case CMOS_SECONDS:
		return cmos_encode(c, (unsigned)tm->tm_sec);
	case CMOS_MINUTES:
		return cmos_encode(c, (unsigned)tm->tm_min);
	case CMOS_HOURS:
		return cmos_encode_hour(c, (unsigned)tm->tm_hour);
	case CMOS_DAY_OF_WEEK:
		return cmos_encode(c, (unsigned)tm->tm_wday + 1);
	case CMOS_DAY_OF_MONTH:
		return cmos_encode(c, (unsigned)tm->tm_mday);
	case CMOS_MONTH:
		return cmos_encode(c, (unsigned)tm->tm_mon + 1);
	case CMOS_YEAR:
		return cmos_encode(c, year % 100);
	case CMOS_CENTURY:
		return cmos_encode(c, year / 100);
	}
	return 0;
}

/* Latch the running clock into the clock registers (SET goes on). */
static void cmos_freeze(struct cmos_rtc *c, const struct timespec *now)
{
	struct tm tm;

	cmos_guest_tm(c, now, &tm);
	for (size_t i = 0; i < ARRAY_SIZE(cmos_clock_regs); i++)
		c->ram[cmos_clock_regs[i]] = cmos_clock_value(c, cmos_clock_regs[i], &tm);
}

/* Start the clock from the clock registers (SET goes off). False if they are not a date. */
static bool cmos_thaw(struct cmos_rtc *c, const struct timespec *now)
{
	int sec = cmos_decode(c, c->ram[CMOS_SECONDS]);
	int min = cmos_decode(c, c->ram[CMOS_MINUTES]);
	int hour = cmos_decode_hour(c, c->ram[CMOS_HOURS]);
	int day = cmos_decode(c, c->ram[CMOS_DAY_OF_MONTH]);
	int mon = cmos_decode(c, c->ram[CMOS_MONTH]);
	int yy = cmos_decode(c, c->ram[CMOS_YEAR]);
	int cent = cmos_decode(c, c->ram[CMOS_CENTURY]);

	if (sec < 0 || sec > 59 || min < 0 || min > 59 || hour < 0 || hour > 23 || mon < 1 ||
	    mon > 12 || yy < 0 || yy > 99 || cent < 0)
		return false;
	int64_t year = (int64_t)cent * 100 + yy;
	if (day < 1 || day > cmos_month_days(year, mon))
		return false;
	int64_t t = cmos_days_since_epoch(year, mon, day) * 86400 + hour * 3600 + min * 60 + sec;
	c->offset = t - (int64_t)now->tv_sec;
	return true;
}

static uint8_t cmos_data_read(struct cmos_rtc *c, const struct timespec *now)
{
	unsigned reg = c->index;
	bool set = c->ram[CMOS_REG_B] & CMOS_B_SET;

	switch (reg) {
	case CMOS_REG_A: {
		bool uip = !set && now->tv_nsec >= 1000000000L - CMOS_UIP_NS;
		return (c->ram[CMOS_REG_A] & 0x7f) | (uip ? CMOS_A_UIP : 0);
	}
	case CMOS_REG_C:
		return 0;
	case CMOS_REG_D:
		return CMOS_D_VRT;
	}
	if (!set && cmos_is_clock_reg(reg)) {
		struct tm tm;
		cmos_guest_tm(c, now, &tm);
		return cmos_clock_value(c, reg, &tm);
	}
	return c->ram[reg];
}

static void cmos_data_write(struct cmos_rtc *c, uint8_t v, const struct timespec *now)
{
	unsigned reg = c->index;
	bool set = c->ram[CMOS_REG_B] & CMOS_B_SET;

	switch (reg) {
	case CMOS_REG_A:
		c->ram[CMOS_REG_A] = v & 0x7f;
		return;
	case CMOS_REG_B:
		/* Read the new time in the format it was written in, latch it in the new one. */
		if (set && !(v & CMOS_B_SET) && !cmos_thaw(c, now))
			vlog_rl("cmos: guest set an invalid date, clock unchanged");
		c->ram[CMOS_REG_B] = v;
		if (!set && (v & CMOS_B_SET))
			cmos_freeze(c, now);
		return;
	case CMOS_REG_C:
	case CMOS_REG_D:
		return;
	}
	if (!set && cmos_is_clock_reg(reg)) {
		/* A running clock register changes the time on the spot. */
		cmos_freeze(c, now);
		c->ram[reg] = v;
		if (!cmos_thaw(c, now))
			vlog_rl("cmos: guest set an invalid date, clock unchanged");
		return;
	}
	c->ram[reg] = v;
}

static void cmos_pio_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct cmos_rtc *c = opaque;
	uint8_t *p = data;
	struct timespec now;

	c->clock(c->clock_ctx, &now);
	pthread_mutex_lock(&c->lock);
	for (unsigned i = 0; i < len; i++)
		p[i] = off + i == 1 ? cmos_data_read(c, &now)
				    : 0xff; /* the index port is write-only */
	pthread_mutex_unlock(&c->lock);
}

static void cmos_pio_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct cmos_rtc *c = opaque;
	const uint8_t *p = data;
	struct timespec now;

	c->clock(c->clock_ctx, &now);
	pthread_mutex_lock(&c->lock);
	for (unsigned i = 0; i < len; i++) {
		if (off + i == 0) {
			c->index = p[i] & (CMOS_SIZE - 1);
			c->nmi_disabled = p[i] & CMOS_NMI_DISABLE;
		} else if (off + i == 1) {
			cmos_data_write(c, p[i], &now);
		}
	}
	pthread_mutex_unlock(&c->lock);
}

static const struct bus_ops cmos_ops = {.read = cmos_pio_read, .write = cmos_pio_write};

int cmos_rtc_init(struct cmos_rtc *c, const struct platform *plat, cmos_rtc_clock_fn clock,
		  void *clock_ctx)
{
	int r;

	memset(c, 0, sizeof(*c));
	c->plat = plat;
	c->clock = clock ? clock : cmos_host_clock;
	c->clock_ctx = clock_ctx;
	c->ram[CMOS_REG_A] = CMOS_REG_A_DEFAULT;
	c->ram[CMOS_REG_B] = CMOS_REG_B_DEFAULT;
	r = -pthread_mutex_init(&c->lock, NULL);
	if (r)
		return r;
	r = bus_register(plat->pio, PORT_CMOS, 2, &cmos_ops, c);
	if (r) {
		pthread_mutex_destroy(&c->lock);
		return r;
	}
	c->registered = true;
	return 0;
}

void cmos_rtc_fini(struct cmos_rtc *c)
{
	if (c->registered && bus_unregister(c->plat->pio, PORT_CMOS, c) < 0)
		vwarn("cmos: port 0x%x was not registered", PORT_CMOS);
	c->registered = false;
	pthread_mutex_destroy(&c->lock);
}

static void cmos_put16(struct cmos_rtc *c, unsigned reg, uint64_t v)
{
	c->ram[reg] = (uint8_t)v;
	c->ram[reg + 1] = (uint8_t)(v >> 8);
}

void cmos_rtc_set_mem_size(struct cmos_rtc *c, uint64_t below_4g, uint64_t above_4g)
{
	const uint64_t mib = 1ULL << 20;
	uint64_t ext_kib = below_4g > mib ? MIN((below_4g - mib) >> 10, 0xffffULL) : 0;
	uint64_t over_16m = below_4g > 16 * mib ? MIN((below_4g - 16 * mib) >> 16, 0xffffULL) : 0;
	uint64_t over_4g = MIN(above_4g >> 16, 0xffffffULL);

	pthread_mutex_lock(&c->lock);
	cmos_put16(c, 0x15, 640); /* base memory, KiB */
	cmos_put16(c, 0x17, ext_kib);
	cmos_put16(c, 0x30, ext_kib);
	cmos_put16(c, 0x34, over_16m); /* 64 KiB units */
	c->ram[0x5b] = (uint8_t)over_4g;
	c->ram[0x5c] = (uint8_t)(over_4g >> 8);
	c->ram[0x5d] = (uint8_t)(over_4g >> 16);
	pthread_mutex_unlock(&c->lock);
}

bool cmos_rtc_nmi_disabled(struct cmos_rtc *c)
{
	pthread_mutex_lock(&c->lock);
	bool v = c->nmi_disabled;
	pthread_mutex_unlock(&c->lock);
	return v;
}

void cmos_rtc_save(struct cmos_rtc *c, struct cmos_rtc_state *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&c->lock);
	st->version = htole32(CMOS_RTC_STATE_VERSION);
	st->index = c->index;
	st->nmi_disabled = c->nmi_disabled;
	st->offset = htole64((uint64_t)c->offset);
	memcpy(st->ram, c->ram, CMOS_SIZE);
	pthread_mutex_unlock(&c->lock);
}

int cmos_rtc_load(struct cmos_rtc *c, const struct cmos_rtc_state *st)
{
	int64_t offset = (int64_t)le64toh(st->offset);

	if (le32toh(st->version) != CMOS_RTC_STATE_VERSION)
		return -EINVAL;
	if (st->index >= CMOS_SIZE || st->nmi_disabled > 1 || offset > CMOS_OFFSET_MAX ||
	    offset < -CMOS_OFFSET_MAX)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	c->index = st->index;
	c->nmi_disabled = st->nmi_disabled;
	c->offset = offset;
	memcpy(c->ram, st->ram, CMOS_SIZE);
	c->ram[CMOS_REG_A] &= 0x7f;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

_Static_assert(sizeof(struct cmos_rtc_state) == 16 + CMOS_SIZE,
	       "cmos_rtc_state is a fixed-layout record");
