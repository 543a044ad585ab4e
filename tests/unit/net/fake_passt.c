/* SPDX-License-Identifier: MIT */
/*
 * Stand-in for passt in unit tests (built as "passt" and found through PATH). It checks
 * that it was started the way Vireo starts passt (-f -q -F FD ...), logs its arguments to
 * $FAKE_PASST_LOG, and echoes the qemu-protocol stream back byte for byte until EOF.
 * Behaviours for error tests, chosen by environment variables:
 *   FAKE_PASST_FAIL=1     exit with status 1 at once (like a port already in use)
 *   FAKE_PASST_GARBAGE=1  send a frame length of 0xffffffff
 *   FAKE_PASST_DELAY_MS=N wait N ms before echoing (the socket fills up meanwhile)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *log = getenv("FAKE_PASST_LOG"), *delay = getenv("FAKE_PASST_DELAY_MS");
	int fd = -1, fg = 0;
	static char buf[1 << 16];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-f"))
			fg = 1;
		else if (!strcmp(argv[i], "-F") && i + 1 < argc)
			fd = atoi(argv[++i]);
	}
	if (log) {
		FILE *f = fopen(log, "w");
		if (f) {
			for (int i = 0; i < argc; i++)
				fprintf(f, "%s%s", i ? " " : "", argv[i]);
			fprintf(f, "\n");
			fclose(f);
		}
	}
	if (!fg || fd < 0) {
		fprintf(stderr, "fake passt: expected -f and -F FD\n");
		return 2;
	}
	if (getenv("FAKE_PASST_FAIL")) {
		fprintf(stderr, "fake passt: failing on purpose\n");
		return 1;
	}
	if (getenv("FAKE_PASST_GARBAGE")) {
		static const unsigned char bad[8] = {0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4};
		if (write_all(fd, bad, sizeof(bad)))
			return 3;
	}
	if (delay) {
		long ms = atol(delay);
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return 0;
		if (write_all(fd, buf, (size_t)r))
			return 0;
	}
}
