/* SPDX-License-Identifier: MIT */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>

static enum vlog_level g_level = VLOG_WARN;

void vlog_set_level(enum vlog_level lvl)
{
	g_level = lvl;
}

enum vlog_level vlog_get_level(void)
{
	return g_level;
}

void vlog(enum vlog_level lvl, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	if (lvl > g_level)
		return;
	n = snprintf(buf, sizeof(buf), "vireo: ");
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One write per line so that lines from several threads do not interleave. */
	size_t len = strnlen(buf, sizeof(buf) - 2);
	buf[len++] = '\n';
	fwrite(buf, 1, len, stderr);
	fflush(stderr);
}

bool vlog_ratelimit_ok(struct vlog_ratelimit *rl)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	struct timespec ts;
	bool ok;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	pthread_mutex_lock(&lock);
	if (ts.tv_sec - rl->window_start >= 5) {
		if (rl->suppressed)
			vlog(VLOG_WARN, "(%u similar messages suppressed)", rl->suppressed);
		rl->window_start = ts.tv_sec;
		rl->count = 0;
		rl->suppressed = 0;
	}
	ok = rl->count < 10;
	if (ok)
		rl->count++;
	else
		rl->suppressed++;
	pthread_mutex_unlock(&lock);
	return ok;
}
