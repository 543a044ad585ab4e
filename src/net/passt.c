/* SPDX-License-Identifier: MIT */
/*
 * User-mode networking through passt (https://passt.top), run as a child process.
 *
 * We create a socketpair and give passt one end with `-F 3` (so no socket path exists
 * in the filesystem and nobody else can connect). The stream carries the qemu protocol:
 * every Ethernet frame is preceded by its length as a 32-bit big-endian integer. Frames
 * are plain Ethernet (no virtio-net header): offloads are not offered to the guest.
 *
 * The child never outlives us: passt exits when its end of the socket reaches EOF (our
 * end is closed explicitly, or by the kernel when the VMM dies); the child also sets
 * PR_SET_PDEATHSIG (SIGKILL) before exec, which covers the time until passt changes its
 * credentials (it drops root privileges to "nobody", which clears the death signal);
 * net_backend_close() closes the socket, waits briefly and then SIGKILLs and reaps it.
 * PR_SET_PDEATHSIG fires when the forking *thread* exits, so open this backend from the
 * thread that lives as long as the VMM (the main thread).
 */
#include "net/net.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PASST_RBUF (256u * 1024)
#define PASST_WBUF (NET_MAX_FRAME + 4)
#define PASST_CHILD_FD 3
#define PASST_STARTUP_MS 200 /* passt exiting within this time is reported as a start failure */
#define PASST_EXIT_WAIT_MS 500
#define PASST_MAX_ARGS (20 + 2 * NET_MAX_HOSTFWD)

struct passt {
	struct net_backend be;
	pid_t pid;
	bool dead;     /* the stream broke: passt exited or sent garbage */
	uint8_t *rbuf; /* received bytes [roff, rlen) not yet handed out */
	size_t roff, rlen;
	uint8_t *wbuf; /* the unsent tail of a partially written frame [woff, wlen) */
	size_t woff, wlen;
	struct iovec iov[NET_SEND_MAX_IOV + 1];
};

PRINTF_FMT(4, 5) static int passt_err(int r, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return r;
}

static int passt_broken(struct passt *p, const char *why)
{
	if (!p->dead)
		verr("net: %s: %s; the guest's network is down", p->be.desc, why);
	p->dead = true;
	return -EPIPE;
}

static int passt_flush(struct net_backend *be)
{
	struct passt *p = container_of(be, struct passt, be);
	if (p->dead)
		return -EPIPE;
	while (p->woff < p->wlen) {
		ssize_t w =
		    send(be->fd, p->wbuf + p->woff, p->wlen - p->woff, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return -EAGAIN;
			return passt_broken(p, strerror(errno));
		}
		p->woff += (size_t)w;
	}
	p->woff = p->wlen = 0;
	return 0;
}

static int passt_send(struct net_backend *be, const struct iovec *iov, unsigned n)
{
	struct passt *p = container_of(be, struct passt, be);
	size_t len = net_iov_len(iov, n), total = len + 4;
	uint32_t prefix = htonl((uint32_t)len);
	struct msghdr msg;
	ssize_t w;
	int r;

	if (n > NET_SEND_MAX_IOV || len == 0 || len > NET_MAX_FRAME)
		return -EINVAL;
	r = passt_flush(be);
	if (r)
		return r;
	p->iov[0].iov_base = &prefix;
	p->iov[0].iov_len = 4;
	memcpy(&p->iov[1], iov, n * sizeof(*iov));
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = p->iov;
	msg.msg_iovlen = n + 1;
	do
		w = sendmsg(be->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (w < 0 && errno == EINTR);
	if (w < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -EAGAIN;
		return passt_broken(p, strerror(errno));
	}
	if ((size_t)w < total) {
		/* Keep the stream framed: the rest goes out before anything else. */
		size_t off = (size_t)w;
		p->wlen = 0;
		p->woff = 0;
		if (off < 4) {
			memcpy(p->wbuf, (uint8_t *)&prefix + off, 4 - off);
			p->wlen = 4 - off;
			off = 0;
		} else {
			off -= 4;
		}
		p->wlen += net_iov_read(iov, n, off, p->wbuf + p->wlen, len - off);
	}
	return 0;
}

static ssize_t passt_recv(struct net_backend *be, const struct iovec *iov, unsigned n)
{
	struct passt *p = container_of(be, struct passt, be);
	for (;;) {
		if (p->dead)
			return -EPIPE;
		size_t avail = p->rlen - p->roff;
		if (avail >= 4) {
			uint32_t len;
			memcpy(&len, p->rbuf + p->roff, 4);
			len = ntohl(len);
			if (len == 0 || len > NET_MAX_FRAME)
				return passt_broken(p, "bad frame length in the stream");
			if (avail >= 4 + (size_t)len) {
				net_iov_write(iov, n, 0, p->rbuf + p->roff + 4, len);
				p->roff += 4 + (size_t)len;
				if (p->roff == p->rlen)
					p->roff = p->rlen = 0;
				return len;
			}
		}
		if (p->roff) {
			memmove(p->rbuf, p->rbuf + p->roff, avail);
			p->roff = 0;
			p->rlen = avail;
		}
		ssize_t r = recv(be->fd, p->rbuf + p->rlen, PASST_RBUF - p->rlen, MSG_DONTWAIT);
		if (r > 0) {
			p->rlen += (size_t)r;
			continue;
		}
		if (r == 0)
			return passt_broken(p, "passt closed the connection");
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -EAGAIN;
		return passt_broken(p, strerror(errno));
	}
}

static void passt_reap(pid_t pid)
{
	struct timespec ts = {0, 10 * 1000 * 1000};
	for (unsigned waited = 0; waited < PASST_EXIT_WAIT_MS; waited += 10) {
		pid_t r = waitpid(pid, NULL, WNOHANG);
		if (r == pid || (r < 0 && errno != EINTR))
			return;
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static void passt_close(struct net_backend *be)
{
	struct passt *p = container_of(be, struct passt, be);
	if (be->fd >= 0)
		close(be->fd); /* passt sees EOF and exits */
	if (p->pid > 0)
		passt_reap(p->pid);
	free(p->rbuf);
	free(p->wbuf);
	free(p);
}

static const struct net_backend_ops passt_ops = {
    .kind = "user",
    .send = passt_send,
    .recv = passt_recv,
    .flush = passt_flush,
    .close = passt_close,
};

int net_passt_argv(const struct net_config *cfg, int fd, const char *path, bool as_root,
		   char **argv, unsigned max, char *buf, size_t buflen)
{
	unsigned n = 0;
	size_t used = 0;
	char tmp[64];

#define ARG(...)                                                                                   \
	do {                                                                                       \
		int l__ = snprintf(tmp, sizeof(tmp), __VA_ARGS__);                                 \
		if (l__ < 0 || n + 1 >= max || used + (size_t)l__ + 1 > buflen)                    \
			return -ENOSPC;                                                            \
		memcpy(buf + used, tmp, (size_t)l__ + 1);                                          \
		argv[n++] = buf + used;                                                            \
		used += (size_t)l__ + 1;                                                           \
	} while (0)

	if (strlen(path) >= sizeof(tmp))
		return -ENOSPC;
	ARG("%s", path);
	ARG("-f"); /* foreground: stay our child */
	ARG("-q");
	ARG("-F"); /* pre-connected socket: no path in the filesystem */
	ARG("%d", fd);
	ARG("-m"); /* the MTU the device advertises, also given out by DHCP */
	ARG("%u", NET_DEFAULT_MTU);
	if (as_root) { /* what passt does anyway, minus its notice about it */
		ARG("--runas");
		ARG("nobody");
	}
	for (unsigned i = 0; i < cfg->nr_hostfwd; i++) {
		const struct net_hostfwd *f = &cfg->hostfwd[i];
		ARG("%s", f->proto == NET_PROTO_UDP ? "-u" : "-t");
		if (f->host_addr[0])
			ARG("%s/%u:%u", f->host_addr, f->host_port, f->guest_port);
		else
			ARG("%u:%u", f->host_port, f->guest_port);
	}
#undef ARG
	argv[n] = NULL;
	return (int)n;
}

/* Absolute path of passt from PATH. */
static int passt_find(char *out, size_t len)
{
	const char *path = getenv("PATH");
	char dirs[4096];
	char *save = NULL;
	snprintf(dirs, sizeof(dirs), "%s", path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
	for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		int l = snprintf(out, len, "%s/passt", *d ? d : ".");
		if (l > 0 && (size_t)l < len && access(out, X_OK) == 0)
			return 0;
	}
	return -ENOENT;
}

/* In the child between fork and exec: async-signal-safe calls only. */
static void passt_child(pid_t parent, int sock, int errw, const char *path, char **argv)
{
	int e;
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(127);
	int s = fcntl(sock, F_DUPFD_CLOEXEC, 10);
	int ew = fcntl(errw, F_DUPFD_CLOEXEC, 10);
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (s < 0 || ew < 0 || nul < 0)
		goto fail;
	/* stdout is the guest's serial console: passt must not write there. */
	if (dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(s, PASST_CHILD_FD) < 0 ||
	    dup3(ew, PASST_CHILD_FD + 1, O_CLOEXEC) < 0)
		goto fail;
	ew = PASST_CHILD_FD + 1;
	close_range(PASST_CHILD_FD + 2, ~0U, 0);
	execv(path, argv);
fail:
	e = errno;
	if (ew >= 0 && write(ew, &e, sizeof(e)) < 0)
		_exit(126);
	_exit(127);
}

int net_passt_open(struct net_backend **out, const struct net_config *cfg, char *err, size_t errlen)
{
	char path[512], argbuf[2048], *argv[PASST_MAX_ARGS];
	int sv[2] = {-1, -1}, ep[2] = {-1, -1}, r, child_errno = 0;
	struct passt *p;
	pid_t parent = getpid();

	*out = NULL;
	if (passt_find(path, sizeof(path)))
		return passt_err(-ENOENT, err, errlen,
				 "user networking needs 'passt' (https://passt.top), not found in "
				 "PATH");
	r = net_passt_argv(cfg, PASST_CHILD_FD, path, geteuid() == 0, argv, PASST_MAX_ARGS, argbuf,
			   sizeof(argbuf));
	if (r < 0)
		return passt_err(r, err, errlen, "passt command line too long");
	p = calloc(1, sizeof(*p));
	if (!p)
		return passt_err(-ENOMEM, err, errlen, "out of memory");
	p->be.fd = -1;
	p->be.ops = &passt_ops;
	p->be.mtu = NET_DEFAULT_MTU;
	p->rbuf = malloc(PASST_RBUF);
	p->wbuf = malloc(PASST_WBUF);
	if (!p->rbuf || !p->wbuf) {
		r = passt_err(-ENOMEM, err, errlen, "out of memory");
		goto fail;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
	    pipe2(ep, O_CLOEXEC) < 0) {
		r = passt_err(-errno, err, errlen, "user network: %s", strerror(errno));
		goto fail;
	}
	p->pid = fork();
	if (p->pid < 0) {
		r = passt_err(-errno, err, errlen, "user network: fork: %s", strerror(errno));
		goto fail;
	}
	if (p->pid == 0)
		passt_child(parent, sv[1], ep[1], path, argv);
	close(sv[1]);
	close(ep[1]);
	sv[1] = ep[1] = -1;
	p->be.fd = sv[0];
	sv[0] = -1;
	snprintf(p->be.desc, sizeof(p->be.desc), "user (passt pid %d)", (int)p->pid);

	/* Did exec work? The pipe closes on exec (EOF) or carries the child's errno. */
	ssize_t got;
	do
		got = read(ep[0], &child_errno, sizeof(child_errno));
	while (got < 0 && errno == EINTR);
	if (got == (ssize_t)sizeof(child_errno)) {
		r = passt_err(-child_errno, err, errlen, "user network: cannot run %s: %s", path,
			      strerror(child_errno));
		goto fail;
	}
	/* passt checks its options and binds forwarded ports at start-up, then serves. */
	struct pollfd pfd = {.fd = p->be.fd, .events = POLLRDHUP};
	if (poll(&pfd, 1, PASST_STARTUP_MS) > 0 && (pfd.revents & (POLLRDHUP | POLLHUP))) {
		int st = 0;
		r = -ECHILD;
		if (waitpid(p->pid, &st, 0) == p->pid)
			p->pid = 0;
		passt_err(r, err, errlen,
			  "user network: passt exited at start-up (%s %d; see its messages above)",
			  WIFSIGNALED(st) ? "signal" : "status",
			  WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
		goto fail;
	}
	if (fcntl(p->be.fd, F_SETFL, O_NONBLOCK) < 0) {
		r = passt_err(-errno, err, errlen, "user network: %s", strerror(errno));
		goto fail;
	}
	int sz = 1 << 20;
	if (setsockopt(p->be.fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)) < 0 ||
	    setsockopt(p->be.fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz)) < 0)
		vdebug("net: %s: socket buffer sizes: %s", p->be.desc, strerror(errno));
	close(ep[0]);
	vinfo("net: %s, %u port forward(s)", p->be.desc, cfg->nr_hostfwd);
	*out = &p->be;
	return 0;
fail:
	for (unsigned i = 0; i < 2; i++) {
		if (sv[i] >= 0)
			close(sv[i]);
		if (ep[i] >= 0)
			close(ep[i]);
	}
	passt_close(&p->be);
	return r;
}
