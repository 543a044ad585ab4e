/* SPDX-License-Identifier: MIT */
/* Output of `vireo net`: a table, a detailed view and JSON (stable keys for scripts). */
#ifndef VIREO_CLI_NET_PRINT_H
#define VIREO_CLI_NET_PRINT_H

#include "net/netmgr.h"
#include <stdio.h>

void net_print_header(FILE *f);
void net_print_row(FILE *f, const struct netmgr_net *n, const struct netmgr_live *live);
void net_print_info(FILE *f, const struct netmgr_net *n, const struct netmgr_live *live);
/* One JSON object (no trailing newline when live is given, for lists); live may be NULL. */
void net_print_json(FILE *f, const struct netmgr_net *n, const struct netmgr_live *live);
void net_print_gc(FILE *f, const struct netmgr_gc_report *r, bool json);

#endif
