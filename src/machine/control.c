/* SPDX-License-Identifier: MIT */
/*
 * The per-VM control socket: a Unix stream socket; a client connects, sends one command
 * line, gets one JSON line back, and the connection closes. Commands:
 *   status              -> {"state":...,"vcpus":...,...statistics}
 *   pause | resume      -> {"ok":true,"state":...}
 *   shutdown            -> press the ACPI power button (graceful)
 *   stop                -> stop the VM now (like pulling the plug)
 * The manager daemon, snapshots and migration will plug in here. The socket and its
 * clients are served on the I/O thread without blocking; at most CONTROL_MAX_CLIENTS
 * connections are open at once. A socket file left by a dead VMM is replaced; a live one,
 * or a path that is not a socket, is an error.
 */
#include "machine/machine_priv.h"
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <sys/un.h>

/* Is a live VMM listening on sa? */
static bool control_socket_live(const struct sockaddr_un *sa)
{
	int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe < 0)
		return true; /* cannot tell: do not touch it */
	bool live = connect(probe, (const struct sockaddr *)sa, sizeof(*sa)) == 0 ||
		    errno != ECONNREFUSED;
	close(probe);
	return live;
}

int control_open(struct machine *m, const char *path, char *err, size_t errlen)
{
	char def[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, r;

	if (!path) {
		const char *rt = getenv("XDG_RUNTIME_DIR");
		int n = snprintf(def, sizeof(def), "%s/vireo-%d.sock", rt && *rt ? rt : "/tmp",
				 (int)getpid());
		if (n < 0 || (size_t)n >= sizeof(sa.sun_path)) {
			snprintf(err, errlen, "control socket: default path under '%s' is too long "
				 "(use --api-sock)", rt);
			return -ENAMETOOLONG;
		}
		path = def;
	}
	if (!*path) {
		snprintf(err, errlen, "control socket: empty path");
		return -EINVAL;
	}
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "control socket '%s': path too long (at most %zu bytes)", path,
			 sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "control socket: %s", strerror(-r));
		return r;
	}
	mode_t old = umask(0077);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (r < 0 && errno == EADDRINUSE) {
		/* Only a socket left by a dead VMM is replaced; anything else is refused. */
		if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
			umask(old);
			close(fd);
			snprintf(err, errlen, "control socket '%s': exists and is not a socket", path);
			return -EEXIST;
		}
		if (control_socket_live(&sa)) {
			umask(old);
			close(fd);
			snprintf(err, errlen, "control socket '%s': in use by another VM", path);
			return -EADDRINUSE;
		}
		unlink(path);
		r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	}
	umask(old);
	if (r < 0 || listen(fd, 16) < 0) {
		r = -errno;
		close(fd);
		snprintf(err, errlen, "control socket '%s': %s", path, strerror(-r));
		return r;
	}
	m->ctl_fd = fd;
	m->ctl_path = strdup(path);
	return 0;
}

void control_close(struct machine *m)
{
	control_detach(m);
	if (m->ctl_timer_fd >= 0)
		close(m->ctl_timer_fd);
	m->ctl_timer_fd = -1;
	if (m->ctl_fd >= 0) {
		close(m->ctl_fd);
		if (m->ctl_path)
			unlink(m->ctl_path);
	}
	free(m->ctl_path);
	m->ctl_path = NULL;
	m->ctl_fd = -1;
}

static void control_reply(int fd, const char *s)
{
	size_t len = strlen(s), off = 0;
	while (off < len) {
		ssize_t n = send(fd, s + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n <= 0)
			return;
		off += (size_t)n;
	}
}

static void control_handle(struct machine *m, int fd, char *line)
{
	char buf[8192]; /* status: up to 16 disks, 8 NICs and 17 I/O loops */
	line[strcspn(line, "\r\n")] = 0;
	/* Replies go out with MSG_DONTWAIT: a client that does not read cannot block the loop. */
	if (strcmp(line, "status") == 0) {
		machine_status_json(m, buf, sizeof(buf) - 2);
		strcat(buf, "\n");
	} else if (strcmp(line, "pause") == 0 || strcmp(line, "resume") == 0) {
		int r = line[0] == 'p' ? machine_pause(m) : machine_resume(m);
		pthread_mutex_lock(&m->lock);
		const char *st = vm_state_name(m->state);
		pthread_mutex_unlock(&m->lock);
		if (r)
			snprintf(buf, sizeof(buf), "{\"ok\":false,\"error\":\"cannot %s a %s VM\"}\n",
				 line, st);
		else
			snprintf(buf, sizeof(buf), "{\"ok\":true,\"state\":\"%s\"}\n", st);
	} else if (strcmp(line, "stop") == 0) {
		machine_request_stop(m);
		snprintf(buf, sizeof(buf), "{\"ok\":true,\"state\":\"stopping\"}\n");
	} else if (strcmp(line, "shutdown") == 0) {
		int r = machine_shutdown(m);
		snprintf(buf, sizeof(buf), r ? "{\"ok\":false,\"error\":\"%s\"}\n" : "{\"ok\":true}\n",
			 strerror(-r));
	} else {
		snprintf(buf, sizeof(buf),
			 "{\"ok\":false,\"error\":\"unknown command (status, pause, resume, "
			 "shutdown, stop)\"}\n");
	}
	control_reply(fd, buf);
}

/* A connected client: the loop reads its command line without ever blocking. */
struct ctl_client {
	struct machine *m;
	int fd;
	unsigned slot; /* index in m->ctl_client[] */
	int64_t opened; /* CLOCK_MONOTONIC milliseconds */
	size_t got;
	char line[128];
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void control_client_close(struct ctl_client *c)
{
	if (c->m->built && evloop_del(&c->m->loop, c->fd))
		vdebug("control: client fd was not registered");
	close(c->fd);
	c->m->ctl_client[c->slot] = NULL;
	free(c);
}

/* 4 Hz: drop clients that did not send a full line within CONTROL_CLIENT_TIMEOUT s. */
static void control_timer(void *opaque, uint32_t events)
{
	struct machine *m = opaque;
	uint64_t ticks;
	(void)events;
	if (read(m->ctl_timer_fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		vdebug("control: timer read: %s", strerror(errno));
	int64_t now = mono_ms();
	for (unsigned i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		struct ctl_client *c = m->ctl_client[i];
		if (c && now - c->opened >= CONTROL_CLIENT_TIMEOUT * 1000) {
			static const char msg[] = "{\"ok\":false,\"error\":\"timed out\"}\n";
			control_reply(c->fd, msg);
			control_client_close(c);
		}
	}
}

static void control_client_ready(void *opaque, uint32_t events)
{
	struct ctl_client *c = opaque;
	(void)events;
	for (;;) {
		ssize_t n = read(c->fd, c->line + c->got, sizeof(c->line) - 1 - c->got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return; /* wait for more */
		if (n <= 0)
			break; /* hung up or error: nothing to answer */
		c->got += (size_t)n;
		c->line[c->got] = 0;
		if (memchr(c->line, '\n', c->got) || c->got == sizeof(c->line) - 1) {
			/* The reply is one short line; a client that does not read it
			 * gets it dropped (the socket buffer holds it anyway). */
			control_handle(c->m, c->fd, c->line);
			break;
		}
	}
	control_client_close(c);
}

static void control_accept(void *opaque, uint32_t events)
{
	struct machine *m = opaque;
	(void)events;
	for (;;) {
		int fd = accept4(m->ctl_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		/* Bound the number of idle connections a local client can hold open. */
		unsigned slot = 0;
		while (slot < CONTROL_MAX_CLIENTS && m->ctl_client[slot])
			slot++;
		struct ctl_client *c = slot < CONTROL_MAX_CLIENTS ? calloc(1, sizeof(*c)) : NULL;
		if (!c) {
			vlog_rl("control: too many open connections, refusing one");
			close(fd);
			continue;
		}
		c->m = m;
		c->fd = fd;
		c->slot = slot;
		c->opened = mono_ms();
		if (evloop_add(&m->loop, fd, EPOLLIN | EPOLLRDHUP, control_client_ready, c)) {
			close(fd);
			free(c);
			continue;
		}
		m->ctl_client[slot] = c;
	}
}

int control_attach(struct machine *m)
{
	if (m->ctl_fd < 0)
		return 0;
	if (m->ctl_timer_fd < 0) {
		m->ctl_timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (m->ctl_timer_fd < 0)
			return -errno;
		struct itimerspec its = {.it_interval = {.tv_nsec = 250000000},
					.it_value = {.tv_nsec = 250000000}};
		if (timerfd_settime(m->ctl_timer_fd, 0, &its, NULL) < 0)
			return -errno;
	}
	int r = evloop_add(&m->loop, m->ctl_timer_fd, EPOLLIN, control_timer, m);
	if (r)
		return r;
	return evloop_add(&m->loop, m->ctl_fd, EPOLLIN, control_accept, m);
}

void control_detach(struct machine *m)
{
	/* The I/O loop is stopped: close the connections it was serving. */
	for (unsigned i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		struct ctl_client *c = m->ctl_client[i];
		if (c) {
			close(c->fd);
			free(c);
			m->ctl_client[i] = NULL;
		}
	}
}
