/* SPDX-License-Identifier: MIT */
/* The --disk option: PATH[,key=value...]; see block.h. */
#include "block/block.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define KNOWN_KEYS "format, readonly, cache, serial, aio"

struct opt_choice {
	const char *name;
	int value;
};

static int opt_pick(const struct opt_choice *c, size_t n, const char *key, const char *val,
		    int *out, char *err, size_t errlen)
{
	char list[128] = "";
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(val, c[i].name)) {
			*out = c[i].value;
			return 0;
		}
		size_t l = strlen(list);
		snprintf(list + l, sizeof(list) - l, "%s%s", i ? "|" : "", c[i].name);
	}
	snprintf(err, errlen, "--disk: %s='%s': expected %s", key, val, list);
	return -EINVAL;
}

static int opt_serial(const char *val, struct blk_config *cfg, char *err, size_t errlen)
{
	size_t n = strlen(val);
	if (n > BLK_SERIAL_MAX) {
		snprintf(err, errlen, "--disk: serial='%s' is %zu bytes, at most %d", val, n,
			 BLK_SERIAL_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (val[i] < 0x20 || val[i] > 0x7e) {
			snprintf(err, errlen, "--disk: serial: only printable ASCII is allowed");
			return -EINVAL;
		}
	}
	memcpy(cfg->serial, val, n + 1);
	return 0;
}

static int opt_apply(const char *key, const char *val, struct blk_config *cfg, char *err,
		     size_t errlen)
{
	static const struct opt_choice formats[] = {
		{"raw", 0}, {"qcow2", 1}, {"vmdk", 2}, {"vhd", 3}};
	static const struct opt_choice onoff[] = {{"on", 1}, {"off", 0}};
	static const struct opt_choice caches[] = {{"writeback", BLK_CACHE_WRITEBACK},
						   {"writethrough", BLK_CACHE_WRITETHROUGH},
						   {"none", BLK_CACHE_NONE},
						   {"unsafe", BLK_CACHE_UNSAFE}};
	static const struct opt_choice engines[] = {{"auto", BLK_ENGINE_AUTO},
						    {"io_uring", BLK_ENGINE_URING},
						    {"threads", BLK_ENGINE_THREADS}};
	int v = 0, r;

	if (!strcmp(key, "serial"))
		return opt_serial(val, cfg, err, errlen);
	if (!*val) {
		snprintf(err, errlen, "--disk: %s: empty value", key);
		return -EINVAL;
	}
	if (!strcmp(key, "format")) {
		r = opt_pick(formats, ARRAY_SIZE(formats), key, val, &v, err, errlen);
		if (!r)
			snprintf(cfg->format, sizeof(cfg->format), "%s", formats[v].name);
	} else if (!strcmp(key, "readonly")) {
		r = opt_pick(onoff, ARRAY_SIZE(onoff), key, val, &v, err, errlen);
		cfg->readonly = v;
	} else if (!strcmp(key, "cache")) {
		r = opt_pick(caches, ARRAY_SIZE(caches), key, val, &v, err, errlen);
		cfg->cache = (enum blk_cache)v;
	} else if (!strcmp(key, "aio")) {
		r = opt_pick(engines, ARRAY_SIZE(engines), key, val, &v, err, errlen);
		cfg->engine = (enum blk_engine)v;
	} else {
		snprintf(err, errlen, "--disk: unknown option '%s' (known: " KNOWN_KEYS ")", key);
		r = -EINVAL;
	}
	return r;
}

int blk_parse_disk_opt(const char *arg, struct blk_config *cfg, char *err, size_t errlen)
{
	const char *s = arg;
	size_t n = 0;
	unsigned seen = 0;
	static const char *const keys[] = {"format", "readonly", "cache", "serial", "aio"};

	blk_config_defaults(cfg);
	if (!arg) {
		snprintf(err, errlen, "--disk: empty path");
		return -EINVAL;
	}
	/* The path, with ",," standing for a comma. */
	for (; *s; s++) {
		if (*s == ',') {
			if (s[1] != ',')
				break;
			s++;
		}
		if (n + 1 >= sizeof(cfg->path)) {
			snprintf(err, errlen, "--disk: path too long");
			return -EINVAL;
		}
		cfg->path[n++] = *s;
	}
	cfg->path[n] = '\0';
	if (!n) {
		snprintf(err, errlen, "--disk: empty path");
		return -EINVAL;
	}
	while (*s == ',') {
		char item[128], *eq;
		const char *end = strchr(s + 1, ',');
		size_t len = end ? (size_t)(end - s - 1) : strlen(s + 1);
		if (len >= sizeof(item)) {
			snprintf(err, errlen, "--disk: option '%.20s...' too long", s + 1);
			return -EINVAL;
		}
		memcpy(item, s + 1, len);
		item[len] = '\0';
		s += 1 + len;
		eq = strchr(item, '=');
		if (!eq) {
			snprintf(err, errlen, "--disk: '%s': expected key=value", item);
			return -EINVAL;
		}
		*eq = '\0';
		for (unsigned k = 0; k < ARRAY_SIZE(keys); k++) {
			if (strcmp(item, keys[k]))
				continue;
			if (seen & (1u << k)) {
				snprintf(err, errlen, "--disk: %s given twice", item);
				return -EINVAL;
			}
			seen |= 1u << k;
		}
		int r = opt_apply(item, eq + 1, cfg, err, errlen);
		if (r)
			return r;
	}
	return 0;
}
