/* SPDX-License-Identifier: MIT */
#ifndef VIREO_CLI_CLI_H
#define VIREO_CLI_CLI_H

enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_ERROR = 1,
	CLI_EXIT_USAGE = 2,
	CLI_EXIT_GUEST_CRASH = 3,
};

int cli_run(int argc, char **argv);
int cli_ctl(int argc, char **argv);
int cli_img(int argc, char **argv); /* src/cli/img*.c */
int cli_net(int argc, char **argv); /* src/cli/net*.c */

#endif
