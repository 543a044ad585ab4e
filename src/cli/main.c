/* SPDX-License-Identifier: MIT */
/*
 * vireo — command line entry point. Only this layer prints usage and calls exit().
 * Exit codes: 0 guest powered off / VM stopped on request, 1 error, 2 usage error,
 * 3 the guest crashed the vCPU (KVM internal error, emulation failure, failed entry).
 */
#include "cli/cli.h"
#include "vireo-config.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static void usage_main(FILE *f)
{
	fprintf(f, "Usage: vireo COMMAND [OPTIONS]\n"
		   "\n"
		   "Commands:\n"
		   "  run     boot a virtual machine (no options: the default guest)\n"
		   "  ctl     talk to a running VM's control socket\n"
		   "  img     create, inspect, check and convert disk images\n"
		   "  net     manage virtual networks (bridged, nat, host-only, isolated)\n"
		   "\n"
		   "  vireo --help | vireo run --help | vireo ctl --help | vireo --version\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage_main(stderr);
		return CLI_EXIT_USAGE;
	}
	/* Make sure fds 0-2 exist, so that no later open() (say /dev/kvm) lands on stdin and is
	 * then read by the console, or on stdout and written by the guest. */
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY) < 0)
			return CLI_EXIT_ERROR;
	}
	/* Broken pipes (a closed console or socket) are errors to report, not a reason to die. */
	signal(SIGPIPE, SIG_IGN);
	const char *cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		usage_main(stdout);
		return 0;
	}
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
		printf("vireo %s\n", VIREO_VERSION);
		return 0;
	}
	if (strcmp(cmd, "run") == 0)
		return cli_run(argc - 1, argv + 1);
	if (strcmp(cmd, "ctl") == 0)
		return cli_ctl(argc - 1, argv + 1);
	if (strcmp(cmd, "img") == 0)
		return cli_img(argc - 1, argv + 1);
	if (strcmp(cmd, "net") == 0)
		return cli_net(argc - 1, argv + 1);
	fprintf(stderr, "vireo: unknown command '%s' (try 'vireo --help')\n", cmd);
	return CLI_EXIT_USAGE;
}
