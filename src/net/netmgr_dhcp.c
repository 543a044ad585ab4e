/* SPDX-License-Identifier: MIT */
/*
 * dnsmasq for nat and host-only networks: one daemon per network, bound to the network's
 * bridge only (--bind-interfaces), its pid and lease files in the state directory. A
 * dnsmasq is recognised as ours by its --pid-file argument (in /proc/PID/cmdline), so a
 * recycled pid in a stale pid file is never killed.
 */
#include "net/netmgr_priv.h"
#include "net/net.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int nm_dnsmasq_start(const struct netmgr *nm, const struct netmgr_net *n, char *err, size_t errlen)
{
	char lo[16], hi[16], mask[16], gw[16], a_if[48], a_pid[4300], a_lease[4300], a_range[80];
	char a_port[16], a_router[48], pidpath[4200];
	netmgr_ip_format(n->dhcp_lo, lo);
	netmgr_ip_format(n->dhcp_hi, hi);
	netmgr_ip_format(n->prefix ? ~0u << (32 - n->prefix) : 0, mask);
	netmgr_ip_format(n->gw, gw);
	nm_path(nm, n->name, ".pid", pidpath, sizeof(pidpath));
	snprintf(a_if, sizeof(a_if), "--interface=%s", n->bridge);
	snprintf(a_pid, sizeof(a_pid), "--pid-file=%s", pidpath);
	nm_path(nm, n->name, ".leases", a_lease, sizeof(a_lease));
	memmove(a_lease + strlen("--dhcp-leasefile="), a_lease, strlen(a_lease) + 1);
	memcpy(a_lease, "--dhcp-leasefile=", strlen("--dhcp-leasefile="));
	snprintf(a_range, sizeof(a_range), "--dhcp-range=%s,%s,%s,1h", lo, hi, mask);
	/* nat: DNS on the gateway address (forwarding to the host's resolvers) and the gateway
	 * as router; host-only: no DNS, no router option. */
	bool nat = n->mode == NETMGR_NAT;
	snprintf(a_port, sizeof(a_port), "--port=%d", nat ? 53 : 0);
	snprintf(a_router, sizeof(a_router), "--dhcp-option=option:router%s%s", nat ? "," : "",
		 nat ? gw : "");
	unlink(pidpath);
	const char *argv[] = {"dnsmasq",
			      "--conf-file=/dev/null",
			      a_if,
			      "--bind-interfaces",
			      "--except-interface=lo",
			      a_pid,
			      a_lease,
			      a_range,
			      a_port,
			      a_router,
			      "--dhcp-authoritative",
			      "--no-hosts",
			      NULL};
	char msg[256];
	int r = nm_run(argv, NULL, NULL, msg, sizeof(msg));
	if (r > 0 && nat) {
		/* Port 53 of the gateway address taken (a DNS server bound to the wildcard
		 * address): DHCP still matters more than DNS. */
		vwarn("net %s: dnsmasq with DNS failed (%s); running it for DHCP only", n->name,
		      msg);
		snprintf(a_port, sizeof(a_port), "--port=0");
		r = nm_run(argv, NULL, NULL, msg, sizeof(msg));
	}
	if (r == -ENOENT)
		return nm_errf(
		    r, err, errlen,
		    "dnsmasq not found (install dnsmasq or dnsmasq-base, or use --dhcp off)");
	if (r < 0)
		return nm_errf(r, err, errlen, "dnsmasq: %s", msg);
	if (r > 0)
		return nm_errf(-EIO, err, errlen, "dnsmasq for %s failed: %s", n->bridge,
			       msg[0] ? msg : "no message");
	/* The daemon writes its pid file as it starts; give it a moment. */
	for (unsigned i = 0; i < 100 && !nm_dnsmasq_pid(nm, n->name); i++)
		usleep(10000);
	if (!nm_dnsmasq_pid(nm, n->name))
		return nm_errf(-ESRCH, err, errlen, "dnsmasq for %s did not stay up", n->bridge);
	return 0;
}

/* If pid is a live dnsmasq started for this directory, the network it serves. */
static bool nm_dnsmasq_of(const struct netmgr *nm, int pid, char name[NETMGR_NAME_MAX + 1])
{
	char path[64], buf[8192], prefix[4200];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (nm_read_file(path, buf, sizeof(buf)))
		return false;
	const char *rp = strrchr(buf, ')');
	if (!rp || !strstr(buf, "(dnsmasq)") || rp[1] != ' ' || rp[2] == 'Z' || rp[2] == 'X')
		return false;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return false;
	buf[len] = 0;
	snprintf(prefix, sizeof(prefix), "--pid-file=%s/", nm->dir);
	size_t plen = strlen(prefix);
	for (ssize_t i = 0; i < len; i += (ssize_t)strlen(buf + i) + 1) {
		const char *a = buf + i;
		if (strncmp(a, prefix, plen))
			continue;
		const char *base = a + plen;
		size_t blen = strlen(base);
		if (blen < 5 || blen - 4 > NETMGR_NAME_MAX || strcmp(base + blen - 4, ".pid"))
			return false;
		memcpy(name, base, blen - 4);
		name[blen - 4] = 0;
		return netmgr_name_valid(name);
	}
	return false;
}

int nm_dnsmasq_pid(const struct netmgr *nm, const char *name)
{
	char path[4200], buf[32], who[NETMGR_NAME_MAX + 1];
	nm_path(nm, name, ".pid", path, sizeof(path));
	if (nm_read_file(path, buf, sizeof(buf)))
		return 0;
	char *end;
	long pid = strtol(buf, &end, 10);
	if (*end || pid <= 1 || pid > 4194304)
		return 0;
	if (!nm_dnsmasq_of(nm, (int)pid, who) || strcmp(who, name))
		return 0;
	return (int)pid;
}

static void nm_kill_wait(int pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	kill(pid, SIGTERM);
	for (unsigned i = 0; i < 200; i++) {
		if (nm_read_file(path, buf, sizeof(buf)))
			return;
		const char *rp = strrchr(buf, ')');
		if (rp && (rp[2] == 'Z' || rp[2] == 'X'))
			return;
		if (i == 100)
			kill(pid, SIGKILL);
		usleep(10000);
	}
}

unsigned nm_dnsmasq_reap(const struct netmgr *nm, const char *name)
{
	DIR *d = opendir("/proc");
	unsigned killed = 0;
	if (!d)
		return 0;
	for (struct dirent *e; (e = readdir(d));) {
		char who[NETMGR_NAME_MAX + 1];
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 1 || pid == getpid() || !nm_dnsmasq_of(nm, (int)pid, who))
			continue;
		if (name) {
			if (strcmp(who, name))
				continue;
		} else {
			struct netmgr_net n;
			if (nm_state_read(nm, who, &n, NULL, 0) == 0 && n.status == NETMGR_UP &&
			    n.dhcp && nm_dnsmasq_pid(nm, who) == pid)
				continue; /* the one this network should have */
		}
		nm_kill_wait((int)pid);
		killed++;
	}
	closedir(d);
	return killed;
}

unsigned nm_leases_read(const struct netmgr *nm, const char *name, struct netmgr_lease *l,
			unsigned max)
{
	char path[4200], line[512];
	unsigned n = 0;
	nm_path(nm, name, ".leases", path, sizeof(path));
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	while (n < max && fgets(line, sizeof(line), f)) {
		char mac[32], ip[32];
		unsigned a, b, c, dd;
		if (sscanf(line, "%*s %31s %31s", mac, ip) != 2 ||
		    sscanf(ip, "%u.%u.%u.%u", &a, &b, &c, &dd) != 4 || (a | b | c | dd) > 255 ||
		    net_mac_parse(mac, l[n].mac))
			continue;
		l[n].ip = a << 24 | b << 16 | c << 8 | dd;
		n++;
	}
	fclose(f);
	return n;
}
