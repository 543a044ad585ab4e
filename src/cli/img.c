/* SPDX-License-Identifier: MIT */
/* `vireo img`: disk image tool (being written). */
#include "cli/cli.h"
#include <stdio.h>

int cli_img(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "vireo: img: not implemented yet\n");
	return CLI_EXIT_ERROR;
}
