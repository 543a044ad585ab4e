/* SPDX-License-Identifier: MIT */
/*
 * `vireo img convert`: copy what a guest sees of any readable image (raw, qcow2 with its
 * backing chain and compressed clusters, vmdk, vhd) into a new raw or qcow2 image.
 *
 * Sparse: img_map() tells which ranges hold data; zero and unallocated ranges are not
 * written, and data blocks (-S, default 4 KiB) that are all zeroes are skipped too, so
 * they stay holes (raw) or unallocated clusters (qcow2). A freshly created target reads
 * as zeroes everywhere, which is what makes skipping correct; an existing block device
 * target gets explicit write-zeroes instead.
 *
 * -c (qcow2 only) writes every non-zero cluster of DST compressed, as qemu-img does
 * (qcow2_write_compressed; what does not compress smaller is written plainly), with the
 * compression type of -o compression_type=zlib|zstd.
 */
#include "cli/img.h"
#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONV_BUF (2u << 20)

static void usage_convert(FILE *f)
{
	fprintf(
	    f,
	    "Usage: vireo img convert [-f FMT] [-O raw|qcow2] [-o OPTIONS] [-S SIZE] [-t CACHE]\n"
	    "                         [-c] [-p] [-q] [-U] SRC DST\n"
	    "\n"
	    "Copy the guest-visible contents of SRC (raw, qcow2 with its backing files, vmdk,\n"
	    "vhd) into a new image DST, leaving zero ranges unallocated.\n"
	    "  -f FMT      SRC's format (else guessed; a guess never opens a backing file)\n"
	    "  -O FMT      DST's format: raw (default) or qcow2\n"
	    "  -o OPTIONS  DST creation options, as 'vireo img create -o' ('-o help')\n"
	    "  -S SIZE     zero runs of at least SIZE bytes are not written (default 4K;\n"
	    "              0 writes everything: a fully allocated DST)\n"
	    "  -t CACHE    DST's cache mode: writeback (default), writethrough, none, unsafe\n"
	    "  -c          compress DST's clusters (qcow2; -o compression_type=zlib|zstd)\n"
	    "  -p          show progress (default when stderr is a terminal)\n"
	    "  -q          quiet: no progress\n"
	    "  -U          do not take SRC's lock\n"
	    "DST may be an existing block device (with -O raw); it must be large enough.\n");
}

struct progress {
	bool on;
	uint64_t total;
	int last; /* per mille shown, -1 = nothing yet */
};

static void progress_show(struct progress *p, uint64_t done)
{
	int pm = p->total ? (int)(done * 1000 / p->total) : 1000;
	char a[32], b[32];

	if (!p->on || pm == p->last)
		return;
	p->last = pm;
	img_human_size(done, a, sizeof(a));
	img_human_size(p->total, b, sizeof(b));
	fprintf(stderr, "\r  %5.1f%% (%s of %s)   ", pm / 10.0, a, b);
	fflush(stderr);
}

static void progress_end(struct progress *p)
{
	if (p->on && p->last >= 0)
		fputc('\n', stderr);
	p->on = false;
}

struct conv {
	const char *cmd;
	char msg[640]; /* the error, printed once the progress line is closed */
	char why[320]; /* img_req_error's text */
	struct img *src, *dst;
	uint8_t *buf;
	size_t sparse;	/* 0: write everything */
	bool need_zero; /* DST does not start out as zeroes */
	struct progress prog;
};

static bool buf_zero(const uint8_t *p, size_t len)
{
	/* Compare against the first byte: one memcmp instead of a byte loop. */
	return len == 0 || (p[0] == 0 && (len == 1 || !memcmp(p, p + 1, len - 1)));
}

#define CONV_ERR(c, ...) (snprintf((c)->msg, sizeof((c)->msg), __VA_ARGS__), -EIO)

/* -c: DST cluster by cluster (cs divides CONV_BUF), all-zero clusters left unallocated. */
static int conv_copy_compressed(struct conv *c, uint64_t cs)
{
	uint64_t size = c->src->size, off = 0;
	struct img_extent ext;
	int ret;

	while (off < size) {
		ret = img_map(c->src, off, size - off, &ext);
		if (ret || ext.len == 0 || ext.len > size - off)
			return CONV_ERR(c, "image '%s': cannot map offset %llu: %s", c->src->path,
					(unsigned long long)off,
					img_req_error(c->src, ret ? ret : -EIO, c->why, sizeof(c->why)));
		uint64_t skip = ext.kind == IMG_EXT_DATA ? off : ALIGN_DOWN(off + ext.len, cs);
		if (skip > off) { /* whole DST clusters that read as zeroes */
			off = skip;
			progress_show(&c->prog, off);
			continue;
		}
		size_t n = (size_t)MIN(size - off, (uint64_t)CONV_BUF);
		ret = img_pread(c->src, c->buf, n, off);
		if (ret)
			return CONV_ERR(c, "image '%s': read error at offset %llu: %s", c->src->path,
					(unsigned long long)off,
					img_req_error(c->src, ret, c->why, sizeof(c->why)));
		for (size_t pos = 0; pos < n; pos += (size_t)cs) {
			size_t len = (size_t)MIN((uint64_t)(n - pos), cs);
			if (buf_zero(c->buf + pos, len))
				continue;
			ret = qcow2_write_compressed(c->dst, c->buf + pos, len, off + pos);
			if (ret)
				return CONV_ERR(c, "image '%s': write error at offset %llu: %s",
						c->dst->path, (unsigned long long)(off + pos),
						img_req_error(c->dst, ret, c->why, sizeof(c->why)));
		}
		off += n;
		progress_show(&c->prog, off);
	}
	return 0;
}

/* Write [off, off+len) of buf to DST, skipping (or zeroing) all-zero blocks. */
static int conv_write(struct conv *c, const uint8_t *buf, uint64_t off, size_t len)
{
	size_t pos = 0;

	if (!c->sparse)
		return img_pwrite(c->dst, buf, len, off);
	while (pos < len) {
		size_t start = pos;
		bool zero = buf_zero(buf + pos, MIN(c->sparse, len - pos));
		int ret;

		/* A run of blocks of the same kind. */
		while (pos < len && buf_zero(buf + pos, MIN(c->sparse, len - pos)) == zero)
			pos += MIN(c->sparse, len - pos);
		if (!zero)
			ret = img_pwrite(c->dst, buf + start, pos - start, off + start);
		else if (c->need_zero)
			ret = img_write_zeroes(c->dst, off + start, pos - start, true);
		else
			ret = 0;
		if (ret)
			return ret;
	}
	return 0;
}

static int conv_copy(struct conv *c)
{
	uint64_t size = c->src->size, off = 0;
	struct img_extent ext;
	int ret;

	while (off < size) {
		ret = img_map(c->src, off, size - off, &ext);
		if (ret)
			return CONV_ERR(c, "image '%s': cannot map offset %llu: %s", c->src->path,
					(unsigned long long)off,
					img_req_error(c->src, ret, c->why, sizeof(c->why)));
		if (ext.len == 0 || ext.len > size - off)
			return CONV_ERR(c,
					"image '%s': map of offset %llu returned a bad "
					"extent (%llu bytes)",
					c->src->path, (unsigned long long)off,
					(unsigned long long)ext.len);
		if (ext.kind != IMG_EXT_DATA && c->sparse) {
			ret = c->need_zero ? img_write_zeroes(c->dst, off, ext.len, true) : 0;
			if (ret)
				return CONV_ERR(c, "image '%s': writing zeroes at %llu: %s",
						c->dst->path, (unsigned long long)off,
						img_req_error(c->dst, ret, c->why, sizeof(c->why)));
			off += ext.len;
			progress_show(&c->prog, off);
			continue;
		}
		for (uint64_t end = off + ext.len; off < end;) {
			size_t n = (size_t)MIN(end - off, (uint64_t)CONV_BUF);
			ret = img_pread(c->src, c->buf, n, off);
			if (ret)
				return CONV_ERR(c, "image '%s': read error at offset %llu: %s",
						c->src->path, (unsigned long long)off,
						img_req_error(c->src, ret, c->why, sizeof(c->why)));
			ret = conv_write(c, c->buf, off, n);
			if (ret)
				return CONV_ERR(c, "image '%s': write error at offset %llu: %s",
						c->dst->path, (unsigned long long)off,
						img_req_error(c->dst, ret, c->why, sizeof(c->why)));
			off += n;
			progress_show(&c->prog, off);
		}
	}
	return 0;
}

/* DST must not be SRC or any file of SRC's chain (it is about to be truncated). */
static int conv_check_distinct(const char *cmd, struct img *src, const char *dst,
			       const struct stat *dst_st)
{
	for (struct img *im = src; im; im = im->backing) {
		struct stat st;
		if (fstat(im->fd, &st) == 0 && st.st_dev == dst_st->st_dev &&
		    st.st_ino == dst_st->st_ino)
			return im == src ? img_fail(cmd, "'%s' is the source image itself", dst)
					 : img_fail(cmd, "'%s' is a backing file of '%s'", dst,
						    src->path);
	}
	return 0;
}

static unsigned cache_flags(const char *t)
{
	if (!strcmp(t, "writeback"))
		return 0;
	if (!strcmp(t, "writethrough"))
		return IMG_O_WRITETHROUGH;
	if (!strcmp(t, "none"))
		return IMG_O_DIRECT;
	if (!strcmp(t, "unsafe"))
		return IMG_O_UNSAFE;
	return ~0u;
}

static const struct option convert_opts[] = {
    {"help", no_argument, NULL, 'h'},
    {"force-share", no_argument, NULL, 'U'},
    {NULL, 0, NULL, 0},
};

int img_cmd_convert(int argc, char **argv)
{
	const char *cmd = "convert", *fmt = NULL, *ofmt = "raw", *cache = "writeback";
	char *optstr[16], err[768] = "";
	unsigned nopt = 0, sflags = IMG_O_RDONLY, dflags;
	bool progress = false, quiet = false, compress = false, blkdev = false;
	uint64_t sparse = 4096;
	struct img_create_spec spec;
	struct conv c = {.cmd = cmd, .prog.last = -1};
	struct stat st;
	const char *dst;
	int o, ret;

	while ((o = getopt_long(argc, argv, ":f:O:o:S:t:pqcUh", convert_opts, NULL)) != -1) {
		switch (o) {
		case 'f':
			fmt = optarg;
			break;
		case 'O':
			ofmt = optarg;
			break;
		case 'o':
			if (nopt == ARRAY_SIZE(optstr))
				return img_usage_error(cmd, "too many -o");
			optstr[nopt++] = optarg;
			break;
		case 'S':
			if (img_parse_size(optarg, &sparse) || sparse > CONV_BUF ||
			    (sparse && sparse % 512))
				return img_usage_error(cmd,
						       "-S '%s': expected 0 or a multiple of 512 "
						       "up to 2M",
						       optarg);
			break;
		case 't':
			cache = optarg;
			break;
		case 'p':
			progress = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'c':
			compress = true;
			break;
		case 'U':
			sflags |= IMG_O_NOLOCK;
			break;
		case 'h':
			usage_convert(stdout);
			return CLI_EXIT_OK;
		default:
			return img_getopt_error(cmd, o, argv);
		}
	}
	if (fmt && (ret = img_check_format_arg(cmd, "-f", fmt, false)))
		return ret;
	if ((ret = img_check_format_arg(cmd, "-O", ofmt, true)))
		return ret;
	if ((dflags = cache_flags(cache)) == ~0u)
		return img_usage_error(
		    cmd, "-t '%s': expected writeback, writethrough, none or unsafe", cache);
	if (compress && strcmp(ofmt, "qcow2"))
		return img_usage_error(cmd, "-c: compression needs -O qcow2");
	img_create_spec_init(&spec, ofmt);
	for (unsigned i = 0; i < nopt; i++) {
		ret = img_create_parse_opts(cmd, &spec, optstr[i]);
		if (ret || spec.help_shown)
			return ret;
	}
	if (spec.backing || spec.backing_fmt)
		return img_usage_error(cmd, "-o backing_file/backing_fmt: convert writes a "
					    "standalone image");
	if (spec.size_set)
		return img_usage_error(cmd, "-o size: DST gets SRC's size");
	ret = img_create_validate(cmd, &spec);
	if (!ret)
		ret = img_want_args(cmd, argc, argv, 2, 2,
				    argc - optind == 1 ? "DST" : "SRC and DST");
	if (ret)
		return ret;
	dst = argv[optind + 1];
	ret = img_cli_open(cmd, argv[optind], fmt, sflags, &c.src, NULL);
	if (ret)
		return ret;
	if (stat(dst, &st) == 0) {
		ret = conv_check_distinct(cmd, c.src, dst, &st);
		if (ret)
			goto out;
		blkdev = S_ISBLK(st.st_mode);
		if (blkdev && strcmp(ofmt, "raw")) {
			ret = img_usage_error(cmd, "'%s' is a block device: only -O raw goes there",
					      dst);
			goto out;
		}
	}
	if (!blkdev) {
		spec.size = c.src->size;
		spec.size_set = true;
		ret = img_create_file(cmd, &spec, dst);
		if (ret)
			goto out;
	}
	ret = img_open(&c.dst, dst, ofmt, dflags | IMG_O_QUIET, err, sizeof(err));
	if (ret) {
		ret = img_fail(cmd, "%s", err[0] ? err : strerror(-ret));
		goto out;
	}
	if (c.dst->size < c.src->size) {
		ret = img_fail(cmd, "image '%s': %llu bytes, smaller than the source's %llu", dst,
			       (unsigned long long)c.dst->size, (unsigned long long)c.src->size);
		goto out;
	}
	c.sparse = (size_t)sparse;
	c.need_zero = blkdev;
	if (posix_memalign((void **)&c.buf, 4096, CONV_BUF)) {
		ret = img_fail(cmd, "out of memory");
		goto out;
	}
	c.prog.on = !quiet && (progress || isatty(STDERR_FILENO));
	c.prog.total = c.src->size;
	progress_show(&c.prog, 0);
	if (compress) {
		struct qcow2_info qi;
		ret = qcow2_get_info(c.dst, &qi);
		ret = ret ? CONV_ERR(&c, "image '%s': %s", dst, strerror(-ret))
			  : conv_copy_compressed(&c, qi.cluster_size);
	} else {
		ret = conv_copy(&c);
	}
	if (!ret && (ret = img_flush(c.dst)))
		(void)CONV_ERR(&c, "image '%s': flush failed: %s", dst, strerror(-ret));
	progress_end(&c.prog);
	if (ret)
		ret = img_fail(cmd, "%s", c.msg);
out:
	free(c.buf);
	img_close(c.dst);
	img_close(c.src);
	return ret;
}
