/* SPDX-License-Identifier: MIT */
/*
 * The user-mode (passt) backend against a fake passt (fake_passt.c, first in PATH): process
 * start and clean-up, the length-prefixed stream framing (also across partial writes),
 * start-up failures and a corrupt stream.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "net/net.h"

static char fake_dir[4096], log_path[4200];

static struct net_backend *open_user(const char *opts, int expect, const char *errpart)
{
	struct net_config cfg;
	struct net_backend *be = NULL;
	char err[256] = "";
	assert_int_equal(net_parse_opt(opts, &cfg, err, sizeof(err)), 0);
	setenv("PATH", fake_dir, 1);
	int r = net_backend_open(&be, &cfg, err, sizeof(err));
	if (r != expect)
		fail_msg("open '%s': %d (%s), expected %d", opts, r, err, expect);
	if (errpart && !strstr(err, errpart))
		fail_msg("error '%s' lacks '%s'", err, errpart);
	return be;
}

static pid_t be_pid(const struct net_backend *be)
{
	const char *p = strstr(be->desc, "pid ");
	assert_non_null(p);
	return (pid_t)atoi(p + 4);
}

static void wait_fd(int fd, short ev)
{
	struct pollfd p = {.fd = fd, .events = ev};
	assert_int_equal(poll(&p, 1, 5000), 1);
}

static ssize_t recv_frame(struct net_backend *be, void *buf, size_t len)
{
	struct iovec iov = {buf, len};
	for (unsigned i = 0; i < 1000; i++) {
		ssize_t r = net_backend_recv(be, &iov, 1);
		if (r != -EAGAIN)
			return r;
		wait_fd(be->fd, POLLIN);
	}
	return -ETIMEDOUT;
}

static void test_echo(void **state)
{
	(void)state;
	static uint8_t out[NET_MAX_FRAME], in[NET_MAX_FRAME];
	unlink(log_path);
	struct net_backend *be = open_user("user,hostfwd=tcp:2222-:22", 0, NULL);
	assert_false(be->vnet_hdr); /* plain Ethernet frames, no offloads */
	assert_int_equal(be->offload_caps, 0);
	assert_int_equal(be->mtu, 1500);
	pid_t pid = be_pid(be);
	assert_int_equal(kill(pid, 0), 0);

	/* Frames of several sizes, each split over two iovecs, come back intact. */
	static const size_t sizes[] = {60, 1514, 4096, NET_MAX_FRAME};
	for (unsigned i = 0; i < 4; i++) {
		for (size_t k = 0; k < sizes[i]; k++)
			out[k] = (uint8_t)(k * 13 + i);
		struct iovec iov[2] = {{out, 7}, {out + 7, sizes[i] - 7}};
		assert_int_equal(net_backend_send(be, iov, 2), 0);
		memset(in, 0, sizes[i]);
		assert_int_equal(recv_frame(be, in, sizeof(in)), (ssize_t)sizes[i]);
		assert_memory_equal(in, out, sizes[i]);
	}
	/* A frame larger than the buffer reports its true length (the caller drops it). */
	struct iovec iov = {out, 100};
	assert_int_equal(net_backend_send(be, &iov, 1), 0);
	assert_int_equal(recv_frame(be, in, 50), 100);
	/* Invalid frames are refused before reaching the stream. */
	iov.iov_len = 0;
	assert_int_equal(net_backend_send(be, &iov, 1), -EINVAL);
	iov.iov_len = NET_MAX_FRAME + 1;
	assert_int_equal(net_backend_send(be, &iov, 1), -EINVAL);

	net_backend_close(be);
	/* The child is gone and reaped: no zombie, no leak. */
	assert_int_equal(kill(pid, 0), -1);
	assert_int_equal(errno, ESRCH);

	char line[512] = "";
	FILE *f = fopen(log_path, "r");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f));
	fclose(f);
	assert_non_null(strstr(line, "/passt -f -q -F 3 -m 1500 "));
	assert_non_null(strstr(line, " -t 2222:22"));
}

/* passt stops reading for a while: sends hit -EAGAIN, partial writes must keep framing. */
static void test_backpressure(void **state)
{
	(void)state;
	static uint8_t out[60000], in[NET_MAX_FRAME];
	const unsigned total = 80; /* 4.8 MB: much more than the socket buffers hold */
	unsigned sent = 0, got = 0, eagain = 0;

	setenv("FAKE_PASST_DELAY_MS", "300", 1);
	struct net_backend *be = open_user("user", 0, NULL);
	unsetenv("FAKE_PASST_DELAY_MS");
	while (got < total) {
		while (sent < total) { /* a burst until the socket is full */
			for (size_t k = 0; k < sizeof(out); k++)
				out[k] = (uint8_t)(k + sent);
			memcpy(out, &sent, sizeof(sent));
			struct iovec iov = {out, sizeof(out)};
			int r = net_backend_send(be, &iov, 1);
			if (r == -EAGAIN) {
				eagain++;
				break;
			}
			assert_int_equal(r, 0);
			sent++;
		}
		struct iovec riov = {in, sizeof(in)};
		ssize_t n = net_backend_recv(be, &riov, 1);
		if (n == -EAGAIN) {
			/* A frame the socket took only in part must be pushed out too, or the
			 * echo peer waits for its tail while we wait for its answer. */
			int fr = net_backend_flush(be);
			assert_true(fr == 0 || fr == -EAGAIN);
			bool want_out = sent < total || fr == -EAGAIN;
			struct pollfd p = {.fd = be->fd, .events = POLLIN | (want_out ? POLLOUT : 0)};
			assert_true(poll(&p, 1, 5000) > 0);
			continue;
		}
		assert_int_equal(n, sizeof(out));
		unsigned seq;
		memcpy(&seq, in, sizeof(seq));
		assert_int_equal(seq, got);
		assert_int_equal(in[100], (uint8_t)(100 + seq));
		assert_int_equal(in[sizeof(out) - 1], (uint8_t)(sizeof(out) - 1 + seq));
		got++;
	}
	if (eagain == 0)
		fail_msg("no -EAGAIN in %u sends", sent);
	assert_int_equal(net_backend_flush(be), 0);
	net_backend_close(be);
}

static void test_start_failures(void **state)
{
	(void)state;
	setenv("FAKE_PASST_FAIL", "1", 1);
	assert_null(open_user("user", -ECHILD, "exited at start-up"));
	unsetenv("FAKE_PASST_FAIL");

	struct net_config cfg;
	struct net_backend *be = NULL;
	char err[256] = "";
	assert_int_equal(net_parse_opt("user", &cfg, err, sizeof(err)), 0);
	setenv("PATH", "/nonexistent-vireo-dir", 1);
	assert_int_equal(net_backend_open(&be, &cfg, err, sizeof(err)), -ENOENT);
	assert_null(be);
	assert_non_null(strstr(err, "passt"));
}

static void test_corrupt_stream(void **state)
{
	(void)state;
	uint8_t in[100];
	setenv("FAKE_PASST_GARBAGE", "1", 1);
	struct net_backend *be = open_user("user", 0, NULL);
	unsetenv("FAKE_PASST_GARBAGE");
	assert_int_equal(recv_frame(be, in, sizeof(in)), -EPIPE);
	struct iovec iov = {in, 60};
	assert_int_equal(net_backend_send(be, &iov, 1), -EPIPE); /* stays down */
	net_backend_close(be);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_echo),
	    cmocka_unit_test(test_backpressure),
	    cmocka_unit_test(test_start_failures),
	    cmocka_unit_test(test_corrupt_stream),
	};
	if (argc < 2) {
		fprintf(stderr, "usage: %s PATH-OF-FAKE-PASST\n", argv[0]);
		return 2;
	}
	snprintf(fake_dir, sizeof(fake_dir), "%s", argv[1]);
	char *slash = strrchr(fake_dir, '/');
	if (slash)
		*slash = 0;
	snprintf(log_path, sizeof(log_path), "%s/fake-passt-%d.log", fake_dir, (int)getpid());
	setenv("FAKE_PASST_LOG", log_path, 1);
	signal(SIGPIPE, SIG_IGN);
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	unlink(log_path);
	return r;
}
