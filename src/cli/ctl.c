/* SPDX-License-Identifier: MIT */
/* `vireo ctl SOCKET COMMAND`: one request to a VM's control socket, reply on stdout. */
#include "cli/cli.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

int cli_ctl(int argc, char **argv)
{
	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("Usage: vireo ctl SOCKET status|pause|resume|shutdown|stop\n");
		return 0;
	}
	if (argc != 3) {
		fprintf(stderr, "vireo: usage: vireo ctl SOCKET status|pause|resume|shutdown|stop\n");
		return CLI_EXIT_USAGE;
	}
	static const char *const cmds[] = {"status", "pause", "resume", "shutdown", "stop"};
	bool known = false;
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		known |= strcmp(argv[2], cmds[i]) == 0;
	if (!known) {
		fprintf(stderr, "vireo: ctl: unknown command '%s'\n", argv[2]);
		return CLI_EXIT_USAGE;
	}
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "vireo: ctl: socket path too long\n");
		return CLI_EXIT_USAGE;
	}
	strcpy(sa.sun_path, argv[1]);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "vireo: ctl: cannot connect to '%s': %s\n", argv[1], strerror(errno));
		if (fd >= 0)
			close(fd);
		return CLI_EXIT_ERROR;
	}
	/* A VMM that accepted but never answers must not hang the client. */
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	char line[64];
	snprintf(line, sizeof(line), "%s\n", argv[2]);
	if (send(fd, line, strlen(line), MSG_NOSIGNAL) < 0) {
		if (errno == EPIPE || errno == ECONNRESET) {
			/* The VMM hung up before reading: the same as not answering. */
			fprintf(stderr, "vireo: ctl: no reply from '%s' (connection closed)\n",
				argv[1]);
			close(fd);
			return CLI_EXIT_ERROR;
		}
		fprintf(stderr, "vireo: ctl: cannot send to '%s': %s\n", argv[1], strerror(errno));
		close(fd);
		return CLI_EXIT_ERROR;
	}
	char buf[4096];
	size_t got = 0;
	ssize_t n;
	while (got < sizeof(buf) - 1 && (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	close(fd);
	buf[got] = 0;
	fputs(buf, stdout);
	if (!got) {
		fprintf(stderr, "vireo: ctl: no reply from '%s'\n", argv[1]);
		return CLI_EXIT_ERROR;
	}
	return strstr(buf, "\"ok\":false") ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}
