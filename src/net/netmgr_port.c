/* SPDX-License-Identifier: MIT */
/*
 * VM ports on managed networks. Attaching a port (a TAP) makes it a port of the network's
 * bridge and installs its MAC filter: `table bridge vireo-NAME` maps the port's name to a
 * chain `port-IFNAME` that drops every frame whose Ethernet source, or ARP sender address, is
 * not the port's MAC. Re-attaching a name replaces its chain, so a reused TAP name never
 * keeps an old MAC. The port also joins the set `members`: on a network with a VLAN, members
 * only exchange frames with members (see nm_bridge_table_create).
 *
 * Frames a port sends before it is attached (the TAP joined the bridge a moment earlier) are
 * not yet filtered: the VMM attaches before the guest runs, so none are sent by the guest.
 */
#include "net/netmgr_priv.h"
#include "net/net.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* nft identifiers: the chain is named after the interface, so keep to safe characters. */
static bool nm_port_name_ok(const char *ifname)
{
	size_t n = strlen(ifname);
	if (n == 0 || n >= IFNAMSIZ)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = ifname[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

/* The managed network a name refers to: a network name or the bridge of one. 1 found,
 * 0 not managed, -errno on a broken state file. */
static int nm_port_network(const struct netmgr *nm, const char *what, struct netmgr_net *n,
			   char *err, size_t errlen)
{
	char name[NETMGR_NAME_MAX + 1];
	int r;
	if (nm->lock_fd < 0)
		return 0; /* no state directory */
	if (netmgr_name_valid(what)) {
		r = nm_state_read(nm, what, n, err, errlen);
		if (r == 0)
			return 1;
		if (r != -ENOENT)
			return r;
	}
	nm_name_from_bridge(what, name);
	if (!name[0])
		return 0;
	r = nm_state_read(nm, name, n, err, errlen);
	if (r == -ENOENT || (r == 0 && strcmp(n->bridge, what)))
		return 0;
	return r ? r : 1;
}

static int nm_port_filter(const struct netmgr *nm, const struct netmgr_net *n, const char *ifname,
			  const uint8_t mac[6], char *err, size_t errlen)
{
	char m[18], tbl[32], script[1024];
	snprintf(tbl, sizeof(tbl), NM_TABLE_PREFIX "%s", n->name);
	if (!nm_table_exists("bridge", tbl)) {
		int r = nm_bridge_table_create(nm, n, err, errlen);
		if (r)
			return r;
	}
	net_mac_format(mac, m);
	snprintf(script, sizeof(script),
		 "add chain bridge %1$s port-%2$s\n"
		 "flush chain bridge %1$s port-%2$s\n"
		 "add rule bridge %1$s port-%2$s ether saddr != %3$s drop\n"
		 "add rule bridge %1$s port-%2$s arp saddr ether != %3$s drop\n"
		 "add element bridge %1$s ports { \"%2$s\" : jump port-%2$s }\n"
		 "add element bridge %1$s members { \"%2$s\" }\n",
		 tbl, ifname, m);
	return nm_cmd(err, errlen, script, "nft", "-f", "-", NULL);
}

int netmgr_port_attach(struct netmgr *nm, const char *net_or_bridge, const char *ifname,
		       const uint8_t mac[6], char *err, size_t errlen)
{
	struct netmgr_net n;
	char master[IFNAMSIZ];
	int r = nm_port_network(nm, net_or_bridge, &n, err, errlen);
	if (r <= 0)
		return r;
	if (n.status != NETMGR_UP)
		return nm_errf(-EAGAIN, err, errlen, "network '%s' is still being created", n.name);
	if (!nm_port_name_ok(ifname))
		return nm_errf(
		    -EINVAL, err, errlen,
		    "network '%s': port name '%s' must be letters, digits, '_', '-', '.'", n.name,
		    ifname);
	if (!net_mac_valid(mac))
		return nm_errf(-EINVAL, err, errlen, "network '%s': port %s: bad MAC", n.name,
			       ifname);
	if (!nm_link_exists(ifname))
		return nm_errf(-ENODEV, err, errlen, "network '%s': no interface '%s'", n.name,
			       ifname);
	if (!nm_link_is_bridge(n.bridge))
		return nm_errf(-ENODEV, err, errlen,
			       "network '%s': bridge %s is missing (run "
			       "'vireo net list' to repair)",
			       n.name, n.bridge);
	if (n.mode == NETMGR_BRIDGED && !strcmp(ifname, n.uplink))
		return nm_errf(-EINVAL, err, errlen, "network '%s': %s is the uplink", n.name,
			       ifname);
	nm_link_master(ifname, master);
	if (master[0] && strcmp(master, n.bridge))
		return nm_errf(-EBUSY, err, errlen, "network '%s': %s is a port of %s", n.name,
			       ifname, master);
	/* Filter first, so that nothing passes unfiltered once the port is up. */
	r = nm_port_filter(nm, &n, ifname, mac, err, errlen);
	if (r)
		return r;
	if (!master[0]) {
		r = nm_cmd(err, errlen, NULL, "ip", "link", "set", "dev", ifname, "master",
			   n.bridge, NULL);
		if (r)
			return r;
	}
	return nm_cmd(err, errlen, NULL, "ip", "link", "set", "dev", ifname, "up", NULL);
}

static void nm_port_unfilter(const char *name, const char *ifname)
{
	char tbl[32], key[40], chain[40];
	snprintf(tbl, sizeof(tbl), NM_TABLE_PREFIX "%s", name);
	snprintf(key, sizeof(key), "{ \"%s\" }", ifname);
	snprintf(chain, sizeof(chain), "port-%s", ifname);
	/* Either may be absent already; the element goes first (it references the chain). */
	if (nm_cmd(NULL, 0, NULL, "nft", "delete", "element", "bridge", tbl, "ports", key, NULL))
		(void)0;
	if (nm_cmd(NULL, 0, NULL, "nft", "delete", "element", "bridge", tbl, "members", key, NULL))
		(void)0;
	if (nm_cmd(NULL, 0, NULL, "nft", "delete", "chain", "bridge", tbl, chain, NULL))
		(void)0;
}

void netmgr_port_detach(struct netmgr *nm, const char *net_or_bridge, const char *ifname)
{
	struct netmgr_net n;
	char master[IFNAMSIZ];
	if (nm_port_network(nm, net_or_bridge, &n, NULL, 0) <= 0 || !nm_port_name_ok(ifname))
		return;
	nm_port_unfilter(n.name, ifname);
	nm_link_master(ifname, master);
	if (!strcmp(master, n.bridge) &&
	    nm_cmd(NULL, 0, NULL, "ip", "link", "set", "dev", ifname, "nomaster", NULL))
		(void)0;
}

unsigned nm_ports_list(const char *name, struct netmgr_port *p, unsigned max)
{
	char tbl[32], *out = NULL;
	unsigned n = 0;
	snprintf(tbl, sizeof(tbl), NM_TABLE_PREFIX "%s", name);
	if (nm_cmd_out(&out, NULL, 0, "nft", "list", "table", "bridge", tbl, NULL))
		return 0;
	const char *el = strstr(out, "elements = {");
	for (const char *s = el; s && n < max && (s = strchr(s, '"'));) {
		const char *e = strchr(s + 1, '"');
		if (!e || (size_t)(e - s - 1) >= IFNAMSIZ || strncmp(e, "\" : jump", 8))
			break;
		memset(&p[n], 0, sizeof(p[n]));
		memcpy(p[n].ifname, s + 1, (size_t)(e - s - 1));
		s = strchr(e + 1, '"');
		const char *close = strchr(e, '}');
		if (s && close && s > close)
			s = NULL; /* past the end of the elements */
		char hdr[48];
		snprintf(hdr, sizeof(hdr), "chain port-%s {", p[n].ifname);
		const char *c = strstr(out, hdr);
		const char *rule = c ? strstr(c, "ether saddr != ") : NULL;
		if (rule) {
			char mac[18];
			memcpy(mac, rule + strlen("ether saddr != "), 17);
			mac[17] = 0;
			p[n].has_mac = net_mac_parse(mac, p[n].mac) == 0;
		}
		n++;
	}
	free(out);
	return n;
}

unsigned nm_ports_prune(const char *name)
{
	struct netmgr_port p[NETMGR_MAX_PORTS];
	unsigned n = nm_ports_list(name, p, NETMGR_MAX_PORTS), pruned = 0;
	for (unsigned i = 0; i < n; i++) {
		if (nm_link_exists(p[i].ifname) || !nm_port_name_ok(p[i].ifname))
			continue;
		nm_port_unfilter(name, p[i].ifname);
		pruned++;
	}
	return pruned;
}

/* ---- hooks for the VMM ---------------------------------------------------------------- */

int netmgr_resolve(const char *network, char bridge[IFNAMSIZ], char *err, size_t errlen)
{
	struct netmgr nm;
	struct netmgr_net n;
	nm_copy(bridge, IFNAMSIZ, network);
	int r = netmgr_open(&nm, NULL, false, err, errlen);
	if (r)
		return r;
	if (nm.lock_fd >= 0 && netmgr_name_valid(network)) {
		r = nm_state_read(&nm, network, &n, err, errlen);
		if (r == 0)
			nm_copy(bridge, IFNAMSIZ, n.bridge);
		else if (r == -ENOENT)
			r = 0; /* not a managed network: a plain bridge name */
	}
	netmgr_close(&nm);
	return r;
}

int netmgr_attach_port(const char *network, const char *ifname, const uint8_t mac[6], char *err,
		       size_t errlen)
{
	struct netmgr nm;
	int r = netmgr_open(&nm, NULL, false, err, errlen);
	if (r)
		return r;
	r = netmgr_port_attach(&nm, network, ifname, mac, err, errlen);
	netmgr_close(&nm);
	return r;
}

void netmgr_detach_port(const char *network, const char *ifname)
{
	struct netmgr nm;
	if (netmgr_open(&nm, NULL, false, NULL, 0))
		return;
	netmgr_port_detach(&nm, network, ifname);
	netmgr_close(&nm);
}
