/* SPDX-License-Identifier: MIT */
#include "common/parse.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

static int parse_digits(const char **sp, uint64_t *out)
{
	const char *s = *sp;
	uint64_t v = 0;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	while (isdigit((unsigned char)*s)) {
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v))
			return -ERANGE;
		s++;
	}
	*sp = s;
	*out = v;
	return 0;
}

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v;
	int r;

	if (!s)
		return -EINVAL;
	r = parse_digits(&s, &v);
	if (r)
		return r;
	if (*s)
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int parse_size(const char *s, bool default_mib, uint64_t *out)
{
	static const struct {
		const char *sfx;
		unsigned shift;
	} units[] = {
		{"", 0},     {"b", 0},	  {"k", 10},   {"kb", 10},  {"kib", 10}, {"m", 20},
		{"mb", 20},  {"mib", 20}, {"g", 30},   {"gb", 30},  {"gib", 30}, {"t", 40},
		{"tb", 40},  {"tib", 40},
	};
	uint64_t v;
	int r;

	if (!s)
		return -EINVAL;
	r = parse_digits(&s, &v);
	if (r)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (strcasecmp(s, units[i].sfx) != 0)
			continue;
		unsigned shift = units[i].shift;
		if (i == 0 && default_mib)
			shift = 20;
		if (shift && v > (UINT64_MAX >> shift))
			return -ERANGE;
		*out = v << shift;
		return 0;
	}
	return -EINVAL;
}
