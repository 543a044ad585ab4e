/* SPDX-License-Identifier: MIT */
/*
 * The state directory of the network manager: locking, one key=value file per network
 * (written atomically), names, modes and IPv4 helpers. See netmgr.h.
 */
#include "net/netmgr_priv.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *const nm_modes[] = {
    [NETMGR_BRIDGED] = "bridged",
    [NETMGR_NAT] = "nat",
    [NETMGR_HOSTONLY] = "host-only",
    [NETMGR_ISOLATED] = "isolated",
};

bool netmgr_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > NETMGR_NAME_MAX || name[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	return true;
}

const char *netmgr_mode_name(enum netmgr_mode m)
{
	if ((unsigned)m < ARRAY_SIZE(nm_modes) && nm_modes[m])
		return nm_modes[m];
	return "?";
}

int netmgr_mode_parse(const char *s, enum netmgr_mode *m)
{
	for (unsigned i = 0; i < ARRAY_SIZE(nm_modes); i++) {
		if (nm_modes[i] && !strcmp(s, nm_modes[i])) {
			*m = (enum netmgr_mode)i;
			return 0;
		}
	}
	if (!strcmp(s, "hostonly") || !strcmp(s, "host")) {
		*m = NETMGR_HOSTONLY;
		return 0;
	}
	if (!strcmp(s, "switch")) {
		*m = NETMGR_ISOLATED;
		return 0;
	}
	return -EINVAL;
}

static int nm_ip_parse(const char *s, size_t len, uint32_t *ip)
{
	uint32_t v = 0;
	size_t i = 0;
	for (unsigned part = 0; part < 4; part++) {
		unsigned x = 0, digits = 0;
		while (i < len && s[i] >= '0' && s[i] <= '9' && digits < 4) {
			x = x * 10 + (unsigned)(s[i++] - '0');
			digits++;
		}
		if (!digits || x > 255 || (digits > 1 && s[i - digits] == '0'))
			return -EINVAL;
		v = v << 8 | x;
		if (part < 3 && (i >= len || s[i++] != '.'))
			return -EINVAL;
	}
	if (i != len)
		return -EINVAL;
	*ip = v;
	return 0;
}

static uint32_t nm_mask(unsigned prefix)
{
	return prefix ? ~0u << (32 - prefix) : 0;
}

int netmgr_cidr_parse(const char *s, uint32_t *net, unsigned *prefix)
{
	const char *slash = strchr(s, '/');
	uint32_t ip;
	if (!slash || nm_ip_parse(s, (size_t)(slash - s), &ip))
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long p = strtoul(slash + 1, &end, 10);
	if (errno || end == slash + 1 || *end || p > 32 || slash[1] == '+' || slash[1] == '-')
		return -EINVAL;
	if (ip & ~nm_mask((unsigned)p))
		return -EINVAL;
	*net = ip;
	*prefix = (unsigned)p;
	return 0;
}

void netmgr_ip_format(uint32_t ip, char buf[16])
{
	snprintf(buf, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
}

bool netmgr_overlaps(uint32_t a, unsigned alen, uint32_t b, unsigned blen)
{
	uint32_t m = nm_mask(MIN(alen, blen));
	return (a & m) == (b & m);
}

int netmgr_check_caps(char *err, size_t errlen)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d) == 0 && (d[0].effective & (1u << CAP_NET_ADMIN)))
		return 0;
	return nm_errf(
	    -EPERM, err, errlen,
	    "managing networks needs CAP_NET_ADMIN (run as root or with that capability)");
}

/* ---- directory ------------------------------------------------------------------------ */

static int nm_mkdir_p(const char *dir)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s", dir);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, 0755) && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(p, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

int netmgr_open(struct netmgr *nm, const char *dir, bool create, char *err, size_t errlen)
{
	char real[4096];
	memset(nm, 0, sizeof(*nm));
	nm->lock_fd = -1;
	if (!dir || !*dir)
		dir = getenv("VIREO_NET_DIR");
	if (!dir || !*dir)
		dir = NETMGR_DEFAULT_DIR;
	if (strlen(dir) >= sizeof(nm->dir) - 64)
		return nm_errf(-ENAMETOOLONG, err, errlen, "state directory '%s': path too long",
			       dir);
	if (create) {
		int r = nm_mkdir_p(dir);
		if (r)
			return nm_errf(r, err, errlen, "state directory '%s': %s", dir,
				       strerror(-r));
	}
	if (realpath(dir, real))
		snprintf(nm->dir, sizeof(nm->dir), "%s", real);
	else
		snprintf(nm->dir, sizeof(nm->dir), "%s", dir);
	/* The tag names this directory on kernel objects: FNV-1a of its canonical path. */
	uint64_t h = 0xcbf29ce484222325ull;
	for (const char *s = nm->dir; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	snprintf(nm->tag, sizeof(nm->tag), "vireo-net:%016llx", (unsigned long long)h);
	nm->lock_fd = open(nm->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (nm->lock_fd < 0) {
		if (errno == ENOENT && !create)
			return 0; /* no directory: no networks */
		return nm_errf(-errno, err, errlen, "state directory '%s': %s", nm->dir,
			       strerror(errno));
	}
	while (flock(nm->lock_fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int r = -errno;
			close(nm->lock_fd);
			nm->lock_fd = -1;
			return nm_errf(r, err, errlen, "state directory '%s': lock: %s", nm->dir,
				       strerror(-r));
		}
	}
	nm->writable = access(nm->dir, W_OK) == 0;
	return 0;
}

void netmgr_close(struct netmgr *nm)
{
	if (nm->lock_fd >= 0)
		close(nm->lock_fd); /* drops the flock */
	nm->lock_fd = -1;
}

void nm_path(const struct netmgr *nm, const char *name, const char *suffix, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s%s", nm->dir, name, suffix);
}

void nm_name_from_bridge(const char *bridge, char name[NETMGR_NAME_MAX + 1])
{
	name[0] = 0;
	if (!strncmp(bridge, NM_BRIDGE_PREFIX, strlen(NM_BRIDGE_PREFIX)) &&
	    netmgr_name_valid(bridge + strlen(NM_BRIDGE_PREFIX)))
		nm_copy(name, NETMGR_NAME_MAX + 1, bridge + strlen(NM_BRIDGE_PREFIX));
}

/* ---- state files ---------------------------------------------------------------------- */

int netmgr_state_format(const struct netmgr_net *n, char *buf, size_t len)
{
	char net[16], gw[16], lo[16], hi[16], subnet[40] = "";
	netmgr_ip_format(n->net, net);
	if (n->prefix)
		snprintf(subnet, sizeof(subnet), "%s/%u", net, n->prefix);
	netmgr_ip_format(n->gw, gw);
	netmgr_ip_format(n->dhcp_lo, lo);
	netmgr_ip_format(n->dhcp_hi, hi);
	int w =
	    snprintf(buf, len,
		     "# vireo network: managed by 'vireo net', do not edit\n"
		     "version=1\nname=%s\nmode=%s\nstatus=%s\nbridge=%s\nuplink=%s\n"
		     "switch=%s\nsubnet=%s\ngateway=%s\ndhcp=%s\ndhcp-range=%s-%s\n"
		     "vlan=%u\n",
		     n->name, netmgr_mode_name(n->mode), n->status == NETMGR_UP ? "up" : "creating",
		     n->bridge, n->uplink, n->sw, subnet, n->prefix ? gw : "",
		     n->dhcp ? "on" : "off", n->dhcp ? lo : "", n->dhcp ? hi : "", n->vlan);
	return w < 0 || (size_t)w >= len ? -ENOSPC : 0;
}

static int nm_kv(struct netmgr_net *n, const char *k, const char *v, size_t vlen)
{
	char val[64];
	if (vlen >= sizeof(val))
		return -EINVAL;
	memcpy(val, v, vlen);
	val[vlen] = 0;
	if (!strcmp(k, "version"))
		return strcmp(val, "1") ? -EINVAL : 0;
	if (!strcmp(k, "name"))
		return netmgr_name_valid(val) ? (nm_copy(n->name, sizeof(n->name), val), 0)
					      : -EINVAL;
	if (!strcmp(k, "mode"))
		return netmgr_mode_parse(val, &n->mode);
	if (!strcmp(k, "status")) {
		if (strcmp(val, "up") && strcmp(val, "creating"))
			return -EINVAL;
		n->status = val[0] == 'u' ? NETMGR_UP : NETMGR_CREATING;
		return 0;
	}
	if (!strcmp(k, "bridge") || !strcmp(k, "uplink")) {
		char *dst = k[0] == 'b' ? n->bridge : n->uplink, owner[NETMGR_NAME_MAX + 1];
		if (vlen >= IFNAMSIZ || strpbrk(val, "/: \t\"'\\"))
			return -EINVAL;
		/* Bridges are always ours (they end up in nft scripts): vr-NAME. */
		nm_name_from_bridge(val, owner);
		if (k[0] == 'b' && !owner[0])
			return -EINVAL;
		nm_copy(dst, IFNAMSIZ, val);
		return 0;
	}
	if (!strcmp(k, "switch"))
		return !vlen || netmgr_name_valid(val) ? (nm_copy(n->sw, sizeof(n->sw), val), 0)
						       : -EINVAL;
	if (!strcmp(k, "subnet")) {
		if (!vlen)
			return 0;
		return netmgr_cidr_parse(val, &n->net, &n->prefix);
	}
	if (!strcmp(k, "gateway"))
		return !vlen ? 0 : nm_ip_parse(val, vlen, &n->gw);
	if (!strcmp(k, "dhcp")) {
		n->dhcp = !strcmp(val, "on");
		return n->dhcp || !strcmp(val, "off") ? 0 : -EINVAL;
	}
	if (!strcmp(k, "dhcp-range")) {
		if (!strcmp(val, "-"))
			return 0;
		char *dash = strchr(val, '-');
		if (!dash || nm_ip_parse(val, (size_t)(dash - val), &n->dhcp_lo) ||
		    nm_ip_parse(dash + 1, strlen(dash + 1), &n->dhcp_hi))
			return -EINVAL;
		return 0;
	}
	if (!strcmp(k, "vlan")) {
		char *end;
		unsigned long x = strtoul(val, &end, 10);
		if (*end || end == val || x > 4094 || x == 1)
			return -EINVAL;
		n->vlan = (unsigned)x;
		return 0;
	}
	return 0; /* unknown keys: written by a newer version, ignored */
}

int netmgr_state_parse(const char *text, struct netmgr_net *n, char *err, size_t errlen)
{
	memset(n, 0, sizeof(*n));
	for (const char *line = text; *line;) {
		size_t len = strcspn(line, "\n");
		const char *eq = memchr(line, '=', len);
		if (len && line[0] != '#') {
			char key[32];
			size_t klen = eq ? (size_t)(eq - line) : len;
			if (!eq || klen >= sizeof(key))
				return nm_errf(-EINVAL, err, errlen, "malformed line '%.*s'",
					       (int)len, line);
			memcpy(key, line, klen);
			key[klen] = 0;
			if (nm_kv(n, key, eq + 1, len - klen - 1))
				return nm_errf(-EINVAL, err, errlen, "bad value in '%.*s'",
					       (int)len, line);
		}
		line += len + (line[len] == '\n');
	}
	if (!n->name[0] || !n->mode || !n->status || !n->bridge[0])
		return nm_errf(-EINVAL, err, errlen, "name, mode, status or bridge missing");
	if (n->dhcp && (!n->prefix || !n->dhcp_lo || n->dhcp_lo > n->dhcp_hi))
		return nm_errf(-EINVAL, err, errlen, "dhcp without a subnet or range");
	return 0;
}

int nm_state_read(const struct netmgr *nm, const char *name, struct netmgr_net *n, char *err,
		  size_t errlen)
{
	char path[4200], text[2048], msg[160];
	if (!netmgr_name_valid(name))
		return nm_errf(-EINVAL, err, errlen, "'%s': not a valid network name", name);
	nm_path(nm, name, ".net", path, sizeof(path));
	int r = nm_read_file(path, text, sizeof(text));
	if (r == -ENOENT)
		return nm_errf(r, err, errlen, "no network named '%s'", name);
	if (r)
		return nm_errf(r, err, errlen, "%s: %s", path, strerror(-r));
	r = netmgr_state_parse(text, n, msg, sizeof(msg));
	if (r)
		return nm_errf(r, err, errlen, "%s: %s", path, msg);
	if (strcmp(n->name, name))
		return nm_errf(-EINVAL, err, errlen, "%s: names network '%s'", path, n->name);
	return 0;
}

int nm_state_write(const struct netmgr *nm, const struct netmgr_net *n, char *err, size_t errlen)
{
	char path[4200], tmp[4200], text[2048];
	int r = netmgr_state_format(n, text, sizeof(text));
	if (r)
		return nm_errf(r, err, errlen, "network '%s': state too large", n->name);
	nm_path(nm, n->name, ".net", path, sizeof(path));
	nm_path(nm, n->name, ".net.tmp", tmp, sizeof(tmp));
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return nm_errf(-errno, err, errlen, "%s: %s", tmp, strerror(errno));
	size_t len = strlen(text);
	ssize_t w = write(fd, text, len);
	r = w == (ssize_t)len ? 0 : (w < 0 ? -errno : -EIO);
	if (!r && fsync(fd))
		r = -errno;
	if (close(fd) && !r)
		r = -errno;
	if (!r && rename(tmp, path))
		r = -errno;
	if (r) {
		unlink(tmp);
		return nm_errf(r, err, errlen, "%s: %s", path, strerror(-r));
	}
	return 0;
}

int nm_state_remove(const struct netmgr *nm, const char *name)
{
	char path[4200];
	nm_path(nm, name, ".net", path, sizeof(path));
	if (unlink(path) && errno != ENOENT)
		return -errno;
	return 0;
}

static int nm_name_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

int nm_state_names(const struct netmgr *nm, char (*names)[NETMGR_NAME_MAX + 1], unsigned max)
{
	DIR *d = opendir(nm->dir);
	unsigned n = 0;
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	for (struct dirent *e; (e = readdir(d));) {
		size_t len = strlen(e->d_name);
		if (len < 5 || strcmp(e->d_name + len - 4, ".net") || len - 4 > NETMGR_NAME_MAX)
			continue;
		char name[NETMGR_NAME_MAX + 1];
		memcpy(name, e->d_name, len - 4);
		name[len - 4] = 0;
		if (!netmgr_name_valid(name) || n == max)
			continue;
		memcpy(names[n++], name, sizeof(name));
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), nm_name_cmp);
	return (int)n;
}

int netmgr_get(const struct netmgr *nm, const char *name, struct netmgr_net *out, char *err,
	       size_t errlen)
{
	return nm_state_read(nm, name, out, err, errlen);
}

int netmgr_list(const struct netmgr *nm, struct netmgr_net *out, unsigned max, char *err,
		size_t errlen)
{
	char names[NETMGR_MAX_NETS][NETMGR_NAME_MAX + 1];
	int n = nm_state_names(nm, names, NETMGR_MAX_NETS);
	unsigned k = 0;
	if (n < 0)
		return nm_errf(n, err, errlen, "%s: %s", nm->dir, strerror(-n));
	for (int i = 0; i < n && k < max; i++) {
		if (nm_state_read(nm, names[i], &out[k], NULL, 0) == 0)
			k++;
	}
	return (int)k;
}
