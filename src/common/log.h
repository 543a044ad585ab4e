/* SPDX-License-Identifier: MIT */
/*
 * Logging. Every message is one line on stderr prefixed with "vireo: ".
 * vlog_rl() is rate-limited per call site: use it for anything a guest can trigger,
 * so a hostile guest cannot flood the host's logs.
 */
#ifndef VIREO_COMMON_LOG_H
#define VIREO_COMMON_LOG_H

#include "common/compiler.h"
#include <time.h>

enum vlog_level { VLOG_ERR = 0, VLOG_WARN = 1, VLOG_INFO = 2, VLOG_DEBUG = 3 };

void vlog_set_level(enum vlog_level lvl);
enum vlog_level vlog_get_level(void);
void vlog(enum vlog_level lvl, const char *fmt, ...) PRINTF_FMT(2, 3);

/* Per-call-site rate limit state: at most 10 messages per 5 s window. */
struct vlog_ratelimit {
	int64_t window_start;
	unsigned count;
	unsigned suppressed;
};
bool vlog_ratelimit_ok(struct vlog_ratelimit *rl);

#define verr(...) vlog(VLOG_ERR, __VA_ARGS__)
#define vwarn(...) vlog(VLOG_WARN, __VA_ARGS__)
#define vinfo(...) vlog(VLOG_INFO, __VA_ARGS__)
#define vdebug(...) vlog(VLOG_DEBUG, __VA_ARGS__)

/* Rate-limited warning, for guest-triggered conditions. */
#define vlog_rl(...)                                                                               \
	do {                                                                                       \
		static struct vlog_ratelimit rl__;                                                 \
		if (vlog_ratelimit_ok(&rl__))                                                      \
			vlog(VLOG_WARN, __VA_ARGS__);                                              \
	} while (0)

#endif
