/* SPDX-License-Identifier: MIT */
/*
 * `vireo img`: dispatch to the subcommands (img_<cmd>.c) and what they share: messages,
 * option errors, size and format arguments, opening an image (see img.h).
 */
#include "cli/img.h"
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage_img(FILE *f)
{
	fprintf(
	    f,
	    "Usage: vireo img COMMAND [OPTIONS] FILE...\n"
	    "\n"
	    "Commands:\n"
	    "  create   [-f raw|qcow2] [-o OPTIONS] [-b BACKING -F BACKING_FMT] FILE [SIZE]\n"
	    "  info     [-f FMT] [--backing-chain] [--json] [-U] FILE\n"
	    "  check    [-f FMT] [-r leaks|all] [--json] [-U] FILE\n"
	    "  convert  [-f FMT] [-O raw|qcow2] [-o OPTIONS] [-t CACHE] [-p] [-q] SRC DST\n"
	    "  resize   [-f FMT] [--shrink] FILE [+|-]SIZE\n"
	    "  snapshot [-f FMT] -l | -c NAME | -d NAME | -a NAME FILE\n"
	    "  commit   [-f FMT] FILE\n"
	    "  map      [-f FMT] [--json] [--start-offset OFF] [--max-length LEN] [-U] FILE\n"
	    "\n"
	    "Formats: raw and qcow2 (read-write), vmdk and vhd (read-only, for convert).\n"
	    "Without -f the format is guessed, and a guessed format never opens a backing file.\n"
	    "SIZE: bytes, or with a suffix K, M, G, T, P, E (1024-based): 10G, 1.5T, 512K.\n"
	    "'vireo img COMMAND --help' describes a command.\n");
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} img_cmds[] = {
    {"create", img_cmd_create},	  {"info", img_cmd_info},     {"check", img_cmd_check},
    {"convert", img_cmd_convert}, {"resize", img_cmd_resize}, {"snapshot", img_cmd_snapshot},
    {"commit", img_cmd_commit},	  {"map", img_cmd_map},
};

int cli_img(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "vireo: img: missing COMMAND (try 'vireo img --help')\n");
		return CLI_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage_img(stdout);
		return CLI_EXIT_OK;
	}
	for (size_t i = 0; i < ARRAY_SIZE(img_cmds); i++)
		if (!strcmp(argv[1], img_cmds[i].name)) {
			optind = 0; /* GNU getopt: start afresh for the subcommand's argv */
			opterr = 0;
			return img_cmds[i].fn(argc - 1, argv + 1);
		}
	fprintf(stderr, "vireo: img: unknown command '%s' (try 'vireo img --help')\n", argv[1]);
	return CLI_EXIT_USAGE;
}

/* ---- messages ---- */

static void img_vmsg(const char *cmd, const char *fmt, va_list ap, bool hint)
	__attribute__((format(printf, 2, 0)));
static void img_vmsg(const char *cmd, const char *fmt, va_list ap, bool hint)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* One line, whatever the message quotes (file names can hold newlines). */
	for (char *p = msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (hint)
		fprintf(stderr, "vireo: img %s: %s (try 'vireo img %s --help')\n", cmd, msg, cmd);
	else
		fprintf(stderr, "vireo: img %s: %s\n", cmd, msg);
}

int img_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	img_vmsg(cmd, fmt, ap, true);
	va_end(ap);
	return CLI_EXIT_USAGE;
}

int img_fail(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	img_vmsg(cmd, fmt, ap, false);
	va_end(ap);
	return CLI_EXIT_ERROR;
}

int img_getopt_error(const char *cmd, int o, char **argv)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "?";
	char shortopt[3] = {'-', (char)optopt, 0};

	/* A short option inside a cluster ("-lq") is named alone; long ones as written. */
	if (optopt && !(arg[0] == '-' && arg[1] == '-'))
		arg = shortopt;
	if (o == ':')
		return img_usage_error(cmd, "'%s' needs a value", arg);
	return img_usage_error(cmd, "unknown option '%s'", arg);
}

int img_want_args(const char *cmd, int argc, char **argv, int min, int max, const char *names)
{
	int n = argc - optind;

	if (n < min)
		return img_usage_error(cmd, "missing %s", names);
	if (n > max)
		return img_usage_error(cmd, "unexpected argument '%s'", argv[optind + max]);
	return 0;
}

/* ---- values ---- */

int img_parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "KMGTPE";
	uint64_t ip = 0, frac = 0, fdiv = 1, mult = 1;
	const char *p = s, *u;
	unsigned fdigits = 0;

	if (!s || *p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++)
		if (__builtin_mul_overflow(ip, 10, &ip) ||
		    __builtin_add_overflow(ip, (uint64_t)(*p - '0'), &ip))
			return -ERANGE;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		for (; *p >= '0' && *p <= '9'; p++)
			if (fdigits < 18) { /* further digits cannot change a 64-bit result */
				frac = frac * 10 + (uint64_t)(*p - '0');
				fdiv *= 10;
				fdigits++;
			}
	}
	if (*p && (u = strchr(units, *p >= 'a' && *p <= 'z' ? *p - 32 : *p)) != NULL) {
		mult = 1ull << (10 * (unsigned)(u - units + 1));
		p++;
		if (!strcmp(p, "iB") || !strcmp(p, "B") || !strcmp(p, "b"))
			p += strlen(p);
	} else if (*p == 'b' || *p == 'B') {
		p++;
	}
	if (*p)
		return -EINVAL;
	if (fdiv > 1 && mult == 1)
		return -EINVAL; /* "1.5" bytes means nothing */
	if (__builtin_mul_overflow(ip, mult, &ip))
		return -ERANGE;
	/* frac/fdiv < 1, so frac * (mult / fdiv) stays below mult: no overflow. */
	{
		unsigned __int128 f = (unsigned __int128)frac * mult / fdiv;
		if (__builtin_add_overflow(ip, (uint64_t)f, &ip))
			return -ERANGE;
	}
	*out = ip;
	return 0;
}

bool img_format_known(const char *fmt)
{
	return fmt && (!strcmp(fmt, "raw") || !strcmp(fmt, "qcow2") || !strcmp(fmt, "vmdk") ||
		       !strcmp(fmt, "vhd"));
}

bool img_format_writable(const char *fmt)
{
	return fmt && (!strcmp(fmt, "raw") || !strcmp(fmt, "qcow2"));
}

int img_check_format_arg(const char *cmd, const char *opt, const char *fmt, bool writable)
{
	if (!img_format_known(fmt))
		return img_usage_error(cmd, "%s '%s': unknown format (raw, qcow2, vmdk, vhd)", opt,
				       fmt);
	if (writable && !img_format_writable(fmt))
		return img_usage_error(cmd, "%s '%s': format is read-only here (raw or qcow2)", opt,
				       fmt);
	return 0;
}

void img_human_size(uint64_t v, char *buf, size_t len)
{
	static const char *const sfx[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	double d = (double)v;
	unsigned i = 0;

	while (d >= 1000.0 && i + 1 < ARRAY_SIZE(sfx)) {
		d /= 1024.0;
		i++;
	}
	snprintf(buf, len, "%.3g %s", d, sfx[i]);
}

uint64_t img_disk_usage(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return 0;
	return (uint64_t)st.st_blocks * 512;
}

/* ---- opening ---- */

/* A qcow2 header's backing file offset (bytes 8..15) is non-zero. */
static bool qcow2_names_backing(const char *path)
{
	uint8_t h[16];
	bool named = false;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

	if (fd < 0)
		return false;
	if (pread(fd, h, sizeof(h), 0) == (ssize_t)sizeof(h))
		for (int i = 8; i < 16; i++)
			named |= h[i] != 0;
	close(fd);
	return named;
}

int img_cli_open(const char *cmd, const char *path, const char *fmt, unsigned flags,
		 struct img **out, bool *probed)
{
	char err[768] = "";
	int ret;

	*out = NULL;
	if (probed)
		*probed = !fmt;
	if (!fmt) {
		fmt = img_probe_format(path);
		if (!(flags & IMG_O_NO_BACKING) && !strcmp(fmt, "qcow2") &&
		    qcow2_names_backing(path))
			return img_fail(
			    cmd,
			    "image '%s': looks like qcow2 with a backing file; a guessed "
			    "format never opens a backing file: name it with -f qcow2",
			    path);
	}
	ret = img_open(out, path, fmt, flags | IMG_O_QUIET, err, sizeof(err));
	if (ret)
		return img_fail(cmd, "%s", err[0] ? err : strerror(-ret));
	return 0;
}

const char *img_req_error(struct img *im, int ret, char *buf, size_t len)
{
	img_last_error(im, buf, len);
	if ((ret == -EIO || ret == -ENOLINK) && buf[0])
		return buf;
	snprintf(buf, len, "%s", strerror(-ret));
	return buf;
}

const char *img_fmt_name(const struct img *im)
{
	return im && im->ops && im->ops->name ? im->ops->name : "?";
}
