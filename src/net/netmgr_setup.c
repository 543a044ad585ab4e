/* SPDX-License-Identifier: MIT */
/*
 * Building and removing a network's kernel objects: the bridge, its address, the uplink,
 * the nftables tables (ip: NAT / forward isolation; bridge: per-port MAC filter) and the
 * dnsmasq instance. nm_setup is idempotent so that the garbage collector can use it to
 * repair a network whose pieces went missing. See netmgr.h for the model.
 */
#include "net/netmgr_priv.h"
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool nm_table_exists(const char *family, const char *name)
{
	char *out = NULL;
	int r = nm_cmd_out(&out, NULL, 0, "nft", "list", "table", family, name, NULL);
	free(out);
	return r == 0;
}

void nm_table_tag(const char *family, const char *table, char *tag, size_t len)
{
	char *out = NULL;
	tag[0] = 0;
	if (nm_cmd_out(&out, NULL, 0, "nft", "list", "table", family, table, NULL))
		return;
	const char *c = strstr(out, "comment \"");
	if (c) {
		c += strlen("comment \"");
		size_t n = strcspn(c, "\"\n");
		snprintf(tag, len, "%.*s", (int)n, c);
	}
	free(out);
}

/* The ip table: forwarding rules (and masquerade for nat). Replaced atomically. */
static int nm_ip_table(const struct netmgr *nm, const struct netmgr_net *n, char *err,
		       size_t errlen)
{
	char net[16], script[2048];
	const char *br = n->bridge;
	netmgr_ip_format(n->net, net);
	int w;
	if (n->mode == NETMGR_NAT)
		w = snprintf(script, sizeof(script),
			     "add table ip vireo-%1$s\n"
			     "delete table ip vireo-%1$s\n"
			     "table ip vireo-%1$s {\n"
			     " comment \"%2$s\"\n"
			     " chain forward {\n"
			     "  type filter hook forward priority filter; policy accept;\n"
			     "  iifname \"%3$s\" oifname \"%3$s\" accept\n"
			     "  iifname \"%3$s\" ip saddr %4$s/%5$u accept\n"
			     "  oifname \"%3$s\" ct state established,related accept\n"
			     "  iifname \"%3$s\" drop\n"
			     "  oifname \"%3$s\" drop\n"
			     " }\n"
			     " chain postrouting {\n"
			     "  type nat hook postrouting priority srcnat; policy accept;\n"
			     "  ip saddr %4$s/%5$u ip daddr != %4$s/%5$u masquerade\n"
			     " }\n"
			     "}\n",
			     n->name, nm->tag, br, net, n->prefix);
	else
		w = snprintf(script, sizeof(script),
			     "add table ip vireo-%1$s\n"
			     "delete table ip vireo-%1$s\n"
			     "table ip vireo-%1$s {\n"
			     " comment \"%2$s\"\n"
			     " chain forward {\n"
			     "  type filter hook forward priority filter; policy accept;\n"
			     "  iifname \"%3$s\" oifname \"%3$s\" accept\n"
			     "  iifname \"%3$s\" drop\n"
			     "  oifname \"%3$s\" drop\n"
			     " }\n"
			     "}\n",
			     n->name, nm->tag, br);
	if (w < 0 || (size_t)w >= sizeof(script))
		return nm_errf(-ENOSPC, err, errlen, "nft script too long");
	return nm_cmd(err, errlen, script, "nft", "-f", "-", NULL);
}

int nm_bridge_table_create(const struct netmgr *nm, const struct netmgr_net *n, char *err,
			   size_t errlen)
{
	char script[1536];
	/* VLAN groups are port groups: a member port only exchanges frames with members. */
	snprintf(script, sizeof(script),
		 "table bridge vireo-%1$s {\n"
		 " comment \"%2$s\"\n"
		 " map ports { type ifname : verdict; }\n"
		 " set members { type ifname; }\n"
		 " chain prerouting {\n"
		 "  type filter hook prerouting priority filter; policy accept;\n"
		 "  iifname vmap @ports\n"
		 " }\n"
		 "%3$s"
		 "}\n",
		 n->name, nm->tag,
		 n->vlan ? " chain forward {\n"
			   "  type filter hook forward priority filter; policy accept;\n"
			   "  iifname @members oifname != @members drop\n"
			   "  oifname @members iifname != @members drop\n"
			   " }\n"
			 : "");
	return nm_cmd(err, errlen, script, "nft", "-f", "-", NULL);
}

static bool nm_has_addr(const struct netmgr_net *n)
{
	char *out = NULL, want[32], gw[16];
	netmgr_ip_format(n->gw, gw);
	snprintf(want, sizeof(want), " %s/%u ", gw, n->prefix);
	if (nm_cmd_out(&out, NULL, 0, "ip", "-4", "-o", "addr", "show", "dev", n->bridge, NULL))
		return false;
	bool hit = strstr(out, want) != NULL;
	free(out);
	return hit;
}

static int nm_uplink_check(const struct netmgr_net *n, char *err, size_t errlen)
{
	char master[IFNAMSIZ];
	if (!nm_link_exists(n->uplink))
		return nm_errf(-ENODEV, err, errlen, "uplink '%s': no such interface", n->uplink);
	if (!strcmp(n->uplink, "lo") || nm_link_is_bridge(n->uplink))
		return nm_errf(-EINVAL, err, errlen, "uplink '%s': cannot be %s", n->uplink,
			       nm_link_is_bridge(n->uplink) ? "a bridge" : "loopback");
	nm_link_master(n->uplink, master);
	if (master[0] && strcmp(master, n->bridge))
		return nm_errf(-EBUSY, err, errlen, "uplink '%s' is already a port of '%s'",
			       n->uplink, master);
	return 0;
}

/* A bridge whose MAC was never set takes the lowest MAC of its ports, so the gateway MAC
 * guests cache would change whenever a VM joins or leaves: set its address explicitly. */
static int nm_bridge_pin_mac(const char *br, char *err, size_t errlen)
{
	char path[96], mac[32];
	snprintf(path, sizeof(path), "/sys/class/net/%s/address", br);
	int r = nm_read_file(path, mac, sizeof(mac));
	if (r)
		return nm_errf(r, err, errlen, "%s: %s", path, strerror(-r));
	return nm_cmd(err, errlen, NULL, "ip", "link", "set", "dev", br, "address", mac, NULL);
}

/* The network's own bridge: created, tagged, uplink, address, up. */
static int nm_bridge_setup(const struct netmgr *nm, const struct netmgr_net *n, char *err,
			   size_t errlen)
{
	const char *br = n->bridge;
	int r;
	if (!nm_link_exists(br)) {
		r = nm_cmd(err, errlen, NULL, "ip", "link", "add", br, "type", "bridge", NULL);
		if (r)
			return r;
		if (n->mode != NETMGR_BRIDGED) {
			r = nm_bridge_pin_mac(br, err, errlen);
			if (r)
				return r;
		}
	} else if (!nm_link_is_bridge(br)) {
		return nm_errf(-EEXIST, err, errlen, "interface '%s' exists and is not a bridge",
			       br);
	}
	r = nm_cmd(err, errlen, NULL, "ip", "link", "set", "dev", br, "alias", nm->tag, NULL);
	if (r)
		return r;
	if (n->mode == NETMGR_BRIDGED) {
		r = nm_uplink_check(n, err, errlen);
		if (!r)
			r = nm_cmd(err, errlen, NULL, "ip", "link", "set", "dev", n->uplink,
				   "master", br, "up", NULL);
		if (r)
			return r;
	}
	if (n->mode == NETMGR_ISOLATED) {
		/* No host presence at all on a switch, not even an IPv6 link-local address. */
		char path[96];
		snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", br);
		if (access(path, F_OK) == 0 && (r = nm_write_file(path, "1")))
			return nm_errf(r, err, errlen, "%s: %s", path, strerror(-r));
	}
	if (n->prefix && !nm_has_addr(n)) {
		char gw[16], cidr[24];
		netmgr_ip_format(n->gw, gw);
		snprintf(cidr, sizeof(cidr), "%s/%u", gw, n->prefix);
		r = nm_cmd(err, errlen, NULL, "ip", "addr", "replace", cidr, "dev", br, NULL);
		if (r)
			return r;
	}
	return nm_cmd(err, errlen, NULL, "ip", "link", "set", "dev", br, "up", NULL);
}

int nm_setup(struct netmgr *nm, const struct netmgr_net *n, char *err, size_t errlen)
{
	int r;
	if (n->sw[0]) {
		struct netmgr_net sw;
		r = nm_state_read(nm, n->sw, &sw, err, errlen);
		if (r)
			return r;
		if (!nm_link_is_bridge(sw.bridge))
			return nm_errf(-ENODEV, err, errlen, "switch '%s': bridge %s is missing",
				       n->sw, sw.bridge);
	} else {
		r = nm_bridge_setup(nm, n, err, errlen);
	}
	if (r)
		return r;
	if (n->mode == NETMGR_NAT) {
		r = nm_write_file("/proc/sys/net/ipv4/ip_forward", "1");
		if (r)
			return nm_errf(r, err, errlen, "cannot enable IP forwarding: %s",
				       strerror(-r));
	}
	if (n->mode == NETMGR_NAT || n->mode == NETMGR_HOSTONLY) {
		r = nm_ip_table(nm, n, err, errlen);
		if (r)
			return r;
	}
	char tbl[32];
	snprintf(tbl, sizeof(tbl), NM_TABLE_PREFIX "%s", n->name);
	if (!nm_table_exists("bridge", tbl)) {
		r = nm_bridge_table_create(nm, n, err, errlen);
		if (r)
			return r;
	}
	if (n->dhcp && !nm_dnsmasq_pid(nm, n->name)) {
		nm_dnsmasq_reap(nm, n->name);
		r = nm_dnsmasq_start(nm, n, err, errlen);
		if (r)
			return r;
	}
	return 0;
}

void nm_teardown(struct netmgr *nm, const char *name, const struct netmgr_net *n, bool own)
{
	char tbl[32], br[IFNAMSIZ], tag[64], path[4200], msg[256];
	static const char *const families[] = {"ip", "bridge"};

	nm_dnsmasq_reap(nm, name);
	nm_path(nm, name, ".pid", path, sizeof(path));
	unlink(path);
	nm_path(nm, name, ".leases", path, sizeof(path));
	unlink(path);
	nm_path(nm, name, ".net.tmp", path, sizeof(path));
	unlink(path);
	snprintf(tbl, sizeof(tbl), NM_TABLE_PREFIX "%s", name);
	for (unsigned i = 0; i < ARRAY_SIZE(families); i++) {
		nm_table_tag(families[i], tbl, tag, sizeof(tag));
		if (strcmp(tag, nm->tag) && !(own && nm_table_exists(families[i], tbl)))
			continue;
		if (nm_cmd(msg, sizeof(msg), NULL, "nft", "delete", "table", families[i], tbl,
			   NULL))
			vwarn("net %s: %s", name, msg);
	}
	snprintf(br, sizeof(br), NM_BRIDGE_PREFIX "%s", name);
	if (!nm_link_is_bridge(br))
		return;
	nm_link_alias(br, tag, sizeof(tag));
	if (strcmp(tag, nm->tag) && !(own && !tag[0]))
		return; /* not ours */
	if (n && n->mode == NETMGR_BRIDGED && n->uplink[0]) {
		char master[IFNAMSIZ];
		nm_link_master(n->uplink, master);
		if (!strcmp(master, br) && nm_cmd(msg, sizeof(msg), NULL, "ip", "link", "set",
						  "dev", n->uplink, "nomaster", NULL))
			vwarn("net %s: %s", name, msg);
	}
	if (nm_cmd(msg, sizeof(msg), NULL, "ip", "link", "del", "dev", br, NULL))
		vwarn("net %s: %s", name, msg);
}

bool nm_healthy(const struct netmgr *nm, const struct netmgr_net *n, char *why, size_t len)
{
	char tbl[32], master[IFNAMSIZ];
	snprintf(tbl, sizeof(tbl), NM_TABLE_PREFIX "%s", n->name);
	if (!nm_link_is_bridge(n->bridge))
		return nm_errf(false, why, len, "bridge %s is missing", n->bridge);
	if (n->mode == NETMGR_BRIDGED) {
		nm_link_master(n->uplink, master);
		if (strcmp(master, n->bridge))
			return nm_errf(false, why, len, "uplink %s left the bridge", n->uplink);
	}
	if (n->prefix && !n->sw[0] && !nm_has_addr(n))
		return nm_errf(false, why, len, "bridge %s lost its address", n->bridge);
	if ((n->mode == NETMGR_NAT || n->mode == NETMGR_HOSTONLY) && !nm_table_exists("ip", tbl))
		return nm_errf(false, why, len, "nft table ip %s is missing", tbl);
	if (!nm_table_exists("bridge", tbl))
		return nm_errf(false, why, len, "nft table bridge %s is missing", tbl);
	if (n->dhcp && !nm_dnsmasq_pid(nm, n->name))
		return nm_errf(false, why, len, "dnsmasq is not running");
	return true;
}

/* ---- subnets ---------------------------------------------------------------------------- */

struct nm_prefix {
	uint32_t net;
	unsigned len;
	char what[64];
};

/* Every IPv4 prefix in use: routes of all tables, interface addresses, other networks. */
static unsigned nm_prefixes_in_use(const struct netmgr *nm, struct nm_prefix *p, unsigned max)
{
	static const char *const types[] = {"local",	   "broadcast", "unicast",   "multicast",
					    "unreachable", "prohibit",	"blackhole", "throw",
					    "nat",	   "anycast"};
	unsigned n = 0;
	char *out = NULL, *save = NULL;
	if (nm_cmd_out(&out, NULL, 0, "ip", "-4", "-o", "route", "show", "table", "all", NULL) ==
	    0) {
		for (char *line = strtok_r(out, "\n", &save); line && n < max;
		     line = strtok_r(NULL, "\n", &save)) {
			char tok[64];
			const char *s = line;
			int used = 0;
			if (sscanf(s, "%63s%n", tok, &used) != 1)
				continue;
			for (unsigned i = 0; i < ARRAY_SIZE(types); i++)
				if (!strcmp(tok, types[i]) && sscanf(s + used, "%63s", tok) != 1)
					tok[0] = 0;
			if (!strchr(tok, '/'))
				strncat(tok, "/32", sizeof(tok) - strlen(tok) - 1);
			if (netmgr_cidr_parse(tok, &p[n].net, &p[n].len) || p[n].len == 0)
				continue; /* "default" or something we do not understand */
			snprintf(p[n].what, sizeof(p[n].what), "route %.56s", tok);
			n++;
		}
	}
	free(out);
	out = NULL;
	if (nm_cmd_out(&out, NULL, 0, "ip", "-4", "-o", "addr", "show", NULL) == 0) {
		for (char *s = out; (s = strstr(s, " inet ")) && n < max;) {
			char tok[32];
			unsigned a, b, c, d, len;
			s += 6;
			if (sscanf(s, "%31s", tok) != 1 ||
			    sscanf(tok, "%u.%u.%u.%u/%u", &a, &b, &c, &d, &len) != 5 || len > 32 ||
			    (a | b | c | d) > 255)
				continue;
			uint32_t ip = a << 24 | b << 16 | c << 8 | d;
			p[n].len = len;
			p[n].net = len ? ip & (~0u << (32 - len)) : 0;
			snprintf(p[n].what, sizeof(p[n].what), "address %s", tok);
			n++;
		}
	}
	free(out);
	char names[NETMGR_MAX_NETS][NETMGR_NAME_MAX + 1];
	int k = nm_state_names(nm, names, NETMGR_MAX_NETS);
	for (int i = 0; i < k && n < max; i++) {
		struct netmgr_net o;
		if (nm_state_read(nm, names[i], &o, NULL, 0) || !o.prefix)
			continue;
		p[n].net = o.net;
		p[n].len = o.prefix;
		snprintf(p[n].what, sizeof(p[n].what), "network '%s'", o.name);
		n++;
	}
	return n;
}

int nm_subnet_choose(const struct netmgr *nm, const char *name, bool given, uint32_t *net,
		     unsigned *prefix, char *err, size_t errlen)
{
	unsigned max = 4096;
	struct nm_prefix *p = calloc(max, sizeof(*p));
	if (!p)
		return nm_errf(-ENOMEM, err, errlen, "out of memory");
	unsigned n = nm_prefixes_in_use(nm, p, max);
	int r = 0;
	if (given) {
		for (unsigned i = 0; i < n; i++) {
			if (netmgr_overlaps(*net, *prefix, p[i].net, p[i].len)) {
				char s[16];
				netmgr_ip_format(*net, s);
				r = nm_errf(-EADDRINUSE, err, errlen, "subnet %s/%u overlaps %s", s,
					    *prefix, p[i].what);
				break;
			}
		}
		free(p);
		return r;
	}
	/* 10.x.y.0/24, starting at a place derived from the name so it is stable. */
	uint32_t h = 2166136261u;
	for (const char *s = name; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	for (uint32_t i = 0; i < 65536; i++) {
		uint32_t cand = 10u << 24 | ((h + i) & 0xffff) << 8;
		bool clash = false;
		for (unsigned j = 0; j < n && !clash; j++)
			clash = netmgr_overlaps(cand, 24, p[j].net, p[j].len);
		if (!clash) {
			*net = cand;
			*prefix = 24;
			free(p);
			return 0;
		}
	}
	free(p);
	return nm_errf(-EADDRNOTAVAIL, err, errlen, "no free 10.x.y.0/24 subnet; use --subnet");
}
