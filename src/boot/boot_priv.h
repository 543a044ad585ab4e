/* SPDX-License-Identifier: MIT */
/*
 * Internal helpers shared by the files of src/boot/ (not for other layers).
 */
#ifndef VIREO_BOOT_BOOT_PRIV_H
#define VIREO_BOOT_BOOT_PRIV_H

#include "common/compiler.h"

/* Format a one-line message into err (if err && errlen) and return code (a -errno). */
int boot_errf(char *err, size_t errlen, int code, const char *fmt, ...) PRINTF_FMT(4, 5);

/* Bytes rounded up to whole MiB, for messages. */
static inline unsigned long long boot_mib(uint64_t bytes)
{
	return (unsigned long long)(bytes / (1ULL << 20) + ((bytes % (1ULL << 20)) != 0));
}

#endif
