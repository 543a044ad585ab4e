/* SPDX-License-Identifier: MIT */
/*
 * Internals of the network manager shared by src/net/netmgr*.c. Not for other layers.
 *
 * nm_run: run a program without a shell (posix_spawn), stdin from `input` (or /dev/null),
 * stdout collected into a malloc'd string when `out` is given, stderr kept for the error
 * message; killed after 15 s. Returns the exit status (0..255) or -errno if it could not run.
 * nm_cmd: the same with a NULL-terminated argument list; 0 on exit status 0, else -EIO with
 * "PROGRAM ARG: first line of its stderr" in err.
 */
#ifndef VIREO_NET_NETMGR_PRIV_H
#define VIREO_NET_NETMGR_PRIV_H

#include "net/netmgr.h"
#include <stddef.h>
#include <string.h>

#define NM_BRIDGE_PREFIX "vr-"
#define NM_TABLE_PREFIX "vireo-"

/* Copy src into dst[n], truncating; always terminated. */
static inline void nm_copy(char *dst, size_t n, const char *src)
{
	size_t len = strlen(src);
	if (len >= n)
		len = n - 1;
	memcpy(dst, src, len);
	dst[len] = 0;
}

int nm_errf(int r, char *err, size_t errlen, const char *fmt, ...) PRINTF_FMT(4, 5);

/* netmgr_exec.c */
int nm_run(const char *const *argv, const char *input, char **out, char *errout, size_t errlen) WUR;
int nm_cmd(char *err, size_t errlen, const char *input, const char *prog, ...)
    __attribute__((sentinel)) WUR;
/* Same as nm_cmd with stdout returned in *out (caller frees). */
int nm_cmd_out(char **out, char *err, size_t errlen, const char *prog, ...)
    __attribute__((sentinel)) WUR;
bool nm_link_exists(const char *ifname);
bool nm_link_is_bridge(const char *ifname);
/* Master (bridge) of ifname into master ("" if none). */
void nm_link_master(const char *ifname, char master[IFNAMSIZ]);
/* ifalias of ifname into buf ("" if none). */
void nm_link_alias(const char *ifname, char *buf, size_t len);
/* Number of bridge ports of br other than `except` (may be NULL or ""). */
unsigned nm_bridge_nports(const char *br, const char *except);
/* Read a small sysfs/proc file into buf (trailing newline stripped); -errno on failure. */
int nm_read_file(const char *path, char *buf, size_t len) WUR;
int nm_write_file(const char *path, const char *text) WUR;

/* netmgr_state.c */
void nm_path(const struct netmgr *nm, const char *name, const char *suffix, char *buf, size_t len);
int nm_state_read(const struct netmgr *nm, const char *name, struct netmgr_net *n, char *err,
		  size_t errlen) WUR;
int nm_state_write(const struct netmgr *nm, const struct netmgr_net *n, char *err,
		   size_t errlen) WUR;
int nm_state_remove(const struct netmgr *nm, const char *name) WUR;
/* Names of all state files (NAME.net) in the directory; returns count or -errno. */
int nm_state_names(const struct netmgr *nm, char (*names)[NETMGR_NAME_MAX + 1], unsigned max) WUR;
/* Network name from "vr-NAME" ("" if not of that form). */
void nm_name_from_bridge(const char *bridge, char name[NETMGR_NAME_MAX + 1]);

/* netmgr_setup.c */
/* Build everything the network needs; idempotent (used for repair). */
int nm_setup(struct netmgr *nm, const struct netmgr_net *n, char *err, size_t errlen) WUR;
/* Remove everything of network `name` (n may be NULL when the state is unreadable); own
 * says whether vr-NAME may be deleted without checking its tag. Best effort. */
void nm_teardown(struct netmgr *nm, const char *name, const struct netmgr_net *n, bool own);
bool nm_table_exists(const char *family, const char *name);
/* Tag (comment) of nft table, "" if none or absent. */
void nm_table_tag(const char *family, const char *table, char *tag, size_t len);
/* Pick a free 10.x.y.0/24 for name, or check the user's subnet. */
int nm_subnet_choose(const struct netmgr *nm, const char *name, bool given, uint32_t *net,
		     unsigned *prefix, char *err, size_t errlen) WUR;
/* Is the network's live state complete? why gets the first missing piece. */
bool nm_healthy(const struct netmgr *nm, const struct netmgr_net *n, char *why, size_t len);

/* netmgr_dhcp.c */
int nm_dnsmasq_start(const struct netmgr *nm, const struct netmgr_net *n, char *err,
		     size_t errlen) WUR;
/* Pid of the live dnsmasq recorded for name, 0 if none. */
int nm_dnsmasq_pid(const struct netmgr *nm, const char *name);
/* Kill every dnsmasq of this directory for `name` (NULL: those whose network has no "up"
 * state or that are not the recorded pid); returns how many were killed. */
unsigned nm_dnsmasq_reap(const struct netmgr *nm, const char *name);
unsigned nm_leases_read(const struct netmgr *nm, const char *name, struct netmgr_lease *l,
			unsigned max);

/* netmgr_port.c */
/* Attached ports of network name (from its nft map), with their MACs. */
unsigned nm_ports_list(const char *name, struct netmgr_port *p, unsigned max);
/* Remove port entries whose interface is gone; returns how many. */
unsigned nm_ports_prune(const char *name);
/* Create the (empty) bridge filter table of network n. */
int nm_bridge_table_create(const struct netmgr *nm, const struct netmgr_net *n, char *err,
			   size_t errlen) WUR;

#endif
