/* SPDX-License-Identifier: MIT */
/*
 * Parsing of user-supplied numbers and sizes. Every function rejects empty strings,
 * trailing garbage, signs, and values that overflow, returning -EINVAL or -ERANGE.
 */
#ifndef VIREO_COMMON_PARSE_H
#define VIREO_COMMON_PARSE_H

#include "common/compiler.h"

/* Decimal unsigned integer in [min, max]. */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out) WUR;
/*
 * Size with optional binary suffix: "512", "512K", "256M", "4G", "1T" (also "MiB", "GiB", "KB"...).
 * A bare number means MiB when default_mib is true (as for --memory), bytes otherwise.
 */
int parse_size(const char *s, bool default_mib, uint64_t *out) WUR;

#endif
