/* SPDX-License-Identifier: MIT */
/* --net option parsing, MAC addresses, iovec helpers and the backend dispatcher. */
#include "net/net.h"
#include "common/parse.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

PRINTF_FMT(3, 4) static int opt_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int net_mac_parse(const char *s, uint8_t mac[6])
{
	uint8_t m[6];
	if (strlen(s) != 17)
		return -EINVAL;
	for (unsigned i = 0; i < 6; i++) {
		int hi = hexval(s[3 * i]), lo = hexval(s[3 * i + 1]);
		if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':'))
			return -EINVAL;
		m[i] = (uint8_t)(hi << 4 | lo);
	}
	memcpy(mac, m, 6);
	return 0;
}

bool net_mac_valid(const uint8_t mac[6])
{
	static const uint8_t zero[6];
	return !(mac[0] & 1) && memcmp(mac, zero, 6) != 0;
}

void net_mac_format(const uint8_t mac[6], char buf[18])
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
		 mac[5]);
}

void net_mac_default(uint8_t mac[6], const char *vm_id, unsigned index)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	const char *id = vm_id ? vm_id : "";
	for (const char *p = id; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	for (unsigned i = 0; i < 4; i++)
		h = (h ^ (uint8_t)(index >> (8 * i))) * 16777619u;
	h ^= h >> 24; /* fold the top byte in: FNV's high bits mix best */
	mac[0] = NET_MAC_PREFIX0;
	mac[1] = NET_MAC_PREFIX1;
	mac[2] = NET_MAC_PREFIX2;
	mac[3] = (uint8_t)(h >> 16);
	mac[4] = (uint8_t)(h >> 8);
	mac[5] = (uint8_t)h;
}

bool net_ifname_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n >= IFNAMSIZ || !strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (const char *p = name; *p; p++)
		if (*p == '/' || *p == ':' || isspace((unsigned char)*p) ||
		    !isprint((unsigned char)*p))
			return false;
	return true;
}

static int parse_port(const char *s, uint16_t *out)
{
	uint64_t v;
	if (parse_u64(s, 1, 65535, &v))
		return -EINVAL;
	*out = (uint16_t)v;
	return 0;
}

/* PROTO:[ADDR]:HPORT-:GPORT or PROTO:HPORT-:GPORT; val is modified. */
static int parse_hostfwd(char *val, struct net_hostfwd *f, char *err, size_t errlen)
{
	char *colon = strchr(val, ':'), *dash, *guest, *hp, *addr = NULL;
	const char *orig = val;
	struct in_addr ia;

	memset(f, 0, sizeof(*f));
	if (!colon)
		return opt_err(err, errlen, "hostfwd '%s': expected tcp:HOSTPORT-:GUESTPORT", orig);
	*colon = 0;
	if (!strcmp(val, "tcp"))
		f->proto = NET_PROTO_TCP;
	else if (!strcmp(val, "udp"))
		f->proto = NET_PROTO_UDP;
	else
		return opt_err(err, errlen, "hostfwd: protocol '%s' is not tcp or udp", val);
	hp = colon + 1;
	dash = strchr(hp, '-');
	if (!dash)
		return opt_err(err, errlen, "hostfwd: '%s' lacks '-' between host and guest", hp);
	*dash = 0;
	guest = dash + 1;
	/* The guest side is ":PORT": passt forwards to the address it gave the guest. */
	if (guest[0] != ':')
		return opt_err(err, errlen,
			       "hostfwd: guest side '%s' must be ':PORT' (the guest's own address)",
			       guest);
	char *last = strrchr(hp, ':');
	if (last) {
		*last = 0;
		addr = hp;
		hp = last + 1;
	}
	if (parse_port(hp, &f->host_port))
		return opt_err(err, errlen, "hostfwd: host port '%s' is not in 1..65535", hp);
	if (parse_port(guest + 1, &f->guest_port))
		return opt_err(err, errlen, "hostfwd: guest port '%s' is not in 1..65535",
			       guest + 1);
	if (addr && *addr) {
		if (strlen(addr) >= sizeof(f->host_addr) || inet_pton(AF_INET, addr, &ia) != 1)
			return opt_err(err, errlen, "hostfwd: '%s' is not an IPv4 address", addr);
		snprintf(f->host_addr, sizeof(f->host_addr), "%s", addr);
	}
	return 0;
}

static int parse_onoff(const char *v, bool *out)
{
	if (!strcmp(v, "on"))
		*out = true;
	else if (!strcmp(v, "off"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

int net_parse_opt(const char *arg, struct net_config *cfg, char *err, size_t errlen)
{
	char buf[512], *save = NULL, *tok;
	bool first = true, vhost_given = false;
	uint64_t q;

	memset(cfg, 0, sizeof(*cfg));
	if (!arg || !*arg)
		return opt_err(err, errlen, "empty --net value (tap=IFNAME, network=NAME or user)");
	if (strlen(arg) >= sizeof(buf))
		return opt_err(err, errlen, "--net value too long");
	snprintf(buf, sizeof(buf), "%s", arg);

	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save), first = false) {
		char *eq = strchr(tok, '=');
		char *val = eq ? eq + 1 : NULL;
		if (eq)
			*eq = 0;
		if (first) {
			if (!strcmp(tok, "user") && !val) {
				cfg->mode = NET_MODE_USER;
				continue;
			}
			if (!strcmp(tok, "tap") && val)
				cfg->mode = NET_MODE_TAP;
			else if (!strcmp(tok, "network") && val)
				cfg->mode = NET_MODE_BRIDGE;
			else
				return opt_err(
				    err, errlen,
				    "--net '%s': must start with tap=IFNAME, network=NAME or user",
				    arg);
			if (!net_ifname_valid(val))
				return opt_err(err, errlen,
					       "--net: '%s' is not a valid interface name (1-%d "
					       "characters, no '/', ':' or spaces)",
					       val, IFNAMSIZ - 1);
			snprintf(cfg->name, sizeof(cfg->name), "%s", val);
			continue;
		}
		if (!val)
			return opt_err(err, errlen, "--net: '%s' needs a value (key=value)", tok);
		if (!strcmp(tok, "mac")) {
			if (net_mac_parse(val, cfg->mac))
				return opt_err(err, errlen,
					       "--net: mac '%s' is not xx:xx:xx:xx:xx:xx", val);
			if (!net_mac_valid(cfg->mac))
				return opt_err(
				    err, errlen,
				    "--net: mac '%s' must be a unicast, non-zero address", val);
			cfg->has_mac = true;
		} else if (!strcmp(tok, "hostfwd")) {
			if (cfg->mode != NET_MODE_USER)
				return opt_err(err, errlen, "--net: hostfwd needs user networking");
			if (cfg->nr_hostfwd >= NET_MAX_HOSTFWD)
				return opt_err(err, errlen, "--net: more than %d hostfwd rules",
					       NET_MAX_HOSTFWD);
			struct net_hostfwd *f = &cfg->hostfwd[cfg->nr_hostfwd];
			int r = parse_hostfwd(val, f, err, errlen);
			if (r)
				return r;
			for (unsigned i = 0; i < cfg->nr_hostfwd; i++)
				if (cfg->hostfwd[i].proto == f->proto &&
				    cfg->hostfwd[i].host_port == f->host_port)
					return opt_err(err, errlen,
						       "--net: host port %u forwarded twice",
						       f->host_port);
			cfg->nr_hostfwd++;
		} else if (!strcmp(tok, "vhost")) {
			if (parse_onoff(val, &cfg->vhost))
				return opt_err(err, errlen, "--net: vhost='%s': expected on or off",
					       val);
			vhost_given = true;
		} else if (!strcmp(tok, "queues")) {
			if (parse_u64(val, 1, NET_MAX_QUEUES, &q))
				return opt_err(
				    err, errlen,
				    "--net: queues='%s': expected a number of queue pairs "
				    "from 1 to %u",
				    val, NET_MAX_QUEUES);
			cfg->queues = (unsigned)q;
		} else {
			return opt_err(err, errlen,
				       "--net: unknown key '%s' (mac, hostfwd, vhost, queues)",
				       tok);
		}
	}
	if (cfg->mode == NET_MODE_NONE)
		return opt_err(err, errlen, "--net '%s': no backend given", arg);
	if (vhost_given && cfg->mode == NET_MODE_USER)
		return opt_err(err, errlen, "--net: vhost applies to tap and network only");
	if (cfg->queues > 1 && cfg->mode == NET_MODE_USER)
		return opt_err(err, errlen,
			       "--net: queues=%u needs tap or network (user networking has one "
			       "queue pair)",
			       cfg->queues);
	if (cfg->queues > 1 && cfg->vhost)
		return opt_err(err, errlen,
			       "--net: vhost=on serves one queue pair; use queues=1 or vhost=off");
	if (!cfg->queues)
		cfg->queues = 1;
	return 0;
}

/* ---- iovecs ---------------------------------------------------------------------------------- */

size_t net_iov_len(const struct iovec *iov, unsigned n)
{
	size_t t = 0;
	for (unsigned i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

size_t net_iov_read(const struct iovec *iov, unsigned n, size_t off, void *dst, size_t len)
{
	size_t done = 0;
	for (unsigned i = 0; i < n && done < len; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		size_t c = MIN(iov[i].iov_len - off, len - done);
		memcpy((uint8_t *)dst + done, (const uint8_t *)iov[i].iov_base + off, c);
		done += c;
		off = 0;
	}
	return done;
}

size_t net_iov_write(const struct iovec *iov, unsigned n, size_t off, const void *src, size_t len)
{
	size_t done = 0;
	for (unsigned i = 0; i < n && done < len; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		size_t c = MIN(iov[i].iov_len - off, len - done);
		memcpy((uint8_t *)iov[i].iov_base + off, (const uint8_t *)src + done, c);
		done += c;
		off = 0;
	}
	return done;
}

unsigned net_iov_tail(const struct iovec *iov, unsigned n, size_t skip, struct iovec *dst,
		      unsigned max, size_t *bytes)
{
	unsigned k = 0;
	size_t t = 0;
	for (unsigned i = 0; i < n && k < max; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		dst[k].iov_base = (uint8_t *)iov[i].iov_base + skip;
		dst[k].iov_len = iov[i].iov_len - skip;
		t += dst[k].iov_len;
		k++;
		skip = 0;
	}
	*bytes = t;
	return k;
}

/* ---- backends ----------------------------------------------------------------------------------
 */

int net_backend_open(struct net_backend **out, const struct net_config *cfg, char *err,
		     size_t errlen)
{
	*out = NULL;
	switch (cfg->mode) {
	case NET_MODE_TAP:
	case NET_MODE_BRIDGE:
		return net_tap_open(out, cfg, err, errlen);
	case NET_MODE_USER:
		if (cfg->queues > 1)
			return opt_err(err, errlen, "user networking has one queue pair, not %u",
				       cfg->queues);
		return net_passt_open(out, cfg, err, errlen);
	default:
		return opt_err(err, errlen, "no network backend configured");
	}
}

void net_backend_close(struct net_backend *be)
{
	if (be)
		be->ops->close(be);
}
