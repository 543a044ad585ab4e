/* SPDX-License-Identifier: MIT */
/*
 * Running the host tools (ip, bridge, nft, dnsmasq) and reading interface facts from sysfs.
 * See netmgr_priv.h. posix_spawn keeps this safe in a multithreaded VMM; every descriptor
 * we open is close-on-exec, so children (dnsmasq daemonises) inherit only the pipes.
 */
#include "net/netmgr_priv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define NM_RUN_TIMEOUT_MS 15000
#define NM_OUT_MAX (8u << 20)
#define NM_ARGS_MAX 32

int nm_errf(int r, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

static int64_t nm_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Full path of prog: as given if it has a '/', else the first executable in PATH, /usr/sbin,
 * /sbin. */
static int nm_find_prog(const char *prog, char *buf, size_t len)
{
	if (strchr(prog, '/')) {
		nm_copy(buf, len, prog);
		return access(buf, X_OK) ? -ENOENT : 0;
	}
	const char *path = getenv("PATH");
	char dirs[4096];
	snprintf(dirs, sizeof(dirs), "%s:/usr/sbin:/sbin", path ? path : "/usr/bin:/bin");
	char *save = NULL;
	for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		if (!*d)
			continue;
		int n = snprintf(buf, len, "%s/%s", d, prog);
		if (n > 0 && (size_t)n < len && access(buf, X_OK) == 0)
			return 0;
	}
	return -ENOENT;
}

struct nm_sink {
	char *buf;
	size_t len, cap, max;
};

static int nm_sink_read(int fd, struct nm_sink *s)
{
	char tmp[4096];
	ssize_t n = read(fd, tmp, sizeof(tmp));
	if (n <= 0)
		return n == 0 ? 0 : (errno == EAGAIN || errno == EINTR ? 1 : 0);
	size_t keep = (size_t)n;
	if (s->len + keep > s->max)
		keep = s->max - s->len; /* drop the excess, keep draining the pipe */
	if (s->len + keep + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		while (cap < s->len + keep + 1)
			cap *= 2;
		char *p = realloc(s->buf, cap);
		if (!p)
			return 1;
		s->buf = p;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, tmp, keep);
	s->len += keep;
	s->buf[s->len] = 0;
	return 1;
}

/* Wait for the child, reading its pipes; a daemon that keeps them open does not hold us
 * once the child itself has exited. */
static int nm_collect(pid_t pid, int ofd, int efd, struct nm_sink *out, struct nm_sink *er)
{
	int64_t deadline = nm_now_ms() + NM_RUN_TIMEOUT_MS;
	bool oopen = ofd >= 0, eopen = efd >= 0, exited = false;
	int status = 0;
	for (;;) {
		if (!oopen && !eopen && !exited) {
			/* Output closed: the child is exiting; wait for it in short steps. */
			pid_t w = waitpid(pid, &status, WNOHANG);
			if (w == pid)
				break;
			if (nm_now_ms() > deadline)
				goto timeout;
			usleep(500);
			continue;
		}
		struct pollfd p[2] = {{oopen ? ofd : -1, POLLIN, 0}, {eopen ? efd : -1, POLLIN, 0}};
		int r = poll(p, 2, exited ? 0 : 50);
		if (r > 0) {
			if (oopen && (p[0].revents & (POLLIN | POLLHUP | POLLERR)))
				oopen = nm_sink_read(ofd, out) > 0;
			if (eopen && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
				eopen = nm_sink_read(efd, er) > 0;
			continue;
		}
		if (exited)
			break;
		/* A daemon may keep our pipes open after its parent, the child, has exited. */
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid) {
			exited = true; /* one more non-blocking round drains what is left */
			continue;
		}
		if (nm_now_ms() > deadline)
			goto timeout;
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
timeout:
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -ETIMEDOUT;
}

int nm_run(const char *const *argv, const char *input, char **out, char *errout, size_t errlen)
{
	int opipe[2] = {-1, -1}, epipe[2] = {-1, -1}, ipipe[2] = {-1, -1}, r;
	struct nm_sink so = {NULL, 0, 0, NM_OUT_MAX}, se = {NULL, 0, 0, 4096};
	posix_spawn_file_actions_t fa;
	char path[512];
	pid_t pid;

	if (out)
		*out = NULL;
	if (errout && errlen)
		errout[0] = 0;
	if (nm_find_prog(argv[0], path, sizeof(path)))
		return nm_errf(-ENOENT, errout, errlen, "'%s' not found in PATH", argv[0]);
	size_t inlen = input ? strlen(input) : 0;
	if (inlen > 60000) /* fits a pipe: written before the child runs */
		return nm_errf(-E2BIG, errout, errlen, "%s: input too long", argv[0]);
	if (pipe2(opipe, O_CLOEXEC | O_NONBLOCK) || pipe2(epipe, O_CLOEXEC | O_NONBLOCK) ||
	    (input && pipe2(ipipe, O_CLOEXEC))) {
		r = nm_errf(-errno, errout, errlen, "pipe: %s", strerror(errno));
		goto out;
	}
	if (input && write(ipipe[1], input, inlen) != (ssize_t)inlen) {
		r = nm_errf(-EIO, errout, errlen, "%s: cannot pass its input", argv[0]);
		goto out;
	}
	if (ipipe[1] >= 0) {
		close(ipipe[1]);
		ipipe[1] = -1;
	}
	r = posix_spawn_file_actions_init(&fa);
	if (r) {
		r = -r;
		goto out;
	}
	if (input)
		posix_spawn_file_actions_adddup2(&fa, ipipe[0], 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, opipe[1], 1);
	posix_spawn_file_actions_adddup2(&fa, epipe[1], 2);
	r = posix_spawn(&pid, path, &fa, NULL, (char *const *)(uintptr_t)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r) {
		r = nm_errf(-r, errout, errlen, "%s: %s", path, strerror(r));
		goto out;
	}
	close(opipe[1]);
	close(epipe[1]);
	opipe[1] = epipe[1] = -1;
	r = nm_collect(pid, opipe[0], epipe[0], &so, &se);
	if (r == -ETIMEDOUT)
		nm_errf(r, errout, errlen, "%s: no answer in %d s", argv[0],
			NM_RUN_TIMEOUT_MS / 1000);
	else if (r != 0 && errout && errlen) {
		const char *e = se.buf ? se.buf : "";
		e += strspn(e, "\n"); /* dnsmasq starts its messages with an empty line */
		size_t n = strcspn(e, "\n");
		snprintf(errout, errlen, "%.*s", (int)n, e);
	}
	if (out && r >= 0) {
		*out = so.buf ? so.buf : strdup("");
		so.buf = NULL;
	}
out:
	for (unsigned i = 0; i < 2; i++) {
		if (opipe[i] >= 0)
			close(opipe[i]);
		if (epipe[i] >= 0)
			close(epipe[i]);
		if (ipipe[i] >= 0)
			close(ipipe[i]);
	}
	free(so.buf);
	free(se.buf);
	return r;
}

static int nm_vcmd(char **out, char *err, size_t errlen, const char *input, const char *prog,
		   va_list ap)
{
	const char *argv[NM_ARGS_MAX + 1];
	unsigned n = 0;
	char msg[256];
	argv[n++] = prog;
	for (const char *a; (a = va_arg(ap, const char *));) {
		if (n == NM_ARGS_MAX)
			return nm_errf(-E2BIG, err, errlen, "%s: too many arguments", prog);
		argv[n++] = a;
	}
	argv[n] = NULL;
	int r = nm_run(argv, input, out, msg, sizeof(msg));
	if (r == 0)
		return 0;
	if (out) {
		free(*out);
		*out = NULL;
	}
	char what[128];
	snprintf(what, sizeof(what), "%s %s%s%s", prog, n > 1 ? argv[1] : "", n > 2 ? " " : "",
		 n > 2 ? argv[2] : "");
	if (r < 0)
		return nm_errf(r, err, errlen, "%s", msg);
	return nm_errf(-EIO, err, errlen, "'%s' failed: %s", what, msg[0] ? msg : "no message");
}

int nm_cmd(char *err, size_t errlen, const char *input, const char *prog, ...)
{
	va_list ap;
	va_start(ap, prog);
	int r = nm_vcmd(NULL, err, errlen, input, prog, ap);
	va_end(ap);
	return r;
}

int nm_cmd_out(char **out, char *err, size_t errlen, const char *prog, ...)
{
	va_list ap;
	va_start(ap, prog);
	int r = nm_vcmd(out, err, errlen, NULL, prog, ap);
	va_end(ap);
	return r;
}

int nm_read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, len - 1);
	int e = errno;
	close(fd);
	if (n < 0)
		return -e;
	buf[n] = 0;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = 0;
	return 0;
}

int nm_write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t n = strlen(text);
	ssize_t w = write(fd, text, n);
	int e = errno;
	close(fd);
	return w == (ssize_t)n ? 0 : (w < 0 ? -e : -EIO);
}

static bool nm_ifname_safe(const char *ifname)
{
	return ifname[0] && strlen(ifname) < IFNAMSIZ && !strchr(ifname, '/') &&
	       strcmp(ifname, ".") && strcmp(ifname, "..");
}

bool nm_link_exists(const char *ifname)
{
	char p[64];
	if (!nm_ifname_safe(ifname))
		return false;
	snprintf(p, sizeof(p), "/sys/class/net/%s", ifname);
	return access(p, F_OK) == 0;
}

bool nm_link_is_bridge(const char *ifname)
{
	char p[64];
	if (!nm_ifname_safe(ifname))
		return false;
	snprintf(p, sizeof(p), "/sys/class/net/%s/bridge", ifname);
	return access(p, F_OK) == 0;
}

void nm_link_master(const char *ifname, char master[IFNAMSIZ])
{
	char p[64], target[256];
	master[0] = 0;
	if (!nm_ifname_safe(ifname))
		return;
	snprintf(p, sizeof(p), "/sys/class/net/%s/master", ifname);
	ssize_t n = readlink(p, target, sizeof(target) - 1);
	if (n <= 0)
		return;
	target[n] = 0;
	const char *base = strrchr(target, '/');
	nm_copy(master, IFNAMSIZ, base ? base + 1 : target);
}

void nm_link_alias(const char *ifname, char *buf, size_t len)
{
	char p[64];
	buf[0] = 0;
	if (!nm_ifname_safe(ifname))
		return;
	snprintf(p, sizeof(p), "/sys/class/net/%s/ifalias", ifname);
	if (nm_read_file(p, buf, len))
		buf[0] = 0;
}

unsigned nm_bridge_nports(const char *br, const char *except)
{
	char p[64];
	unsigned n = 0;
	if (!nm_ifname_safe(br))
		return 0;
	snprintf(p, sizeof(p), "/sys/class/net/%s/brif", br);
	DIR *d = opendir(p);
	if (!d)
		return 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] == '.' || (except && !strcmp(e->d_name, except)))
			continue;
		n++;
	}
	closedir(d);
	return n;
}
