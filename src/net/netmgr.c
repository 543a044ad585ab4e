/* SPDX-License-Identifier: MIT */
/*
 * Network manager operations: create, delete, garbage-collect, inspect. See netmgr.h for
 * the modes, the state directory and the cleanup model.
 */
#include "net/netmgr_priv.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NM_NAMES_MAX NETMGR_MAX_NETS
typedef char nm_name_t[NETMGR_NAME_MAX + 1];

static int nm_spec_check(const struct netmgr_spec *s, char *err, size_t errlen)
{
	const char *mode = netmgr_mode_name(s->mode);
	if (!netmgr_name_valid(s->name))
		return nm_errf(-EINVAL, err, errlen,
			       "'%s': network names are 1-%d characters a-z, 0-9 and '-', not "
			       "starting with '-'",
			       s->name, NETMGR_NAME_MAX);
	if (s->uplink[0] && s->mode != NETMGR_BRIDGED)
		return nm_errf(-EINVAL, err, errlen, "--uplink is only for bridged networks");
	if (s->mode == NETMGR_BRIDGED && !s->uplink[0])
		return nm_errf(-EINVAL, err, errlen, "a bridged network needs --uplink IF");
	if (strpbrk(s->uplink, "/: \t\"'\\"))
		return nm_errf(-EINVAL, err, errlen, "--uplink '%s': not an interface name",
			       s->uplink);
	if (s->has_subnet && s->mode != NETMGR_NAT && s->mode != NETMGR_HOSTONLY)
		return nm_errf(-EINVAL, err, errlen,
			       "--subnet is only for nat and host-only, not %s", mode);
	if (s->has_subnet && (s->prefix < 8 || s->prefix > 30))
		return nm_errf(-EINVAL, err, errlen, "--subnet: prefix length must be 8..30");
	if (s->dhcp == 1 && s->mode != NETMGR_NAT && s->mode != NETMGR_HOSTONLY)
		return nm_errf(-EINVAL, err, errlen,
			       "--dhcp on needs a host address (nat or host-only), not %s", mode);
	if ((s->vlan || s->sw[0]) && s->mode != NETMGR_ISOLATED)
		return nm_errf(-EINVAL, err, errlen, "--vlan and --switch are only for isolated");
	if (s->vlan == 1 || s->vlan > 4094)
		return nm_errf(-EINVAL, err, errlen, "--vlan: 2..4094 (1 is the untagged default)");
	if (s->sw[0] && !s->vlan)
		return nm_errf(-EINVAL, err, errlen, "--switch needs --vlan");
	return 0;
}

/* A network joining switch `sw` with VLAN vid: the switch must be a plain isolated network
 * and no other network on it may have the same VLAN. */
static int nm_switch_check(const struct netmgr *nm, const struct netmgr_spec *s,
			   struct netmgr_net *sw, char *err, size_t errlen)
{
	int r = nm_state_read(nm, s->sw, sw, err, errlen);
	if (r)
		return nm_errf(r, err, errlen, "--switch %s: no such network", s->sw);
	if (sw->mode != NETMGR_ISOLATED || sw->sw[0] || sw->vlan)
		return nm_errf(-EINVAL, err, errlen,
			       "--switch %s: must be an isolated network without --vlan/--switch",
			       s->sw);
	if (sw->status != NETMGR_UP)
		return nm_errf(-EAGAIN, err, errlen, "--switch %s: not ready", s->sw);
	nm_name_t names[NM_NAMES_MAX];
	int k = nm_state_names(nm, names, NM_NAMES_MAX);
	for (int i = 0; i < k; i++) {
		struct netmgr_net o;
		if (!nm_state_read(nm, names[i], &o, NULL, 0) && !strcmp(o.sw, s->sw) &&
		    o.vlan == s->vlan)
			return nm_errf(-EEXIST, err, errlen, "VLAN %u on switch %s is network '%s'",
				       s->vlan, s->sw, o.name);
	}
	return 0;
}

int netmgr_create(struct netmgr *nm, const struct netmgr_spec *spec, struct netmgr_net *out,
		  char *err, size_t errlen)
{
	struct netmgr_net n, sw;
	char path[4200];
	int r = nm_spec_check(spec, err, errlen);
	if (r)
		return r;
	nm_path(nm, spec->name, ".net", path, sizeof(path));
	if (access(path, F_OK) == 0)
		return nm_errf(-EEXIST, err, errlen, "network '%s' already exists", spec->name);
	memset(&n, 0, sizeof(n));
	nm_copy(n.name, sizeof(n.name), spec->name);
	n.mode = spec->mode;
	n.status = NETMGR_CREATING;
	n.vlan = spec->vlan;
	nm_copy(n.uplink, sizeof(n.uplink), spec->uplink);
	if (spec->sw[0]) {
		r = nm_switch_check(nm, spec, &sw, err, errlen);
		if (r)
			return r;
		nm_copy(n.sw, sizeof(n.sw), spec->sw);
		nm_copy(n.bridge, sizeof(n.bridge), sw.bridge);
	} else {
		snprintf(n.bridge, sizeof(n.bridge), NM_BRIDGE_PREFIX "%s", spec->name);
		if (nm_link_exists(n.bridge))
			return nm_errf(-EEXIST, err, errlen, "interface %s already exists",
				       n.bridge);
	}
	static const char *const fams[] = {"ip", "bridge"};
	for (unsigned i = 0; i < ARRAY_SIZE(fams); i++) {
		char tbl[32], tag[64];
		snprintf(tbl, sizeof(tbl), NM_TABLE_PREFIX "%s", n.name);
		if (!nm_table_exists(fams[i], tbl))
			continue;
		nm_table_tag(fams[i], tbl, tag, sizeof(tag));
		if (strcmp(tag, nm->tag))
			return nm_errf(-EEXIST, err, errlen,
				       "nft table %s %s exists and is not ours", fams[i], tbl);
	}
	if (n.mode == NETMGR_BRIDGED) {
		char master[IFNAMSIZ];
		if (!nm_link_exists(n.uplink))
			return nm_errf(-ENODEV, err, errlen, "uplink '%s': no such interface",
				       n.uplink);
		nm_link_master(n.uplink, master);
		if (master[0])
			return nm_errf(-EBUSY, err, errlen, "uplink '%s' is already a port of '%s'",
				       n.uplink, master);
	}
	if (n.mode == NETMGR_NAT || n.mode == NETMGR_HOSTONLY) {
		n.net = spec->net;
		n.prefix = spec->prefix;
		r = nm_subnet_choose(nm, n.name, spec->has_subnet, &n.net, &n.prefix, err, errlen);
		if (r)
			return r;
		uint32_t size = 1u << (32 - n.prefix);
		n.gw = n.net + 1;
		n.dhcp = spec->dhcp != 0;
		n.dhcp_lo = n.net + MAX(2u, size / 2);
		n.dhcp_hi = n.net + size - 2;
	}
	/* From here on a crash leaves a "creating" record that the next command cleans up. */
	r = nm_state_write(nm, &n, err, errlen);
	if (r)
		return r;
	r = nm_setup(nm, &n, err, errlen);
	if (!r) {
		n.status = NETMGR_UP;
		r = nm_state_write(nm, &n, err, errlen);
	}
	if (r) {
		nm_teardown(nm, n.name, &n, true);
		if (nm_state_remove(nm, n.name))
			vwarn("net %s: cannot remove the state file", n.name);
		return r;
	}
	if (out)
		*out = n;
	return 0;
}

/* Attached VM ports (whose interface exists) plus foreign ports of its own bridge. */
static unsigned nm_in_use(const struct netmgr_net *n)
{
	struct netmgr_port p[NETMGR_MAX_PORTS];
	unsigned k = nm_ports_list(n->name, p, NETMGR_MAX_PORTS), used = 0;
	for (unsigned i = 0; i < k; i++)
		used += nm_link_exists(p[i].ifname);
	if (!n->sw[0] && used == 0)
		used = nm_bridge_nports(n->bridge, n->mode == NETMGR_BRIDGED ? n->uplink : NULL);
	return used;
}

int netmgr_delete(struct netmgr *nm, const char *name, bool force, char *err, size_t errlen)
{
	struct netmgr_net n;
	char msg[256];
	if (!netmgr_name_valid(name))
		return nm_errf(-EINVAL, err, errlen, "'%s': not a valid network name", name);
	int r = nm_state_read(nm, name, &n, msg, sizeof(msg));
	if (r == -ENOENT || r == -EINVAL) {
		if (r == -ENOENT)
			return nm_errf(r, err, errlen, "%s", msg);
		vwarn("net %s: %s; removing what carries this directory's tag", name, msg);
		nm_teardown(nm, name, NULL, false);
		return nm_state_remove(nm, name);
	}
	if (r)
		return nm_errf(r, err, errlen, "%s", msg);
	nm_name_t names[NM_NAMES_MAX];
	int k = nm_state_names(nm, names, NM_NAMES_MAX);
	for (int i = 0; i < k; i++) {
		struct netmgr_net o;
		if (!nm_state_read(nm, names[i], &o, NULL, 0) && !strcmp(o.sw, name))
			return nm_errf(-EBUSY, err, errlen,
				       "network '%s' is the switch of '%s': delete that first",
				       name, o.name);
	}
	unsigned used = nm_in_use(&n);
	if (used && !force)
		return nm_errf(-EBUSY, err, errlen,
			       "network '%s' has %u port(s) in use (stop the VMs, or --force)",
			       name, used);
	struct netmgr_port p[NETMGR_MAX_PORTS];
	k = (int)nm_ports_list(n.name, p, NETMGR_MAX_PORTS);
	for (int i = 0; i < k; i++)
		netmgr_port_detach(nm, n.name, p[i].ifname);
	nm_teardown(nm, name, &n, n.status == NETMGR_CREATING);
	r = nm_state_remove(nm, name);
	if (r)
		return nm_errf(r, err, errlen, "network '%s': cannot remove its state file: %s",
			       name, strerror(-r));
	return 0;
}

/* After a repair: VM ports still listed (their TAPs exist) join the new bridge again. */
static void nm_ports_rejoin(const struct netmgr_net *n)
{
	struct netmgr_port p[NETMGR_MAX_PORTS];
	unsigned k = nm_ports_list(n->name, p, NETMGR_MAX_PORTS);
	for (unsigned i = 0; i < k; i++) {
		char master[IFNAMSIZ], msg[256];
		if (!nm_link_exists(p[i].ifname))
			continue;
		nm_link_master(p[i].ifname, master);
		if (!master[0] && nm_cmd(msg, sizeof(msg), NULL, "ip", "link", "set", "dev",
					 p[i].ifname, "master", n->bridge, "up", NULL))
			vwarn("net %s: port %s: %s", n->name, p[i].ifname, msg);
	}
}

static bool nm_is_up(const struct netmgr *nm, const char *name, struct netmgr_net *n)
{
	return netmgr_name_valid(name) && nm_state_read(nm, name, n, NULL, 0) == 0 &&
	       n->status == NETMGR_UP;
}

/* vr-* bridges with our tag whose network is gone. */
static unsigned nm_gc_bridges(struct netmgr *nm)
{
	DIR *d = opendir("/sys/class/net");
	unsigned removed = 0;
	if (!d)
		return 0;
	for (struct dirent *e; (e = readdir(d));) {
		char name[NETMGR_NAME_MAX + 1], alias[64];
		struct netmgr_net n;
		nm_name_from_bridge(e->d_name, name);
		if (!name[0] || !nm_link_is_bridge(e->d_name))
			continue;
		nm_link_alias(e->d_name, alias, sizeof(alias));
		if (strcmp(alias, nm->tag) || (nm_is_up(nm, name, &n) && !n.sw[0]))
			continue;
		/* Only the link: the name may belong to a live network on a shared switch. */
		if (nm_cmd(NULL, 0, NULL, "ip", "link", "del", "dev", e->d_name, NULL) == 0)
			removed++;
	}
	closedir(d);
	return removed;
}

/* vireo-* nft tables with our tag whose network is gone. */
static unsigned nm_gc_tables(struct netmgr *nm)
{
	char *out = NULL, *save = NULL;
	unsigned removed = 0;
	if (nm_cmd_out(&out, NULL, 0, "nft", "list", "tables", NULL))
		return 0;
	for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char fam[16], tbl[64], tag[64];
		struct netmgr_net n;
		if (sscanf(line, "table %15s %63s", fam, tbl) != 2 ||
		    strncmp(tbl, NM_TABLE_PREFIX, strlen(NM_TABLE_PREFIX)))
			continue;
		const char *name = tbl + strlen(NM_TABLE_PREFIX);
		if (nm_is_up(nm, name, &n))
			continue;
		nm_table_tag(fam, tbl, tag, sizeof(tag));
		if (strcmp(tag, nm->tag))
			continue;
		if (nm_cmd(NULL, 0, NULL, "nft", "delete", "table", fam, tbl, NULL) == 0)
			removed++;
	}
	free(out);
	return removed;
}

/* Pid, lease and temporary files whose network is gone (or has no DHCP). */
static unsigned nm_gc_files(struct netmgr *nm)
{
	static const char *const sfx[] = {".pid", ".leases", ".net.tmp"};
	DIR *d = opendir(nm->dir);
	unsigned removed = 0;
	if (!d)
		return 0;
	for (struct dirent *e; (e = readdir(d));) {
		size_t len = strlen(e->d_name);
		for (unsigned i = 0; i < ARRAY_SIZE(sfx); i++) {
			size_t sl = strlen(sfx[i]);
			char name[NETMGR_NAME_MAX + 1], path[4200];
			struct netmgr_net n;
			if (len <= sl || len - sl > NETMGR_NAME_MAX ||
			    strcmp(e->d_name + len - sl, sfx[i]))
				continue;
			memcpy(name, e->d_name, len - sl);
			name[len - sl] = 0;
			if (i < 2 && nm_is_up(nm, name, &n) && n.dhcp)
				continue;
			nm_path(nm, e->d_name, "", path, sizeof(path));
			if (unlink(path) == 0)
				removed++;
		}
	}
	closedir(d);
	return removed;
}

int netmgr_gc(struct netmgr *nm, struct netmgr_gc_report *rep, char *err, size_t errlen)
{
	struct netmgr_gc_report dummy;
	nm_name_t names[NM_NAMES_MAX];
	if (!rep)
		rep = &dummy;
	memset(rep, 0, sizeof(*rep));
	if (nm->lock_fd < 0)
		return 0;
	if (!nm->writable)
		return nm_errf(-EACCES, err, errlen, "state directory %s is not writable", nm->dir);
	int k = nm_state_names(nm, names, NM_NAMES_MAX);
	if (k < 0)
		return nm_errf(k, err, errlen, "%s: %s", nm->dir, strerror(-k));
	/* Unreadable records and interrupted creates. */
	for (int i = 0; i < k; i++) {
		struct netmgr_net n;
		char msg[256];
		int r = nm_state_read(nm, names[i], &n, msg, sizeof(msg));
		if (r == 0 && n.status == NETMGR_UP)
			continue;
		if (r)
			vwarn("net: %s: removing it and what carries this directory's tag", msg);
		else
			vinfo("net %s: cleaning up an interrupted create", names[i]);
		nm_teardown(nm, names[i], r ? NULL : &n, r == 0);
		if (nm_state_remove(nm, names[i]) == 0)
			rep->removed_nets++;
	}
	rep->killed_dnsmasq = nm_dnsmasq_reap(nm, NULL);
	/* Repair: switches (no sw) before the networks that use them. */
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < k; i++) {
			struct netmgr_net n;
			char why[160], msg[256];
			if (!nm_is_up(nm, names[i], &n) || (pass == 0) != !n.sw[0])
				continue;
			if (!nm_healthy(nm, &n, why, sizeof(why))) {
				if (nm_setup(nm, &n, msg, sizeof(msg)) == 0) {
					vinfo("net %s: repaired (%s)", n.name, why);
					nm_ports_rejoin(&n);
					rep->repaired_nets++;
				} else {
					vwarn("net %s: degraded (%s): %s", n.name, why, msg);
					rep->degraded_nets++;
				}
			}
			rep->removed_ports += nm_ports_prune(n.name);
		}
	}
	rep->removed_bridges = nm_gc_bridges(nm);
	rep->removed_tables = nm_gc_tables(nm);
	rep->removed_files = nm_gc_files(nm);
	return 0;
}

void netmgr_inspect(const struct netmgr *nm, const struct netmgr_net *n, struct netmgr_live *live)
{
	char tbl[32];
	memset(live, 0, sizeof(*live));
	live->healthy = n->status == NETMGR_UP && nm_healthy(nm, n, live->why, sizeof(live->why));
	if (n->status != NETMGR_UP)
		nm_copy(live->why, sizeof(live->why),
			"being created (or the create was interrupted)");
	snprintf(tbl, sizeof(tbl), NM_TABLE_PREFIX "%s", n->name);
	live->bridge_present = nm_link_is_bridge(n->bridge);
	live->ip_table = nm_table_exists("ip", tbl);
	live->bridge_table = nm_table_exists("bridge", tbl);
	live->dnsmasq_pid = nm_dnsmasq_pid(nm, n->name);
	live->nr_ports = nm_ports_list(n->name, live->ports, NETMGR_MAX_PORTS);
	if (n->dhcp)
		live->nr_leases = nm_leases_read(nm, n->name, live->leases, NETMGR_MAX_PORTS);
}
