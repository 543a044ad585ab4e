/* SPDX-License-Identifier: MIT */
/* CMOS RTC: valid BCD/binary fields, a current date (year >= 2024, near the host clock the
 * runner passes as epoch=), the clock advancing, and NVRAM holding a byte. */
#include "probe.h"

PROBE("rtc");

struct rtc_time {
	unsigned sec, min, hour, day, mon, year, century;
};

static bool bcd_ok(uint8_t v)
{
	return (v & 0xf) < 10 && (v >> 4) < 10;
}

static unsigned field(uint8_t reg, bool binary, const char *name, unsigned lo, unsigned hi)
{
	uint8_t raw = cmos_read(reg);
	unsigned v;
	if (!binary)
		CHECK(bcd_ok(raw), "%s register 0x%x = 0x%x is not BCD", name, reg, raw);
	v = binary ? raw : (raw >> 4) * 10 + (raw & 0xf);
	CHECK(v >= lo && v <= hi, "%s = %u out of range %u..%u", name, v, lo, hi);
	return v;
}

static void rtc_read(struct rtc_time *t)
{
	uint8_t b = cmos_read(0x0b);
	bool binary = b & 0x04;
	uint64_t end = time_us() + 10000;
	uint8_t hraw;

	CHECK(b & 0x02, "register B 0x%x: 12-hour mode", b);
	while ((cmos_read(0x0a) & 0x80) && time_us() < end)
		cpu_relax();
	t->sec = field(0x00, binary, "seconds", 0, 59);
	t->min = field(0x02, binary, "minutes", 0, 59);
	hraw = cmos_read(0x04);
	CHECK(!(hraw & 0x80), "hours 0x%x has the PM bit in 24-hour mode", hraw);
	t->hour = field(0x04, binary, "hours", 0, 23);
	t->day = field(0x07, binary, "day", 1, 31);
	t->mon = field(0x08, binary, "month", 1, 12);
	t->year = field(0x09, binary, "year", 0, 99);
	t->century = cmos_read(0x32) ? field(0x32, binary, "century", 19, 99) : 0;
}

/* days since 1970-01-01 of a civil date (proleptic Gregorian) */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era, yoe, doy, doe;
	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void probe_main(const struct hvm_start_info *si)
{
	struct rtc_time t;
	unsigned year, s0;
	uint8_t d = cmos_read(0x0d);
	uint64_t host = cmdline_u64("epoch", 0);
	int64_t guest;
	(void)si;

	printf("rtc: A=0x%x B=0x%x C=0x%x D=0x%x\n", cmos_read(0x0a), cmos_read(0x0b), cmos_read(0x0c), d);
	CHECK(d & 0x80, "register D 0x%x: VRT (valid RAM and time) clear", d);
	rtc_read(&t);
	year = (t.century ? t.century : 20) * 100 + t.year;
	printf("rtc: %04u-%02u-%02u %02u:%02u:%02u (century register %u)\n", year, t.mon, t.day, t.hour,
	       t.min, t.sec, t.century);
	CHECK(year >= 2024, "year %u < 2024", year);
	guest = days_from_civil(year, t.mon, t.day) * 86400 + t.hour * 3600 + t.min * 60 + t.sec;
	if (host) {
		printf("rtc: guest %ld, host %lu: %ld s apart\n", guest, host, guest - (int64_t)host);
		CHECK(guest - (int64_t)host < 30 && (int64_t)host - guest < 30,
		      "RTC is %ld s away from the host's UTC clock", guest - (int64_t)host);
	}

	s0 = t.sec;
	CHECK(rtc_wait_tick(2500000), "RTC seconds stuck at %u for 2.5 s", s0);
	rtc_read(&t);
	CHECK(t.sec == (s0 + 1) % 60 || t.sec == (s0 + 2) % 60, "seconds went from %u to %u", s0, t.sec);

	cmos_write(0x40, 0x5a);
	CHECK(cmos_read(0x40) == 0x5a, "CMOS NVRAM byte 0x40 reads 0x%x after writing 0x5a",
	      cmos_read(0x40));
	cmos_write(0x40, 0xa5);
	CHECK(cmos_read(0x40) == 0xa5, "CMOS NVRAM byte 0x40 does not hold 0xa5");
	probe_pass();
}
