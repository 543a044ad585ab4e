/* SPDX-License-Identifier: MIT */
/*
 * Byte-order, Internet checksum and address helpers shared by the network probe guests
 * (tests/probe/virtio_net*.c) and the network benchmark guest (bench/guest_net/).
 * Header-only (static inline) so each probe keeps only what it uses.
 */
#ifndef VIREO_PROBE_NETUTIL_H
#define VIREO_PROBE_NETUTIL_H

#include "probe.h"

static inline uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t be32(const uint8_t *p) { return (uint32_t)be16(p) << 16 | be16(p + 2); }
static inline void put16(uint8_t *p, uint16_t x) { p[0] = (uint8_t)(x >> 8), p[1] = (uint8_t)x; }
static inline void put32(uint8_t *p, uint32_t x)
{
	put16(p, (uint16_t)(x >> 16));
	put16(p + 2, (uint16_t)x);
}

/* One's-complement sum of n bytes (big-endian words, odd byte padded) added to sum. */
static inline uint32_t sum16(const uint8_t *p, size_t n, uint32_t sum)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += be16(p + i);
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	return sum;
}
static inline uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}
/* The Internet checksum of n bytes, continuing a partial sum (e.g. a pseudo-header's). */
static inline uint16_t csum_from(const uint8_t *p, size_t n, uint32_t sum)
{
	return (uint16_t)~fold(sum16(p, n, sum));
}
static inline uint16_t csum(const uint8_t *p, size_t n) { return csum_from(p, n, 0); }

/* "key=A.B.C.D" on the probe command line into ip; false if absent or malformed. */
static inline bool parse_ip(const char *key, uint8_t ip[4])
{
	char s[32];
	const char *p = s;
	if (!cmdline_str(key, s, sizeof(s)))
		return false;
	for (unsigned i = 0; i < 4; i++) {
		unsigned x = 0, digits = 0;
		while (*p >= '0' && *p <= '9' && digits < 4)
			x = x * 10 + (unsigned)(*p++ - '0'), digits++;
		if (!digits || x > 255 || (i < 3 && *p++ != '.'))
			return false;
		ip[i] = (uint8_t)x;
	}
	return *p == 0;
}

#endif
