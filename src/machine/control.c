/* SPDX-License-Identifier: MIT */
/*
 * The per-VM control socket: a Unix stream socket; a client connects, sends one command
 * line, gets one JSON line back, and the connection closes. Commands:
 *   status              -> {"state":...,"vcpus":...,...statistics}
 *   pause | resume      -> {"ok":true,"state":...}
 *   shutdown            -> press the ACPI power button (graceful)
 *   stop                -> stop the VM now (like pulling the plug)
 * The manager daemon, snapshots and migration will plug in here. The socket is served on
 * the I/O thread; a client gets 1 s to send its line.
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
#include <sys/un.h>

int control_open(struct machine *m, const char *path)
{
	char def[108];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (!path) {
		const char *rt = getenv("XDG_RUNTIME_DIR");
		snprintf(def, sizeof(def), "%s/vireo-%d.sock", rt && *rt ? rt : "/tmp",
			 (int)getpid());
		path = def;
	}
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A stale socket from a dead VMM is replaced; a live one makes bind fail below. */
	struct stat st;
	if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) < 0 &&
		    errno == ECONNREFUSED)
			unlink(path);
		if (probe >= 0)
			close(probe);
	}
	mode_t old = umask(0077);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || listen(fd, 8) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	m->ctl_fd = fd;
	m->ctl_path = strdup(path);
	return 0;
}

void control_close(struct machine *m)
{
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
		ssize_t n = send(fd, s + off, len - off, MSG_NOSIGNAL);
		if (n <= 0)
			return;
		off += (size_t)n;
	}
}

static void control_handle(struct machine *m, int fd, char *line)
{
	char buf[1024];
	line[strcspn(line, "\r\n")] = 0;
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
		machine_stop(m);
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

static void control_accept(void *opaque, uint32_t events)
{
	struct machine *m = opaque;
	(void)events;
	int fd = accept4(m->ctl_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	struct timeval tv = {.tv_sec = 1};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	char line[128];
	size_t got = 0;
	while (got < sizeof(line) - 1) {
		ssize_t n = read(fd, line + got, sizeof(line) - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memchr(line, '\n', got))
			break;
	}
	line[got] = 0;
	if (got)
		control_handle(m, fd, line);
	close(fd);
}

int control_attach(struct machine *m)
{
	if (m->ctl_fd < 0)
		return 0;
	return evloop_add(&m->loop, m->ctl_fd, EPOLLIN, control_accept, m);
}
