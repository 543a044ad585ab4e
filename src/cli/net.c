/* SPDX-License-Identifier: MIT */
/*
 * `vireo net`: managed virtual networks (src/net/netmgr.h). Every command that changes
 * something first garbage-collects the state directory (see the cleanup model there).
 * Output: human tables by default, --json for scripts (src/cli/net_print.c).
 */
#include "cli/cli.h"
#include "cli/net_print.h"
#include "common/log.h"
#include "net/net.h"
#include "net/netmgr.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void net_usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: vireo net COMMAND [OPTIONS]\n"
	    "\n"
	    "  create NAME --mode bridged|nat|host-only|isolated [--uplink IF] [--subnet CIDR]\n"
	    "              [--dhcp on|off] [--vlan ID [--switch NET]]\n"
	    "  list [--json]            networks and their state\n"
	    "  info NAME [--json]       one network, with its ports and DHCP leases\n"
	    "  delete NAME [--force]    remove it (--force: even with VM ports attached)\n"
	    "  attach NAME IFNAME --mac MAC   add an existing TAP as a VM port (filtered)\n"
	    "  detach NAME IFNAME       remove a port\n"
	    "  gc [--json]              only clean up (also done before every command)\n"
	    "\n"
	    "Modes: bridged (--uplink IF is enslaved; its IP address stays where it is),\n"
	    "nat (private subnet, masquerade, DHCP and DNS), host-only (host and VMs only),\n"
	    "isolated (a switch without host address; --vlan ID puts the network's ports in\n"
	    "that VLAN, --switch NET shares the bridge of the isolated network NET).\n"
	    "NAME: 1-%d of a-z 0-9 '-'. VMs join with --net network=NAME.\n"
	    "State: $VIREO_NET_DIR or %s. Needs CAP_NET_ADMIN.\n",
	    NETMGR_NAME_MAX, NETMGR_DEFAULT_DIR);
}

static int net_usage_error(const char *msg, const char *arg)
{
	fprintf(stderr, "vireo: net: %s%s%s (try 'vireo net --help')\n", msg, arg ? " " : "",
		arg ? arg : "");
	return CLI_EXIT_USAGE;
}

static int net_fail(const char *err)
{
	fprintf(stderr, "vireo: net: %s\n", err);
	return CLI_EXIT_ERROR;
}

enum {
	OPT_MODE = 256,
	OPT_UPLINK,
	OPT_SUBNET,
	OPT_DHCP,
	OPT_VLAN,
	OPT_SWITCH,
	OPT_JSON,
	OPT_FORCE,
	OPT_MAC,
	OPT_HELP
};

static const struct option net_opts[] = {
    {"mode", required_argument, NULL, OPT_MODE},
    {"uplink", required_argument, NULL, OPT_UPLINK},
    {"subnet", required_argument, NULL, OPT_SUBNET},
    {"dhcp", required_argument, NULL, OPT_DHCP},
    {"vlan", required_argument, NULL, OPT_VLAN},
    {"switch", required_argument, NULL, OPT_SWITCH},
    {"json", no_argument, NULL, OPT_JSON},
    {"force", no_argument, NULL, OPT_FORCE},
    {"mac", required_argument, NULL, OPT_MAC},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

struct net_args {
	struct netmgr_spec spec;
	bool json, force, has_mac, help;
	uint8_t mac[6];
	const char *pos[3];
	unsigned npos;
	unsigned given; /* bit per create-only option, to reject them elsewhere */
};

static int net_parse(int argc, char **argv, struct net_args *a)
{
	int c;
	memset(a, 0, sizeof(*a));
	a->spec.dhcp = -1;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":vh", net_opts, NULL)) != -1) {
		if (c >= OPT_MODE && c <= OPT_SWITCH)
			a->given |= 1u << (c - OPT_MODE);
		switch (c) {
		case OPT_MODE:
			if (netmgr_mode_parse(optarg, &a->spec.mode))
				return net_usage_error(
				    "--mode: bridged, nat, host-only or isolated, "
				    "not",
				    optarg);
			break;
		case OPT_UPLINK:
			if (!net_ifname_valid(optarg))
				return net_usage_error("--uplink: not an interface name:", optarg);
			snprintf(a->spec.uplink, sizeof(a->spec.uplink), "%s", optarg);
			break;
		case OPT_SUBNET:
			if (netmgr_cidr_parse(optarg, &a->spec.net, &a->spec.prefix))
				return net_usage_error("--subnet: expected A.B.C.D/N with the host "
						       "bits zero, not",
						       optarg);
			a->spec.has_subnet = true;
			break;
		case OPT_DHCP:
			if (strcmp(optarg, "on") && strcmp(optarg, "off"))
				return net_usage_error("--dhcp: on or off, not", optarg);
			a->spec.dhcp = optarg[1] == 'n';
			break;
		case OPT_VLAN: {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);
			if (*end || end == optarg || v < 2 || v > 4094)
				return net_usage_error("--vlan: 2..4094, not", optarg);
			a->spec.vlan = (unsigned)v;
			break;
		}
		case OPT_SWITCH:
			if (!netmgr_name_valid(optarg))
				return net_usage_error("--switch: not a network name:", optarg);
			snprintf(a->spec.sw, sizeof(a->spec.sw), "%s", optarg);
			break;
		case OPT_JSON:
			a->json = true;
			break;
		case OPT_FORCE:
			a->force = true;
			break;
		case OPT_MAC:
			if (net_mac_parse(optarg, a->mac) || !net_mac_valid(a->mac))
				return net_usage_error(
				    "--mac: expected a unicast aa:bb:cc:dd:ee:ff, "
				    "not",
				    optarg);
			a->has_mac = true;
			break;
		case 'v':
			vlog_set_level(VLOG_INFO);
			break;
		case 'h':
		case OPT_HELP:
			a->help = true;
			break;
		case ':':
			return net_usage_error("missing value for", argv[optind - 1]);
		default:
			return net_usage_error("unknown option", argv[optind - 1]);
		}
	}
	for (int i = optind; i < argc; i++) {
		if (a->npos == ARRAY_SIZE(a->pos))
			return net_usage_error("too many arguments:", argv[i]);
		a->pos[a->npos++] = argv[i];
	}
	return 0;
}

/* Open the state directory; with privileges (required for changes) garbage-collect first.
 * Without them only the recorded state can be shown (*priv false). */
static int net_open(struct netmgr *nm, bool change, bool *priv)
{
	char err[512];
	bool p = netmgr_check_caps(err, sizeof(err)) == 0;
	if (priv)
		*priv = p;
	if (change && !p)
		return net_fail(err);
	if (netmgr_open(nm, NULL, p, err, sizeof(err)))
		return net_fail(err);
	if (p && netmgr_gc(nm, NULL, err, sizeof(err)))
		vwarn("net: cleanup: %s", err);
	return 0;
}

static int net_cmd_create(struct net_args *a)
{
	struct netmgr nm;
	struct netmgr_net n;
	char err[512];
	if (a->npos != 1)
		return net_usage_error("create: expected one NAME", NULL);
	if (!a->spec.mode)
		return net_usage_error("create: --mode is required", NULL);
	snprintf(a->spec.name, sizeof(a->spec.name), "%.*s", NETMGR_NAME_MAX, a->pos[0]);
	if (strlen(a->pos[0]) > NETMGR_NAME_MAX || !netmgr_name_valid(a->pos[0]))
		return net_usage_error("create: network names are 1-12 of a-z, 0-9, '-', not",
				       a->pos[0]);
	int r = net_open(&nm, true, NULL);
	if (r)
		return r;
	r = netmgr_create(&nm, &a->spec, &n, err, sizeof(err));
	netmgr_close(&nm);
	if (r)
		return net_fail(err);
	if (a->json) {
		net_print_json(stdout, &n, NULL);
		return 0;
	}
	printf("created %s network '%s' (bridge %s)\n", netmgr_mode_name(n.mode), n.name, n.bridge);
	return 0;
}

static int net_cmd_list(struct net_args *a)
{
	struct netmgr nm;
	char err[512];
	if (a->npos)
		return net_usage_error("list: unexpected argument", a->pos[0]);
	struct netmgr_net *nets = calloc(NETMGR_MAX_NETS, sizeof(*nets));
	struct netmgr_live *live = calloc(1, sizeof(*live));
	bool priv = false;
	int r = nets && live ? net_open(&nm, false, &priv) : net_fail("out of memory");
	if (r) {
		free(nets);
		free(live);
		return r;
	}
	int n = netmgr_list(&nm, nets, NETMGR_MAX_NETS, err, sizeof(err));
	if (n < 0) {
		netmgr_close(&nm);
		free(nets);
		free(live);
		return net_fail(err);
	}
	if (a->json)
		fputs("[", stdout);
	else
		net_print_header(stdout);
	for (int i = 0; i < n; i++) {
		if (priv)
			netmgr_inspect(&nm, &nets[i], live);
		if (a->json) {
			fputs(i ? ",\n " : "\n ", stdout);
			net_print_json(stdout, &nets[i], priv ? live : NULL);
		} else {
			net_print_row(stdout, &nets[i], priv ? live : NULL);
		}
	}
	if (a->json)
		fputs(n ? "\n]\n" : "]\n", stdout);
	netmgr_close(&nm);
	free(nets);
	free(live);
	return 0;
}

static int net_cmd_info(struct net_args *a)
{
	struct netmgr nm;
	struct netmgr_net n;
	char err[512];
	if (a->npos != 1)
		return net_usage_error("info: expected one NAME", NULL);
	struct netmgr_live *live = calloc(1, sizeof(*live));
	if (!live)
		return net_fail("out of memory");
	bool priv = false;
	int r = net_open(&nm, false, &priv);
	if (r) {
		free(live);
		return r;
	}
	if (netmgr_get(&nm, a->pos[0], &n, err, sizeof(err))) {
		r = net_fail(err);
	} else {
		if (priv)
			netmgr_inspect(&nm, &n, live);
		if (a->json)
			net_print_json(stdout, &n, priv ? live : NULL);
		else
			net_print_info(stdout, &n, priv ? live : NULL);
	}
	netmgr_close(&nm);
	free(live);
	return r;
}

static int net_cmd_delete(struct net_args *a)
{
	struct netmgr nm;
	char err[512];
	if (a->npos != 1)
		return net_usage_error("delete: expected one NAME", NULL);
	int r = net_open(&nm, true, NULL);
	if (r)
		return r;
	r = netmgr_delete(&nm, a->pos[0], a->force, err, sizeof(err));
	netmgr_close(&nm);
	if (r)
		return net_fail(err);
	printf("deleted network '%s'\n", a->pos[0]);
	return 0;
}

static int net_cmd_port(struct net_args *a, bool attach)
{
	struct netmgr nm;
	struct netmgr_net n;
	char err[512];
	if (a->npos != 2)
		return net_usage_error(
		    attach ? "attach: expected NAME IFNAME" : "detach: expected NAME IFNAME", NULL);
	if (attach && !a->has_mac)
		return net_usage_error("attach: --mac MAC is required", NULL);
	int r = net_open(&nm, true, NULL);
	if (r)
		return r;
	r = netmgr_get(&nm, a->pos[0], &n, err, sizeof(err));
	if (!r && attach)
		r = netmgr_port_attach(&nm, a->pos[0], a->pos[1], a->mac, err, sizeof(err));
	else if (!r)
		netmgr_port_detach(&nm, a->pos[0], a->pos[1]);
	netmgr_close(&nm);
	return r ? net_fail(err) : 0;
}

static int net_cmd_gc(struct net_args *a)
{
	struct netmgr nm;
	struct netmgr_gc_report rep;
	char err[512];
	if (a->npos)
		return net_usage_error("gc: unexpected argument", a->pos[0]);
	if (netmgr_check_caps(err, sizeof(err)))
		return net_fail(err);
	if (netmgr_open(&nm, NULL, true, err, sizeof(err)))
		return net_fail(err);
	int r = netmgr_gc(&nm, &rep, err, sizeof(err));
	netmgr_close(&nm);
	if (r)
		return net_fail(err);
	net_print_gc(stdout, &rep, a->json);
	return 0;
}

int cli_net(int argc, char **argv)
{
	struct net_args a;
	if (argc < 2)
		return net_usage_error("missing command", NULL);
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		net_usage(stdout);
		return 0;
	}
	int r = net_parse(argc - 1, argv + 1, &a);
	if (r)
		return r;
	if (a.help) {
		net_usage(stdout);
		return 0;
	}
	bool create = !strcmp(cmd, "create");
	if (a.given && !create)
		return net_usage_error("--mode, --uplink, --subnet, --dhcp, --vlan and --switch "
				       "are create options, not for",
				       cmd);
	if ((a.has_mac && strcmp(cmd, "attach")) || (a.force && strcmp(cmd, "delete")))
		return net_usage_error("option not valid for", cmd);
	if (create)
		return net_cmd_create(&a);
	if (!strcmp(cmd, "list") || !strcmp(cmd, "ls"))
		return net_cmd_list(&a);
	if (!strcmp(cmd, "info") || !strcmp(cmd, "show"))
		return net_cmd_info(&a);
	if (!strcmp(cmd, "delete") || !strcmp(cmd, "rm"))
		return net_cmd_delete(&a);
	if (!strcmp(cmd, "attach") || !strcmp(cmd, "detach"))
		return net_cmd_port(&a, cmd[0] == 'a');
	if (!strcmp(cmd, "gc"))
		return net_cmd_gc(&a);
	return net_usage_error("unknown command", cmd);
}
