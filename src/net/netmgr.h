/* SPDX-License-Identifier: MIT */
/*
 * Managed virtual networks (`vireo net`): Linux bridges, nftables tables and dnsmasq
 * processes that Vireo creates, tracks in a state directory and removes again.
 *
 * Modes (one bridge "vr-NAME" per network unless noted):
 *   bridged    the host uplink (--uplink) is enslaved to the bridge: VMs are peers on the
 *              physical network. The uplink's own IP address is NOT moved to the bridge.
 *   nat        private IPv4 subnet, host address .1 on the bridge, IP forwarding on,
 *              masquerade of the subnet (nft `table ip vireo-NAME`), DHCP + DNS by dnsmasq.
 *   host-only  private subnet with a host address; nothing is forwarded to or from it
 *              (nft forward drop in `table ip vireo-NAME`); optional DHCP (no router).
 *   isolated   a switch without host address. With --vlan ID the network's ports form VLAN
 *              group ID: they exchange frames only with each other (untagged access ports,
 *              enforced by a forward chain in `table bridge vireo-NAME`, so kernel bridge
 *              VLAN filtering, which not every kernel has, is not needed; 802.1Q tags sent
 *              by guests are not interpreted). With --switch SW (and --vlan) the network
 *              shares the bridge of the isolated network SW: VLAN groups on one switch are
 *              isolated from each other and from SW's own ports.
 * Every network also has `table bridge vireo-NAME`: a map from each attached port to a
 * chain that drops frames whose Ethernet (or ARP sender) address is not the port's MAC.
 *
 * State: one file per network, DIR/NAME.net (key=value lines, written to a temporary file
 * and renamed), plus DIR/NAME.pid and DIR/NAME.leases of its dnsmasq. DIR is $VIREO_NET_DIR
 * or /run/vireo/networks. One state directory per network namespace. Kernel objects are
 * labelled with a tag derived from DIR (bridge ifalias, nft table comment), so cleanup
 * never touches objects that another state directory (or nobody) manages.
 *
 * Cleanup model (netmgr_gc, run under the directory lock before every command):
 * - a network is recorded with status=creating before anything is built and rewritten
 *   with status=up when complete; a state file still "creating" (a create that crashed) is
 *   torn down and removed;
 * - an "up" network whose bridge, tables or dnsmasq are missing is rebuilt (idempotent
 *   setup); if that fails it is reported as degraded and kept;
 * - vr-* bridges and vireo-* nft tables carrying our tag but no state file are deleted;
 * - dnsmasq processes started for this directory (found in /proc by their --pid-file)
 *   whose network is gone, or that are not the pid in the pid file, are killed; stale pid,
 *   lease and temporary files are removed;
 * - port entries for interfaces that no longer exist (a VMM that died) are removed.
 * IP forwarding, once enabled for a nat network, is left enabled.
 *
 * All functions need CAP_NET_ADMIN except reading state (netmgr_get/netmgr_list). They
 * return 0 or -errno with a one-line message in err. External programs (ip, bridge, nft,
 * dnsmasq) are run without a shell, found in PATH, /usr/sbin or /sbin.
 */
#ifndef VIREO_NET_NETMGR_H
#define VIREO_NET_NETMGR_H

#include "common/compiler.h"
#include <net/if.h>
#include <stdint.h>

#define NETMGR_DEFAULT_DIR "/run/vireo/networks"
#define NETMGR_NAME_MAX 12 /* "vr-" + name fits IFNAMSIZ - 1 */
#define NETMGR_TAG_LEN 26  /* "vireo-net:" + 16 hex digits */
#define NETMGR_MAX_NETS 256
#define NETMGR_MAX_PORTS 64

enum netmgr_mode { NETMGR_BRIDGED = 1, NETMGR_NAT, NETMGR_HOSTONLY, NETMGR_ISOLATED };
enum netmgr_status { NETMGR_CREATING = 1, NETMGR_UP };

/* What the user asked for (`vireo net create`). Zero / empty fields mean "default". */
struct netmgr_spec {
	char name[NETMGR_NAME_MAX + 1];
	enum netmgr_mode mode;
	char uplink[IFNAMSIZ];	      /* bridged: required */
	char sw[NETMGR_NAME_MAX + 1]; /* isolated: share this isolated network's bridge */
	bool has_subnet;
	uint32_t net; /* host byte order */
	unsigned prefix;
	int dhcp;      /* -1 default (on for nat and host-only), 0 off, 1 on */
	unsigned vlan; /* 0 none, else 2..4094 (isolated only) */
};

/* A network as recorded in its state file. */
struct netmgr_net {
	char name[NETMGR_NAME_MAX + 1];
	enum netmgr_mode mode;
	enum netmgr_status status;
	char bridge[IFNAMSIZ];
	char uplink[IFNAMSIZ];
	char sw[NETMGR_NAME_MAX + 1];
	uint32_t net, gw; /* nat / host-only; host byte order */
	unsigned prefix;  /* 0: no IP subnet */
	bool dhcp;
	uint32_t dhcp_lo, dhcp_hi;
	unsigned vlan;
};

/* Live view of a network (netmgr_inspect). */
struct netmgr_port {
	char ifname[IFNAMSIZ];
	uint8_t mac[6];
	bool has_mac;
};
struct netmgr_lease {
	uint8_t mac[6];
	uint32_t ip;
};
struct netmgr_live {
	bool healthy;  /* every piece present (an "up" network) */
	char why[160]; /* else the first missing piece */
	bool bridge_present;
	bool ip_table, bridge_table; /* nft tables present */
	int dnsmasq_pid;	     /* 0: not running */
	unsigned nr_ports;
	struct netmgr_port ports[NETMGR_MAX_PORTS];
	unsigned nr_leases;
	struct netmgr_lease leases[NETMGR_MAX_PORTS];
};

/* An open state directory, locked (flock) until netmgr_close. */
struct netmgr {
	char dir[4096];
	char tag[NETMGR_TAG_LEN + 1];
	int lock_fd;
	bool writable;
};

/* What netmgr_gc did, for the CLI's --verbose and the tests. */
struct netmgr_gc_report {
	unsigned removed_nets, repaired_nets, degraded_nets;
	unsigned removed_bridges, removed_tables, killed_dnsmasq, removed_files, removed_ports;
};

/* Open (creating it when `create`) and lock the state directory: dir, else $VIREO_NET_DIR,
 * else NETMGR_DEFAULT_DIR. Without `create`, a missing directory is opened as empty. */
int netmgr_open(struct netmgr *nm, const char *dir, bool create, char *err, size_t errlen) WUR;
void netmgr_close(struct netmgr *nm);
/* 0 if the calling process has CAP_NET_ADMIN, else -EPERM with a message. */
int netmgr_check_caps(char *err, size_t errlen) WUR;

int netmgr_gc(struct netmgr *nm, struct netmgr_gc_report *rep, char *err, size_t errlen) WUR;
int netmgr_create(struct netmgr *nm, const struct netmgr_spec *spec, struct netmgr_net *out,
		  char *err, size_t errlen) WUR;
/* Refuses (-EBUSY) while VM ports are attached or other networks use it as switch, unless
 * force. */
int netmgr_delete(struct netmgr *nm, const char *name, bool force, char *err, size_t errlen) WUR;
int netmgr_get(const struct netmgr *nm, const char *name, struct netmgr_net *out, char *err,
	       size_t errlen) WUR;
/* All networks sorted by name into out[0..max); returns the count or -errno. */
int netmgr_list(const struct netmgr *nm, struct netmgr_net *out, unsigned max, char *err,
		size_t errlen) WUR;
void netmgr_inspect(const struct netmgr *nm, const struct netmgr_net *net,
		    struct netmgr_live *live);

/* Port of a VM on a managed network: join the bridge if not yet a port, VLAN membership,
 * MAC filter. net_or_bridge is a network name or its bridge (vr-NAME). A name that is not a
 * managed network is left alone (returns 0). */
int netmgr_port_attach(struct netmgr *nm, const char *net_or_bridge, const char *ifname,
		       const uint8_t mac[6], char *err, size_t errlen) WUR;
void netmgr_port_detach(struct netmgr *nm, const char *net_or_bridge, const char *ifname);

/* Hooks for the VMM (`--net network=NAME`); each opens the default state directory. */
/* Bridge to attach to: the managed network's bridge, else `network` itself. */
int netmgr_resolve(const char *network, char bridge[IFNAMSIZ], char *err, size_t errlen) WUR;
/* Called right after the TAP joined the bridge. */
int netmgr_attach_port(const char *network, const char *ifname, const uint8_t mac[6], char *err,
		       size_t errlen) WUR;
/* Called before the TAP is closed. Best effort. */
void netmgr_detach_port(const char *network, const char *ifname);

/* Helpers (also used by the CLI and unit tests). */
bool netmgr_name_valid(const char *name);
const char *netmgr_mode_name(enum netmgr_mode m);
int netmgr_mode_parse(const char *s, enum netmgr_mode *m) WUR;
/* "A.B.C.D/N" -> network (host order) and prefix; -EINVAL if malformed or host bits set. */
int netmgr_cidr_parse(const char *s, uint32_t *net, unsigned *prefix) WUR;
void netmgr_ip_format(uint32_t ip, char buf[16]);
bool netmgr_overlaps(uint32_t a, unsigned alen, uint32_t b, unsigned blen);
/* Serialise / parse a state file's text (exposed for unit tests). */
int netmgr_state_format(const struct netmgr_net *n, char *buf, size_t len) WUR;
int netmgr_state_parse(const char *text, struct netmgr_net *n, char *err, size_t errlen) WUR;

#endif
