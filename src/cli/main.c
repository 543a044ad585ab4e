/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include "vireo-config.h"

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("vireo %s\n", VIREO_VERSION);
	return 0;
}
