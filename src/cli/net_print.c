/* SPDX-License-Identifier: MIT */
/* Output of `vireo net` (see net_print.h). */
#include "cli/net_print.h"
#include "net/net.h"

#include <string.h>

static const char *net_status(const struct netmgr_net *n, const struct netmgr_live *live)
{
	if (n->status != NETMGR_UP)
		return "creating";
	return !live || live->healthy ? "up" : "degraded";
}

static void net_subnet(const struct netmgr_net *n, char buf[24])
{
	char ip[16];
	if (!n->prefix) {
		strcpy(buf, "-");
		return;
	}
	netmgr_ip_format(n->net, ip);
	snprintf(buf, 24, "%s/%u", ip, n->prefix);
}

void net_print_header(FILE *f)
{
	fprintf(f, "%-12s %-9s %-15s %-18s %-4s %-4s %s\n", "NAME", "MODE", "BRIDGE", "SUBNET",
		"DHCP", "VLAN", "STATUS");
}

void net_print_row(FILE *f, const struct netmgr_net *n, const struct netmgr_live *live)
{
	char sub[24], vlan[16] = "-";
	net_subnet(n, sub);
	if (n->vlan)
		snprintf(vlan, sizeof(vlan), "%u", n->vlan);
	fprintf(f, "%-12s %-9s %-15s %-18s %-4s %-4s %s\n", n->name, netmgr_mode_name(n->mode),
		n->bridge, sub, n->dhcp ? "on" : "off", vlan, net_status(n, live));
}

void net_print_info(FILE *f, const struct netmgr_net *n, const struct netmgr_live *live)
{
	char sub[24], ip[16], ip2[16], mac[18];
	net_subnet(n, sub);
	bool bad = live && !live->healthy;
	fprintf(f, "name:      %s\nmode:      %s\nstatus:    %s%s%s%s\nbridge:    %s%s\n", n->name,
		netmgr_mode_name(n->mode), net_status(n, live), bad ? " (" : "",
		bad ? live->why : "", bad ? ")" : "", n->bridge,
		live && !live->bridge_present ? " (missing)" : "");
	if (n->uplink[0])
		fprintf(f, "uplink:    %s\n", n->uplink);
	if (n->sw[0])
		fprintf(f, "switch:    %s\n", n->sw);
	if (n->vlan)
		fprintf(f, "vlan:      %u\n", n->vlan);
	if (n->prefix) {
		netmgr_ip_format(n->gw, ip);
		fprintf(f, "subnet:    %s\nhost:      %s\n", sub, ip);
	}
	if (n->dhcp) {
		netmgr_ip_format(n->dhcp_lo, ip);
		netmgr_ip_format(n->dhcp_hi, ip2);
		fprintf(f, "dhcp:      %s - %s", ip, ip2);
		if (!live)
			fputc('\n', f);
		else if (live->dnsmasq_pid)
			fprintf(f, " (dnsmasq pid %d)\n", live->dnsmasq_pid);
		else
			fprintf(f, " (dnsmasq not running)\n");
	}
	if (!live) {
		fprintf(f, "(live state needs CAP_NET_ADMIN)\n");
		return;
	}
	fprintf(f, "ports:     %u\n", live->nr_ports);
	for (unsigned i = 0; i < live->nr_ports; i++) {
		const struct netmgr_port *p = &live->ports[i];
		if (p->has_mac)
			net_mac_format(p->mac, mac);
		fprintf(f, "  %-15s %s\n", p->ifname, p->has_mac ? mac : "?");
	}
	for (unsigned i = 0; i < live->nr_leases; i++) {
		net_mac_format(live->leases[i].mac, mac);
		netmgr_ip_format(live->leases[i].ip, ip);
		fprintf(f, "lease:     %s %s\n", ip, mac);
	}
}

/* A JSON string; escapes what JSON requires. */
static void net_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void net_json_kv(FILE *f, const char *key, const char *val, bool comma)
{
	fprintf(f, "%s\"%s\": ", comma ? ", " : "", key);
	if (val)
		net_json_str(f, val);
	else
		fputs("null", f);
}

void net_print_json(FILE *f, const struct netmgr_net *n, const struct netmgr_live *live)
{
	char sub[24], ip[16], ip2[16], mac[18];
	net_subnet(n, sub);
	fputc('{', f);
	net_json_kv(f, "name", n->name, false);
	net_json_kv(f, "mode", netmgr_mode_name(n->mode), true);
	net_json_kv(f, "status", net_status(n, live), true);
	net_json_kv(f, "bridge", n->bridge, true);
	net_json_kv(f, "uplink", n->uplink[0] ? n->uplink : NULL, true);
	net_json_kv(f, "switch", n->sw[0] ? n->sw : NULL, true);
	fprintf(f, ", \"vlan\": %u", n->vlan);
	net_json_kv(f, "subnet", n->prefix ? sub : NULL, true);
	netmgr_ip_format(n->gw, ip);
	net_json_kv(f, "host_address", n->prefix ? ip : NULL, true);
	fprintf(f, ", \"dhcp\": %s", n->dhcp ? "true" : "false");
	if (n->dhcp) {
		netmgr_ip_format(n->dhcp_lo, ip);
		netmgr_ip_format(n->dhcp_hi, ip2);
		fprintf(f, ", \"dhcp_range\": [\"%s\", \"%s\"]", ip, ip2);
	}
	if (live) {
		if (!live->healthy)
			net_json_kv(f, "problem", live->why, true);
		fprintf(f,
			", \"bridge_present\": %s, \"nft_ip_table\": %s, \"nft_bridge_table\": %s"
			", \"dnsmasq_pid\": %d, \"ports\": [",
			live->bridge_present ? "true" : "false", live->ip_table ? "true" : "false",
			live->bridge_table ? "true" : "false", live->dnsmasq_pid);
		for (unsigned i = 0; i < live->nr_ports; i++) {
			const struct netmgr_port *p = &live->ports[i];
			if (p->has_mac)
				net_mac_format(p->mac, mac);
			fputs(i ? ", {" : "{", f);
			net_json_kv(f, "ifname", p->ifname, false);
			net_json_kv(f, "mac", p->has_mac ? mac : NULL, true);
			fputc('}', f);
		}
		fputs("], \"leases\": [", f);
		for (unsigned i = 0; i < live->nr_leases; i++) {
			net_mac_format(live->leases[i].mac, mac);
			netmgr_ip_format(live->leases[i].ip, ip);
			fprintf(f, "%s{\"ip\": \"%s\", \"mac\": \"%s\"}", i ? ", " : "", ip, mac);
		}
		fputc(']', f);
	}
	fputs(live ? "}" : "}\n", f);
}

void net_print_gc(FILE *f, const struct netmgr_gc_report *r, bool json)
{
	if (json) {
		fprintf(
		    f,
		    "{\"removed_networks\": %u, \"repaired_networks\": %u, "
		    "\"degraded_networks\": %u, \"removed_bridges\": %u, \"removed_tables\": %u, "
		    "\"killed_dnsmasq\": %u, \"removed_files\": %u, \"removed_ports\": %u}\n",
		    r->removed_nets, r->repaired_nets, r->degraded_nets, r->removed_bridges,
		    r->removed_tables, r->killed_dnsmasq, r->removed_files, r->removed_ports);
		return;
	}
	fprintf(f,
		"gc: %u network(s) removed, %u repaired, %u degraded; %u bridge(s), %u nft "
		"table(s), %u dnsmasq, %u file(s), %u port(s) removed\n",
		r->removed_nets, r->repaired_nets, r->degraded_nets, r->removed_bridges,
		r->removed_tables, r->killed_dnsmasq, r->removed_files, r->removed_ports);
}
