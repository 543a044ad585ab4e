/* SPDX-License-Identifier: MIT */
/* `vireo net`: managed virtual networks (being written). */
#include "cli/cli.h"
#include <stdio.h>

int cli_net(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "vireo: net: not implemented yet\n");
	return CLI_EXIT_ERROR;
}
