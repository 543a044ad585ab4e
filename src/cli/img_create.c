/* SPDX-License-Identifier: MIT */
/*
 * `vireo img create`, and the image creation convert shares with it: -o option parsing,
 * raw files (locked, truncated, optionally preallocated) and qcow2 (qcow2_create).
 *
 * A backing file's format is never guessed into an image: without -F, a backing file
 * that looks raw is recorded as raw, anything else needs -F.
 */
#include "cli/img.h"
#include "cli/cli.h"
#include "block/qcow2.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage_create(FILE *f)
{
	fprintf(
	    f, "Usage: vireo img create [-f raw|qcow2] [-o OPTIONS] [-b BACKING [-F BACKING_FMT]]\n"
	       "                        [-u] [-q] FILE [SIZE]\n"
	       "\n"
	       "Create a disk image (an existing FILE is overwritten unless a VM has it open).\n"
	       "  -f FMT        raw (default) or qcow2\n"
	       "  -o OPTIONS    comma-separated NAME=VALUE; '-o help' lists them for the format\n"
	       "  -b BACKING    qcow2 backing file (a relative name is taken from FILE's folder);\n"
	       "                SIZE defaults to the backing file's size\n"
	       "  -F FMT        the backing file's format; needed unless it is raw\n"
	       "  -u            do not open the backing file (SIZE is then required)\n"
	       "  -q            print nothing on success\n"
	       "SIZE: bytes or with a suffix K, M, G, T, P, E (1024-based), e.g. 10G, 1.5T.\n");
}

static void usage_opts(FILE *f, const char *fmt)
{
	if (!strcmp(fmt, "raw")) {
		fprintf(f,
			"Options for raw:\n"
			"  size=SIZE                      virtual size\n"
			"  preallocation=off|falloc|full  allocate the file's blocks (full writes "
			"zeroes)\n");
		return;
	}
	fprintf(f, "Options for qcow2:\n"
		   "  size=SIZE                      virtual size\n"
		   "  cluster_size=SIZE              512 .. 2M, power of two (default 64K)\n"
		   "  preallocation=off|metadata|falloc|full\n"
		   "                                 metadata: tables and clusters allocated, file "
		   "sparse;\n"
		   "                                 falloc/full: and the clusters' blocks "
		   "allocated\n"
		   "  compat=0.10|1.1                qcow2 version 2 or 3 (default 1.1)\n"
		   "  refcount_bits=N                1, 2, 4, 8, 16 (default), 32 or 64\n"
		   "  backing_file=NAME              as -b\n"
		   "  backing_fmt=FMT                as -F\n"
		   "  compression_type=zlib|zstd     for compressed clusters (convert -c); zstd\n"
		   "                                 needs compat=1.1 (default zlib)\n"
		   "  lazy_refcounts=off, extended_l2=off (accepted, the only choice)\n");
}

void img_create_spec_init(struct img_create_spec *c, const char *fmt)
{
	memset(c, 0, sizeof(*c));
	c->fmt = fmt;
}

static int opt_size(const char *cmd, const char *key, const char *v, uint64_t *out)
{
	int r = img_parse_size(v, out);
	if (r == -ERANGE)
		return img_usage_error(cmd, "-o %s='%s': too large", key, v);
	if (r)
		return img_usage_error(cmd, "-o %s='%s': not a size", key, v);
	return 0;
}

static int opt_prealloc(const char *cmd, struct img_create_spec *c, const char *v)
{
	static const char *const names[] = {"off", "metadata", "falloc", "full"};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (!strcmp(v, names[i])) {
			c->prealloc = (enum img_prealloc)i;
			return 0;
		}
	return img_usage_error(cmd, "-o preallocation='%s': expected off, metadata, falloc or full",
			       v);
}

/* Decimal in 0..max. */
static int parse_small(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!s || !*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > max)
			return -ERANGE;
	}
	*out = v;
	return 0;
}

/* One NAME=VALUE (raw and qcow2 keys; the format is checked in img_create_validate). */
static int opt_one(const char *cmd, struct img_create_spec *c, char *kv)
{
	char *v = strchr(kv, '=');
	uint64_t n;
	int r;

	if (!v)
		return img_usage_error(cmd, "-o '%s': expected NAME=VALUE", kv);
	*v++ = 0;
	if (!strcmp(kv, "size")) {
		r = opt_size(cmd, kv, v, &c->size);
		c->size_set = !r;
		return r;
	}
	if (!strcmp(kv, "preallocation"))
		return opt_prealloc(cmd, c, v);
	c->qcow2_only = kv; /* everything below means qcow2 */
	if (!strcmp(kv, "cluster_size")) {
		r = opt_size(cmd, kv, v, &n);
		if (!r && (n < 512 || n > (2u << 20) || (n & (n - 1))))
			return img_usage_error(cmd,
					       "-o cluster_size='%s': must be a power of two "
					       "512..2M",
					       v);
		c->cluster_size = (unsigned)n;
		return r;
	}
	if (!strcmp(kv, "compat")) {
		if (!strcmp(v, "0.10") || !strcmp(v, "v2"))
			c->version = 2;
		else if (!strcmp(v, "1.1") || !strcmp(v, "v3"))
			c->version = 3;
		else
			return img_usage_error(cmd, "-o compat='%s': expected 0.10 or 1.1", v);
		return 0;
	}
	if (!strcmp(kv, "refcount_bits")) {
		if (parse_small(v, 64, &n) || !n || (n & (n - 1)))
			return img_usage_error(cmd,
					       "-o refcount_bits='%s': expected 1, 2, 4 ... 64", v);
		c->refcount_bits = (unsigned)n;
		return 0;
	}
	if (!strcmp(kv, "backing_file")) {
		c->backing = v;
		return 0;
	}
	if (!strcmp(kv, "backing_fmt")) {
		c->backing_fmt = v;
		return 0;
	}
	if ((!strcmp(kv, "lazy_refcounts") || !strcmp(kv, "extended_l2")) && !strcmp(v, "off"))
		return 0;
	if (!strcmp(kv, "compression_type")) {
		if (strcmp(v, "zlib") && strcmp(v, "zstd"))
			return img_usage_error(cmd, "-o compression_type='%s': expected zlib or zstd",
					       v);
		c->compression = v;
		return 0;
	}
	if (!strcmp(kv, "lazy_refcounts") || !strcmp(kv, "extended_l2") ||
	    !strcmp(kv, "compression_type"))
		return img_usage_error(cmd, "-o %s=%s: not supported", kv, v);
	return img_usage_error(cmd, "-o '%s': unknown option (see -o help)", kv);
}

int img_create_parse_opts(const char *cmd, struct img_create_spec *c, char *opts)
{
	char *save = NULL;

	if (!strcmp(opts, "help") || !strcmp(opts, "?")) {
		usage_opts(stdout, c->fmt);
		c->help_shown = true;
		return 0;
	}
	for (char *kv = strtok_r(opts, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		int r = opt_one(cmd, c, kv);
		if (r)
			return r;
	}
	return 0;
}

int img_create_validate(const char *cmd, const struct img_create_spec *c)
{
	bool raw = !strcmp(c->fmt, "raw");

	if (raw && c->qcow2_only)
		return img_usage_error(cmd, "-o %s: not an option of raw images (see -o help)",
				       c->qcow2_only);
	if (raw && c->backing)
		return img_usage_error(cmd, "raw images have no backing file (use -f qcow2)");
	if (raw && c->prealloc == IMG_PREALLOC_METADATA)
		return img_usage_error(cmd, "-o preallocation=metadata: only for qcow2");
	if (c->backing_fmt && !c->backing)
		return img_usage_error(cmd, "a backing format (-F) needs a backing file (-b)");
	if (c->backing_fmt && !img_format_known(c->backing_fmt))
		return img_usage_error(cmd, "backing format '%s': unknown (raw, qcow2, vmdk, vhd)",
				       c->backing_fmt);
	if (c->backing && !*c->backing)
		return img_usage_error(cmd, "empty backing file name");
	if (c->version == 2 && c->refcount_bits && c->refcount_bits != 16)
		return img_usage_error(cmd, "compat=0.10 images have 16-bit refcounts");
	if (c->version == 2 && c->compression && strcmp(c->compression, "zlib"))
		return img_usage_error(cmd, "-o compression_type=%s: needs compat=1.1",
				       c->compression);
	return 0;
}

/* The backing name as the image will resolve it: relative to the image's folder. */
static char *backing_path(const char *image, const char *backing)
{
	const char *slash = strrchr(image, '/');
	size_t dl = slash ? (size_t)(slash - image) + 1 : 0;
	char *p;

	if (backing[0] == '/' || !dl)
		return strdup(backing);
	p = malloc(dl + strlen(backing) + 1);
	if (p) {
		memcpy(p, image, dl);
		strcpy(p + dl, backing);
	}
	return p;
}

/* Settle the backing format and (unless unsafe) check the backing file opens. */
static int check_backing(const char *cmd, struct img_create_spec *c, const char *path)
{
	char *bp = backing_path(path, c->backing);
	struct stat a, b;
	int ret = 0;

	if (!bp)
		return img_fail(cmd, "out of memory");
	if (stat(bp, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
	    a.st_ino == b.st_ino) {
		ret = img_fail(cmd, "image '%s': backing file '%s' is the image itself", path,
			       c->backing);
		goto out;
	}
	if (!c->backing_fmt && !c->unsafe) {
		const char *guess = img_probe_format(bp);
		if (strcmp(guess, "raw")) {
			ret = img_usage_error(cmd,
					      "backing file '%s' looks like %s; the backing "
					      "format is never guessed: give -F %s",
					      c->backing, guess, guess);
			goto out;
		}
	}
	if (!c->backing_fmt)
		c->backing_fmt = "raw";
	if (!c->unsafe) {
		struct img *im;
		char err[768] = "";
		int r = img_open(&im, bp, c->backing_fmt, IMG_O_RDONLY, err, sizeof(err));
		if (r) {
			ret = img_fail(cmd, "backing file: %s", err[0] ? err : strerror(-r));
			goto out;
		}
		if (!c->size_set) {
			c->size = im->size;
			c->size_set = true;
		}
		img_close(im);
	} else if (!c->size_set) {
		ret = img_usage_error(cmd, "with -u the SIZE must be given");
	}
out:
	free(bp);
	return ret;
}

static int write_zeroes_fd(int fd, uint64_t size)
{
	static const char zero[1 << 16];
	for (uint64_t off = 0; off < size;) {
		size_t n = (size_t)MIN(size - off, sizeof(zero));
		ssize_t w = pwrite(fd, zero, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		off += (uint64_t)w;
	}
	return 0;
}

static int create_raw(const char *cmd, const struct img_create_spec *c, const char *path)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	struct stat st;
	int fd, ret = 0;

	if (c->size > (uint64_t)INT64_MAX)
		return img_fail(cmd, "image '%s': size too large", path);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
	if (fd < 0)
		return img_fail(cmd, "image '%s': %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return img_fail(cmd, "image '%s': not a regular file", path);
	}
	/* Same lock as image.c's writers: never truncate a disk a VM has open. */
	if (fcntl(fd, F_OFD_SETLK, &fl) < 0 && (errno == EAGAIN || errno == EACCES)) {
		close(fd);
		return img_fail(cmd, "image '%s' is in use by another process", path);
	}
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)c->size) < 0)
		ret = -errno;
	if (!ret && c->prealloc == IMG_PREALLOC_FALLOC && c->size)
		ret = -posix_fallocate(fd, 0, (off_t)c->size);
	if (!ret && c->prealloc == IMG_PREALLOC_FULL)
		ret = write_zeroes_fd(fd, c->size);
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	close(fd);
	if (ret)
		return img_fail(cmd, "image '%s': %s", path, strerror(-ret));
	return 0;
}

static int create_qcow2(const char *cmd, const struct img_create_spec *c, const char *path)
{
	static const enum qcow2_prealloc pmap[] = {
	    [IMG_PREALLOC_OFF] = QCOW2_PREALLOC_OFF,
	    [IMG_PREALLOC_METADATA] = QCOW2_PREALLOC_METADATA,
	    [IMG_PREALLOC_FALLOC] = QCOW2_PREALLOC_FULL,
	    [IMG_PREALLOC_FULL] = QCOW2_PREALLOC_FULL,
	};
	struct qcow2_create_opts o = {
	    .size = c->size,
	    .cluster_size = c->cluster_size,
	    .backing_file = c->backing,
	    .backing_fmt = c->backing_fmt,
	    .version = c->version,
	    .refcount_bits = c->refcount_bits,
	    .prealloc = pmap[c->prealloc],
	    .compression = c->compression,
	};
	char err[768] = "";
	int ret;

	/* Size 0 means "the backing file's" to qcow2_create: a 0-byte overlay is not useful,
	 * but it must not silently become the backing file's size either. */
	if (c->backing && c->size_set && !c->size)
		return img_usage_error(cmd, "SIZE 0 with a backing file");
	ret = qcow2_create(path, &o, err, sizeof(err));
	if (ret)
		return img_fail(cmd, "%s", err[0] ? err : strerror(-ret));
	return 0;
}

int img_create_file(const char *cmd, struct img_create_spec *c, const char *path)
{
	uint64_t rounded;
	int ret;

	if (c->backing) {
		ret = check_backing(cmd, c, path);
		if (ret)
			return ret;
	}
	if (!c->size_set)
		return img_usage_error(cmd, "missing SIZE");
	if (add_overflows(c->size, (uint64_t)511, &rounded))
		return img_fail(cmd, "image '%s': size too large", path);
	c->size = rounded & ~(uint64_t)511; /* whole sectors, as every reader sees them */
	return !strcmp(c->fmt, "raw") ? create_raw(cmd, c, path) : create_qcow2(cmd, c, path);
}

static const struct option create_opts[] = {
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int img_cmd_create(int argc, char **argv)
{
	static const char *const pnames[] = {"off", "metadata", "falloc", "full"};
	const char *cmd = "create", *fmt = "raw", *bfile = NULL, *bfmt = NULL;
	struct img_create_spec c;
	char *optstr[16];
	unsigned nopt = 0;
	bool quiet = false, unsafe = false;
	int o, ret = 0;

	/* "-5G" would reach getopt as options: name it for what it is. */
	if (argc > 2 && argv[argc - 1][0] == '-' && argv[argc - 1][1] >= '0' &&
	    argv[argc - 1][1] <= '9')
		return img_usage_error(cmd, "size '%s': must not be negative", argv[argc - 1]);
	while ((o = getopt_long(argc, argv, ":f:o:b:F:uqh", create_opts, NULL)) != -1) {
		switch (o) {
		case 'f':
			fmt = optarg;
			break;
		case 'o':
			if (nopt == ARRAY_SIZE(optstr))
				return img_usage_error(cmd, "too many -o");
			optstr[nopt++] = optarg;
			break;
		case 'b':
			bfile = optarg;
			break;
		case 'F':
			bfmt = optarg;
			break;
		case 'u':
			unsafe = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'h':
			usage_create(stdout);
			return CLI_EXIT_OK;
		default:
			return img_getopt_error(cmd, o, argv);
		}
	}
	ret = img_check_format_arg(cmd, "-f", fmt, true);
	if (ret)
		return ret;
	img_create_spec_init(&c, fmt);
	for (unsigned i = 0; i < nopt; i++) {
		ret = img_create_parse_opts(cmd, &c, optstr[i]);
		if (ret || c.help_shown)
			return ret;
	}
	if (bfile)
		c.backing = bfile;
	if (bfmt)
		c.backing_fmt = bfmt;
	c.unsafe = unsafe;
	ret = img_want_args(cmd, argc, argv, 1, 2, "FILE");
	if (!ret)
		ret = img_create_validate(cmd, &c);
	if (ret)
		return ret;
	if (argc - optind == 2) {
		const char *s = argv[optind + 1];
		int r = img_parse_size(s, &c.size);
		if (r == -ERANGE)
			return img_usage_error(cmd, "size '%s': too large", s);
		if (r)
			return img_usage_error(cmd,
					       "size '%s': expected bytes or a number with "
					       "K, M, G, T, P or E",
					       s);
		c.size_set = true;
	}
	ret = img_create_file(cmd, &c, argv[optind]);
	if (ret || quiet)
		return ret;
	printf("Formatting '%s', fmt=%s size=%llu", argv[optind], fmt, (unsigned long long)c.size);
	if (!strcmp(fmt, "qcow2"))
		printf(" cluster_size=%u compat=%s refcount_bits=%u",
		       c.cluster_size ? c.cluster_size : 65536, c.version == 2 ? "0.10" : "1.1",
		       c.refcount_bits ? c.refcount_bits : 16);
	if (c.backing)
		printf(" backing_file=%s backing_fmt=%s", c.backing, c.backing_fmt);
	printf(" preallocation=%s\n", pnames[c.prealloc]);
	return CLI_EXIT_OK;
}
